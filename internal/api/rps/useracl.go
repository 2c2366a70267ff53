package rps

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// amtd extensions of AMT profiles (not in RPS; absent from answers when
// unset, so RPS-compatible clients see RPS's shape):
//
//   - powerPolicy: the AMT power package, as the device reports it in
//     AMT_SystemPowerScheme (Description, e.g. "Desktop: ON in S0, ME Wake
//     in S3, S4-5", or ElementName when unique) or its SchemeGUID (base64 as
//     AMT reports it, 32 hex digits, or the GUID text form as in setup.bin).
//   - userAcls: additional AMT digest users, [{username, password, realms,
//     accessPermission}]. The password is write-only and sealed in the
//     profile's secret entry; realms are AMT realm numbers or names.
//
// On update an omitted field keeps its value (null, or [] for userAcls,
// clears it), and a user entry without a password keeps the stored
// password of the user of that name.

const (
	// maxUserACLs: Intel SCS profiles allow at most seven digest users.
	maxUserACLs    = 7
	maxPowerPolicy = 128

	msgUserACLs    = "userAcls should be an array of at most 7 objects with username, password, realms and accessPermission"
	msgPowerPolicy = "powerPolicy should be the description or the scheme GUID of an AMT power package (1 to 128 printable characters)"
)

// accessPermissions maps the API's names to AMT's AccessPermission.
var accessPermissions = map[string]int{"local": 0, "network": 1, "any": 2}

func accessName(p int) string {
	for n, v := range accessPermissions {
		if v == p {
			return n
		}
	}
	return strconv.Itoa(p)
}

// realmNames are AMT_AuthorizationService's RealmValues a user may be
// given (22 and 23 are reserved, 0 invalid, 1 reserved).
var realmNames = map[string]int{
	"redirection": 2, "ptadministration": 3, "hardwareasset": 4, "remotecontrol": 5, "storage": 6,
	"eventmanager": 7, "storageadmin": 8, "agentpresencelocal": 9, "agentpresenceremote": 10,
	"circuitbreaker": 11, "networktime": 12, "generalinfo": 13, "firmwareupdate": 14, "eit": 15,
	"localun": 16, "endpointaccesscontrol": 17, "endpointaccesscontroladmin": 18, "eventlogreader": 19,
	"auditlog": 20, "acl": 21, "localsystem": 24,
}

func validRealm(n int) bool { return n >= 2 && n <= 24 && n != 22 && n != 23 }

// parseRealm reads a realm given as a number or a name ("Redirection",
// "RedirectionRealm", case-insensitive).
func parseRealm(v any) (int, bool) {
	switch x := v.(type) {
	case float64:
		n := int(x)
		return n, float64(n) == x && validRealm(n)
	case string:
		k := strings.ToLower(strings.TrimSpace(x))
		if n, err := strconv.Atoi(k); err == nil {
			return n, validRealm(n)
		}
		k = strings.TrimSuffix(k, "realm")
		n, ok := realmNames[k]
		return n, ok
	}
	return 0, false
}

// validACLUsername: 1–16 printable ASCII characters, none of , : " & < >,
// not starting with $$, not AMT's reserved admin names.
func validACLUsername(s string) bool {
	if s == "" || len(s) > 16 || strings.HasPrefix(s, "$$") || strings.ContainsAny(s, ",:\"&<>") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	l := strings.ToLower(s)
	return l != "admin" && l != "administrator"
}

// aclEntry is one validated userAcls element.
type aclEntry struct {
	acl      store.UserACL
	password string // "" when not given
}

// parseUserACLs validates a userAcls value. needPassword(username) says
// whether an entry without a password is an error. It returns the entries
// or an error message (never containing a password).
func parseUserACLs(v any, needPassword func(username string) bool) ([]aclEntry, string) {
	if v == nil {
		return nil, ""
	}
	arr, ok := v.([]any)
	if !ok || len(arr) > maxUserACLs {
		return nil, msgUserACLs
	}
	seen := map[string]bool{}
	out := make([]aclEntry, 0, len(arr))
	for _, el := range arr {
		obj, ok := el.(map[string]any)
		if !ok {
			return nil, msgUserACLs
		}
		for k := range obj {
			switch k {
			case "username", "password", "realms", "accessPermission":
			default:
				return nil, fmt.Sprintf("userAcls entries accept only username, password, realms and accessPermission, not %q", k)
			}
		}
		name, _ := obj["username"].(string)
		if !validACLUsername(name) {
			return nil, "userAcls username should be 1 to 16 printable ASCII characters without spaces or , : \" & < >, not starting with $$ and not admin"
		}
		if seen[strings.ToLower(name)] {
			return nil, fmt.Sprintf("userAcls user %s is listed more than once", name)
		}
		seen[strings.ToLower(name)] = true
		e := aclEntry{acl: store.UserACL{Username: name, Realms: []int{}}}
		switch pw := obj["password"].(type) {
		case nil:
			if needPassword(name) {
				return nil, fmt.Sprintf("userAcls user %s needs a password", name)
			}
		case string:
			if !IsStrongPassword(pw) {
				return nil, fmt.Sprintf("userAcls password of %s should contain at least one lowercase letter, one uppercase letter, one numeric digit, and one special character and be 8 to 32 characters long", name)
			}
			e.password = pw
		default:
			return nil, fmt.Sprintf("userAcls password of %s should be a string", name)
		}
		perm, ok := obj["accessPermission"].(string)
		p, known := accessPermissions[strings.ToLower(perm)]
		if !ok || !known {
			return nil, fmt.Sprintf("userAcls accessPermission of %s should be one of local, network, any", name)
		}
		e.acl.AccessPermission = p
		if rv, ok := obj["realms"]; ok && rv != nil {
			rs, ok := rv.([]any)
			if !ok {
				return nil, fmt.Sprintf("userAcls realms of %s should be an array of AMT realm numbers or names", name)
			}
			dup := map[int]bool{}
			for _, r := range rs {
				n, ok := parseRealm(r)
				if !ok {
					return nil, fmt.Sprintf("userAcls realms of %s: %v is not an AMT realm a user can be given", name, r)
				}
				if !dup[n] {
					dup[n] = true
					e.acl.Realms = append(e.acl.Realms, n)
				}
			}
		}
		out = append(out, e)
	}
	return out, ""
}

// validPowerPolicy: a non-empty string of printable characters, at most
// 128 bytes.
func validPowerPolicy(v any) bool {
	s, ok := v.(string)
	if !ok || strings.TrimSpace(s) == "" || len(s) > maxPowerPolicy {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// userACLJSON is a profile's AMT user in answers (no password).
type userACLJSON struct {
	Username         string `json:"username" yaml:"username"`
	Realms           []int  `json:"realms" yaml:"realms"`
	AccessPermission string `json:"accessPermission" yaml:"accessPermission"`
}

func userACLsOut(acls []store.UserACL) []userACLJSON {
	if len(acls) == 0 {
		return nil
	}
	out := make([]userACLJSON, len(acls))
	for i, a := range acls {
		rs := a.Realms
		if rs == nil {
			rs = []int{}
		}
		out[i] = userACLJSON{Username: a.Username, Realms: rs, AccessPermission: accessName(a.AccessPermission)}
	}
	return out
}

// aclPasswords are the secret entry fields of the users' passwords.
func aclPasswords(entries []aclEntry, old map[string]string) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		pw := e.password
		if pw == "" {
			pw = old[secrets.UserACLPasswordField(e.acl.Username)]
		}
		out[secrets.UserACLPasswordField(e.acl.Username)] = pw
	}
	return out
}

func aclsOf(entries []aclEntry) []store.UserACL {
	out := make([]store.UserACL, len(entries))
	for i, e := range entries {
		out[i] = e.acl
	}
	return out
}

// mergeExtensions applies powerPolicy and userAcls of an update body to
// next (omitted: kept) and returns the users' passwords to keep in the
// secret entry, or a message for a 400 answer.
func mergeExtensions(next *store.Profile, body map[string]any, old map[string]string) (map[string]string, string) {
	if v, ok := body["powerPolicy"]; ok {
		s, _ := v.(string) // null clears
		next.PowerPolicy = strings.TrimSpace(s)
	}
	if v, ok := body["userAcls"]; ok {
		entries, msg := parseUserACLs(v, func(u string) bool { return old[secrets.UserACLPasswordField(u)] == "" })
		if msg != "" {
			return nil, msg
		}
		next.UserACLs = aclsOf(entries)
		return aclPasswords(entries, old), ""
	}
	kept := map[string]string{}
	for _, a := range next.UserACLs {
		f := secrets.UserACLPasswordField(a.Username)
		kept[f] = old[f]
	}
	return kept, ""
}
