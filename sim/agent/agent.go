// Package agent is amtd's implementation of the rpc-go role: it plays the
// host tool of one simulated device. It reads the device identity over the
// device's own MEI socket (sim/mei), sends the first message exactly as
// rpc-go v3 (or v2) does, relays each WS-MAN request over a new TCP
// connection to the device's LMS address and honours heartbeat, success and
// error (spec/rpc-protocol.md, spec/heci.md §5.1).
//
// It is an independent implementation of the client side and never imports
// server packages.
package agent

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/amtd-project/amtd/sim/mei"
)

// Config describes one rpc-go run. Zero durations take rpc-go's values.
type Config struct {
	// URL is the server WebSocket URL (ws:// or wss://), e.g.
	// wss://host/activate.
	URL string
	// Command is "activate", "deactivate" or "maintenance" (v2 only).
	Command string
	// Profile is the activation profile (activate).
	Profile string
	// Password is the AMT admin password (deactivate, maintenance, and any
	// command on an activated device). It travels in the method string and
	// the payload, never in logs.
	Password string
	// Force adds " -f" (deactivate, maintenance).
	Force bool
	// Task is the maintenance task: synctime (alias syncclock), syncip,
	// changepassword, synchostname, syncdeviceinfo.
	Task string
	// TaskArg is the new password of changepassword (optional).
	TaskArg string
	// TenantID goes in the first message's tenantId.
	TenantID string
	// DNSSuffixOverride is rpc-go's -d/--dns: used instead of the PKI DNS
	// suffix read over PTHI (which is then not read).
	DNSSuffixOverride string
	// OSDNSSuffix stands in for the operating system's DNS suffix, rpc-go's
	// fallback when the PKI DNS suffix is empty.
	OSDNSSuffix string
	// Hostname is --hostname; default os.Hostname().
	Hostname string
	// FriendlyName is --name (payload friendlyName, omitted when empty).
	FriendlyName string
	// MEIPath is the device's MEI socket (spec/heci.md §8).
	MEIPath string
	// LMSAddr is the device's LMS HTTP address; default "127.0.0.1:16992".
	LMSAddr string
	// LMSTLSAddr is the LMS TLS-port address, used when the device enforces
	// TLS on local ports and for a port_switch to 16993; default the host of
	// LMSAddr with port 16993.
	LMSTLSAddr string
	// Version is "v3" (default) or "v2" (default for maintenance).
	Version string
	// TLSConfig is used for wss:// URLs.
	TLSConfig *tls.Config
	// Proxy selects the proxy for the WebSocket; default
	// http.ProxyFromEnvironment, as rpc-go.
	Proxy func(*http.Request) (*url.URL, error)
	// UUIDOverride is --uuid: sent instead of the firmware UUID.
	UUIDOverride string
	// TLSTunnel is v3's --tls-tunnel (payload tlsTunnel).
	TLSTunnel bool
	// IPConfiguration is sent by v2 maintenance syncip (zero otherwise).
	IPConfiguration IPConfiguration
	// HostnameInfo is sent by v2 maintenance synchostname (zero otherwise).
	HostnameInfo HostnameInfo
	// AppVersion is the client version in every message; default
	// "Development Build".
	AppVersion string

	// FirstByteTimeout: wait for the first LMS response byte; default 3s.
	FirstByteTimeout time.Duration
	// IdleTimeout ends an LMS read after this long without data; default
	// 100ms.
	IdleTimeout time.Duration
	// RoundTimeout is v3's overall budget per relayed round; default 4s.
	RoundTimeout time.Duration
	// LMSConnectTimeout bounds each LMS connect; default 5s.
	LMSConnectTimeout time.Duration
	// HandshakeTimeout bounds the WebSocket handshake; default 60s (v3),
	// none (v2).
	HandshakeTimeout time.Duration
	// ControlModeAttempts and ControlModeRetryDelay: the first
	// GetControlMode is tried 4 times, 4s apart, on error.
	ControlModeAttempts   int
	ControlModeRetryDelay time.Duration
	// TLSFirstByteTimeout and TLSIdleTimeout are the TLS-tunnel read rules;
	// default 2s each.
	TLSFirstByteTimeout time.Duration
	TLSIdleTimeout      time.Duration
	// PortSwitchMaxDelay clamps a port_switch delay; default 60s.
	PortSwitchMaxDelay time.Duration
	// PortSwitchAttempts and PortSwitchRetryDelay: connects after a
	// port_switch; default 5 attempts 5s apart.
	PortSwitchAttempts   int
	PortSwitchRetryDelay time.Duration

	// Logger; default slog.Default().
	Logger *slog.Logger
}

// Result is what a run observed.
type Result struct {
	// Method is the terminal method, "success" or "error"; empty when the
	// run ended without one.
	Method string
	// Message is the terminal message text.
	Message string
	// Status is Message parsed, when it is a status JSON object.
	Status *StatusMessage
	// Payload is the first message's payload with Password cleared.
	Payload Payload
	// Rounds counts relayed requests answered with `response` (or, in
	// TLS-tunnel mode, `tls_data`).
	Rounds int
	// QuietRounds counts relayed requests that produced no bytes from LMS
	// (nothing was sent back).
	QuietRounds int
	// Heartbeats counts heartbeat_request messages answered.
	Heartbeats int
	// ConnectionResets counts connection_reset messages sent (TLS tunnel).
	ConnectionResets int
	// PortSwitches counts port_switch messages honoured.
	PortSwitches int
	// Progress holds the labels of v2 `progress` messages.
	Progress []string
	// Timing of the phases.
	Timing Timing
}

// Timing of a run's phases.
type Timing struct {
	Identity time.Duration // MEI commands
	LMSProbe time.Duration // LMS probe connections
	Connect  time.Duration // WebSocket handshake
	Session  time.Duration // first message sent → end
	Total    time.Duration
}

// Errors of a run.
var (
	// ErrConnectionClosed: the server closed the WebSocket before success
	// or error ("rps connection closed unexpectedly").
	ErrConnectionClosed = errors.New("rps connection closed unexpectedly")
	// ErrInvalidUUID: the UUID is one rpc-go refuses to send.
	ErrInvalidUUID = errors.New("invalid UUID")
	// ErrMissingPassword: the device is activated and no password is set.
	ErrMissingPassword = errors.New("missing or incorrect password")
	// ErrLMSConnectionFailed: TLS is enforced and LMS does not answer.
	ErrLMSConnectionFailed = errors.New("LMS connection failed")
	// ErrLMEUnsupported: nothing listens on the LMS address; rpc-go would
	// fall back to LME over MEI, which this agent does not implement.
	ErrLMEUnsupported = errors.New("LMS not running and LME is not supported by this agent")
)

// RPSError is the server's `error` message.
type RPSError struct {
	Message string
	Status  *StatusMessage
}

func (e *RPSError) Error() string {
	if e.Status != nil {
		return "rps returned error: " + e.Status.Status
	}
	return "rps returned error: " + e.Message
}

// Run performs one rpc-go run. It returns a nil error after `success`, an
// *RPSError after `error`, and other errors for local or transport
// failures; Result is filled as far as the run went.
func Run(ctx context.Context, cfg Config) (Result, error) {
	r, err := newRun(cfg)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	err = r.run(ctx)
	r.res.Timing.Total = time.Since(start)
	return r.res, err
}

type run struct {
	cfg Config
	log *slog.Logger
	v2  bool
	res Result

	ws    *websocket.Conn
	write func([]byte) error // sends one text message to the server
	// TLS-tunnel state.
	tunnel     bool
	tunnelAddr string
	tconn      net.Conn
}

func newRun(cfg Config) (*run, error) {
	switch cfg.Command {
	case "activate":
		if cfg.Profile == "" {
			return nil, errors.New("agent: activate needs a profile")
		}
	case "deactivate":
	case "maintenance":
		if cfg.Version == "" {
			cfg.Version = "v2"
		}
		if cfg.Version != "v2" {
			return nil, errors.New("agent: maintenance is reachable only with rpc-go v2")
		}
		switch cfg.Task {
		case "synctime", "syncclock", "syncip", "changepassword", "synchostname", "syncdeviceinfo":
		default:
			return nil, fmt.Errorf("agent: unknown maintenance task %q", cfg.Task)
		}
	default:
		return nil, fmt.Errorf("agent: unknown command %q", cfg.Command)
	}
	if cfg.Version == "" {
		cfg.Version = "v3"
	}
	if cfg.Version != "v3" && cfg.Version != "v2" {
		return nil, fmt.Errorf("agent: unknown rpc-go version %q", cfg.Version)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, errors.New("agent: URL must be ws:// or wss://")
	}
	if cfg.MEIPath == "" {
		return nil, errors.New("agent: MEIPath is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.FirstByteTimeout, 3*time.Second)
	def(&cfg.IdleTimeout, 100*time.Millisecond)
	def(&cfg.RoundTimeout, 4*time.Second)
	def(&cfg.LMSConnectTimeout, 5*time.Second)
	def(&cfg.ControlModeRetryDelay, 4*time.Second)
	def(&cfg.TLSFirstByteTimeout, 2*time.Second)
	def(&cfg.TLSIdleTimeout, 2*time.Second)
	def(&cfg.PortSwitchMaxDelay, 60*time.Second)
	def(&cfg.PortSwitchRetryDelay, 5*time.Second)
	if cfg.HandshakeTimeout <= 0 && cfg.Version == "v3" {
		cfg.HandshakeTimeout = 60 * time.Second
	}
	if cfg.ControlModeAttempts <= 0 {
		cfg.ControlModeAttempts = 4
	}
	if cfg.PortSwitchAttempts <= 0 {
		cfg.PortSwitchAttempts = 5
	}
	if cfg.LMSAddr == "" {
		cfg.LMSAddr = "127.0.0.1:16992"
	}
	if cfg.LMSTLSAddr == "" {
		host, _, err := net.SplitHostPort(cfg.LMSAddr)
		if err != nil {
			return nil, fmt.Errorf("agent: LMSAddr: %w", err)
		}
		cfg.LMSTLSAddr = net.JoinHostPort(host, "16993")
	}
	if cfg.AppVersion == "" {
		cfg.AppVersion = defaultAppVersion
	}
	if cfg.Proxy == nil {
		cfg.Proxy = http.ProxyFromEnvironment
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("command", cfg.Command, "rpc", cfg.Version)
	return &run{cfg: cfg, log: log, v2: cfg.Version == "v2"}, nil
}

// commandMethod builds the first message's method string
// (spec/rpc-protocol.md §4).
func commandMethod(cfg Config) string {
	switch cfg.Command {
	case "activate":
		return "activate --profile " + cfg.Profile
	case "deactivate":
		m := "deactivate --password " + cfg.Password
		if cfg.Force {
			m += " -f"
		}
		return m
	default: // maintenance
		task := cfg.Task
		if task == "syncclock" {
			task = "synctime"
		}
		m := "maintenance -password " + cfg.Password + " --" + task
		if task == "changepassword" && cfg.TaskArg != "" {
			m += " " + cfg.TaskArg
		}
		if cfg.Force {
			m += " -f"
		}
		return m
	}
}

func (r *run) run(ctx context.Context) error {
	t0 := time.Now()
	payload, err := r.identity(ctx)
	r.res.Timing.Identity = time.Since(t0)
	if err != nil {
		return err
	}

	t0 = time.Now()
	port := r.cfg.LMSAddr
	if payload.TLSEnforced {
		port = r.cfg.LMSTLSAddr
	}
	if !r.v2 {
		// DetectLMS for the payload's lmsInstalled.
		payload.LMSInstalled = r.probeLMS(ctx, port)
	}
	// The executor's own LMS test connection.
	lmsUp := r.probeLMS(ctx, port)
	r.res.Timing.LMSProbe = time.Since(t0)
	r.res.Payload = payload
	r.res.Payload.Password = ""

	first, err := r.firstMessage(payload)
	if err != nil {
		return err
	}
	if !lmsUp {
		if payload.TLSEnforced {
			return ErrLMSConnectionFailed
		}
		return ErrLMEUnsupported
	}
	if payload.TLSEnforced {
		r.tunnel, r.tunnelAddr = true, r.cfg.LMSTLSAddr
	}
	defer r.closeTunnel()

	t0 = time.Now()
	if err := r.connect(ctx); err != nil {
		return err
	}
	r.res.Timing.Connect = time.Since(t0)
	r.write = func(b []byte) error { return r.ws.WriteMessage(websocket.TextMessage, b) }
	defer r.ws.Close()
	stop := context.AfterFunc(ctx, func() { r.ws.Close() })
	defer stop()

	t0 = time.Now()
	defer func() { r.res.Timing.Session = time.Since(t0) }()
	if err := r.write(first); err != nil {
		return r.ctxErr(ctx, fmt.Errorf("failed to send activation request: %w", err))
	}
	r.log.Debug("agent: first message sent")
	return r.session(ctx)
}

func (r *run) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// firstMessage encodes the first message (rpc-go CreateMessageRequest).
func (r *run) firstMessage(p Payload) ([]byte, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{
		Method:          commandMethod(r.cfg),
		APIKey:          clientAPIKey,
		AppVersion:      r.cfg.AppVersion,
		ProtocolVersion: protocolVersion,
		Status:          statusOK,
		Message:         statusOK,
		Payload:         base64.StdEncoding.EncodeToString(data),
		TenantID:        r.cfg.TenantID,
	})
}

// identity reads the device over MEI in rpc-go's order (spec/heci.md §5.1)
// and builds the payload.
func (r *run) identity(ctx context.Context) (Payload, error) {
	var p Payload
	h := mei.Host{Path: r.cfg.MEIPath}
	if r.v2 {
		// v2 first opens the PTHI client once to check access.
		c, err := mei.Dial(ctx, h.Path, mei.GUIDIAMTHIF)
		if err != nil {
			return p, fmt.Errorf("agent: MEI access check: %w", err)
		}
		c.Close()
	}
	// 1. GetControlMode, retried on error.
	var err error
	for attempt := 1; ; attempt++ {
		_, err = h.GetControlMode(ctx)
		if err == nil || attempt >= r.cfg.ControlModeAttempts || ctx.Err() != nil {
			break
		}
		r.log.Warn("agent: GetControlMode failed, retrying", "attempt", attempt, "err", err)
		if err := sleepCtx(ctx, r.cfg.ControlModeRetryDelay); err != nil {
			return p, err
		}
	}
	if err != nil {
		return p, fmt.Errorf("agent: GetControlMode: %w", err)
	}
	// 2. Watchdog change-enabled flags; errors mean flags 0.
	flags, err := h.IsChangeToAMTEnabled(ctx)
	if err != nil {
		r.log.Debug("agent: IsChangeToAMTEnabled failed", "err", err)
		flags = 0
	}
	p.TLSEnforced = flags&mei.ChangeFlagTLSEnforced != 0
	// 3. Wired LAN settings.
	wired, err := h.GetLANInterfaceSettings(ctx, 0)
	if err != nil {
		return p, fmt.Errorf("agent: GetLANInterfaceSettings: %w", err)
	}
	if !wired.LinkUp {
		r.log.Warn("agent: link status is down, unable to activate AMT in Admin Control Mode (ACM)")
	}
	// 4. GetCodeVersions once per value.
	for _, v := range []struct {
		key string
		dst *string
	}{{"AMT", &p.Version}, {"Build Number", &p.Build}, {"Sku", &p.SKU}} {
		cv, err := h.GetCodeVersions(ctx)
		if err != nil {
			return p, fmt.Errorf("agent: GetCodeVersions: %w", err)
		}
		val, ok := cv.Get(v.key)
		if !ok {
			return p, fmt.Errorf("agent: %s Not Found", v.key)
		}
		*v.dst = val
	}
	p.Features = decodeFeatures(p.Version, p.SKU)
	// 5. UUID.
	u, err := h.GetUUID(ctx)
	if err != nil {
		return p, fmt.Errorf("agent: GetUUID: %w", err)
	}
	p.UUID = mei.FormatGUID(u)
	if knownInvalidUUID(p.UUID) {
		return p, ErrInvalidUUID
	}
	// 6. Control mode for the payload.
	mode, err := h.GetControlMode(ctx)
	if err != nil {
		return p, fmt.Errorf("agent: GetControlMode: %w", err)
	}
	p.CurrentMode = int(mode)
	// 7. Local system account.
	p.Username, p.Password, err = h.GetLocalSystemAccount(ctx)
	if err != nil {
		return p, fmt.Errorf("agent: GetLocalSystemAccount: %w", err)
	}
	if r.cfg.Hostname != "" {
		p.Hostname = r.cfg.Hostname
	} else if p.Hostname, err = os.Hostname(); err != nil {
		return p, err
	}
	p.Client = clientName
	// 8. Trusted root hashes on one connection.
	hashes, err := h.CertHashes(ctx)
	if err != nil {
		return p, fmt.Errorf("agent: certificate hashes: %w", err)
	}
	for _, e := range hashes {
		p.CertificateHashes = append(p.CertificateHashes, hex.EncodeToString(e.Hash))
	}
	// 9. DNS suffix.
	if r.cfg.DNSSuffixOverride != "" {
		p.FQDN = r.cfg.DNSSuffixOverride
	} else {
		suffix, err := h.GetPKIFQDNSuffix(ctx)
		if err != nil {
			r.log.Debug("agent: GetPKIFQDNSuffix failed", "err", err)
		}
		p.FQDN = strings.TrimSuffix(strings.TrimSpace(suffix), ".")
		if p.FQDN == "" {
			p.FQDN = r.cfg.OSDNSSuffix
		}
		if p.FQDN == "" {
			r.log.Warn("agent: DNS suffix is empty, unable to activate AMT in admin Control Mode (ACM)")
		}
	}

	if r.v2 && r.cfg.Command == "maintenance" {
		switch r.cfg.Task {
		case "syncip":
			p.IPConfiguration = r.cfg.IPConfiguration
		case "synchostname":
			p.HostnameInfo = r.cfg.HostnameInfo
		}
	}
	if r.cfg.UUIDOverride != "" {
		if knownInvalidUUID(r.cfg.UUIDOverride) {
			return p, ErrInvalidUUID
		}
		p.UUID = r.cfg.UUIDOverride
	}
	if p.CurrentMode != 0 {
		if r.cfg.Password == "" {
			return p, ErrMissingPassword
		}
		p.Password = r.cfg.Password
	}
	p.FriendlyName = r.cfg.FriendlyName
	if r.v2 {
		p.ProgressSupported = true
	} else {
		p.TLSTunnel = r.cfg.TLSTunnel
	}
	return p, nil
}

// probeLMS connects to LMS and closes at once.
func (r *run) probeLMS(ctx context.Context, addr string) bool {
	c, err := r.dialLMS(ctx, addr)
	if err != nil {
		r.log.Debug("agent: LMS probe failed", "addr", addr, "err", err)
		return false
	}
	c.Close()
	return true
}

func (r *run) dialLMS(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: r.cfg.LMSConnectTimeout}
	network := "tcp4" // v3 dials 127.0.0.1 over tcp4
	if r.v2 {
		network = "tcp" // v2 dials "localhost", which may be ::1
	}
	return d.DialContext(ctx, network, addr)
}

func (r *run) connect(ctx context.Context) error {
	d := websocket.Dialer{
		TLSClientConfig:  r.cfg.TLSConfig,
		Proxy:            r.cfg.Proxy,
		HandshakeTimeout: r.cfg.HandshakeTimeout,
	}
	ws, resp, err := d.DialContext(ctx, r.cfg.URL, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return r.ctxErr(ctx, fmt.Errorf("agent: connecting to server: %w", err))
	}
	r.ws = ws
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
