package mei

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/amtd-project/amtd/sim/hostif"
)

// DefaultWriteTimeout bounds Conn.Send: a write() to /dev/mei0 does not block
// indefinitely, and neither may Send.
const DefaultWriteTimeout = 3 * time.Second

// Conn is the host side of one MEI client connection over the socket: the
// equivalent of an open /dev/mei0 file descriptor after a successful
// IOCTL_MEI_CONNECT_CLIENT. Like a file descriptor it is meant for one user at
// a time: Send/Recv pairs must not be interleaved by concurrent callers.
type Conn struct {
	c       net.Conn
	guid    [16]byte
	maxLen  uint32
	version uint8
	buf     []byte

	// WriteTimeout bounds each Send; DefaultWriteTimeout when zero.
	WriteTimeout time.Duration

	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the MEI socket at path and connects the MEI client guid
// (binary form, e.g. GUIDIAMTHIF). A refusal by the device is a *ConnectError
// that unwraps to the errno (syscall.ENOTTY for an unknown client,
// syscall.ENODEV for a disabled device, syscall.EBUSY).
func Dial(ctx context.Context, path string, guid [16]byte) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	conn, err := handshakeClient(c, guid)
	if !stop() {
		c.Close()
		return nil, fmt.Errorf("mei: connect client: %w", ctx.Err())
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}

func handshakeClient(c net.Conn, guid [16]byte) (*Conn, error) {
	if _, err := c.Write(appendFrame(nil, guid[:])); err != nil {
		return nil, fmt.Errorf("mei: send GUID frame: %w", err)
	}
	var hdr [frameHeaderLen]byte
	n, err := readFrameLen(c, &hdr)
	if err != nil {
		return nil, fmt.Errorf("mei: read connect reply: %w", err)
	}
	if n != connectReplyN {
		return nil, ErrBadHandshake
	}
	var rep [connectReplyN]byte
	if _, err := io.ReadFull(c, rep[:]); err != nil {
		return nil, fmt.Errorf("mei: read connect reply: %w", err)
	}
	if st := binary.LittleEndian.Uint32(rep[0:4]); st != 0 {
		return nil, &ConnectError{Errno: syscall.Errno(st)}
	}
	maxLen := binary.LittleEndian.Uint32(rep[4:8])
	if maxLen == 0 {
		return nil, ErrBadHandshake
	}
	return &Conn{c: c, guid: guid, maxLen: maxLen, version: rep[8]}, nil
}

// MaxMessageLength is the length negotiated at connect.
func (c *Conn) MaxMessageLength() uint32 { return c.maxLen }

// ProtocolVersion is the MEI client protocol version from the connect reply.
func (c *Conn) ProtocolVersion() uint8 { return c.version }

// GUID is the connected MEI client.
func (c *Conn) GUID() [16]byte { return c.guid }

// Send writes one HECI message as one frame (the write() equivalent). It
// fails without writing when msg is empty or longer than MaxMessageLength.
func (c *Conn) Send(msg []byte) error {
	if len(msg) == 0 {
		return ErrEmptyFrame
	}
	if uint32(len(msg)) > c.maxLen {
		return ErrFrameTooLarge
	}
	wt := c.WriteTimeout
	if wt <= 0 {
		wt = DefaultWriteTimeout
	}
	_ = c.c.SetWriteDeadline(time.Now().Add(wt))
	_, err := c.c.Write(appendFrame(make([]byte, 0, frameHeaderLen+len(msg)), msg))
	return err
}

// Recv reads one HECI message (the read() equivalent), waiting until ctx
// ends. The returned slice is valid until the next Recv.
func (c *Conn) Recv(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	_ = c.c.SetReadDeadline(time.Time{})
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.c.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // never leave a late deadline behind for the next Recv
		}
	}()
	msg, err := readFrame(c.c, c.buf, c.maxLen)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	c.buf = msg[:cap(msg)]
	return msg, nil
}

// Close closes the MEI client connection.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.c.Close() })
	return c.closeErr
}

// Call sends one PTHI request and returns the response status and the body
// after the status. It checks that the response code is cmd|ResponseBit and
// that the header Length is exact. A non-zero status is returned, not an
// error.
func (c *Conn) Call(ctx context.Context, cmd uint32, body []byte) (status uint32, resp []byte, err error) {
	if err := c.Send(EncodePTHIRequest(cmd, body)); err != nil {
		return 0, nil, err
	}
	msg, err := c.Recv(ctx)
	if err != nil {
		return 0, nil, err
	}
	h, err := ParsePTHIHeader(msg)
	if err != nil {
		return 0, nil, err
	}
	if h.Command != cmd|ResponseBit {
		return 0, nil, fmt.Errorf("mei: response code 0x%08X to request 0x%08X", h.Command, cmd)
	}
	if int(h.Length) != len(msg)-pthiHeaderLen || h.Length < 4 {
		return 0, nil, fmt.Errorf("mei: response 0x%08X: header length %d for %d bytes", h.Command, h.Length, len(msg))
	}
	return binary.LittleEndian.Uint32(msg[12:16]), append([]byte(nil), msg[16:]...), nil
}

// call is Call with a non-zero status turned into *StatusError and a minimum
// body length enforced.
func (c *Conn) call(ctx context.Context, cmd uint32, body []byte, minResp int) ([]byte, error) {
	st, resp, err := c.Call(ctx, cmd, body)
	if err != nil {
		return nil, err
	}
	if st != hostif.StatusSuccess {
		return nil, &StatusError{Command: cmd, Status: st}
	}
	if len(resp) < minResp {
		return nil, fmt.Errorf("mei: response 0x%08X too short: %d bytes after status, want %d", cmd|ResponseBit, len(resp), minResp)
	}
	return resp, nil
}

// GetControlMode: 0 pre-provisioning, 1 CCM, 2 ACM.
func (c *Conn) GetControlMode(ctx context.Context) (uint32, error) {
	b, err := c.call(ctx, CmdGetControlMode, nil, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// GetProvisioningState: 0 PRE, 1 IN, 2 POST.
func (c *Conn) GetProvisioningState(ctx context.Context) (uint32, error) {
	b, err := c.call(ctx, CmdGetProvisioningState, nil, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// GetUUID returns the UUID in SMBIOS byte order; FormatGUID renders it.
func (c *Conn) GetUUID(ctx context.Context) ([16]byte, error) {
	var u [16]byte
	b, err := c.call(ctx, CmdGetUUID, nil, 16)
	if err != nil {
		return u, err
	}
	copy(u[:], b)
	return u, nil
}

// CodeVersions is the GetCodeVersions answer.
type CodeVersions struct {
	BIOS    string
	Entries []hostif.VersionEntry
}

// Get returns the version of the entry whose description is exactly desc.
func (v CodeVersions) Get(desc string) (string, bool) {
	for _, e := range v.Entries {
		if e.Description == desc {
			return e.Version, true
		}
	}
	return "", false
}

// GetCodeVersions reads the BIOS version and the firmware version table. As
// rpc-go does, a description is its first `length` bytes and a version is
// its 20-byte field with NUL bytes removed.
func (c *Conn) GetCodeVersions(ctx context.Context) (CodeVersions, error) {
	var v CodeVersions
	b, err := c.call(ctx, CmdGetCodeVersions, nil, biosVersionLen+4)
	if err != nil {
		return v, err
	}
	v.BIOS = string(bytes.TrimRight(b[:biosVersionLen], "\x00"))
	n := binary.LittleEndian.Uint32(b[biosVersionLen:])
	if n > maxVersionEntries || len(b) < biosVersionLen+4+int(n)*versionEntryLen {
		return v, fmt.Errorf("mei: GetCodeVersions: %d entries in %d bytes", n, len(b))
	}
	p := b[biosVersionLen+4:]
	for range n {
		dl := min(int(binary.LittleEndian.Uint16(p[0:2])), unicodeStringLen)
		desc := string(p[2 : 2+dl])
		ver := string(bytes.ReplaceAll(p[24:24+unicodeStringLen], []byte{0}, nil))
		v.Entries = append(v.Entries, hostif.VersionEntry{Description: desc, Version: ver})
		p = p[versionEntryLen:]
	}
	return v, nil
}

// GetLocalSystemAccount returns the LSA credentials (NUL bytes dropped).
func (c *Conn) GetLocalSystemAccount(ctx context.Context) (username, password string, err error) {
	b, err := c.call(ctx, CmdGetLocalSystemAccount, make([]byte, lsaRequestBodyLen), 2*lsaFieldLen)
	if err != nil {
		return "", "", err
	}
	drop := func(p []byte) string { return string(bytes.ReplaceAll(p, []byte{0}, nil)) }
	return drop(b[:lsaFieldLen]), drop(b[lsaFieldLen : 2*lsaFieldLen]), nil
}

// GetLANInterfaceSettings queries interface 0 (wired) or 1 (wireless).
func (c *Conn) GetLANInterfaceSettings(ctx context.Context, index uint32) (hostif.LANSettings, error) {
	var s hostif.LANSettings
	b, err := c.call(ctx, CmdGetLANInterfaceSettings, binary.LittleEndian.AppendUint32(nil, index), 20)
	if err != nil {
		return s, err
	}
	s.Enabled = binary.LittleEndian.Uint32(b[0:4]) != 0
	binary.BigEndian.PutUint32(s.IPv4[:], binary.LittleEndian.Uint32(b[4:8]))
	s.DHCPEnabled = binary.LittleEndian.Uint32(b[8:12]) != 0
	s.DHCPMode = b[12]
	s.LinkUp = b[13] == 1
	copy(s.MAC[:], b[14:20])
	return s, nil
}

// EnumerateHashHandles lists the handles of the trusted root hash table.
func (c *Conn) EnumerateHashHandles(ctx context.Context) ([]uint32, error) {
	b, err := c.call(ctx, CmdEnumerateHashHandles, nil, 4)
	if err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(len(b)-4) < 4*uint64(n) {
		return nil, fmt.Errorf("mei: EnumerateHashHandles: %d handles in %d bytes", n, len(b))
	}
	hs := make([]uint32, n)
	for i := range hs {
		hs[i] = binary.LittleEndian.Uint32(b[4+4*i:])
	}
	return hs, nil
}

// GetCertHashEntry reads one entry; Hash is cut to the algorithm's size.
func (c *Conn) GetCertHashEntry(ctx context.Context, handle uint32) (hostif.CertHashEntry, error) {
	e := hostif.CertHashEntry{Handle: handle}
	b, err := c.call(ctx, CmdGetCertHashEntry, binary.LittleEndian.AppendUint32(nil, handle), 75)
	if err != nil {
		return e, err
	}
	e.IsDefault = binary.LittleEndian.Uint32(b[0:4]) != 0
	e.IsActive = binary.LittleEndian.Uint32(b[4:8]) != 0
	e.Algorithm = b[72]
	size := HashSize(e.Algorithm)
	if size == 0 {
		return e, fmt.Errorf("mei: GetCertHashEntry %d: unknown hash algorithm %d", handle, e.Algorithm)
	}
	e.Hash = append([]byte(nil), b[8:8+size]...)
	nl := int(binary.LittleEndian.Uint16(b[73:75]))
	if len(b) < 75+nl {
		return e, fmt.Errorf("mei: GetCertHashEntry %d: name length %d exceeds message", handle, nl)
	}
	e.Name = string(b[75 : 75+nl])
	return e, nil
}

// CertHashes runs EnumerateHashHandles then GetCertHashEntry for every
// handle on this connection, as rpc-go does.
func (c *Conn) CertHashes(ctx context.Context) ([]hostif.CertHashEntry, error) {
	hs, err := c.EnumerateHashHandles(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]hostif.CertHashEntry, 0, len(hs))
	for _, h := range hs {
		e, err := c.GetCertHashEntry(ctx, h)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// GetPKIFQDNSuffix returns the PKI DNS suffix as the firmware stores it
// (rpc-go trims whitespace and a trailing dot itself).
func (c *Conn) GetPKIFQDNSuffix(ctx context.Context) (string, error) {
	b, err := c.call(ctx, CmdGetPKIFQDNSuffix, nil, 2)
	if err != nil {
		return "", err
	}
	return readANSI(b)
}

// RemoteAccessStatus is the GetRemoteAccessConnectionStatus answer.
type RemoteAccessStatus struct {
	NetworkStatus uint32 // 0 direct, 1 VPN, 2 outside enterprise
	RemoteStatus  uint32 // 0 not connected, 1 connecting, 2 connected
	Trigger       uint32 // 0 user, 1 alert, 2 periodic, 3 provisioning
	MPSHostname   string
}

// GetRemoteAccessConnectionStatus (amtinfo).
func (c *Conn) GetRemoteAccessConnectionStatus(ctx context.Context) (RemoteAccessStatus, error) {
	var r RemoteAccessStatus
	b, err := c.call(ctx, CmdGetRemoteAccessConnectionStatus, nil, 14)
	if err != nil {
		return r, err
	}
	r.NetworkStatus = binary.LittleEndian.Uint32(b[0:4])
	r.RemoteStatus = binary.LittleEndian.Uint32(b[4:8])
	r.Trigger = binary.LittleEndian.Uint32(b[8:12])
	r.MPSHostname, err = readANSI(b[12:])
	return r, err
}

// Unprovision (CCM only; the firmware answers INVALID_AMT_MODE in ACM, which
// is returned as *StatusError).
func (c *Conn) Unprovision(ctx context.Context, mode uint32) error {
	_, err := c.call(ctx, CmdUnprovision, binary.LittleEndian.AppendUint32(nil, mode), 0)
	return err
}

// StartConfigurationHBased sends the server leaf hash (alg 2 SHA-256 or 3
// SHA-384) with HostVPNEnable 0 and an empty suffix list, as rpc-go does, and
// returns AMT's TLS leaf hash cut to its algorithm's size.
func (c *Conn) StartConfigurationHBased(ctx context.Context, alg uint8, serverHash []byte) (amtAlg uint8, amtHash []byte, err error) {
	if len(serverHash) > certHashMaxLen {
		return 0, nil, errors.New("mei: StartConfigurationHBased: hash longer than 64 bytes")
	}
	body := make([]byte, startConfigBodyLen)
	body[0] = alg
	copy(body[1:65], serverHash)
	b, err := c.call(ctx, CmdStartConfigurationHBased, body, 1+certHashMaxLen)
	if err != nil {
		return 0, nil, err
	}
	size := HashSize(b[0])
	if size == 0 {
		size = certHashMaxLen
	}
	return b[0], append([]byte(nil), b[1:1+size]...), nil
}

// StopConfiguration cancels an IN-provisioning state.
func (c *Conn) StopConfiguration(ctx context.Context) error {
	_, err := c.call(ctx, CmdStopConfiguration, nil, 0)
	return err
}

// IsChangeToAMTEnabled (MEI_WDIF) returns the flag byte (ChangeFlag*).
func (c *Conn) IsChangeToAMTEnabled(ctx context.Context) (uint8, error) {
	if err := c.Send(wdifIsChangeToAMTEnabled[:]); err != nil {
		return 0, err
	}
	msg, err := c.Recv(ctx)
	if err != nil {
		return 0, err
	}
	return msg[0], nil
}

// SetAmtOperationalState (MEI_WDIF) returns the status of the request.
func (c *Conn) SetAmtOperationalState(ctx context.Context, enabled bool) (uint32, error) {
	req := []byte{wdifSetAmtOperationalState[0], wdifSetAmtOperationalState[1],
		wdifSetAmtOperationalState[2], wdifSetAmtOperationalState[3], 0}
	if enabled {
		req[4] = 1
	}
	if err := c.Send(req); err != nil {
		return 0, err
	}
	msg, err := c.Recv(ctx)
	if err != nil {
		return 0, err
	}
	if len(msg) < 8 {
		return 0, fmt.Errorf("mei: SetAmtOperationalState: %d-byte response", len(msg))
	}
	return binary.LittleEndian.Uint32(msg[4:8]), nil
}

func readANSI(b []byte) (string, error) {
	if len(b) < 2 {
		return "", errors.New("mei: AMT_ANSI_STRING truncated")
	}
	n := int(binary.LittleEndian.Uint16(b))
	if len(b) < 2+n {
		return "", fmt.Errorf("mei: AMT_ANSI_STRING length %d exceeds message", n)
	}
	return string(b[2 : 2+n]), nil
}
