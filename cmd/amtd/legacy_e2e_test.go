package main

// End-to-end tests of legacy provisioning (spec/legacy.md, issue 6): the
// real `amtd serve` (startServer, in process) and the real simulator
// (sim/fleet, `amtd sim`) meet on loopback — hellos on the hello listener,
// amtd connecting back to each device's setup TLS port, PKI with a
// provisioning certificate created through the admin API, PSK with pairs
// from `amtd psk generate` delivered by a setup.bin from `amtd setupbin
// create`. Everything amtd is told goes through its API or its commands;
// everything asserted about devices is read from the simulated firmware.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/digest"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/fleet"
	"github.com/amtd-project/amtd/sim/hello"
)

// Timings of the end-to-end runs: the device's web server restart after
// CommitChanges must be shorter than amtd's wait before it reconnects.
const (
	e2eCommitRestart = 50 * time.Millisecond
	e2eCommitDelay   = 300 * time.Millisecond
	e2eHelloScale    = 600 // a minute of the hello schedule becomes 100 ms
	e2eCooldown      = 500 * time.Millisecond
	e2eWait          = 90 * time.Second
)

// legacyServer is an `amtd serve` with its log kept for failures.
type legacyServer struct {
	s    *server
	base string // http://127.0.0.1:port
	c    serveConfig
	logs *syncBuffer
}

// startLegacyServer starts amtd serve with the hello listener on loopback,
// connecting back to devices on devicePort, without API authentication.
func startLegacyServer(t *testing.T, devicePort int) *legacyServer {
	t.Helper()
	c := testConfig(t)
	c.Auth = "none"
	c.ActivationDelay = 0
	c.LegacyDevicePort = devicePort
	c.LegacyCommitDelay = e2eCommitDelay
	c.LegacyCooldown = e2eCooldown
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := startServer(context.Background(), c, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ls := &legacyServer{s: s, base: "http://" + s.addr.String(), c: c, logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("amtd serve log:\n%s", logs.String())
		}
	})
	return ls
}

// helloAddr is the hello listener's address.
func (ls *legacyServer) helloAddr() netip.AddrPort {
	return ls.s.helloLn.Addr().(*net.TCPAddr).AddrPort()
}

// must calls the API and fails the test unless it answers want.
func (ls *legacyServer) must(t *testing.T, want int, method, path string, body any) []byte {
	t.Helper()
	code, b := apiCall(t, method, ls.base+path, body)
	if code != want {
		t.Fatalf("%s %s: %d, want %d: %s", method, path, code, want, b)
	}
	return b
}

// importAllowList posts a CSV file to the allow-list import route.
func (ls *legacyServer) importAllowList(t *testing.T, csv string) {
	t.Helper()
	resp, err := http.Post(ls.base+"/api/v1/admin/legacy/devices/import", "text/csv", strings.NewReader(csv))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("allow-list import: %d %s", resp.StatusCode, b)
	}
}

// createDomain stores a provisioning certificate through the admin API.
func (ls *legacyServer) createDomain(t *testing.T, name, suffix string, chain *testpki.Chain) {
	t.Helper()
	pfx := base64.StdEncoding.EncodeToString(chain.PFX("Pfx-Pa55word", false))
	ls.must(t, http.StatusCreated, "POST", "/api/v1/admin/domains", map[string]any{
		"profileName": name, "domainSuffix": suffix, "provisioningCert": pfx,
		"provisioningCertStorageFormat": "string", "provisioningCertPassword": "Pfx-Pa55word"})
}

// createProfile stores an admin control mode profile with random passwords
// through the admin API; tlsMode 2 asks for TLS with server
// authentication (0: none).
func (ls *legacyServer) createProfile(t *testing.T, name string, tlsMode int, tags ...string) {
	t.Helper()
	ls.createProfileWith(t, name, tlsMode, nil, tags...)
}

// createProfileWith is createProfile with extra profile fields.
func (ls *legacyServer) createProfileWith(t *testing.T, name string, tlsMode int, extra map[string]any, tags ...string) {
	t.Helper()
	p := map[string]any{
		"profileName": name, "activation": "acmactivate", "generateRandomPassword": true,
		"generateRandomMEBxPassword": true, "dhcpEnabled": true, "tags": tags,
		"userConsent": "None", "kvmEnabled": true, "solEnabled": true, "iderEnabled": false}
	if tlsMode != 0 {
		p["tlsMode"] = tlsMode
	}
	for k, v := range extra {
		p[k] = v
	}
	ls.must(t, http.StatusCreated, "POST", "/api/v1/admin/profiles", p)
}

// helloRecord is one entry of GET /api/v1/admin/legacy/hellos.
type helloRecord struct {
	UUID       string `json:"uuid"`
	IP         string `json:"ip"`
	Version    int    `json:"version"`
	RetryCount int64  `json:"retryCount"`
	Hashes     []struct {
		Type int    `json:"type"`
		Hash string `json:"hash"`
	} `json:"hashes"`
	PID                 string `json:"pid"`
	AdminCredentialsSet bool   `json:"adminCredentialsSet"`
	Outcome             string `json:"outcome"`
	Detail              string `json:"detail"`
}

func (ls *legacyServer) hellos(t *testing.T, guid string) []helloRecord {
	t.Helper()
	b := ls.must(t, http.StatusOK, "GET", "/api/v1/admin/legacy/hellos?$top=1000&uuid="+guid, nil)
	var out []helloRecord
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("hellos: %v: %s", err, b)
	}
	return out
}

// finalOutcomes end a hello's story; the others (accepted, busy, cooldown,
// overloaded) are transient or say nothing about the device.
var finalOutcomes = []string{"provisioned", "config-failed", "failed", "refused", "unknown-uuid"}

// waitOutcome waits for a hello of the device whose outcome is final and
// fails the test unless it is want. fw, when given, is shown on failure.
func (ls *legacyServer) waitOutcome(t *testing.T, guid, want string, fw *firmware.Firmware) helloRecord {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		l := ls.hellos(t, guid)
		for i := len(l) - 1; i >= 0; i-- { // oldest first
			if h := l[i]; slices.Contains(finalOutcomes, h.Outcome) {
				if h.Outcome != want {
					t.Fatalf("device %s: hello outcome %q (%s), want %q\ndevice legacy log:\n%s", guid, h.Outcome, h.Detail, want, legacyLog(fw))
				}
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s: no hello with a final outcome after %v (%d hellos: %+v)\ndevice legacy log:\n%s", guid, e2eWait, len(l), l, legacyLog(fw))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitAnyOutcome waits for a hello of the device with the outcome want,
// whatever came before.
func (ls *legacyServer) waitAnyOutcome(t *testing.T, guid, want string, fw *firmware.Firmware) helloRecord {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		l := ls.hellos(t, guid)
		for _, h := range l {
			if h.Outcome == want {
				return h
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s: no hello with outcome %q after %v (%d hellos: %+v)\ndevice legacy log:\n%s", guid, want, e2eWait, len(l), l, legacyLog(fw))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func legacyLog(fw *firmware.Firmware) string {
	if fw == nil {
		return ""
	}
	var b strings.Builder
	for _, e := range fw.LegacyEvents() {
		fmt.Fprintf(&b, "  %s %s: %s\n", e.Time.Format("15:04:05.000"), e.Kind, e.Detail)
	}
	return b.String()
}

// legacyEvents returns the device's legacy log entries of one kind.
func legacyEvents(fw *firmware.Firmware, kind string) []firmware.LegacyEvent {
	var out []firmware.LegacyEvent
	for _, e := range fw.LegacyEvents() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// waitLegacyEvent waits for the device to log an event of kind whose detail
// contains substr.
func waitLegacyEvent(t *testing.T, fw *firmware.Firmware, kind, substr string) firmware.LegacyEvent {
	t.Helper()
	var found firmware.LegacyEvent
	waitFor(t, e2eWait, fmt.Sprintf("device %s never logged %s containing %q:\n%s", fw.UUIDString(), kind, substr, legacyLog(fw)), func() bool {
		for _, e := range legacyEvents(fw, kind) {
			if strings.Contains(e.Detail, substr) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// deviceRecord is what GET /api/v1/devices lists.
type deviceRecord struct {
	GUID       string   `json:"guid"`
	Hostname   string   `json:"hostname"`
	DNSSuffix  string   `json:"dnsSuffix"`
	Tags       []string `json:"tags"`
	TenantID   string   `json:"tenantId"`
	DeviceInfo *struct {
		FWVersion   string `json:"fwVersion"`
		CurrentMode string `json:"currentMode"`
		IPAddress   string `json:"ipAddress"`
	} `json:"deviceInfo"`
}

func (ls *legacyServer) devices(t *testing.T) map[string]deviceRecord {
	t.Helper()
	b := ls.must(t, http.StatusOK, "GET", "/api/v1/devices", nil)
	var l []deviceRecord
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatalf("device list: %v: %s", err, b)
	}
	out := map[string]deviceRecord{}
	for _, d := range l {
		out[d.GUID] = d
	}
	return out
}

// provisioningLog reads a device's log through the API and through `amtd
// provisioning-log`, and returns the API's "step:result" lines and the
// command's text.
func (ls *legacyServer) provisioningLog(t *testing.T, guid string) ([]string, string) {
	t.Helper()
	b := ls.must(t, http.StatusOK, "GET", "/api/v1/devices/"+guid+"/provisioning-log", nil)
	var entries []struct{ Step, Result, Detail string }
	if err := json.Unmarshal(b, &entries); err != nil {
		t.Fatalf("provisioning log: %v: %s", err, b)
	}
	var steps []string
	for _, e := range entries {
		steps = append(steps, e.Step+":"+e.Result)
	}
	code, out, errOut := runAmtd(t, "provisioning-log", "--data", ls.c.DataDir, guid)
	if code != 0 || strings.Count(out, "\n") != len(entries)+1 || !strings.Contains(out, "legacy.commit") {
		t.Fatalf("amtd provisioning-log %s: exit %d (%d API entries)\n%s%s", guid, code, len(entries), out, errOut)
	}
	return steps, out
}

// noSecrets fails the test if amtd's log or any of the texts contain one
// of the secrets.
func (ls *legacyServer) noSecrets(t *testing.T, secrets []string, texts ...string) {
	t.Helper()
	texts = append(texts, ls.logs.String())
	for _, sec := range secrets {
		for i, text := range texts {
			if sec != "" && strings.Contains(text, sec) {
				t.Fatalf("a secret (%d characters) appears in text %d of %d (the last is amtd's log)", len(sec), i+1, len(texts))
			}
		}
	}
}

// storedCreds returns the credentials amtd committed for a device: AMT
// and MEBx passwords and the TLS certificate it pins (DER).
func storedCreds(t *testing.T, ls *legacyServer, guid string) (pw, mebx string, pinned []byte) {
	t.Helper()
	creds, err := devcreds.Load(t.Context(), ls.s.secrets, guid)
	if err != nil {
		t.Fatal(err)
	}
	pw, mebx = creds.Current(devcreds.AMT), creds.Current(devcreds.MEBx)
	certB64 := creds.Current(devcreds.TLSCert)
	if pw == "" || mebx == "" || certB64 == "" || creds.Pending(devcreds.AMT) != "" || creds.Pending(devcreds.MEBx) != "" {
		t.Fatalf("device %s: credentials not committed (amt %v, mebx %v, tls %v)", guid, pw != "", mebx != "", certB64 != "")
	}
	if pinned, err = base64.StdEncoding.DecodeString(certB64); err != nil {
		t.Fatal(err)
	}
	return pw, mebx, pinned
}

// checkDeviceState asserts, from the firmware, a device amtd provisioned:
// out of setup in admin control mode, with the AMT admin and MEBx
// passwords amtd stored, TLS on the network interface with the
// certificate amtd pins.
func checkDeviceState(t *testing.T, fw *firmware.Firmware, pw, mebx string, pinned []byte) {
	t.Helper()
	guid := fw.UUIDString()
	if fw.ControlMode() != firmware.ModeACM || fw.ProvisioningState() != firmware.StatePost {
		t.Fatalf("device %s: control mode %d, provisioning state %d; want ACM after legacy configuration", guid, fw.ControlMode(), fw.ProvisioningState())
	}
	if st := fw.LegacyStatus(); st.Active || st.Mode != firmware.SetupNone {
		t.Fatalf("device %s still in legacy setup: %+v", guid, st)
	}
	admin, ok := fw.LookupUser("admin")
	if !ok || admin.HA1 != digest.HA1("admin", fw.Realm(), pw) {
		t.Fatalf("device %s: its admin password is not the one amtd stored", guid)
	}
	if !fw.MEBxPasswordMatches(mebx) {
		t.Fatalf("device %s: its MEBx password is not the one amtd stored", guid)
	}
	if tc := fw.TLSServer(); tc.Cert == nil || !bytes.Equal(tc.Cert.Certificate[0], pinned) || !tc.Remote.Enabled {
		t.Fatalf("device %s: TLS is not on with the certificate amtd stored", guid)
	}
}

// pinnedSession opens a WS-MAN session as amtd's management path holds it
// — TLS to the device's network address with the certificate pinned,
// digest as admin with the stored password — and returns the AMT host name
// the device reports.
func pinnedSession(t *testing.T, tlsAddr, pw string, pinned []byte) string {
	t.Helper()
	hostName, err := pinnedSessionAs(t, tlsAddr, "admin", pw, pinned)
	if err != nil {
		t.Fatalf("%s: WS-MAN over pinned TLS with the stored password: %v", tlsAddr, err)
	}
	return hostName
}

// pinnedSessionAs is pinnedSession for any digest user; it returns the
// session's error.
func pinnedSessionAs(t *testing.T, tlsAddr, user, pw string, pinned []byte) (string, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	tr := &amt.DirectTransport{Name: tlsAddr, Dial: func(ctx context.Context) (net.Conn, error) {
		conf := &tls.Config{InsecureSkipVerify: true, //nolint:gosec // pinned below
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 || subtle.ConstantTimeCompare(cs.PeerCertificates[0].Raw, pinned) != 1 {
					return errors.New("not the pinned certificate")
				}
				return nil
			}}
		raw, err := d.DialContext(ctx, "tcp", tlsAddr)
		if err != nil {
			return nil, err
		}
		c := tls.Client(raw, conf)
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return c, nil
	}}
	host, _, _ := net.SplitHostPort(tlsAddr)
	cl := amt.NewClient(tr, amt.Params{Target: host, Username: user, Password: pw, UseTLS: true, Timeout: 20 * time.Second})
	var hostName string
	err := cl.Do(t.Context(), func(m wsman.Messages) error {
		r, err := m.AMT.GeneralSettings.Get()
		hostName = r.Body.GetResponse.HostName
		return err
	})
	return hostName, err
}

// checkProvisioned asserts a device amtd provisioned, from the device
// side (checkDeviceState, the setup session and the commit in its legacy
// log) and over the network (pinnedSession).
func checkProvisioned(t *testing.T, ls *legacyServer, fw *firmware.Firmware, tlsAddr string) {
	t.Helper()
	pw, mebx, pinned := storedCreds(t, ls, fw.UUIDString())
	checkDeviceState(t, fw, pw, mebx, pinned)
	waitLegacyEvent(t, fw, firmware.LegacySessionAccepted, "")
	waitLegacyEvent(t, fw, firmware.LegacyCommitted, "")
	var want string
	fw.View(func(s *firmware.State) { want = s.Network.HostName })
	if got := pinnedSession(t, tlsAddr, pw, pinned); got != want {
		t.Fatalf("device %s: host name %q over WS-MAN, %q in the firmware", fw.UUIDString(), got, want)
	}
}

// rootHash is the hex SHA-256 of a chain's root, as --trust-hash takes it.
func rootHash(c *testpki.Chain) string {
	s := sha256.Sum256(c.Root.Raw)
	return hex.EncodeToString(s[:])
}

// startSetupFleet starts n simulated devices on their own loopback
// addresses (from base) behind shared listeners on free ports, as network
// interfaces (the 802.3 TLS settings govern their 16993), with the given
// trusted root hashes and PKI DNS suffix, not yet in setup.
func startSetupFleet(t *testing.T, n int, base string, trust []string, suffix string) *fleet.Fleet {
	t.Helper()
	f, err := fleet.Start(context.Background(), fleet.Options{
		Dir: simDir(t), Devices: n, AddrBase: netip.MustParseAddr(base), HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort,
		TrustHashes: trust, PKIDNSSuffix: suffix, Network: true, CommitRestart: e2eCommitRestart,
		Hello: hello.Options{TimeScale: e2eHelloScale}, GenerateKey: legacytest.Keys,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// fleetTLSPort is the port of the fleet's shared TLS listener.
func fleetTLSPort(t *testing.T, f *fleet.Fleet) int {
	t.Helper()
	_, tlsAddr := f.Listeners()
	_, p, err := net.SplitHostPort(tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// startPKISetup does what an operator does in the MEBx of a device: the
// provisioning server address and port, remote configuration on, then
// "activate network access" (StartConfigurationEx): the device is in setup
// and sends hellos.
func startPKISetup(t *testing.T, fw *firmware.Firmware, server netip.AddrPort) {
	t.Helper()
	if st := fw.SetProvisioningServer(server.Addr().String(), int(server.Port()), ""); st != 0 {
		t.Fatalf("SetProvisioningServer: %d", st)
	}
	if st := fw.SetZeroTouchEnabled(true); st != 0 {
		t.Fatalf("SetZeroTouchEnabled: %d", st)
	}
	if st := fw.StartConfigurationEx(false); st != 0 {
		t.Fatalf("StartConfigurationEx: %d", st)
	}
	if st := fw.LegacyStatus(); st.Mode != firmware.SetupPKI || !st.Active {
		t.Fatalf("device %s not in PKI setup: %+v", fw.UUIDString(), st)
	}
}

// TestLegacyPKIEndToEnd: simulated devices in PKI setup mode trusting the
// root of a provisioning certificate stored through the admin API hello
// amtd serve, which connects back with that certificate and provisions
// them (admin control mode, random passwords, TLS) with no agent; they are
// in the device list with their provisioning log. A device not on the
// allow-list, one whose PKI DNS suffix does not fit the certificate and
// one that does not trust its root are refused, each with the reason in the
// hello record (and, where the device was contacted, in its own log); once
// the operator fixes the first two, their next hellos get them provisioned.
func TestLegacyPKIEndToEnd(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov.pki.example.com", Intermediate: true})
	other := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov.pki.example.com", RootCN: "another root"})

	// Devices 0 and 1 are expected and fit; 2 is not on the allow-list; 3
	// has another PKI DNS suffix (entered in its MEBx). A device of a
	// second fleet trusts another root only.
	devs := startSetupFleet(t, 4, "127.1.20.1", []string{rootHash(chain)}, "pki.example.com")
	strangers := startSetupFleet(t, 1, "127.1.21.1", []string{rootHash(other)}, "pki.example.com")
	ls := startLegacyServer(t, fleetTLSPort(t, devs))

	ls.createDomain(t, "pki", "pki.example.com", chain)
	// amtd's profile extensions, applied by the configuration stage: a power
	// package and an AMT user allowed on the network interface
	ls.createProfileWith(t, "legacy-acm", 2, map[string]any{
		"powerPolicy": "Desktop: ON in S0",
		"userAcls": []any{map[string]any{"username": "operator", "password": legacyACLPassword,
			"realms": []any{3, "Redirection"}, "accessPermission": "network"}},
	}, "legacy", "floor3")
	d := devs.Devices()
	good, good2, unknown, wrongSuffix := d[0], d[1], d[2], d[3]
	untrusting := strangers.Devices()[0]
	if st := wrongSuffix.Firmware.SetPKIFQDNSuffix("branch.example.net"); st != 0 {
		t.Fatalf("SetPKIFQDNSuffix: %d", st)
	}
	ls.importAllowList(t, "uuid,hostname,domain,profile\n"+
		good.UUID+",pc-0001,pki.example.com,legacy-acm\n"+
		strings.ToUpper(good2.UUID)+",pc-0002,,legacy-acm\n"+
		wrongSuffix.UUID+",pc-0004,,legacy-acm\n"+
		untrusting.UUID+",pc-0005,,legacy-acm\n")

	for _, dev := range []*fleet.Device{good, good2, unknown, wrongSuffix, untrusting} {
		startPKISetup(t, dev.Firmware, ls.helloAddr())
	}

	// Not on the allow-list: recorded, nothing else; the device is still in
	// setup and was never contacted.
	h := ls.waitOutcome(t, unknown.UUID, "unknown-uuid", unknown.Firmware)
	ip, _, _ := net.SplitHostPort(unknown.LMSAddr)
	if h.IP != ip || h.Version != 3 || len(h.Hashes) == 0 {
		t.Fatalf("hello record of the unknown device: %+v", h)
	}
	// Wrong PKI DNS suffix: amtd (whose allow-list gives no domain) tries
	// its certificate; the device refuses it and says why.
	h = ls.waitOutcome(t, wrongSuffix.UUID, "failed", wrongSuffix.Firmware)
	if !strings.Contains(h.Detail, "refused the TLS session") {
		t.Fatalf("hello outcome detail of the wrong-suffix device: %q", h.Detail)
	}
	ev := waitLegacyEvent(t, wrongSuffix.Firmware, firmware.LegacySessionRefused, "(domain)")
	if !strings.Contains(ev.Detail, "branch.example.net") {
		t.Fatalf("device's refusal: %q", ev.Detail)
	}
	// Root not trusted: amtd finds no certificate for the hello's hashes and
	// does not connect.
	h = ls.waitOutcome(t, untrusting.UUID, "refused", untrusting.Firmware)
	if !strings.Contains(h.Detail, "no matching provisioning certificate") {
		t.Fatalf("hello outcome detail of the untrusting device: %q", h.Detail)
	}
	for _, dev := range []*fleet.Device{unknown, wrongSuffix, untrusting} {
		fw := dev.Firmware
		if fw.ProvisioningState() != firmware.StateIn || fw.ControlMode() != firmware.ModePre || !fw.LegacyStatus().Active {
			t.Fatalf("refused device %s: state %d mode %d setup %+v", dev.UUID, fw.ProvisioningState(), fw.ControlMode(), fw.LegacyStatus())
		}
		if len(legacyEvents(fw, firmware.LegacyHelloSent)) == 0 {
			t.Fatalf("device %s sent no hello:\n%s", dev.UUID, legacyLog(fw))
		}
	}
	for _, dev := range []*fleet.Device{unknown, untrusting} {
		if n := len(legacyEvents(dev.Firmware, firmware.LegacySessionAccepted)) + len(legacyEvents(dev.Firmware, firmware.LegacySessionRefused)); n != 0 {
			t.Fatalf("amtd connected back to device %s:\n%s", dev.UUID, legacyLog(dev.Firmware))
		}
	}
	if n := len(legacyEvents(wrongSuffix.Firmware, firmware.LegacySessionAccepted)); n != 0 {
		t.Fatalf("the wrong-suffix device accepted a session:\n%s", legacyLog(wrongSuffix.Firmware))
	}
	code, out, errOut := runAmtd(t, "legacy", "hellos", "--data", ls.c.DataDir, "--uuid", strings.ToUpper(unknown.UUID))
	if code != 0 || !strings.Contains(out, "unknown-uuid") || !strings.Contains(out, unknown.UUID) || strings.Contains(out, good.UUID) {
		t.Fatalf("amtd legacy hellos: exit %d\n%s%s", code, out, errOut)
	}

	// The operator fixes two of the causes; those devices, still sending
	// hellos on their schedule, are taken once amtd's cool-down has passed.
	ls.must(t, http.StatusCreated, "POST", "/api/v1/admin/legacy/devices", map[string]any{
		"uuid": unknown.UUID, "hostname": "pc-0003", "profile": "legacy-acm"})
	if st := wrongSuffix.Firmware.SetPKIFQDNSuffix("pki.example.com"); st != 0 { // in the MEBx
		t.Fatalf("SetPKIFQDNSuffix: %d", st)
	}

	// Provisioned, seen from amtd and from the devices.
	provisioned := []*fleet.Device{good, good2, unknown, wrongSuffix}
	for i, dev := range provisioned {
		var h helloRecord
		if i < 2 {
			h = ls.waitOutcome(t, dev.UUID, "provisioned", dev.Firmware) // at the first attempt
		} else {
			h = ls.waitAnyOutcome(t, dev.UUID, "provisioned", dev.Firmware)
		}
		ip, _, _ := net.SplitHostPort(dev.LMSAddr)
		if h.Version != 3 || len(h.Hashes) == 0 || !strings.Contains(h.Detail, "legacy-acm") || h.IP != ip {
			t.Fatalf("hello record %+v of the device at %s", h, ip)
		}
		checkProvisioned(t, ls, dev.Firmware, dev.TLSAddr())
		checkPowerAndUser(t, ls, dev.Firmware, dev.TLSAddr())
	}
	var host string
	good.Firmware.View(func(s *firmware.State) { host = s.Network.HostName + "." + s.Network.DomainName })
	if host != "pc-0001.pki.example.com" {
		t.Fatalf("AMT FQDN %q, want the allow-list's", host)
	}
	list := ls.devices(t)
	for _, dev := range provisioned {
		r, ok := list[dev.UUID]
		ip, _, _ := net.SplitHostPort(dev.LMSAddr)
		if !ok || r.DeviceInfo == nil || r.DeviceInfo.CurrentMode != "2" || r.DeviceInfo.IPAddress != ip ||
			!slices.Equal(r.Tags, []string{"legacy", "floor3"}) || !strings.HasPrefix(r.Hostname, "pc-000") {
			t.Fatalf("device list entry of %s: %+v (%+v)", dev.UUID, r, r.DeviceInfo)
		}
		steps, text := ls.provisioningLog(t, dev.UUID)
		pw, mebx, _ := storedCreds(t, ls, dev.UUID)
		_, hellos := apiCall(t, "GET", ls.base+"/api/v1/admin/legacy/hellos", nil)
		_, record := apiCall(t, "GET", ls.base+"/api/v1/devices/"+dev.UUID, nil)
		_, profile := apiCall(t, "GET", ls.base+"/api/v1/admin/profiles/legacy-acm", nil)
		ls.noSecrets(t, []string{pw, mebx, legacyACLPassword}, text, string(hellos), string(record), string(profile))
		want := []string{"legacy.hello:info", "legacy.certificate:ok", "legacy.auth:ok", "legacy.state:ok", "legacy.mebx:ok",
			"legacy.password:ok", "legacy.hostname:ok", "legacy.tls:ok", "legacy.commit:ok", "device.record:ok", "legacy.configure:info",
			"power.policy:ok", "useracl:ok", "tls:ok"}
		if !isSubsequence(steps, want) {
			t.Fatalf("provisioning log of %s: %v lacks %v", dev.UUID, steps, want)
		}
	}

	// The untrusting device stays in setup, unknown to the device list.
	if _, ok := list[untrusting.UUID]; ok || len(list) != len(provisioned) {
		t.Fatalf("device list %v", list)
	}
	if fw := untrusting.Firmware; fw.ProvisioningState() != firmware.StateIn || len(legacyEvents(fw, firmware.LegacySessionAccepted)) != 0 {
		t.Fatalf("untrusting device:\n%s", legacyLog(fw))
	}
}

// legacyACLPassword is the password of the profile's AMT user.
const legacyACLPassword = "Op3rator!legacy"

// checkPowerAndUser asserts, from the device, what the profile's amtd
// extensions asked for: the "Desktop: ON in S0" power package is the
// active one, and the AMT user exists with its access and realms and logs
// in with digest over the device's network interface (pinned TLS), with
// its password only.
func checkPowerAndUser(t *testing.T, ls *legacyServer, fw *firmware.Firmware, tlsAddr string) {
	t.Helper()
	guid := fw.UUIDString()
	active := fw.ActivePowerScheme()
	var desc string
	for _, p := range fw.PowerSchemes() {
		if p.InstanceID == active {
			desc = p.Description
		}
	}
	if desc != "Desktop: ON in S0" || fw.Snapshot().PowerScheme != active {
		t.Fatalf("device %s: active power package %s %q", guid, active, desc)
	}
	users := fw.Snapshot().Users
	if len(users) != 1 || users[0].Username != "operator" || users[0].AccessPermission != firmware.AccessNetwork ||
		!slices.Equal(users[0].Realms, []int{3, 2}) || !users[0].Enabled {
		t.Fatalf("device %s: users %+v", guid, users)
	}
	_, _, pinned := storedCreds(t, ls, guid)
	if _, err := pinnedSessionAs(t, tlsAddr, "operator", legacyACLPassword, pinned); err != nil {
		t.Fatalf("device %s: the profile's AMT user cannot log in over the network: %v", guid, err)
	}
	if _, err := pinnedSessionAs(t, tlsAddr, "operator", legacyACLPassword+"x", pinned); err == nil {
		t.Fatalf("device %s: the AMT user logs in with a wrong password", guid)
	}
}

// isSubsequence reports whether want appears in got in order.
func isSubsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

// reservePort finds a free TCP port on ip for a listener a command binds
// later (the device's TLS port must be given to amtd serve, which must run
// before the simulator can be told where the hello listener is). The
// address is one no other test uses, so only an unrelated wildcard
// listener could take the port in between.
func reservePort(t *testing.T, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// setupBinState returns `amtd setupbin show`'s "Records:" line and each
// record's state line.
func setupBinState(t *testing.T, file string) (string, []string) {
	t.Helper()
	code, out, errOut := runAmtd(t, "setupbin", "show", file)
	if code != 0 {
		t.Fatalf("amtd setupbin show: exit %d: %s", code, errOut)
	}
	var summary string
	var recs []string
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "Records:"):
			summary = l
		case strings.HasPrefix(l, "Record "):
			recs = append(recs, l)
		}
	}
	return summary, recs
}

// TestLegacyPSKSetupBinEndToEnd: PID/PPS pairs from `amtd psk generate`
// go into a setup.bin from `amtd setupbin create` (with the MEBx password
// change and the hello listener's address and port); `amtd sim --usb` on
// AMT 10 consumes its first record (marked used in the file, as `amtd
// setupbin show` tells), sends version 2 hellos with the PID, and amtd
// serve configures it over TLS-PSK into admin control mode; it is in the
// device list. A second machine takes the next record the same way.
func TestLegacyPSKSetupBinEndToEnd(t *testing.T) {
	const ip1, ip2 = "127.1.22.1", "127.1.22.2"
	ls := startLegacyServer(t, reservePort(t, ip1))
	port := strconv.Itoa(ls.c.LegacyDevicePort)
	ls.createProfile(t, "legacy-psk", 0, "psk")
	data := ls.c.DataDir

	code, out, errOut := runAmtd(t, "psk", "generate", "-n", "2", "--data", data)
	pids := strings.Fields(out)
	if code != 0 || len(pids) != 2 {
		t.Fatalf("amtd psk generate: exit %d: %s%s", code, out, errOut)
	}
	for i, p := range pids {
		pids[i] = strings.ReplaceAll(p, "-", "")
	}

	usb := filepath.Join(t.TempDir(), "setup.bin")
	pwFile := filepath.Join(t.TempDir(), "mebx.txt")
	if err := os.WriteFile(pwFile, []byte("N3w-MEBx!pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hello := ls.helloAddr()
	code, out, errOut = runAmtd(t, "setupbin", "create", "-o", usb, "--data", data, "--version", "3", "--records", "2", "--psk",
		"--new-mebx-password-file", pwFile, "--server", hello.Addr().String(), "--port", strconv.Itoa(int(hello.Port())))
	if code != 0 {
		t.Fatalf("amtd setupbin create: exit %d: %s%s", code, out, errOut)
	}
	// The records carry the generated pairs (in the order amtd hands them
	// out); the PPS and the password are not shown.
	recPIDs := recordPIDs(out)
	if len(recPIDs) != 2 || !slices.Contains(pids, recPIDs[0]) || !slices.Contains(pids, recPIDs[1]) || recPIDs[0] == recPIDs[1] {
		t.Fatalf("setup.bin records with PIDs %v, generated %v:\n%s", recPIDs, pids, out)
	}
	pids = recPIDs
	code, show, _ := runAmtd(t, "setupbin", "show", "--show-secrets", usb)
	var ppss []string
	for _, l := range strings.Split(show, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "2.2 PPS = "); ok {
			ppss = append(ppss, strings.Trim(v, `"`))
		}
	}
	if code != 0 || len(ppss) != 2 || len(ppss[0]) != 32 {
		t.Fatalf("amtd setupbin show --show-secrets: exit %d\n%s", code, show)
	}
	secrets := append([]string{"N3w-MEBx!pass"}, ppss...)
	ls.noSecrets(t, secrets, out)
	if strings.Contains(out, "N3w-MEBx!pass") {
		t.Fatalf("amtd setupbin create printed the MEBx password:\n%s", out)
	}
	summary, recs := setupBinState(t, usb)
	if summary != "Records: 2, consumed: 0, next: record 1" || len(recs) != 2 || !strings.HasSuffix(recs[0], ": valid") {
		t.Fatalf("new setup.bin: %q %q", summary, recs)
	}

	// The machines are expected: the operator knows their UUIDs (the
	// simulator's fleet.json names them).
	uuids := []string{"5a1e0001-6b1c-4c2d-9e3f-0a1b2c3d4e01", "5a1e0002-6b1c-4c2d-9e3f-0a1b2c3d4e02"}
	ls.importAllowList(t, uuids[0]+",psk-0001,psk.example.com,legacy-psk\n"+uuids[1]+",psk-0002,,legacy-psk\n")

	for i, ip := range []string{ip1, ip2} {
		dir := simDir(t)
		if err := os.WriteFile(filepath.Join(dir, fleet.ManifestName), []byte(`{"devices":["`+uuids[i]+`"]}`), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startSim(t, 1, "--dir", dir, "--lms", ip+":0", "--tls-port", port, "--usb", usb, "--amt-version", "10.0.55",
			"--hello-timescale", strconv.Itoa(e2eHelloScale), "--commit-restart", e2eCommitRestart.String(), "--log-level", "info")
		dev := p.devices[0]
		if dev["uuid"] != uuids[i] || dev["setup"] != "psk" || dev["pid"] != pids[i] {
			t.Fatalf("machine %d: %v, want PSK setup with PID %s", i+1, dev, pids[i])
		}
		// The record is used; the next machine gets the next one.
		summary, recs := setupBinState(t, usb)
		wantNext := "record 2"
		if i == 1 {
			wantNext = "none (all consumed)"
		}
		if summary != fmt.Sprintf("Records: 2, consumed: %d, next: %s", i+1, wantNext) || !strings.HasSuffix(recs[i], ": used") {
			t.Fatalf("setup.bin after machine %d: %q %q", i+1, summary, recs)
		}

		h := ls.waitOutcome(t, uuids[i], "provisioned", nil)
		// The setup.bin changed the MEBx password: the hello says so.
		if h.Version != 2 || h.PID != pids[i] || h.IP != ip || len(h.Hashes) != 0 || !h.AdminCredentialsSet {
			t.Fatalf("hello record of machine %d: %+v", i+1, h)
		}
		pw, mebx, pinned := storedCreds(t, ls, uuids[i])
		if got := pinnedSession(t, net.JoinHostPort(ip, port), pw, pinned); got != fmt.Sprintf("psk-%04d", i+1) {
			t.Fatalf("machine %d: AMT host name %q", i+1, got)
		}
		r, ok := ls.devices(t)[uuids[i]]
		if !ok || r.DeviceInfo == nil || r.DeviceInfo.CurrentMode != "2" || r.DeviceInfo.IPAddress != ip || r.DeviceInfo.FWVersion != "10.0.55" {
			t.Fatalf("device list entry of machine %d: %+v", i+1, r)
		}
		steps, text := ls.provisioningLog(t, uuids[i])
		_, hellos := apiCall(t, "GET", ls.base+"/api/v1/admin/legacy/hellos", nil)
		_, pairs := apiCall(t, "GET", ls.base+"/api/v1/admin/legacy/psk", nil)
		ls.noSecrets(t, append(secrets, pw, mebx), text, string(hellos), string(pairs))
		if !isSubsequence(steps, []string{"legacy.hello:info", "legacy.psk:ok", "legacy.auth:ok", "legacy.mebx:ok", "legacy.password:ok",
			"legacy.tls:ok", "legacy.commit:ok", "device.record:ok", "legacy.configure:info"}) {
			t.Fatalf("provisioning log of machine %d: %v", i+1, steps)
		}
		log := p.errOut.String()
		if !strings.Contains(log, "setup.bin applied") || !strings.Contains(log, "legacy setup: committed") {
			t.Fatalf("machine %d's log:\n%s", i+1, log)
		}
		if code := p.stop(); code != 0 {
			t.Fatalf("amtd sim exited with %d", code)
		}
		// The state the simulator kept: provisioned with amtd's credentials.
		fw, err := firmware.Open(firmware.Config{Path: firmware.DevicePath(dir, uuids[i])})
		if err != nil {
			t.Fatal(err)
		}
		checkDeviceState(t, fw, pw, mebx, pinned)
		if i > 0 {
			continue
		}
		// The machine restarts with the USB key still in: nothing is
		// consumed, and it serves amtd's certificate with its own key.
		p = startSim(t, 1, "--dir", dir, "--lms", ip+":0", "--tls-port", port, "--usb", usb, "--amt-version", "10.0.55")
		if d := p.devices[0]; d["mode"] != "acm" || d["setup"] != "" {
			t.Fatalf("machine after a restart: %v", d)
		}
		if summary, _ := setupBinState(t, usb); summary != "Records: 2, consumed: 1, next: record 2" {
			t.Fatalf("setup.bin after a restart: %q", summary)
		}
		pinnedSession(t, net.JoinHostPort(ip, port), pw, pinned)
		p.stop()
	}

	// amtd knows which machine used which pair.
	code, out, _ = runAmtd(t, "psk", "list", "--data", data)
	for i, u := range uuids {
		if code != 0 || !strings.Contains(out, u) || !strings.Contains(out, setupDashed(pids[i])) {
			t.Fatalf("amtd psk list: exit %d\n%s", code, out)
		}
	}
}

// recordPIDs returns the PID (2.1) of each record that setupbin create or
// show printed.
func recordPIDs(out string) []string {
	var pids []string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "2.1 PID = "); ok {
			pids = append(pids, strings.Trim(v, `"`))
		}
	}
	return pids
}

// setupDashed prints a PID as amtd does (ABCD-1234).
func setupDashed(pid string) string { return pid[:4] + "-" + pid[4:] }

// TestLegacyPKISetupBinEndToEnd: the USB path of PKI remote configuration.
// `amtd setupbin create --domain` puts the root hash of a domain stored
// through the admin API into the record (2.8) with the PKI DNS suffix, the
// hello listener's address and a new MEBx password that amtd remembers as
// a setup password; `amtd sim --usb` applies it to a factory-fresh AMT 16
// machine whose setup sessions take only that password as admin's digest
// password, and amtd serve provisions it: its credential list finds the
// remembered password after the empty one is refused.
func TestLegacyPKISetupBinEndToEnd(t *testing.T) {
	const ip = "127.1.23.1"
	ls := startLegacyServer(t, reservePort(t, ip))
	port := strconv.Itoa(ls.c.LegacyDevicePort)
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "*.usb.example.com", Intermediate: true})
	ls.createDomain(t, "usb", "usb.example.com", chain)
	ls.createProfile(t, "legacy-usb", 0)

	usb := filepath.Join(t.TempDir(), "setup.bin")
	pwFile := filepath.Join(t.TempDir(), "mebx.txt")
	const mebx = "Usb-MEBx-2pass"
	if err := os.WriteFile(pwFile, []byte(mebx+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hello := ls.helloAddr()
	code, out, errOut := runAmtd(t, "setupbin", "create", "-o", usb, "--data", ls.c.DataDir, "--domain", "usb",
		"--pki-dns-suffix", "usb.example.com", "--new-mebx-password-file", pwFile, "--remember",
		"--server", hello.Addr().String(), "--port", strconv.Itoa(int(hello.Port())))
	if code != 0 {
		t.Fatalf("amtd setupbin create: exit %d: %s%s", code, out, errOut)
	}
	code, show, errOut := runAmtd(t, "setupbin", "show", usb)
	if code != 0 || !strings.Contains(show, "algorithm 2 "+rootHash(chain)) || !strings.Contains(show, `"usb.example.com"`) ||
		!strings.Contains(show, hello.Addr().String()) || strings.Contains(show, mebx) {
		t.Fatalf("amtd setupbin show: exit %d\n%s%s", code, show, errOut)
	}

	const uuid = "0b5e0001-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
	ls.must(t, http.StatusCreated, "POST", "/api/v1/admin/legacy/devices", map[string]any{
		"uuid": uuid, "hostname": "usb-0001", "domain": "usb.example.com", "profile": "legacy-usb"})
	dir := simDir(t)
	if err := os.WriteFile(filepath.Join(dir, fleet.ManifestName), []byte(`{"devices":["`+uuid+`"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startSim(t, 1, "--dir", dir, "--lms", ip+":0", "--tls-port", port, "--usb", usb, "--setup-password", mebx,
		"--hello-timescale", strconv.Itoa(e2eHelloScale), "--commit-restart", e2eCommitRestart.String(), "--log-level", "info")
	if d := p.devices[0]; d["uuid"] != uuid || d["setup"] != "pki" {
		t.Fatalf("machine: %v", d)
	}
	if summary, recs := setupBinState(t, usb); summary != "Records: 1, consumed: 1, next: none (all consumed)" || !strings.HasSuffix(recs[0], ": used") {
		t.Fatalf("setup.bin after the machine: %q %q", summary, recs)
	}

	h := ls.waitOutcome(t, uuid, "provisioned", nil)
	var sawRoot bool
	for _, x := range h.Hashes {
		sawRoot = sawRoot || (x.Type == 2 && strings.EqualFold(x.Hash, rootHash(chain)))
	}
	if h.Version != 3 || h.IP != ip || !sawRoot {
		t.Fatalf("hello record %+v lacks the root hash the setup.bin added", h)
	}
	steps, text := ls.provisioningLog(t, uuid)
	if !isSubsequence(steps, []string{"legacy.certificate:ok", "legacy.auth:info", "legacy.auth:ok", "legacy.commit:ok"}) ||
		!strings.Contains(text, "the empty password refused") || !strings.Contains(text, "authenticated as admin with operator setup password 1") {
		t.Fatalf("provisioning log:\n%s", text)
	}
	if strings.Contains(text, mebx) {
		t.Fatal("the provisioning log shows the setup password")
	}
	pw, newMEBx, pinned := storedCreds(t, ls, uuid)
	_, hellos := apiCall(t, "GET", ls.base+"/api/v1/admin/legacy/hellos", nil)
	ls.noSecrets(t, []string{mebx, pw, newMEBx}, text, show, string(hellos))
	if got := pinnedSession(t, net.JoinHostPort(ip, port), pw, pinned); got != "usb-0001" {
		t.Fatalf("AMT host name %q", got)
	}
	if r, ok := ls.devices(t)[uuid]; !ok || r.DNSSuffix != "usb.example.com" || r.DeviceInfo == nil || r.DeviceInfo.CurrentMode != "2" {
		t.Fatalf("device list entry %+v", r)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("amtd sim exited with %d", code)
	}
	fw, err := firmware.Open(firmware.Config{Path: firmware.DevicePath(dir, uuid)})
	if err != nil {
		t.Fatal(err)
	}
	checkDeviceState(t, fw, pw, newMEBx, pinned)
	var domain string
	fw.View(func(s *firmware.State) { domain = s.Network.DomainName })
	if domain != "usb.example.com" {
		t.Fatalf("AMT domain %q", domain)
	}
}
