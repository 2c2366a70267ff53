package digest

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

const realm = "Digest:0A1B2C3D4E5F60718293A4B5C6D7E8F9"

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newServer(t *testing.T, c *clock) *Server {
	t.Helper()
	s, err := New(Options{NonceLifetime: time.Minute, Now: c.now, MaxTracked: 4})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hexMD5(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }

// authHeader builds a header the way go-wsman-messages does (nc quoted) or
// RPS does (other order), or with nc unquoted.
func authHeader(style, user, pw, nonce, nc, cnonce string) string {
	ha1 := hexMD5(user + ":" + realm + ":" + pw)
	resp := hexMD5(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + hexMD5("POST:/wsman"))
	switch style {
	case "rps":
		return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="/wsman", qop="auth", response="%s", nc="%s", cnonce="%s"`, user, realm, nonce, resp, nc, cnonce)
	case "unquoted":
		return fmt.Sprintf(`Digest nc=%s, cnonce="%s", qop=auth, response="%s", uri="/wsman", nonce="%s", realm="%s", username="%s", algorithm=MD5`, nc, cnonce, resp, nonce, realm, user)
	default:
		return fmt.Sprintf(`Digest username="%s",realm="%s",nonce="%s",uri="/wsman",response="%s",qop="auth",nc="%s",cnonce="%s"`, user, realm, nonce, resp, nc, cnonce)
	}
}

func lookup(user, pw string) Lookup {
	return func(u string) (Credential, bool) {
		if u != user {
			return Credential{}, false
		}
		return Credential{HA1: HA1(user, realm, pw)}, true
	}
}

func TestChallengeFormat(t *testing.T) {
	c := &clock{t: time.Unix(1700000000, 0)}
	s := newServer(t, c)
	ch := s.Challenge(realm, false)
	re := regexp.MustCompile(`^Digest realm="Digest:[0-9A-F]{32}", nonce="[A-Za-z0-9+/]{32}",stale="false",qop="auth"$`)
	if !re.MatchString(ch) {
		t.Fatalf("challenge %q does not have AMT's shape", ch)
	}
	if got := FormatChallenge(realm, "B9AX94iAAAAAAAAAx6rrSfPHGUrx/3uA", true); got != `Digest realm="`+realm+`", nonce="B9AX94iAAAAAAAAAx6rrSfPHGUrx/3uA",stale="true",qop="auth"` {
		t.Fatalf("FormatChallenge = %q", got)
	}
}

func TestVerify(t *testing.T) {
	c := &clock{t: time.Unix(1700000000, 0)}
	s := newServer(t, c)
	look := lookup("admin", "P@ssw0rd")
	for _, style := range []string{"wsman", "rps", "unquoted"} {
		nonce := s.Nonce()
		r := s.Verify("POST", "/wsman", authHeader(style, "admin", "P@ssw0rd", nonce, "00000001", "a1b2c3"), realm, look)
		if !r.OK || r.Username != "admin" {
			t.Fatalf("%s: valid header refused: %+v", style, r)
		}
		// next nc on the same nonce
		if r := s.Verify("POST", "/wsman", authHeader(style, "admin", "P@ssw0rd", nonce, "00000002", "ffeedd"), realm, look); !r.OK {
			t.Fatalf("%s: nc 2 refused: %+v", style, r)
		}
		// replay of nc 2 → stale
		if r := s.Verify("POST", "/wsman", authHeader(style, "admin", "P@ssw0rd", nonce, "00000002", "ffeedd"), realm, look); r.OK || !r.Stale {
			t.Fatalf("%s: replayed nc: %+v", style, r)
		}
	}
	nonce := s.Nonce()
	cases := []struct {
		name  string
		h     string
		stale bool
	}{
		{"wrong password", authHeader("", "admin", "wrong", nonce, "00000001", "abc"), false},
		{"unknown user", authHeader("", "bob", "P@ssw0rd", nonce, "00000001", "abc"), false},
		{"foreign nonce", authHeader("", "admin", "P@ssw0rd", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "00000001", "abc"), true},
		{"not digest", "Basic YWRtaW46eA==", false},
		{"wrong uri", strings.Replace(authHeader("", "admin", "P@ssw0rd", nonce, "00000001", "abc"), `uri="/wsman"`, `uri="/other"`, 1), false},
		{"wrong realm", strings.Replace(authHeader("", "admin", "P@ssw0rd", nonce, "00000001", "abc"), realm, "Digest:00000000000000000000000000000000", 1), false},
		{"bad nc", authHeader("", "admin", "P@ssw0rd", nonce, "zz", "abc"), false},
	}
	for _, tc := range cases {
		r := s.Verify("POST", "/wsman", tc.h, realm, look)
		if r.OK || r.Stale != tc.stale {
			t.Errorf("%s: got %+v, want OK=false Stale=%v", tc.name, r, tc.stale)
		}
	}
}

func TestExpiredNonceIsStale(t *testing.T) {
	c := &clock{t: time.Unix(1700000000, 0)}
	s := newServer(t, c)
	look := lookup("admin", "P@ssw0rd")
	nonce := s.Nonce()
	c.t = c.t.Add(2 * time.Minute)
	r := s.Verify("POST", "/wsman", authHeader("", "admin", "P@ssw0rd", nonce, "00000001", "abc"), realm, look)
	if r.OK || !r.Stale {
		t.Fatalf("expired nonce: %+v", r)
	}
	// wrong password on an expired nonce is not stale
	r = s.Verify("POST", "/wsman", authHeader("", "admin", "nope", nonce, "00000002", "abc"), realm, look)
	if r.OK || r.Stale {
		t.Fatalf("expired nonce, wrong password: %+v", r)
	}
}

func TestTrackingIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(1700000000, 0)}
	s := newServer(t, c)
	look := lookup("admin", "pw")
	for i := range 20 {
		c.t = c.t.Add(time.Second)
		if r := s.Verify("POST", "/wsman", authHeader("", "admin", "pw", s.Nonce(), "00000001", fmt.Sprint(i)), realm, look); !r.OK {
			t.Fatalf("request %d refused", i)
		}
	}
	if n := len(s.tracked); n > 4 {
		t.Fatalf("tracking %d nonces, bound is 4", n)
	}
}

func TestAnyPassword(t *testing.T) {
	c := &clock{t: time.Unix(1700000000, 0)}
	s := newServer(t, c)
	look := func(u string) (Credential, bool) { return Credential{AnyPassword: true}, u == "admin" }
	if r := s.Verify("POST", "/wsman", authHeader("", "admin", "whatever", s.Nonce(), "00000001", "x"), realm, look); !r.OK {
		t.Fatalf("setup session refused: %+v", r)
	}
	if r := s.Verify("POST", "/wsman", authHeader("", "other", "whatever", s.Nonce(), "00000001", "x"), realm, look); r.OK {
		t.Fatal("unknown user accepted")
	}
}

func TestParseAuthorization(t *testing.T) {
	p, err := ParseAuthorization(`Digest username="a\"b", nc=00000001 ,qop="auth",  realm="x, y"`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"username": `a"b`, "nc": "00000001", "qop": "auth", "realm": "x, y"}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("%s = %q, want %q", k, p[k], v)
		}
	}
	for _, bad := range []string{"", "Digest ", `Digest a="unterminated`, `Digest a=1 b=2`, `Digest a=1, a=2`, `Digest =x`} {
		if _, err := ParseAuthorization(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add(`Digest username="admin",realm="Digest:0A",nonce="n",uri="/wsman",response="r",qop="auth",nc="00000002",cnonce="a1b2c3"`)
	f.Add(`Digest nc=00000001, qop=auth`)
	f.Add(`Digest a="\"`)
	f.Fuzz(func(t *testing.T, h string) {
		p, err := ParseAuthorization(h)
		if err == nil && len(p) == 0 {
			t.Fatal("success without parameters")
		}
		s, _ := New(Options{})
		s.Verify("POST", "/wsman", h, realm, lookup("admin", "pw"))
	})
}
