package relay_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/relay"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/redir"
)

// solAndKVM runs what the web UI does with a device: a SOL session and,
// at the same time, a KVM session, both logged in by the relay with the
// stored credentials while the browser knows no password. status reads
// the device's redirection flags.
func solAndKVM(t *testing.T, e *env, s *simDev, via devaccess.Via, status func() (kvm, sol, ider bool)) {
	t.Helper()
	if k, so, i := status(); k || so || i {
		t.Fatalf("sessions before any: kvm %v sol %v ider %v", k, so, i)
	}

	sol := e.open(t, s.guid, "sol")
	start := e.nextStart(t)
	if start.Via != via || start.Mode != relay.SOL || !start.Inject || start.Port != 16994 || start.TLS {
		t.Fatalf("session %+v", start)
	}
	if _, so, _ := status(); !so {
		t.Fatal("SOL session not reported")
	}
	sol.login(t, redir.TagSOL)
	if err := sol.StartSOL(); err != nil {
		t.Fatal(err)
	}
	if out, err := sol.ReadSOLUntil(" login: "); err != nil || !strings.Contains(out, "serial console") {
		t.Fatalf("SOL banner %q %v", out, err)
	}
	sol.solEcho(t, "relayed-both-ways")

	kvm := e.open(t, s.guid, "kvm")
	if i := e.nextStart(t); i.Mode != relay.KVM {
		t.Fatalf("session %+v", i)
	}
	kvm.login(t, redir.TagKVM)
	if k, so, _ := status(); !k || !so {
		t.Fatalf("kvm %v sol %v during both sessions", k, so)
	}
	if s.fw.RedirectionSessions(firmware.RedirKVM) != 1 || s.fw.RedirectionSessions(firmware.RedirSOL) != 1 {
		t.Fatal("the device does not count the sessions")
	}
	kvm.kvmExchange(t, 0x61 /* a */)
	sol.solEcho(t, "still-there")

	// A second SOL session of the same device is refused before the upgrade.
	if _, resp, err := e.dialRelay(relay.Path, relayQuery(s.guid, "sol"), e.relayToken(t, s.guid)); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("second SOL session: %v %v", err, resp)
	}

	// The device ends the SOL session (EndRedirectionSession): the relay
	// closes the WebSocket normally and releases the SOL lock only.
	if err := sol.End(); err != nil {
		t.Fatal(err)
	}
	if code, reason := sol.closeCode(t); code != websocket.CloseNormalClosure || reason != "device closed the session" {
		t.Fatalf("close %d %q", code, reason)
	}
	end := e.nextEnd(t)
	if end.Mode != relay.SOL || !end.LoginPassed || end.ToDevice == 0 || end.ToBrowser == 0 {
		t.Fatalf("ended %+v", end)
	}
	if k, so, _ := status(); !k || so {
		t.Fatalf("after SOL ended: kvm %v sol %v", k, so)
	}

	// The browser closes KVM: the relay closes the device side.
	kvm.ws.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	end = e.nextEnd(t)
	if end.Mode != relay.KVM || end.Reason != "browser closed the session" || end.ToBrowser < 1024*768*4 {
		t.Fatalf("ended %+v", end)
	}
	if k, so, i := status(); k || so || i {
		t.Fatalf("after both ended: kvm %v sol %v ider %v", k, so, i)
	}
	// SOL again: the lock was released
	again := e.open(t, s.guid, "sol")
	e.nextStart(t)
	again.login(t, redir.TagSOL)
	again.Close()
	e.nextEnd(t)
}

// TestRelayLAN: KVM and SOL through the relay to a device reached directly
// on the LAN.
func TestRelayLAN(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := startDevice(t, devOpts{})
	e.recordLAN(t, s, "")
	solAndKVM(t, e, s, devaccess.ViaLAN, func() (bool, bool, bool) { return e.relay.Sessions(s.guid) })
}

// TestRelayCIRA: the same over the device's CIRA connection (a real
// internal/cira server, the simulator's CIRA client), with the API's
// redirectstatus following the sessions.
func TestRelayCIRA(t *testing.T) {
	e := newEnv(t, envOpts{cira: true})
	s := startDevice(t, devOpts{cira: e.cira})
	e.recordCIRA(t, s, "")
	solAndKVM(t, e, s, devaccess.ViaCIRA, func() (bool, bool, bool) { return e.redirectStatus(t, s.guid) })
}

// TestRelayCIRATLS: port 16995 over CIRA: TLS inside the channel, pinned to
// the certificate amtd installed; another pinned certificate is refused.
func TestRelayCIRATLS(t *testing.T) {
	e := newEnv(t, envOpts{cira: true})
	s := startDevice(t, devOpts{cira: e.cira, tlsEnforced: true})
	e.recordCIRA(t, s, "")
	q := strings.Replace(relayQuery(s.guid, "sol"), "port=16994", "port=16995", 1)

	// no certificate stored: nothing to verify the device against
	if _, resp, err := e.dialRelay(relay.Path, q, e.relayToken(t, s.guid)); err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("16995 without a pinned certificate: %v %v", err, resp)
	}
	// a certificate that is not the device's
	other := startDevice(t, devOpts{})
	e.pinTLS(t, s, deviceCert(t, other).Certificate[0])
	if _, resp, err := e.dialRelay(relay.Path, q, e.relayToken(t, s.guid)); err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("16995 with another certificate pinned: %v %v", err, resp)
	}
	if _, so, _ := e.relay.Sessions(s.guid); so {
		t.Fatal("lock kept after a failed dial")
	}

	e.pinTLS(t, s, deviceCert(t, s).Certificate[0])
	b := e.openQuery(t, q, e.relayToken(t, s.guid))
	if i := e.nextStart(t); !i.TLS || i.Port != 16995 || i.Via != devaccess.ViaCIRA {
		t.Fatalf("session %+v", i)
	}
	b.login(t, redir.TagSOL)
	if err := b.StartSOL(); err != nil {
		t.Fatal(err)
	}
	b.ReadSOLUntil(" login: ")
	b.solEcho(t, "over-tls-in-cira")
}

// TestRelayLANTLS: on the LAN a device with a pinned certificate is reached
// on 16995 with TLS whatever port the browser named.
func TestRelayLANTLS(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := startDevice(t, devOpts{})
	host := e.recordLAN(t, s, "")
	cert := deviceCert(t, s)
	front := tlsFront(t, cert, s.d.RedirAddr())
	e.lan.set(host+":16995", func() string { return front })
	e.pinTLS(t, s, cert.Certificate[0])

	b := e.open(t, s.guid, "sol") // port=16994 in the URL
	if i := e.nextStart(t); !i.TLS || i.Port != 16995 || i.Via != devaccess.ViaLAN {
		t.Fatalf("session %+v", i)
	}
	b.login(t, redir.TagSOL)
	if err := b.StartSOL(); err != nil {
		t.Fatal(err)
	}
	b.ReadSOLUntil(" login: ")
	b.solEcho(t, "over-tls-on-the-lan")
	b.Close()
	e.nextEnd(t)

	// a front with another certificate: the pin refuses it
	other := startDevice(t, devOpts{})
	bad := tlsFront(t, deviceCert(t, other), s.d.RedirAddr())
	e.lan.set(host+":16995", func() string { return bad })
	if _, resp, err := e.dialRelay(relay.Path, relayQuery(s.guid, "sol"), e.relayToken(t, s.guid)); err == nil || resp == nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("wrong certificate: %v %v", err, resp)
	}
}

// TestRelayRefusals: every request the relay must refuse is refused before
// the upgrade, with no session and no lock left behind.
func TestRelayRefusals(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := startDevice(t, devOpts{})
	e.recordLAN(t, s, "")
	otherGUID := "00000000-1111-2222-3333-444444444444"
	good := e.relayToken(t, s.guid)

	foreign := func() string {
		key := make([]byte, 32)
		rand.Read(key)
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, &api.Claims{Issuer: e.Server.Auth().Issuer(), DeviceID: s.guid,
			ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute))}).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}()
	cases := []struct {
		name   string
		path   string
		query  string
		token  string
		status int
	}{
		{"no token", relay.Path, relayQuery(s.guid, "sol"), "", 401},
		{"garbage token", relay.Path, relayQuery(s.guid, "sol"), "not.a.jwt", 401},
		{"token signed with another key", relay.Path, relayQuery(s.guid, "sol"), foreign, 401},
		{"expired token", relay.Path, relayQuery(s.guid, "sol"), e.issue(t, "", s.guid, -time.Minute), 401},
		{"API token", relay.Path, relayQuery(s.guid, "sol"), e.Token, 401},
		{"token for another device", relay.Path, relayQuery(s.guid, "sol"), e.issue(t, "", otherGUID, time.Minute), 401},
		{"token of another tenant", relay.Path, relayQuery(s.guid, "sol"), e.issue(t, "tenant-b", s.guid, time.Minute), 401},
		{"token for host, other host", relay.Path, relayQuery(otherGUID, "sol"), good, 401},
		{"unknown device", relay.Path, relayQuery(otherGUID, "sol"), e.issue(t, "", otherGUID, time.Minute), 404},
		{"port 16992", relay.Path, strings.Replace(relayQuery(s.guid, "sol"), "16994", "16992", 1), good, 400},
		{"no port", relay.Path, strings.Replace(relayQuery(s.guid, "sol"), "port=16994&", "", 1), good, 400},
		{"tls=1", relay.Path, strings.Replace(relayQuery(s.guid, "sol"), "tls=0", "tls=1", 1), good, 400},
		{"host not a GUID", relay.Path, strings.Replace(relayQuery(s.guid, "sol"), s.guid, "device-1", 1), good, 400},
		{"gateway path, no token", relay.GatewayPath, relayQuery(s.guid, "sol"), "", 401},
		{"prefixed path, no token", "/mps" + relay.Path, relayQuery(s.guid, "sol"), "", 401},
		{"path in another case", "/Relay/WebRelay.ashx", relayQuery(s.guid, "sol"), "", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, resp, err := e.dialRelay(c.path, c.query, c.token)
			if err == nil {
				conn.Close()
				t.Fatal("upgraded")
			}
			if resp == nil || resp.StatusCode != c.status {
				t.Fatalf("err %v, response %v, want status %d", err, resp, c.status)
			}
		})
	}
	// a plain GET (no upgrade)
	if r := e.Do(t, http.MethodGet, relay.Path+"?"+relayQuery(s.guid, "sol"), nil); r.Status != http.StatusBadRequest {
		t.Fatalf("plain GET: %d", r.Status)
	}
	if k, so, i := e.relay.Sessions(s.guid); k || so || i || len(e.relay.Active()) != 0 {
		t.Fatal("a refused request left a session")
	}
	if strings.Contains(e.Logs.String(), amtPassword) || strings.Contains(e.Logs.String(), good) {
		t.Fatal("a secret reached the log")
	}
	// the good token works, on the gateway path too
	b := e.openQuery(t, relayQuery(s.guid, "sol"), good)
	b.login(t, redir.TagSOL)
	c, _, err := e.dialRelay(relay.GatewayPath, relayQuery(s.guid, "kvm"), e.relayToken(t, s.guid))
	if err != nil {
		t.Fatalf("gateway path: %v", err)
	}
	c.Close()
}

// TestRelayMalformedClosesOnlyThatSession: a malformed redirection message
// ends its own session; the device's other sessions go on.
func TestRelayMalformedClosesOnlyThatSession(t *testing.T) {
	e := newEnv(t, envOpts{cira: true})
	s := startDevice(t, devOpts{cira: e.cira})
	e.recordCIRA(t, s, "")

	sol := e.open(t, s.guid, "sol")
	e.nextStart(t)
	sol.login(t, redir.TagSOL)
	if err := sol.StartSOL(); err != nil {
		t.Fatal(err)
	}
	sol.ReadSOLUntil(" login: ")

	// KVM-type data before any login
	bad := e.open(t, s.guid, "kvm")
	e.nextStart(t)
	bad.send(t, []byte{0x40, 0, 0, 0, 0, 0, 0, 0})
	if code, _ := bad.closeCode(t); code != websocket.CloseProtocolError {
		t.Fatalf("close code %d", code)
	}
	if i := e.nextEnd(t); i.Mode != relay.KVM || !strings.Contains(i.Reason, "malformed") {
		t.Fatalf("ended %+v", i)
	}
	// an AuthenticateSession announcing 16 MiB of data
	bad = e.open(t, s.guid, "kvm")
	e.nextStart(t)
	bad.send(t, []byte{0x13, 0, 0, 0, 4, 0, 0, 0, 1})
	if code, _ := bad.closeCode(t); code != websocket.CloseProtocolError {
		t.Fatalf("close code %d", code)
	}
	e.nextEnd(t)
	// a text frame with a character beyond Latin-1
	bad = e.open(t, s.guid, "kvm")
	e.nextStart(t)
	bad.ws.c.WriteMessage(websocket.TextMessage, []byte("\x10\x00\x00\x00KVMR€"))
	if code, _ := bad.closeCode(t); code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("close code %d", code)
	}
	e.nextEnd(t)

	// The SOL session is unaffected, and KVM can start.
	sol.solEcho(t, "unaffected")
	if k, so, _ := e.redirectStatus(t, s.guid); k || !so {
		t.Fatalf("kvm %v sol %v", k, so)
	}
	kvm := e.open(t, s.guid, "kvm")
	e.nextStart(t)
	kvm.login(t, redir.TagKVM)
	kvm.kvmExchange(t, 0x62)
}

// TestRelayModeFromSession: without a mode the session's type is taken
// from its StartRedirectionSession (and locked then); with a mode, another
// type is refused. Text frames (Latin-1) are accepted.
func TestRelayModeFromSession(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := startDevice(t, devOpts{})
	e.recordLAN(t, s, "")

	b := e.open(t, s.guid, "") // no mode
	if i := e.nextStart(t); i.Mode != "" {
		t.Fatalf("mode %q before the session start", i.Mode)
	}
	if k, so, _ := e.relay.Sessions(s.guid); k || so {
		t.Fatal("locked before the session start")
	}
	// the start as a text frame: one character per byte
	b.ws.c.WriteMessage(websocket.TextMessage, []byte("\x10\x00\x00\x00SOL "))
	if r := b.readFull(t, 13); r[0] != redir.StartRedirectionSessionReply || r[1] != redir.StatusSuccess {
		t.Fatalf("start reply % x", r)
	}
	if _, so, _ := e.relay.Sessions(s.guid); !so {
		t.Fatal("SOL not locked after the session start")
	}
	if st, err := b.DigestLogin("x", "y"); err != nil || st != redir.AuthSuccess {
		t.Fatalf("login %d %v", st, err)
	}

	// another session without a mode that starts SOL: refused
	dup := e.open(t, s.guid, "")
	e.nextStart(t)
	dup.send(t, []byte{0x10, 0, 0, 0, 'S', 'O', 'L', ' '})
	if code, _ := dup.closeCode(t); code != websocket.ClosePolicyViolation {
		t.Fatalf("duplicate SOL: close %d", code)
	}
	e.nextEnd(t)
	// mode=kvm that starts SOL: refused
	mis := e.open(t, s.guid, "kvm")
	e.nextStart(t)
	mis.send(t, []byte{0x10, 0, 0, 0, 'S', 'O', 'L', ' '})
	if code, reason := mis.closeCode(t); code != websocket.ClosePolicyViolation || !strings.Contains(reason, "mode") {
		t.Fatalf("mismatched type: close %d %q", code, reason)
	}
	if i := e.nextEnd(t); i.Mode != relay.KVM {
		t.Fatalf("ended %+v", i)
	}
	if k, so, _ := e.relay.Sessions(s.guid); k || !so {
		t.Fatalf("kvm %v sol %v", k, so)
	}
	if err := b.StartSOL(); err != nil {
		t.Fatal(err)
	}
	b.ReadSOLUntil(" login: ")
	b.solEcho(t, "no-mode")
}

// TestRelayWithoutInjection: without p=2 the browser's login reaches the
// device as sent: a placeholder password fails, the real one works.
func TestRelayWithoutInjection(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := startDevice(t, devOpts{})
	e.recordLAN(t, s, "")
	b := e.openQuery(t, strings.Replace(relayQuery(s.guid, "sol"), "p=2&", "", 1), e.relayToken(t, s.guid))
	if i := e.nextStart(t); i.Inject {
		t.Fatalf("session %+v", i)
	}
	if st, err := b.Start(redir.TagSOL); err != nil || st != 0 {
		t.Fatal(st, err)
	}
	if st, err := b.DigestLogin("admin", "not-the-password"); err != nil || st != redir.AuthFailure {
		t.Fatalf("placeholder password: %d %v", st, err)
	}
	if st, err := b.DigestLogin("admin", amtPassword); err != nil || st != redir.AuthSuccess {
		t.Fatalf("real password: %d %v", st, err)
	}
}

// TestRelayIdleTimeout: a session without data is closed after the idle
// timeout, and its lock released.
func TestRelayIdleTimeout(t *testing.T) {
	e := newEnv(t, envOpts{relay: func(c *relay.Config) { c.IdleTimeout = 300 * time.Millisecond }})
	s := startDevice(t, devOpts{})
	e.recordLAN(t, s, "")
	b := e.open(t, s.guid, "sol")
	e.nextStart(t)
	b.login(t, redir.TagSOL)
	if code, reason := b.closeCode(t); code != websocket.CloseNormalClosure || reason != "idle timeout" {
		t.Fatalf("close %d %q", code, reason)
	}
	if i := e.nextEnd(t); i.Reason != "idle timeout" || i.Ended.Sub(i.Started) < 300*time.Millisecond {
		t.Fatalf("ended %+v", i)
	}
	if _, so, _ := e.relay.Sessions(s.guid); so {
		t.Fatal("lock kept")
	}
}

// TestRelayShutdown: Shutdown closes sessions (1001) and refuses new ones.
func TestRelayShutdown(t *testing.T) {
	e := newEnv(t, envOpts{})
	s := startDevice(t, devOpts{})
	e.recordLAN(t, s, "")
	b := e.open(t, s.guid, "sol")
	e.nextStart(t)
	b.login(t, redir.TagSOL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.relay.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.closeCode(t); code != websocket.CloseGoingAway {
		t.Fatalf("close %d", code)
	}
	if len(e.relay.Active()) != 0 {
		t.Fatal("sessions after Shutdown")
	}
	if _, resp, err := e.dialRelay(relay.Path, relayQuery(s.guid, "sol"), e.relayToken(t, s.guid)); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Shutdown: %v %v", err, resp)
	}
}

// TestRelayIDER: an IDE-R session over CIRA: session start, keepalive ping
// and pong through the relay, reported by redirectstatus.
func TestRelayIDER(t *testing.T) {
	e := newEnv(t, envOpts{cira: true})
	s := startDevice(t, devOpts{cira: e.cira})
	e.recordCIRA(t, s, "")
	b := e.open(t, s.guid, "ider")
	e.nextStart(t)
	b.login(t, redir.TagIDER)
	if _, _, i := e.redirectStatus(t, s.guid); !i {
		t.Fatal("IDE-R session not reported")
	}
	start := append([]byte{redir.StartKVMOrIDER, 0, 0, 0, 1, 0, 0, 0}, make([]byte, 10)...)
	b.send(t, start)
	if r := b.readFull(t, 30); r[0] != redir.StartKVMOrIDERReply || r[1] != 0 {
		t.Fatalf("IDE-R start reply % x", r)
	}
	for seq := byte(2); seq < 5; seq++ {
		b.send(t, []byte{redir.IDERKeepAlivePing, 0, 0, 0, seq, 0, 0, 0})
		if r := b.readFull(t, 8); r[0] != redir.IDERKeepAlivePong {
			t.Fatalf("IDE-R pong % x", r)
		}
	}
	if err := b.End(); err != nil {
		t.Fatal(err)
	}
	if code, _ := b.closeCode(t); code != websocket.CloseNormalClosure {
		t.Fatalf("close %d", code)
	}
	if i := e.nextEnd(t); i.Mode != relay.IDER || !i.LoginPassed {
		t.Fatalf("ended %+v", i)
	}
	if _, _, i := e.redirectStatus(t, s.guid); i {
		t.Fatal("IDE-R still reported")
	}
}
