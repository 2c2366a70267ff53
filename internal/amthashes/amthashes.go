// Package amthashes is the table of root-certificate hashes that AMT firmware
// trusts by default for host-based ACM and PKI remote configuration
// (spec/legacy.md §12). It is a fact table shared by the server (certificate
// doctor, hash matching) and the simulator (its default hash table).
package amthashes

import (
	"encoding/hex"
	"strings"
)

// Entry is one default trusted root.
type Entry struct {
	Index    int    // position in the AMT 11–16 era table (1-based); 0 for older entries
	Name     string // certificate subject as amtd reports it
	SHA256   string // lower-case hex
	SHA1     string // lower-case hex, "" when unknown
	Verified bool   // fingerprint recomputed from the certificate itself
	Active   bool   // active by default on the simulated AMT 16 firmware
}

// Defaults returns the AMT 11–16 era default entries in firmware order
// (a copy; callers may modify it).
func Defaults() []Entry { return append([]Entry(nil), defaults...) }

// Older returns entries seen on earlier firmware and in RPS fixtures.
func Older() []Entry { return append([]Entry(nil), older...) }

// Lookup finds a hash (hex, any case; SHA-1 or SHA-256 by length) among the
// default and older entries.
func Lookup(hash string) (Entry, bool) {
	h := strings.ToLower(strings.TrimSpace(hash))
	if _, err := hex.DecodeString(h); err != nil {
		return Entry{}, false
	}
	for _, list := range [][]Entry{defaults, older} {
		for _, e := range list {
			if (len(h) == 64 && e.SHA256 == h) || (len(h) == 40 && e.SHA1 != "" && e.SHA1 == h) {
				return e, true
			}
		}
	}
	return Entry{}, false
}
