package devaccess

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/amtd-project/amtd/internal/devcreds"
)

// Raw access, for callers that open their own connections to a device
// instead of using a WS-MAN client (the redirection relay, ports
// 16994/16995): the same path choice, address and credentials as Open.

// Redirection ports (spec/mps.md §7).
const (
	RedirectionPort    = 16994
	RedirectionTLSPort = 16995
)

// Locate reports how the device is reached now, exactly as Open would
// choose, and returns the credentials amtd holds for it. For the LAN path
// Route.Addr is the WS-MAN endpoint: its host is the device's address, and
// Route.TLS says that a TLS certificate is pinned (devcreds.TLSCert).
// Errors are Open's: ErrNotConnected, ErrNoCredentials (LAN path without an
// AMT password), or a store/secret-store failure. On the CIRA path the
// credentials may lack an AMT password; callers that need it check.
func (a *Access) Locate(ctx context.Context, guid string) (Route, devcreds.Creds, error) {
	guid = NormalizeGUID(guid)
	r, creds, err := a.route(ctx, guid)
	if err != nil {
		return Route{}, nil, err
	}
	if creds == nil {
		if creds, err = devcreds.Load(ctx, a.o.Secrets, guid); err != nil {
			return Route{}, nil, fmt.Errorf("devaccess: %s: %w", guid, err)
		}
	}
	return r, creds, nil
}

// DialLAN opens a TCP connection to addr (host:port) with
// Options.DialContext.
func (a *Access) DialLAN(ctx context.Context, addr string) (net.Conn, error) {
	return a.o.DialContext(ctx, "tcp", addr)
}

// PinnedTLS returns the client TLS configuration that accepts exactly the
// certificate amtd installed on the device (creds' devcreds.TLSCert), as
// the LAN WS-MAN path uses, with Options.LegacyTLS applied. host is the
// name or address dialled (used for SNI when it is a name).
func (a *Access) PinnedTLS(creds devcreds.Creds, host string) (*tls.Config, error) {
	return pinnedTLS(creds.Current(devcreds.TLSCert), host, a.o.LegacyTLS)
}
