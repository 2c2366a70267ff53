package ca

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// FuzzDeviceInput feeds arbitrary bytes where amtd takes DER from a device:
// a PKCS#10 request (SignCSR) and a public key (SignPublicKey). Neither may
// panic, and whatever is issued must verify against the root.
func FuzzDeviceInput(f *testing.F) {
	key := testpki.Key(2048, testpki.SlotLeaf)
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "dev"}}, key)
	if err != nil {
		f.Fatal(err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(key.Public())
	f.Add(csr)
	f.Add(spki)
	f.Add(x509.MarshalPKCS1PublicKey(&key.PublicKey))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := testCA(t)
		for _, issue := range []func() ([]byte, error){
			func() ([]byte, error) { return c.SignCSR(data, nil, 0) },
			func() ([]byte, error) { return c.SignPublicKey(data, AMTTLSSubject("h"), nil, 0) },
		} {
			der, err := issue()
			if err != nil {
				continue
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatalf("issued certificate does not parse: %v", err)
			}
			if err := cert.CheckSignatureFrom(c.Certificate()); err != nil {
				t.Fatalf("issued certificate does not verify: %v", err)
			}
		}
	})
}
