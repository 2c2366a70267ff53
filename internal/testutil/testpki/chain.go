package testpki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// AMTProvisioningOID is the Intel AMT provisioning EKU (2.16.840.1.113741.1.2.3).
var AMTProvisioningOID = asn1.ObjectIdentifier{2, 16, 840, 1, 113741, 1, 2, 3}

// AMTSetupOU is the subject OU AMT accepts instead of the EKU.
const AMTSetupOU = "Intel(R) Client Setup Certificate"

// ChainOptions are the knobs of NewChain. The zero value gives a good
// provisioning chain: RSA-2048 root → leaf "CN=amt.example.com", SHA-256
// signatures, EKU serverAuth + AMT OID, valid from an hour ago for a year
// (root: ten years), leaf private key included.
type ChainOptions struct {
	LeafCN         string // default "amt.example.com"; use NoLeafCN for none
	NoLeafCN       bool
	RootCN         string // default "amtd test root"
	IntermediateCN string // default "amtd test intermediate"

	Intermediate bool // root → intermediate → leaf

	RootBits, IntermediateBits, LeafBits int  // RSA sizes, default 2048
	LeafECDSA                            bool // leaf key is ECDSA P-256 instead of RSA

	// SigAlg is the signature algorithm of every certificate (default
	// SHA256WithRSA); the per-certificate fields override it.
	SigAlg, RootSigAlg, IntermediateSigAlg, LeafSigAlg x509.SignatureAlgorithm

	NoAMTOID     bool     // leaf EKU without 2.16.840.1.113741.1.2.3
	NoServerAuth bool     // leaf EKU without serverAuth
	NoEKU        bool     // leaf without any EKU extension
	AMTOU        bool     // leaf subject OU "Intel(R) Client Setup Certificate"
	LeafOU       []string // further leaf subject OUs (before the AMT one)

	NotBefore, NotAfter         time.Time // leaf validity (default now-1h … now+1y)
	RootNotBefore, RootNotAfter time.Time // root (and intermediate) validity (default now-1h … now+10y)

	OmitRoot, OmitIntermediate bool // leave them out of Certs (still generated)
	WrongKey                   bool // Key is an unrelated key, not the leaf's
	NoKey                      bool // Key is nil
	RootFirst                  bool // Certs ordered root → … → leaf instead of leaf first
}

// Chain is a generated certificate chain.
type Chain struct {
	Root, Intermediate, Leaf          *x509.Certificate
	RootKey, IntermediateKey, LeafKey crypto.Signer // Intermediate* nil without intermediate

	// Certs is what belongs in the PFX: leaf, intermediate, root (or the
	// reverse with RootFirst), minus omitted ones.
	Certs []*x509.Certificate
	// Key is the private key for the PFX: LeafKey, an unrelated key
	// (WrongKey) or nil (NoKey).
	Key crypto.Signer
}

// PFX encodes the chain's Certs and Key (see the package function PFX).
func (c *Chain) PFX(password string, legacy bool) []byte {
	return PFX(c.Certs, c.Key, password, legacy)
}

// NewChain generates a chain. It panics on generation errors (they are
// programming errors in the options, e.g. an RSA size under 1024).
func NewChain(o ChainOptions) *Chain {
	now := time.Now()
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	bits := func(b int) int {
		if b == 0 {
			return 2048
		}
		return b
	}
	alg := func(a x509.SignatureAlgorithm) x509.SignatureAlgorithm {
		if a != x509.UnknownSignatureAlgorithm {
			return a
		}
		if o.SigAlg != x509.UnknownSignatureAlgorithm {
			return o.SigAlg
		}
		return x509.SHA256WithRSA
	}
	tm := func(t, d time.Time) time.Time {
		if t.IsZero() {
			return d
		}
		return t
	}
	rootNB, rootNA := tm(o.RootNotBefore, now.Add(-time.Hour)), tm(o.RootNotAfter, now.AddDate(10, 0, 0))

	c := &Chain{RootKey: Key(bits(o.RootBits), SlotRoot)}
	rootTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: def(o.RootCN, "amtd test root"), Organization: []string{"amtd test"}},
		NotBefore:             rootNB,
		NotAfter:              rootNA,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SignatureAlgorithm:    alg(o.RootSigAlg),
	}
	c.Root = create(rootTmpl, rootTmpl, c.RootKey.Public(), c.RootKey)

	issuer, issuerKey := c.Root, c.RootKey
	if o.Intermediate {
		c.IntermediateKey = Key(bits(o.IntermediateBits), SlotIntermediate)
		tmpl := &x509.Certificate{
			SerialNumber:          serial(),
			Subject:               pkix.Name{CommonName: def(o.IntermediateCN, "amtd test intermediate"), Organization: []string{"amtd test"}},
			NotBefore:             rootNB,
			NotAfter:              rootNA,
			IsCA:                  true,
			BasicConstraintsValid: true,
			MaxPathLenZero:        true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			SignatureAlgorithm:    alg(o.IntermediateSigAlg),
		}
		c.Intermediate = create(tmpl, issuer, c.IntermediateKey.Public(), issuerKey)
		issuer, issuerKey = c.Intermediate, c.IntermediateKey
	}

	if o.LeafECDSA {
		c.LeafKey = ECKey()
	} else {
		c.LeafKey = Key(bits(o.LeafBits), SlotLeaf)
	}
	subj := pkix.Name{Organization: []string{"amtd test"}}
	if !o.NoLeafCN {
		subj.CommonName = def(o.LeafCN, "amt.example.com")
	}
	subj.OrganizationalUnit = append(subj.OrganizationalUnit, o.LeafOU...)
	if o.AMTOU {
		subj.OrganizationalUnit = append(subj.OrganizationalUnit, AMTSetupOU)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               subj,
		NotBefore:             tm(o.NotBefore, now.Add(-time.Hour)),
		NotAfter:              tm(o.NotAfter, now.AddDate(1, 0, 0)),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		SignatureAlgorithm:    alg(o.LeafSigAlg),
	}
	if !o.NoEKU {
		if !o.NoServerAuth {
			leafTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		}
		if !o.NoAMTOID {
			leafTmpl.UnknownExtKeyUsage = []asn1.ObjectIdentifier{AMTProvisioningOID}
		}
		if len(leafTmpl.ExtKeyUsage) == 0 && len(leafTmpl.UnknownExtKeyUsage) == 0 {
			// An empty EKU extension is invalid; use clientAuth as "something else".
			leafTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
	}
	c.Leaf = create(leafTmpl, issuer, c.LeafKey.Public(), issuerKey)

	c.Certs = []*x509.Certificate{c.Leaf}
	if c.Intermediate != nil && !o.OmitIntermediate {
		c.Certs = append(c.Certs, c.Intermediate)
	}
	if !o.OmitRoot {
		c.Certs = append(c.Certs, c.Root)
	}
	if o.RootFirst {
		for i, j := 0, len(c.Certs)-1; i < j; i, j = i+1, j-1 {
			c.Certs[i], c.Certs[j] = c.Certs[j], c.Certs[i]
		}
	}
	switch {
	case o.NoKey:
	case o.WrongKey:
		c.Key = Key(2048, SlotOther)
	default:
		c.Key = c.LeafKey
	}
	return c
}

// PFX encodes certificates and a private key as PKCS#12 with go-pkcs12:
// legacy → LegacyRC2 (RC2-40 certificates, 3DES key, SHA-1 MAC, as older
// OpenSSL and Windows produce); otherwise Modern2023 (PBES2 AES-256, SHA-256
// MAC). With a key, chain[0] is stored as the key's certificate and the rest
// as CA certificates (order kept). With key == nil the file holds only
// certificates (a trust-store style PFX). It panics on encoder errors.
func PFX(chain []*x509.Certificate, key crypto.Signer, password string, legacy bool) []byte {
	enc := pkcs12.Modern2023
	if legacy {
		enc = pkcs12.LegacyRC2
	}
	var (
		der []byte
		err error
	)
	if key == nil {
		der, err = enc.EncodeTrustStore(chain, password)
	} else {
		if len(chain) == 0 {
			panic("testpki: PFX with a key needs at least one certificate")
		}
		der, err = enc.Encode(key, chain[0], chain[1:], password)
	}
	if err != nil {
		panic("testpki: encoding PFX: " + err.Error())
	}
	return der
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 96))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

func create(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		panic(fmt.Sprintf("testpki: creating %q: %v", tmpl.Subject.CommonName, err))
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(fmt.Sprintf("testpki: parsing %q: %v", tmpl.Subject.CommonName, err))
	}
	return cert
}
