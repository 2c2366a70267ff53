package mei

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/amtd-project/amtd/sim/hostif"
)

// PTHI request codes (spec/heci.md §4). The response code is the request
// code with ResponseBit set.
const (
	CmdUnprovision                     uint32 = 0x04000010
	CmdGetProvisioningState            uint32 = 0x04000011
	CmdGetCodeVersions                 uint32 = 0x0400001A
	CmdEnumerateHashHandles            uint32 = 0x0400002C
	CmdGetCertHashEntry                uint32 = 0x0400002D
	CmdGetPKIFQDNSuffix                uint32 = 0x04000036
	CmdGetRemoteAccessConnectionStatus uint32 = 0x04000046
	CmdGetLANInterfaceSettings         uint32 = 0x04000048
	CmdGetUUID                         uint32 = 0x0400005C
	CmdStopConfiguration               uint32 = 0x0400005E
	CmdGetLocalSystemAccount           uint32 = 0x04000067
	CmdGetControlMode                  uint32 = 0x0400006B
	CmdStartConfigurationHBased        uint32 = 0x0400008B

	// Legacy setup commands (spec/heci.md §4.14, legacy.md §8, §13).
	CmdSetProvisioningServerOTP          uint32 = 0x0400002A
	CmdSetPKIFQDNSuffix                  uint32 = 0x0400002F
	CmdGetZeroTouchEnabled               uint32 = 0x04000030
	CmdAddCustomizedCertificateHashEntry uint32 = 0x04000038
	CmdSetZeroTouchEnabled               uint32 = 0x0400003A
	CmdStartConfigurationEx              uint32 = 0x04000062

	// ResponseBit is set in the command field of every PTHI response.
	ResponseBit uint32 = 0x00800000
)

// PTHI status codes (spec/heci.md §3) beyond those in package hostif.
const (
	StatusMaxLimitReached         uint32 = 23
	StatusRNGGenerationInProgress uint32 = 47
	StatusRNGNotReady             uint32 = 48
	StatusCertificateNotReady     uint32 = 49
)

// Sizes of PTHI structures (spec/heci.md §3–4).
const (
	pthiHeaderLen        = 12
	pthiVersionMajor     = 1
	pthiVersionMinor     = 1
	biosVersionLen       = 65
	unicodeStringLen     = 20
	maxVersionEntries    = 50
	versionEntryLen      = 2 + unicodeStringLen + 2 + unicodeStringLen // 44
	lsaFieldLen          = 33
	lsaRequestBodyLen    = 40
	certHashMaxLen       = 64
	startConfigBodyLen   = 390
	startConfigSuffixMax = 320
)

// Watchdog (MEI_WDIF) requests, not PTHI-framed (spec/heci.md §4.15).
var (
	wdifIsChangeToAMTEnabled   = [4]byte{0x05, 0x02, 0x51, 0x10}
	wdifSetAmtOperationalState = [4]byte{0x05, 0x03, 0x53, 0x10}
)

// IsChangeToAMTEnabled flag bits (spec/heci.md §4.15).
const (
	ChangeFlagTransitionAllowed   uint8 = 0x01
	ChangeFlagAMTEnabled          uint8 = 0x02
	ChangeFlagCIRAPeriodicFix     uint8 = 0x20
	ChangeFlagTLSEnforced         uint8 = 0x40
	ChangeFlagNewInterfaceVersion uint8 = 0x80
)

// PTHIHeader is the 12-byte PTHI message header.
type PTHIHeader struct {
	Major, Minor uint8
	Command      uint32
	Length       uint32 // bytes after the header
}

// ParsePTHIHeader decodes the header at the start of msg.
func ParsePTHIHeader(msg []byte) (PTHIHeader, error) {
	if len(msg) < pthiHeaderLen {
		return PTHIHeader{}, errors.New("mei: PTHI message shorter than its 12-byte header")
	}
	return PTHIHeader{
		Major:   msg[0],
		Minor:   msg[1],
		Command: binary.LittleEndian.Uint32(msg[4:8]),
		Length:  binary.LittleEndian.Uint32(msg[8:12]),
	}, nil
}

// EncodePTHIRequest builds a PTHI request: header (version 1.1, Length =
// len(body)) followed by body.
func EncodePTHIRequest(cmd uint32, body []byte) []byte {
	b := make([]byte, 0, pthiHeaderLen+len(body))
	b = append(b, pthiVersionMajor, pthiVersionMinor, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, cmd)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	return append(b, body...)
}

// StatusError is a non-zero PTHI (or watchdog) status returned by the
// firmware.
type StatusError struct {
	Command uint32
	Status  uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("mei: command 0x%08X: status %d (%s)", e.Command, e.Status, StatusName(e.Status))
}

// StatusName is the AMT_STATUS_* name of a PTHI status code.
func StatusName(s uint32) string {
	switch s {
	case hostif.StatusSuccess:
		return "SUCCESS"
	case hostif.StatusInternalError:
		return "INTERNAL_ERROR"
	case hostif.StatusNotReady:
		return "NOT_READY"
	case hostif.StatusInvalidAMTMode:
		return "INVALID_AMT_MODE"
	case hostif.StatusInvalidMsgLength:
		return "INVALID_MESSAGE_LENGTH"
	case hostif.StatusNotPermitted:
		return "NOT_PERMITTED"
	case StatusMaxLimitReached:
		return "MAX_LIMIT_REACHED"
	case hostif.StatusInvalidParameter:
		return "INVALID_PARAMETER"
	case StatusRNGGenerationInProgress:
		return "RNG_GENERATION_IN_PROGRESS"
	case StatusRNGNotReady:
		return "RNG_NOT_READY"
	case StatusCertificateNotReady:
		return "CERTIFICATE_NOT_READY"
	case hostif.StatusInvalidHandle:
		return "INVALID_HANDLE"
	case hostif.StatusNotFound:
		return "NOT_FOUND"
	}
	return "UNKNOWN"
}

// HashSize is the digest length for a certificate-hash algorithm code
// (0 MD5, 1 SHA-1, 2 SHA-256, 3 SHA-384, 4 SHA-224, 5 SHA-512), 0 if unknown.
func HashSize(alg uint8) int {
	switch alg {
	case 0:
		return 16
	case 1:
		return 20
	case 2:
		return 32
	case 3:
		return 48
	case 4:
		return 28
	case 5:
		return 64
	}
	return 0
}

// response builds a PTHI response: header, status, body; finish() fixes the
// header length.
type response struct{ b []byte }

func newResponse(reqCmd, status uint32, bodyCap int) *response {
	r := &response{b: make([]byte, 0, pthiHeaderLen+4+bodyCap)}
	r.b = append(r.b, pthiVersionMajor, pthiVersionMinor, 0, 0)
	r.b = binary.LittleEndian.AppendUint32(r.b, reqCmd|ResponseBit)
	r.b = binary.LittleEndian.AppendUint32(r.b, 0)
	r.b = binary.LittleEndian.AppendUint32(r.b, status)
	return r
}

func (r *response) u8(v uint8)   { r.b = append(r.b, v) }
func (r *response) u16(v uint16) { r.b = binary.LittleEndian.AppendUint16(r.b, v) }
func (r *response) u32(v uint32) { r.b = binary.LittleEndian.AppendUint32(r.b, v) }
func (r *response) boolean(v bool) {
	if v {
		r.u32(1)
	} else {
		r.u32(0)
	}
}

// padded appends s truncated or NUL-padded to exactly n bytes.
func (r *response) padded(s []byte, n int) {
	if len(s) > n {
		s = s[:n]
	}
	r.b = append(r.b, s...)
	for i := len(s); i < n; i++ {
		r.b = append(r.b, 0)
	}
}

// ansi appends an AMT_ANSI_STRING (u16 length + bytes).
func (r *response) ansi(s string) {
	r.u16(uint16(len(s)))
	r.b = append(r.b, s...)
}

func (r *response) finish() []byte {
	binary.LittleEndian.PutUint32(r.b[8:12], uint32(len(r.b)-pthiHeaderLen))
	return r.b
}

// statusOnly is a response carrying only a status (Length 4).
func statusOnly(reqCmd, status uint32) []byte {
	return newResponse(reqCmd, status, 0).finish()
}
