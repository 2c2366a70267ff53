package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	legacyapi "github.com/amtd-project/amtd/internal/api/legacy"
	"github.com/amtd-project/amtd/internal/api/mps"
	"github.com/amtd-project/amtd/internal/api/rps"
	"github.com/amtd-project/amtd/internal/buildinfo"
	"github.com/amtd-project/amtd/internal/ca"
	"github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/internal/cluster"
	"github.com/amtd-project/amtd/internal/devaccess"
	legacyserver "github.com/amtd-project/amtd/internal/legacy/server"
	"github.com/amtd-project/amtd/internal/legacy/setuppw"
	"github.com/amtd-project/amtd/internal/presence"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/relay"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/secrets/local"
	"github.com/amtd-project/amtd/internal/secrets/vault"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

func init() {
	register(&command{name: "serve", summary: "run the server (REST API, activation WebSocket, CIRA, hellos)", run: runServe})
}

// serveConfig is every `amtd serve` setting; each has a flag and an AMTD_*
// environment variable.
type serveConfig struct {
	HTTPAddr        string
	DataDir         string
	DB              string
	MasterKey       string
	VaultAddr       string
	VaultToken      string
	VaultMount      string
	VaultPrefix     string
	Auth            string
	AdminUser       string
	AdminPassword   string
	TokenLifetime   time.Duration
	TLSCert         string
	TLSKey          string
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration

	// Activation (rpc-go WebSocket).
	ActivationDelay   time.Duration
	WSMANRoundTimeout time.Duration
	WSMANAttempts     int
	SessionTimeout    time.Duration
	PreventOrphans    bool
	ODCARoots         string

	// Presence (CIRA).
	CIRAAddr      string
	MPSHost       string
	CIRALegacyTLS bool
	InstanceID    string

	// Legacy provisioning (hellos on 9971, PKI/PSK remote configuration).
	HelloAddr           string
	HelloAcceptUnknown  bool
	HelloDefaultProfile string
	HelloDefaultTenant  string
	HelloKeep           int
	HelloReverseLookup  bool
	HelloReadTimeout    time.Duration
	LegacyCooldown      time.Duration
	LegacyCommitDelay   time.Duration
	LegacySession       time.Duration
	LegacyDevicePort    int

	// Several instances sharing one database (internal/cluster).
	AdvertiseAddr string
	LeaseTTL      time.Duration
	LeaseRenew    time.Duration
}

func serveFlags(c *serveConfig) *cli.FlagSet {
	fs := cli.New("serve", "Runs amtd: the RPS-compatible admin API and the rpc-go activation WebSocket\n"+
		"(/activate, /deactivate, /maintenance) on one HTTP address. With no flags it\n"+
		"keeps everything in ./amtd-data: an embedded SQLite database and a master key\n"+
		"(mode 0600) that seals every secret.")
	fs.StringVar(&c.HTTPAddr, "http", ":8181", "address of the HTTP listener (REST API and activation WebSocket)")
	fs.StringVar(&c.DataDir, "data", "./amtd-data", "data folder: embedded database and master key")
	fs.StringVar(&c.DB, "db", "", "database: empty for SQLite in the data folder, or postgres://user:pass@host/db")
	fs.StringVar(&c.MasterKey, "master-key", "", "256-bit master key sealing local secrets, 64 hex characters or base64;\nprefer the environment variable; default: created in the data folder")
	fs.StringVar(&c.VaultAddr, "vault-addr", "", "HashiCorp Vault address (e.g. https://vault:8200); secrets go to Vault KV v2 instead of the local sealed store")
	fs.StringVar(&c.VaultToken, "vault-token", "", "Vault token (prefer the environment variable)")
	fs.StringVar(&c.VaultMount, "vault-mount", "secret", "Vault KV v2 mount path")
	fs.StringVar(&c.VaultPrefix, "vault-prefix", "amtd/", "path prefix for amtd's entries inside the Vault mount")
	fs.StringVar(&c.Auth, "auth", "jwt", "API authentication: jwt (bearer tokens from POST /api/v1/authorize), or none\n(development and compatibility runs only; logs a loud warning)")
	fs.StringVar(&c.AdminUser, "admin-user", "admin", "administrator user name for POST /api/v1/authorize")
	fs.StringVar(&c.AdminPassword, "admin-password", "", "administrator password; when empty, the first start generates one,\nprints it once and stores only its hash")
	fs.DurationVar(&c.TokenLifetime, "token-lifetime", 24*time.Hour, "lifetime of API tokens")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate (chain) for HTTPS/WSS on the HTTP listener")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", "text", "log format: text or json")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may finish after SIGINT/SIGTERM")
	fs.DurationVar(&c.ActivationDelay, "activation-delay", 12*time.Second, "wait after Setup/AdminSetup before using the new credentials (firmware settling, RPS delay_timer)")
	fs.DurationVar(&c.WSMANRoundTimeout, "wsman-round-timeout", 12*time.Second, "timeout of one WS-MAN round trip relayed through rpc-go before it is resent")
	fs.IntVar(&c.WSMANAttempts, "wsman-attempts", 3, "attempts per relayed WS-MAN call (never for AdminSetup/UpgradeClientToAdmin)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", 10*time.Minute, "cap on one activation/deactivation/maintenance session")
	fs.StringVar(&c.ODCARoots, "odca-roots", "", "PEM file of Intel's On-Die CA roots: verify the certificate AMT 19+ devices present\nbefore activation (without it, that certificate is accepted unverified and logged;\nthe local system account's digest is the device's proof)")
	fs.BoolVar(&c.PreventOrphans, "prevent-orphaned-devices", false, "refuse to activate a pre-provisioning device that already has a device record (RPS prevent_orphaned_devices)")
	host, _ := os.Hostname()
	fs.StringVar(&c.CIRAAddr, "cira", ":4433", "address of the CIRA (APF over TLS) listener devices call home to; empty disables it")
	fs.StringVar(&c.MPSHost, "mps-host", host, "the MPS address devices are given (CIRA configs' mpsServerAddress): the CN and SAN\nof the CIRA server certificate amtd's CA issues")
	fs.BoolVar(&c.CIRALegacyTLS, "cira-legacy-tls", false, "accept TLS 1.0/1.1 on the CIRA port (old AMT firmware)")
	fs.StringVar(&c.InstanceID, "instance-id", host, "this instance's name in device records (mpsInstance) when several instances share a database")
	fs.StringVar(&c.HelloAddr, "hello", ":9971", "address of the legacy hello listener (PKI/PSK remote configuration); empty disables it")
	fs.BoolVar(&c.HelloAcceptUnknown, "hello-accept-unknown", false, "configure hellos from UUIDs not on the legacy allow-list with --hello-default-profile\n(anyone who can send a hello gets a device provisioned: isolated staging networks only)")
	fs.StringVar(&c.HelloDefaultProfile, "hello-default-profile", "", "profile for unknown devices when --hello-accept-unknown is set")
	fs.StringVar(&c.HelloDefaultTenant, "hello-default-tenant", "", "tenant for unknown devices when --hello-accept-unknown is set")
	fs.IntVar(&c.HelloKeep, "hello-keep", 10000, "hello events kept for the API (all tenants)")
	fs.BoolVar(&c.HelloReverseLookup, "hello-reverse-lookup", false, "resolve a hello's source address to a host name (log, device record)")
	fs.DurationVar(&c.HelloReadTimeout, "hello-read-timeout", 10*time.Second, "time a device has to send a complete hello")
	fs.DurationVar(&c.LegacyCooldown, "legacy-cooldown", 60*time.Second, "pause before a device whose configuration failed is tried again")
	fs.DurationVar(&c.LegacyCommitDelay, "legacy-commit-delay", 5*time.Second, "wait after CommitChanges before reconnecting (the firmware restarts its web server)")
	fs.DurationVar(&c.LegacySession, "legacy-session-timeout", 15*time.Minute, "cap on one device's legacy configuration")
	fs.IntVar(&c.LegacyDevicePort, "legacy-device-port", 16993, "port devices in setup mode serve TLS on (connect-back target)")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "address other instances forward requests for devices connected here to\n(host:port or http(s)://host:port); default: the --http address when it is a concrete IP")
	fs.DurationVar(&c.LeaseTTL, "lease-ttl", cluster.DefaultLeaseTTL, "lifetime of this instance's lease in the database: when it is not renewed for this\nlong, other instances treat the devices connected here as disconnected")
	fs.DurationVar(&c.LeaseRenew, "lease-renew", 0, "how often the lease is renewed and expired leases of other instances are reaped\n(at most half of --lease-ttl; default: a third of it, at most 10s)")
	return fs
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := serveFlags(&c)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	log, err := newLogger(stderr, c.LogLevel, c.LogFormat)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, c, log, stdout)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
	defer cancel()
	return srv.shutdown(sctx)
}

// server is a running `amtd serve`.
type server struct {
	log      *slog.Logger
	store    store.Store
	secrets  secrets.Store
	http     *http.Server
	rpc      *rpcproto.Server
	cira     *cira.Server
	ciraLn   net.Listener
	helloLn  net.Listener
	relay    *relay.Relay
	stop     context.CancelFunc // ends background work (CIRA, presence recorder, lease)
	cluster  *cluster.Node      // this instance's lease
	bg       sync.WaitGroup
	addr     net.Addr
	done     chan error
	shutOnce sync.Once
	shutErr  error
	// started counts HTTP requests whose reading has begun.
	started atomic.Int64
}

func openSecrets(ctx context.Context, c serveConfig, st store.Store) (secrets.Store, error) {
	if c.VaultAddr != "" {
		return vault.New(ctx, vault.Config{Addr: c.VaultAddr, Token: c.VaultToken, Mount: c.VaultMount, Prefix: c.VaultPrefix})
	}
	key, err := local.LoadOrCreateMasterKey(c.DataDir, c.MasterKey)
	if err != nil {
		return nil, err
	}
	return local.New(st, key)
}

func startServer(ctx context.Context, c serveConfig, log *slog.Logger, stdout io.Writer) (*server, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	dsn := c.DB
	if dsn == "" {
		dsn = filepath.Join(c.DataDir, "amtd.db")
	}
	st, err := sqlstore.Open(ctx, dsn, log)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			st.Close()
		}
	}()
	sec, err := openSecrets(ctx, c, st)
	if err != nil {
		return nil, fmt.Errorf("secret store: %w", err)
	}
	apiSrv, err := api.New(ctx, api.Config{
		Store: st, Secrets: sec, Logger: log, Version: buildinfo.Version,
		Auth: api.AuthConfig{Mode: c.Auth, Username: c.AdminUser, Password: c.AdminPassword, TokenLifetime: c.TokenLifetime},
	})
	if err != nil {
		return nil, err
	}
	if u, p, gen := apiSrv.GeneratedCredentials(); gen {
		// Printed once, on the first start only; only the hash is stored.
		fmt.Fprintf(stdout, "amtd: generated administrator credentials (shown once, store them now): user %q password %q\n", u, p)
	}
	rps.Register(apiSrv, rps.Options{})

	authority, err := ca.LoadOrCreate(ctx, sec, "system/ca", "amtd CA")
	if err != nil {
		return nil, fmt.Errorf("amtd CA: %w", err)
	}
	timing := provision.DefaultTiming()
	timing.ActivationDelay = c.ActivationDelay
	var odca *x509.CertPool
	if c.ODCARoots != "" {
		pemBytes, err := os.ReadFile(c.ODCARoots)
		if err != nil {
			return nil, fmt.Errorf("--odca-roots: %w", err)
		}
		odca = x509.NewCertPool()
		if !odca.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("--odca-roots: no PEM certificate in %s", c.ODCARoots)
		}
	}
	engine, err := provision.New(provision.Config{
		Store: st, Secrets: sec, CA: authority, CIRARootDER: authority.RootDER(), ODCARoots: odca,
		PreventOrphanedDevices: c.PreventOrphans, Timing: &timing, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	rpcSrv := rpcproto.NewServer(rpcproto.Config{
		AppVersion: buildinfo.Version, RoundTimeout: c.WSMANRoundTimeout, MaxAttempts: c.WSMANAttempts,
		SessionTimeout: c.SessionTimeout, Logger: log,
	}, engine)
	// rpc-go sends the command in its first message; every path accepts any
	// command, as RPS does. No API token: rpc-go cannot send one.
	for _, p := range []string{"/activate", "/deactivate", "/maintenance"} {
		apiSrv.Handle(http.MethodGet, p, rpcSrv, api.Public(), api.NoPrefix())
	}

	// Background work lives until shutdown, not until the caller's context.
	bgCtx, stopBG := context.WithCancel(context.Background())
	defer func() {
		if !ok {
			stopBG()
		}
	}()
	var ciraSrv *cira.Server
	var ciraLn net.Listener
	var recorder *presence.Recorder
	var access *devaccess.Access // set below; the CIRA observer uses it
	if c.CIRAAddr != "" {
		if c.MPSHost == "" {
			return nil, errors.New("--mps-host is required for the CIRA listener")
		}
		cert, err := authority.IssueServer(c.MPSHost, nil, 397*24*time.Hour)
		if err != nil {
			return nil, fmt.Errorf("CIRA server certificate: %w", err)
		}
		recorder = presence.NewRecorder(st, c.InstanceID, 0, log)
		observer := cira.ObserverFuncs{OnConnected: recorder.Connected, OnDisconnected: func(i cira.ConnInfo) {
			recorder.Disconnected(i)
			access.Invalidate(i.UUID) // its cached clients went with the connection
		}}
		ciraSrv, err = cira.NewServer(cira.Config{
			Certificate: &cert, LegacyTLS: c.CIRALegacyTLS, Logger: log,
			Authenticator: &presence.Authenticator{Store: st, Secrets: sec}, Observer: observer,
		})
		if err != nil {
			return nil, err
		}
		if ciraLn, err = net.Listen("tcp", c.CIRAAddr); err != nil {
			return nil, fmt.Errorf("--cira: %w", err)
		}
	}

	// The management API reaches devices over CIRA, else on the LAN.
	mpsOpts := mps.Options{InstanceID: c.InstanceID,
		CIRARootCert: func(context.Context) ([]byte, error) { return authority.RootPEM(), nil }}
	accessOpts := devaccess.Options{Store: st, Secrets: sec, Logger: log}
	if ciraSrv != nil { // a nil *cira.Server must not become a non-nil interface
		accessOpts.CIRA = ciraSrv
		mpsOpts.CIRA = ciraSrv
	}
	if access, err = devaccess.New(accessOpts); err != nil {
		return nil, err
	}
	mpsOpts.Access = access
	// KVM/SOL/IDER relay with the AMT credentials injected into the login.
	relayCfg := relay.Config{Access: access, Logger: log}
	if ciraSrv != nil {
		relayCfg.CIRA = ciraSrv
	}
	rl, err := relay.New(relayCfg)
	if err != nil {
		return nil, err
	}
	rl.Register(apiSrv)
	mpsOpts.Redirections = rl
	mps.Register(apiSrv, mpsOpts)
	legacyapi.Register(apiSrv)

	var helloSrv *legacyserver.Server
	var helloLn net.Listener
	if c.HelloAddr != "" {
		t := legacyserver.DefaultTiming()
		t.ReadTimeout, t.Cooldown, t.CommitDelay, t.SessionTimeout = c.HelloReadTimeout, c.LegacyCooldown, c.LegacyCommitDelay, c.LegacySession
		helloSrv, err = legacyserver.New(legacyserver.Config{
			Store: st, Secrets: sec, Engine: engine, CA: authority, Logger: log,
			AcceptUnknown: c.HelloAcceptUnknown, DefaultProfile: c.HelloDefaultProfile, DefaultTenant: c.HelloDefaultTenant,
			SetupPasswords: setuppw.Loader(sec), KeepHelloEvents: c.HelloKeep, ReverseLookup: c.HelloReverseLookup,
			DevicePort: c.LegacyDevicePort, Timing: t, NoCommitDelay: c.LegacyCommitDelay == 0,
		})
		if err != nil {
			return nil, err
		}
		if helloLn, err = net.Listen("tcp", c.HelloAddr); err != nil {
			closeAll(ciraLn)
			return nil, fmt.Errorf("--hello: %w", err)
		}
	}

	var tlsConf *tls.Config
	if c.TLSCert != "" || c.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		closeAll(ciraLn, helloLn)
		return nil, fmt.Errorf("--http: %w", err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	// Several instances: the lease is claimed before CIRA connections are
	// accepted (claiming clears what a previous run recorded), and requests
	// for devices connected to a peer are forwarded to it.
	node, handler, err := startCluster(ctx, c, st, log, ln.Addr(), tlsConf, ciraSrv, recorder, apiSrv.Handler())
	if err != nil {
		closeAll(ln, ciraLn, helloLn)
		return nil, err
	}
	s := &server{log: log, store: st, secrets: sec, rpc: rpcSrv, cira: ciraSrv, ciraLn: ciraLn, helloLn: helloLn, relay: rl, stop: stopBG,
		cluster: node, addr: ln.Addr(), done: make(chan error, 1),
		http: &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}}
	s.http.ConnState = func(_ net.Conn, cs http.ConnState) {
		if cs == http.StateActive {
			s.started.Add(1)
		}
	}
	go func() { s.done <- s.http.Serve(ln) }()
	s.bg.Add(1)
	go func() { defer s.bg.Done(); node.Run(bgCtx) }()
	if ciraSrv != nil {
		s.bg.Add(2)
		go func() { defer s.bg.Done(); recorder.Run(bgCtx) }()
		go func() {
			defer s.bg.Done()
			if err := ciraSrv.Serve(bgCtx, ciraLn); err != nil {
				log.Error("CIRA listener stopped", "err", err)
			}
		}()
		log.Info("CIRA listening", "addr", ciraLn.Addr().String(), "mps_host", c.MPSHost, "instance", c.InstanceID)
	}
	if helloSrv != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			if err := helloSrv.Serve(bgCtx, helloLn); err != nil {
				log.Error("hello listener stopped", "err", err)
			}
		}()
		log.Info("hello listener", "addr", helloLn.Addr().String(), "accept_unknown", c.HelloAcceptUnknown)
	}
	log.Info("amtd serving", "http", ln.Addr().String(), "tls", tlsConf != nil, "db", st.Dialect(), "secrets", sec.Name(), "version", buildinfo.Version)
	ok = true
	return s, nil
}

// shutdown stops the server; later calls wait for the first and return its
// result.
func (s *server) shutdown(ctx context.Context) error {
	s.shutOnce.Do(func() { s.shutErr = s.doShutdown(ctx) })
	return s.shutErr
}

func (s *server) doShutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	// Activation sessions run on hijacked connections, which http.Server
	// does not wait for: end them (the client is told why) and wait.
	if e := s.rpc.Shutdown(ctx); e != nil && err == nil {
		err = e
	}
	// Relay sessions are hijacked WebSockets too.
	if e := s.relay.Shutdown(ctx); e != nil && err == nil {
		err = e
	}
	// CIRA connections close, the recorder writes the disconnects.
	s.stop()
	s.bg.Wait()
	// Release the lease: peers stop forwarding here at once, and devices
	// still recorded as connected here are marked disconnected.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	if e := s.cluster.Leave(lctx); e != nil {
		s.log.Warn("the lease could not be released; it expires by itself", "err", e)
	}
	cancel()
	if e := <-s.done; e != nil && !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	if e := s.store.Close(); e != nil && err == nil {
		err = e
	}
	s.log.Info("stopped")
	return err
}

// ---- Several instances sharing one database (internal/cluster) ----

// startCluster joins the instances sharing the database (claims this
// instance's lease) and returns h behind the forwarder that sends requests
// for devices connected to a peer to that peer.
func startCluster(ctx context.Context, c serveConfig, st store.Store, log *slog.Logger, httpAddr net.Addr,
	tlsConf *tls.Config, ciraSrv *cira.Server, recorder *presence.Recorder, h http.Handler) (*cluster.Node, http.Handler, error) {
	if c.InstanceID == "" {
		return nil, nil, errors.New("--instance-id is required")
	}
	adv, err := cluster.AdvertiseURL(c.AdvertiseAddr, httpAddr, tlsConf != nil)
	if err != nil {
		return nil, nil, fmt.Errorf("--advertise-addr: %w", err)
	}
	if adv == "" && st.Dialect() == "POSTGRES" {
		log.Warn("other instances cannot forward requests for devices connected here: set --advertise-addr (the --http address is not a concrete IP)")
	}
	var local func(string) bool
	var onLapse func()
	if ciraSrv != nil {
		local = ciraSrv.IsConnected
		// The lease lapsed (database unreachable for longer than
		// --lease-ttl): peers may have marked our devices disconnected.
		onLapse = func() {
			ciraSrv.Range(func(i cira.ConnInfo) bool { recorder.Connected(i); return true })
		}
	}
	node, err := cluster.Join(ctx, cluster.Config{Store: st, ID: c.InstanceID, Addr: adv,
		TTL: c.LeaseTTL, Renew: c.LeaseRenew, OnLapse: onLapse, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	var topts cluster.TransportOptions
	if tlsConf != nil {
		// Peers presenting this instance's own certificate are trusted.
		topts.TrustLeaf = tlsConf.Certificates[0].Certificate[0]
	}
	fwd, err := cluster.NewForwarder(cluster.ForwarderConfig{Self: c.InstanceID, Owners: st, Local: local,
		Transport: cluster.NewTransport(topts), Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return node, fwd.Wrap(h), nil
}

// closeAll closes the listeners that were opened (nil ones are skipped).
func closeAll(ls ...net.Listener) {
	for _, l := range ls {
		if l != nil {
			l.Close()
		}
	}
}
