package secrets

import (
	"encoding/hex"
	"regexp"
)

// Kinds of configuration objects with a secret entry (the middle part of an
// object key).
const (
	KindProfile  = "profiles"
	KindDomain   = "domains"
	KindCIRA     = "ciraconfigs"
	KindWireless = "wirelessconfigs"
)

// Fields of object entries (RPS's Vault field names).
const (
	// FieldAMTPassword: profile entry, the static AMT admin password.
	FieldAMTPassword = "AMT_PASSWORD"
	// FieldMEBxPassword: profile entry, the static MEBx password.
	FieldMEBxPassword = "MEBX_PASSWORD"
	// FieldMPSPassword: CIRA config entry, the MPS password given to every
	// device (absent: a random one per device).
	FieldMPSPassword = "MPS_PASSWORD"
	// FieldPSKPassphrase: wireless config entry, the WPA/WPA2 passphrase.
	FieldPSKPassphrase = "PSK_PASSPHRASE"
	// FieldPFX: domain entry, the provisioning certificate as base64 PKCS#12.
	FieldPFX = "CERT"
	// FieldPFXPassword: domain entry, the PKCS#12 password.
	FieldPFXPassword = "CERT_PASSWORD"
	// FieldUserACLPasswordPrefix: profile entry, followed by a user name
	// (UserACLPasswordField): the password of one of the profile's
	// additional AMT digest users (amtd extension).
	FieldUserACLPasswordPrefix = "USER_ACL_PASSWORD:"
)

// UserACLPasswordField is the profile entry field holding the password of
// the profile's AMT user username.
func UserACLPasswordField(username string) string { return FieldUserACLPasswordPrefix + username }

var plainTenant = regexp.MustCompile(`^[A-Za-z0-9._-]*$`)

// ObjectKey is the key of a configuration object's secret entry:
// tenants/<tenant>/<kind>/<secret id>, where the secret id is the random id
// stored in the object's row (never its name, so a duplicate create cannot
// overwrite another object's secret). The tenant segment is "t_<tenant>" for
// plain tenant ids and "x_<hex>" otherwise, so no tenant id can reach into
// another tenant's keys.
func ObjectKey(tenant, kind, id string) string {
	seg := "t_" + tenant
	if !plainTenant.MatchString(tenant) {
		seg = "x_" + hex.EncodeToString([]byte(tenant))
	}
	return "tenants/" + seg + "/" + kind + "/" + id
}
