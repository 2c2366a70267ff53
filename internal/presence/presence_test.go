package presence

import (
	"context"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets/local"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

const guid = "4c4c4544-0038-4b10-8052-b4c04f564433"

func open(t *testing.T) (store.Store, *local.Store) {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "amtd.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	rand.Read(key)
	sec, err := local.New(st, key)
	if err != nil {
		t.Fatal(err)
	}
	return st, sec
}

func TestAuthenticator(t *testing.T) {
	ctx := t.Context()
	st, sec := open(t)
	a := &Authenticator{Store: st, Secrets: sec}
	if _, err := a.LookupDevice(ctx, guid); !errors.Is(err, cira.ErrUnknownDevice) {
		t.Fatalf("no record: %v", err)
	}
	if _, err := st.PutDevice(ctx, &store.Device{GUID: guid, MPSUsername: "ciraUser"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.LookupDevice(ctx, guid); !errors.Is(err, cira.ErrUnknownDevice) {
		t.Fatalf("record without MPS password: %v", err)
	}
	devcreds.Stage(ctx, sec, guid, devcreds.MPS, "Pending-Pass1")
	devcreds.Commit(ctx, sec, guid, devcreds.MPS, "Pending-Pass1")
	devcreds.Stage(ctx, sec, guid, devcreds.MPS, "Second-Pass2")
	auth, err := a.LookupDevice(ctx, guid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pass string
		ok         bool
	}{
		{"ciraUser", "Pending-Pass1", true},
		{"ciraUser", "Second-Pass2", true}, // AddMpServer may have landed before a crash
		{"ciraUser", "wrong", false},
		{"other", "Pending-Pass1", false},
		{"ciraUser", "", false},
	} {
		if got := auth.Verify(c.user, c.pass); got != c.ok {
			t.Errorf("Verify(%q, %q) = %v", c.user, c.pass, got)
		}
	}
}

func TestRecorderBatchesAndOrders(t *testing.T) {
	ctx := t.Context()
	st, _ := open(t)
	other := "143e4567-e89b-12d3-a456-426614174000"
	for _, g := range []string{guid, other} {
		if _, err := st.PutDevice(ctx, &store.Device{GUID: g}); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRecorder(st, "inst-a", time.Hour, nil) // flushes only when stopped
	rctx, cancel := context.WithCancel(ctx)
	go r.Run(rctx)
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	// A reconnect: the old connection's disconnect, then the new connect.
	r.Connected(cira.ConnInfo{UUID: guid, ConnectedAt: t0})
	r.Disconnected(cira.ConnInfo{UUID: guid, DisconnectedAt: t0.Add(time.Minute), LastSeen: t0.Add(30 * time.Second)})
	r.Connected(cira.ConnInfo{UUID: guid, ConnectedAt: t0.Add(2 * time.Minute)})
	r.Connected(cira.ConnInfo{UUID: other, ConnectedAt: t0})
	if d, _ := st.GetDevice(ctx, guid); d.ConnectionStatus {
		t.Fatal("written before the batch interval")
	}
	cancel()
	<-r.Done()
	d, _ := st.GetDevice(ctx, guid)
	if !d.ConnectionStatus || d.MPSInstance == nil || *d.MPSInstance != "inst-a" || !d.LastConnected.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after flush: %+v", d)
	}
	if d, _ := st.GetDevice(ctx, other); !d.ConnectionStatus {
		t.Fatalf("other device: %+v", d)
	}
}

func TestRecorderFlushesAfterInterval(t *testing.T) {
	ctx := t.Context()
	st, _ := open(t)
	st.PutDevice(ctx, &store.Device{GUID: guid})
	r := NewRecorder(st, "inst-a", time.Millisecond, nil)
	rctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); <-r.Done() }()
	go r.Run(rctx)
	flushed := r.Flushed()
	r.Connected(cira.ConnInfo{UUID: guid, ConnectedAt: time.Now()})
	select {
	case <-flushed:
	case <-time.After(10 * time.Second):
		t.Fatal("no flush")
	}
	if d, _ := st.GetDevice(ctx, guid); !d.ConnectionStatus {
		t.Fatalf("not recorded: %+v", d)
	}
}
