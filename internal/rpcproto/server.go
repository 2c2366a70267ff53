package rpcproto

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Config tunes the protocol's timers (rpc-protocol.md §11).
type Config struct {
	AppVersion string // sent as appVersion
	// FirstMessageTimeout closes a connection whose first message does not
	// arrive in time. Default 30 s.
	FirstMessageTimeout time.Duration
	// SessionTimeout caps a whole session. Default 10 min.
	SessionTimeout time.Duration
	// RoundTimeout bounds one relayed WS-MAN round trip. Default 12 s.
	RoundTimeout time.Duration
	// MaxAttempts per WS-MAN call for retryable failures (quiet rounds,
	// truncated responses). Default 3. One-shot calls are never resent.
	MaxAttempts int
	// MaxMessageSize is the largest accepted client message. Default 1 MiB.
	MaxMessageSize int64
	Logger         *slog.Logger
}

func (c *Config) defaults() {
	if c.FirstMessageTimeout <= 0 {
		c.FirstMessageTimeout = 30 * time.Second
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Minute
	}
	if c.RoundTimeout <= 0 {
		c.RoundTimeout = 12 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.AppVersion == "" {
		c.AppVersion = "amtd"
	}
}

// Request is a validated first message.
type Request struct {
	ConnID     string // per-connection id, used in RPS-style messages
	Command    Command
	Payload    *Payload
	TenantID   string
	RemoteAddr string
}

// Outcome ends a session: success or error, with the message text (plain, or
// a StatusMessage serialised with String()).
type Outcome struct {
	Success bool
	Message string
}

// Handler runs one session. It must return; the session's context is
// cancelled when the client goes away or the session times out.
type Handler interface {
	Serve(ctx context.Context, s *Session) Outcome
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, s *Session) Outcome

// Serve calls f.
func (f HandlerFunc) Serve(ctx context.Context, s *Session) Outcome { return f(ctx, s) }

// Server accepts rpc-go WebSocket connections (on any path it is mounted at).
type Server struct {
	cfg      Config
	h        Handler
	upgrader websocket.Upgrader

	mu       sync.Mutex
	sessions map[*Session]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// NewServer returns a server that hands validated sessions to h.
func NewServer(cfg Config, h Handler) *Server {
	cfg.defaults()
	return &Server{cfg: cfg, h: h, sessions: map[*Session]struct{}{},
		upgrader: websocket.Upgrader{
			ReadBufferSize: 4096, WriteBufferSize: 4096,
			// rpc-go sends no Origin; other clients are tools, not browsers.
			CheckOrigin: func(*http.Request) bool { return true },
		}}
}

// Shutdown cancels every live session and waits for them to end (or ctx).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	for sess := range s.sessions {
		sess.cancel()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ActiveSessions is the number of sessions being served.
func (s *Server) ActiveSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// ServeHTTP upgrades the connection and runs the session.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !websocket.IsWebSocketUpgrade(r) {
		http.Error(w, "this endpoint speaks the rpc-go WebSocket protocol", http.StatusBadRequest)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.serveConn(conn, r.RemoteAddr)
}

func newConnID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (s *Server) serveConn(conn *websocket.Conn, remote string) {
	defer conn.Close()
	conn.SetReadLimit(s.cfg.MaxMessageSize)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.SessionTimeout)
	defer cancel()
	sess := &Session{
		srv: s, conn: conn, cancel: cancel,
		resp: make(chan []byte, 1), hb: make(chan struct{}, 1), ack: make(chan struct{}, 1), readDone: make(chan struct{}),
	}
	s.mu.Lock()
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
	}()
	log := s.cfg.Logger.With("remote", remote)

	connID := newConnID()
	_ = conn.SetReadDeadline(time.Now().Add(s.cfg.FirstMessageTimeout))
	mt, data, err := conn.ReadMessage()
	if err != nil {
		log.Debug("rpc: no first message", "err", err)
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if mt != websocket.TextMessage {
		log.Info("rpc: binary first message refused")
		return
	}
	req, msg := s.validateFirst(connID, data)
	if req == nil {
		log.Info("rpc: first message rejected", "reason", msg)
		sess.sendTerminal(Outcome{Success: false, Message: msg})
		return
	}
	req.RemoteAddr = remote
	sess.Request = *req
	sess.log = log.With("uuid", req.Payload.UUID, "command", req.Command.Name)
	go sess.readLoop()
	go func() {
		select {
		case <-sess.readDone:
			cancel() // the client went away: stop the flow
		case <-ctx.Done():
		}
	}()
	out := s.safeServe(ctx, sess)
	if ctx.Err() != nil && !sess.clientGone() && out.Message == "" {
		out = Outcome{Message: "session timed out"}
	}
	if !sess.clientGone() {
		sess.sendTerminal(out)
	}
}

// safeServe runs the handler and turns a panic into an error answer: RPS's
// unanswered exceptions leave rpc-go waiting forever; amtd always answers.
func (s *Server) safeServe(ctx context.Context, sess *Session) (out Outcome) {
	defer func() {
		if r := recover(); r != nil {
			sess.log.Error("rpc: handler panic", "panic", fmt.Sprint(r))
			out = Outcome{Message: "internal error in the provisioning server"}
		}
	}()
	return s.h.Serve(ctx, sess)
}

// validateFirst parses and checks the first message in RPS's order
// (rpc-protocol.md §5); a nil Request comes with the plain-text error.
func (s *Server) validateFirst(connID string, data []byte) (*Request, string) {
	var m ClientMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, connID + " - Error while Validating the client message"
	}
	if m.Payload == nil || *m.Payload == "" {
		return nil, connID + " - Error while Validating the client message"
	}
	p, err := DecodePayload(*m.Payload)
	if err != nil {
		return nil, err.Error()
	}
	if m.ProtocolVersion != nil {
		if err := CheckProtocolVersion(*m.ProtocolVersion); err != nil {
			return nil, err.Error()
		}
	}
	cmd := ParseCommand(m.Method)
	switch cmd.Name {
	case "activate", "deactivate", "maintenance":
	default:
		return nil, fmt.Sprintf("Device %s Not a supported method received from AMT device", p.UUID)
	}
	if cmd.HasPass {
		p.Password = cmd.Password
	}
	if len(p.UUID) != 36 {
		return nil, connID + " - uuid not valid length"
	}
	if cmd.Name == "maintenance" && cmd.Task == "" {
		return nil, connID + " - missing maintenance task in message"
	}
	return &Request{ConnID: connID, Command: cmd, Payload: p, TenantID: m.TenantID}, ""
}

// Session is one rpc-go connection after a valid first message.
type Session struct {
	Request Request

	srv    *Server
	conn   *websocket.Conn
	log    *slog.Logger
	cancel context.CancelFunc

	wmu      sync.Mutex // one writer at a time
	rmu      sync.Mutex // one relayed round at a time
	resp     chan []byte
	hb       chan struct{}
	readDone chan struct{}
	readErr  error
	rounds   int
	ack      chan struct{} // port_switch_ack

	tmu    sync.Mutex
	tunnel *Tunnel // current TLS-tunnel stream, if any
}

// Logger is the session's logger (uuid and command attached).
func (s *Session) Logger() *slog.Logger { return s.log }

func (s *Session) clientGone() bool {
	select {
	case <-s.readDone:
		return true
	default:
		return false
	}
}

func (s *Session) readLoop() {
	defer close(s.readDone)
	defer s.endTunnels()
	for {
		mt, data, err := s.conn.ReadMessage()
		if err != nil {
			s.readErr = err
			return
		}
		if mt != websocket.TextMessage {
			s.log.Info("rpc: binary message ignored")
			continue
		}
		var m ClientMessage
		if err := json.Unmarshal(data, &m); err != nil {
			s.log.Info("rpc: unparsable client message ignored", "err", err)
			continue
		}
		switch m.Method {
		case MethodResponse:
			var raw []byte
			if m.Payload != nil {
				raw, err = base64.StdEncoding.DecodeString(*m.Payload)
				if err != nil {
					s.log.Info("rpc: undecodable response payload", "err", err)
					continue
				}
			}
			select {
			case s.resp <- raw:
			default:
				s.log.Info("rpc: response with no request waiting dropped")
			}
		case MethodHeartbeatResponse:
			select {
			case s.hb <- struct{}{}:
			default:
			}
		case MethodTLSData:
			var raw []byte
			if m.Payload != nil {
				raw, err = base64.StdEncoding.DecodeString(*m.Payload)
				if err != nil {
					s.log.Info("rpc: dropping tunnel data", "err", errTunnelPayload(err))
					continue
				}
			}
			s.deliver(raw, false)
		case MethodConnectionReset:
			s.deliver(nil, true)
		case MethodPortSwitchAck:
			select {
			case s.ack <- struct{}{}:
			default:
			}
		default:
			s.log.Info("rpc: unexpected client message ignored", "method", m.Method)
		}
	}
}

func (s *Session) write(m serverMessage) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return s.conn.WriteJSON(m)
}

func (s *Session) sendTerminal(o Outcome) {
	if o.Success {
		_ = s.write(s.srv.newMessage(MethodSuccess, "success", o.Message, nil))
	} else {
		_ = s.write(s.srv.newMessage(MethodError, "failed", o.Message, nil))
	}
	// rpc-go exits without a close frame; say goodbye properly anyway.
	s.wmu.Lock()
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	s.wmu.Unlock()
}

// Progress sends a progress label to rpc-go v2 clients (it would hang v3,
// which relays it to AMT; rpc-protocol.md §3).
func (s *Session) Progress(label string) {
	if s.Request.Payload.ProgressSupported {
		_ = s.write(s.srv.newMessage(MethodProgress, "ok", label, nil))
	}
}

// ErrClientGone is returned when the client disconnected.
var ErrClientGone = errors.New("rpc client disconnected")

// Wait pauses for d (firmware settling times such as the 12 s after
// activation) while watching the connection; it returns early with an error
// if the client goes away or ctx ends.
func (s *Session) Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.readDone:
		return ErrClientGone
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Heartbeat sends heartbeat_request and waits for the echo.
func (s *Session) Heartbeat(ctx context.Context, timeout time.Duration) error {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	select {
	case <-s.hb:
	default:
	}
	if err := s.write(s.srv.newMessage(MethodHeartbeatRequest, "ok", "", strPtr(""))); err != nil {
		return err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.hb:
		return nil
	case <-s.readDone:
		return ErrClientGone
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("no heartbeat response")
	}
}

// Rounds is the number of WS-MAN messages relayed so far.
func (s *Session) Rounds() int {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	return s.rounds
}
