package cira

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
)

// maxSegment is the largest CHANNEL_DATA payload sent: 16 KiB minus the
// 9-byte header, so that every data message fits one TLS record
// (spec/mps.md §4.2 asks for at most min(credit, 16 KiB)).
const maxSegment = 16<<10 - apf.ChannelDataHeaderLen

// Errors of channels.
var (
	// ErrChannelClosed is returned by Write after the device closed the
	// channel.
	ErrChannelClosed = errors.New("cira: channel closed by device")
	// ErrConnectionLost is returned by channel operations after the CIRA
	// connection carrying the channel ended.
	ErrConnectionLost = errors.New("cira: CIRA connection lost")
)

// OpenError is returned when the device refuses a channel: with
// CHANNEL_OPEN_FAILURE (Reason 1–4), or by closing it before confirming
// (Reason 0).
type OpenError struct {
	Port   uint16
	Reason uint32
}

func (e *OpenError) Error() string {
	if e.Reason == 0 {
		return fmt.Sprintf("cira: device closed the channel to port %d before confirming it", e.Port)
	}
	return fmt.Sprintf("cira: device refused a channel to port %d (reason %d)", e.Port, e.Reason)
}

type chanState uint8

const (
	chOpening chanState = iota
	chOpen
	chClosed // refused, or both closes seen, or the connection ended
)

// Channel is one APF channel to a port on the device. It is a net.Conn:
// reads and writes move bytes through the CIRA tunnel with APF flow control
// (spec/mps.md §4.2), and deadlines are supported.
//
// Receiving: the device may send up to the window advertised at open; the
// credit is returned with WINDOW_ADJUST only for bytes Read has handed to
// the caller, in batches of at least half the window. A device that sends
// beyond its credit loses its connection.
//
// Sending: Write never sends more than the device's credit, in CHANNEL_DATA
// messages of at most min(credit, 16 KiB). Write blocks until every byte has
// been sent: the caller's slice is the only send buffer, so a producer is
// held back exactly as fast as the device grants credit, and a channel
// costs no memory for queued output.
//
// Close sends CHANNEL_CLOSE (after any segment in flight); the channel is
// forgotten once the device has answered with its own.
type Channel struct {
	c     *conn
	local uint32
	port  uint16

	rmu sync.Mutex // serialises Read calls
	wmu sync.Mutex // serialises Write calls

	mu         sync.Mutex
	state      chanState
	remote     uint32
	openDone   chan struct{} // closed when the open is answered or abandoned
	openErr    error
	abandoned  bool // the opener gave up while the open was pending
	sentClose  bool
	gotClose   bool
	sending    bool // a segment is being written outside mu
	closeAfter bool // send CHANNEL_CLOSE when the segment in flight is written

	// receive side
	buf     []byte
	off     int
	rwin    uint32 // credit the device has left
	unacked uint32 // bytes handed to Read callers and not yet returned as credit
	rerr    error  // returned by Read once buf is drained
	rsig    chan struct{}

	// send side
	credit uint32
	werr   error
	wsig   chan struct{}

	rdl, wdl deadline
}

func newChannel(c *conn, id uint32, port uint16, window uint32) *Channel {
	return &Channel{
		c:        c,
		local:    id,
		port:     port,
		openDone: make(chan struct{}),
		rwin:     window,
		rsig:     make(chan struct{}, 1),
		wsig:     make(chan struct{}, 1),
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Read reads data the device sent. After the device closes the channel,
// Read returns the remaining data and then io.EOF.
func (ch *Channel) Read(p []byte) (int, error) {
	ch.rmu.Lock()
	defer ch.rmu.Unlock()
	for {
		// As with a socket, a passed deadline fails the call even when
		// data is waiting.
		if ch.rdl.exceeded() {
			return 0, os.ErrDeadlineExceeded
		}
		ch.mu.Lock()
		if ch.off < len(ch.buf) {
			n := copy(p, ch.buf[ch.off:])
			ch.off += n
			if ch.off == len(ch.buf) {
				ch.buf, ch.off = ch.buf[:0], 0
			}
			adj := ch.consumedLocked(n)
			remote := ch.remote
			ch.mu.Unlock()
			if adj > 0 {
				// Best effort: if the write fails the connection is ending
				// and every channel learns it.
				_ = ch.c.writeMsg(&apf.ChannelWindowAdjust{RecipientChannel: remote, BytesToAdd: adj})
			}
			return n, nil
		}
		if ch.rerr != nil {
			err := ch.rerr
			ch.mu.Unlock()
			return 0, err
		}
		ch.mu.Unlock()
		if len(p) == 0 {
			return 0, nil
		}
		select {
		case <-ch.rsig:
		case <-ch.rdl.wait():
		}
	}
}

// consumedLocked accounts for n bytes handed to a reader and returns the
// credit to give back now (0 while below half the window).
func (ch *Channel) consumedLocked(n int) uint32 {
	if ch.state != chOpen || ch.sentClose || ch.gotClose {
		return 0
	}
	ch.unacked += uint32(n)
	if ch.unacked < ch.c.srv.window/2 {
		return 0
	}
	adj := ch.unacked
	ch.unacked = 0
	ch.rwin += adj // before sending: the device may use it at once
	return adj
}

// Write sends p to the device, blocking until all of it is within credit
// and written to the connection.
func (ch *Channel) Write(p []byte) (int, error) {
	ch.wmu.Lock()
	defer ch.wmu.Unlock()
	written := 0
	for len(p) > 0 {
		if ch.wdl.exceeded() {
			return written, os.ErrDeadlineExceeded
		}
		ch.mu.Lock()
		for ch.credit == 0 && ch.werr == nil {
			ch.mu.Unlock()
			if ch.wdl.exceeded() {
				return written, os.ErrDeadlineExceeded
			}
			select {
			case <-ch.wsig:
			case <-ch.wdl.wait():
			}
			ch.mu.Lock()
		}
		if ch.werr != nil {
			err := ch.werr
			ch.mu.Unlock()
			return written, err
		}
		n := min(len(p), int(ch.credit), maxSegment)
		ch.credit -= uint32(n)
		ch.sending = true
		remote := ch.remote
		ch.mu.Unlock()

		err := ch.c.writeData(remote, p[:n])

		ch.mu.Lock()
		ch.sending = false
		sendClose := ch.closeAfter
		ch.closeAfter = false
		ch.mu.Unlock()
		if sendClose {
			_ = ch.c.writeMsg(&apf.ChannelClose{RecipientChannel: remote})
		}
		if err != nil {
			return written, err
		}
		written += n
		p = p[n:]
	}
	return written, nil
}

// Close closes the channel: pending and future Reads and Writes fail, and
// CHANNEL_CLOSE is sent to the device.
func (ch *Channel) Close() error {
	ch.mu.Lock()
	if ch.werr == net.ErrClosed && ch.rerr == net.ErrClosed {
		ch.mu.Unlock()
		return nil
	}
	ch.rerr, ch.werr = net.ErrClosed, net.ErrClosed
	ch.buf, ch.off = nil, 0
	signal(ch.rsig)
	signal(ch.wsig)
	var send bool
	switch ch.state {
	case chOpening:
		ch.abandoned = true
	case chOpen:
		send = ch.queueCloseLocked()
	}
	remote := ch.remote
	ch.mu.Unlock()
	ch.rdl.stop()
	ch.wdl.stop()
	if send {
		return ch.c.writeMsg(&apf.ChannelClose{RecipientChannel: remote})
	}
	return nil
}

// queueCloseLocked decides that CHANNEL_CLOSE must be sent and reports
// whether the caller sends it now; with a segment in flight the writer
// sends it afterwards, so no data follows the close on the wire.
func (ch *Channel) queueCloseLocked() bool {
	if ch.sentClose {
		return false
	}
	ch.sentClose = true
	if ch.sending {
		ch.closeAfter = true
		return false
	}
	return true
}

// LocalAddr returns the server's address of the CIRA connection.
func (ch *Channel) LocalAddr() net.Addr { return ch.c.raw.LocalAddr() }

// RemoteAddr returns the device and port the channel leads to.
func (ch *Channel) RemoteAddr() net.Addr {
	return &Addr{UUID: ch.c.uuid.String(), Port: ch.port}
}

// SetDeadline sets the read and write deadlines.
func (ch *Channel) SetDeadline(t time.Time) error {
	ch.rdl.set(t)
	ch.wdl.set(t)
	return nil
}

// SetReadDeadline sets the deadline for Read calls.
func (ch *Channel) SetReadDeadline(t time.Time) error { ch.rdl.set(t); return nil }

// SetWriteDeadline sets the deadline for Write calls waiting for credit.
// A write already handed to the connection is bounded by the server's
// WriteTimeout instead.
func (ch *Channel) SetWriteDeadline(t time.Time) error { ch.wdl.set(t); return nil }

// Port returns the device port the channel was opened to.
func (ch *Channel) Port() uint16 { return ch.port }

// Addr is the address of a channel's far end: a port on a device.
type Addr struct {
	UUID string
	Port uint16
}

// Network returns "cira".
func (a *Addr) Network() string { return "cira" }

func (a *Addr) String() string { return net.JoinHostPort(a.UUID, strconv.Itoa(int(a.Port))) }

// ---- events from the connection's reader goroutine ----

// confirmed handles CHANNEL_OPEN_CONFIRMATION.
func (ch *Channel) confirmed(m *apf.ChannelOpenConfirmation) error {
	ch.mu.Lock()
	if ch.state != chOpening {
		ch.mu.Unlock()
		return protocolErrorf("CHANNEL_OPEN_CONFIRMATION for channel %d, which is not opening", ch.local)
	}
	ch.state = chOpen
	ch.remote = m.SenderChannel
	ch.credit = m.InitialWindow
	var send bool
	if ch.abandoned {
		send = ch.queueCloseLocked()
	} else {
		close(ch.openDone)
	}
	ch.mu.Unlock()
	if send {
		return ch.c.writeMsg(&apf.ChannelClose{RecipientChannel: m.SenderChannel})
	}
	return nil
}

// refused handles CHANNEL_OPEN_FAILURE, and CHANNEL_CLOSE while opening
// (which is not answered, spec/mps.md §4.3). It reports whether the channel
// was opening.
func (ch *Channel) refused(reason uint32) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state != chOpening {
		return false
	}
	ch.state = chClosed
	ch.openErr = &OpenError{Port: ch.port, Reason: reason}
	ch.rerr, ch.werr = ch.openErr, ch.openErr
	if !ch.abandoned {
		close(ch.openDone)
	}
	return true
}

// data handles CHANNEL_DATA; the caller has checked the credit.
func (ch *Channel) data(p []byte) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state != chOpen || ch.gotClose {
		return protocolErrorf("CHANNEL_DATA on channel %d, which is not open", ch.local)
	}
	if uint64(len(p)) > uint64(ch.rwin) {
		return protocolErrorf("CHANNEL_DATA of %d bytes on channel %d beyond its credit of %d", len(p), ch.local, ch.rwin)
	}
	ch.rwin -= uint32(len(p))
	if ch.rerr != nil {
		return nil // closed locally; the device has not seen our close yet
	}
	if ch.off > 0 && len(ch.buf)+len(p) > cap(ch.buf) {
		n := copy(ch.buf, ch.buf[ch.off:])
		ch.buf, ch.off = ch.buf[:n], 0
	}
	ch.buf = append(ch.buf, p...)
	signal(ch.rsig)
	return nil
}

// checkData is the early credit check made when a CHANNEL_DATA header
// arrives, before its payload is read.
func (ch *Channel) checkData(n uint32) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state != chOpen || ch.gotClose {
		return protocolErrorf("CHANNEL_DATA on channel %d, which is not open", ch.local)
	}
	if n > ch.rwin {
		return protocolErrorf("CHANNEL_DATA of %d bytes on channel %d beyond its credit of %d", n, ch.local, ch.rwin)
	}
	return nil
}

// adjust handles CHANNEL_WINDOW_ADJUST.
func (ch *Channel) adjust(n uint32) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state != chOpen {
		return protocolErrorf("CHANNEL_WINDOW_ADJUST on channel %d, which is not open", ch.local)
	}
	if uint64(ch.credit)+uint64(n) > 1<<32-1 {
		return protocolErrorf("CHANNEL_WINDOW_ADJUST overflows the credit of channel %d", ch.local)
	}
	ch.credit += n
	signal(ch.wsig)
	return nil
}

// remoteClosed handles CHANNEL_CLOSE on an open channel. It reports whether
// the channel is now forgotten (both closes seen).
func (ch *Channel) remoteClosed() (forget bool, err error) {
	ch.mu.Lock()
	if ch.gotClose {
		ch.mu.Unlock()
		return false, protocolErrorf("second CHANNEL_CLOSE on channel %d", ch.local)
	}
	ch.gotClose = true
	ch.state = chClosed
	if ch.rerr == nil {
		ch.rerr = io.EOF
	}
	if ch.werr == nil {
		ch.werr = ErrChannelClosed
	}
	signal(ch.rsig)
	signal(ch.wsig)
	send := ch.queueCloseLocked()
	remote := ch.remote
	ch.mu.Unlock()
	if send {
		err = ch.c.writeMsg(&apf.ChannelClose{RecipientChannel: remote})
	}
	return true, err
}

// connLost ends the channel when its connection ends. Data already received
// can still be read; then Read returns ErrConnectionLost.
func (ch *Channel) connLost() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.state == chOpening {
		ch.openErr = ErrConnectionLost
		if !ch.abandoned {
			close(ch.openDone)
		}
	}
	ch.state = chClosed
	if ch.rerr == nil {
		ch.rerr = ErrConnectionLost
	}
	if ch.werr == nil {
		ch.werr = ErrConnectionLost
	}
	signal(ch.rsig)
	signal(ch.wsig)
}

// forgettable reports whether both closes have been seen.
func (ch *Channel) closedBothWays() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.sentClose && ch.gotClose
}
