package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// The setup-mode client works with an old AMT TLS server: TLS 1.0, RSA key
// exchange only, and a CertificateRequest naming CAs unrelated to amtd's
// chain; it sends the whole chain, root included.
func TestSetupTLSClientAgainstOldFirmwareServer(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{Intermediate: true})
	other := testpki.NewChain(testpki.ChainOptions{RootCN: "someone else's CA"})
	srvCert := testpki.NewChain(testpki.ChainOptions{LeafCN: "AMT self-signed"})
	unrelated := x509.NewCertPool()
	unrelated.AddCert(other.Root)
	got := make(chan [][]byte, 1)
	scfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{srvCert.Leaf.Raw}, PrivateKey: srvCert.LeafKey}},
		MinVersion:   tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		ClientAuth:   tls.RequireAnyClientCert,
		ClientCAs:    unrelated,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			got <- raw
			return nil
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.(*tls.Conn).Handshake()
		_, _ = c.Write([]byte("x"))
	}()
	var seen string
	cfg := setupTLSConfig([][]byte{chain.Leaf.Raw, chain.Intermediate.Raw, chain.Root.Raw}, chain.LeafKey, func(s string) { seen = s })
	d := &dialer{dial: (&net.Dialer{}).DialContext, dialTimeout: 5 * time.Second, handshakeTimeout: 5 * time.Second}
	c, err := d.tlsConn(context.Background(), ln.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	if st.Version != tls.VersionTLS10 || st.CipherSuite != tls.TLS_RSA_WITH_AES_128_CBC_SHA {
		t.Fatalf("negotiated %x / %x", st.Version, st.CipherSuite)
	}
	raw := <-got
	if len(raw) != 3 || string(raw[2]) != string(chain.Root.Raw) || string(raw[0]) != string(chain.Leaf.Raw) {
		t.Fatalf("sent %d certificates", len(raw))
	}
	if len(seen) != 64 {
		t.Fatalf("device certificate hash %q", seen)
	}
}
