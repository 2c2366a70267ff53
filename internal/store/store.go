package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Errors returned by every implementation. Callers test them with errors.Is.
var (
	// ErrNotFound: no object with that key in that tenant.
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: an object with that key (or unique field) already exists.
	ErrDuplicate = errors.New("already exists")
	// ErrConflict: the version given does not match the stored version.
	ErrConflict = errors.New("version conflict")
	// ErrInUse: the object is referenced by another object and cannot be deleted.
	ErrInUse = errors.New("in use")
	// ErrMissingReference: the object refers to an object that does not exist.
	ErrMissingReference = errors.New("missing reference")
)

// RefError details ErrInUse and ErrMissingReference: which kind of object refers
// or is referred to, and its name.
//
// For ErrInUse, Kind and Name are the referring object (e.g. Kind "profile",
// Name the first such profile by name). For ErrMissingReference, they are the
// missing object as the caller named it (e.g. Kind "wireless"); when several
// wifi or proxy links are missing, Name lists them comma-separated, in the
// order given. Kind and Name may be empty when the database itself caught a
// reference that appeared or vanished concurrently.
type RefError struct {
	Err  error  // ErrInUse or ErrMissingReference
	Kind string // "profile", "wireless", "ciraconfig", "ieee8021x", "proxy", "domain"
	Name string
}

func (e *RefError) Error() string { return fmt.Sprintf("%v: %s %s", e.Err, e.Kind, e.Name) }
func (e *RefError) Unwrap() error { return e.Err }

// Page selects a window of a list ordered by name.
type Page struct {
	Top  int // at most this many; 0 means none
	Skip int
}

// DeviceFilter selects devices for listing (MPS semantics: the first non-empty
// of Hostname, FriendlyName, Tags applies).
type DeviceFilter struct {
	Hostname     string
	FriendlyName string
	Tags         []string
	TagsMatchAll bool  // AND (true) or OR (false)
	Connected    *bool // filter on ConnectionStatus
}

// DeviceConnection is a CIRA connection change of a device.
type DeviceConnection struct {
	Connected bool
	Instance  string    // the amtd instance holding (or releasing) the connection
	At        time.Time // when it connected or disconnected
	// LastSeen, when set, is recorded too (the last keepalive, on a
	// disconnect; kept in memory while connected).
	LastSeen *time.Time
}

// DeviceConnectionChange is a DeviceConnection of one device.
type DeviceConnectionChange struct {
	GUID string
	DeviceConnection
}

// Store is amtd's repository. Implementations are safe for concurrent use.
// Lookups by name are case-insensitive and scoped to the tenant.
//
// Lists are never nil (an empty page is an empty slice), and neither are the
// slice fields of returned objects (Tags, LinkPolicy, WifiConfigs, …). A Page
// with Top 0 returns nothing. References (CIRAConfigName, wifi links, …) come
// back with the referenced object's stored name.
//
// Create sets Version to 1. Update stores the object if its Version equals the
// stored one (else ErrConflict) and sets Version to the new stored version.
type Store interface {
	// Dialect is "SQLITE" or "POSTGRES".
	Dialect() string
	Ping(ctx context.Context) error
	Close() error

	ListCIRAConfigs(ctx context.Context, tenant string, p Page) ([]CIRAConfig, error)
	CountCIRAConfigs(ctx context.Context, tenant string) (int, error)
	GetCIRAConfig(ctx context.Context, tenant, name string) (*CIRAConfig, error)
	CreateCIRAConfig(ctx context.Context, c *CIRAConfig) error
	UpdateCIRAConfig(ctx context.Context, c *CIRAConfig) error
	DeleteCIRAConfig(ctx context.Context, tenant, name string) error // ErrInUse (RefError) when a profile uses it

	ListDomains(ctx context.Context, tenant string, p Page) ([]Domain, error)
	CountDomains(ctx context.Context, tenant string) (int, error)
	GetDomain(ctx context.Context, tenant, name string) (*Domain, error)
	GetDomainBySuffix(ctx context.Context, tenant, suffix string) (*Domain, error)
	CreateDomain(ctx context.Context, d *Domain) error // ErrDuplicate on name or suffix
	UpdateDomain(ctx context.Context, d *Domain) error
	DeleteDomain(ctx context.Context, tenant, name string) error

	ListProfiles(ctx context.Context, tenant string, p Page) ([]Profile, error)
	CountProfiles(ctx context.Context, tenant string) (int, error)
	GetProfile(ctx context.Context, tenant, name string) (*Profile, error)
	CreateProfile(ctx context.Context, p *Profile) error // ErrMissingReference (RefError) for unknown links
	UpdateProfile(ctx context.Context, p *Profile) error // replaces wifi/proxy links
	DeleteProfile(ctx context.Context, tenant, name string) error

	ListWirelessConfigs(ctx context.Context, tenant string, p Page) ([]WirelessConfig, error)
	CountWirelessConfigs(ctx context.Context, tenant string) (int, error)
	GetWirelessConfig(ctx context.Context, tenant, name string) (*WirelessConfig, error)
	CreateWirelessConfig(ctx context.Context, w *WirelessConfig) error
	UpdateWirelessConfig(ctx context.Context, w *WirelessConfig) error
	DeleteWirelessConfig(ctx context.Context, tenant, name string) error // ErrInUse when a profile uses it

	ListIEEE8021xConfigs(ctx context.Context, tenant string, p Page) ([]IEEE8021xConfig, error)
	CountIEEE8021xConfigs(ctx context.Context, tenant string) (int, error)
	GetIEEE8021xConfig(ctx context.Context, tenant, name string) (*IEEE8021xConfig, error)
	CreateIEEE8021xConfig(ctx context.Context, c *IEEE8021xConfig) error
	UpdateIEEE8021xConfig(ctx context.Context, c *IEEE8021xConfig) error
	DeleteIEEE8021xConfig(ctx context.Context, tenant, name string) error // ErrInUse (Kind "profile" or "wireless")

	ListProxyConfigs(ctx context.Context, tenant string, p Page) ([]ProxyConfig, error)
	CountProxyConfigs(ctx context.Context, tenant string) (int, error)
	GetProxyConfig(ctx context.Context, tenant, name string) (*ProxyConfig, error)
	CreateProxyConfig(ctx context.Context, c *ProxyConfig) error // ErrDuplicate on name or (address, port)
	UpdateProxyConfig(ctx context.Context, c *ProxyConfig) error // no version check (RPS)
	DeleteProxyConfig(ctx context.Context, tenant, name string) error

	// Devices. GUIDs are unique across tenants.
	ListDevices(ctx context.Context, tenant string, f DeviceFilter, p Page) ([]Device, error)
	CountDevices(ctx context.Context, tenant string, f DeviceFilter) (int, error)
	GetDevice(ctx context.Context, guid string) (*Device, error) // any tenant; callers check TenantID
	// PutDevice inserts d or replaces the whole stored record (callers merge),
	// and sets d.GUID (lower-cased), CreatedAt and UpdatedAt. ErrDuplicate
	// when the GUID is stored under another tenant.
	// PutDevice inserts a device, or replaces the provisioning and
	// management fields of the stored record of the same GUID and tenant.
	// The connection fields (ConnectionStatus, MPSInstance, LastConnected,
	// LastSeen, LastDisconnected) are only written on insert; afterwards
	// they belong to SetDeviceConnection, and d receives the stored values.
	PutDevice(ctx context.Context, d *Device) (created bool, err error)
	// SetDeviceConnection records a CIRA connection change of a device
	// without touching its other fields (no write per keepalive: callers
	// report connects and disconnects). A disconnect only applies while the
	// record still names c.Instance as the owner, so an instance that lost a
	// device to another one cannot mark it disconnected. ErrNotFound when
	// no such device (or, for a disconnect, not owned by c.Instance).
	SetDeviceConnection(ctx context.Context, guid string, c DeviceConnection) error
	// SetDeviceConnections applies several changes, in order, in one
	// transaction; changes for missing or not-owned devices are skipped.
	SetDeviceConnections(ctx context.Context, changes []DeviceConnectionChange) error
	DeleteDevice(ctx context.Context, guid string) error // keeps the device's provisioning events
	DeviceTags(ctx context.Context, tenant string) ([]string, error)

	// Provisioning log.
	AppendEvent(ctx context.Context, e *ProvisioningEvent) error // sets Seq and Time if zero
	ListEvents(ctx context.Context, guid string, p Page) ([]ProvisioningEvent, error)

	// Sealed secrets for the local secret backend: opaque ciphertext by key.
	PutSealed(ctx context.Context, key string, blob []byte) error
	CreateSealed(ctx context.Context, key string, blob []byte) error // ErrDuplicate when present
	GetSealed(ctx context.Context, key string) ([]byte, error)       // ErrNotFound
	DeleteSealed(ctx context.Context, key string) error              // nil when absent

	// Settings: small non-secret values (e.g. the admin password hash).
	GetSetting(ctx context.Context, key string) (string, error) // ErrNotFound
	PutSetting(ctx context.Context, key, value string) error

	// Legacy provisioning: allow-list, hello events, PSK pairs (legacy.go).
	Legacy

	// Instance leases of several instances sharing the database (instances.go).
	Instances
}
