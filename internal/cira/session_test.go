package cira

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
)

func TestSessionEstablished(t *testing.T) {
	ts, table := startServer(t, nil)
	dev := addDevice(t, table)
	d := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{})

	e := ts.nextEvent(t, 5*time.Second)
	if !e.connected || e.info.UUID != dev.uuid.String() || e.info.Tenant != "tenant-a" ||
		e.info.TriggerReason != apf.TriggerPeriodic || e.info.ConnID == 0 || e.info.ConnectedAt.IsZero() {
		t.Fatalf("Connected event %+v", e)
	}
	if host, _, _ := net.SplitHostPort(e.info.RemoteAddr); host != "127.0.0.1" {
		t.Fatalf("RemoteAddr %q", e.info.RemoteAddr)
	}

	info, ok := ts.srv.Lookup(strings.ToUpper(dev.uuid.String()))
	if !ok {
		t.Fatal("Lookup: not connected")
	}
	if want := []uint16{16993, 16992, 664, 623, 16995, 16994, 5900}; !slices.Equal(info.Ports, want) {
		t.Fatalf("ports %v, want %v", info.Ports, want)
	}
	if ts.srv.Count() != 1 || !ts.srv.IsConnected(dev.uuid.String()) {
		t.Fatalf("Count %d", ts.srv.Count())
	}

	// Keepalive: the cookie is echoed and LastSeen moves.
	before := info.LastSeen
	must(t, d.send(&apf.KeepaliveRequest{Cookie: 0xCAFEF00D}))
	if m := d.expect(apf.MsgKeepaliveReply, 5*time.Second).(*apf.KeepaliveReply); m.Cookie != 0xCAFEF00D {
		t.Fatalf("cookie %x", m.Cookie)
	}
	info, _ = ts.srv.Lookup(dev.uuid.String())
	if !info.LastSeen.After(before) {
		t.Fatalf("LastSeen %v not after %v", info.LastSeen, before)
	}

	// cancel-tcpip-forward: 1-byte REQUEST_SUCCESS; unknown request: FAILURE.
	d.mu.Lock()
	d.pending = append(d.pending, false)
	d.mu.Unlock()
	must(t, d.send(&apf.GlobalRequest{Name: apf.RequestCancelTCPIPForward, WantReply: true, Port: 5900}))
	if m := d.expect(apf.MsgRequestSuccess, 5*time.Second).(*apf.RequestSuccess); m.HasPort {
		t.Fatalf("cancel reply %+v", m)
	}
	must(t, d.send(&apf.GlobalRequest{Name: "whatever@example.com", WantReply: true}))
	d.expect(apf.MsgRequestFailure, 5*time.Second)
	info, _ = ts.srv.Lookup(dev.uuid.String())
	if slices.Contains(info.Ports, 5900) || len(info.Ports) != 6 {
		t.Fatalf("ports after cancel %v", info.Ports)
	}

	// Device-initiated channels are refused with reason 3.
	must(t, d.send(&apf.ChannelOpen{ChannelType: apf.ChannelDirectTCPIP, SenderChannel: 77, InitialWindow: 4096, ConnectedPort: 16992}))
	if m := d.expect(apf.MsgChannelOpenFailure, 5*time.Second).(*apf.ChannelOpenFailure); m.RecipientChannel != 77 || m.Reason != apf.OpenUnknownChannelType {
		t.Fatalf("open failure %+v", m)
	}

	// A DISCONNECT from the device ends the session; the event follows.
	must(t, d.send(&apf.Disconnect{Reason: apf.DisconnectByApplication}))
	d.waitClosed(5 * time.Second)
	e = ts.nextEvent(t, 5*time.Second)
	if e.connected || e.info.UUID != dev.uuid.String() || e.info.Superseded || e.info.DisconnectedAt.IsZero() {
		t.Fatalf("Disconnected event %+v", e)
	}
	if ts.srv.IsConnected(dev.uuid.String()) || ts.srv.Count() != 0 {
		t.Fatal("still registered after disconnect")
	}
}

func TestKeepaliveOptionsAfterBurst(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.ForwardSettle = 150 * time.Millisecond; c.KeepaliveTimeout = 90 * time.Second })
	dev := addDevice(t, table)

	t.Run("5900 ends the burst", func(t *testing.T) {
		d := dialDevice(t, ts.addr, amtTLS(getPKI(t)), deviceOptions{})
		d.authenticate(dev.uuid, dev.user, dev.pw)
		d.forward(16993, 16992, 5900)
		start := time.Now()
		m := d.mustRead(apf.MsgKeepaliveOptionsRequest).(*apf.KeepaliveOptionsRequest)
		if m.Interval != 30 || m.Timeout != 90 {
			t.Fatalf("options %+v", m)
		}
		if time.Since(start) > 100*time.Millisecond {
			t.Fatalf("options came %v after the 5900 forward", time.Since(start))
		}
		// Only once: a later forward does not repeat it.
		d.forward(623)
		must(t, d.send(&apf.KeepaliveRequest{Cookie: 1}))
		d.mustRead(apf.MsgKeepaliveReply)
	})
	t.Run("settle timer without 5900", func(t *testing.T) {
		d := dialDevice(t, ts.addr, amtTLS(getPKI(t)), deviceOptions{})
		d.authenticate(dev.uuid, dev.user, dev.pw)
		d.forward(16992, 16994)
		last := time.Now()
		d.mustRead(apf.MsgKeepaliveOptionsRequest)
		if el := time.Since(last); el < 140*time.Millisecond {
			t.Fatalf("options after %v, before the settle time", el)
		}
		d.forward(16993)
		must(t, d.send(&apf.KeepaliveRequest{Cookie: 2}))
		if m := d.mustRead(apf.MsgKeepaliveReply).(*apf.KeepaliveReply); m.Cookie != 2 {
			t.Fatalf("%+v", m)
		}
	})
}

// Refusals: every path ends with the right DISCONNECT (or failure) and the
// socket closed.
func TestSessionRefusals(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.AuthTimeout = 400 * time.Millisecond })
	dev := addDevice(t, table)
	pv := func(u apf.UUID) apf.Message { return &apf.ProtocolVersion{Major: 1, TriggerReason: 4, UUID: u} }

	tests := []struct {
		name string
		send []apf.Message
		raw  []byte
		want apf.Message // last message before close; nil: none
		skip int         // messages to read (and ignore) first
	}{
		{name: "unknown UUID", send: []apf.Message{pv(newUUID(t))},
			want: &apf.Disconnect{Reason: apf.DisconnectHostNotAllowedToConnect}},
		{name: "APF version 2", send: []apf.Message{&apf.ProtocolVersion{Major: 2, UUID: dev.uuid}},
			want: &apf.Disconnect{Reason: apf.DisconnectProtocolVersionNotSupported}},
		{name: "GLOBAL_REQUEST before auth", send: []apf.Message{pv(dev.uuid), &apf.GlobalRequest{Name: apf.RequestTCPIPForward, WantReply: true, Port: 16992}},
			want: &apf.Disconnect{Reason: apf.DisconnectProtocolError}},
		{name: "keepalive first", send: []apf.Message{&apf.KeepaliveRequest{Cookie: 1}},
			want: &apf.Disconnect{Reason: apf.DisconnectProtocolError}},
		{name: "pfwd before auth", send: []apf.Message{pv(dev.uuid), &apf.ServiceRequest{Service: apf.ServicePortForward}},
			want: &apf.Disconnect{Reason: apf.DisconnectProtocolError}},
		{name: "unknown service", send: []apf.Message{pv(dev.uuid), &apf.ServiceRequest{Service: "ssh-userauth"}},
			want: &apf.Disconnect{Reason: apf.DisconnectServiceNotAvailable}},
		{name: "wrong password", send: []apf.Message{pv(dev.uuid), &apf.ServiceRequest{Service: apf.ServiceAuth},
			&apf.UserAuthRequest{Username: dev.user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: dev.pw + "x"}},
			skip: 1, want: &apf.UserAuthFailure{Methods: "password"}},
		{name: "wrong user", send: []apf.Message{pv(dev.uuid), &apf.ServiceRequest{Service: apf.ServiceAuth},
			&apf.UserAuthRequest{Username: "root", Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: dev.pw}},
			skip: 1, want: &apf.UserAuthFailure{Methods: "password"}},
		{name: "empty password", send: []apf.Message{pv(dev.uuid), &apf.ServiceRequest{Service: apf.ServiceAuth},
			&apf.UserAuthRequest{Username: dev.user, Service: apf.ServicePortForward, Method: apf.MethodPassword}},
			skip: 1, want: &apf.UserAuthFailure{Methods: "password"}},
		{name: "channel message before pfwd", send: []apf.Message{pv(dev.uuid), &apf.ServiceRequest{Service: apf.ServiceAuth},
			&apf.UserAuthRequest{Username: dev.user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: dev.pw},
			&apf.ChannelClose{RecipientChannel: 1}},
			skip: 2, want: &apf.Disconnect{Reason: apf.DisconnectProtocolError}},
		{name: "unknown message type", raw: []byte{0xEE, 1, 2, 3},
			want: &apf.Disconnect{Reason: apf.DisconnectProtocolError}},
		{name: "oversize string", raw: []byte{apf.MsgServiceRequest, 0, 0, 0x08, 0x01},
			want: &apf.Disconnect{Reason: apf.DisconnectProtocolError}},
		{name: "publickey auth", send: []apf.Message{pv(dev.uuid), &apf.ServiceRequest{Service: apf.ServiceAuth}},
			raw:  append([]byte{apf.MsgUserAuthRequest, 0, 0, 0, 1, 'a', 0, 0, 0, 1, 'b', 0, 0, 0, 9}, "publickey"...),
			skip: 1, want: &apf.Disconnect{Reason: apf.DisconnectProtocolError}},
		{name: "silent until the auth deadline", want: nil},
		{name: "half a PROTOCOLVERSION", raw: []byte{apf.MsgProtocolVersion, 0, 0, 0, 1}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := dialDevice(t, ts.addr, amtTLS(getPKI(t)), deviceOptions{})
			for _, m := range tt.send {
				must(t, d.send(m))
			}
			if tt.raw != nil {
				must(t, d.sendRaw(tt.raw))
			}
			for i := 0; i < tt.skip; i++ {
				if _, err := d.read(5 * time.Second); err != nil {
					t.Fatalf("reading reply %d: %v", i, err)
				}
			}
			start := time.Now()
			if tt.want != nil {
				m, err := d.read(5 * time.Second)
				if err != nil {
					t.Fatalf("want %+v, got %v", tt.want, err)
				}
				b1, _ := apf.Marshal(m)
				b2, _ := apf.Marshal(tt.want)
				if !bytes.Equal(b1, b2) {
					t.Fatalf("got %+v, want %+v", m, tt.want)
				}
				if m.Type() == apf.MsgUserAuthFailure && len(b1) != 14 {
					t.Fatalf("USERAUTH_FAILURE is %d bytes", len(b1))
				}
			}
			if m, err := d.read(5 * time.Second); err == nil {
				t.Fatalf("connection still open, got %+v", m)
			} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
				t.Fatalf("want the server to close, got %v", err)
			}
			if tt.want == nil && time.Since(start) < 200*time.Millisecond {
				t.Fatalf("closed after %v, before the auth deadline", time.Since(start))
			}
		})
	}
	// Only the session that authenticated before misbehaving produced
	// events: Connected then Disconnected.
	var got []bool
	for len(ts.events) > 0 {
		got = append(got, (<-ts.events).connected)
	}
	if !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("events %v, want one Connected and one Disconnected", got)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// USERAUTH "none" is a probe: answered with FAILURE, then the password works.
func TestUserAuthNoneThenPassword(t *testing.T) {
	ts, table := startServer(t, nil)
	dev := addDevice(t, table)
	d := dialDevice(t, ts.addr, amtTLS(getPKI(t)), deviceOptions{})
	must(t, d.send(&apf.ProtocolVersion{Major: 1, UUID: dev.uuid}))
	must(t, d.send(&apf.ServiceRequest{Service: apf.ServiceAuth}))
	d.mustRead(apf.MsgServiceAccept)
	must(t, d.send(&apf.UserAuthRequest{Username: dev.user, Service: apf.ServicePortForward, Method: apf.MethodNone}))
	if m := d.mustRead(apf.MsgUserAuthFailure).(*apf.UserAuthFailure); m.Methods != "password" {
		t.Fatalf("%+v", m)
	}
	must(t, d.send(&apf.UserAuthRequest{Username: dev.user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: dev.pw}))
	d.mustRead(apf.MsgUserAuthSuccess)
}

func TestAuthFailureDelay(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.AuthFailureDelay = 300 * time.Millisecond })
	dev := addDevice(t, table)
	d := dialDevice(t, ts.addr, amtTLS(getPKI(t)), deviceOptions{})
	must(t, d.send(&apf.ProtocolVersion{Major: 1, UUID: dev.uuid}))
	must(t, d.send(&apf.ServiceRequest{Service: apf.ServiceAuth}))
	d.mustRead(apf.MsgServiceAccept)
	start := time.Now()
	must(t, d.send(&apf.UserAuthRequest{Username: dev.user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: "nope"}))
	d.mustRead(apf.MsgUserAuthFailure)
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("failure after %v", el)
	}
}

func TestDebugProbe(t *testing.T) {
	ts, _ := startServer(t, nil)
	// Like a browser: TLS 1.3 allowed, no RSA restriction, SNI sent.
	c, err := tls.Dial("tcp", ts.addr, &tls.Config{RootCAs: getPKI(t).roots, ServerName: "cira.test"})
	must(t, err)
	defer c.Close()
	_, err = c.Write([]byte("GET / HTTP/1.1\r\nHost: cira.test:4433\r\n\r\n"))
	must(t, err)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	body, err := io.ReadAll(c)
	must(t, err)
	s := string(body)
	if !strings.HasPrefix(s, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<!DOCTYPE html>") ||
		!strings.Contains(s, "Intel&reg; AMT computers must connect here using CIRA.") {
		t.Fatalf("probe answer %q", s)
	}
}

func TestIdleTimeout(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.IdleTimeout = 400 * time.Millisecond })
	dev := addDevice(t, table)
	d := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{})
	ts.nextEvent(t, 5*time.Second)

	// Keepalives every 150 ms keep it open well past the timeout.
	start := time.Now()
	for time.Since(start) < time.Second {
		time.Sleep(150 * time.Millisecond) // pacing the device, not synchronisation
		must(t, d.send(&apf.KeepaliveRequest{Cookie: 5}))
		d.expect(apf.MsgKeepaliveReply, 2*time.Second)
	}
	silent := time.Now()
	if !ts.srv.IsConnected(dev.uuid.String()) {
		t.Fatal("closed although the device kept sending")
	}
	// Silence: closed after the idle timeout, not long after.
	d.waitClosed(5 * time.Second)
	el := time.Since(silent)
	if el < 350*time.Millisecond || el > 2*time.Second {
		t.Fatalf("closed %v after the last message (idle timeout 400ms)", el)
	}
	if e := ts.nextEvent(t, 5*time.Second); e.connected || !strings.Contains(e.info.Reason, "idle") {
		t.Fatalf("event %+v", e)
	}
}

// The newer connection for a UUID replaces the older one; events are
// ordered; the older one's teardown does not unregister the newer one.
func TestNewerConnectionWins(t *testing.T) {
	ts, table := startServer(t, nil)
	dev := addDevice(t, table)
	d1 := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{})
	e1 := ts.nextEvent(t, 5*time.Second)

	d2 := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{})
	d1.waitClosed(5 * time.Second)
	down := ts.nextEvent(t, 5*time.Second)
	up := ts.nextEvent(t, 5*time.Second)
	if down.connected || !down.info.Superseded || down.info.ConnID != e1.info.ConnID {
		t.Fatalf("first event after reconnect: %+v", down)
	}
	if !up.connected || up.info.ConnID == e1.info.ConnID {
		t.Fatalf("second event after reconnect: %+v", up)
	}
	info, ok := ts.srv.Lookup(dev.uuid.String())
	if !ok || info.ConnID != up.info.ConnID {
		t.Fatalf("registered %+v, want conn %d", info, up.info.ConnID)
	}
	// The new connection works.
	must(t, d2.send(&apf.KeepaliveRequest{Cookie: 3}))
	d2.expect(apf.MsgKeepaliveReply, 5*time.Second)

	// Server-side disconnect.
	if !ts.srv.Disconnect(dev.uuid.String()) {
		t.Fatal("Disconnect: not connected")
	}
	d2.waitClosed(5 * time.Second)
	if e := ts.nextEvent(t, 5*time.Second); e.connected || e.info.Superseded || e.info.ConnID != up.info.ConnID {
		t.Fatalf("event %+v", e)
	}
	if ts.srv.Disconnect(dev.uuid.String()) {
		t.Fatal("Disconnect of a disconnected device")
	}
}

func TestServeShutdownClosesEverything(t *testing.T) {
	ts, table := startServer(t, nil)
	var devs []*testDevice
	for i := 0; i < 3; i++ {
		dev := addDevice(t, table)
		devs = append(devs, connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{}))
	}
	// And one that has not authenticated yet.
	half := dialDevice(t, ts.addr, amtTLS(getPKI(t)), deviceOptions{})
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	for _, d := range devs {
		d.waitClosed(time.Second)
	}
	if _, err := half.read(time.Second); err == nil || isTimeoutErr(err) {
		t.Fatalf("unauthenticated connection not closed: %v", err)
	}
	if n := ts.srv.Count(); n != 0 {
		t.Fatalf("%d connections registered after Serve returned", n)
	}
	disconnected := 0
	for len(ts.events) > 0 {
		if e := <-ts.events; !e.connected {
			disconnected++
		}
	}
	if disconnected != 3 {
		t.Fatalf("%d Disconnected events, want 3", disconnected)
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Messages arriving together in one TLS record, or a message split across
// records with pauses, are handled on an idle connection (which waits for
// the socket outside tls.Conn.Read).
func TestIdleConnectionFraming(t *testing.T) {
	ts, table := startServer(t, nil)
	dev := addDevice(t, table)
	d := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{})
	ts.nextEvent(t, 5*time.Second)

	joined := enc(&apf.KeepaliveRequest{Cookie: 1}, &apf.KeepaliveRequest{Cookie: 2},
		&apf.GlobalRequest{Name: "nothing", WantReply: true}, &apf.KeepaliveRequest{Cookie: 3})
	must(t, d.sendRaw(joined))
	for _, c := range []uint32{1, 2} {
		if m := d.expect(apf.MsgKeepaliveReply, 5*time.Second).(*apf.KeepaliveReply); m.Cookie != c {
			t.Fatalf("cookie %d, want %d", m.Cookie, c)
		}
	}
	d.expect(apf.MsgRequestFailure, 5*time.Second)
	if m := d.expect(apf.MsgKeepaliveReply, 5*time.Second).(*apf.KeepaliveReply); m.Cookie != 3 {
		t.Fatalf("cookie %d", m.Cookie)
	}

	split := enc(&apf.KeepaliveRequest{Cookie: 4})
	for i := range split {
		must(t, d.sendRaw(split[i:i+1]))
		time.Sleep(20 * time.Millisecond) // let the server go back to waiting between records
	}
	if m := d.expect(apf.MsgKeepaliveReply, 5*time.Second).(*apf.KeepaliveReply); m.Cookie != 4 {
		t.Fatalf("cookie %d", m.Cookie)
	}
}

// slowTable answers look-ups after a delay, as a database does under a
// burst of devices.
type slowTable struct {
	*deviceTable
	delay time.Duration
}

func (s slowTable) LookupDevice(ctx context.Context, uuid string) (DeviceAuth, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return DeviceAuth{}, ctx.Err()
	}
	return s.deviceTable.LookupDevice(ctx, uuid)
}

// The server's own look-up is not charged to the device: a look-up slower
// than the whole authentication deadline still ends in an authenticated
// session, while a device that is itself too slow is still cut off.
func TestSlowLookupNotChargedToDevice(t *testing.T) {
	table := &deviceTable{m: map[string]device{}}
	ts, _ := startServer(t, func(c *Config) {
		c.AuthTimeout = 500 * time.Millisecond
		c.Authenticator = slowTable{deviceTable: table, delay: 800 * time.Millisecond}
	})
	dev := addDevice(t, table)
	connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{})
	if e := ts.nextEvent(t, 5*time.Second); !e.connected || e.info.UUID != dev.uuid.String() {
		t.Fatalf("event %+v", e)
	}

	// Slow peer: after the look-up it still has only its own remaining
	// time, and silence past that ends the connection.
	d := dialDevice(t, ts.addr, amtTLS(getPKI(t)), deviceOptions{})
	must(t, d.send(&apf.ProtocolVersion{Major: 1, TriggerReason: 4, UUID: dev.uuid}))
	start := time.Now()
	for {
		if _, err := d.read(5 * time.Second); err != nil {
			break
		}
	}
	if el := time.Since(start); el < 800*time.Millisecond || el > 3*time.Second {
		t.Fatalf("silent device cut off after %v, want the look-up (800ms) plus what was left of 500ms", el)
	}

	// A look-up that fails with the server's own timeout is DISCONNECT 7.
	ts2, _ := startServer(t, func(c *Config) {
		c.LookupTimeout = 100 * time.Millisecond
		c.Authenticator = slowTable{deviceTable: table, delay: time.Second}
	})
	d2 := dialDevice(t, ts2.addr, amtTLS(getPKI(t)), deviceOptions{})
	must(t, d2.send(&apf.ProtocolVersion{Major: 1, TriggerReason: 4, UUID: dev.uuid}))
	m, err := d2.read(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if dm, ok := m.(*apf.Disconnect); !ok || dm.Reason != apf.DisconnectServiceNotAvailable {
		t.Fatalf("got %+v, want DISCONNECT %d", m, apf.DisconnectServiceNotAvailable)
	}
}
