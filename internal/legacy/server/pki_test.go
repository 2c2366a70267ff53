package server_test

import (
	"bytes"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/legacy/server"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/digest"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/wsman"
)

const (
	uuidA = "939b524b-13d4-1d18-e487-1c697a6b7a2b"
	uuidB = "d2ffc23e-9dd1-412d-860a-54b2039b72ff"
)

func ptr[T any](v T) *T { return &v }

// pkiWorld is amtd's configuration for PKI tests: a domain for
// corp.example.com (chain with an intermediate) and an ACM profile with TLS.
type pkiWorld struct {
	st    store.Store
	sec   secrets.Store
	chain *testpki.Chain
	root  string // hex SHA-256 of the root
}

func newPKIWorld(t *testing.T) *pkiWorld {
	t.Helper()
	st, sec := legacytest.Open(t)
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com", Intermediate: true})
	legacytest.AddDomain(t, st, sec, "", "corp", "corp.example.com", chain)
	if err := st.CreateProfile(t.Context(), &store.Profile{Name: "acm", Activation: "acmactivate",
		GenerateRandomPassword: true, GenerateRandomMEBxPassword: true, DHCPEnabled: true, Tags: []string{"legacy", "floor2"},
		TLSMode: ptr(2), UserConsent: "KVM", KVMEnabled: true}); err != nil {
		t.Fatal(err)
	}
	return &pkiWorld{st: st, sec: sec, chain: chain, root: legacytest.RootSHA256(chain)}
}

func (w *pkiWorld) allow(t *testing.T, devs ...store.LegacyDevice) {
	t.Helper()
	if err := w.st.PutLegacyDevices(t.Context(), devs); err != nil {
		t.Fatal(err)
	}
}

func TestPKIRemoteConfiguration(t *testing.T) {
	w := newPKIWorld(t)
	fw := legacytest.NewFirmware(t, legacytest.FirmwareOptions{UUID: uuidA, PKIDNSSuffix: "corp.example.com",
		TrustHashes: []string{w.root}})
	dev := legacytest.NewSetupDevice(t, fw, legacytest.DeviceOptions{AnySetupPassword: true})
	w.allow(t, store.LegacyDevice{GUID: uuidA, Hostname: "pc-001", DNSSuffix: "corp.example.com", ProfileName: "acm"})
	e := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port})
	// The device's clock is ten minutes late.
	if err := fw.Update(func(s *firmware.State) error { s.ClockOffsetSeconds = -600; return nil }); err != nil {
		t.Fatal(err)
	}

	e.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 0, w.root))
	ev := e.next()
	if ev.Outcome != server.OutcomeProvisioned {
		t.Fatalf("outcome %s: %s\nlog:\n%s", ev.Outcome, ev.Detail, e.log(uuidA))
	}
	if r := dev.Refusals(); len(r) != 0 {
		t.Fatalf("the device refused sessions: %v", r)
	}

	// The device: admin control mode, out of setup mode, with the
	// credentials amtd stored, the names of the allow-list, TLS on with the
	// certificate amtd pins.
	if fw.ControlMode() != firmware.ModeACM || fw.ProvisioningState() != firmware.StatePost {
		t.Fatalf("device mode %d state %d", fw.ControlMode(), fw.ProvisioningState())
	}
	ctx := t.Context()
	creds, err := devcreds.Load(ctx, w.sec, uuidA)
	if err != nil {
		t.Fatal(err)
	}
	amtPW, mebxPW := creds.Current(devcreds.AMT), creds.Current(devcreds.MEBx)
	if amtPW == "" || mebxPW == "" || creds.Pending(devcreds.AMT) != "" || creds.Pending(devcreds.MEBx) != "" {
		t.Fatalf("credentials not committed: %v", keys(creds))
	}
	admin, ok := fw.LookupUser("admin")
	if !ok || admin.HA1 != digest.HA1("admin", fw.Realm(), amtPW) {
		t.Fatal("the device's admin password is not the stored one")
	}
	if !fw.MEBxPasswordMatches(mebxPW) {
		t.Fatal("the device's MEBx password is not the stored one")
	}
	var host, domain string
	fw.View(func(s *firmware.State) { host, domain = s.Network.HostName, s.Network.DomainName })
	if off := fw.Snapshot().ClockOffsetSeconds; off < -10 || off > 10 {
		t.Fatalf("device clock still %d s off", off)
	}
	if host != "pc-001" || domain != "corp.example.com" {
		t.Fatalf("device names %q %q", host, domain)
	}
	pinned, _ := base64.StdEncoding.DecodeString(creds.Current(devcreds.TLSCert))
	if tc := fw.TLSServer(); tc.Cert == nil || !bytes.Equal(tc.Cert.Certificate[0], pinned) || !tc.Remote.Enabled {
		t.Fatal("the device's TLS certificate is not the one amtd stored")
	}

	// The device list: like any other device.
	d, err := w.st.GetDevice(ctx, uuidA)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "pc-001" || d.DNSSuffix != "corp.example.com" || d.ProfileName != "acm" ||
		!slices.Equal(d.Tags, []string{"legacy", "floor2"}) || d.DeviceInfo == nil || d.DeviceInfo.CurrentMode != "2" ||
		d.DeviceInfo.IPAddress != "127.0.0.1" || d.DeviceInfo.FWVersion != firmware.DefaultVersion ||
		d.DeviceInfo.ActivatedAt == nil || d.DeviceInfo.LastProvisionedAt == nil {
		t.Fatalf("device record %+v %+v", d, d.DeviceInfo)
	}
	if tls, _ := d.DeviceInfo.Status["TLS"].(map[string]any); tls["Result"] != "Success" {
		t.Fatalf("device status %v", d.DeviceInfo.Status)
	}
	if n, _ := w.st.CountDevices(ctx, "", store.DeviceFilter{}); n != 1 {
		t.Fatalf("%d devices listed", n)
	}

	// The provisioning log, step by step.
	steps := e.steps(uuidA)
	want := []string{"legacy.hello:info", "legacy.certificate:ok", "legacy.connect:info", "legacy.auth:ok",
		"legacy.state:ok", "legacy.mebx:ok", "legacy.password:ok", "legacy.clock:ok", "legacy.hostname:ok", "legacy.tls:ok",
		"legacy.commit:ok", "device.record:ok", "legacy.configure:info", "unconfigure:ok", "tls:ok", "device.record:ok"}
	if !subsequence(steps, want) {
		t.Fatalf("provisioning log %v lacks %v", steps, want)
	}
	full := e.log(uuidA) + e.logs.String()
	for _, secret := range []string{amtPW, mebxPW, "pfx-pass"} {
		if strings.Contains(full, secret) {
			t.Fatal("a secret appears in the logs")
		}
	}
	if !strings.Contains(e.log(uuidA), "device TLS certificate SHA-256") {
		t.Fatal("the device's setup certificate is not recorded")
	}
	if l := e.events(); len(l) != 1 || l[0].Outcome != server.OutcomeProvisioned {
		t.Fatalf("hello records %+v", l)
	}

	// A device in admin control mode sends no more hellos; one that still
	// does (e.g. a replay) finds the device out of setup mode and fails
	// without touching the stored credentials.
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 1, w.root))
	ev = e.next()
	if ev.Outcome != server.OutcomeFailed {
		t.Fatalf("second hello: %s %s", ev.Outcome, ev.Detail)
	}
	again, _ := devcreds.Load(ctx, w.sec, uuidA)
	if again.Current(devcreds.AMT) != amtPW {
		t.Fatal("the stored AMT password changed")
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// subsequence reports whether want appears in got in order.
func subsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// Devices that do not fit are refused with the reason recorded: unknown
// UUID (no connection), hashes that match no certificate (no connection), a
// domain the certificate's CN does not fit (amtd refuses), and a device whose
// own PKI DNS suffix does not fit the CN (the device refuses the TLS
// session; amtd records why).
func TestPKIRefusals(t *testing.T) {
	w := newPKIWorld(t)
	fw := legacytest.NewFirmware(t, legacytest.FirmwareOptions{UUID: uuidA, PKIDNSSuffix: "lab.example.com",
		TrustHashes: []string{w.root}})
	dev := legacytest.NewSetupDevice(t, fw, legacytest.DeviceOptions{AnySetupPassword: true})
	const uuidC = "11111111-2222-3333-4444-555555555555"
	w.allow(t,
		store.LegacyDevice{GUID: uuidA, ProfileName: "acm"},                               // domain unknown to amtd
		store.LegacyDevice{GUID: uuidB, ProfileName: "acm", DNSSuffix: "lab.example.com"}, // CN does not fit
		store.LegacyDevice{GUID: uuidC, ProfileName: "acm"},
	)
	e := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port})

	// Unknown UUID.
	e.send("127.0.0.1", legacytest.PKIHello(t, "aaaaaaaa-0000-0000-0000-000000000001", 0, w.root))
	if ev := e.next(); ev.Outcome != server.OutcomeUnknownUUID {
		t.Fatalf("unknown UUID: %+v", ev)
	}
	// The device's hashes do not include amtd's root.
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidC, 0))
	ev := e.next()
	if ev.Outcome != server.OutcomeRefused || !strings.Contains(ev.Detail, "match none") {
		t.Fatalf("hashes: %+v", ev)
	}
	if !strings.Contains(e.log(uuidC), "legacy.refused error no matching provisioning certificate") {
		t.Fatalf("log:\n%s", e.log(uuidC))
	}
	// amtd knows the device's domain and no certificate fits it.
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidB, 0, w.root))
	ev = e.next()
	if ev.Outcome != server.OutcomeRefused || !strings.Contains(ev.Detail, "does not fit the device's domain lab.example.com") {
		t.Fatalf("domain: %+v", ev)
	}
	if n := dev.SetupSessions() + len(dev.Refusals()); n != 0 {
		t.Fatalf("the device was contacted %d times for refused hellos", n)
	}
	// The device's PKI DNS suffix does not fit: it refuses the session.
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 0, w.root))
	ev = e.next()
	if ev.Outcome != server.OutcomeFailed || !strings.Contains(ev.Detail, "refused the TLS session") {
		t.Fatalf("device suffix: %+v", ev)
	}
	if r := dev.Refusals(); len(r) != 1 || !strings.Contains(r[0], `does not fit the PKI DNS suffix "lab.example.com"`) {
		t.Fatalf("device refusals %v", r)
	}
	if !strings.Contains(e.log(uuidA), "legacy.setup error the device stays in setup mode") {
		t.Fatalf("log:\n%s", e.log(uuidA))
	}
	if fw.ProvisioningState() != firmware.StateIn {
		t.Fatal("the refused device left setup mode")
	}
	if n, _ := w.st.CountDevices(t.Context(), "", store.DeviceFilter{}); n != 0 {
		t.Fatalf("%d device records for refused devices", n)
	}
}

// The credential list of legacy.md §7.2: refused credentials are skipped up
// to three; the operator's setup password works.
func TestPKICredentialList(t *testing.T) {
	w := newPKIWorld(t)
	// A static MEBx password on a second profile: tried after the empty one.
	fw := legacytest.NewFirmware(t, legacytest.FirmwareOptions{UUID: uuidA, PKIDNSSuffix: "corp.example.com", TrustHashes: []string{w.root}})
	dev := legacytest.NewSetupDevice(t, fw, legacytest.DeviceOptions{SetupPassword: "Setup-Pa55!"})
	w.allow(t, store.LegacyDevice{GUID: uuidA, ProfileName: "acm", Hostname: "pc-1", DNSSuffix: "corp.example.com"})

	// Only wrong passwords: stop after three refusals.
	e := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port, setupPasswords: []string{"Wrong-1!a", "Wrong-2!a", "Setup-Pa55!"}})
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 0, w.root))
	ev := e.next()
	if ev.Outcome != server.OutcomeFailed || !strings.Contains(ev.Detail, "refused 3 credentials") {
		t.Fatalf("three wrong: %+v", ev)
	}
	log := e.log(uuidA)
	for _, l := range []string{"the empty password refused", "operator setup password 1 refused", "operator setup password 2 refused"} {
		if !strings.Contains(log, l) {
			t.Fatalf("log lacks %q:\n%s", l, log)
		}
	}
	if strings.Contains(log+e.logs.String(), "Wrong-1!a") {
		t.Fatal("a tried password was logged")
	}
	e.stop()

	// The right one within three.
	e2 := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port, setupPasswords: []string{"Wrong-1!a", "Setup-Pa55!"}})
	e2.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 1, w.root))
	ev = e2.next()
	if ev.Outcome != server.OutcomeProvisioned {
		t.Fatalf("outcome %s: %s\n%s", ev.Outcome, ev.Detail, e2.log(uuidA))
	}
	if !strings.Contains(e2.log(uuidA), "authenticated as admin with operator setup password 2") {
		t.Fatalf("log:\n%s", e2.log(uuidA))
	}
}

// Durable before the device: whatever happens at CommitChanges, the
// passwords the device may hold are in amtd's secret store.
func TestPKICommitFailures(t *testing.T) {
	w := newPKIWorld(t)
	fw := legacytest.NewFirmware(t, legacytest.FirmwareOptions{UUID: uuidA, PKIDNSSuffix: "corp.example.com", TrustHashes: []string{w.root}})
	dev := legacytest.NewSetupDevice(t, fw, legacytest.DeviceOptions{AnySetupPassword: true})
	w.allow(t, store.LegacyDevice{GUID: uuidA, ProfileName: "acm", Hostname: "pc-1", DNSSuffix: "corp.example.com"})
	e := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port, timing: server.Timing{Cooldown: time.Nanosecond, CallTimeout: 5 * time.Second}})
	ctx := t.Context()

	// The device refuses to commit (nothing happens on the device).
	dev.Engine().AddFault(wsman.FaultRule{Class: "AMT_SetupAndConfigurationService", Op: "CommitChanges",
		Kind: wsman.FaultReturnValue, ReturnValue: 1, Count: 1})
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 0, w.root))
	ev := e.next()
	if ev.Outcome != server.OutcomeFailed || !strings.Contains(ev.Detail, "CommitChanges") {
		t.Fatalf("refused commit: %+v", ev)
	}
	creds, _ := devcreds.Load(ctx, w.sec, uuidA)
	first := creds.Pending(devcreds.AMT)
	if first == "" || creds.Pending(devcreds.MEBx) == "" || creds.Current(devcreds.AMT) != "" || fw.ProvisioningState() != firmware.StateIn {
		t.Fatalf("after a refused commit: creds %v, state %d", keys(creds), fw.ProvisioningState())
	}
	if n, _ := w.st.CountDevices(ctx, "", store.DeviceFilter{}); n != 0 {
		t.Fatal("a device record for a device still in setup mode")
	}

	// The next hello: the device acts on CommitChanges but the answer is lost.
	dev.Engine().AddFault(wsman.FaultRule{Class: "AMT_SetupAndConfigurationService", Op: "CommitChanges",
		Kind: wsman.FaultResetAfter, Count: 1})
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 1, w.root))
	ev = e.next()
	if ev.Outcome != server.OutcomeFailed {
		t.Fatalf("lost commit answer: %+v", ev)
	}
	if !strings.Contains(e.log(uuidA), "authenticated as admin with the device's stored AMT password") {
		t.Fatalf("the stored password was not tried first:\n%s", e.log(uuidA))
	}
	if fw.ControlMode() != firmware.ModeACM {
		t.Fatal("the device did not act on CommitChanges")
	}
	admin, _ := fw.LookupUser("admin")
	creds, _ = devcreds.Load(ctx, w.sec, uuidA)
	held := false
	for _, pw := range creds.Candidates(devcreds.AMT) {
		held = held || admin.HA1 == digest.HA1("admin", fw.Realm(), pw)
	}
	if !held {
		t.Fatalf("the password the device holds is not in the store (%v)", keys(creds))
	}
}

// Set up, but the profile's configuration fails: the device is in admin
// control mode with stored credentials, listed, with the failure recorded.
func TestPKIConfigurationFailure(t *testing.T) {
	w := newPKIWorld(t)
	if err := w.st.CreateProfile(t.Context(), &store.Profile{Name: "badtls", Activation: "acmactivate", GenerateRandomPassword: true,
		GenerateRandomMEBxPassword: true, DHCPEnabled: true, TLSMode: ptr(7), Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	fw := legacytest.NewFirmware(t, legacytest.FirmwareOptions{UUID: uuidA, PKIDNSSuffix: "corp.example.com", TrustHashes: []string{w.root}})
	dev := legacytest.NewSetupDevice(t, fw, legacytest.DeviceOptions{AnySetupPassword: true})
	w.allow(t, store.LegacyDevice{GUID: uuidA, ProfileName: "badtls", DNSSuffix: "corp.example.com"})
	e := newEnvOn(t, w.st, w.sec, envOptions{devicePort: dev.Addr().Port})
	e.send("127.0.0.1", legacytest.PKIHello(t, uuidA, 0, w.root))
	ev := e.next()
	if ev.Outcome != server.OutcomeConfigFailed || !strings.Contains(ev.Detail, "invalid tlsMode 7") {
		t.Fatalf("outcome %+v\n%s", ev, e.log(uuidA))
	}
	d, err := w.st.GetDevice(t.Context(), uuidA)
	if err != nil || d.DeviceInfo.CurrentMode != "2" {
		t.Fatalf("device record %+v %v", d, err)
	}
	if tls, _ := d.DeviceInfo.Status["TLS"].(map[string]any); tls["Result"] != "Failure" {
		t.Fatalf("status %v", d.DeviceInfo.Status)
	}
	if fw.ControlMode() != firmware.ModeACM {
		t.Fatal("not in admin control mode")
	}
}
