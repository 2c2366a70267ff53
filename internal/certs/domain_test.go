package certs

import (
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

func TestDomainRules(t *testing.T) {
	for _, tc := range []struct {
		cn, suffix string
		amt, rps   bool
	}{
		{"intel.vprodemo.com", "vprodemo.com", true, true},
		{"vprodemo.com", "vprodemo.com", true, true},
		{"intel.vprodemo.com", "intel.vprodemo.com", true, true},
		{"Intel.VProDemo.COM", "vprodemo.com.", true, true},
		{"*.vprodemo.com", "vprodemo.com", true, true},
		{"a.b.vprodemo.com", "b.vprodemo.com", true, true},
		// RPS's last-two-labels rule accepts, the AMT rule does not:
		{"intel.vprodemo.com", "lab.vprodemo.com", false, true},
		{"a.example.co.uk", "b.other.co.uk", false, true},
		// label boundary
		{"evilvprodemo.com", "vprodemo.com", false, false},
		{"intel.vprodemo.com", "demo.com", false, false},
		{"amt.example.com", "vprodemo.com", false, false},
		{"", "vprodemo.com", false, false},
		{"intel.vprodemo.com", "", false, false},
		{"localhost", "localhost", true, true},
	} {
		if got := DomainMatches(tc.cn, tc.suffix); got != tc.amt {
			t.Errorf("DomainMatches(%q, %q) = %v, want %v", tc.cn, tc.suffix, got, tc.amt)
		}
		if got := RPSDomainMatches(tc.cn, tc.suffix); got != tc.rps {
			t.Errorf("RPSDomainMatches(%q, %q) = %v, want %v", tc.cn, tc.suffix, got, tc.rps)
		}
	}
}

func TestMatchRootHash(t *testing.T) {
	root := testpki.NewChain(testpki.ChainOptions{}).Root
	fp := FingerprintsOf(root.Raw)
	other := FingerprintsOf([]byte("something else"))
	colonized := func(h string) string {
		var parts []string
		for i := 0; i < len(h); i += 2 {
			parts = append(parts, h[i:i+2])
		}
		return strings.Join(parts, ":")
	}
	for _, tc := range []struct {
		name   string
		hashes []string
		want   string
	}{
		{"sha256", []string{other.SHA256, fp.SHA256}, fp.SHA256},
		{"sha1 upper case", []string{other.SHA1, strings.ToUpper(fp.SHA1)}, strings.ToUpper(fp.SHA1)},
		{"sha384", []string{fp.SHA384}, fp.SHA384},
		{"colons and spaces", []string{" " + colonized(fp.SHA256) + " "}, " " + colonized(fp.SHA256) + " "},
		{"none", []string{other.SHA1, other.SHA256, other.SHA384}, ""},
		{"sha256 of root given as if sha1 length", []string{fp.SHA256[:40]}, ""},
		{"odd length", []string{fp.SHA256 + "0"}, ""},
		{"empty list", nil, ""},
	} {
		got, ok := MatchRootHash(root.Raw, tc.hashes)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: MatchRootHash = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
	if _, ok := MatchRootHash(nil, []string{FingerprintsOf(nil).SHA256}); ok {
		t.Error("empty root matched")
	}
}

func TestChainDERForActivation(t *testing.T) {
	c := testpki.NewChain(testpki.ChainOptions{Intermediate: true, RootFirst: true})
	r := CheckPFX(c.PFX(pw, false), pw, "example.com", time.Now())
	der := ChainDER(r)
	if len(der) != 3 || string(der[0]) != string(c.Leaf.Raw) || string(der[1]) != string(c.Intermediate.Raw) || string(der[2]) != string(c.Root.Raw) {
		t.Fatal("ChainDER is not leaf → intermediate → root")
	}
	if m, ok := MatchRootHash(der[len(der)-1], []string{r.RootFingerprints.SHA256}); !ok || m != r.RootFingerprints.SHA256 {
		t.Fatal("root fingerprint does not match itself")
	}
	if ChainDER(nil) != nil {
		t.Fatal("ChainDER(nil) not nil")
	}
}
