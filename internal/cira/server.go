package cira

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
)

// ErrNotConnected is returned for a device that has no CIRA connection to
// this server.
var ErrNotConnected = errors.New("cira: device not connected")

// ErrTooManyChannels is returned by Dial when the connection already has
// Config.MaxChannels channels.
var ErrTooManyChannels = errors.New("cira: too many channels on the connection")

// Observer receives connection status events. Connected is called when a
// device has authenticated and is registered as the connection for its
// UUID; Disconnected when that connection has ended and its channels are
// closed. For one UUID the events arrive in order: when a newer connection
// replaces an older one, Disconnected for the older one (Superseded set)
// comes before Connected for the newer one. The methods run on the
// connection's goroutine and must not block for long; nothing is reported
// per keepalive (LastSeen is kept in memory, read it with Server.Lookup or
// Server.Range when persisting).
type Observer interface {
	Connected(ConnInfo)
	Disconnected(ConnInfo)
}

// ObserverFuncs adapts two functions to Observer; nil functions are skipped.
type ObserverFuncs struct {
	OnConnected    func(ConnInfo)
	OnDisconnected func(ConnInfo)
}

// Connected calls OnConnected.
func (o ObserverFuncs) Connected(i ConnInfo) {
	if o.OnConnected != nil {
		o.OnConnected(i)
	}
}

// Disconnected calls OnDisconnected.
func (o ObserverFuncs) Disconnected(i ConnInfo) {
	if o.OnDisconnected != nil {
		o.OnDisconnected(i)
	}
}

// ConnInfo describes one authenticated CIRA connection.
type ConnInfo struct {
	UUID          string    // lower-case text form
	ConnID        uint64    // unique per connection within this process
	Tenant        string    // from DeviceAuth
	RemoteAddr    string    // the device's address as seen by the listener
	TriggerReason uint32    // from PROTOCOLVERSION (apf.Trigger*)
	ConnectedAt   time.Time // when the device authenticated
	LastSeen      time.Time // when the last message arrived
	Ports         []uint16  // ports the device forwards (tcpip-forward)

	// Set for Disconnected only.
	DisconnectedAt time.Time
	Superseded     bool   // a newer connection for the same UUID replaced this one
	Reason         string // why the connection ended, for logs
}

// Server is the CIRA presence server: it accepts TLS connections from AMT
// devices, runs the APF session of each (spec/mps.md §3), keeps the live
// connections by UUID, and opens channels to devices (Dial, RoundTripper).
type Server struct {
	cfg    Config
	tlsCfg *tls.Config
	log    *slog.Logger
	window uint32
	limits apf.Limits
	reg    registry
	ids    atomic.Uint64
}

// NewServer checks the configuration and returns a server; call Serve to
// accept connections.
func NewServer(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:    c,
		tlsCfg: TLSConfig(c.Certificate, c.GetCertificate, c.LegacyTLS),
		log:    c.Logger,
		window: uint32(c.ChannelWindow),
		limits: apf.Limits{MaxString: apf.DefaultMaxString, MaxData: c.ChannelWindow},
	}, nil
}

// TLSConfig returns a copy of the TLS configuration the server uses.
func (s *Server) TLSConfig() *tls.Config { return s.tlsCfg.Clone() }

// Serve accepts connections on ln (a plain TCP listener; the server does
// TLS itself) until ctx is done or ln fails. It then closes ln and every
// connection it accepted, waits for their goroutines, and returns: nil when
// ctx ended it, the Accept error otherwise. Serve may run on several
// listeners at once; they share the registry of devices.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g := &connGroup{conns: make(map[*conn]struct{})}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var retErr error
	var delay time.Duration
	for {
		raw, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				// Out of file descriptors and the like: back off, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("cira: accept failed; retrying", "err", err, "delay", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
				continue
			}
			retErr = fmt.Errorf("cira: accept: %w", err)
			break
		}
		delay = 0
		c := s.newConn(ctx, raw)
		g.add(c)
		go g.serve(c)
	}
	ln.Close()
	g.closeAll()
	g.wg.Wait()
	return retErr
}

// isTemporaryAccept reports accept errors worth retrying (EMFILE, ENFILE,
// ECONNABORTED…), which net reports as temporary.
func isTemporaryAccept(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// connGroup tracks the connections accepted by one Serve call, so that
// shutdown can close them, authenticated or not.
type connGroup struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
}

func (g *connGroup) add(c *conn) {
	g.wg.Add(1)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		c.kick()
	}
	g.conns[c] = struct{}{}
}

// serve is the connection's goroutine (no defers: a small frame at the
// bottom of a stack that idles for days).
func (g *connGroup) serve(c *conn) {
	c.serve()
	g.remove(c)
	g.wg.Done()
}

func (g *connGroup) remove(c *conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.conns, c)
}

func (g *connGroup) closeAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	for c := range g.conns {
		c.kick()
	}
}

func (s *Server) lookup(uuid string) (*conn, error) {
	u, err := apf.ParseUUID(uuid)
	if err != nil {
		return nil, fmt.Errorf("cira: %q: %w", uuid, err)
	}
	c := s.reg.get(u)
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, u)
	}
	return c, nil
}

// Lookup returns the status of a device's live connection.
func (s *Server) Lookup(uuid string) (ConnInfo, bool) {
	c, err := s.lookup(uuid)
	if err != nil {
		return ConnInfo{}, false
	}
	return c.info(), true
}

// IsConnected reports whether a device has a live connection here.
func (s *Server) IsConnected(uuid string) bool {
	_, err := s.lookup(uuid)
	return err == nil
}

// Range calls fn with the status of every live connection until fn returns
// false. It takes no global lock; connections may come and go meanwhile.
func (s *Server) Range(fn func(ConnInfo) bool) {
	s.reg.each(func(c *conn) bool { return fn(c.info()) })
}

// Count returns the number of live authenticated connections.
func (s *Server) Count() int { return s.reg.count() }

// Disconnect closes a device's connection from the server side (for
// DELETE /api/v1/devices/disconnect/:guid). It reports whether there was
// one; the Disconnected event follows asynchronously.
func (s *Server) Disconnect(uuid string) bool {
	c, err := s.lookup(uuid)
	if err != nil {
		return false
	}
	c.kick()
	return true
}

// Dial opens a channel to port on the device (e.g. 16994/16995 for a
// redirection session) and returns it once the device has confirmed it.
// ctx bounds the open only; use the channel's deadlines afterwards.
func (s *Server) Dial(ctx context.Context, uuid string, port uint16) (*Channel, error) {
	c, err := s.lookup(uuid)
	if err != nil {
		return nil, err
	}
	return c.open(ctx, port)
}
