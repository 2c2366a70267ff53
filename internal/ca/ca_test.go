package ca

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// mapStore is a map-backed secrets.Store for tests.
type mapStore struct {
	mu   sync.Mutex
	data map[string]map[string]string
	puts int
}

func newMapStore() *mapStore { return &mapStore{data: map[string]map[string]string{}} }

func (s *mapStore) Name() string { return "TEST" }

func (s *mapStore) Get(ctx context.Context, key string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.data[key]
	if !ok {
		return nil, secrets.ErrNotFound
	}
	return maps.Clone(d), nil
}

func (s *mapStore) Put(ctx context.Context, key string, data map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = maps.Clone(data)
	s.puts++
	return nil
}

func (s *mapStore) Create(ctx context.Context, key string, data map[string]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.data[key]; ok {
		return secrets.ErrExists
	}
	s.data[key] = maps.Clone(data)
	s.puts++
	return nil
}

func (s *mapStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, key)
	return nil
}

func (s *mapStore) Health(ctx context.Context) (map[string]any, error) {
	return map[string]any{"initialized": true, "sealed": false}, nil
}

// fastOpts uses cached test keys; it counts key generations.
func fastOpts(gens *atomic.Int32) Options {
	return Options{GenerateKey: func(bits int) (*rsa.PrivateKey, error) {
		if gens != nil {
			gens.Add(1)
		}
		slot := testpki.SlotServer
		if bits == RootKeyBits {
			slot = testpki.SlotCA
		}
		return testpki.Key(bits, slot), nil
	}}
}

var (
	sharedOnce sync.Once
	sharedCA   *CA
	sharedErr  error
)

// testCA returns one CA (cached keys) shared by the tests that only issue.
func testCA(t *testing.T) *CA {
	t.Helper()
	sharedOnce.Do(func() {
		sharedCA, sharedErr = LoadOrCreateWith(context.Background(), newMapStore(), "ca/test", "CN=amtd test CA,O=amtd,C=US", fastOpts(nil))
	})
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedCA
}

// The production path: a real RSA-3072 key, stored, then loaded again.
func TestLoadOrCreateRealKey(t *testing.T) {
	ctx := context.Background()
	store := newMapStore()
	c, err := LoadOrCreate(ctx, store, "ca/cira", "amtd CIRA root")
	if err != nil {
		t.Fatal(err)
	}
	root := c.Certificate()
	if root.Subject.CommonName != "amtd CIRA root" || !root.IsCA || root.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Fatalf("root: %v CA=%v sig=%v", root.Subject, root.IsCA, root.SignatureAlgorithm)
	}
	if n := root.PublicKey.(*rsa.PublicKey).N.BitLen(); n != 3072 {
		t.Fatalf("root key %d bits", n)
	}
	if life := root.NotAfter.Sub(root.NotBefore); life < RootValidity || life > RootValidity+Backdate+time.Minute {
		t.Fatalf("root lifetime %v", life)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		t.Fatal(err)
	}
	entry := store.data["ca/cira"]
	if !strings.HasPrefix(entry[FieldCertificate], "-----BEGIN CERTIFICATE-----") || !strings.HasPrefix(entry[FieldPrivateKey], "-----BEGIN PRIVATE KEY-----") {
		t.Fatalf("stored fields: %v", slices.Collect(maps.Keys(entry)))
	}
	if !bytes.Equal(c.RootPEM(), []byte(entry[FieldCertificate])) {
		t.Fatal("RootPEM differs from the stored certificate")
	}
	b, _ := pem.Decode(c.RootPEM())
	if !bytes.Equal(b.Bytes, c.RootDER()) {
		t.Fatal("RootPEM and RootDER differ")
	}

	var gens atomic.Int32
	again, err := LoadOrCreateWith(ctx, store, "ca/cira", "ignored", fastOpts(&gens))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.RootDER(), c.RootDER()) || gens.Load() != 0 || store.puts != 1 {
		t.Fatalf("second load created a new CA (gens %d, puts %d)", gens.Load(), store.puts)
	}
	// The loaded CA signs certificates the first one's pool verifies.
	der, err := again.IssueClient(testpki.Key(2048, testpki.SlotLeaf).Public(), pkix.Name{CommonName: "dev"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: c.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRejectsBadEntries(t *testing.T) {
	ctx := context.Background()
	good := testCA(t)
	other := testpki.NewChain(testpki.ChainOptions{})
	keyPEM := func(k any) string {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	goodKey := keyPEM(good.key)
	for _, tc := range []struct {
		name  string
		entry map[string]string
		want  string
	}{
		{"empty", map[string]string{}, "no PEM certificate"},
		{"garbage cert", map[string]string{FieldCertificate: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", FieldPrivateKey: goodKey}, "certificate:"},
		{"not a CA", map[string]string{FieldCertificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Leaf.Raw})), FieldPrivateKey: keyPEM(other.LeafKey)}, "not a CA"},
		{"no key", map[string]string{FieldCertificate: string(good.RootPEM())}, "no PEM private key"},
		{"key of another cert", map[string]string{FieldCertificate: string(good.RootPEM()), FieldPrivateKey: keyPEM(other.RootKey)}, "does not match"},
		{"ECDSA key", map[string]string{FieldCertificate: string(good.RootPEM()), FieldPrivateKey: keyPEM(testpki.ECKey())}, "want RSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := newMapStore()
			store.data["ca/x"] = tc.entry
			var gens atomic.Int32
			_, err := LoadOrCreateWith(ctx, store, "ca/x", "x", fastOpts(&gens))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), goodKey[40:80]) {
				t.Fatal("error leaks key material")
			}
			if store.puts != 0 || gens.Load() != 0 {
				t.Fatal("a bad stored entry was replaced")
			}
		})
	}
}

type failingStore struct{ mapStore }

func (s *failingStore) Get(ctx context.Context, key string) (map[string]string, error) {
	return nil, errors.New("backend down")
}

func TestLoadOrCreateErrors(t *testing.T) {
	if _, err := LoadOrCreateWith(context.Background(), &failingStore{}, "k", "x", fastOpts(nil)); err == nil || !strings.Contains(err.Error(), "backend down") {
		t.Fatalf("store failure: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LoadOrCreateWith(ctx, newMapStore(), "k", "x", fastOpts(nil)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
	for _, subj := range []string{"", "O=no cn", "CN=x,Q=y", "CN=x,O"} {
		if _, err := LoadOrCreateWith(context.Background(), newMapStore(), "k", subj, fastOpts(nil)); err == nil {
			t.Fatalf("subject %q accepted", subj)
		}
	}
}

func TestSubjectParsing(t *testing.T) {
	c := testCA(t)
	s := c.Certificate().Subject
	if s.CommonName != "amtd test CA" || !slices.Equal(s.Organization, []string{"amtd"}) || !slices.Equal(s.Country, []string{"US"}) {
		t.Fatalf("subject %v", s)
	}
}

// The CIRA certificate on a real TLS listener, with the RSA key-exchange
// suite AMT negotiates (mps.md §1.2/1.3), verified by name and by IP.
func TestIssueServerTLS(t *testing.T) {
	c := testCA(t)
	cert, err := c.IssueServer("mps.example.com", []string{"127.0.0.1", "mps.example.com", "alt.example.com"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf.Subject.CommonName != "mps.example.com" || !slices.Equal(leaf.DNSNames, []string{"mps.example.com", "alt.example.com"}) ||
		len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("names: CN %q DNS %v IP %v", leaf.Subject.CommonName, leaf.DNSNames, leaf.IPAddresses)
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) ||
		leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
		t.Fatalf("usage: %v %v", leaf.ExtKeyUsage, leaf.KeyUsage)
	}
	if leaf.PublicKey.(*rsa.PublicKey).N.BitLen() != 2048 || len(cert.Certificate) != 1 {
		t.Fatal("want an RSA-2048 leaf alone")
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < DefaultLeafValidity || d > DefaultLeafValidity+Backdate+time.Minute {
		t.Fatalf("default validity %v", d)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(conn, "hello")
			conn.Close()
		}
	}()
	for _, name := range []string{"mps.example.com", "alt.example.com", "127.0.0.1"} {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			RootCAs:      c.CertPool(),
			ServerName:   name,
			MaxVersion:   tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
		})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, _ := io.ReadAll(conn)
		st := conn.ConnectionState()
		conn.Close()
		if string(got) != "hello" || st.CipherSuite != tls.TLS_RSA_WITH_AES_128_GCM_SHA256 {
			t.Fatalf("%s: read %q suite %x", name, got, st.CipherSuite)
		}
	}
	// A name not in the certificate is refused.
	if conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: c.CertPool(), ServerName: "other.example.com"}); err == nil {
		conn.Close()
		t.Fatal("wrong name accepted")
	}
	ln.Close()
	wg.Wait()

	if _, err := c.IssueServer(" ", nil, 0); err == nil {
		t.Fatal("empty CN accepted")
	}
}

func TestValidityClampedToRoot(t *testing.T) {
	c := testCA(t)
	cert, err := c.IssueServer("x.example.com", nil, 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Leaf.NotAfter.Equal(c.Certificate().NotAfter) {
		t.Fatalf("leaf NotAfter %v beyond root %v", cert.Leaf.NotAfter, c.Certificate().NotAfter)
	}
}

// AMT TLS certificate over a device-generated key (activation.md §10.7).
func TestSignPublicKeyForAMT(t *testing.T) {
	c := testCA(t)
	devKey := testpki.Key(2048, testpki.SlotLeaf)
	spki, _ := x509.MarshalPKIXPublicKey(devKey.Public())
	pkcs1 := x509.MarshalPKCS1PublicKey(&devKey.PublicKey)
	for name, pub := range map[string]any{"SPKI DER": spki, "PKCS#1 DER": pkcs1, "crypto.PublicKey": devKey.Public()} {
		der, err := c.SignPublicKey(pub, AMTTLSSubject("host1"), []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, 24*time.Hour)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if got := cert.Subject.String(); got != "CN=AMT-host1,O=None,ST=None,C=None" {
			t.Fatalf("%s: subject %q", name, got)
		}
		if !bytes.Equal(cert.RawIssuer, c.Certificate().RawSubject) || !cert.PublicKey.(*rsa.PublicKey).Equal(devKey.Public()) {
			t.Fatalf("%s: issuer or key wrong", name)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: c.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || cert.IsCA {
			t.Fatalf("%s: EKU %v CA %v", name, cert.ExtKeyUsage, cert.IsCA)
		}
	}
	ecDER, err := c.SignPublicKey(testpki.ECKey().Public(), pkix.Name{CommonName: "ec"}, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ec, _ := x509.ParseCertificate(ecDER)
	if ec.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(ec.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Fatalf("ECDSA leaf usage %v %v", ec.KeyUsage, ec.ExtKeyUsage)
	}
	for name, bad := range map[string]any{"garbage DER": []byte{1, 2, 3}, "string": "key", "RSA-1024": testpki.Key(1024, testpki.SlotOther).Public()} {
		if _, err := c.SignPublicKey(bad, pkix.Name{CommonName: "x"}, nil, 0); err == nil {
			t.Fatalf("%s accepted", name)
		}
	}
}

func TestIssueClient(t *testing.T) {
	c := testCA(t)
	der, err := c.IssueClient(testpki.Key(2048, testpki.SlotLeaf).Public(), pkix.Name{CommonName: "device-1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Fatalf("EKU %v", cert.ExtKeyUsage)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client certificate verified for server auth")
	}
}

func TestSignCSR(t *testing.T) {
	c := testCA(t)
	key := testpki.Key(2048, testpki.SlotLeaf)
	u, _ := url.Parse("urn:uuid:12345678-1234-1234-1234-123456789abc")
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: "device-1.corp.example.com", Organization: []string{"Corp"}},
		DNSNames:    []string{"device-1.corp.example.com"},
		IPAddresses: []net.IP{net.ParseIP("10.0.0.5")},
		URIs:        []*url.URL{u},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := c.SignCSR(csrDER, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	if cert.Subject.CommonName != "device-1.corp.example.com" || !slices.Equal(cert.DNSNames, []string{"device-1.corp.example.com"}) ||
		len(cert.IPAddresses) != 1 || len(cert.URIs) != 1 || !cert.PublicKey.(*rsa.PublicKey).Equal(key.Public()) {
		t.Fatalf("certificate does not follow the request: %v %v %v %v", cert.Subject, cert.DNSNames, cert.IPAddresses, cert.URIs)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: c.CertPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatal(err)
	}

	tampered := bytes.Clone(csrDER)
	tampered[len(tampered)-1] ^= 0x01 // signature
	if _, err := c.SignCSR(tampered, nil, 0); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("tampered request: %v", err)
	}
	if _, err := c.SignCSR([]byte("not a csr"), nil, 0); err == nil {
		t.Fatal("garbage accepted")
	}
}

func TestConcurrentIssuance(t *testing.T) {
	c := testCA(t)
	pub := testpki.Key(2048, testpki.SlotLeaf).Public()
	var (
		mu      sync.Mutex
		serials = map[string]bool{}
		wg      sync.WaitGroup
	)
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var der []byte
			var err error
			if i%2 == 0 {
				der, err = c.IssueClient(pub, pkix.Name{CommonName: "c"}, time.Hour)
			} else {
				der, err = c.SignPublicKey(pub, AMTTLSSubject("h"), nil, time.Hour)
			}
			if err != nil {
				errs <- err
				return
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			serials[cert.SerialNumber.String()] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(serials) != 16 {
		t.Fatalf("%d distinct serials for 16 certificates", len(serials))
	}
}

// racingStore answers every Get with ErrNotFound until n callers have
// asked, so that n instances all decide to create the CA at once.
type racingStore struct {
	*mapStore
	n     int
	asked chan struct{}
	once  sync.Once
	gets  atomic.Int32
}

func (s *racingStore) Get(ctx context.Context, key string) (map[string]string, error) {
	if s.gets.Add(1) <= int32(s.n) {
		if s.gets.Load() == int32(s.n) {
			s.once.Do(func() { close(s.asked) })
		}
		<-s.asked
		return nil, secrets.ErrNotFound
	}
	return s.mapStore.Get(ctx, key)
}

// Instances starting together on an empty store all end up with the one CA
// that was stored.
func TestLoadOrCreateConcurrentInstances(t *testing.T) {
	const n = 4
	st := &racingStore{mapStore: newMapStore(), n: n, asked: make(chan struct{})}
	var gens atomic.Int32
	cas := make([]*CA, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cas[i], errs[i] = LoadOrCreateWith(t.Context(), st, "system/ca", "amtd CA", fastOpts(&gens))
		}()
	}
	wg.Wait()
	if gens.Load() != n {
		t.Fatalf("%d key generations, want %d (every instance found the store empty)", gens.Load(), n)
	}
	stored, err := st.mapStore.Get(t.Context(), "system/ca")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		if string(cas[i].RootPEM()) != stored[FieldCertificate] {
			t.Fatalf("instance %d uses a root that is not the stored one", i)
		}
	}
}
