package server

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/tlspsk"
)

// dialer opens TCP connections with the configured timeouts.
type dialer struct {
	dial             func(ctx context.Context, network, addr string) (net.Conn, error)
	dialTimeout      time.Duration
	handshakeTimeout time.Duration
}

func (d *dialer) tcp(ctx context.Context, addr string) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, d.dialTimeout)
	defer cancel()
	c, err := d.dial(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	return c, nil
}

// tlsConn dials addr and performs a crypto/tls client handshake.
func (d *dialer) tlsConn(ctx context.Context, addr string, cfg *tls.Config) (net.Conn, error) {
	raw, err := d.tcp(ctx, addr)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, d.handshakeTimeout)
	defer cancel()
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, &HandshakeError{Err: err}
	}
	return tc, nil
}

// pskConn dials addr and performs a TLS-PSK client handshake.
func (d *dialer) pskConn(ctx context.Context, addr string, cfg *tlspsk.Config) (net.Conn, error) {
	raw, err := d.tcp(ctx, addr)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, d.handshakeTimeout)
	defer cancel()
	c := tlspsk.Client(raw, cfg)
	if err := c.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, &HandshakeError{Err: err, PSK: true}
	}
	return c, nil
}

// HandshakeError is a failed TLS (or TLS-PSK) handshake with a device: in
// setup mode, usually the device refusing the provisioning certificate or the
// PSK.
type HandshakeError struct {
	Err error
	PSK bool
}

func (e *HandshakeError) Error() string {
	if e.PSK {
		return "TLS-PSK handshake: " + e.Err.Error()
	}
	return "TLS handshake: " + e.Err.Error()
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// setupCipherSuites: RSA key exchange first-class (AMT's setup-mode TLS
// server uses it, legacy.md §7.1), then Go's default suites. Listing the RSA
// suites explicitly enables them although Go counts them as insecure.
func setupCipherSuites() []uint16 {
	ids := []uint16{
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_AES_256_CBC_SHA,
	}
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

// setupTLSConfig is the client configuration for a device in setup mode
// (legacy.md §7.1). What amtd verifies: nothing about the device's
// certificate (self-signed, or issued by Intel's On-Die CA from CSME 15 on);
// its SHA-256 is passed to seen for the provisioning log. The device is
// authenticated by what it does with amtd's certificate: it completes the
// handshake only if the chain's root hash is one it trusts and the leaf fits
// its DNS suffix. The chain is sent leaf → root, the root included (the
// device holds only its hash), from GetClientCertificate so that Go sends it
// whatever CA names the device's CertificateRequest lists.
func setupTLSConfig(chain [][]byte, key crypto.Signer, seen func(sha256Hex string)) *tls.Config {
	cert := &tls.Certificate{Certificate: chain, PrivateKey: key}
	var once sync.Once
	return &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // the setup-mode device certificate cannot be verified (see above)
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       setupCipherSuites(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && seen != nil {
				once.Do(func() {
					sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
					seen(hex.EncodeToString(sum[:]))
				})
			}
			return nil
		},
	}
}

// pinnedTLSConfig is the client configuration for a provisioned device: its
// certificate must be one amtd issued for it and recorded in its credentials
// (devcreds.TLSCert, current or staged), read at each handshake so that a
// certificate replaced during configuration is accepted once staged.
func pinnedTLSConfig(sec secrets.Store, guid string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // verified by VerifyConnection against the pinned certificate
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       setupCipherSuites(),
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the device sent no certificate")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			creds, err := devcreds.Load(ctx, sec, guid)
			if err != nil {
				return err
			}
			got := cs.PeerCertificates[0].Raw
			for _, c := range creds.Candidates(devcreds.TLSCert) {
				der, err := base64.StdEncoding.DecodeString(c)
				if err == nil && subtle.ConstantTimeCompare(der, got) == 1 {
					return nil
				}
			}
			return errors.New("the device's TLS certificate is not the one amtd installed")
		},
	}
}

// leafCN returns the subject CN of a DER certificate ("" when unreadable).
func leafCN(der []byte) string {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return ""
	}
	return c.Subject.CommonName
}
