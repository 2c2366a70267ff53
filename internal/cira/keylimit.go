package cira

import (
	"crypto"
	"crypto/tls"
	"io"
	"sync"
)

// keyLimiter bounds the private-key operations of the listener's TLS
// handshakes (the RSA decryption of the key exchange AMT uses, or the
// signature of an ECDHE exchange) to a few at a time, in arrival order.
//
// Without it, a herd of devices calling at once (after a site-wide power
// cut) runs thousands of handshakes side by side: each progresses at the
// same slow pace, all of them finish late, and many miss the devices' and
// the server's deadlines and start again. With the expensive step queued
// first come, first served, handshakes finish one after another at the
// rate the CPU allows. Only the CPU-bound step waits: a peer that stalls
// mid-handshake holds no slot.
type keyLimiter struct {
	sem chan struct{}

	mu         sync.Mutex
	orig, wrap *tls.Certificate // last certificate wrapped
}

func newKeyLimiter(n int) *keyLimiter {
	return &keyLimiter{sem: make(chan struct{}, max(n, 1))}
}

// certificate returns c with its private key behind the limiter; the same
// wrapper while c does not change.
func (l *keyLimiter) certificate(c *tls.Certificate) *tls.Certificate {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c == l.orig {
		return l.wrap
	}
	w := *c
	switch k := c.PrivateKey.(type) {
	case interface {
		crypto.Signer
		crypto.Decrypter
	}:
		w.PrivateKey = &limitedDecrypter{limitedSigner{k, l}, k}
	case crypto.Signer:
		w.PrivateKey = &limitedSigner{k, l}
	default:
		w = *c // not a key we can wrap: used as it is
	}
	l.orig, l.wrap = c, &w
	return &w
}

func (l *keyLimiter) acquire() func() {
	l.sem <- struct{}{}
	return func() { <-l.sem }
}

type limitedSigner struct {
	crypto.Signer
	l *keyLimiter
}

func (k *limitedSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	defer k.l.acquire()()
	return k.Signer.Sign(rand, digest, opts)
}

type limitedDecrypter struct {
	limitedSigner
	d crypto.Decrypter
}

func (k *limitedDecrypter) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	defer k.l.acquire()()
	return k.d.Decrypt(rand, msg, opts)
}
