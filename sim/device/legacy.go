package device

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/amtd-project/amtd/internal/tlspsk"
	"github.com/amtd-project/amtd/sim/digest"
	"github.com/amtd-project/amtd/sim/firmware"
)

// The device side of legacy remote configuration (spec/legacy.md §7, §9,
// §13): while the firmware is in legacy setup with its setup window open,
// port 16993 serves the setup session — TLS with the device's self-signed
// RSA certificate, RSA key exchange, and a required client certificate
// chain judged by the firmware's provisioning certificate rules (PKI), or
// TLS-PSK with the PID/PPS (PSK) — and digest authentication accepts
// "admin" with the setup-mode passwords (firmware.Config.SetupPasswords,
// default the empty password). CommitChanges ends setup; the port then
// serves the installed certificate, after Config.CommitRestart.

// session says how the caller of one connection authenticated.
type session struct {
	setup  bool               // AMT 19 host-based TLS setup session
	legacy firmware.SetupMode // legacy setup session (PKI or PSK)
}

// setupCipherSuites are the suites of AMT's setup-mode TLS server: RSA key
// exchange, the server encrypting the premaster secret with the device's
// key (legacy.md §7.1).
func setupCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA256,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	}
}

// setupTLSConfig turns the device's TLS server configuration into the PKI
// setup one: the device's own (self-signed) certificate, TLS 1.2 at most,
// RSA key exchange only, a client certificate required and checked by the
// firmware (legacy.md §10) rather than by crypto/tls.
func (d *Device) setupTLSConfig(base *tls.Config) (*tls.Config, error) {
	self, err := d.fw.SelfCertificate()
	if err != nil {
		return nil, err
	}
	base.Certificates = []tls.Certificate{*self}
	base.MaxVersion = tls.VersionTLS12
	base.CipherSuites = setupCipherSuites()
	base.ClientAuth = tls.RequireAnyClientCert
	base.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		return d.fw.VerifySetupClientChain(raw)
	}
	return base, nil
}

// pskHandshake runs the TLS-PSK server handshake of a PSK setup session
// (legacy.md §9): the PID is the only identity the device knows, the PSK is
// derived from its PPS as amtd does (tlspsk.PSKFromPPS).
func (d *Device) pskHandshake(ctx context.Context, conn net.Conn) (net.Conn, error) {
	pid, pps, ok := d.fw.PSKCredentials()
	if !ok {
		return nil, errors.New("sim: not in PSK setup")
	}
	cfg, err := tlspsk.PIDPPSConfig(pid, pps)
	if err != nil {
		d.fw.RecordLegacyEvent(firmware.LegacySessionRefused, "TLS-PSK: "+err.Error())
		return nil, err
	}
	cfg.Rand = d.fw.Rand()
	pc := tlspsk.Server(conn, cfg)
	if err := pc.HandshakeContext(ctx); err != nil {
		if !quietHandshakeError(err) {
			d.fw.RecordLegacyEvent(firmware.LegacySessionRefused, "TLS-PSK handshake: "+err.Error())
		}
		return nil, err
	}
	cs := pc.ConnectionState()
	d.fw.RecordLegacyEvent(firmware.LegacySessionAccepted, fmt.Sprintf("TLS-PSK session with %s (identity %s, %s)",
		addrOf(conn), cs.Identity, tlspsk.CipherSuiteName(cs.CipherSuite)))
	return pc, nil
}

// setupRefused records why a PKI setup handshake failed (chain refusals
// are recorded by the firmware as they happen).
func (d *Device) setupRefused(err error) {
	var ce *firmware.SetupChainError
	if errors.As(err, &ce) || quietHandshakeError(err) {
		return
	}
	d.fw.RecordLegacyEvent(firmware.LegacySessionRefused, "TLS handshake: "+err.Error())
}

func (d *Device) setupAccepted(cs tls.ConnectionState) {
	leaf := ""
	if len(cs.PeerCertificates) > 0 {
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		leaf = fmt.Sprintf("%q (SHA-256 %x)", cs.PeerCertificates[0].Subject.CommonName, sum)
	}
	d.fw.RecordLegacyEvent(firmware.LegacySessionAccepted, fmt.Sprintf("TLS setup session, %s, provisioning certificate %s",
		tls.CipherSuiteName(cs.CipherSuite), leaf))
}

// quietHandshakeError: a peer that connected and went away (a port probe)
// is not a refusal.
func quietHandshakeError(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled)
}

func addrOf(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return "?"
}

// verifyDigest checks a request's digest credentials; local says the
// request came on the host's LMS interface (user ACL entries log in only
// where their access permission allows). In a legacy setup session "admin"
// logs in with any of the setup-mode passwords (legacy.md §7.2, §13) while
// the device is still in setup.
func (d *Device) verifyDigest(req *http.Request, realm string, ss session, local bool) digest.Result {
	auth := req.Header.Get("Authorization")
	lookup := func(user string) (digest.Credential, bool) {
		if ss.setup && user == "admin" {
			return digest.Credential{AnyPassword: true}, true
		}
		c, ok := d.fw.LookupUserFrom(user, local)
		return digest.Credential{HA1: c.HA1}, ok
	}
	if ss.legacy != firmware.SetupNone && d.fw.LegacyStatus().Mode == ss.legacy {
		// a wrong password fails before the nonce is used, so the
		// candidates can be tried one after the other
		for _, ha1 := range d.fw.SetupCredentials() {
			res := d.digest.Verify(req.Method, req.URL.RequestURI(), auth, realm, func(user string) (digest.Credential, bool) {
				if user != "admin" {
					return digest.Credential{}, false
				}
				return digest.Credential{HA1: ha1}, true
			})
			if res.OK || res.Stale {
				return res
			}
		}
		return digest.Result{}
	}
	return d.digest.Verify(req.Method, req.URL.RequestURI(), auth, realm, lookup)
}

// legacyChanged follows the firmware's legacy setup: hellos while the
// setup window is open; after CommitChanges ended a setup, the TLS port is
// closed for CommitRestart while "the web server restarts".
func (d *Device) legacyChanged() {
	st := d.fw.LegacyStatus()
	d.mu.Lock()
	if d.ctx == nil || d.ctx.Err() != nil {
		d.mu.Unlock()
		return
	}
	was := d.wasLegacy
	d.wasLegacy = st.Mode != firmware.SetupNone
	restart := was && !d.wasLegacy && d.cfg.CommitRestart > 0 && d.fw.ProvisioningState() == firmware.StatePost
	if restart {
		d.restartUntil = time.Now().Add(d.cfg.CommitRestart)
		if d.restartTimer != nil {
			d.restartTimer.Stop()
		}
		d.restartTimer = time.AfterFunc(d.cfg.CommitRestart, d.refreshTLS)
	}
	from := d.cfg.HelloFrom
	if !from.IsValid() && len(d.httpAddrs) > 0 {
		if ap, err := netip.ParseAddrPort(d.httpAddrs[0]); err == nil && !ap.Addr().IsUnspecified() {
			from = ap.Addr().Unmap()
		}
	}
	d.mu.Unlock()
	if restart {
		d.log.Info("sim: legacy setup committed; restarting the web server", "after", d.cfg.CommitRestart)
	}
	if d.cfg.Hellos != nil {
		d.cfg.Hellos.Track(d.fw, from)
	}
}
