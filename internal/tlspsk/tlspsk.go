// Package tlspsk implements TLS with pre-shared keys (RFC 4279 plain PSK key
// exchange, RFC 5487 suites) over TCP, for TLS 1.0, 1.1 and 1.2, client and
// server. It exists for Intel AMT PSK remote configuration
// (spec/legacy.md §9): the configuration server connects to the device as TLS
// client with the PID as PSK identity; the simulated device is the TLS
// server. Go's crypto/tls has no PSK suites.
//
// Scope, on purpose: full handshakes only (no session resumption, no
// renegotiation — a renegotiation request is refused with a no_renegotiation
// warning), no extensions beyond RFC 5746 renegotiation_info (signalled by the
// SCSV), no compression. Record protection: AES-CBC with HMAC
// (MAC-then-encrypt, chained IV in TLS 1.0, explicit IV from TLS 1.1) and
// AES-GCM (TLS 1.2).
package tlspsk

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// Protocol versions.
const (
	VersionTLS10 uint16 = 0x0301
	VersionTLS11 uint16 = 0x0302
	VersionTLS12 uint16 = 0x0303
)

// VersionName returns "TLS 1.0" etc.
func VersionName(v uint16) string {
	switch v {
	case VersionTLS10:
		return "TLS 1.0"
	case VersionTLS11:
		return "TLS 1.1"
	case VersionTLS12:
		return "TLS 1.2"
	}
	return "0x" + hexU16(v)
}

// Errors. Handshake and record errors wrap one of them; when this side sent
// a fatal alert, or received one, the error is an *AlertError (errors.As).
var (
	ErrUnknownIdentity  = errors.New("tlspsk: unknown PSK identity")
	ErrBadRecordMAC     = errors.New("tlspsk: record authentication failed (wrong PSK or corrupted data)")
	ErrBadFinished      = errors.New("tlspsk: Finished verification failed (wrong PSK)")
	ErrNoCommonSuite    = errors.New("tlspsk: no cipher suite in common")
	ErrVersion          = errors.New("tlspsk: no protocol version in common")
	ErrUnexpected       = errors.New("tlspsk: unexpected message")
	ErrMalformed        = errors.New("tlspsk: malformed message")
	ErrConfig           = errors.New("tlspsk: invalid configuration")
	ErrRenegotiation    = errors.New("tlspsk: renegotiation_info mismatch")
	ErrRecordOverflow   = errors.New("tlspsk: record too large")
	ErrHandshakeTimeout = errors.New("tlspsk: handshake canceled")
)

// PSKFromPPS returns the PSK that amtd uses for an AMT provisioning
// passphrase: the 32 ASCII characters of the PPS (dashes and spaces
// removed, upper-cased). The exact mapping Intel firmware used is not in any
// public source (spec/legacy.md §9: unverified); the ASCII bytes are the
// RFC 4279 §5.4 convention for text keys and what "PPS forms the PSK" in the
// OEM guides most plausibly means. Both sides of amtd (server and simulator)
// use this function, so it can be changed in one place.
func PSKFromPPS(pps string) ([]byte, error) {
	s := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(pps)))
	if len(s) != 32 {
		return nil, fmt.Errorf("%w: PPS must be 32 characters A-Z/0-9 (got %d)", ErrConfig, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return nil, fmt.Errorf("%w: PPS must be 32 characters A-Z/0-9", ErrConfig)
		}
	}
	return []byte(s), nil
}

// Config configures a client or a server. A Config may be shared by many
// connections and must not be modified after use.
type Config struct {
	// Identity and PSK: the client sends Identity and uses PSK. A server
	// without GetPSK accepts exactly this identity with this key.
	Identity string
	PSK      []byte

	// GetPSK (server) returns the key for a client's identity; return an
	// error wrapping ErrUnknownIdentity (or a nil key) for an identity it
	// does not know — the client then gets an unknown_psk_identity alert.
	GetPSK func(identity string) ([]byte, error)

	// IdentityHint (server) is sent in a ServerKeyExchange when not empty.
	IdentityHint string

	// MinVersion and MaxVersion bound the protocol version; zero means
	// TLS 1.0 and TLS 1.2.
	MinVersion, MaxVersion uint16

	// CipherSuites in preference order (the server's order decides); nil
	// means CipherSuites(). Unknown ids are ignored.
	CipherSuites []uint16

	// Rand is the entropy source; nil means crypto/rand.
	Rand io.Reader
}

func (c *Config) rand() io.Reader {
	if c.Rand != nil {
		return c.Rand
	}
	return rand.Reader
}

func (c *Config) versions() (lo, hi uint16) {
	lo, hi = c.MinVersion, c.MaxVersion
	if lo == 0 {
		lo = VersionTLS10
	}
	if hi == 0 {
		hi = VersionTLS12
	}
	return lo, hi
}

// suiteList returns the configured suites that this package implements.
func (c *Config) suiteList() []*suite {
	if c.CipherSuites == nil {
		return suites()
	}
	var out []*suite
	for _, id := range c.CipherSuites {
		if s := suiteByID(id); s != nil {
			out = append(out, s)
		}
	}
	return out
}

func (c *Config) check(isClient bool) error {
	lo, hi := c.versions()
	if lo < VersionTLS10 || hi > VersionTLS12 || lo > hi {
		return fmt.Errorf("%w: versions %s to %s", ErrConfig, VersionName(lo), VersionName(hi))
	}
	if len(c.suiteList()) == 0 {
		return fmt.Errorf("%w: no supported cipher suite configured", ErrConfig)
	}
	if len(c.Identity) > maxIdentityLength || len(c.IdentityHint) > maxIdentityLength {
		return fmt.Errorf("%w: identity longer than %d bytes", ErrConfig, maxIdentityLength)
	}
	if (isClient || c.GetPSK == nil) && (c.Identity == "" || len(c.PSK) == 0) {
		return fmt.Errorf("%w: Identity and PSK are required", ErrConfig)
	}
	if len(c.PSK) > 0xffff/2 {
		return fmt.Errorf("%w: PSK too long", ErrConfig)
	}
	return nil
}

// PIDPPSConfig returns a Config for an AMT PID/PPS pair: Identity is the PID
// (dashes removed, upper-cased), PSK is PSKFromPPS(pps). Usable as is by a
// client, and by a server that accepts only this pair.
func PIDPPSConfig(pid, pps string) (*Config, error) {
	key, err := PSKFromPPS(pps)
	if err != nil {
		return nil, err
	}
	id := strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(pid)))
	if len(id) != 8 {
		return nil, fmt.Errorf("%w: PID must be 8 characters (got %d)", ErrConfig, len(id))
	}
	return &Config{Identity: id, PSK: key}, nil
}

// Dial connects to addr and performs the client handshake, bounded by ctx.
func Dial(ctx context.Context, network, addr string, cfg *Config) (*Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// NewListener wraps a listener so that Accept returns server-side Conns (the
// handshake runs on first Read or Write, or on Handshake).
func NewListener(inner net.Listener, cfg *Config) net.Listener {
	return &listener{Listener: inner, cfg: cfg}
}

type listener struct {
	net.Listener
	cfg *Config
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(c, l.cfg), nil
}
