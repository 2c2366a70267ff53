package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// ---- instance leases ----

// expired is a lease duration that has passed by the next statement.
const expired = time.Microsecond

// connectedTo stores a device recorded as connected to instance.
func connectedTo(t *testing.T, s store.Store, guid, instance string, at time.Time) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.PutDevice(ctx, &store.Device{GUID: guid, Hostname: "h-" + guid[len(guid)-4:]}); err != nil {
		t.Fatal(err)
	}
	must(t, s.SetDeviceConnection(ctx, guid, store.DeviceConnection{Connected: true, Instance: instance, At: at}))
}

// wantOwner checks the recorded connection of a device.
func wantOwner(t *testing.T, s store.Store, guid, instance string) {
	t.Helper()
	d, err := s.GetDevice(t.Context(), guid)
	must(t, err)
	switch {
	case instance == "" && (d.ConnectionStatus || d.MPSInstance != nil):
		t.Fatalf("%s: connected to %v, want disconnected", guid, *d.MPSInstance)
	case instance != "" && (!d.ConnectionStatus || d.MPSInstance == nil || *d.MPSInstance != instance):
		t.Fatalf("%s: connected=%v instance=%v, want connected to %s", guid, d.ConnectionStatus, d.MPSInstance, instance)
	}
}

func testInstanceLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	if l, err := s.ListInstances(ctx); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("empty list = %v, %v", l, err)
	}
	a1 := store.Instance{ID: "a", Addr: "http://10.0.0.1:8181", Incarnation: "inc-1"}
	before := time.Now().Add(-time.Second)
	c, err := s.ClaimInstance(ctx, a1, time.Minute, false)
	must(t, err)
	if c.Continued || c.ID != "a" || c.Addr != a1.Addr || c.StartedAt.Before(before) ||
		c.ExpiresAt.Sub(c.StartedAt) != time.Minute {
		t.Fatalf("first claim: %+v", c)
	}
	first := c

	// A renewal keeps StartedAt, moves the expiry, and continues the lease.
	a1.Addr = "http://10.0.0.1:8282"
	c, err = s.ClaimInstance(ctx, a1, 2*time.Minute, false)
	must(t, err)
	if !c.Continued || !c.StartedAt.Equal(first.StartedAt) || !c.ExpiresAt.After(first.ExpiresAt) || c.Addr != a1.Addr {
		t.Fatalf("renewal: %+v (first %+v)", c, first)
	}

	// Another incarnation of the same ID is refused while the lease lives,
	// and told who holds it.
	a2 := store.Instance{ID: "a", Addr: "http://10.0.0.9:8181", Incarnation: "inc-2"}
	c, err = s.ClaimInstance(ctx, a2, time.Minute, false)
	wantErr(t, err, store.ErrConflict)
	if c.Incarnation != "inc-1" || c.Addr != a1.Addr || !c.ExpiresAt.After(time.Now()) {
		t.Fatalf("conflict reports %+v", c)
	}
	// Taking over replaces it; the old incarnation then conflicts.
	c, err = s.ClaimInstance(ctx, a2, time.Minute, true)
	must(t, err)
	if c.Continued || c.Incarnation != "inc-2" || !c.StartedAt.After(first.StartedAt) {
		t.Fatalf("takeover: %+v", c)
	}
	_, err = s.ClaimInstance(ctx, a1, time.Minute, false)
	wantErr(t, err, store.ErrConflict)

	b := store.Instance{ID: "b", Addr: "https://b.internal:8181", Incarnation: "inc-b"}
	_, err = s.ClaimInstance(ctx, b, time.Minute, false)
	must(t, err)
	l, err := s.ListInstances(ctx)
	must(t, err)
	if len(l) != 2 || l[0].ID != "a" || l[0].Incarnation != "inc-2" || l[1].ID != "b" || l[1].Addr != b.Addr {
		t.Fatalf("list = %+v", l)
	}

	// The owner of a device is the live instance its record names.
	at := time.Now().UTC().Truncate(time.Second)
	connectedTo(t, s, guid1, "a", at)
	connectedTo(t, s, guid2, "b", at)
	o, err := s.DeviceOwner(ctx, "143E4567-E89B-12D3-A456-426614174001")
	must(t, err)
	if o.ID != "a" || o.Addr != a2.Addr || o.Incarnation != "inc-2" {
		t.Fatalf("owner = %+v", o)
	}
	_, err = s.DeviceOwner(ctx, guid3) // no such device
	wantErr(t, err, store.ErrNotFound)
	connectedTo(t, s, guid4, "ghost", at) // names an instance without a lease
	_, err = s.DeviceOwner(ctx, guid4)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.SetDeviceConnection(ctx, guid2, store.DeviceConnection{Connected: false, Instance: "b", At: at}))
	_, err = s.DeviceOwner(ctx, guid2) // disconnected
	wantErr(t, err, store.ErrNotFound)

	// An expired lease owns nothing, is not listed, and may be claimed by
	// another incarnation; renewing it afterwards does not continue it.
	_, err = s.ClaimInstance(ctx, a2, expired, false)
	must(t, err)
	_, err = s.DeviceOwner(ctx, guid1)
	wantErr(t, err, store.ErrNotFound)
	l, err = s.ListInstances(ctx)
	must(t, err)
	if len(l) != 1 || l[0].ID != "b" {
		t.Fatalf("list with a expired = %+v", l)
	}
	wantOwner(t, s, guid1, "a") // the record itself is only changed by a reaper
	c, err = s.ClaimInstance(ctx, a2, time.Minute, false)
	must(t, err)
	if c.Continued {
		t.Fatalf("renewal of an expired lease continued it: %+v", c)
	}
	_, err = s.ClaimInstance(ctx, a2, expired, false)
	must(t, err)
	a3 := store.Instance{ID: "a", Incarnation: "inc-3"}
	c, err = s.ClaimInstance(ctx, a3, time.Minute, false)
	must(t, err)
	if c.Continued || c.Incarnation != "inc-3" || c.Addr != "" {
		t.Fatalf("claim of an expired lease: %+v", c)
	}

	// Bad arguments.
	if _, err := s.ClaimInstance(ctx, store.Instance{ID: "x"}, time.Minute, false); err == nil {
		t.Fatal("claim without incarnation accepted")
	}
	if _, err := s.ClaimInstance(ctx, store.Instance{ID: "x", Incarnation: "i"}, 0, false); err == nil {
		t.Fatal("claim with zero duration accepted")
	}
}

func testInstanceRelease(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Now().UTC().Truncate(time.Second)
	a := store.Instance{ID: "a", Incarnation: "inc-1"}
	_, err := s.ClaimInstance(ctx, a, time.Minute, false)
	must(t, err)
	_, err = s.ClaimInstance(ctx, store.Instance{ID: "b", Incarnation: "inc-b"}, time.Minute, false)
	must(t, err)
	connectedTo(t, s, guid1, "a", at)
	connectedTo(t, s, guid2, "a", at)
	connectedTo(t, s, guid3, "b", at)

	// Another incarnation's release changes nothing.
	n, err := s.ReleaseInstance(ctx, "a", "inc-0", at.Add(time.Minute))
	must(t, err)
	if n != 0 {
		t.Fatalf("release by a stale incarnation disconnected %d", n)
	}
	wantOwner(t, s, guid1, "a")
	n, err = s.ReleaseInstance(ctx, "a", "inc-1", at.Add(time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("release disconnected %d, want 2", n)
	}
	wantOwner(t, s, guid1, "")
	wantOwner(t, s, guid2, "")
	wantOwner(t, s, guid3, "b")
	d, _ := s.GetDevice(ctx, guid1)
	if d.LastDisconnected == nil || !d.LastDisconnected.Equal(at.Add(time.Minute)) || !d.LastConnected.Equal(at) {
		t.Fatalf("after release: %+v", d)
	}
	if l, _ := s.ListInstances(ctx); len(l) != 1 || l[0].ID != "b" {
		t.Fatalf("released lease still listed: %+v", l)
	}
	if n, err := s.ReleaseInstance(ctx, "a", "inc-1", at); err != nil || n != 0 {
		t.Fatalf("second release = %d, %v", n, err)
	}

	// A restart clears what its previous incarnation recorded.
	connectedTo(t, s, guid1, "b", at)
	n, err = s.DisconnectInstanceDevices(ctx, "b", at.Add(2*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("disconnect instance devices = %d, want 2", n)
	}
	wantOwner(t, s, guid1, "")
	wantOwner(t, s, guid3, "")
}

func testInstanceReap(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := time.Now().UTC().Truncate(time.Second)
	_, err := s.ClaimInstance(ctx, store.Instance{ID: "dead", Incarnation: "i"}, expired, false)
	must(t, err)
	_, err = s.ClaimInstance(ctx, store.Instance{ID: "live", Incarnation: "i"}, time.Minute, false)
	must(t, err)
	connectedTo(t, s, guid1, "dead", at)
	connectedTo(t, s, guid2, "dead", at)
	connectedTo(t, s, guid3, "live", at)

	insts, devs, err := s.ReapInstances(ctx, at.Add(time.Minute))
	must(t, err)
	if insts != 1 || devs != 2 {
		t.Fatalf("reap = %d instances, %d devices; want 1, 2", insts, devs)
	}
	wantOwner(t, s, guid1, "")
	wantOwner(t, s, guid2, "")
	wantOwner(t, s, guid3, "live")
	if d, _ := s.GetDevice(ctx, guid2); d.LastDisconnected == nil || !d.LastDisconnected.Equal(at.Add(time.Minute)) {
		t.Fatalf("reaped device: %+v", d)
	}
	if insts, devs, err := s.ReapInstances(ctx, at); err != nil || insts != 0 || devs != 0 {
		t.Fatalf("second reap = %d, %d, %v", insts, devs, err)
	}
	// The reaped lease is gone: its incarnation's next renewal starts anew.
	c, err := s.ClaimInstance(ctx, store.Instance{ID: "dead", Incarnation: "i"}, time.Minute, false)
	must(t, err)
	if c.Continued {
		t.Fatal("renewal after reaping continued the lease")
	}

	// Orphans: records naming an instance without a lease, connected before
	// the grace limit.
	connectedTo(t, s, guid1, "ghost", at.Add(-time.Hour))
	connectedTo(t, s, guid2, "ghost", at) // within the grace period
	n, err := s.ReapOrphans(ctx, at, at.Add(-time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("orphans reaped %d, want 1", n)
	}
	wantOwner(t, s, guid1, "")
	wantOwner(t, s, guid2, "ghost")
	wantOwner(t, s, guid3, "live")
}

// testInstanceClaimRace: incarnations claiming one ID at once; exactly one
// gets it.
func testInstanceClaimRace(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.ClaimInstance(ctx, store.Instance{ID: "same", Incarnation: fmt.Sprint("inc-", i)}, time.Minute, false)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("claim: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d claims won, want 1", won)
	}
}
