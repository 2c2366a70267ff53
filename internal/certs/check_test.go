package certs

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

const pw = "P@ssw0rd"

func codes(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

func check(t *testing.T, pfx []byte, password, domain string) *Report {
	t.Helper()
	r := CheckPFX(pfx, password, domain, time.Now())
	if r == nil {
		t.Fatal("nil report")
	}
	return r
}

// wantFirst asserts the first error's code and exact message.
func wantFirst(t *testing.T, r *Report, code, msg string) {
	t.Helper()
	f, ok := r.FirstError()
	if !ok {
		t.Fatalf("no errors; want %s", code)
	}
	if f.Code != code || f.Message != msg {
		t.Fatalf("first error = %s %q\nwant          %s %q\n(all: %v)", f.Code, f.Message, code, msg, codes(r.Errors))
	}
}

func TestGoodChain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   testpki.ChainOptions
		legacy bool
		domain string
	}{
		{"modern root+leaf", testpki.ChainOptions{LeafCN: "intel.vprodemo.com"}, false, "vprodemo.com"},
		{"legacy RC2 with intermediate", testpki.ChainOptions{LeafCN: "test.test.com", Intermediate: true}, true, "test.com"},
		{"root first in file", testpki.ChainOptions{LeafCN: "intel.vprodemo.com", Intermediate: true, RootFirst: true}, false, "vprodemo.com"},
		{"EKU and OU both", testpki.ChainOptions{LeafCN: "intel.vprodemo.com", AMTOU: true}, false, "vprodemo.com"},
		{"CN equals suffix", testpki.ChainOptions{LeafCN: "vprodemo.com"}, false, "VProDemo.com."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testpki.NewChain(tc.opts)
			r := check(t, c.PFX(pw, tc.legacy), pw, tc.domain)
			if !r.OK() {
				t.Fatalf("errors: %+v", r.Errors)
			}
			want := []*x509.Certificate{c.Leaf}
			if c.Intermediate != nil {
				want = append(want, c.Intermediate)
			}
			want = append(want, c.Root)
			if len(ChainDER(r)) != len(want) {
				t.Fatalf("chain length %d, want %d", len(r.Chain), len(want))
			}
			for i, der := range ChainDER(r) {
				if !bytes.Equal(der, want[i].Raw) {
					t.Fatalf("chain[%d] = %s, want %s", i, r.Chain[i].Subject, want[i].Subject)
				}
			}
			if r.Leaf() != r.Chain[0] || r.Root() == nil || !bytes.Equal(r.Root().Raw, c.Root.Raw) {
				t.Fatal("Leaf/Root accessors wrong")
			}
			if !r.PrivateKey.Public().(*rsa.PublicKey).Equal(c.LeafKey.Public()) {
				t.Fatal("private key is not the leaf key")
			}
			if !r.ExpirationDate.Equal(c.Leaf.NotAfter) {
				t.Fatalf("ExpirationDate %v, want %v", r.ExpirationDate, c.Leaf.NotAfter)
			}
			if r.RootFingerprints != FingerprintsOf(c.Root.Raw) || len(r.RootFingerprints.SHA384) != 96 {
				t.Fatalf("root fingerprints %+v", r.RootFingerprints)
			}
			if r.DefaultHash != nil || !r.HasWarning(WarnRootNotDefault) {
				t.Fatalf("generated root reported as AMT default: %+v %v", r.DefaultHash, codes(r.Warnings))
			}
			if len(r.Extra) != 0 || r.HasWarning(WarnExtraCertificate) {
				t.Fatal("unexpected extra certificates")
			}
		})
	}
}

// Each class of bad certificate of admin-api.md §4, in RPS's words.
func TestRPSChecks(t *testing.T) {
	now := time.Now()
	future := now.Add(72 * time.Hour).Truncate(time.Second)
	for _, tc := range []struct {
		name     string
		opts     testpki.ChainOptions
		domain   string
		code     string
		msg      string
		alsoCode []string // further errors expected after the first
	}{
		{name: "no common name", opts: testpki.ChainOptions{NoLeafCN: true}, domain: "example.com",
			code: CodeNoCommonName, msg: "Provisioning certificate does not contain a Common Name (CN) in the subject"},
		{name: "CN not in domain", opts: testpki.ChainOptions{LeafCN: "amt.example.com"}, domain: "vprodemo.com",
			code: CodeCNDomainMismatch, msg: "FQDN not associated with provisioning certificate"},
		{name: "not yet valid", opts: testpki.ChainOptions{NotBefore: future, NotAfter: future.AddDate(1, 0, 0)}, domain: "example.com",
			code: CodeNotYetValid, msg: "Uploaded certificate is not yet valid: notBefore date " + future.UTC().Format("2006-01-02T15:04:05") + ".000Z is in the future"},
		{name: "expired", opts: testpki.ChainOptions{NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(-1, 0, 0)}, domain: "example.com",
			code: CodeExpired, msg: "Uploaded certificate has expired"},
		{name: "no root", opts: testpki.ChainOptions{OmitRoot: true}, domain: "example.com",
			code: CodeNoRoot, msg: "Provisioning certificate does not contain a root certificate", alsoCode: []string{CodeChainIncomplete}},
		{name: "weak RSA key", opts: testpki.ChainOptions{LeafBits: 1024}, domain: "example.com",
			code: CodeWeakRSAKey, msg: "Certificate key size 1024 bits is below the minimum required 2048 bits for AMT"},
		{name: "no private key", opts: testpki.ChainOptions{NoKey: true}, domain: "example.com",
			code: CodeNoPrivateKey, msg: "Provisioning certificate does not contain a private key"},
		{name: "key does not match leaf", opts: testpki.ChainOptions{WrongKey: true}, domain: "example.com",
			code: CodeKeyMismatch, msg: "Private key in the PFX does not match the leaf certificate public key"},
		{name: "intermediate missing", opts: testpki.ChainOptions{Intermediate: true, OmitIntermediate: true}, domain: "example.com",
			code: CodeChainIncomplete, msg: "Certificate chain is broken: cannot find issuer for a certificate in the chain"},
		{name: "no AMT OID nor OU", opts: testpki.ChainOptions{NoAMTOID: true}, domain: "example.com",
			code: CodeNoAMTOIDOrOU, msg: "Leaf certificate is missing the Intel AMT Activation EKU OID (2.16.840.1.113741.1.2.3)"},
		{name: "no EKU at all", opts: testpki.ChainOptions{NoEKU: true}, domain: "example.com",
			code: CodeNoAMTOIDOrOU, msg: "Leaf certificate is missing the Intel AMT Activation EKU OID (2.16.840.1.113741.1.2.3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testpki.NewChain(tc.opts)
			r := check(t, c.PFX(pw, false), pw, tc.domain)
			wantFirst(t, r, tc.code, tc.msg)
			if got, want := codes(r.Errors), append([]string{tc.code}, tc.alsoCode...); !slices.Equal(got, want) {
				t.Fatalf("errors %v, want %v", got, want)
			}
		})
	}
}

func TestDecodeFailures(t *testing.T) {
	good := testpki.NewChain(testpki.ChainOptions{}).PFX(pw, false)
	legacy := testpki.NewChain(testpki.ChainOptions{}).PFX(pw, true)
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testpki.NewChain(testpki.ChainOptions{}).Leaf.Raw})
	for _, tc := range []struct {
		name     string
		data     []byte
		password string
		code     string
		msg      string // exact, or prefix when ending in "…"
	}{
		{"wrong password (modern)", good, "nope", CodeWrongPassword, MsgDecrypt},
		{"wrong password (legacy)", legacy, "nope", CodeWrongPassword, MsgDecrypt},
		{"empty password for protected file", good, "", CodeWrongPassword, MsgDecrypt},
		{"empty", nil, pw, CodeNotPKCS12, "Provisioning certificate is not a PKCS#12 (PFX) file: it is empty"},
		{"text", []byte("test"), pw, CodeNotPKCS12, "Provisioning certificate is not a PKCS#12 (PFX) file"},
		{"PEM", leafPEM, pw, CodeNotPKCS12, "Provisioning certificate is not a PKCS#12 (PFX) file: it is PEM text…"},
		{"DER certificate", testpki.NewChain(testpki.ChainOptions{}).Leaf.Raw, pw, CodeNotPKCS12, "Provisioning certificate is not a PKCS#12 (PFX) file: it is a single DER certificate without its private key"},
		{"base64 of a PFX", []byte(base64.StdEncoding.EncodeToString(good)), pw, CodeNotPKCS12, "Provisioning certificate is not a PKCS#12 (PFX) file: it is base64 text; decode it first"},
		{"truncated", good[:len(good)/2], pw, CodeNotPKCS12, "Provisioning certificate is not a PKCS#12 (PFX) file"},
		{"huge MAC iteration count", withMACIterations(t, legacy, 1<<30), pw, CodeUnsupportedPKCS12, "Provisioning certificate PKCS#12 file asks for a key-derivation iteration count above amtd's limit…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan *Report, 1)
			go func() { done <- CheckPFX(tc.data, tc.password, "example.com", time.Now()) }()
			var r *Report
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("CheckPFX did not return")
			}
			if len(r.Errors) != 1 {
				t.Fatalf("errors %+v, want exactly one", r.Errors)
			}
			f := r.Errors[0]
			if prefix, ok := strings.CutSuffix(tc.msg, "…"); ok {
				if f.Code != tc.code || !strings.HasPrefix(f.Message, prefix) {
					t.Fatalf("got %s %q, want %s %q…", f.Code, f.Message, tc.code, prefix)
				}
			} else if f.Code != tc.code || f.Message != tc.msg {
				t.Fatalf("got %s %q, want %s %q", f.Code, f.Message, tc.code, tc.msg)
			}
			if r.PrivateKey != nil || len(r.Chain) != 0 {
				t.Fatal("failed decode returned key or chain")
			}
		})
	}
}

// withMACIterations rewrites the MAC iteration count of a (legacy, SHA-1
// MAC) PFX; the MAC no longer verifies, but the count is read first.
func withMACIterations(t *testing.T, pfx []byte, n int) []byte {
	t.Helper()
	var p p12PFX
	if rest, err := asn1.Unmarshal(pfx, &p); err != nil || len(rest) != 0 {
		t.Fatalf("unmarshal PFX: %v", err)
	}
	p.MacData.Iterations = n
	out, err := asn1.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNoCertificates(t *testing.T) {
	empty, err := pkcs12.Modern2023.EncodeTrustStore(nil, pw)
	if err != nil {
		t.Fatal(err)
	}
	r := check(t, empty, pw, "example.com")
	wantFirst(t, r, CodeNoCertificates, "No certificates found in the provisioning certificate")
	if len(r.Errors) != 1 {
		t.Fatalf("errors %v", codes(r.Errors))
	}
}

func TestChainSignature(t *testing.T) {
	c := testpki.NewChain(testpki.ChainOptions{})
	der := bytes.Clone(c.Leaf.Raw)
	der[len(der)-1] ^= 0xff // last byte of the signature
	bad, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	r := check(t, testpki.PFX([]*x509.Certificate{bad, c.Root}, c.LeafKey, pw, false), pw, "example.com")
	f, _ := r.FirstError()
	wantPrefix := "Certificate chain signature verification failed: "
	if f.Code != CodeChainSignature || !strings.HasPrefix(f.Message, wantPrefix) || !strings.Contains(f.Message, "amt.example.com") {
		t.Fatalf("got %s %q", f.Code, f.Message)
	}
	if len(r.Errors) != 1 {
		t.Fatalf("errors %v", codes(r.Errors))
	}

	// A root with the right name but another key: the leaf does not verify.
	tmpl := *c.Root
	tmpl.PublicKey = nil
	other := testpki.Key(2048, testpki.SlotOther)
	fakeDER, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, other.Public(), other)
	if err != nil {
		t.Fatal(err)
	}
	fake, _ := x509.ParseCertificate(fakeDER)
	r = check(t, testpki.PFX([]*x509.Certificate{c.Leaf, fake}, c.LeafKey, pw, false), pw, "example.com")
	if got := codes(r.Errors); !slices.Equal(got, []string{CodeChainSignature}) {
		t.Fatalf("errors %v", got)
	}
}

func TestAMTAdditions(t *testing.T) {
	t.Run("OU instead of OID", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{NoAMTOID: true, AMTOU: true})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		if !r.OK() || !r.HasWarning(WarnOUInsteadOfOID) {
			t.Fatalf("errors %v warnings %v", codes(r.Errors), codes(r.Warnings))
		}
	})
	t.Run("OU with wrong case is not the alternative", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{NoAMTOID: true, LeafOU: []string{"Intel(r) Client Setup Certificate"}})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		if !r.HasError(CodeNoAMTOIDOrOU) {
			t.Fatal("missing OID and OU accepted")
		}
	})
	t.Run("SHA-1 signatures", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{SigAlg: x509.SHA1WithRSA, Intermediate: true})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		if got := codes(r.Errors); !slices.Equal(got, []string{CodeSHA1Signature, CodeSHA1Signature, CodeSHA1Signature}) {
			t.Fatalf("errors %v (%+v)", got, r.Errors)
		}
		want := "Certificate CN=amt.example.com,O=amtd test is signed with SHA1-RSA: AMT 16 and later refuse SHA-1 signatures anywhere in the provisioning chain, including the root"
		if r.Errors[0].Message != want || r.Errors[0].Subject != "CN=amt.example.com,O=amtd test" {
			t.Fatalf("message %q", r.Errors[0].Message)
		}
	})
	t.Run("SHA-1 root only", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{RootSigAlg: x509.SHA1WithRSA})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		if got := codes(r.Errors); !slices.Equal(got, []string{CodeSHA1Signature}) || r.Errors[0].Subject != "CN=amtd test root,O=amtd test" {
			t.Fatalf("errors %+v", r.Errors)
		}
	})
	t.Run("SHA-1 after RPS's errors", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{SigAlg: x509.SHA1WithRSA, NoAMTOID: true})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		if got := codes(r.Errors); !slices.Equal(got, []string{CodeNoAMTOIDOrOU, CodeSHA1Signature, CodeSHA1Signature}) {
			t.Fatalf("errors %v", got)
		}
	})
	t.Run("ECDSA leaf", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{LeafECDSA: true})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		wantFirst(t, r, CodeLeafKeyNotRSA, "Leaf certificate key is ECDSA P-256: AMT activation signs its nonce with RSA and SHA-256, so the leaf key must be RSA")
		if len(r.Errors) != 1 {
			t.Fatalf("errors %v", codes(r.Errors))
		}
	})
}

func TestErrorOrderFollowsRPS(t *testing.T) {
	now := time.Now()
	c := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.example.com", OmitRoot: true, LeafBits: 1024, NoAMTOID: true,
		NotBefore: now.AddDate(-2, 0, 0), NotAfter: now.AddDate(-1, 0, 0), WrongKey: true, SigAlg: x509.SHA1WithRSA})
	r := check(t, c.PFX(pw, true), pw, "vprodemo.com")
	want := []string{CodeCNDomainMismatch, CodeExpired, CodeNoRoot, CodeWeakRSAKey, CodeKeyMismatch,
		CodeChainIncomplete, CodeNoAMTOIDOrOU, CodeSHA1Signature}
	if got := codes(r.Errors); !slices.Equal(got, want) {
		t.Fatalf("errors\n got %v\nwant %v", got, want)
	}
}

func TestWarnings(t *testing.T) {
	t.Run("AMT domain rule stricter than RPS", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{LeafCN: "intel.vprodemo.com"})
		r := check(t, c.PFX(pw, false), pw, "lab.vprodemo.com")
		if !r.OK() || !r.HasWarning(WarnAMTDomainMismatch) {
			t.Fatalf("errors %v warnings %v", codes(r.Errors), codes(r.Warnings))
		}
	})
	t.Run("no domain", func(t *testing.T) {
		r := check(t, testpki.NewChain(testpki.ChainOptions{}).PFX(pw, false), pw, "")
		if !r.OK() || !r.HasWarning(WarnNoDomain) {
			t.Fatalf("errors %v warnings %v", codes(r.Errors), codes(r.Warnings))
		}
	})
	t.Run("expires soon", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{NotAfter: time.Now().Add(5 * 24 * time.Hour)})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		if !r.OK() || !r.HasWarning(WarnExpiresSoon) {
			t.Fatalf("errors %v warnings %v", codes(r.Errors), codes(r.Warnings))
		}
	})
	t.Run("no serverAuth", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{NoServerAuth: true})
		r := check(t, c.PFX(pw, false), pw, "example.com")
		if !r.OK() || !r.HasWarning(WarnNoServerAuth) {
			t.Fatalf("errors %v warnings %v", codes(r.Errors), codes(r.Warnings))
		}
	})
	t.Run("extra certificate", func(t *testing.T) {
		c := testpki.NewChain(testpki.ChainOptions{})
		unrelated := testpki.NewChain(testpki.ChainOptions{RootCN: "unrelated root"}).Root
		r := check(t, testpki.PFX(append(slices.Clone(c.Certs), unrelated), c.Key, pw, false), pw, "example.com")
		if !r.OK() || !r.HasWarning(WarnExtraCertificate) || len(r.Extra) != 1 || len(r.Chain) != 2 {
			t.Fatalf("errors %v warnings %v", codes(r.Errors), codes(r.Warnings))
		}
	})
}

func loadPEM(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Real public roots: DigiCert Global Root G2 is AMT default #16; DigiCert
// Global Root CA (#15) is SHA-1 self-signed, which AMT 16+ refuses.
func TestDefaultRoots(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	g2 := loadPEM(t, "digicert-global-root-g2.pem")
	r := CheckPFX(testpki.PFX([]*x509.Certificate{g2}, nil, pw, false), pw, "", at)
	if r.DefaultHash == nil || r.DefaultHash.Index != 16 || r.HasWarning(WarnRootNotDefault) {
		t.Fatalf("DefaultHash %+v warnings %v", r.DefaultHash, codes(r.Warnings))
	}
	if r.RootFingerprints.SHA256 != "cb3ccbb76031e5e0138f8dd39a23f9de47ffc35e43c1144cea27d46a5ab1cb5f" {
		t.Fatalf("sha256 %s", r.RootFingerprints.SHA256)
	}
	if !r.HasError(CodeNoPrivateKey) || r.HasError(CodeSHA1Signature) {
		t.Fatalf("errors %v", codes(r.Errors))
	}

	ca := loadPEM(t, "digicert-global-root-ca.pem")
	r = CheckPFX(testpki.PFX([]*x509.Certificate{ca}, nil, pw, true), pw, "", at)
	if r.DefaultHash == nil || r.DefaultHash.Index != 15 || !r.HasError(CodeSHA1Signature) {
		t.Fatalf("DefaultHash %+v errors %v", r.DefaultHash, codes(r.Errors))
	}
}

func TestReportNeverPrintsKey(t *testing.T) {
	c := testpki.NewChain(testpki.ChainOptions{})
	r := check(t, c.PFX(pw, false), pw, "example.com")
	key := c.LeafKey.(*rsa.PrivateKey)
	secretDec := key.D.String()
	secretHex := fmt.Sprintf("%x", key.D)
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("checked", "report", r)
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%v", r), fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r), fmt.Sprintf("%s", r), logged.String()} {
		if strings.Contains(s, secretDec) || strings.Contains(s, secretHex) || strings.Contains(s, pw) {
			t.Fatalf("report output leaks key or password: %.200s", s)
		}
	}
	if !strings.Contains(logged.String(), `"rootSHA256"`) {
		t.Fatalf("log lacks summary: %s", logged.String())
	}
}

// handPFX builds a password-less PKCS#12 (no MAC, no encryption) holding
// only certificate bags without attributes, in one or two safes — layouts
// go-pkcs12 has no encoder for.
func handPFX(t *testing.T, twoSafes bool, certs ...*x509.Certificate) []byte {
	t.Helper()
	type certBag struct {
		ID   asn1.ObjectIdentifier
		Data []byte `asn1:"tag:0,explicit"`
	}
	mustMarshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// asn1.Marshal writes a RawValue as is, so [0] EXPLICIT is spelled out.
	explicit0 := func(inner []byte) asn1.RawValue {
		return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}
	}
	oidCertBag := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidX509 := asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	safe := func(cs []*x509.Certificate) p12ContentInfo {
		var bags []p12SafeBag
		for _, c := range cs {
			bags = append(bags, p12SafeBag{ID: oidCertBag, Value: explicit0(mustMarshal(certBag{oidX509, c.Raw}))})
		}
		return p12ContentInfo{ContentType: oidData, Content: explicit0(mustMarshal(mustMarshal(bags)))}
	}
	var safes []p12ContentInfo
	if twoSafes {
		safes = []p12ContentInfo{safe(certs[:1]), safe(certs[1:])}
	} else {
		safes = []p12ContentInfo{safe(certs)}
	}
	return mustMarshal(struct {
		Version  int
		AuthSafe p12ContentInfo
	}{3, p12ContentInfo{ContentType: oidData, Content: explicit0(mustMarshal(mustMarshal(safes)))}})
}

func TestKeylessLayouts(t *testing.T) {
	c := testpki.NewChain(testpki.ChainOptions{})
	// Two safes: listed through ToPEM; the chain is checked as usual.
	r := check(t, handPFX(t, true, c.Leaf, c.Root), "", "example.com")
	if got := codes(r.Errors); !slices.Equal(got, []string{CodeNoPrivateKey}) || len(r.Chain) != 2 || r.RootFingerprints.SHA256 == "" {
		t.Fatalf("two safes: errors %v, chain %d", got, len(r.Chain))
	}
	// One safe without trust-store attributes: go-pkcs12 cannot list it.
	r = check(t, handPFX(t, false, c.Leaf, c.Root), "", "example.com")
	if got := codes(r.Errors); !slices.Equal(got, []string{CodeNoPrivateKey}) || !r.HasWarning(WarnCertsUnlisted) || len(r.Chain) != 0 {
		t.Fatalf("one safe: errors %v warnings %v", got, codes(r.Warnings))
	}
	// A password given for a password-less file: read anyway, with a warning.
	r = check(t, handPFX(t, true, c.Leaf, c.Root), pw, "example.com")
	if got := codes(r.Errors); !slices.Equal(got, []string{CodeNoPrivateKey}) || !r.HasWarning(WarnUnprotected) || len(r.Chain) != 2 {
		t.Fatalf("unprotected: errors %v warnings %v", got, codes(r.Warnings))
	}
}
