package devaccess_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"

	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/devaccess/devaccesstest"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/secrets/local"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

type env struct {
	st     store.Store
	sec    secrets.Store
	dialer *devaccesstest.Dialer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "amtd.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := local.LoadOrCreateMasterKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	sec, err := local.New(st, key)
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, sec: sec, dialer: devaccesstest.NewDialer()}
}

func (e *env) access(t *testing.T, o devaccess.Options) *devaccess.Access {
	t.Helper()
	o.Store, o.Secrets = e.st, e.sec
	if o.DialContext == nil {
		o.DialContext = e.dialer.DialContext
	}
	a, err := devaccess.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// lanDevice records sim under host (mapped by the env's dialer) with its
// credentials.
func (e *env) lanDevice(t *testing.T, sim *devaccesstest.Sim, host, tenant string, pinTLS bool) {
	t.Helper()
	e.dialer.Add(host, sim)
	d := &store.Device{GUID: sim.GUID, TenantID: tenant, Hostname: "ignored-" + host, DeviceInfo: &store.DeviceInfo{IPAddress: host}}
	if _, err := e.st.PutDevice(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	sim.StoreCredentials(t, e.sec, pinTLS)
}

// realm reads AMT_GeneralSettings through the access path.
func realm(ctx context.Context, a *devaccess.Access, guid string) (string, *devaccess.Handle, error) {
	h, err := a.Open(ctx, guid)
	if err != nil {
		return "", nil, err
	}
	defer h.Release()
	var r string
	err = h.Client.Do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.GeneralSettings.Get()
		r = resp.Body.GetResponse.DigestRealm
		return err
	})
	return r, h, err
}

func TestLANPlain(t *testing.T) {
	e := newEnv(t)
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	e.lanDevice(t, sim, "dev1.lan.test", "t1", false)
	a := e.access(t, devaccess.Options{})
	ctx := context.Background()

	got, h, err := realm(ctx, a, strings.ToUpper(sim.GUID))
	if err != nil {
		t.Fatal(err)
	}
	if got != sim.FW.Realm() {
		t.Fatalf("realm %q, want %q", got, sim.FW.Realm())
	}
	if h.Via != devaccess.ViaLAN || h.Tenant != "t1" || h.TLS || h.Addr != "dev1.lan.test:16992" {
		t.Fatalf("route %+v", h.Route)
	}
	if n := a.Cached(sim.GUID); n != 1 {
		t.Fatalf("cached clients = %d, want 1", n)
	}
	// The cached client is reused (same pointer, digest state kept).
	h2, err := a.Open(ctx, sim.GUID)
	if err != nil {
		t.Fatal(err)
	}
	if h2.Client != h.Client {
		t.Fatal("cached client not reused")
	}
	h2.Release()
	// Invalidate drops it.
	a.Invalidate(sim.GUID)
	h3, err := a.Open(ctx, sim.GUID)
	if err != nil {
		t.Fatal(err)
	}
	if h3.Client == h.Client {
		t.Fatal("client reused after Invalidate")
	}
	h3.Release()
}

func TestLANTLSPinned(t *testing.T) {
	e := newEnv(t)
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{TLSEnforced: true})
	if sim.Device.TLSAddr() == "" {
		t.Fatal("simulated device has no TLS port")
	}
	e.lanDevice(t, sim, "10.9.8.7", "", true)
	a := e.access(t, devaccess.Options{})
	ctx := context.Background()
	got, h, err := realm(ctx, a, sim.GUID)
	if err != nil {
		t.Fatal(err)
	}
	if got != sim.FW.Realm() || !h.TLS || h.Addr != "10.9.8.7:16993" {
		t.Fatalf("realm %q route %+v", got, h.Route)
	}

	// A different pinned certificate: the handshake is refused and the
	// client is not cached.
	other := devaccesstest.StartSim(t, devaccesstest.SimOptions{TLSEnforced: true})
	if err := devcreds.Set(ctx, e.sec, sim.GUID, devcreds.TLSCert, other.TLSCertB64(t)); err != nil {
		t.Fatal(err)
	}
	a.Invalidate(sim.GUID)
	if _, _, err := realm(ctx, a, sim.GUID); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("pin mismatch: err = %v", err)
	}
	if n := a.Cached(sim.GUID); n != 0 {
		t.Fatalf("cached clients after failure = %d", n)
	}
}

func TestNotConnected(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	a := e.access(t, devaccess.Options{})

	// no record
	if _, err := a.Open(ctx, sim.GUID); !errors.Is(err, devaccess.ErrNotConnected) {
		t.Fatalf("no record: %v", err)
	}
	if _, err := a.Open(ctx, "1"); !errors.Is(err, devaccess.ErrNotConnected) {
		t.Fatalf("bad guid: %v", err)
	}
	// record without any address
	if _, err := e.st.PutDevice(ctx, &store.Device{GUID: sim.GUID}); err != nil {
		t.Fatal(err)
	}
	sim.StoreCredentials(t, e.sec, false)
	if _, err := a.Open(ctx, sim.GUID); !errors.Is(err, devaccess.ErrNotConnected) {
		t.Fatalf("no address: %v", err)
	}
	// address but no credentials
	e.dialer.Add("nocreds.test", sim)
	if _, err := e.st.PutDevice(ctx, &store.Device{GUID: sim.GUID, Hostname: "nocreds.test"}); err != nil {
		t.Fatal(err)
	}
	if err := devcreds.Delete(ctx, e.sec, sim.GUID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Open(ctx, sim.GUID); !errors.Is(err, devaccess.ErrNoCredentials) || !errors.Is(err, devaccess.ErrNotConnected) {
		t.Fatalf("no credentials: %v", err)
	}
	// LAN disabled
	sim.StoreCredentials(t, e.sec, false)
	if _, _, err := realm(ctx, a, sim.GUID); err != nil {
		t.Fatalf("LAN: %v", err)
	}
	b := e.access(t, devaccess.Options{DisableLAN: true})
	if _, err := b.Lookup(ctx, sim.GUID); !errors.Is(err, devaccess.ErrNotConnected) {
		t.Fatalf("LAN disabled: %v", err)
	}
}

func TestWrongPasswordRecovers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	e.lanDevice(t, sim, "dev2.lan.test", "", false)
	a := e.access(t, devaccess.Options{})
	if _, _, err := realm(ctx, a, sim.GUID); err != nil {
		t.Fatal(err)
	}
	// Someone changes the stored password (e.g. a rotation whose value the
	// device does not have): calls fail with 401 and nothing stays cached.
	if err := devcreds.Set(ctx, e.sec, sim.GUID, devcreds.AMT, "Wrong-Passw0rd"); err != nil {
		t.Fatal(err)
	}
	a.Invalidate(sim.GUID)
	_, _, err := realm(ctx, a, sim.GUID)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v", err)
	}
	if n := a.Cached(sim.GUID); n != 0 {
		t.Fatalf("cached after auth failure: %d", n)
	}
	// The right password back: the next Open reads it, no Invalidate needed.
	sim.StoreCredentials(t, e.sec, false)
	if _, _, err := realm(ctx, a, sim.GUID); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrencyLimit(t *testing.T) {
	e := newEnv(t)
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	e.lanDevice(t, sim, "dev3.lan.test", "", false)
	a := e.access(t, devaccess.Options{MaxClients: 2})
	ctx := context.Background()
	h1, err := a.Open(ctx, sim.GUID)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := a.Open(ctx, sim.GUID)
	if err != nil {
		t.Fatal(err)
	}
	if h1.Client == h2.Client {
		t.Fatal("two concurrent handles share one client")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := a.Open(short, sim.GUID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third Open with 2 slots: %v", err)
	}
	got := make(chan *devaccess.Handle)
	go func() {
		h, err := a.Open(ctx, sim.GUID)
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	h1.Release()
	h1.Release() // idempotent
	h3 := <-got
	if h3.Client != h1.Client {
		t.Fatal("released client not handed to the waiter")
	}
	h2.Release()
	h3.Release()
}

func TestTimeoutDropsClient(t *testing.T) {
	e := newEnv(t)
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	e.lanDevice(t, sim, "dev4.lan.test", "", false)
	a := e.access(t, devaccess.Options{})
	ctx := context.Background()
	if _, _, err := realm(ctx, a, sim.GUID); err != nil {
		t.Fatal(err)
	}
	sim.Device.SetLatency(2 * time.Second)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, _, err := realm(short, a, sim.GUID)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow device: %v", err)
	}
	if n := a.Cached(sim.GUID); n != 0 {
		t.Fatalf("client kept after a timeout: %d", n)
	}
	sim.Device.SetLatency(0)
	if _, _, err := realm(ctx, a, sim.GUID); err != nil {
		t.Fatal(err)
	}
}

func TestCIRAFirstThenLAN(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	e.lanDevice(t, sim, "dev5.lan.test", "lan-tenant", false)
	cs := devaccesstest.StartCIRA(t, nil)
	cs.Allow(sim.GUID, "mpsuser", "Mps-Passw0rd", "cira-tenant")
	dev := cs.Connect(t, sim, "mpsuser", "Mps-Passw0rd")
	a := e.access(t, devaccess.Options{CIRA: cs.Server})

	got, h, err := realm(ctx, a, sim.GUID)
	if err != nil {
		t.Fatal(err)
	}
	if got != sim.FW.Realm() || h.Via != devaccess.ViaCIRA || h.Tenant != "cira-tenant" || h.Addr != "" {
		t.Fatalf("realm %q route %+v", got, h.Route)
	}
	// several calls in a row on the cached client
	for i := 0; i < 3; i++ {
		if _, _, err := realm(ctx, a, sim.GUID); err != nil {
			t.Fatal(err)
		}
	}
	// The device goes away from CIRA: the next Open takes the LAN path.
	gone := cs.ExpectDisconnect(sim.GUID)
	dev.Close()
	<-gone
	_, h, err = realm(ctx, a, sim.GUID)
	if err != nil {
		t.Fatal(err)
	}
	if h.Via != devaccess.ViaLAN || h.Tenant != "lan-tenant" {
		t.Fatalf("after disconnect: %+v", h.Route)
	}
}

func TestCIRAConcurrentCalls(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	sim.StoreCredentials(t, e.sec, false)
	cs := devaccesstest.StartCIRA(t, nil)
	cs.Allow(sim.GUID, "admin", "Mps-Passw0rd", "")
	cs.Connect(t, sim, "admin", "Mps-Passw0rd")
	a := e.access(t, devaccess.Options{CIRA: cs.Server})
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			_, _, err := realm(ctx, a, sim.GUID)
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := a.Cached(sim.GUID); n < 1 || n > devaccess.DefaultMaxClients {
		t.Fatalf("cached = %d", n)
	}
}

func TestAddress(t *testing.T) {
	for _, c := range []struct {
		d    *store.Device
		want string
	}{
		{&store.Device{}, ""},
		{&store.Device{Hostname: "pc1"}, "pc1"},
		{&store.Device{Hostname: "pc1", DNSSuffix: "corp.example.com"}, "pc1.corp.example.com"},
		{&store.Device{Hostname: "pc1", DNSSuffix: "corp.example.com."}, "pc1.corp.example.com"},
		{&store.Device{Hostname: "pc1.other.org", DNSSuffix: "corp.example.com"}, "pc1.other.org"},
		{&store.Device{Hostname: "10.0.0.5", DNSSuffix: "corp.example.com"}, "10.0.0.5"},
		{&store.Device{Hostname: "pc1", DeviceInfo: &store.DeviceInfo{IPAddress: " 192.168.1.9 "}}, "192.168.1.9"},
		{&store.Device{Hostname: "pc1", DeviceInfo: &store.DeviceInfo{}}, "pc1"},
	} {
		if got := devaccess.Address(c.d); got != c.want {
			t.Errorf("Address(%+v) = %q, want %q", c.d, got, c.want)
		}
	}
}
