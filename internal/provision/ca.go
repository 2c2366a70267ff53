package provision

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"time"
)

// CA is what the engine needs from amtd's certificate authority (package
// ca): certificates for public keys generated inside AMT devices. The
// private keys never leave the devices; amtd reads the public key of a key
// pair the device generated (AMT_PublicPrivateKeyPair.DERKey) and signs a
// certificate for it, so neither a PKCS#10 round trip nor an external
// Enterprise Assistant is needed.
type CA interface {
	// RootDER is the CA certificate devices trust (AddTrustedRootCertificate).
	RootDER() []byte
	// SignPublicKey certifies a public key held by a device with the given
	// subject and extended key usages; validity <= 0 means the CA's default.
	// *ca.CA implements it.
	SignPublicKey(pub any, subject pkix.Name, eku []x509.ExtKeyUsage, validity time.Duration) ([]byte, error)
}

// amtTLSSubject is the subject RPS gives AMT TLS certificates
// (activation.md §10.7).
func amtTLSSubject(host string) pkix.Name {
	return pkix.Name{CommonName: "AMT-" + host, Organization: []string{"None"}, Province: []string{"None"}, Country: []string{"None"}}
}

// parseDeviceKey parses AMT_PublicPrivateKeyPair.DERKey: base64 of an RSA
// public key, PKCS#1 (what AMT reports) or SubjectPublicKeyInfo.
func parseDeviceKey(derKeyB64 string) (crypto.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(derKeyB64))
	if err != nil {
		return nil, errors.New("the device's public key is not base64")
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("the device's public key cannot be parsed")
}

// certDER accepts a certificate as base64 DER or PEM text.
func certDER(s string) []byte {
	if b, _ := pem.Decode([]byte(s)); b != nil {
		return b.Bytes
	}
	return decodeBlob(s)
}
