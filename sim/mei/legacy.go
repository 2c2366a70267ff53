package mei

import (
	"encoding/binary"

	"github.com/amtd-project/amtd/sim/hostif"
)

// LegacySetup is implemented by firmware that answers the legacy setup
// commands a host agent uses to prepare remote configuration (spec/heci.md
// §4.14, legacy.md §6 stage 1, §8): the PKI DNS suffix, remote
// configuration ("zero touch") on or off, a user-defined root hash, the
// provisioning server OTP, and StartConfigurationEx. *firmware.Firmware
// implements it; other firmware answers these commands INVALID_PARAMETER.
type LegacySetup interface {
	SetPKIFQDNSuffix(suffix string) uint32
	SetZeroTouchEnabled(on bool) uint32
	ZeroTouchEnabled() bool
	AddCustomizedCertificateHash(alg uint8, hash []byte, name string) (handle, status uint32)
	SetProvisioningServerOTP(otp []byte) uint32
	StartConfigurationEx(ipv6 bool) uint32
}

// legacyPTHI answers a legacy setup command; ok is false for other
// commands or firmware without LegacySetup. Request layouts:
//
//   - SetProvisioningServerOTP 0x0400002A, SetPkiFQDNSuffix 0x0400002F:
//     AMT_ANSI_STRING (u16 length + bytes); response status.
//   - GetZeroTouchEnabled 0x04000030: no body; response status + AMT_BOOLEAN (u32).
//   - SetZeroTouchEnabled 0x0400003A: AMT_BOOLEAN, 4 bytes (1 accepted); response status.
//   - AddCustomizedCertificateHashEntry 0x04000038: u8 algorithm (1 SHA-1,
//     2 SHA-256, 3 SHA-384), 64-byte zero-padded hash, AMT_ANSI_STRING name;
//     response status + u32 handle. Intel's layout is not public: this one is
//     the simulator's (the GetCertHashEntry fields in their order).
//   - StartConfigurationEx 0x04000062: u32 IPv6Enable; response status.
func (s *Server) legacyPTHI(cmd uint32, body []byte) ([]byte, bool) {
	ls, ok := s.fw.(LegacySetup)
	if !ok {
		return nil, false
	}
	switch cmd {
	case CmdSetProvisioningServerOTP, CmdSetPKIFQDNSuffix:
		v, ok := ansiString(body)
		if !ok {
			return statusOnly(cmd, hostif.StatusInvalidMsgLength), true
		}
		if cmd == CmdSetPKIFQDNSuffix {
			return statusOnly(cmd, ls.SetPKIFQDNSuffix(string(v))), true
		}
		return statusOnly(cmd, ls.SetProvisioningServerOTP(v)), true
	case CmdGetZeroTouchEnabled:
		r := newResponse(cmd, hostif.StatusSuccess, 4)
		r.boolean(ls.ZeroTouchEnabled())
		return r.finish(), true
	case CmdSetZeroTouchEnabled:
		var on bool
		switch len(body) {
		case 1:
			on = body[0] != 0
		case 4:
			on = binary.LittleEndian.Uint32(body) != 0
		default:
			return statusOnly(cmd, hostif.StatusInvalidMsgLength), true
		}
		return statusOnly(cmd, ls.SetZeroTouchEnabled(on)), true
	case CmdAddCustomizedCertificateHashEntry:
		if len(body) < 1+certHashMaxLen+2 {
			return statusOnly(cmd, hostif.StatusInvalidMsgLength), true
		}
		alg := body[0]
		name, ok := ansiString(body[1+certHashMaxLen:])
		if !ok {
			return statusOnly(cmd, hostif.StatusInvalidMsgLength), true
		}
		size := HashSize(alg)
		if alg < 1 || alg > 3 || size == 0 {
			return statusOnly(cmd, hostif.StatusInvalidParameter), true
		}
		handle, status := ls.AddCustomizedCertificateHash(alg, append([]byte(nil), body[1:1+size]...), string(name))
		if status != hostif.StatusSuccess {
			return statusOnly(cmd, status), true
		}
		r := newResponse(cmd, status, 4)
		r.u32(handle)
		return r.finish(), true
	case CmdStartConfigurationEx:
		return statusOnly(cmd, ls.StartConfigurationEx(binary.LittleEndian.Uint32(body) != 0)), true
	}
	return nil, false
}

// ansiString reads an AMT_ANSI_STRING that fills b exactly.
func ansiString(b []byte) ([]byte, bool) {
	if len(b) < 2 {
		return nil, false
	}
	n := int(binary.LittleEndian.Uint16(b))
	if len(b) != 2+n {
		return nil, false
	}
	return b[2:], true
}
