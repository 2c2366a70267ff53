package cira

import (
	"context"
	"crypto"
	"crypto/tls"
	"fmt"
	"io"
	"time"
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
//
// When the queue grows longer than the devices can wait, first come, first
// served would spend the CPU on the oldest handshakes, whose devices are
// the likeliest to have given up. So a handshake that has used half its
// authentication time before its turn is dropped without the key operation
// (its device retries later), and the CPU goes to handshakes that can
// still finish.
type keyLimiter struct {
	sem chan struct{}
}

func newKeyLimiter(n int) *keyLimiter {
	return &keyLimiter{sem: make(chan struct{}, max(n, 1))}
}

// handshakeTimes travel in the handshake's context (a value, no timer):
// when the connection was accepted and when its authentication time ends.
type handshakeTimes struct{ accepted, deadline time.Time }

type handshakeTimesKey struct{}

func withHandshakeTimes(ctx context.Context, accepted, deadline time.Time) context.Context {
	return context.WithValue(ctx, handshakeTimesKey{}, handshakeTimes{accepted, deadline})
}

// certificate returns c with its private key behind the limiter for one
// handshake; a key of another kind is returned as it is.
func (l *keyLimiter) certificate(c *tls.Certificate, ctx context.Context) *tls.Certificate {
	var ht handshakeTimes
	if ctx != nil { // nil in a ClientHelloInfo made by hand
		ht, _ = ctx.Value(handshakeTimesKey{}).(handshakeTimes)
	}
	w := *c
	switch k := c.PrivateKey.(type) {
	case interface {
		crypto.Signer
		crypto.Decrypter
	}:
		w.PrivateKey = &limitedDecrypter{limitedSigner{k, l, ht}, k}
	case crypto.Signer:
		w.PrivateKey = &limitedSigner{k, l, ht}
	default:
		return c
	}
	return &w
}

// acquire waits for a slot, or gives up when the handshake has used half
// its time (at once if it already has).
func (l *keyLimiter) acquire(ht handshakeTimes) (func(), error) {
	release := func() { <-l.sem }
	if ht.deadline.IsZero() {
		l.sem <- struct{}{}
		return release, nil
	}
	cutoff := ht.accepted.Add(ht.deadline.Sub(ht.accepted) / 2)
	wait := time.Until(cutoff)
	dropped := func() error {
		return fmt.Errorf("cira: handshake dropped before its key operation: waited %v of its %v authentication time",
			time.Since(ht.accepted).Round(time.Millisecond), ht.deadline.Sub(ht.accepted))
	}
	if wait <= 0 {
		return nil, dropped()
	}
	select {
	case l.sem <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case l.sem <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, dropped()
	}
}

type limitedSigner struct {
	crypto.Signer
	l  *keyLimiter
	ht handshakeTimes
}

func (k *limitedSigner) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	release, err := k.l.acquire(k.ht)
	if err != nil {
		return nil, err
	}
	defer release()
	return k.Signer.Sign(rand, digest, opts)
}

type limitedDecrypter struct {
	limitedSigner
	d crypto.Decrypter
}

func (k *limitedDecrypter) Decrypt(rand io.Reader, msg []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	release, err := k.l.acquire(k.ht)
	if err != nil {
		return nil, err
	}
	defer release()
	return k.d.Decrypt(rand, msg, opts)
}
