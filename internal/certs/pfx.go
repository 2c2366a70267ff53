package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// maxKDFIterations bounds the iteration counts amtd lets the PKCS#12 key
// derivation run: a file may name any count, and the derivation runs before
// anything can be verified. Real files use 1 to a few hundred thousand
// (OpenSSL 2048, Windows 2000, Java 10000).
const maxKDFIterations = 1 << 21

// decoded is what could be read from a PFX.
type decoded struct {
	certs []*x509.Certificate // file order, duplicates removed
	key   crypto.Signer       // nil when the file has none
	// certsUnknown: the library reported "no private key" but could not list
	// the certificates of this kind of key-less file.
	certsUnknown bool
	// unprotected: a password was given but the file has no MAC; it was
	// read without one.
	unprotected bool
	fail        *Finding // a decoding failure (then nothing else is set)
}

// Outer PKCS#12 layout (RFC 7292), only as far as needed to bound the KDF
// iteration counts before go-pkcs12 runs them.
type p12PFX struct {
	Version  int
	AuthSafe p12ContentInfo
	MacData  p12MacData `asn1:"optional"`
}

type p12ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type p12MacData struct {
	Mac        p12DigestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type p12DigestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type p12EncryptedData struct {
	Version              int
	EncryptedContentInfo struct {
		ContentType                asn1.ObjectIdentifier
		ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
		EncryptedContent           []byte `asn1:"tag:0,optional"`
	}
}

type p12SafeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue   `asn1:"tag:0,explicit"`
	Attributes []asn1.RawValue `asn1:"set,optional"`
}

type p12EncryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

var (
	oidData                = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidShroudedKeyBag      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidPBES2               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBMAC1              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	errTooManyKDFIteration = errors.New("key-derivation iteration count above amtd's limit")
)

// pbeIterations extracts the iteration count of a PKCS#12 PBE, PBES2 or
// PBMAC1 algorithm identifier (0 when it cannot tell).
func pbeIterations(ai pkix.AlgorithmIdentifier) int {
	params := ai.Parameters.FullBytes
	if ai.Algorithm.Equal(oidPBES2) || ai.Algorithm.Equal(oidPBMAC1) {
		var p struct {
			KDF  pkix.AlgorithmIdentifier
			Rest asn1.RawValue
		}
		if _, err := asn1.Unmarshal(params, &p); err != nil {
			return 0
		}
		params = p.KDF.Parameters.FullBytes
		var kdf struct {
			Salt       asn1.RawValue
			Iterations int
		}
		if _, err := asn1.Unmarshal(params, &kdf); err != nil {
			return 0
		}
		return kdf.Iterations
	}
	var p struct {
		Salt       []byte
		Iterations int
	}
	if _, err := asn1.Unmarshal(params, &p); err != nil {
		return 0
	}
	return p.Iterations
}

// checkIterations refuses files whose MAC, encrypted safes or visible key
// bags ask for more key-derivation work than maxKDFIterations. Structures it
// cannot parse are left for go-pkcs12 to reject.
func checkIterations(pfx []byte) error {
	var p p12PFX
	if _, err := asn1.Unmarshal(pfx, &p); err != nil {
		return nil
	}
	if p.MacData.Iterations > maxKDFIterations || pbeIterations(p.MacData.Mac.Algorithm) > maxKDFIterations {
		return errTooManyKDFIteration
	}
	if !p.AuthSafe.ContentType.Equal(oidData) {
		return nil
	}
	var content []byte
	if _, err := asn1.Unmarshal(p.AuthSafe.Content.Bytes, &content); err != nil {
		return nil
	}
	var safes []p12ContentInfo
	if _, err := asn1.Unmarshal(content, &safes); err != nil {
		return nil
	}
	for _, ci := range safes {
		switch {
		case ci.ContentType.Equal(oidEncryptedData):
			var ed p12EncryptedData
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &ed); err == nil &&
				pbeIterations(ed.EncryptedContentInfo.ContentEncryptionAlgorithm) > maxKDFIterations {
				return errTooManyKDFIteration
			}
		case ci.ContentType.Equal(oidData):
			var data []byte
			if _, err := asn1.Unmarshal(ci.Content.Bytes, &data); err != nil {
				continue
			}
			var bags []p12SafeBag
			if _, err := asn1.Unmarshal(data, &bags); err != nil {
				continue
			}
			for _, b := range bags {
				if !b.ID.Equal(oidShroudedKeyBag) {
					continue
				}
				var epki p12EncryptedPrivateKeyInfo
				if _, err := asn1.Unmarshal(b.Value.Bytes, &epki); err == nil && pbeIterations(epki.Algorithm) > maxKDFIterations {
					return errTooManyKDFIteration
				}
			}
		}
	}
	return nil
}

// decodePFX reads a PKCS#12 file with go-pkcs12. DecodeChain handles the
// usual file (certificates plus one key, modern AES or legacy RC2/3DES); a
// file without a key is read again with DecodeTrustStore (Java-style trust
// stores) and, failing that, ToPEM (two-safe files).
func decodePFX(pfx []byte, password string) decoded {
	if err := checkIterations(pfx); err != nil {
		return failed(CodeUnsupportedPKCS12, "Provisioning certificate PKCS#12 file asks for a key-derivation iteration count above amtd's limit of "+fmt.Sprint(maxKDFIterations))
	}
	key, first, cas, err := pkcs12.DecodeChain(pfx, password)
	if err == nil {
		d := decoded{certs: dedupe(append([]*x509.Certificate{first}, cas...))}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return failed(CodeUnsupportedPKCS12, fmt.Sprintf("Provisioning certificate private key of type %T is not supported", key))
		}
		d.key = signer
		return d
	}
	msg := err.Error()
	switch {
	case msg == "pkcs12: no MAC in data" && password != "":
		// A password given for a file without integrity protection: the
		// password plays no part; read it without one.
		d := decodePFX(pfx, "")
		d.unprotected = d.fail == nil
		return d
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		// MAC mismatch, or bad padding after decryption (files without a MAC).
		return failed(CodeWrongPassword, MsgDecrypt)
	case strings.HasPrefix(msg, "pkcs12: error reading P12 data"),
		msg == pkcs12.NotImplementedError("can only decode v3 PFX PDU's").Error():
		return failed(CodeNotPKCS12, notPKCS12Message(pfx))
	case msg == "pkcs12: private key missing":
		d := decoded{}
		if certs, err := pkcs12.DecodeTrustStore(pfx, password); err == nil {
			d.certs = dedupe(certs)
		} else if blocks, err := pkcs12.ToPEM(pfx, password); err == nil {
			for _, b := range blocks {
				if b.Type != "CERTIFICATE" {
					continue
				}
				if c, err := x509.ParseCertificate(b.Bytes); err == nil {
					d.certs = append(d.certs, c)
				}
			}
			d.certs = dedupe(d.certs)
		}
		d.certsUnknown = len(d.certs) == 0
		return d
	case msg == "pkcs12: certificate missing":
		return decoded{} // no certificates: reported by the caller
	}
	if strings.Contains(msg, "password") {
		// e.g. a password with characters outside the BMP.
		return failed(CodeWrongPassword, MsgDecrypt)
	}
	return failed(CodeUnsupportedPKCS12, "Provisioning certificate is a PKCS#12 file amtd cannot read: "+strings.TrimPrefix(msg, "pkcs12: "))
}

func failed(code, msg string) decoded {
	return decoded{fail: &Finding{Code: code, Message: msg}}
}

// notPKCS12Message explains what the data looks like instead.
func notPKCS12Message(data []byte) string {
	const base = "Provisioning certificate is not a PKCS#12 (PFX) file"
	trimmed := bytes.TrimSpace(data)
	switch {
	case len(trimmed) == 0:
		return base + ": it is empty"
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		return base + ": it is PEM text; export certificates and key together as PKCS#12 (e.g. openssl pkcs12 -export)"
	}
	if _, err := x509.ParseCertificate(data); err == nil {
		return base + ": it is a single DER certificate without its private key"
	}
	if dec, err := base64.StdEncoding.DecodeString(string(trimmed)); err == nil && len(dec) > 0 && dec[0] == 0x30 {
		return base + ": it is base64 text; decode it first"
	}
	return base
}

func dedupe(in []*x509.Certificate) []*x509.Certificate {
	out := in[:0:0]
	for _, c := range in {
		dup := false
		for _, o := range out {
			if bytes.Equal(o.Raw, c.Raw) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, c)
		}
	}
	return out
}
