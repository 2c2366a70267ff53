package rpcproto

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// The TLS-tunnel extension (rpc-protocol.md §8): for devices that enforce TLS
// on their local ports (AMT 19+) rpc-go relays raw bytes between the server
// and the device's 16993 as tls_data messages, and the server runs the TLS
// client itself. A Tunnel is that byte stream as a net.Conn; run tls.Client
// over it.

// Tunnel is one TLS-tunnel byte stream to the device's TLS port. Opening a new
// tunnel ends the previous one (rpc-go opens a new connection to AMT when a
// ClientHello arrives).
type Tunnel struct {
	s *Session

	mu       sync.Mutex
	cond     *sync.Cond
	wbuf     []byte // written, not yet sent
	manual   bool   // flushed by its TLS connection's writes, not by Read
	buf      []byte
	eof      bool // the device (or rpc-go's LMS side) closed the stream
	closed   bool // closed locally, or replaced by a newer tunnel
	deadline time.Time
	timer    *time.Timer
}

// OpenTunnel starts a new TLS-tunnel stream, replacing any previous one.
func (s *Session) OpenTunnel() *Tunnel {
	t := &Tunnel{s: s}
	t.cond = sync.NewCond(&t.mu)
	s.tmu.Lock()
	old := s.tunnel
	s.tunnel = t
	s.tmu.Unlock()
	if old != nil {
		old.Close()
	}
	return t
}

// deliver hands bytes the client relayed from the device to the current
// tunnel; eof reports a connection_reset.
func (s *Session) deliver(p []byte, eof bool) {
	s.tmu.Lock()
	t := s.tunnel
	s.tmu.Unlock()
	if t == nil {
		s.log.Info("rpc: tls_data with no tunnel open dropped", "eof", eof)
		return
	}
	t.mu.Lock()
	if eof {
		t.eof = true
	} else {
		t.buf = append(t.buf, p...)
	}
	t.cond.Broadcast()
	t.mu.Unlock()
}

func (s *Session) endTunnels() {
	s.tmu.Lock()
	t := s.tunnel
	s.tmu.Unlock()
	if t != nil {
		t.mu.Lock()
		t.eof = true
		t.cond.Broadcast()
		t.mu.Unlock()
	}
}

// Read returns bytes the device sent; io.EOF after a connection_reset.
//
// Writes are queued and sent as one tls_data message: rpc-go relays each
// message as one write to AMT and then waits for an answer, so a request
// split over several messages (one per TLS record, or the handshake's
// Finished followed by the first request) would cost rpc-go's first-byte
// timeout per extra message. Until the TLS handshake is done, Read sends the
// queue (the handshake writes a flight, then reads); afterwards the TLS
// connection's Write does (see tunnelTLSConn), since HTTP reads and writes
// from different goroutines.
func (t *Tunnel) Read(p []byte) (int, error) {
	t.mu.Lock()
	manual := t.manual
	t.mu.Unlock()
	if !manual {
		if err := t.flush(); err != nil {
			return 0, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.buf) == 0 {
		switch {
		case t.closed:
			return 0, net.ErrClosed
		case t.eof:
			return 0, io.EOF
		case !t.deadline.IsZero() && !time.Now().Before(t.deadline):
			return 0, os.ErrDeadlineExceeded
		}
		t.cond.Wait()
	}
	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	if len(t.buf) == 0 {
		t.buf = nil
	}
	return n, nil
}

// Write queues p for the device (see Read for when it is sent).
func (t *Tunnel) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return 0, net.ErrClosed
	case t.eof:
		return 0, io.ErrClosedPipe
	}
	t.wbuf = append(t.wbuf, p...)
	return len(p), nil
}

// flush sends the queued bytes as one tls_data message.
func (t *Tunnel) flush() error {
	t.mu.Lock()
	p := t.wbuf
	t.wbuf = nil
	closed := t.closed
	t.mu.Unlock()
	if len(p) == 0 || closed {
		return nil
	}
	if t.s.clientGone() {
		return ErrClientGone
	}
	return t.s.write(t.s.srv.newMessage(MethodTLSData, "ok", "", b64(p)))
}

// Close ends the stream locally (rpc-go keeps its connection to AMT until
// the next ClientHello or the end of the session).
func (t *Tunnel) Close() error {
	t.mu.Lock()
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
	}
	t.cond.Broadcast()
	t.mu.Unlock()
	return nil
}

// LocalAddr and RemoteAddr describe the tunnel.
func (t *Tunnel) LocalAddr() net.Addr  { return tunnelAddr("amtd") }
func (t *Tunnel) RemoteAddr() net.Addr { return tunnelAddr(t.s.Request.Payload.UUID + ":16993") }

// SetDeadline sets the read deadline (writes do not block on the device).
func (t *Tunnel) SetDeadline(d time.Time) error { return t.SetReadDeadline(d) }

// SetWriteDeadline is accepted and ignored: writes go to the WebSocket, whose
// own write timeout applies.
func (t *Tunnel) SetWriteDeadline(time.Time) error { return nil }

// SetReadDeadline bounds pending and future Reads.
func (t *Tunnel) SetReadDeadline(d time.Time) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deadline = d
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	if !d.IsZero() {
		t.timer = time.AfterFunc(time.Until(d), func() {
			t.mu.Lock()
			t.cond.Broadcast()
			t.mu.Unlock()
		})
	}
	t.cond.Broadcast()
	return nil
}

type tunnelAddr string

func (a tunnelAddr) Network() string { return "rpc-tls-tunnel" }
func (a tunnelAddr) String() string  { return string(a) }

// PortSwitch asks the client to reconnect its relay to the device's port
// (e.g. 16993 after TLS was configured on a device reached over 16992) after
// delay, and waits for the acknowledgement (rpc-protocol.md §8.2). From then
// on the device is reached through tunnels.
func (s *Session) PortSwitch(ctx context.Context, port int, delay time.Duration) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	select {
	case <-s.ack:
	default:
	}
	payload, _ := json.Marshal(struct {
		Port  string `json:"port"`
		Delay int    `json:"delay"`
	}{strconv.Itoa(port), int(delay / time.Second)})
	if err := s.write(s.srv.newMessage(MethodPortSwitch, "ok", "", strPtr(string(payload)))); err != nil {
		return err
	}
	t := time.NewTimer(delay + 60*time.Second)
	defer t.Stop()
	select {
	case <-s.ack:
		return nil
	case <-s.readDone:
		return ErrClientGone
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("Failed to complete port switch to TLS")
	}
}

// errTunnelPayload reports an undecodable tls_data payload.
func errTunnelPayload(err error) error { return fmt.Errorf("undecodable tls_data payload: %w", err) }

// TLSTransport reaches the device's TLS port through tunnels: each new
// connection opens a tunnel and runs a TLS client handshake over it with cfg;
// a connection the device keeps open is reused for the next request. Use it
// as the amt.Client transport with Params.UseTLS for devices that enforce TLS.
func (s *Session) TLSTransport(cfg *tls.Config) http.RoundTripper {
	return bufferedTransport{&http.Transport{
		DialTLSContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			t := s.OpenTunnel()
			conf := cfg.Clone()
			// Full-size records: fewer, larger writes through the relay.
			conf.DynamicRecordSizingDisabled = true
			c := tls.Client(t, conf)
			if err := c.HandshakeContext(ctx); err != nil {
				t.Close()
				return nil, fmt.Errorf("TLS through the rpc client: %w", err)
			}
			t.mu.Lock()
			t.manual = true
			t.mu.Unlock()
			return &tunnelTLSConn{Conn: c, t: t}, nil
		},
		DisableCompression:  true,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		WriteBufferSize:     64 << 10,
	}}
}

// bufferedTransport reads every answer whole and closes it before returning
// it: with one connection per device, an answer body its caller never closes
// (go-wsman-messages leaves the first 401's open) would block the next
// request forever.
type bufferedTransport struct{ rt http.RoundTripper }

// CloseIdleConnections drops the kept TLS connection (the next request
// handshakes again through a new tunnel).
func (b bufferedTransport) CloseIdleConnections() {
	if c, ok := b.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (b bufferedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// tunnelTLSConn closes its tunnel before the TLS connection, so that no
// close_notify is relayed: rpc-go would write it to a socket AMT already
// closed and answer with a connection_reset that could arrive after the next
// tunnel opened and be taken for that tunnel's.
type tunnelTLSConn struct {
	*tls.Conn
	t *Tunnel
}

// Write sends p as one tls_data message (with anything the handshake left
// queued, e.g. TLS 1.3's client Finished).
func (c *tunnelTLSConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err == nil {
		err = c.t.flush()
	}
	return n, err
}

func (c *tunnelTLSConn) Close() error {
	c.t.Close()
	c.Conn.Close()
	return nil
}
