package mei

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"syscall"
)

// Framing of amtd's "MEI over a Unix socket" (spec/heci.md §8.1): every
// frame, in both directions, is a u32 little-endian length N followed by N
// payload bytes. One frame carries one HECI message.

const (
	frameHeaderLen = 4
	guidFrameLen   = 16 // first client frame: the MEI client GUID
	connectReplyN  = 9  // status u32, MaxMessageLength u32, protocol version u8
)

// Linux errno values carried in the connect reply (spec/heci.md §8.2).
const (
	ErrnoENODEV = syscall.ENODEV // 19: device disabled / ME unavailable
	ErrnoENOTTY = syscall.ENOTTY // 25: unknown MEI client GUID
	ErrnoEBUSY  = syscall.EBUSY  // 16: client busy
)

var (
	// ErrFrameTooLarge reports a frame longer than the negotiated
	// MaxMessageLength.
	ErrFrameTooLarge = errors.New("mei: frame longer than MaxMessageLength")
	// ErrEmptyFrame reports a zero-length frame after the handshake.
	ErrEmptyFrame = errors.New("mei: zero-length frame")
	// ErrBadHandshake reports a first frame that is not a 16-byte GUID, or a
	// connect reply that is not 9 bytes.
	ErrBadHandshake = errors.New("mei: malformed connect handshake")
)

// ConnectError is the connect result when the simulator refuses an MEI client
// connection; it unwraps to the errno, so errors.Is(err, syscall.ENOTTY)
// works as it would after a failed IOCTL_MEI_CONNECT_CLIENT.
type ConnectError struct {
	Errno syscall.Errno
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("mei: connect client: %v (errno %d)", e.Errno, uint32(e.Errno))
}

func (e *ConnectError) Unwrap() error { return e.Errno }

// appendFrame appends the frame for payload p to dst.
func appendFrame(dst, p []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)))
	return append(dst, p...)
}

// readFrameLen reads the 4-byte frame header.
func readFrameLen(r io.Reader, hdr *[frameHeaderLen]byte) (uint32, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(hdr[:]), nil
}

// readFrame reads one frame whose payload must be 1..max bytes into buf
// (grown if needed) and returns the payload.
func readFrame(r io.Reader, buf []byte, max uint32) ([]byte, error) {
	var hdr [frameHeaderLen]byte
	n, err := readFrameLen(r, &hdr)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrEmptyFrame
	}
	if n > max {
		return nil, ErrFrameTooLarge
	}
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// connectReply encodes the 9-byte connect reply frame.
func connectReply(status uint32, maxLen uint32, version uint8) []byte {
	b := make([]byte, 0, frameHeaderLen+connectReplyN)
	b = binary.LittleEndian.AppendUint32(b, connectReplyN)
	b = binary.LittleEndian.AppendUint32(b, status)
	b = binary.LittleEndian.AppendUint32(b, maxLen)
	return append(b, version)
}
