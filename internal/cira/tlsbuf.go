package cira

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// crypto/tls.Conn keeps its input buffer (rawInput) at the size of the
// largest record it ever received and never gives memory back: after a
// single 16 KiB record (one WS-MAN response) an idle connection holds
// 17 KiB more for the rest of its life, which would triple the cost of an
// idle device. The package offers no way to release it, so amtd does it
// itself, carefully:
//
//   - the fields are located once, by name and type, through reflection;
//     if a Go release renames or retypes them, the release is simply off
//     (TestTLSBufferRelease fails, so it does not go unnoticed);
//   - buffers are dropped only when they hold nothing (no partial record,
//     no unread plaintext), only by the connection's reader goroutine,
//     between reads, when the connection is idle. Nothing else touches a
//     tls.Conn's input side after the handshake (Write and Close use the
//     output side), so there is no concurrent access.
//
// The next record then gets a buffer of its own size.
type tlsInputLayout struct {
	rawInput, input, hand uintptr
	ok                    bool
}

// tlsInputs is a fact about the crypto/tls build linked in, not state.
var tlsInputs = findTLSInputs()

func findTLSInputs() tlsInputLayout {
	t := reflect.TypeFor[tls.Conn]()
	raw, ok1 := t.FieldByName("rawInput")
	in, ok2 := t.FieldByName("input")
	hand, ok3 := t.FieldByName("hand")
	if !ok1 || !ok2 || !ok3 || len(raw.Index) != 1 || len(in.Index) != 1 || len(hand.Index) != 1 ||
		raw.Type != reflect.TypeFor[bytes.Buffer]() || in.Type != reflect.TypeFor[bytes.Reader]() ||
		hand.Type != reflect.TypeFor[bytes.Buffer]() {
		return tlsInputLayout{}
	}
	return tlsInputLayout{rawInput: raw.Offset, input: in.Offset, hand: hand.Offset, ok: true}
}

// keepTLSInput is the buffer capacity kept anyway. Zero: even the ~1 KiB
// left by the handshake goes; the cost is one small allocation per
// keepalive (every 30 s per device), which the measurements favour.
const keepTLSInput = 0

// releaseTLSInput drops tc's empty input buffers. Call only from the
// goroutine that reads tc, between reads.
func releaseTLSInput(tc *tls.Conn) bool {
	if !tlsInputs.ok {
		return false
	}
	p := unsafe.Pointer(tc)
	raw := (*bytes.Buffer)(unsafe.Add(p, tlsInputs.rawInput))
	in := (*bytes.Reader)(unsafe.Add(p, tlsInputs.input))
	hand := (*bytes.Buffer)(unsafe.Add(p, tlsInputs.hand))
	released := false
	if raw.Len() == 0 && in.Len() == 0 && raw.Cap() > keepTLSInput {
		*raw = bytes.Buffer{}
		in.Reset(nil)
		released = true
	}
	if hand.Len() == 0 && hand.Cap() > 0 {
		*hand = bytes.Buffer{}
	}
	return released
}
