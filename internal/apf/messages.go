package apf

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
)

// Message is any APF message. The pointer types of this package implement it.
//
// AppendBinary appends the wire encoding; it fails only for values that no
// layout can carry (a string longer than 2^32-1, a USERAUTH_REQUEST method
// other than password or none). UnmarshalBinary decodes exactly one whole
// message; byte-slice fields (ChannelData.Data, GlobalRequest.Data) alias
// the input, strings are copied.
type Message interface {
	Type() byte
	AppendBinary(b []byte) ([]byte, error)
	MarshalBinary() ([]byte, error)
	UnmarshalBinary(b []byte) error
}

// Marshal returns the wire encoding of m.
func Marshal(m Message) ([]byte, error) { return m.AppendBinary(nil) }

// Unmarshal decodes one whole message (as returned by Reader.Next). The
// concrete type is a pointer to one of this package's message structs.
func Unmarshal(b []byte) (Message, error) {
	if len(b) == 0 {
		return nil, ErrTruncated
	}
	var m Message
	switch b[0] {
	case MsgDisconnect:
		m = new(Disconnect)
	case MsgServiceRequest:
		m = new(ServiceRequest)
	case MsgServiceAccept:
		m = new(ServiceAccept)
	case MsgUserAuthRequest:
		m = new(UserAuthRequest)
	case MsgUserAuthFailure:
		m = new(UserAuthFailure)
	case MsgUserAuthSuccess:
		m = new(UserAuthSuccess)
	case MsgGlobalRequest:
		m = new(GlobalRequest)
	case MsgRequestSuccess:
		m = new(RequestSuccess)
	case MsgRequestFailure:
		m = new(RequestFailure)
	case MsgChannelOpen:
		m = new(ChannelOpen)
	case MsgChannelOpenConfirmation:
		m = new(ChannelOpenConfirmation)
	case MsgChannelOpenFailure:
		m = new(ChannelOpenFailure)
	case MsgChannelWindowAdjust:
		m = new(ChannelWindowAdjust)
	case MsgChannelData:
		m = new(ChannelData)
	case MsgChannelClose:
		m = new(ChannelClose)
	case MsgProtocolVersion:
		m = new(ProtocolVersion)
	case MsgKeepaliveRequest:
		m = new(KeepaliveRequest)
	case MsgKeepaliveReply:
		m = new(KeepaliveReply)
	case MsgKeepaliveOptionsRequest:
		m = new(KeepaliveOptionsRequest)
	case MsgKeepaliveOptionsReply:
		m = new(KeepaliveOptionsReply)
	default:
		return nil, UnknownTypeError(b[0])
	}
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return m, nil
}

// ---- encoding helpers ----

func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendString(b []byte, s string) ([]byte, error) {
	if uint64(len(s)) > math.MaxUint32 {
		return b, fmt.Errorf("apf: string of %d bytes: %w", len(s), ErrTooLong)
	}
	b = appendU32(b, uint32(len(s)))
	return append(b, s...), nil
}

func appendBytes(b, s []byte) ([]byte, error) {
	if uint64(len(s)) > math.MaxUint32 {
		return b, fmt.Errorf("apf: field of %d bytes: %w", len(s), ErrTooLong)
	}
	b = appendU32(b, uint32(len(s)))
	return append(b, s...), nil
}

// ---- decoding helpers ----

// decoder walks a message; the first error sticks and later reads return
// zero values.
type decoder struct {
	b   []byte
	err error
}

func newDecoder(b []byte, typ byte) decoder {
	d := decoder{b: b}
	switch {
	case len(b) == 0:
		d.err = ErrTruncated
	case b[0] != typ:
		d.err = fmt.Errorf("%w: have %s, want %s", ErrWrongType, TypeName(b[0]), TypeName(typ))
	default:
		d.b = b[1:]
	}
	return d
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = ErrTruncated
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8() byte {
	p := d.take(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *decoder) boolean() bool { return d.u8() != 0 }

func (d *decoder) u16() uint16 {
	p := d.take(2)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

func (d *decoder) u32() uint32 {
	p := d.take(4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (d *decoder) bytes() []byte {
	n := d.u32()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.b)) {
		d.err = ErrTruncated
		return nil
	}
	return d.take(int(n))
}

func (d *decoder) str() string { return string(d.bytes()) }

func (d *decoder) finish() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return ErrTrailingData
	}
	return nil
}

func marshal(m Message) ([]byte, error) { return m.AppendBinary(nil) }

// ---- DISCONNECT ----

// Disconnect is APF_DISCONNECT (7 bytes).
type Disconnect struct {
	Reason   uint32
	Reserved uint16 // zero on the wire
}

func (*Disconnect) Type() byte { return MsgDisconnect }

func (m *Disconnect) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, MsgDisconnect)
	b = appendU32(b, m.Reason)
	return binary.BigEndian.AppendUint16(b, m.Reserved), nil
}

func (m *Disconnect) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *Disconnect) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgDisconnect)
	m.Reason = d.u32()
	m.Reserved = d.u16()
	return d.finish()
}

// ---- SERVICE_REQUEST / SERVICE_ACCEPT ----

// ServiceRequest is APF_SERVICE_REQUEST (5 + N bytes).
type ServiceRequest struct{ Service string }

func (*ServiceRequest) Type() byte { return MsgServiceRequest }

func (m *ServiceRequest) AppendBinary(b []byte) ([]byte, error) {
	return appendString(append(b, MsgServiceRequest), m.Service)
}

func (m *ServiceRequest) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ServiceRequest) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgServiceRequest)
	m.Service = d.str()
	return d.finish()
}

// ServiceAccept is APF_SERVICE_ACCEPT (5 + N bytes).
type ServiceAccept struct{ Service string }

func (*ServiceAccept) Type() byte { return MsgServiceAccept }

func (m *ServiceAccept) AppendBinary(b []byte) ([]byte, error) {
	return appendString(append(b, MsgServiceAccept), m.Service)
}

func (m *ServiceAccept) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ServiceAccept) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgServiceAccept)
	m.Service = d.str()
	return d.finish()
}

// ---- USERAUTH_REQUEST / FAILURE / SUCCESS ----

// UserAuthRequest is APF_USERAUTH_REQUEST: 18+U+S+M+P bytes for method
// "password", 13+U+S+M bytes for method "none". Other methods have no APF
// layout and fail with ErrUnsupported. String and LogValue redact the
// password.
type UserAuthRequest struct {
	Username       string
	Service        string
	Method         string
	ChangePassword bool   // password method only; AMT sends FALSE
	Password       string // password method only
}

func (*UserAuthRequest) Type() byte { return MsgUserAuthRequest }

func (m *UserAuthRequest) AppendBinary(b []byte) ([]byte, error) {
	if m.Method != MethodPassword && m.Method != MethodNone {
		return b, fmt.Errorf("%w: USERAUTH_REQUEST method %q", ErrUnsupported, m.Method)
	}
	b = append(b, MsgUserAuthRequest)
	var err error
	for _, s := range [...]string{m.Username, m.Service, m.Method} {
		if b, err = appendString(b, s); err != nil {
			return b, err
		}
	}
	if m.Method == MethodPassword {
		b = appendBool(b, m.ChangePassword)
		return appendString(b, m.Password)
	}
	return b, nil
}

func (m *UserAuthRequest) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *UserAuthRequest) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgUserAuthRequest)
	m.Username = d.str()
	m.Service = d.str()
	m.Method = d.str()
	m.ChangePassword, m.Password = false, ""
	if d.err == nil {
		switch m.Method {
		case MethodPassword:
			m.ChangePassword = d.boolean()
			m.Password = d.str()
		case MethodNone:
		default:
			return fmt.Errorf("%w: USERAUTH_REQUEST method %q", ErrUnsupported, m.Method)
		}
	}
	return d.finish()
}

// String describes the request without its password.
func (m *UserAuthRequest) String() string {
	return fmt.Sprintf("USERAUTH_REQUEST{user=%q service=%q method=%q password=[%d bytes redacted]}",
		m.Username, m.Service, m.Method, len(m.Password))
}

// LogValue keeps the password out of structured logs.
func (m *UserAuthRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("user", m.Username),
		slog.String("service", m.Service),
		slog.String("method", m.Method),
	)
}

// UserAuthFailure is APF_USERAUTH_FAILURE in its SSH layout: methods name
// list and partial-success flag (14 bytes for "password"). UnmarshalBinary
// also accepts the 15-byte form MPS sends (one extra zero byte).
type UserAuthFailure struct {
	Methods        string
	PartialSuccess bool
}

func (*UserAuthFailure) Type() byte { return MsgUserAuthFailure }

func (m *UserAuthFailure) AppendBinary(b []byte) ([]byte, error) {
	b, err := appendString(append(b, MsgUserAuthFailure), m.Methods)
	if err != nil {
		return b, err
	}
	return appendBool(b, m.PartialSuccess), nil
}

func (m *UserAuthFailure) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *UserAuthFailure) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgUserAuthFailure)
	m.Methods = d.str()
	m.PartialSuccess = d.boolean()
	if d.err == nil && len(d.b) == 1 && d.b[0] == 0 {
		d.b = nil // MPS's extra zero byte
	}
	return d.finish()
}

// UserAuthSuccess is APF_USERAUTH_SUCCESS (1 byte).
type UserAuthSuccess struct{}

func (*UserAuthSuccess) Type() byte { return MsgUserAuthSuccess }

func (m *UserAuthSuccess) AppendBinary(b []byte) ([]byte, error) {
	return append(b, MsgUserAuthSuccess), nil
}

func (m *UserAuthSuccess) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *UserAuthSuccess) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgUserAuthSuccess)
	return d.finish()
}

// ---- GLOBAL_REQUEST / REQUEST_SUCCESS / REQUEST_FAILURE ----

// GlobalRequest is APF_GLOBAL_REQUEST. The layout depends on Name:
//
//   - tcpip-forward, cancel-tcpip-forward: Address, Port (14 + N + A bytes);
//   - udp-send-to@amt.intel.com: Address, Port, OriginatorAddress,
//     OriginatorPort, Data (26 + N + A + O + D bytes);
//   - any other name: nothing after WantReply (6 + N bytes, as MPS parses it).
//
// Fields that the name's layout does not carry are not encoded.
type GlobalRequest struct {
	Name              string
	WantReply         bool
	Address           string
	Port              uint32
	OriginatorAddress string
	OriginatorPort    uint32
	Data              []byte
}

func (*GlobalRequest) Type() byte { return MsgGlobalRequest }

func (m *GlobalRequest) AppendBinary(b []byte) ([]byte, error) {
	b, err := appendString(append(b, MsgGlobalRequest), m.Name)
	if err != nil {
		return b, err
	}
	b = appendBool(b, m.WantReply)
	switch m.Name {
	case RequestTCPIPForward, RequestCancelTCPIPForward:
		if b, err = appendString(b, m.Address); err != nil {
			return b, err
		}
		return appendU32(b, m.Port), nil
	case RequestUDPSendTo:
		if b, err = appendString(b, m.Address); err != nil {
			return b, err
		}
		b = appendU32(b, m.Port)
		if b, err = appendString(b, m.OriginatorAddress); err != nil {
			return b, err
		}
		b = appendU32(b, m.OriginatorPort)
		return appendBytes(b, m.Data)
	}
	return b, nil
}

func (m *GlobalRequest) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *GlobalRequest) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgGlobalRequest)
	*m = GlobalRequest{}
	m.Name = d.str()
	m.WantReply = d.boolean()
	switch m.Name {
	case RequestTCPIPForward, RequestCancelTCPIPForward:
		m.Address = d.str()
		m.Port = d.u32()
	case RequestUDPSendTo:
		m.Address = d.str()
		m.Port = d.u32()
		m.OriginatorAddress = d.str()
		m.OriginatorPort = d.u32()
		m.Data = d.bytes()
	}
	return d.finish()
}

// RequestSuccess is APF_REQUEST_SUCCESS: 5 bytes with the port when it
// answers tcpip-forward, 1 byte when it answers cancel-tcpip-forward.
type RequestSuccess struct {
	HasPort bool
	Port    uint32
}

func (*RequestSuccess) Type() byte { return MsgRequestSuccess }

func (m *RequestSuccess) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, MsgRequestSuccess)
	if m.HasPort {
		b = appendU32(b, m.Port)
	}
	return b, nil
}

func (m *RequestSuccess) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *RequestSuccess) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgRequestSuccess)
	*m = RequestSuccess{}
	if d.err == nil && len(d.b) > 0 {
		m.HasPort = true
		m.Port = d.u32()
	}
	return d.finish()
}

// RequestFailure is APF_REQUEST_FAILURE (1 byte).
type RequestFailure struct{}

func (*RequestFailure) Type() byte { return MsgRequestFailure }

func (m *RequestFailure) AppendBinary(b []byte) ([]byte, error) {
	return append(b, MsgRequestFailure), nil
}

func (m *RequestFailure) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *RequestFailure) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgRequestFailure)
	return d.finish()
}

// ---- channels ----

// ChannelOpen is APF_CHANNEL_OPEN (33 + T + A + O bytes). APF defines one
// layout (forwarded-tcpip and direct-tcpip); it is used for every channel
// type, as MPS does, so that a peer's unknown type can be refused with
// OpenUnknownChannelType.
type ChannelOpen struct {
	ChannelType       string
	SenderChannel     uint32
	InitialWindow     uint32 // the sender's receive window
	Reserved          uint32 // SSH's maximum packet size; 0xFFFFFFFF from MPS
	ConnectedAddress  string
	ConnectedPort     uint32
	OriginatorAddress string
	OriginatorPort    uint32
}

func (*ChannelOpen) Type() byte { return MsgChannelOpen }

func (m *ChannelOpen) AppendBinary(b []byte) ([]byte, error) {
	b, err := appendString(append(b, MsgChannelOpen), m.ChannelType)
	if err != nil {
		return b, err
	}
	b = appendU32(b, m.SenderChannel)
	b = appendU32(b, m.InitialWindow)
	b = appendU32(b, m.Reserved)
	if b, err = appendString(b, m.ConnectedAddress); err != nil {
		return b, err
	}
	b = appendU32(b, m.ConnectedPort)
	if b, err = appendString(b, m.OriginatorAddress); err != nil {
		return b, err
	}
	return appendU32(b, m.OriginatorPort), nil
}

func (m *ChannelOpen) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ChannelOpen) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgChannelOpen)
	m.ChannelType = d.str()
	m.SenderChannel = d.u32()
	m.InitialWindow = d.u32()
	m.Reserved = d.u32()
	m.ConnectedAddress = d.str()
	m.ConnectedPort = d.u32()
	m.OriginatorAddress = d.str()
	m.OriginatorPort = d.u32()
	return d.finish()
}

// ChannelOpenConfirmation is APF_CHANNEL_OPEN_CONFIRMATION (17 bytes).
type ChannelOpenConfirmation struct {
	RecipientChannel uint32 // the opener's id
	SenderChannel    uint32 // the confirmer's id
	InitialWindow    uint32 // the confirmer's receive window
	Reserved         uint32 // 0xFFFFFFFF or 0
}

func (*ChannelOpenConfirmation) Type() byte { return MsgChannelOpenConfirmation }

func (m *ChannelOpenConfirmation) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, MsgChannelOpenConfirmation)
	b = appendU32(b, m.RecipientChannel)
	b = appendU32(b, m.SenderChannel)
	b = appendU32(b, m.InitialWindow)
	return appendU32(b, m.Reserved), nil
}

func (m *ChannelOpenConfirmation) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ChannelOpenConfirmation) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgChannelOpenConfirmation)
	m.RecipientChannel = d.u32()
	m.SenderChannel = d.u32()
	m.InitialWindow = d.u32()
	m.Reserved = d.u32()
	return d.finish()
}

// ChannelOpenFailure is APF_CHANNEL_OPEN_FAILURE (17 bytes; the two
// reserved words replace SSH's description and language strings).
type ChannelOpenFailure struct {
	RecipientChannel uint32
	Reason           uint32
	Reserved1        uint32
	Reserved2        uint32
}

func (*ChannelOpenFailure) Type() byte { return MsgChannelOpenFailure }

func (m *ChannelOpenFailure) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, MsgChannelOpenFailure)
	b = appendU32(b, m.RecipientChannel)
	b = appendU32(b, m.Reason)
	b = appendU32(b, m.Reserved1)
	return appendU32(b, m.Reserved2), nil
}

func (m *ChannelOpenFailure) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ChannelOpenFailure) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgChannelOpenFailure)
	m.RecipientChannel = d.u32()
	m.Reason = d.u32()
	m.Reserved1 = d.u32()
	m.Reserved2 = d.u32()
	return d.finish()
}

// ChannelWindowAdjust is APF_CHANNEL_WINDOW_ADJUST (9 bytes).
type ChannelWindowAdjust struct {
	RecipientChannel uint32
	BytesToAdd       uint32
}

func (*ChannelWindowAdjust) Type() byte { return MsgChannelWindowAdjust }

func (m *ChannelWindowAdjust) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, MsgChannelWindowAdjust)
	b = appendU32(b, m.RecipientChannel)
	return appendU32(b, m.BytesToAdd), nil
}

func (m *ChannelWindowAdjust) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ChannelWindowAdjust) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgChannelWindowAdjust)
	m.RecipientChannel = d.u32()
	m.BytesToAdd = d.u32()
	return d.finish()
}

// ChannelData is APF_CHANNEL_DATA (9 + L bytes). After UnmarshalBinary,
// Data aliases the input.
type ChannelData struct {
	RecipientChannel uint32
	Data             []byte
}

// ChannelDataHeaderLen is the size of CHANNEL_DATA before its payload.
const ChannelDataHeaderLen = 9

func (*ChannelData) Type() byte { return MsgChannelData }

func (m *ChannelData) AppendBinary(b []byte) ([]byte, error) {
	b = appendU32(append(b, MsgChannelData), m.RecipientChannel)
	return appendBytes(b, m.Data)
}

func (m *ChannelData) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ChannelData) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgChannelData)
	m.RecipientChannel = d.u32()
	m.Data = d.bytes()
	return d.finish()
}

// AppendChannelDataHeader appends the 9-byte CHANNEL_DATA header for a
// payload of n bytes; the caller appends the payload. It lets a sender
// build the message in one buffer without copying the payload twice.
func AppendChannelDataHeader(b []byte, recipient uint32, n int) []byte {
	b = appendU32(append(b, MsgChannelData), recipient)
	return appendU32(b, uint32(n))
}

// ChannelClose is APF_CHANNEL_CLOSE (5 bytes).
type ChannelClose struct{ RecipientChannel uint32 }

func (*ChannelClose) Type() byte { return MsgChannelClose }

func (m *ChannelClose) AppendBinary(b []byte) ([]byte, error) {
	return appendU32(append(b, MsgChannelClose), m.RecipientChannel), nil
}

func (m *ChannelClose) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ChannelClose) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgChannelClose)
	m.RecipientChannel = d.u32()
	return d.finish()
}

// ---- PROTOCOLVERSION ----

// ProtocolVersionLen is the fixed size of PROTOCOLVERSION.
const ProtocolVersionLen = 93

// ProtocolVersion is APF_PROTOCOLVERSION (93 bytes).
type ProtocolVersion struct {
	Major         uint32 // 1
	Minor         uint32 // 0
	TriggerReason uint32
	UUID          UUID     // SMBIOS byte order, as on the wire
	Reserved      [64]byte // zero on the wire
}

func (*ProtocolVersion) Type() byte { return MsgProtocolVersion }

func (m *ProtocolVersion) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, MsgProtocolVersion)
	b = appendU32(b, m.Major)
	b = appendU32(b, m.Minor)
	b = appendU32(b, m.TriggerReason)
	b = append(b, m.UUID[:]...)
	return append(b, m.Reserved[:]...), nil
}

func (m *ProtocolVersion) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *ProtocolVersion) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgProtocolVersion)
	m.Major = d.u32()
	m.Minor = d.u32()
	m.TriggerReason = d.u32()
	copy(m.UUID[:], d.take(16))
	copy(m.Reserved[:], d.take(64))
	return d.finish()
}

// ---- keepalive ----

// KeepaliveRequest is APF_KEEPALIVE_REQUEST (5 bytes).
type KeepaliveRequest struct{ Cookie uint32 }

func (*KeepaliveRequest) Type() byte { return MsgKeepaliveRequest }

func (m *KeepaliveRequest) AppendBinary(b []byte) ([]byte, error) {
	return appendU32(append(b, MsgKeepaliveRequest), m.Cookie), nil
}

func (m *KeepaliveRequest) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *KeepaliveRequest) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgKeepaliveRequest)
	m.Cookie = d.u32()
	return d.finish()
}

// KeepaliveReply is APF_KEEPALIVE_REPLY (5 bytes), echoing the cookie.
type KeepaliveReply struct{ Cookie uint32 }

func (*KeepaliveReply) Type() byte { return MsgKeepaliveReply }

func (m *KeepaliveReply) AppendBinary(b []byte) ([]byte, error) {
	return appendU32(append(b, MsgKeepaliveReply), m.Cookie), nil
}

func (m *KeepaliveReply) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *KeepaliveReply) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgKeepaliveReply)
	m.Cookie = d.u32()
	return d.finish()
}

// KeepaliveOptionsRequest is APF_KEEPALIVE_OPTIONS_REQUEST (9 bytes).
type KeepaliveOptionsRequest struct {
	Interval uint32 // seconds
	Timeout  uint32 // seconds
}

func (*KeepaliveOptionsRequest) Type() byte { return MsgKeepaliveOptionsRequest }

func (m *KeepaliveOptionsRequest) AppendBinary(b []byte) ([]byte, error) {
	b = appendU32(append(b, MsgKeepaliveOptionsRequest), m.Interval)
	return appendU32(b, m.Timeout), nil
}

func (m *KeepaliveOptionsRequest) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *KeepaliveOptionsRequest) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgKeepaliveOptionsRequest)
	m.Interval = d.u32()
	m.Timeout = d.u32()
	return d.finish()
}

// KeepaliveOptionsReply is APF_KEEPALIVE_OPTIONS_REPLY (9 bytes): the
// values the device adopted.
type KeepaliveOptionsReply struct {
	Interval uint32
	Timeout  uint32
}

func (*KeepaliveOptionsReply) Type() byte { return MsgKeepaliveOptionsReply }

func (m *KeepaliveOptionsReply) AppendBinary(b []byte) ([]byte, error) {
	b = appendU32(append(b, MsgKeepaliveOptionsReply), m.Interval)
	return appendU32(b, m.Timeout), nil
}

func (m *KeepaliveOptionsReply) MarshalBinary() ([]byte, error) { return marshal(m) }

func (m *KeepaliveOptionsReply) UnmarshalBinary(b []byte) error {
	d := newDecoder(b, MsgKeepaliveOptionsReply)
	m.Interval = d.u32()
	m.Timeout = d.u32()
	return d.finish()
}
