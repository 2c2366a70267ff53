package cluster_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/cluster"
	"github.com/amtd-project/amtd/internal/store"
)

// Lease timings of these tests: short, so that expiry takes a fraction of
// a second.
const (
	ttl   = 400 * time.Millisecond
	renew = 50 * time.Millisecond
)

// running is a joined node whose Run goroutine can be stopped ("crash":
// no Leave) or left gracefully.
type running struct {
	*cluster.Node
	cancel context.CancelFunc
	done   chan struct{}
}

func start(t *testing.T, cfg cluster.Config) *running {
	t.Helper()
	if cfg.TTL == 0 {
		cfg.TTL, cfg.Renew = ttl, renew
	}
	if cfg.Logger == nil {
		cfg.Logger = testLog(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	r := &running{Node: n, cancel: stop, done: make(chan struct{})}
	go func() { defer close(r.done); n.Run(rctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends Run without releasing the lease (as a crash would).
func (r *running) stop() {
	r.cancel()
	<-r.done
}

func (r *running) leave(t *testing.T) {
	t.Helper()
	r.stop()
	if err := r.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestNodeLifecycle: a crashed instance's devices are marked disconnected
// by a live peer once its lease expires; the restarted instance takes its
// lease over at once (same address) and clears what the crashed run left;
// a graceful stop disconnects at once.
func TestNodeLifecycle(t *testing.T) {
	for name, open := range dialects(t) {
		t.Run(name, func(t *testing.T) {
			conns := open(t)
			stA, stB := conns(), conns()
			a := start(t, cluster.Config{Store: stA, ID: "a", Addr: "http://127.0.0.1:1"})
			addDevice(t, stA, dev1, "a")
			addDevice(t, stA, dev2, "a")
			b := start(t, cluster.Config{Store: stB, ID: "b", Addr: "http://127.0.0.1:2"})
			addDevice(t, stB, dev3, "b")

			l, err := stB.ListInstances(context.Background())
			if err != nil || len(l) != 2 || l[0].ID != "a" || l[0].Addr != "http://127.0.0.1:1" || l[1].ID != "b" {
				t.Fatalf("instances = %+v, %v", l, err)
			}
			if o, err := stB.DeviceOwner(context.Background(), dev1); err != nil || o.ID != "a" {
				t.Fatalf("owner of dev1 = %+v, %v", o, err)
			}

			// A crashes: after its lease expires, B's reaper disconnects its
			// devices; B's own device stays.
			crashed := time.Now()
			a.stop()
			eventually(t, 5*time.Second, "a's devices still connected", func() bool {
				return owner(t, stB, dev1) == "" && owner(t, stB, dev2) == ""
			})
			if time.Since(crashed) < ttl-renew {
				t.Fatalf("devices disconnected %v after the crash, before the lease (%v) could expire", time.Since(crashed), ttl)
			}
			if o := owner(t, stB, dev3); o != "b" {
				t.Fatalf("b's device: owner %q", o)
			}
			d, _ := stB.GetDevice(context.Background(), dev1)
			if d.LastDisconnected == nil || d.LastDisconnected.Before(crashed.Add(-time.Second)) {
				t.Fatalf("last disconnected %v", d.LastDisconnected)
			}
			if _, err := stB.DeviceOwner(context.Background(), dev1); err == nil {
				t.Fatal("dev1 still has an owner")
			}

			// A second crash, this time restarting before the lease expires:
			// the new process takes over (same address) and clears the stale
			// record of its previous run.
			a = start(t, cluster.Config{Store: stA, ID: "a", Addr: "http://127.0.0.1:1"})
			addDevice(t, stA, dev1, "a")
			a.stop()
			began := time.Now()
			a = start(t, cluster.Config{Store: stA, ID: "a", Addr: "http://127.0.0.1:1"})
			if d := time.Since(began); d > ttl {
				t.Fatalf("restart at the same address waited %v", d)
			}
			if o := owner(t, stA, dev1); o != "" {
				t.Fatalf("stale record survived the restart: owner %q", o)
			}

			// Graceful stop: devices disconnected and the lease gone at once.
			addDevice(t, stA, dev2, "a")
			a.leave(t)
			if o := owner(t, stA, dev2); o != "" {
				t.Fatalf("after leave: owner %q", o)
			}
			l, _ = stA.ListInstances(context.Background())
			if len(l) != 1 || l[0].ID != "b" {
				t.Fatalf("instances after leave = %+v", l)
			}
			b.leave(t)
			if o := owner(t, stA, dev3); o != "" {
				t.Fatalf("b's device after leave: owner %q", o)
			}
		})
	}
}

// TestJoinSameID: a second process with the same ID at another address
// fails while the first renews its lease, and gets the ID once the first
// stops renewing.
func TestJoinSameID(t *testing.T) {
	conns := dialects(t)["postgres"](t)
	st := conns()
	first := start(t, cluster.Config{Store: st, ID: "dup", Addr: "http://10.0.0.1:8181"})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cluster.Join(ctx, cluster.Config{Store: conns(), ID: "dup", Addr: "http://10.0.0.2:8181", TTL: ttl, Renew: renew, Logger: testLog(t)})
	if err == nil || !strings.Contains(err.Error(), "in use by a live process") {
		t.Fatalf("join of a duplicate ID: %v", err)
	}

	first.stop() // crashed: the lease expires
	addDevice(t, st, dev1, "dup")
	began := time.Now()
	second := start(t, cluster.Config{Store: conns(), ID: "dup", Addr: "http://10.0.0.2:8181"})
	if d := time.Since(began); d > 3*ttl {
		t.Fatalf("join waited %v", d)
	}
	if second.Incarnation() == first.Incarnation() {
		t.Fatal("same incarnation")
	}
	if o := owner(t, st, dev1); o != "" {
		t.Fatalf("stale record of the crashed process: owner %q", o)
	}
	l, _ := st.ListInstances(context.Background())
	if len(l) != 1 || l[0].Addr != "http://10.0.0.2:8181" || l[0].Incarnation != second.Incarnation() {
		t.Fatalf("instances = %+v", l)
	}
}

// TestLapse: an instance cut off from the database for longer than its
// lease has its devices reaped by a peer; when it gets through again it
// is told to record its connections again.
func TestLapse(t *testing.T) {
	conns := dialects(t)["postgres"](t)
	fa := &flaky{Store: conns()}
	lapsed := make(chan struct{}, 1)
	var once sync.Once
	start(t, cluster.Config{Store: fa, ID: "a", Addr: "http://127.0.0.1:1", OnLapse: func() {
		// What serve does: record the live connections again.
		if err := fa.SetDeviceConnection(context.Background(), dev1, store.DeviceConnection{Connected: true, Instance: "a", At: time.Now()}); err != nil {
			t.Error(err)
		}
		once.Do(func() { close(lapsed) })
	}})
	stB := conns()
	start(t, cluster.Config{Store: stB, ID: "b"})
	addDevice(t, stB, dev1, "a")

	fa.down.Store(true)
	eventually(t, 5*time.Second, "a's device not reaped", func() bool { return owner(t, stB, dev1) == "" })
	select {
	case <-lapsed:
		t.Fatal("lapse reported while the database was unreachable")
	default:
	}
	fa.down.Store(false)
	select {
	case <-lapsed:
	case <-time.After(5 * time.Second):
		t.Fatal("no lapse reported after the database came back")
	}
	if o := owner(t, stB, dev1); o != "a" {
		t.Fatalf("after the lapse: owner %q", o)
	}
	if o, err := stB.DeviceOwner(context.Background(), dev1); err != nil || o.ID != "a" {
		t.Fatalf("live owner after the lapse: %+v, %v", o, err)
	}
}

// TestOrphans: a record naming an instance that has no lease at all (a
// write after its lease was reaped) is corrected at join.
func TestOrphans(t *testing.T) {
	conns := dialects(t)["sqlite"](t)
	st := conns()
	addDevice(t, st, dev1, "gone")
	// Backdate the connection beyond the grace period.
	if err := st.SetDeviceConnection(context.Background(), dev1, store.DeviceConnection{Connected: true, Instance: "gone", At: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	addDevice(t, st, dev2, "gone") // just connected: left for a later sweep
	start(t, cluster.Config{Store: st, ID: "a"})
	if o := owner(t, st, dev1); o != "" {
		t.Fatalf("orphan kept: owner %q", o)
	}
	if o := owner(t, st, dev2); o != "gone" {
		t.Fatalf("fresh record reaped: owner %q", o)
	}
}

func TestConfigChecks(t *testing.T) {
	st := dialects(t)["sqlite"](t)()
	ctx := context.Background()
	if _, err := cluster.Join(ctx, cluster.Config{Store: st}); err == nil {
		t.Fatal("join without ID")
	}
	if _, err := cluster.Join(ctx, cluster.Config{Store: st, ID: "a", TTL: time.Second, Renew: 600 * time.Millisecond}); err == nil {
		t.Fatal("renewal slower than half the lease accepted")
	}
}
