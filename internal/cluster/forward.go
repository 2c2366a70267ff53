package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// Headers of forwarded requests and their answers.
const (
	// HopHeader marks a request forwarded by an instance (its ID); such a
	// request is always served locally, never forwarded again.
	HopHeader = "X-Amtd-Forwarded-By"
	// InstanceHeader, on answers to device routes, names the instance that
	// executed the request.
	InstanceHeader = "X-Amtd-Instance"
	// staleHeader, on the answer to a forwarded request, tells the
	// forwarding instance that the device is not connected here: its
	// cached owner is stale.
	staleHeader = "X-Amtd-Owner-Stale"
)

// Defaults of ForwarderConfig and TransportOptions.
const (
	DefaultOwnerCacheTTL = 2 * time.Second
	DefaultDialTimeout   = 3 * time.Second
	// DefaultResponseTimeout covers the owner's own budget for a device
	// request (mps.DefaultRequestTimeout, 2 minutes) with some margin.
	DefaultResponseTimeout = 150 * time.Second
	defaultCacheEntries    = 100_000
)

// Owners finds the live instance holding a device's CIRA connection;
// store.Store implements it (store.ErrNotFound when none).
type Owners interface {
	DeviceOwner(ctx context.Context, guid string) (*store.Instance, error)
}

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	Self   string // this instance's ID (required)
	Owners Owners // required
	// Local reports whether the device's CIRA connection is in this
	// process (cira.Server.IsConnected); nil: never.
	Local func(guid string) bool
	// Match selects the requests to route and returns their device
	// (default DeviceOf).
	Match func(*http.Request) (guid string, ok bool)
	// Transport carries forwarded requests (default NewTransport with
	// zero options).
	Transport http.RoundTripper
	// CacheTTL is how long an owner lookup is reused (default 2 s;
	// negative: no cache).
	CacheTTL time.Duration
	Logger   *slog.Logger
}

// Forwarder routes device requests to the instance holding the device's
// CIRA connection (see the package documentation). It is safe for
// concurrent use.
type Forwarder struct {
	self   string
	owners Owners
	local  func(string) bool
	match  func(*http.Request) (string, bool)
	log    *slog.Logger
	proxy  *httputil.ReverseProxy
	cache  ownerCache
}

// NewForwarder returns a Forwarder.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.Self == "" || cfg.Owners == nil {
		return nil, errors.New("cluster: ForwarderConfig.Self and Owners are required")
	}
	f := &Forwarder{self: cfg.Self, owners: cfg.Owners, local: cfg.Local, match: cfg.Match, log: cfg.Logger}
	if f.local == nil {
		f.local = func(string) bool { return false }
	}
	if f.match == nil {
		f.match = DeviceOf
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	ttl := cfg.CacheTTL
	if ttl == 0 {
		ttl = DefaultOwnerCacheTTL
	}
	f.cache = ownerCache{ttl: ttl, max: defaultCacheEntries, m: map[string]cacheEntry{}}
	tr := cfg.Transport
	if tr == nil {
		tr = NewTransport(TransportOptions{})
	}
	f.proxy = &httputil.ReverseProxy{
		Rewrite:        f.rewrite,
		Transport:      tr,
		ModifyResponse: f.modifyResponse,
		ErrorHandler:   f.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       slog.NewLogLogger(f.log.Handler(), slog.LevelDebug),
	}
	return f, nil
}

// TransportOptions tune NewTransport.
type TransportOptions struct {
	// TrustLeaf (DER) and RootCAs verify peers served over https: a peer
	// presenting TrustLeaf — this instance's own certificate, when the
	// instances share one — is trusted; otherwise its chain must lead to
	// RootCAs (nil: the system roots) and name the host dialled.
	TrustLeaf []byte
	RootCAs   *x509.CertPool
	// DialTimeout bounds the TCP connect and the TLS handshake to a peer
	// (default 3 s): a dead owner is noticed quickly and, as the request
	// was not sent, it is served locally instead.
	DialTimeout time.Duration
	// ResponseTimeout bounds the wait for the owner's response headers
	// (default 150 s, above the owner's own device budget). It does not
	// limit an upgraded (WebSocket) connection once switched.
	ResponseTimeout time.Duration
}

// NewTransport returns the transport for requests between instances:
// HTTP/1.1 (WebSocket upgrades pass through), kept-alive connections,
// short connect timeouts.
func NewTransport(o TransportOptions) *http.Transport {
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ResponseTimeout <= 0 {
		o.ResponseTimeout = DefaultResponseTimeout
	}
	d := &net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext: d.DialContext,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			raw, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := tls.Client(raw, peerTLS(host, o.TrustLeaf, o.RootCAs))
			hctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
			defer cancel()
			if err := c.HandshakeContext(hctx); err != nil {
				raw.Close()
				return nil, err
			}
			return c, nil
		},
		ResponseHeaderTimeout: o.ResponseTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
	}
}

// forwardKey carries a forwarded request's state through the proxy.
type forwardKey struct{}

type forward struct {
	in     *http.Request // as received
	next   http.Handler
	guid   string
	owner  *peer
	sent   atomic.Bool // the request headers went out to the owner
	status int
	local  bool // the owner could not be reached: served here
}

// Wrap returns next behind the forwarder.
func (f *Forwarder) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		guid, ok := f.match(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get(HopHeader) != "" {
			// Forwarded to us: serve here whatever the store says.
			w.Header().Set(InstanceHeader, f.self)
			if !f.local(guid) {
				w.Header().Set(staleHeader, "1")
			}
			next.ServeHTTP(w, r)
			return
		}
		if !f.local(guid) {
			if p := f.owner(r.Context(), guid); p != nil {
				f.forward(w, r, next, guid, p)
				return
			}
		}
		w.Header().Set(InstanceHeader, f.self)
		next.ServeHTTP(w, r)
	})
}

func (f *Forwarder) forward(w http.ResponseWriter, r *http.Request, next http.Handler, guid string, p *peer) {
	start := time.Now()
	fw := &forward{in: r, next: next, guid: guid, owner: p}
	ctx := context.WithValue(r.Context(), forwardKey{}, fw)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { fw.sent.Store(true) }})
	f.proxy.ServeHTTP(w, r.WithContext(ctx))
	if fw.local {
		return
	}
	f.log.LogAttrs(r.Context(), slog.LevelInfo, "http request forwarded",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("device", guid),
		slog.String("owner", p.id), slog.Int("status", fw.status), slog.Duration("duration", time.Since(start)),
		slog.String("remote", r.RemoteAddr))
}

func (f *Forwarder) rewrite(pr *httputil.ProxyRequest) {
	fw := pr.In.Context().Value(forwardKey{}).(*forward)
	pr.SetURL(fw.owner.target)
	pr.Out.Host = pr.In.Host // the owner sees the request as the client sent it
	pr.SetXForwarded()
	pr.Out.Header.Set(HopHeader, f.self)
}

func (f *Forwarder) modifyResponse(res *http.Response) error {
	fw := res.Request.Context().Value(forwardKey{}).(*forward)
	fw.status = res.StatusCode
	if res.Header.Get(InstanceHeader) == "" { // e.g. a 101 written by a WebSocket library
		res.Header.Set(InstanceHeader, fw.owner.id)
	}
	if res.Header.Get(staleHeader) != "" {
		res.Header.Del(staleHeader)
		f.cache.drop(fw.guid)
	}
	return nil
}

// proxyError handles a failed forward. When the owner never received the
// request (it could not be reached), the request is served locally as if
// no instance held the device; otherwise the client gets 502/504.
func (f *Forwarder) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	fw := r.Context().Value(forwardKey{}).(*forward)
	if fw.in.Context().Err() != nil {
		fw.status = 499 // the client went away
		return
	}
	if !fw.sent.Load() {
		f.log.Warn("cluster: the instance holding the device cannot be reached; serving the request here",
			"device", fw.guid, "owner", fw.owner.id, "err", err)
		f.cache.put(fw.guid, nil)
		w.Header().Set(InstanceHeader, f.self)
		fw.local = true
		fw.next.ServeHTTP(w, fw.in)
		return
	}
	f.cache.drop(fw.guid)
	status, msg := http.StatusBadGateway, "Bad Gateway"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		status, msg = http.StatusGatewayTimeout, "Gateway Timeout"
	}
	fw.status = status
	f.log.Warn("cluster: forwarding to the instance holding the device failed", "device", fw.guid, "owner", fw.owner.id, "err", err)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q,"errorDescription":"the amtd instance holding the device's CIRA connection did not answer"}`, msg)
}

// bufferPool recycles the proxy's copy buffers (32 KiB each).
type bufferPool struct{}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *copyBuffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { copyBuffers.Put(&b) }

// ---- owner lookup cache ----

// peer is an instance to forward to.
type peer struct {
	id     string
	target *url.URL
}

type cacheEntry struct {
	p   *peer // nil: no other live instance holds the device
	exp time.Time
}

type ownerCache struct {
	ttl time.Duration
	max int
	mu  sync.RWMutex
	m   map[string]cacheEntry
}

func (c *ownerCache) get(guid string) (*peer, bool) {
	if c.ttl < 0 {
		return nil, false
	}
	c.mu.RLock()
	e, ok := c.m[guid]
	c.mu.RUnlock()
	if !ok || time.Now().After(e.exp) {
		return nil, false
	}
	return e.p, true
}

func (c *ownerCache) put(guid string, p *peer) {
	if c.ttl < 0 {
		return
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.After(e.exp) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			clear(c.m)
		}
	}
	c.m[guid] = cacheEntry{p: p, exp: now.Add(c.ttl)}
}

func (c *ownerCache) drop(guid string) {
	c.mu.Lock()
	delete(c.m, guid)
	c.mu.Unlock()
}

// owner returns the peer to forward a device's requests to, or nil.
func (f *Forwarder) owner(ctx context.Context, guid string) *peer {
	if p, ok := f.cache.get(guid); ok {
		return p
	}
	var p *peer
	inst, err := f.owners.DeviceOwner(ctx, guid)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		if ctx.Err() != nil {
			return nil // the client went away; do not cache
		}
		f.log.Warn("cluster: looking up the instance holding a device failed; serving here", "device", guid, "err", err)
	case inst.ID == f.self || inst.Addr == "":
	default:
		u, perr := url.Parse(inst.Addr)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			f.log.Warn("cluster: an instance advertises an unusable address", "owner", inst.ID, "addr", inst.Addr)
			break
		}
		p = &peer{id: inst.ID, target: &url.URL{Scheme: u.Scheme, Host: u.Host}}
	}
	f.cache.put(guid, p)
	return p
}
