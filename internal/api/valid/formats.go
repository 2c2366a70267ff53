package valid

import (
	"net/netip"
	"strings"
	"unicode"
)

// IsIPv4 implements validator.js isIP(str, 4): four decimal octets without
// leading zeroes.
func IsIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
			return false
		}
		n := 0
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
			n = n*10 + int(p[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

// IsIPv6 implements validator.js isIP(str, 6), zone identifiers included.
func IsIPv6(s string) bool {
	if !strings.Contains(s, ":") {
		return false
	}
	host, zone, hasZone := strings.Cut(s, "%")
	if hasZone && zone == "" {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Is6()
}

// FQDNOpts are validator.js isFQDN options. DefaultFQDN holds its defaults.
type FQDNOpts struct {
	RequireTLD       bool
	AllowUnderscores bool
	AllowTrailingDot bool
	AllowNumericTLD  bool
	AllowWildcard    bool
	IgnoreMaxLength  bool
}

// DefaultFQDN are validator.js's default isFQDN options (require_tld true,
// everything else false).
var DefaultFQDN = FQDNOpts{RequireTLD: true}

// IsFQDN implements validator.js isFQDN.
func IsFQDN(s string, o FQDNOpts) bool {
	if o.AllowTrailingDot && strings.HasSuffix(s, ".") {
		s = s[:len(s)-1]
	}
	if o.AllowWildcard && strings.HasPrefix(s, "*.") {
		s = s[2:]
	}
	parts := strings.Split(s, ".")
	tld := parts[len(parts)-1]
	if o.RequireTLD {
		if len(parts) < 2 {
			return false
		}
		if !o.AllowNumericTLD && !validTLD(tld) {
			return false
		}
		for _, r := range tld {
			if unicode.IsSpace(r) {
				return false
			}
		}
	}
	if !o.AllowNumericTLD && tld != "" && allDigits(tld) {
		return false
	}
	for _, part := range parts {
		if len([]rune(part)) > 63 && !o.IgnoreMaxLength {
			return false
		}
		if part == "" {
			return false
		}
		for _, r := range part {
			ok := r == '_' || r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
				(r >= 0x00a1 && r <= 0xffff)
			if !ok {
				return false
			}
			if r >= 0xff01 && r <= 0xff5e { // full-width characters
				return false
			}
		}
		if strings.HasPrefix(part, "-") || strings.HasSuffix(part, "-") {
			return false
		}
		if !o.AllowUnderscores && strings.Contains(part, "_") {
			return false
		}
	}
	return true
}

// validTLD: /^([a-z\u00A1-\u00A8\u00AA-\uD7FF\uF900-\uFDCF\uFDF0-\uFFEF]{2,}|xn[a-z0-9-]{2,})$/i
func validTLD(tld string) bool {
	lower := strings.ToLower(tld)
	if strings.HasPrefix(lower, "xn") && len(lower) >= 4 {
		ok := true
		for _, r := range lower[2:] {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	n := 0
	for _, r := range lower {
		ok := (r >= 'a' && r <= 'z') || (r >= 0xa1 && r <= 0xa8) || (r >= 0xaa && r <= 0xd7ff) ||
			(r >= 0xf900 && r <= 0xfdcf) || (r >= 0xfdf0 && r <= 0xffef)
		if !ok {
			return false
		}
		n++
	}
	return n >= 2
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
