// Package provision is amtd's provisioning engine: the server side of
// activation (CCM, ACM, CCM→ACM upgrade, reconfiguration of activated
// devices), deactivation and maintenance as spec/activation.md describes them,
// and the configuration of a device from an AMT profile (§10).
//
// Each flow is a plain sequence of steps over an *amt.Client. The engine is
// an rpcproto.Handler (the rpc-go WebSocket relay), but nothing below Serve
// knows about WebSockets: a Conn is any http.RoundTripper that can also wait
// (firmware settling delays) and report progress, and Configure takes only an
// *amt.Client, so other paths to a device (direct TLS, legacy PKI) reuse the
// configuration steps. A Conn that is also a Tunneler reaches the device's
// TLS port through the same path; the engine uses it for AMT 19+ devices
// that enforce TLS on local ports, for --tls-tunnel clients and for devices
// it left TLS-only (tunnel.go), with its own peer verification.
//
// Durability (DESIGN.md principle 2): every password or key is staged in the
// secret store (package devcreds) before the WS-MAN call that sets it, and
// committed once the device confirmed it. See resume.go for how an activation
// interrupted at any instant is completed by running it again.
//
// Deliberate differences from RPS (activation.md):
//
//   - 802.1x EAP-TLS and TLS certificates come from amtd's own CA: the
//     device generates the key (GenerateKeyPair), amtd reads its public key
//     and signs a certificate for it, AddCertificate pairs them. No
//     Enterprise Assistant and no PKCS#10 round; the private key never
//     leaves the device. 802.1x protocols that need user credentials (PEAP,
//     EAP-FAST) are refused, and so is the MicrosoftCA TLS authority.
//   - A lost answer to Setup/AdminSetup/UpgradeClientToAdmin counts as
//     success only if the device is in the new mode *and* accepts the new
//     password.
//   - The tenant check applies to pre-provisioning devices too.
//   - AMT 19+ and --tls-tunnel (tunnel.go): amtd bundles no Intel On-Die
//     CA roots. Before amtd installed its own TLS certificate, the device's
//     certificate is accepted unverified unless Config.ODCARoots is set;
//     afterwards it is pinned to the certificates amtd issued. The ACM
//     checks (certificate hashes, DNS suffix, domain) are made before any
//     WS-MAN call although the AMT 19 action starts as CCM, so a device is
//     never activated in CCM only to be unprovisioned for a missing domain.
//   - Unconfiguration keeps the TLS configuration of a device reached over
//     TLS (and of one whose TLS was set up earlier in the session), as RPS
//     does for TLS-enforced devices: disabling it would cut the session's
//     own connection. Its certificate, key and amtd's root stay with it.
//   - The AMT 19 ACM flow without a tlsMode in the profile installs amtd's
//     certificate with tlsMode 2 (server authentication, non-TLS still
//     allowed on the network interface). A device that fails it after CCM
//     is unprovisioned only while the session can reach it; a session
//     whose client went away leaves it in CCM with credentials amtd holds,
//     and activation again completes it (resume.go).
//   - A CCM activation over TLS that does not take its CommitChanges is
//     undone with Unprovision(1), as rpc-go's local activation does.
//   - --tls-tunnel with an ACM profile on AMT < 19 follows the AMT 19 flow
//     (CCM, TLS, port_switch, upgrade), as activation.md §8 describes.
package provision

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// Timing holds the protocol's waits and per-call timeouts (activation.md
// §13). Zero values mean "no wait" for delays, so tests can run without
// sleeping; use DefaultTiming for RPS's values.
type Timing struct {
	// ActivationDelay is the wait after Setup/AdminSetup/UpgradeClientToAdmin
	// before the first call with the new credentials (RPS delay_timer, 12 s).
	ActivationDelay time.Duration
	// TLSPutDelay is the wait between the remote and the local TLS Put, and
	// after CommitChanges when TLS is unconfigured (5 s).
	TLSPutDelay time.Duration
	// TLSDelay is AMT's TLS rollover wait (delay_tls_timer, 15 s): after
	// CommitChanges of a TLS configuration and after Ethernet Puts on
	// TLS-enforced devices.
	TLSDelay time.Duration
	// CallTimeout bounds one WS-MAN call (all its transport attempts).
	// Zero means amt's default (30 s).
	CallTimeout time.Duration
	// TLSCallTimeout bounds TLS Puts and CommitChanges, which AMT may take
	// long to answer. Zero means CallTimeout.
	TLSCallTimeout time.Duration
	// LockTimeout bounds the wait for another session on the same device
	// to finish. Zero means 2 minutes.
	LockTimeout time.Duration
	// ReconnectDelay is the pause before a WS-MAN call through the TLS
	// tunnel is retried after the connection failed (connection_reset, TLS
	// error): AMT may be restarting its TLS stack (delay_tls_timer, 15 s).
	ReconnectDelay time.Duration
	// TunnelRoundTimeout bounds one attempt of a WS-MAN call through the
	// TLS tunnel (a TLS handshake and the exchange); on expiry the call is
	// tried again (rpc-protocol.md §11). Zero means no bound but the call's.
	TunnelRoundTimeout time.Duration
}

// DefaultTiming returns RPS's waits.
func DefaultTiming() Timing {
	return Timing{
		ActivationDelay: 12 * time.Second,
		TLSPutDelay:     5 * time.Second,
		TLSDelay:        15 * time.Second,
		CallTimeout:     45 * time.Second, // ≥ 3 relayed attempts of 12 s
		TLSCallTimeout:  60 * time.Second,
		LockTimeout:     2 * time.Minute,
		ReconnectDelay:  15 * time.Second,
		// rpc-go's read rules: ≤ 2 s + 2 s per flight; a handshake and an
		// exchange take three.
		TunnelRoundTimeout: 20 * time.Second,
	}
}

// Config is the engine's explicit configuration.
type Config struct {
	Store   store.Store
	Secrets secrets.Store
	// CA is amtd's certificate authority: it signs the TLS server
	// certificates and 802.1x client certificates of devices. Required for
	// profiles with tlsMode or EAP-TLS 802.1x.
	CA CA
	// CIRARootDER is the root certificate (DER) of the CIRA server's
	// certificate, installed on devices configured for CIRA. When empty,
	// the CIRA config's mpsRootCertificate (base64 DER) is used.
	CIRARootDER []byte
	// RADIUSRootDER is the root the device trusts for the 802.1x
	// authentication server's certificate. Empty: CA.RootDER().
	RADIUSRootDER []byte
	// CIRADetectionString is the "inside the enterprise" DNS suffix given to
	// AMT's environment detection for CIRA devices. Empty: a random
	// "<uuid>.com" per device, so the device always uses CIRA (RPS).
	CIRADetectionString string
	// ODCARoots, when set, are Intel's On-Die CA roots: the certificate an
	// AMT 19+ device presents before amtd installed its own must chain to
	// one of them. Nil: that certificate is accepted unverified (tunnel.go).
	ODCARoots *x509.CertPool
	// TunnelTLS is the base TLS client configuration for the rpc-go TLS
	// tunnel (versions, cipher suites); the engine always sets the peer
	// verification itself. Nil: TLS 1.2 or later.
	TunnelTLS *tls.Config
	// PreventOrphanedDevices refuses to activate a pre-provisioning device
	// that already has a device record (RPS prevent_orphaned_devices).
	PreventOrphanedDevices bool
	// SecretKey maps a configuration object's SecretID to its secret-store
	// key; nil means DefaultSecretKey (the admin API's scheme).
	SecretKey func(tenant, kind, secretID string) string
	// Timing: nil means DefaultTiming().
	Timing *Timing
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Rand is the randomness for passwords and nonces (default crypto/rand).
	Rand io.Reader
}

// Engine runs provisioning sessions. It is safe for concurrent use; sessions
// for different devices never wait for each other.
type Engine struct {
	cfg    Config
	timing Timing
	log    *slog.Logger
	locks  *deviceLocks
}

// New returns an engine. Store and Secrets are required.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Secrets == nil {
		return nil, errors.New("provision: Store and Secrets are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.SecretKey == nil {
		cfg.SecretKey = DefaultSecretKey
	}
	t := DefaultTiming()
	if cfg.Timing != nil {
		t = *cfg.Timing
	}
	if t.TLSCallTimeout <= 0 {
		t.TLSCallTimeout = t.CallTimeout
	}
	if t.LockTimeout <= 0 {
		t.LockTimeout = 2 * time.Minute
	}
	if cfg.TunnelTLS == nil {
		cfg.TunnelTLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &Engine{cfg: cfg, timing: t, log: cfg.Logger, locks: newDeviceLocks()}, nil
}

// Conn is the path to the device during a session: an HTTP round tripper to
// the device's WS-MAN endpoint that can also wait for firmware settling
// delays (noticing a client that went away) and show progress to the
// operator. *rpcproto.Session is a Conn. A Conn that also implements
// Tunneler can reach devices that need TLS (AMT 19+, --tls-tunnel,
// TLS-only devices).
type Conn interface {
	http.RoundTripper
	Wait(ctx context.Context, d time.Duration) error
	Progress(label string)
}

// Tunneler is implemented by a Conn that can also reach the device's TLS
// port (16993) over the same path: the rpc-go relay's TLS tunnel
// (rpc-protocol.md §8). *rpcproto.Session is one.
type Tunneler interface {
	// TLSTransport returns a round tripper to the device's TLS port that
	// runs the TLS client with cfg (the engine's verification included).
	TLSTransport(cfg *tls.Config) http.RoundTripper
	// PortSwitch moves the path to the device's port after delay (a device
	// that is not TLS-enforced, once its TLS port is up); from then on
	// only TLSTransport reaches the device.
	PortSwitch(ctx context.Context, port int, delay time.Duration) error
}

var _ Tunneler = (*rpcproto.Session)(nil)

// Serve implements rpcproto.Handler: it runs activate, deactivate or
// maintenance as the first message asked, whatever the endpoint path.
func (e *Engine) Serve(ctx context.Context, s *rpcproto.Session) rpcproto.Outcome {
	return e.Run(ctx, s.Request, s)
}

// Run executes one validated request over conn. It always returns an
// outcome with a message for the client.
func (e *Engine) Run(ctx context.Context, req rpcproto.Request, conn Conn) rpcproto.Outcome {
	if req.Payload == nil {
		return rpcproto.Outcome{Message: req.ConnID + " - Error while Validating the client message"}
	}
	switch req.Command.Name {
	case "activate":
		return e.activate(ctx, req, conn)
	case "deactivate":
		return e.deactivate(ctx, req, conn)
	case "maintenance":
		return e.maintenance(ctx, req, conn)
	default:
		return rpcproto.Outcome{Message: "Device " + req.Payload.UUID + " Not a supported method received from AMT device"}
	}
}

// ProvisioningLog returns a device's provisioning log, oldest first. A page
// with Top 0 means the whole log.
func (e *Engine) ProvisioningLog(ctx context.Context, guid string, p store.Page) ([]store.ProvisioningEvent, error) {
	if p.Top <= 0 {
		p.Top = math.MaxInt32
	}
	return e.cfg.Store.ListEvents(ctx, strings.ToLower(guid), p)
}

func (e *Engine) now() time.Time { return e.cfg.Now() }
