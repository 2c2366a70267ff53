// Package hostif is the contract between a simulated device's firmware state
// (package sim/firmware) and its host interface (package sim/mei): what the
// PTHI and watchdog MEI clients can read and change (spec/heci.md §4).
package hostif

// PTHI status codes used by the firmware side (spec/heci.md §3).
const (
	StatusSuccess          uint32 = 0
	StatusInternalError    uint32 = 1
	StatusNotReady         uint32 = 2
	StatusInvalidAMTMode   uint32 = 3
	StatusInvalidMsgLength uint32 = 4
	StatusNotPermitted     uint32 = 16
	StatusInvalidParameter uint32 = 36
	StatusInvalidHandle    uint32 = 2053
	StatusNotFound         uint32 = 2068
)

// VersionEntry is one GetCodeVersions entry, e.g. {"AMT", "16.1.25"}.
type VersionEntry struct {
	Description string
	Version     string
}

// LANSettings is the GetLANInterfaceSettings answer for one interface.
type LANSettings struct {
	Enabled     bool
	IPv4        [4]byte // first octet first
	DHCPEnabled bool
	DHCPMode    uint8 // 1 active, otherwise passive
	LinkUp      bool
	MAC         [6]byte
}

// CertHashEntry is one entry of the firmware's trusted root hash table.
type CertHashEntry struct {
	Handle    uint32
	IsDefault bool
	IsActive  bool
	Algorithm uint8  // 1 SHA-1, 2 SHA-256, 3 SHA-384
	Hash      []byte // 20, 32 or 48 bytes
	Name      string
}

// Firmware is what the host interface needs from a simulated device. All
// methods are safe for concurrent use; changes are persisted by the firmware.
type Firmware interface {
	// UUID in SMBIOS byte order (first three fields little-endian).
	UUID() [16]byte
	// ControlMode: 0 pre-provisioning, 1 CCM, 2 ACM.
	ControlMode() uint32
	// ProvisioningState: 0 PRE, 1 IN, 2 POST.
	ProvisioningState() uint32
	CodeVersions() (bios string, entries []VersionEntry)
	// LocalSystemAccount is the per-boot LSA (e.g. "$$OsAdmin", random password).
	LocalSystemAccount() (username, password string)
	// LANInterface: index 0 wired, 1 wireless; ok false when absent.
	LANInterface(index uint32) (s LANSettings, ok bool)
	CertHashes() []CertHashEntry
	PKIDNSSuffix() string
	// Unprovision (PTHI): allowed in CCM only; returns a PTHI status.
	Unprovision() uint32
	// StartConfigurationHBased (AMT 19+ TLS-enforced ACM): returns status and
	// the hash of AMT's own TLS leaf certificate.
	StartConfigurationHBased(hashAlg uint8, serverCertHash []byte) (status uint32, amtHashAlg uint8, amtCertHash []byte)
	StopConfiguration() uint32
	// WatchdogFlags is the IsChangeToAMTEnabled flag byte (0x40 = TLS enforced).
	WatchdogFlags() uint8
}
