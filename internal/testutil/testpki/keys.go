// Package testpki generates certificates, chains and PKCS#12 files for tests:
// provisioning chains (root → optional intermediate → leaf) with knobs for
// every property the provisioning-certificate checks look at, and PFX files
// built with go-pkcs12's encoders (modern AES or legacy RC2/3DES).
//
// RSA key generation is slow (hundreds of milliseconds per 2048-bit key on a
// small machine, seconds for 3072 bits under -race), so keys are generated
// lazily and cached for the life of the test binary: Key(bits, slot) returns
// the same key for the same (bits, slot) pair every time. Certificates are
// cheap and are created fresh for each call.
//
// SHA-1 signatures: Go 1.26's x509.CreateCertificate still signs with
// SHA1WithRSA (only verification of SHA-1 certificates is refused), so chains
// with SHA-1 signatures are made with the standard library.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"sync"
)

// Key slots used by NewChain. Other tests may use any slot; the same (bits,
// slot) always yields the same key within one test binary.
const (
	SlotRoot = iota
	SlotIntermediate
	SlotLeaf
	SlotOther // a key that matches none of the chain's certificates
	SlotCA    // for certificate-authority tests
	SlotServer
)

type keyID struct{ bits, slot int }

type keyEntry struct {
	once sync.Once
	key  *rsa.PrivateKey
	err  error
}

// keyCache is process-wide on purpose: it exists only to make test binaries
// fast. Keys are immutable once generated.
var keyCache sync.Map // keyID → *keyEntry

// Key returns a cached RSA key of the given size for a slot, generating it on
// first use. It panics if generation fails (crypto/rand failure).
func Key(bits, slot int) *rsa.PrivateKey {
	v, _ := keyCache.LoadOrStore(keyID{bits, slot}, &keyEntry{})
	e := v.(*keyEntry)
	e.once.Do(func() { e.key, e.err = rsa.GenerateKey(rand.Reader, bits) })
	if e.err != nil {
		panic(fmt.Sprintf("testpki: generating RSA-%d key: %v", bits, e.err))
	}
	return e.key
}

var (
	ecOnce sync.Once
	ecKey  *ecdsa.PrivateKey
)

// ECKey returns a cached ECDSA P-256 key.
func ECKey() *ecdsa.PrivateKey {
	ecOnce.Do(func() {
		var err error
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic("testpki: generating ECDSA key: " + err.Error())
		}
	})
	return ecKey
}
