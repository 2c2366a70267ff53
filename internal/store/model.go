// Package store holds amtd's persistent state behind one repository interface,
// implemented for embedded SQLite and for PostgreSQL.
//
// Names (profile, domain, config names) are case-insensitive within a tenant and
// keep the case they were created with. Every secret (passwords, passphrases,
// PFX files, keys) lives in the secret store (package secrets), never in these
// rows: a row only carries SecretID, the opaque key of its secret entry.
package store

import "time"

// CIRAConfig is an MPS (CIRA) server configuration given to devices.
type CIRAConfig struct {
	TenantID            string
	Name                string // configName
	MPSServerAddress    string
	MPSPort             int
	Username            string
	CommonName          string
	ServerAddressFormat int // 3 IPv4, 4 IPv6, 201 FQDN
	AuthMethod          int // 1 mutual TLS, 2 username/password
	MPSRootCertificate  string
	ProxyDetails        string
	SecretID            string // secret entry holding MPS_PASSWORD, "" when none
	Version             int64
}

// Domain is a provisioning certificate for a DNS suffix (ACM activation).
type Domain struct {
	TenantID       string
	Name           string // profileName in the RPS API
	DomainSuffix   string // unique per tenant, case-insensitive
	StorageFormat  string // "raw" or "string"
	ExpirationDate time.Time
	SecretID       string // secret entry holding the PFX and its password
	Version        int64
}

// ProfileWifi links a profile to a wireless config with a priority.
type ProfileWifi struct {
	Name     string
	Priority int
}

// ProfileProxy links a profile to a proxy config with a priority.
type ProfileProxy struct {
	Name     string
	Priority int
}

// Profile is an AMT profile: how a device is activated and configured.
type Profile struct {
	TenantID                   string
	Name                       string
	Activation                 string // "ccmactivate" or "acmactivate"
	GenerateRandomPassword     bool
	GenerateRandomMEBxPassword bool
	CIRAConfigName             *string
	Tags                       []string
	DHCPEnabled                bool
	IPSyncEnabled              *bool
	LocalWifiSyncEnabled       *bool
	UEFIWifiSyncEnabled        *bool
	TLSMode                    *int
	TLSSigningAuthority        *string
	UserConsent                string
	IDEREnabled                bool
	KVMEnabled                 bool
	SOLEnabled                 bool
	IEEE8021xProfileName       *string
	WifiConfigs                []ProfileWifi  // ordered by priority
	ProxyConfigs               []ProfileProxy // ordered by priority
	// PowerPolicy (amtd extension) is the AMT power package to select: the
	// AMT_SystemPowerScheme Description or ElementName as the device reports
	// it, or its SchemeGUID (base64 as AMT reports it, or the GUID's text
	// form); "" leaves the device's power package as it is.
	PowerPolicy string
	// UserACLs (amtd extension) are additional AMT digest users; their
	// passwords are in the secret entry (secrets.UserACLPasswordField).
	UserACLs []UserACL
	SecretID string // secret entry: AMT_PASSWORD, MEBX_PASSWORD, USER_ACL_PASSWORD:<user>, TLS CA material
	Version  int64
}

// UserACL is an additional AMT digest user a profile creates
// (AMT_AuthorizationService.AddUserAclEntryEx). The password is not here.
type UserACL struct {
	Username string `json:"username"`
	// Realms are AMT realm numbers (AMT_AuthorizationService RealmValues,
	// e.g. 2 redirection, 3 PT administration, 5 remote control).
	Realms []int `json:"realms"`
	// AccessPermission: 0 local only, 1 network only, 2 both.
	AccessPermission int `json:"accessPermission"`
}

// WirelessConfig is a Wi-Fi profile.
type WirelessConfig struct {
	TenantID             string
	Name                 string
	AuthenticationMethod int // 4 WPA PSK, 5 WPA 802.1x, 6 WPA2 PSK, 7 WPA2 802.1x
	EncryptionMethod     int // 3 TKIP, 4 CCMP
	SSID                 string
	LinkPolicy           []int
	IEEE8021xProfileName *string
	SecretID             string // secret entry holding PSK_PASSPHRASE
	Version              int64
}

// IEEE8021xConfig is an 802.1x profile for the wired or the wireless interface.
type IEEE8021xConfig struct {
	TenantID               string
	Name                   string
	AuthenticationProtocol int
	PXETimeout             *int
	WiredInterface         bool
	Version                int64
}

// ProxyConfig is an HTTP proxy AMT uses to reach the MPS.
type ProxyConfig struct {
	TenantID         string
	Name             string
	Address          string
	InfoFormat       int // 3 IPv4, 4 IPv6, 201 FQDN
	Port             int
	NetworkDNSSuffix string
	Version          int64
}

// DeviceInfo is the firmware and activation summary of a device.
type DeviceInfo struct {
	FWVersion         string     `json:"fwVersion"`
	FWBuild           string     `json:"fwBuild"`
	FWSku             string     `json:"fwSku"`
	CurrentMode       string     `json:"currentMode"`
	Features          string     `json:"features"`
	IPAddress         string     `json:"ipAddress"`
	LastUpdated       *time.Time `json:"lastUpdated,omitempty"`
	ActivatedAt       *time.Time `json:"activatedAt,omitempty"`
	LastProvisionedAt *time.Time `json:"lastProvisionedAt,omitempty"`
	// Status is the per-component provisioning result, as RPS sends it to MPS.
	Status map[string]any `json:"status,omitempty"`
}

// Device is a managed AMT device (the MPS device record).
type Device struct {
	GUID             string // lower-case 8-4-4-4-12
	TenantID         string
	Hostname         string
	FriendlyName     string
	DNSSuffix        string
	MPSUsername      string
	Tags             []string
	ProfileName      string
	ConnectionStatus bool
	MPSInstance      *string
	LastConnected    *time.Time
	LastSeen         *time.Time
	LastDisconnected *time.Time
	DeviceInfo       *DeviceInfo
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// ProvisioningEvent is one line of a device's provisioning log.
type ProvisioningEvent struct {
	GUID     string
	TenantID string
	Seq      int64 // assigned by the store, increasing per device
	Time     time.Time
	Session  string // id of the session (activation run) that wrote it
	Step     string // e.g. "activate.ccm", "network.wired", "cira.addmpserver"
	Result   string // "ok", "error", "skipped", "info"
	Detail   string // human-readable; never a secret
}
