package cira

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
	"github.com/amtd-project/amtd/sim/firmware"
)

// Errors of a connection attempt.
var (
	ErrAuthFailed   = errors.New("cira: the MPS refused the device's credentials")
	ErrServerName   = errors.New("cira: the MPS certificate's common name does not match the configuration")
	ErrDisconnected = errors.New("cira: the MPS sent DISCONNECT")
)

// session is one connection to an MPS.
type session struct {
	c      *Client
	target target
	log    *slog.Logger
	uuid   string

	raw  net.Conn // the TCP connection
	conn net.Conn // TLS over raw
	done chan struct{}
	once sync.Once
	err  error // why the session ended (set before done closes)

	wmu sync.Mutex // one writer at a time; never held while waiting for anything but the socket

	mu        sync.Mutex
	channels  map[uint32]*channel
	nextID    uint32
	since     time.Time // authenticated and forwarded
	interval  time.Duration
	timeout   time.Duration
	keepalive *time.Timer
	lifetime  *time.Timer
	cookie    uint32
	draining  error // set by drain: close once the last channel is closed
	grace     *time.Timer

	lastRecv atomic.Int64 // unix nanoseconds of the last message received

	ctx    context.Context // of the channel handlers
	authed bool            // USERAUTH_SUCCESS received: channels may open
}

func newSession(c *Client, t target) *session {
	return &session{c: c, target: t, log: c.log.With("server", t.addr()), uuid: c.fw.UUIDString(),
		done: make(chan struct{}), channels: map[uint32]*channel{}, nextID: 1}
}

func (s *session) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// shutdown ends the session: DISCONNECT when it is established, then the
// connection is closed, which ends the reader.
func (s *session) shutdown(reason error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = reason
		established := !s.since.IsZero()
		if s.keepalive != nil {
			s.keepalive.Stop()
		}
		if s.lifetime != nil {
			s.lifetime.Stop()
		}
		if s.grace != nil {
			s.grace.Stop()
		}
		chans := s.channels
		s.channels = map[uint32]*channel{}
		raw := s.raw
		s.mu.Unlock()
		if established && !errors.Is(reason, errConnLost) && s.wmu.TryLock() {
			// a clean DISCONNECT, unless a writer is stuck on the socket
			code := apf.DisconnectByApplication
			if errors.Is(reason, errUnconfigured) {
				code = apf.DisconnectByPolicy
			}
			if s.conn != nil {
				b, _ := apf.Marshal(&apf.Disconnect{Reason: code})
				_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = s.conn.Write(b)
			}
			s.wmu.Unlock()
		}
		close(s.done)
		if raw != nil {
			raw.Close()
		}
		for _, ch := range chans {
			ch.connLost()
		}
	})
}

var errConnLost = errors.New("cira: connection lost")

// drainGrace bounds how long a session that is no longer wanted waits for
// its open channels (scaled).
const drainGrace = 5 * time.Second

// drain ends the session once its channels are closed — so that the answer
// to the WS-MAN call that unconfigured CIRA (Unprovision, deleting the MPS)
// still reaches the server — or after a grace period. New channels are
// refused meanwhile.
func (s *session) drain(reason error) {
	s.mu.Lock()
	if s.draining != nil {
		s.mu.Unlock()
		return
	}
	s.draining = reason
	idle := len(s.channels) == 0
	if !idle {
		s.grace = time.AfterFunc(s.c.scale(drainGrace), func() { s.shutdown(reason) })
	}
	s.mu.Unlock()
	if idle {
		s.shutdown(reason)
	}
}

// info returns when the session was established and the keepalive interval.
func (s *session) info() (time.Time, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.since, s.interval
}

// run connects, authenticates, forwards the ports and then serves the
// connection until it ends. It reports whether the session got as far as
// forwarding (a drop after that is a disconnection, not a failed attempt).
func (s *session) run(ctx context.Context) (connected bool, err error) {
	defer func() {
		if err == nil {
			err = errConnLost
		}
		s.shutdown(err)
		if s.err != nil {
			err = s.err
		}
		s.mu.Lock()
		connected = !s.since.IsZero()
		s.mu.Unlock()
	}()
	s.ctx = ctx
	hctx, cancel := context.WithTimeout(ctx, s.c.cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.shutdown(ctx.Err()) })
	defer stop()

	raw, err := s.c.cfg.Dial(hctx, "tcp", s.target.addr())
	if err != nil {
		return false, errorf("dial %s: %w", s.target.addr(), err)
	}
	s.mu.Lock()
	s.raw = raw
	s.mu.Unlock()
	if s.isDone() { // closed while dialling
		raw.Close()
		return false, s.err
	}
	tc := tls.Client(raw, s.tlsConfig())
	if err := tc.HandshakeContext(hctx); err != nil {
		return false, errorf("TLS with %s: %w", s.target.addr(), err)
	}
	return s.apf(tc)
}

// apf runs the APF session over the (TLS) connection.
func (s *session) apf(conn net.Conn) (bool, error) {
	s.wmu.Lock()
	s.conn = conn
	s.wmu.Unlock()
	_ = conn.SetDeadline(time.Now().Add(s.c.cfg.HandshakeTimeout))
	r := apf.NewReader(conn, apf.Limits{MaxData: int(s.c.cfg.ChannelWindow)})
	r.RequestSuccessHasPort = func() bool { return true } // the device only sends tcpip-forward
	r.CheckChannelData = s.checkData
	if err := s.handshake(r); err != nil {
		return false, err
	}
	_ = conn.SetDeadline(time.Time{})
	s.established()
	return true, s.serve(r)
}

// tlsConfig is the device's TLS client: the RSA key-exchange suites AMT
// offers (plus ECDHE from AMT 19), TLS 1.2 (1.0 for firmware before AMT 12,
// 1.3 allowed from AMT 19 — both unverified), no SNI; the server is checked
// in VerifyConnection against the firmware's trusted roots and the name AMT
// expects.
func (s *session) tlsConfig() *tls.Config {
	var major int
	s.c.fw.View(func(st *firmware.State) {
		fmt.Sscanf(st.Versions.AMT, "%d", &major)
	})
	cfg := &tls.Config{
		InsecureSkipVerify: true, // verified by VerifyConnection
		VerifyConnection:   s.verifyServer,
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_RSA_WITH_AES_128_CBC_SHA,
			tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		},
		Renegotiation: tls.RenegotiateNever,
	}
	if major < 12 {
		cfg.MinVersion = tls.VersionTLS10
	}
	if major >= 19 {
		cfg.MaxVersion = tls.VersionTLS13
		cfg.CipherSuites = append(cfg.CipherSuites, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
	}
	return cfg
}

// expectedName is the common name AMT compares: the CN given to
// AddMpServer for an IP address (InfoFormat 3/4), the FQDN in AccessInfo
// otherwise (spec/mps.md §1.2).
func (s *session) expectedName() string {
	m := s.target.server
	if (m.InfoFormat == 3 || m.InfoFormat == 4) && m.CN != "" {
		return m.CN
	}
	return m.AccessInfo
}

func (s *session) verifyServer(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errorf("the MPS sent no certificate")
	}
	roots := s.c.fw.TLSServer().Roots
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: s.c.fw.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return errorf("MPS certificate not trusted: %w", err)
	}
	if want := s.expectedName(); !strings.EqualFold(leaf.Subject.CommonName, want) {
		return fmt.Errorf("%w: %q, expected %q", ErrServerName, leaf.Subject.CommonName, want)
	}
	return nil
}

// handshake: PROTOCOLVERSION, the auth service, USERAUTH, the port
// forwarding service and one tcpip-forward per port (spec/mps.md §3.1).
func (s *session) handshake(r *apf.Reader) error {
	uuid, _ := apf.ParseUUID(s.uuid)
	if err := s.writeMsg(&apf.ProtocolVersion{Major: 1, Minor: 0, TriggerReason: s.target.trigger, UUID: uuid}); err != nil {
		return err
	}
	if err := s.writeMsg(&apf.ServiceRequest{Service: apf.ServiceAuth}); err != nil {
		return err
	}
	if err := s.expectAccept(r, apf.ServiceAuth); err != nil {
		return err
	}
	m := s.target.server
	if err := s.writeMsg(&apf.UserAuthRequest{Username: m.Username, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: m.Password}); err != nil {
		return err
	}
	msg, err := s.next(r)
	if err != nil {
		return err
	}
	switch msg.(type) {
	case *apf.UserAuthSuccess:
		s.authed = true // amtd's server may open channels from now on
	case *apf.UserAuthFailure:
		return ErrAuthFailed
	default:
		return s.protocolError("%s instead of the USERAUTH answer", apf.TypeName(msg.Type()))
	}
	if err := s.writeMsg(&apf.ServiceRequest{Service: apf.ServicePortForward}); err != nil {
		return err
	}
	if err := s.expectAccept(r, apf.ServicePortForward); err != nil {
		return err
	}
	var host string
	s.c.fw.View(func(st *firmware.State) { host = st.Network.HostName })
	for _, p := range forwardedPorts {
		if err := s.writeMsg(&apf.GlobalRequest{Name: apf.RequestTCPIPForward, WantReply: true, Address: host, Port: uint32(p)}); err != nil {
			return err
		}
		msg, err := s.next(r)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *apf.RequestSuccess:
			if m.HasPort && m.Port != uint32(p) {
				return s.protocolError("forward of %d answered for %d", p, m.Port)
			}
		case *apf.RequestFailure:
			s.log.Debug("cira: forward refused", "port", p)
		default:
			return s.protocolError("%s instead of the forward answer", apf.TypeName(msg.Type()))
		}
	}
	return nil
}

func (s *session) expectAccept(r *apf.Reader, service string) error {
	msg, err := s.next(r)
	if err != nil {
		return err
	}
	a, ok := msg.(*apf.ServiceAccept)
	if !ok || a.Service != service {
		return s.protocolError("%s instead of SERVICE_ACCEPT %s", apf.TypeName(msg.Type()), service)
	}
	return nil
}

// next returns the next message of the handshake, answering the ones that
// may come at any time (a PROTOCOLVERSION echo, keepalives, keepalive
// options) on the way.
func (s *session) next(r *apf.Reader) (apf.Message, error) {
	for {
		msg, err := s.read(r)
		if err != nil {
			return nil, err
		}
		handled, err := s.common(msg)
		if err != nil {
			return nil, err
		}
		if !handled {
			return msg, nil
		}
	}
}

func (s *session) read(r *apf.Reader) (apf.Message, error) {
	msg, err := r.ReadMessage()
	if err != nil {
		if s.isDone() {
			return nil, s.err
		}
		var ute apf.UnknownTypeError
		if errors.As(err, &ute) || errors.Is(err, apf.ErrTooLong) || errors.Is(err, apf.ErrUnsupported) || errors.Is(err, apf.ErrTrailingData) {
			return nil, s.protocolError("%v", err)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
			return nil, fmt.Errorf("%w: %v", errConnLost, err)
		}
		return nil, err
	}
	s.lastRecv.Store(time.Now().UnixNano())
	return msg, nil
}

// common answers the messages allowed in any state (channel messages once
// authenticated); it reports whether msg was one of them.
func (s *session) common(msg apf.Message) (bool, error) {
	if s.authed {
		if handled, err := s.channelMsg(msg); handled || err != nil {
			return handled, err
		}
	}
	switch m := msg.(type) {
	case *apf.ProtocolVersion:
		return true, nil // Console-style echo
	case *apf.KeepaliveRequest:
		return true, s.writeMsg(&apf.KeepaliveReply{Cookie: m.Cookie})
	case *apf.KeepaliveReply:
		return true, nil
	case *apf.KeepaliveOptionsRequest:
		s.keepaliveOptions(m)
		return true, s.writeMsg(&apf.KeepaliveOptionsReply{Interval: m.Interval, Timeout: m.Timeout})
	case *apf.Disconnect:
		return true, fmt.Errorf("%w (reason %d)", ErrDisconnected, m.Reason)
	}
	return false, nil
}

// protocolError sends DISCONNECT(2) and returns the error.
func (s *session) protocolError(format string, args ...any) error {
	_ = s.writeMsg(&apf.Disconnect{Reason: apf.DisconnectProtocolError})
	return errorf("protocol error: "+format, args...)
}

// established starts the keepalive and the tunnel lifetime.
func (s *session) established() {
	s.mu.Lock()
	s.since = time.Now()
	if s.interval == 0 {
		s.interval = s.c.scale(s.c.cfg.DefaultKeepalive)
	}
	s.armKeepaliveLocked()
	if s.target.lifetime > 0 {
		s.lifetime = time.AfterFunc(s.target.lifetime, func() { s.shutdown(errorf("tunnel lifetime over")) })
	}
	s.mu.Unlock()
	s.c.connected(s)
}

// keepaliveOptions adopts the server's interval and timeout (scaled).
func (s *session) keepaliveOptions(m *apf.KeepaliveOptionsRequest) {
	s.mu.Lock()
	if m.Interval > 0 {
		s.interval = s.c.scale(time.Duration(m.Interval) * time.Second)
	}
	s.timeout = s.c.scale(time.Duration(m.Timeout) * time.Second)
	if !s.since.IsZero() {
		s.armKeepaliveLocked()
	}
	interval := s.interval
	s.mu.Unlock()
	s.c.emit(Event{Kind: EventKeepaliveOptions, Server: s.target.addr(), Interval: interval})
}

func (s *session) armKeepaliveLocked() {
	if s.keepalive != nil {
		s.keepalive.Stop()
	}
	s.keepalive = time.AfterFunc(s.interval, s.keepaliveTick)
}

// keepaliveTick sends KEEPALIVE_REQUEST, or drops a connection that has
// been silent for longer than two intervals plus the timeout.
func (s *session) keepaliveTick() {
	s.mu.Lock()
	if s.isDone() {
		s.mu.Unlock()
		return
	}
	silent := time.Since(time.Unix(0, s.lastRecv.Load()))
	if silent > 2*s.interval+s.timeout && s.timeout > 0 {
		s.mu.Unlock()
		s.shutdown(errorf("no answer from the MPS for %v", silent.Round(time.Millisecond)))
		return
	}
	s.cookie++
	cookie := s.cookie
	s.keepalive = time.AfterFunc(s.interval, s.keepaliveTick)
	s.mu.Unlock()
	if err := s.writeMsg(&apf.KeepaliveRequest{Cookie: cookie}); err != nil {
		s.shutdown(fmt.Errorf("%w: %v", errConnLost, err))
	}
}

// serve is the reader loop of an established session. An idle device
// waits in waitReadable rather than inside tls.Conn.Read, and the handling
// of a message happens in functions that are not inlined, so that the
// runtime can keep the goroutine's stack small.
func (s *session) serve(r *apf.Reader) error {
	for {
		msg, err := s.await(r)
		if err != nil {
			return err
		}
		if err := s.dispatch(msg); err != nil {
			return err
		}
	}
}

// await returns the next message, first without blocking (what TLS has
// already decrypted), then after the socket became readable.
//
//go:noinline
func (s *session) await(r *apf.Reader) (apf.Message, error) {
	if r.Buffered() == 0 && s.raw != nil {
		_ = s.conn.SetReadDeadline(time.Unix(1, 0))
		msg, err := s.read(r)
		_ = s.conn.SetReadDeadline(time.Time{})
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return msg, err
		}
		waitReadable(s.raw)
	}
	return s.read(r)
}

//go:noinline
func (s *session) dispatch(msg apf.Message) error {
	if handled, err := s.common(msg); err != nil || handled {
		return err
	}
	switch m := msg.(type) {
	case *apf.GlobalRequest:
		if m.WantReply {
			return s.writeMsg(&apf.RequestFailure{})
		}
		return nil
	}
	return s.protocolError("unexpected %s", apf.TypeName(msg.Type()))
}

// channelMsg handles the channel messages; it reports whether msg was one.
func (s *session) channelMsg(msg apf.Message) (bool, error) {
	switch m := msg.(type) {
	case *apf.ChannelOpen:
		return true, s.open(s.ctx, m)
	case *apf.ChannelData:
		if ch := s.channel(m.RecipientChannel); ch != nil {
			ch.deliver(m.Data)
		}
	case *apf.ChannelWindowAdjust:
		if ch := s.channel(m.RecipientChannel); ch != nil && !ch.adjust(m.BytesToAdd) {
			return true, s.protocolError("window of channel %d overflows", m.RecipientChannel)
		}
	case *apf.ChannelClose:
		if ch := s.channel(m.RecipientChannel); ch != nil {
			if ch.remoteClose() {
				_ = s.writeMsg(&apf.ChannelClose{RecipientChannel: ch.remote})
			}
			s.forget(ch)
		}
	default:
		return false, nil
	}
	return true, nil
}

// checkData refuses CHANNEL_DATA beyond the credit the device granted,
// before the payload is read.
func (s *session) checkData(recipient, n uint32) error {
	ch := s.channel(recipient)
	if ch == nil || ch.checkData(n) {
		return nil // data for a closed channel is discarded
	}
	_ = s.writeMsg(&apf.Disconnect{Reason: apf.DisconnectProtocolError})
	return errorf("protocol error: %d bytes beyond the window of channel %d", n, recipient)
}

func (s *session) channel(id uint32) *channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.channels[id]
}

func (s *session) forget(ch *channel) {
	s.mu.Lock()
	if s.channels[ch.id] == ch {
		delete(s.channels, ch.id)
	}
	reason := s.draining
	last := reason != nil && len(s.channels) == 0
	s.mu.Unlock()
	if last {
		s.shutdown(reason)
	}
}

// open answers CHANNEL_OPEN: a forwarded port with a service gets a
// channel and a goroutine serving it; anything else OPEN_FAILURE.
func (s *session) open(ctx context.Context, m *apf.ChannelOpen) error {
	fail := func(reason uint32) error {
		return s.writeMsg(&apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: reason})
	}
	if m.ChannelType != apf.ChannelForwardedTCPIP && m.ChannelType != apf.ChannelDirectTCPIP {
		return fail(apf.OpenUnknownChannelType)
	}
	if m.ConnectedPort > 65535 || !slices.Contains(forwardedPorts[:], uint16(m.ConnectedPort)) {
		return fail(apf.OpenConnectFailed)
	}
	port := uint16(m.ConnectedPort)
	handler := s.c.cfg.Services.ChannelHandler(port)
	if handler == nil {
		return fail(apf.OpenConnectFailed)
	}
	s.mu.Lock()
	if s.draining != nil {
		s.mu.Unlock()
		return fail(apf.OpenAdministrativelyProhibited)
	}
	if len(s.channels) >= s.c.cfg.MaxChannels {
		s.mu.Unlock()
		return fail(apf.OpenResourceShortage)
	}
	id := s.nextID
	s.nextID++
	ch := newChannel(s, id, m.SenderChannel, port, s.c.cfg.ChannelWindow, m.InitialWindow)
	s.channels[id] = ch
	s.mu.Unlock()
	if err := s.writeMsg(&apf.ChannelOpenConfirmation{RecipientChannel: m.SenderChannel, SenderChannel: id,
		InitialWindow: s.c.cfg.ChannelWindow, Reserved: 0xFFFFFFFF}); err != nil {
		return err
	}
	s.c.wg.Add(1)
	go func() {
		defer s.c.wg.Done()
		defer ch.Close()
		handler(ctx, ch)
	}()
	return nil
}

// closeChannel sends CHANNEL_CLOSE for a channel the device closed.
func (s *session) closeChannel(ch *channel, forget bool) {
	if forget {
		s.forget(ch)
	}
	if s.isDone() {
		return
	}
	_ = s.writeMsg(&apf.ChannelClose{RecipientChannel: ch.remote})
}

func (s *session) windowAdjust(remote, n uint32) {
	if s.isDone() {
		return
	}
	_ = s.writeMsg(&apf.ChannelWindowAdjust{RecipientChannel: remote, BytesToAdd: n})
}

// writeMsg writes one message as one TLS record.
func (s *session) writeMsg(m apf.Message) error {
	b, err := apf.Marshal(m)
	if err != nil {
		return err
	}
	return s.write(b)
}

func (s *session) writeData(remote uint32, p []byte) error {
	b := apf.AppendChannelDataHeader(make([]byte, 0, apf.ChannelDataHeaderLen+len(p)), remote, len(p))
	return s.write(append(b, p...))
}

func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c := s.conn
	if c == nil {
		return errConnLost
	}
	_ = c.SetWriteDeadline(time.Now().Add(s.c.cfg.WriteTimeout))
	_, err := c.Write(b)
	return err
}
