package provision_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/general"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/ca"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/secrets/local"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/mei"
)

const (
	tenant     = ""
	suffix     = "corp.example.com"
	staticPW   = "Stat1c-P@ssw0rd"
	mebxPW     = "Mebx-P@ssw0rd1"
	testHost   = "host1"
	testDomain = "corpdomain"
)

func quiet() *slog.Logger {
	if os.Getenv("PROVISION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// world is amtd's side of a test: a real SQLite store, the real sealed
// secret store on it, amtd's CA and the engine with zero delays. restart
// reopens everything on the same files, as after a kill.
type world struct {
	t      testing.TB
	dir    string
	master []byte
	st     *sqlstore.Store
	sec    secrets.Store
	ca     *ca.CA
	eng    *provision.Engine
	cira   *ca.CA

	// gate, when set, sits in front of the store and the secret store (a
	// kill switch for crash tests).
	gate *gate
	// tune, when set, adjusts the engine's configuration (at each open).
	tune func(*provision.Config)
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{t: t, dir: dataDir(t), master: make([]byte, 32)}
	_, _ = rand.Read(w.master)
	w.open()
	t.Cleanup(func() { w.st.Close() })
	return w
}

// dataDir is amtd's data folder for a test: in memory-backed /dev/shm when
// available (SQLite's fsyncs are what a test waits for otherwise; the
// crash tests kill the process, not the machine), else t.TempDir().
func dataDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "amtd-provision-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// keys hands out cached RSA keys (distinct slots per use).
var keySlot atomic.Int64

func cachedKey(bits int) (*rsa.PrivateKey, error) {
	if bits > 2048 { // CA roots: two keys for the whole test binary
		return testpki.Key(bits, 290+int(keySlot.Add(1)%2)), nil
	}
	return testpki.Key(bits, 300+int(keySlot.Add(1)%6)), nil
}

// deviceKeys is one simulated device's key generator: cached keys, but
// never one the device generated before (8 in turn), as a real device's
// keys are all distinct — a key kept on the device (TLS kept across a
// re-activation) is never "generated" again.
func deviceKeys() func(bits int) (*rsa.PrivateKey, error) {
	var n atomic.Int64
	return func(bits int) (*rsa.PrivateKey, error) {
		if bits > 2048 {
			return cachedKey(bits)
		}
		return testpki.Key(bits, 300+int((n.Add(1)-1)%8)), nil
	}
}

func (w *world) open() {
	w.t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(w.dir, "amtd.db"), quiet())
	if err != nil {
		w.t.Fatal(err)
	}
	w.st = st
	var kv local.SealedKV = st
	var stor store.Store = st
	if w.gate != nil {
		stor = &gatedStore{Store: st, g: w.gate}
		kv = stor
	}
	sec, err := local.New(kv, w.master)
	if err != nil {
		w.t.Fatal(err)
	}
	w.sec = sec
	// The CAs are created once per test binary and copied into each
	// world's secret store (signing with 3072-bit roots is slow).
	for key, entry := range caEntries() {
		if _, err := sec.Get(ctx, key); errors.Is(err, secrets.ErrNotFound) {
			if err := sec.Put(ctx, key, entry); err != nil {
				w.t.Fatal(err)
			}
		}
	}
	opts := ca.Options{GenerateKey: cachedKey}
	if w.ca, err = ca.LoadOrCreateWith(ctx, sec, "amtd/ca", "amtd test CA", opts); err != nil {
		w.t.Fatal(err)
	}
	if w.cira, err = ca.LoadOrCreateWith(ctx, sec, "amtd/cira-ca", "amtd CIRA CA", opts); err != nil {
		w.t.Fatal(err)
	}
	// No waits; a tunnel attempt that stalls (an answer cut by the agent's
	// short idle rule under load) is retried after 5 s.
	timing := provision.Timing{TunnelRoundTimeout: 5 * time.Second}
	cfg := provision.Config{
		Store: stor, Secrets: sec, CA: w.ca, CIRARootDER: w.cira.RootDER(),
		Timing: &timing, Logger: quiet(),
		// TLS 1.2 through the tunnel: its handshake has no silent flight,
		// which rpc-go's read rules make cost a first-byte timeout in TLS
		// 1.3 (TestE2EAMT19TLS13 runs 1.3).
		TunnelTLS: &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12},
	}
	if w.tune != nil {
		w.tune(&cfg)
	}
	w.eng, err = provision.New(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
}

// reopenWithGate restarts amtd with its durable state behind g.
func (w *world) reopenWithGate(g *gate) {
	w.t.Helper()
	w.st.Close()
	w.gate = g
	w.open()
}

// caEntries are amtd's CAs, created once per test binary in the real local
// secret store on a throw-away SQLite file and copied into each world's
// store (signing with 3072-bit roots is slow).
var caEntries = sync.OnceValue(func() map[string]map[string]string {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "amtd-provision-ca-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "ca.db"), quiet())
	if err != nil {
		panic(err)
	}
	defer st.Close()
	master := make([]byte, 32)
	_, _ = rand.Read(master)
	sec, err := local.New(st, master)
	if err != nil {
		panic(err)
	}
	opts := ca.Options{GenerateKey: cachedKey}
	out := map[string]map[string]string{}
	for key, name := range map[string]string{"amtd/ca": "amtd test CA", "amtd/cira-ca": "amtd CIRA CA"} {
		if _, err := ca.LoadOrCreateWith(ctx, sec, key, name, opts); err != nil {
			panic(err)
		}
		entry, err := sec.Get(ctx, key)
		if err != nil {
			panic(err)
		}
		out[key] = entry
	}
	return out
})

// restart closes the store and opens a new one, secret store and engine on
// the same files (the gate, if any, is removed: the new process runs).
func (w *world) restart() {
	w.t.Helper()
	w.st.Close()
	w.gate = nil
	w.open()
}

func (w *world) ctx() context.Context { return context.Background() }

// ---- configuration objects ----

type profileOpts func(p *store.Profile)

func (w *world) addProfile(name, activation string, random bool, opts ...profileOpts) *store.Profile {
	w.t.Helper()
	p := &store.Profile{TenantID: tenant, Name: name, Activation: activation, GenerateRandomPassword: random,
		DHCPEnabled: true, KVMEnabled: true, UserConsent: "All", Tags: []string{"t1", "t2"},
		SecretID: "secret-" + name}
	if activation == provision.ActivationACM {
		p.UserConsent = "KVM"
	}
	for _, o := range opts {
		o(p)
	}
	sec := map[string]string{}
	if !random {
		sec[provision.FieldAMTPassword] = staticPW
	}
	if activation == provision.ActivationACM && !p.GenerateRandomMEBxPassword {
		sec[provision.FieldMEBxPassword] = mebxPW
	}
	if err := w.sec.Put(w.ctx(), provision.DefaultSecretKey(tenant, provision.KindProfile, p.SecretID), sec); err != nil {
		w.t.Fatal(err)
	}
	if err := w.st.CreateProfile(w.ctx(), p); err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) addDomain(name, domainSuffix string, chain *testpki.Chain) {
	w.t.Helper()
	pfx := chain.PFX("pfx-P@ss", false)
	d := &store.Domain{TenantID: tenant, Name: name, DomainSuffix: domainSuffix, StorageFormat: "string",
		ExpirationDate: chain.Leaf.NotAfter, SecretID: "secret-" + name}
	if err := w.sec.Put(w.ctx(), provision.DefaultSecretKey(tenant, provision.KindDomain, d.SecretID), map[string]string{
		provision.FieldPFX: base64.StdEncoding.EncodeToString(pfx), provision.FieldPFXPassword: "pfx-P@ss"}); err != nil {
		w.t.Fatal(err)
	}
	if err := w.st.CreateDomain(w.ctx(), d); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) creds(guid string) devcreds.Creds {
	w.t.Helper()
	c, err := devcreds.Load(w.ctx(), w.sec, guid)
	if err != nil {
		w.t.Fatal(err)
	}
	return c
}

func (w *world) events(guid string) []store.ProvisioningEvent {
	w.t.Helper()
	ev, err := w.eng.ProvisioningLog(w.ctx(), guid, store.Page{})
	if err != nil {
		w.t.Fatal(err)
	}
	return ev
}

// ---- simulated devices ----

type simDevice struct {
	t   testing.TB
	fw  *firmware.Firmware
	dev *device.Device
	mei string
	// tlsPort is the LMS TLS address chosen before the device started (a
	// device that is not TLS-enforced opens it only once TLS is committed).
	tlsPort string
}

type devOpts struct {
	trust   *testpki.Chain // root hash added as a user hash
	version string         // "19.0.5": AMT 19, TLS enforced on local ports
	noWifi  bool
	// tlsPort: fix the device's TLS port in advance (for an agent that
	// must know it before TLS is configured: --tls-tunnel on AMT 16).
	tlsPort bool
}

// amt19 is the AMT 19 firmware version (TLS enforced on local ports).
const amt19 = "19.0.5"

func (w *world) newDevice(o devOpts) *simDevice {
	w.t.Helper()
	cfg := firmware.Config{Path: filepath.Join(dataDir(w.t), "fw.json"), DNSSuffix: suffix, PKIDNSSuffix: suffix,
		Hostname: testHost, GenerateKey: deviceKeys(), Version: o.version, NoWireless: o.noWifi}
	if o.trust != nil {
		cfg.TrustHashes = []string{sha256hex(o.trust.Root.Raw)}
	}
	fw, err := firmware.Open(cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	dcfg := device.Config{Firmware: fw, Addrs: []string{"127.0.0.1:0"}, LMS: true, Logger: quiet()}
	tlsPort := ""
	if o.tlsPort {
		tlsPort = freePort(w.t)
		dcfg.TLSAddrs = []string{tlsPort}
	}
	d, err := device.New(dcfg)
	if err != nil {
		w.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		cancel()
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { cancel(); d.Close() })
	sd := &simDevice{t: w.t, fw: fw, dev: d, tlsPort: tlsPort}
	return sd
}

// freePort returns a loopback address with a port free right now.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tlsAddr is the device's LMS TLS address ("" when unknown yet).
func (d *simDevice) tlsAddr() string {
	if a := d.dev.TLSAddr(); a != "" {
		return a
	}
	return d.tlsPort
}

// enforced reports whether the device accepts local WS-MAN over TLS only.
func (d *simDevice) enforced() bool { return d.fw.WatchdogFlags()&0x40 != 0 }

// startMEI serves the device's host interface on a Unix socket (for the agent).
func (d *simDevice) startMEI() string {
	d.t.Helper()
	if d.mei != "" {
		return d.mei
	}
	dir, err := os.MkdirTemp("", "mei")
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "mei.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		d.t.Fatal(err)
	}
	srv := mei.NewServer(d.fw, mei.Options{Logger: quiet()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	d.t.Cleanup(func() { cancel(); <-done })
	d.mei = path
	return path
}

func (d *simDevice) guid() string { return d.fw.UUIDString() }

func (d *simDevice) state() firmware.State { return d.fw.Snapshot() }

// authenticates reports whether admin/pw is accepted by the device (over
// TLS on a TLS-enforced device, whatever its certificate).
func (d *simDevice) authenticates(pw string) bool {
	rt, useTLS := d.transport(), false
	if d.enforced() {
		rt, useTLS = d.tlsTransport(&tls.Config{InsecureSkipVerify: true}), true
	}
	c := amt.NewClient(rt, amt.Params{Target: d.guid(), Username: "admin", Password: pw, UseTLS: useTLS, Timeout: 5 * time.Second})
	_, err := getGeneral(c)
	return err == nil
}

// transport reaches the device's plain WS-MAN port.
func (d *simDevice) transport() http.RoundTripper {
	return &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", d.dev.Addr())
	}}
}

// tlsTransport reaches the device's TLS port directly with cfg.
func (d *simDevice) tlsTransport(cfg *tls.Config) http.RoundTripper {
	return &http.Transport{DisableKeepAlives: true, DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		addr := d.tlsAddr()
		if addr == "" {
			return nil, errors.New("the device's TLS port is closed")
		}
		var dl net.Dialer
		c, err := dl.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(c, cfg.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}}
}

// tlsCertificate is the certificate the device's TLS port presents now.
func (d *simDevice) tlsCertificate() []byte {
	d.t.Helper()
	c, err := tls.Dial("tcp", d.tlsAddr(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		d.t.Fatalf("TLS to the device: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// payload builds the first message's payload as rpc-go does.
func (d *simDevice) payload(password string) *rpcproto.Payload {
	_, versions := d.fw.CodeVersions()
	p := &rpcproto.Payload{Client: "RPC", UUID: d.guid(), Hostname: testHost, FQDN: d.fw.PKIDNSSuffix(),
		CurrentMode: int(d.fw.ControlMode()), ProgressSupported: true, TLSEnforced: d.enforced()}
	for _, v := range versions {
		switch v.Description {
		case "AMT":
			p.Ver = v.Version
		case "Build Number":
			p.Build = v.Version
		case "Sku":
			p.SKU = v.Version
		}
	}
	for _, h := range d.fw.CertHashes() {
		if h.IsActive {
			p.CertHashes = append(p.CertHashes, hex.EncodeToString(h.Hash))
		}
	}
	p.Username, p.Password = d.fw.LocalSystemAccount()
	if p.CurrentMode != 0 {
		p.Username, p.Password = "$$OsAdmin", password
	}
	return p
}

// ---- running flows directly (engine.Run over a plain connection) ----

// directConn reaches the device over plain HTTP, and over TLS to its TLS
// port (a provision.Tunneler whose port switch is a no-op: both ports are
// reachable directly); hook runs before each request (fault/crash
// injection) on either path.
type directConn struct {
	rt   http.RoundTripper
	dev  *simDevice
	n    atomic.Int64
	hook func(n int, req *http.Request) error
	// post may replace the device's answer to request n.
	post func(n int, resp *http.Response, err error) (*http.Response, error)
	// portSwitches counts PortSwitch calls.
	portSwitches atomic.Int64
}

func (c *directConn) RoundTrip(req *http.Request) (*http.Response, error) {
	return c.roundTrip(c.rt, req)
}

func (c *directConn) roundTrip(rt http.RoundTripper, req *http.Request) (*http.Response, error) {
	n := int(c.n.Add(1))
	if c.hook != nil {
		if err := c.hook(n, req); err != nil {
			return nil, err
		}
	}
	resp, err := rt.RoundTrip(req)
	if c.post != nil {
		return c.post(n, resp, err)
	}
	return resp, err
}

func (c *directConn) TLSTransport(cfg *tls.Config) http.RoundTripper {
	rt := c.dev.tlsTransport(cfg)
	return roundTripFunc(func(req *http.Request) (*http.Response, error) { return c.roundTrip(rt, req) })
}

func (c *directConn) PortSwitch(context.Context, int, time.Duration) error {
	c.portSwitches.Add(1)
	return nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func (c *directConn) Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *directConn) Progress(string) {}

var connSeq atomic.Int64

func request(d *simDevice, cmd rpcproto.Command, password string) rpcproto.Request {
	p := d.payload(password)
	if cmd.HasPass {
		p.Password = cmd.Password
	}
	return rpcproto.Request{ConnID: fmt.Sprintf("conn-%d", connSeq.Add(1)), Command: cmd, Payload: p, TenantID: tenant}
}

func (w *world) runDirect(ctx context.Context, d *simDevice, req rpcproto.Request, c *directConn) rpcproto.Outcome {
	if c == nil {
		c = &directConn{}
	}
	if c.rt == nil {
		c.rt = d.transport()
	}
	c.dev = d
	return w.eng.Run(ctx, req, c)
}

func activateCmd(profile string) rpcproto.Command {
	return rpcproto.Command{Name: "activate", Profile: profile}
}

// ---- running flows end to end (rpcproto server + the agent) ----

type server struct {
	url string
	srv *rpcproto.Server
}

func (w *world) startServer() *server {
	w.t.Helper()
	srv := rpcproto.NewServer(rpcproto.Config{RoundTimeout: 5 * time.Second, Logger: quiet()}, w.eng)
	hs := httptest.NewServer(srv)
	w.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return &server{url: "ws" + strings.TrimPrefix(hs.URL, "http"), srv: srv}
}

func (s *server) run(t *testing.T, d *simDevice, cfg agent.Config) (agent.Result, error) {
	t.Helper()
	if cfg.URL == "" {
		path := "/" + cfg.Command
		cfg.URL = s.url + path
	}
	cfg.MEIPath = d.startMEI()
	if cfg.LMSAddr == "" {
		cfg.LMSAddr = d.dev.Addr()
	}
	if cfg.LMSTLSAddr == "" {
		cfg.LMSTLSAddr = d.tlsAddr()
	}
	// rpc-go's TLS-tunnel read rules with a shorter idle pause: the
	// simulated device writes each handshake flight at once, and closes the
	// connection after an answer (EOF ends the read). Every tunnel call
	// costs two idle pauses (the two handshake flights).
	if cfg.TLSFirstByteTimeout == 0 {
		cfg.TLSFirstByteTimeout = 2 * time.Second
	}
	if cfg.TLSIdleTimeout == 0 {
		cfg.TLSIdleTimeout = 25 * time.Millisecond
	}
	if cfg.Hostname == "" {
		cfg.Hostname = testHost
	}
	cfg.TenantID = tenant
	cfg.Logger = quiet()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return agent.Run(ctx, cfg)
}

// ---- kill switch ----

// gate cuts amtd off from its durable state at an instant: every store and
// secret-store call after kill fails, as if the process died.
type gate struct {
	mu     sync.Mutex
	killed bool
}

var errKilled = errors.New("process killed")

func (g *gate) kill() {
	g.mu.Lock()
	g.killed = true
	g.mu.Unlock()
}

func (g *gate) check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.killed {
		return errKilled
	}
	return nil
}

type gatedStore struct {
	store.Store
	g *gate
}

func (s *gatedStore) PutSealed(ctx context.Context, key string, blob []byte) error {
	if err := s.g.check(); err != nil {
		return err
	}
	return s.Store.PutSealed(ctx, key, blob)
}
func (s *gatedStore) GetSealed(ctx context.Context, key string) ([]byte, error) {
	if err := s.g.check(); err != nil {
		return nil, err
	}
	return s.Store.GetSealed(ctx, key)
}
func (s *gatedStore) DeleteSealed(ctx context.Context, key string) error {
	if err := s.g.check(); err != nil {
		return err
	}
	return s.Store.DeleteSealed(ctx, key)
}
func (s *gatedStore) PutDevice(ctx context.Context, d *store.Device) (bool, error) {
	if err := s.g.check(); err != nil {
		return false, err
	}
	return s.Store.PutDevice(ctx, d)
}
func (s *gatedStore) DeleteDevice(ctx context.Context, guid string) error {
	if err := s.g.check(); err != nil {
		return err
	}
	return s.Store.DeleteDevice(ctx, guid)
}
func (s *gatedStore) AppendEvent(ctx context.Context, e *store.ProvisioningEvent) error {
	if err := s.g.check(); err != nil {
		return err
	}
	return s.Store.AppendEvent(ctx, e)
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func getGeneral(c *amt.Client) (general.GeneralSettingsResponse, error) {
	var g general.GeneralSettingsResponse
	err := c.Do(context.Background(), func(m wsman.Messages) error {
		r, err := m.AMT.GeneralSettings.Get()
		g = r.Body.GetResponse
		return err
	})
	return g, err
}

func (w *world) add8021x(name string, wired bool, protocol int) {
	w.t.Helper()
	pxe := 120
	if err := w.st.CreateIEEE8021xConfig(w.ctx(), &store.IEEE8021xConfig{TenantID: tenant, Name: name,
		AuthenticationProtocol: protocol, PXETimeout: &pxe, WiredInterface: wired}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) addWireless(name string, method int, ssid, passphrase, ieee string) {
	w.t.Helper()
	wc := &store.WirelessConfig{TenantID: tenant, Name: name, AuthenticationMethod: method, EncryptionMethod: 4,
		SSID: ssid, LinkPolicy: []int{1, 14}}
	if ieee != "" {
		wc.IEEE8021xProfileName = &ieee
	}
	if passphrase != "" {
		wc.SecretID = "secret-wifi-" + name
		if err := w.sec.Put(w.ctx(), provision.DefaultSecretKey(tenant, provision.KindWireless, wc.SecretID),
			map[string]string{provision.FieldPSKPassphrase: passphrase}); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := w.st.CreateWirelessConfig(w.ctx(), wc); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) addProxy(name, address string, port int, dnsSuffix string) {
	w.t.Helper()
	if err := w.st.CreateProxyConfig(w.ctx(), &store.ProxyConfig{TenantID: tenant, Name: name, Address: address,
		InfoFormat: 201, Port: port, NetworkDNSSuffix: dnsSuffix}); err != nil {
		w.t.Fatal(err)
	}
}

// addCIRA adds a CIRA config; password "" means a random one per device.
func (w *world) addCIRA(name, password string) *store.CIRAConfig {
	w.t.Helper()
	c := &store.CIRAConfig{TenantID: tenant, Name: name, MPSServerAddress: "mps.example.com", MPSPort: 4433,
		Username: "mpsuser01", ServerAddressFormat: 201, AuthMethod: 2,
		MPSRootCertificate: base64.StdEncoding.EncodeToString(w.cira.RootDER())}
	if password != "" {
		c.SecretID = "secret-cira-" + name
		if err := w.sec.Put(w.ctx(), provision.DefaultSecretKey(tenant, provision.KindCIRA, c.SecretID),
			map[string]string{provision.FieldMPSPassword: password}); err != nil {
			w.t.Fatal(err)
		}
	}
	if err := w.st.CreateCIRAConfig(w.ctx(), c); err != nil {
		w.t.Fatal(err)
	}
	return c
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
