package firmware

import (
	"crypto/md5"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/amtd-project/amtd/internal/amthashes"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/hostif"
)

func ha1(pw, realm string) string {
	s := md5.Sum([]byte("admin:" + realm + ":" + pw))
	return hex.EncodeToString(s[:])
}

func TestFactoryDefaults(t *testing.T) {
	f, err := Open(Config{UUID: "4c4c4544-0038-4b10-8052-b4c04f564433", DNSSuffix: "corp.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	u := f.UUID()
	if hex.EncodeToString(u[:]) != "44454c4c3800104b8052b4c04f564433" {
		t.Fatalf("SMBIOS UUID bytes %x", u)
	}
	if !ValidRealm(f.Realm()) {
		t.Fatalf("realm %q", f.Realm())
	}
	if f.ControlMode() != 0 || f.ProvisioningState() != 0 {
		t.Fatal("not pre-provisioning")
	}
	user, pw := f.LocalSystemAccount()
	if user != "$$OsAdmin" || len(pw) != 16 {
		t.Fatalf("LSA %q/%q", user, pw)
	}
	_, entries := f.CodeVersions()
	got := map[string]string{}
	for _, e := range entries {
		got[e.Description] = e.Version
	}
	if got["AMT"] != "16.1.25" || got["Build Number"] != "2050" || got["Sku"] != "16392" {
		t.Fatalf("versions %v", got)
	}
	if f.WatchdogFlags() != 0x82 {
		t.Fatalf("watchdog flags %#x", f.WatchdogFlags())
	}
	if f.PKIDNSSuffix() != "corp.example.com" {
		t.Fatalf("PKI suffix %q", f.PKIDNSSuffix())
	}
	// hash table: defaults 0–19 then 23+, active
	hashes := f.CertHashes()
	active := 0
	for _, d := range amthashes.Defaults() {
		if d.Active {
			active++
		}
	}
	if len(hashes) != active {
		t.Fatalf("%d hashes, want %d", len(hashes), active)
	}
	for i, h := range hashes {
		want := uint32(i)
		if i >= 20 {
			want = uint32(i + 3)
		}
		if h.Handle != want || !h.IsDefault || !h.IsActive || h.Algorithm != 2 || len(h.Hash) != 32 {
			t.Fatalf("entry %d: %+v", i, h)
		}
	}
	if _, ok := f.LANInterface(0); !ok {
		t.Fatal("no wired interface")
	}
	if _, ok := f.LANInterface(1); !ok {
		t.Fatal("no wireless interface")
	}
}

func TestUserHashesAndVersionOverride(t *testing.T) {
	tru := true
	f, err := Open(Config{Version: "19.0.5", Build: "1234", TLSEnforced: &tru, TrustHashes: []string{
		"AA" + strings.Repeat("0", 62), strings.Repeat("1", 40), strings.Repeat("2", 96)}})
	if err != nil {
		t.Fatal(err)
	}
	var users []hostif.CertHashEntry
	for _, h := range f.CertHashes() {
		if !h.IsDefault {
			users = append(users, h)
		}
	}
	if len(users) != 3 || users[0].Handle != 20 || users[2].Handle != 22 || users[1].Algorithm != 1 || users[2].Algorithm != 3 {
		t.Fatalf("user hashes %+v", users)
	}
	if f.WatchdogFlags()&0x40 == 0 {
		t.Fatal("TLS enforced flag missing")
	}
	if _, err := Open(Config{TrustHashes: []string{"a", "b", "c", "d"}}); err == nil {
		t.Fatal("4 user hashes accepted")
	}
	if _, err := Open(Config{TrustHashes: []string{"abcd"}}); err == nil {
		t.Fatal("short hash accepted")
	}
}

func TestPersistenceAndStateRules(t *testing.T) {
	dir := t.TempDir()
	path := DevicePath(dir, "8c4c4544-0038-4b10-8052-b4c04f564433")
	f, err := Open(Config{Path: path, UUID: "8c4c4544-0038-4b10-8052-b4c04f564433", DNSSuffix: "a.example"})
	if err != nil {
		t.Fatal(err)
	}
	realm := f.Realm()
	if rv := f.Setup(2, ha1("P@ssw0rd", realm)); rv != SetupSuccess {
		t.Fatalf("Setup %d", rv)
	}
	// GetControlMode reflects WS-MAN activation immediately
	if f.ControlMode() != ModeCCM || f.ProvisioningState() != StatePost {
		t.Fatal("activation not visible")
	}
	// readable, indented JSON, no temp files left
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\n  \"uuid\": \"8c4c4544-0038-4b10-8052-b4c04f564433\"") {
		t.Fatalf("not indented JSON:\n%.200s", data)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil || st.ControlMode != 1 || st.Admin.HA1 != ha1("P@ssw0rd", realm) {
		t.Fatalf("persisted state: %v %+v", err, st.Admin)
	}
	if strings.Contains(string(data), "P@ssw0rd") {
		t.Fatal("password in the state file")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("stray files: %v", entries)
	}
	_, oldLSA := f.LocalSystemAccount()

	// restart: same device, new LSA password (per boot)
	g, err := Open(Config{Path: path, DNSSuffix: "b.example"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Realm() != realm || g.ControlMode() != ModeCCM || g.UUIDString() != "8c4c4544-0038-4b10-8052-b4c04f564433" {
		t.Fatal("state lost across restart")
	}
	if _, pw := g.LocalSystemAccount(); pw == oldLSA {
		t.Fatal("LSA password survived a reboot")
	}
	if g.PKIDNSSuffix() != "b.example" {
		t.Fatal("DNS suffix override ignored")
	}
	if c, ok := g.LookupUser("admin"); !ok || hex.EncodeToString(c.HA1[:]) != ha1("P@ssw0rd", realm) {
		t.Fatal("admin credential lost")
	}
	if _, ok := g.LookupUser(LSAUsername); ok {
		t.Fatal("LSA valid after activation")
	}
	// PTHI Unprovision in CCM
	if st := g.Unprovision(); st != hostif.StatusSuccess || g.ControlMode() != ModePre {
		t.Fatalf("PTHI unprovision: %d", st)
	}
	if st := g.Unprovision(); st != hostif.StatusInvalidAMTMode {
		t.Fatalf("PTHI unprovision in pre-provisioning: %d", st)
	}
	if _, ok := g.LookupUser("admin"); ok {
		t.Fatal("admin survives unprovision")
	}
	if _, ok := g.LookupUser(LSAUsername); !ok {
		t.Fatal("LSA not back after unprovision")
	}
}

func testKeys() func(int) (*rsa.PrivateKey, error) {
	return func(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 50), nil }
}

func TestStartStopConfiguration(t *testing.T) {
	f, err := Open(Config{GenerateKey: testKeys()})
	if err != nil {
		t.Fatal(err)
	}
	hash := make([]byte, 32)
	st, alg, amtHash := f.StartConfigurationHBased(2, hash)
	if st != hostif.StatusSuccess || alg != 2 || len(amtHash) != 32 || f.ProvisioningState() != StateIn {
		t.Fatalf("start: %d %d %d", st, alg, len(amtHash))
	}
	self, _ := f.SelfCertificateHash()
	if hex.EncodeToString(self) != hex.EncodeToString(amtHash) {
		t.Fatal("returned hash is not the device certificate's")
	}
	if rv := f.CommitChanges(); rv != PTDataMissing {
		t.Fatalf("commit without password: %d", rv)
	}
	if rv := f.SetAdminACL("admin", strings.Repeat("ab", 16)); rv != PTSuccess {
		t.Fatalf("SetAdminACL %d", rv)
	}
	if rv := f.CommitChanges(); rv != PTDataMissing {
		t.Fatalf("commit without MEBx password: %d", rv)
	}
	if rv := f.SetMEBxPassword("Mebx-P@ss1"); rv != PTSuccess {
		t.Fatalf("SetMEBxPassword %d", rv)
	}
	if rv := f.CommitChanges(); rv != PTSuccess || f.ControlMode() != ModeACM || f.ProvisioningState() != StatePost {
		t.Fatalf("commit: %d mode %d", rv, f.ControlMode())
	}
	g, _ := Open(Config{GenerateKey: testKeys()})
	g.StartConfigurationHBased(3, make([]byte, 48))
	if st := g.StopConfiguration(); st != hostif.StatusSuccess || g.ProvisioningState() != StatePre {
		t.Fatal("stop configuration")
	}
	if st, _, _ := g.StartConfigurationHBased(1, make([]byte, 20)); st != hostif.StatusInvalidParameter {
		t.Fatalf("SHA-1 accepted: %d", st)
	}
}

func TestDomainMatches(t *testing.T) {
	for _, tc := range []struct {
		cn, suffix string
		ok         bool
	}{
		{"prov.corp.com", "corp.com", true},
		{"corp.com", "corp.com", true},
		{"*.corp.com", "corp.com", true},
		{"PROV.Corp.Com", "corp.com.", true},
		{"badcorp.com", "corp.com", false},
		{"corp.com", "prov.corp.com", false},
		{"x.corp.com", "", false},
	} {
		if got := DomainMatches(tc.cn, tc.suffix); got != tc.ok {
			t.Errorf("DomainMatches(%q, %q) = %v", tc.cn, tc.suffix, got)
		}
	}
}

func TestStrongPassword(t *testing.T) {
	for pw, ok := range map[string]bool{"P@ssw0rd": true, "password": false, "P@ss:0rd": false, "Sh0rt!": false, "Abcdefg1!Abcdefg1!Abcdefg1!Abcdefg1!": false} {
		if StrongPassword(pw) != ok {
			t.Errorf("StrongPassword(%q) != %v", pw, ok)
		}
	}
}

func TestConcurrentUpdates(t *testing.T) {
	f, err := Open(Config{Path: filepath.Join(t.TempDir(), "fw.json")})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_ = f.Update(func(s *State) error { s.ClockOffsetSeconds++; return nil })
				f.ControlMode()
				f.CertHashes()
				f.ConfigurationNonce()
				_ = i
			}
		}()
	}
	wg.Wait()
	if s := f.Snapshot(); s.ClockOffsetSeconds != 160 {
		t.Fatalf("lost updates: %d", s.ClockOffsetSeconds)
	}
}
