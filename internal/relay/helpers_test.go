package relay_test

import (
	"context"
	"crypto/md5"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/remoteaccess"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/userinitiatedconnection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"
	"github.com/gorilla/websocket"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/api/mps"
	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/devaccess/devaccesstest"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/relay"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	simcira "github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/redir"
)

const (
	adminPassword = "Adm1n-Pa55word!" // amtd's API administrator
	amtPassword   = "P@ssw0rd-Relay1" // the devices' AMT admin password
	mpsUser       = "admin"
	mpsPassword   = "Cira-Pw-0001"
	ciraName      = "cira.test" // CN of devaccesstest's CIRA certificate
)

var discard = slog.New(slog.DiscardHandler)

// ---- amtd ----

type envOpts struct {
	cira  bool
	relay func(*relay.Config)
}

// env is amtd's API server (real SQLite, sealed secrets, loopback HTTP)
// with the MPS routes and the relay, and optionally a CIRA server.
type env struct {
	*apitest.Env
	relay  *relay.Relay
	access *devaccess.Access
	cira   *devaccesstest.CIRAServer
	lan    *lanMap
	starts chan relay.Info
	ends   chan relay.Info
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	e := &env{lan: &lanMap{m: map[string]func() string{}}, starts: make(chan relay.Info, 64), ends: make(chan relay.Info, 64)}
	if o.cira {
		e.cira = devaccesstest.StartCIRA(t, nil)
	}
	e.Env = apitest.New(t, apitest.Options{
		Auth: api.AuthConfig{Username: "admin", Password: adminPassword},
		Register: func(s *api.Server) {
			ao := devaccess.Options{Store: s.Store(), Secrets: s.Secrets(), DialContext: e.lan.DialContext, Logger: discard}
			mo := mps.Options{}
			rc := relay.Config{Logger: s.Logger(),
				OnStart: func(i relay.Info) { e.starts <- i },
				OnEnd:   func(i relay.Info) { e.ends <- i }}
			if e.cira != nil {
				ao.CIRA, mo.CIRA, rc.CIRA = e.cira.Server, e.cira.Server, e.cira.Server
			}
			a, err := devaccess.New(ao)
			if err != nil {
				t.Fatal(err)
			}
			rc.Access = a
			if o.relay != nil {
				o.relay(&rc)
			}
			rl, err := relay.New(rc)
			if err != nil {
				t.Fatal(err)
			}
			mo.Access, mo.Redirections = a, rl
			mps.Register(s, mo)
			rl.Register(s)
			e.access, e.relay = a, rl
		},
	})
	e.Token = e.issue(t, "", api.AllDevices, time.Hour)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.relay.Shutdown(ctx); err != nil {
			t.Errorf("relay shutdown: %v", err)
		}
	})
	return e
}

func (e *env) issue(t testing.TB, tenant, deviceID string, life time.Duration) string {
	t.Helper()
	tok, err := e.Server.Auth().IssueToken(tenant, deviceID, life)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// relayToken asks the API for a relay token, as the web UI does.
func (e *env) relayToken(t testing.TB, guid string) string {
	t.Helper()
	resp := e.Do(t, http.MethodGet, "/api/v1/authorize/redirection/"+guid, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("relay token: %d %s", resp.Status, resp.Body)
	}
	tok, _ := resp.Object(t)["token"].(string)
	if tok == "" {
		t.Fatalf("relay token: %s", resp.Body)
	}
	return tok
}

// redirectStatus is GET /api/v1/devices/redirectstatus/:guid.
func (e *env) redirectStatus(t testing.TB, guid string) (kvm, sol, ider bool) {
	t.Helper()
	resp := e.Do(t, http.MethodGet, "/api/v1/devices/redirectstatus/"+guid, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("redirectstatus: %d %s", resp.Status, resp.Body)
	}
	o := resp.Object(t)
	return o["isKVMConnected"] == true, o["isSOLConnected"] == true, o["isIDERConnected"] == true
}

// nextEnd waits for the next ended session.
func (e *env) nextEnd(t testing.TB) relay.Info {
	t.Helper()
	select {
	case i := <-e.ends:
		return i
	case <-time.After(20 * time.Second):
		t.Fatal("no session ended")
	}
	return relay.Info{}
}

func (e *env) nextStart(t testing.TB) relay.Info {
	t.Helper()
	select {
	case i := <-e.starts:
		return i
	case <-time.After(20 * time.Second):
		t.Fatal("no session started")
	}
	return relay.Info{}
}

// ---- the browser ----

func wsURL(base, path, query string) string {
	return "ws" + strings.TrimPrefix(base, "http") + path + "?" + query
}

// dialRelay opens the relay WebSocket with token as its subprotocol (""
// for none).
func (e *env) dialRelay(path, query, token string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	if token != "" {
		d.Subprotocols = []string{token}
	}
	return d.Dial(wsURL(e.URL, path, query), nil)
}

func relayQuery(guid, mode string) string {
	q := "p=2&host=" + guid + "&port=16994&tls=0&tls1only=0"
	if mode != "" {
		q += "&mode=" + mode
	}
	return q
}

// browser is the console side: the redirection client of sim/redir over
// the relay WebSocket.
type browser struct {
	*redir.Client
	ws *wsConn
}

// open starts a relay session as the web UI does: a fresh relay token, the
// URL with p=2, then the WebSocket.
func (e *env) open(t testing.TB, guid, mode string) *browser {
	t.Helper()
	return e.openQuery(t, relayQuery(guid, mode), e.relayToken(t, guid))
}

func (e *env) openQuery(t testing.TB, query, token string) *browser {
	t.Helper()
	c, resp, err := e.dialRelay(relay.Path, query, token)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("relay upgrade: %v (status %d)", err, status)
	}
	if c.Subprotocol() != token {
		t.Fatalf("subprotocol not echoed: %q", c.Subprotocol())
	}
	w := &wsConn{c: c}
	_ = w.SetDeadline(time.Now().Add(30 * time.Second))
	b := &browser{Client: redir.NewClient(w), ws: w}
	t.Cleanup(func() { c.Close() })
	return b
}

// login starts a session of the given type and logs in with a placeholder
// password: the relay injects the real credentials.
func (b *browser) login(t testing.TB, tag [4]byte) {
	t.Helper()
	if st, err := b.Start(tag); err != nil || st != redir.StatusSuccess {
		t.Fatalf("session start: status %d, %v", st, err)
	}
	if st, err := b.DigestLogin("anyone", "not-the-password"); err != nil || st != redir.AuthSuccess {
		t.Fatalf("login through the relay: status %d, %v", st, err)
	}
}

// closeCode reads until the relay closes the WebSocket and returns the
// close code and reason.
func (b *browser) closeCode(t testing.TB) (int, string) {
	t.Helper()
	for {
		_, _, err := b.ws.c.NextReader()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("WebSocket ended without a close frame: %v", err)
		}
		return ce.Code, ce.Text
	}
}

// wsConn is a net.Conn over a WebSocket: reads concatenate messages (binary
// or text), writes are binary messages.
type wsConn struct {
	c *websocket.Conn
	r io.Reader
}

func (w *wsConn) Read(p []byte) (int, error) {
	for {
		if w.r == nil {
			_, r, err := w.c.NextReader()
			if err != nil {
				return 0, err
			}
			w.r = r
		}
		n, err := w.r.Read(p)
		if err == io.EOF {
			w.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (w *wsConn) Write(p []byte) (int, error) {
	if err := w.c.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (w *wsConn) Close() error                       { return w.c.Close() }
func (w *wsConn) LocalAddr() net.Addr                { return w.c.LocalAddr() }
func (w *wsConn) RemoteAddr() net.Addr               { return w.c.RemoteAddr() }
func (w *wsConn) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }
func (w *wsConn) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }
func (w *wsConn) SetDeadline(t time.Time) error {
	_ = w.c.SetReadDeadline(t)
	return w.c.SetWriteDeadline(t)
}

// ---- SOL and KVM as a console speaks them ----

// solEcho has the simulated serial console echo a line and checks the
// output: bytes both ways.
func (b *browser) solEcho(t testing.TB, text string) {
	t.Helper()
	if err := b.SendSOL("echo " + text + "\r"); err != nil {
		t.Fatal(err)
	}
	out, err := b.ReadSOLUntil(" login: ")
	if err != nil {
		t.Fatalf("SOL output %q: %v", out, err)
	}
	if !strings.Contains(out, "echo "+text+"\r\n"+text+"\r\n") {
		t.Fatalf("SOL output %q", out)
	}
}

func (b *browser) readFull(t testing.TB, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	if _, err := io.ReadFull(b.Reader(), buf); err != nil {
		t.Fatalf("reading %d bytes: %v", n, err)
	}
	return buf
}

func (b *browser) send(t testing.TB, p []byte) {
	t.Helper()
	if _, err := b.ws.Write(p); err != nil {
		t.Fatal(err)
	}
}

// kvmStart starts KVM after the login and runs the RFB 3.8 handshake; it
// returns the screen size.
func (b *browser) kvmStart(t testing.TB) (w, h int) {
	t.Helper()
	b.send(t, []byte{redir.StartKVMOrIDER, 0, 0, 0, 0, 0, 0, 0})
	head := b.readFull(t, 8+12)
	if head[0] != redir.StartKVMOrIDERReply || string(head[8:]) != "RFB 003.008\n" {
		t.Fatalf("KVM start % x", head)
	}
	b.send(t, []byte("RFB 003.008\n"))
	if sec := b.readFull(t, 2); sec[0] != 1 || sec[1] != 1 {
		t.Fatalf("RFB security types % x", sec)
	}
	b.send(t, []byte{1})
	if res := b.readFull(t, 4); binary.BigEndian.Uint32(res) != 0 {
		t.Fatalf("RFB security result % x", res)
	}
	b.send(t, []byte{1}) // shared
	init := b.readFull(t, 24)
	b.readFull(t, int(binary.BigEndian.Uint32(init[20:])))
	return int(binary.BigEndian.Uint16(init)), int(binary.BigEndian.Uint16(init[2:]))
}

func updateRequest(incremental bool, x, y, w, h int) []byte {
	b := []byte{3, 0}
	if incremental {
		b[1] = 1
	}
	for _, v := range []int{x, y, w, h} {
		b = binary.BigEndian.AppendUint16(b, uint16(v))
	}
	return b
}

// kvmReadRect reads one framebuffer update of a single raw rectangle and
// checks every pixel has colour (32 bpp, little-endian).
func (b *browser) kvmReadRect(t testing.TB, w, h int, colour uint32) {
	t.Helper()
	hdr := b.readFull(t, 4+12)
	if hdr[0] != 0 || binary.BigEndian.Uint16(hdr[2:]) != 1 {
		t.Fatalf("RFB update header % x", hdr)
	}
	if gw, gh := int(binary.BigEndian.Uint16(hdr[8:])), int(binary.BigEndian.Uint16(hdr[10:])); gw != w || gh != h {
		t.Fatalf("rectangle %dx%d, want %dx%d", gw, gh, w, h)
	}
	px := b.readFull(t, w*h*4)
	for i := 0; i < len(px); i += 4 {
		if c := binary.LittleEndian.Uint32(px[i:]); c != colour {
			t.Fatalf("pixel %d is %06x, want %06x", i/4, c, colour)
		}
	}
}

// kvmExchange: a full-screen update (megabytes device → browser through the
// flow control), then a key press whose effect comes back (browser → device
// → browser).
func (b *browser) kvmExchange(t testing.TB, key uint32) {
	t.Helper()
	w, h := b.kvmStart(t)
	b.send(t, updateRequest(false, 0, 0, w, h))
	b.kvmReadRect(t, w, h, redir.ScreenColor(0))
	b.send(t, updateRequest(true, 0, 0, 64, 32))
	b.send(t, binary.BigEndian.AppendUint32([]byte{4, 1, 0, 0}, key)) // key down
	b.kvmReadRect(t, 64, 32, redir.ScreenColor(key))
}

// ---- simulated devices ----

var keySlot atomic.Int64

func keys(bits int) (*rsa.PrivateKey, error) {
	return testpki.Key(bits, 210+int(keySlot.Add(1)%8)), nil
}

type devOpts struct {
	cira        *devaccesstest.CIRAServer // the device calls this CIRA server home
	tlsEnforced bool
	services    func(*device.Device) simcira.Services // replaces the channel handlers (benchmarks)
}

// simDev is a simulated device activated in CCM with amtPassword, user
// consent off, serving redirection on a LAN port and, with devOpts.cira,
// over CIRA.
type simDev struct {
	d      *device.Device
	fw     *firmware.Firmware
	guid   string
	events chan simcira.Event
	cira   *simcira.Client
}

func startDevice(t testing.TB, o devOpts) *simDev {
	t.Helper()
	fc := firmware.Config{DNSSuffix: "sim.example.com", GenerateKey: keys, Logger: discard}
	if o.tlsEnforced {
		v := true
		fc.TLSEnforced = &v
	}
	fw, err := firmware.Open(fc)
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte("admin:" + fw.Realm() + ":" + amtPassword))
	if rv := fw.Setup(2, hex.EncodeToString(sum[:])); rv != 0 {
		t.Fatalf("Setup: %d", rv)
	}
	if err := fw.Update(func(s *firmware.State) error { s.OptIn.Required = firmware.OptInRequiredNone; return nil }); err != nil {
		t.Fatal(err)
	}
	s := &simDev{fw: fw, guid: strings.ToLower(fw.UUIDString()), events: make(chan simcira.Event, 1024)}
	cfg := device.Config{Firmware: fw, Addrs: []string{"127.0.0.1:0"}, RedirAddrs: []string{"127.0.0.1:0"}, Logger: discard}
	var benchOpts *simcira.Options
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if o.cira != nil {
		addr := o.cira.Addr
		opts := simcira.Options{
			Dial: func(ctx context.Context, network, a string) (net.Conn, error) {
				if a != net.JoinHostPort(ciraName, "4433") {
					return nil, errors.New("unexpected MPS address " + a)
				}
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
			TimeScale: 0.01, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			HandshakeTimeout: 10 * time.Second, Logger: discard,
			Observer: func(e simcira.Event) {
				select {
				case s.events <- e:
				default:
				}
			},
		}
		if o.services == nil {
			cfg.CIRA = &opts
		} else {
			benchOpts = &opts
		}
	}
	d, err := device.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s.d = d
	if benchOpts != nil {
		// The simulator's CIRA client in front of other channel handlers.
		c, err := simcira.New(simcira.Config{Options: *benchOpts, Firmware: fw, Services: o.services(d)})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s.cira = c
	}
	return s
}

// recordLAN records the device with a LAN name that the env's dialer maps
// to its listeners, and stores its AMT password.
func (e *env) recordLAN(t testing.TB, s *simDev, tenant string) string {
	t.Helper()
	host := "dev-" + s.guid[:8] + ".lan.test"
	e.lan.add(host, s.d)
	e.putDevice(t, &store.Device{GUID: s.guid, TenantID: tenant, Hostname: host, DeviceInfo: &store.DeviceInfo{IPAddress: host}, Tags: []string{}})
	if err := devcreds.Set(context.Background(), e.Secrets, s.guid, devcreds.AMT, amtPassword); err != nil {
		t.Fatal(err)
	}
	return host
}

func (e *env) putDevice(t testing.TB, d *store.Device) {
	t.Helper()
	if _, err := e.Store.PutDevice(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// pinTLS stores the device's TLS certificate for pinning (as provisioning
// does after configuring TLS).
func (e *env) pinTLS(t testing.TB, s *simDev, der []byte) {
	t.Helper()
	if err := devcreds.Set(context.Background(), e.Secrets, s.guid, devcreds.TLSCert, base64.StdEncoding.EncodeToString(der)); err != nil {
		t.Fatal(err)
	}
}

// deviceCert is the certificate the device's TLS ports serve.
func deviceCert(t testing.TB, s *simDev) tls.Certificate {
	t.Helper()
	if c := s.fw.TLSServer().Cert; c != nil {
		return *c
	}
	c, err := s.fw.SelfCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return *c
}

// recordCIRA records a device without a LAN address, admits it to the
// CIRA server, configures CIRA on it the way RPS does (through Intel's
// WS-MAN client on its LAN port) and waits until it is connected.
func (e *env) recordCIRA(t testing.TB, s *simDev, tenant string) {
	t.Helper()
	e.putDevice(t, &store.Device{GUID: s.guid, TenantID: tenant, Tags: []string{}})
	if err := devcreds.Set(context.Background(), e.Secrets, s.guid, devcreds.AMT, amtPassword); err != nil {
		t.Fatal(err)
	}
	e.cira.Allow(s.guid, mpsUser, mpsPassword, tenant)
	configureCIRA(t, s, e.cira)
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-s.events:
			if ev.Kind == simcira.EventConnected {
				if _, ok := e.cira.Lookup(s.guid); !ok {
					t.Fatal("the device reports connected, the server does not know it")
				}
				return
			}
		case <-timeout:
			t.Fatal("the device did not connect over CIRA")
		}
	}
}

func configureCIRA(t testing.TB, s *simDev, srv *devaccesstest.CIRAServer) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", s.d.Addr())
	}}
	a := wsman.NewMessages(client.Parameters{Target: "127.0.0.1", Username: "admin", Password: amtPassword, UseDigest: true, Transport: tr, Timeout: 10 * time.Second})
	if _, err := a.AMT.PublicKeyManagementService.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(srv.Root.Raw)); err != nil {
		t.Fatal(err)
	}
	add, err := a.AMT.RemoteAccessService.AddMPS(remoteaccess.AddMpServerRequest{AccessInfo: ciraName, InfoFormat: remoteaccess.FQDN, Port: 4433,
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
	if _, err := a.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(remoteaccess.RemoteAccessPolicyRuleRequest{Trigger: remoteaccess.Periodic, ExtendedData: "AAAAAAAAABk="}, sap); err != nil {
		t.Fatal(err)
	}
}

// lanMap resolves the devices' LAN names: host:16992/16993/16994 to the
// simulated device's listeners, host:16995 to a TLS front (tlsFront).
type lanMap struct {
	mu sync.Mutex
	m  map[string]func() string
}

func (l *lanMap) add(host string, d *device.Device) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[net.JoinHostPort(host, "16992")] = d.Addr
	l.m[net.JoinHostPort(host, "16993")] = d.TLSAddr
	l.m[net.JoinHostPort(host, "16994")] = d.RedirAddr
}

func (l *lanMap) set(addr string, target func() string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.m[addr] = target
}

func (l *lanMap) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	f, ok := l.m[addr]
	l.mu.Unlock()
	if !ok {
		return nil, errors.New("lan.test: no route to " + addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, f())
}

// tlsFront serves TLS with cert on a loopback port and forwards the
// plaintext to target: the device's 16995 on the LAN (the simulator serves
// TLS redirection only inside CIRA channels).
func tlsFront(t testing.TB, cert tls.Certificate, target string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{})
				go func() {
					io.Copy(u, c)
					u.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				io.Copy(c, u)
				c.Close()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}
