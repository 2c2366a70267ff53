package firmware

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/hostif"
)

const (
	newMEBx = "N3w-MEBx-pass"
	testPID = "ABCD1234"
	testPPS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
)

func openLegacy(t *testing.T, cfg Config) *Firmware {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "firmware.json")
	}
	if cfg.GenerateKey == nil {
		cfg.GenerateKey = func(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 200), nil }
	}
	f, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func rootSHA256(c *testpki.Chain) []byte {
	s := sha256.Sum256(c.Root.Raw)
	return s[:]
}

// writeSetupBin writes a file with one record per vars list.
func writeSetupBin(t *testing.T, version int, flags uint16, scrambled bool, records ...[]setupbin.Var) string {
	t.Helper()
	f := setupbin.NewFile(version, flags)
	for _, vars := range records {
		f.AddRecord(scrambled, vars...)
	}
	img, err := setupbin.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "setup.bin")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func pkiRecord(t *testing.T, suffix string, root []byte, extra ...setupbin.Var) []setupbin.Var {
	t.Helper()
	h, err := setupbin.CertHashVar(2, root, "amtd provisioning root")
	if err != nil {
		t.Fatal(err)
	}
	return append([]setupbin.Var{
		setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"),
		setupbin.StringVar(setupbin.NewMEBxPassword, newMEBx),
		setupbin.U8Var(setupbin.ManageabilitySelection, 1),
		setupbin.StringVar(setupbin.PKIDNSSuffix, suffix),
		setupbin.U8Var(setupbin.RemoteConfigEnabled, 1),
		h,
		setupbin.U8Var(setupbin.ProvisionHaltActive, 1),
	}, extra...)
}

func decodeFile(t *testing.T, p string) *setupbin.File {
	t.Helper()
	img, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := setupbin.Decode(img)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func lastLegacy(f *Firmware, kind string) (LegacyEvent, bool) {
	evs := f.LegacyEvents()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == kind {
			return evs[i], true
		}
	}
	return LegacyEvent{}, false
}

func TestApplySetupBinPKIConsumesRecordsInOrder(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov.corp.example.com"})
	srv := setupbin.ServerAddressVar(netip.MustParseAddr("192.168.1.10"))
	path := writeSetupBin(t, 3, 0, true,
		pkiRecord(t, "corp.example.com", rootSHA256(chain), srv, setupbin.U16Var(setupbin.ProvisioningServerPort, 9971)),
		pkiRecord(t, "other.example.com", rootSHA256(chain)),
	)
	ctx := context.Background()

	a := openLegacy(t, Config{})
	res, err := a.ApplySetupBin(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Record != 0 || res.Number != 1 || !res.Consumed || !res.Started {
		t.Fatalf("result %+v", res)
	}
	if a.ProvisioningState() != StateIn || a.ControlMode() != ModePre {
		t.Fatalf("state %d mode %d", a.ProvisioningState(), a.ControlMode())
	}
	st := a.LegacyStatus()
	if st.Mode != SetupPKI || !st.Active || st.Epoch == 0 {
		t.Fatalf("legacy status %+v", st)
	}
	if a.PKIDNSSuffix() != "corp.example.com" || !a.MEBxPasswordMatches(newMEBx) || !a.AdminCredentialsSet() {
		t.Fatal("suffix or MEBx password not applied")
	}
	if addr, port, _ := a.ProvisioningServer(); addr != "192.168.1.10" || port != 9971 {
		t.Fatalf("server %s:%d", addr, port)
	}
	found := false
	for _, h := range a.CertHashes() {
		if bytes.Equal(h.Hash, rootSHA256(chain)) {
			found = h.IsActive && !h.IsDefault && h.Handle == 20 && h.Name == "amtd provisioning root"
		}
	}
	if !found {
		t.Fatal("user hash not added as handle 20")
	}
	f := decodeFile(t, path)
	if f.RecordsConsumed != 1 || !f.Records[0].Used || len(f.Records[0].Vars) != 0 || f.Records[1].Used {
		t.Fatalf("file after first device: consumed %d, records %+v", f.RecordsConsumed, f.Records)
	}
	if ev, ok := lastLegacy(a, LegacySetupBinApplied); !ok || !strings.Contains(ev.Detail, "record 1") {
		t.Fatalf("no applied event: %+v", a.LegacyEvents())
	}

	b := openLegacy(t, Config{})
	res, err = b.ApplySetupBin(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Record != 1 || b.PKIDNSSuffix() != "other.example.com" {
		t.Fatalf("second device took record %d suffix %q", res.Record, b.PKIDNSSuffix())
	}
	if f := decodeFile(t, path); f.RecordsConsumed != 2 {
		t.Fatalf("consumed %d", f.RecordsConsumed)
	}
	c := openLegacy(t, Config{})
	if _, err := c.ApplySetupBin(ctx, path); !errors.Is(err, ErrNoSetupRecord) {
		t.Fatalf("third device: %v", err)
	}
	if n, err := SetupBinAvailable(path); err != nil || n != 0 {
		t.Fatalf("available %d %v", n, err)
	}
}

func TestApplySetupBinConcurrentDevicesTakeDistinctRecords(t *testing.T) {
	const n = 6
	var recs [][]setupbin.Var
	for i := range n {
		recs = append(recs, []setupbin.Var{
			setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"),
			setupbin.StringVar(setupbin.NewMEBxPassword, newMEBx),
			setupbin.StringVar(setupbin.Hostname, "host"+string(rune('a'+i))),
		})
	}
	path := writeSetupBin(t, 4, 0, false, recs...)
	if got, _ := SetupBinAvailable(path); got != n {
		t.Fatalf("available %d", got)
	}
	var wg sync.WaitGroup
	hosts := make([]string, n)
	for i := range n {
		fw := openLegacy(t, Config{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := fw.ApplySetupBin(context.Background(), path); err != nil {
				t.Error(err)
				return
			}
			fw.View(func(s *State) { hosts[i] = s.Network.HostName })
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			t.Fatalf("records shared or lost: %v", hosts)
		}
		seen[h] = true
	}
}

func TestApplySetupBinDoNotConsume(t *testing.T) {
	path := writeSetupBin(t, 4, setupbin.FileFlagDoNotConsume, false,
		[]setupbin.Var{setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"), setupbin.StringVar(setupbin.NewMEBxPassword, newMEBx)})
	before, _ := os.ReadFile(path)
	if n, _ := SetupBinAvailable(path); n != -1 {
		t.Fatalf("available %d, want unlimited", n)
	}
	for range 2 {
		fw := openLegacy(t, Config{})
		res, err := fw.ApplySetupBin(context.Background(), path)
		if err != nil || res.Consumed || res.Record != 0 || res.Started {
			t.Fatalf("%+v %v", res, err)
		}
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("a do-not-consume file was changed")
	}
}

func TestApplySetupBinRefusals(t *testing.T) {
	ctx := context.Background()
	base := func(cur string, extra ...setupbin.Var) []setupbin.Var {
		return append([]setupbin.Var{setupbin.StringVar(setupbin.CurrentMEBxPassword, cur), setupbin.StringVar(setupbin.NewMEBxPassword, newMEBx)}, extra...)
	}
	cases := []struct {
		name    string
		version string
		rec     []setupbin.Var
		want    string
	}{
		{"wrong current password", "", base("Wr0ng-pass!"), "does not match"},
		{"manual setup", "", base("admin", setupbin.U8Var(setupbin.ManualSetup, 1)), "2.29"},
		{"weak new password", "", []setupbin.Var{setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"), setupbin.StringVar(setupbin.NewMEBxPassword, "password")}, "password rules"},
		{"default kept", "", []setupbin.Var{setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin")}, "factory default"},
		{"PSK on AMT 16", "", base("admin", setupbin.StringVar(setupbin.PID, testPID), setupbin.StringVar(setupbin.PPS, testPPS)), "has no PSK"},
		{"PID without PPS", "10.0.55", base("admin", setupbin.StringVar(setupbin.PID, testPID)), "must come together"},
		{"manageability", "", base("admin", setupbin.U8Var(setupbin.ManageabilitySelection, 0)), "1.3"},
		{"static without parameters", "", base("admin", setupbin.U8Var(setupbin.DHCP, 1)), "2.19"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeSetupBin(t, 3, 0, false, append(c.rec, setupbin.U8Var(setupbin.ProvisionHaltActive, 1)))
			before, _ := os.ReadFile(path)
			fw := openLegacy(t, Config{Version: c.version})
			snap := fw.Snapshot()
			_, err := fw.ApplySetupBin(ctx, path)
			var ref *SetupBinRefusal
			if !errors.As(err, &ref) || !strings.Contains(ref.Reason, c.want) {
				t.Fatalf("err %v, want a refusal with %q", err, c.want)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Fatal("the file changed")
			}
			if got := fw.Snapshot(); got.ProvisioningState != snap.ProvisioningState || got.MEBxPasswordSHA256 != snap.MEBxPasswordSHA256 {
				t.Fatal("the device changed")
			}
			if ev, ok := lastLegacy(fw, LegacySetupBinRefused); !ok || !strings.Contains(ev.Detail, c.want) {
				t.Fatalf("refusal not logged: %+v", fw.LegacyEvents())
			}
		})
	}
}

func TestApplySetupBinTooManyUserHashesSkipsStart(t *testing.T) {
	var vars []setupbin.Var
	for i := range 4 {
		h := bytes.Repeat([]byte{byte(i + 1)}, 32)
		v, err := setupbin.CertHashVar(2, h, "")
		if err != nil {
			t.Fatal(err)
		}
		vars = append(vars, v)
	}
	rec := append([]setupbin.Var{setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"), setupbin.StringVar(setupbin.NewMEBxPassword, newMEBx),
		setupbin.U8Var(setupbin.ProvisionHaltActive, 1)}, vars...)
	path := writeSetupBin(t, 4, 0, false, rec)
	fw := openLegacy(t, Config{})
	res, err := fw.ApplySetupBin(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if res.Started || fw.ProvisioningState() != StatePre || len(res.Warnings) == 0 {
		t.Fatalf("%+v state %d", res, fw.ProvisioningState())
	}
	for _, h := range fw.CertHashes() {
		if !h.IsDefault {
			t.Fatalf("user hash added: %x", h.Hash)
		}
	}
}

func TestApplySetupBinPSKAndRestart(t *testing.T) {
	path := writeSetupBin(t, 2, 0, false, []setupbin.Var{
		setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"), setupbin.StringVar(setupbin.NewMEBxPassword, newMEBx),
		setupbin.StringVar(setupbin.PID, testPID), setupbin.StringVar(setupbin.PPS, testPPS),
		setupbin.U8Var(setupbin.ProvisionHaltActive, 1),
	})
	cfgPath := filepath.Join(t.TempDir(), "fw.json")
	fw := openLegacy(t, Config{Path: cfgPath, Version: "10.0.55"})
	if _, err := fw.ApplySetupBin(context.Background(), path); err != nil {
		t.Fatal(err)
	}
	st := fw.LegacyStatus()
	pid, pps, ok := fw.PSKCredentials()
	if st.Mode != SetupPSK || !st.Active || !ok || pid != testPID || pps != testPPS {
		t.Fatalf("status %+v psk %q %v", st, pid, ok)
	}
	// a restart keeps the setup and opens a new window (hellos restart)
	again := openLegacy(t, Config{Path: cfgPath})
	st2 := again.LegacyStatus()
	if again.ProvisioningState() != StateIn || st2.Mode != SetupPSK || !st2.Active {
		t.Fatalf("after restart: state %d status %+v", again.ProvisioningState(), st2)
	}
}

func TestStartConfigurationExWindowAndCommit(t *testing.T) {
	fw := openLegacy(t, Config{DNSSuffix: "corp.example.com"})
	var mu sync.Mutex
	var events []Event
	fw.OnEvent(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() })
	if rv := fw.SetZeroTouchEnabled(false); rv != 0 {
		t.Fatal(rv)
	}
	if rv := fw.StartConfigurationEx(false); rv != hostif.StatusNotPermitted {
		t.Fatalf("start with nothing to configure: %d", rv)
	}
	fw.SetZeroTouchEnabled(true)
	if rv := fw.StartConfigurationEx(false); rv != 0 {
		t.Fatalf("start: %d", rv)
	}
	st := fw.LegacyStatus()
	if !st.Active || st.Mode != SetupPKI {
		t.Fatalf("%+v", st)
	}
	// the window closes at the end of the schedule, the state stays IN
	if fw.CloseSetupWindow(st.Epoch + 1) {
		t.Fatal("closed a window of another epoch")
	}
	if !fw.CloseSetupWindow(st.Epoch) || fw.LegacyStatus().Active || fw.ProvisioningState() != StateIn {
		t.Fatal("window not closed")
	}
	// StartConfigurationEx re-opens it with a new epoch
	if rv := fw.StartConfigurationEx(false); rv != 0 {
		t.Fatal(rv)
	}
	st2 := fw.LegacyStatus()
	if !st2.Active || st2.Epoch <= st.Epoch {
		t.Fatalf("not re-opened: %+v", st2)
	}
	if rv, _, _ := fw.StartConfigurationHBased(2, make([]byte, 32)); rv != hostif.StatusInvalidAMTMode {
		t.Fatalf("host-based setup during legacy setup: %d", rv)
	}
	// OTP readable in IN only
	if rv := fw.SetProvisioningServerOTP([]byte("short")); rv != hostif.StatusInvalidParameter {
		t.Fatal("short OTP accepted")
	}
	fw.SetProvisioningServerOTP([]byte("0123456789abcdef"))
	if otp, ok := fw.ProvisioningServerOTP(); !ok || string(otp) != "0123456789abcdef" {
		t.Fatal("OTP not readable in IN")
	}
	// commit: POST, ACM, setup over
	if rv := fw.SetMEBxPassword(newMEBx); rv != 0 {
		t.Fatal(rv)
	}
	if rv := fw.SetAdminACL("admin", hex.EncodeToString(make([]byte, 16))); rv != 0 {
		t.Fatal(rv)
	}
	if rv := fw.CommitChanges(); rv != 0 {
		t.Fatal(rv)
	}
	if fw.ProvisioningState() != StatePost || fw.ControlMode() != ModeACM || fw.LegacyStatus().Mode != SetupNone || fw.LegacyStatus().Active {
		t.Fatal("commit did not end setup")
	}
	if _, ok := fw.ProvisioningServerOTP(); ok {
		t.Fatal("OTP readable after commit")
	}
	if rv := fw.StartConfigurationEx(false); rv != hostif.StatusInvalidAMTMode {
		t.Fatalf("start after commit: %d", rv)
	}
	if _, ok := lastLegacy(fw, LegacyCommitted); !ok {
		t.Fatal("commit not logged")
	}
	mu.Lock()
	defer mu.Unlock()
	n := 0
	for _, e := range events {
		if e == EventLegacySetupChanged {
			n++
		}
	}
	if n < 4 { // start, close, restart, commit
		t.Fatalf("%d setup events", n)
	}
}

func TestStopConfigurationEndsLegacySetup(t *testing.T) {
	fw := openLegacy(t, Config{})
	fw.StartConfigurationEx(false)
	if rv := fw.StopConfiguration(); rv != 0 {
		t.Fatal(rv)
	}
	if fw.ProvisioningState() != StatePre || fw.LegacyStatus().Mode != SetupNone {
		t.Fatal("not stopped")
	}
	if _, ok := lastLegacy(fw, LegacyStopped); !ok {
		t.Fatal("not logged")
	}
}

func TestAddCustomizedCertificateHash(t *testing.T) {
	fw := openLegacy(t, Config{})
	for i := range MaxUserHashes {
		h, rv := fw.AddCustomizedCertificateHash(2, bytes.Repeat([]byte{byte(i + 1)}, 32), "")
		if rv != 0 || h != uint32(20+i) {
			t.Fatalf("add %d: handle %d status %d", i, h, rv)
		}
	}
	if _, rv := fw.AddCustomizedCertificateHash(2, bytes.Repeat([]byte{9}, 32), ""); rv != PTMaxLimitReached {
		t.Fatalf("fourth: %d", rv)
	}
	if _, rv := fw.AddCustomizedCertificateHash(2, make([]byte, 20), ""); rv != hostif.StatusInvalidParameter {
		t.Fatalf("size mismatch: %d", rv)
	}
}

func TestVerifySetupClientChain(t *testing.T) {
	good := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov.corp.example.com", Intermediate: true})
	other := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov.corp.example.com"})
	fw := openLegacy(t, Config{PKIDNSSuffix: "corp.example.com", TrustHashes: []string{hex.EncodeToString(rootSHA256(good))}})
	raw := func(cs ...*x509.Certificate) [][]byte {
		var out [][]byte
		for _, c := range cs {
			out = append(out, c.Raw)
		}
		return out
	}
	sameRoot := testpki.NewChain
	if err := fw.VerifySetupClientChain(raw(good.Certs...)); err != nil {
		t.Fatalf("good chain refused: %v", err)
	}
	ouChain := sameRoot(testpki.ChainOptions{LeafCN: "x.corp.example.com", NoAMTOID: true, AMTOU: true})
	noPurpose := sameRoot(testpki.ChainOptions{LeafCN: "x.corp.example.com", NoAMTOID: true})
	wrongCN := sameRoot(testpki.ChainOptions{LeafCN: "prov.evil.example.net"})
	expired := sameRoot(testpki.ChainOptions{LeafCN: "prov.corp.example.com", NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	trust := func(c *testpki.Chain) *Firmware {
		return openLegacy(t, Config{PKIDNSSuffix: "corp.example.com", TrustHashes: []string{hex.EncodeToString(rootSHA256(c))}})
	}
	cases := []struct {
		name  string
		fw    *Firmware
		chain [][]byte
		check string
	}{
		{"no certificate", fw, nil, "certificate"},
		{"root missing", fw, raw(good.Leaf, good.Intermediate), "root"},
		{"root not in table", fw, raw(other.Certs...), "trust"},
		{"broken order", fw, raw(good.Leaf, good.Root), "signature"},
		{"no OID or OU", trust(noPurpose), raw(noPurpose.Certs...), "purpose"},
		{"CN domain mismatch", trust(wrongCN), raw(wrongCN.Certs...), "domain"},
		{"expired", trust(expired), raw(expired.Certs...), "validity"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.fw.VerifySetupClientChain(c.chain)
			var ce *SetupChainError
			if !errors.As(err, &ce) || ce.Check != c.check {
				t.Fatalf("err %v, want check %q", err, c.check)
			}
			if ev, ok := lastLegacy(c.fw, LegacySessionRefused); !ok || !strings.Contains(ev.Detail, "("+c.check+")") {
				t.Fatalf("refusal not logged: %+v", c.fw.LegacyEvents())
			}
		})
	}
	if err := trust(ouChain).VerifySetupClientChain(raw(ouChain.Certs...)); err != nil {
		t.Fatalf("OU instead of the OID refused: %v", err)
	}
	// DHCP suffix when no PKI suffix is set; a disabled hash no longer trusts
	dh := openLegacy(t, Config{DNSSuffix: "corp.example.com", TrustHashes: []string{hex.EncodeToString(rootSHA256(good))}})
	if err := dh.VerifySetupClientChain(raw(good.Certs...)); err != nil {
		t.Fatalf("DHCP suffix: %v", err)
	}
	dh.Update(func(s *State) error {
		for i := range s.CertHashes {
			s.CertHashes[i].Active = false
		}
		return nil
	})
	var ce *SetupChainError
	if err := dh.VerifySetupClientChain(raw(good.Certs...)); !errors.As(err, &ce) || ce.Check != "trust" {
		t.Fatalf("inactive hash: %v", err)
	}
}

// FuzzApplySetupBin applies arbitrary files as setup.bin: never a panic;
// an applied record leaves a file that still decodes, and a refused or
// unreadable one leaves the file as it was.
func FuzzApplySetupBin(f *testing.F) {
	seed := func(version int, flags uint16, scrambled bool, vars ...setupbin.Var) []byte {
		file := setupbin.NewFile(version, flags)
		file.AddRecord(scrambled, vars...)
		img, err := setupbin.Encode(file)
		if err != nil {
			f.Fatal(err)
		}
		return img
	}
	cur := setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin")
	pw := setupbin.StringVar(setupbin.NewMEBxPassword, newMEBx)
	f.Add(seed(3, 0, true, cur, pw, setupbin.StringVar(setupbin.PKIDNSSuffix, "corp.example.com"), setupbin.U8Var(setupbin.ProvisionHaltActive, 1)))
	f.Add(seed(4, 1, false, cur, pw, setupbin.U8Var(setupbin.DHCP, 1), setupbin.Var{ID: setupbin.StaticIPv4, Value: make([]byte, 20)}))
	f.Add(seed(2, 0, false, cur, pw, setupbin.StringVar(setupbin.PID, testPID), setupbin.StringVar(setupbin.PPS, testPPS)))
	f.Add(seed(4, 0, false, cur, pw, setupbin.U8Var(setupbin.UserDefinedCertConfig, 2), setupbin.U8Var(setupbin.Redirection, 7), setupbin.U8Var(setupbin.UserConsent, 0xff)))
	f.Add([]byte("not a setup.bin"))
	dir := f.TempDir()
	keys := func(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 200), nil }
	f.Fuzz(func(t *testing.T, img []byte) {
		fw, err := Open(Config{Version: "10.0.55", GenerateKey: keys})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "setup.bin")
		if err := os.WriteFile(path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = fw.ApplySetupBin(context.Background(), path)
		after, rerr := os.ReadFile(path)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			if !bytes.Equal(after, img) {
				t.Fatalf("the file changed although the record was not applied: %v", err)
			}
			return
		}
		if _, err := setupbin.Decode(after); err != nil {
			t.Fatalf("the rewritten file does not decode: %v", err)
		}
	})
}
