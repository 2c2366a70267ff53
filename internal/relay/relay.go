// Package relay is amtd's redirection relay (spec/mps.md §7): the
// WebSocket /relay/webrelay.ashx through which a browser's KVM, SOL or IDE-R
// client talks to an AMT device's redirection port (16994, or 16995 with
// TLS), with the stored AMT admin credentials injected into the redirection
// login so that the browser never sees them.
//
// Wiring (the serve command):
//
//	rl, err := relay.New(relay.Config{Access: access, CIRA: ciraSrv, Logger: log})
//	rl.Register(apiSrv)          // GET /relay/webrelay.ashx (+ gateway aliases)
//	mpsOpts.Redirections = rl     // GET /api/v1/devices/redirectstatus/:guid
//	…
//	rl.Shutdown(ctx)             // on exit: sessions run on hijacked connections
//
// A session:
//
//  1. The browser opens ws(s)://host/relay/webrelay.ashx?p=2&host=<guid>&port=16994&tls=0&mode=kvm|sol|ider
//     with the relay token of GET /api/v1/authorize/redirection/:guid as its
//     WebSocket subprotocol. The token must be valid, scoped to that device
//     (deviceId == host; API tokens with deviceId "*" are refused) and of the
//     device's tenant; port must be 16994 or 16995; tls must be 0 or absent.
//     Every refusal is an HTTP answer before the upgrade (401 for the token,
//     the tenant or a busy mode; 400 for parameters; 404 when the device
//     cannot be reached; 502/504 when it cannot be connected).
//  2. One session per mode per device: a second KVM (SOL, IDE-R) session of
//     the same device is refused while one runs. Without a mode, the session
//     takes the lock of the type its StartRedirectionSession names, and is
//     closed if that type is busy; with a mode, a StartRedirectionSession of
//     another type closes the session.
//  3. The device is reached the way devaccess chooses (one way to reach a
//     device): its CIRA connection to this instance — a channel to the
//     requested port; for 16995 TLS runs inside the channel, pinned to the
//     certificate amtd installed (devcreds.TLSCert) — else the LAN address
//     of its record: 16995 with the pinned TLS when amtd installed a
//     certificate, else 16994 (16995 without a stored certificate is
//     refused).
//  4. Bytes flow both ways unmodified except for the login: WebSocket
//     messages (binary; text frames read as Latin-1) to the device, device
//     bytes to binary messages. No throttling; backpressure end to end: a
//     direction reads its source only after the previous chunk was written to
//     its destination, and a CIRA channel returns window credit only for
//     bytes the relay has read (at most one 32 KiB buffer ahead of the
//     browser).
//  5. Either side closing closes the other; a session with no data in either
//     direction for Config.IdleTimeout is closed; a malformed redirection
//     message closes that session only.
//
// Credential injection (p=2): see interceptor.go and spec/mps.md §7.4.
// Without p=2 the handshake is still followed (for the mode check) but the
// browser's login goes to the device as sent.
package relay

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/devcreds"
)

// Path is the relay's WebSocket path; it is also served under the gateway
// prefix rules (/mps/relay/webrelay.ashx) and at GatewayPath.
const Path = "/relay/webrelay.ashx"

// GatewayPath is the path Intel's gateway exposes the relay at (it rewrites
// it to Path; spec/mps.md §7.1).
const GatewayPath = "/mps/ws/relay/webrelay.ashx"

// Defaults.
const (
	DefaultIdleTimeout     = 30 * time.Minute
	DefaultDialTimeout     = 30 * time.Second
	DefaultWriteTimeout    = 30 * time.Second
	DefaultMaxMessageBytes = 1 << 20
)

// bufSize is the size of each direction's read buffer.
const bufSize = 32 << 10

// Mode is a redirection session type.
type Mode string

// Modes (the relay URL's mode parameter).
const (
	KVM  Mode = "kvm"
	SOL  Mode = "sol"
	IDER Mode = "ider"
)

// tag is the StartRedirectionSession tag of the mode.
func (m Mode) tag() [4]byte {
	switch m {
	case KVM:
		return tagKVM
	case SOL:
		return tagSOL
	}
	return tagIDER
}

func modeOfTag(t [4]byte) (Mode, bool) {
	switch t {
	case tagKVM:
		return KVM, true
	case tagSOL:
		return SOL, true
	case tagIDER:
		return IDER, true
	}
	return "", false
}

// CIRADialer opens channels to CIRA-connected devices; *cira.Server
// implements it.
type CIRADialer interface {
	Dial(ctx context.Context, uuid string, port uint16) (*cira.Channel, error)
}

// TokenVerifier checks relay tokens; *api.Authenticator implements it.
type TokenVerifier interface {
	Verify(token string) (*api.Claims, error)
}

// Info describes a relay session.
type Info struct {
	ID      uint64
	GUID    string
	Mode    Mode // "" until the session's type is known
	Via     devaccess.Via
	Port    int  // device port (16994/16995)
	TLS     bool // TLS to the device (inside the channel over CIRA)
	Inject  bool // credentials injected (p=2)
	Remote  string
	Started time.Time

	// Set in Ended only.
	Ended       time.Time
	Reason      string
	ToDevice    int64 // bytes sent to the device
	ToBrowser   int64 // bytes sent to the browser
	LoginPassed bool  // the redirection login succeeded
}

// Config configures a Relay.
type Config struct {
	// Access chooses the path to a device and holds its credentials
	// (required).
	Access *devaccess.Access
	// CIRA opens channels to CIRA-connected devices; nil when CIRA is not
	// running. (Do not pass a nil *cira.Server: it would be a non-nil
	// interface.)
	CIRA CIRADialer
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// IdleTimeout closes a session with no data in either direction for
	// this long (default 30 minutes).
	IdleTimeout time.Duration
	// DialTimeout bounds reaching the device: opening the channel or the
	// TCP connection, and the TLS handshake (default 30 s).
	DialTimeout time.Duration
	// WriteTimeout bounds each write to either side; a side that does not
	// take its bytes for this long ends the session (default 30 s).
	WriteTimeout time.Duration
	// MaxMessageBytes bounds one WebSocket message from the browser
	// (default 1 MiB).
	MaxMessageBytes int64
	// OnStart and OnEnd, when set, are told when a session starts (after
	// the upgrade) and when it has ended (both sides closed, its mode lock
	// released) — e.g. to publish handleConnection/handleClose events
	// (spec/mps.md §8). They must not block.
	OnStart func(Info)
	OnEnd   func(Info)
}

// Relay serves redirection sessions. Safe for concurrent use.
type Relay struct {
	cfg      Config
	log      *slog.Logger
	tokens   TokenVerifier
	upgrader websocket.Upgrader

	mu       sync.Mutex
	closed   bool
	nextID   uint64
	devices  map[string]*deviceLocks
	sessions map[*session]struct{}
	wg       sync.WaitGroup
}

// deviceLocks are a device's mode locks: the session holding each.
type deviceLocks struct {
	locks map[Mode]*session
}

// New returns a relay; Register mounts it on an API server.
func New(cfg Config) (*Relay, error) {
	if cfg.Access == nil {
		return nil, errors.New("relay: Config.Access is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, devices: map[string]*deviceLocks{}, sessions: map[*session]struct{}{}}
	r.upgrader = websocket.Upgrader{
		ReadBufferSize:  bufSize,
		WriteBufferSize: bufSize,
		// The token is not ambient (no cookie): it is sent explicitly as
		// the subprotocol, so a page of another origin cannot use it
		// without having it. Browsers of any origin (the web UI may be
		// served elsewhere) are accepted, as MPS does.
		CheckOrigin: func(*http.Request) bool { return true },
		Error: func(w http.ResponseWriter, req *http.Request, status int, reason error) {
			fail(w, req, status, reason.Error())
		},
	}
	return r, nil
}

// Register mounts the relay on srv at Path, its gateway-prefixed forms and
// GatewayPath, as public routes (the relay checks its own token), and
// verifies tokens with srv's authenticator.
func (r *Relay) Register(srv *api.Server) {
	r.mu.Lock()
	r.tokens = srv.Auth()
	r.mu.Unlock()
	srv.Handle(http.MethodGet, Path, r, api.Public(), api.Alias(GatewayPath))
}

// SetTokenVerifier replaces the token verifier (for use without
// Register).
func (r *Relay) SetTokenVerifier(v TokenVerifier) {
	r.mu.Lock()
	r.tokens = v
	r.mu.Unlock()
}

// Sessions reports the device's active sessions by mode (for
// GET /api/v1/devices/redirectstatus/:guid); it implements
// mps.RedirectionStatus.
func (r *Relay) Sessions(guid string) (kvm, sol, ider bool) {
	guid = devaccess.NormalizeGUID(guid)
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[guid]
	if d == nil {
		return false, false, false
	}
	return d.locks[KVM] != nil, d.locks[SOL] != nil, d.locks[IDER] != nil
}

// Active lists the sessions in progress.
func (r *Relay) Active() []Info {
	r.mu.Lock()
	all := make([]*session, 0, len(r.sessions))
	for s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	out := make([]Info, 0, len(all))
	for _, s := range all {
		out = append(out, s.snapshot())
	}
	return out
}

// Shutdown refuses new sessions, closes every session (the browser gets
// close code 1001) and waits for them to end or ctx to be done.
func (r *Relay) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	all := make([]*session, 0, len(r.sessions))
	for s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.end(websocket.CloseGoingAway, "server shutting down", nil)
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ---- locks ----

var errBusy = errors.New("relay: a session of this type is already active for the device")

// lock takes the mode lock of a device for s.
func (r *Relay) lock(guid string, m Mode, s *session) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[guid]
	if d == nil {
		d = &deviceLocks{locks: map[Mode]*session{}}
		r.devices[guid] = d
	}
	if cur := d.locks[m]; cur != nil && cur != s {
		return errBusy
	}
	d.locks[m] = s
	return nil
}

// unlock releases every lock s holds.
func (r *Relay) unlock(guid string, s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[guid]
	if d == nil {
		return
	}
	for m, cur := range d.locks {
		if cur == s {
			delete(d.locks, m)
		}
	}
	if len(d.locks) == 0 {
		delete(r.devices, guid)
	}
}

// ---- the handler ----

// request is a checked relay request.
type request struct {
	guid   string
	port   int
	mode   Mode // "" when missing or unknown
	inject bool
	token  string
	claims *api.Claims
}

func fail(w http.ResponseWriter, req *http.Request, status int, msg string) {
	api.WriteJSON(w, req, status, map[string]string{"error": http.StatusText(status), "errorDescription": msg})
}

// parse checks the query and the token.
func (r *Relay) parse(req *http.Request) (*request, int, string) {
	q := req.URL.Query()
	out := &request{guid: devaccess.NormalizeGUID(q.Get("host"))}
	if !isUUID(out.guid) {
		return nil, http.StatusBadRequest, "host must be the device GUID"
	}
	switch q.Get("port") {
	case strconv.Itoa(devaccess.RedirectionPort):
		out.port = devaccess.RedirectionPort
	case strconv.Itoa(devaccess.RedirectionTLSPort):
		out.port = devaccess.RedirectionTLSPort
	default:
		return nil, http.StatusBadRequest, "port must be 16994 or 16995"
	}
	if t := q.Get("tls"); t != "" && t != "0" {
		return nil, http.StatusBadRequest, "tls must be 0 (TLS to the device is chosen by port 16995)"
	}
	switch m := Mode(strings.ToLower(q.Get("mode"))); m {
	case KVM, SOL, IDER:
		out.mode = m
	}
	out.inject = q.Get("p") == "2"

	r.mu.Lock()
	tokens := r.tokens
	r.mu.Unlock()
	if tokens == nil {
		return nil, http.StatusServiceUnavailable, "relay not configured"
	}
	for _, p := range websocket.Subprotocols(req) {
		c, err := tokens.Verify(p)
		if err != nil {
			continue
		}
		out.token, out.claims = p, c
		break
	}
	switch {
	case out.claims == nil:
		return nil, http.StatusUnauthorized, "missing, invalid or expired relay token"
	case out.claims.DeviceID == api.AllDevices:
		return nil, http.StatusUnauthorized, "an API token is not a relay token"
	case devaccess.NormalizeGUID(out.claims.DeviceID) != out.guid:
		return nil, http.StatusUnauthorized, "the relay token is for another device"
	}
	return out, 0, ""
}

// ServeHTTP serves one relay session.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	log := api.LoggerFrom(req.Context())
	if !websocket.IsWebSocketUpgrade(req) {
		fail(w, req, http.StatusBadRequest, "WebSocket upgrade required")
		return
	}
	rq, status, msg := r.parse(req)
	if rq == nil {
		log.Warn("relay: refused", "status", status, "reason", msg, "remote", req.RemoteAddr)
		fail(w, req, status, msg)
		return
	}
	log = log.With("guid", rq.guid)

	route, creds, err := r.cfg.Access.Locate(req.Context(), rq.guid)
	switch {
	case errors.Is(err, devaccess.ErrNotConnected):
		log.Info("relay: device not reachable", "err", err)
		api.WriteJSON(w, req, http.StatusNotFound, map[string]string{
			"error": "Device not found/connected. Please connect again using CIRA.", "errorDescription": "guid : " + rq.guid})
		return
	case err != nil:
		log.Error("relay: locating the device", "err", err)
		fail(w, req, http.StatusInternalServerError, "could not read the device's record")
		return
	}
	if route.Tenant != rq.claims.TenantID {
		log.Warn("relay: token of another tenant")
		fail(w, req, http.StatusUnauthorized, "the relay token is for another tenant")
		return
	}
	password := creds.Current(devcreds.AMT)
	if rq.inject && password == "" {
		log.Warn("relay: no AMT credentials stored to inject")
		fail(w, req, http.StatusNotFound, "no AMT credentials stored for the device")
		return
	}

	ctx, cancel := context.WithCancel(req.Context())
	defer cancel()
	s := &session{r: r, guid: rq.guid, mode: rq.mode, log: log, cancel: cancel}
	s.info = Info{GUID: rq.guid, Mode: rq.mode, Via: route.Via, Inject: rq.inject, Remote: req.RemoteAddr}
	var cnonce [5]byte // 10 hex characters, as MPS
	_, _ = rand.Read(cnonce[:])
	s.ic = newInterceptor(rq.inject, devaccess.AdminUser, password, hex.EncodeToString(cnonce[:]), s.started)
	if !r.admit(s) {
		fail(w, req, http.StatusServiceUnavailable, "server shutting down")
		return
	}
	defer r.wg.Done()
	defer r.release(s)
	if rq.mode != "" {
		if err := r.lock(rq.guid, rq.mode, s); err != nil {
			log.Info("relay: refused, mode busy", "mode", string(rq.mode))
			fail(w, req, http.StatusUnauthorized, fmt.Sprintf("a %s session is already active for the device", strings.ToUpper(string(rq.mode))))
			return
		}
	}

	dev, port, useTLS, status, msg := r.dial(ctx, route, creds, rq)
	if dev == nil {
		log.Warn("relay: reaching the device failed", "via", string(route.Via), "reason", msg)
		fail(w, req, status, msg)
		return
	}
	s.mu.Lock()
	s.info.Port, s.info.TLS = port, useTLS
	s.mu.Unlock()

	ws, err := r.upgrader.Upgrade(w, req, http.Header{"Sec-Websocket-Protocol": {rq.token}})
	if err != nil {
		dev.Close()
		log.Info("relay: upgrade failed", "err", err)
		return
	}
	s.run(ws, dev)
}

// admit registers a session unless the relay is shutting down.
func (r *Relay) admit(s *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.nextID++
	s.info.ID = r.nextID
	s.log = s.log.With("session", s.info.ID)
	r.sessions[s] = struct{}{}
	r.wg.Add(1)
	return true
}

// release forgets a session and frees its locks (idempotent).
func (r *Relay) release(s *session) {
	r.unlock(s.guid, s)
	r.mu.Lock()
	delete(r.sessions, s)
	r.mu.Unlock()
}

// dial connects to the device's redirection port. On failure it returns a
// nil conn with the HTTP status and message to answer.
func (r *Relay) dial(ctx context.Context, route devaccess.Route, creds devcreds.Creds, rq *request) (conn net.Conn, port int, useTLS bool, status int, msg string) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	defer cancel()
	var host string
	switch route.Via {
	case devaccess.ViaCIRA:
		if r.cfg.CIRA == nil {
			return nil, 0, false, http.StatusInternalServerError, "CIRA is not available"
		}
		port, useTLS, host = rq.port, rq.port == devaccess.RedirectionTLSPort, rq.guid
		ch, err := r.cfg.CIRA.Dial(ctx, rq.guid, uint16(port))
		if err != nil {
			st, m := dialFailure(err)
			return nil, 0, false, st, m
		}
		conn = ch
	case devaccess.ViaLAN:
		h, _, err := net.SplitHostPort(route.Addr)
		if err != nil {
			return nil, 0, false, http.StatusInternalServerError, "bad device address"
		}
		host = h
		switch {
		case route.TLS:
			port, useTLS = devaccess.RedirectionTLSPort, true
		case rq.port == devaccess.RedirectionTLSPort:
			return nil, 0, false, http.StatusBadGateway, "TLS redirection requested but amtd holds no TLS certificate of the device to verify it"
		default:
			port = devaccess.RedirectionPort
		}
		c, err := r.cfg.Access.DialLAN(ctx, net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			st, m := dialFailure(err)
			return nil, 0, false, st, m
		}
		conn = c
	default:
		return nil, 0, false, http.StatusInternalServerError, "unknown path to the device"
	}
	if useTLS {
		if creds.Current(devcreds.TLSCert) == "" {
			conn.Close()
			return nil, 0, false, http.StatusBadGateway, "TLS redirection requested but amtd holds no TLS certificate of the device to verify it"
		}
		cfg, err := r.cfg.Access.PinnedTLS(creds, host)
		if err != nil {
			conn.Close()
			return nil, 0, false, http.StatusInternalServerError, err.Error()
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			st, m := dialFailure(fmt.Errorf("TLS handshake with the device: %w", err))
			return nil, 0, false, st, m
		}
		conn = tc
	}
	return conn, port, useTLS, 0, ""
}

func dialFailure(err error) (int, string) {
	var oe *cira.OpenError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "timed out reaching the device"
	case errors.Is(err, cira.ErrNotConnected), errors.Is(err, cira.ErrConnectionLost):
		return http.StatusNotFound, "the device's CIRA connection ended"
	case errors.As(err, &oe):
		return http.StatusBadGateway, oe.Error()
	}
	return http.StatusBadGateway, "could not connect to the device: " + err.Error()
}

// isUUID: 8-4-4-4-12 hex digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
