package relay

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
)

// Messages of the AMT redirection session manager (spec/mps.md §7.4).
// Lengths are little-endian.
const (
	msgStartRedirectionSession      = 0x10 // B→A, 8 bytes
	msgStartRedirectionSessionReply = 0x11 // A→B, 13 + OEM bytes on success
	msgEndRedirectionSession        = 0x12 // B→A, 4 bytes
	msgAuthenticateSession          = 0x13 // B→A, 9 + len bytes
	msgAuthenticateSessionReply     = 0x14 // A→B, 9 + len bytes
)

// Authentication types and reply statuses.
const (
	authQuery  = 0
	authDigest = 4

	authSuccess = 0
	authFailure = 1
)

// digestURI is the URI of the redirection digest.
const digestURI = "/RedirectionService"

// maxAuthData bounds the data of one AuthenticateSession or
// AuthenticateSessionReply: such a message is held whole before it is
// forwarded. Digest data is at most 8×256 bytes; the bound leaves room for
// Kerberos tickets.
const maxAuthData = 64 << 10

// ErrMalformed is the cause of a session closed because a redirection
// message could not be parsed (spec/mps.md §7.4 rule 4).
var ErrMalformed = errors.New("relay: malformed redirection message")

// Session type tags of StartRedirectionSession.
var (
	tagSOL  = [4]byte{'S', 'O', 'L', ' '}
	tagKVM  = [4]byte{'K', 'V', 'M', 'R'}
	tagIDER = [4]byte{'I', 'D', 'E', 'R'}
)

// interceptor follows the redirection handshake in both directions: the
// session start and the login. With injection on it replaces the browser's
// digest AuthenticateSession messages with ones computed from the stored
// credentials and the device's challenge. Once the device reports a
// successful login both directions pass through untouched.
//
// Each direction is fed by one goroutine; the state they share (the
// challenge, the pass-through switch) is guarded by mu. Partial messages are
// kept until complete and never exceed 9 + maxAuthData bytes beyond the
// chunk being processed.
type interceptor struct {
	mu sync.Mutex

	inject   bool // p=2 and credentials available
	user     string
	password string
	cnonce   string
	nc       uint32 // digests sent so far

	realm, nonce, qop string
	challenge         bool // realm/nonce/qop received from the device

	direct  bool // logged in: both directions pass through
	refused bool // the device refused the session start: its bytes pass through

	fromBrowser []byte // partial message from the browser
	fromDevice  []byte // partial message from the device
	err         error  // sticky: the stream is broken

	// onStart is told the tag of each StartRedirectionSession (to check
	// it against the session's mode); an error breaks the stream. It is
	// called with mu held.
	onStart func(tag [4]byte) error
}

// newInterceptor returns an interceptor; with inject, digest logins are
// made with user and password, and cnonce.
func newInterceptor(inject bool, user, password, cnonce string, onStart func([4]byte) error) *interceptor {
	return &interceptor{inject: inject, user: user, password: password, cnonce: cnonce, onStart: onStart}
}

// passThrough reports whether the login has succeeded.
func (x *interceptor) passThrough() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.direct
}

// browser processes bytes from the browser and returns those to send to
// the device. The result may alias p.
func (x *interceptor) browser(p []byte) ([]byte, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.process(&x.fromBrowser, p, func() bool { return x.direct }, x.browserMsg)
}

// device processes bytes from the device and returns those to send to the
// browser. The result may alias p.
func (x *interceptor) device(p []byte) ([]byte, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.process(&x.fromDevice, p, func() bool { return x.direct || x.refused }, x.deviceMsg)
}

// process appends p to the direction's partial message and handles every
// complete message. msg returns the bytes consumed (0: incomplete) and the
// bytes to emit for them.
func (x *interceptor) process(acc *[]byte, p []byte, raw func() bool, msg func([]byte) (int, []byte, error)) ([]byte, error) {
	if x.err != nil {
		return nil, x.err
	}
	if raw() && len(*acc) == 0 {
		return p, nil
	}
	buf := append(*acc, p...)
	var out []byte
	for len(buf) > 0 {
		if raw() {
			out = append(out, buf...)
			buf = buf[len(buf):]
			break
		}
		n, emit, err := msg(buf)
		if err != nil {
			x.err = err
			*acc = nil
			return nil, err
		}
		if n == 0 {
			break
		}
		out = append(out, emit...)
		buf = buf[n:]
	}
	if len(buf) == 0 {
		*acc = nil
	} else {
		*acc = append([]byte(nil), buf...)
	}
	return out, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// authLen reads the data length of an (AuthenticateSession|Reply) header
// and checks it. ok is false while the header is incomplete.
func authLen(b []byte) (n int, ok bool, err error) {
	if len(b) < 9 {
		return 0, false, nil
	}
	l := binary.LittleEndian.Uint32(b[5:9])
	if l > maxAuthData {
		return 0, false, malformed("authentication data of %d bytes (0x%02x)", l, b[0])
	}
	return 9 + int(l), true, nil
}

// browserMsg handles one message from the browser before the login
// succeeded.
func (x *interceptor) browserMsg(b []byte) (int, []byte, error) {
	switch b[0] {
	case msgStartRedirectionSession:
		if len(b) < 8 {
			return 0, nil, nil
		}
		if x.onStart != nil {
			var tag [4]byte
			copy(tag[:], b[4:8])
			if err := x.onStart(tag); err != nil {
				return 0, nil, err
			}
		}
		return 8, b[:8], nil
	case msgEndRedirectionSession:
		if len(b) < 4 {
			return 0, nil, nil
		}
		return 4, b[:4], nil
	case msgAuthenticateSession:
		n, ok, err := authLen(b)
		if err != nil || !ok || len(b) < n {
			return 0, nil, err
		}
		if b[4] == authDigest && x.inject {
			// The browser's message is dropped: it was made without the
			// password.
			return n, x.digestMessage(), nil
		}
		return n, b[:n], nil
	}
	return 0, nil, malformed("browser sent 0x%02x during the session setup", b[0])
}

// deviceMsg handles one message from the device before the login
// succeeded.
func (x *interceptor) deviceMsg(b []byte) (int, []byte, error) {
	switch b[0] {
	case msgStartRedirectionSessionReply:
		if len(b) < 4 {
			return 0, nil, nil
		}
		if b[1] != 0 {
			// Refused (unknown type, busy, unsupported, error): the device
			// ends the session; what it sends until then is forwarded.
			x.refused = true
			return len(b), b, nil
		}
		if len(b) < 13 {
			return 0, nil, nil
		}
		n := 13 + int(b[12])
		if len(b) < n {
			return 0, nil, nil
		}
		return n, b[:n], nil
	case msgAuthenticateSessionReply:
		n, ok, err := authLen(b)
		if err != nil || !ok || len(b) < n {
			return 0, nil, err
		}
		status, authType, data := b[1], b[4], b[9:n]
		switch {
		case authType == authDigest && status == authFailure && len(data) > 0:
			f, ok := lpStrings(data, 3)
			if !ok {
				return 0, nil, malformed("digest challenge")
			}
			x.realm, x.nonce, x.qop = string(f[0]), string(f[1]), string(f[2])
			x.challenge = true
		case authType != authQuery && status == authSuccess:
			x.direct = true
		}
		return n, b[:n], nil
	}
	return 0, nil, malformed("device sent 0x%02x during the session setup", b[0])
}

// lpStrings reads n strings each preceded by a one-byte length; data may
// continue after them.
func lpStrings(data []byte, n int) ([][]byte, bool) {
	out := make([][]byte, 0, n)
	for range n {
		if len(data) < 1 || len(data) < 1+int(data[0]) {
			return nil, false
		}
		l := int(data[0])
		out = append(out, data[1:1+l])
		data = data[1+l:]
	}
	return out, true
}

// digestMessage is the AuthenticateSession the relay sends in place of the
// browser's (spec/mps.md §7.4 rules 1 and 2).
func (x *interceptor) digestMessage() []byte {
	if !x.challenge {
		// An empty digest: the device answers with its challenge.
		msg := binary.LittleEndian.AppendUint32([]byte{msgAuthenticateSession, 0, 0, 0, authDigest}, uint32(len(x.user)+27))
		msg = append(msg, byte(len(x.user)))
		msg = append(msg, x.user...)
		msg = append(msg, 0, 0, byte(len(digestURI)))
		msg = append(msg, digestURI...)
		return append(msg, 0, 0, 0, 0)
	}
	x.nc++
	nc := fmt.Sprintf("%08x", x.nc)
	resp := DigestResponse(x.user, x.realm, x.password, x.nonce, nc, x.cnonce, x.qop)
	fields := []string{x.user, x.realm, x.nonce, digestURI, x.cnonce, nc, resp, x.qop}
	total := 0
	for _, f := range fields {
		total += len(f) + 1
	}
	msg := binary.LittleEndian.AppendUint32([]byte{msgAuthenticateSession, 0, 0, 0, authDigest}, uint32(total))
	for _, f := range fields {
		msg = append(msg, byte(len(f)))
		msg = append(msg, f...)
	}
	return msg
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// DigestResponse is the redirection login's digest:
// MD5hex(MD5hex(user:realm:password):nonce:nc:cnonce:qop:MD5hex("POST:/RedirectionService")).
func DigestResponse(user, realm, password, nonce, nc, cnonce, qop string) string {
	return md5hex(md5hex(user+":"+realm+":"+password) + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + md5hex("POST:"+digestURI))
}
