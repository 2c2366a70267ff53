package firmware

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/hex"
	"io"
	"strings"
	"time"

	"github.com/amtd-project/amtd/sim/hostif"
)

// IPS_HostBasedSetupService return values (wsman.md §7).
const (
	// Setup / AdminSetup / UpgradeClientToAdmin
	SetupSuccess        uint32 = 0
	SetupInternalError  uint32 = 1
	SetupInvalidState   uint32 = 2
	SetupInvalidParam   uint32 = 3
	SetupMethodDisabled uint32 = 4
	SetupAuthFailed     uint32 = 5
	// AddNextCertInChain
	ChainSuccess        uint32 = 0
	ChainInvalidParam   uint32 = 1
	ChainInternalError  uint32 = 2
	ChainInvalidState   uint32 = 3
	ChainVerifyFailed   uint32 = 4
	ChainLengthExceeded uint32 = 5
)

// PT_STATUS return values used by the firmware.
const (
	PTSuccess            uint32 = 0
	PTInternalError      uint32 = 1
	PTNotPermitted       uint32 = 16
	PTMaxLimitReached    uint32 = 23
	PTInvalidParameter   uint32 = 36
	PTInvalidHandle      uint32 = 2053
	PTInvalidPassword    uint32 = 2054
	PTDataMissing        uint32 = 2057
	PTDuplicate          uint32 = 2058
	PTInvalidKey         uint32 = 2062
	PTInvalidCert        uint32 = 2063
	PTCertKeyNotMatch    uint32 = 2064
	PTUnsupported        uint32 = 2066
	PTNotFound           uint32 = 2068
	PTInvalidCredentials uint32 = 2069
	PTInvalidPassphrase  uint32 = 2070
)

// OIDAMTProvisioning is Intel's "AMT provisioning" extended key usage.
var OIDAMTProvisioning = asn1.ObjectIdentifier{2, 16, 840, 1, 113741, 1, 2, 3}

// ProvisioningOU is the alternative subject OU accepted instead of the OID.
const ProvisioningOU = "Intel(R) Client Setup Certificate"

// MaxChainLength is the longest chain AddNextCertInChain accepts.
const MaxChainLength = 4

type chainCert struct{ cert *x509.Certificate }

// ConfigurationNonce returns a fresh 20-byte nonce; only the most recently
// reported nonce is accepted by AdminSetup and UpgradeClientToAdmin.
func (f *Firmware) ConfigurationNonce() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := make([]byte, 20)
	if _, err := io.ReadFull(f.rand, n); err != nil {
		f.log.Error("configuration nonce", "err", err)
	}
	f.nonce = n
	return append([]byte(nil), n...)
}

// CertChainStatus is 0 not started, 1 in progress, 2 complete.
func (f *Firmware) CertChainStatus() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.chainStatus
}

// Setup is IPS_HostBasedSetupService.Setup: CCM activation with the admin
// digest HA1 (hex) as NetworkAdminPassword.
func (f *Firmware) Setup(encType int, netAdminPassword string) uint32 {
	f.mu.Lock()
	if f.st.ControlMode != ModePre || f.st.ProvisioningState == StateIn {
		f.mu.Unlock()
		return SetupInvalidState
	}
	ha1, ok := parseHA1(encType, netAdminPassword)
	if !ok {
		f.mu.Unlock()
		return SetupInvalidParam
	}
	err := f.updateLocked(func(s *State) error {
		f.activateLocked(ModeCCM, "admin", ha1)
		f.auditLocked(AuditSecurityAdmin, 1, Initiator{Type: InitiatorDigest, User: LSAUsername}, nil, "Provisioning completed: host-based CCM")
		return nil
	})
	f.mu.Unlock()
	if err != nil {
		f.log.Error("setup: persist", "err", err)
		return SetupInternalError
	}
	f.emit(EventProvisioningChanged)
	return SetupSuccess
}

func (f *Firmware) activateLocked(mode uint32, user, ha1 string) {
	s := &f.st
	s.ControlMode = mode
	s.ProvisioningState = StatePost
	t := f.now().UTC().Truncate(time.Second)
	s.ActivatedAt = &t
	if user != "" {
		s.Admin = AdminAccount{Username: user, HA1: ha1}
	}
	f.chain = nil
	f.chainStatus = 0
	f.nonce = nil
	f.setupHash = nil
}

func parseHA1(encType int, v string) (string, bool) {
	if encType != 2 { // HTTPDigestMD5A1
		return "", false
	}
	v = strings.ToLower(strings.TrimSpace(v))
	b, err := hex.DecodeString(v)
	if err != nil || len(b) != 16 {
		return "", false
	}
	return v, true
}

// AddNextCertInChain injects one certificate of the provisioning chain,
// leaf first, root last.
func (f *Firmware) AddNextCertInChain(certB64 string, isLeaf, isRoot bool) uint32 {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(certB64))
	if err != nil || len(der) == 0 {
		return ChainInvalidParam
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return ChainInvalidParam
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ControlMode == ModeACM || f.st.ProvisioningState == StateIn {
		return ChainInvalidState
	}
	now := f.now().Add(time.Duration(f.st.ClockOffsetSeconds) * time.Second)
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		f.chain, f.chainStatus = nil, 0
		return ChainVerifyFailed
	}
	if isLeaf {
		f.chain = []chainCert{{cert}}
		f.chainStatus = 1
	} else {
		if f.chainStatus != 1 || len(f.chain) == 0 {
			return ChainInvalidState
		}
		if len(f.chain)+1 > MaxChainLength {
			f.chain, f.chainStatus = nil, 0
			return ChainLengthExceeded
		}
		prev := f.chain[len(f.chain)-1].cert
		if err := prev.CheckSignatureFrom(cert); err != nil {
			f.chain, f.chainStatus = nil, 0
			return ChainVerifyFailed
		}
		f.chain = append(f.chain, chainCert{cert})
	}
	if isRoot {
		if err := cert.CheckSignatureFrom(cert); err != nil || !f.rootTrustedLocked(cert) {
			f.chain, f.chainStatus = nil, 0
			return ChainVerifyFailed
		}
		f.chainStatus = 2
	}
	return ChainSuccess
}

// rootTrustedLocked reports whether the certificate's fingerprint is an
// active entry of the hash table (legacy.md §10.2).
func (f *Firmware) rootTrustedLocked(cert *x509.Certificate) bool {
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	s384 := sha512.Sum384(cert.Raw)
	for _, h := range f.st.CertHashes {
		if !h.Active {
			continue
		}
		var want string
		switch h.Algorithm {
		case 1:
			want = hex.EncodeToString(s1[:])
		case 2:
			want = hex.EncodeToString(s256[:])
		case 3:
			want = hex.EncodeToString(s384[:])
		default:
			continue
		}
		if strings.EqualFold(h.Hash, want) {
			return true
		}
	}
	return false
}

// AdminSetup is IPS_HostBasedSetupService.AdminSetup (ACM activation).
func (f *Firmware) AdminSetup(encType int, netAdminPassword, mcNonceB64 string, sigAlg int, sigB64 string) uint32 {
	f.mu.Lock()
	if f.st.ControlMode != ModePre || f.st.ProvisioningState == StateIn {
		f.mu.Unlock()
		return SetupInvalidState
	}
	ha1, ok := parseHA1(encType, netAdminPassword)
	if !ok {
		f.mu.Unlock()
		return SetupInvalidParam
	}
	if rv := f.verifyAdminProofLocked(mcNonceB64, sigAlg, sigB64); rv != SetupSuccess {
		f.mu.Unlock()
		return rv
	}
	err := f.updateLocked(func(s *State) error {
		f.activateLocked(ModeACM, "admin", ha1)
		f.auditLocked(AuditSecurityAdmin, 1, Initiator{Type: InitiatorDigest, User: LSAUsername}, nil, "Provisioning completed: host-based ACM")
		return nil
	})
	f.mu.Unlock()
	if err != nil {
		f.log.Error("admin setup: persist", "err", err)
		return SetupInternalError
	}
	f.emit(EventProvisioningChanged)
	return SetupSuccess
}

// UpgradeClientToAdmin moves a CCM device to ACM; the admin password is unchanged.
func (f *Firmware) UpgradeClientToAdmin(mcNonceB64 string, sigAlg int, sigB64 string) uint32 {
	f.mu.Lock()
	if f.st.ControlMode != ModeCCM {
		f.mu.Unlock()
		return SetupInvalidState
	}
	if rv := f.verifyAdminProofLocked(mcNonceB64, sigAlg, sigB64); rv != SetupSuccess {
		f.mu.Unlock()
		return rv
	}
	err := f.updateLocked(func(s *State) error {
		f.activateLocked(ModeACM, "", "")
		f.auditLocked(AuditSecurityAdmin, 18, Initiator{Type: InitiatorDigest, User: f.st.Admin.Username}, nil, "Upgrade client to admin control mode")
		return nil
	})
	f.mu.Unlock()
	if err != nil {
		f.log.Error("upgrade: persist", "err", err)
		return SetupInternalError
	}
	f.emit(EventProvisioningChanged)
	return SetupSuccess
}

// verifyAdminProofLocked applies the firmware's checks: a complete injected
// chain, the leaf's purpose, the domain, and the signature over
// ConfigurationNonce ‖ McNonce with the leaf key.
func (f *Firmware) verifyAdminProofLocked(mcNonceB64 string, sigAlg int, sigB64 string) uint32 {
	if f.chainStatus != 2 || len(f.chain) == 0 {
		return SetupInvalidState
	}
	mcNonce, err := base64.StdEncoding.DecodeString(strings.TrimSpace(mcNonceB64))
	if err != nil || len(mcNonce) == 0 || len(mcNonce) > 64 {
		return SetupInvalidParam
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sigB64))
	if err != nil || len(sig) == 0 {
		return SetupInvalidParam
	}
	var hash crypto.Hash
	switch sigAlg {
	case 2: // RSASHA2256
		hash = crypto.SHA256
	case 3: // RSASHA2384 (accepted, RPS never sends it)
		hash = crypto.SHA384
	default:
		return SetupInvalidParam
	}
	leaf := f.chain[0].cert
	if !provisioningPurpose(leaf) {
		return SetupAuthFailed
	}
	if !DomainMatches(leaf.Subject.CommonName, f.dnsSuffixLocked()) {
		return SetupAuthFailed
	}
	if f.nonce == nil {
		return SetupAuthFailed
	}
	pub, ok := leaf.PublicKey.(*rsa.PublicKey)
	if !ok {
		return SetupAuthFailed
	}
	h := hash.New()
	h.Write(f.nonce)
	h.Write(mcNonce)
	if err := rsa.VerifyPKCS1v15(pub, hash, h.Sum(nil), sig); err != nil {
		return SetupAuthFailed
	}
	return SetupSuccess
}

// provisioningPurpose: EKU 2.16.840.1.113741.1.2.3 or OU "Intel(R) Client Setup Certificate".
func provisioningPurpose(c *x509.Certificate) bool {
	for _, oid := range c.UnknownExtKeyUsage {
		if oid.Equal(OIDAMTProvisioning) {
			return true
		}
	}
	for _, ou := range c.Subject.OrganizationalUnit {
		if ou == ProvisioningOU {
			return true
		}
	}
	return false
}

// DomainMatches is the simulator's rule for the leaf CN against the device
// DNS suffix (legacy.md §10.4): after removing a leading "*.", the CN equals
// the suffix or ends with "." + suffix (case-insensitive).
func DomainMatches(cn, suffix string) bool {
	suffix = strings.TrimSuffix(strings.TrimSpace(suffix), ".")
	cn = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(cn), "*."), ".")
	if suffix == "" || cn == "" {
		return false
	}
	if equalFoldASCII(cn, suffix) {
		return true
	}
	return len(cn) > len(suffix)+1 && cn[len(cn)-len(suffix)-1] == '.' && equalFoldASCII(cn[len(cn)-len(suffix):], suffix)
}

// UnprovisionWSMAN is AMT_SetupAndConfigurationService.Unprovision.
func (f *Firmware) UnprovisionWSMAN(provisioningMode int) uint32 {
	if provisioningMode != 1 && provisioningMode != 4 {
		return PTInvalidParameter
	}
	f.mu.Lock()
	if f.st.ControlMode == ModePre && f.st.ProvisioningState != StateIn {
		f.mu.Unlock()
		return PTNotPermitted
	}
	err := f.unprovisionLocked(true, "WS-MAN")
	f.mu.Unlock()
	if err != nil {
		f.log.Error("unprovision: persist", "err", err)
		return PTInternalError
	}
	f.emit(EventProvisioningChanged)
	f.emit(EventTLSChanged)
	return PTSuccess
}

// PartialUnprovision keeps the admin ACL, host and domain name.
func (f *Firmware) PartialUnprovision() uint32 {
	f.mu.Lock()
	if f.st.ControlMode == ModePre {
		f.mu.Unlock()
		return PTNotPermitted
	}
	err := f.unprovisionLocked(false, "WS-MAN partial")
	f.mu.Unlock()
	if err != nil {
		f.log.Error("partial unprovision: persist", "err", err)
		return PTInternalError
	}
	f.emit(EventProvisioningChanged)
	f.emit(EventTLSChanged)
	return PTSuccess
}

func (f *Firmware) unprovisionLocked(full bool, via string) error {
	return f.updateLocked(func(s *State) error {
		admin, host, domain := s.Admin, s.Network.HostName, s.Network.DomainName
		f.resetConfiguration()
		if full {
			// user-defined hashes are deleted; the configured ones are
			// OEM/MEBx settings and come back
			if err := f.setUserHashes(f.cfg.TrustHashes); err != nil {
				return err
			}
			for i := range s.CertHashes {
				s.CertHashes[i].Active = true
			}
			s.MEBxPasswordSHA256 = ""
			s.Legacy = LegacySetup{}
		} else {
			s.Admin, s.Network.HostName, s.Network.DomainName = admin, host, domain
		}
		pw, err := f.randomPassword(16)
		if err != nil {
			return err
		}
		f.lsaPassword = pw
		f.chain, f.chainStatus, f.nonce, f.setupHash = nil, 0, nil, nil
		f.optIn = optInRuntime{}
		// extended data: 2 local MEI, 4 remote WS-MAN
		by, ex := Initiator{Type: InitiatorDigest, User: admin.Username}, byte(4)
		if via == "PTHI" {
			by, ex = LocalInitiator, 2
		}
		f.auditLocked(AuditSecurityAdmin, 19, by, []byte{ex}, "Unprovisioning started ("+via+")")
		return nil
	})
}

// CommitChanges applies pending settings; completes an IN-provisioning
// (TLS host-based) configuration.
func (f *Firmware) CommitChanges() uint32 {
	f.mu.Lock()
	s := &f.st
	if s.ProvisioningState == StateIn {
		if s.Admin.HA1 == "" || s.MEBxPasswordSHA256 == "" {
			f.mu.Unlock()
			return PTDataMissing
		}
	}
	if rv := f.checkTLSCommitLocked(); rv != PTSuccess {
		f.mu.Unlock()
		return rv
	}
	changedTLS := false
	wasIn := s.ProvisioningState == StateIn
	legacy := f.legacyModeLocked()
	err := f.updateLocked(func(s *State) error {
		next := TLSCommitted{Remote: cloneTLS(s.TLS.Remote), Local: cloneTLS(s.TLS.Local), Cert: s.TLS.CredentialCert}
		changedTLS = !tlsCommittedEqual(next, s.TLS.Committed)
		s.TLS.Committed = next
		if s.ProvisioningState == StateIn {
			f.activateLocked(ModeACM, "", "")
			how := "host-based over TLS"
			if s.Legacy.Started {
				how = "remote configuration (" + legacy.String() + ")"
				s.Legacy.Started = false
				f.legacy.open = false
			}
			f.auditLocked(AuditSecurityAdmin, 1, Initiator{Type: InitiatorDigest, User: "admin"}, nil, "Provisioning completed: "+how)
		}
		return nil
	})
	if err == nil && legacy != SetupNone {
		f.recordLegacyLocked(LegacyCommitted, "CommitChanges: provisioning state POST, admin control mode; hellos stop")
	}
	f.mu.Unlock()
	if err != nil {
		f.log.Error("commit: persist", "err", err)
		return PTInternalError
	}
	if changedTLS {
		f.emit(EventTLSChanged)
	}
	if wasIn {
		f.emit(EventProvisioningChanged)
	}
	if legacy != SetupNone {
		f.emit(EventLegacySetupChanged)
		f.emit(EventLegacyLog)
	}
	return PTSuccess
}

// checkTLSCommitLocked: TLS needs a key and certificate; mutual
// authentication needs a trusted root.
func (f *Firmware) checkTLSCommitLocked() uint32 {
	s := &f.st
	if !s.TLS.Remote.Enabled && !s.TLS.Local.Enabled {
		return PTSuccess
	}
	cert := f.certLocked(s.TLS.CredentialCert)
	if cert == nil {
		return PTDataMissing
	}
	if _, ok := f.keyForCertLocked(cert.DER); !ok {
		return PTDataMissing
	}
	if s.TLS.Remote.MutualAuthentication || s.TLS.Local.MutualAuthentication {
		hasRoot := false
		for _, c := range s.Certs {
			hasRoot = hasRoot || c.TrustedRoot
		}
		if !hasRoot {
			return PTDataMissing
		}
	}
	return PTSuccess
}

func cloneTLS(t TLSSetting) TLSSetting {
	t.TrustedCN = append([]string(nil), t.TrustedCN...)
	return t
}

func tlsCommittedEqual(a, b TLSCommitted) bool {
	eq := func(x, y TLSSetting) bool {
		return x.Enabled == y.Enabled && x.AcceptNonSecureConnections == y.AcceptNonSecureConnections &&
			x.MutualAuthentication == y.MutualAuthentication && strings.Join(x.TrustedCN, "\x00") == strings.Join(y.TrustedCN, "\x00")
	}
	return a.Cert == b.Cert && eq(a.Remote, b.Remote) && eq(a.Local, b.Local)
}

// SetMEBxPassword is blocked in CCM; the password follows the MEBx rule.
func (f *Firmware) SetMEBxPassword(pw string) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ControlMode == ModeCCM || (f.st.ControlMode == ModePre && f.st.ProvisioningState != StateIn) {
		return PTNotPermitted
	}
	if !StrongPassword(pw) {
		return PTInvalidPassword
	}
	if err := f.updateLocked(func(s *State) error {
		s.MEBxPasswordSHA256 = hashPassword(pw)
		return nil
	}); err != nil {
		return PTInternalError
	}
	return PTSuccess
}

// MEBxPasswordMatches reports whether pw is the current MEBx password
// (factory default "admin").
func (f *Firmware) MEBxPasswordMatches(pw string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.MEBxPasswordSHA256 == "" {
		return pw == "admin"
	}
	return f.st.MEBxPasswordSHA256 == hashPassword(pw)
}

// StrongPassword is Intel's MEBx/admin password rule: 8–32 characters with a
// digit, a lower-case and an upper-case letter and a non-alphanumeric 7-bit
// ASCII character other than : " ,
func StrongPassword(pw string) bool {
	if len(pw) < 8 || len(pw) > 32 {
		return false
	}
	var d, l, u, sp bool
	for _, c := range pw {
		switch {
		case c > 0x7e || c < 0x20:
			return false
		case c >= '0' && c <= '9':
			d = true
		case c >= 'a' && c <= 'z':
			l = true
		case c >= 'A' && c <= 'Z':
			u = true
		case c == ':' || c == '"' || c == ',':
			return false
		default:
			sp = true
		}
	}
	return d && l && u && sp
}

// SetAdminACL is AMT_AuthorizationService.SetAdminAclEntryEx. digest is the
// 16-byte MD5(user:realm:password), given base64 (RPS, rpc-go) or hex
// (MeshCentral).
func (f *Firmware) SetAdminACL(username, digest string) uint32 {
	if username == "" || len(username) > 16 || strings.ContainsAny(username, ":\"") {
		return PTInvalidParameter
	}
	ha1, ok := decodeDigestPassword(digest)
	if !ok {
		return PTInvalidParameter
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ControlMode == ModePre && f.st.ProvisioningState != StateIn {
		return PTNotPermitted
	}
	if err := f.updateLocked(func(s *State) error {
		s.Admin = AdminAccount{Username: username, HA1: ha1}
		f.auditLocked(AuditSecurityAdmin, 3, Initiator{Type: InitiatorDigest, User: username}, nil, "Admin ACL entry modified")
		return nil
	}); err != nil {
		return PTInternalError
	}
	return PTSuccess
}

func decodeDigestPassword(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) == 32 {
		if b, err := hex.DecodeString(v); err == nil {
			return hex.EncodeToString(b), true
		}
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil || len(b) != 16 {
		return "", false
	}
	return hex.EncodeToString(b), true
}

// AddUser is AMT_AuthorizationService.AddUserAclEntryEx; returns the handle.
func (f *Firmware) AddUser(username, digest string, permission int, realms []int) (int, uint32) {
	ha1, rv := checkUser(username, digest, permission, realms)
	if rv != PTSuccess {
		return 0, rv
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ControlMode == ModePre && f.st.ProvisioningState != StateIn {
		return 0, PTNotPermitted
	}
	if username == f.st.Admin.Username || username == LSAUsername {
		return 0, PTDuplicate
	}
	handle := 1
	for _, u := range f.st.Users {
		if u.Username == username {
			return 0, PTDuplicate
		}
		if u.Handle >= handle {
			handle = u.Handle + 1
		}
	}
	if len(f.st.Users) >= 16 {
		return 0, PTMaxLimitReached
	}
	if err := f.updateLocked(func(s *State) error {
		s.Users = append(s.Users, User{Handle: handle, Username: username, HA1: ha1, AccessPermission: permission, Realms: realms, Enabled: true})
		f.auditLocked(AuditSecurityAdmin, 2, Initiator{Type: InitiatorDigest, User: s.Admin.Username}, nil, "ACL entry added: "+username)
		return nil
	}); err != nil {
		return 0, PTInternalError
	}
	return handle, PTSuccess
}

// StartConfigurationHBased (AMT 19+ TLS-enforced ACM): the device moves to
// IN-provisioning and accepts one mutual-TLS session from a client whose leaf
// certificate has the given hash.
func (f *Firmware) StartConfigurationHBased(hashAlg uint8, serverCertHash []byte) (uint32, uint8, []byte) {
	var n int
	switch hashAlg {
	case 2:
		n = 32
	case 3:
		n = 48
	default:
		return hostif.StatusInvalidParameter, 0, nil
	}
	if len(serverCertHash) < n {
		return hostif.StatusInvalidParameter, 0, nil
	}
	self, err := f.selfCertificate()
	if err != nil {
		f.log.Error("start configuration: device certificate", "err", err)
		return hostif.StatusInternalError, 0, nil
	}
	f.mu.Lock()
	if f.st.ControlMode != ModePre || f.st.Legacy.Started && f.st.ProvisioningState == StateIn {
		f.mu.Unlock()
		return hostif.StatusInvalidAMTMode, 0, nil
	}
	f.setupAlg = hashAlg
	f.setupHash = append([]byte(nil), serverCertHash[:n]...)
	err = f.updateLocked(func(s *State) error {
		s.ProvisioningState = StateIn
		return nil
	})
	f.mu.Unlock()
	if err != nil {
		return hostif.StatusInternalError, 0, nil
	}
	f.emit(EventProvisioningChanged)
	sum := sha256.Sum256(self.Certificate[0])
	return hostif.StatusSuccess, 2, sum[:]
}

// StopConfiguration cancels IN-provisioning.
func (f *Firmware) StopConfiguration() uint32 {
	f.mu.Lock()
	if f.st.ProvisioningState != StateIn {
		f.mu.Unlock()
		return hostif.StatusInvalidAMTMode
	}
	f.setupHash = nil
	legacy := f.st.Legacy.Started
	err := f.updateLocked(func(s *State) error {
		s.ProvisioningState = StatePre
		s.Admin = AdminAccount{}
		s.MEBxPasswordSHA256 = ""
		s.Legacy.Started = false
		return nil
	})
	if err == nil && legacy {
		f.legacy.open = false
		f.recordLegacyLocked(LegacyStopped, "StopConfiguration: back to pre-provisioning; hellos stop")
	}
	f.mu.Unlock()
	if err != nil {
		return hostif.StatusInternalError
	}
	f.emit(EventProvisioningChanged)
	if legacy {
		f.emit(EventLegacySetupChanged)
		f.emit(EventLegacyLog)
	}
	return hostif.StatusSuccess
}

// SetupClientHash is the provisioning client's leaf hash accepted for the
// mutual-TLS setup session while IN-provisioning.
func (f *Firmware) SetupClientHash() (alg uint8, hash []byte, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ProvisioningState != StateIn || f.setupHash == nil {
		return 0, nil, false
	}
	return f.setupAlg, append([]byte(nil), f.setupHash...), true
}
