package cira

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// Config configures a Server. Zero durations and sizes mean the defaults
// named in each field's comment; tests shorten the protocol timings.
type Config struct {
	// Certificate is the CIRA server certificate (RSA key, leaf first, then
	// intermediates). GetCertificate, when set, is used instead (e.g. for
	// rotation); it must return a certificate even when the client sends no
	// server name, since AMT does not rely on SNI.
	Certificate    *tls.Certificate
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// LegacyTLS lowers the minimum TLS version to 1.0 for old firmware
	// (spec/mps.md §1.3). Off by default: TLS 1.2 minimum.
	LegacyTLS bool

	// Authenticator looks devices up by UUID and verifies their MPS
	// credentials. Required.
	Authenticator Authenticator

	// Observer receives connection status events. Optional.
	Observer Observer

	// Logger receives structured logs; slog.Default() when nil.
	Logger *slog.Logger

	// AuthTimeout bounds the TLS handshake plus the APF exchange up to
	// USERAUTH_SUCCESS (default 30 s, spec/mps.md §3.2).
	AuthTimeout time.Duration
	// LookupTimeout bounds the server's own look-up of a device's
	// credentials (default 60 s). The look-up is not charged to the
	// device: the authentication deadline moves by the time it took, so a
	// burst of devices queueing on the database is served, not turned away
	// after the expensive TLS handshake and left to retry.
	LookupTimeout time.Duration
	// IdleTimeout closes a connection that has received nothing for this
	// long (default 90 s, spec/mps.md §3.4). A device that adopts a longer
	// keepalive interval than proposed gets a proportionally longer timeout.
	IdleTimeout time.Duration
	// KeepaliveInterval and KeepaliveTimeout are the values proposed in
	// KEEPALIVE_OPTIONS_REQUEST (defaults 30 s and 0 s, as MPS sends).
	KeepaliveInterval time.Duration
	KeepaliveTimeout  time.Duration
	// ForwardSettle is how long after the most recent GLOBAL_REQUEST the
	// keepalive options are sent when no forward for port 5900 ends the
	// burst (default 2 s, spec/mps.md §3.1).
	ForwardSettle time.Duration
	// WriteTimeout bounds every write to a device; a device that does not
	// take its bytes for this long loses its connection (default 30 s).
	WriteTimeout time.Duration
	// AuthFailureDelay is waited before answering a wrong password, to slow
	// guessing (default 1 s; negative for none).
	AuthFailureDelay time.Duration

	// ChannelWindow is the receive window advertised for every channel, also
	// the largest CHANNEL_DATA accepted (default 81920, MPS's default;
	// 32768–1048576).
	ChannelWindow int
	// MaxChannels bounds the channels open at once on one connection,
	// including half-closed ones (default 16).
	MaxChannels int
	// WSMANConcurrency bounds the WS-MAN exchanges in flight to one device
	// through RoundTripper (default 4, spec/mps.md §4.4).
	WSMANConcurrency int
	// MaxResponseBytes bounds a WS-MAN response (head and body) read through
	// RoundTripper (default 16 MiB).
	MaxResponseBytes int64
}

// Defaults.
const (
	DefaultAuthTimeout       = 30 * time.Second
	DefaultLookupTimeout     = 60 * time.Second
	DefaultIdleTimeout       = 90 * time.Second
	DefaultKeepaliveInterval = 30 * time.Second
	DefaultForwardSettle     = 2 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultAuthFailureDelay  = time.Second
	DefaultChannelWindow     = 81920
	MinChannelWindow         = 32768
	MaxChannelWindow         = 1 << 20
	DefaultMaxChannels       = 16
	DefaultWSMANConcurrency  = 4
	DefaultMaxResponseBytes  = 16 << 20
)

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Authenticator == nil {
		return cfg, errors.New("cira: Config.Authenticator is required")
	}
	if cfg.Certificate == nil && cfg.GetCertificate == nil {
		return cfg, errors.New("cira: Config.Certificate or GetCertificate is required")
	}
	if cfg.Certificate != nil && len(cfg.Certificate.Certificate) == 0 {
		return cfg, errors.New("cira: Config.Certificate has no certificate")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	setDur := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	setDur(&cfg.AuthTimeout, DefaultAuthTimeout)
	setDur(&cfg.LookupTimeout, DefaultLookupTimeout)
	setDur(&cfg.IdleTimeout, DefaultIdleTimeout)
	setDur(&cfg.KeepaliveInterval, DefaultKeepaliveInterval)
	setDur(&cfg.ForwardSettle, DefaultForwardSettle)
	setDur(&cfg.WriteTimeout, DefaultWriteTimeout)
	switch {
	case cfg.AuthFailureDelay == 0:
		cfg.AuthFailureDelay = DefaultAuthFailureDelay
	case cfg.AuthFailureDelay < 0:
		cfg.AuthFailureDelay = 0
	}
	if cfg.KeepaliveTimeout < 0 {
		cfg.KeepaliveTimeout = 0
	}
	if cfg.ChannelWindow == 0 {
		cfg.ChannelWindow = DefaultChannelWindow
	}
	if cfg.ChannelWindow < MinChannelWindow || cfg.ChannelWindow > MaxChannelWindow {
		return cfg, fmt.Errorf("cira: ChannelWindow %d outside %d–%d", cfg.ChannelWindow, MinChannelWindow, MaxChannelWindow)
	}
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	if cfg.WSMANConcurrency <= 0 {
		cfg.WSMANConcurrency = DefaultWSMANConcurrency
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	return cfg, nil
}

// rsaKeyExchangeSuites are the RSA key-exchange suites AMT negotiates (at
// least up to AMT 16); Go leaves them out of its default list since 1.22,
// but uses them when a config names them (spec/mps.md §1.3).
var rsaKeyExchangeSuites = []uint16{
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// TLSConfig returns the CIRA listener's TLS configuration (spec/mps.md
// §1.3): Go's secure suites plus the RSA key-exchange suites, listed
// explicitly so no GODEBUG setting is needed; TLS 1.2 minimum, or TLS 1.0
// when legacy is set; no client certificate; the certificate served whatever
// the client's SNI. Each APF message is written as one TLS record where it
// fits (dynamic record sizing off), as MPS does. The private-key operations of
// handshakes run a few at a time in arrival order (keyLimiter).
func TLSConfig(cert *tls.Certificate, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), legacy bool) *tls.Config {
	suites := make([]uint16, 0, 16)
	for _, s := range tls.CipherSuites() {
		suites = append(suites, s.ID)
	}
	suites = append(suites, rsaKeyExchangeSuites...)
	if getCert == nil {
		getCert = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }
	}
	lim := newKeyLimiter(runtime.GOMAXPROCS(0))
	limited := func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := getCert(hi)
		if err != nil || c == nil {
			return c, err
		}
		return lim.certificate(c), nil
	}
	minVersion := uint16(tls.VersionTLS12)
	if legacy {
		minVersion = tls.VersionTLS10
	}
	return &tls.Config{
		GetCertificate:              limited,
		MinVersion:                  minVersion,
		CipherSuites:                suites,
		ClientAuth:                  tls.NoClientCert,
		DynamicRecordSizingDisabled: true,
	}
}
