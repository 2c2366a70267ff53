package store

import (
	"context"
	"time"
)

// Instance leases (spec/mps.md §9). Several amtd instances may share one
// database; each holds a lease row that it renews periodically. A CIRA
// connection lives in one instance, named by the device record's
// MPSInstance; the lease tells the other instances whether that owner is
// still alive (and where to forward requests for the device).
//
// Lease times are measured by the database's clock on PostgreSQL, so the
// instances' clocks need not agree; SQLite uses the process clock.

// Instance is the lease row of one running amtd instance.
type Instance struct {
	ID string // --instance-id: the name device records carry in MPSInstance
	// Addr is the base URL other instances reach this one's HTTP API at
	// (e.g. "http://10.0.0.5:8181"); empty when unknown (no forwarding).
	Addr string
	// Incarnation is random per process start: a renewal carries the same
	// one, a restart (or another process using the same ID) a new one.
	Incarnation string
	StartedAt   time.Time // when this incarnation first claimed the lease
	ExpiresAt   time.Time
}

// InstanceClaim is the outcome of ClaimInstance.
type InstanceClaim struct {
	// Instance is the stored lease after the claim; with ErrConflict, the
	// live lease of the other incarnation holding the ID.
	Instance
	// Continued reports that this incarnation's lease was still live when
	// renewed: no other instance can have reaped its devices in between.
	// False for a first claim, a takeover, or a renewal after the lease
	// had expired or been reaped.
	Continued bool
}

// Instances is the instance-lease part of Store.
type Instances interface {
	// ClaimInstance creates or renews the lease of inst.ID (Addr and
	// Incarnation from inst) to expire ttl from now. It succeeds when no
	// lease of that ID exists, when the stored one has inst's Incarnation
	// (a renewal), when it has expired, or when takeOver is set. Otherwise
	// it returns ErrConflict and the live lease of the other incarnation.
	ClaimInstance(ctx context.Context, inst Instance, ttl time.Duration, takeOver bool) (InstanceClaim, error)
	// ReleaseInstance ends the lease of (id, incarnation) on graceful
	// shutdown: the devices still naming id are recorded disconnected at
	// at, and the lease row is deleted. Nothing happens (0, nil) when the
	// stored lease belongs to another incarnation or does not exist.
	ReleaseInstance(ctx context.Context, id, incarnation string, at time.Time) (devices int, err error)
	// DisconnectInstanceDevices records every device naming id as its
	// owner disconnected at at (an instance starting: what its previous
	// incarnation recorded is stale). It returns how many changed.
	DisconnectInstanceDevices(ctx context.Context, id string, at time.Time) (int, error)
	// ReapInstances deletes the expired leases and records the devices of
	// those instances disconnected at at. Concurrent reapers on PostgreSQL
	// skip each other's rows.
	ReapInstances(ctx context.Context, at time.Time) (instances, devices int, err error)
	// ReapOrphans records disconnected at at the devices that name an
	// instance holding no lease at all (a write that landed after its
	// instance was reaped, or a record from a version without leases) and
	// connected before connectedBefore (a grace period for instances that
	// are just starting). It scans the connected devices: run it rarely.
	ReapOrphans(ctx context.Context, at, connectedBefore time.Time) (int, error)
	// ListInstances returns the live leases, ordered by ID.
	ListInstances(ctx context.Context) ([]Instance, error)
	// DeviceOwner returns the live instance holding the device's CIRA
	// connection, in one indexed query. ErrNotFound when the device is not
	// recorded connected, or its owner's lease has expired.
	DeviceOwner(ctx context.Context, guid string) (*Instance, error)
}
