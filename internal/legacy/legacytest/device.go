package legacytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/tlspsk"
	"github.com/amtd-project/amtd/sim/digest"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/hostif"
	"github.com/amtd-project/amtd/sim/wsman"
)

// SetupDevice is the network side of an Intel AMT device in setup mode
// ("IN" provisioning state) for legacy remote configuration tests, until the
// simulator serves this state itself: one port (the device's 16993) over a
// sim/firmware state and the simulator's WS-MAN engine.
//
// While the firmware is in setup mode the port serves either TLS that
// requires a client certificate checked the way AMT checks a provisioning
// certificate (legacy.md §10: the chain verifies leaf → root, the root
// arrives in the chain and its SHA-1/SHA-256/SHA-384 fingerprint is an
// active entry of the firmware's hash table, the leaf has the AMT
// provisioning OID or OU and server authentication, its CN fits the
// firmware's PKI DNS suffix, every certificate is within its validity), or
// TLS-PSK with a PID/PPS (PSK mode). A connection that passed is a setup
// session: digest as "admin" is accepted with SetupPassword (any password
// when AnySetupPassword). Once CommitChanges moved the firmware out of setup
// mode the port serves TLS with the certificate committed on the device and
// digest with the device's admin credentials.
type SetupDevice struct {
	fw     *firmware.Firmware
	engine *wsman.Engine
	dg     *digest.Server
	ln     net.Listener
	cfg    DeviceOptions

	mu       sync.Mutex
	refusals []string
	sessions int
	wg       sync.WaitGroup
}

// DeviceOptions configure a SetupDevice.
type DeviceOptions struct {
	// Addr to listen on (default 127.0.0.1:0).
	Addr string
	// PSK: serve TLS-PSK with this configuration in setup mode instead of
	// certificate TLS.
	PSK *tlspsk.Config
	// SetupPassword is the digest password of "admin" in setup mode;
	// AnySetupPassword accepts any (legacy.md §7.2: MeshCentral's empty
	// password works on real devices).
	SetupPassword    string
	AnySetupPassword bool
}

// NewSetupDevice starts serving fw (which the test has put in setup mode)
// and stops when the test ends.
func NewSetupDevice(t testing.TB, fw *firmware.Firmware, o DeviceOptions) *SetupDevice {
	t.Helper()
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := digest.New(digest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := &SetupDevice{fw: fw, engine: wsman.NewEngine(fw, wsman.Options{}), dg: dg, ln: ln, cfg: o}
	ctx, cancel := context.WithCancel(context.Background())
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d.wg.Add(1)
			go func() {
				defer d.wg.Done()
				d.serve(ctx, c)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		d.wg.Wait()
	})
	return d
}

// Addr is the listening address.
func (d *SetupDevice) Addr() *net.TCPAddr { return d.ln.Addr().(*net.TCPAddr) }

// Engine is the device's WS-MAN engine (fault injection).
func (d *SetupDevice) Engine() *wsman.Engine { return d.engine }

// Refusals lists the reasons of the TLS sessions the device refused.
func (d *SetupDevice) Refusals() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.refusals)
}

// SetupSessions counts the connections accepted as setup sessions.
func (d *SetupDevice) SetupSessions() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessions
}

func (d *SetupDevice) refused(why string) {
	d.mu.Lock()
	d.refusals = append(d.refusals, why)
	d.mu.Unlock()
}

func (d *SetupDevice) serve(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	inSetup := d.fw.ProvisioningState() == firmware.StateIn
	var conn net.Conn
	setup := false
	switch {
	case inSetup && d.cfg.PSK != nil:
		pc := tlspsk.Server(raw, d.cfg.PSK)
		if err := pc.HandshakeContext(ctx); err != nil {
			d.refused("TLS-PSK: " + err.Error())
			return
		}
		conn, setup = pc, true
	default:
		cfg, err := d.tlsConfig(inSetup)
		if err != nil {
			d.refused(err.Error())
			return
		}
		tc := tls.Server(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			d.refused(err.Error())
			return
		}
		conn, setup = tc, inSetup
	}
	if setup {
		d.mu.Lock()
		d.sessions++
		d.mu.Unlock()
	}
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		return
	}
	realm := d.fw.Realm()
	res := d.dg.Verify(req.Method, req.URL.RequestURI(), req.Header.Get("Authorization"), realm, func(user string) (digest.Credential, bool) {
		if setup && user == "admin" && d.fw.ProvisioningState() == firmware.StateIn {
			if d.cfg.AnySetupPassword {
				return digest.Credential{AnyPassword: true}, true
			}
			return digest.Credential{HA1: digest.HA1(user, realm, d.cfg.SetupPassword)}, true
		}
		c, ok := d.fw.LookupUser(user)
		return digest.Credential{HA1: c.HA1}, ok
	})
	if !res.OK {
		fmt.Fprintf(conn, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
			d.dg.Challenge(realm, res.Stale))
		return
	}
	out := d.engine.Serve(ctx, body, wsman.Session{User: res.Username, Setup: setup, Addr: raw.RemoteAddr().String()})
	switch out.Inject {
	case wsman.FaultReset, wsman.FaultResetAfter:
		return // no answer (after acting, for ResetAfter)
	case wsman.FaultHang:
		_ = raw.SetDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, conn) // until the client gives up
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/soap+xml; charset=UTF-8\r\nServer: Intel(R) Active Management Technology %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
		out.Status, http.StatusText(out.Status), d.fw.ServerVersion(), len(out.Body))
	b.Write(out.Body)
	_, _ = conn.Write(b.Bytes())
}

// tlsConfig: in setup mode the device's own certificate and a required,
// checked client chain; afterwards the committed certificate.
func (d *SetupDevice) tlsConfig(inSetup bool) (*tls.Config, error) {
	st := d.fw.TLSServer()
	cert := st.Cert
	if cert == nil || inSetup {
		c, err := d.fw.SelfCertificate()
		if err != nil {
			return nil, err
		}
		cert = c
	}
	suites := []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}
	cfg := &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS12}
	if !inSetup {
		return cfg, nil
	}
	// AMT's setup-mode server: RSA key exchange only, a client certificate
	// required and judged by the firmware's rules, not Go's.
	cfg.CipherSuites = suites
	cfg.ClientAuth = tls.RequireAnyClientCert
	cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
		return CheckProvisioningChain(raw, d.fw.CertHashes, d.fw.PKIDNSSuffix(), d.fw.Now())
	}
	return cfg, nil
}

// CheckProvisioningChain applies legacy.md §10 to a client chain as sent
// (leaf first, root last) against the firmware's hash table and DNS suffix.
func CheckProvisioningChain(raw [][]byte, table func() []hostif.CertHashEntry, suffix string, now time.Time) error {
	if len(raw) < 2 {
		return errors.New("sim: the chain must include the root")
	}
	chain := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("sim: certificate %d: %w", i, err)
		}
		if now.Before(c.NotBefore) || now.After(c.NotAfter) {
			return fmt.Errorf("sim: certificate %q outside its validity", c.Subject.CommonName)
		}
		chain[i] = c
	}
	for i := 0; i+1 < len(chain); i++ {
		if err := chain[i].CheckSignatureFrom(chain[i+1]); err != nil {
			return fmt.Errorf("sim: %q is not signed by %q: %w", chain[i].Subject.CommonName, chain[i+1].Subject.CommonName, err)
		}
	}
	root := chain[len(chain)-1]
	if err := root.CheckSignatureFrom(root); err != nil {
		return errors.New("sim: the last certificate is not a self-signed root")
	}
	s1, s256, s384 := sha1.Sum(root.Raw), sha256.Sum256(root.Raw), sha512.Sum384(root.Raw)
	trusted := false
	for _, h := range table() {
		if !h.IsActive {
			continue
		}
		switch h.Algorithm {
		case 1:
			trusted = trusted || bytes.Equal(h.Hash, s1[:])
		case 2:
			trusted = trusted || bytes.Equal(h.Hash, s256[:])
		case 3:
			trusted = trusted || bytes.Equal(h.Hash, s384[:])
		}
	}
	if !trusted {
		return fmt.Errorf("sim: root %s is not an active trusted root hash", hex.EncodeToString(s256[:]))
	}
	leaf := chain[0]
	purpose := slices.ContainsFunc(leaf.UnknownExtKeyUsage, func(o asn1.ObjectIdentifier) bool { return o.Equal(firmware.OIDAMTProvisioning) }) ||
		slices.Contains(leaf.Subject.OrganizationalUnit, firmware.ProvisioningOU)
	if !purpose {
		return errors.New("sim: the leaf has neither the AMT provisioning OID nor the setup OU")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return errors.New("sim: the leaf is not a server certificate")
	}
	if !firmware.DomainMatches(leaf.Subject.CommonName, suffix) {
		return fmt.Errorf("sim: leaf CN %q does not fit the PKI DNS suffix %q", leaf.Subject.CommonName, suffix)
	}
	return nil
}
