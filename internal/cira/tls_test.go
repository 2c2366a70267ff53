package cira

import (
	"bytes"
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"
)

// The CIRA listener completes the handshakes AMT makes (spec/mps.md §1.3)
// without any GODEBUG setting.
func TestTLSHandshakes(t *testing.T) {
	p := getPKI(t)
	strict, _ := startServer(t, nil)
	legacy, _ := startServer(t, func(c *Config) { c.LegacyTLS = true })

	tests := []struct {
		name    string
		ts      *testServer
		version uint16
		suite   uint16
		ok      bool
	}{
		{"TLS 1.2 RSA AES-128-GCM (AMT 11–16)", strict, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, true},
		{"TLS 1.2 RSA AES-256-GCM", strict, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_256_GCM_SHA384, true},
		{"TLS 1.2 RSA AES-128-CBC", strict, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_128_CBC_SHA, true},
		{"TLS 1.2 RSA AES-256-CBC", strict, tls.VersionTLS12, tls.TLS_RSA_WITH_AES_256_CBC_SHA, true},
		{"TLS 1.2 ECDHE", strict, tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, true},
		{"TLS 1.0 refused by default", strict, tls.VersionTLS10, tls.TLS_RSA_WITH_AES_128_CBC_SHA, false},
		{"TLS 1.1 refused by default", strict, tls.VersionTLS11, tls.TLS_RSA_WITH_AES_128_CBC_SHA, false},
		{"TLS 1.0 with the legacy switch", legacy, tls.VersionTLS10, tls.TLS_RSA_WITH_AES_128_CBC_SHA, true},
		{"TLS 1.1 with the legacy switch", legacy, tls.VersionTLS11, tls.TLS_RSA_WITH_AES_256_CBC_SHA, true},
		{"TLS 1.3", strict, tls.VersionTLS13, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, port, _ := net.SplitHostPort(tt.ts.addr)
			cfg := &tls.Config{
				RootCAs: p.roots,
				// An IP literal: Go sends no SNI, as AMT may not; the
				// certificate carries the IP so it still verifies.
				ServerName: host,
				MinVersion: tt.version,
				MaxVersion: tt.version,
			}
			if tt.suite != 0 {
				cfg.CipherSuites = []uint16{tt.suite}
			}
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(host, port), cfg)
			if !tt.ok {
				if err == nil {
					c.Close()
					t.Fatal("handshake succeeded")
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer c.Close()
			st := c.ConnectionState()
			if st.Version != tt.version || (tt.suite != 0 && st.CipherSuite != tt.suite) {
				t.Fatalf("negotiated %x/%x", st.Version, st.CipherSuite)
			}
			if st.ServerName != "" {
				t.Fatalf("SNI %q was sent", st.ServerName)
			}
			if len(st.PeerCertificates) != 2 || st.PeerCertificates[0].Subject.CommonName != "cira.test" {
				t.Fatal("leaf and intermediate not served")
			}
		})
	}
}

func TestTLSConfigFields(t *testing.T) {
	p := getPKI(t)
	cfg := TLSConfig(&p.cert, nil, false)
	for _, id := range rsaKeyExchangeSuites {
		if !slices.Contains(cfg.CipherSuites, id) {
			t.Errorf("suite %s missing", tls.CipherSuiteName(id))
		}
	}
	for _, s := range tls.CipherSuites() {
		if !slices.Contains(cfg.CipherSuites, s.ID) {
			t.Errorf("secure suite %s missing", s.Name)
		}
	}
	if cfg.MinVersion != tls.VersionTLS12 || TLSConfig(&p.cert, nil, true).MinVersion != tls.VersionTLS10 {
		t.Error("MinVersion")
	}
	if cfg.ClientAuth != tls.NoClientCert {
		t.Error("ClientAuth")
	}
	// The certificate served whatever the SNI: the same chain, its key
	// behind the handshake limiter.
	for _, name := range []string{"", "something.else"} {
		got, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || got == nil || !slices.EqualFunc(got.Certificate, p.cert.Certificate, bytes.Equal) {
			t.Fatalf("GetCertificate for SNI %q: %v", name, err)
		}
		if _, ok := got.PrivateKey.(*limitedDecrypter); !ok {
			t.Errorf("GetCertificate for SNI %q: key %T, not behind the limiter", name, got.PrivateKey)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	p := getPKI(t)
	auth := AuthenticatorFunc(nil)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no authenticator", Config{Certificate: &p.cert}},
		{"no certificate", Config{Authenticator: auth}},
		{"empty certificate", Config{Authenticator: auth, Certificate: &tls.Certificate{}}},
		{"window too small", Config{Authenticator: auth, Certificate: &p.cert, ChannelWindow: 1000}},
		{"window too large", Config{Authenticator: auth, Certificate: &p.cert, ChannelWindow: 2 << 20}},
	} {
		if _, err := NewServer(tc.cfg); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	s, err := NewServer(Config{Authenticator: auth, Certificate: &p.cert})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.AuthTimeout != 30*time.Second || c.IdleTimeout != 90*time.Second || c.KeepaliveInterval != 30*time.Second ||
		c.ForwardSettle != 2*time.Second || c.ChannelWindow != 81920 || c.WSMANConcurrency != 4 || c.AuthFailureDelay != time.Second {
		t.Fatalf("defaults %+v", c)
	}
}

func TestDeviceAuthCheck(t *testing.T) {
	a := DeviceAuth{Username: "admin", Password: "Passw0rd!"}
	for _, tc := range []struct {
		user, pw string
		ok       bool
	}{
		{"admin", "Passw0rd!", true},
		{"admin", "Passw0rd", false},
		{"admin", "Passw0rd!!", false},
		{"Admin", "Passw0rd!", false},
		{"", "", false},
	} {
		if got := a.check(tc.user, tc.pw); got != tc.ok {
			t.Errorf("check(%q, %q) = %v", tc.user, tc.pw, got)
		}
	}
	if (&DeviceAuth{}).check("", "") {
		t.Error("empty expected password matched")
	}
	v := DeviceAuth{Verify: func(u, p string) bool { return u == "x" && p == "y" }}
	if !v.check("x", "y") || v.check("admin", "Passw0rd!") {
		t.Error("Verify not used")
	}
}
