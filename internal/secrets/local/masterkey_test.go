package local

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestMasterKeyFromEnv(t *testing.T) {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*7 + 3)
	}
	good := []string{
		hex.EncodeToString(key),
		strings.ToUpper(hex.EncodeToString(key)),
		"  " + hex.EncodeToString(key) + "\n",
		base64.StdEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key),
	}
	dir := t.TempDir()
	for _, env := range good {
		got, err := LoadOrCreateMasterKey(dir, env)
		if err != nil || !bytes.Equal(got, key) {
			t.Fatalf("env %q: %x, %v", env, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, MasterKeyFile)); !os.IsNotExist(err) {
		t.Fatal("a key from the environment wrote a key file")
	}
	bad := []string{
		"short",
		hex.EncodeToString(key[:31]),
		hex.EncodeToString(key) + "00",
		"zz" + hex.EncodeToString(key)[2:],
		base64.StdEncoding.EncodeToString(key[:31]),
		base64.StdEncoding.EncodeToString(append(key, 1)),
	}
	for _, env := range bad {
		_, err := LoadOrCreateMasterKey(dir, env)
		if err == nil {
			t.Fatalf("env %q accepted", env)
		}
		if strings.Contains(err.Error(), env) || !strings.Contains(err.Error(), "AMTD_MASTER_KEY") {
			t.Fatalf("error for %q: %v", env, err)
		}
	}
}

func TestMasterKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	key, err := LoadOrCreateMasterKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 || bytes.Equal(key, make([]byte, 32)) {
		t.Fatalf("key %x", key)
	}
	path := filepath.Join(dir, MasterKeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o", fi.Mode().Perm())
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Fatalf("data folder mode %o", di.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != hex.EncodeToString(key) {
		t.Fatalf("file holds %q", b)
	}
	// Second start reads the same key; no temporary files remain.
	again, err := LoadOrCreateMasterKey(dir, "")
	if err != nil || !bytes.Equal(again, key) {
		t.Fatalf("second load %x, %v", again, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("data folder holds %d entries", len(entries))
	}

	// A key readable by others is refused, with advice and without the key.
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateMasterKey(dir, "")
		if err == nil {
			t.Fatalf("mode %o accepted", mode)
		}
		if !strings.Contains(err.Error(), "chmod 600") || strings.Contains(err.Error(), hex.EncodeToString(key)) {
			t.Fatalf("mode %o: %v", mode, err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadOrCreateMasterKey(dir, ""); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("mode 400: %v", err)
	}

	// A damaged file is an error, not a silent new key.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateMasterKey(dir, ""); err == nil || strings.Contains(err.Error(), "not a key") {
		t.Fatalf("damaged file: %v", err)
	}
	if _, err := LoadOrCreateMasterKey("", ""); err == nil {
		t.Fatal("empty data folder accepted")
	}
}

// Instances starting together on one data folder agree on one key.
func TestMasterKeyConcurrentCreate(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys[i], errs[i] = LoadOrCreateMasterKey(dir, "")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("instance %d got another key", i)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		key, err := parseKey(s)
		if err == nil && len(key) != 32 {
			t.Fatalf("parseKey(%q) returned %d bytes", s, len(key))
		}
		// The error is one fixed text: it never quotes the input.
		if err != nil && err.Error() != "must be 64 hexadecimal characters or the base64 of exactly 32 bytes" {
			t.Fatalf("unexpected error text: %v", err)
		}
	})
}
