package psk_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/store"
)

func TestGenerateLookupTake(t *testing.T) {
	ctx := t.Context()
	st, sec := legacytest.Open(t)
	k := &psk.Keeper{Store: st, Secrets: sec}
	rows, err := k.Generate(ctx, "", 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 20 {
		t.Fatalf("%d rows", len(rows))
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if !setupbin.ValidPID(r.PID) || r.SecretID == "" || seen[r.PID] {
			t.Fatalf("bad row %+v", r)
		}
		seen[r.PID] = true
	}
	// The PPS is sealed: the database holds no PPS, the secret store does.
	p, err := k.Lookup(ctx, setupbin.Dashed(strings.ToLower(rows[3].PID)))
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != rows[3].PID || !setupbin.ValidPPS(p.PPS) {
		t.Fatalf("lookup = %+v", p.PSKPair)
	}
	m, err := sec.Get(ctx, provision.DefaultSecretKey("", psk.SecretKind, rows[3].SecretID))
	if err != nil || m[psk.FieldPPS] != p.PPS {
		t.Fatalf("secret entry = %v, %v", len(m), err)
	}
	if _, err := k.Lookup(ctx, "ZZZZ9999"); !errors.Is(err, psk.ErrUnknownPID) {
		t.Fatalf("unknown PID: %v", err)
	}

	taken, err := k.Take(ctx, "", 15, "a.bin")
	if err != nil || len(taken) != 15 {
		t.Fatalf("take = %d, %v", len(taken), err)
	}
	for _, tk := range taken {
		if !setupbin.ValidPPS(tk.PPS) || tk.ExportedTo != "a.bin" {
			t.Fatalf("taken %+v", tk.PSKPair)
		}
	}
	more, err := k.Take(ctx, "", 15, "b.bin")
	if err != nil || len(more) != 5 {
		t.Fatalf("second take = %d, %v", len(more), err)
	}
	if n, _ := st.CountPSKPairs(ctx, "", store.PSKFilter{Available: true}); n != 0 {
		t.Fatalf("%d still available", n)
	}

	if err := k.Delete(ctx, "other", rows[0].PID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cross-tenant delete: %v", err)
	}
	if err := k.Delete(ctx, "", rows[0].PID); err != nil {
		t.Fatal(err)
	}
	if _, err := sec.Get(ctx, provision.DefaultSecretKey("", psk.SecretKind, rows[0].SecretID)); err == nil {
		t.Fatal("sealed PPS left behind")
	}
	if _, err := k.Generate(ctx, "", 0); err == nil {
		t.Fatal("n=0 accepted")
	}
}

func TestAddOperatorPairs(t *testing.T) {
	ctx := t.Context()
	st, inner := legacytest.Open(t)
	sec := apitest.NewTracking(inner)
	k := &psk.Keeper{Store: st, Secrets: sec}
	pps := "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01-2345"
	rows, err := k.Add(ctx, "", []psk.Pair{{PSKPair: store.PSKPair{PID: "abcd-1234"}, PPS: pps}})
	if err != nil || len(rows) != 1 || rows[0].PID != "ABCD1234" {
		t.Fatalf("add = %+v, %v", rows, err)
	}
	p, err := k.Lookup(ctx, "ABCD1234")
	if err != nil || p.PPS != "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345" {
		t.Fatalf("lookup = %v", err)
	}
	// Duplicate PID: nothing stored, no sealed entry left.
	_, err = k.Add(ctx, "", []psk.Pair{
		{PSKPair: store.PSKPair{PID: "NEWP0001"}, PPS: pps},
		{PSKPair: store.PSKPair{PID: "ABCD1234"}, PPS: pps},
	})
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("duplicate add = %v", err)
	}
	if _, err := k.Lookup(ctx, "NEWP0001"); !errors.Is(err, psk.ErrUnknownPID) {
		t.Fatalf("partial add stored: %v", err)
	}
	if live := sec.Live(); len(live) != 1 {
		t.Fatalf("sealed entries after a failed add: %v", live)
	}
	if _, err := k.Add(ctx, "", []psk.Pair{{PSKPair: store.PSKPair{PID: "SHORT"}, PPS: pps}}); err == nil {
		t.Fatal("short PID accepted")
	}
}
