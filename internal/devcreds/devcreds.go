// Package devcreds keeps each device's credentials in the secret store, so
// that a password is durable before the WS-MAN call that sets it on a device
// (DESIGN.md principle 2): a new value is first staged as "pending", the call
// is made, and only then is it promoted to "current". After a crash at any
// instant, the device holds either the current or the pending value, and both
// are in the store.
package devcreds

import (
	"context"
	"errors"
	"fmt"

	"github.com/amtd-project/amtd/internal/secrets"
)

// Kinds of credentials a device has.
const (
	AMT  = "AMT_PASSWORD"  // digest password of the AMT "admin" user
	MEBx = "MEBX_PASSWORD" // MEBx password (ACM)
	MPS  = "MPS_PASSWORD"  // the device's CIRA (APF) password
	// TLSCert is the certificate amtd installed for the device's TLS, as
	// base64 DER; used to pin the device's TLS endpoint.
	TLSCert = "TLS_ISSUED_CERTIFICATE"
)

const pendingSuffix = "_PENDING"

// Key is the secret-store key of a device's credentials. Device GUIDs are
// unique across tenants.
func Key(guid string) string { return "devices/" + guid }

// Creds is a device's credential entry.
type Creds map[string]string

// Current is the value known to be set on the device ("" if none).
func (c Creds) Current(kind string) string { return c[kind] }

// Pending is a value staged for a call whose outcome is not known yet.
func (c Creds) Pending(kind string) string { return c[kind+pendingSuffix] }

// Candidates lists the values the device may hold for kind: current first,
// then pending; duplicates and empty values removed.
func (c Creds) Candidates(kind string) []string {
	var out []string
	for _, v := range []string{c.Current(kind), c.Pending(kind)} {
		if v != "" && (len(out) == 0 || out[0] != v) {
			out = append(out, v)
		}
	}
	return out
}

// Load reads a device's credentials; a device with none yields an empty,
// non-nil Creds.
func Load(ctx context.Context, s secrets.Store, guid string) (Creds, error) {
	m, err := s.Get(ctx, Key(guid))
	if errors.Is(err, secrets.ErrNotFound) {
		return Creds{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading device credentials: %w", err)
	}
	if m == nil {
		m = map[string]string{}
	}
	return Creds(m), nil
}

func save(ctx context.Context, s secrets.Store, guid string, c Creds) error {
	if err := s.Put(ctx, Key(guid), c); err != nil {
		return fmt.Errorf("saving device credentials: %w", err)
	}
	return nil
}

// Stage durably records value as the pending value of kind, keeping the
// current one. Call it before the WS-MAN call that sets value on the device.
func Stage(ctx context.Context, s secrets.Store, guid, kind, value string) (Creds, error) {
	c, err := Load(ctx, s, guid)
	if err != nil {
		return nil, err
	}
	c[kind+pendingSuffix] = value
	return c, save(ctx, s, guid, c)
}

// Commit promotes the pending value of kind (which must equal value) to
// current. Call it once the device confirmed the change.
func Commit(ctx context.Context, s secrets.Store, guid, kind, value string) (Creds, error) {
	c, err := Load(ctx, s, guid)
	if err != nil {
		return nil, err
	}
	c[kind] = value
	delete(c, kind+pendingSuffix)
	return c, save(ctx, s, guid, c)
}

// Set records value as current directly (for values not set through a
// device call, e.g. a certificate amtd issued and keeps for pinning).
func Set(ctx context.Context, s secrets.Store, guid, kind, value string) error {
	c, err := Load(ctx, s, guid)
	if err != nil {
		return err
	}
	c[kind] = value
	return save(ctx, s, guid, c)
}

// Delete removes every credential of a device (after deactivation).
func Delete(ctx context.Context, s secrets.Store, guid string) error {
	if err := s.Delete(ctx, Key(guid)); err != nil {
		return fmt.Errorf("deleting device credentials: %w", err)
	}
	return nil
}
