// Package presence joins the CIRA server (package cira) to amtd's store: it
// admits devices with the MPS credentials provisioning gave them, and records
// connects and disconnects in the device records — batched, and never per
// keepalive (the last keepalive time stays in the CIRA server's memory until
// the device disconnects).
package presence

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// Authenticator admits a device whose record exists, with the username of
// its record and one of the MPS passwords amtd holds for it (the current one,
// or a pending one whose AddMpServer outcome was never confirmed).
type Authenticator struct {
	Store   store.Store
	Secrets secrets.Store
}

// LookupDevice implements cira.Authenticator.
func (a *Authenticator) LookupDevice(ctx context.Context, uuid string) (cira.DeviceAuth, error) {
	d, err := a.Store.GetDevice(ctx, uuid)
	if errors.Is(err, store.ErrNotFound) {
		return cira.DeviceAuth{}, fmt.Errorf("%w: no device record", cira.ErrUnknownDevice)
	}
	if err != nil {
		return cira.DeviceAuth{}, err
	}
	creds, err := devcreds.Load(ctx, a.Secrets, d.GUID)
	if err != nil {
		return cira.DeviceAuth{}, err
	}
	passwords := creds.Candidates(devcreds.MPS)
	if d.MPSUsername == "" || len(passwords) == 0 {
		return cira.DeviceAuth{}, fmt.Errorf("%w: not configured for CIRA", cira.ErrUnknownDevice)
	}
	user := sha256.Sum256([]byte(d.MPSUsername))
	sums := make([][32]byte, len(passwords))
	for i, p := range passwords {
		sums[i] = sha256.Sum256([]byte(p))
	}
	return cira.DeviceAuth{Tenant: d.TenantID, Verify: func(u, p string) bool {
		gu, gp := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
		okUser := subtle.ConstantTimeCompare(gu[:], user[:])
		okPass := 0
		for i := range sums {
			okPass |= subtle.ConstantTimeCompare(gp[:], sums[i][:])
		}
		return okUser&okPass == 1
	}}, nil
}

// Recorder records connection changes in the store. Changes are queued by
// the CIRA server's connection goroutines and written by one goroutine in
// batches (the newest change per device wins within a batch), so a burst of
// thousands of devices connecting costs a few transactions, not thousands.
type Recorder struct {
	store    store.Store
	instance string
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	pending map[string]store.DeviceConnection
	order   []string
	wake    chan struct{}
	done    chan struct{}
	flushed chan struct{} // closed and replaced after every flush (tests, shutdown)
}

// NewRecorder returns a recorder writing as instance. interval bounds how
// long a change waits before it is written (default 200 ms).
func NewRecorder(st store.Store, instance string, interval time.Duration, log *slog.Logger) *Recorder {
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{store: st, instance: instance, log: log, interval: interval,
		pending: map[string]store.DeviceConnection{}, wake: make(chan struct{}, 1),
		done: make(chan struct{}), flushed: make(chan struct{})}
}

// Connected implements cira.Observer.
func (r *Recorder) Connected(i cira.ConnInfo) {
	r.queue(i.UUID, store.DeviceConnection{Connected: true, Instance: r.instance, At: i.ConnectedAt})
}

// Disconnected implements cira.Observer.
func (r *Recorder) Disconnected(i cira.ConnInfo) {
	seen := i.LastSeen
	r.queue(i.UUID, store.DeviceConnection{Connected: false, Instance: r.instance, At: i.DisconnectedAt, LastSeen: &seen})
}

func (r *Recorder) queue(guid string, c store.DeviceConnection) {
	r.mu.Lock()
	if _, ok := r.pending[guid]; !ok {
		r.order = append(r.order, guid)
	}
	r.pending[guid] = c
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run writes queued changes until ctx ends, then writes what is left.
func (r *Recorder) Run(ctx context.Context) {
	defer close(r.done)
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r.flush(fctx)
		cancel()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		// Let a burst accumulate, then write it in one transaction.
		t := time.NewTimer(r.interval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		r.flush(ctx)
	}
}

// Done is closed when Run has returned.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// Flushed returns a channel closed after the next completed flush.
func (r *Recorder) Flushed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushed
}

func (r *Recorder) flush(ctx context.Context) {
	r.mu.Lock()
	batch := make([]store.DeviceConnectionChange, 0, len(r.order))
	for _, g := range r.order {
		batch = append(batch, store.DeviceConnectionChange{GUID: g, DeviceConnection: r.pending[g]})
	}
	r.pending = map[string]store.DeviceConnection{}
	r.order = r.order[:0]
	done := r.flushed
	r.flushed = make(chan struct{})
	r.mu.Unlock()
	if len(batch) > 0 {
		if err := r.store.SetDeviceConnections(ctx, batch); err != nil {
			r.log.Error("presence: recording connection changes failed", "devices", len(batch), "err", err)
		}
	}
	close(done)
}
