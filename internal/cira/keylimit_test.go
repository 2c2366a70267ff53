package cira

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingKey records how many of its operations run at once.
type countingKey struct {
	crypto.Signer
	now, peak atomic.Int32
}

func (k *countingKey) op() {
	n := k.now.Add(1)
	for {
		p := k.peak.Load()
		if n <= p || k.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	k.now.Add(-1)
}

func (k *countingKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	k.op()
	return []byte("sig"), nil
}

func (k *countingKey) Decrypt(io.Reader, []byte, crypto.DecrypterOpts) ([]byte, error) {
	k.op()
	return []byte("pms"), nil
}

func TestKeyLimiterBoundsKeyOperations(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &countingKey{Signer: ec}
	lim := newKeyLimiter(2)
	orig := &tls.Certificate{PrivateKey: k}
	c := lim.certificate(orig)
	if lim.certificate(orig) != c {
		t.Fatal("a new wrapper for the same certificate")
	}
	dec, ok := c.PrivateKey.(crypto.Decrypter)
	if !ok {
		t.Fatal("the wrapper hides the key's Decrypt (RSA key exchange would be refused)")
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				c.PrivateKey.(crypto.Signer).Sign(rand.Reader, nil, crypto.SHA256)
			} else {
				dec.Decrypt(rand.Reader, nil, nil)
			}
		}()
	}
	wg.Wait()
	if p := k.peak.Load(); p != 2 {
		t.Fatalf("%d key operations at once, want at most (and, with 40 waiting, exactly) 2", p)
	}

	// A signer that cannot decrypt stays one that cannot.
	if _, ok := lim.certificate(&tls.Certificate{PrivateKey: ec}).PrivateKey.(crypto.Decrypter); ok {
		t.Fatal("an ECDSA key wrapped as a Decrypter")
	}
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	w := lim.certificate(&tls.Certificate{PrivateKey: rk})
	if _, ok := w.PrivateKey.(crypto.Decrypter); !ok {
		t.Fatal("an RSA key lost Decrypt")
	}
	if _, ok := w.PrivateKey.(crypto.Signer).Public().(*rsa.PublicKey); !ok {
		t.Fatal("the wrapper's public key is not the RSA key's")
	}
}
