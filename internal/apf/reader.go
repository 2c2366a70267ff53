package apf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
)

// smallBuf is the size of the buffer embedded in every Reader. Every control
// message a device normally sends fits (PROTOCOLVERSION is the largest at
// 93 bytes), so an idle connection's Reader holds no other memory; larger
// frames borrow a pooled buffer that goes back to the pool as soon as the
// next frame is requested.
const smallBuf = 96

// Reader splits an APF byte stream into whole messages.
//
// It reads only the bytes the current message needs (it never reads past the
// end of a message, except for Peek), so one Read is issued per field of
// unknown length; wrap a transport where small reads are expensive in a
// bufio.Reader. Length fields are checked against Limits before anything is
// read or allocated. A Read error (including a deadline) keeps the partial
// message: calling Next again resumes where it stopped. A framing error
// (unknown type, oversize length, unsupported layout) is sticky, since the
// stream cannot be resynchronised.
//
// The zero Reader is usable after Reset. A Reader must not be copied after
// first use, and is not safe for concurrent use.
type Reader struct {
	src    io.Reader
	limits Limits

	// RequestSuccessHasPort is consulted when a REQUEST_SUCCESS arrives: the
	// message has a port (5 bytes) when it answers tcpip-forward, none
	// (1 byte) when it answers cancel-tcpip-forward, and only the requester
	// knows which. Nil means "no port". Servers never receive the message.
	RequestSuccessHasPort func() bool

	// CheckChannelData, when set, is called as soon as a CHANNEL_DATA header
	// has arrived, before its payload is read; an error stops the stream
	// (sticky). A receiver uses it to refuse data beyond the credit it
	// granted without buffering the payload first.
	CheckChannelData func(recipient uint32, length uint32) error

	small   [smallBuf]byte
	buf     []byte  // small[:] or *pooled
	pooled  *[]byte // borrowed from bufPools, nil when buf is small
	n       int     // bytes held in buf
	drop    int     // length of the frame last returned, removed by the next call
	prev    byte    // type of the frame last returned
	rsPort  int8    // REQUEST_SUCCESS layout decided for the frame in progress: 0 unknown, 1 no port, 2 port
	checked bool    // CheckChannelData accepted the frame in progress
	err     error   // sticky framing error
}

// NewReader returns a Reader of r with the given limits (zero fields mean
// the defaults).
func NewReader(r io.Reader, lim Limits) *Reader {
	rd := new(Reader)
	rd.Reset(r, lim)
	return rd
}

// Reset discards all state and reads from r with the given limits.
func (r *Reader) Reset(src io.Reader, lim Limits) {
	r.release()
	hasPort, check := r.RequestSuccessHasPort, r.CheckChannelData
	*r = Reader{src: src, limits: lim, RequestSuccessHasPort: hasPort, CheckChannelData: check}
	r.buf = r.small[:]
}

// Buffered returns the number of bytes read from the source that belong to
// messages not yet returned.
func (r *Reader) Buffered() int { return r.n - r.drop }

// Next returns the next whole message. The returned slice is valid until the
// next call to Next, Peek or Reset.
func (r *Reader) Next() ([]byte, error) {
	if r.err != nil {
		return nil, r.err
	}
	r.discard()
	for {
		if r.n > 0 && r.buf[0] == 0 && r.prev == MsgUserAuthFailure {
			// MPS sends USERAUTH_FAILURE with one extra zero byte; no
			// message type is zero, so skip it.
			r.drop = 1
			r.prev = 0
			r.discard()
			continue
		}
		size, complete, err := r.scan()
		if err != nil {
			r.err = err
			return nil, err
		}
		if complete && r.n >= size {
			r.drop = size
			r.prev = r.buf[0]
			r.rsPort = 0
			r.checked = false
			return r.buf[:size], nil
		}
		if err := r.fill(size); err != nil {
			return nil, err
		}
	}
}

// ReadMessage returns the next message decoded. Byte-slice fields of the
// result alias the Reader's buffer and are valid until the next call.
func (r *Reader) ReadMessage() (Message, error) {
	b, err := r.Next()
	if err != nil {
		return nil, err
	}
	return Unmarshal(b)
}

// Peek returns the first n bytes of the next message without consuming
// them, reading them if necessary (n at most 96). It may read past the end
// of a message shorter than n; the extra bytes are kept for the following
// messages.
func (r *Reader) Peek(n int) ([]byte, error) {
	if n > smallBuf {
		return nil, fmt.Errorf("apf: peek of %d bytes exceeds %d", n, smallBuf)
	}
	if r.err != nil {
		return nil, r.err
	}
	r.discard()
	if err := r.fill(n); err != nil {
		return nil, err
	}
	return r.buf[:n], nil
}

// growStep bounds how far the buffer grows ahead of the bytes actually
// received: a peer that announces a large CHANNEL_DATA and then trickles
// costs memory in proportion to what it sent, not to what it claimed.
const growStep = 16<<10 + classSlack

// fill reads until at least size bytes are held, never asking the source
// for more than size-n bytes.
func (r *Reader) fill(size int) error {
	empty := 0
	for r.n < size {
		want := size
		if want > len(r.buf) {
			want = min(size, max(2*r.n, growStep))
			r.grow(want)
		}
		m, err := r.src.Read(r.buf[r.n:want])
		if m < 0 || m > want-r.n {
			return errors.New("apf: source returned an invalid count")
		}
		r.n += m
		if err != nil {
			if r.n >= size {
				return nil // the message is whole; the source repeats the error next time
			}
			if errors.Is(err, io.EOF) && r.n > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if m == 0 {
			if empty++; empty >= 100 {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// discard removes the frame last returned and keeps what follows it; a
// pooled buffer is released when what remains fits the embedded one.
func (r *Reader) discard() {
	if r.drop == 0 {
		return
	}
	rest := r.n - r.drop
	if r.pooled != nil && rest <= smallBuf {
		copy(r.small[:], r.buf[r.drop:r.n])
		r.release()
		r.buf = r.small[:]
	} else {
		copy(r.buf, r.buf[r.drop:r.n])
	}
	r.n = rest
	r.drop = 0
}

// grow makes buf at least size bytes long.
func (r *Reader) grow(size int) {
	if size <= len(r.buf) {
		return
	}
	p := getBuf(size)
	copy(*p, r.buf[:r.n])
	r.release()
	r.pooled = p
	r.buf = *p
}

func (r *Reader) release() {
	if r.pooled != nil {
		putBuf(r.pooled)
		r.pooled = nil
	}
	r.buf = r.small[:]
}

// scan determines the length of the message at the start of buf. complete
// reports whether size is final; otherwise size is the number of bytes to
// hold before the layout can be followed further (always more than held).
func (r *Reader) scan() (size int, complete bool, err error) {
	b := r.buf[:r.n]
	if len(b) == 0 {
		return 1, false, nil
	}
	maxStr := r.limits.maxString()
	s := scanner{b: b, off: 1}
	switch t := b[0]; t {
	case MsgDisconnect:
		return 7, true, nil
	case MsgUserAuthSuccess, MsgRequestFailure:
		return 1, true, nil
	case MsgChannelClose, MsgKeepaliveRequest, MsgKeepaliveReply:
		return 5, true, nil
	case MsgChannelWindowAdjust, MsgKeepaliveOptionsRequest, MsgKeepaliveOptionsReply:
		return 9, true, nil
	case MsgChannelOpenConfirmation, MsgChannelOpenFailure:
		return 17, true, nil
	case MsgProtocolVersion:
		return ProtocolVersionLen, true, nil
	case MsgRequestSuccess:
		if r.rsPort == 0 {
			r.rsPort = 1
			if r.RequestSuccessHasPort != nil && r.RequestSuccessHasPort() {
				r.rsPort = 2
			}
		}
		if r.rsPort == 2 {
			return 5, true, nil
		}
		return 1, true, nil
	case MsgServiceRequest, MsgServiceAccept:
		s.str(maxStr)
	case MsgUserAuthFailure:
		s.str(maxStr)
		s.fixed(1)
	case MsgUserAuthRequest:
		s.str(maxStr) // user
		s.str(maxStr) // service
		method := s.str(maxStr)
		if s.done() {
			break
		}
		if method == nil {
			s.need = s.off // hold the method name to choose the layout
			break
		}
		switch string(method) {
		case MethodPassword:
			s.fixed(1)
			s.str(maxStr)
		case MethodNone:
		default:
			return 0, false, fmt.Errorf("%w: USERAUTH_REQUEST method %q", ErrUnsupported, method)
		}
	case MsgGlobalRequest:
		name := s.str(maxStr)
		if s.done() {
			break
		}
		if name == nil {
			s.need = s.off
			break
		}
		s.fixed(1) // want-reply
		switch string(name) {
		case RequestTCPIPForward, RequestCancelTCPIPForward:
			s.str(maxStr)
			s.fixed(4)
		case RequestUDPSendTo:
			s.str(maxStr)
			s.fixed(4)
			s.str(maxStr)
			s.fixed(4)
			s.str(r.limits.maxData())
		}
	case MsgChannelOpen:
		s.str(maxStr) // channel type
		s.fixed(12)   // sender, window, reserved
		s.str(maxStr) // connected address
		s.fixed(4)
		s.str(maxStr) // originator address
		s.fixed(4)
	case MsgChannelData:
		if len(b) >= ChannelDataHeaderLen && r.CheckChannelData != nil && !r.checked {
			n := binary.BigEndian.Uint32(b[5:])
			if n <= uint32(r.limits.maxData()) {
				if err := r.CheckChannelData(binary.BigEndian.Uint32(b[1:]), n); err != nil {
					return 0, false, err
				}
				r.checked = true
			}
		}
		s.fixed(4)
		s.str(r.limits.maxData())
	default:
		return 0, false, UnknownTypeError(t)
	}
	if s.err != nil {
		return 0, false, s.err
	}
	if s.need > 0 {
		return s.need, false, nil
	}
	return s.off, true, nil
}

// scanner follows a layout over a possibly incomplete message. Once a length
// is missing, need holds the size to read before continuing and later steps
// do nothing.
type scanner struct {
	b    []byte
	off  int
	need int
	err  error
}

func (s *scanner) done() bool { return s.need > 0 || s.err != nil }

func (s *scanner) fixed(n int) {
	if !s.done() {
		s.off += n
	}
}

// str skips a string field and returns its bytes when they are held (nil
// otherwise).
func (s *scanner) str(max int) []byte {
	if s.done() {
		return nil
	}
	if len(s.b) < s.off+4 {
		s.need = s.off + 4
		return nil
	}
	n := binary.BigEndian.Uint32(s.b[s.off:])
	if uint64(n) > uint64(max) {
		s.err = fmt.Errorf("%w: %s field of %d bytes (limit %d)", ErrTooLong, TypeName(s.b[0]), n, max)
		return nil
	}
	start := s.off + 4
	s.off = start + int(n)
	if len(s.b) < s.off {
		return nil
	}
	return s.b[start:s.off:s.off]
}

// ---- buffer pool ----

// Frames larger than the embedded buffer borrow from size-classed pools:
// class k holds buffers of 2^(k+minClassShift) bytes plus a little room for
// a CHANNEL_DATA header, so a 16 KiB payload does not need a 32 KiB buffer.
// The pools are caches, not state: any buffer may be dropped at any GC.
const (
	minClassShift = 8 // 256 bytes
	numClasses    = 23 - minClassShift
	classSlack    = 32
)

var bufPools [numClasses]sync.Pool

func classOf(size int) int {
	if size <= 1<<minClassShift+classSlack {
		return 0
	}
	c := bits.Len(uint(size-classSlack-1)) - minClassShift
	return c
}

func getBuf(size int) *[]byte {
	c := classOf(size)
	if c >= numClasses {
		b := make([]byte, size)
		return &b
	}
	if p, ok := bufPools[c].Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, 1<<(c+minClassShift)+classSlack)
	return &b
}

func putBuf(p *[]byte) {
	n := len(*p)
	c := classOf(n)
	if c >= numClasses || n != 1<<(c+minClassShift)+classSlack {
		return
	}
	bufPools[c].Put(p)
}
