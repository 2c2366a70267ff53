package local

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MasterKeyFile is the name of the master key file in the data folder.
const MasterKeyFile = "master.key"

// LoadOrCreateMasterKey returns the 32-byte master key.
//
// env is the value of AMTD_MASTER_KEY as given by the caller: when it is not
// empty it must be 64 hexadecimal characters or the base64 (standard or URL
// alphabet, padded or not) of exactly 32 bytes, and it is used as is.
// Otherwise the key is read from <dataDir>/master.key (64 hex characters), or,
// on first start, created there: 32 random bytes, hex, mode 0600, in a data
// folder created with mode 0700. A key file that group or others can read is
// refused. Errors never contain key material.
func LoadOrCreateMasterKey(dataDir string, env string) ([]byte, error) {
	if env != "" {
		key, err := parseKey(env)
		if err != nil {
			return nil, fmt.Errorf("AMTD_MASTER_KEY: %w", err)
		}
		return key, nil
	}
	if dataDir == "" {
		return nil, errors.New("master key: no data folder given")
	}
	path := filepath.Join(dataDir, MasterKeyFile)
	key, err := readKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	return createKeyFile(dataDir, path)
}

// parseKey accepts 64 hex characters or base64 of exactly 32 bytes.
func parseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*keySize {
		if key, err := hex.DecodeString(s); err == nil {
			return key, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil && len(key) == keySize {
			return key, nil
		}
	}
	return nil, fmt.Errorf("must be %d hexadecimal characters or the base64 of exactly %d bytes", 2*keySize, keySize)
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key: %s is accessible by group or others (mode %04o); "+
			"restrict it with chmod 600 %s", path, perm, path)
	}
	b := make([]byte, 256)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return nil, fmt.Errorf("master key: read %s: %w", path, err)
	}
	defer clear(b)
	key, err := hex.DecodeString(string(bytes.TrimSpace(b[:n])))
	if err != nil || len(key) != keySize {
		return nil, fmt.Errorf("master key: %s does not hold %d hexadecimal characters", path, 2*keySize)
	}
	return key, nil
}

// createKeyFile writes a new random key. The file appears atomically (written
// under a temporary name, then hard-linked into place without replacing an
// existing file), so two processes starting together agree on one key.
func createKeyFile(dataDir, path string) ([]byte, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("master key: create data folder: %w", err)
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("master key: random: %w", err)
	}
	tmp, err := os.CreateTemp(dataDir, ".master.key-*")
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("master key: %w", err)
	}
	text := []byte(hex.EncodeToString(key) + "\n")
	defer clear(text)
	_, werr := tmp.Write(text)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return nil, fmt.Errorf("master key: write: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKeyFile(path) // another process won the race
		}
		return nil, fmt.Errorf("master key: %w", err)
	}
	if d, err := os.Open(dataDir); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}
