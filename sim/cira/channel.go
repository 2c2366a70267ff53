package cira

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// maxSegment is the largest CHANNEL_DATA the device sends (spec/mps.md
// §4.2: 16 KiB is safe).
const maxSegment = 16 << 10

// errChannelClosed is returned by Write after either side closed.
var errChannelClosed = errors.New("cira: channel closed")

// channel is one APF channel the server opened to a device port, seen by
// the device as a net.Conn. It has no goroutine of its own: the session's
// reader delivers data and credit; Read and Write block on the state.
type channel struct {
	s      *session
	id     uint32 // the device's id (the server's recipient)
	remote uint32 // the server's id
	port   uint16
	window uint32 // receive window advertised to the server

	wmu sync.Mutex // serialises Write calls (segments stay in order)

	mu       sync.Mutex    // never held during a socket write
	changed  chan struct{} // closed and replaced on every state change
	rbuf     []byte        // received, not yet read
	credit   uint32        // bytes the server may still send (our receive side)
	consumed uint32        // bytes read since the last WINDOW_ADJUST
	send     uint32        // bytes the device may still send
	rclosed  bool          // CHANNEL_CLOSE received
	lclosed  bool          // CHANNEL_CLOSE sent
	rdl, wdl time.Time
}

func newChannel(s *session, id, remote uint32, port uint16, window, sendCredit uint32) *channel {
	return &channel{s: s, id: id, remote: remote, port: port, window: window, credit: window, send: sendCredit, changed: make(chan struct{})}
}

// signalLocked wakes every waiter.
func (ch *channel) signalLocked() {
	close(ch.changed)
	ch.changed = make(chan struct{})
}

// wait waits for a state change or the deadline; the lock is held on entry
// and on return. It returns an error for a passed deadline.
func (ch *channel) waitLocked(deadline time.Time) error {
	c := ch.changed
	var timer <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	ch.mu.Unlock()
	select {
	case <-c:
	case <-timer:
	case <-ch.s.done:
	}
	ch.mu.Lock()
	return nil
}

// deliver takes CHANNEL_DATA from the reader; the size was checked against
// the credit before the payload was read (checkData).
func (ch *channel) deliver(p []byte) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.rclosed || ch.lclosed {
		return // stragglers after a close
	}
	ch.credit -= uint32(len(p))
	ch.rbuf = append(ch.rbuf, p...)
	ch.signalLocked()
}

// checkData reports whether the server may send n more bytes.
func (ch *channel) checkData(n uint32) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return n <= ch.credit || ch.lclosed
}

// adjust adds send credit (CHANNEL_WINDOW_ADJUST).
func (ch *channel) adjust(n uint32) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if uint64(ch.send)+uint64(n) > 1<<32-1 {
		return false
	}
	ch.send += n
	ch.signalLocked()
	return true
}

// remoteClose handles CHANNEL_CLOSE; it reports whether the device must
// answer with its own CHANNEL_CLOSE.
func (ch *channel) remoteClose() (answer bool) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.rclosed {
		return false
	}
	ch.rclosed = true
	answer = !ch.lclosed
	ch.lclosed = true
	ch.signalLocked()
	return answer
}

// connLost ends the channel when the connection ends.
func (ch *channel) connLost() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.rclosed, ch.lclosed = true, true
	ch.signalLocked()
}

// Read returns received bytes; WINDOW_ADJUST gives the server its credit
// back once half the window has been consumed.
func (ch *channel) Read(p []byte) (int, error) {
	ch.mu.Lock()
	for len(ch.rbuf) == 0 {
		if ch.rclosed || ch.lclosed || ch.s.isDone() {
			ch.mu.Unlock()
			return 0, io.EOF
		}
		if err := ch.waitLocked(ch.rdl); err != nil {
			ch.mu.Unlock()
			return 0, err
		}
	}
	n := copy(p, ch.rbuf)
	ch.rbuf = ch.rbuf[n:]
	if len(ch.rbuf) == 0 {
		ch.rbuf = nil
	}
	ch.consumed += uint32(n)
	var add uint32
	if ch.consumed >= ch.window/2 && !ch.lclosed {
		add = ch.consumed
		ch.consumed = 0
		ch.credit += add
	}
	ch.mu.Unlock()
	if add > 0 {
		ch.s.windowAdjust(ch.remote, add)
	}
	return n, nil
}

// Write sends p in CHANNEL_DATA messages of at most the send credit and
// 16 KiB, waiting for WINDOW_ADJUST when the credit is spent.
func (ch *channel) Write(p []byte) (int, error) {
	ch.wmu.Lock()
	defer ch.wmu.Unlock()
	written := 0
	for written < len(p) {
		ch.mu.Lock()
		for ch.send == 0 && !ch.lclosed && !ch.rclosed && !ch.s.isDone() {
			if err := ch.waitLocked(ch.wdl); err != nil {
				ch.mu.Unlock()
				return written, err
			}
		}
		if ch.lclosed || ch.rclosed || ch.s.isDone() {
			ch.mu.Unlock()
			return written, errChannelClosed
		}
		if !ch.wdl.IsZero() && time.Now().After(ch.wdl) {
			ch.mu.Unlock()
			return written, os.ErrDeadlineExceeded
		}
		n := min(len(p)-written, int(ch.send), maxSegment)
		ch.send -= uint32(n)
		ch.mu.Unlock()
		if err := ch.s.writeData(ch.remote, p[written:written+n]); err != nil {
			return written, err
		}
		written += n
	}
	return written, nil
}

// Close sends CHANNEL_CLOSE unless one was sent; the channel is forgotten
// once the server's CHANNEL_CLOSE has arrived too.
func (ch *channel) Close() error {
	ch.mu.Lock()
	if ch.lclosed {
		ch.mu.Unlock()
		return nil
	}
	ch.lclosed = true
	forget := ch.rclosed
	ch.signalLocked()
	ch.mu.Unlock()
	ch.s.closeChannel(ch, forget)
	return nil
}

// LocalAddr is the device's end of the tunnel.
func (ch *channel) LocalAddr() net.Addr {
	return &Addr{Host: ch.s.uuid, Port: ch.port}
}

// RemoteAddr is the MPS.
func (ch *channel) RemoteAddr() net.Addr { return ch.s.raw.RemoteAddr() }

func (ch *channel) SetDeadline(t time.Time) error {
	ch.SetReadDeadline(t)
	return ch.SetWriteDeadline(t)
}

func (ch *channel) SetReadDeadline(t time.Time) error {
	ch.mu.Lock()
	ch.rdl = t
	ch.signalLocked()
	ch.mu.Unlock()
	return nil
}

func (ch *channel) SetWriteDeadline(t time.Time) error {
	ch.mu.Lock()
	ch.wdl = t
	ch.signalLocked()
	ch.mu.Unlock()
	return nil
}

// Addr is a channel endpoint: the device UUID and the forwarded port.
type Addr struct {
	Host string
	Port uint16
}

func (a *Addr) Network() string { return "cira" }
func (a *Addr) String() string  { return net.JoinHostPort(a.Host, strconv.Itoa(int(a.Port))) }
