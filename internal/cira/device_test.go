package cira

// A test AMT device: an APF client written independently of the server's
// connection and channel code (it shares only the wire codec). It connects
// over real TLS, authenticates, forwards ports, answers keepalives and
// serves channels opened to it with a real net/http server.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
)

// ---- test PKI ----

type testPKI struct {
	roots *x509.CertPool
	cert  tls.Certificate
}

var (
	pkiOnce sync.Once
	pki     testPKI
	pkiErr  error
)

// getPKI returns the test CIRA root and server certificate (CN=cira.test,
// IP SAN 127.0.0.1, RSA-2048, valid 2024–2124) from testdata: generating
// RSA keys at test time is slow, and very slow under fuzzing
// instrumentation. The key is a throw-away test key.
func getPKI(t testing.TB) testPKI {
	t.Helper()
	pkiOnce.Do(func() { pki, pkiErr = loadPKI("testdata/test-pki.pem") })
	if pkiErr != nil {
		t.Fatal(pkiErr)
	}
	return pki
}

func loadPKI(path string) (testPKI, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return testPKI{}, err
	}
	cert, err := tls.X509KeyPair(b, b) // leaf, root, key
	if err != nil {
		return testPKI{}, err
	}
	if len(cert.Certificate) != 2 {
		return testPKI{}, fmt.Errorf("%s: want leaf and root", path)
	}
	root, err := x509.ParseCertificate(cert.Certificate[1])
	if err != nil {
		return testPKI{}, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	return testPKI{roots: roots, cert: cert}, nil
}

// amtTLS is a client configuration shaped like AMT's: TLS 1.2, RSA key
// exchange, no SNI.
func amtTLS(p testPKI) *tls.Config {
	return &tls.Config{
		RootCAs:      p.roots,
		ServerName:   "cira.test", // verified against the certificate…
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	}
}

// ---- the device ----

type deviceOptions struct {
	window     uint32 // the device's receive window per channel (default 8192)
	maxSegment int    // the largest CHANNEL_DATA it sends (default 4096)
	handler    http.Handler
	// onOpen, when set, sees CHANNEL_OPEN first; returning true means it
	// answered (or will answer) itself.
	onOpen func(d *testDevice, m *apf.ChannelOpen) bool
	// noAutoAdjust stops the device from returning credit.
	noAutoAdjust bool
}

type testDevice struct {
	t    testing.TB
	conn *tls.Conn
	rd   *apf.Reader
	opts deviceOptions

	wmu sync.Mutex

	mu      sync.Mutex
	chans   map[uint32]*devChan // by the device's id
	nextID  uint32
	pending []bool // want-reply tcpip-forward (true) / cancel (false) in order
	cookie  uint32

	msgs    chan apf.Message // messages not handled by the loop
	ln      *devListener
	httpSrv *http.Server
	loopErr chan error

	statsMu    sync.Mutex
	maxDataLen int
	violations []string
}

func dialDevice(t testing.TB, addr string, cfg *tls.Config, opts deviceOptions) *testDevice {
	t.Helper()
	if opts.window == 0 {
		opts.window = 8192
	}
	if opts.maxSegment == 0 {
		opts.maxSegment = 4096
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("device dial: %v", err)
	}
	d := &testDevice{t: t, conn: c, opts: opts, chans: map[uint32]*devChan{}, msgs: make(chan apf.Message, 256)}
	d.rd = apf.NewReader(c, apf.Limits{MaxData: 1 << 20})
	d.rd.RequestSuccessHasPort = func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		if len(d.pending) == 0 {
			return false
		}
		v := d.pending[0]
		d.pending = d.pending[1:]
		return v
	}
	t.Cleanup(d.close)
	return d
}

func (d *testDevice) close() {
	d.conn.Close()
	if d.httpSrv != nil {
		d.httpSrv.Close()
	}
	if d.loopErr != nil {
		<-d.loopErr
	}
	d.mu.Lock()
	for _, ch := range d.chans {
		ch.shut()
	}
	d.mu.Unlock()
}

func (d *testDevice) send(m apf.Message) error {
	b, err := apf.Marshal(m)
	if err != nil {
		return err
	}
	return d.sendRaw(b)
}

func (d *testDevice) sendRaw(b []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := d.conn.Write(b)
	return err
}

// read reads one message directly (before run).
func (d *testDevice) read(timeout time.Duration) (apf.Message, error) {
	d.conn.SetReadDeadline(time.Now().Add(timeout))
	m, err := d.rd.ReadMessage()
	if err != nil {
		return nil, err
	}
	// Detach aliased bytes.
	b, _ := apf.Marshal(m)
	return apf.Unmarshal(b)
}

func (d *testDevice) mustRead(want byte) apf.Message {
	d.t.Helper()
	m, err := d.read(10 * time.Second)
	if err != nil {
		d.t.Fatalf("device waiting for %s: %v", apf.TypeName(want), err)
	}
	if m.Type() != want {
		d.t.Fatalf("device got %s (%+v), want %s", apf.TypeName(m.Type()), m, apf.TypeName(want))
	}
	return m
}

// authenticate runs PROTOCOLVERSION … USERAUTH_SUCCESS … SERVICE_ACCEPT pfwd.
func (d *testDevice) authenticate(uuid apf.UUID, user, pass string) {
	d.t.Helper()
	must(d.t, d.send(&apf.ProtocolVersion{Major: 1, TriggerReason: apf.TriggerPeriodic, UUID: uuid}))
	must(d.t, d.send(&apf.ServiceRequest{Service: apf.ServiceAuth}))
	if m := d.mustRead(apf.MsgServiceAccept).(*apf.ServiceAccept); m.Service != apf.ServiceAuth {
		d.t.Fatalf("SERVICE_ACCEPT %q", m.Service)
	}
	must(d.t, d.send(&apf.UserAuthRequest{Username: user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: pass}))
	d.mustRead(apf.MsgUserAuthSuccess)
	must(d.t, d.send(&apf.ServiceRequest{Service: apf.ServicePortForward}))
	if m := d.mustRead(apf.MsgServiceAccept).(*apf.ServiceAccept); m.Service != apf.ServicePortForward {
		d.t.Fatalf("SERVICE_ACCEPT %q", m.Service)
	}
}

// forward sends tcpip-forward for each port and checks each reply.
func (d *testDevice) forward(ports ...uint32) {
	d.t.Helper()
	for _, p := range ports {
		d.mu.Lock()
		d.pending = append(d.pending, true)
		d.mu.Unlock()
		must(d.t, d.send(&apf.GlobalRequest{Name: apf.RequestTCPIPForward, WantReply: true, Address: "amt.local", Port: p}))
		m := d.mustRead(apf.MsgRequestSuccess).(*apf.RequestSuccess)
		if !m.HasPort || m.Port != p {
			d.t.Fatalf("REQUEST_SUCCESS %+v for port %d", m, p)
		}
	}
}

// connect dials, authenticates, forwards AMT's seven ports, answers the
// keepalive options and starts the message loop.
func connectDevice(t testing.TB, addr string, uuid apf.UUID, user, pass string, opts deviceOptions) *testDevice {
	t.Helper()
	d := dialDevice(t, addr, amtTLS(getPKI(t)), opts)
	d.authenticate(uuid, user, pass)
	d.forward(16993, 16992, 664, 623, 16995, 16994, 5900)
	ko := d.mustRead(apf.MsgKeepaliveOptionsRequest).(*apf.KeepaliveOptionsRequest)
	must(t, d.send(&apf.KeepaliveOptionsReply{Interval: ko.Interval, Timeout: ko.Timeout}))
	d.run()
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run starts the loop that handles channel traffic and keepalives; other
// messages go to d.msgs.
func (d *testDevice) run() {
	d.ln = &devListener{conns: make(chan net.Conn, 64), done: make(chan struct{})}
	if d.opts.handler != nil {
		d.httpSrv = &http.Server{Handler: d.opts.handler, ReadHeaderTimeout: 10 * time.Second}
		go d.httpSrv.Serve(d.ln)
	}
	d.loopErr = make(chan error, 1)
	d.conn.SetReadDeadline(time.Time{})
	go func() {
		err := d.loop()
		d.conn.Close() // as AMT does after DISCONNECT or EOF
		d.ln.shut()
		close(d.msgs)
		d.loopErr <- err
	}()
}

func (d *testDevice) violation(format string, args ...any) {
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	d.violations = append(d.violations, fmt.Sprintf(format, args...))
}

func (d *testDevice) loop() error {
	for {
		m, err := d.rd.ReadMessage()
		if err != nil {
			return err
		}
		switch m := m.(type) {
		case *apf.KeepaliveRequest:
			d.send(&apf.KeepaliveReply{Cookie: m.Cookie})
		case *apf.ChannelOpen:
			if d.opts.onOpen != nil && d.opts.onOpen(d, m) {
				continue
			}
			d.accept(m)
		case *apf.ChannelData:
			ch := d.channel(m.RecipientChannel)
			if ch == nil {
				d.violation("CHANNEL_DATA for unknown device channel %d", m.RecipientChannel)
				continue
			}
			d.statsMu.Lock()
			d.maxDataLen = max(d.maxDataLen, len(m.Data))
			d.statsMu.Unlock()
			if len(m.Data) > maxSegment+apf.ChannelDataHeaderLen {
				d.violation("CHANNEL_DATA of %d bytes", len(m.Data))
			}
			ch.incoming(m.Data)
		case *apf.ChannelWindowAdjust:
			if ch := d.channel(m.RecipientChannel); ch != nil {
				ch.addCredit(m.BytesToAdd)
			} else {
				d.violation("WINDOW_ADJUST for unknown device channel %d", m.RecipientChannel)
			}
		case *apf.ChannelClose:
			if ch := d.channel(m.RecipientChannel); ch != nil {
				ch.remoteClose()
			} else {
				d.msgs <- m
			}
		default:
			d.msgs <- m
		}
	}
}

// expect waits for a message the loop did not handle.
func (d *testDevice) expect(want byte, timeout time.Duration) apf.Message {
	d.t.Helper()
	select {
	case m, ok := <-d.msgs:
		if !ok {
			d.t.Fatalf("connection ended while waiting for %s", apf.TypeName(want))
		}
		if m.Type() != want {
			d.t.Fatalf("got %s (%+v), want %s", apf.TypeName(m.Type()), m, apf.TypeName(want))
		}
		return m
	case <-time.After(timeout):
		d.t.Fatalf("no %s within %v", apf.TypeName(want), timeout)
	}
	return nil
}

// waitClosed waits for the server to end the connection and returns the
// messages that came first.
func (d *testDevice) waitClosed(timeout time.Duration) []apf.Message {
	d.t.Helper()
	var got []apf.Message
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-d.msgs:
			if !ok {
				return got
			}
			got = append(got, m)
		case <-deadline:
			d.t.Fatalf("connection still open after %v", timeout)
		}
	}
}

func (d *testDevice) channel(id uint32) *devChan {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.chans[id]
}

// accept confirms a channel and hands it to the HTTP server.
func (d *testDevice) accept(m *apf.ChannelOpen) *devChan {
	d.mu.Lock()
	d.nextID++
	app, pump := net.Pipe()
	ch := &devChan{d: d, id: d.nextID + 100, remote: m.SenderChannel, credit: m.InitialWindow,
		window: d.opts.window, app: app, pump: pump, in: make(chan []byte, 1024), creditSig: make(chan struct{}, 1),
		done: make(chan struct{}), port: m.ConnectedPort}
	d.chans[ch.id] = ch
	d.mu.Unlock()
	d.send(&apf.ChannelOpenConfirmation{RecipientChannel: m.SenderChannel, SenderChannel: ch.id, InitialWindow: d.opts.window, Reserved: 0xFFFFFFFF})
	go ch.deliver()
	go ch.pumpOut()
	d.ln.conns <- app
	return ch
}

// devChan is the device end of a channel: net.Pipe's app end is what the
// HTTP server sees; two goroutines move bytes between the pipe and APF.
type devChan struct {
	d      *testDevice
	id     uint32
	remote uint32
	port   uint32
	app    net.Conn
	pump   net.Conn
	in     chan []byte

	mu         sync.Mutex
	credit     uint32 // what the device may still send
	window     uint32 // what the server may still send
	sentClose  bool
	gotClose   bool
	creditSig  chan struct{}
	done       chan struct{}
	doneOnce   sync.Once
	totalBytes int
	adjusts    []uint32 // WINDOW_ADJUST amounts received
}

func (c *devChan) incoming(p []byte) {
	c.mu.Lock()
	if uint32(len(p)) > c.window {
		c.d.violation("server sent %d bytes with %d of window left on channel %d", len(p), c.window, c.id)
	} else {
		c.window -= uint32(len(p))
	}
	c.totalBytes += len(p)
	c.mu.Unlock()
	c.in <- append([]byte(nil), p...)
}

// deliver writes received data into the pipe and returns the credit.
func (c *devChan) deliver() {
	for {
		select {
		case p := <-c.in:
			if _, err := c.pump.Write(p); err != nil {
				return
			}
			if !c.d.opts.noAutoAdjust {
				// Under mu, so that nothing follows our CHANNEL_CLOSE.
				c.mu.Lock()
				c.window += uint32(len(p))
				if !c.sentClose {
					c.d.send(&apf.ChannelWindowAdjust{RecipientChannel: c.remote, BytesToAdd: uint32(len(p))})
				}
				c.mu.Unlock()
			}
		case <-c.done:
			return
		}
	}
}

// pumpOut sends what the app writes, within credit.
func (c *devChan) pumpOut() {
	buf := make([]byte, c.d.opts.maxSegment)
	for {
		c.mu.Lock()
		for c.credit == 0 {
			c.mu.Unlock()
			select {
			case <-c.creditSig:
			case <-c.done:
				return
			}
			c.mu.Lock()
		}
		n := min(int(c.credit), len(buf))
		c.mu.Unlock()
		k, err := c.pump.Read(buf[:n])
		if k > 0 {
			c.mu.Lock()
			c.credit -= uint32(k)
			if !c.sentClose {
				c.d.send(&apf.ChannelData{RecipientChannel: c.remote, Data: buf[:k]})
			}
			c.mu.Unlock()
		}
		if err != nil {
			c.localClose()
			return
		}
	}
}

func (c *devChan) addCredit(n uint32) {
	c.mu.Lock()
	c.adjusts = append(c.adjusts, n)
	c.credit += n
	c.mu.Unlock()
	select {
	case c.creditSig <- struct{}{}:
	default:
	}
}

// localClose: the app closed its end.
func (c *devChan) localClose() {
	c.mu.Lock()
	if !c.sentClose {
		c.d.send(&apf.ChannelClose{RecipientChannel: c.remote})
	}
	c.sentClose = true
	forget := c.gotClose
	c.mu.Unlock()
	if forget {
		c.forget()
	}
}

// remoteClose: the server closed the channel.
func (c *devChan) remoteClose() {
	c.mu.Lock()
	if c.gotClose {
		c.d.violation("second CHANNEL_CLOSE on device channel %d", c.id)
	}
	c.gotClose = true
	if !c.sentClose {
		c.d.send(&apf.ChannelClose{RecipientChannel: c.remote})
	}
	c.sentClose = true
	c.mu.Unlock()
	c.forget()
}

func (c *devChan) forget() {
	c.d.mu.Lock()
	delete(c.d.chans, c.id)
	c.d.mu.Unlock()
	c.shut()
}

func (c *devChan) shut() {
	c.doneOnce.Do(func() {
		close(c.done)
		c.pump.Close()
	})
}

// devListener is a net.Listener whose connections are accepted channels.
type devListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *devListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *devListener) shut()          { l.once.Do(func() { close(l.done) }) }
func (l *devListener) Close() error   { l.shut(); return nil }
func (l *devListener) Addr() net.Addr { return &Addr{UUID: "device", Port: WSMANPort} }

// ---- a server under test ----

type testServer struct {
	srv    *Server
	addr   string
	events chan event
	cancel context.CancelFunc
	done   chan error
}

type event struct {
	connected bool
	info      ConnInfo
}

type device struct {
	uuid     apf.UUID
	user, pw string
	tenant   string
}

func newUUID(t testing.TB) apf.UUID {
	var u apf.UUID
	if _, err := rand.Read(u[:]); err != nil {
		t.Fatal(err)
	}
	return u
}

// registry of test devices for the Authenticator.
type deviceTable struct {
	mu sync.Mutex
	m  map[string]device
}

func (dt *deviceTable) add(d device) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	dt.m[d.uuid.String()] = d
}

func (dt *deviceTable) LookupDevice(ctx context.Context, uuid string) (DeviceAuth, error) {
	dt.mu.Lock()
	defer dt.mu.Unlock()
	d, ok := dt.m[uuid]
	if !ok {
		return DeviceAuth{}, fmt.Errorf("%s: %w", uuid, ErrUnknownDevice)
	}
	return DeviceAuth{Tenant: d.tenant, Username: d.user, Password: d.pw}, nil
}

// startServer runs a server with fast protocol timings on 127.0.0.1.
func startServer(t testing.TB, mod func(*Config)) (*testServer, *deviceTable) {
	t.Helper()
	p := getPKI(t)
	table := &deviceTable{m: map[string]device{}}
	ts := &testServer{events: make(chan event, 1024), done: make(chan error, 1)}
	cfg := Config{
		Certificate:   &p.cert,
		Authenticator: table,
		Observer: ObserverFuncs{
			// Never block a connection: long runs (fuzzing) do not read
			// the events.
			OnConnected:    func(i ConnInfo) { ts.emit(event{true, i}) },
			OnDisconnected: func(i ConnInfo) { ts.emit(event{false, i}) },
		},
		Logger:           testLogger(t),
		AuthTimeout:      5 * time.Second,
		IdleTimeout:      5 * time.Second,
		ForwardSettle:    100 * time.Millisecond,
		WriteTimeout:     5 * time.Second,
		AuthFailureDelay: -1,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.srv, ts.addr, ts.cancel = srv, ln.Addr().String(), cancel
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return after cancel")
		}
	})
	return ts, table
}

func (ts *testServer) emit(e event) {
	select {
	case ts.events <- e:
	default:
	}
}

func (ts *testServer) nextEvent(t testing.TB, timeout time.Duration) event {
	t.Helper()
	select {
	case e := <-ts.events:
		return e
	case <-time.After(timeout):
		t.Fatalf("no status event within %v", timeout)
	}
	return event{}
}

// addDevice registers a fresh device.
func addDevice(t testing.TB, table *deviceTable) device {
	d := device{uuid: newUUID(t), user: "admin", pw: "P@ssw0rd-" + fmt.Sprint(time.Now().UnixNano()%1000), tenant: "tenant-a"}
	table.add(d)
	return d
}

// ping makes a keepalive round trip. Both sides handle messages in order,
// so after two pings every message either side sent before the first has
// been processed by the other (sync).
func (d *testDevice) ping() {
	d.t.Helper()
	d.mu.Lock()
	d.cookie++
	cookie := d.cookie
	d.mu.Unlock()
	must(d.t, d.send(&apf.KeepaliveRequest{Cookie: cookie}))
	if m := d.expect(apf.MsgKeepaliveReply, 5*time.Second).(*apf.KeepaliveReply); m.Cookie != cookie {
		d.t.Fatalf("keepalive cookie %d, want %d", m.Cookie, cookie)
	}
}

func (d *testDevice) sync() { d.ping(); d.ping() }

// nextApp returns the next channel the device accepted (without an HTTP
// handler).
func (d *testDevice) nextApp() net.Conn {
	d.t.Helper()
	select {
	case c := <-d.ln.conns:
		return c
	case <-time.After(5 * time.Second):
		d.t.Fatal("no channel accepted within 5s")
	}
	return nil
}

var errNoMessage = errors.New("no message")

var _ = io.EOF
