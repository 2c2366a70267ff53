package device_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	amttls "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/tls"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/internal/tlspsk"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/hello"
)

const (
	legacySuffix = "corp.example.com"
	newMEBxPW    = "N3w-MEBx-pass"
	testPID      = "ABCD1234"
	testPPS      = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
)

// helloSink accepts hellos on loopback and reports them.
type helloMsg struct {
	data []byte
	from netip.Addr
}

func helloSink(t *testing.T) (string, <-chan helloMsg) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan helloMsg, 32)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			ch <- helloMsg{b, ap.Addr().Unmap()}
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), ch
}

func nextHello(t *testing.T, ch <-chan helloMsg) helloMsg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no hello")
	}
	return helloMsg{}
}

func scheduler(t *testing.T, server string) *hello.Scheduler {
	t.Helper()
	s, err := hello.New(hello.Options{Server: server, Schedule: []time.Duration{0, time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// provisioningTLS is the configuration server's side of a PKI setup
// session (legacy.md §7.1): the chain leaf → root from
// GetClientCertificate, RSA key exchange allowed, the device not verified.
func provisioningTLS(c *testpki.Chain) *tls.Config {
	var raw [][]byte
	for _, x := range c.Certs {
		raw = append(raw, x.Raw)
	}
	cert := &tls.Certificate{Certificate: raw, PrivateKey: c.Key}
	suites := []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA}
	for _, s := range tls.CipherSuites() {
		suites = append(suites, s.ID)
	}
	return &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the setup-mode device certificate is self-signed
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       suites,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	}
}

// legacyEvent waits for a legacy log entry of kind containing contains.
func legacyEvent(t *testing.T, fw *firmware.Firmware, kind, contains string) firmware.LegacyEvent {
	t.Helper()
	return legacyEventSince(t, fw, 0, kind, contains)
}

// legacyEventSince waits for such an entry at index since or later.
func legacyEventSince(t *testing.T, fw *firmware.Firmware, since int, kind, contains string) firmware.LegacyEvent {
	t.Helper()
	ch := make(chan struct{}, 1)
	fw.OnEvent(func(e firmware.Event) {
		if e == firmware.EventLegacyLog {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	})
	deadline := time.After(10 * time.Second)
	for {
		evs := fw.LegacyEvents()
		for _, e := range evs[min(since, len(evs)):] {
			if e.Kind == kind && strings.Contains(e.Detail, contains) {
				return e
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %s event with %q: %+v", kind, contains, fw.LegacyEvents())
		}
	}
}

// tlsPortUp retries connecting to the device's TLS port while it restarts
// (as a configuration server waits after CommitChanges).
func tlsPortUp(t *testing.T, d *device.Device) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		if a := d.TLSAddr(); a != "" {
			if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
				c.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the TLS port did not come back")
		}
		time.Sleep(delay) // a client's reconnect backoff, not synchronisation
	}
}

func aclDigest(realm, pw string) string {
	s := md5.Sum([]byte("admin:" + realm + ":" + pw))
	return base64.StdEncoding.EncodeToString(s[:])
}

// TestLegacyPKISetupToCommit: a device in PKI setup sends a hello, accepts
// the provisioning chain over TLS with RSA key exchange, answers WS-MAN as
// admin with the empty password, and CommitChanges ends setup (POST, ACM,
// no more hellos); after the web server restart the port serves the
// installed certificate with the new admin password.
func TestLegacyPKISetupToCommit(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov." + legacySuffix, Intermediate: true})
	server, hellos := helloSink(t)
	sched := scheduler(t, server)
	d := startDevice(t, devOpts{
		fw:  firmware.Config{PKIDNSSuffix: legacySuffix, TrustHashes: []string{rootHash(chain)}},
		dev: device.Config{Hellos: sched, CommitRestart: 300 * time.Millisecond},
	})
	fw := d.Firmware()
	if d.TLSAddr() != "" {
		t.Fatal("TLS port open before setup")
	}
	if rv := fw.StartConfigurationEx(false); rv != 0 {
		t.Fatal(rv)
	}
	if d.TLSAddr() == "" {
		t.Fatal("no setup TLS port")
	}
	h := nextHello(t, hellos)
	if binary.LittleEndian.Uint16(h.data[2:4]) != 3 || h.from != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("hello version %d from %s", binary.LittleEndian.Uint16(h.data[2:4]), h.from)
	}

	// the handshake: RSA key exchange, the device's self-signed certificate
	conn, err := tls.Dial("tcp", d.TLSAddr(), provisioningTLS(chain))
	if err != nil {
		t.Fatal(err)
	}
	cs := conn.ConnectionState()
	conn.Close()
	peer := cs.PeerCertificates[0]
	if cs.Version != tls.VersionTLS12 || !strings.HasPrefix(tls.CipherSuiteName(cs.CipherSuite), "TLS_RSA_WITH_") ||
		peer.CheckSignature(peer.SignatureAlgorithm, peer.RawTBSCertificate, peer.Signature) != nil ||
		!bytes.Equal(peer.RawIssuer, peer.RawSubject) || peer.Subject.CommonName != "iAMT "+fw.UUIDString() {
		t.Fatalf("session %s %s, peer %q", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), peer.Subject.CommonName)
	}
	legacyEvent(t, fw, firmware.LegacySessionAccepted, `"prov.corp.example.com"`)

	if _, err := wsmanTLSClient(d, "admin", "not-the-setup-password", provisioningTLS(chain)).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("a wrong setup-mode password was accepted")
	}
	a := wsmanTLSClient(d, "admin", "", provisioningTLS(chain))
	svc := must(a.AMT.SetupAndConfigurationService.Get())(t).Body.GetResponse
	if svc.ProvisioningState != 1 || !svc.ZeroTouchConfigurationEnabled {
		t.Fatalf("setup service %+v", svc)
	}
	realm := must(a.AMT.GeneralSettings.Get())(t).Body.GetResponse.DigestRealm
	if rv := must(a.AMT.SetupAndConfigurationService.SetMEBXPassword(newMEBxPW))(t).Body.SetMEBxPassword_OUTPUT.ReturnValue; rv != 0 {
		t.Fatalf("SetMEBxPassword %d", rv)
	}
	if rv := must(a.AMT.AuthorizationService.SetAdminAclEntryEx("admin", aclDigest(realm, testPassword)))(t).Body.SetAdminResponse.ReturnValue; rv != 0 {
		t.Fatalf("SetAdminAclEntryEx %d", rv)
	}
	if rv := must(a.AMT.TimeSynchronizationService.GetLowAccuracyTimeSynch())(t).Body.GetLowAccuracyTimeSynchResponse.ReturnValue; rv != 0 {
		t.Fatalf("GetLowAccuracyTimeSynch %d", rv)
	}
	// TLS for after the commit: a key on the device, a certificate from amtd's CA
	ca := testpki.NewChain(testpki.ChainOptions{LeafCN: "unused"})
	_, pub := deviceKey(t, a)
	leaf := issue(t, ca, pub, "AMT-legacy", x509.ExtKeyUsageServerAuth)
	added := must(a.AMT.PublicKeyManagementService.AddCertificate(b64(leaf)))(t).Body.AddCertificate_OUTPUT
	certID := added.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors[0].Text
	must(a.AMT.TLSCredentialContext.Create(certID))(t)
	remote := amttls.SettingDataRequest{ElementName: "Intel(r) AMT 802.3 TLS Settings", InstanceID: "Intel(r) AMT 802.3 TLS Settings", Enabled: true, AcceptNonSecureConnections: true}
	must(a.AMT.TLSSettingData.Put(remote.InstanceID, remote))(t)
	if !sched.Scheduled(fw) {
		t.Fatal("hellos not scheduled during setup")
	}
	if rv := must(a.AMT.SetupAndConfigurationService.CommitChanges())(t).Body.CommitChanges_OUTPUT.ReturnValue; rv != 0 {
		t.Fatalf("CommitChanges %d", rv)
	}
	if fw.ProvisioningState() != firmware.StatePost || fw.ControlMode() != firmware.ModeACM || fw.LegacyStatus().Mode != firmware.SetupNone {
		t.Fatal("not provisioned")
	}
	if sched.Scheduled(fw) {
		t.Fatal("hellos still scheduled after CommitChanges")
	}
	if d.TLSAddr() != "" {
		t.Fatal("the web server did not restart")
	}
	legacyEvent(t, fw, firmware.LegacyCommitted, "POST")
	tlsPortUp(t, d)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root)
	if _, err := wsmanTLSClient(d, "admin", testPassword, &tls.Config{RootCAs: pool, ServerName: "AMT-legacy"}).AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("WS-MAN with the installed certificate and the new password: %v", err)
	}
	if _, err := wsmanTLSClient(d, "admin", "", &tls.Config{RootCAs: pool, ServerName: "AMT-legacy"}).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("the setup-mode password still works after commit")
	}
	if !fw.MEBxPasswordMatches(newMEBxPW) {
		t.Fatal("MEBx password not set")
	}
}

// TestLegacyPKIRefusals: the device refuses provisioning chains that break
// legacy.md §10, and handshakes without a client certificate or RSA key
// exchange, recording why.
func TestLegacyPKIRefusals(t *testing.T) {
	good := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov." + legacySuffix})
	d := startDevice(t, devOpts{fw: firmware.Config{PKIDNSSuffix: legacySuffix, TrustHashes: []string{rootHash(good)}}})
	fw := d.Firmware()
	fw.StartConfigurationEx(false)
	sameTrust := func(o testpki.ChainOptions) *testpki.Chain {
		// the device trusts one root: re-sign these leaves by the trusted root
		c := testpki.NewChain(o)
		leafTmpl := *c.Leaf
		leafTmpl.Raw = nil
		der, err := x509.CreateCertificate(rand.Reader, &leafTmpl, good.Root, c.LeafKey.Public(), good.RootKey)
		if err != nil {
			t.Fatal(err)
		}
		c.Leaf = must(x509.ParseCertificate(der))(t)
		c.Root = good.Root
		c.Certs = []*x509.Certificate{c.Leaf, good.Root}
		return c
	}
	untrusted := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov." + legacySuffix})
	noPurpose := sameTrust(testpki.ChainOptions{LeafCN: "prov." + legacySuffix, NoAMTOID: true})
	wrongCN := sameTrust(testpki.ChainOptions{LeafCN: "prov.other.example.net"})
	noRoot := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov." + legacySuffix, OmitRoot: true})
	noRoot.Root = good.Root

	noCert := provisioningTLS(good)
	noCert.GetClientCertificate = nil
	ecdheOnly := provisioningTLS(good)
	ecdheOnly.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	ecdheOnly.MaxVersion = tls.VersionTLS12

	for _, c := range []struct {
		name, want string
		cfg        *tls.Config
	}{
		{"root not in the table", "(trust)", provisioningTLS(untrusted)},
		{"CN domain mismatch", "(domain)", provisioningTLS(wrongCN)},
		{"no OID or OU", "(purpose)", provisioningTLS(noPurpose)},
		{"root not sent", "(root)", provisioningTLS(noRoot)},
		{"no client certificate", "didn't provide a certificate", noCert},
		{"no RSA key exchange", "no cipher suite", ecdheOnly},
	} {
		t.Run(c.name, func(t *testing.T) {
			since := len(fw.LegacyEvents())
			conn, err := tls.Dial("tcp", d.TLSAddr(), c.cfg)
			if err == nil {
				// TLS 1.2 client: the refusal may arrive with the first read
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				_, err = conn.Read(make([]byte, 1))
				conn.Close()
			}
			if err == nil {
				t.Fatal("accepted")
			}
			legacyEventSince(t, fw, since, firmware.LegacySessionRefused, c.want)
		})
	}
	sameOU := sameTrust(testpki.ChainOptions{LeafCN: "prov." + legacySuffix, NoAMTOID: true, AMTOU: true})
	conn, err := tls.Dial("tcp", d.TLSAddr(), provisioningTLS(sameOU))
	if err != nil {
		t.Fatalf("the setup OU instead of the OID: %v", err)
	}
	conn.Close()
}

// pskClient is go-wsman-messages over TLS-PSK to the device's 16993.
func pskClient(d *device.Device, cfg *tlspsk.Config, user, pw string) wsman.Messages {
	tr := &http.Transport{DisableKeepAlives: true, DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return tlspsk.Dial(ctx, "tcp", d.TLSAddr(), cfg)
	}}
	return wsman.NewMessages(client.Parameters{Target: "127.0.0.1", Username: user, Password: pw, UseDigest: true, UseTLS: true, Transport: tr, Timeout: 10 * time.Second})
}

// TestLegacyPSKSetup: a pre-11 device with a PID/PPS sends a version 2
// hello and serves TLS-PSK; a wrong PPS is refused and recorded.
func TestLegacyPSKSetup(t *testing.T) {
	server, hellos := helloSink(t)
	d := startDevice(t, devOpts{fw: firmware.Config{Version: "10.0.55"}, dev: device.Config{Hellos: scheduler(t, server)}})
	fw := d.Firmware()
	if rv := fw.SetPIDPPS(testPID, testPPS); rv != 0 {
		t.Fatal(rv)
	}
	if rv := fw.StartConfigurationEx(false); rv != 0 {
		t.Fatal(rv)
	}
	h := nextHello(t, hellos)
	if len(h.data) != 32 || h.data[2] != 2 || string(h.data[24:]) != testPID {
		t.Fatalf("hello % x", h.data)
	}
	wrong, _ := tlspsk.PIDPPSConfig(testPID, strings.Repeat("Z", 32))
	if _, err := pskClient(d, wrong, "admin", "").AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("wrong PPS accepted")
	}
	legacyEvent(t, fw, firmware.LegacySessionRefused, "TLS-PSK")

	cfg, err := tlspsk.PIDPPSConfig(testPID, testPPS)
	if err != nil {
		t.Fatal(err)
	}
	a := pskClient(d, cfg, "admin", "")
	if svc := must(a.AMT.SetupAndConfigurationService.Get())(t).Body.GetResponse; svc.ProvisioningState != 1 {
		t.Fatalf("state %d", svc.ProvisioningState)
	}
	legacyEvent(t, fw, firmware.LegacySessionAccepted, "identity "+testPID)
	realm := fw.Realm()
	must(a.AMT.SetupAndConfigurationService.SetMEBXPassword(newMEBxPW))(t)
	must(a.AMT.AuthorizationService.SetAdminAclEntryEx("admin", aclDigest(realm, testPassword)))(t)
	if rv := must(a.AMT.SetupAndConfigurationService.CommitChanges())(t).Body.CommitChanges_OUTPUT.ReturnValue; rv != 0 {
		t.Fatalf("CommitChanges %d", rv)
	}
	if fw.ControlMode() != firmware.ModeACM || d.TLSAddr() != "" {
		t.Fatal("not provisioned, or TLS-PSK still served")
	}
}

// TestLegacyPSKOpenSSL: OpenSSL's s_client completes the device's TLS-PSK
// handshake and gets AMT's digest challenge.
func TestLegacyPSKOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is needed for this interoperability test: %v", err)
	}
	d := startDevice(t, devOpts{fw: firmware.Config{Version: "10.0.55"}})
	fw := d.Firmware()
	fw.SetPIDPPS(testPID, testPPS)
	fw.StartConfigurationEx(false)
	psk, _ := tlspsk.PSKFromPPS(testPPS)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, openssl, "s_client", "-connect", d.TLSAddr(), "-tls1_2", "-cipher", "PSK-AES128-CBC-SHA@SECLEVEL=0",
		"-psk", hex.EncodeToString(psk), "-psk_identity", testPID, "-quiet", "-ign_eof")
	cmd.Stdin = strings.NewReader("POST /wsman HTTP/1.1\r\nHost: device\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(out.String(), "HTTP/1.1 401") || !strings.Contains(out.String(), `WWW-Authenticate: Digest realm="`+fw.Realm()) {
		t.Fatalf("answer over TLS-PSK:\n%s\n%s", out.String(), stderr.String())
	}
}

// TestLegacySetupPasswords: the configured setup-mode passwords replace the
// empty one.
func TestLegacySetupPasswords(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov." + legacySuffix})
	d := startDevice(t, devOpts{fw: firmware.Config{PKIDNSSuffix: legacySuffix, TrustHashes: []string{rootHash(chain)}, SetupPasswords: []string{"first-Pass1!", "second-Pass2!"}}})
	d.Firmware().StartConfigurationEx(false)
	for pw, ok := range map[string]bool{"": false, "first-Pass1!": true, "second-Pass2!": true, "third": false} {
		_, err := wsmanTLSClient(d, "admin", pw, provisioningTLS(chain)).AMT.GeneralSettings.Get()
		if (err == nil) != ok {
			t.Errorf("password %q: err %v", pw, err)
		}
	}
	if _, err := wsmanTLSClient(d, "other", "first-Pass1!", provisioningTLS(chain)).AMT.GeneralSettings.Get(); err == nil {
		t.Error("a user other than admin logged in")
	}
}

// TestLegacyWindowClosesPort: when the hello schedule ends the setup TLS
// port closes; StartConfigurationEx opens it again.
func TestLegacyWindowClosesPort(t *testing.T) {
	server, hellos := helloSink(t)
	s, err := hello.New(hello.Options{Server: server, Schedule: []time.Duration{0}, CloseAfter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	d := startDevice(t, devOpts{dev: device.Config{Hellos: s}})
	fw := d.Firmware()
	fw.StartConfigurationEx(false)
	nextHello(t, hellos)
	legacyEvent(t, fw, firmware.LegacyWindowClosed, "")
	if d.TLSAddr() != "" || fw.ProvisioningState() != firmware.StateIn {
		t.Fatal("port still open after the window closed, or setup lost")
	}
	fw.StartConfigurationEx(false)
	if d.TLSAddr() == "" {
		t.Fatal("port not re-opened")
	}
	if h := nextHello(t, hellos); binary.LittleEndian.Uint32(h.data[4:8]) != 0 {
		t.Fatal("restarted schedule not at retry 0")
	}
}

// TestLegacyRestartResumesHellos: hellos leave from the device's address;
// a closed device is unscheduled; after a restart the setup is still there
// and hellos start again at retry 0.
func TestLegacyRestartResumesHellos(t *testing.T) {
	server, hellos := helloSink(t)
	sched := scheduler(t, server)
	dir := t.TempDir()
	cfg := firmware.Config{Path: dir + "/fw.json", PKIDNSSuffix: legacySuffix}
	first := startDevice(t, devOpts{fw: cfg, dev: device.Config{Hellos: sched, Addrs: []string{"127.0.0.9:0"}}})
	first.Firmware().StartConfigurationEx(false)
	if h := nextHello(t, hellos); h.from != netip.MustParseAddr("127.0.0.9") {
		t.Fatalf("hello from %s", h.from)
	}
	first.Close()
	if sched.Len() != 0 {
		t.Fatal("a closed device is still scheduled")
	}
	again := startDevice(t, devOpts{fw: cfg, dev: device.Config{Hellos: sched}})
	if again.Firmware().ProvisioningState() != firmware.StateIn {
		t.Fatal("setup lost across the restart")
	}
	if h := nextHello(t, hellos); binary.LittleEndian.Uint32(h.data[4:8]) != 0 {
		t.Fatal("hellos after the restart do not start at retry 0")
	}
	if !slices.ContainsFunc(again.Firmware().LegacyEvents(), func(e firmware.LegacyEvent) bool { return e.Kind == firmware.LegacyRestarted }) {
		t.Fatal("restart not logged")
	}
}
