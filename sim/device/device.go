// Package device runs a simulated Intel AMT device on the network: WS-MAN
// over HTTP on its address (port 16992) with AMT's digest authentication and
// HTTP framing, and HTTPS on 16993 once TLS is configured and committed
// (or from the start on TLS-enforced AMT 19+ firmware); optionally the
// redirection protocol (SOL, IDE-R, KVM; package sim/redir) on 16994
// (Config.RedirAddrs); and, with Config.CIRA, the CIRA client (package
// sim/cira) that calls the configured MPS home and serves WS-MAN and
// redirection over its channels (ChannelHandler).
package device

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/digest"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/hello"
	"github.com/amtd-project/amtd/sim/redir"
	"github.com/amtd-project/amtd/sim/wsman"
)

// Default ports.
const (
	HTTPPort     = 16992
	HTTPSPort    = 16993
	RedirPort    = 16994
	RedirTLSPort = 16995
)

// Config configures a device.
type Config struct {
	// Firmware is the device state (required).
	Firmware *firmware.Firmware
	// Addrs are the HTTP (16992) addresses; default 127.0.0.1:16992. Port 0
	// picks a free port (tests).
	Addrs []string
	// TLSAddrs are the HTTPS addresses; default: the hosts of Addrs with port
	// 16993 (port 0 when the HTTP port is 0).
	TLSAddrs []string
	// LMS marks the addresses as the host-local LMS endpoint: the "LMS TLS
	// Settings" instance governs them instead of the 802.3 (network) one.
	LMS bool
	// Host shares listeners among a fleet (nil: the device binds its own).
	Host *Host
	// Latency delays every WS-MAN answer, like real firmware (e.g. 80ms).
	Latency time.Duration
	// ReadTimeout bounds reading one request (default 30 s).
	ReadTimeout time.Duration
	// HangLimit bounds how long a Hang fault holds a connection (0: until
	// the client closes or the device stops).
	HangLimit time.Duration
	// NonceLifetime of digest nonces (default digest.DefaultNonceLifetime).
	NonceLifetime time.Duration
	// EnumerationLifetime of WS-MAN enumeration contexts (default 2 min).
	EnumerationLifetime time.Duration
	Logger              *slog.Logger

	// RedirAddrs are addresses where the device serves the redirection
	// protocol (SOL, IDE-R, KVM) like AMT's port 16994; none by default.
	// Port 0 picks a free port.
	RedirAddrs []string
	// NoListen: the device binds no address at all (Addrs, TLS and
	// RedirAddrs are ignored); it is reached only through CIRA.
	NoListen bool
	// CIRA enables the device's CIRA client: once the firmware is
	// configured for CIRA (AddMpServer, a policy, environment detection
	// saying "outside") the device calls the MPS home and serves WS-MAN and
	// redirection over its channels. nil: the device never connects.
	CIRA *cira.Options

	// Hellos sends the device's hellos while its firmware is in legacy
	// setup (spec/legacy.md §4); a fleet shares one. nil: no hellos (the
	// setup TLS session on 16993 is served all the same).
	Hellos *hello.Scheduler
	// HelloFrom is the address hellos are sent from, so that the
	// configuration server connects back to this device (default: the host
	// of the first HTTP address when it is a specific IP).
	HelloFrom netip.Addr
	// CommitRestart is how long the TLS port stays closed after
	// CommitChanges ends a legacy setup: AMT restarts its web server with
	// the installed certificate (about 3 s, legacy.md §13). 0: at once.
	CommitRestart time.Duration
}

// Device is a running simulated device.
type Device struct {
	cfg    Config
	fw     *firmware.Firmware
	log    *slog.Logger
	engine *wsman.Engine
	digest *digest.Server

	latency atomic.Int64

	mu         sync.Mutex
	host       *Host
	ownHost    bool
	started    bool
	ctx        context.Context
	cancel     context.CancelFunc
	httpAddrs  []string // bound
	tlsWant    []string // configured TLS addresses
	tlsAddrs   []string // bound while TLS is active
	redirAddrs []string // bound
	conns      sync.WaitGroup
	cira       *cira.Client
	// legacy setup (legacy.go)
	wasLegacy    bool
	restartUntil time.Time
	restartTimer *time.Timer
}

// New prepares a device; Start makes it reachable.
func New(cfg Config) (*Device, error) {
	if cfg.Firmware == nil {
		return nil, errors.New("device: Config.Firmware is required")
	}
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(HTTPPort))}
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = cfg.Firmware.Logger()
	}
	log = log.With("device", cfg.Firmware.UUIDString())
	dg, err := digest.New(digest.Options{NonceLifetime: cfg.NonceLifetime, Now: cfg.Firmware.SystemNow, Rand: cfg.Firmware.Rand()})
	if err != nil {
		return nil, err
	}
	d := &Device{
		cfg: cfg, fw: cfg.Firmware, log: log, digest: dg,
		engine: wsman.NewEngine(cfg.Firmware, wsman.Options{EnumerationLifetime: cfg.EnumerationLifetime, Logger: log}),
	}
	d.latency.Store(int64(cfg.Latency))
	return d, nil
}

// Firmware is the device's state.
func (d *Device) Firmware() *firmware.Firmware { return d.fw }

// Engine is the device's WS-MAN engine (fault injection).
func (d *Device) Engine() *wsman.Engine { return d.engine }

// AddFault installs a fault injection rule (see wsman.FaultRule).
func (d *Device) AddFault(r wsman.FaultRule) { d.engine.AddFault(r) }

// ClearFaults removes all fault injection rules.
func (d *Device) ClearFaults() { d.engine.ClearFaults() }

// SetLatency changes the per-call latency.
func (d *Device) SetLatency(l time.Duration) { d.latency.Store(int64(l)) }

// Start binds the device's addresses and serves until ctx ends or Close.
func (d *Device) Start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return errors.New("device: already started")
	}
	d.started = true
	d.ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	d.host = d.cfg.Host
	if d.host == nil {
		d.host = newPrivateHost(d.log)
		d.ownHost = true
	}
	d.mu.Unlock()
	if d.cfg.CIRA != nil {
		c, err := cira.New(cira.Config{Options: *d.cfg.CIRA, Firmware: d.fw, Services: d})
		if err != nil {
			d.Close()
			return err
		}
		d.mu.Lock()
		d.cira = c
		d.mu.Unlock()
	}
	if d.cfg.NoListen {
		return d.startCIRA(ctx)
	}
	for _, a := range d.cfg.Addrs {
		bound, err := d.host.register(ctx, a, d, portHTTP)
		if err != nil {
			d.Close()
			return fmt.Errorf("device: listen %s: %w", a, err)
		}
		d.mu.Lock()
		d.httpAddrs = append(d.httpAddrs, bound)
		d.mu.Unlock()
	}
	for _, a := range d.cfg.RedirAddrs {
		bound, err := d.host.register(ctx, a, d, portRedir)
		if err != nil {
			d.Close()
			return fmt.Errorf("device: listen %s: %w", a, err)
		}
		d.mu.Lock()
		d.redirAddrs = append(d.redirAddrs, bound)
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.tlsWant = d.cfg.TLSAddrs
	if len(d.tlsWant) == 0 {
		for _, a := range d.httpAddrs {
			host, port, _ := net.SplitHostPort(a)
			tp := strconv.Itoa(HTTPSPort)
			if port != strconv.Itoa(HTTPPort) && len(d.cfg.Addrs) > 0 && strings.HasSuffix(d.cfg.Addrs[0], ":0") {
				tp = "0"
			}
			d.tlsWant = append(d.tlsWant, net.JoinHostPort(host, tp))
		}
	}
	d.mu.Unlock()
	d.fw.OnEvent(func(ev firmware.Event) {
		switch ev {
		case firmware.EventProvisioningChanged, firmware.EventLegacySetupChanged:
			d.legacyChanged()
			d.refreshTLS()
		case firmware.EventTLSChanged:
			d.refreshTLS()
		}
	})
	d.legacyChanged()
	d.refreshTLS()
	return d.startCIRA(ctx)
}

// startCIRA starts the CIRA client (if any) and arranges for Close when
// ctx ends; no goroutine per device: Close runs only if ctx ends.
func (d *Device) startCIRA(ctx context.Context) error {
	d.mu.Lock()
	c := d.cira
	d.mu.Unlock()
	if c != nil {
		if err := c.Start(d.ctx); err != nil {
			d.Close()
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { d.Close() })
	context.AfterFunc(d.ctx, func() { stop() })
	return nil
}

// CIRA is the device's CIRA client (nil unless Config.CIRA was set).
func (d *Device) CIRA() *cira.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cira
}

// RedirAddr is the first bound redirection address ("" without RedirAddrs).
func (d *Device) RedirAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.redirAddrs) == 0 {
		return ""
	}
	return d.redirAddrs[0]
}

// ChannelHandler serves the channels the MPS opens over CIRA: WS-MAN on
// 16992 (and 16993 while TLS is active), redirection on 16994 (and 16995
// while TLS is active). It implements cira.Services.
func (d *Device) ChannelHandler(port uint16) func(ctx context.Context, conn net.Conn) {
	switch port {
	case HTTPPort:
		return d.ServeWSMAN
	case HTTPSPort:
		if d.tlsActive() {
			return d.ServeWSMANTLS
		}
	case RedirPort:
		return d.ServeRedirection
	case RedirTLSPort:
		if d.tlsActive() {
			return d.ServeRedirectionTLS
		}
	}
	return nil
}

// ServeRedirection runs one redirection session (SOL, IDE-R, KVM; package
// sim/redir) on a stream such as a CIRA channel to port 16994. It returns
// when the session ends (and closes the stream).
func (d *Device) ServeRedirection(ctx context.Context, conn net.Conn) {
	if !d.acquire() {
		conn.Close()
		return
	}
	defer d.conns.Done()
	d.serveRedir(ctx, conn, false)
}

// ServeRedirectionTLS is ServeRedirection with TLS inside the stream (port
// 16995), using the device's TLS settings and certificate.
func (d *Device) ServeRedirectionTLS(ctx context.Context, conn net.Conn) {
	if !d.acquire() {
		conn.Close()
		return
	}
	defer d.conns.Done()
	d.serveRedir(ctx, conn, true)
}

// serveRedirConn serves a connection accepted on a redirection address;
// the caller has acquired it.
func (d *Device) serveRedirConn(hostCtx context.Context, conn net.Conn) {
	defer d.conns.Done()
	d.serveRedir(hostCtx, conn, false)
}

func (d *Device) serveRedir(ctx context.Context, conn net.Conn, secure bool) {
	d.mu.Lock()
	devCtx := d.ctx
	d.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(devCtx, cancel)
	defer stop()
	if secure {
		cfg, err := d.tlsConfig()
		if err != nil {
			d.log.Error("sim: TLS configuration", "err", err)
			conn.Close()
			return
		}
		tc := tls.Server(conn, cfg)
		_ = conn.SetDeadline(time.Now().Add(d.cfg.ReadTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			d.log.Debug("sim: redirection TLS handshake", "err", err)
			conn.Close()
			return
		}
		_ = conn.SetDeadline(time.Time{})
		conn = tc
	}
	err := redir.Serve(ctx, conn, redir.Config{Firmware: d.fw, Logger: d.log, HandshakeTimeout: d.cfg.ReadTimeout})
	d.log.Debug("sim: redirection session ended", "err", err)
}

// Addr is the first bound HTTP address.
func (d *Device) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.httpAddrs) == 0 {
		return ""
	}
	return d.httpAddrs[0]
}

// TLSAddr is the first bound HTTPS address ("" while TLS is not active).
func (d *Device) TLSAddr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.tlsAddrs) == 0 {
		return ""
	}
	return d.tlsAddrs[0]
}

// Close stops the device and waits for its connections.
func (d *Device) Close() error {
	d.mu.Lock()
	if !d.started || d.host == nil {
		d.mu.Unlock()
		return nil
	}
	d.cancel()
	for _, a := range append(append(d.httpAddrs, d.tlsAddrs...), d.redirAddrs...) {
		d.host.unregister(a, d)
	}
	d.httpAddrs, d.tlsAddrs, d.redirAddrs = nil, nil, nil
	host, own, c := d.host, d.ownHost, d.cira
	if d.restartTimer != nil {
		d.restartTimer.Stop()
	}
	d.mu.Unlock()
	if d.cfg.Hellos != nil {
		d.cfg.Hellos.Untrack(d.fw)
	}
	if c != nil {
		c.Close() // ends the channels, whose handlers hold connections
	}
	d.conns.Wait()
	if own {
		return host.Close()
	}
	return nil
}

// tlsActive: the 16993 port is open when TLS is committed for this side or
// the firmware enforces TLS on local ports.
func (d *Device) tlsActive() bool {
	d.mu.Lock()
	restarting := time.Now().Before(d.restartUntil)
	d.mu.Unlock()
	if restarting {
		return false
	}
	if d.fw.LegacyStatus().Active {
		return true // the setup TLS session (legacy.md §13)
	}
	st := d.fw.TLSServer()
	if st.Enforced {
		return true
	}
	if d.cfg.LMS {
		return st.Local.Enabled && st.Cert != nil
	}
	return st.Remote.Enabled && st.Cert != nil
}

// refreshTLS opens or closes the HTTPS port after a change.
func (d *Device) refreshTLS() {
	want := d.tlsActive()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil || d.ctx.Err() != nil {
		return
	}
	switch {
	case want && len(d.tlsAddrs) == 0:
		for _, a := range d.tlsWant {
			bound, err := d.host.register(d.ctx, a, d, portHTTPS)
			if err != nil {
				d.log.Error("sim: open TLS port", "addr", a, "err", err)
				continue
			}
			d.tlsAddrs = append(d.tlsAddrs, bound)
			if strings.HasSuffix(a, ":0") {
				// keep the port across TLS restarts
				for i := range d.tlsWant {
					if d.tlsWant[i] == a {
						d.tlsWant[i] = bound
					}
				}
			}
		}
	case !want && len(d.tlsAddrs) > 0:
		for _, a := range d.tlsAddrs {
			d.host.unregister(a, d)
		}
		d.tlsAddrs = nil
	}
}

// plainAllowed: whether the non-TLS port answers.
func (d *Device) plainAllowed() bool {
	st := d.fw.TLSServer()
	if st.Enforced && d.cfg.LMS {
		return false
	}
	s := st.Remote
	if d.cfg.LMS {
		s = st.Local
	}
	return !s.Enabled || s.AcceptNonSecureConnections || st.Cert == nil
}

// tlsConfig builds the server configuration for one handshake.
func (d *Device) tlsConfig() (*tls.Config, error) {
	st := d.fw.TLSServer()
	cert := st.Cert
	if cert == nil {
		c, err := d.fw.SelfCertificate()
		if err != nil {
			return nil, err
		}
		cert = c
	}
	s := st.Remote
	if d.cfg.LMS {
		s = st.Local
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: cipherSuites(),
	}
	if major(d.fw) >= 19 {
		cfg.MaxVersion = tls.VersionTLS13
	}
	if major(d.fw) < 12 {
		cfg.MinVersion = tls.VersionTLS10
	}
	if st := d.fw.LegacyStatus(); st.Active && st.Mode == firmware.SetupPKI {
		return d.setupTLSConfig(cfg)
	}
	if _, _, ok := d.fw.SetupClientHash(); ok {
		// AMT 19+ TLS host-based setup: the provisioning client proves itself
		// with its certificate; checked after the handshake.
		cfg.ClientAuth = tls.RequestClientCert
	} else if st.Cert != nil && s.Enabled && s.MutualAuthentication {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = st.Roots
		trusted := s.TrustedCN
		cfg.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
			if len(trusted) == 0 || len(chains) == 0 {
				return nil
			}
			cn := chains[0][0].Subject.CommonName
			for _, t := range trusted {
				if strings.EqualFold(t, cn) {
					return nil
				}
			}
			return errors.New("sim: client certificate CN not trusted")
		}
	}
	return cfg, nil
}

// cipherSuites keeps RSA key exchange enabled as old AMT firmware does.
func cipherSuites() []uint16 {
	var out []uint16
	for _, s := range tls.CipherSuites() {
		out = append(out, s.ID)
	}
	return append(out,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	)
}

func major(fw *firmware.Firmware) int {
	var v string
	fw.View(func(s *firmware.State) { v = s.Versions.AMT })
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

// setupSession reports whether a TLS connection is the host-based setup
// session: the client's leaf matches the hash given to StartConfigurationHBased.
func (d *Device) setupSession(cs tls.ConnectionState) bool {
	alg, hash, ok := d.fw.SetupClientHash()
	if !ok || len(cs.PeerCertificates) == 0 {
		return false
	}
	raw := cs.PeerCertificates[0].Raw
	var got []byte
	switch alg {
	case 2:
		s := sha256.Sum256(raw)
		got = s[:]
	case 3:
		s := sha512.Sum384(raw)
		got = s[:]
	}
	return got != nil && subtle.ConstantTimeCompare(got, hash) == 1
}

// ---- HTTP, the way AMT does it ----

// acquire counts a connection for Close, unless the device is stopping.
func (d *Device) acquire() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ctx == nil || d.ctx.Err() != nil {
		return false
	}
	d.conns.Add(1)
	return true
}

// serveConn answers one connection; the caller has acquired it.
func (d *Device) serveConn(hostCtx context.Context, conn net.Conn, secure bool) {
	defer d.conns.Done()
	d.serveStream(hostCtx, conn, streamOptions{secure: secure})
}

// streamOptions say how a stream reached the device.
type streamOptions struct {
	// secure: TLS (port 16993) inside the stream.
	secure bool
	// tunnel: the stream is a CIRA channel. The TLS tunnel protects it, so
	// plain HTTP is served whatever the TLS settings say (MPS always uses
	// 16992 inside the tunnel), and requests may follow one another on the
	// stream (HTTP keep-alive) until the peer closes it.
	tunnel bool
}

// ServeWSMAN answers WS-MAN on a stream that did not arrive on the device's
// listeners, such as a CIRA channel to port 16992: plain HTTP/1.1 with
// AMT's digest authentication, several requests one after the other until
// the peer closes the stream or sends "Connection: close". It returns when
// the stream is done (and closes it). The device must be started.
func (d *Device) ServeWSMAN(ctx context.Context, conn net.Conn) {
	if !d.acquire() {
		conn.Close()
		return
	}
	defer d.conns.Done()
	d.serveStream(ctx, conn, streamOptions{tunnel: true})
}

// ServeWSMANTLS is ServeWSMAN with TLS inside the stream (a CIRA channel to
// port 16993), using the device's TLS settings and certificate.
func (d *Device) ServeWSMANTLS(ctx context.Context, conn net.Conn) {
	if !d.acquire() {
		conn.Close()
		return
	}
	defer d.conns.Done()
	d.serveStream(ctx, conn, streamOptions{tunnel: true, secure: true})
}

func (d *Device) serveStream(hostCtx context.Context, conn net.Conn, o streamOptions) {
	defer conn.Close()
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	remote := ""
	if a := conn.RemoteAddr(); a != nil {
		remote = a.String()
	}
	log := d.log.With("remote", remote)
	_ = conn.SetDeadline(time.Now().Add(d.cfg.ReadTimeout))
	setup := false
	var legacy firmware.SetupMode
	if o.secure {
		ls := d.fw.LegacyStatus()
		if ls.Active {
			legacy = ls.Mode
		}
		if legacy == firmware.SetupPSK {
			pc, err := d.pskHandshake(ctx, conn)
			if err != nil {
				return
			}
			defer pc.Close() // close_notify before the socket closes
			conn = pc
		} else {
			cfg, err := d.tlsConfig()
			if err != nil {
				log.Error("sim: TLS configuration", "err", err)
				abort(conn)
				return
			}
			tc := tls.Server(conn, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				log.Debug("sim: TLS handshake", "err", err)
				if legacy == firmware.SetupPKI {
					d.setupRefused(err)
				}
				return
			}
			if legacy == firmware.SetupPKI {
				d.setupAccepted(tc.ConnectionState())
			}
			setup = d.setupSession(tc.ConnectionState())
			defer tc.Close() // close_notify before the socket closes
			conn = tc
		}
	} else if !o.tunnel && !d.plainAllowed() {
		abort(conn)
		return
	}
	br := bufio.NewReaderSize(conn, 4096)
	for first := true; ; first = false {
		_ = conn.SetDeadline(time.Now().Add(d.cfg.ReadTimeout))
		if _, err := br.Peek(1); err != nil {
			if first {
				// probe connection (connect then close), as rpc-go and LMS detection do
				log.Debug("sim: connection closed without a request")
			}
			return
		}
		if !d.serveRequest(ctx, hostCtx, conn, br, o, session{setup: setup, legacy: legacy}, remote, log) {
			return
		}
	}
}

// serveRequest reads and answers one request; it reports whether the
// stream stays open for another.
func (d *Device) serveRequest(ctx, hostCtx context.Context, conn net.Conn, br *bufio.Reader, o streamOptions, ss session, remote string, log *slog.Logger) bool {
	req, err := http.ReadRequest(br)
	if err != nil {
		log.Debug("sim: bad HTTP request", "err", err)
		d.writeSimple(conn, 400, "Bad Request", badRequestPage)
		return false
	}
	keep := o.tunnel && !req.Close
	body, err := io.ReadAll(io.LimitReader(req.Body, wsman.MaxRequestSize+1))
	if err != nil || len(body) > wsman.MaxRequestSize {
		log.Debug("sim: bad request body", "err", err, "size", len(body))
		d.writeSimple(conn, 400, "Bad Request", badRequestPage)
		return false
	}
	if req.Method != http.MethodPost || req.URL.Path != "/wsman" {
		d.writeSimple(conn, 404, "Not Found", notFoundPage)
		return false
	}
	realm := d.fw.Realm()
	// the LMS endpoint is the local interface; anything else (CIRA
	// included) is the network interface
	res := d.verifyDigest(req, realm, ss, d.cfg.LMS && !o.tunnel)
	if !res.OK {
		d.writeUnauthorized(conn, realm, res.Stale, keep)
		return keep
	}
	_ = conn.SetDeadline(time.Time{})
	result := d.engine.Serve(ctx, body, wsman.Session{User: res.Username, Setup: ss.setup || ss.legacy != firmware.SetupNone, Addr: remote})
	log.Debug("sim: wsman", "class", result.Class, "op", result.Op, "status", result.Status, "inject", int(result.Inject))
	if !d.sleep(ctx, hostCtx, time.Duration(d.latency.Load())) {
		abort(conn)
		return false
	}
	switch result.Inject {
	case wsman.FaultHang:
		d.hang(ctx, hostCtx, conn)
		abort(conn)
		return false
	case wsman.FaultReset, wsman.FaultResetAfter:
		abort(conn)
		return false
	case wsman.FaultHTTP500:
		d.writeSimple(conn, 500, "Internal Server Error", internalErrorPage)
		return false
	}
	_ = conn.SetWriteDeadline(time.Now().Add(d.cfg.ReadTimeout))
	return d.writeSOAP(conn, result.Status, result.Body, keep) && keep
}

func (d *Device) sleep(ctx, hostCtx context.Context, dur time.Duration) bool {
	if dur <= 0 {
		return true
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-hostCtx.Done():
	}
	return false
}

// hang holds the connection until the client gives up, the device stops or
// HangLimit passes.
func (d *Device) hang(ctx, hostCtx context.Context, conn net.Conn) {
	closed := make(chan struct{})
	_ = conn.SetReadDeadline(time.Time{})
	go func() {
		defer close(closed)
		_, _ = io.Copy(io.Discard, conn)
	}()
	var limit <-chan time.Time
	if d.cfg.HangLimit > 0 {
		t := time.NewTimer(d.cfg.HangLimit)
		defer t.Stop()
		limit = t.C
	}
	select {
	case <-closed:
	case <-ctx.Done():
	case <-hostCtx.Done():
	case <-limit:
	}
	_ = conn.SetReadDeadline(time.Now())
	<-closed
}

func (d *Device) serverHeader() string {
	return "Intel(R) Active Management Technology " + d.fw.ServerVersion()
}

// writeSOAP sends a 200 or a 400 SOAP fault: chunked with 4-digit upper-case
// hex chunk sizes, in one write; then the connection is closed unless keep.
// It reports whether the write succeeded.
func (d *Device) writeSOAP(conn net.Conn, status int, body []byte, keep bool) bool {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	b.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n")
	b.WriteString("Server: " + d.serverHeader() + "\r\n")
	b.WriteString("X-Frame-Options: DENY\r\n")
	b.WriteString("Content-Type: application/soap+xml; charset=UTF-8\r\n")
	b.WriteString("Transfer-Encoding: chunked\r\n")
	if !keep {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	for len(body) > 0 {
		n := min(len(body), chunkSize)
		fmt.Fprintf(&b, "%04X\r\n", n)
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	if _, err := conn.Write(b.Bytes()); err != nil {
		d.log.Debug("sim: write response", "err", err)
		return false
	}
	return true
}

// chunkSize keeps chunk sizes at four hex digits like AMT's.
const chunkSize = 0x0FF0

func (d *Device) writeUnauthorized(conn net.Conn, realm string, stale, keep bool) {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 401 Unauthorized\r\n")
	b.WriteString("WWW-Authenticate: " + d.digest.Challenge(realm, stale) + "\r\n")
	b.WriteString("Content-Type: text/html\r\n")
	b.WriteString("Server: " + d.serverHeader() + "\r\n")
	fmt.Fprintf(&b, "Content-Length: %d\r\n", len(unauthorizedPage))
	if !keep {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	b.WriteString(unauthorizedPage)
	if _, err := conn.Write(b.Bytes()); err != nil {
		d.log.Debug("sim: write 401", "err", err)
	}
}

func (d *Device) writeSimple(conn net.Conn, status int, text, page string) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, text)
	b.WriteString("Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n")
	b.WriteString("Server: " + d.serverHeader() + "\r\n")
	b.WriteString("X-Frame-Options: DENY\r\n")
	b.WriteString("Content-Type: text/html\r\n")
	fmt.Fprintf(&b, "Content-Length: %d\r\n", len(page))
	b.WriteString("Connection: close\r\n\r\n")
	b.WriteString(page)
	_, _ = conn.Write(b.Bytes())
}

const pageHead = `<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" ><html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><title>Intel&reg; Active Management Technology</title></head><body><table class=header><tr><td valign=top nowrap><p class=top1>Intel<font class=r><sup>&reg;</sup></font> Active Management Technology</td></tr></table><br>`

var (
	unauthorizedPage  = pageHead + `<h2 class=warn>Log on failed. Incorrect user name or password, or user account temporarily locked.</h2><p><form METHOD="GET" action="index.htm"><h2><input type=submit value="Try again"></h2></form><p></body></html>` + "\n"
	badRequestPage    = pageHead + `<h2 class=warn>Bad Request. Missing required parameter or invalid request.</h2></body></html>` + "\n"
	notFoundPage      = pageHead + `<h2 class=warn>Not Found.</h2></body></html>` + "\n"
	internalErrorPage = pageHead + `<h2 class=warn>Internal Server Error.</h2></body></html>` + "\n"
)
