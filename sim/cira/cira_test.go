package cira_test

import (
	"bufio"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/remoteaccess"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/userinitiatedconnection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/power"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/hostbasedsetup"

	"github.com/amtd-project/amtd/internal/apf"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/redir"
)

const (
	adminPassword = "P@ssw0rd-Sim1"
	mpsUser       = "admin"
	mpsPassword   = "Cira-Pw-0001"
	mpsName       = "mps.example.test"
	timeScale     = 0.01 // 30 s become 300 ms
)

type harness struct {
	t      *testing.T
	d      *device.Device
	pki    *pki
	events chan cira.Event
	target atomic.Value // the address "mps.example.test:4433" dials
}

// newDevice starts a device with CIRA enabled whose MPS name resolves to
// the address in h.target.
func newDevice(t *testing.T, p *pki, mpsAddr string, tweak func(*cira.Options)) *harness {
	t.Helper()
	h := &harness{t: t, pki: p, events: make(chan cira.Event, 1024)}
	h.target.Store(mpsAddr)
	var n atomic.Int64
	fw, err := firmware.Open(firmware.Config{Path: filepath.Join(t.TempDir(), "fw.json"), DNSSuffix: "corp.example.com",
		GenerateKey: func(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 200+int(n.Add(1))), nil }})
	if err != nil {
		t.Fatal(err)
	}
	opts := &cira.Options{
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != net.JoinHostPort(mpsName, "4433") {
				return nil, errors.New("unexpected MPS address " + addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, h.target.Load().(string))
		},
		TimeScale:        timeScale,
		MinBackoff:       20 * time.Millisecond,
		MaxBackoff:       200 * time.Millisecond,
		HandshakeTimeout: 10 * time.Second,
		Observer:         func(e cira.Event) { h.events <- e },
	}
	if tweak != nil {
		tweak(opts)
	}
	d, err := device.New(device.Config{Firmware: fw, Addrs: []string{"127.0.0.1:0"}, CIRA: opts})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		d.Close()
	})
	h.d = d
	return h
}

func lanClient(d *device.Device, user, pw string) wsman.Messages {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", d.Addr())
	}}
	return wsman.NewMessages(client.Parameters{Target: "127.0.0.1", Username: user, Password: pw, UseDigest: true, Transport: tr, Timeout: 10 * time.Second})
}

// configure activates the device in CCM and configures CIRA the way RPS
// does (activation.md §10.8), through Intel's WS-MAN client on the LAN.
func (h *harness) configure() { h.configureWith(true) }

func (h *harness) configureWith(periodic bool) {
	t := h.t
	t.Helper()
	fw := h.d.Firmware()
	u, p := fw.LocalSystemAccount()
	lsa := lanClient(h.d, u, p)
	gs, err := lsa.AMT.GeneralSettings.Get()
	if err != nil {
		t.Fatal(err)
	}
	if r, err := lsa.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, gs.Body.GetResponse.DigestRealm, adminPassword); err != nil || r.Body.Setup_OUTPUT.ReturnValue != 0 {
		t.Fatalf("Setup: %v", err)
	}
	a := lanClient(h.d, "admin", adminPassword)
	if _, err := a.AMT.PublicKeyManagementService.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(h.pki.root.Raw)); err != nil {
		t.Fatal(err)
	}
	add, err := a.AMT.RemoteAccessService.AddMPS(remoteaccess.AddMpServerRequest{AccessInfo: mpsName, InfoFormat: remoteaccess.FQDN, Port: 4433,
		AuthMethod: remoteaccess.UsernamePasswordAuthentication, Username: mpsUser, Password: mpsPassword})
	if err != nil || add.Body.AddMpServerResponse.ReturnValue != 0 {
		t.Fatalf("AddMpServer: %v", err)
	}
	const sap = "Intel(r) AMT:Management Presence Server 0"
	if _, err := a.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(remoteaccess.RemoteAccessPolicyRuleRequest{Trigger: remoteaccess.UserInitiated, TunnelLifeTime: 300}, sap); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AMT.UserInitiatedConnectionService.RequestStateChange(userinitiatedconnection.BIOSandOSInterfacesEnabled); err != nil {
		t.Fatal(err)
	}
	if !periodic {
		return
	}
	// the periodic rule makes the device call home
	if _, err := a.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(remoteaccess.RemoteAccessPolicyRuleRequest{Trigger: remoteaccess.Periodic, ExtendedData: "AAAAAAAAABk="}, sap); err != nil {
		t.Fatal(err)
	}
}

// waitFor returns the next event of kind (others are skipped).
func (h *harness) waitFor(kind cira.EventKind) cira.Event {
	h.t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e := <-h.events:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			h.t.Fatalf("no event %d; status %+v", kind, h.d.CIRA().Status())
		}
	}
}

// overChannel is Intel's WS-MAN client whose HTTP connections are channels
// to port 16992 opened by the test MPS.
func overChannel(c *mpsConn, user, pw string) wsman.Messages {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return c.open(ctx, apf.ChannelForwardedTCPIP, 16992, 81920)
	}}
	return wsman.NewMessages(client.Parameters{Target: "device", Username: user, Password: pw, UseDigest: true, Transport: tr, Timeout: 10 * time.Second})
}

// TestDeviceCallsHome: after an RPS-style configuration the device connects
// to the MPS it was given, authenticates, forwards AMT's ports, adopts the
// keepalive interval, and serves WS-MAN and SOL over channels with flow
// control.
func TestDeviceCallsHome(t *testing.T) {
	p := newPKI(t, mpsName)
	mps := newTestMPS(t, p.server)
	h := newDevice(t, p, mps.addr(), nil)
	if st := h.d.CIRA().Status(); st.State != cira.StateIdle {
		t.Fatalf("unconfigured device: %+v", st)
	}
	h.configure()

	c := mps.next(10 * time.Second)
	pv, ports := c.handshake(mpsUser, mpsPassword, 2, 4) // 2 s and 4 s, scaled: 20 ms and 40 ms
	if pv.UUID.String() != h.d.Firmware().UUIDString() || pv.Major != 1 || pv.TriggerReason != apf.TriggerPeriodic {
		t.Fatalf("PROTOCOLVERSION %+v", pv)
	}
	if !slices.Equal(ports, []uint32{16993, 16992, 664, 623, 16995, 16994, 5900}) {
		t.Fatalf("forwarded ports %v", ports)
	}
	if v := c.c.ConnectionState(); v.CipherSuite != 0x009C /* TLS_RSA_WITH_AES_128_GCM_SHA256 */ {
		t.Fatalf("cipher suite %#x", v.CipherSuite)
	}
	h.waitFor(cira.EventConnected)
	if e := h.waitFor(cira.EventKeepaliveOptions); e.Interval != 20*time.Millisecond {
		t.Fatalf("keepalive interval %v", e.Interval)
	}
	c.serve()
	// keepalives at the interval asked for (scaled)
	first := <-c.keepalives
	var last time.Time
	for range 3 {
		last = <-c.keepalives
	}
	if gap := last.Sub(first) / 3; gap < 10*time.Millisecond || gap > 2*time.Second {
		t.Fatalf("keepalive every %v, want about 20ms", gap)
	}
	if st := h.d.CIRA().Status(); st.State != cira.StateConnected || st.Keepalive != 20*time.Millisecond || st.Server != net.JoinHostPort(mpsName, "4433") {
		t.Fatalf("status %+v", st)
	}

	// WS-MAN over channels, with the digest of the device's admin
	m := overChannel(c, "admin", adminPassword)
	gs, err := m.AMT.GeneralSettings.Get()
	if err != nil || gs.Body.GetResponse.DigestRealm != h.d.Firmware().Realm() {
		t.Fatalf("GeneralSettings over CIRA: %v", err)
	}
	if r, err := m.CIM.PowerManagementService.RequestPowerStateChange(power.PowerCycleOffHard /* 5: power cycle */); err != nil || r.Body.RequestPowerStateChangeResponse.ReturnValue != 0 {
		t.Fatalf("power cycle over CIRA: %v", err)
	}
	audit, err := m.AMT.AuditLog.ReadRecords(1)
	if err != nil {
		t.Fatal(err)
	}
	if rec := audit.Body.DecodedRecordsResponse[0]; rec.Event != "Performed Power Cycle" || rec.NetAddress != "127.0.0.1" {
		t.Fatalf("audit record of the power cycle %+v", rec)
	}
	if _, err := overChannel(c, "admin", "wrong").AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("wrong digest password accepted over CIRA")
	}

	// channels the device refuses
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.open(ctx, apf.ChannelForwardedTCPIP, 664, 4096); err == nil || !strings.Contains(err.Error(), "reason 2") {
		t.Fatalf("port 664: %v", err)
	}
	if _, err := c.open(ctx, "session", 16992, 4096); err == nil || !strings.Contains(err.Error(), "reason 3") {
		t.Fatalf("channel type session: %v", err)
	}
	if _, err := c.open(ctx, apf.ChannelForwardedTCPIP, 16993, 4096); err == nil {
		t.Fatal("16993 opened without TLS configured")
	}

	// SOL over a channel with a tiny window: the device must segment to
	// the credit (testChan fails the test otherwise) and wait for adjusts
	h.d.Firmware().Update(func(s *firmware.State) error { s.OptIn.Required = firmware.OptInRequiredNone; return nil })
	ch, err := c.open(ctx, apf.ChannelForwardedTCPIP, 16994, 16)
	if err != nil {
		t.Fatal(err)
	}
	rc := redir.NewClient(ch)
	if st, err := rc.Start(redir.TagSOL); err != nil || st != redir.StatusSuccess {
		t.Fatalf("SOL start: %d %v", st, err)
	}
	if st, err := rc.DigestLogin("admin", adminPassword); err != nil || st != redir.AuthSuccess {
		t.Fatalf("SOL login: %d %v", st, err)
	}
	if err := rc.StartSOL(); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.ReadSOLUntil("login: "); err != nil {
		t.Fatal(err)
	}
	if err := rc.SendSOL("echo " + strings.Repeat("x", 100) + "\r"); err != nil {
		t.Fatal(err)
	}
	out, err := rc.ReadSOLUntil("login: ")
	if err != nil || !strings.Contains(out, "\r\n"+strings.Repeat("x", 100)+"\r\n") {
		t.Fatalf("SOL echo %q %v", out, err)
	}
	if ch.maxChunk > 16 {
		t.Fatalf("device sent %d bytes in one message with a 16-byte window", ch.maxChunk)
	}
	rc.End()
	rc.Close()
}

// TestReconnectWithBackoff: after a drop the device reconnects; failed
// attempts back off exponentially (with jitter) up to the cap.
func TestReconnectWithBackoff(t *testing.T) {
	p := newPKI(t, mpsName)
	mps := newTestMPS(t, p.server)
	h := newDevice(t, p, mps.addr(), nil)
	h.configure()
	c := mps.next(10 * time.Second)
	c.handshake(mpsUser, mpsPassword, 30, 0)
	h.waitFor(cira.EventConnected)

	// the MPS goes away: the connection drops and nothing answers
	down, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := down.Addr().String()
	down.Close() // connection refused from now on
	h.target.Store(downAddr)
	c.c.Close()
	if e := h.waitFor(cira.EventDisconnected); e.Err == nil {
		t.Fatal("disconnection without a reason")
	}
	var delays []time.Duration
	for len(delays) < 6 {
		e := h.waitFor(cira.EventRetry)
		delays = append(delays, e.Delay)
		if e.Attempt != len(delays)-1 {
			t.Fatalf("retry %d reports attempt %d", len(delays), e.Attempt)
		}
	}
	// [d/2, d] with d = 20ms·2^n, capped at 200ms
	for i, d := range delays {
		ceil := min(20*time.Millisecond<<i, 200*time.Millisecond)
		if d < ceil/2 || d > ceil {
			t.Fatalf("delay %d = %v, want within [%v, %v] (all: %v)", i, d, ceil/2, ceil, delays)
		}
	}
	if st := h.d.CIRA().Status(); st.Failures < 5 || st.State == cira.StateConnected {
		t.Fatalf("status while the MPS is down %+v", st)
	}
	// the MPS is back: the device reconnects and the failures reset
	h.target.Store(mps.addr())
	c = mps.next(10 * time.Second)
	c.handshake(mpsUser, mpsPassword, 30, 0)
	h.waitFor(cira.EventConnected)
	if st := h.d.CIRA().Status(); st.State != cira.StateConnected || st.Failures != 0 || st.Connections != 2 {
		t.Fatalf("after reconnecting %+v", st)
	}
}

// TestServerVerification: AMT checks the MPS certificate against the roots
// it was given and the name it was configured with; it also refuses a
// wrong MPS password and tries again later.
func TestServerVerification(t *testing.T) {
	p := newPKI(t, mpsName)
	mps := newTestMPS(t, p.wrongCN)
	h := newDevice(t, p, mps.addr(), nil)
	h.configure()
	if e := h.waitFor(cira.EventAttemptFailed); !errors.Is(e.Err, cira.ErrServerName) {
		t.Fatalf("wrong CN: %v", e.Err)
	}
	<-mps.handErrs
	mps.setCert(p.foreign)
	if e := h.waitFor(cira.EventAttemptFailed); e.Err == nil || !strings.Contains(e.Err.Error(), "not trusted") {
		t.Fatalf("untrusted issuer: %v", e.Err)
	}
	mps.setCert(p.server)
	c := mps.next(10 * time.Second)
	expect[*apf.ProtocolVersion](t, c)
	expect[*apf.ServiceRequest](t, c)
	c.mustSend(&apf.ServiceAccept{Service: apf.ServiceAuth})
	expect[*apf.UserAuthRequest](t, c)
	c.mustSend(&apf.UserAuthFailure{Methods: apf.MethodPassword})
	c.c.Write([]byte{0}) // MPS's extra zero byte
	if e := h.waitFor(cira.EventAttemptFailed); !errors.Is(e.Err, cira.ErrAuthFailed) {
		t.Fatalf("refused credentials: %v", e.Err)
	}
	c = mps.next(10 * time.Second)
	c.handshake(mpsUser, mpsPassword, 30, 0)
	h.waitFor(cira.EventConnected)
}

// TestStopsWhenUnconfigured: deleting the MPS or unprovisioning the device
// ends the connection for good.
func TestStopsWhenUnconfigured(t *testing.T) {
	p := newPKI(t, mpsName)
	mps := newTestMPS(t, p.server)
	h := newDevice(t, p, mps.addr(), nil)
	h.configure()
	c := mps.next(10 * time.Second)
	c.handshake(mpsUser, mpsPassword, 30, 0)
	h.waitFor(cira.EventConnected)
	c.serve()

	// unprovision through the tunnel itself, as DELETE /amt/deactivate does
	m := overChannel(c, "admin", adminPassword)
	if r, err := m.AMT.SetupAndConfigurationService.Unprovision(1); err != nil || r.Body.Unprovision_OUTPUT.ReturnValue != 0 {
		t.Fatalf("Unprovision: %v", err)
	}
	select {
	case reason := <-c.disconnects:
		if reason != apf.DisconnectByPolicy {
			t.Fatalf("DISCONNECT reason %d", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no DISCONNECT after unprovisioning")
	}
	h.waitFor(cira.EventDisconnected)
	if st := h.d.CIRA().Status(); st.State != cira.StateIdle {
		t.Fatalf("after unprovisioning: %+v", st)
	}
	select {
	case <-mps.accepted:
		t.Fatal("the unprovisioned device connected again")
	default:
	}
}

// TestHostileServer: CHANNEL_DATA beyond the device's window is a protocol
// error (DISCONNECT 2).
func TestHostileServer(t *testing.T) {
	p := newPKI(t, mpsName)
	mps := newTestMPS(t, p.server)
	h := newDevice(t, p, mps.addr(), func(o *cira.Options) { o.ChannelWindow = 4096 })
	h.configure()
	c := mps.next(10 * time.Second)
	c.handshake(mpsUser, mpsPassword, 30, 0)
	h.waitFor(cira.EventConnected)
	c.serve()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// a request larger than the window: the device gives credit back as it
	// reads (the test channel waits for WINDOW_ADJUST), then answers
	big, err := c.open(ctx, apf.ChannelForwardedTCPIP, 16992, 81920)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 20000)
	go big.Write([]byte("POST /wsman HTTP/1.1\r\nHost: device\r\nContent-Length: 20000\r\n\r\n" + body))
	big.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(big), nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("big request: %v %v", resp, err)
	}
	big.Close()

	ch, err := c.open(ctx, apf.ChannelForwardedTCPIP, 16992, 81920)
	if err != nil {
		t.Fatal(err)
	}
	c.mustSend(&apf.ChannelData{RecipientChannel: ch.remote, Data: make([]byte, 5000)})
	select {
	case reason := <-c.disconnects:
		if reason != apf.DisconnectProtocolError {
			t.Fatalf("reason %d", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no DISCONNECT for data beyond the window")
	}
	if e := h.waitFor(cira.EventDisconnected); e.Err == nil || !strings.Contains(e.Err.Error(), "protocol error") {
		t.Fatalf("disconnect reason %v", e.Err)
	}
}

// TestUserInitiatedTunnel: without a periodic policy the device connects
// only when the user asks (trigger 1), and the tunnel ends after the
// policy's TunnelLifeTime.
func TestUserInitiatedTunnel(t *testing.T) {
	p := newPKI(t, mpsName)
	mps := newTestMPS(t, p.server)
	h := newDevice(t, p, mps.addr(), func(o *cira.Options) { o.TimeScale = 0.001 }) // lifetime 300 s → 300 ms
	h.configureWith(false)
	if st := h.d.CIRA().Status(); st.State != cira.StateIdle {
		t.Fatalf("without a periodic policy: %+v", st)
	}
	if err := h.d.CIRA().UserInitiated(); err != nil {
		t.Fatal(err)
	}
	c := mps.next(10 * time.Second)
	pv, _ := c.handshake(mpsUser, mpsPassword, 30, 0)
	if pv.TriggerReason != apf.TriggerUserInitiated {
		t.Fatalf("trigger %d", pv.TriggerReason)
	}
	c.serve()
	select {
	case reason := <-c.disconnects:
		if reason != apf.DisconnectByApplication {
			t.Fatalf("reason %d", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the tunnel did not end")
	}
	if e := h.waitFor(cira.EventDisconnected); e.Err == nil || !strings.Contains(e.Err.Error(), "lifetime") {
		t.Fatalf("end of the tunnel: %v", e.Err)
	}
	if st := h.d.CIRA().Status(); st.State != cira.StateIdle || st.Connections != 1 {
		t.Fatalf("after the tunnel: %+v", st)
	}
}

// TestStopsWhenMPSDeleted: deleting the MPS (on the LAN) disconnects with
// DISCONNECT(BY_POLICY) and the device stays idle.
func TestStopsWhenMPSDeleted(t *testing.T) {
	p := newPKI(t, mpsName)
	mps := newTestMPS(t, p.server)
	h := newDevice(t, p, mps.addr(), nil)
	h.configure()
	c := mps.next(10 * time.Second)
	c.handshake(mpsUser, mpsPassword, 30, 0)
	h.waitFor(cira.EventConnected)
	c.serve()
	if _, err := lanClient(h.d, "admin", adminPassword).AMT.ManagementPresenceRemoteSAP.Delete("Intel(r) AMT:Management Presence Server 0"); err != nil {
		t.Fatal(err)
	}
	select {
	case reason := <-c.disconnects:
		if reason != apf.DisconnectByPolicy {
			t.Fatalf("reason %d", reason)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no DISCONNECT after deleting the MPS")
	}
	h.waitFor(cira.EventDisconnected)
	if st := h.d.CIRA().Status(); st.State != cira.StateIdle {
		t.Fatalf("status %+v", st)
	}
}
