package firmware

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
)

// User ACL access permissions (AMT_AuthorizationService AccessPermission).
const (
	AccessLocal   = 0 // local interface (LMS on the host) only
	AccessNetwork = 1 // network interface only
	AccessAny     = 2 // both
)

// Return values of the user ACL methods.
const (
	PTInvalidIndex uint32 = 35   // INVALID_INDEX
	PTInvalidRealm uint32 = 2055 // INVALID_REALM
)

// validRealm: the AMT realm numbers a user ACL entry may name (2
// redirection … 24 local system; 0 invalid and 1 reserved are refused).
func validRealm(r int) bool { return r >= 2 && r <= 24 }

// checkUser validates the parameters of AddUserAclEntryEx and
// UpdateUserAclEntryEx: 7-bit ASCII user name of 1–16 characters without
// the digest separators, a known access permission, valid realms.
func checkUser(username, digest string, permission int, realms []int) (string, uint32) {
	if username == "" || len(username) > 16 || strings.ContainsAny(username, ":\",&<>") ||
		strings.HasPrefix(username, "$$") {
		return "", PTInvalidParameter
	}
	for i := 0; i < len(username); i++ {
		if username[i] < 0x20 || username[i] > 0x7e {
			return "", PTInvalidParameter
		}
	}
	if permission < AccessLocal || permission > AccessAny {
		return "", PTInvalidParameter
	}
	for _, r := range realms {
		if !validRealm(r) {
			return "", PTInvalidRealm
		}
	}
	ha1, ok := decodeDigestPassword(digest)
	if !ok {
		return "", PTInvalidParameter
	}
	return ha1, PTSuccess
}

// UpdateUser is AMT_AuthorizationService.UpdateUserAclEntryEx: it replaces
// the user name, password, access permission and realms of the entry with
// that handle.
func (f *Firmware) UpdateUser(handle int, username, digest string, permission int, realms []int, by Initiator) uint32 {
	ha1, rv := checkUser(username, digest, permission, realms)
	if rv != PTSuccess {
		return rv
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ControlMode == ModePre && f.st.ProvisioningState != StateIn {
		return PTNotPermitted
	}
	if username == f.st.Admin.Username || username == LSAUsername {
		return PTDuplicate
	}
	idx := -1
	for i, u := range f.st.Users {
		if u.Handle == handle {
			idx = i
		} else if u.Username == username {
			return PTDuplicate
		}
	}
	if idx < 0 {
		return PTInvalidHandle
	}
	if err := f.updateLocked(func(s *State) error {
		u := &s.Users[idx]
		u.Username, u.HA1, u.AccessPermission, u.Realms = username, ha1, permission, slices.Clone(realms)
		f.auditLocked(AuditSecurityAdmin, 3, by, nil, "ACL entry modified: "+username)
		return nil
	}); err != nil {
		return PTInternalError
	}
	return PTSuccess
}

// RemoveUser is AMT_AuthorizationService.RemoveUserAclEntry.
func (f *Firmware) RemoveUser(handle int, by Initiator) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, u := range f.st.Users {
		if u.Handle != handle {
			continue
		}
		if err := f.updateLocked(func(s *State) error {
			s.Users = slices.Delete(s.Users, i, i+1)
			f.auditLocked(AuditSecurityAdmin, 4, by, nil, "ACL entry removed: "+u.Username)
			return nil
		}); err != nil {
			return PTInternalError
		}
		return PTSuccess
	}
	return PTInvalidHandle
}

// UserHandles returns the handles of the user ACL entries in increasing
// order (EnumerateUserAclEntries).
func (f *Firmware) UserHandles() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]int, 0, len(f.st.Users))
	for _, u := range f.st.Users {
		out = append(out, u.Handle)
	}
	slices.Sort(out)
	return out
}

// GetUser returns the entry with that handle (GetUserAclEntryEx).
func (f *Firmware) GetUser(handle int) (User, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.st.Users {
		if u.Handle == handle {
			u.Realms = slices.Clone(u.Realms)
			return u, true
		}
	}
	return User{}, false
}

// LookupUserFrom is LookupUser for a request arriving on the local (LMS)
// or the network interface: a user ACL entry only logs in where its
// AccessPermission allows (the administrator and the LSA are unaffected).
func (f *Firmware) LookupUserFrom(username string, local bool) (Credential, bool) {
	c, ok := f.LookupUser(username)
	if !ok || c.Admin {
		return c, ok
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, u := range f.st.Users {
		if u.Enabled && u.Username == username {
			switch {
			case u.AccessPermission == AccessAny,
				u.AccessPermission == AccessLocal && local,
				u.AccessPermission == AccessNetwork && !local:
				return c, true
			}
			return Credential{}, false
		}
	}
	return Credential{}, false
}

// UserCanLogIn reports whether a user ACL entry logs in with password on
// the local (LMS) or the network interface (for tests; the device itself
// holds only the digest HA1, never the password).
func (f *Firmware) UserCanLogIn(username, password string, local bool) bool {
	c, ok := f.LookupUserFrom(username, local)
	if !ok {
		return false
	}
	h := md5.Sum([]byte(username + ":" + f.Realm() + ":" + password))
	return c.HA1 == h
}

// ---- power packages (AMT_SystemPowerScheme) ----

// PowerScheme is one AMT power package the platform offers.
type PowerScheme struct {
	InstanceID  string // "SCHEME n"
	Description string // e.g. "Desktop: ON in S0"
	GUID        []byte // SchemeGUID, 16 bytes in firmware order
}

// SchemeGUID is the base64 form AMT_SystemPowerScheme reports.
func (p PowerScheme) SchemeGUID() string { return base64.StdEncoding.EncodeToString(p.GUID) }

// PowerSchemeElementName is the ElementName of every AMT_SystemPowerScheme.
const PowerSchemeElementName = "Intel(r) AMT Power Scheme"

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// desktopSchemes are the power packages of a desktop platform, with the
// firmware's scheme GUIDs.
var desktopSchemes = []PowerScheme{
	{"SCHEME 0", "Desktop: ON in S0", mustHex("944F8312FB104FDC968E1E232B0C9065")},
	{"SCHEME 1", "Desktop: ON in S0, ME Wake in S3, S4-5", mustHex("7322734623DC432FA98A13D37982D855")},
	{"SCHEME 2", "Desktop: ON in S0, ME Wake in S3, S4-5, OFF After Power Loss", mustHex("D60BE3ED04C52C46B772D18018EE2FC4")},
}

// defaultPowerScheme is the factory power package (ME wake in S3, S4-5).
const defaultPowerScheme = "SCHEME 1"

// PowerSchemes returns the platform's power packages.
func (f *Firmware) PowerSchemes() []PowerScheme {
	out := make([]PowerScheme, len(desktopSchemes))
	for i, p := range desktopSchemes {
		p.GUID = slices.Clone(p.GUID)
		out[i] = p
	}
	return out
}

// ActivePowerScheme returns the InstanceID of the selected power package.
func (f *Firmware) ActivePowerScheme() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.PowerScheme == "" {
		return defaultPowerScheme
	}
	return f.st.PowerScheme
}

// SetPowerScheme is AMT_SystemPowerScheme.SetPowerScheme on the instance
// instanceID: it selects that power package (persisted).
func (f *Firmware) SetPowerScheme(instanceID string, by Initiator) uint32 {
	var found *PowerScheme
	for i := range desktopSchemes {
		if desktopSchemes[i].InstanceID == instanceID {
			found = &desktopSchemes[i]
		}
	}
	if found == nil {
		return PTNotFound
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.ControlMode == ModePre && f.st.ProvisioningState != StateIn {
		return PTNotPermitted
	}
	if err := f.updateLocked(func(s *State) error {
		s.PowerScheme = instanceID
		f.auditLocked(AuditSecurityAdmin, 16, by, found.GUID, "Power package modified: "+found.Description)
		return nil
	}); err != nil {
		return PTInternalError
	}
	return PTSuccess
}
