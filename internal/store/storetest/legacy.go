package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// ---- legacy provisioning ----

func testLegacyDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	if l, err := s.ListLegacyDevices(ctx, "", all()); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("empty list = %v, %v", l, err)
	}
	devs := []store.LegacyDevice{
		{GUID: "939B524B-13D4-1D18-E487-1C697A6B7A2B", TenantID: "", Hostname: "pc1", DNSSuffix: "corp.example.com", ProfileName: "acm"},
		{GUID: "d2ffc23e-9dd1-412d-860a-54b2039b72ff", TenantID: "", Hostname: "pc2", DNSSuffix: "corp.example.com", ProfileName: "acm"},
	}
	must(t, s.PutLegacyDevices(ctx, devs))
	if devs[0].GUID != "939b524b-13d4-1d18-e487-1c697a6b7a2b" || devs[0].CreatedAt.IsZero() || !devs[0].UpdatedAt.Equal(devs[0].CreatedAt) {
		t.Fatalf("after put: %+v", devs[0])
	}
	got, err := s.GetLegacyDevice(ctx, "939B524B-13D4-1D18-E487-1C697A6B7A2B")
	must(t, err)
	if got.Hostname != "pc1" || got.DNSSuffix != "corp.example.com" || got.ProfileName != "acm" || got.TenantID != "" ||
		!got.CreatedAt.Equal(devs[0].CreatedAt) {
		t.Fatalf("get = %+v", got)
	}
	// Replace keeps CreatedAt, changes the fields.
	created := got.CreatedAt
	upd := []store.LegacyDevice{{GUID: devs[0].GUID, Hostname: "pc1b", DNSSuffix: "lab.example.com", ProfileName: "other"}}
	must(t, s.PutLegacyDevices(ctx, upd))
	got, err = s.GetLegacyDevice(ctx, devs[0].GUID)
	must(t, err)
	if got.Hostname != "pc1b" || got.DNSSuffix != "lab.example.com" || got.ProfileName != "other" || !got.CreatedAt.Equal(created) {
		t.Fatalf("after replace: %+v (created %v)", got, created)
	}
	if n, err := s.CountLegacyDevices(ctx, ""); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}

	// All or nothing: a batch with a GUID of another tenant stores nothing.
	must(t, s.PutLegacyDevices(ctx, []store.LegacyDevice{{GUID: "11111111-2222-3333-4444-555555555555", TenantID: "t2", ProfileName: "p"}}))
	batch := []store.LegacyDevice{
		{GUID: "aaaaaaaa-0000-0000-0000-000000000001", ProfileName: "acm"},
		{GUID: "11111111-2222-3333-4444-555555555555", ProfileName: "acm"}, // tenant t2's
	}
	wantErr(t, s.PutLegacyDevices(ctx, batch), store.ErrDuplicate)
	if _, err := s.GetLegacyDevice(ctx, "aaaaaaaa-0000-0000-0000-000000000001"); err != store.ErrNotFound {
		t.Fatalf("first entry of a failed batch was stored: %v", err)
	}
	if d, err := s.GetLegacyDevice(ctx, "11111111-2222-3333-4444-555555555555"); err != nil || d.TenantID != "t2" {
		t.Fatalf("other tenant's entry changed: %+v %v", d, err)
	}
	// An empty GUID is refused before anything is written.
	if err := s.PutLegacyDevices(ctx, []store.LegacyDevice{{GUID: "aaaaaaaa-0000-0000-0000-000000000002"}, {GUID: " "}}); err == nil {
		t.Fatal("empty GUID accepted")
	}
	if _, err := s.GetLegacyDevice(ctx, "aaaaaaaa-0000-0000-0000-000000000002"); err != store.ErrNotFound {
		t.Fatalf("entry stored despite the refused batch: %v", err)
	}

	l, err := s.ListLegacyDevices(ctx, "", store.Page{Top: 1, Skip: 1})
	must(t, err)
	if len(l) != 1 || l[0].GUID != "d2ffc23e-9dd1-412d-860a-54b2039b72ff" {
		t.Fatalf("page 2 = %+v", l)
	}
	if l, err := s.ListLegacyDevices(ctx, "t2", all()); err != nil || len(l) != 1 {
		t.Fatalf("tenant t2 list = %+v, %v", l, err)
	}
	// Delete is tenant-scoped.
	wantErr(t, s.DeleteLegacyDevice(ctx, "t2", devs[1].GUID), store.ErrNotFound)
	must(t, s.DeleteLegacyDevice(ctx, "", "D2FFC23E-9DD1-412D-860A-54B2039B72FF"))
	wantErr(t, s.DeleteLegacyDevice(ctx, "", devs[1].GUID), store.ErrNotFound)
	if _, err := s.GetLegacyDevice(ctx, devs[1].GUID); err != store.ErrNotFound {
		t.Fatalf("get after delete: %v", err)
	}
}

func testHelloEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	base := tm("2025-03-01T10:00:00.123456Z")
	mk := func(i int, tenant, guid string) *store.HelloEvent {
		return &store.HelloEvent{TenantID: tenant, GUID: guid, SourceIP: fmt.Sprintf("192.0.2.%d", i), Version: 3,
			RetryCount: int64(i % 15), AdminCredentialsSet: i%2 == 0,
			Hashes:     []store.HelloHash{{Type: 2, Hash: fmt.Sprintf("%064x", i)}},
			ReceivedAt: base.Add(time.Duration(i) * time.Second), Outcome: "accepted", Detail: "d"}
	}
	var ids []int64
	for i := range 5 {
		e := mk(i, "", "939B524B-13D4-1D18-E487-1C697A6B7A2B")
		must(t, s.AppendHelloEvent(ctx, e, 0))
		if e.GUID != "939b524b-13d4-1d18-e487-1c697a6b7a2b" || e.ID == 0 {
			t.Fatalf("after append: %+v", e)
		}
		if len(ids) > 0 && e.ID <= ids[len(ids)-1] {
			t.Fatalf("IDs not increasing: %v then %d", ids, e.ID)
		}
		ids = append(ids, e.ID)
	}
	psk := &store.HelloEvent{TenantID: "", GUID: "d2ffc23e-9dd1-412d-860a-54b2039b72ff", SourceIP: "198.51.100.7", Version: 2, PID: "ABCD1234", Outcome: "unknown-uuid"}
	must(t, s.AppendHelloEvent(ctx, psk, 0))
	if psk.ReceivedAt.IsZero() || psk.Hashes == nil {
		t.Fatalf("defaults not set: %+v", psk)
	}
	must(t, s.AppendHelloEvent(ctx, mk(9, "t2", "11111111-2222-3333-4444-555555555555"), 0))

	l, err := s.ListHelloEvents(ctx, "", store.HelloFilter{}, all())
	must(t, err)
	if len(l) != 6 || l[0].ID != psk.ID || l[0].PID != "ABCD1234" || l[0].Version != 2 || len(l[0].Hashes) != 0 {
		t.Fatalf("list = %+v", l)
	}
	first := l[5]
	want := mk(0, "", "939b524b-13d4-1d18-e487-1c697a6b7a2b")
	want.ID = ids[0]
	if first.ID != want.ID || first.SourceIP != want.SourceIP || first.RetryCount != 0 || !first.AdminCredentialsSet ||
		!first.ReceivedAt.Equal(want.ReceivedAt) || !slices.Equal(first.Hashes, want.Hashes) || first.Outcome != "accepted" {
		t.Fatalf("oldest = %+v, want %+v", first, want)
	}
	byGUID, err := s.ListHelloEvents(ctx, "", store.HelloFilter{GUID: "939B524B-13D4-1D18-E487-1C697A6B7A2B"}, store.Page{Top: 2})
	must(t, err)
	if len(byGUID) != 2 || byGUID[0].ID != ids[4] || byGUID[1].ID != ids[3] {
		t.Fatalf("by GUID = %+v", byGUID)
	}
	if n, err := s.CountHelloEvents(ctx, "", store.HelloFilter{SourceIP: "192.0.2.3"}); err != nil || n != 1 {
		t.Fatalf("count by IP = %d, %v", n, err)
	}
	if n, err := s.CountHelloEvents(ctx, "t2", store.HelloFilter{}); err != nil || n != 1 {
		t.Fatalf("count t2 = %d, %v", n, err)
	}

	must(t, s.SetHelloOutcome(ctx, ids[2], "failed", "the device refused the certificate"))
	l, err = s.ListHelloEvents(ctx, "", store.HelloFilter{SourceIP: "192.0.2.2"}, all())
	must(t, err)
	if len(l) != 1 || l[0].Outcome != "failed" || l[0].Detail != "the device refused the certificate" {
		t.Fatalf("after outcome: %+v", l)
	}
	wantErr(t, s.SetHelloOutcome(ctx, 1<<40, "x", ""), store.ErrNotFound)

	// Retention: keep only the newest 3 (of all tenants).
	last := mk(10, "", "939b524b-13d4-1d18-e487-1c697a6b7a2b")
	must(t, s.AppendHelloEvent(ctx, last, 3))
	nAll := 0
	for _, tenant := range []string{"", "t2"} {
		n, err := s.CountHelloEvents(ctx, tenant, store.HelloFilter{})
		must(t, err)
		nAll += n
	}
	if nAll != 3 {
		t.Fatalf("%d events after pruning to 3", nAll)
	}
	l, err = s.ListHelloEvents(ctx, "", store.HelloFilter{}, all())
	must(t, err)
	if len(l) == 0 || l[0].ID != last.ID {
		t.Fatalf("newest event pruned: %+v", l)
	}
	wantErr(t, s.SetHelloOutcome(ctx, ids[0], "x", ""), store.ErrNotFound)
}

func testPSKPairs(t *testing.T, s store.Store) {
	ctx := t.Context()
	var pairs []store.PSKPair
	for i := range 5 {
		pairs = append(pairs, store.PSKPair{PID: fmt.Sprintf("pid0000%d", i), TenantID: "", SecretID: fmt.Sprintf("s%d", i)})
	}
	must(t, s.CreatePSKPairs(ctx, pairs))
	if pairs[0].PID != "PID00000" || pairs[0].CreatedAt.IsZero() {
		t.Fatalf("after create: %+v", pairs[0])
	}
	// All or nothing on a duplicate PID.
	wantErr(t, s.CreatePSKPairs(ctx, []store.PSKPair{{PID: "NEW00001", SecretID: "x"}, {PID: "pid00003", SecretID: "y"}}), store.ErrDuplicate)
	if _, err := s.GetPSKPair(ctx, "NEW00001"); err != store.ErrNotFound {
		t.Fatalf("partial create stored: %v", err)
	}
	must(t, s.CreatePSKPairs(ctx, []store.PSKPair{{PID: "OTHER001", TenantID: "t2", SecretID: "z"}}))

	p, err := s.GetPSKPair(ctx, "pid00002")
	must(t, err)
	if p.SecretID != "s2" || p.ExportedAt != nil || p.UsedAt != nil || p.UsedBy != "" {
		t.Fatalf("get = %+v", p)
	}
	if n, err := s.CountPSKPairs(ctx, "", store.PSKFilter{Available: true}); err != nil || n != 5 {
		t.Fatalf("available = %d, %v", n, err)
	}

	at := tm("2025-03-02T08:00:00Z")
	taken, err := s.TakePSKPairs(ctx, "", 2, "usb1/setup.bin", at)
	must(t, err)
	if len(taken) != 2 || taken[0].ExportedTo != "usb1/setup.bin" || taken[0].ExportedAt == nil || !taken[0].ExportedAt.Equal(at) {
		t.Fatalf("taken = %+v", taken)
	}
	must(t, s.MarkPSKPairUsed(ctx, "PID00004", "939B524B-13D4-1D18-E487-1C697A6B7A2B", at))
	wantErr(t, s.MarkPSKPairUsed(ctx, "NOPE0000", "x", at), store.ErrNotFound)
	if n, err := s.CountPSKPairs(ctx, "", store.PSKFilter{Available: true}); err != nil || n != 2 {
		t.Fatalf("available after take and use = %d, %v", n, err)
	}
	used, err := s.GetPSKPair(ctx, "PID00004")
	must(t, err)
	if used.UsedBy != "939b524b-13d4-1d18-e487-1c697a6b7a2b" || used.UsedAt == nil || !used.UsedAt.Equal(at) {
		t.Fatalf("used = %+v", used)
	}
	avail, err := s.ListPSKPairs(ctx, "", store.PSKFilter{Available: true}, all())
	must(t, err)
	for _, a := range avail {
		for _, tk := range taken {
			if a.PID == tk.PID {
				t.Fatalf("taken pair %s still available", a.PID)
			}
		}
	}

	// Concurrent takers never get the same pair; the pool runs dry.
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.TakePSKPairs(ctx, "", 1, "concurrent", at)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			for _, g := range got {
				seen[g.PID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Fatalf("concurrent takes got %v, want the 2 remaining pairs once each", seen)
	}
	for pid, n := range seen {
		if n != 1 {
			t.Fatalf("pair %s handed out %d times", pid, n)
		}
	}
	if got, err := s.TakePSKPairs(ctx, "", 3, "x", at); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("take from an empty pool = %v, %v", got, err)
	}

	l, err := s.ListPSKPairs(ctx, "", store.PSKFilter{}, store.Page{Top: 2, Skip: 1})
	must(t, err)
	if len(l) != 2 || l[0].PID != "PID00001" || l[1].PID != "PID00002" {
		t.Fatalf("page = %+v", l)
	}
	wantErr(t, s.DeletePSKPair(ctx, "t2", "PID00001"), store.ErrNotFound)
	must(t, s.DeletePSKPair(ctx, "", "pid00001"))
	if n, err := s.CountPSKPairs(ctx, "", store.PSKFilter{}); err != nil || n != 4 {
		t.Fatalf("count after delete = %d, %v", n, err)
	}
}
