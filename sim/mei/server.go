// Package mei is amtd's "MEI over a Unix socket" (spec/heci.md §8): the
// simulated device side, serving the PTHI (MEI_IAMTHIF) and watchdog
// (MEI_WDIF) clients of one device backed by a hostif.Firmware, a Fleet that
// serves many devices' sockets from one goroutine, and the host side (Dial,
// Conn, Host) used by host tools and sim/agent.
//
// The package is an independent implementation of the device and host
// interface; it never imports server packages.
package mei

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/amtd-project/amtd/sim/hostif"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Logger receives debug events (connects, protocol errors). Defaults to
	// slog.Default(). Secrets (LSA password) are never logged.
	Logger *slog.Logger
	// MaxMessageLength announced for MEI_IAMTHIF; default 4096 (rpc-go needs
	// ≥ 4096). Longer request frames close the connection.
	MaxMessageLength uint32
	// WDIFMaxMessageLength announced for MEI_WDIF; default 512.
	WDIFMaxMessageLength uint32
	// ProtocolVersion announced in the connect reply; default 1.
	ProtocolVersion uint8
	// Latency is added before every response (simulated firmware time).
	// Commands of one device are processed one at a time, so latency
	// serialises too.
	Latency time.Duration
	// HandshakeTimeout bounds the wait for the GUID frame after a socket
	// connect; default 10s.
	HandshakeTimeout time.Duration
}

// Optional interfaces a hostif.Firmware may implement to extend what the
// host interface can report or change. Without them the server uses the
// defaults documented on each.

// Availability lets the firmware report its ME as unavailable: every connect
// is then refused with ENODEV. Default: available.
type Availability interface {
	MEIAvailable() bool
}

// OperationalStateSetter implements WDIF SetAmtOperationalState; it returns
// a PTHI status. Default: SUCCESS when the requested state equals the current
// one (IsChangeToAMTEnabled bit 0x02), otherwise NOT_PERMITTED.
type OperationalStateSetter interface {
	SetAMTOperationalState(enabled bool) uint32
}

// RemoteAccessReporter answers GetRemoteAccessConnectionStatus (§4.13).
// Default: direct LAN, not connected, user-initiated, empty MPS hostname.
type RemoteAccessReporter interface {
	RemoteAccessConnectionStatus() (networkStatus, remoteStatus, trigger uint32, mpsHostname string)
}

// Server serves the MEI host interface of one simulated device. Its idle cost
// is this struct; connections cost one goroutine each while open.
type Server struct {
	fw   hostif.Firmware
	opts Options
	log  *slog.Logger
	// cmdMu processes MEI commands one at a time per device (§8.3).
	cmdMu sync.Mutex
}

// NewServer returns a Server for the device fw.
func NewServer(fw hostif.Firmware, opts Options) *Server {
	if opts.MaxMessageLength == 0 {
		opts.MaxMessageLength = 4096
	}
	if opts.WDIFMaxMessageLength == 0 {
		opts.WDIFMaxMessageLength = 512
	}
	if opts.ProtocolVersion == 0 {
		opts.ProtocolVersion = 1
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{fw: fw, opts: opts, log: log}
}

// ListenAndServe creates the listening socket at path (replacing a stale
// socket file, never another kind of file) and serves it until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, path string) error {
	l, err := listenUnix(path)
	if err != nil {
		return err
	}
	return s.Serve(ctx, l)
}

// Serve accepts connections on l until ctx ends or l fails, serving each on
// its own goroutine. It closes l, waits for its connections to finish (they
// are closed when ctx ends) and returns nil after a ctx-initiated shutdown.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	defer l.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAcceptError(err) {
				backoff = nextBackoff(backoff)
				s.log.Warn("mei: accept", "err", err, "retry_in", backoff)
				if waitCtx(ctx, backoff) != nil {
					return nil
				}
				continue
			}
			return err
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.ServeConn(ctx, c)
		}()
	}
}

// clientKind is the MEI client a connection is attached to.
type clientKind int

const (
	clientPTHI clientKind = iota + 1
	clientWDIF
)

// ServeConn runs the handshake and the request/response loop on one socket
// connection (one MEI client connection) and closes c when done: at EOF, on a
// protocol error, or when ctx ends.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	kind, maxLen, ok := s.handshake(c)
	if !ok {
		return
	}
	buf := make([]byte, maxLen)
	for {
		req, err := readFrame(c, buf, maxLen)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Debug("mei: closing connection", "err", err)
			}
			return
		}
		resp, ok := s.process(ctx, kind, req)
		if !ok {
			s.log.Debug("mei: malformed request, closing connection", "len", len(req))
			return
		}
		if uint32(len(resp)) > maxLen { // never send more than negotiated
			s.log.Error("mei: response exceeds MaxMessageLength", "len", len(resp), "max", maxLen)
			return
		}
		if _, err := c.Write(appendFrame(make([]byte, 0, frameHeaderLen+len(resp)), resp)); err != nil {
			return
		}
	}
}

// handshake reads the GUID frame and answers with the connect reply.
func (s *Server) handshake(c net.Conn) (clientKind, uint32, bool) {
	_ = c.SetReadDeadline(time.Now().Add(s.opts.HandshakeTimeout))
	var hdr [frameHeaderLen]byte
	n, err := readFrameLen(c, &hdr)
	if err != nil || n != guidFrameLen {
		if err == nil {
			s.log.Debug("mei: first frame is not a 16-byte GUID", "len", n)
		}
		return 0, 0, false
	}
	var guid [16]byte
	if _, err := io.ReadFull(c, guid[:]); err != nil {
		return 0, 0, false
	}
	_ = c.SetReadDeadline(time.Time{})

	var (
		kind   clientKind
		maxLen uint32
		errno  uint32
	)
	switch {
	case !s.available():
		errno = uint32(ErrnoENODEV)
	case guid == GUIDIAMTHIF:
		kind, maxLen = clientPTHI, s.opts.MaxMessageLength
	case guid == GUIDWDIF:
		kind, maxLen = clientWDIF, s.opts.WDIFMaxMessageLength
	default:
		errno = uint32(ErrnoENOTTY)
	}
	if errno != 0 {
		s.log.Debug("mei: connect refused", "guid", FormatGUID(guid), "errno", errno)
		_, _ = c.Write(connectReply(errno, 0, 0))
		return 0, 0, false
	}
	if _, err := c.Write(connectReply(0, maxLen, s.opts.ProtocolVersion)); err != nil {
		return 0, 0, false
	}
	return kind, maxLen, true
}

func (s *Server) available() bool {
	if a, ok := s.fw.(Availability); ok {
		return a.MEIAvailable()
	}
	return true
}

// process handles one request under the per-device command lock. ok false
// means the request cannot be answered and the connection must close.
func (s *Server) process(ctx context.Context, kind clientKind, req []byte) ([]byte, bool) {
	s.cmdMu.Lock()
	defer s.cmdMu.Unlock()
	if s.opts.Latency > 0 && waitCtx(ctx, s.opts.Latency) != nil {
		return nil, false
	}
	if kind == clientWDIF {
		return s.handleWDIF(req)
	}
	return s.handlePTHI(req)
}

// handlePTHI answers one PTHI request. A message shorter than the header
// cannot be answered (ok false). Otherwise the response always carries the
// request code with ResponseBit and an exact Length.
func (s *Server) handlePTHI(req []byte) ([]byte, bool) {
	h, err := ParsePTHIHeader(req)
	if err != nil {
		return nil, false
	}
	body := req[pthiHeaderLen:]
	cmd := h.Command
	if h.Length != uint32(len(body)) {
		return statusOnly(cmd, hostif.StatusInvalidMsgLength), true
	}
	if n, known := requestBodyLen(cmd); known && len(body) != n {
		return statusOnly(cmd, hostif.StatusInvalidMsgLength), true
	}
	maxLen := int(s.opts.MaxMessageLength)
	var resp []byte
	switch cmd {
	case CmdGetControlMode:
		r := newResponse(cmd, hostif.StatusSuccess, 4)
		r.u32(s.fw.ControlMode())
		resp = r.finish()
	case CmdGetProvisioningState:
		r := newResponse(cmd, hostif.StatusSuccess, 4)
		r.u32(s.fw.ProvisioningState())
		resp = r.finish()
	case CmdGetUUID:
		u := s.fw.UUID()
		r := newResponse(cmd, hostif.StatusSuccess, 16)
		r.b = append(r.b, u[:]...)
		resp = r.finish()
	case CmdGetCodeVersions:
		resp = s.codeVersions(maxLen)
	case CmdGetLocalSystemAccount:
		user, pass := s.fw.LocalSystemAccount()
		r := newResponse(cmd, hostif.StatusSuccess, 2*lsaFieldLen)
		r.padded(truncate(user, lsaFieldLen-1), lsaFieldLen)
		r.padded(truncate(pass, lsaFieldLen-1), lsaFieldLen)
		resp = r.finish()
	case CmdGetLANInterfaceSettings:
		resp = s.lanSettings(binary.LittleEndian.Uint32(body))
	case CmdEnumerateHashHandles:
		entries := s.fw.CertHashes()
		n := min(len(entries), max(0, (maxLen-pthiHeaderLen-8)/4))
		r := newResponse(cmd, hostif.StatusSuccess, 4+4*n)
		r.u32(uint32(n))
		for _, e := range entries[:n] {
			r.u32(e.Handle)
		}
		resp = r.finish()
	case CmdGetCertHashEntry:
		resp = s.certHashEntry(binary.LittleEndian.Uint32(body), maxLen)
	case CmdGetPKIFQDNSuffix:
		suffix := truncate(s.fw.PKIDNSSuffix(), max(0, maxLen-pthiHeaderLen-6))
		r := newResponse(cmd, hostif.StatusSuccess, 2+len(suffix))
		r.ansi(string(suffix))
		resp = r.finish()
	case CmdGetRemoteAccessConnectionStatus:
		var netSt, remote, trigger uint32
		var mps string
		if rr, ok := s.fw.(RemoteAccessReporter); ok {
			netSt, remote, trigger, mps = rr.RemoteAccessConnectionStatus()
		}
		host := truncate(mps, max(0, maxLen-pthiHeaderLen-18))
		r := newResponse(cmd, hostif.StatusSuccess, 14+len(host))
		r.u32(netSt)
		r.u32(remote)
		r.u32(trigger)
		r.ansi(string(host))
		resp = r.finish()
	case CmdUnprovision:
		// mode (body) is ignored per Intel; the firmware enforces CCM-only.
		resp = statusOnly(cmd, s.fw.Unprovision())
	case CmdStartConfigurationHBased:
		resp = s.startConfigurationHBased(body)
	case CmdStopConfiguration:
		resp = statusOnly(cmd, s.fw.StopConfiguration())
	default:
		if r, ok := s.legacyPTHI(cmd, body); ok {
			resp = r
			break
		}
		resp = statusOnly(cmd, hostif.StatusInvalidParameter)
	}
	if len(resp) > maxLen {
		resp = statusOnly(cmd, hostif.StatusInternalError)
	}
	return resp, true
}

// requestBodyLen is the exact request Length of a known PTHI command.
func requestBodyLen(cmd uint32) (int, bool) {
	switch cmd {
	case CmdGetControlMode, CmdGetProvisioningState, CmdGetUUID, CmdGetCodeVersions,
		CmdEnumerateHashHandles, CmdGetPKIFQDNSuffix, CmdGetRemoteAccessConnectionStatus,
		CmdStopConfiguration, CmdGetZeroTouchEnabled:
		return 0, true
	case CmdStartConfigurationEx:
		return 4, true
	case CmdGetLANInterfaceSettings, CmdGetCertHashEntry, CmdUnprovision:
		return 4, true
	case CmdGetLocalSystemAccount:
		return lsaRequestBodyLen, true
	case CmdStartConfigurationHBased:
		return startConfigBodyLen, true
	}
	return 0, false
}

func (s *Server) codeVersions(maxLen int) []byte {
	bios, entries := s.fw.CodeVersions()
	fixed := pthiHeaderLen + 4 + biosVersionLen + 4
	n := min(len(entries), maxVersionEntries, max(0, (maxLen-fixed)/versionEntryLen))
	r := newResponse(CmdGetCodeVersions, hostif.StatusSuccess, biosVersionLen+4+n*versionEntryLen)
	r.padded(truncate(bios, biosVersionLen-1), biosVersionLen)
	r.u32(uint32(n))
	for _, e := range entries[:n] {
		d := truncate(e.Description, unicodeStringLen)
		v := truncate(e.Version, unicodeStringLen)
		r.u16(uint16(len(d)))
		r.padded(d, unicodeStringLen)
		r.u16(uint16(len(v)))
		r.padded(v, unicodeStringLen)
	}
	return r.finish()
}

func (s *Server) lanSettings(index uint32) []byte {
	if index > 1 {
		return statusOnly(CmdGetLANInterfaceSettings, hostif.StatusInvalidParameter)
	}
	st, ok := s.fw.LANInterface(index)
	if !ok {
		return statusOnly(CmdGetLANInterfaceSettings, hostif.StatusInvalidParameter)
	}
	r := newResponse(CmdGetLANInterfaceSettings, hostif.StatusSuccess, 20)
	r.boolean(st.Enabled)
	r.u32(binary.BigEndian.Uint32(st.IPv4[:])) // first octet = most significant byte
	r.boolean(st.DHCPEnabled)
	r.u8(st.DHCPMode)
	if st.LinkUp {
		r.u8(1)
	} else {
		r.u8(0)
	}
	r.b = append(r.b, st.MAC[:]...)
	return r.finish()
}

func (s *Server) certHashEntry(handle uint32, maxLen int) []byte {
	for _, e := range s.fw.CertHashes() {
		if e.Handle != handle {
			continue
		}
		name := truncate(e.Name, max(0, maxLen-pthiHeaderLen-4-79))
		r := newResponse(CmdGetCertHashEntry, hostif.StatusSuccess, 79+len(name))
		r.boolean(e.IsDefault)
		r.boolean(e.IsActive)
		r.padded(e.Hash, certHashMaxLen)
		r.u8(e.Algorithm)
		r.u16(uint16(len(name)))
		r.b = append(r.b, name...)
		return r.finish()
	}
	return statusOnly(CmdGetCertHashEntry, hostif.StatusInvalidHandle)
}

func (s *Server) startConfigurationHBased(body []byte) []byte {
	alg := body[0]
	size := HashSize(alg)
	suffixLen := binary.LittleEndian.Uint32(body[66:70])
	if (alg != 2 && alg != 3) || suffixLen > startConfigSuffixMax {
		return statusOnly(CmdStartConfigurationHBased, hostif.StatusInvalidParameter)
	}
	hash := append([]byte(nil), body[1:1+size]...)
	status, amtAlg, amtHash := s.fw.StartConfigurationHBased(alg, hash)
	if status != hostif.StatusSuccess {
		return statusOnly(CmdStartConfigurationHBased, status)
	}
	r := newResponse(CmdStartConfigurationHBased, status, 1+certHashMaxLen)
	r.u8(amtAlg)
	r.padded(amtHash, certHashMaxLen)
	return r.finish()
}

// handleWDIF answers one watchdog-client request (§4.15). Requests shorter
// than the 4-byte header cannot be answered.
func (s *Server) handleWDIF(req []byte) ([]byte, bool) {
	if len(req) < 4 {
		return nil, false
	}
	var hdr [4]byte
	copy(hdr[:], req)
	switch {
	case hdr == wdifIsChangeToAMTEnabled && len(req) == 4:
		// Host tools read only the first byte: the flag set.
		return []byte{s.fw.WatchdogFlags()}, true
	case hdr == wdifSetAmtOperationalState && len(req) == 5:
		enable := req[4] != 0
		var status uint32
		if setter, ok := s.fw.(OperationalStateSetter); ok {
			status = setter.SetAMTOperationalState(enable)
		} else if (s.fw.WatchdogFlags()&ChangeFlagAMTEnabled != 0) == enable {
			status = hostif.StatusSuccess
		} else {
			status = hostif.StatusNotPermitted
		}
		return binary.LittleEndian.AppendUint32(hdr[:], status), true
	}
	return binary.LittleEndian.AppendUint32(hdr[:], hostif.StatusInvalidParameter), true
}

// truncate returns s as bytes, cut to at most n bytes.
func truncate(s string, n int) []byte {
	if len(s) > n {
		s = s[:n]
	}
	return []byte(s)
}

func waitCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// isTemporaryAcceptError reports accept errors worth retrying (descriptor
// exhaustion, aborted connections).
func isTemporaryAcceptError(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM)
}

func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// listenUnix listens on a Unix socket at path, first removing a stale socket
// file left there (but never a file of another kind).
func listenUnix(path string) (*net.UnixListener, error) {
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return &fs.PathError{Op: "listen", Path: path, Err: errors.New("exists and is not a socket")}
	}
	return os.Remove(path)
}
