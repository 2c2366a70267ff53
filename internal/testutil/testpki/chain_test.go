package testpki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"slices"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

func TestKeyIsCached(t *testing.T) {
	if Key(1024, SlotOther) != Key(1024, SlotOther) {
		t.Fatal("same (bits, slot) returned different keys")
	}
	if Key(1024, SlotOther).Equal(Key(1024, SlotServer)) {
		t.Fatal("different slots returned the same key")
	}
	if n := Key(1024, SlotOther).N.BitLen(); n != 1024 {
		t.Fatalf("key size %d", n)
	}
}

func hasAMTOID(c *x509.Certificate) bool {
	return slices.ContainsFunc(c.UnknownExtKeyUsage, AMTProvisioningOID.Equal)
}

func TestDefaultChain(t *testing.T) {
	c := NewChain(ChainOptions{})
	if c.Leaf.Subject.CommonName != "amt.example.com" || !hasAMTOID(c.Leaf) ||
		!slices.Contains(c.Leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Fatalf("leaf: %v eku %v %v", c.Leaf.Subject, c.Leaf.ExtKeyUsage, c.Leaf.UnknownExtKeyUsage)
	}
	if err := c.Leaf.CheckSignatureFrom(c.Root); err != nil {
		t.Fatal(err)
	}
	if len(c.Certs) != 2 || c.Certs[0] != c.Leaf || c.Certs[1] != c.Root || c.Key != c.LeafKey {
		t.Fatalf("certs/key wrong")
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.Root)
	if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatal(err)
	}
}

func TestChainKnobs(t *testing.T) {
	nb := time.Now().Add(48 * time.Hour)
	c := NewChain(ChainOptions{Intermediate: true, OmitRoot: true, LeafCN: "x.vprodemo.com", NoAMTOID: true, AMTOU: true,
		SigAlg: x509.SHA1WithRSA, LeafBits: 1024, NotBefore: nb, WrongKey: true, RootFirst: true})
	if c.Leaf.SignatureAlgorithm != x509.SHA1WithRSA || c.Intermediate.SignatureAlgorithm != x509.SHA1WithRSA {
		t.Fatalf("sig alg %v", c.Leaf.SignatureAlgorithm)
	}
	if hasAMTOID(c.Leaf) || !slices.Contains(c.Leaf.Subject.OrganizationalUnit, AMTSetupOU) {
		t.Fatal("OID/OU knobs not applied")
	}
	if !c.Leaf.NotBefore.Equal(nb.Truncate(time.Second)) {
		t.Fatalf("notBefore %v want %v", c.Leaf.NotBefore, nb)
	}
	if c.LeafKey.Public().(interface{ Size() int }).Size() != 128 {
		t.Fatal("leaf key not 1024 bits")
	}
	if len(c.Certs) != 2 || c.Certs[0] != c.Intermediate || c.Certs[1] != c.Leaf {
		t.Fatal("RootFirst/OmitRoot order wrong")
	}
	if c.Key == nil || c.Key == c.LeafKey {
		t.Fatal("WrongKey not applied")
	}
	if err := c.Intermediate.CheckSignature(c.Leaf.SignatureAlgorithm, c.Leaf.RawTBSCertificate, c.Leaf.Signature); err != nil {
		t.Fatal(err)
	}
}

func TestPFXRoundTrip(t *testing.T) {
	c := NewChain(ChainOptions{Intermediate: true})
	for _, legacy := range []bool{false, true} {
		der := c.PFX("P@ssw0rd", legacy)
		key, leaf, cas, err := pkcs12.DecodeChain(der, "P@ssw0rd")
		if err != nil {
			t.Fatalf("legacy=%v: %v", legacy, err)
		}
		if !bytes.Equal(leaf.Raw, c.Leaf.Raw) || len(cas) != 2 || !c.LeafKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(key.(crypto.Signer).Public()) {
			t.Fatalf("legacy=%v: decoded chain differs", legacy)
		}
		if _, _, _, err := pkcs12.DecodeChain(der, "wrong"); err != pkcs12.ErrIncorrectPassword {
			t.Fatalf("legacy=%v: wrong password gave %v", legacy, err)
		}
	}
	noKey := NewChain(ChainOptions{NoKey: true})
	certs, err := pkcs12.DecodeTrustStore(noKey.PFX("pw", false), "pw")
	if err != nil || len(certs) != 2 {
		t.Fatalf("no-key PFX: %v, %d certs", err, len(certs))
	}
}

func TestECDSALeaf(t *testing.T) {
	c := NewChain(ChainOptions{LeafECDSA: true})
	if c.Leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatal("leaf not ECDSA")
	}
	if _, _, _, err := pkcs12.DecodeChain(c.PFX("pw", false), "pw"); err != nil {
		t.Fatal(err)
	}
}
