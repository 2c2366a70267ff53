package devaccesstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
	"github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// CIRAServer is a running cira.Server on loopback with a test PKI. Devices
// are admitted with Allow.
type CIRAServer struct {
	*cira.Server
	Addr    string
	Root    *x509.Certificate
	RootPEM []byte

	mu      sync.Mutex
	allowed map[string]cira.DeviceAuth
	waiters map[string][]chan cira.ConnInfo
	gone    map[string][]chan cira.ConnInfo
}

var (
	pkiOnce  sync.Once
	pkiChain *testpki.Chain
)

func ciraChain() *testpki.Chain {
	pkiOnce.Do(func() {
		pkiChain = testpki.NewChain(testpki.ChainOptions{LeafCN: "cira.test", RootCN: "amtd test CIRA root"})
	})
	return pkiChain
}

// StartCIRA starts a CIRA server on 127.0.0.1 with short protocol timings;
// it is stopped by t.Cleanup.
func StartCIRA(t testing.TB, log *slog.Logger) *CIRAServer {
	t.Helper()
	ch := ciraChain()
	cert := tls.Certificate{Certificate: [][]byte{ch.Leaf.Raw}, PrivateKey: ch.Key, Leaf: ch.Leaf}
	s := &CIRAServer{
		Root:    ch.Root,
		RootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ch.Root.Raw}),
		allowed: map[string]cira.DeviceAuth{},
		waiters: map[string][]chan cira.ConnInfo{},
		gone:    map[string][]chan cira.ConnInfo{},
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv, err := cira.NewServer(cira.Config{
		Certificate: &cert,
		Authenticator: cira.AuthenticatorFunc(func(ctx context.Context, uuid string) (cira.DeviceAuth, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			a, ok := s.allowed[uuid]
			if !ok {
				return cira.DeviceAuth{}, cira.ErrUnknownDevice
			}
			return a, nil
		}),
		Observer: cira.ObserverFuncs{
			OnConnected:    func(i cira.ConnInfo) { s.notify(s.waiters, i) },
			OnDisconnected: func(i cira.ConnInfo) { s.notify(s.gone, i) },
		},
		Logger:           log,
		ForwardSettle:    20 * time.Millisecond,
		AuthFailureDelay: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Server = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func (s *CIRAServer) notify(m map[string][]chan cira.ConnInfo, i cira.ConnInfo) {
	s.mu.Lock()
	ws := m[i.UUID]
	delete(m, i.UUID)
	s.mu.Unlock()
	for _, w := range ws {
		w <- i
	}
}

// Allow admits a device with these MPS credentials and tenant.
func (s *CIRAServer) Allow(uuid, user, password, tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowed[uuid] = cira.DeviceAuth{Tenant: tenant, Username: user, Password: password}
}

// expect registers interest in the next event of a kind for uuid.
func (s *CIRAServer) expect(m map[string][]chan cira.ConnInfo, uuid string) chan cira.ConnInfo {
	ch := make(chan cira.ConnInfo, 1)
	s.mu.Lock()
	m[uuid] = append(m[uuid], ch)
	s.mu.Unlock()
	return ch
}

// ExpectDisconnect returns a channel that receives the next Disconnected
// event of uuid.
func (s *CIRAServer) ExpectDisconnect(uuid string) <-chan cira.ConnInfo {
	return s.expect(s.gone, uuid)
}

// Connect makes sim call home to this server (as the device would after
// CIRA configuration) and returns once the server has registered the
// connection. The connection is closed by t.Cleanup.
func (s *CIRAServer) Connect(t testing.TB, sim *Sim, mpsUser, mpsPassword string) *CIRADevice {
	t.Helper()
	registered := s.expect(s.waiters, sim.GUID)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	roots := x509.NewCertPool()
	roots.AddCert(s.Root)
	d, err := DialCIRA(ctx, CIRAConfig{
		Addr: s.Addr, ServerName: "cira.test", Roots: roots,
		UUID: sim.GUID, Username: mpsUser, Password: mpsPassword,
		Target: sim.Device.Addr,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	select {
	case <-registered:
	case <-ctx.Done():
		t.Fatalf("CIRA connection of %s not registered: %v", sim.GUID, ctx.Err())
	}
	return d
}

// CIRAConfig configures DialCIRA.
type CIRAConfig struct {
	Addr       string
	ServerName string
	Roots      *x509.CertPool
	UUID       string
	Username   string
	Password   string
	// Target returns the address every channel the server opens is
	// connected to (the simulated device's WS-MAN listener).
	Target func() string
	// Window is the device's receive window per channel (default 32 KiB).
	Window uint32
}

// CIRADevice is the device side of one APF session: an independent
// implementation of what AMT firmware does (it shares only the wire codec
// with the server).
type CIRADevice struct {
	cfg  CIRAConfig
	conn *tls.Conn
	rd   *apf.Reader

	wmu sync.Mutex // serialises writes

	mu     sync.Mutex
	cond   *sync.Cond
	chans  map[uint32]*devChan
	nextID uint32
	closed bool
	done   chan struct{}
	err    error
}

type devChan struct {
	id     uint32 // ours
	remote uint32 // the server's id
	credit uint32 // bytes we may still send
	target net.Conn
	closed bool // CHANNEL_CLOSE sent
}

// DialCIRA connects, authenticates and forwards 16992 and 16994, then
// serves the session in the background until Close or the server ends it.
func DialCIRA(ctx context.Context, cfg CIRAConfig) (*CIRADevice, error) {
	if cfg.Window == 0 {
		cfg.Window = 32 << 10
	}
	uuid, err := apf.ParseUUID(cfg.UUID)
	if err != nil {
		return nil, err
	}
	var nd net.Dialer
	raw, err := nd.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, amtClientTLS(cfg.ServerName, cfg.Roots))
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	d := &CIRADevice{cfg: cfg, conn: conn, chans: map[uint32]*devChan{}, nextID: 100, done: make(chan struct{})}
	d.cond = sync.NewCond(&d.mu)
	d.rd = apf.NewReader(conn, apf.Limits{})
	d.rd.RequestSuccessHasPort = func() bool { return true }
	if err := d.handshake(uuid); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	go d.serve()
	return d, nil
}

// amtClientTLS checks the server the way AMT does: the chain must lead to
// the trusted root and the subject CN must equal the configured name (AMT
// compares the CN, not SANs; spec/mps.md §1.2).
func amtClientTLS(name string, roots *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("apf: no server certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			leaf := cs.PeerCertificates[0]
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return err
			}
			if leaf.Subject.CommonName != name {
				return fmt.Errorf("apf: server CN %q, want %q", leaf.Subject.CommonName, name)
			}
			return nil
		},
	}
}

func (d *CIRADevice) send(m apf.Message) error {
	b, err := apf.Marshal(m)
	if err != nil {
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_, err = d.conn.Write(b)
	return err
}

// next reads the next message, skipping an echoed PROTOCOLVERSION.
func (d *CIRADevice) next() (apf.Message, error) {
	for {
		m, err := d.rd.ReadMessage()
		if err != nil {
			return nil, err
		}
		if _, ok := m.(*apf.ProtocolVersion); ok {
			continue
		}
		return m, nil
	}
}

func (d *CIRADevice) handshake(uuid apf.UUID) error {
	if err := d.send(&apf.ProtocolVersion{Major: 1, Minor: 0, TriggerReason: apf.TriggerPeriodic, UUID: uuid}); err != nil {
		return err
	}
	if err := d.send(&apf.ServiceRequest{Service: apf.ServiceAuth}); err != nil {
		return err
	}
	if m, err := d.next(); err != nil {
		return err
	} else if _, ok := m.(*apf.ServiceAccept); !ok {
		return fmt.Errorf("apf: want SERVICE_ACCEPT, got %T", m)
	}
	if err := d.send(&apf.UserAuthRequest{Username: d.cfg.Username, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: d.cfg.Password}); err != nil {
		return err
	}
	if m, err := d.next(); err != nil {
		return err
	} else if _, ok := m.(*apf.UserAuthSuccess); !ok {
		return fmt.Errorf("apf: authentication refused (%T)", m)
	}
	if err := d.send(&apf.ServiceRequest{Service: apf.ServicePortForward}); err != nil {
		return err
	}
	if m, err := d.next(); err != nil {
		return err
	} else if _, ok := m.(*apf.ServiceAccept); !ok {
		return fmt.Errorf("apf: want SERVICE_ACCEPT, got %T", m)
	}
	for _, port := range []uint32{16992, 16994} {
		if err := d.send(&apf.GlobalRequest{Name: apf.RequestTCPIPForward, WantReply: true, Port: port}); err != nil {
			return err
		}
		if m, err := d.next(); err != nil {
			return err
		} else if _, ok := m.(*apf.RequestSuccess); !ok {
			return fmt.Errorf("apf: forward %d refused (%T)", port, m)
		}
	}
	return nil
}

// Close ends the session from the device side.
func (d *CIRADevice) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.done
		return nil
	}
	d.closed = true
	d.cond.Broadcast()
	d.mu.Unlock()
	err := d.conn.Close()
	<-d.done
	return err
}

// Done is closed when the session has ended.
func (d *CIRADevice) Done() <-chan struct{} { return d.done }

func (d *CIRADevice) serve() {
	defer close(d.done)
	defer d.teardown()
	for {
		m, err := d.rd.ReadMessage()
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *apf.KeepaliveOptionsRequest:
			_ = d.send(&apf.KeepaliveOptionsReply{Interval: m.Interval, Timeout: m.Timeout})
		case *apf.KeepaliveRequest:
			_ = d.send(&apf.KeepaliveReply{Cookie: m.Cookie})
		case *apf.ChannelOpen:
			d.open(m)
		case *apf.ChannelData:
			d.data(m.RecipientChannel, m.Data)
		case *apf.ChannelWindowAdjust:
			d.mu.Lock()
			if c := d.chans[m.RecipientChannel]; c != nil {
				c.credit += m.BytesToAdd
				d.cond.Broadcast()
			}
			d.mu.Unlock()
		case *apf.ChannelClose:
			d.remoteClose(m.RecipientChannel)
		case *apf.Disconnect:
			return
		}
	}
}

func (d *CIRADevice) teardown() {
	d.mu.Lock()
	d.closed = true
	for id, c := range d.chans {
		c.target.Close()
		delete(d.chans, id)
	}
	d.cond.Broadcast()
	d.mu.Unlock()
	d.conn.Close()
}

func (d *CIRADevice) open(m *apf.ChannelOpen) {
	var nd net.Dialer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	target, err := nd.DialContext(ctx, "tcp", d.cfg.Target())
	cancel()
	if err != nil {
		_ = d.send(&apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenConnectFailed})
		return
	}
	d.mu.Lock()
	d.nextID++
	c := &devChan{id: d.nextID, remote: m.SenderChannel, credit: m.InitialWindow, target: target}
	d.chans[c.id] = c
	d.mu.Unlock()
	if err := d.send(&apf.ChannelOpenConfirmation{RecipientChannel: m.SenderChannel, SenderChannel: c.id, InitialWindow: d.cfg.Window, Reserved: 0xFFFFFFFF}); err != nil {
		target.Close()
		return
	}
	go d.pump(c)
}

// pump copies the device's answer into CHANNEL_DATA within the server's
// window, then closes the channel.
func (d *CIRADevice) pump(c *devChan) {
	buf := make([]byte, 8192)
	for {
		n, err := c.target.Read(buf)
		p := buf[:n]
		for len(p) > 0 {
			d.mu.Lock()
			for c.credit == 0 && !d.closed && !c.closed {
				d.cond.Wait()
			}
			if d.closed || c.closed {
				d.mu.Unlock()
				return
			}
			k := min(uint32(len(p)), c.credit)
			c.credit -= k
			d.mu.Unlock()
			if d.send(&apf.ChannelData{RecipientChannel: c.remote, Data: p[:k]}) != nil {
				return
			}
			p = p[k:]
		}
		if err != nil { // EOF: the device answered and closed
			d.localClose(c)
			return
		}
	}
}

func (d *CIRADevice) data(id uint32, p []byte) {
	d.mu.Lock()
	c := d.chans[id]
	d.mu.Unlock()
	if c == nil {
		return
	}
	if _, err := c.target.Write(p); err != nil {
		d.localClose(c)
		return
	}
	_ = d.send(&apf.ChannelWindowAdjust{RecipientChannel: c.remote, BytesToAdd: uint32(len(p))})
}

// localClose sends CHANNEL_CLOSE once.
func (d *CIRADevice) localClose(c *devChan) {
	d.mu.Lock()
	if c.closed {
		d.mu.Unlock()
		return
	}
	c.closed = true
	d.cond.Broadcast()
	d.mu.Unlock()
	c.target.Close()
	_ = d.send(&apf.ChannelClose{RecipientChannel: c.remote})
}

// remoteClose answers the server's CHANNEL_CLOSE and forgets the channel.
func (d *CIRADevice) remoteClose(id uint32) {
	d.mu.Lock()
	c := d.chans[id]
	delete(d.chans, id)
	d.mu.Unlock()
	if c == nil {
		return
	}
	d.localClose(c)
}
