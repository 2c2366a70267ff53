package firmware

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Instance ID prefixes of the certificate store.
const (
	CertInstancePrefix = "Intel(r) AMT Certificate: Handle: "
	KeyInstancePrefix  = "Intel(r) AMT Key: Handle: "
	// MaxStoredCerts and MaxStoredKeys bound the store like the firmware's flash.
	MaxStoredCerts = 32
	MaxStoredKeys  = 16
)

// ErrInUse is returned when deleting an object another setting refers to.
var ErrInUse = errors.New("firmware: object in use")

// ErrNotFound is returned for an unknown handle.
var ErrNotFound = errors.New("firmware: not found")

// CertInstanceID is the InstanceID of a stored certificate.
func CertInstanceID(handle int) string { return CertInstancePrefix + strconv.Itoa(handle) }

// KeyInstanceID is the InstanceID of a stored key pair.
func KeyInstanceID(handle int) string { return KeyInstancePrefix + strconv.Itoa(handle) }

// ParseCertInstanceID returns the handle of a certificate InstanceID.
func ParseCertInstanceID(id string) (int, bool) { return parseHandle(id, CertInstancePrefix) }

// ParseKeyInstanceID returns the handle of a key InstanceID.
func ParseKeyInstanceID(id string) (int, bool) { return parseHandle(id, KeyInstancePrefix) }

func parseHandle(id, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(id), prefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

func (f *Firmware) certLocked(handle int) *StoredCert {
	for i := range f.st.Certs {
		if f.st.Certs[i].Handle == handle {
			return &f.st.Certs[i]
		}
	}
	return nil
}

func (f *Firmware) keyLocked(handle int) *StoredKey {
	for i := range f.st.Keys {
		if f.st.Keys[i].Handle == handle {
			return &f.st.Keys[i]
		}
	}
	return nil
}

func freeHandle[T any](items []T, handle func(T) int) int {
	used := map[int]bool{}
	for _, it := range items {
		used[handle(it)] = true
	}
	h := 0
	for used[h] {
		h++
	}
	return h
}

// keyForCertLocked finds the stored private key matching a certificate.
func (f *Firmware) keyForCertLocked(der []byte) (*rsa.PrivateKey, bool) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, false
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, false
	}
	for _, k := range f.st.Keys {
		priv, err := parsePrivateKey(k.PrivatePK8)
		if err == nil && priv.PublicKey.Equal(pub) {
			return priv, true
		}
	}
	return nil, false
}

func parsePrivateKey(der []byte) (*rsa.PrivateKey, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk, nil
		}
		return nil, errors.New("firmware: not an RSA key")
	}
	return x509.ParsePKCS1PrivateKey(der)
}

// AddCertificate stores a certificate (AddTrustedRootCertificate when
// trustedRoot, else AddCertificate, which needs the matching key pair).
func (f *Firmware) AddCertificate(der []byte, trustedRoot bool) (int, uint32) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return 0, PTInvalidCert
	}
	if trustedRoot && !cert.IsCA && cert.CheckSignatureFrom(cert) != nil {
		return 0, PTInvalidCert
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.st.Certs {
		if bytes.Equal(c.DER, der) {
			return 0, PTDuplicate
		}
	}
	if !trustedRoot {
		if _, ok := f.keyForCertLocked(der); !ok {
			return 0, PTCertKeyNotMatch
		}
	}
	if len(f.st.Certs) >= MaxStoredCerts {
		return 0, PTMaxLimitReached
	}
	h := freeHandle(f.st.Certs, func(c StoredCert) int { return c.Handle })
	if err := f.updateLocked(func(s *State) error {
		s.Certs = append(s.Certs, StoredCert{Handle: h, DER: der, TrustedRoot: trustedRoot})
		slices.SortFunc(s.Certs, func(a, b StoredCert) int { return a.Handle - b.Handle })
		return nil
	}); err != nil {
		return 0, PTInternalError
	}
	return h, PTSuccess
}

// AddKey stores a private key given as PKCS#1 or PKCS#8 DER.
func (f *Firmware) AddKey(der []byte) (int, uint32) {
	priv, err := parsePrivateKey(der)
	if err != nil {
		return 0, PTInvalidKey
	}
	return f.storeKey(priv)
}

// GenerateKeyPair creates an RSA key pair on the device.
func (f *Firmware) GenerateKeyPair(alg, bits int) (int, uint32) {
	if alg != 0 {
		return 0, PTUnsupported
	}
	if bits != 2048 && bits != 3072 {
		return 0, PTInvalidKey // InvalidKeyLength
	}
	f.mu.Lock()
	full := len(f.st.Keys) >= MaxStoredKeys
	f.mu.Unlock()
	if full {
		return 0, PTMaxLimitReached
	}
	priv, err := f.GenerateKey(bits)
	if err != nil {
		f.log.Error("generate key pair", "err", err)
		return 0, PTInternalError
	}
	return f.storeKey(priv)
}

func (f *Firmware) storeKey(priv *rsa.PrivateKey) (int, uint32) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return 0, PTInvalidKey
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range f.st.Keys {
		if other, err := parsePrivateKey(k.PrivatePK8); err == nil && other.PublicKey.Equal(&priv.PublicKey) {
			return 0, PTDuplicate
		}
	}
	if len(f.st.Keys) >= MaxStoredKeys {
		return 0, PTMaxLimitReached
	}
	h := freeHandle(f.st.Keys, func(k StoredKey) int { return k.Handle })
	if err := f.updateLocked(func(s *State) error {
		s.Keys = append(s.Keys, StoredKey{Handle: h, PrivatePK8: der})
		slices.SortFunc(s.Keys, func(a, b StoredKey) int { return a.Handle - b.Handle })
		return nil
	}); err != nil {
		return 0, PTInternalError
	}
	return h, PTSuccess
}

// PublicKeyDER returns the PKCS#1 RSAPublicKey DER of a stored key (DERKey).
func (f *Firmware) PublicKeyDER(handle int) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keyLocked(handle)
	if k == nil {
		return nil, false
	}
	priv, err := parsePrivateKey(k.PrivatePK8)
	if err != nil {
		return nil, false
	}
	return x509.MarshalPKCS1PublicKey(&priv.PublicKey), true
}

// DeleteCertificate removes a certificate unless it is read-only or in use.
func (f *Firmware) DeleteCertificate(handle int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.certLocked(handle)
	if c == nil {
		return ErrNotFound
	}
	if c.ReadOnly || f.certInUseLocked(handle) {
		return ErrInUse
	}
	return f.updateLocked(func(s *State) error {
		s.Certs = slices.DeleteFunc(s.Certs, func(c StoredCert) bool { return c.Handle == handle })
		return nil
	})
}

func (f *Firmware) certInUseLocked(handle int) bool {
	s := &f.st
	id := CertInstanceID(handle)
	committed := s.TLS.Committed.Remote.Enabled || s.TLS.Committed.Local.Enabled
	if s.TLS.CredentialCert == handle || committed && s.TLS.Committed.Cert == handle {
		return true
	}
	if s.IEEE8021x.Wired.ClientCertificate == id || s.IEEE8021x.Wired.ServerCertificateIssuer == id {
		return true
	}
	for _, p := range s.WiFi.Profiles {
		if p.ClientCredential == id || p.CACredential == id {
			return true
		}
	}
	return false
}

// DeleteKey removes a key pair unless a certificate in use depends on it.
func (f *Firmware) DeleteKey(handle int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := f.keyLocked(handle)
	if k == nil {
		return ErrNotFound
	}
	priv, err := parsePrivateKey(k.PrivatePK8)
	if err == nil {
		for _, c := range f.st.Certs {
			cert, err := x509.ParseCertificate(c.DER)
			if err != nil {
				continue
			}
			if pub, ok := cert.PublicKey.(*rsa.PublicKey); ok && pub.Equal(&priv.PublicKey) && f.certInUseLocked(c.Handle) {
				return ErrInUse
			}
		}
	}
	return f.updateLocked(func(s *State) error {
		s.Keys = slices.DeleteFunc(s.Keys, func(k StoredKey) bool { return k.Handle == handle })
		return nil
	})
}

// GeneratePKCS10 signs a certificate request with a stored key
// (GeneratePKCS10RequestEx). A "null signed" request given by the caller has
// its CertificationRequestInfo signed as is; its public key must be the key
// pair's. Without one, a request with CN=<uuid> is built. Signing algorithm
// 1 = SHA256-RSA; 0 (SHA1-RSA) is refused as on ME 16+.
func (f *Firmware) GeneratePKCS10(keyHandle int, sigAlg int, nullSigned []byte) ([]byte, uint32) {
	f.mu.Lock()
	k := f.keyLocked(keyHandle)
	uuid := f.st.UUID
	var pk8 []byte
	if k != nil {
		pk8 = k.PrivatePK8
	}
	f.mu.Unlock()
	if k == nil {
		return nil, PTInvalidParameter
	}
	priv, err := parsePrivateKey(pk8)
	if err != nil {
		return nil, PTInternalError
	}
	switch sigAlg {
	case 1:
	case 0:
		return nil, PTUnsupported
	default:
		return nil, PTInvalidParameter
	}
	if len(nullSigned) == 0 {
		tmpl := &x509.CertificateRequest{SignatureAlgorithm: x509.SHA256WithRSA, Subject: pkix.Name{CommonName: uuid}}
		der, err := x509.CreateCertificateRequest(f.rand, tmpl, priv)
		if err != nil {
			return nil, PTInternalError
		}
		return der, PTSuccess
	}
	req, err := x509.ParseCertificateRequest(nullSigned)
	if err != nil {
		return nil, PTInvalidParameter
	}
	pub, ok := req.PublicKey.(*rsa.PublicKey)
	if !ok || !pub.Equal(&priv.PublicKey) {
		return nil, PTInvalidParameter
	}
	digest := sha256.Sum256(req.RawTBSCertificateRequest)
	sig, err := rsa.SignPKCS1v15(f.rand, priv, crypto.SHA256, digest[:])
	if err != nil {
		return nil, PTInternalError
	}
	der, err := asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{
		TBS:       asn1.RawValue{FullBytes: req.RawTBSCertificateRequest},
		Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: asn1.NullRawValue},
		Signature: asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)},
	})
	if err != nil {
		return nil, PTInternalError
	}
	return der, PTSuccess
}

var oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}

// TLSServerState is what the device's TLS listener needs.
type TLSServerState struct {
	// Cert is the certificate from the committed credential context (nil
	// when TLS is not configured).
	Cert *tls.Certificate
	// Remote and Local are the committed setting instances.
	Remote, Local TLSSetting
	// Roots are the trusted root certificates (mutual authentication).
	Roots *x509.CertPool
	// Enforced: AMT 19+ TLS-enforced local access.
	Enforced bool
}

// TLSServer returns the committed TLS configuration of the device.
func (f *Firmware) TLSServer() TLSServerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := &f.st
	out := TLSServerState{Remote: cloneTLS(s.TLS.Committed.Remote), Local: cloneTLS(s.TLS.Committed.Local), Enforced: s.TLSEnforced}
	if c := f.certLocked(s.TLS.Committed.Cert); c != nil {
		if priv, ok := f.keyForCertLocked(c.DER); ok {
			out.Cert = &tls.Certificate{Certificate: [][]byte{c.DER}, PrivateKey: priv}
		}
	}
	out.Roots = x509.NewCertPool()
	for _, c := range s.Certs {
		if c.TrustedRoot {
			if cert, err := x509.ParseCertificate(c.DER); err == nil {
				out.Roots.AddCert(cert)
			}
		}
	}
	return out
}

type selfCert = tls.Certificate

// SelfCertificate is the device's own TLS certificate used before TLS is
// configured (AMT 19+ On-Die CA style); generated on first use.
func (f *Firmware) SelfCertificate() (*tls.Certificate, error) { return f.selfCertificate() }

func (f *Firmware) selfCertificate() (*tls.Certificate, error) {
	f.mu.Lock()
	if f.selfTLS != nil {
		c := f.selfTLS
		f.mu.Unlock()
		return c, nil
	}
	uuid := f.st.UUID
	f.mu.Unlock()
	priv, err := f.GenerateKey(2048)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(f.rand, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, err
	}
	now := f.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "iAMT " + uuid, Organization: []string{"Intel(R) Corporation"}, OrganizationalUnit: []string{"Intel(R) AMT On-Die CA (simulated)"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(f.rand, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, err
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.selfTLS == nil {
		f.selfTLS = c
	}
	return f.selfTLS, nil
}

// SelfCertificateHash is the SHA-256 of the device's own certificate.
func (f *Firmware) SelfCertificateHash() ([]byte, error) {
	c, err := f.selfCertificate()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(c.Certificate[0])
	return sum[:], nil
}

// ---- opt-in (user consent) ----

type optInRuntime struct {
	state    int // 0 not started, 1 requested, 2 displayed, 3 received, 4 in session
	code     string
	expires  time.Time
	failures int
}

// IPS_OptInService return values.
const (
	OptInSuccess      uint32 = 0
	OptInInternal     uint32 = 1
	OptInInvalidState uint32 = 2
	OptInBlocked      uint32 = 3
	OptInInvalidCode  uint32 = 2066
)

func (f *Firmware) optInExpireLocked() {
	if f.optIn.state != 0 && f.now().After(f.optIn.expires) {
		f.optIn = optInRuntime{}
	}
}

// OptInState is the current IPS_OptInService.OptInState.
func (f *Firmware) OptInState() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optInExpireLocked()
	return f.optIn.state
}

// StartOptIn shows a new 6-digit code on the (simulated) screen.
func (f *Firmware) StartOptIn() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optInExpireLocked()
	if f.optIn.state != 0 {
		return OptInInvalidState
	}
	n, err := rand.Int(f.rand, big.NewInt(1000000))
	if err != nil {
		return OptInInternal
	}
	f.optIn = optInRuntime{state: 2, code: fmt.Sprintf("%06d", n.Int64()), expires: f.now().Add(time.Duration(f.st.OptIn.CodeTimeout) * time.Second)}
	return OptInSuccess
}

// DisplayedOptInCode is the code "on the screen" (for tests and operators).
func (f *Firmware) DisplayedOptInCode() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optInExpireLocked()
	return f.optIn.code, f.optIn.state == 2
}

// SendOptInCode checks the code the user read from the screen.
func (f *Firmware) SendOptInCode(code int) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optInExpireLocked()
	if f.optIn.state != 2 {
		return OptInInvalidState
	}
	if fmt.Sprintf("%06d", code) != f.optIn.code {
		f.optIn.failures++
		if f.optIn.failures >= 3 {
			f.optIn = optInRuntime{}
			return OptInBlocked
		}
		return OptInInvalidCode
	}
	f.optIn.state = 3
	f.optIn.code = ""
	f.optIn.expires = f.now().Add(time.Duration(f.st.OptIn.DisplayTimeout) * time.Second)
	return OptInSuccess
}

// CancelOptIn ends a consent request or session.
func (f *Firmware) CancelOptIn() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.optInExpireLocked()
	if f.optIn.state == 0 {
		return OptInInvalidState
	}
	f.optIn = optInRuntime{}
	return OptInSuccess
}
