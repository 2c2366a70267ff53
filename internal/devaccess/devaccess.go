// Package devaccess is the one way amtd's management API reaches an AMT
// device (DESIGN.md principle 1). Open (or Resolve) returns an *amt.Client
// for a device GUID, choosing in this order:
//
//  1. the device's CIRA connection to this instance, when it has one: WS-MAN
//     goes through the CIRA server's RoundTripper (one APF channel to 16992
//     per HTTP exchange, spec/mps.md §5);
//  2. otherwise a direct LAN connection to the address recorded for the
//     device (see Address): TLS to 16993 when amtd installed a TLS
//     certificate on the device (devcreds.TLSCert) — the connection is then
//     pinned to exactly that certificate — else plain HTTP to 16992 with
//     digest authentication;
//  3. otherwise ErrNotConnected, which the API answers with MPS's 404.
//
// The credentials are always "admin" and the device's current AMT password
// from the secret store (devcreds.AMT).
//
// Clients are cached per device and reused: go-wsman-messages keeps the
// digest challenge, so a reused client skips the 401 round trip of a first
// request. At most Options.MaxClients clients of one device are in use at
// once; more callers wait (bounded by their context). A cached client is
// dropped when
//
//   - an exchange through it failed at the transport level (timeout,
//     connection reset: the library's state may be half-way through a call);
//   - the device answered two 401s in a row (wrong credentials): every
//     cached client of the device is dropped, and the next Open reads the
//     credentials again;
//   - the path changed (the device connected or disconnected by CIRA, or its
//     LAN address changed);
//   - Invalidate was called (credentials changed: DELETE
//     /api/v1/devices/refresh/:guid, a password change by provisioning, a
//     CIRA disconnect);
//   - it was not used for Options.IdleTimeout.
//
// Access starts no goroutines; expired entries are swept lazily by Open.
package devaccess

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// AdminUser is the AMT digest user amtd manages devices as.
const AdminUser = "admin"

// AMT ports on the LAN.
const (
	HTTPPort  = 16992
	HTTPSPort = 16993
)

// Defaults.
const (
	DefaultMaxClients       = 4 // spec/mps.md §4.4: 4 concurrent WS-MAN exchanges per device
	DefaultCallTimeout      = 30 * time.Second
	DefaultIdleTimeout      = 2 * time.Minute
	DefaultMaxResponseBytes = 16 << 20
)

// ErrNotConnected: the device has no CIRA connection to this instance and
// cannot be reached on the LAN (no record, no address, LAN access disabled).
var ErrNotConnected = errors.New("devaccess: device not connected")

// ErrNoCredentials: amtd holds no AMT password for the device. It wraps
// ErrNotConnected (the device cannot be managed).
var ErrNoCredentials = fmt.Errorf("%w: no AMT credentials stored", ErrNotConnected)

// ErrUnreachable (wrapping ErrNotConnected): the device's LAN address did not
// answer (no such name, refused, timed out) — returned by calls, not by Open.
var ErrUnreachable = fmt.Errorf("%w: unreachable on the LAN", ErrNotConnected)

// Via says how a device is reached.
type Via string

// Paths.
const (
	ViaCIRA Via = "cira"
	ViaLAN  Via = "lan"
)

// CIRA is the part of the CIRA server devaccess uses; *cira.Server
// implements it.
type CIRA interface {
	Lookup(uuid string) (cira.ConnInfo, bool)
	RoundTripper(uuid string) http.RoundTripper
}

// Options configure an Access.
type Options struct {
	Store   store.Store   // required: device records (LAN address, tenant)
	Secrets secrets.Store // required: device credentials
	// CIRA is this instance's CIRA server (nil: no CIRA path).
	CIRA CIRA
	// DisableLAN turns the direct LAN path off: only CIRA-connected devices
	// are reachable, as with MPS.
	DisableLAN bool
	// DialContext opens LAN TCP connections (default net.Dialer). Tests map
	// the AMT ports to a simulator's loopback listener with it.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// LegacyTLS lowers the LAN TLS minimum to TLS 1.0 for old firmware
	// (default TLS 1.2; RSA key-exchange suites are always offered).
	LegacyTLS bool
	// MaxClients bounds the clients of one device in use at once (default 4).
	MaxClients int
	// CallTimeout bounds each WS-MAN call whose context has no deadline
	// (default 30 s).
	CallTimeout time.Duration
	// IdleTimeout drops a cached client unused for this long (default 2 min).
	IdleTimeout time.Duration
	// MaxResponseBytes bounds one LAN response (default 16 MiB).
	MaxResponseBytes int64
	Logger           *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Access hands out clients for devices. Safe for concurrent use.
type Access struct {
	o Options

	mu        sync.Mutex
	devs      map[string]*entry
	lastSweep time.Time
}

// entry is one device's client cache and concurrency limit.
type entry struct {
	sem  chan struct{} // tokens: one per client in use
	refs int           // Open calls holding or waiting for a token (under Access.mu)
	gen  uint64        // bumped by Invalidate and by auth failures
	idle []*cached     // most recently used last
}

type cached struct {
	c        *amt.Client
	tr       *watch
	key      pathKey
	gen      uint64
	lastUsed time.Time
}

// pathKey identifies the path a client was built for.
type pathKey struct {
	via  Via
	addr string // LAN host:port ("" for CIRA)
}

// New returns an Access.
func New(o Options) (*Access, error) {
	if o.Store == nil || o.Secrets == nil {
		return nil, errors.New("devaccess: Options.Store and Options.Secrets are required")
	}
	if o.DialContext == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		o.DialContext = d.DialContext
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Access{o: o, devs: make(map[string]*entry)}, nil
}

// Route describes how a device would be reached now.
type Route struct {
	GUID   string
	Via    Via
	Tenant string // the CIRA connection's tenant, or the device record's
	// Addr is the LAN endpoint (host:port); "" for CIRA.
	Addr string
	// TLS reports whether the LAN endpoint is 16993 with a pinned
	// certificate.
	TLS bool
}

// Handle is a client lent by Open. Call Release exactly once when done.
type Handle struct {
	Client *amt.Client
	Route
	once    sync.Once
	release func()
}

// Release returns the client to the cache (or drops it if it failed) and
// frees its slot.
func (h *Handle) Release() {
	if h != nil {
		h.once.Do(h.release)
	}
}

// NormalizeGUID is the form devices are keyed by (lower case, trimmed).
func NormalizeGUID(guid string) string { return strings.ToLower(strings.TrimSpace(guid)) }

// Address is the LAN host of a device record: deviceInfo.ipAddress when
// set, else the hostname — with the DNS suffix appended when the hostname
// has no dot and a suffix is recorded. "" when the record has neither.
func Address(d *store.Device) string {
	if d == nil {
		return ""
	}
	if d.DeviceInfo != nil && strings.TrimSpace(d.DeviceInfo.IPAddress) != "" {
		return strings.TrimSpace(d.DeviceInfo.IPAddress)
	}
	h := strings.TrimSpace(d.Hostname)
	if h == "" {
		return ""
	}
	if !strings.Contains(h, ".") && net.ParseIP(h) == nil {
		if s := strings.Trim(strings.TrimSpace(d.DNSSuffix), "."); s != "" {
			h += "." + s
		}
	}
	return h
}

// Resolve returns a client for the device and the function that returns it.
// Errors: ErrNotConnected (or ErrNoCredentials, which wraps it) when the
// device cannot be reached, the context's error while waiting for a slot, or
// a store/secret-store failure.
func (a *Access) Resolve(ctx context.Context, guid string) (*amt.Client, func(), error) {
	h, err := a.Open(ctx, guid)
	if err != nil {
		return nil, nil, err
	}
	return h.Client, h.Release, nil
}

// Lookup reports how the device would be reached now without lending a
// client (for routes that only need to know whether the device is
// reachable). For the LAN path it also checks that credentials exist.
func (a *Access) Lookup(ctx context.Context, guid string) (Route, error) {
	r, _, err := a.route(ctx, NormalizeGUID(guid))
	return r, err
}

// route finds the path; for the LAN path it returns the loaded credentials.
func (a *Access) route(ctx context.Context, guid string) (Route, devcreds.Creds, error) {
	if a.o.CIRA != nil {
		if info, ok := a.o.CIRA.Lookup(guid); ok {
			return Route{GUID: guid, Via: ViaCIRA, Tenant: info.Tenant}, nil, nil
		}
	}
	if a.o.DisableLAN {
		return Route{}, nil, ErrNotConnected
	}
	dev, err := a.o.Store.GetDevice(ctx, guid)
	if errors.Is(err, store.ErrNotFound) {
		return Route{}, nil, ErrNotConnected
	}
	if err != nil {
		return Route{}, nil, fmt.Errorf("devaccess: reading device %s: %w", guid, err)
	}
	host := Address(dev)
	if host == "" {
		return Route{}, nil, ErrNotConnected
	}
	creds, err := devcreds.Load(ctx, a.o.Secrets, guid)
	if err != nil {
		return Route{}, nil, fmt.Errorf("devaccess: %s: %w", guid, err)
	}
	if creds.Current(devcreds.AMT) == "" {
		return Route{}, nil, ErrNoCredentials
	}
	r := Route{GUID: guid, Via: ViaLAN, Tenant: dev.TenantID}
	if creds.Current(devcreds.TLSCert) != "" {
		r.TLS = true
		r.Addr = net.JoinHostPort(host, strconv.Itoa(HTTPSPort))
	} else {
		r.Addr = net.JoinHostPort(host, strconv.Itoa(HTTPPort))
	}
	return r, creds, nil
}

// Open lends a client for the device (see the package comment for the
// path chosen). The caller must Release the handle.
func (a *Access) Open(ctx context.Context, guid string) (*Handle, error) {
	guid = NormalizeGUID(guid)
	a.sweep()
	r, creds, err := a.route(ctx, guid)
	if err != nil {
		return nil, err
	}
	key := pathKey{via: r.Via, addr: r.Addr}

	e := a.acquireEntry(guid)
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		a.releaseEntry(guid, e)
		return nil, ctx.Err()
	}
	freeSlot := func() {
		<-e.sem
		a.releaseEntry(guid, e)
	}

	cc := a.takeIdle(e, key)
	if cc == nil {
		if creds == nil {
			if creds, err = devcreds.Load(ctx, a.o.Secrets, guid); err != nil {
				freeSlot()
				return nil, fmt.Errorf("devaccess: %s: %w", guid, err)
			}
		}
		if cc, err = a.newClient(guid, r, creds, e); err != nil {
			freeSlot()
			return nil, err
		}
	}
	h := &Handle{Client: cc.c, Route: r}
	h.release = func() {
		a.putBack(e, cc)
		freeSlot()
	}
	return h, nil
}

// Invalidate drops every cached client of the device: the next Open reads
// the credentials and the path again. Clients in use are dropped when
// released.
func (a *Access) Invalidate(guid string) {
	guid = NormalizeGUID(guid)
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.devs[guid]; ok {
		e.gen++
		e.idle = nil
		if e.refs == 0 {
			delete(a.devs, guid)
		}
	}
}

// Cached returns the number of idle cached clients of a device (for tests
// and diagnostics).
func (a *Access) Cached(guid string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.devs[NormalizeGUID(guid)]; ok {
		return len(e.idle)
	}
	return 0
}

func (a *Access) acquireEntry(guid string) *entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.devs[guid]
	if !ok {
		e = &entry{sem: make(chan struct{}, a.o.MaxClients)}
		a.devs[guid] = e
	}
	e.refs++
	return e
}

func (a *Access) releaseEntry(guid string, e *entry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	e.refs--
	if e.refs == 0 && len(e.idle) == 0 && a.devs[guid] == e {
		delete(a.devs, guid)
	}
}

// takeIdle pops the most recently used idle client for key; clients for
// another path, of an older generation or expired are dropped.
func (a *Access) takeIdle(e *entry, key pathKey) *cached {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.o.Now()
	for len(e.idle) > 0 {
		cc := e.idle[len(e.idle)-1]
		e.idle = e.idle[:len(e.idle)-1]
		if cc.key == key && cc.gen == e.gen && now.Sub(cc.lastUsed) < a.o.IdleTimeout {
			return cc
		}
	}
	return nil
}

// putBack caches a released client unless it failed or is outdated; two
// 401s in a row also outdate every other client of the device.
func (a *Access) putBack(e *entry, cc *cached) {
	broken, authFailed := cc.tr.state()
	a.mu.Lock()
	defer a.mu.Unlock()
	if authFailed {
		e.gen++
		e.idle = nil
	}
	if broken || authFailed || cc.gen != e.gen {
		return
	}
	cc.lastUsed = a.o.Now()
	if len(e.idle) >= a.o.MaxClients {
		e.idle = e.idle[1:]
	}
	e.idle = append(e.idle, cc)
}

// sweep drops expired idle clients of every device, at most once per
// IdleTimeout.
func (a *Access) sweep() {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.o.Now()
	if now.Sub(a.lastSweep) < a.o.IdleTimeout {
		return
	}
	a.lastSweep = now
	for guid, e := range a.devs {
		kept := e.idle[:0]
		for _, cc := range e.idle {
			if now.Sub(cc.lastUsed) < a.o.IdleTimeout {
				kept = append(kept, cc)
			}
		}
		clear(e.idle[len(kept):])
		e.idle = kept
		if e.refs == 0 && len(e.idle) == 0 {
			delete(a.devs, guid)
		}
	}
}

// newClient builds a client for the route.
func (a *Access) newClient(guid string, r Route, creds devcreds.Creds, e *entry) (*cached, error) {
	pw := creds.Current(devcreds.AMT)
	if pw == "" {
		return nil, ErrNoCredentials
	}
	var rt http.RoundTripper
	p := amt.Params{Username: AdminUser, Password: pw, Timeout: a.o.CallTimeout}
	switch r.Via {
	case ViaCIRA:
		rt = a.o.CIRA.RoundTripper(guid)
		p.Target = guid
	case ViaLAN:
		host, _, err := net.SplitHostPort(r.Addr)
		if err != nil {
			return nil, fmt.Errorf("devaccess: %s: bad address %q", guid, r.Addr)
		}
		var cfg *tls.Config
		if r.TLS {
			if cfg, err = pinnedTLS(creds.Current(devcreds.TLSCert), host, a.o.LegacyTLS); err != nil {
				return nil, fmt.Errorf("devaccess: %s: %w", guid, err)
			}
			p.UseTLS = true
		}
		rt = lanTransport(a.o.DialContext, r.Addr, cfg, a.o.MaxResponseBytes)
		p.Target = host
	default:
		return nil, fmt.Errorf("devaccess: unknown path %q", r.Via)
	}
	w := &watch{inner: rt}
	a.mu.Lock()
	gen := e.gen
	a.mu.Unlock()
	a.o.Logger.Debug("devaccess: new client", "guid", guid, "via", string(r.Via), "addr", r.Addr, "tls", r.TLS)
	return &cached{c: amt.NewClient(w, p), tr: w, key: pathKey{via: r.Via, addr: r.Addr}, gen: gen}, nil
}

// watch observes a client's exchanges: a transport error marks the client
// broken; two 401 answers in a row mean the credentials are wrong.
type watch struct {
	inner      http.RoundTripper
	broken     atomic.Bool
	authFailed atomic.Bool
	last401    atomic.Bool
}

func (w *watch) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.inner.RoundTrip(req)
	if err != nil {
		w.broken.Store(true)
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		if w.last401.Swap(true) {
			w.authFailed.Store(true)
		}
	} else {
		w.last401.Store(false)
	}
	return resp, nil
}

func (w *watch) state() (broken, authFailed bool) {
	return w.broken.Load(), w.authFailed.Load()
}

// rsaKeyExchange are the RSA key-exchange suites old AMT firmware needs
// (spec/mps.md §1.2); Go leaves them out of its defaults but uses them when
// named.
var rsaKeyExchange = []uint16{
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// pinnedTLS accepts exactly the certificate amtd installed on the device
// (base64 DER), whatever its issuer, name or validity: the device is
// identified by that certificate, not by a name the LAN could spoof.
func pinnedTLS(certB64, host string, legacy bool) (*tls.Config, error) {
	pin, err := base64.StdEncoding.DecodeString(strings.TrimSpace(certB64))
	if err != nil || len(pin) == 0 {
		return nil, errors.New("stored TLS certificate is not base64 DER")
	}
	suites := make([]uint16, 0, 16)
	for _, s := range tls.CipherSuites() {
		suites = append(suites, s.ID)
	}
	suites = append(suites, rsaKeyExchange...)
	min := uint16(tls.VersionTLS12)
	if legacy {
		min = tls.VersionTLS10
	}
	cfg := &tls.Config{
		MinVersion:   min,
		CipherSuites: suites,
		// Verification is the pin below, not the web PKI.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !equalBytes(cs.PeerCertificates[0].Raw, pin) {
				return errors.New("devaccess: device TLS certificate does not match the one amtd installed")
			}
			return nil
		},
	}
	if net.ParseIP(host) == nil {
		cfg.ServerName = host
	}
	return cfg, nil
}

func equalBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
