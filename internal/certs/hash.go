package certs

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"strings"
)

// Fingerprints are a certificate's hashes over its DER encoding, lower-case
// hex — the forms AMT keeps in its trusted root hash table.
type Fingerprints struct {
	SHA1   string `json:"sha1"`
	SHA256 string `json:"sha256"`
	SHA384 string `json:"sha384"`
}

// FingerprintsOf hashes a DER certificate.
func FingerprintsOf(der []byte) Fingerprints {
	s1 := sha1.Sum(der)
	s256 := sha256.Sum256(der)
	s384 := sha512.Sum384(der)
	return Fingerprints{
		SHA1:   hex.EncodeToString(s1[:]),
		SHA256: hex.EncodeToString(s256[:]),
		SHA384: hex.EncodeToString(s384[:]),
	}
}

// MatchRootHash finds the root certificate among a device's trusted root
// hashes (activation.md §5 step 2): each device hash is compared, ignoring
// case, surrounding spaces and ':' separators, with the root's fingerprint of
// the algorithm its hex length implies (40 → SHA-1, 64 → SHA-256,
// 96 → SHA-384); other lengths never match. It returns the matching device
// hash as the device reported it.
func MatchRootHash(rootDER []byte, deviceHashes []string) (matched string, ok bool) {
	if len(rootDER) == 0 {
		return "", false
	}
	fp := FingerprintsOf(rootDER)
	for _, h := range deviceHashes {
		n := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(h), ":", ""))
		var want string
		switch len(n) {
		case 40:
			want = fp.SHA1
		case 64:
			want = fp.SHA256
		case 96:
			want = fp.SHA384
		default:
			continue
		}
		if n == want {
			return h, true
		}
	}
	return "", false
}

// ChainDER returns the report's chain as DER, leaf first and root last — the
// order of AddNextCertInChain (activation.md §5 step 5). Certificates of the
// PFX that are not on the leaf's chain are not included. Nil for a nil
// report or one without certificates.
func ChainDER(r *Report) [][]byte {
	if r == nil {
		return nil
	}
	var out [][]byte
	for _, c := range r.Chain {
		out = append(out, c.Raw)
	}
	return out
}
