package setupbin

import (
	"crypto/rand"
	"fmt"
	"io"
	"strings"
)

// PID/PPS sizes and alphabet (spec/legacy.md §9, §14).
const (
	PIDLength = 8
	PPSLength = 32
	alphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

// GeneratePIDPPS returns a fresh PID (8 characters) and PPS (32 characters)
// drawn uniformly from A–Z and 0–9. rnd is the entropy source; nil means
// crypto/rand.
func GeneratePIDPPS(rnd io.Reader) (pid, pps string, err error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	s, err := randomString(rnd, PIDLength+PPSLength)
	if err != nil {
		return "", "", err
	}
	return s[:PIDLength], s[PIDLength:], nil
}

// randomString draws n characters of the alphabet without modulo bias:
// bytes ≥ 252 (= 7 × 36) are rejected.
func randomString(rnd io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	for len(out) < n {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return "", fmt.Errorf("setupbin: random source: %w", err)
		}
		for _, c := range buf {
			if c < 252 && len(out) < n {
				out = append(out, alphabet[c%36])
			}
		}
	}
	return string(out), nil
}

// Dashed returns the display form of a PID or PPS: a dash after every four
// characters ("ABCD-1234", 40 characters for a PPS). Dashes are not part of
// the value.
func Dashed(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// NormalizePIDPPS turns what an operator typed into the stored value: dashes
// and spaces removed, letters upper-cased. It does not validate; see
// ValidPID and ValidPPS.
func NormalizePIDPPS(s string) string {
	s = strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s))
	return strings.ToUpper(s)
}

// ValidPID reports whether s is exactly 8 characters from A–Z and 0–9.
func ValidPID(s string) bool { return len(s) == PIDLength && inAlphabet(s) }

// ValidPPS reports whether s is exactly 32 characters from A–Z and 0–9.
func ValidPPS(s string) bool { return len(s) == PPSLength && inAlphabet(s) }

func inAlphabet(s string) bool {
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alphabet, rune(s[i])) {
			return false
		}
	}
	return true
}

// ParsePIDPPS normalizes and validates an operator-supplied pair.
func ParsePIDPPS(pid, pps string) (string, string, error) {
	pid, pps = NormalizePIDPPS(pid), NormalizePIDPPS(pps)
	if !ValidPID(pid) {
		return "", "", fmt.Errorf("%w: PID must be 8 characters A-Z/0-9 (got %d)", ErrPIDPPS, len(pid))
	}
	if !ValidPPS(pps) {
		return "", "", fmt.Errorf("%w: PPS must be 32 characters A-Z/0-9 (got %d)", ErrPIDPPS, len(pps))
	}
	return pid, pps, nil
}
