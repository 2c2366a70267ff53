package fleet

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/amtd-project/amtd/sim/firmware"
)

// ManifestName is the file in a fleet folder that lists the devices' UUIDs
// in index order, so that device i keeps its UUID, address and host name
// across restarts.
const ManifestName = "fleet.json"

// manifest is the JSON layout of ManifestName.
type manifest struct {
	Devices []string `json:"devices"`
}

// MaxManifestSize bounds the manifest file read (enough for about 20 000
// devices per MiB).
const MaxManifestSize = 64 << 20

// parseManifest reads a manifest: lower-case canonical UUIDs, no duplicates.
func parseManifest(data []byte) ([]string, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxManifestSize)
	}
	var m manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	seen := make(map[string]bool, len(m.Devices))
	for i, u := range m.Devices {
		if !canonicalUUID(u) {
			return nil, fmt.Errorf("device %d: %q is not a lower-case UUID", i, u)
		}
		if seen[u] {
			return nil, fmt.Errorf("device %d: %s listed twice", i, u)
		}
		seen[u] = true
	}
	return m.Devices, nil
}

func canonicalUUID(s string) bool {
	if _, err := firmware.ParseUUID(s); err != nil {
		return false
	}
	return s == strings.ToLower(s)
}

// loadUUIDs returns the first n device UUIDs of dir: those of the manifest,
// then device folders the manifest does not list (sorted), then new random
// ones. The manifest is rewritten when it changes.
func loadUUIDs(dir string, n int) ([]string, error) {
	path := filepath.Join(dir, ManifestName)
	var uuids []string
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if uuids, err = parseManifest(data); err != nil {
			return nil, fmt.Errorf("fleet: %s: %w (repair or remove it; device folders are found again without it)", path, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("fleet: %w", err)
	}
	listed := make(map[string]bool, len(uuids))
	for _, u := range uuids {
		listed[u] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	var found []string
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || listed[name] || !canonicalUUID(name) {
			continue
		}
		if _, err := os.Stat(firmware.DevicePath(dir, name)); err == nil {
			found = append(found, name)
		}
	}
	slices.Sort(found)
	changed := len(found) > 0 || data == nil
	uuids = append(uuids, found...)
	for len(uuids) < n {
		u, err := newUUID()
		if err != nil {
			return nil, err
		}
		if listed[u] {
			continue
		}
		listed[u] = true
		uuids = append(uuids, u)
		changed = true
	}
	if changed {
		if err := writeManifest(path, uuids); err != nil {
			return nil, err
		}
	}
	return uuids[:n], nil
}

// newUUID is a random (version 4) UUID.
func newUUID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// writeManifest replaces the manifest atomically.
func writeManifest(path string, uuids []string) error {
	data, err := json.MarshalIndent(manifest{Devices: uuids}, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fleet-*.tmp")
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("fleet: writing %s: %w", path, werr)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
