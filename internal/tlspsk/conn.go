package tlspsk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Record content types.
const (
	recordChangeCipherSpec uint8 = 20
	recordAlert            uint8 = 21
	recordHandshake        uint8 = 22
	recordApplicationData  uint8 = 23

	recordHeaderLen  = 5
	maxPlaintext     = 1 << 14
	maxCiphertext    = maxPlaintext + 2048
	maxEmptyInARow   = 32 // empty records or ignored warnings before giving up
	closeNotifyGrace = time.Second
)

// halfConn is the state of one direction of the record layer.
type halfConn struct {
	sync.Mutex
	err     error      // sticky error
	prot    protection // nil while in the clear
	seq     uint64
	pending protection // installed by ChangeCipherSpec
}

// Conn is a TLS-PSK connection. It implements net.Conn; Read and Write may be
// called concurrently with each other.
type Conn struct {
	conn     net.Conn
	cfg      *Config
	isClient bool

	handshakeMu   sync.Mutex
	handshakeDone atomic.Bool
	handshakeErr  error
	state         ConnectionState // written during the handshake, then read-only

	vers uint16 // negotiated version; 0 before the hellos

	in  halfConn
	out halfConn

	// Input side, under in's lock.
	raw        []byte // bytes read from conn, not yet consumed
	hsBuf      []byte // handshake bytes not yet parsed
	appBuf     []byte // application data not yet returned
	emptyInRow int
	ccsSeen    bool

	// Output side, under out's lock.
	outBuf          []byte
	closeNotifySent bool

	transcript []byte // handshake messages so far (handshake only)
	closed     atomic.Bool
}

// ConnectionState describes a connection after its handshake.
type ConnectionState struct {
	Version           uint16
	CipherSuite       uint16
	Identity          string // the PSK identity the client used
	IdentityHint      string // the server's hint, if it sent one
	HandshakeComplete bool
}

// Client returns a client-side connection over conn. The handshake runs on
// the first Read or Write, or explicitly with Handshake/HandshakeContext.
func Client(conn net.Conn, cfg *Config) *Conn { return &Conn{conn: conn, cfg: cfg, isClient: true} }

// Server returns a server-side connection over conn.
func Server(conn net.Conn, cfg *Config) *Conn { return &Conn{conn: conn, cfg: cfg} }

// ConnectionState returns the negotiated parameters.
func (c *Conn) ConnectionState() ConnectionState {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	return c.state
}

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.conn }

func (c *Conn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }

// Handshake runs the handshake if it has not run yet.
func (c *Conn) Handshake() error { return c.HandshakeContext(context.Background()) }

// HandshakeContext runs the handshake if it has not run yet. If ctx ends
// first, the underlying connection is closed and the error wraps both
// ErrHandshakeTimeout and ctx.Err().
func (c *Conn) HandshakeContext(ctx context.Context) error {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil {
		return c.handshakeErr
	}
	if c.handshakeDone.Load() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrHandshakeTimeout, err)
	}
	if c.cfg == nil {
		c.handshakeErr = fmt.Errorf("%w: nil Config", ErrConfig)
		return c.handshakeErr
	}
	if err := c.cfg.check(c.isClient); err != nil {
		c.handshakeErr = err
		return err
	}

	var interrupted chan error
	var stop chan struct{}
	if ctx.Done() != nil {
		interrupted = make(chan error, 1)
		stop = make(chan struct{})
		go func() {
			select {
			case <-ctx.Done():
				c.conn.Close()
				interrupted <- ctx.Err()
			case <-stop:
				interrupted <- nil
			}
		}()
	}

	c.in.Lock()
	c.out.Lock()
	var err error
	if c.isClient {
		err = c.clientHandshake()
	} else {
		err = c.serverHandshake()
	}
	c.transcript = nil
	c.out.Unlock()
	c.in.Unlock()

	if stop != nil {
		close(stop)
		if cerr := <-interrupted; cerr != nil {
			err = fmt.Errorf("%w: %w", ErrHandshakeTimeout, cerr)
		}
	}
	if err != nil {
		c.handshakeErr = err
		return err
	}
	c.state.HandshakeComplete = true
	c.handshakeDone.Store(true)
	return nil
}

// ---- output ----

func (c *Conn) recordVersion() uint16 {
	if c.vers == 0 {
		return VersionTLS10
	}
	return c.vers
}

// writeRecordLocked protects data as records of type typ into outBuf.
func (c *Conn) writeRecordLocked(typ uint8, data []byte) error {
	if c.out.err != nil {
		return c.out.err
	}
	for first := true; first || len(data) > 0; first = false {
		frag := data[:min(len(data), maxPlaintext)]
		data = data[len(frag):]
		hdr := []byte{typ, byte(c.recordVersion() >> 8), byte(c.recordVersion()), 0, 0}
		payload := frag
		if c.out.prot != nil {
			var err error
			payload, err = c.out.prot.seal(c.out.seq, hdr, frag, c.cfg.rand())
			if err != nil {
				c.out.err = err
				return err
			}
			c.out.seq++
		}
		binary.BigEndian.PutUint16(hdr[3:], uint16(len(payload)))
		c.outBuf = append(append(c.outBuf, hdr...), payload...)
	}
	return nil
}

func (c *Conn) flushLocked() error {
	if len(c.outBuf) == 0 {
		return nil
	}
	_, err := c.conn.Write(c.outBuf)
	c.outBuf = c.outBuf[:0]
	if err != nil {
		c.out.err = err
	}
	return err
}

// sendAlertLocked sends an alert now (out's lock held).
func (c *Conn) sendAlertLocked(level uint8, a Alert) error {
	if err := c.writeRecordLocked(recordAlert, []byte{level, byte(a)}); err != nil {
		return err
	}
	return c.flushLocked()
}

// failLocked sends fatal alert a because of err, poisons both directions and
// returns the error to report (out's lock held).
func (c *Conn) failLocked(a Alert, err error) error {
	e := &AlertError{Alert: a, Err: err}
	if c.out.err == nil {
		c.sendAlertLocked(alertLevelFatal, a)
		c.out.err = e
	}
	return e
}

// Write sends b as application data.
func (c *Conn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.out.Lock()
	defer c.out.Unlock()
	if c.out.err != nil {
		return 0, c.out.err
	}
	if c.closeNotifySent {
		return 0, errors.New("tlspsk: write after CloseWrite")
	}
	if len(b) == 0 {
		return 0, nil
	}
	if err := c.writeRecordLocked(recordApplicationData, b); err != nil {
		return 0, err
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return len(b), nil
}

// CloseWrite sends close_notify and shuts down the write side of the
// underlying connection when it supports that.
func (c *Conn) CloseWrite() error {
	if !c.handshakeDone.Load() {
		return errors.New("tlspsk: CloseWrite before handshake")
	}
	c.out.Lock()
	err := c.closeNotifyLocked()
	c.out.Unlock()
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		if e := cw.CloseWrite(); err == nil {
			err = e
		}
	}
	return err
}

func (c *Conn) closeNotifyLocked() error {
	if c.closeNotifySent || c.out.err != nil {
		return c.out.err
	}
	c.closeNotifySent = true
	c.conn.SetWriteDeadline(time.Now().Add(closeNotifyGrace))
	err := c.sendAlertLocked(alertLevelWarning, AlertCloseNotify)
	c.conn.SetWriteDeadline(time.Time{})
	return err
}

// Close sends close_notify (when the handshake is complete and no Write is
// in progress) and closes the underlying connection.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return net.ErrClosed
	}
	if c.handshakeDone.Load() && c.out.TryLock() {
		c.closeNotifyLocked()
		c.out.Unlock()
	}
	return c.conn.Close()
}

// ---- input ----

// fill reads until raw holds n bytes. EOF at a record boundary is io.EOF,
// inside a record io.ErrUnexpectedEOF.
func (c *Conn) fill(n int) error {
	for len(c.raw) < n {
		if cap(c.raw)-len(c.raw) < 4096 {
			c.raw = append(make([]byte, 0, max(2*cap(c.raw), len(c.raw)+4096)), c.raw...)
		}
		m, err := c.conn.Read(c.raw[len(c.raw):cap(c.raw)])
		c.raw = c.raw[:len(c.raw)+m]
		if len(c.raw) >= n {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(c.raw) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// readError records err as sticky unless it is a timeout (the record layer
// keeps partial input, so a read may be retried after a deadline).
func (c *Conn) readError(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	c.in.err = err
	return err
}

// fatal reports a protocol error found while reading: sends the alert and
// poisons the input. The caller holds in's lock; out's lock is taken unless
// the caller (the handshake) already holds it.
func (c *Conn) fatal(a Alert, err error, outHeld bool) error {
	if !outHeld {
		c.out.Lock()
		defer c.out.Unlock()
	}
	e := c.failLocked(a, err)
	c.in.err = e
	return e
}

// readRecord reads and processes one record (in's lock held). Handshake bytes
// go to hsBuf, application data to appBuf; alerts and ChangeCipherSpec are
// handled here. inHandshake says that out's lock is held too.
func (c *Conn) readRecord(inHandshake bool) error {
	if c.in.err != nil {
		return c.in.err
	}
	if err := c.fill(recordHeaderLen); err != nil {
		return c.readError(err)
	}
	hdr := c.raw[:recordHeaderLen]
	typ, vers, n := hdr[0], binary.BigEndian.Uint16(hdr[1:]), int(binary.BigEndian.Uint16(hdr[3:]))
	switch {
	case typ < recordChangeCipherSpec || typ > recordApplicationData:
		return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: record type %d (not TLS?)", ErrUnexpected, typ), inHandshake)
	case vers>>8 != 3 || (c.vers != 0 && vers != c.vers):
		return c.fatal(AlertProtocolVersion, fmt.Errorf("%w: record version %#04x", ErrVersion, vers), inHandshake)
	case n > maxCiphertext || (c.in.prot == nil && n > maxPlaintext):
		return c.fatal(AlertRecordOverflow, fmt.Errorf("%w: %d bytes", ErrRecordOverflow, n), inHandshake)
	}
	if err := c.fill(recordHeaderLen + n); err != nil {
		return c.readError(err)
	}
	hdr = append([]byte(nil), c.raw[:recordHeaderLen]...)
	payload := c.raw[recordHeaderLen : recordHeaderLen+n]
	c.raw = c.raw[recordHeaderLen+n:]
	if c.in.prot != nil {
		pt, err := c.in.prot.open(c.in.seq, hdr, payload)
		if err != nil {
			return c.fatal(AlertBadRecordMAC, ErrBadRecordMAC, inHandshake)
		}
		c.in.seq++
		if len(pt) > maxPlaintext {
			return c.fatal(AlertRecordOverflow, fmt.Errorf("%w: %d plaintext bytes", ErrRecordOverflow, len(pt)), inHandshake)
		}
		payload = pt
	} else {
		payload = append([]byte(nil), payload...)
	}

	if len(payload) == 0 {
		if typ != recordApplicationData || !c.handshakeDone.Load() {
			return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: empty record of type %d", ErrUnexpected, typ), inHandshake)
		}
		return c.countEmpty(inHandshake)
	}

	switch typ {
	case recordAlert:
		if len(payload) != 2 {
			return c.fatal(AlertDecodeError, fmt.Errorf("%w: alert of %d bytes", ErrMalformed, len(payload)), inHandshake)
		}
		a := Alert(payload[1])
		if a == AlertCloseNotify {
			return c.readError(io.EOF)
		}
		if payload[0] == alertLevelWarning {
			return c.countEmpty(inHandshake)
		}
		e := &AlertError{Alert: a, Remote: true}
		c.in.err = e
		return e
	case recordChangeCipherSpec:
		if !inHandshake || c.ccsSeen || c.in.pending == nil || len(c.hsBuf) != 0 {
			return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: ChangeCipherSpec", ErrUnexpected), inHandshake)
		}
		if len(payload) != 1 || payload[0] != 1 {
			return c.fatal(AlertDecodeError, fmt.Errorf("%w: ChangeCipherSpec", ErrMalformed), inHandshake)
		}
		c.in.prot, c.in.pending, c.in.seq = c.in.pending, nil, 0
		c.ccsSeen = true
	case recordHandshake:
		c.hsBuf = append(c.hsBuf, payload...)
	case recordApplicationData:
		if !c.handshakeDone.Load() {
			return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: application data during handshake", ErrUnexpected), inHandshake)
		}
		c.appBuf = payload
	}
	c.emptyInRow = 0
	return nil
}

func (c *Conn) countEmpty(inHandshake bool) error {
	c.emptyInRow++
	if c.emptyInRow > maxEmptyInARow {
		return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: too many empty records or warnings", ErrUnexpected), inHandshake)
	}
	return nil
}

// nextHandshakeMessage returns the next complete handshake message in hsBuf
// (header and body), or nil when more input is needed.
func (c *Conn) nextHandshakeMessage(inHandshake bool) ([]byte, error) {
	if len(c.hsBuf) < 4 {
		return nil, nil
	}
	n := int(c.hsBuf[1])<<16 | int(c.hsBuf[2])<<8 | int(c.hsBuf[3])
	if n > maxHandshakeSize {
		return nil, c.fatal(AlertDecodeError, fmt.Errorf("%w: handshake message of %d bytes", ErrMalformed, n), inHandshake)
	}
	if len(c.hsBuf) < 4+n {
		return nil, nil
	}
	msg := c.hsBuf[: 4+n : 4+n]
	c.hsBuf = c.hsBuf[4+n:]
	if len(c.hsBuf) == 0 {
		c.hsBuf = nil
	}
	return msg, nil
}

// Read reads application data.
func (c *Conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.in.Lock()
	defer c.in.Unlock()
	for len(c.appBuf) == 0 {
		if err := c.readRecord(false); err != nil {
			return 0, err
		}
		for {
			msg, err := c.nextHandshakeMessage(false)
			if err != nil {
				return 0, err
			}
			if msg == nil {
				break
			}
			if err := c.postHandshakeMessage(msg); err != nil {
				return 0, err
			}
		}
	}
	n := copy(b, c.appBuf)
	c.appBuf = c.appBuf[n:]
	return n, nil
}

// postHandshakeMessage refuses renegotiation: a HelloRequest (client) or a
// ClientHello (server) gets a no_renegotiation warning; anything else is
// fatal.
func (c *Conn) postHandshakeMessage(msg []byte) error {
	typ := msg[0]
	if (c.isClient && typ == typeHelloRequest && len(msg) == 4) || (!c.isClient && typ == typeClientHello) {
		c.out.Lock()
		defer c.out.Unlock()
		if c.out.err != nil {
			return c.out.err
		}
		return c.sendAlertLocked(alertLevelWarning, AlertNoRenegotiation)
	}
	return c.fatal(AlertUnexpectedMessage, fmt.Errorf("%w: handshake message %d after the handshake", ErrUnexpected, typ), false)
}
