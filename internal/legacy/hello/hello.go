// Package hello parses and encodes the "hello" messages that Intel AMT
// firmware in setup mode sends to a configuration server on TCP 9971
// (spec/legacy.md §3): the PSK hello (interface version 2, 32 bytes) and the
// PKI hello (interface version 3, 25 + Σ(2 + hash size) bytes).
//
// All integers are little-endian. The UUID is the SMBIOS UUID in SMBIOS byte
// order (first three fields little-endian).
package hello

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Interface versions and sizes (spec/legacy.md §3, §14).
const (
	VersionPSK = 2 // PSK hello: carries the PID
	VersionPKI = 3 // PKI hello: carries the active trusted-root hashes

	PSKSize       = 32 // size of a version 2 hello
	PKIHeaderSize = 25 // fixed part of a version 3 hello, up to and including the hash count
	PIDLength     = 8  // PID characters in a version 2 hello

	// MaxHashes is the largest hash count the one-byte count field can carry.
	// Firmware sends at most 23 (samples: 24); more is not rejected.
	MaxHashes = 255

	// MaxSize is the longest possible hello (255 SHA-384 entries): Complete
	// always decides (complete or invalid) before a buffer grows past it,
	// well under the listener's 16000-byte limit (spec §5).
	MaxSize = PKIHeaderSize + MaxHashes*(2+48)
)

// Errors returned by Parse, Complete and Encode. Each returned error wraps
// exactly one of them (test with errors.Is) and adds the offending value.
var (
	ErrTruncated   = errors.New("hello: truncated")
	ErrAdminFlag   = errors.New("hello: admin-credentials field is not 0 or 1")
	ErrVersion     = errors.New("hello: unsupported interface version")
	ErrHashType    = errors.New("hello: unknown hash type")
	ErrHashSize    = errors.New("hello: hash size does not match hash type")
	ErrHashCount   = errors.New("hello: hash count does not match data")
	ErrInvalidPID  = errors.New("hello: PID must be 8 characters A-Z or 0-9")
	ErrInvalidUUID = errors.New("hello: invalid UUID")
)

// HashType is the algorithm of a trusted-root hash entry.
type HashType uint8

// Hash types (spec/legacy.md §3.2).
const (
	HashSHA1   HashType = 1
	HashSHA256 HashType = 2
	HashSHA384 HashType = 3
)

// Size returns the digest size for t, or 0 for an unknown type.
func (t HashType) Size() int {
	switch t {
	case HashSHA1:
		return 20
	case HashSHA256:
		return 32
	case HashSHA384:
		return 48
	}
	return 0
}

func (t HashType) String() string {
	switch t {
	case HashSHA1:
		return "SHA-1"
	case HashSHA256:
		return "SHA-256"
	case HashSHA384:
		return "SHA-384"
	}
	return fmt.Sprintf("HashType(%d)", uint8(t))
}

// HashEntry is one active trusted-root certificate hash of a PKI hello.
type HashEntry struct {
	Type HashType
	Hash []byte
}

// Hex returns the hash as lower-case hex, the form amthashes uses.
func (e HashEntry) Hex() string { return hex.EncodeToString(e.Hash) }

// UUID is a device UUID in SMBIOS byte order, exactly as it is on the wire.
type UUID [16]byte

// String returns the canonical textual form: the first three fields are
// stored little-endian, so bytes 4b 52 9b 93 d4 13 18 1d e4 87 … read
// "939b524b-13d4-1d18-e487-…".
func (u UUID) String() string {
	var b [36]byte
	x := func(dst []byte, src ...byte) { hex.Encode(dst, src) }
	x(b[0:8], u[3], u[2], u[1], u[0])
	b[8] = '-'
	x(b[9:13], u[5], u[4])
	b[13] = '-'
	x(b[14:18], u[7], u[6])
	b[18] = '-'
	x(b[19:23], u[8], u[9])
	b[23] = '-'
	x(b[24:36], u[10:16]...)
	return string(b[:])
}

// ParseUUID reads the canonical textual form (case-insensitive, dashes
// optional) into SMBIOS byte order; it is the inverse of UUID.String.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	h := strings.ReplaceAll(strings.TrimSpace(s), "-", "")
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 16 {
		return u, fmt.Errorf("%w: %q", ErrInvalidUUID, s)
	}
	u[0], u[1], u[2], u[3] = raw[3], raw[2], raw[1], raw[0]
	u[4], u[5] = raw[5], raw[4]
	u[6], u[7] = raw[7], raw[6]
	copy(u[8:], raw[8:])
	return u, nil
}

// Hello is a decoded hello message.
type Hello struct {
	AdminCredentialsSet bool   // MEBx password changed from the factory default
	Version             int    // VersionPSK or VersionPKI
	RetryCount          uint32 // 0–14 on a normal schedule (§4)
	UUID                UUID
	PID                 string      // version 2 only: the PSK identity
	Hashes              []HashEntry // version 3 only: active trusted-root hashes
}

// Size returns the encoded length of h, or 0 when h.Version is unsupported.
func (h *Hello) Size() int {
	switch h.Version {
	case VersionPSK:
		return PSKSize
	case VersionPKI:
		n := PKIHeaderSize
		for _, e := range h.Hashes {
			n += 2 + len(e.Hash)
		}
		return n
	}
	return 0
}

// Parse decodes one complete hello. Bytes after the 32-byte layout of a
// version 2 hello are ignored (their meaning is unknown, spec §3.1); a
// version 3 hello must end exactly after its last hash entry.
func Parse(b []byte) (*Hello, error) {
	n, err := scan(b)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		if len(b) >= 4 && binary.LittleEndian.Uint16(b[2:]) == VersionPKI && len(b) >= PKIHeaderSize && entriesEndClean(b) {
			return nil, fmt.Errorf("%w: %d hashes announced, data ends after fewer", ErrHashCount, b[24])
		}
		return nil, fmt.Errorf("%w: %d bytes", ErrTruncated, len(b))
	}
	h := &Hello{
		AdminCredentialsSet: b[0] == 1,
		Version:             int(binary.LittleEndian.Uint16(b[2:])),
		RetryCount:          binary.LittleEndian.Uint32(b[4:]),
	}
	copy(h.UUID[:], b[8:24])
	switch h.Version {
	case VersionPSK:
		h.PID = string(b[24:32])
	case VersionPKI:
		if len(b) > n {
			return nil, fmt.Errorf("%w: %d bytes after the last of %d hashes", ErrHashCount, len(b)-n, b[24])
		}
		count := int(b[24])
		h.Hashes = make([]HashEntry, 0, count)
		p := PKIHeaderSize
		for range count {
			t, size := HashType(b[p]), int(b[p+1])
			h.Hashes = append(h.Hashes, HashEntry{Type: t, Hash: append([]byte(nil), b[p+2:p+2+size]...)})
			p += 2 + size
		}
	}
	return h, nil
}

// entriesEndClean reports whether a version 3 buffer ends exactly at an entry
// boundary (as opposed to in the middle of an entry).
func entriesEndClean(b []byte) bool {
	p := PKIHeaderSize
	for p < len(b) {
		if p+2 > len(b) {
			return false
		}
		p += 2 + int(b[p+1])
	}
	return p == len(b)
}

// Complete reports whether buf, the bytes received so far on a hello
// connection, holds a complete hello: it returns the hello's length n > 0 when
// it does (parse buf[:n]), 0 and nil when more bytes are needed, and an error
// as soon as the data can no longer become a valid hello (drop the
// connection). It never reads past what a hello needs.
func Complete(buf []byte) (n int, err error) { return scan(buf) }

// scan validates as much of b as is present. It returns the length of the
// complete message, 0 when incomplete, or an error.
func scan(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	if v := binary.LittleEndian.Uint16(b); v > 1 {
		return 0, fmt.Errorf("%w: %#04x", ErrAdminFlag, v)
	}
	if len(b) < 4 {
		return 0, nil
	}
	switch v := binary.LittleEndian.Uint16(b[2:]); v {
	case VersionPSK:
		if len(b) < PSKSize {
			return 0, nil
		}
		return PSKSize, nil
	case VersionPKI:
	default:
		return 0, fmt.Errorf("%w: %d", ErrVersion, v)
	}
	if len(b) < PKIHeaderSize {
		return 0, nil
	}
	count := int(b[24])
	p := PKIHeaderSize
	for i := range count {
		if p >= len(b) {
			return 0, nil
		}
		t := HashType(b[p])
		want := t.Size()
		if want == 0 {
			return 0, fmt.Errorf("%w: entry %d has type %d", ErrHashType, i, b[p])
		}
		if p+1 >= len(b) {
			return 0, nil
		}
		if size := int(b[p+1]); size != want {
			return 0, fmt.Errorf("%w: entry %d is %s with size %d", ErrHashSize, i, t, size)
		}
		p += 2 + want
		if p > len(b) {
			return 0, nil
		}
	}
	return p, nil
}

// Encode returns the wire form of h. It rejects what Parse would reject: a
// version other than 2 or 3, a PID that is not 8 characters A–Z/0–9 (version
// 2), more than 255 hashes or a hash whose length does not match its type
// (version 3).
func (h *Hello) Encode() ([]byte, error) {
	size := h.Size()
	if size == 0 {
		return nil, fmt.Errorf("%w: %d", ErrVersion, h.Version)
	}
	out := make([]byte, size)
	if h.AdminCredentialsSet {
		out[0] = 1
	}
	binary.LittleEndian.PutUint16(out[2:], uint16(h.Version))
	binary.LittleEndian.PutUint32(out[4:], h.RetryCount)
	copy(out[8:24], h.UUID[:])
	switch h.Version {
	case VersionPSK:
		if !ValidPID(h.PID) {
			return nil, fmt.Errorf("%w: got %d characters", ErrInvalidPID, len(h.PID))
		}
		copy(out[24:], h.PID)
	case VersionPKI:
		if len(h.Hashes) > MaxHashes {
			return nil, fmt.Errorf("%w: %d hashes, at most %d", ErrHashCount, len(h.Hashes), MaxHashes)
		}
		out[24] = byte(len(h.Hashes))
		p := PKIHeaderSize
		for i, e := range h.Hashes {
			want := e.Type.Size()
			if want == 0 {
				return nil, fmt.Errorf("%w: entry %d has type %d", ErrHashType, i, uint8(e.Type))
			}
			if len(e.Hash) != want {
				return nil, fmt.Errorf("%w: entry %d is %s with %d bytes", ErrHashSize, i, e.Type, len(e.Hash))
			}
			out[p], out[p+1] = byte(e.Type), byte(want)
			copy(out[p+2:], e.Hash)
			p += 2 + want
		}
	}
	return out, nil
}

// ValidPID reports whether s is a PID as AMT uses it: exactly 8 characters
// from A–Z and 0–9, without dashes.
func ValidPID(s string) bool {
	if len(s) != PIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
