package redir

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// SOL message types.
const (
	StartSOLRedirection      = 0x20
	StartSOLRedirectionReply = 0x21
	EndSOLRedirection        = 0x22
	EndSOLRedirectionReply   = 0x23
	SOLKeepAlivePing         = 0x24
	SOLKeepAlivePong         = 0x25
	SOLSettings              = 0x27 // console → device, after the start reply
	SOLDataToHost            = 0x28 // console → device (keystrokes)
	SOLControlsFromHost      = 0x29
	SOLDataFromHost          = 0x2A // device → console (screen output)
	SOLHeartbeat             = 0x2B
)

// Fixed sizes of SOL messages.
const (
	startSOLLen      = 24
	startSOLReplyLen = 23
	solSettingsLen   = 14
	solShortLen      = 8 // end, end reply, keepalive, heartbeat
	solDataHeaderLen = 10
	maxSOLData       = 16 << 10
)

// serveSOL runs a serial-over-LAN session: after the SOL start exchange,
// keystrokes (0x28) go to the simulated console and its output comes back
// as 0x2A messages.
func (s *session) serveSOL() error {
	hdr, err := s.readFull(startSOLLen)
	if err != nil {
		return err
	}
	if hdr[0] != StartSOLRedirection {
		return fmt.Errorf("%w: 0x%02x instead of StartSOLRedirection", ErrProtocol, hdr[0])
	}
	// 23 bytes: type, status, 2 reserved, sequence, then the settings the
	// device adopted (MaxTxBuffer, TxTimeout, TxOverflowTimeout, RxTimeout,
	// RxFlushTimeout, Heartbeat as given), 3 bytes of zero (OEM data length
	// and reserved). Consoles read only the type, the status and the length.
	reply := []byte{StartSOLRedirectionReply, StatusSuccess, 0, 0}
	reply = binary.LittleEndian.AppendUint32(reply, s.nextSeq())
	reply = append(reply, hdr[8:20]...)
	reply = append(reply, 0, 0, 0)
	if err := s.write(reply); err != nil {
		return err
	}
	_ = s.conn.SetDeadline(time.Time{})
	con := newSerialConsole(s.fw.Hardware().Chassis.Model, s.hostname())
	if err := s.solOut(con.banner()); err != nil {
		return err
	}
	for {
		t, err := s.r.Peek(1)
		if err != nil {
			return err
		}
		switch t[0] {
		case SOLDataToHost:
			h, err := s.readFull(solDataHeaderLen)
			if err != nil {
				return err
			}
			n := int(binary.LittleEndian.Uint16(h[8:]))
			if n > maxSOLData {
				return fmt.Errorf("%w: SOL data of %d bytes", ErrProtocol, n)
			}
			data, err := s.readFull(n)
			if err != nil {
				return err
			}
			if out := con.input(data); len(out) > 0 {
				if err := s.solOut(out); err != nil {
					return err
				}
			}
		case SOLSettings:
			if _, err := s.readFull(solSettingsLen); err != nil {
				return err
			}
		case SOLHeartbeat:
			if _, err := s.readFull(solShortLen); err != nil {
				return err
			}
		case SOLKeepAlivePing:
			if _, err := s.readFull(solShortLen); err != nil {
				return err
			}
			if err := s.write(s.short(SOLKeepAlivePong)); err != nil {
				return err
			}
		case EndSOLRedirection:
			if _, err := s.readFull(solShortLen); err != nil {
				return err
			}
			if err := s.write(s.short(EndSOLRedirectionReply)); err != nil {
				return err
			}
		case EndRedirectionSession:
			_, err := s.readFull(4)
			return err
		default:
			return fmt.Errorf("%w: SOL message 0x%02x", ErrProtocol, t[0])
		}
	}
}

// short is an 8-byte message: type, 3 reserved, sequence number.
func (s *session) short(t byte) []byte {
	return binary.LittleEndian.AppendUint32([]byte{t, 0, 0, 0}, s.nextSeq())
}

// solOut sends console output in 0x2A messages.
func (s *session) solOut(b []byte) error {
	var buf bytes.Buffer
	for len(b) > 0 {
		n := min(len(b), 4096)
		buf.Write([]byte{SOLDataFromHost, 0, 0, 0})
		_ = binary.Write(&buf, binary.LittleEndian, s.nextSeq())
		_ = binary.Write(&buf, binary.LittleEndian, uint16(n))
		buf.Write(b[:n])
		b = b[n:]
	}
	return s.write(buf.Bytes())
}

func (s *session) hostname() string {
	var h string
	s.fw.View(func(st *firmwareState) { h = st.Network.HostName })
	if h == "" {
		h = "sim"
	}
	return h
}

// serialConsole is the simulated serial console: a line editor with echo and a
// few commands.
type serialConsole struct {
	model, host string
	line        []byte
}

func newSerialConsole(model, host string) *serialConsole {
	return &serialConsole{model: model, host: host}
}

func (c *serialConsole) prompt() string { return c.host + " login: " }

func (c *serialConsole) banner() []byte {
	return []byte("\r\nSimulated " + c.model + " serial console (Intel(R) AMT SOL)\r\n\r\n" + c.prompt())
}

// input consumes keystrokes and returns what the serialConsole prints.
func (c *serialConsole) input(in []byte) []byte {
	var out []byte
	for _, ch := range in {
		switch {
		case ch == '\r' || ch == '\n':
			if ch == '\n' && len(c.line) == 0 && len(out) > 0 {
				continue // CR LF
			}
			out = append(out, "\r\n"...)
			out = append(out, c.run(strings.TrimSpace(string(c.line)))...)
			out = append(out, c.prompt()...)
			c.line = c.line[:0]
		case ch == 0x7f || ch == 0x08:
			if len(c.line) > 0 {
				c.line = c.line[:len(c.line)-1]
				out = append(out, "\b \b"...)
			}
		case ch == 0x03: // ^C
			c.line = c.line[:0]
			out = append(out, "^C\r\n"+c.prompt()...)
		case ch >= 0x20 && ch < 0x7f:
			if len(c.line) < 256 {
				c.line = append(c.line, ch)
				out = append(out, ch)
			}
		}
	}
	return out
}

func (c *serialConsole) run(line string) string {
	cmd, arg, _ := strings.Cut(line, " ")
	switch cmd {
	case "":
		return ""
	case "echo":
		return arg + "\r\n"
	case "hostname":
		return c.host + "\r\n"
	case "help":
		return "commands: echo, hostname, help\r\n"
	}
	return cmd + ": command not found\r\n"
}
