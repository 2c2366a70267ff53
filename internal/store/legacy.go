package store

import (
	"context"
	"time"
)

// Legacy provisioning data (spec/legacy.md): the allow-list of expected
// machines, the record of hello messages received on the hello port, and the
// PSK (PID/PPS) pairs amtd generated. The PPS of a pair lives in the secret
// store, never in these rows.

// LegacyDevice is one expected machine on the legacy-provisioning allow-list
// (the ConfigMgr "import computer information" list): a hello from a UUID
// that is not on the list is refused.
type LegacyDevice struct {
	GUID        string // lower-case 8-4-4-4-12; unique across tenants
	TenantID    string
	Hostname    string // AMT host name to set ("" keeps the device's)
	DNSSuffix   string // AMT domain name to set; selects the provisioning certificate
	ProfileName string // the AMT profile the device is configured with
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// HelloHash is one trusted-root hash carried by a PKI hello.
type HelloHash struct {
	Type int    `json:"type"` // 1 SHA-1, 2 SHA-256, 3 SHA-384
	Hash string `json:"hash"` // lower-case hex
}

// HelloEvent is one hello message as received, with what amtd did with it.
type HelloEvent struct {
	ID                  int64 // assigned by the store, increasing
	TenantID            string
	GUID                string // lower-case
	SourceIP            string
	Version             int   // 2 PSK, 3 PKI
	RetryCount          int64 // 0–14 on a normal schedule
	AdminCredentialsSet bool  // the MEBx password was changed from "admin"
	Hashes              []HelloHash
	PID                 string // version 2 only
	ReceivedAt          time.Time
	Outcome             string // e.g. "accepted", "unknown-uuid", "provisioned", "failed"
	Detail              string // never a secret
}

// HelloFilter selects hello events. Empty fields select everything.
type HelloFilter struct {
	GUID     string
	SourceIP string
}

// PSKPair is a generated PID/PPS pair. The PPS is in the secret store entry
// named by SecretID (see package legacy/psk).
type PSKPair struct {
	PID        string // 8 characters A–Z0–9, unique across tenants
	TenantID   string
	SecretID   string
	CreatedAt  time.Time
	ExportedAt *time.Time // handed out (written to a setup.bin); nil when never
	ExportedTo string     // where it went, e.g. the setup.bin file name
	UsedBy     string     // GUID of the device that authenticated with it
	UsedAt     *time.Time
}

// PSKFilter selects pairs.
type PSKFilter struct {
	// Available selects pairs never exported and never used.
	Available bool
}

// Legacy is the legacy-provisioning part of Store.
type Legacy interface {
	// PutLegacyDevices inserts each device or replaces the stored entry of
	// the same GUID and tenant, all or nothing; it sets GUID (lower-cased),
	// CreatedAt and UpdatedAt. ErrDuplicate when a GUID is on another
	// tenant's list (nothing is stored then).
	PutLegacyDevices(ctx context.Context, devs []LegacyDevice) error
	GetLegacyDevice(ctx context.Context, guid string) (*LegacyDevice, error) // any tenant
	ListLegacyDevices(ctx context.Context, tenant string, p Page) ([]LegacyDevice, error)
	CountLegacyDevices(ctx context.Context, tenant string) (int, error)
	DeleteLegacyDevice(ctx context.Context, tenant, guid string) error

	// AppendHelloEvent stores e and sets ID (and ReceivedAt when zero). When
	// keep > 0, only the newest keep events (all tenants) are retained.
	AppendHelloEvent(ctx context.Context, e *HelloEvent, keep int) error
	// SetHelloOutcome updates the outcome of a stored event; ErrNotFound
	// when it is gone (pruned).
	SetHelloOutcome(ctx context.Context, id int64, outcome, detail string) error
	// ListHelloEvents lists a tenant's events, newest first.
	ListHelloEvents(ctx context.Context, tenant string, f HelloFilter, p Page) ([]HelloEvent, error)
	CountHelloEvents(ctx context.Context, tenant string, f HelloFilter) (int, error)

	// CreatePSKPairs inserts the pairs, all or nothing (ErrDuplicate on a
	// PID that exists); sets CreatedAt.
	CreatePSKPairs(ctx context.Context, pairs []PSKPair) error
	GetPSKPair(ctx context.Context, pid string) (*PSKPair, error) // any tenant
	// ListPSKPairs lists a tenant's pairs by PID.
	ListPSKPairs(ctx context.Context, tenant string, f PSKFilter, p Page) ([]PSKPair, error)
	CountPSKPairs(ctx context.Context, tenant string, f PSKFilter) (int, error)
	// TakePSKPairs marks up to n available pairs of the tenant (oldest
	// first) as exported to "to" at "at" and returns them; fewer when not
	// enough are available. Concurrent callers never get the same pair.
	TakePSKPairs(ctx context.Context, tenant string, n int, to string, at time.Time) ([]PSKPair, error)
	// MarkPSKPairUsed records that device guid authenticated with the pair.
	MarkPSKPairUsed(ctx context.Context, pid, guid string, at time.Time) error
	DeletePSKPair(ctx context.Context, tenant, pid string) error
}
