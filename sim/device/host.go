package device

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Host owns listening sockets and routes each accepted connection to the
// device whose address it was made to (by the connection's local address).
// A fleet shares one Host: with one loopback-only listener per port
// (ListenLoopback) N devices on 127.1.x.y cost one accept loop per port and
// no goroutine of their own. A standalone device uses a private Host that binds
// its addresses on demand.
type Host struct {
	log  *slog.Logger
	auto bool // bind a listener when a route has none (private host)

	mu        sync.Mutex
	listeners map[string]net.Listener // by bound address
	routes    map[string]route        // by "ip:port"
	closed    bool
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
}

type route struct {
	d    *Device
	kind portKind
}

// portKind is what a device serves on an address.
type portKind int

const (
	portHTTP  portKind = iota // WS-MAN over HTTP (16992)
	portHTTPS                 // WS-MAN over HTTPS (16993)
	portRedir                 // redirection (16994)
)

// NewHost creates a host for shared listeners; call Listen for each address.
func NewHost(logger *slog.Logger) *Host {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Host{log: logger, listeners: map[string]net.Listener{}, routes: map[string]route{}, ctx: ctx, cancel: cancel}
}

func newPrivateHost(logger *slog.Logger) *Host {
	h := NewHost(logger)
	h.auto = true
	return h
}

// Listen binds addr (for example "127.0.0.1:16992") and serves connections to
// the devices registered at their local addresses. It returns once bound.
func (h *Host) Listen(ctx context.Context, addr string) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	return h.serve(ln)
}

// ListenLoopback serves port ("0" for a free one) for every device address
// in 127.0.0.0/8 with one listener that only loopback traffic can reach
// (Linux: the wildcard address bound to the "lo" interface). It returns the
// bound address.
func (h *Host) ListenLoopback(ctx context.Context, port string) (string, error) {
	ln, err := listenLoopback(ctx, port)
	if err != nil {
		return "", err
	}
	return h.serve(ln)
}

func (h *Host) serve(ln net.Listener) (string, error) {
	bound := ln.Addr().String()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		ln.Close()
		return "", errors.New("device: host closed")
	}
	h.listeners[bound] = ln
	h.wg.Add(1)
	h.mu.Unlock()
	go h.accept(ln)
	return bound, nil
}

func (h *Host) accept(ln net.Listener) {
	defer h.wg.Done()
	delay := 5 * time.Millisecond
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			h.log.Warn("sim: accept", "addr", ln.Addr().String(), "err", err)
			select {
			case <-time.After(delay):
			case <-h.ctx.Done():
				return
			}
			delay = min(2*delay, time.Second)
			continue
		}
		delay = 5 * time.Millisecond
		key := normalize(conn.LocalAddr().String())
		h.mu.Lock()
		r, ok := h.routes[key]
		if ok {
			h.wg.Add(1)
		}
		h.mu.Unlock()
		if !ok || !r.d.acquire() {
			// no device (or its port is closed): like a refused connection
			if ok {
				h.wg.Done()
			}
			abort(conn)
			continue
		}
		go func() {
			defer h.wg.Done()
			switch r.kind {
			case portRedir:
				r.d.serveRedirConn(h.ctx, conn)
			default:
				r.d.serveConn(h.ctx, conn, r.kind == portHTTPS)
			}
		}()
	}
}

func normalize(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return addr
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// register routes addr to d. A private host binds addr if no listener
// covers it; the returned address is the one actually serving.
func (h *Host) register(ctx context.Context, addr string, d *Device, kind portKind) (string, error) {
	key := normalize(addr)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return "", errors.New("device: host closed")
	}
	_, bound := h.listeners[key]
	if !bound && !h.auto {
		bound = h.coveredLocked(key)
		if !bound {
			h.mu.Unlock()
			return "", fmt.Errorf("device: no listener for %s on the shared host", addr)
		}
	}
	if bound {
		if other, ok := h.routes[key]; ok && other.d != d {
			h.mu.Unlock()
			return "", fmt.Errorf("device: %s already used by another device", addr)
		}
		h.routes[key] = route{d: d, kind: kind}
		h.mu.Unlock()
		return key, nil
	}
	h.mu.Unlock()
	actual, err := h.Listen(ctx, addr)
	if err != nil {
		return "", err
	}
	key = normalize(actual)
	h.mu.Lock()
	h.routes[key] = route{d: d, kind: kind}
	h.mu.Unlock()
	return key, nil
}

// coveredLocked: a wildcard listener on the same port serves key.
func (h *Host) coveredLocked(key string) bool {
	ap, err := netip.ParseAddrPort(key)
	if err != nil {
		return false
	}
	for a := range h.listeners {
		lp, err := netip.ParseAddrPort(a)
		if err != nil || lp.Port() != ap.Port() || !lp.Addr().IsUnspecified() {
			continue
		}
		if lp.Addr().Is6() || ap.Addr().Is4() {
			return true
		}
	}
	return false
}

// unregister removes a route; a private host closes the listener too, so
// the port refuses connections like a closed AMT port.
func (h *Host) unregister(addr string, d *Device) {
	key := normalize(addr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if r, ok := h.routes[key]; ok && r.d == d {
		delete(h.routes, key)
	}
	if h.auto {
		if ln, ok := h.listeners[key]; ok {
			ln.Close()
			delete(h.listeners, key)
		}
	}
}

// Close stops every listener and waits for open connections to finish.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		h.wg.Wait()
		return nil
	}
	h.closed = true
	for k, ln := range h.listeners {
		ln.Close()
		delete(h.listeners, k)
	}
	h.cancel()
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// abort closes a connection with a reset.
func abort(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}
