// Package apf is the wire codec of the Intel AMT Port Forwarding protocol
// (APF), the SSH-connection-protocol look-alike that AMT speaks over CIRA
// (TLS, port 4433) and over LME (spec/mps.md §2).
//
// The package is role-neutral: the presence server (internal/cira) and the
// simulated device's CIRA client both use it. It contains
//
//   - one struct per message type with MarshalBinary/AppendBinary and
//     UnmarshalBinary (exact layouts of spec/mps.md §2.3, big-endian);
//   - Unmarshal, which decodes one whole message of any type;
//   - Reader, which splits a byte stream into whole messages. APF has no
//     length prefix, so the reader knows every layout; it enforces hard
//     limits on string and data lengths before reading or allocating, so a
//     hostile peer cannot make it allocate unbounded memory.
package apf

import (
	"errors"
	"fmt"
)

// Message type codes (spec/mps.md §2.2).
const (
	MsgDisconnect              byte = 0x01
	MsgServiceRequest          byte = 0x05
	MsgServiceAccept           byte = 0x06
	MsgUserAuthRequest         byte = 0x32
	MsgUserAuthFailure         byte = 0x33
	MsgUserAuthSuccess         byte = 0x34
	MsgGlobalRequest           byte = 0x50
	MsgRequestSuccess          byte = 0x51
	MsgRequestFailure          byte = 0x52
	MsgChannelOpen             byte = 0x5A
	MsgChannelOpenConfirmation byte = 0x5B
	MsgChannelOpenFailure      byte = 0x5C
	MsgChannelWindowAdjust     byte = 0x5D
	MsgChannelData             byte = 0x5E
	MsgChannelClose            byte = 0x61
	MsgProtocolVersion         byte = 0xC0
	MsgKeepaliveRequest        byte = 0xD0
	MsgKeepaliveReply          byte = 0xD1
	MsgKeepaliveOptionsRequest byte = 0xD2
	MsgKeepaliveOptionsReply   byte = 0xD3
)

// Well-known strings (spec/mps.md §2.2).
const (
	ServiceAuth        = "auth@amt.intel.com"
	ServicePortForward = "pfwd@amt.intel.com"

	MethodPassword = "password"
	MethodNone     = "none"

	RequestTCPIPForward       = "tcpip-forward"
	RequestCancelTCPIPForward = "cancel-tcpip-forward"
	RequestUDPSendTo          = "udp-send-to@amt.intel.com"

	ChannelForwardedTCPIP = "forwarded-tcpip"
	ChannelDirectTCPIP    = "direct-tcpip"
)

// Trigger reasons carried by PROTOCOLVERSION.
const (
	TriggerUserInitiated uint32 = 1
	TriggerAlert         uint32 = 2
	TriggerProvisioning  uint32 = 3
	TriggerPeriodic      uint32 = 4
	TriggerLME           uint32 = 254
)

// CHANNEL_OPEN_FAILURE reason codes.
const (
	OpenAdministrativelyProhibited uint32 = 1
	OpenConnectFailed              uint32 = 2
	OpenUnknownChannelType         uint32 = 3
	OpenResourceShortage           uint32 = 4
)

// DISCONNECT reason codes (MPS numbering; only 1–15 are certain to be
// understood by firmware, spec/mps.md §2.2).
const (
	DisconnectHostNotAllowedToConnect     uint32 = 1
	DisconnectProtocolError               uint32 = 2
	DisconnectKeyExchangeFailed           uint32 = 3
	DisconnectReserved                    uint32 = 4
	DisconnectMACError                    uint32 = 5
	DisconnectCompressionError            uint32 = 6
	DisconnectServiceNotAvailable         uint32 = 7
	DisconnectProtocolVersionNotSupported uint32 = 8
	DisconnectHostKeyNotVerifiable        uint32 = 9
	DisconnectConnectionLost              uint32 = 10
	DisconnectByApplication               uint32 = 11
	DisconnectTooManyConnections          uint32 = 12
	DisconnectAuthCancelledByUser         uint32 = 13
	DisconnectNoMoreAuthMethodsAvailable  uint32 = 14
	DisconnectInvalidCredentials          uint32 = 15
	DisconnectConnectionTimedOut          uint32 = 16
	DisconnectByPolicy                    uint32 = 17
	DisconnectTemporarilyUnavailable      uint32 = 18
)

// Default limits (spec/mps.md §2.1: MPS caps strings at 2048 bytes and
// CHANNEL_DATA at 1 MiB, MAX_CIRA_WINDOW).
const (
	DefaultMaxString = 2048
	DefaultMaxData   = 1 << 20
	// hardMax bounds any configured limit so offsets never overflow an int.
	hardMax = 1 << 30
)

// Limits bounds the lengths a Reader accepts. Zero fields mean the defaults.
type Limits struct {
	MaxString int // longest string field (names, addresses, passwords)
	MaxData   int // longest CHANNEL_DATA payload (and udp-send-to data)
}

func (l Limits) maxString() int { return clampLimit(l.MaxString, DefaultMaxString) }
func (l Limits) maxData() int   { return clampLimit(l.MaxData, DefaultMaxData) }

func clampLimit(v, def int) int {
	switch {
	case v <= 0:
		return def
	case v > hardMax:
		return hardMax
	}
	return v
}

// Errors returned by decoding and framing.
var (
	// ErrTruncated means a message ended before its layout did.
	ErrTruncated = errors.New("apf: message truncated")
	// ErrTrailingData means bytes follow the end of a message's layout.
	ErrTrailingData = errors.New("apf: trailing data after message")
	// ErrTooLong means a length field exceeds the configured limit.
	ErrTooLong = errors.New("apf: length exceeds limit")
	// ErrUnsupported means a message whose layout APF does not define
	// (e.g. USERAUTH_REQUEST with a method other than password or none).
	ErrUnsupported = errors.New("apf: unsupported message variant")
	// ErrWrongType means UnmarshalBinary was given another message type.
	ErrWrongType = errors.New("apf: wrong message type")
)

// UnknownTypeError is returned for a message type byte APF does not define.
type UnknownTypeError byte

func (e UnknownTypeError) Error() string {
	return fmt.Sprintf("apf: unknown message type 0x%02x", byte(e))
}

// TypeName returns the protocol name of a message type code, for logs.
func TypeName(t byte) string {
	switch t {
	case MsgDisconnect:
		return "DISCONNECT"
	case MsgServiceRequest:
		return "SERVICE_REQUEST"
	case MsgServiceAccept:
		return "SERVICE_ACCEPT"
	case MsgUserAuthRequest:
		return "USERAUTH_REQUEST"
	case MsgUserAuthFailure:
		return "USERAUTH_FAILURE"
	case MsgUserAuthSuccess:
		return "USERAUTH_SUCCESS"
	case MsgGlobalRequest:
		return "GLOBAL_REQUEST"
	case MsgRequestSuccess:
		return "REQUEST_SUCCESS"
	case MsgRequestFailure:
		return "REQUEST_FAILURE"
	case MsgChannelOpen:
		return "CHANNEL_OPEN"
	case MsgChannelOpenConfirmation:
		return "CHANNEL_OPEN_CONFIRMATION"
	case MsgChannelOpenFailure:
		return "CHANNEL_OPEN_FAILURE"
	case MsgChannelWindowAdjust:
		return "CHANNEL_WINDOW_ADJUST"
	case MsgChannelData:
		return "CHANNEL_DATA"
	case MsgChannelClose:
		return "CHANNEL_CLOSE"
	case MsgProtocolVersion:
		return "PROTOCOLVERSION"
	case MsgKeepaliveRequest:
		return "KEEPALIVE_REQUEST"
	case MsgKeepaliveReply:
		return "KEEPALIVE_REPLY"
	case MsgKeepaliveOptionsRequest:
		return "KEEPALIVE_OPTIONS_REQUEST"
	case MsgKeepaliveOptionsReply:
		return "KEEPALIVE_OPTIONS_REPLY"
	}
	return fmt.Sprintf("0x%02x", t)
}
