// Package server is amtd's legacy provisioning server (spec/legacy.md): the
// hello listener (TCP 9971) and the remote configuration it starts.
//
// A device in setup mode ("IN" provisioning state) announces itself with a
// hello. The listener reads it exactly as legacy.md §5 describes (limits, a
// page for browsers, validation), keeps a record of every hello
// (store.HelloEvent, bounded retention), refuses UUIDs not on the allow-list
// (unless the accept-unknown policy is on), ignores a device already being
// configured or cooling down after a failure, and dispatches:
//
//   - version 3 (PKI): one of amtd's domain certificates whose root hash the
//     device trusts is chosen, amtd connects back to the device on 16993 as
//     TLS client presenting that chain, authenticates with HTTP digest trying
//     each credential of legacy.md §7.2 in turn, and runs the setup stage;
//   - version 2 (PSK): the PID selects a PID/PPS pair amtd generated, and the
//     same setup stage runs over TLS-PSK (package tlspsk).
//
// The setup stage (legacy.md §6, §7.3): read state, set the MEBx password and
// a new AMT admin password (each staged in the secret store before the call
// that sets it), synchronise the clock, set host and domain name, install a
// TLS certificate from amtd's CA, CommitChanges. The device is then in admin
// control mode with amtd's credentials; its record is written, and the
// configuration stage follows over TLS pinned to the installed certificate,
// with the provisioning engine's steps (provision.Engine.Configure: network,
// Wi-Fi, 802.1x, proxies, redirection and user consent, TLS or CIRA). Every
// step goes to the device's provisioning log.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// DefaultAddr is the hello listener's address (legacy.md §2).
const DefaultAddr = ":9971"

// Outcomes of hello events (store.HelloEvent.Outcome).
const (
	OutcomeInvalid      = "invalid"       // malformed; not stored, reported to OnResult only
	OutcomeUnknownUUID  = "unknown-uuid"  // not on the allow-list: discarded
	OutcomeBusy         = "busy"          // the UUID or source address is being configured
	OutcomeCooldown     = "cooldown"      // a recent attempt failed; wait for the next hello
	OutcomeOverloaded   = "overloaded"    // too many configurations at once
	OutcomeAccepted     = "accepted"      // configuration started
	OutcomeRefused      = "refused"       // no matching certificate, unknown PID, missing profile…
	OutcomeFailed       = "failed"        // the setup stage failed: the device stays in setup mode
	OutcomeProvisioned  = "provisioned"   // set up and configured per its profile
	OutcomeConfigFailed = "config-failed" // set up (admin control mode, credentials stored); the profile's configuration failed
)

// Timing holds the listener's and the protocol's waits. Zero values take the
// defaults of DefaultTiming.
type Timing struct {
	ReadTimeout      time.Duration // hello read (10 s)
	Cooldown         time.Duration // after a failed attempt (60 s)
	DialTimeout      time.Duration // connect back (10 s)
	HandshakeTimeout time.Duration // TLS handshake with the device (20 s)
	CallTimeout      time.Duration // one WS-MAN call (30 s)
	CommitTimeout    time.Duration // CommitChanges (60 s)
	CommitDelay      time.Duration // after CommitChanges, before the next connection (5 s)
	SessionTimeout   time.Duration // one device's whole configuration (15 min)
}

// DefaultTiming returns legacy.md's values.
func DefaultTiming() Timing {
	return Timing{
		ReadTimeout:      10 * time.Second,
		Cooldown:         60 * time.Second,
		DialTimeout:      10 * time.Second,
		HandshakeTimeout: 20 * time.Second,
		CallTimeout:      30 * time.Second,
		CommitTimeout:    60 * time.Second,
		CommitDelay:      5 * time.Second,
		SessionTimeout:   15 * time.Minute,
	}
}

func (t Timing) withDefaults(noCommitDelay bool) Timing {
	d := DefaultTiming()
	set := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&t.ReadTimeout, d.ReadTimeout)
	set(&t.Cooldown, d.Cooldown)
	set(&t.DialTimeout, d.DialTimeout)
	set(&t.HandshakeTimeout, d.HandshakeTimeout)
	set(&t.CallTimeout, d.CallTimeout)
	set(&t.CommitTimeout, d.CommitTimeout)
	set(&t.SessionTimeout, d.SessionTimeout)
	if !noCommitDelay {
		set(&t.CommitDelay, d.CommitDelay)
	}
	return t
}

// Config configures the legacy provisioning server.
type Config struct {
	Store   store.Store   // required
	Secrets secrets.Store // required
	// Engine runs the configuration stage (and writes the provisioning
	// log); required.
	Engine *provision.Engine
	// CA issues the TLS certificate installed on each device before commit;
	// required (*ca.CA).
	CA provision.CA
	// PSK looks PID/PPS pairs up; nil builds one on Store and Secrets.
	PSK    *psk.Keeper
	Logger *slog.Logger

	// AcceptUnknown is the documented policy for hellos from UUIDs not on
	// the allow-list: false (default, legacy.md §5 step 4) discards them;
	// true configures them with DefaultProfile in DefaultTenant, as if they
	// had been listed without host or domain name. Anyone on the network
	// who can send a hello then gets a device provisioned with that
	// profile: use it only on isolated staging networks.
	AcceptUnknown  bool
	DefaultProfile string
	DefaultTenant  string

	// DevicePort is where devices serve TLS in setup mode (default 16993).
	DevicePort int
	// SetupPasswords returns the operator's additional setup-mode digest
	// passwords (legacy.md §7.2 item 4), tried after the device's stored
	// password, the empty password and the profile's MEBx password. Nil:
	// none.
	SetupPasswords func(ctx context.Context) ([]string, error)
	// MaxAuthFailures is the number of refused credentials after which an
	// attempt stops (legacy.md §7.2: 3).
	MaxAuthFailures int

	Timing Timing
	// NoCommitDelay skips the wait after CommitChanges (tests; real
	// firmware restarts its web server).
	NoCommitDelay bool

	// MaxConnections bounds concurrent hello connections (default 256);
	// more are closed at once.
	MaxConnections int
	// MaxSessions bounds concurrent device configurations (default 32); a
	// hello beyond it is ignored (the device sends another).
	MaxSessions int
	// KeepHelloEvents is the number of hello events retained (default
	// 10000, all tenants).
	KeepHelloEvents int
	// ReverseLookup resolves the source address to a name for the log and
	// for the device record when the allow-list gives no host name.
	ReverseLookup bool
	Resolver      *net.Resolver

	// OnResult, when set, is called with each hello's final record: at
	// once for hellos that start nothing, at the end of the configuration
	// otherwise. It must not block for long.
	OnResult func(store.HelloEvent)

	// Dial connects to devices (default net.Dialer).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Now  func() time.Time
	Rand io.Reader
}

// Stats are the listener's counters since start.
type Stats struct {
	Connections int64 // accepted TCP connections
	Rejected    int64 // connections closed at once (MaxConnections)
	Pages       int64 // browser requests answered with the page
	TooLarge    int64
	Incomplete  int64 // closed or timed out before a complete hello
	Invalid     int64 // malformed hellos
	Hellos      int64 // valid hellos
	UnknownUUID int64
	Ignored     int64 // busy, cooldown, overloaded
	Accepted    int64
	Refused     int64
	Failed      int64
	Provisioned int64
	ConfigFail  int64
}

type counters struct {
	connections, rejected, pages, tooLarge, incomplete, invalid, hellos, unknown, ignored,
	accepted, refused, failed, provisioned, configFail atomic.Int64
}

// Server is a running legacy provisioning server. Create it with New and
// run it with Serve.
type Server struct {
	cfg    Config
	timing Timing
	log    *slog.Logger
	psk    *psk.Keeper
	dialer *dialer
	stats  counters

	mu       sync.Mutex
	active   map[string]bool      // UUIDs being configured
	activeIP map[string]bool      // source addresses being configured
	cooldown map[string]time.Time // UUID → end of cool-down
	sessions int
	conns    int
	wg       sync.WaitGroup
}

// New checks cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Secrets == nil || cfg.Engine == nil || cfg.CA == nil {
		return nil, errors.New("legacy server: Store, Secrets, Engine and CA are required")
	}
	if cfg.AcceptUnknown && cfg.DefaultProfile == "" {
		return nil, errors.New("legacy server: accepting unknown devices needs a default profile")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DevicePort == 0 {
		cfg.DevicePort = 16993
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = 3
	}
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 256
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 32
	}
	if cfg.KeepHelloEvents <= 0 {
		cfg.KeepHelloEvents = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	k := cfg.PSK
	if k == nil {
		k = &psk.Keeper{Store: cfg.Store, Secrets: cfg.Secrets, Rand: cfg.Rand, Now: cfg.Now}
	}
	t := cfg.Timing.withDefaults(cfg.NoCommitDelay)
	if cfg.NoCommitDelay {
		t.CommitDelay = 0
	}
	return &Server{
		cfg: cfg, timing: t, log: cfg.Logger.With("component", "legacy"), psk: k,
		dialer:   &dialer{dial: cfg.Dial, dialTimeout: t.DialTimeout, handshakeTimeout: t.HandshakeTimeout},
		active:   map[string]bool{},
		activeIP: map[string]bool{},
		cooldown: map[string]time.Time{},
	}, nil
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Connections: c.connections.Load(), Rejected: c.rejected.Load(), Pages: c.pages.Load(),
		TooLarge: c.tooLarge.Load(), Incomplete: c.incomplete.Load(), Invalid: c.invalid.Load(),
		Hellos: c.hellos.Load(), UnknownUUID: c.unknown.Load(), Ignored: c.ignored.Load(),
		Accepted: c.accepted.Load(), Refused: c.refused.Load(), Failed: c.failed.Load(),
		Provisioned: c.provisioned.Load(), ConfigFail: c.configFail.Load(),
	}
}

// Serve accepts hello connections on ln until ctx ends, then closes ln,
// cancels the configurations in progress and returns once every connection
// and configuration has finished (nil), or returns the listener's error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		ln.Close()
		s.wg.Wait()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	s.log.Info("hello listener started", "addr", ln.Addr().String(), "accept_unknown", s.cfg.AcceptUnknown)
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return nil
				}
				continue
			}
			return fmt.Errorf("hello listener: %w", err)
		}
		backoff = 0
		s.stats.connections.Add(1)
		s.mu.Lock()
		if s.conns >= s.cfg.MaxConnections {
			s.mu.Unlock()
			s.stats.rejected.Add(1)
			conn.Close()
			continue
		}
		s.conns++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				s.conns--
				s.mu.Unlock()
			}()
			s.handleConn(ctx, conn)
		}()
	}
}

// handleConn reads one hello connection and dispatches the hello.
func (s *Server) handleConn(ctx context.Context, conn net.Conn) {
	ip := hostOf(conn.RemoteAddr())
	r := readHello(ctx, conn, s.timing.ReadTimeout)
	switch r.kind {
	case gotGET:
		s.stats.pages.Add(1)
		writeHelloPage(conn)
		conn.Close()
		s.log.Debug("answered a browser on the hello port", "ip", ip)
		return
	case tooLarge:
		s.stats.tooLarge.Add(1)
		conn.Close()
		s.log.Warn("hello connection closed: more than 16000 bytes", "ip", ip)
		return
	case invalid:
		s.stats.invalid.Add(1)
		conn.Close()
		s.log.Warn("invalid hello from "+ip, "ip", ip, "bytes", r.bytes, "err", r.err)
		s.report(store.HelloEvent{SourceIP: ip, ReceivedAt: s.now(), Outcome: OutcomeInvalid, Detail: errText(r.err)})
		return
	case needMore:
		s.stats.incomplete.Add(1)
		conn.Close()
		if r.bytes > 0 {
			s.log.Warn("incomplete hello from "+ip, "ip", ip, "bytes", r.bytes, "err", r.err)
		} else {
			s.log.Debug("hello connection without data", "ip", ip, "err", r.err)
		}
		return
	}
	// A complete hello: process it and close the socket (legacy.md §5 step 1).
	conn.Close()
	s.stats.hellos.Add(1)
	s.dispatch(ctx, r, ip)
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// report hands a final record to OnResult.
func (s *Server) report(e store.HelloEvent) {
	if s.cfg.OnResult != nil {
		s.cfg.OnResult(e)
	}
}
