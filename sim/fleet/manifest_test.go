package fleet

import (
	"strings"
	"testing"
)

func TestParseManifest(t *testing.T) {
	good := `{"devices":["0b5f2a3e-1c4d-4e5f-8a9b-0c1d2e3f4a5b","9e8d7c6b-5a49-4837-a625-140312f0e1d2"]}`
	if u, err := parseManifest([]byte(good)); err != nil || len(u) != 2 {
		t.Fatalf("%v %v", u, err)
	}
	for _, bad := range []string{
		``, `[]`, `{"devices":["x"]}`, `{"devices":[1]}`,
		`{"devices":["0B5F2A3E-1C4D-4E5F-8A9B-0C1D2E3F4A5B"]}`,
		`{"devices":["0b5f2a3e-1c4d-4e5f-8a9b-0c1d2e3f4a5b","0b5f2a3e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"]}`,
		`{"devices":[],"other":1}`, `{"devices":[]} {}`,
		`{"devices":["../../../../etc/passwd-000-0000-000000000000"]}`,
	} {
		if _, err := parseManifest([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"devices":["0b5f2a3e-1c4d-4e5f-8a9b-0c1d2e3f4a5b"]}`))
	f.Add([]byte(`{"devices":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		uuids, err := parseManifest(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, u := range uuids {
			// every entry is safe to use as a folder name
			if !canonicalUUID(u) || strings.ContainsAny(u, "/\\.") || seen[u] {
				t.Fatalf("accepted %q", u)
			}
			seen[u] = true
		}
	})
}

func TestNewUUIDIsCanonicalV4(t *testing.T) {
	for range 100 {
		u, err := newUUID()
		if err != nil || !canonicalUUID(u) || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) {
			t.Fatalf("%q %v", u, err)
		}
	}
}
