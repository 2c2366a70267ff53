// Package redir is the device side of the Intel AMT redirection protocol
// (ports 16994/16995; spec/mps.md §7.4): session setup
// (StartRedirectionSession), the login (AuthenticateSession with HTTP-style
// digest or user/password, checked against the firmware's accounts), then
// the session itself:
//
//   - SOL: a simulated serial console that echoes what is typed and answers
//     a few commands after a prompt;
//   - KVM: an RFB (VNC) server with a solid-colour screen of the platform's
//     display size, whose colour follows the keys pressed;
//   - IDE-R: session start, keepalives and end (no disk emulation).
//
// Sessions need the feature enabled (AMT_RedirectionService,
// CIM_KVMRedirectionSAP) and, when the firmware requires it, user consent;
// they are recorded in the audit log.
package redir

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

// Message types of the session manager (spec/mps.md §7.4).
const (
	StartRedirectionSession      = 0x10
	StartRedirectionSessionReply = 0x11
	EndRedirectionSession        = 0x12
	AuthenticateSession          = 0x13
	AuthenticateSessionReply     = 0x14
)

// Session types as StartRedirectionSession carries them.
var (
	TagSOL  = [4]byte{'S', 'O', 'L', ' '}
	TagIDER = [4]byte{'I', 'D', 'E', 'R'}
	TagKVM  = [4]byte{'K', 'V', 'M', 'R'}
)

// StartRedirectionSessionReply status values.
const (
	StatusSuccess     = 0
	StatusUnknownType = 1
	StatusBusy        = 2
	StatusUnsupported = 3
	StatusError       = 0xFF
)

// Authentication types.
const (
	AuthQuery     = 0
	AuthPassword  = 1
	AuthKerberos  = 2
	AuthBadDigest = 3
	AuthDigest    = 4
)

// AuthenticateSessionReply status values.
const (
	AuthSuccess      = 0
	AuthFailure      = 1
	AuthNotSupported = 2
)

// DigestURI is the URI consoles put in the redirection digest.
const DigestURI = "/RedirectionService"

// Config configures Serve.
type Config struct {
	Firmware *firmware.Firmware // required
	Logger   *slog.Logger
	// Rand supplies the digest nonces (default crypto/rand).
	Rand io.Reader
	// HandshakeTimeout bounds the session setup and login (default 30 s).
	HandshakeTimeout time.Duration
	// MaxAuthFailures closes the session after this many failed logins
	// (default 3).
	MaxAuthFailures int
}

// Errors returned by Serve.
var (
	ErrProtocol = errors.New("redir: protocol error")
	ErrRefused  = errors.New("redir: session refused")
)

type session struct {
	cfg  Config
	fw   *firmware.Firmware
	log  *slog.Logger
	conn net.Conn
	r    *bufio.Reader
	kind firmware.RedirKind
	user string
	addr string
	seq  uint32 // sequence number of messages the device sends
}

// Serve runs one redirection session on conn (after any TLS) until the
// console ends it, the connection fails or ctx ends. It closes conn and
// returns nil for a session the console ended normally.
func Serve(ctx context.Context, conn net.Conn, cfg Config) (err error) {
	defer conn.Close()
	if cfg.Firmware == nil {
		return errors.New("redir: Config.Firmware is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = cfg.Firmware.Logger()
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = 3
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s := &session{cfg: cfg, fw: cfg.Firmware, log: cfg.Logger, conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	if a := conn.RemoteAddr(); a != nil {
		s.addr = a.String()
	}
	_ = conn.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if err := s.start(); err != nil {
		return err
	}
	defer func() {
		if errors.Is(err, errEnded) {
			err = nil
		}
	}()
	authType, err := s.login()
	if err != nil {
		return err
	}
	end, err := s.fw.BeginRedirection(s.kind, firmware.DigestInitiator(s.user, s.addr))
	if err != nil {
		// consent required and not given: the login is refused
		_ = s.authReply(AuthFailure, authType, nil)
		return fmt.Errorf("%w: %v", ErrRefused, err)
	}
	defer end()
	if err := s.authReply(AuthSuccess, authType, nil); err != nil {
		return err
	}
	s.log.Debug("redir: session", "type", s.kind.String(), "user", s.user)
	switch s.kind {
	case firmware.RedirSOL:
		err = s.serveSOL()
	case firmware.RedirKVM:
		err = s.serveKVM()
	default:
		err = s.serveIDER()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readFull reads exactly n bytes.
func (s *session) readFull(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func (s *session) write(b []byte) error {
	_, err := s.conn.Write(b)
	return err
}

// start handles StartRedirectionSession.
func (s *session) start() error {
	b, err := s.readFull(8)
	if err != nil {
		return err
	}
	if b[0] != StartRedirectionSession {
		return fmt.Errorf("%w: first message 0x%02x", ErrProtocol, b[0])
	}
	var tag [4]byte
	copy(tag[:], b[4:8])
	status := byte(StatusSuccess)
	switch tag {
	case TagSOL:
		s.kind = firmware.RedirSOL
	case TagIDER:
		s.kind = firmware.RedirIDER
	case TagKVM:
		s.kind = firmware.RedirKVM
	default:
		status = StatusUnknownType
	}
	if status == StatusSuccess {
		switch {
		case !s.fw.RedirectionEnabled(s.kind):
			status = StatusUnsupported
		case s.fw.RedirectionSessions(s.kind) > 0:
			status = StatusBusy // one session of each type at a time
		}
	}
	// 13 bytes: type, status, 2 reserved, protocol version 1.0, session
	// manager firmware version, OEM IANA number (Intel, 343), OEM data length 0
	reply := []byte{StartRedirectionSessionReply, status, 0, 0, 1, 0, 1, 1, 0x57, 0x01, 0, 0, 0}
	if err := s.write(reply); err != nil {
		return err
	}
	if status != StatusSuccess {
		return fmt.Errorf("%w: start status %d", ErrRefused, status)
	}
	return nil
}

// errEnded: the console ended the session during the login.
var errEnded = errors.New("redir: session ended by the console")

// login runs the AuthenticateSession exchange until credentials are
// verified; the caller sends the final reply (of the returned type).
func (s *session) login() (byte, error) {
	var nonce string
	failures := 0
	for {
		t, err := s.r.Peek(1)
		if err != nil {
			return 0, err
		}
		if t[0] == EndRedirectionSession {
			_, _ = s.readFull(4)
			return 0, errEnded
		}
		hdr, err := s.readFull(9)
		if err != nil {
			return 0, err
		}
		if hdr[0] != AuthenticateSession {
			return 0, fmt.Errorf("%w: 0x%02x during login", ErrProtocol, hdr[0])
		}
		n := binary.LittleEndian.Uint32(hdr[5:])
		if n > 4096 {
			return 0, fmt.Errorf("%w: authentication data of %d bytes", ErrProtocol, n)
		}
		data, err := s.readFull(int(n))
		if err != nil {
			return 0, err
		}
		authType := hdr[4]
		switch authType {
		case AuthQuery:
			if err := s.authReply(AuthSuccess, AuthQuery, []byte{AuthPassword, AuthDigest}); err != nil {
				return 0, err
			}
			continue
		case AuthPassword:
			user, pass, ok := parsePassword(data)
			if ok && s.checkPassword(user, pass) {
				s.user = user
				return AuthPassword, nil
			}
			failures++
			if err := s.authReply(AuthFailure, AuthPassword, nil); err != nil {
				return 0, err
			}
		case AuthDigest:
			d, ok := parseDigest(data)
			if ok && nonce != "" && d.nonce == nonce && s.checkDigest(d) {
				s.user = d.user
				return AuthDigest, nil
			}
			if ok && d.nonce != "" {
				failures++ // a wrong response, not the initial request for a challenge
			}
			nonce, err = s.newNonce()
			if err != nil {
				return 0, err
			}
			if err := s.authReply(AuthFailure, AuthDigest, challenge(s.fw.Realm(), nonce)); err != nil {
				return 0, err
			}
		default:
			if err := s.authReply(AuthNotSupported, authType, nil); err != nil {
				return 0, err
			}
			continue
		}
		if failures >= s.cfg.MaxAuthFailures {
			return 0, fmt.Errorf("%w: %d failed logins", ErrRefused, failures)
		}
	}
}

func (s *session) authReply(status, authType byte, data []byte) error {
	b := []byte{AuthenticateSessionReply, status, 0, 0, authType}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return s.write(append(b, data...))
}

func (s *session) newNonce() (string, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(s.cfg.Rand, b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// challenge is the data of a digest failure: realm, nonce, qop, each with a
// one-byte length.
func challenge(realm, nonce string) []byte {
	var b []byte
	for _, f := range []string{realm, nonce, "auth"} {
		b = append(append(b, byte(len(f))), f...)
	}
	return b
}

// lpStrings splits data into n strings each preceded by a one-byte length.
func lpStrings(data []byte, n int) ([]string, bool) {
	out := make([]string, 0, n)
	for range n {
		if len(data) < 1 || len(data) < 1+int(data[0]) {
			return nil, false
		}
		l := int(data[0])
		out = append(out, string(data[1:1+l]))
		data = data[1+l:]
	}
	return out, len(data) == 0
}

func parsePassword(data []byte) (user, pass string, ok bool) {
	f, ok := lpStrings(data, 2)
	if !ok {
		return "", "", false
	}
	return f[0], f[1], true
}

type digestData struct {
	user, realm, nonce, uri, cnonce, nc, response, qop string
}

// parseDigest reads the eight strings of a digest AuthenticateSession. The
// console's first message has empty realm, nonce, cnonce, nc, response and
// qop (a request for a challenge).
func parseDigest(data []byte) (digestData, bool) {
	f, ok := lpStrings(data, 8)
	if !ok {
		return digestData{}, false
	}
	return digestData{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]}, true
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// checkDigest verifies response = MD5(HA1:nonce:nc:cnonce:qop:MD5("POST:"+uri))
// for a user allowed to redirect (the administrator accounts).
func (s *session) checkDigest(d digestData) bool {
	cred, ok := s.fw.LookupUser(d.user)
	if !ok || !cred.Admin || d.realm != s.fw.Realm() || d.qop != "auth" || d.uri != DigestURI || len(d.nc) != 8 {
		return false
	}
	want := md5hex(hex.EncodeToString(cred.HA1[:]) + ":" + d.nonce + ":" + d.nc + ":" + d.cnonce + ":" + d.qop + ":" + md5hex("POST:"+d.uri))
	return subtle.ConstantTimeCompare([]byte(want), []byte(d.response)) == 1
}

func (s *session) checkPassword(user, pass string) bool {
	cred, ok := s.fw.LookupUser(user)
	if !ok || !cred.Admin {
		return false
	}
	h := md5.Sum([]byte(user + ":" + s.fw.Realm() + ":" + pass))
	return subtle.ConstantTimeCompare(h[:], cred.HA1[:]) == 1
}

// DigestResponse computes the response a console sends (for tests and
// clients): MD5hex(MD5hex(user:realm:password):nonce:nc:cnonce:qop:MD5hex("POST:"+uri)).
func DigestResponse(user, realm, password, nonce, nc, cnonce, qop, uri string) string {
	return md5hex(md5hex(user+":"+realm+":"+password) + ":" + nonce + ":" + nc + ":" + cnonce + ":" + qop + ":" + md5hex("POST:"+uri))
}

// nextSeq returns the next device sequence number.
func (s *session) nextSeq() uint32 {
	s.seq++
	return s.seq
}
