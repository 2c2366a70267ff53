package apf

import (
	"encoding/hex"
	"errors"
)

// UUID is a system UUID as PROTOCOLVERSION carries it: 16 bytes in SMBIOS
// byte order, where the first three fields are little-endian.
type UUID [16]byte

// ErrBadUUID is returned by ParseUUID for text that is not a UUID.
var ErrBadUUID = errors.New("apf: malformed UUID")

// smbiosOrder maps text-form byte positions to wire positions: the first
// three fields are byte-reversed, the last two are kept.
var smbiosOrder = [16]int{3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15}

// String returns the lower-case text form (8-4-4-4-12), reversing bytes
// 0–3, 4–5 and 6–7 of the wire form (spec/mps.md §2.3.1).
func (u UUID) String() string {
	var text [16]byte
	for i, j := range smbiosOrder {
		text[i] = u[j]
	}
	var out [36]byte
	hex.Encode(out[0:8], text[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], text[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], text[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], text[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], text[10:16])
	return string(out[:])
}

// ParseUUID parses the 8-4-4-4-12 text form (any case) into wire order.
func ParseUUID(s string) (UUID, error) {
	var u UUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, ErrBadUUID
	}
	var text [16]byte
	pos := 0
	for _, seg := range [...][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}} {
		n, err := hex.Decode(text[pos:], []byte(s[seg[0]:seg[1]]))
		if err != nil {
			return UUID{}, ErrBadUUID
		}
		pos += n
	}
	for i, j := range smbiosOrder {
		u[j] = text[i]
	}
	return u, nil
}
