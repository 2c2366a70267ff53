package cluster_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	dev1 = "4c4c4544-0038-4b10-8052-b4c04f564401"
	dev2 = "4c4c4544-0038-4b10-8052-b4c04f564402"
	dev3 = "4c4c4544-0038-4b10-8052-b4c04f564403"
)

// dialects opens, per dialect, a function returning connections (stores)
// to one shared database, as several instances have.
func dialects(t *testing.T) map[string]func(t *testing.T) func() *sqlstore.Store {
	open := func(t *testing.T, dsn string) *sqlstore.Store {
		s, err := sqlstore.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return map[string]func(t *testing.T) func() *sqlstore.Store{
		"sqlite": func(t *testing.T) func() *sqlstore.Store {
			dsn := filepath.Join(t.TempDir(), "amtd.db")
			return func() *sqlstore.Store { return open(t, dsn) }
		},
		"postgres": func(t *testing.T) func() *sqlstore.Store {
			dsn := pgtest.DSN(t)
			return func() *sqlstore.Store { return open(t, dsn) }
		},
	}
}

// testLog writes to the test's log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// addDevice stores a device, connected to instance when it is not "".
func addDevice(t *testing.T, st store.Store, guid, instance string) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.PutDevice(ctx, &store.Device{GUID: guid, Hostname: "h", MPSUsername: "admin"}); err != nil {
		t.Fatal(err)
	}
	if instance != "" {
		if err := st.SetDeviceConnection(ctx, guid, store.DeviceConnection{Connected: true, Instance: instance, At: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
}

// owner returns the instance a device is recorded connected to ("" none).
func owner(t *testing.T, st store.Store, guid string) string {
	t.Helper()
	d, err := st.GetDevice(context.Background(), guid)
	if err != nil {
		t.Fatal(err)
	}
	if !d.ConnectionStatus || d.MPSInstance == nil {
		return ""
	}
	return *d.MPSInstance
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes (lease expiry is a matter of time; the tests wait for
// its observable effect, not for a fixed duration).
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		<-tick.C
	}
}

// flaky is a Leases whose database can be made unreachable.
type flaky struct {
	store.Store
	down atomic.Bool
}

var errDown = errors.New("database unreachable")

func (f *flaky) ClaimInstance(ctx context.Context, inst store.Instance, ttl time.Duration, takeOver bool) (store.InstanceClaim, error) {
	if f.down.Load() {
		return store.InstanceClaim{}, errDown
	}
	return f.Store.ClaimInstance(ctx, inst, ttl, takeOver)
}

func (f *flaky) ReapInstances(ctx context.Context, at time.Time) (int, int, error) {
	if f.down.Load() {
		return 0, 0, errDown
	}
	return f.Store.ReapInstances(ctx, at)
}
