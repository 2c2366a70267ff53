package redir

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

type firmwareState = firmware.State

// KVM and IDE-R session start messages (after the login).
const (
	StartKVMOrIDER      = 0x40
	StartKVMOrIDERReply = 0x41
	EndIDER             = 0x42
	EndIDERReply        = 0x43
	IDERKeepAlivePing   = 0x44
	IDERKeepAlivePong   = 0x45
	IDERHeartbeat       = 0x4B
)

// RFB (VNC) protocol constants used by the simulated screen.
const (
	rfbVersion         = "RFB 003.008\n"
	rfbSetPixelFormat  = 0
	rfbSetEncodings    = 2
	rfbUpdateRequest   = 3
	rfbKeyEvent        = 4
	rfbPointerEvent    = 5
	rfbClientCutText   = 6
	rfbEncodingRaw     = 0
	rfbEncodingRRE     = 2
	maxRFBEncodings    = 256
	maxRFBCutText      = 1 << 20
	rfbDesktopNameBase = "Intel(r) AMT KVM"
)

// ScreenColor is the colour (0xRRGGBB) of the simulated screen after the
// given key was pressed last (0: no key yet).
func ScreenColor(lastKey uint32) uint32 {
	if lastKey == 0 {
		return 0x0000AA // a blue BIOS-like screen
	}
	return (lastKey * 0x9E3779B1) & 0xFFFFFF
}

// serveKVM answers the KVM start (0x40 → 0x41) and then speaks RFB 3.8 as
// a server with security type None (the redirection login already
// authenticated the console).
func (s *session) serveKVM() error {
	b, err := s.readFull(8)
	if err != nil {
		return err
	}
	if b[0] != StartKVMOrIDER {
		return fmt.Errorf("%w: 0x%02x instead of the KVM start", ErrProtocol, b[0])
	}
	if err := s.write([]byte{StartKVMOrIDERReply, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		return err
	}
	hw := s.fw.Hardware()
	var screen int
	s.fw.View(func(st *firmwareState) { screen = st.KVM.DefaultScreen })
	d := firmware.Display{Width: 1024, Height: 768}
	if screen >= 0 && screen < len(hw.Displays) {
		d = hw.Displays[screen]
	}
	return (&rfbServer{s: s, width: d.Width, height: d.Height, bpp: 32, name: rfbDesktopNameBase + " - " + hw.Chassis.Model}).run()
}

type rfbServer struct {
	s             *session
	width, height int
	bpp           int // bits per pixel of the client's pixel format
	bigEndian     bool
	rre           bool   // the client accepts RRE
	lastKey       uint32 // keysym of the last key pressed
	pending       []byte // an incremental update request waiting for a change
	name          string
}

func (r *rfbServer) run() error {
	s := r.s
	if err := s.write([]byte(rfbVersion)); err != nil {
		return err
	}
	v, err := s.readFull(12)
	if err != nil {
		return err
	}
	if string(v[:4]) != "RFB " {
		return fmt.Errorf("%w: RFB version %q", ErrProtocol, v)
	}
	minor := string(v[8:11])
	if minor >= "007" {
		if err := s.write([]byte{1, 1}); err != nil { // one security type: None
			return err
		}
		c, err := s.readFull(1)
		if err != nil {
			return err
		}
		if c[0] != 1 {
			return fmt.Errorf("%w: RFB security type %d", ErrProtocol, c[0])
		}
		if minor >= "008" {
			if err := s.write([]byte{0, 0, 0, 0}); err != nil { // SecurityResult OK
				return err
			}
		}
	} else if err := s.write([]byte{0, 0, 0, 1}); err != nil { // RFB 3.3: None
		return err
	}
	if _, err := s.readFull(1); err != nil { // ClientInit (shared flag)
		return err
	}
	init := binary.BigEndian.AppendUint16(nil, uint16(r.width))
	init = binary.BigEndian.AppendUint16(init, uint16(r.height))
	// pixel format: 32 bpp, depth 24, little-endian, true colour, 8 bits per channel
	init = append(init, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0)
	init = binary.BigEndian.AppendUint32(init, uint32(len(r.name)))
	init = append(init, r.name...)
	if err := s.write(init); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	for {
		t, err := s.readFull(1)
		if err != nil {
			return err
		}
		switch t[0] {
		case rfbSetPixelFormat:
			b, err := s.readFull(19)
			if err != nil {
				return err
			}
			if bpp := int(b[3]); bpp == 8 || bpp == 16 || bpp == 32 {
				r.bpp, r.bigEndian = bpp, b[5] != 0
			} else {
				return fmt.Errorf("%w: RFB %d bits per pixel", ErrProtocol, bpp)
			}
		case rfbSetEncodings:
			b, err := s.readFull(3)
			if err != nil {
				return err
			}
			n := int(binary.BigEndian.Uint16(b[1:]))
			if n > maxRFBEncodings {
				return fmt.Errorf("%w: %d RFB encodings", ErrProtocol, n)
			}
			enc, err := s.readFull(4 * n)
			if err != nil {
				return err
			}
			r.rre = false
			for i := 0; i < n; i++ {
				if int32(binary.BigEndian.Uint32(enc[4*i:])) == rfbEncodingRRE {
					r.rre = true
				}
			}
		case rfbUpdateRequest:
			b, err := s.readFull(9)
			if err != nil {
				return err
			}
			if b[0] != 0 { // incremental: nothing changed yet, answer on the next change
				r.pending = slices.Clone(b)
				continue
			}
			if err := r.update(b); err != nil {
				return err
			}
		case rfbKeyEvent:
			b, err := s.readFull(7)
			if err != nil {
				return err
			}
			if b[0] != 0 { // key down changes the screen
				r.lastKey = binary.BigEndian.Uint32(b[3:])
				if err := r.flush(); err != nil {
					return err
				}
			}
		case rfbPointerEvent:
			if _, err := s.readFull(5); err != nil {
				return err
			}
		case rfbClientCutText:
			b, err := s.readFull(7)
			if err != nil {
				return err
			}
			n := binary.BigEndian.Uint32(b[3:])
			if n > maxRFBCutText {
				return fmt.Errorf("%w: cut text of %d bytes", ErrProtocol, n)
			}
			if _, err := s.readFull(int(n)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: RFB message %d", ErrProtocol, t[0])
		}
	}
}

// flush answers a waiting incremental request after a change.
func (r *rfbServer) flush() error {
	if r.pending == nil {
		return nil
	}
	req := r.pending
	r.pending = nil
	return r.update(req)
}

// pixel encodes the screen colour in the client's pixel format (the
// default one, or the common 8/16/32-bit true-colour variants with the
// channel layout the server announced).
func (r *rfbServer) pixel() []byte {
	c := ScreenColor(r.lastKey)
	red, green, blue := c>>16&0xff, c>>8&0xff, c&0xff
	switch r.bpp {
	case 8:
		return []byte{byte(red>>5<<5 | green>>5<<2 | blue>>6)}
	case 16:
		v := uint16(red>>3<<11 | green>>2<<5 | blue>>3)
		if r.bigEndian {
			return binary.BigEndian.AppendUint16(nil, v)
		}
		return binary.LittleEndian.AppendUint16(nil, v)
	}
	if r.bigEndian {
		return binary.BigEndian.AppendUint32(nil, c)
	}
	return binary.LittleEndian.AppendUint32(nil, c)
}

// update sends one rectangle covering the requested area (clipped to the
// screen): RRE (a background colour, no sub-rectangles) when the client
// accepts it, raw pixels otherwise.
func (r *rfbServer) update(req []byte) error {
	x, y := int(binary.BigEndian.Uint16(req[1:])), int(binary.BigEndian.Uint16(req[3:]))
	w, h := int(binary.BigEndian.Uint16(req[5:])), int(binary.BigEndian.Uint16(req[7:]))
	x, y = min(x, r.width), min(y, r.height)
	w, h = min(w, r.width-x), min(h, r.height-y)
	out := []byte{0, 0, 0, 1}
	out = binary.BigEndian.AppendUint16(out, uint16(x))
	out = binary.BigEndian.AppendUint16(out, uint16(y))
	out = binary.BigEndian.AppendUint16(out, uint16(w))
	out = binary.BigEndian.AppendUint16(out, uint16(h))
	px := r.pixel()
	if r.rre {
		out = binary.BigEndian.AppendUint32(out, rfbEncodingRRE)
		out = binary.BigEndian.AppendUint32(out, 0) // no sub-rectangles
		out = append(out, px...)
		return r.s.write(out)
	}
	out = binary.BigEndian.AppendUint32(out, rfbEncodingRaw)
	if err := r.s.write(out); err != nil {
		return err
	}
	row := make([]byte, 0, w*len(px))
	for range w {
		row = append(row, px...)
	}
	chunk := make([]byte, 0, 64<<10)
	for range h {
		if len(chunk)+len(row) > cap(chunk) {
			if err := r.s.write(chunk); err != nil {
				return err
			}
			chunk = chunk[:0]
		}
		chunk = append(chunk, row...)
	}
	return r.s.write(chunk)
}

// serveIDER answers the IDE-R start and keeps the session alive until the
// console ends it (no disk emulation).
func (s *session) serveIDER() error {
	b, err := s.readFull(18)
	if err != nil {
		return err
	}
	if b[0] != StartKVMOrIDER {
		return fmt.Errorf("%w: 0x%02x instead of StartIDERRedirection", ErrProtocol, b[0])
	}
	// 30 bytes: type, status, 2 reserved, sequence, the console's timeouts
	// echoed, protocol version, then zeros (unverified layout beyond the
	// length and status that consoles check)
	reply := []byte{StartKVMOrIDERReply, StatusSuccess, 0, 0}
	reply = binary.LittleEndian.AppendUint32(reply, s.nextSeq())
	reply = append(reply, b[8:18]...)
	reply = append(reply, make([]byte, 30-len(reply))...)
	if err := s.write(reply); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	for {
		t, err := s.r.Peek(1)
		if err != nil {
			return err
		}
		if t[0] == EndRedirectionSession {
			_, err := s.readFull(4)
			return err
		}
		h, err := s.readFull(8)
		if err != nil {
			return err
		}
		switch h[0] {
		case IDERKeepAlivePing:
			if err := s.write(s.short(IDERKeepAlivePong)); err != nil {
				return err
			}
		case IDERHeartbeat:
		case EndIDER:
			if err := s.write(s.short(EndIDERReply)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: IDE-R message 0x%02x", ErrProtocol, h[0])
		}
	}
}
