package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// Defaults of Config.
const (
	DefaultLeaseTTL    = 30 * time.Second
	DefaultRenew       = 10 * time.Second
	DefaultOrphanSweep = 5 * time.Minute
)

// Leases is what a Node needs from the store; store.Store implements it.
type Leases interface {
	ClaimInstance(ctx context.Context, inst store.Instance, ttl time.Duration, takeOver bool) (store.InstanceClaim, error)
	ReleaseInstance(ctx context.Context, id, incarnation string, at time.Time) (int, error)
	DisconnectInstanceDevices(ctx context.Context, id string, at time.Time) (int, error)
	ReapInstances(ctx context.Context, at time.Time) (instances, devices int, err error)
	ReapOrphans(ctx context.Context, at, connectedBefore time.Time) (int, error)
}

// Config configures a Node.
type Config struct {
	Store Leases // required
	ID    string // this instance's name in device records (required)
	// Addr is the base URL peers forward requests to (see AdvertiseURL);
	// empty: peers cannot forward to this instance.
	Addr string
	// TTL is how long a lease lives without renewal (default 30 s); Renew
	// how often it is renewed and expired leases are reaped (default 10 s,
	// at most TTL/2).
	TTL   time.Duration
	Renew time.Duration
	// OrphanSweep is how often device records naming an instance without
	// any lease are corrected (default 5 minutes).
	OrphanSweep time.Duration
	// OnLapse is called (on Run's goroutine) when a renewal finds that the
	// lease had expired, e.g. after the database was unreachable for
	// longer than TTL: other instances may have recorded this instance's
	// devices disconnected, so the live connections should be recorded
	// again.
	OnLapse func()
	Logger  *slog.Logger
}

// Node is this instance's membership: its lease in the store.
type Node struct {
	cfg         Config
	log         *slog.Logger
	incarnation string
	lastRenewed time.Time // by the process clock; Run's goroutine only
}

func (c *Config) defaults() error {
	if c.Store == nil || c.ID == "" {
		return errors.New("cluster: Config.Store and Config.ID are required")
	}
	if c.TTL <= 0 {
		c.TTL = DefaultLeaseTTL
	}
	if c.Renew <= 0 {
		c.Renew = min(DefaultRenew, c.TTL/3)
	}
	if c.Renew > c.TTL/2 {
		return fmt.Errorf("cluster: lease renewal interval %v must be at most half the lease duration %v", c.Renew, c.TTL)
	}
	if c.OrphanSweep <= 0 {
		c.OrphanSweep = DefaultOrphanSweep
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Join claims the instance's lease and clears the device records its
// previous incarnation left behind; call it before accepting CIRA
// connections.
//
// When a live lease of another incarnation holds the ID: if it advertises
// this instance's own address (a restart after a crash: this process has
// bound that address, so the old one cannot be serving it), Join takes it
// over at once. Otherwise it waits: if the holder renews its lease, another
// live process uses the same ID and Join fails; if the lease expires, Join
// takes it. Either way the wait is at most about TTL.
func Join(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	n := &Node{cfg: cfg, log: cfg.Logger.With("instance", cfg.ID), incarnation: hex.EncodeToString(b)}
	if err := n.claim(ctx); err != nil {
		return nil, err
	}
	n.lastRenewed = time.Now()
	now := time.Now()
	if k, err := cfg.Store.DisconnectInstanceDevices(ctx, cfg.ID, now); err != nil {
		return nil, fmt.Errorf("cluster: clearing this instance's stale connections: %w", err)
	} else if k > 0 {
		n.log.Info("cluster: devices recorded connected to a previous run of this instance marked disconnected", "devices", k)
	}
	n.reap(ctx, true)
	n.log.Info("cluster: joined", "addr", cfg.Addr, "incarnation", n.incarnation, "lease", cfg.TTL, "renew", cfg.Renew)
	return n, nil
}

func (n *Node) self() store.Instance {
	return store.Instance{ID: n.cfg.ID, Addr: n.cfg.Addr, Incarnation: n.incarnation}
}

// claim takes the lease for Join (see there).
func (n *Node) claim(ctx context.Context) error {
	var first *store.Instance
	for {
		c, err := n.cfg.Store.ClaimInstance(ctx, n.self(), n.cfg.TTL, false)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("cluster: claiming the lease of instance %q: %w", n.cfg.ID, err)
		}
		holder := c.Instance
		if n.cfg.Addr != "" && holder.Addr == n.cfg.Addr {
			n.log.Warn("cluster: taking over the lease of a previous process at this instance's address", "previous_incarnation", holder.Incarnation)
			if _, err := n.cfg.Store.ClaimInstance(ctx, n.self(), n.cfg.TTL, true); err != nil {
				return fmt.Errorf("cluster: taking over the lease of instance %q: %w", n.cfg.ID, err)
			}
			return nil
		}
		switch {
		case first == nil:
			first = &holder
			n.log.Warn("cluster: another process holds this instance ID; waiting for its lease to expire",
				"holder_addr", holder.Addr, "holder_incarnation", holder.Incarnation, "expires", holder.ExpiresAt)
		case holder.Incarnation != first.Incarnation || holder.ExpiresAt.After(first.ExpiresAt):
			return fmt.Errorf("cluster: instance ID %q is in use by a live process at %q (its lease was renewed): give each instance its own --instance-id",
				n.cfg.ID, holder.Addr)
		}
		t := time.NewTimer(n.cfg.Renew)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ID is the instance's ID.
func (n *Node) ID() string { return n.cfg.ID }

// Incarnation is this process's random lease token.
func (n *Node) Incarnation() string { return n.incarnation }

// Run renews the lease and reaps expired ones every Renew interval until
// ctx ends. Call Leave only after Run has returned.
func (n *Node) Run(ctx context.Context) {
	tick := time.NewTicker(n.cfg.Renew)
	defer tick.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n.renew(ctx)
		sweep := time.Since(lastSweep) >= n.cfg.OrphanSweep
		if sweep {
			lastSweep = time.Now()
		}
		n.reap(ctx, sweep)
	}
}

func (n *Node) renew(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, n.cfg.Renew)
	defer cancel()
	c, err := n.cfg.Store.ClaimInstance(rctx, n.self(), n.cfg.TTL, false)
	switch {
	case err == nil:
		if !c.Continued {
			n.log.Warn("cluster: the lease had expired; recording this instance's connections again",
				"unrenewed_for", time.Since(n.lastRenewed).Round(time.Millisecond))
			if n.cfg.OnLapse != nil {
				n.cfg.OnLapse()
			}
		}
		n.lastRenewed = time.Now()
	case errors.Is(err, store.ErrConflict):
		n.log.Error("cluster: another process took over this instance's ID; requests for devices connected here are no longer forwarded to it",
			"holder_addr", c.Addr, "holder_incarnation", c.Incarnation)
	case ctx.Err() != nil:
	default:
		level := slog.LevelWarn
		if time.Since(n.lastRenewed) > n.cfg.TTL {
			level = slog.LevelError // other instances treat our devices as disconnected
		}
		n.log.Log(ctx, level, "cluster: renewing the lease failed", "err", err,
			"unrenewed_for", time.Since(n.lastRenewed).Round(time.Millisecond), "lease", n.cfg.TTL)
	}
}

// reap clears expired leases (and, with orphans, records naming no lease).
func (n *Node) reap(ctx context.Context, orphans bool) {
	rctx, cancel := context.WithTimeout(ctx, n.cfg.Renew)
	defer cancel()
	now := time.Now()
	insts, devs, err := n.cfg.Store.ReapInstances(rctx, now)
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("cluster: reaping expired leases failed", "err", err)
		}
		return
	}
	if insts > 0 {
		n.log.Info("cluster: instances stopped renewing their lease; their devices are marked disconnected", "instances", insts, "devices", devs)
	}
	if !orphans {
		return
	}
	// Records written within the last TTL may belong to an instance
	// whose lease row is being created: leave them to the next sweep.
	k, err := n.cfg.Store.ReapOrphans(rctx, now, now.Add(-n.cfg.TTL))
	if err != nil {
		if ctx.Err() == nil {
			n.log.Warn("cluster: reaping orphaned connection records failed", "err", err)
		}
		return
	}
	if k > 0 {
		n.log.Info("cluster: devices recorded connected to an instance without a lease marked disconnected", "devices", k)
	}
}

// Leave releases the lease on graceful shutdown: the devices still recorded
// as connected here are marked disconnected and the lease row is deleted,
// so peers stop forwarding at once instead of after the lease expires.
func (n *Node) Leave(ctx context.Context) error {
	k, err := n.cfg.Store.ReleaseInstance(ctx, n.cfg.ID, n.incarnation, time.Now())
	if err != nil {
		return fmt.Errorf("cluster: releasing the lease: %w", err)
	}
	n.log.Info("cluster: left", "devices_disconnected", k)
	return nil
}
