// Package psk keeps the PID/PPS pairs of legacy PSK provisioning
// (spec/legacy.md §9): amtd generates them (amtd psk generate), hands them
// out in setup.bin files, and looks the PPS up by the PID a version 2 hello
// carries. The PPS of each pair is sealed in the secret store; the database
// row (store.PSKPair) holds only the PID, its state and the secret id.
package psk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// Secret entries: one per pair at provision.DefaultSecretKey(tenant,
// SecretKind, pair.SecretID), with the fields below.
const (
	SecretKind = "pskpairs"
	FieldPID   = "PID"
	FieldPPS   = "PPS"
)

// MaxGenerate bounds one generation request.
const MaxGenerate = 10000

// ErrUnknownPID: no pair with that PID.
var ErrUnknownPID = errors.New("psk: unknown PID")

// Pair is a pair with its secret, for the few places that need the PPS
// (a setup.bin being written, the TLS-PSK handshake).
type Pair struct {
	store.PSKPair
	PPS string
}

// Keeper manages pairs in a store and a secret store.
type Keeper struct {
	Store   store.Store
	Secrets secrets.Store
	// Rand is the entropy source (default crypto/rand).
	Rand io.Reader
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (k *Keeper) rand() io.Reader {
	if k.Rand != nil {
		return k.Rand
	}
	return rand.Reader
}

func (k *Keeper) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func key(tenant, secretID string) string {
	return provision.DefaultSecretKey(tenant, SecretKind, secretID)
}

func (k *Keeper) newSecretID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(k.rand(), b); err != nil {
		return "", fmt.Errorf("psk: random source: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// Generate creates n fresh pairs for the tenant: the PPS values are sealed
// first, then the rows are inserted all at once (on failure the sealed
// entries are removed again). It returns the rows, without the PPS.
func (k *Keeper) Generate(ctx context.Context, tenant string, n int) ([]store.PSKPair, error) {
	if n <= 0 || n > MaxGenerate {
		return nil, fmt.Errorf("psk: the number of pairs must be 1 to %d, not %d", MaxGenerate, n)
	}
	var last error
	for range 3 { // a PID collision (36^8 values) only costs a retry
		pairs := make([]Pair, n)
		for i := range pairs {
			pid, pps, err := setupbin.GeneratePIDPPS(k.rand())
			if err != nil {
				return nil, err
			}
			pairs[i] = Pair{PSKPair: store.PSKPair{PID: pid, TenantID: tenant}, PPS: pps}
		}
		rows, err := k.add(ctx, pairs)
		if errors.Is(err, store.ErrDuplicate) {
			last = err
			continue
		}
		return rows, err
	}
	return nil, last
}

// Add stores pairs given by an operator (e.g. an OEM's list of the PID/PPS
// values set in the factory), all or nothing. PID and PPS are normalised
// (dashes, spaces and case) and must be 8 and 32 characters A–Z/0–9.
func (k *Keeper) Add(ctx context.Context, tenant string, pairs []Pair) ([]store.PSKPair, error) {
	if len(pairs) == 0 || len(pairs) > MaxGenerate {
		return nil, fmt.Errorf("psk: give 1 to %d pairs", MaxGenerate)
	}
	seen := map[string]bool{}
	for i := range pairs {
		pid, pps, err := setupbin.ParsePIDPPS(pairs[i].PID, pairs[i].PPS)
		if err != nil {
			return nil, fmt.Errorf("pair %d: %w", i+1, err)
		}
		if seen[pid] {
			return nil, fmt.Errorf("pair %d: PID %s given twice: %w", i+1, pid, store.ErrDuplicate)
		}
		seen[pid] = true
		pairs[i].PID, pairs[i].PPS, pairs[i].TenantID = pid, pps, tenant
	}
	return k.add(ctx, pairs)
}

func (k *Keeper) add(ctx context.Context, pairs []Pair) ([]store.PSKPair, error) {
	rows := make([]store.PSKPair, len(pairs))
	var written []string
	cleanup := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, kk := range written {
			_ = k.Secrets.Delete(cctx, kk)
		}
	}
	for i := range pairs {
		id, err := k.newSecretID()
		if err != nil {
			cleanup()
			return nil, err
		}
		p := pairs[i].PSKPair
		p.SecretID = id
		kk := key(p.TenantID, id)
		if err := k.Secrets.Put(ctx, kk, map[string]string{FieldPID: p.PID, FieldPPS: pairs[i].PPS}); err != nil {
			cleanup()
			return nil, fmt.Errorf("psk: sealing the PPS: %w", err)
		}
		written = append(written, kk)
		rows[i] = p
	}
	if err := k.Store.CreatePSKPairs(ctx, rows); err != nil {
		cleanup()
		return nil, err
	}
	return rows, nil
}

// Lookup returns the pair of a PID (any tenant) with its PPS.
func (k *Keeper) Lookup(ctx context.Context, pid string) (*Pair, error) {
	row, err := k.Store.GetPSKPair(ctx, setupbin.NormalizePIDPPS(pid))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownPID
	}
	if err != nil {
		return nil, err
	}
	return k.withSecret(ctx, *row)
}

func (k *Keeper) withSecret(ctx context.Context, row store.PSKPair) (*Pair, error) {
	m, err := k.Secrets.Get(ctx, key(row.TenantID, row.SecretID))
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, fmt.Errorf("psk: the PPS of %s is missing from the secret store", row.PID)
	}
	if err != nil {
		return nil, fmt.Errorf("psk: reading the PPS of %s: %w", row.PID, err)
	}
	if m[FieldPID] != row.PID || !setupbin.ValidPPS(m[FieldPPS]) {
		return nil, fmt.Errorf("psk: the secret entry of %s does not hold its PPS", row.PID)
	}
	return &Pair{PSKPair: row, PPS: m[FieldPPS]}, nil
}

// Take hands out up to n available pairs of the tenant, marked as exported
// to "to", with their PPS; fewer when not enough are available.
func (k *Keeper) Take(ctx context.Context, tenant string, n int, to string) ([]Pair, error) {
	rows, err := k.Store.TakePSKPairs(ctx, tenant, n, to, k.now())
	if err != nil {
		return nil, err
	}
	out := make([]Pair, 0, len(rows))
	for _, r := range rows {
		p, err := k.withSecret(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, *p)
	}
	return out, nil
}

// Delete removes a pair and its sealed PPS.
func (k *Keeper) Delete(ctx context.Context, tenant, pid string) error {
	row, err := k.Store.GetPSKPair(ctx, setupbin.NormalizePIDPPS(pid))
	if err != nil {
		return err
	}
	if row.TenantID != tenant {
		return store.ErrNotFound
	}
	if err := k.Store.DeletePSKPair(ctx, tenant, row.PID); err != nil {
		return err
	}
	return k.Secrets.Delete(ctx, key(tenant, row.SecretID))
}
