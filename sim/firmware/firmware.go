// Package firmware is the state of one simulated Intel AMT device: identity,
// provisioning state and control mode, credentials, network, certificate
// store, TLS, CIRA, Wi-Fi, 802.1x, redirection, logs. It enforces the
// firmware's own rules (activation checks, unprovisioning) and persists the
// state as one readable JSON file per device, rewritten atomically.
//
// Firmware implements hostif.Firmware for the MEI side; the WS-MAN side
// (package sim/wsman) reads and changes the state through View and Update
// and the provisioning methods.
package firmware

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/amthashes"
	"github.com/amtd-project/amtd/sim/hostif"
)

// Defaults for a current AMT 16.1 Pro Corporate device.
const (
	DefaultVersion = "16.1.25"
	DefaultBuild   = "2050"
	DefaultSKU     = "16392"
	LSAUsername    = "$$OsAdmin"
	// MaxUserHashes is how many user-defined root hashes the MEBx allows.
	MaxUserHashes = 3
)

// Config describes a device. Identity fields (UUID, Realm, MAC…) are used
// only when the device is created; the marked fields also override a loaded
// device, as the command line would after a restart.
type Config struct {
	// Path of the JSON state file; "" keeps the state in memory only.
	Path string
	// UUID in canonical text form; random when empty.
	UUID string
	// Version, Build, SKU: firmware identity (override on load when set).
	Version, Build, SKU string
	// TLSEnforced overrides the default (AMT major version >= 19).
	TLSEnforced *bool
	// DNSSuffix is what DHCP option 15 gives (override on load when set).
	DNSSuffix string
	// PKIDNSSuffix is the MEBx/setup.bin PKI DNS suffix (override on load when set).
	PKIDNSSuffix string
	// Hostname is AMT's host name (override on load when set).
	Hostname string
	// TrustHashes are user-defined root hashes (hex SHA-1/256/384), at most
	// three; they behave as if entered in the MEBx and are re-applied after a
	// full unprovision (override on load when non-nil).
	TrustHashes []string
	// Include24thHash adds the unidentified entry 20 of the 24-hash firmware.
	Include24thHash bool
	// MAC of the wired port (aa:bb:cc:dd:ee:ff or aa-bb-…); random when empty.
	MAC string
	// IPv4 of the wired port; default 192.168.0.x (x random).
	IPv4 string
	// NoWireless removes the wireless adapter.
	NoWireless bool
	// Realm overrides the random realm at creation ("Digest:" + 32 hex).
	Realm string
	// SetupPasswords are the digest passwords of "admin" accepted in a
	// legacy setup session (legacy.md §7.2: unverified on real firmware);
	// nil means the empty password only.
	SetupPasswords []string

	// Now is the system clock (default time.Now).
	Now func() time.Time
	// Rand is the randomness source (default crypto/rand).
	Rand io.Reader
	// GenerateKey creates RSA keys (default rsa.GenerateKey with Rand).
	// Tests and fleets may plug in a pool.
	GenerateKey func(bits int) (*rsa.PrivateKey, error)
	Logger      *slog.Logger
}

// Firmware is one simulated device's firmware. Safe for concurrent use.
type Firmware struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	rand io.Reader

	mu    sync.Mutex
	st    State
	dirty bool

	// volatile (per boot) state
	lsaPassword string
	nonce       []byte // last ConfigurationNonce reported by Get
	chain       []chainCert
	chainStatus int // 0 not started, 1 in progress, 2 complete
	setupHash   []byte
	setupAlg    uint8
	selfTLS     *selfCert
	optIn       optInRuntime
	redir       redirRuntime
	legacy      legacyRuntime
	hooks       []func(Event)
}

var _ hostif.Firmware = (*Firmware)(nil)

// Event tells listeners (the device's network side) what changed.
type Event int

const (
	// EventTLSChanged: committed TLS settings or certificate changed.
	EventTLSChanged Event = iota + 1
	// EventProvisioningChanged: control mode or provisioning state changed.
	EventProvisioningChanged
	// EventRemoteAccessChanged: the CIRA configuration changed (MPS servers,
	// remote access policies, environment detection, user-initiated
	// connection state, trusted roots).
	EventRemoteAccessChanged
	// EventLegacySetupChanged: legacy setup started, stopped, ended by
	// CommitChanges, or its window opened or closed (LegacyStatus).
	EventLegacySetupChanged
	// EventLegacyLog: an entry was added to the legacy setup log.
	EventLegacyLog
)

// Open loads the device from cfg.Path, or creates it (and writes the file)
// when the file does not exist.
func Open(cfg Config) (*Firmware, error) {
	f := &Firmware{cfg: cfg, log: cfg.Logger, now: cfg.Now, rand: cfg.Rand}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now = time.Now
	}
	if f.rand == nil {
		f.rand = rand.Reader
	}
	loaded := false
	if cfg.Path != "" {
		data, err := os.ReadFile(cfg.Path)
		switch {
		case err == nil:
			if err := json.Unmarshal(data, &f.st); err != nil {
				return nil, fmt.Errorf("firmware: parse %s: %w", cfg.Path, err)
			}
			if f.st.SchemaVersion != SchemaVersion {
				return nil, fmt.Errorf("firmware: %s: schema version %d, want %d", cfg.Path, f.st.SchemaVersion, SchemaVersion)
			}
			loaded = true
		case errors.Is(err, os.ErrNotExist):
		default:
			return nil, fmt.Errorf("firmware: %w", err)
		}
	}
	if !loaded {
		if err := f.factory(); err != nil {
			return nil, err
		}
	}
	f.fillDefaults()
	if err := f.applyOverrides(); err != nil {
		return nil, err
	}
	if err := f.boot(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dirty = true
	if err := f.saveLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

// DevicePath is the conventional state file of a device in a fleet folder:
// DIR/<uuid>/firmware.json (next to DIR/<uuid>/mei.sock).
func DevicePath(dir, uuid string) string {
	return filepath.Join(dir, uuid, "firmware.json")
}

// factory initialises a new device.
func (f *Firmware) factory() error {
	cfg := f.cfg
	s := &f.st
	s.SchemaVersion = SchemaVersion
	s.UUID = strings.ToLower(cfg.UUID)
	if s.UUID == "" {
		u, err := f.randomUUID()
		if err != nil {
			return err
		}
		s.UUID = u
	}
	if _, err := ParseUUID(s.UUID); err != nil {
		return err
	}
	s.Versions = Versions{AMT: DefaultVersion, Build: DefaultBuild, SKU: DefaultSKU}
	s.Realm = cfg.Realm
	if s.Realm == "" {
		b := make([]byte, 16)
		if _, err := io.ReadFull(f.rand, b); err != nil {
			return err
		}
		s.Realm = "Digest:" + strings.ToUpper(hex.EncodeToString(b))
	}
	if !ValidRealm(s.Realm) {
		return fmt.Errorf("firmware: invalid realm %q", s.Realm)
	}
	mac := cfg.MAC
	if mac == "" {
		b := make([]byte, 6)
		if _, err := io.ReadFull(f.rand, b); err != nil {
			return err
		}
		b[0] = b[0]&^0x01 | 0x02 // unicast, locally administered
		mac = fmt.Sprintf("%02x-%02x-%02x-%02x-%02x-%02x", b[0], b[1], b[2], b[3], b[4], b[5])
	}
	mac = strings.ToLower(strings.ReplaceAll(mac, ":", "-"))
	ip := cfg.IPv4
	if ip == "" {
		b := make([]byte, 1)
		if _, err := io.ReadFull(f.rand, b); err != nil {
			return err
		}
		ip = fmt.Sprintf("192.168.0.%d", 2+int(b[0])%250)
	}
	s.Network = Network{
		AMTNetworkEnabled:       1,
		SharedFQDN:              true,
		PingResponseEnabled:     true,
		RmcpPingResponseEnabled: true,
		DDNSUpdateByDHCPServer:  true,
		DDNSTTL:                 900,
		DDNSPeriodicInterval:    1440,
		IdleWakeTimeout:         65535,
		Wired: Port{
			MAC: mac, LinkUp: true, DHCPEnabled: true, IpSyncEnabled: true,
			SharedMAC: true, SharedDynamicIP: true,
			IPAddress: ip, SubnetMask: "255.255.255.0", DefaultGateway: gatewayOf(ip), PrimaryDNS: gatewayOf(ip),
		},
	}
	if !cfg.NoWireless {
		s.Network.Wireless = &Port{
			MAC: "00-00-00-00-00-00", DHCPEnabled: true, SharedMAC: true,
			ConsoleTcpMaxRetransmissions: 5, LinkPreference: 2, LinkControl: 2, WLANLinkProtectionLevel: 1,
		}
	}
	s.CertHashes = defaultHashes(cfg.Include24thHash)
	s.PowerState = 2
	f.resetConfiguration()
	return nil
}

// resetConfiguration sets everything Unprovision clears to factory values.
func (f *Firmware) resetConfiguration() {
	s := &f.st
	s.ControlMode = ModePre
	s.ProvisioningState = StatePre
	s.ActivatedAt = nil
	s.Legacy.Started = false
	s.Legacy.OTP = nil
	f.legacy.open = false
	s.Admin = AdminAccount{}
	s.Users = nil
	s.Certs = nil
	s.Keys = nil
	s.TLS = TLSState{
		Remote:         TLSSetting{},
		Local:          TLSSetting{AcceptNonSecureConnections: true},
		CredentialCert: -1,
		Committed:      TLSCommitted{Local: TLSSetting{AcceptNonSecureConnections: true}, Cert: -1},
	}
	s.CIRA = CIRAState{UserInitiatedState: 32768}
	s.WiFi = WiFiState{PortEnabledState: 3, PortRequestedState: 3}
	s.IEEE8021x = IEEE8021xState{Wired: Wired8021x{Enabled: 3, PxeTimeout: 120}}
	s.Proxies = nil
	s.NextProxy = 0
	s.Redirection = Redirection{EnabledState: 32771, ListenerEnabled: true, KVMEnabled: true, KVMRequested: 2}
	s.OptIn = OptIn{Required: 4294967295, CodeTimeout: 120, DisplayTimeout: 300}
	s.Network.HostName = ""
	s.Network.DomainName = ""
	s.Network.HostOSFQDN = ""
	s.ClockOffsetSeconds = 0
	s.Boot = BootState{Settings: BootSettings{OptionsCleared: true}, Last: s.Boot.Last}
	s.Alarms = nil
	s.KVM = KVMSettings{}
	f.fillDefaults()
}

// fillDefaults gives factory values to settings that are zero (new devices,
// and state files written before the setting existed).
func (f *Firmware) fillDefaults() {
	s := &f.st
	if s.PowerState == 0 {
		s.PowerState = PowerOn
	}
	if s.OSPowerSaving == 0 {
		s.OSPowerSaving = OSPowerFull
	}
	if s.Boot.ConfigRole == 0 {
		s.Boot.ConfigRole = 32768
	}
	if s.Boot.ServiceState == 0 {
		s.Boot.ServiceState = 2
	}
	if s.KVM.SessionTimeout == 0 {
		s.KVM.SessionTimeout = 3
	}
	if s.KVM.OptInPolicyTimeout == 0 {
		s.KVM.OptInPolicyTimeout = 300
	}
}

// applyOverrides applies command-line style configuration to a loaded or new device.
func (f *Firmware) applyOverrides() error {
	cfg := f.cfg
	s := &f.st
	if cfg.Version != "" {
		if _, err := majorVersion(cfg.Version); err != nil {
			return err
		}
		s.Versions.AMT = cfg.Version
	}
	if cfg.Build != "" {
		s.Versions.Build = cfg.Build
	}
	if cfg.SKU != "" {
		s.Versions.SKU = cfg.SKU
	}
	if s.Versions.BIOS == "" {
		s.Versions.BIOS = "SIMAMT.86A.0042.2024.0101.1200"
	}
	major, err := majorVersion(s.Versions.AMT)
	if err != nil {
		return err
	}
	s.TLSEnforced = major >= 19
	if cfg.TLSEnforced != nil {
		s.TLSEnforced = *cfg.TLSEnforced
	}
	if cfg.DNSSuffix != "" {
		s.Network.DHCPDomain = cfg.DNSSuffix
	}
	if cfg.PKIDNSSuffix != "" {
		s.Network.PKIDNSSuffix = cfg.PKIDNSSuffix
	}
	if cfg.Hostname != "" && s.Network.HostName == "" {
		s.Network.HostName = cfg.Hostname
	}
	if cfg.TrustHashes != nil {
		if err := f.setUserHashes(cfg.TrustHashes); err != nil {
			return err
		}
	}
	return nil
}

// boot regenerates the per-boot values.
func (f *Firmware) boot() error {
	pw, err := f.randomPassword(16)
	if err != nil {
		return err
	}
	f.lsaPassword = pw
	f.nonce = nil
	f.chain = nil
	f.chainStatus = 0
	f.setupHash = nil
	if f.st.ProvisioningState == StateIn {
		if f.st.Legacy.Started {
			// legacy setup survives a restart; its hellos start again (legacy.md §4)
			f.openWindowLocked()
			f.recordLegacyLocked(LegacyRestarted, "AMT start in setup ("+f.legacyModeLocked().String()+")")
		} else {
			// an interrupted TLS host-based setup session does not survive a reboot
			f.st.ProvisioningState = StatePre
		}
	}
	return nil
}

// defaultHashes builds the default table with AMT's handle numbering:
// 0–19 defaults, 20–22 user-defined, 23–32 further defaults.
func defaultHashes(include24 bool) []CertHash {
	var out []CertHash
	handle := uint32(0)
	for _, e := range amthashes.Defaults() {
		if !e.Active && !include24 {
			continue
		}
		if handle == 20 {
			handle = 23
		}
		out = append(out, CertHash{Handle: handle, Name: e.Name, Algorithm: 2, Hash: e.SHA256, Default: true, Active: true})
		handle++
	}
	return out
}

// setUserHashes replaces the user-defined entries (handles 20–22).
func (f *Firmware) setUserHashes(hashes []string) error {
	if len(hashes) > MaxUserHashes {
		return fmt.Errorf("firmware: at most %d user hashes, got %d", MaxUserHashes, len(hashes))
	}
	s := &f.st
	s.CertHashes = slices.DeleteFunc(s.CertHashes, func(h CertHash) bool { return !h.Default })
	for i, h := range hashes {
		h = strings.ToLower(strings.TrimSpace(h))
		b, err := hex.DecodeString(h)
		if err != nil {
			return fmt.Errorf("firmware: trust hash %q: %w", h, err)
		}
		var alg uint8
		switch len(b) {
		case 20:
			alg = 1
		case 32:
			alg = 2
		case 48:
			alg = 3
		default:
			return fmt.Errorf("firmware: trust hash %q: %d bytes, want 20, 32 or 48", h, len(b))
		}
		s.CertHashes = append(s.CertHashes, CertHash{Handle: uint32(20 + i), Name: fmt.Sprintf("Custom Root %d", i+1), Algorithm: alg, Hash: h, Active: true})
	}
	slices.SortFunc(s.CertHashes, func(a, b CertHash) int { return int(a.Handle) - int(b.Handle) })
	return nil
}

// OnEvent registers a listener called (outside the lock) after relevant changes.
func (f *Firmware) OnEvent(fn func(Event)) {
	f.mu.Lock()
	f.hooks = append(f.hooks, fn)
	f.mu.Unlock()
}

func (f *Firmware) emit(ev Event) {
	f.mu.Lock()
	hooks := slices.Clone(f.hooks)
	f.mu.Unlock()
	for _, h := range hooks {
		h(ev)
	}
}

// View calls fn with the state under the lock; fn must not keep references.
func (f *Firmware) View(fn func(s *State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
}

// Snapshot returns a deep copy of the state (for tests and inspection).
func (f *Firmware) Snapshot() State {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := json.Marshal(&f.st)
	if err != nil {
		panic(err) // State is plain data
	}
	var out State
	if err := json.Unmarshal(data, &out); err != nil {
		panic(err)
	}
	return out
}

// Update calls fn with the state under the lock and persists it when fn
// returns nil. A persistence failure is returned.
func (f *Firmware) Update(fn func(s *State) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updateLocked(fn)
}

// UpdateNotify is Update followed, when fn succeeded, by the event ev to
// the listeners registered with OnEvent.
func (f *Firmware) UpdateNotify(ev Event, fn func(s *State) error) error {
	if err := f.Update(fn); err != nil {
		return err
	}
	f.emit(ev)
	return nil
}

func (f *Firmware) updateLocked(fn func(s *State) error) error {
	if err := fn(&f.st); err != nil {
		return err
	}
	f.dirty = true
	return f.saveLocked()
}

// saveLocked writes the state atomically: temp file, fsync, rename, fsync dir.
func (f *Firmware) saveLocked() error {
	if f.cfg.Path == "" || !f.dirty {
		return nil
	}
	data, err := json.MarshalIndent(&f.st, "", "  ")
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(f.cfg.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".firmware-*.tmp")
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	name := tmp.Name()
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(name, f.cfg.Path)
	}
	if werr != nil {
		os.Remove(name)
		return fmt.Errorf("firmware: save: %w", werr)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	f.dirty = false
	return nil
}

// Now is the device clock (system clock plus the offset set by time sync).
func (f *Firmware) Now() time.Time {
	f.mu.Lock()
	off := f.st.ClockOffsetSeconds
	f.mu.Unlock()
	return f.now().Add(time.Duration(off) * time.Second)
}

// SystemNow is the host clock the simulator runs on.
func (f *Firmware) SystemNow() time.Time { return f.now() }

// Rand is the device's randomness source.
func (f *Firmware) Rand() io.Reader { return f.rand }

// GenerateKey creates an RSA key with the configured generator.
func (f *Firmware) GenerateKey(bits int) (*rsa.PrivateKey, error) {
	if f.cfg.GenerateKey != nil {
		return f.cfg.GenerateKey(bits)
	}
	return rsa.GenerateKey(f.rand, bits)
}

// Logger is the device's logger.
func (f *Firmware) Logger() *slog.Logger { return f.log }

// ---- hostif.Firmware ----

// UUID in SMBIOS byte order.
func (f *Firmware) UUID() [16]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := ParseUUID(f.st.UUID)
	return b
}

// UUIDString is the canonical text form.
func (f *Firmware) UUIDString() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.UUID
}

// ControlMode: 0 pre, 1 CCM, 2 ACM.
func (f *Firmware) ControlMode() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.ControlMode
}

// ProvisioningState: 0 PRE, 1 IN, 2 POST.
func (f *Firmware) ProvisioningState() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.ProvisioningState
}

// CodeVersions is the GetCodeVersions answer.
func (f *Firmware) CodeVersions() (string, []hostif.VersionEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.st.Versions
	return v.BIOS, versionEntries(v)
}

func versionEntries(v Versions) []hostif.VersionEntry {
	return []hostif.VersionEntry{
		{Description: "Flash", Version: v.AMT},
		{Description: "Netstack", Version: v.AMT},
		{Description: "AMTApps", Version: v.AMT},
		{Description: "AMT", Version: v.AMT},
		{Description: "Sku", Version: v.SKU},
		{Description: "VendorID", Version: "8086"},
		{Description: "Build Number", Version: v.Build},
		{Description: "Recovery Version", Version: v.AMT},
		{Description: "Recovery Build Num", Version: v.Build},
		{Description: "Legacy Mode", Version: "False"},
	}
}

// SoftwareIdentity is the CIM_SoftwareIdentity list (InstanceID, VersionString).
func (f *Firmware) SoftwareIdentity() []hostif.VersionEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(versionEntries(f.st.Versions), hostif.VersionEntry{Description: "AMT FW Core Version", Version: f.st.Versions.AMT})
}

// ServerVersion is the version in the HTTP Server header, e.g. 16.1.25.2050.
func (f *Firmware) ServerVersion() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Versions.AMT + "." + f.st.Versions.Build
}

// LocalSystemAccount is the per-boot LSA.
func (f *Firmware) LocalSystemAccount() (string, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return LSAUsername, f.lsaPassword
}

// LANInterface: 0 wired, 1 wireless.
func (f *Firmware) LANInterface(index uint32) (hostif.LANSettings, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var p *Port
	switch index {
	case 0:
		p = &f.st.Network.Wired
	case 1:
		p = f.st.Network.Wireless
	}
	if p == nil {
		return hostif.LANSettings{}, false
	}
	out := hostif.LANSettings{Enabled: true, DHCPEnabled: p.DHCPEnabled, LinkUp: p.LinkUp}
	if p.DHCPEnabled {
		out.DHCPMode = 2 // passive
	}
	if ip := parseIPv4(p.IPAddress); ip != nil {
		copy(out.IPv4[:], ip)
	}
	if mac, err := parseMAC(p.MAC); err == nil {
		out.MAC = mac
	}
	return out, true
}

// CertHashes is the trusted root hash table.
func (f *Firmware) CertHashes() []hostif.CertHashEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]hostif.CertHashEntry, 0, len(f.st.CertHashes))
	for _, h := range f.st.CertHashes {
		b, _ := hex.DecodeString(h.Hash)
		out = append(out, hostif.CertHashEntry{Handle: h.Handle, IsDefault: h.Default, IsActive: h.Active, Algorithm: h.Algorithm, Hash: b, Name: h.Name})
	}
	return out
}

// PKIDNSSuffix is the PKI DNS suffix, or the DHCP domain when none is set.
func (f *Firmware) PKIDNSSuffix() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dnsSuffixLocked()
}

func (f *Firmware) dnsSuffixLocked() string {
	if f.st.Network.PKIDNSSuffix != "" {
		return f.st.Network.PKIDNSSuffix
	}
	return f.st.Network.DHCPDomain
}

// Unprovision (PTHI) is allowed in CCM only.
func (f *Firmware) Unprovision() uint32 {
	f.mu.Lock()
	if f.st.ControlMode != ModeCCM {
		f.mu.Unlock()
		return hostif.StatusInvalidAMTMode
	}
	err := f.unprovisionLocked(true, "PTHI")
	f.mu.Unlock()
	if err != nil {
		f.log.Error("unprovision: persist", "err", err)
		return hostif.StatusInternalError
	}
	f.emit(EventProvisioningChanged)
	f.emit(EventTLSChanged)
	return hostif.StatusSuccess
}

// WatchdogFlags is the IsChangeToAMTEnabled flag byte.
func (f *Firmware) WatchdogFlags() uint8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	flags := uint8(0x82) // new interface version, AMT enabled
	if f.st.TLSEnforced {
		flags |= 0x40
	}
	return flags
}

// ---- credentials ----

// Realm is the digest realm.
func (f *Firmware) Realm() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.Realm
}

// Credential is what the digest verifier needs for one user.
type Credential struct {
	HA1 [16]byte
	// Admin is true for the administrator account and the LSA.
	Admin bool
}

// LookupUser returns the digest HA1 for a user allowed to log in now: the
// LSA while control mode is 0, afterwards the admin account and the users
// added with AddUserAclEntryEx.
func (f *Firmware) LookupUser(username string) (Credential, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &f.st
	if s.ControlMode == ModePre {
		if subtle.ConstantTimeCompare([]byte(username), []byte(LSAUsername)) == 1 {
			return Credential{HA1: md5.Sum([]byte(LSAUsername + ":" + s.Realm + ":" + f.lsaPassword)), Admin: true}, true
		}
		return Credential{}, false
	}
	if s.Admin.HA1 != "" && username == s.Admin.Username {
		var c Credential
		if b, err := hex.DecodeString(s.Admin.HA1); err == nil && len(b) == 16 {
			copy(c.HA1[:], b)
			c.Admin = true
			return c, true
		}
	}
	for _, u := range s.Users {
		if u.Enabled && u.Username == username {
			var c Credential
			if b, err := hex.DecodeString(u.HA1); err == nil && len(b) == 16 {
				copy(c.HA1[:], b)
				return c, true
			}
		}
	}
	return Credential{}, false
}

// ---- helpers ----

func (f *Firmware) randomUUID() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(f.rand, b); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

func (f *Firmware) randomPassword(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(f.rand, b); err != nil {
		return "", err
	}
	for i := range b {
		b[i] = passwordAlphabet[int(b[i])%len(passwordAlphabet)]
	}
	return string(b), nil
}

// ParseUUID converts the canonical text form to SMBIOS byte order (first
// three fields little-endian).
func ParseUUID(s string) ([16]byte, error) {
	var out [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(s) != 36 || len(h) != 32 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return out, fmt.Errorf("firmware: invalid UUID %q", s)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return out, fmt.Errorf("firmware: invalid UUID %q", s)
	}
	out[0], out[1], out[2], out[3] = b[3], b[2], b[1], b[0]
	out[4], out[5] = b[5], b[4]
	out[6], out[7] = b[7], b[6]
	copy(out[8:], b[8:])
	return out, nil
}

// ValidRealm reports whether r is "Digest:" + 32 upper-case hex digits.
func ValidRealm(r string) bool {
	h, ok := strings.CutPrefix(r, "Digest:")
	if !ok || len(h) != 32 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func majorVersion(v string) (int, error) {
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return 0, fmt.Errorf("firmware: invalid AMT version %q", v)
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return 0, fmt.Errorf("firmware: invalid AMT version %q", v)
		}
	}
	m, _ := strconv.Atoi(parts[0])
	return m, nil
}

func parseIPv4(s string) []byte {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return nil
	}
	out := make([]byte, 4)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 {
			return nil
		}
		out[i] = byte(n)
	}
	return out
}

func gatewayOf(ip string) string {
	b := parseIPv4(ip)
	if b == nil {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d.1", b[0], b[1], b[2])
}

func parseMAC(s string) ([6]byte, error) {
	var out [6]byte
	h := strings.NewReplacer("-", "", ":", "").Replace(s)
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 6 {
		return out, fmt.Errorf("firmware: invalid MAC %q", s)
	}
	copy(out[:], b)
	return out, nil
}

// HashPassword is how the MEBx password is kept (the plaintext is never stored).
func hashPassword(pw string) string {
	sum := sha256.Sum256([]byte("mebx:" + pw))
	return hex.EncodeToString(sum[:])
}

// equalFoldASCII compares DNS names.
func equalFoldASCII(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }
