package redir

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
)

// Client is the console side of the redirection protocol, for tests and
// tools that talk to a (simulated) device: session start, digest login,
// SOL. It is not safe for concurrent use.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	seq  uint32
	pend []byte // SOL output received but not yet returned
}

// NewClient wraps a connection to the device's redirection port (or a
// CIRA channel to it).
func NewClient(conn net.Conn) *Client { return &Client{conn: conn, r: bufio.NewReader(conn)} }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection (for KVM/RFB after StartKVM).
func (c *Client) Conn() net.Conn { return c.conn }

// Reader reads from the connection through the client's buffer.
func (c *Client) Reader() io.Reader { return c.r }

func (c *Client) read(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(c.r, b)
	return b, err
}

// Start sends StartRedirectionSession for a session type (TagSOL, TagKVM,
// TagIDER) and returns the reply status (StatusSuccess, …).
func (c *Client) Start(tag [4]byte) (byte, error) {
	if _, err := c.conn.Write(append([]byte{StartRedirectionSession, 0, 0, 0}, tag[:]...)); err != nil {
		return 0, err
	}
	h, err := c.read(13)
	if err != nil {
		return 0, err
	}
	if h[0] != StartRedirectionSessionReply {
		return 0, fmt.Errorf("%w: 0x%02x instead of StartRedirectionSessionReply", ErrProtocol, h[0])
	}
	if h[1] == StatusSuccess && h[12] > 0 {
		if _, err := c.read(int(h[12])); err != nil { // OEM data
			return 0, err
		}
	}
	return h[1], nil
}

func (c *Client) auth(authType byte, data []byte) (status byte, reply []byte, err error) {
	msg := binary.LittleEndian.AppendUint32([]byte{AuthenticateSession, 0, 0, 0, authType}, uint32(len(data)))
	if _, err := c.conn.Write(append(msg, data...)); err != nil {
		return 0, nil, err
	}
	h, err := c.read(9)
	if err != nil {
		return 0, nil, err
	}
	if h[0] != AuthenticateSessionReply {
		return 0, nil, fmt.Errorf("%w: 0x%02x instead of AuthenticateSessionReply", ErrProtocol, h[0])
	}
	n := binary.LittleEndian.Uint32(h[5:])
	if n > 4096 {
		return 0, nil, fmt.Errorf("%w: reply of %d bytes", ErrProtocol, n)
	}
	reply, err = c.read(int(n))
	return h[1], reply, err
}

// DigestLogin logs in the way MPS's relay does: an empty digest to obtain
// the challenge, then the response. It returns the final status
// (AuthSuccess, AuthFailure).
func (c *Client) DigestLogin(user, password string) (byte, error) {
	st, ch, err := c.auth(AuthDigest, lpBytes(user, "", "", DigestURI, "", "", "", ""))
	if err != nil {
		return 0, err
	}
	if st != AuthFailure {
		return st, nil
	}
	f, ok := lpStrings(ch, 3)
	if !ok {
		return 0, fmt.Errorf("%w: malformed digest challenge", ErrProtocol)
	}
	cn := make([]byte, 5)
	if _, err := rand.Read(cn); err != nil {
		return 0, err
	}
	cnonce := hex.EncodeToString(cn)
	resp := DigestResponse(user, f[0], password, f[1], "00000001", cnonce, f[2], DigestURI)
	st, _, err = c.auth(AuthDigest, lpBytes(user, f[0], f[1], DigestURI, cnonce, "00000001", resp, f[2]))
	return st, err
}

func lpBytes(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		b = append(append(b, byte(len(f))), f...)
	}
	return b
}

// StartSOL starts the serial-over-LAN redirection after the login.
func (c *Client) StartSOL() error {
	c.seq++
	msg := binary.LittleEndian.AppendUint32([]byte{StartSOLRedirection, 0, 0, 0}, c.seq)
	for _, v := range []uint16{10000, 100, 0, 10000, 100, 0} {
		msg = binary.LittleEndian.AppendUint16(msg, v)
	}
	if _, err := c.conn.Write(append(msg, 0, 0, 0, 0)); err != nil {
		return err
	}
	r, err := c.read(startSOLReplyLen)
	if err != nil {
		return err
	}
	if r[0] != StartSOLRedirectionReply || r[1] != StatusSuccess {
		return fmt.Errorf("%w: SOL start answered % x", ErrRefused, r[:2])
	}
	return nil
}

// SendSOL sends keystrokes.
func (c *Client) SendSOL(s string) error {
	c.seq++
	msg := binary.LittleEndian.AppendUint32([]byte{SOLDataToHost, 0, 0, 0}, c.seq)
	msg = binary.LittleEndian.AppendUint16(msg, uint16(len(s)))
	_, err := c.conn.Write(append(msg, s...))
	return err
}

// ReadSOLUntil returns the console output up to and including want.
func (c *Client) ReadSOLUntil(want string) (string, error) {
	for {
		if i := strings.Index(string(c.pend), want); i >= 0 {
			out := string(c.pend[:i+len(want)])
			c.pend = c.pend[i+len(want):]
			return out, nil
		}
		h, err := c.read(solDataHeaderLen)
		if err != nil {
			return string(c.pend), err
		}
		switch h[0] {
		case SOLDataFromHost:
			d, err := c.read(int(binary.LittleEndian.Uint16(h[8:])))
			if err != nil {
				return string(c.pend), err
			}
			c.pend = append(c.pend, d...)
		default:
			return string(c.pend), fmt.Errorf("%w: SOL message 0x%02x", ErrProtocol, h[0])
		}
	}
}

// End ends the session (EndRedirectionSession).
func (c *Client) End() error {
	_, err := c.conn.Write([]byte{EndRedirectionSession, 0, 0, 0})
	return err
}
