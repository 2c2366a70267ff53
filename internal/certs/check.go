// Package certs is amtd's provisioning-certificate doctor: it reads a PKCS#12
// (PFX) provisioning certificate, orders its chain leaf → root, and runs RPS's
// domain-upload checks (spec/admin-api.md §4) with their exact messages and
// order, followed by amtd's own checks of what AMT firmware requires
// (spec/legacy.md §10). It also holds the helpers host-based ACM activation
// needs: the chain as DER, root fingerprints, root-hash matching against a
// device's hash list, and the AMT domain rule.
package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/amthashes"
)

// Finding codes. Errors come first in RPS's order (admin-api.md §4), then
// amtd's additions; the code is a stable machine word, the message is for
// people (RPS's exact text where RPS has the check).
const (
	// decoding (RPS check 1; amtd tells the three apart)
	CodeNotPKCS12         = "not-pkcs12"         // the data is not PKCS#12 at all
	CodeWrongPassword     = "wrong-password"     // MAC or decryption failed
	CodeUnsupportedPKCS12 = "unsupported-pkcs12" // PKCS#12 go-pkcs12 cannot read
	// RPS checks 2–8
	CodeNoCertificates   = "no-certificates"
	CodeNoCommonName     = "no-common-name"
	CodeCNDomainMismatch = "cn-domain-mismatch"
	CodeNotYetValid      = "not-yet-valid"
	CodeExpired          = "expired"
	CodeNoRoot           = "no-root"
	CodeWeakRSAKey       = "weak-rsa-key"
	CodeNoPrivateKey     = "no-private-key"
	CodeKeyMismatch      = "key-mismatch"
	CodeChainIncomplete  = "chain-incomplete"
	CodeChainSignature   = "chain-signature"
	CodeNoAMTOIDOrOU     = "no-amt-oid-or-ou"
	// amtd error additions
	CodeSHA1Signature = "sha1-signature"
	CodeLeafKeyNotRSA = "leaf-key-not-rsa"

	// warnings
	WarnNoDomain          = "no-domain"            // no suffix given, domain not checked
	WarnAMTDomainMismatch = "amt-domain-mismatch"  // passes RPS's rule, not DomainMatches
	WarnOUInsteadOfOID    = "ou-instead-of-oid"    // accepted by the OU alternative only
	WarnNoServerAuth      = "no-server-auth"       // EKU lacks serverAuth
	WarnRootNotDefault    = "root-not-default"     // root hash must be added to devices
	WarnRootDefaultLimit  = "root-default-limited" // a default only on some firmware
	WarnExpiresSoon       = "expires-soon"
	WarnExtraCertificate  = "extra-certificate" // in the PFX, not on the leaf's chain
	WarnIssuerNotCA       = "issuer-not-ca"
	WarnChainTooLong      = "chain-too-long"
	WarnSelfSignedLeaf    = "self-signed-leaf"
	WarnCertsUnlisted     = "certificates-unlisted" // key-less PFX whose certificates could not be read
	WarnUnprotected       = "pfx-unprotected"       // no MAC: the password was not needed
)

// MsgDecrypt is RPS's message for a PFX it cannot decrypt (wrong password).
const MsgDecrypt = "Unable to decrypt provisioning certificate. Please check that the password is correct, and that the certificate is a valid certificate."

// AMTProvisioningOID is the Intel AMT provisioning EKU, 2.16.840.1.113741.1.2.3.
var AMTProvisioningOID = asn1.ObjectIdentifier{2, 16, 840, 1, 113741, 1, 2, 3}

// AMTSetupOU is the subject OU AMT accepts instead of the EKU (exact, case-sensitive).
const AMTSetupOU = "Intel(R) Client Setup Certificate"

// MaxChainLength is the most certificates AddNextCertInChain accepts
// (simulator rule, legacy.md §10 item 7).
const MaxChainLength = 4

// ExpiresSoonWindow is how close to NotAfter a certificate draws a warning.
const ExpiresSoonWindow = 30 * 24 * time.Hour

// Finding is one result of a check.
type Finding struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Subject of the certificate the finding is about, when it is about one.
	Subject string `json:"subject,omitempty"`
}

// Report is the result of CheckPFX. It holds the PFX private key: never log
// or serialise it whole (String and LogValue leave the key out).
type Report struct {
	// Errors in check order; Errors[0] is what RPS would answer (the API
	// returns its Message). Empty when the certificate is usable.
	Errors   []Finding
	Warnings []Finding

	// Chain is ordered leaf → intermediates → root, as far as issuers are
	// present. The leaf is the certificate whose public key matches the PFX
	// private key; without a (matching) key, the first certificate of the
	// file that issued none of the others (normally the file's first).
	Chain []*x509.Certificate
	// Extra holds certificates of the PFX that are not on the leaf's chain.
	Extra []*x509.Certificate
	// PrivateKey is the PFX's private key (nil when it has none).
	PrivateKey crypto.Signer

	// RootFingerprints are the hashes of Root(); zero without a root.
	RootFingerprints Fingerprints
	// ExpirationDate is the leaf's NotAfter (zero without certificates).
	ExpirationDate time.Time
	// DefaultHash is AMT's default trusted-root entry the root matches (by
	// SHA-256, else SHA-1), or nil when the root is not a default — then
	// its hash must be added to every device (MEBx or setup.bin) as a
	// user-defined hash before ACM. Informational, never an error.
	DefaultHash *amthashes.Entry
}

// OK reports whether there are no errors.
func (r *Report) OK() bool { return len(r.Errors) == 0 }

// FirstError returns the first error (the one RPS would report).
func (r *Report) FirstError() (Finding, bool) {
	if len(r.Errors) == 0 {
		return Finding{}, false
	}
	return r.Errors[0], true
}

// Leaf returns the leaf certificate, or nil.
func (r *Report) Leaf() *x509.Certificate {
	if len(r.Chain) == 0 {
		return nil
	}
	return r.Chain[0]
}

// Root returns the self-signed certificate the chain ends at, or nil when
// the chain does not reach one.
func (r *Report) Root() *x509.Certificate {
	if len(r.Chain) == 0 {
		return nil
	}
	if last := r.Chain[len(r.Chain)-1]; selfIssued(last) {
		return last
	}
	return nil
}

// HasError reports whether an error with the code was found.
func (r *Report) HasError(code string) bool {
	return slices.ContainsFunc(r.Errors, func(f Finding) bool { return f.Code == code })
}

// HasWarning reports whether a warning with the code was found.
func (r *Report) HasWarning(code string) bool {
	return slices.ContainsFunc(r.Warnings, func(f Finding) bool { return f.Code == code })
}

// String summarises the report without the private key.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "certs.Report{errors: %d, warnings: %d", len(r.Errors), len(r.Warnings))
	if leaf := r.Leaf(); leaf != nil {
		fmt.Fprintf(&b, ", leaf: %q", leaf.Subject.String())
	}
	if r.RootFingerprints.SHA256 != "" {
		fmt.Fprintf(&b, ", root sha256: %s", r.RootFingerprints.SHA256)
	}
	if r.PrivateKey != nil {
		b.WriteString(", private key: present")
	}
	b.WriteString("}")
	return b.String()
}

// GoString is String: %#v must not print the key either.
func (r *Report) GoString() string { return r.String() }

// LogValue makes slog print the summary, never the key.
func (r *Report) LogValue() slog.Value {
	attrs := []slog.Attr{slog.Int("errors", len(r.Errors)), slog.Int("warnings", len(r.Warnings))}
	if f, ok := r.FirstError(); ok {
		attrs = append(attrs, slog.String("firstError", f.Code))
	}
	if leaf := r.Leaf(); leaf != nil {
		attrs = append(attrs, slog.String("leaf", leaf.Subject.String()))
	}
	if r.RootFingerprints.SHA256 != "" {
		attrs = append(attrs, slog.String("rootSHA256", r.RootFingerprints.SHA256))
	}
	return slog.GroupValue(attrs...)
}

func (r *Report) fail(code, subject, format string, args ...any) {
	r.Errors = append(r.Errors, Finding{Code: code, Message: fmt.Sprintf(format, args...), Subject: subject})
}

func (r *Report) warn(code, subject, format string, args ...any) {
	r.Warnings = append(r.Warnings, Finding{Code: code, Message: fmt.Sprintf(format, args...), Subject: subject})
}

// CheckPFX reads a PKCS#12 provisioning certificate and checks it for use
// with devices whose DNS suffix is domainSuffix ("" skips the domain check
// with a warning), at time now. It never returns nil and never panics.
//
// Errors, in this order (RPS's, admin-api.md §4, then amtd's additions):
//
//  1. decoding: not-pkcs12 | wrong-password | unsupported-pkcs12
//  2. no-certificates; no-common-name (leaf); cn-domain-mismatch (RPS's
//     last-two-labels rule, RPSDomainMatches)
//  3. not-yet-valid / expired, per certificate of the file
//  4. no-root (no self-signed certificate in the file)
//  5. weak-rsa-key, per certificate with an RSA key under 2048 bits
//  6. no-private-key; key-mismatch (no certificate matches the key)
//  7. chain-incomplete (an issuer is missing); chain-signature (a
//     signature of the chain, the root's self-signature included, does not
//     verify)
//  8. no-amt-oid-or-ou: the leaf has neither the EKU 2.16.840.1.113741.1.2.3
//     nor (amtd) the OU "Intel(R) Client Setup Certificate" (RPS's message)
//  9. amtd: sha1-signature (any certificate of the chain, root included;
//     AMT 16+ refuses them); leaf-key-not-rsa (AdminSetup signs with RSA)
//
// Warnings are listed with the Warn* codes.
func CheckPFX(pfx []byte, password, domainSuffix string, now time.Time) *Report {
	r := &Report{}
	d := decodePFX(pfx, password)
	if d.fail != nil {
		r.Errors = append(r.Errors, *d.fail)
		return r
	}
	r.PrivateKey = d.key
	if d.unprotected {
		r.warn(WarnUnprotected, "", "The PFX has no password protection (no MAC); the given password was not needed")
	}

	// 2. certificates, CN and domain
	if len(d.certs) == 0 {
		if d.certsUnknown {
			// go-pkcs12 reads key-less files only in the trust-store or
			// two-safe layouts; the certificates of others stay unknown.
			r.fail(CodeNoPrivateKey, "", "Provisioning certificate does not contain a private key")
			r.warn(WarnCertsUnlisted, "", "The PFX holds no private key and its certificates could not be listed")
			return r
		}
		r.fail(CodeNoCertificates, "", "No certificates found in the provisioning certificate")
		return r
	}
	leaf, keyMatched := pickLeaf(d.certs, d.key)
	r.Chain, r.Extra = buildChain(leaf, d.certs)
	r.ExpirationDate = leaf.NotAfter
	all := append(slices.Clone(r.Chain), r.Extra...)

	cn := leaf.Subject.CommonName
	switch {
	case strings.TrimSpace(cn) == "":
		r.fail(CodeNoCommonName, subj(leaf), "Provisioning certificate does not contain a Common Name (CN) in the subject")
	case domainSuffix == "":
		r.warn(WarnNoDomain, subj(leaf), "No domain suffix given: the leaf CN %q was not checked against a domain", cn)
	case !RPSDomainMatches(cn, domainSuffix):
		r.fail(CodeCNDomainMismatch, subj(leaf), "FQDN not associated with provisioning certificate")
	case !DomainMatches(cn, domainSuffix):
		r.warn(WarnAMTDomainMismatch, subj(leaf), "Leaf CN %q shares its last two labels with %q but does not end with it: AMT devices whose DNS suffix is %q may refuse the certificate (the CN must equal the suffix or end with \".%s\")",
			cn, domainSuffix, domainSuffix, strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domainSuffix)), "."))
	}

	// 3. validity
	for _, c := range all {
		if c.NotBefore.After(now) {
			r.fail(CodeNotYetValid, subj(c), "Uploaded certificate is not yet valid: notBefore date %s is in the future", isoDate(c.NotBefore))
		}
		if now.After(c.NotAfter) {
			r.fail(CodeExpired, subj(c), "Uploaded certificate has expired")
		}
	}

	// 4. a self-signed root in the file
	if !slices.ContainsFunc(all, selfIssued) {
		r.fail(CodeNoRoot, "", "Provisioning certificate does not contain a root certificate")
	}

	// 5. RSA key sizes
	for _, c := range all {
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok && pub.N.BitLen() < 2048 {
			r.fail(CodeWeakRSAKey, subj(c), "Certificate key size %d bits is below the minimum required 2048 bits for AMT", pub.N.BitLen())
		}
	}

	// 6. private key
	switch {
	case d.key == nil:
		r.fail(CodeNoPrivateKey, "", "Provisioning certificate does not contain a private key")
	case !keyMatched:
		r.fail(CodeKeyMismatch, subj(leaf), "Private key in the PFX does not match the leaf certificate public key")
	}

	// 7. chain: issuers present, signatures verify
	top := r.Chain[len(r.Chain)-1]
	if !selfIssued(top) {
		r.fail(CodeChainIncomplete, subj(top), "Certificate chain is broken: cannot find issuer for a certificate in the chain")
	}
	for i, c := range r.Chain {
		parent := c
		if i+1 < len(r.Chain) {
			parent = r.Chain[i+1]
		} else if !selfIssued(c) {
			break
		}
		if err := parent.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
			r.fail(CodeChainSignature, subj(c), "Certificate chain signature verification failed: %s is not signed by %s: %v", subj(c), subj(parent), err)
		}
		if parent != c && !(parent.BasicConstraintsValid && parent.IsCA) {
			r.warn(WarnIssuerNotCA, subj(parent), "Issuer %s is not marked as a CA (basic constraints); AMT may refuse the chain", subj(parent))
		} else if parent != c && parent.KeyUsage != 0 && parent.KeyUsage&x509.KeyUsageCertSign == 0 {
			r.warn(WarnIssuerNotCA, subj(parent), "Issuer %s has a key usage without certificate signing; AMT may refuse the chain", subj(parent))
		}
	}

	// 8. AMT provisioning EKU, or (amtd) the OU alternative
	hasOID := slices.ContainsFunc(leaf.UnknownExtKeyUsage, AMTProvisioningOID.Equal)
	hasOU := slices.Contains(leaf.Subject.OrganizationalUnit, AMTSetupOU)
	switch {
	case !hasOID && !hasOU:
		r.fail(CodeNoAMTOIDOrOU, subj(leaf), "Leaf certificate is missing the Intel AMT Activation EKU OID (2.16.840.1.113741.1.2.3)")
	case !hasOID:
		r.warn(WarnOUInsteadOfOID, subj(leaf), "Leaf certificate has no AMT activation EKU OID (2.16.840.1.113741.1.2.3); accepted because its subject has OU %q, which AMT accepts instead (RPS would refuse it)", AMTSetupOU)
	}
	if (len(leaf.ExtKeyUsage) > 0 || len(leaf.UnknownExtKeyUsage) > 0) &&
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		r.warn(WarnNoServerAuth, subj(leaf), "Leaf certificate's extended key usage lacks server authentication (1.3.6.1.5.5.7.3.1), which Intel requires alongside the AMT OID")
	}

	// 9. amtd additions
	for _, c := range r.Chain {
		if isSHA1(c.SignatureAlgorithm) {
			r.fail(CodeSHA1Signature, subj(c), "Certificate %s is signed with %s: AMT 16 and later refuse SHA-1 signatures anywhere in the provisioning chain, including the root", subj(c), c.SignatureAlgorithm)
		}
	}
	if _, ok := leaf.PublicKey.(*rsa.PublicKey); !ok {
		r.fail(CodeLeafKeyNotRSA, subj(leaf), "Leaf certificate key is %s: AMT activation signs its nonce with RSA and SHA-256, so the leaf key must be RSA", keyType(leaf.PublicKey))
	}

	// warnings
	if len(r.Chain) > MaxChainLength {
		r.warn(WarnChainTooLong, "", "The chain has %d certificates; AMT accepts at most %d through AddNextCertInChain", len(r.Chain), MaxChainLength)
	}
	if len(r.Chain) == 1 && selfIssued(leaf) {
		r.warn(WarnSelfSignedLeaf, subj(leaf), "The leaf certificate is self-signed; AMT expects a leaf issued by a root (or intermediate) CA")
	}
	for _, c := range r.Extra {
		r.warn(WarnExtraCertificate, subj(c), "Certificate %s in the PFX is not on the leaf's chain and is ignored", subj(c))
	}
	for _, c := range all {
		if left := c.NotAfter.Sub(now); !now.After(c.NotAfter) && left < ExpiresSoonWindow {
			r.warn(WarnExpiresSoon, subj(c), "Certificate %s expires on %s (in %d days)", subj(c), isoDate(c.NotAfter), int(left.Hours()/24))
		}
	}

	if root := r.Root(); root != nil {
		r.RootFingerprints = FingerprintsOf(root.Raw)
		e, ok := amthashes.Lookup(r.RootFingerprints.SHA256)
		if !ok {
			e, ok = amthashes.Lookup(r.RootFingerprints.SHA1)
		}
		switch {
		case !ok:
			r.warn(WarnRootNotDefault, subj(root), "Root certificate %s is not one of AMT's default trusted roots: add its hash (SHA-256 %s) to each device as a user-defined hash (MEBx or setup.bin) before ACM activation", subj(root), r.RootFingerprints.SHA256)
		case e.Index == 0:
			r.DefaultHash = &e
			r.warn(WarnRootDefaultLimit, subj(root), "Root certificate matches %q, a default only on older AMT firmware; on current devices add its hash as a user-defined hash", e.Name)
		case !e.Active:
			r.DefaultHash = &e
			r.warn(WarnRootDefaultLimit, subj(root), "Root certificate matches default entry #%d %q, which is present only on some firmware; check the device's hash list", e.Index, e.Name)
		default:
			r.DefaultHash = &e
		}
	}
	return r
}

// pickLeaf returns the certificate whose public key matches key; without a
// key or a match, the first certificate that issued none of the others.
func pickLeaf(certs []*x509.Certificate, key crypto.Signer) (leaf *x509.Certificate, keyMatched bool) {
	if key != nil {
		type equaler interface{ Equal(crypto.PublicKey) bool }
		if pub, ok := key.Public().(equaler); ok {
			for _, c := range certs {
				if pub.Equal(c.PublicKey) {
					return c, true
				}
			}
		}
	}
	for _, c := range certs {
		issuesOther := false
		for _, o := range certs {
			if o != c && !selfIssued(o) && bytes.Equal(o.RawIssuer, c.RawSubject) {
				issuesOther = true
				break
			}
		}
		if !issuesOther {
			return c, false
		}
	}
	return certs[0], false
}

// buildChain follows issuer names from the leaf, preferring an issuer whose
// key verifies the signature when several carry the same name.
func buildChain(leaf *x509.Certificate, certs []*x509.Certificate) (chain, extra []*x509.Certificate) {
	chain = []*x509.Certificate{leaf}
	used := map[*x509.Certificate]bool{leaf: true}
	for cur := leaf; !selfIssued(cur); {
		var pick *x509.Certificate
		for _, c := range certs {
			if used[c] || !bytes.Equal(c.RawSubject, cur.RawIssuer) {
				continue
			}
			if pick == nil {
				pick = c
			}
			if c.CheckSignature(cur.SignatureAlgorithm, cur.RawTBSCertificate, cur.Signature) == nil {
				pick = c
				break
			}
		}
		if pick == nil {
			break
		}
		chain = append(chain, pick)
		used[pick] = true
		cur = pick
	}
	for _, c := range certs {
		if !used[c] {
			extra = append(extra, c)
		}
	}
	return chain, extra
}

func selfIssued(c *x509.Certificate) bool { return bytes.Equal(c.RawSubject, c.RawIssuer) }

func isSHA1(a x509.SignatureAlgorithm) bool {
	return a == x509.SHA1WithRSA || a == x509.ECDSAWithSHA1 || a == x509.DSAWithSHA1
}

func subj(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	return "(empty subject)"
}

// isoDate formats like JavaScript's Date.toISOString (RPS's messages).
func isoDate(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func keyType(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}

// KeyDescription describes a certificate's public key, e.g. "RSA 2048".
func KeyDescription(c *x509.Certificate) string { return keyType(c.PublicKey) }
