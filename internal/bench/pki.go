package bench

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// amtProvisioningOID is the Intel AMT provisioning EKU.
var amtProvisioningOID = asn1.ObjectIdentifier{2, 16, 840, 1, 113741, 1, 2, 3}

// provisioningPKI is an ACM provisioning chain generated for one run:
// root → intermediate → leaf "CN=amt.<suffix>" with the AMT provisioning
// EKU, as a CA-issued provisioning certificate is. The simulated devices
// trust the root through --trust-hash (a hash entered in the MEBx).
type provisioningPKI struct {
	PFX        []byte
	Password   string
	RootSHA256 string // hex, for amtd sim --trust-hash
}

func newProvisioningPKI(suffix string) (*provisioningPKI, error) {
	now := time.Now()
	key := func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) }
	serial := func() *big.Int { n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96)); return n }
	rootKey, err := key()
	if err != nil {
		return nil, err
	}
	interKey, err := key()
	if err != nil {
		return nil, err
	}
	leafKey, err := key()
	if err != nil {
		return nil, err
	}
	rootT := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "amtd bench root", Organization: []string{"amtd bench"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &rootKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	root, _ := x509.ParseCertificate(rootDER)
	interT := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "amtd bench intermediate", Organization: []string{"amtd bench"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0), IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	interDER, err := x509.CreateCertificate(rand.Reader, interT, root, &interKey.PublicKey, rootKey)
	if err != nil {
		return nil, err
	}
	inter, _ := x509.ParseCertificate(interDER)
	leafT := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "amt." + suffix, Organization: []string{"amtd bench"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		UnknownExtKeyUsage: []asn1.ObjectIdentifier{amtProvisioningOID}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafT, inter, &leafKey.PublicKey, interKey)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	rnd := make([]byte, 6)
	if _, err := rand.Read(rnd); err != nil {
		return nil, err
	}
	pw := "Bench-Pfx-" + hex.EncodeToString(rnd)
	pfx, err := pkcs12.Modern2023.Encode(leafKey, leaf, []*x509.Certificate{inter, root}, pw)
	if err != nil {
		return nil, fmt.Errorf("bench: PFX: %w", err)
	}
	sum := sha256.Sum256(rootDER)
	return &provisioningPKI{PFX: pfx, Password: pw, RootSHA256: hex.EncodeToString(sum[:])}, nil
}
