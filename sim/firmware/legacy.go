package firmware

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/amtd-project/amtd/sim/hostif"
)

// Legacy ("enterprise mode") setup, spec/legacy.md §6 stage 1, §8, §10 and
// §13: the device is prepared locally (MEBx, setup.bin, OEM, host agent over
// PTHI) with the credentials for remote configuration — PKI (remote
// configuration enabled, PKI DNS suffix, root hashes) or PSK (PID/PPS) —
// then configuration starts: the provisioning state becomes IN, the device
// sends hellos (package sim/hello) and serves the setup TLS session on 16993
// (package sim/device) until a configuration server commits or the setup
// window closes.

// LegacySetup is the persisted legacy setup configuration.
type LegacySetup struct {
	// Started: configuration was started (setup.bin 2.28 = 1, PTHI
	// StartConfigurationEx, the MEBx's "activate network access") and not
	// stopped or committed. With ProvisioningState IN it survives a restart
	// (AMT restarts its hellos at every start, legacy.md §4).
	Started bool `json:"started,omitempty"`
	// RemoteConfigDisabled: PKI remote configuration ("zero touch") is off
	// (setup.bin 2.5 = 0, PTHI SetZeroTouchEnabled false). Factory default: on.
	RemoteConfigDisabled bool `json:"remoteConfigDisabled,omitempty"`
	// PID and PPS are the PSK pair (setup.bin 2.1/2.2, MEBx, OEM). The
	// device keeps its PPS, as real firmware does.
	PID string `json:"pid,omitempty"`
	PPS string `json:"pps,omitempty"`
	// ServerAddress (an IP, setup.bin 2.17), ServerPort (2.18, the MEBx
	// "provision server port") and ServerFQDN (2.4): where hellos go when
	// set (legacy.md §2).
	ServerAddress string `json:"serverAddress,omitempty"`
	ServerPort    int    `json:"serverPort,omitempty"`
	ServerFQDN    string `json:"serverFqdn,omitempty"`
	// OTP is the provisioning server one-time password (PTHI
	// SetProvisioningServerOTP, legacy.md §8).
	OTP []byte `json:"otp,omitempty"`
	// MEBxPasswordPolicy is setup.bin 2.21 (kept for inspection only).
	MEBxPasswordPolicy *int `json:"mebxPasswordPolicy,omitempty"`
}

// SetupMode is how a device in legacy setup authenticates the server.
type SetupMode int

// Setup modes.
const (
	SetupNone SetupMode = iota
	// SetupPKI: TLS with the device's self-signed certificate and a client
	// certificate chain checked against the root hash table (legacy.md §7, §10).
	SetupPKI
	// SetupPSK: TLS-PSK with the PID/PPS (legacy.md §9); firmware before 11.0.
	SetupPSK
)

func (m SetupMode) String() string {
	switch m {
	case SetupPKI:
		return "pki"
	case SetupPSK:
		return "psk"
	}
	return "none"
}

// PSKRemovedIn is the AMT major version that dropped PSK (legacy.md §9).
const PSKRemovedIn = 11

// DefaultHelloPort is where hellos go unless configured (legacy.md §2).
const DefaultHelloPort = 9971

// Legacy event kinds (LegacyEvent.Kind).
const (
	LegacyStarted          = "setup-started"    // configuration started (IN, hellos begin)
	LegacyRestarted        = "setup-restarted"  // setup window re-opened (StartConfigurationEx in IN, AMT restart)
	LegacyStopped          = "setup-stopped"    // StopConfiguration / unprovision
	LegacyWindowClosed     = "window-closed"    // the hello schedule ended without configuration
	LegacyHelloSent        = "hello-sent"       // a hello was delivered
	LegacyHelloFailed      = "hello-failed"     // no server found or reachable
	LegacySessionAccepted  = "session-accepted" // a setup TLS session was established
	LegacySessionRefused   = "session-refused"  // the setup TLS handshake was refused (the reason says why)
	LegacyCommitted        = "committed"        // CommitChanges ended setup: POST, ACM
	LegacySetupBinApplied  = "setupbin-applied" // a setup.bin record was applied
	LegacySetupBinRefused  = "setupbin-refused" // the MEBx refused a setup.bin record
	LegacySetupCommand     = "setup-command"    // a PTHI/MEBx setup setting changed
	maxLegacyEvents        = 256
	maxPKISuffixLength     = 223
	minOTPLength           = 8
	maxOTPLength           = 32
	maxUserHashNameLength  = 32
	legacyUserHashBase     = 20 // user-defined handles 20–22
	legacyUserHashCapacity = MaxUserHashes
)

// LegacyEvent is one entry of the device's legacy setup log: what happened
// to hellos, setup sessions and setup.bin, with the reason of every
// refusal. It is kept in memory (the last 256) for tests and operators.
type LegacyEvent struct {
	Time   time.Time
	Kind   string
	Detail string
}

// legacyRuntime is the per-boot part of legacy setup.
type legacyRuntime struct {
	// open: the setup window is open (hellos, setup TLS on 16993).
	open bool
	// epoch counts the openings of the window; the hello schedule restarts
	// at retry 0 for each.
	epoch  uint64
	events []LegacyEvent
}

// LegacyStatus is what the device's network side needs to know.
type LegacyStatus struct {
	// Mode is the configured setup mode while configuration is started
	// (SetupNone otherwise).
	Mode SetupMode
	// Active: in setup with the window open: the device sends hellos and
	// serves the setup TLS session on 16993.
	Active bool
	// Epoch identifies the current opening of the setup window.
	Epoch uint64
}

// pskCapableLocked: PSK exists on firmware before 11.0.
func (f *Firmware) pskCapableLocked() bool {
	m, err := majorVersion(f.st.Versions.AMT)
	return err == nil && m < PSKRemovedIn
}

// legacyModeLocked is the setup mode of a started configuration.
func (f *Firmware) legacyModeLocked() SetupMode {
	s := &f.st
	if s.ProvisioningState != StateIn || !s.Legacy.Started {
		return SetupNone
	}
	if s.Legacy.PID != "" && s.Legacy.PPS != "" && f.pskCapableLocked() {
		return SetupPSK
	}
	if !s.Legacy.RemoteConfigDisabled {
		return SetupPKI
	}
	return SetupNone
}

// LegacyStatus reports the legacy setup state.
func (f *Firmware) LegacyStatus() LegacyStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := f.legacyModeLocked()
	return LegacyStatus{Mode: m, Active: m != SetupNone && f.legacy.open, Epoch: f.legacy.epoch}
}

// PSKCredentials returns the PID and PPS while the device is in PSK setup.
func (f *Firmware) PSKCredentials() (pid, pps string, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.legacyModeLocked() != SetupPSK {
		return "", "", false
	}
	return f.st.Legacy.PID, f.st.Legacy.PPS, true
}

// ProvisioningServer is the configured configuration server: an IP
// address, a port (0: not configured) and an FQDN, each "" when unset.
func (f *Firmware) ProvisioningServer() (addr string, port int, fqdn string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.st.Legacy
	return l.ServerAddress, l.ServerPort, l.ServerFQDN
}

// AdminCredentialsSet reports whether the MEBx password was changed from
// the factory default (the first field of a hello).
func (f *Firmware) AdminCredentialsSet() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st.MEBxPasswordSHA256 != ""
}

// RecordLegacyEvent appends to the legacy setup log (and the device log).
func (f *Firmware) RecordLegacyEvent(kind, detail string) {
	f.mu.Lock()
	f.recordLegacyLocked(kind, detail)
	f.mu.Unlock()
	f.emit(EventLegacyLog)
}

func (f *Firmware) recordLegacyLocked(kind, detail string) {
	ev := LegacyEvent{Time: f.now().UTC(), Kind: kind, Detail: detail}
	if len(f.legacy.events) >= maxLegacyEvents {
		f.legacy.events = slices.Delete(f.legacy.events, 0, len(f.legacy.events)-maxLegacyEvents+1)
	}
	f.legacy.events = append(f.legacy.events, ev)
	switch kind {
	case LegacySessionRefused, LegacySetupBinRefused, LegacyHelloFailed:
		f.log.Warn("legacy setup: "+kind, "uuid", f.st.UUID, "detail", detail)
	case LegacyHelloSent, LegacySessionAccepted:
		f.log.Debug("legacy setup: "+kind, "uuid", f.st.UUID, "detail", detail)
	default:
		f.log.Info("legacy setup: "+kind, "uuid", f.st.UUID, "detail", detail)
	}
}

// LegacyEvents returns the legacy setup log, oldest first.
func (f *Firmware) LegacyEvents() []LegacyEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.legacy.events)
}

// openWindowLocked opens (or re-opens) the setup window: a new epoch, so
// the hello schedule starts again at retry 0.
func (f *Firmware) openWindowLocked() {
	f.legacy.open = true
	f.legacy.epoch++
}

// CloseSetupWindow ends the setup window of the given epoch when the hello
// schedule ran out (legacy.md §4): no more hellos and the setup TLS port
// closes until configuration is restarted (StartConfigurationEx) or AMT
// restarts. The device stays in the IN state. It reports whether the window
// was closed now.
func (f *Firmware) CloseSetupWindow(epoch uint64) bool {
	f.mu.Lock()
	if !f.legacy.open || f.legacy.epoch != epoch || f.legacyModeLocked() == SetupNone {
		f.mu.Unlock()
		return false
	}
	f.legacy.open = false
	f.mu.Unlock()
	f.emit(EventLegacySetupChanged)
	// logged once the listeners (the device's port, the hellos) have reacted
	f.RecordLegacyEvent(LegacyWindowClosed, "the hello schedule ended without configuration; restart with StartConfigurationEx or an AMT restart")
	return true
}

// StartConfigurationEx (PTHI 0x04000062, legacy.md §8) starts remote
// configuration: from PRE the device moves to IN and the setup window opens;
// in a legacy IN state it re-opens the window (hellos restart at retry 0).
// The device must have something to be configured with: PKI remote
// configuration enabled, or a PID/PPS on firmware before 11.0 — otherwise
// NOT_PERMITTED (the real status is unverified). A device activated in
// another way, or in the AMT 19 host-based setup, answers INVALID_AMT_MODE.
func (f *Firmware) StartConfigurationEx(ipv6 bool) uint32 {
	_ = ipv6 // the simulated network is IPv4
	f.mu.Lock()
	s := &f.st
	switch {
	case s.ControlMode != ModePre || s.ProvisioningState == StatePost:
		f.mu.Unlock()
		return hostif.StatusInvalidAMTMode
	case s.ProvisioningState == StateIn && !s.Legacy.Started:
		f.mu.Unlock()
		return hostif.StatusInvalidAMTMode
	}
	pskOK := s.Legacy.PID != "" && s.Legacy.PPS != "" && f.pskCapableLocked()
	if !pskOK && s.Legacy.RemoteConfigDisabled {
		f.mu.Unlock()
		return hostif.StatusNotPermitted
	}
	restart := s.ProvisioningState == StateIn
	err := f.updateLocked(func(s *State) error {
		s.ProvisioningState = StateIn
		s.Legacy.Started = true
		return nil
	})
	if err != nil {
		f.mu.Unlock()
		return hostif.StatusInternalError
	}
	f.openWindowLocked()
	kind := LegacyStarted
	if restart {
		kind = LegacyRestarted
	}
	f.recordLegacyLocked(kind, "configuration started ("+f.legacyModeLocked().String()+")")
	f.mu.Unlock()
	if !restart {
		f.emit(EventProvisioningChanged)
	}
	f.emit(EventLegacySetupChanged)
	f.emit(EventLegacyLog)
	return hostif.StatusSuccess
}

// settingAllowedLocked: setup settings change before activation only.
func (f *Firmware) settingAllowedLocked() bool {
	return f.st.ControlMode == ModePre && f.st.ProvisioningState != StatePost
}

// SetPKIFQDNSuffix (PTHI 0x0400002F) sets the PKI DNS suffix that the leaf
// CN of a provisioning certificate must fit (legacy.md §10.4).
func (f *Firmware) SetPKIFQDNSuffix(suffix string) uint32 {
	suffix = strings.TrimSuffix(strings.TrimSpace(suffix), ".")
	if len(suffix) > maxPKISuffixLength || !printableASCII(suffix) {
		return hostif.StatusInvalidParameter
	}
	return f.legacySetting(func(s *State) { s.Network.PKIDNSSuffix = suffix }, "PKI DNS suffix "+quoteOrNone(suffix))
}

// SetZeroTouchEnabled (PTHI 0x0400003A) turns PKI remote configuration on or off.
func (f *Firmware) SetZeroTouchEnabled(on bool) uint32 {
	return f.legacySetting(func(s *State) { s.Legacy.RemoteConfigDisabled = !on }, fmt.Sprintf("remote configuration enabled = %t", on))
}

// ZeroTouchEnabled (PTHI GetZeroTouchEnabled 0x04000030).
func (f *Firmware) ZeroTouchEnabled() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.st.Legacy.RemoteConfigDisabled
}

// SetPIDPPS enters a PSK pair as the MEBx (or the OEM) does. Firmware from
// 11.0 on has no PSK: PTUnsupported.
func (f *Firmware) SetPIDPPS(pid, pps string) uint32 {
	pid, pps = normalizePIDPPS(pid), normalizePIDPPS(pps)
	if !validPSKString(pid, 8) || !validPSKString(pps, 32) {
		return hostif.StatusInvalidParameter
	}
	f.mu.Lock()
	capable := f.pskCapableLocked()
	f.mu.Unlock()
	if !capable {
		return PTUnsupported
	}
	return f.legacySetting(func(s *State) { s.Legacy.PID, s.Legacy.PPS = pid, pps }, "PID "+pid+" and its PPS")
}

// SetProvisioningServer enters the configuration server as the MEBx does
// (PTHI SetConfigServerData 0x0400004F, setup.bin 2.4/2.17/2.18): an IP
// address ("" for none), a port (0: 9971) and an FQDN ("" for none).
func (f *Firmware) SetProvisioningServer(addr string, port int, fqdn string) uint32 {
	if addr != "" {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return hostif.StatusInvalidParameter
		}
		addr = a.Unmap().String()
	}
	if port < 0 || port > 65535 || len(fqdn) > 256 || !printableASCII(fqdn) {
		return hostif.StatusInvalidParameter
	}
	return f.legacySetting(func(s *State) {
		s.Legacy.ServerAddress, s.Legacy.ServerPort, s.Legacy.ServerFQDN = addr, port, fqdn
	}, fmt.Sprintf("provisioning server address %s port %d FQDN %s", quoteOrNone(addr), port, quoteOrNone(fqdn)))
}

// SetProvisioningServerOTP (PTHI 0x0400002A, legacy.md §8): 8 to 32
// bytes; allowed in every state (readable in IN only).
func (f *Firmware) SetProvisioningServerOTP(otp []byte) uint32 {
	if len(otp) < minOTPLength || len(otp) > maxOTPLength {
		return hostif.StatusInvalidParameter
	}
	f.mu.Lock()
	err := f.updateLocked(func(s *State) error {
		s.Legacy.OTP = slices.Clone(otp)
		return nil
	})
	if err == nil {
		f.recordLegacyLocked(LegacySetupCommand, fmt.Sprintf("provisioning server OTP set (%d bytes)", len(otp)))
	}
	f.mu.Unlock()
	if err != nil {
		return hostif.StatusInternalError
	}
	f.emit(EventLegacyLog)
	return hostif.StatusSuccess
}

// ProvisioningServerOTP is AMT_SetupAndConfigurationService
// .ProvisioningServerOTP: readable only in the IN state; ok false when
// unset or not readable.
func (f *Firmware) ProvisioningServerOTP() ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ProvisioningState != StateIn || len(f.st.Legacy.OTP) == 0 {
		return nil, false
	}
	return slices.Clone(f.st.Legacy.OTP), true
}

// AddCustomizedCertificateHash (PTHI 0x04000038, MEBx, setup.bin 2.8) adds
// an active user-defined root hash: algorithm 1 SHA-1, 2 SHA-256, 3
// SHA-384. At most MaxUserHashes (MAX_LIMIT_REACHED beyond); a hash already
// in the table is PTDuplicate. Returns the new handle.
func (f *Firmware) AddCustomizedCertificateHash(alg uint8, hash []byte, name string) (uint32, uint32) {
	if hashSize(alg) == 0 || len(hash) != hashSize(alg) || len(name) > maxUserHashNameLength || !printableASCII(name) {
		return 0, hostif.StatusInvalidParameter
	}
	f.mu.Lock()
	if !f.settingAllowedLocked() {
		f.mu.Unlock()
		return 0, hostif.StatusInvalidAMTMode
	}
	var handle uint32
	var status uint32
	err := f.updateLocked(func(s *State) error {
		var err error
		handle, err = addUserHash(s, alg, hash, name)
		switch {
		case errors.Is(err, errHashTableFull):
			status = PTMaxLimitReached
		case errors.Is(err, errHashDuplicate):
			status = PTDuplicate
		case err != nil:
			status = hostif.StatusInvalidParameter
		}
		if status != 0 {
			return err
		}
		return nil
	})
	if status != 0 {
		f.mu.Unlock()
		return 0, status
	}
	if err != nil {
		f.mu.Unlock()
		return 0, hostif.StatusInternalError
	}
	f.recordLegacyLocked(LegacySetupCommand, fmt.Sprintf("user-defined root hash %x added (handle %d)", hash, handle))
	f.mu.Unlock()
	f.emit(EventLegacyLog)
	return handle, hostif.StatusSuccess
}

// legacySetting applies a setup setting allowed before activation.
func (f *Firmware) legacySetting(apply func(s *State), what string) uint32 {
	f.mu.Lock()
	if !f.settingAllowedLocked() {
		f.mu.Unlock()
		return hostif.StatusInvalidAMTMode
	}
	before := f.legacyModeLocked()
	err := f.updateLocked(func(s *State) error { apply(s); return nil })
	if err == nil {
		f.recordLegacyLocked(LegacySetupCommand, what)
	}
	changed := before != f.legacyModeLocked()
	f.mu.Unlock()
	if err != nil {
		return hostif.StatusInternalError
	}
	if changed {
		f.emit(EventLegacySetupChanged)
	}
	f.emit(EventLegacyLog)
	return hostif.StatusSuccess
}

var (
	errHashTableFull = errors.New("firmware: the user-defined root hash slots are full")
	errHashDuplicate = errors.New("firmware: the hash is already in the table")
)

// addUserHash adds an active user-defined hash in the first free handle of
// 20–22.
func addUserHash(s *State, alg uint8, hash []byte, name string) (uint32, error) {
	hx := hex.EncodeToString(hash)
	used := map[uint32]bool{}
	n := 0
	for _, h := range s.CertHashes {
		if strings.EqualFold(h.Hash, hx) {
			return 0, errHashDuplicate
		}
		if !h.Default {
			n++
			used[h.Handle] = true
		}
	}
	if n >= legacyUserHashCapacity {
		return 0, errHashTableFull
	}
	handle := uint32(legacyUserHashBase)
	for used[handle] {
		handle++
	}
	if name == "" {
		name = fmt.Sprintf("Custom Root %d", handle-legacyUserHashBase+1)
	}
	s.CertHashes = append(s.CertHashes, CertHash{Handle: handle, Name: name, Algorithm: alg, Hash: hx, Active: true})
	slices.SortFunc(s.CertHashes, func(a, b CertHash) int { return int(a.Handle) - int(b.Handle) })
	return handle, nil
}

func hashSize(alg uint8) int {
	switch alg {
	case 1:
		return 20
	case 2:
		return 32
	case 3:
		return 48
	}
	return 0
}

// SetupCredentials are the digest HA1s that "admin" may use in a legacy
// setup session (legacy.md §7.2, §13): one per configured setup-mode
// password (Config.SetupPasswords; default the empty password).
func (f *Firmware) SetupCredentials() [][16]byte {
	f.mu.Lock()
	realm := f.st.Realm
	f.mu.Unlock()
	pws := f.cfg.SetupPasswords
	if pws == nil {
		pws = []string{""}
	}
	out := make([][16]byte, 0, len(pws))
	for _, pw := range pws {
		out = append(out, md5.Sum([]byte("admin:"+realm+":"+pw)))
	}
	return out
}

// SetupChainError is a client certificate chain that the device refuses in
// a PKI setup session (legacy.md §10). Check names the rule: "certificate"
// (missing or unreadable), "validity", "signature", "root" (the chain does
// not end with a self-signed root), "trust" (the root's hash is not an
// active entry of the table), "purpose" (neither the AMT provisioning OID
// nor the setup OU), "server-auth", "domain" (leaf CN vs the device's DNS
// suffix), "algorithm" (SHA-1 or short RSA keys on ME 16 and later).
type SetupChainError struct {
	Check  string
	Detail string
}

func (e *SetupChainError) Error() string {
	return "provisioning certificate refused (" + e.Check + "): " + e.Detail
}

// VerifySetupClientChain applies the firmware's provisioning certificate
// rules (legacy.md §10) to the chain a configuration server presents in a
// PKI setup TLS session, as sent: leaf first, root last. It uses the same
// rules as host-based AdminSetup (trusted root hash, purpose, domain,
// validity on the device clock) and records a refusal in the legacy log.
func (f *Firmware) VerifySetupClientChain(raw [][]byte) error {
	err := f.verifySetupChain(raw)
	if err != nil {
		f.RecordLegacyEvent(LegacySessionRefused, err.Error())
	}
	return err
}

func (f *Firmware) verifySetupChain(raw [][]byte) error {
	if len(raw) == 0 {
		return &SetupChainError{"certificate", "the server sent no client certificate"}
	}
	chain := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return &SetupChainError{"certificate", fmt.Sprintf("certificate %d: %v", i, err)}
		}
		chain[i] = c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now().Add(time.Duration(f.st.ClockOffsetSeconds) * time.Second)
	for _, c := range chain {
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return &SetupChainError{"validity", fmt.Sprintf("%q is valid from %s to %s, the device clock reads %s",
				c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
		}
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return &SetupChainError{"signature", fmt.Sprintf("%q is not signed by %q: %v", chain[i].Subject.CommonName, chain[i+1].Subject.CommonName, err)}
		}
	}
	root := chain[len(chain)-1]
	if root.CheckSignatureFrom(root) != nil {
		return &SetupChainError{"root", fmt.Sprintf("the chain ends with %q, not a self-signed root (the device holds only root hashes, the root must be sent)", root.Subject.CommonName)}
	}
	if !f.rootTrustedLocked(root) {
		sum := sha256.Sum256(root.Raw)
		return &SetupChainError{"trust", fmt.Sprintf("root %q (SHA-256 %x) is not an active entry of the trusted root hash table", root.Subject.CommonName, sum)}
	}
	leaf := chain[0]
	if !provisioningPurpose(leaf) {
		return &SetupChainError{"purpose", fmt.Sprintf("leaf %q has neither the AMT provisioning EKU %s nor OU %q", leaf.Subject.CommonName, OIDAMTProvisioning, ProvisioningOU)}
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return &SetupChainError{"server-auth", fmt.Sprintf("leaf %q has no server authentication EKU", leaf.Subject.CommonName)}
	}
	suffix := f.dnsSuffixLocked()
	if !DomainMatches(leaf.Subject.CommonName, suffix) {
		return &SetupChainError{"domain", fmt.Sprintf("leaf CN %q does not fit the device's DNS suffix %s", leaf.Subject.CommonName, quoteOrNone(suffix))}
	}
	if m, err := majorVersion(f.st.Versions.AMT); err == nil && m >= 16 {
		for _, c := range chain {
			switch c.SignatureAlgorithm {
			case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
				return &SetupChainError{"algorithm", fmt.Sprintf("%q is signed with %s; ME 16 and later refuse SHA-1", c.Subject.CommonName, c.SignatureAlgorithm)}
			}
			if k, ok := c.PublicKey.(interface{ Size() int }); ok && c.PublicKeyAlgorithm == x509.RSA && k.Size()*8 < 2048 {
				return &SetupChainError{"algorithm", fmt.Sprintf("%q has a %d-bit RSA key; ME 16 and later need 2048 bits", c.Subject.CommonName, k.Size()*8)}
			}
		}
	}
	return nil
}

func quoteOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", s)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func normalizePIDPPS(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s)))
}

func validPSKString(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
