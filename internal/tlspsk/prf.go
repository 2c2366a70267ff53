package tlspsk

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"hash"
)

// pHash is P_hash of RFC 2246 §5 / RFC 5246 §5: it fills out with
// HMAC_hash(secret, A(i) + seed), A(0) = seed, A(i) = HMAC_hash(secret, A(i-1)).
func pHash(out, secret, seed []byte, h func() hash.Hash) {
	mac := hmac.New(h, secret)
	mac.Write(seed)
	a := mac.Sum(nil)
	for len(out) > 0 {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		n := copy(out, mac.Sum(nil))
		out = out[n:]
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
}

// prf10 is the TLS 1.0/1.1 PRF: P_MD5 over the first half of the secret XOR
// P_SHA1 over the second half (halves share the middle byte when the length
// is odd).
func prf10(secret []byte, label string, seed []byte, n int) []byte {
	ls := append([]byte(label), seed...)
	half := (len(secret) + 1) / 2
	s1, s2 := secret[:half], secret[len(secret)-half:]
	out := make([]byte, n)
	pHash(out, s1, ls, md5.New)
	tmp := make([]byte, n)
	pHash(tmp, s2, ls, sha1.New)
	for i := range out {
		out[i] ^= tmp[i]
	}
	return out
}

// prf12 is the TLS 1.2 PRF: P_<hash> with the suite's PRF hash.
func prf12(h func() hash.Hash) func(secret []byte, label string, seed []byte, n int) []byte {
	return func(secret []byte, label string, seed []byte, n int) []byte {
		out := make([]byte, n)
		pHash(out, secret, append([]byte(label), seed...), h)
		return out
	}
}

type prfFunc func(secret []byte, label string, seed []byte, n int) []byte

// prfFor returns the PRF and the transcript hash used for Finished.
func prfFor(version uint16, s *suite) (prfFunc, func(transcript []byte) []byte) {
	if version >= VersionTLS12 {
		return prf12(s.prfHash), func(t []byte) []byte {
			h := s.prfHash()
			h.Write(t)
			return h.Sum(nil)
		}
	}
	return prf10, func(t []byte) []byte {
		m := md5.Sum(t)
		s := sha1.Sum(t)
		return append(m[:], s[:]...)
	}
}

// keys is the output of the key schedule for one connection.
type keys struct {
	master               []byte
	clientMAC, serverMAC []byte
	clientKey, serverKey []byte
	clientIV, serverIV   []byte
	prf                  prfFunc
	transcriptHash       func([]byte) []byte
}

// deriveKeys computes the master secret (RFC 5246 §8.1) and the key block
// (§6.3): client MAC, server MAC, client key, server key, client IV, server
// IV. IVs are taken only where used: TLS 1.0 CBC (implicit IV) and AEAD (the
// 4-byte salt).
func deriveKeys(version uint16, s *suite, premaster, clientRandom, serverRandom []byte) *keys {
	prf, th := prfFor(version, s)
	master := prf(premaster, "master secret", append(append([]byte(nil), clientRandom...), serverRandom...), 48)
	ivLen := 0
	switch {
	case s.aead:
		ivLen = 4
	case version == VersionTLS10:
		ivLen = 16 // AES block size
	}
	n := 2*s.macLen + 2*s.keyLen + 2*ivLen
	kb := prf(master, "key expansion", append(append([]byte(nil), serverRandom...), clientRandom...), n)
	k := &keys{master: master, prf: prf, transcriptHash: th}
	take := func(l int) []byte { v := kb[:l:l]; kb = kb[l:]; return v }
	k.clientMAC, k.serverMAC = take(s.macLen), take(s.macLen)
	k.clientKey, k.serverKey = take(s.keyLen), take(s.keyLen)
	k.clientIV, k.serverIV = take(ivLen), take(ivLen)
	return k
}

// finished computes verify_data over the transcript so far.
func (k *keys) finished(label string, transcript []byte) []byte {
	return k.prf(k.master, label, k.transcriptHash(transcript), verifyDataLength)
}
