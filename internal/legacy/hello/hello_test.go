package hello

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/amthashes"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// pskExample is the constructed example of spec/legacy.md §3.1.
const pskExample = `01 00 02 00 00 00 00 00  4b 52 9b 93 d4 13 18 1d e4 87 1c 69 7a 6b 7a 2b  41 42 43 44 31 32 33 34`

// Real samples from MeshCentral's amtprovisioningserver.js (spec §3.2): their
// SHA-256 over the raw bytes, computed from the published hex strings, lets
// the test prove that the samples rebuilt from the §12.1 table are
// byte-identical to what the devices sent.
const (
	sample23SHA256      = "9dfc7f5ec76c72bafce8b3e2a3a4ee846085aa539e42dbfc501923c503383a26"
	sample24SHA256      = "301125b4a437e7bdcf0da494209a752137dc21a27f2bbb23b128792c93f2fa1f"
	sample24retrySHA256 = "88bff00cf5be4abb1ec933a9381bb041d3d34ad4e718af66a683e5748ade0931"
)

// buildSample rebuilds a PKI hello sample from the amthashes table.
func buildSample(t testing.TB, header string, with20 bool) []byte {
	t.Helper()
	b := unhex(t, header)
	n := 0
	var entries []byte
	for _, e := range amthashes.Defaults() {
		if e.Index == 20 && !with20 {
			continue
		}
		h := unhex(t, e.SHA256)
		entries = append(entries, 2, byte(len(h)))
		entries = append(entries, h...)
		n++
	}
	b = append(b, byte(n))
	return append(b, entries...)
}

func samples(t testing.TB) (s23, s24, s24r []byte) {
	s23 = buildSample(t, "01 00 03 00 00 00 00 00 4b 52 9b 93 d4 13 18 1d e4 87 1c 69 7a 6b 7a 2b", false)
	s24 = buildSample(t, "01 00 03 00 00 00 00 00 4b 52 9b 93 d4 13 18 1d e4 87 1c 69 7a 6b 7a 2b", true)
	s24r = buildSample(t, "01 00 03 00 01 00 00 00 3e c2 ff d2 d1 9d 2d 41 86 0a 54 b2 03 9b 72 ff", true)
	return
}

func TestSamplesMatchRealDevices(t *testing.T) {
	s23, s24, s24r := samples(t)
	for _, c := range []struct {
		name string
		b    []byte
		size int
		sum  string
	}{
		{"23 hashes", s23, 807, sample23SHA256},
		{"24 hashes", s24, 841, sample24SHA256},
		{"24 hashes retry 1", s24r, 841, sample24retrySHA256},
	} {
		if len(c.b) != c.size {
			t.Errorf("%s: %d bytes, want %d", c.name, len(c.b), c.size)
		}
		if got := sha256.Sum256(c.b); hex.EncodeToString(got[:]) != c.sum {
			t.Errorf("%s: rebuilt sample differs from the device sample", c.name)
		}
	}
	// The first lines printed in the spec.
	prefix := unhex(t, `01 00  03 00  00 00 00 00  4b 52 9b 93 d4 13 18 1d e4 87 1c 69 7a 6b 7a 2b  17
02 20 c3 84 6b f2 4b 9e 93 ca 64 27 4c 0e c6 7c 1e cc 5e 02 4f fc ac d2 d7 40 19 35 0e 81 fe 54 6a e4
02 20 45 14 0b 32 47 eb 9c c8 c5 b4 f0 d7 b5 30 91 f7 32 92 08 9e 6e 5a 63 e2 74 9d d3 ac a9 19 8e da`)
	if !bytes.HasPrefix(s23, prefix) {
		t.Error("23-hash sample does not start with the bytes printed in spec §3.2")
	}
	if !bytes.HasPrefix(s24r, unhex(t, "01 00 03 00 01 00 00 00 3e c2 ff d2 d1 9d 2d 41 86 0a 54 b2 03 9b 72 ff 18")) {
		t.Error("third sample prefix differs from spec §3.2")
	}
}

func TestParsePKISamples(t *testing.T) {
	s23, s24, s24r := samples(t)
	defaults := amthashes.Defaults()
	for _, c := range []struct {
		name  string
		b     []byte
		retry uint32
		uuid  string
		n     int
	}{
		{"23", s23, 0, "939b524b-13d4-1d18-e487-1c697a6b7a2b", 23},
		{"24", s24, 0, "939b524b-13d4-1d18-e487-1c697a6b7a2b", 24},
		{"24r", s24r, 1, "d2ffc23e-9dd1-412d-860a-54b2039b72ff", 24},
	} {
		h, err := Parse(c.b)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !h.AdminCredentialsSet || h.Version != VersionPKI || h.RetryCount != c.retry || h.UUID.String() != c.uuid || h.PID != "" {
			t.Errorf("%s: header %+v uuid %s", c.name, h, h.UUID)
		}
		if len(h.Hashes) != c.n {
			t.Fatalf("%s: %d hashes, want %d", c.name, len(h.Hashes), c.n)
		}
		j := 0
		for _, e := range defaults {
			if e.Index == 20 && c.n == 23 {
				continue
			}
			got := h.Hashes[j]
			if got.Type != HashSHA256 || got.Hex() != e.SHA256 {
				t.Errorf("%s: hash %d = %s %s, want SHA-256 %s", c.name, j, got.Type, got.Hex(), e.SHA256)
			}
			j++
		}
		if h.Size() != len(c.b) {
			t.Errorf("%s: Size()=%d, want %d", c.name, h.Size(), len(c.b))
		}
		enc, err := h.Encode()
		if err != nil || !bytes.Equal(enc, c.b) {
			t.Errorf("%s: re-encoding differs (err %v)", c.name, err)
		}
		if n, err := Complete(c.b); n != len(c.b) || err != nil {
			t.Errorf("%s: Complete = %d, %v", c.name, n, err)
		}
	}
}

func TestParsePSKExample(t *testing.T) {
	b := unhex(t, pskExample)
	h, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want := Hello{AdminCredentialsSet: true, Version: 2, RetryCount: 0, PID: "ABCD1234"}
	want.UUID, _ = ParseUUID("939b524b-13d4-1d18-e487-1c697a6b7a2b")
	if h.AdminCredentialsSet != want.AdminCredentialsSet || h.Version != 2 || h.RetryCount != 0 || h.UUID != want.UUID || h.PID != "ABCD1234" || h.Hashes != nil {
		t.Fatalf("got %+v", h)
	}
	enc, err := want.Encode()
	if err != nil || !bytes.Equal(enc, b) {
		t.Fatalf("Encode = %x, %v; want %x", enc, err, b)
	}
	// Extra trailing bytes are ignored for version 2 (spec §3.1).
	h2, err := Parse(append(append([]byte(nil), b...), 0xde, 0xad, 0xbe, 0xef))
	if err != nil || h2.PID != "ABCD1234" {
		t.Fatalf("with trailing bytes: %+v, %v", h2, err)
	}
	if n, err := Complete(append(b, 1, 2, 3)); n != PSKSize || err != nil {
		t.Fatalf("Complete = %d, %v", n, err)
	}
}

func TestUUID(t *testing.T) {
	u, err := ParseUUID("939B524B-13D4-1D18-E487-1C697A6B7A2B")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(u[:], unhex(t, "4b 52 9b 93 d4 13 18 1d e4 87 1c 69 7a 6b 7a 2b")) {
		t.Fatalf("SMBIOS order wrong: %x", u[:])
	}
	if u.String() != "939b524b-13d4-1d18-e487-1c697a6b7a2b" {
		t.Fatal(u.String())
	}
	if u2, err := ParseUUID("939b524b13d41d18e4871c697a6b7a2b"); err != nil || u2 != u {
		t.Fatal("dash-less form")
	}
	for _, bad := range []string{"", "939b524b", "zz9b524b-13d4-1d18-e487-1c697a6b7a2b", "939b524b-13d4-1d18-e487-1c697a6b7a2b00"} {
		if _, err := ParseUUID(bad); !errors.Is(err, ErrInvalidUUID) {
			t.Errorf("ParseUUID(%q) err = %v", bad, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	psk := unhex(t, pskExample)
	s23, _, _ := samples(t)
	mod := func(b []byte, f func([]byte) []byte) []byte { return f(append([]byte(nil), b...)) }
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"one byte", []byte{1}, ErrTruncated},
		{"admin 2", mod(psk, func(b []byte) []byte { b[0] = 2; return b }), ErrAdminFlag},
		{"admin high byte", mod(psk, func(b []byte) []byte { b[1] = 1; return b }), ErrAdminFlag},
		{"admin 2 short", []byte{2, 0}, ErrAdminFlag},
		{"version 1", mod(psk, func(b []byte) []byte { b[2] = 1; return b }), ErrVersion},
		{"version 4", mod(s23, func(b []byte) []byte { b[2] = 4; return b }), ErrVersion},
		{"version 0x0302", mod(s23, func(b []byte) []byte { b[3] = 3; return b }), ErrVersion},
		{"psk 31 bytes", psk[:31], ErrTruncated},
		{"pki header only 24", s23[:24], ErrTruncated},
		{"pki count 23 no entries", s23[:25], ErrHashCount},
		{"pki cut inside entry", s23[:25+2+10], ErrTruncated},
		{"pki cut after entry header", s23[:25+2], ErrTruncated},
		{"pki 22 of 23 entries", s23[:len(s23)-34], ErrHashCount},
		{"pki trailing byte", append(append([]byte(nil), s23...), 0), ErrHashCount},
		{"pki count too small", mod(s23, func(b []byte) []byte { b[24] = 22; return b }), ErrHashCount},
		{"pki count too large", mod(s23, func(b []byte) []byte { b[24] = 24; return b }), ErrHashCount},
		{"type 2 size 20", mod(s23, func(b []byte) []byte { b[26] = 20; return b }), ErrHashSize},
		{"type 1 size 32", mod(s23, func(b []byte) []byte { b[25] = 1; return b }), ErrHashSize},
		{"type 3 size 32", mod(s23, func(b []byte) []byte { b[25+34] = 3; return b }), ErrHashSize},
		{"type 0", mod(s23, func(b []byte) []byte { b[25] = 0; return b }), ErrHashType},
		{"type 4 last", mod(s23, func(b []byte) []byte { b[len(b)-34] = 4; return b }), ErrHashType},
	} {
		h, err := Parse(c.b)
		if !errors.Is(err, c.want) || h != nil {
			t.Errorf("%s: Parse = %v, %v; want %v", c.name, h, err, c.want)
		}
	}
}

func TestMixedHashTypes(t *testing.T) {
	h := &Hello{Version: 3, RetryCount: 14, Hashes: []HashEntry{
		{HashSHA1, bytes.Repeat([]byte{1}, 20)},
		{HashSHA384, bytes.Repeat([]byte{3}, 48)},
		{HashSHA256, bytes.Repeat([]byte{2}, 32)},
	}}
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 25+22+50+34 || b[0] != 0 || b[24] != 3 {
		t.Fatalf("encoded %x", b)
	}
	got, err := Parse(b)
	if err != nil || got.RetryCount != 14 || got.AdminCredentialsSet || len(got.Hashes) != 3 || got.Hashes[1].Type != HashSHA384 || !bytes.Equal(got.Hashes[1].Hash, h.Hashes[1].Hash) {
		t.Fatalf("round trip %+v, %v", got, err)
	}
	// No hashes at all is a well-formed 25-byte message.
	empty := &Hello{Version: 3}
	b, _ = empty.Encode()
	if got, err := Parse(b); err != nil || len(b) != 25 || len(got.Hashes) != 0 {
		t.Fatalf("empty: %x %v", b, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		h    Hello
		want error
	}{
		{"version 1", Hello{Version: 1}, ErrVersion},
		{"short PID", Hello{Version: 2, PID: "ABC"}, ErrInvalidPID},
		{"lower-case PID", Hello{Version: 2, PID: "abcd1234"}, ErrInvalidPID},
		{"dashed PID", Hello{Version: 2, PID: "ABCD-123"}, ErrInvalidPID},
		{"bad type", Hello{Version: 3, Hashes: []HashEntry{{5, make([]byte, 20)}}}, ErrHashType},
		{"bad size", Hello{Version: 3, Hashes: []HashEntry{{HashSHA256, make([]byte, 20)}}}, ErrHashSize},
		{"too many", Hello{Version: 3, Hashes: make([]HashEntry, 256)}, ErrHashCount},
	} {
		if _, err := c.h.Encode(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// TestCompleteIncremental feeds every sample one byte at a time, the way a
// slow TCP stream may deliver it, and checks that Complete reports "need
// more" until exactly the last byte.
func TestCompleteIncremental(t *testing.T) {
	s23, s24, _ := samples(t)
	for _, msg := range [][]byte{unhex(t, pskExample), s23, s24} {
		for i := 0; i < len(msg); i++ {
			n, err := Complete(msg[:i])
			if err != nil || n != 0 {
				t.Fatalf("prefix %d/%d: Complete = %d, %v", i, len(msg), n, err)
			}
		}
		if n, err := Complete(msg); n != len(msg) || err != nil {
			t.Fatalf("full: %d, %v", n, err)
		}
		// More data after the message (next segment) does not change n.
		if n, _ := Complete(append(append([]byte(nil), msg...), 0xff, 0xff)); n != len(msg) {
			t.Fatalf("with trailing: %d", n)
		}
	}
	// Errors are reported as soon as the bad byte arrives.
	if _, err := Complete([]byte{0, 0, 7}); err != nil {
		t.Fatal("version not yet complete must not be an error")
	}
	if _, err := Complete([]byte{0, 0, 7, 0}); !errors.Is(err, ErrVersion) {
		t.Fatalf("version 7: %v", err)
	}
	bad := append(append([]byte(nil), s23[:25]...), 9)
	if _, err := Complete(bad); !errors.Is(err, ErrHashType) {
		t.Fatalf("bad type: %v", err)
	}
	bad = append(append([]byte(nil), s23[:25]...), 2, 48)
	if _, err := Complete(bad); !errors.Is(err, ErrHashSize) {
		t.Fatalf("bad size: %v", err)
	}
}

func TestMaxSize(t *testing.T) {
	h := &Hello{Version: 3}
	for range MaxHashes {
		h.Hashes = append(h.Hashes, HashEntry{HashSHA384, make([]byte, 48)})
	}
	b, err := h.Encode()
	if err != nil || len(b) != MaxSize || MaxSize >= 16000 {
		t.Fatalf("%d bytes, MaxSize %d, %v", len(b), MaxSize, err)
	}
	if n, err := Complete(b); n != MaxSize || err != nil {
		t.Fatal(n, err)
	}
}

func FuzzParse(f *testing.F) {
	s23, s24, _ := samples(f)
	f.Add(unhex(f, pskExample))
	f.Add(s23)
	f.Add(s24[:300])
	f.Add([]byte{1, 0, 3, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, cerr := Complete(b)
		h, err := Parse(b)
		if err != nil {
			if h != nil {
				t.Fatal("hello with error")
			}
			return
		}
		if cerr != nil || n == 0 || n > len(b) {
			t.Fatalf("Parse ok but Complete = %d, %v", n, cerr)
		}
		enc, err := h.Encode()
		if h.Version == VersionPSK && !ValidPID(h.PID) {
			return // Parse keeps whatever PID bytes the device sent
		}
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(enc, b[:n]) {
			t.Fatalf("round trip differs:\n%x\n%x", enc, b[:n])
		}
	})
}
