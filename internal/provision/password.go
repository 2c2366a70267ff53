package provision

import (
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strings"

	"crypto/rand"
)

// passwordAlphabet is RPS's random password alphabet
// (PasswordHelper.generateRandomPassword, activation.md §1).
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!@#$%^*()"

// RandomPassword returns a 16-character password from RPS's alphabet with at
// least one lower-case letter, one upper-case letter, one digit and one of
// RPS's required specials ($ @ ! % * #). It satisfies AMT's admin/MEBx rule
// and the 16-character limit of AMT 19 MPS passwords.
func RandomPassword(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	max := big.NewInt(int64(len(passwordAlphabet)))
	for range 1000 {
		var b strings.Builder
		for range 16 {
			n, err := rand.Int(r, max)
			if err != nil {
				return "", fmt.Errorf("generating a password: %w", err)
			}
			b.WriteByte(passwordAlphabet[n.Int64()])
		}
		if s := b.String(); strongPassword(s) {
			return s, nil
		}
	}
	return "", fmt.Errorf("generating a password: no acceptable password drawn")
}

func strongPassword(s string) bool {
	return strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") &&
		strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
		strings.ContainsAny(s, "0123456789") &&
		strings.ContainsAny(s, "$@!%*#")
}

// amtPasswordRule is Intel's rule for AMT admin and MEBx passwords: 8–32
// characters, at least one digit, one lower-case and one upper-case letter
// and one non-alphanumeric 7-bit ASCII character other than : " ,
var amtPasswordRule = regexp.MustCompile(`^[\x21-\x7e]{8,32}$`)

// ValidAMTPassword reports whether AMT accepts pw as admin or MEBx password.
func ValidAMTPassword(pw string) bool {
	if !amtPasswordRule.MatchString(pw) || strings.ContainsAny(pw, `:",`) {
		return false
	}
	special := false
	for _, c := range pw {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			special = true
		}
	}
	return special && strings.ContainsAny(pw, "abcdefghijklmnopqrstuvwxyz") &&
		strings.ContainsAny(pw, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") && strings.ContainsAny(pw, "0123456789")
}

// digestHA1 is MD5(user ":" realm ":" password), the form AMT stores.
func digestHA1(user, realm, password string) [16]byte {
	return md5.Sum([]byte(user + ":" + realm + ":" + password))
}

// aclDigestPassword is the DigestPassword of SetAdminAclEntryEx and the user
// ACL methods: base64 of the raw 16-byte HA1 (activation.md §6.3).
func aclDigestPassword(user, realm, password string) string {
	h := digestHA1(user, realm, password)
	return base64.StdEncoding.EncodeToString(h[:])
}

// validRealm: "Digest:" followed by 32 hex digits (RPS isDigestRealmValid).
func validRealm(realm string) bool {
	hexPart, ok := strings.CutPrefix(realm, "Digest:")
	if !ok || len(hexPart) != 32 {
		return false
	}
	for _, c := range hexPart {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
