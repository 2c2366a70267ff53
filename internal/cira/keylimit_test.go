package cira

import (
	"context"
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
	c := lim.certificate(orig, context.Background())
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
	if _, ok := lim.certificate(&tls.Certificate{PrivateKey: ec}, context.Background()).PrivateKey.(crypto.Decrypter); ok {
		t.Fatal("an ECDSA key wrapped as a Decrypter")
	}
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	w := lim.certificate(&tls.Certificate{PrivateKey: rk}, context.Background())
	if _, ok := w.PrivateKey.(crypto.Decrypter); !ok {
		t.Fatal("an RSA key lost Decrypt")
	}
	if _, ok := w.PrivateKey.(crypto.Signer).Public().(*rsa.PublicKey); !ok {
		t.Fatal("the wrapper's public key is not the RSA key's")
	}
}

// A handshake that has used half its authentication time before its turn
// is dropped without the key operation; one with time left waits.
func TestKeyLimiterDropsStaleHandshakes(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &countingKey{Signer: ec}
	lim := newKeyLimiter(1)
	key := func(accepted time.Time, auth time.Duration) crypto.Signer {
		ctx := withHandshakeTimes(context.Background(), accepted, accepted.Add(auth))
		return lim.certificate(&tls.Certificate{PrivateKey: k}, ctx).PrivateKey.(crypto.Signer)
	}

	// Already past half its time: dropped at once, the key untouched.
	if _, err := key(time.Now().Add(-20*time.Second), 30*time.Second).Sign(rand.Reader, nil, crypto.SHA256); err == nil {
		t.Fatal("a handshake 20 s into its 30 s signed")
	}
	if k.peak.Load() != 0 {
		t.Fatal("the key was used for a dropped handshake")
	}

	// The slot held: a fresh handshake with 400 ms waits up to its half
	// (200 ms) and is dropped; one with 30 s waits for the slot and signs.
	release, err := lim.acquire(handshakeTimes{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := key(time.Now(), 400*time.Millisecond).Sign(rand.Reader, nil, crypto.SHA256); err == nil {
		t.Fatal("signed while the only slot was held")
	}
	if el := time.Since(start); el < 150*time.Millisecond || el > 2*time.Second {
		t.Fatalf("dropped after %v, want about 200ms", el)
	}
	done := make(chan error, 1)
	go func() {
		_, err := key(time.Now(), 30*time.Second).Sign(rand.Reader, nil, crypto.SHA256)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	release()
	if err := <-done; err != nil {
		t.Fatalf("a handshake with time left: %v", err)
	}
}
