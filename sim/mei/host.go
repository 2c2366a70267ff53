package mei

import (
	"context"

	"github.com/amtd-project/amtd/sim/hostif"
)

// Host performs typed MEI commands against the socket at Path the way rpc-go
// uses /dev/mei0: every command opens its own connection, connects the
// client, runs one command and closes (CertHashes shares one connection for
// EnumerateHashHandles and the GetCertHashEntry calls).
type Host struct {
	Path string
}

// withClient dials guid at h.Path, runs f and closes the connection.
func withClient[T any](ctx context.Context, h Host, guid [16]byte, f func(*Conn) (T, error)) (T, error) {
	c, err := Dial(ctx, h.Path, guid)
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.Close()
	return f(c)
}

// GetControlMode over a fresh IAMTHIF connection.
func (h Host) GetControlMode(ctx context.Context) (uint32, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (uint32, error) { return c.GetControlMode(ctx) })
}

// GetProvisioningState over a fresh IAMTHIF connection.
func (h Host) GetProvisioningState(ctx context.Context) (uint32, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (uint32, error) { return c.GetProvisioningState(ctx) })
}

// GetUUID over a fresh IAMTHIF connection.
func (h Host) GetUUID(ctx context.Context) ([16]byte, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) ([16]byte, error) { return c.GetUUID(ctx) })
}

// GetCodeVersions over a fresh IAMTHIF connection.
func (h Host) GetCodeVersions(ctx context.Context) (CodeVersions, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (CodeVersions, error) { return c.GetCodeVersions(ctx) })
}

// GetLocalSystemAccount over a fresh IAMTHIF connection.
func (h Host) GetLocalSystemAccount(ctx context.Context) (username, password string, err error) {
	type lsa struct{ u, p string }
	r, err := withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (lsa, error) {
		u, p, err := c.GetLocalSystemAccount(ctx)
		return lsa{u, p}, err
	})
	return r.u, r.p, err
}

// GetLANInterfaceSettings over a fresh IAMTHIF connection.
func (h Host) GetLANInterfaceSettings(ctx context.Context, index uint32) (hostif.LANSettings, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (hostif.LANSettings, error) {
		return c.GetLANInterfaceSettings(ctx, index)
	})
}

// CertHashes runs EnumerateHashHandles and every GetCertHashEntry on one
// IAMTHIF connection.
func (h Host) CertHashes(ctx context.Context) ([]hostif.CertHashEntry, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) ([]hostif.CertHashEntry, error) { return c.CertHashes(ctx) })
}

// GetPKIFQDNSuffix over a fresh IAMTHIF connection.
func (h Host) GetPKIFQDNSuffix(ctx context.Context) (string, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (string, error) { return c.GetPKIFQDNSuffix(ctx) })
}

// GetRemoteAccessConnectionStatus over a fresh IAMTHIF connection.
func (h Host) GetRemoteAccessConnectionStatus(ctx context.Context) (RemoteAccessStatus, error) {
	return withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (RemoteAccessStatus, error) {
		return c.GetRemoteAccessConnectionStatus(ctx)
	})
}

// Unprovision over a fresh IAMTHIF connection (rpc-go sends mode 0).
func (h Host) Unprovision(ctx context.Context, mode uint32) error {
	_, err := withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (struct{}, error) {
		return struct{}{}, c.Unprovision(ctx, mode)
	})
	return err
}

// StartConfigurationHBased over a fresh IAMTHIF connection.
func (h Host) StartConfigurationHBased(ctx context.Context, alg uint8, serverHash []byte) (amtAlg uint8, amtHash []byte, err error) {
	type res struct {
		alg  uint8
		hash []byte
	}
	r, err := withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (res, error) {
		a, hh, err := c.StartConfigurationHBased(ctx, alg, serverHash)
		return res{a, hh}, err
	})
	return r.alg, r.hash, err
}

// StopConfiguration over a fresh IAMTHIF connection.
func (h Host) StopConfiguration(ctx context.Context) error {
	_, err := withClient(ctx, h, GUIDIAMTHIF, func(c *Conn) (struct{}, error) {
		return struct{}{}, c.StopConfiguration(ctx)
	})
	return err
}

// IsChangeToAMTEnabled over a fresh WDIF connection.
func (h Host) IsChangeToAMTEnabled(ctx context.Context) (uint8, error) {
	return withClient(ctx, h, GUIDWDIF, func(c *Conn) (uint8, error) { return c.IsChangeToAMTEnabled(ctx) })
}

// SetAmtOperationalState over a fresh WDIF connection.
func (h Host) SetAmtOperationalState(ctx context.Context, enabled bool) (uint32, error) {
	return withClient(ctx, h, GUIDWDIF, func(c *Conn) (uint32, error) { return c.SetAmtOperationalState(ctx, enabled) })
}
