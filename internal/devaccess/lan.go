package devaccess

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/amtd-project/amtd/internal/amt"
)

// ErrResponseTooLarge is returned for a LAN response beyond
// Options.MaxResponseBytes.
var ErrResponseTooLarge = amt.ErrResponseTooLarge

// lanTransport reaches a device's LAN endpoint with a connection per
// exchange (amt.DirectTransport), TLS when tlsConf is set. A connection that
// cannot be made is ErrUnreachable: nothing reached the device, so for the
// API it is not connected.
func lanTransport(dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string,
	tlsConf *tls.Config, maxResp int64) *amt.DirectTransport {
	return &amt.DirectTransport{Name: "devaccess: " + addr, MaxResponse: maxResp,
		Dial: func(ctx context.Context) (net.Conn, error) {
			conn, err := dial(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrUnreachable, err)
			}
			if tlsConf == nil {
				return conn, nil
			}
			tc := tls.Client(conn, tlsConf)
			if err := tc.HandshakeContext(ctx); err != nil {
				conn.Close()
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			return tc, nil
		}}
}
