package cira

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
)

// connState is the APF session state (spec/mps.md §3.2).
type connState uint8

const (
	stTLS           connState = iota // expecting PROTOCOLVERSION
	stVersion                        // expecting SERVICE_REQUEST auth
	stAuthService                    // expecting USERAUTH_REQUEST
	stAuthenticated                  // expecting SERVICE_REQUEST pfwd
	stForwarding                     // session established
)

func (s connState) String() string {
	return [...]string{"tls", "version", "auth-service", "authenticated", "forwarding"}[s]
}

// maxPorts bounds the forwarded ports recorded per connection (AMT forwards
// seven).
const maxPorts = 12

// maxNoneAuth bounds USERAUTH_REQUEST "none" probes before a password.
const maxNoneAuth = 3

// probePage answers the debug probe (spec/mps.md §1.5).
const probePage = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n" +
	`<!DOCTYPE html><html><head><meta charset="UTF-8"></head><body>amtd CIRA server (Intel Management Presence Server compatible).<br />Intel&reg; AMT computers must connect here using CIRA.</body></html>`

// conn is one device's CIRA connection. Its goroutine (serve) is the only
// reader: it runs the session state machine and dispatches channel messages
// (like the mux of golang.org/x/crypto/ssh). Writes come from any goroutine
// and are serialised by wmu; there is no writer goroutine and no timer: the
// authentication deadline, idle timeout and the keepalive-options delay are
// all expressed as the socket's read deadline.
//
// The fields are ordered and sized to keep an idle connection small.
type conn struct {
	srv *Server
	ctx context.Context // the Serve context
	raw net.Conn
	tc  *tls.Conn
	rd  apf.Reader

	id          uint64
	uuid        apf.UUID
	tenant      string
	auth        *DeviceAuth // only between PROTOCOLVERSION and USERAUTH
	trigger     uint32
	connectedAt int64 // unix ns, at USERAUTH_SUCCESS
	lastSeen    atomic.Int64

	// reader goroutine only
	authDeadline int64 // unix ns
	readArmed    int64 // read deadline currently set (unix ns)
	kaDue        int64 // when to send KEEPALIVE_OPTIONS_REQUEST; 0 if not pending
	idle         time.Duration
	state        connState
	noneTries    uint8
	kaSent       bool
	registered   bool

	wmu    sync.Mutex
	wArmed int64 // write deadline currently set (unix ns)
	werr   error

	mu         sync.Mutex
	chans      map[uint32]*Channel // nil when there are none
	nextID     uint32
	ports      [maxPorts]uint16
	nports     uint8
	closing    bool
	superseded bool
	sem        chan struct{} // WS-MAN slots, created on first use
	done       chan struct{} // closed when the goroutine has finished; created on demand
	finished   bool
}

func (s *Server) newConn(ctx context.Context, raw net.Conn) *conn {
	c := &conn{
		srv: s,
		ctx: ctx,
		raw: raw,
		tc:  tls.Server(raw, s.tlsCfg),
		id:  s.ids.Add(1),
		// The handshake and the APF exchange up to USERAUTH_SUCCESS must
		// fit in AuthTimeout from accept.
		authDeadline: time.Now().Add(s.cfg.AuthTimeout).UnixNano(),
		idle:         s.cfg.IdleTimeout,
	}
	c.rd.Reset(c.tc, s.limits)
	c.rd.CheckChannelData = c.checkData
	return c
}

// kick closes the socket under the connection's goroutine, which then
// tears the session down. Safe from any goroutine, any number of times.
func (c *conn) kick() { c.raw.Close() }

func (c *conn) logger() *slog.Logger {
	l := c.srv.log.With("conn", c.id, "remote", c.raw.RemoteAddr().String())
	if c.state > stTLS {
		l = l.With("uuid", c.uuid.String())
	}
	return l
}

// ---- errors that end a session ----

// disconnectError ends the session with DISCONNECT(reason).
type disconnectError struct {
	reason uint32
	msg    string
}

func (e *disconnectError) Error() string {
	return fmt.Sprintf("%s (DISCONNECT %d)", e.msg, e.reason)
}

func protocolErrorf(format string, args ...any) error {
	return &disconnectError{reason: apf.DisconnectProtocolError, msg: fmt.Sprintf(format, args...)}
}

var (
	errAuthTimeout    = errors.New("not authenticated before the deadline")
	errIdle           = errors.New("idle timeout")
	errAuthFailed     = errors.New("wrong MPS credentials")
	errProbe          = errors.New("answered the debug probe")
	errPeerClosed     = errors.New("device closed the connection")
	errPeerDisconnect = errors.New("device sent DISCONNECT")
)

// ---- the goroutine ----

// serve runs the connection to its end. The goroutine's stack while it
// waits for a message is the largest part of an idle connection's cost: an
// idle connection waits in waitReadable (see next), and the rarer work
// happens in functions that are not inlined into the loop, so that the
// runtime shrinks the stack to 4 KiB (blocked inside tls.Conn.Read it
// would stay at 8 KiB).
func (c *conn) serve() {
	err := c.start()
	if err == nil {
		err = c.loop()
	}
	c.teardown(err)
}

// start runs the TLS handshake and answers the debug probe.
//
//go:noinline
func (c *conn) start() error {
	c.raw.SetDeadline(time.Unix(0, c.authDeadline))
	c.readArmed = c.authDeadline
	if err := c.tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	p, err := c.rd.Peek(3)
	if err != nil {
		return c.readError(err)
	}
	if string(p) == "GET" {
		c.probe()
		return errProbe
	}
	return nil
}

func (c *conn) loop() error {
	for {
		b, err := c.next()
		if err != nil {
			if err = c.readFailed(err); err != nil {
				return err
			}
			continue
		}
		if err := c.received(b); err != nil {
			return err
		}
	}
}

// past is a deadline that has already expired.
var past = time.Unix(1, 0)

// next returns the next message. A connection with no open channel, which
// is how thousands of devices spend their days, does not wait for it inside
// tls.Conn.Read: it first takes what TLS has already buffered (a read with
// an expired deadline returns at once and never touches the socket), then
// releases TLS's empty input buffer (tlsbuf.go) and waits for the socket to
// become readable on a shallow stack, then reads.
func (c *conn) next() ([]byte, error) {
	if c.state < stAuthenticated || c.hasChannels() {
		return c.rd.Next()
	}
	c.raw.SetReadDeadline(past)
	b, err := c.rd.Next()
	c.raw.SetReadDeadline(time.Unix(0, c.readArmed))
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return b, err
	}
	// Nothing is buffered: TLS's input buffer can go while we wait.
	releaseTLSInput(c.tc)
	if ok, err := waitReadable(c.raw); ok && err != nil {
		return nil, err
	}
	return c.rd.Next()
}

func (c *conn) hasChannels() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.chans) > 0
}

// received handles one message.
//
//go:noinline
func (c *conn) received(b []byte) error {
	now := time.Now().UnixNano()
	c.lastSeen.Store(now)
	if err := c.handle(b, now); err != nil {
		return err
	}
	c.armRead(now)
	return nil
}

// readFailed handles an error from the frame reader: a deadline may mean
// work to do rather than the end.
//
//go:noinline
func (c *conn) readFailed(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return c.deadlineReached()
	}
	return c.readError(err)
}

// readError classifies an error from the frame reader.
func (c *conn) readError(err error) error {
	var de *disconnectError
	var ute apf.UnknownTypeError
	switch {
	case errors.As(err, &de):
		return err
	case errors.As(err, &ute), errors.Is(err, apf.ErrTooLong), errors.Is(err, apf.ErrUnsupported):
		return &disconnectError{reason: apf.DisconnectProtocolError, msg: err.Error()}
	case errors.Is(err, io.EOF):
		return errPeerClosed
	}
	return err
}

// slack is how far a deadline may lag behind its ideal value before the
// socket's timer is re-armed: re-arming on every message would cost a timer
// update per CHANNEL_DATA.
func slack(d time.Duration) int64 { return int64(min(d/8, time.Second)) }

// armRead sets the read deadline the state needs: the authentication
// deadline until USERAUTH_SUCCESS, then the idle deadline, brought forward
// to send the keepalive options.
func (c *conn) armRead(now int64) {
	if c.state < stAuthenticated {
		return // the authentication deadline set at accept holds
	}
	dl := now + int64(c.idle)
	if c.kaDue != 0 && c.kaDue < dl {
		dl = c.kaDue
	}
	if dl < c.readArmed || dl-c.readArmed > slack(c.idle) {
		c.raw.SetReadDeadline(time.Unix(0, dl))
		c.readArmed = dl
	}
}

// deadlineReached handles the read deadline: authentication timeout, idle
// timeout, or time to send the keepalive options.
func (c *conn) deadlineReached() error {
	now := time.Now().UnixNano()
	if c.state < stAuthenticated {
		if now >= c.authDeadline {
			return errAuthTimeout
		}
		return nil
	}
	if c.kaDue != 0 && now >= c.kaDue {
		if err := c.sendKeepaliveOptions(); err != nil {
			return err
		}
	}
	if now >= c.lastSeen.Load()+int64(c.idle) {
		return errIdle
	}
	c.readArmed = 0 // force: the armed deadline has passed
	dl := c.lastSeen.Load() + int64(c.idle)
	if c.kaDue != 0 && c.kaDue < dl {
		dl = c.kaDue
	}
	c.raw.SetReadDeadline(time.Unix(0, dl))
	c.readArmed = dl
	return nil
}

func (c *conn) probe() {
	c.raw.SetWriteDeadline(time.Now().Add(min(c.srv.cfg.WriteTimeout, 5*time.Second)))
	c.tc.Write([]byte(probePage))
	c.tc.Close()
	c.logger().Debug("cira: answered the debug probe")
}

// handle runs one message through the state machine.
func (c *conn) handle(b []byte, now int64) error {
	t := b[0]
	if t == apf.MsgDisconnect {
		var m apf.Disconnect
		if err := m.UnmarshalBinary(b); err != nil {
			return protocolErrorf("DISCONNECT: %v", err)
		}
		return fmt.Errorf("%w (reason %d)", errPeerDisconnect, m.Reason)
	}
	switch c.state {
	case stTLS:
		if t != apf.MsgProtocolVersion {
			return protocolErrorf("%s before PROTOCOLVERSION", apf.TypeName(t))
		}
		var m apf.ProtocolVersion
		if err := m.UnmarshalBinary(b); err != nil {
			return protocolErrorf("PROTOCOLVERSION: %v", err)
		}
		return c.protocolVersion(&m)
	case stVersion, stAuthenticated:
		if t != apf.MsgServiceRequest {
			return protocolErrorf("%s in state %s", apf.TypeName(t), c.state)
		}
		var m apf.ServiceRequest
		if err := m.UnmarshalBinary(b); err != nil {
			return protocolErrorf("SERVICE_REQUEST: %v", err)
		}
		return c.serviceRequest(&m)
	case stAuthService:
		if t != apf.MsgUserAuthRequest {
			return protocolErrorf("%s in state %s", apf.TypeName(t), c.state)
		}
		var m apf.UserAuthRequest
		if err := m.UnmarshalBinary(b); err != nil {
			return protocolErrorf("USERAUTH_REQUEST: %v", err)
		}
		return c.userAuth(&m)
	}
	return c.forwarding(b, now)
}

func (c *conn) protocolVersion(m *apf.ProtocolVersion) error {
	if m.Major != 1 {
		return &disconnectError{reason: apf.DisconnectProtocolVersionNotSupported,
			msg: fmt.Sprintf("APF version %d.%d", m.Major, m.Minor)}
	}
	c.uuid = m.UUID
	c.trigger = m.TriggerReason
	c.state = stVersion
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.LookupTimeout)
	da, err := c.srv.cfg.Authenticator.LookupDevice(ctx, m.UUID.String())
	cancel()
	// The look-up is the server's work, not the device's delay: the device
	// gets its remaining time back.
	c.authDeadline += int64(time.Since(start))
	c.raw.SetDeadline(time.Unix(0, c.authDeadline))
	c.readArmed = c.authDeadline
	switch {
	case errors.Is(err, ErrUnknownDevice):
		return &disconnectError{reason: apf.DisconnectHostNotAllowedToConnect, msg: "unknown device"}
	case err != nil:
		c.logger().Error("cira: device look-up failed", "err", err)
		return &disconnectError{reason: apf.DisconnectServiceNotAvailable, msg: "device look-up failed"}
	}
	c.auth = &da
	return nil
}

func (c *conn) serviceRequest(m *apf.ServiceRequest) error {
	want := apf.ServiceAuth
	if c.state == stAuthenticated {
		want = apf.ServicePortForward
	}
	switch m.Service {
	case want:
	case apf.ServiceAuth, apf.ServicePortForward:
		return protocolErrorf("SERVICE_REQUEST %q in state %s", m.Service, c.state)
	default:
		return &disconnectError{reason: apf.DisconnectServiceNotAvailable,
			msg: fmt.Sprintf("unknown service %q", m.Service)}
	}
	if err := c.writeMsg(&apf.ServiceAccept{Service: m.Service}); err != nil {
		return err
	}
	if c.state == stVersion {
		c.state = stAuthService
	} else {
		c.state = stForwarding
	}
	return nil
}

func (c *conn) userAuth(m *apf.UserAuthRequest) error {
	if m.Method == apf.MethodNone {
		// A method probe, as SSH clients make; not a failed guess.
		if c.noneTries++; c.noneTries > maxNoneAuth {
			return protocolErrorf("too many USERAUTH_REQUEST none")
		}
		return c.writeMsg(&apf.UserAuthFailure{Methods: apf.MethodPassword})
	}
	ok := c.auth.check(m.Username, m.Password)
	tenant := c.auth.Tenant
	c.auth = nil
	if !ok {
		if d := c.srv.cfg.AuthFailureDelay; d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-c.ctx.Done():
				t.Stop()
			}
		}
		_ = c.writeMsg(&apf.UserAuthFailure{Methods: apf.MethodPassword})
		return errAuthFailed
	}
	if err := c.writeMsg(&apf.UserAuthSuccess{}); err != nil {
		return err
	}
	c.tenant = tenant
	c.state = stAuthenticated
	now := time.Now().UnixNano()
	c.connectedAt = now
	c.lastSeen.Store(now)
	c.raw.SetReadDeadline(time.Unix(0, now+int64(c.idle)))
	c.readArmed = now + int64(c.idle)
	c.register()
	return nil
}

// register makes c the connection for its UUID (spec/mps.md §3.3): an older
// one is closed and its teardown awaited, so that its Disconnected event
// precedes this Connected event.
func (c *conn) register() {
	c.registered = true
	if old := c.srv.reg.swap(c); old != nil && old != c {
		old.mu.Lock()
		old.superseded = true
		old.mu.Unlock()
		old.kick()
		select {
		case <-old.doneCh():
		case <-c.ctx.Done():
		}
	}
	c.logger().Info("cira: device connected", "tenant", c.tenant, "trigger", c.trigger)
	if o := c.srv.cfg.Observer; o != nil {
		o.Connected(c.info())
	}
}

// forwarding handles the messages of an established session.
func (c *conn) forwarding(b []byte, now int64) error {
	var err error
	switch b[0] {
	case apf.MsgKeepaliveRequest:
		var m apf.KeepaliveRequest
		if err = m.UnmarshalBinary(b); err == nil {
			return c.writeMsg(&apf.KeepaliveReply{Cookie: m.Cookie})
		}
	case apf.MsgKeepaliveReply:
		var m apf.KeepaliveReply
		err = m.UnmarshalBinary(b)
	case apf.MsgKeepaliveOptionsReply:
		var m apf.KeepaliveOptionsReply
		if err = m.UnmarshalBinary(b); err == nil {
			c.keepaliveOptionsReply(&m)
		}
	case apf.MsgGlobalRequest:
		var m apf.GlobalRequest
		if err = m.UnmarshalBinary(b); err == nil {
			return c.globalRequest(&m, now)
		}
	case apf.MsgChannelOpen:
		var m apf.ChannelOpen
		if err = m.UnmarshalBinary(b); err == nil {
			// Device-initiated channels (WS-Eventing delivery) are refused,
			// as MPS does.
			return c.writeMsg(&apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenUnknownChannelType})
		}
	case apf.MsgChannelOpenConfirmation:
		var m apf.ChannelOpenConfirmation
		if err = m.UnmarshalBinary(b); err == nil {
			ch := c.channel(m.RecipientChannel)
			if ch == nil {
				return protocolErrorf("CHANNEL_OPEN_CONFIRMATION for unknown channel %d", m.RecipientChannel)
			}
			return ch.confirmed(&m)
		}
	case apf.MsgChannelOpenFailure:
		var m apf.ChannelOpenFailure
		if err = m.UnmarshalBinary(b); err == nil {
			ch := c.channel(m.RecipientChannel)
			if ch == nil || !ch.refused(m.Reason) {
				return protocolErrorf("CHANNEL_OPEN_FAILURE for channel %d, which is not opening", m.RecipientChannel)
			}
			c.removeChannel(ch)
			return nil
		}
	case apf.MsgChannelWindowAdjust:
		var m apf.ChannelWindowAdjust
		if err = m.UnmarshalBinary(b); err == nil {
			ch := c.channel(m.RecipientChannel)
			if ch == nil {
				return c.unknownChannel(b[0], m.RecipientChannel)
			}
			return ch.adjust(m.BytesToAdd)
		}
	case apf.MsgChannelData:
		var m apf.ChannelData
		if err = m.UnmarshalBinary(b); err == nil {
			ch := c.channel(m.RecipientChannel)
			if ch == nil {
				return c.unknownChannel(b[0], m.RecipientChannel)
			}
			return ch.data(m.Data)
		}
	case apf.MsgChannelClose:
		var m apf.ChannelClose
		if err = m.UnmarshalBinary(b); err == nil {
			ch := c.channel(m.RecipientChannel)
			if ch == nil {
				return c.unknownChannel(b[0], m.RecipientChannel)
			}
			if ch.refused(0) {
				// Closed before confirmation: not answered (spec/mps.md §4.3).
				c.removeChannel(ch)
				return nil
			}
			_, err := ch.remoteClosed()
			c.removeChannel(ch)
			return err
		}
	default:
		return protocolErrorf("%s in state %s", apf.TypeName(b[0]), c.state)
	}
	if err != nil {
		return protocolErrorf("%s: %v", apf.TypeName(b[0]), err)
	}
	return nil
}

func (c *conn) globalRequest(m *apf.GlobalRequest, now int64) error {
	if !c.kaSent {
		c.kaDue = now + int64(c.srv.cfg.ForwardSettle)
	}
	switch m.Name {
	case apf.RequestTCPIPForward:
		if m.Port > 65535 || !c.addPort(uint16(m.Port)) {
			return c.writeMsg(&apf.RequestFailure{})
		}
		// MPS replies whatever want-reply says; so does amtd.
		if err := c.writeMsg(&apf.RequestSuccess{HasPort: true, Port: m.Port}); err != nil {
			return err
		}
		if m.Port == 5900 && !c.kaSent {
			return c.sendKeepaliveOptions()
		}
		return nil
	case apf.RequestCancelTCPIPForward:
		c.removePort(m.Port)
		return c.writeMsg(&apf.RequestSuccess{})
	case apf.RequestUDPSendTo:
		return nil // consumed and ignored, as MPS does
	}
	if m.WantReply {
		return c.writeMsg(&apf.RequestFailure{})
	}
	return nil
}

func (c *conn) sendKeepaliveOptions() error {
	c.kaSent = true
	c.kaDue = 0
	return c.writeMsg(&apf.KeepaliveOptionsRequest{
		Interval: uint32(c.srv.cfg.KeepaliveInterval / time.Second),
		Timeout:  uint32(c.srv.cfg.KeepaliveTimeout / time.Second),
	})
}

func (c *conn) keepaliveOptionsReply(m *apf.KeepaliveOptionsReply) {
	// A device that adopted a longer interval than proposed gets a
	// proportionally longer idle timeout (at most a day).
	proposed := uint32(c.srv.cfg.KeepaliveInterval / time.Second)
	if proposed > 0 && m.Interval > proposed {
		c.idle = min(c.srv.cfg.IdleTimeout*time.Duration(m.Interval)/time.Duration(proposed), 24*time.Hour)
	}
}

func (c *conn) addPort(p uint16) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.ports[:c.nports] {
		if q == p {
			return true
		}
	}
	if int(c.nports) == len(c.ports) {
		return false
	}
	c.ports[c.nports] = p
	c.nports++
	return true
}

func (c *conn) removePort(p uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.ports[:c.nports] {
		if uint32(q) == p {
			copy(c.ports[i:], c.ports[i+1:c.nports])
			c.nports--
			return
		}
	}
}

// ---- channels ----

func (c *conn) channel(id uint32) *Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chans[id]
}

// unknownChannel handles CHANNEL_DATA, CHANNEL_WINDOW_ADJUST and
// CHANNEL_CLOSE for a channel id that is not in the table. An id this
// connection used before (ids are not reused) is a straggler from a device
// that raced our close: ignored, as MPS does, rather than costing every
// other channel of the device. An id never allocated is a protocol error.
func (c *conn) unknownChannel(t byte, id uint32) error {
	c.mu.Lock()
	used := id != 0 && id <= c.nextID
	c.mu.Unlock()
	if !used {
		return protocolErrorf("%s for unknown channel %d", apf.TypeName(t), id)
	}
	c.logger().Debug("cira: message for a closed channel ignored", "type", apf.TypeName(t), "channel", id)
	return nil
}

func (c *conn) removeChannel(ch *Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chans[ch.local] == ch {
		delete(c.chans, ch.local)
		if len(c.chans) == 0 {
			c.chans = nil // a map keeps its memory; drop it
		}
	}
}

// checkData is the frame reader's early check of a CHANNEL_DATA header.
func (c *conn) checkData(recipient, n uint32) error {
	if c.state != stForwarding {
		return protocolErrorf("CHANNEL_DATA in state %s", c.state)
	}
	ch := c.channel(recipient)
	if ch == nil {
		return c.unknownChannel(apf.MsgChannelData, recipient)
	}
	return ch.checkData(n)
}

// open opens a channel to port and waits for the device's answer.
func (c *conn) open(ctx context.Context, port uint16) (*Channel, error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil, ErrConnectionLost
	}
	if len(c.chans) >= c.srv.cfg.MaxChannels {
		c.mu.Unlock()
		return nil, ErrTooManyChannels
	}
	if c.chans == nil {
		c.chans = make(map[uint32]*Channel)
	}
	for {
		c.nextID++
		if _, used := c.chans[c.nextID]; !used {
			break
		}
	}
	ch := newChannel(c, c.nextID, port, c.srv.window)
	c.chans[ch.local] = ch
	c.mu.Unlock()

	// The 55-byte form MPS sends (spec/mps.md §2.3.6).
	err := c.writeMsg(&apf.ChannelOpen{
		ChannelType:       apf.ChannelForwardedTCPIP,
		SenderChannel:     ch.local,
		InitialWindow:     c.srv.window,
		Reserved:          0xFFFFFFFF,
		ConnectedPort:     uint32(port),
		OriginatorAddress: "1.2.3.4",
		OriginatorPort:    1024 + ch.local%30000,
	})
	if err != nil {
		c.removeChannel(ch)
		return nil, err
	}
	select {
	case <-ch.openDone:
		ch.mu.Lock()
		err := ch.openErr
		ch.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return ch, nil
	case <-ctx.Done():
		ch.mu.Lock()
		if ch.state == chOpening {
			// Closed when the answer comes (spec/mps.md §4.3).
			ch.abandoned = true
			ch.rerr, ch.werr = ctx.Err(), ctx.Err()
			ch.mu.Unlock()
			return nil, ctx.Err()
		}
		refused := ch.openErr != nil
		ch.mu.Unlock()
		if !refused {
			ch.Close()
		}
		return nil, ctx.Err()
	}
}

// acquireWSMAN takes one of the device's WS-MAN slots.
func (c *conn) acquireWSMAN(ctx context.Context) (release func(), err error) {
	c.mu.Lock()
	if c.sem == nil {
		c.sem = make(chan struct{}, c.srv.cfg.WSMANConcurrency)
	}
	sem := c.sem
	c.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.doneCh():
		return nil, ErrConnectionLost
	}
}

// doneCh returns a channel closed when the connection's goroutine has
// finished (made on demand: few connections are ever waited for).
func (c *conn) doneCh() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.finished {
			close(c.done)
		}
	}
	return c.done
}

// ---- writing ----

// Pools of encoding buffers: control messages are small; data messages are
// one segment plus the header. Pools are caches, not state.
var (
	ctrlBufs = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}
	dataBufs = sync.Pool{New: func() any { b := make([]byte, 0, apf.ChannelDataHeaderLen+maxSegment); return &b }}
)

func (c *conn) writeMsg(m apf.Message) error {
	bp := ctrlBufs.Get().(*[]byte)
	b, err := m.AppendBinary((*bp)[:0])
	if err == nil {
		err = c.write(b)
	}
	if cap(b) <= 4096 {
		*bp = b[:0]
		ctrlBufs.Put(bp)
	}
	return err
}

func (c *conn) writeData(remote uint32, p []byte) error {
	bp := dataBufs.Get().(*[]byte)
	b := apf.AppendChannelDataHeader((*bp)[:0], remote, len(p))
	b = append(b, p...)
	err := c.write(b)
	dataBufs.Put(bp)
	return err
}

// write writes one whole message. A failed or timed-out write ends the
// connection: TLS cannot recover from a partial record.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	wt := c.srv.cfg.WriteTimeout
	if dl := time.Now().UnixNano() + int64(wt); dl-c.wArmed > slack(wt) {
		c.raw.SetWriteDeadline(time.Unix(0, dl))
		c.wArmed = dl
	}
	if _, err := c.tc.Write(b); err != nil {
		c.werr = fmt.Errorf("%w: %w", ErrConnectionLost, err)
		c.kick()
		return c.werr
	}
	return nil
}

// ---- teardown ----

func (c *conn) teardown(err error) {
	var de *disconnectError
	if errors.As(err, &de) && c.sendDisconnect(de.reason) {
		c.lingerClose()
	}
	c.kick()

	c.mu.Lock()
	c.closing = true
	chans := c.chans
	c.chans = nil
	superseded := c.superseded
	c.mu.Unlock()
	for _, ch := range chans {
		ch.connLost()
	}

	log := c.logger()
	switch {
	case c.registered:
		c.srv.reg.remove(c)
		info := c.info()
		info.DisconnectedAt = time.Now()
		info.Superseded = superseded
		info.Reason = reasonText(err, superseded)
		log.Info("cira: device disconnected", "reason", info.Reason)
		if o := c.srv.cfg.Observer; o != nil {
			o.Disconnected(info)
		}
	case errors.Is(err, errProbe):
	case de != nil || errors.Is(err, errAuthFailed) || errors.Is(err, errAuthTimeout):
		log.Warn("cira: connection refused", "state", c.state.String(), "reason", err.Error())
	default:
		log.Debug("cira: connection ended before authentication", "state", c.state.String(), "reason", err.Error())
	}
	c.mu.Lock()
	c.finished = true
	if c.done != nil {
		close(c.done)
	}
	c.mu.Unlock()
}

func reasonText(err error, superseded bool) string {
	if superseded {
		return "replaced by a newer connection"
	}
	if errors.Is(err, net.ErrClosed) {
		return "closed by the server"
	}
	return err.Error()
}

// lingerTime bounds how long a connection ended with DISCONNECT keeps
// draining what the device still sends.
const lingerTime = time.Second

// sendDisconnect tells the device why the server ends the session, waiting
// briefly at most. It reports whether the message was written.
func (c *conn) sendDisconnect(reason uint32) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return false
	}
	c.raw.SetWriteDeadline(time.Now().Add(min(c.srv.cfg.WriteTimeout, 2*time.Second)))
	b, _ := (&apf.Disconnect{Reason: reason}).MarshalBinary()
	if _, err := c.tc.Write(b); err != nil {
		c.werr = ErrConnectionLost
		return false
	}
	c.werr = ErrConnectionLost
	return true
}

// lingerClose shuts the sending side and discards what the device still
// sends for a moment, so that closing a socket with unread input does not
// reset the connection and destroy the DISCONNECT on its way (net/http
// does the same for its error responses).
func (c *conn) lingerClose() {
	c.tc.CloseWrite()
	if cw, ok := c.raw.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.raw.SetReadDeadline(time.Now().Add(min(lingerTime, c.srv.cfg.WriteTimeout)))
	io.CopyN(io.Discard, c.raw, 256<<10)
}

// info snapshots the connection's status.
func (c *conn) info() ConnInfo {
	c.mu.Lock()
	ports := make([]uint16, c.nports)
	copy(ports, c.ports[:c.nports])
	c.mu.Unlock()
	return ConnInfo{
		UUID:          c.uuid.String(),
		ConnID:        c.id,
		Tenant:        c.tenant,
		RemoteAddr:    c.raw.RemoteAddr().String(),
		TriggerReason: c.trigger,
		ConnectedAt:   time.Unix(0, c.connectedAt),
		LastSeen:      time.Unix(0, c.lastSeen.Load()),
		Ports:         ports,
	}
}
