package provision

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/devcreds"
)

// Reaching a device over TLS through the relay (activation.md §7–§8,
// rpc-protocol.md §8)
//
// Three kinds of devices are reached on their TLS port (16993) through the
// rpc-go TLS tunnel instead of the relay's plain WS-MAN:
//
//   - TLS-enforced devices (AMT 19+, payload tlsEnforced): from the first
//     call of every session;
//   - devices amtd configured TLS-only (tlsMode 1 or 3, recorded under
//     TLSModeKind): from the first call of every later session, after a
//     port_switch to 16993;
//   - during an activation, once the TLS step committed, devices of a
//     --tls-tunnel client (payload tlsTunnel) and devices just made
//     TLS-only: port_switch, then tunnels for the rest of the session.
//
// What amtd verifies. Before activation an AMT 19+ device presents a
// certificate issued by Intel's On-Die CA (ODCA). amtd bundles no ODCA
// roots: unless Config.ODCARoots is set, that certificate is accepted
// unverified and its fingerprint is written to the provisioning log. This
// is the trust model of every device before AMT 19, whose local WS-MAN is
// plain HTTP relayed by the same host: the host that runs rpc-go could
// equally activate the device itself with the LSA credentials it hands to
// amtd, which are the device proof before activation. Once amtd installed
// its own TLS certificate on a device (the TLS step, devcreds.TLSCert), the
// device must present exactly one of the certificates amtd issued for it
// (current or pending) — a pin, not a CA check, so that no other device
// holding a certificate from amtd's CA can stand in for it. A TLS-enforced
// device amtd never gave a certificate (CCM without a TLS profile) keeps
// presenting its ODCA certificate, which is accepted as before activation.
//
// Every handshake is checked: the firmware may roll its TLS over to a new
// certificate (the TLS step's CommitChanges), after which the pin set
// holds the new certificate only.

// TLSModeKind is the devcreds kind recording the tlsMode amtd committed on
// the device ("0" once amtd disabled TLS). Like a credential it is staged
// before the TLS settings are sent and committed after CommitChanges, so a
// device that may be TLS-only is always known as such.
const TLSModeKind = "AMTD_TLS_MODE"

// tlsOnly reports whether the device may accept only TLS (tlsMode 1 or 3).
func tlsOnly(c devcreds.Creds) bool {
	for _, v := range c.Candidates(TLSModeKind) {
		if v == "1" || v == "3" {
			return true
		}
	}
	return false
}

// pinSet decides which certificates the device may present.
type pinSet struct {
	mu    sync.Mutex
	certs [][]byte // certificates amtd issued for the device (DER)
	// device: the device's own certificate (ODCA) is acceptable too,
	// verified against roots when set.
	device bool
	roots  *x509.CertPool
	// last handshake, for the provisioning log
	lastSum  string
	lastKind string
}

// pinError is a device certificate that is not acceptable; calls failing
// with it are not retried.
type pinError struct{ msg string }

func (e *pinError) Error() string { return e.msg }

func isPinError(err error) bool {
	var pe *pinError
	return errors.As(err, &pe)
}

func (p *pinSet) add(der []byte) {
	if len(der) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.certs {
		if bytes.Equal(c, der) {
			return
		}
	}
	p.certs = append(p.certs, der)
}

// only pins der alone: the device committed it.
func (p *pinSet) only(der []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.certs, p.device = [][]byte{der}, false
}

func (p *pinSet) setDevice(ok bool) {
	p.mu.Lock()
	p.device = ok
	p.mu.Unlock()
}

// verify is the tunnel's tls.Config.VerifyConnection.
func (p *pinSet) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return &pinError{"the device presented no TLS certificate"}
	}
	leaf := cs.PeerCertificates[0]
	sum := sha256.Sum256(leaf.Raw)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastSum = hex.EncodeToString(sum[:])
	for _, c := range p.certs {
		if bytes.Equal(c, leaf.Raw) {
			p.lastKind = "issued by amtd, pinned"
			return nil
		}
	}
	if !p.device {
		p.lastKind = "not a certificate amtd issued for the device"
		return &pinError{"the device's TLS certificate (SHA-256 " + p.lastSum + ") is not one amtd issued for it"}
	}
	if p.roots == nil {
		p.lastKind = "the device's own (On-Die CA), accepted unverified: no On-Die CA roots configured"
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		p.lastKind = "the device's own, not issued by an On-Die CA root"
		return &pinError{"the device's TLS certificate (SHA-256 " + p.lastSum + ") does not chain to an Intel On-Die CA root: " + err.Error()}
	}
	p.lastKind = "the device's own, verified against the On-Die CA roots"
	return nil
}

func (p *pinSet) describe() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lastSum == "" {
		return "no handshake yet"
	}
	return "device certificate SHA-256 " + p.lastSum + ": " + p.lastKind
}

// retryTransport retries a WS-MAN exchange through the TLS tunnel whose
// connection failed before a complete answer (a connection_reset, a TLS
// error), pausing first: AMT may be restarting its TLS stack
// (rpc-protocol.md §11). One-shot calls (amt.NoRetry) and certificate
// refusals are never retried.
//
// Answers are read whole and their connection released before they are
// returned: go-wsman-messages drops the body of a 401 unread when it
// retries with digest credentials, which would hold the tunnel's only
// connection forever.
type retryTransport struct {
	rt       http.RoundTripper
	attempts int
	pause    func(ctx context.Context) error
	// round bounds one attempt (0: none): rpc-go may drop a round (a
	// silent flight, an answer cut by its idle rule) and then waits for the
	// server forever.
	round time.Duration
}

// maxAnswer bounds a buffered WS-MAN answer.
const maxAnswer = 16 << 20

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for i := 1; ; i++ {
		resp, err := t.attempt(req)
		if err == nil {
			return resp, nil
		}
		if i >= t.attempts || amt.IsNoRetry(ctx) || ctx.Err() != nil || req.GetBody == nil || isPinError(err) {
			return nil, err
		}
		if perr := t.pause(ctx); perr != nil {
			return nil, err
		}
		body, gerr := req.GetBody()
		if gerr != nil {
			return nil, err
		}
		req = req.Clone(ctx)
		req.Body = body
	}
}

// attempt is one exchange, read whole within the round timeout.
func (t *retryTransport) attempt(req *http.Request) (*http.Response, error) {
	if t.round > 0 {
		ctx, cancel := context.WithTimeout(req.Context(), t.round)
		defer cancel()
		req = req.WithContext(ctx)
	}
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading the device's answer: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.TransferEncoding = nil
	return resp, nil
}

func (t *retryTransport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// transport is the session's path to the device's WS-MAN endpoint now.
func (s *session) transport() http.RoundTripper {
	if s.onTLS {
		return s.tlsRT
	}
	return s.conn
}

// startPath chooses how the session reaches the device: the TLS tunnel for
// TLS-enforced devices and for devices amtd left TLS-only, the relay's
// plain WS-MAN otherwise. creds are the device's stored credentials (nil
// before activation).
func (s *session) startPath(ctx context.Context, creds devcreds.Creds) error {
	s.pins = &pinSet{roots: s.e.cfg.ODCARoots, device: true}
	if s.p.CurrentMode != 0 && creds != nil {
		for _, v := range creds.Candidates(devcreds.TLSCert) {
			s.pins.add(certDER(v))
		}
		// A device amtd gave a committed certificate presents it; one
		// that only has a pending certificate may still present its own.
		s.pins.setDevice(s.p.TLSEnforced && creds.Current(devcreds.TLSCert) == "")
	}
	switch {
	case s.p.TLSEnforced:
		s.j.Info(ctx, "tls.tunnel", "the device enforces TLS on local ports: WS-MAN on 16993 through the TLS tunnel")
		return s.openTLS(ctx, false, 0)
	case s.p.CurrentMode != 0 && creds != nil && tlsOnly(creds):
		s.pins.setDevice(false)
		s.j.Info(ctx, "tls.tunnel", "amtd configured the device for TLS only: WS-MAN on 16993 through the TLS tunnel")
		return s.openTLS(ctx, true, 0)
	}
	return nil
}

// openTLS makes the session reach the device on 16993 through tunnels,
// after a port_switch when the client relays to another port.
func (s *session) openTLS(ctx context.Context, portSwitch bool, delay time.Duration) error {
	tun, ok := s.conn.(Tunneler)
	if !ok {
		s.j.FailText(ctx, "tls.tunnel", "the connection to the device has no TLS tunnel")
		return errStatus("Failed to initialize TLS tunnel")
	}
	if portSwitch {
		if err := tun.PortSwitch(ctx, 16993, delay); err != nil {
			s.j.Fail(ctx, "tls.portswitch", err)
			if ctx.Err() != nil {
				return err
			}
			return errStatus("Failed to complete port switch to TLS")
		}
		s.j.OK(ctx, "tls.portswitch", "the client relays to 16993 from now on")
	}
	if s.tlsRT == nil {
		cfg := s.e.cfg.TunnelTLS.Clone()
		cfg.InsecureSkipVerify = true // verification is VerifyConnection's
		cfg.VerifyConnection = s.pins.verify
		s.tlsRT = &retryTransport{rt: tun.TLSTransport(cfg), attempts: 3, round: s.e.timing.TunnelRoundTimeout,
			pause: func(ctx context.Context) error { return s.wait(ctx, s.e.timing.ReconnectDelay) }}
	}
	s.onTLS = true
	return nil
}

// tlsIssued learns a certificate the TLS step is about to install: the
// device may present it from the next commit on.
func (s *session) tlsIssued(der []byte) {
	if s.pins != nil {
		s.pins.add(der)
	}
}

// tlsCommitted follows the TLS step's CommitChanges (activation.md §7.5,
// §8): the device presents der only. A session already on 16993 waits for
// AMT's TLS rollover and continues with new connections; a --tls-tunnel
// client, and a device just made TLS-only, are switched to 16993 (the
// session's next calls go through tunnels). It returns the client to
// continue with (nil: unchanged).
func (s *session) tlsCommitted(ctx context.Context, der []byte, mode int) (*amt.Client, error) {
	if s.pins == nil {
		s.pins = &pinSet{}
	}
	s.pins.only(der)
	switch {
	case s.onTLS:
		if err := s.wait(ctx, s.e.timing.TLSDelay); err != nil {
			return nil, err
		}
		if c, ok := s.tlsRT.(interface{ CloseIdleConnections() }); ok {
			c.CloseIdleConnections()
		}
	case s.p.TLSTunnel || mode == 1 || mode == 3:
		if _, ok := s.conn.(Tunneler); !ok && !s.p.TLSTunnel {
			// The client cannot relay TLS: the rest of this session
			// stays on its path; later sessions need a TLS tunnel.
			s.j.Info(ctx, "tls.tunnel", "the device is TLS-only now, but this connection has no TLS tunnel")
			return nil, nil
		}
		if err := s.openTLS(ctx, true, s.e.timing.TLSDelay); err != nil {
			return nil, err
		}
	default:
		return nil, nil
	}
	s.client = s.newClient("admin", s.password)
	if _, err := s.e.getGeneral(ctx, s.client); err != nil {
		s.j.Fail(ctx, "tls.tunnel", err)
		if isPinError(err) {
			return nil, errStatus("Failed to establish TLS tunnel connection")
		}
		return nil, err
	}
	s.j.OK(ctx, "tls.tunnel", "WS-MAN on 16993 through the TLS tunnel; "+s.pins.describe())
	return s.client, nil
}

// noteTLS writes the certificate seen on the first TLS call to the log.
func (s *session) noteTLS(ctx context.Context) {
	if s.onTLS && !s.tlsNoted {
		s.tlsNoted = true
		s.j.Info(ctx, "tls.certificate", s.pins.describe())
	}
}

// stageTLSMode and commitTLSMode record the tlsMode the device gets (0:
// TLS disabled), durable before the device call.
func (e *Engine) stageTLSMode(ctx context.Context, guid string, mode int) error {
	_, err := devcreds.Stage(ctx, e.cfg.Secrets, guid, TLSModeKind, strconv.Itoa(mode))
	return err
}

func (e *Engine) commitTLSMode(ctx context.Context, guid string, mode int) error {
	_, err := devcreds.Commit(context.WithoutCancel(ctx), e.cfg.Secrets, guid, TLSModeKind, strconv.Itoa(mode))
	return err
}
