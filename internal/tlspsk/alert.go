package tlspsk

import "fmt"

// Alert is a TLS alert description (RFC 5246 §7.2, RFC 4279 §2).
type Alert uint8

// Alert descriptions used by this package.
const (
	AlertCloseNotify          Alert = 0
	AlertUnexpectedMessage    Alert = 10
	AlertBadRecordMAC         Alert = 20
	AlertRecordOverflow       Alert = 22
	AlertHandshakeFailure     Alert = 40
	AlertIllegalParameter     Alert = 47
	AlertDecodeError          Alert = 50
	AlertDecryptError         Alert = 51
	AlertProtocolVersion      Alert = 70
	AlertInsufficientSecurity Alert = 71
	AlertInternalError        Alert = 80
	AlertUserCanceled         Alert = 90
	AlertNoRenegotiation      Alert = 100
	AlertUnsupportedExtension Alert = 110
	AlertUnknownPSKIdentity   Alert = 115
)

const (
	alertLevelWarning = 1
	alertLevelFatal   = 2
)

func (a Alert) String() string {
	switch a {
	case AlertCloseNotify:
		return "close_notify"
	case AlertUnexpectedMessage:
		return "unexpected_message"
	case AlertBadRecordMAC:
		return "bad_record_mac"
	case AlertRecordOverflow:
		return "record_overflow"
	case AlertHandshakeFailure:
		return "handshake_failure"
	case AlertIllegalParameter:
		return "illegal_parameter"
	case AlertDecodeError:
		return "decode_error"
	case AlertDecryptError:
		return "decrypt_error"
	case AlertProtocolVersion:
		return "protocol_version"
	case AlertInsufficientSecurity:
		return "insufficient_security"
	case AlertInternalError:
		return "internal_error"
	case AlertUserCanceled:
		return "user_canceled"
	case AlertNoRenegotiation:
		return "no_renegotiation"
	case AlertUnsupportedExtension:
		return "unsupported_extension"
	case AlertUnknownPSKIdentity:
		return "unknown_psk_identity"
	}
	return fmt.Sprintf("alert(%d)", uint8(a))
}

// AlertError reports a fatal alert: received from the peer (Remote) or sent
// to it because of Err.
type AlertError struct {
	Alert  Alert
	Remote bool
	Err    error // the local cause; nil when Remote
}

func (e *AlertError) Error() string {
	if e.Remote {
		return "tlspsk: peer sent fatal alert " + e.Alert.String()
	}
	return fmt.Sprintf("%v (sent alert %s)", e.Err, e.Alert)
}

func (e *AlertError) Unwrap() error { return e.Err }
