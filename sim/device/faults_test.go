package device_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/hostbasedsetup"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/wsman"
)

func TestLatency(t *testing.T) {
	d := startDevice(t, devOpts{dev: device.Config{Latency: 150 * time.Millisecond}})
	m := lsaClient(d)
	start := time.Now()
	if _, err := m.AMT.GeneralSettings.Get(); err != nil {
		t.Fatal(err)
	}
	// one 401 (not delayed) and one answered call
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Fatalf("answered after %v, latency 150ms", el)
	}
	d.SetLatency(0)
	if _, err := m.AMT.GeneralSettings.Get(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultInjection(t *testing.T) {
	d := startDevice(t, devOpts{})
	fw := d.Firmware()
	m := lsaClient(d)
	if _, err := m.AMT.GeneralSettings.Get(); err != nil {
		t.Fatal(err)
	}

	// ReturnValue: the method is not executed
	d.AddFault(wsman.FaultRule{Class: "IPS_HostBasedSetupService", Op: "Setup", Kind: wsman.FaultReturnValue, ReturnValue: 1, Count: 1})
	res, err := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, fw.Realm(), testPassword)
	if err == nil || res.Body.Setup_OUTPUT.ReturnValue != 1 || fw.ControlMode() != 0 {
		t.Fatalf("injected ReturnValue: %v %d mode %d", err, res.Body.Setup_OUTPUT.ReturnValue, fw.ControlMode())
	}

	// HTTP 400 (SOAP fault) and 500
	d.AddFault(wsman.FaultRule{Class: "AMT_GeneralSettings", Op: "Get", Kind: wsman.FaultHTTP400, Count: 1})
	if _, err := m.AMT.GeneralSettings.Get(); err == nil || !strings.Contains(err.Error(), "InternalError") {
		t.Fatalf("injected 400: %v", err)
	}
	d.AddFault(wsman.FaultRule{Class: "AMT_GeneralSettings", Kind: wsman.FaultHTTP500, Count: 1})
	if _, err := m.AMT.GeneralSettings.Get(); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("injected 500: %v", err)
	}

	// connection reset
	d.AddFault(wsman.FaultRule{Kind: wsman.FaultReset, Count: 1})
	if _, err := m.AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("injected reset: no error")
	}

	// the reply is lost but the device activated (rpc-go checks GetControlMode)
	d.AddFault(wsman.FaultRule{Class: "IPS_HostBasedSetupService", Op: "Setup", Kind: wsman.FaultResetAfter, Count: 1})
	if _, err := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, fw.Realm(), testPassword); err == nil {
		t.Fatal("dropped reply: no error")
	}
	if fw.ControlMode() != 1 {
		t.Fatal("Setup not executed before the reset")
	}
	// rules with Count are used up; the device answers again
	if _, err := adminClient(d).AMT.GeneralSettings.Get(); err != nil {
		t.Fatal(err)
	}
	d.ClearFaults()
}

func TestHangEndsWithClientOrDevice(t *testing.T) {
	d := startDevice(t, devOpts{})
	d.AddFault(wsman.FaultRule{Class: "AMT_GeneralSettings", Kind: wsman.FaultHang})
	user, pw := d.Firmware().LocalSystemAccount()
	get := soapRequest(wsman.ActionGet, wsman.ResourceURI("AMT_GeneralSettings"), "1", "", "")

	// the client gives up: the device lets go of the connection
	conn := authorisedConn(t, d.Addr(), user, pw, get)
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 10)
	if _, err := conn.Read(buf); err == nil || !errors.Is(err, errTimeout(err)) {
		t.Fatalf("hang answered: %v", err)
	}
	conn.Close()

	// a hanging call does not block Close
	conn = authorisedConn(t, d.Addr(), user, pw, get)
	defer conn.Close()
	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("Close blocked by a hanging connection\n%s", buf[:n])
	}
}

func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errors.New("not a timeout")
}

// authorisedConn sends one digest-authenticated request and returns the open
// connection without reading the answer.
func authorisedConn(t *testing.T, addr, user, pw, body string) net.Conn {
	t.Helper()
	first := rawExchange(t, addr, "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	ch := header(first, "WWW-Authenticate")
	realm, nonce := between(ch, `realm="`, `"`), between(ch, `nonce="`, `"`)
	ha1 := md5hex(user + ":" + realm + ":" + pw)
	resp := md5hex(ha1 + ":" + nonce + ":00000001:abc:auth:" + md5hex("POST:/wsman"))
	auth := fmt.Sprintf(`Digest username="%s",realm="%s",nonce="%s",uri="/wsman",response="%s",qop="auth",nc="00000001",cnonce="abc"`, user, realm, nonce, resp)
	conn, err := netDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /wsman HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: %d\r\n\r\n%s", auth, len(body), body)
	return conn
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestStaleNonce(t *testing.T) {
	clk := &fakeClock{t: time.Now()}
	d := startDevice(t, devOpts{fw: firmware.Config{Now: clk.Now}, dev: device.Config{NonceLifetime: time.Minute}})
	user, pw := d.Firmware().LocalSystemAccount()
	first := rawExchange(t, d.Addr(), "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	ch := header(first, "WWW-Authenticate")
	realm, nonce := between(ch, `realm="`, `"`), between(ch, `nonce="`, `"`)
	clk.Add(2 * time.Minute)
	ha1 := md5hex(user + ":" + realm + ":" + pw)
	resp := md5hex(ha1 + ":" + nonce + ":00000001:abc:auth:" + md5hex("POST:/wsman"))
	auth := fmt.Sprintf(`Digest username="%s",realm="%s",nonce="%s",uri="/wsman",response="%s",qop="auth",nc="00000001",cnonce="abc"`, user, realm, nonce, resp)
	raw := rawExchange(t, d.Addr(), "POST /wsman HTTP/1.1\r\nHost: x\r\nAuthorization: "+auth+"\r\nContent-Length: 0\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 401") || !strings.Contains(header(raw, "WWW-Authenticate"), `",stale="true",qop="auth"`) {
		t.Fatalf("stale nonce: %q", raw)
	}
	// Intel's client recovers from a stale nonce with its one retry
	m := lsaClient(d)
	if _, err := m.AMT.GeneralSettings.Get(); err != nil {
		t.Fatal(err)
	}
	clk.Add(2 * time.Minute)
	if _, err := m.AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("after the nonce expired: %v", err)
	}
}

func TestMalformedHTTP(t *testing.T) {
	d := startDevice(t, devOpts{})
	raw := rawExchange(t, d.Addr(), "GARBAGE\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 400 Bad Request\r\n") || !strings.Contains(raw, "Content-Length: ") || !strings.Contains(raw, "Connection: close") {
		t.Fatalf("garbage: %q", raw)
	}
	user, pw := d.Firmware().LocalSystemAccount()
	// not a SOAP envelope, authorised: SOAP fault with 400
	raw = digestPost(t, d.Addr(), user, pw, "<not-soap/>", false)
	if !strings.HasPrefix(raw, "HTTP/1.1 400 Bad Request\r\n") || !strings.Contains(raw, "e:SchemaValidationError") {
		t.Fatalf("not SOAP: %q", raw)
	}
	// unknown resource
	raw = digestPost(t, d.Addr(), user, pw, soapRequest(wsman.ActionGet, wsman.AMTSchema+"AMT_Nope", "9", "", ""), true)
	if !strings.Contains(raw, "b:DestinationUnreachable") || !strings.Contains(raw, "<b:RelatesTo>9</b:RelatesTo>") {
		t.Fatalf("unknown class: %q", raw)
	}
	// Pull on an unknown context
	pull := `<Pull xmlns="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><EnumerationContext>FF000000-0000-0000-0000-000000000000</EnumerationContext><MaxElements>999</MaxElements></Pull>`
	raw = digestPost(t, d.Addr(), user, pw, soapRequest(wsman.ActionPull, wsman.ResourceURI("AMT_GeneralSettings"), "10", "", pull), false)
	if !strings.Contains(raw, "c:InvalidEnumerationContext") {
		t.Fatalf("unknown context: %q", raw)
	}
}

func TestRestartKeepsTheDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev", "firmware.json")
	d := startDevice(t, devOpts{fw: firmware.Config{Path: path}})
	activateCCM(t, d)
	uuid, realm := d.Firmware().UUIDString(), d.Firmware().Realm()
	d.Close()

	d2 := startDevice(t, devOpts{fw: firmware.Config{Path: path}})
	if d2.Firmware().UUIDString() != uuid || d2.Firmware().Realm() != realm || d2.Firmware().ControlMode() != 1 {
		t.Fatal("device lost across restart")
	}
	if _, err := adminClient(d2).AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("admin after restart: %v", err)
	}
}

func TestFleetOnSharedListeners(t *testing.T) {
	host := device.NewHost(nil)
	t.Cleanup(func() { host.Close() })
	ctx := context.Background()
	bound, err := host.ListenLoopback(ctx, "0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(bound)
	var devs []*device.Device
	for i := 2; i <= 4; i++ {
		d := startDevice(t, devOpts{dev: device.Config{Host: host, Addrs: []string{fmt.Sprintf("127.0.0.%d:%s", i, port)}}})
		devs = append(devs, d)
	}
	for _, d := range devs {
		gs, err := lsaClient(d).AMT.GeneralSettings.Get()
		if err != nil {
			t.Fatal(err)
		}
		if gs.Body.GetResponse.DigestRealm != d.Firmware().Realm() {
			t.Fatalf("device at %s answered with another realm", d.Addr())
		}
	}
	// an address with no device is refused
	c, err := net.DialTimeout("tcp", "127.0.0.9:"+port, time.Second)
	if err == nil {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, rerr := c.Read(make([]byte, 1))
		c.Close()
		if n != 0 || rerr == nil {
			t.Fatal("unknown address answered")
		}
	}
	// a closed device leaves the others running
	devs[0].Close()
	if _, err := lsaClient(devs[1]).AMT.GeneralSettings.Get(); err != nil {
		t.Fatal(err)
	}
}

// TestTLSEnforcedHostBasedACM follows rpc-go's local ACM on AMT 19+
// (activation.md §7): StartConfigurationHBased, a mutual-TLS session pinned to
// the device certificate with the provisioning chain, admin digest with the
// new password, SetAdminAclEntryEx, CommitChanges (2057 without MEBx), MEBx,
// CommitChanges.
func TestTLSEnforcedHostBasedACM(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov." + testSuffix})
	d := startDevice(t, devOpts{fw: firmware.Config{Version: "19.0.5", Build: "2215"}, dev: device.Config{LMS: true}})
	fw := d.Firmware()
	if fw.WatchdogFlags()&0x40 == 0 || d.TLSAddr() == "" {
		t.Fatal("AMT 19 device is not TLS-enforced on 16993")
	}
	// the plain LMS port does not answer WS-MAN
	if _, err := lsaClient(d).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("plain WS-MAN on a TLS-enforced device")
	}
	leafHash := sha256.Sum256(chain.Leaf.Raw)
	st, alg, amtHash := fw.StartConfigurationHBased(2, leafHash[:])
	if st != 0 || alg != 2 {
		t.Fatalf("StartConfigurationHBased %d", st)
	}
	pinned := func(cs tls.ConnectionState) error {
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if string(sum[:]) != string(amtHash) {
			return errors.New("not the device certificate")
		}
		return nil
	}
	cert := tls.Certificate{Certificate: [][]byte{chain.Leaf.Raw, chain.Root.Raw}, PrivateKey: chain.LeafKey}
	setup := &tls.Config{InsecureSkipVerify: true, VerifyConnection: pinned, Certificates: []tls.Certificate{cert}}

	// without the provisioning certificate there is no setup session
	if _, err := wsmanTLSClient(d, "admin", "whatever", &tls.Config{InsecureSkipVerify: true}).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("admin accepted without the provisioning certificate")
	}
	m := wsmanTLSClient(d, "admin", testPassword, setup)
	gs, err := m.AMT.GeneralSettings.Get()
	if err != nil {
		t.Fatalf("setup session: %v", err)
	}
	sum := md5.Sum([]byte("admin:" + gs.Body.GetResponse.DigestRealm + ":" + testPassword))
	if r, err := m.AMT.AuthorizationService.SetAdminAclEntryEx("admin", base64.StdEncoding.EncodeToString(sum[:])); err != nil || r.Body.SetAdminResponse.ReturnValue != 0 {
		t.Fatalf("SetAdminAclEntryEx %v %d", err, r.Body.SetAdminResponse.ReturnValue)
	}
	if c, _ := m.AMT.SetupAndConfigurationService.CommitChanges(); c.Body.CommitChanges_OUTPUT.ReturnValue != 2057 {
		t.Fatalf("commit without MEBx password: %d", c.Body.CommitChanges_OUTPUT.ReturnValue)
	}
	if r, err := m.AMT.SetupAndConfigurationService.SetMEBXPassword("Mebx-P@ss1"); err != nil || r.Body.SetMEBxPassword_OUTPUT.ReturnValue != 0 {
		t.Fatalf("SetMEBxPassword %v", err)
	}
	if c, err := m.AMT.SetupAndConfigurationService.CommitChanges(); err != nil || c.Body.CommitChanges_OUTPUT.ReturnValue != 0 {
		t.Fatalf("commit: %v %d", err, c.Body.CommitChanges_OUTPUT.ReturnValue)
	}
	if fw.ControlMode() != 2 || fw.ProvisioningState() != 2 {
		t.Fatalf("after commit: mode %d state %d", fw.ControlMode(), fw.ProvisioningState())
	}
	// a normal TLS session, admin with the password set by SetAdminAclEntryEx
	pool := x509.NewCertPool()
	self, _ := fw.SelfCertificate()
	leaf, _ := x509.ParseCertificate(self.Certificate[0])
	pool.AddCert(leaf)
	if _, err := wsmanTLSClient(d, "admin", testPassword, &tls.Config{RootCAs: pool, ServerName: "localhost"}).AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("admin after TLS activation: %v", err)
	}
	if _, err := wsmanTLSClient(d, "admin", "wrong", &tls.Config{InsecureSkipVerify: true}).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("wrong password accepted after activation")
	}
}

func TestTLSEnforcedCCM(t *testing.T) {
	d := startDevice(t, devOpts{fw: firmware.Config{Version: "19.0.5"}, dev: device.Config{LMS: true}})
	user, pw := d.Firmware().LocalSystemAccount()
	m := wsmanTLSClient(d, user, pw, &tls.Config{InsecureSkipVerify: true})
	gs, err := m.AMT.GeneralSettings.Get()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, gs.Body.GetResponse.DigestRealm, testPassword); err != nil || r.Body.Setup_OUTPUT.ReturnValue != 0 {
		t.Fatalf("Setup over TLS: %v", err)
	}
	a := wsmanTLSClient(d, "admin", testPassword, &tls.Config{InsecureSkipVerify: true})
	if c, err := a.AMT.SetupAndConfigurationService.CommitChanges(); err != nil || c.Body.CommitChanges_OUTPUT.ReturnValue != 0 {
		t.Fatalf("CommitChanges: %v", err)
	}
	if d.Firmware().ControlMode() != 1 {
		t.Fatal("not CCM")
	}
}
