// Package cira is the CIRA client of a simulated AMT device: when the
// firmware's remote access configuration says so (an MPS added with
// AddMpServer, a policy that applies to it, the environment detection
// saying "outside", a provisioned device), it connects over TLS to the MPS,
// verifies the server against the trusted roots installed in the firmware
// and the common name AMT expects, speaks APF as the device (spec/mps.md
// §2–§4), keeps the connection alive at the interval the server asks for,
// serves the channels the server opens (WS-MAN, redirection) through the
// device's Services, and reconnects with exponential backoff after a drop.
//
// Cost: a connected device has one goroutine (its connection's reader) and
// one runtime timer (the keepalive); a device waiting to reconnect has one
// runtime timer and no goroutine. Runtime timers live in the Go scheduler's
// shared timer heaps, so a fleet of thousands of devices needs no timer
// goroutines at all.
package cira

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

// Services serves the channels the MPS opens to the device's ports.
type Services interface {
	// ChannelHandler returns the function that serves a channel to port
	// (it owns the connection and closes it), or nil to refuse the
	// channel (CHANNEL_OPEN_FAILURE "connect failed").
	ChannelHandler(port uint16) func(ctx context.Context, conn net.Conn)
}

// forwardedPorts are the ports AMT asks the MPS to forward, in the order
// AMT sends them (spec/mps.md §2.3.5).
var forwardedPorts = [...]uint16{16993, 16992, 664, 623, 16995, 16994, 5900}

// ForwardedPorts returns the ports the device asks the MPS to forward, in
// AMT's order.
func ForwardedPorts() []uint16 { return slices.Clone(forwardedPorts[:]) }

// Options tune a device's CIRA client. Zero values mean the defaults.
type Options struct {
	// Dial opens the TCP connection to the MPS (default: a net.Dialer).
	// Tests and fleets use it to map the MPS name to an address or to
	// choose a source address.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TimeScale multiplies the protocol durations set by the firmware and
	// the server — the keepalive interval and timeout, the periodic
	// connection interval, the tunnel lifetime — and the default backoff
	// bounds (default 1; 0.01 turns 30 s into 300 ms).
	TimeScale float64
	// MinBackoff and MaxBackoff bound the delay before a reconnection
	// attempt (not scaled). Defaults: 1 s and the periodic policy's
	// interval (5 minutes without one), both scaled by TimeScale.
	MinBackoff, MaxBackoff time.Duration
	// DefaultKeepalive is the keepalive interval used until the server
	// sends KEEPALIVE_OPTIONS_REQUEST (default 30 s, scaled).
	DefaultKeepalive time.Duration
	// HandshakeTimeout bounds the TLS handshake and the APF exchange up to
	// the last forward (default 30 s, not scaled).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds every write to the MPS (default 30 s, not scaled).
	WriteTimeout time.Duration
	// ChannelWindow is the receive window the device advertises for each
	// channel (default 16384; AMT's own value is unverified).
	ChannelWindow uint32
	// MaxChannels bounds the channels open at once (default 16).
	MaxChannels int
	// Observer, when set, is told about connection events. It runs on the
	// client's goroutines and must not block.
	Observer func(Event)
	Logger   *slog.Logger
}

// Config configures a Client.
type Config struct {
	Options
	Firmware *firmware.Firmware // required
	Services Services           // required
}

// State of the client.
type State int

// Client states.
const (
	// StateIdle: CIRA is not configured (or the device is not provisioned).
	StateIdle State = iota
	// StateWaiting: configured, waiting before the next attempt (backoff).
	StateWaiting
	// StateConnecting: TLS and APF handshake in progress.
	StateConnecting
	// StateConnected: authenticated, ports forwarded, serving channels.
	StateConnected
	// StateClosed: Close was called.
	StateClosed
)

func (s State) String() string {
	return [...]string{"idle", "waiting", "connecting", "connected", "closed"}[s]
}

// EventKind is the kind of an Event.
type EventKind int

// Event kinds.
const (
	// EventConnected: authenticated and ports forwarded.
	EventConnected EventKind = iota + 1
	// EventKeepaliveOptions: the server set the keepalive interval.
	EventKeepaliveOptions
	// EventDisconnected: an established connection ended (Err says why).
	EventDisconnected
	// EventAttemptFailed: a connection attempt failed before EventConnected.
	EventAttemptFailed
	// EventRetry: the next attempt is scheduled after Delay.
	EventRetry
	// EventStopped: CIRA is no longer wanted (unconfigured, unprovisioned).
	EventStopped
)

// Event reports a change of the client.
type Event struct {
	Kind     EventKind
	Server   string        // host:port of the MPS
	Trigger  uint32        // connection trigger (apf.Trigger*)
	Err      error         // EventDisconnected, EventAttemptFailed
	Delay    time.Duration // EventRetry
	Attempt  int           // EventRetry: consecutive failures so far
	Interval time.Duration // EventKeepaliveOptions: the adopted (scaled) interval
}

// Status is a snapshot of the client.
type Status struct {
	State          State
	Server         string // the MPS in use or last tried
	Trigger        uint32
	ConnectedSince time.Time
	Keepalive      time.Duration // adopted keepalive interval (scaled)
	Failures       int           // consecutive failed attempts
	Connections    int           // successful connections so far
	LastError      error
	NextAttempt    time.Time
}

// Client is the CIRA client of one device.
type Client struct {
	cfg Config
	fw  *firmware.Firmware
	log *slog.Logger

	mu       sync.Mutex
	ctx      context.Context
	cancel   context.CancelFunc
	started  bool
	closed   bool
	timer    *time.Timer // the next attempt
	next     time.Time
	sess     *session // the connection in progress or established
	failures int
	conns    int
	server   int // index of the MPS to try next among the policy's servers
	userReq  bool
	lastErr  error
	lastSrv  string
	wg       sync.WaitGroup
}

// New returns a client; Start makes it follow the firmware configuration.
func New(cfg Config) (*Client, error) {
	if cfg.Firmware == nil || cfg.Services == nil {
		return nil, errors.New("cira: Config.Firmware and Config.Services are required")
	}
	o := &cfg.Options
	if o.TimeScale <= 0 {
		o.TimeScale = 1
	}
	if o.DefaultKeepalive <= 0 {
		o.DefaultKeepalive = 30 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.ChannelWindow == 0 {
		o.ChannelWindow = 16384
	}
	if o.MaxChannels <= 0 {
		o.MaxChannels = 16
	}
	if o.Dial == nil {
		var d net.Dialer
		o.Dial = d.DialContext
	}
	log := o.Logger
	if log == nil {
		log = cfg.Firmware.Logger()
	}
	return &Client{cfg: cfg, fw: cfg.Firmware, log: log.With("cira", cfg.Firmware.UUIDString())}, nil
}

// scale applies the time scale to a protocol duration.
func (c *Client) scale(d time.Duration) time.Duration {
	return time.Duration(float64(d) * c.cfg.TimeScale)
}

// Start follows the firmware's remote access configuration until ctx ends
// or Close: it connects when CIRA is configured and disconnects when it is
// removed or the device is unprovisioned.
func (c *Client) Start(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("cira: client already started")
	}
	c.started = true
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.mu.Unlock()
	c.fw.OnEvent(func(ev firmware.Event) {
		if ev == firmware.EventRemoteAccessChanged || ev == firmware.EventProvisioningChanged {
			c.reevaluate(true)
		}
	})
	stop := context.AfterFunc(ctx, func() { c.Close() })
	context.AfterFunc(c.ctx, func() { stop() })
	c.reevaluate(true)
	return nil
}

// Close disconnects and stops the client, and waits for its goroutines.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	sess := c.sess
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	if sess != nil {
		sess.shutdown(errors.New("cira: client closed"))
	}
	c.wg.Wait()
	return nil
}

// UserInitiated is the user asking for a connection (the BIOS/OS hotkey):
// it connects with trigger "user initiated" when a User Initiated policy
// exists and AMT_UserInitiatedConnectionService allows it from the OS.
func (c *Client) UserInitiated() error {
	var ok bool
	c.fw.View(func(s *firmware.State) {
		ok = s.CIRA.UserInitiatedState == 32770 || s.CIRA.UserInitiatedState == 32771
	})
	if !ok {
		return errors.New("cira: user-initiated connections are disabled")
	}
	c.mu.Lock()
	c.userReq = true
	c.mu.Unlock()
	c.reevaluate(true)
	return nil
}

// Status returns the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{State: StateIdle, Server: c.lastSrv, Failures: c.failures, Connections: c.conns, LastError: c.lastErr, NextAttempt: c.next}
	switch {
	case c.closed:
		st.State = StateClosed
	case c.sess != nil:
		st.State = StateConnecting
		st.Trigger = c.sess.target.trigger
		if since, ka := c.sess.info(); !since.IsZero() {
			st.State, st.ConnectedSince, st.Keepalive = StateConnected, since, ka
		}
	case c.timer != nil:
		st.State = StateWaiting
	}
	return st
}

func (c *Client) emit(e Event) {
	if c.cfg.Observer != nil {
		c.cfg.Observer(e)
	}
}

// target is what the firmware configuration asks for.
type target struct {
	server   firmware.MPServer
	trigger  uint32
	lifetime time.Duration // 0: until dropped
	interval time.Duration // periodic interval (scaled), 0 without a periodic policy
}

func (t target) addr() string {
	return net.JoinHostPort(t.server.AccessInfo, strconv.Itoa(t.server.Port))
}

// target reads the firmware: provisioned, a policy (periodic, or user
// initiated after UserInitiated) that applies to a username/password MPS
// in the current environment.
func (c *Client) target() (target, bool) {
	var t target
	ok := false
	userReq, idx := c.userReq, c.server
	c.fw.View(func(s *firmware.State) {
		if s.ControlMode == firmware.ModePre || s.ProvisioningState != firmware.StatePost {
			return
		}
		inside := insideEnterprise(s.CIRA.DetectionStrings, s.Network.DHCPDomain, s.Network.DomainName)
		var chosen *firmware.PolicyRule
		for i := range s.CIRA.Policies {
			p := &s.CIRA.Policies[i]
			switch {
			case p.Trigger == 2: // periodic
				if chosen == nil || chosen.Trigger != 0 {
					chosen = p
				}
			case p.Trigger == 0 && userReq: // user initiated wins while asked for
				chosen = p
			}
		}
		if chosen == nil {
			return
		}
		var servers []firmware.AppliesTo
		for _, a := range s.CIRA.AppliesTo {
			if a.Policy != chosen.Name {
				continue
			}
			// MpsType 0 external (outside only), 1 internal, 2 both
			if (a.MpsType == 0 && inside) || (a.MpsType == 1 && !inside) {
				continue
			}
			servers = append(servers, a)
		}
		slices.SortStableFunc(servers, func(a, b firmware.AppliesTo) int { return a.OrderOfAccess - b.OrderOfAccess })
		var usable []firmware.MPServer
		for _, a := range servers {
			for _, m := range s.CIRA.MPServers {
				if m.Name == a.MPServer && m.AuthMethod == 2 { // mutual authentication is not simulated
					usable = append(usable, m)
				}
			}
		}
		if len(usable) == 0 {
			return
		}
		t.server = usable[idx%len(usable)]
		t.trigger = 4 // periodic
		if chosen.Trigger == 0 {
			t.trigger = 1
			t.lifetime = c.scale(time.Duration(chosen.TunnelLifeTime) * time.Second)
		}
		for _, p := range s.CIRA.Policies {
			if p.Trigger == 2 {
				t.interval = c.scale(periodicInterval(p.ExtendedData))
			}
		}
		ok = true
	})
	return t, ok
}

// periodicInterval decodes a periodic policy's ExtendedData: u32be type
// (0 interval, 1 daily), then the interval in seconds (type 0) or the hour
// and minute (type 1, treated as once a day).
func periodicInterval(ext string) time.Duration {
	b, err := base64.StdEncoding.DecodeString(ext)
	if err != nil || len(b) < 8 {
		return 0
	}
	if binary.BigEndian.Uint32(b) == 1 {
		return 24 * time.Hour
	}
	return time.Duration(binary.BigEndian.Uint32(b[4:])) * time.Second
}

// insideEnterprise: the device's domain matches a detection string (AMT
// compares the DHCP domain; with no detection strings the device is
// outside).
func insideEnterprise(detection []string, domains ...string) bool {
	for _, d := range domains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d == "" {
			continue
		}
		for _, s := range detection {
			s = strings.ToLower(strings.TrimSuffix(s, "."))
			if s != "" && (d == s || strings.HasSuffix(d, "."+s)) {
				return true
			}
		}
	}
	return false
}

// reevaluate compares the configuration with what the client does: it
// drops a connection that is no longer wanted (or whose server changed),
// and connects when wanted and idle — at once when now is set (a
// configuration change), otherwise when the pending timer says so.
func (c *Client) reevaluate(now bool) {
	c.mu.Lock()
	if c.closed || !c.started {
		c.mu.Unlock()
		return
	}
	t, want := c.target()
	if sess := c.sess; sess != nil {
		if !want || sess.target.server != t.server {
			c.mu.Unlock()
			sess.drain(errUnconfigured)
			return
		}
		c.mu.Unlock()
		return
	}
	if !want {
		stopped := c.timer != nil || c.failures > 0
		if c.timer != nil {
			c.timer.Stop()
			c.timer = nil
		}
		c.failures, c.next = 0, time.Time{}
		c.mu.Unlock()
		if stopped {
			c.emit(Event{Kind: EventStopped})
		}
		return
	}
	if c.timer != nil && !now {
		c.mu.Unlock()
		return
	}
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.next = time.Time{}
	c.startLocked(t)
	c.mu.Unlock()
}

var errUnconfigured = errors.New("cira: CIRA no longer configured")

// startLocked starts a connection attempt on its own goroutine (which
// becomes the connection's reader).
func (c *Client) startLocked(t target) {
	s := newSession(c, t)
	c.sess = s
	c.lastSrv = t.addr()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		connected, err := s.run(c.ctx)
		c.finished(s, connected, err)
	}()
}

// finished records the end of a connection and schedules the next attempt.
func (c *Client) finished(s *session, connected bool, err error) {
	c.mu.Lock()
	if c.sess == s {
		c.sess = nil
	}
	c.lastErr = err
	if connected {
		c.failures = 0
		if s.target.trigger == 1 {
			c.userReq = false // a user-initiated tunnel is used once
		}
	} else {
		c.failures++
		c.server++ // try the next MPS of the policy
	}
	closed := c.closed
	c.mu.Unlock()
	if connected {
		c.log.Info("cira: disconnected", "server", s.target.addr(), "err", err)
	} else {
		c.log.Debug("cira: connection attempt failed", "server", s.target.addr(), "err", err)
	}
	if connected {
		c.emit(Event{Kind: EventDisconnected, Server: s.target.addr(), Trigger: s.target.trigger, Err: err})
	} else {
		c.emit(Event{Kind: EventAttemptFailed, Server: s.target.addr(), Trigger: s.target.trigger, Err: err})
	}
	if closed {
		return
	}
	c.scheduleRetry()
}

// scheduleRetry arms the timer of the next attempt with exponential
// backoff and jitter: a delay drawn from [d/2, d] with d =
// MinBackoff·2^(failures) capped at MaxBackoff.
func (c *Client) scheduleRetry() {
	c.mu.Lock()
	t, want := c.target()
	if c.closed || c.sess != nil || !want {
		c.mu.Unlock()
		if !want {
			c.reevaluate(false)
		}
		return
	}
	lo, hi := c.cfg.MinBackoff, c.cfg.MaxBackoff
	if lo <= 0 {
		lo = c.scale(time.Second)
	}
	if hi <= 0 {
		hi = t.interval
		if hi <= 0 {
			hi = c.scale(5 * time.Minute)
		}
	}
	hi = max(hi, lo)
	d := lo
	for i := 0; i < c.failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d = d/2 + rand.N(d/2+1)
	attempt := c.failures
	c.next = time.Now().Add(d)
	c.timer = time.AfterFunc(d, func() {
		c.mu.Lock()
		c.timer = nil
		c.mu.Unlock()
		c.reevaluate(true)
	})
	c.mu.Unlock()
	c.emit(Event{Kind: EventRetry, Server: t.addr(), Delay: d, Attempt: attempt})
}

// connected is called by the session once forwarding is set up.
func (c *Client) connected(s *session) {
	c.mu.Lock()
	c.conns++
	c.failures = 0
	c.mu.Unlock()
	c.log.Info("cira: connected", "server", s.target.addr(), "trigger", s.target.trigger)
	c.emit(Event{Kind: EventConnected, Server: s.target.addr(), Trigger: s.target.trigger})
}

func errorf(format string, args ...any) error { return fmt.Errorf("cira: "+format, args...) }
