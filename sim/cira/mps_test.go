package cira_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// pki is a CIRA root and an MPS server certificate issued by it.
type pki struct {
	root     *x509.Certificate
	server   tls.Certificate
	otherCA  *x509.Certificate // a root the device does not trust
	foreign  tls.Certificate   // right name, untrusted issuer
	wrongCN  tls.Certificate   // trusted issuer, wrong name
	serverCN string
}

func newPKI(t testing.TB, cn string) *pki {
	t.Helper()
	now := time.Now()
	mkRoot := func(name string, slot int) (*x509.Certificate, any) {
		key := testpki.Key(2048, slot)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(slot)), Subject: pkix.Name{CommonName: name}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(nil, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return c, key
	}
	leaf := func(cn string, issuer *x509.Certificate, issuerKey any, slot int) tls.Certificate {
		key := testpki.Key(2048, slot)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(100 + slot)), Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-time.Hour),
			NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, URIs: nil}
		der, err := x509.CreateCertificate(nil, tmpl, issuer, &key.PublicKey, issuerKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	root, rootKey := mkRoot("MPSRoot-test", 40)
	other, otherKey := mkRoot("Other root", 41)
	return &pki{root: root, otherCA: other, serverCN: cn,
		server:  leaf(cn, root, rootKey, 42),
		foreign: leaf(cn, other, otherKey, 43),
		wrongCN: leaf("someone.else.test", root, rootKey, 44)}
}

// testMPS is a minimal MPS written for the tests with internal/apf: it
// accepts TLS connections and lets the test drive each APF session.
type testMPS struct {
	t        *testing.T
	ln       net.Listener
	mu       sync.Mutex
	cert     tls.Certificate
	suites   []uint16
	conns    []*mpsConn
	accepted chan *mpsConn
	handErrs chan error // TLS handshake failures
	done     chan struct{}
}

func newTestMPS(t *testing.T, cert tls.Certificate) *testMPS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &testMPS{t: t, ln: ln, cert: cert, accepted: make(chan *mpsConn, 16), handErrs: make(chan error, 16), done: make(chan struct{}),
		// only what AMT offers: RSA key exchange
		suites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}
	go m.accept()
	t.Cleanup(m.close)
	return m
}

func (m *testMPS) addr() string { return m.ln.Addr().String() }

func (m *testMPS) setCert(c tls.Certificate) {
	m.mu.Lock()
	m.cert = c
	m.mu.Unlock()
}

func (m *testMPS) accept() {
	defer close(m.done)
	for {
		raw, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		cfg := &tls.Config{Certificates: []tls.Certificate{m.cert}, CipherSuites: m.suites, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
		m.mu.Unlock()
		tc := tls.Server(raw, cfg)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			raw.Close()
			m.handErrs <- err
			continue
		}
		_ = tc.SetDeadline(time.Time{})
		c := &mpsConn{t: m.t, c: tc, r: apf.NewReader(tc, apf.Limits{}), chans: map[uint32]*testChan{}, nextID: 4,
			keepalives: make(chan time.Time, 64), opens: map[uint32]chan apf.Message{}, closed: make(chan struct{}), disconnects: make(chan uint32, 4)}
		m.mu.Lock()
		m.conns = append(m.conns, c)
		m.mu.Unlock()
		m.accepted <- c
	}
}

func (m *testMPS) close() {
	m.ln.Close()
	<-m.done
	m.mu.Lock()
	for _, c := range m.conns {
		c.c.Close()
	}
	m.mu.Unlock()
}

// next waits for the next accepted connection.
func (m *testMPS) next(timeout time.Duration) *mpsConn {
	m.t.Helper()
	select {
	case c := <-m.accepted:
		return c
	case <-time.After(timeout):
		m.t.Fatal("the device did not connect")
		return nil
	}
}

// mpsConn is one device connection.
type mpsConn struct {
	t   *testing.T
	c   *tls.Conn
	r   *apf.Reader
	wmu sync.Mutex

	mu          sync.Mutex
	chans       map[uint32]*testChan
	opens       map[uint32]chan apf.Message
	nextID      uint32
	keepalives  chan time.Time
	closed      chan struct{}
	disconnects chan uint32
	readErr     error
}

func (c *mpsConn) send(m apf.Message) error {
	b, err := apf.Marshal(m)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err = c.c.Write(b)
	return err
}

func (c *mpsConn) mustSend(m apf.Message) {
	c.t.Helper()
	if err := c.send(m); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next message (before the demultiplexer runs).
func (c *mpsConn) read() apf.Message {
	c.t.Helper()
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	m, err := c.r.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func expect[T apf.Message](t *testing.T, c *mpsConn) T {
	t.Helper()
	m := c.read()
	v, ok := m.(T)
	if !ok {
		t.Fatalf("got %s %+v, want %T", apf.TypeName(m.Type()), m, v)
	}
	return v
}

// accept runs the server side of the connection sequence of spec/mps.md
// §3.1, checking the device's messages, and returns the PROTOCOLVERSION
// and the forwarded ports.
func (c *mpsConn) handshake(user, password string, interval, timeout uint32) (*apf.ProtocolVersion, []uint32) {
	t := c.t
	t.Helper()
	pv := expect[*apf.ProtocolVersion](t, c)
	if sr := expect[*apf.ServiceRequest](t, c); sr.Service != apf.ServiceAuth {
		t.Fatalf("service %q", sr.Service)
	}
	c.mustSend(&apf.ServiceAccept{Service: apf.ServiceAuth})
	ua := expect[*apf.UserAuthRequest](t, c)
	if ua.Method != apf.MethodPassword || ua.Service != apf.ServicePortForward || ua.Username != user || ua.Password != password {
		t.Fatalf("USERAUTH %v (password ok: %v)", ua, ua.Password == password)
	}
	c.mustSend(&apf.UserAuthSuccess{})
	if sr := expect[*apf.ServiceRequest](t, c); sr.Service != apf.ServicePortForward {
		t.Fatalf("service %q", sr.Service)
	}
	c.mustSend(&apf.ServiceAccept{Service: apf.ServicePortForward})
	var ports []uint32
	for range 7 {
		g := expect[*apf.GlobalRequest](t, c)
		if g.Name != apf.RequestTCPIPForward || !g.WantReply {
			t.Fatalf("global request %+v", g)
		}
		ports = append(ports, g.Port)
		c.mustSend(&apf.RequestSuccess{HasPort: true, Port: g.Port})
	}
	c.mustSend(&apf.KeepaliveOptionsRequest{Interval: interval, Timeout: timeout})
	if r := expect[*apf.KeepaliveOptionsReply](t, c); r.Interval != interval || r.Timeout != timeout {
		t.Fatalf("keepalive options reply %+v", r)
	}
	return pv, ports
}

// serve starts the demultiplexer: keepalives are answered and recorded,
// channel messages go to their channels.
func (c *mpsConn) serve() {
	_ = c.c.SetReadDeadline(time.Time{})
	c.r.CheckChannelData = func(recipient, n uint32) error {
		c.mu.Lock()
		ch := c.chans[recipient]
		c.mu.Unlock()
		if ch == nil {
			return nil
		}
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if n > ch.window {
			return fmt.Errorf("device sent %d bytes, window %d", n, ch.window)
		}
		return nil
	}
	go func() {
		defer close(c.closed)
		for {
			m, err := c.r.ReadMessage()
			if err != nil {
				c.mu.Lock()
				c.readErr = err
				for _, ch := range c.chans {
					ch.lost()
				}
				c.mu.Unlock()
				return
			}
			switch m := m.(type) {
			case *apf.KeepaliveRequest:
				c.keepalives <- time.Now()
				_ = c.send(&apf.KeepaliveReply{Cookie: m.Cookie})
			case *apf.Disconnect:
				c.disconnects <- m.Reason
			case *apf.ChannelOpenConfirmation:
				c.deliverOpen(m.RecipientChannel, m)
			case *apf.ChannelOpenFailure:
				c.deliverOpen(m.RecipientChannel, m)
			case *apf.ChannelData:
				if ch := c.channel(m.RecipientChannel); ch != nil {
					ch.data(m.Data)
				}
			case *apf.ChannelWindowAdjust:
				if ch := c.channel(m.RecipientChannel); ch != nil {
					ch.credit(m.BytesToAdd)
				}
			case *apf.ChannelClose:
				if ch := c.channel(m.RecipientChannel); ch != nil {
					ch.remoteClose()
				}
			default:
				c.t.Errorf("unexpected %s from the device", apf.TypeName(m.Type()))
			}
		}
	}()
}

func (c *mpsConn) channel(id uint32) *testChan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chans[id]
}

func (c *mpsConn) deliverOpen(id uint32, m apf.Message) {
	c.mu.Lock()
	w := c.opens[id]
	delete(c.opens, id)
	c.mu.Unlock()
	if w != nil {
		w <- m
	}
}

// open opens a channel to port with the given receive window.
func (c *mpsConn) open(ctx context.Context, typ string, port uint32, window uint32) (*testChan, error) {
	c.mu.Lock()
	id := c.nextID
	c.nextID++
	w := make(chan apf.Message, 1)
	c.opens[id] = w
	ch := &testChan{c: c, id: id, window: window, recvWindow: window, changed: make(chan struct{})}
	c.chans[id] = ch
	c.mu.Unlock()
	if err := c.send(&apf.ChannelOpen{ChannelType: typ, SenderChannel: id, InitialWindow: window, Reserved: 0xFFFFFFFF,
		ConnectedPort: port, OriginatorAddress: "1.2.3.4", OriginatorPort: 1024}); err != nil {
		return nil, err
	}
	select {
	case m := <-w:
		switch m := m.(type) {
		case *apf.ChannelOpenConfirmation:
			ch.mu.Lock()
			ch.remote, ch.send = m.SenderChannel, m.InitialWindow
			ch.mu.Unlock()
			return ch, nil
		case *apf.ChannelOpenFailure:
			return nil, fmt.Errorf("open refused: reason %d", m.Reason)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closed:
		return nil, io.EOF
	}
	return nil, errors.New("unreachable")
}

// testChan is the server end of a channel: it checks that the device never
// exceeds the window and gives credit back as the test reads.
type testChan struct {
	c          *mpsConn
	id, remote uint32
	window     uint32 // current credit the device has
	recvWindow uint32 // advertised window

	mu       sync.Mutex
	changed  chan struct{}
	buf      []byte
	send     uint32 // credit for data to the device
	rclosed  bool
	lclosed  bool
	maxChunk int
	rdl      time.Time
}

func (ch *testChan) signal() { close(ch.changed); ch.changed = make(chan struct{}) }

func (ch *testChan) data(p []byte) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if uint32(len(p)) > ch.window {
		ch.c.t.Errorf("channel %d: %d bytes with %d credit", ch.id, len(p), ch.window)
	}
	ch.window -= uint32(len(p))
	ch.maxChunk = max(ch.maxChunk, len(p))
	ch.buf = append(ch.buf, p...)
	ch.signal()
}

func (ch *testChan) credit(n uint32) {
	ch.mu.Lock()
	ch.send += n
	ch.signal()
	ch.mu.Unlock()
}

func (ch *testChan) remoteClose() {
	ch.mu.Lock()
	ch.rclosed = true
	answer := !ch.lclosed
	ch.lclosed = true
	ch.signal()
	ch.mu.Unlock()
	if answer {
		_ = ch.c.send(&apf.ChannelClose{RecipientChannel: ch.remote})
	}
}

func (ch *testChan) lost() {
	ch.mu.Lock()
	ch.rclosed, ch.lclosed = true, true
	ch.signal()
	ch.mu.Unlock()
}

func (ch *testChan) wait(deadline time.Time) error {
	c := ch.changed
	var timer <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timer = t.C
	}
	ch.mu.Unlock()
	defer ch.mu.Lock()
	select {
	case <-c:
		return nil
	case <-timer:
		return os.ErrDeadlineExceeded
	}
}

func (ch *testChan) Read(p []byte) (int, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for len(ch.buf) == 0 {
		if ch.rclosed {
			return 0, io.EOF
		}
		if err := ch.wait(ch.rdl); err != nil {
			return 0, err
		}
	}
	n := copy(p, ch.buf)
	ch.buf = ch.buf[n:]
	// give the credit back at once
	ch.window += uint32(n)
	go ch.c.send(&apf.ChannelWindowAdjust{RecipientChannel: ch.remote, BytesToAdd: uint32(n)})
	return n, nil
}

func (ch *testChan) Write(p []byte) (int, error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	written := 0
	for written < len(p) {
		if ch.lclosed {
			return written, io.ErrClosedPipe
		}
		if ch.send == 0 {
			if err := ch.wait(time.Now().Add(10 * time.Second)); err != nil {
				return written, err
			}
			continue
		}
		n := min(len(p)-written, int(ch.send), 16384)
		ch.send -= uint32(n)
		if err := ch.c.send(&apf.ChannelData{RecipientChannel: ch.remote, Data: slices.Clone(p[written : written+n])}); err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

func (ch *testChan) Close() error {
	ch.mu.Lock()
	if ch.lclosed {
		ch.mu.Unlock()
		return nil
	}
	ch.lclosed = true
	ch.signal()
	ch.mu.Unlock()
	return ch.c.send(&apf.ChannelClose{RecipientChannel: ch.remote})
}

func (ch *testChan) LocalAddr() net.Addr  { return ch.c.c.LocalAddr() }
func (ch *testChan) RemoteAddr() net.Addr { return ch.c.c.RemoteAddr() }
func (ch *testChan) SetDeadline(t time.Time) error {
	return ch.SetReadDeadline(t)
}
func (ch *testChan) SetReadDeadline(t time.Time) error {
	ch.mu.Lock()
	ch.rdl = t
	ch.signal()
	ch.mu.Unlock()
	return nil
}
func (ch *testChan) SetWriteDeadline(time.Time) error { return nil }
