package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// session is one relay session: a browser WebSocket and a device stream.
// The handler goroutine copies browser → device, a second goroutine device
// → browser; end closes both sides once, whichever notices first.
type session struct {
	r      *Relay
	guid   string
	mode   Mode // requested mode, or the one taken from the session start (browser goroutine only)
	log    *slog.Logger
	ic     *interceptor
	cancel context.CancelFunc // cancels the dial of a session not yet running

	mu    sync.Mutex
	info  Info
	ended bool
	ws    *websocket.Conn
	dev   net.Conn
	idle  *time.Timer

	t0        time.Time    // monotonic base of last
	last      atomic.Int64 // time of the last data, as time.Since(t0)
	toDevice  atomic.Int64
	toBrowser atomic.Int64
}

// Session errors that close a session (besides ErrMalformed).
var (
	errModeMismatch = errors.New("relay: the session type differs from the relay's mode")
)

// started is the interceptor's hook for StartRedirectionSession: the type
// must match the requested mode; without one, the type's lock is taken now.
func (s *session) started(tag [4]byte) error {
	m, known := modeOfTag(tag)
	if !known {
		return nil // the device refuses an unknown type itself
	}
	if s.mode != "" {
		if m != s.mode {
			return fmt.Errorf("%w: %s requested, %s started", errModeMismatch, strings.ToUpper(string(s.mode)), strings.ToUpper(string(m)))
		}
		return nil
	}
	if err := s.r.lock(s.guid, m, s); err != nil {
		return err
	}
	s.mode = m
	s.mu.Lock()
	s.info.Mode = m
	s.mu.Unlock()
	return nil
}

func (s *session) snapshot() Info {
	s.mu.Lock()
	i := s.info
	s.mu.Unlock()
	i.ToDevice, i.ToBrowser = s.toDevice.Load(), s.toBrowser.Load()
	if s.ic != nil {
		i.LoginPassed = s.ic.passThrough()
	}
	return i
}

// attach records the two sides; false when the session was ended meanwhile
// (shutdown), in which case the caller closes them.
func (s *session) attach(ws *websocket.Conn, dev net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.ws, s.dev = ws, dev
	return true
}

// end closes the session once: the browser gets a close frame with code and
// reason, then both sides are closed.
func (s *session) end(code int, reason string, err error) {
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended = true
	s.info.Reason = reason
	if err != nil {
		s.info.Reason = reason + ": " + err.Error()
	}
	ws, dev := s.ws, s.dev
	if s.idle != nil {
		s.idle.Stop()
	}
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
	}
	if ws != nil {
		// The close handshake: the browser answers the close frame, which
		// ends the browser pump (or the grace period does); closing the
		// socket at once could reset it before the browser has read the
		// last data. A close frame that cannot be written (the browser does
		// not read) closes the socket now.
		err := ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, truncate(reason, 120)), time.Now().Add(closeGrace))
		if err == nil {
			err = ws.NetConn().SetReadDeadline(time.Now().Add(closeGrace))
		}
		if err != nil {
			ws.Close()
		}
	}
	if dev != nil {
		dev.Close()
	}
}

// closeGrace bounds the WebSocket close handshake.
const closeGrace = time.Second

// truncate keeps a close reason within the 123 bytes a close frame allows.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (s *session) touch() { s.last.Store(int64(time.Since(s.t0))) }

// checkIdle runs on the idle timer.
func (s *session) checkIdle() {
	idle := time.Since(s.t0) - time.Duration(s.last.Load())
	if idle >= s.r.cfg.IdleTimeout {
		s.end(websocket.CloseNormalClosure, "idle timeout", nil)
		return
	}
	s.mu.Lock()
	if !s.ended {
		s.idle.Reset(s.r.cfg.IdleTimeout - idle)
	}
	s.mu.Unlock()
}

// run carries the session until either side ends it.
func (s *session) run(ws *websocket.Conn, dev net.Conn) {
	if !s.attach(ws, dev) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		ws.Close()
		dev.Close()
		return
	}
	ws.SetReadLimit(s.r.cfg.MaxMessageBytes)
	s.t0 = time.Now()
	s.touch()
	s.mu.Lock()
	s.info.Started = s.t0
	s.idle = time.AfterFunc(s.r.cfg.IdleTimeout, s.checkIdle)
	s.mu.Unlock()

	start := s.snapshot()
	s.log.Info("relay: session started", "mode", string(start.Mode), "via", string(start.Via), "port", start.Port,
		"tls", start.TLS, "inject", start.Inject, "remote", start.Remote)
	if s.r.cfg.OnStart != nil {
		s.r.cfg.OnStart(start)
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		s.deviceToBrowser()
	}()
	s.browserToDevice()
	<-done
	ws.Close()
	dev.Close()

	// Free the mode lock before anyone hears of the end.
	s.r.release(s)
	s.mu.Lock()
	s.info.Ended = time.Now()
	s.mu.Unlock()
	fin := s.snapshot()
	s.log.Info("relay: session ended", "mode", string(fin.Mode), "reason", fin.Reason, "login", fin.LoginPassed,
		"to_device", fin.ToDevice, "to_browser", fin.ToBrowser, "duration", fin.Ended.Sub(fin.Started))
	if s.r.cfg.OnEnd != nil {
		s.r.cfg.OnEnd(fin)
	}
}

// endWith closes the session for an error of the redirection stream.
func (s *session) endStream(err error) {
	switch {
	case errors.Is(err, ErrMalformed):
		s.end(websocket.CloseProtocolError, "malformed redirection message", err)
	case errors.Is(err, errBusy):
		s.end(websocket.ClosePolicyViolation, "a session of this type is already active for the device", nil)
	case errors.Is(err, errModeMismatch):
		s.end(websocket.ClosePolicyViolation, "session type differs from the requested mode", err)
	default:
		s.end(websocket.CloseInternalServerErr, "relay error", err)
	}
}

// browserToDevice copies WebSocket messages to the device.
func (s *session) browserToDevice() {
	buf := make([]byte, bufSize)
	for {
		mt, rd, err := s.ws.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				s.end(websocket.CloseNormalClosure, "browser closed the session", nil)
			} else {
				s.end(websocket.CloseAbnormalClosure, "browser connection ended", err)
			}
			return
		}
		s.touch()
		if mt == websocket.TextMessage {
			// Text frames carry one byte per code point (spec/mps.md §7.3).
			data, err := io.ReadAll(rd)
			if err != nil {
				s.end(websocket.CloseAbnormalClosure, "browser connection ended", err)
				return
			}
			b, ok := latin1(data)
			if !ok {
				s.end(websocket.CloseInvalidFramePayloadData, "text frame with a character beyond U+00FF", nil)
				return
			}
			if !s.sendDevice(b) {
				return
			}
			continue
		}
		for {
			n, err := rd.Read(buf)
			if n > 0 && !s.sendDevice(buf[:n]) {
				return
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				s.end(websocket.CloseAbnormalClosure, "browser connection ended", err)
				return
			}
		}
	}
}

// sendDevice passes browser bytes through the interceptor to the device.
func (s *session) sendDevice(p []byte) bool {
	out, err := s.ic.browser(p)
	if err != nil {
		s.endStream(err)
		return false
	}
	if len(out) == 0 {
		return true
	}
	_ = s.dev.SetWriteDeadline(time.Now().Add(s.r.cfg.WriteTimeout))
	if _, err := s.dev.Write(out); err != nil {
		s.end(websocket.CloseInternalServerErr, "device connection failed", err)
		return false
	}
	s.toDevice.Add(int64(len(out)))
	s.touch()
	return true
}

// deviceToBrowser copies device bytes to binary WebSocket messages.
func (s *session) deviceToBrowser() {
	buf := make([]byte, bufSize)
	for {
		n, err := s.dev.Read(buf)
		if n > 0 {
			s.touch()
			out, perr := s.ic.device(buf[:n])
			if perr != nil {
				s.endStream(perr)
				return
			}
			if len(out) > 0 {
				_ = s.ws.SetWriteDeadline(time.Now().Add(s.r.cfg.WriteTimeout))
				if werr := s.ws.WriteMessage(websocket.BinaryMessage, out); werr != nil {
					s.end(websocket.CloseAbnormalClosure, "browser connection failed", werr)
					return
				}
				s.toBrowser.Add(int64(len(out)))
				s.touch()
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.end(websocket.CloseNormalClosure, "device closed the session", nil)
			} else {
				s.end(websocket.CloseInternalServerErr, "device connection ended", err)
			}
			return
		}
	}
}

// latin1 maps a UTF-8 text of code points 0–255 to bytes.
func latin1(text []byte) ([]byte, bool) {
	out := make([]byte, 0, len(text))
	for len(text) > 0 {
		r, n := utf8.DecodeRune(text)
		if r > 0xFF || (r == utf8.RuneError && n == 1) {
			return nil, false
		}
		out = append(out, byte(r))
		text = text[n:]
	}
	return out, true
}
