// Package digest is the server side of HTTP digest authentication (RFC 2617)
// exactly as Intel AMT speaks it (wsman.md §2, heci.md §7): the challenge
// formatting, MD5 with qop=auth, nc quoted or not, any parameter order, and
// stale nonces answered with stale="true".
package digest

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultNonceLifetime is how long an issued nonce stays valid.
const DefaultNonceLifetime = 10 * time.Minute

// Options configure a Server.
type Options struct {
	// NonceLifetime: after it a correct response gets 401 stale="true".
	NonceLifetime time.Duration
	// MaxTracked bounds the nonces whose last nc is remembered (default 64).
	MaxTracked int
	Now        func() time.Time
	Rand       io.Reader
}

// Server issues nonces and verifies Authorization headers for one device.
// Safe for concurrent use; costs nothing while idle (no timers).
type Server struct {
	key      [32]byte
	lifetime time.Duration
	max      int
	now      func() time.Time
	seq      atomic.Uint32

	mu      sync.Mutex
	tracked map[string]tracked
}

type tracked struct {
	nc   uint64
	seen time.Time
}

// Credential is what the verifier needs for one user.
type Credential struct {
	HA1 [16]byte // MD5(user:realm:password)
	// AnyPassword accepts any response for this user (AMT's TLS setup
	// session, where the client proved itself with its certificate).
	AnyPassword bool
}

// Lookup returns the credential of a user allowed to log in.
type Lookup func(username string) (Credential, bool)

// Result of a verification.
type Result struct {
	OK       bool
	Stale    bool // the response was right but the nonce is stale: challenge with stale="true"
	Username string
}

// New creates a Server with a random nonce key.
func New(opts Options) (*Server, error) {
	s := &Server{lifetime: opts.NonceLifetime, max: opts.MaxTracked, now: opts.Now}
	if s.lifetime <= 0 {
		s.lifetime = DefaultNonceLifetime
	}
	if s.max <= 0 {
		s.max = 64
	}
	if s.now == nil {
		s.now = time.Now
	}
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, s.key[:]); err != nil {
		return nil, err
	}
	return s, nil
}

// Nonce issues a new nonce: 32 base64 characters (as AMT's), carrying its
// issue time and a MAC so that it can be checked without state.
func (s *Server) Nonce() string {
	var raw [24]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(s.now().UnixNano()))
	binary.BigEndian.PutUint32(raw[8:12], s.seq.Add(1))
	m := hmac.New(sha256.New, s.key[:])
	m.Write(raw[:12])
	copy(raw[12:], m.Sum(nil))
	return base64.StdEncoding.EncodeToString(raw[:])
}

// nonceAge checks a nonce's MAC and returns its age.
func (s *Server) nonceAge(nonce string) (time.Duration, bool) {
	raw, err := base64.StdEncoding.DecodeString(nonce)
	if err != nil || len(raw) != 24 {
		return 0, false
	}
	m := hmac.New(sha256.New, s.key[:])
	m.Write(raw[:12])
	if subtle.ConstantTimeCompare(m.Sum(nil)[:12], raw[12:]) != 1 {
		return 0, false
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8])))
	return s.now().Sub(issued), true
}

// Challenge is the WWW-Authenticate value with a fresh nonce, formatted as
// AMT does: a space only after the first comma.
func (s *Server) Challenge(realm string, stale bool) string {
	return FormatChallenge(realm, s.Nonce(), stale)
}

// FormatChallenge formats a challenge as AMT does.
func FormatChallenge(realm, nonce string, stale bool) string {
	return `Digest realm="` + realm + `", nonce="` + nonce + `",stale="` + strconv.FormatBool(stale) + `",qop="auth"`
}

// Verify checks an Authorization header for a request with the given method
// and request URI against realm and the user table.
func (s *Server) Verify(method, requestURI, authorization, realm string, lookup Lookup) Result {
	p, err := ParseAuthorization(authorization)
	if err != nil {
		return Result{}
	}
	user, nonce, uri, resp := p["username"], p["nonce"], p["uri"], strings.ToLower(p["response"])
	if user == "" || nonce == "" || uri == "" || len(resp) != 32 {
		return Result{}
	}
	if subtle.ConstantTimeCompare([]byte(p["realm"]), []byte(realm)) != 1 || uri != requestURI {
		return Result{}
	}
	if alg := p["algorithm"]; alg != "" && !strings.EqualFold(alg, "MD5") {
		return Result{}
	}
	qop, nc, cnonce := p["qop"], p["nc"], p["cnonce"]
	var ncv uint64
	switch qop {
	case "auth":
		if len(nc) != 8 || cnonce == "" {
			return Result{}
		}
		ncv, err = strconv.ParseUint(nc, 16, 32)
		if err != nil {
			return Result{}
		}
	case "":
	default:
		return Result{}
	}
	cred, ok := lookup(user)
	if !ok {
		return Result{}
	}
	if !cred.AnyPassword {
		ha1 := hex.EncodeToString(cred.HA1[:])
		ha2 := md5hex(method + ":" + uri)
		var want string
		if qop == "auth" {
			want = md5hex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
		} else {
			want = md5hex(ha1 + ":" + nonce + ":" + ha2)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(resp)) != 1 {
			return Result{}
		}
	}
	age, ok := s.nonceAge(nonce)
	if !ok || age < -time.Minute || age > s.lifetime {
		return Result{Stale: true, Username: user}
	}
	if qop == "auth" && !s.advance(nonce, ncv) {
		return Result{Stale: true, Username: user}
	}
	return Result{OK: true, Username: user}
}

// advance records nc for nonce; a reused or lower nc is refused.
func (s *Server) advance(nonce string, nc uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tracked == nil {
		s.tracked = make(map[string]tracked)
	}
	t, seen := s.tracked[nonce]
	if seen && nc <= t.nc {
		return false
	}
	now := s.now()
	if !seen && len(s.tracked) >= s.max {
		// forget expired nonces, then the oldest one
		var oldest string
		var oldestT time.Time
		for k, v := range s.tracked {
			if now.Sub(v.seen) > s.lifetime {
				delete(s.tracked, k)
				continue
			}
			if oldest == "" || v.seen.Before(oldestT) {
				oldest, oldestT = k, v.seen
			}
		}
		if len(s.tracked) >= s.max {
			delete(s.tracked, oldest)
		}
	}
	s.tracked[nonce] = tracked{nc: nc, seen: now}
	return true
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// HA1 computes MD5(user:realm:password).
func HA1(user, realm, password string) [16]byte {
	return md5.Sum([]byte(user + ":" + realm + ":" + password))
}

// ErrMalformed is returned for an unparsable Authorization header.
var ErrMalformed = errors.New("digest: malformed authorization header")

// ParseAuthorization parses `Digest k=v, k="v", …` in any order, with quoted
// or unquoted values. Keys are lower-cased; a repeated key is an error.
func ParseAuthorization(h string) (map[string]string, error) {
	h = strings.TrimSpace(h)
	if len(h) < 7 || !strings.EqualFold(h[:7], "Digest ") {
		return nil, ErrMalformed
	}
	if len(h) > 4096 {
		return nil, ErrMalformed
	}
	out := make(map[string]string, 10)
	s := h[7:]
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ',' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := strings.ToLower(s[start:i])
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if key == "" || i >= len(s) || s[i] != '=' {
			return nil, ErrMalformed
		}
		i++
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val string
		if i < len(s) && s[i] == '"' {
			i++
			var b strings.Builder
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if c == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(c)
				i++
			}
			if !closed {
				return nil, ErrMalformed
			}
			val = b.String()
		} else {
			start := i
			for i < len(s) && s[i] != ',' && s[i] != ' ' && s[i] != '\t' {
				i++
			}
			val = s[start:i]
		}
		if _, dup := out[key]; dup {
			return nil, ErrMalformed
		}
		out[key] = val
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i < len(s) && s[i] != ',' {
			return nil, ErrMalformed
		}
	}
	if len(out) == 0 {
		return nil, ErrMalformed
	}
	return out, nil
}
