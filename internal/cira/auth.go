package cira

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
)

// ErrUnknownDevice is returned by an Authenticator for a UUID it does not
// know; the device is sent DISCONNECT(1 HOST_NOT_ALLOWED_TO_CONNECT).
var ErrUnknownDevice = errors.New("cira: unknown device")

// Authenticator looks up the device that presents a UUID in
// PROTOCOLVERSION. It is called once per connection, before the device
// sends its credentials, with a context bounded by the authentication
// deadline. uuid is the lower-case text form. Return ErrUnknownDevice (or
// an error wrapping it) for an unregistered device; any other error is
// treated as a temporary failure (DISCONNECT(7 SERVICE_NOT_AVAILABLE)).
type Authenticator interface {
	LookupDevice(ctx context.Context, uuid string) (DeviceAuth, error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, uuid string) (DeviceAuth, error)

// LookupDevice calls f.
func (f AuthenticatorFunc) LookupDevice(ctx context.Context, uuid string) (DeviceAuth, error) {
	return f(ctx, uuid)
}

// DeviceAuth is what the server needs to admit one device. The server keeps
// it only until USERAUTH_REQUEST has been checked; the tenant stays with the
// connection.
//
// AMT admin credentials are deliberately not part of it: WS-MAN callers
// (go-wsman-messages does digest itself) and the redirection relay read
// them from the store when they need them, so a password changed while the
// device is connected is never served stale from a copy held here.
type DeviceAuth struct {
	// Tenant the device belongs to; reported in ConnInfo.
	Tenant string
	// Username and Password are the expected MPS credentials (CIRA config
	// username, MPS_PASSWORD), compared in constant time. An empty Password
	// never matches.
	Username string
	Password string
	// Verify, when set, replaces the comparison with Username/Password (e.g.
	// to check against a hash without handing out the secret). It must
	// compare in constant time.
	Verify func(username, password string) bool
}

// check verifies the credentials a device presented.
func (a *DeviceAuth) check(username, password string) bool {
	if a.Verify != nil {
		return a.Verify(username, password)
	}
	// Compare digests so that neither content nor length leaks through
	// timing; both comparisons always run.
	u := constantTimeEqual(username, a.Username)
	p := constantTimeEqual(password, a.Password)
	return u&p == 1 && a.Password != ""
}

func constantTimeEqual(a, b string) int {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:])
}
