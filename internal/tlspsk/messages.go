package tlspsk

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Handshake message types (RFC 5246 §7.4).
const (
	typeHelloRequest       uint8 = 0
	typeClientHello        uint8 = 1
	typeServerHello        uint8 = 2
	typeCertificate        uint8 = 11
	typeServerKeyExchange  uint8 = 12
	typeCertificateRequest uint8 = 13
	typeServerHelloDone    uint8 = 14
	typeClientKeyExchange  uint8 = 16
	typeFinished           uint8 = 20
)

const (
	extRenegotiationInfo uint16 = 0xff01 // RFC 5746
	scsvRenegotiation    uint16 = 0x00ff // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
	maxHandshakeSize            = 1 << 16
	maxIdentityLength           = 128 // RFC 4279 §5.3: identities up to 128 bytes MUST be supported
	verifyDataLength            = 12
)

var errMalformed = errors.New("malformed handshake message")

// reader is a bounds-checked cursor over a handshake message body.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) u8() uint8 {
	if len(r.b) < 1 {
		r.bad = true
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) u16() uint16 {
	if len(r.b) < 2 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) bytes(n int) []byte {
	if n < 0 || len(r.b) < n {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) vec8() []byte  { return r.bytes(int(r.u8())) }
func (r *reader) vec16() []byte { return r.bytes(int(r.u16())) }

// done reports whether the body was consumed exactly and without overrun.
func (r *reader) done() bool { return !r.bad && len(r.b) == 0 }

// handshake frames body as a handshake message of type typ.
func handshake(typ uint8, body []byte) []byte {
	out := make([]byte, 4, 4+len(body))
	out[0] = typ
	out[1], out[2], out[3] = byte(len(body)>>16), byte(len(body)>>8), byte(len(body))
	return append(out, body...)
}

func appendVec16(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// clientHello holds what this package reads from and writes into a
// ClientHello. Extensions other than renegotiation_info are skipped.
type clientHello struct {
	version         uint16
	random          []byte
	sessionID       []byte
	cipherSuites    []uint16
	compression     []uint8
	secureReneg     bool // SCSV or an empty renegotiation_info extension
	renegInfoNonNil bool // renegotiation_info present with non-empty content
}

func (m *clientHello) marshal() []byte {
	b := binary.BigEndian.AppendUint16(nil, m.version)
	b = append(b, m.random...)
	b = append(b, byte(len(m.sessionID)))
	b = append(b, m.sessionID...)
	b = binary.BigEndian.AppendUint16(b, uint16(2*len(m.cipherSuites)))
	for _, s := range m.cipherSuites {
		b = binary.BigEndian.AppendUint16(b, s)
	}
	b = append(b, byte(len(m.compression)))
	b = append(b, m.compression...)
	// No extensions: the SCSV in the suite list signals RFC 5746 support in a
	// form that firmware of the TLS 1.0 era cannot choke on.
	return handshake(typeClientHello, b)
}

func parseClientHello(body []byte) (*clientHello, error) {
	r := &reader{b: body}
	m := &clientHello{version: r.u16(), random: r.bytes(32), sessionID: r.vec8()}
	suites := r.vec16()
	if len(suites)%2 != 0 || len(suites) == 0 {
		return nil, fmt.Errorf("%w: ClientHello cipher suite list of %d bytes", errMalformed, len(suites))
	}
	for i := 0; i < len(suites); i += 2 {
		s := binary.BigEndian.Uint16(suites[i:])
		if s == scsvRenegotiation {
			m.secureReneg = true
		}
		m.cipherSuites = append(m.cipherSuites, s)
	}
	m.compression = r.vec8()
	if len(m.sessionID) > 32 || len(m.compression) == 0 {
		return nil, fmt.Errorf("%w: ClientHello session id or compression list", errMalformed)
	}
	if len(r.b) > 0 && !r.bad {
		if err := parseExtensions(r.vec16(), func(typ uint16, data []byte) error {
			if typ == extRenegotiationInfo {
				if len(data) != 1 || data[0] != 0 {
					m.renegInfoNonNil = true
				} else {
					m.secureReneg = true
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: ClientHello", errMalformed)
	}
	return m, nil
}

// parseExtensions walks an extensions block, rejecting duplicates.
func parseExtensions(block []byte, f func(typ uint16, data []byte) error) error {
	r := &reader{b: block}
	seen := map[uint16]bool{}
	for len(r.b) > 0 {
		typ := r.u16()
		data := r.vec16()
		if r.bad {
			return fmt.Errorf("%w: extensions", errMalformed)
		}
		if seen[typ] {
			return fmt.Errorf("%w: duplicate extension %#04x", errMalformed, typ)
		}
		seen[typ] = true
		if err := f(typ, data); err != nil {
			return err
		}
	}
	return nil
}

type serverHello struct {
	version     uint16
	random      []byte
	sessionID   []byte
	cipherSuite uint16
	compression uint8
	renegInfo   bool     // send / received an empty renegotiation_info
	extensions  []uint16 // received extension types (client side checks)
	renegBad    bool     // received renegotiation_info with content
}

func (m *serverHello) marshal() []byte {
	b := binary.BigEndian.AppendUint16(nil, m.version)
	b = append(b, m.random...)
	b = append(b, byte(len(m.sessionID)))
	b = append(b, m.sessionID...)
	b = binary.BigEndian.AppendUint16(b, m.cipherSuite)
	b = append(b, m.compression)
	if m.renegInfo {
		b = appendVec16(b, []byte{0xff, 0x01, 0x00, 0x01, 0x00})
	}
	return handshake(typeServerHello, b)
}

func parseServerHello(body []byte) (*serverHello, error) {
	r := &reader{b: body}
	m := &serverHello{version: r.u16(), random: r.bytes(32), sessionID: r.vec8(), cipherSuite: r.u16(), compression: r.u8()}
	if len(m.sessionID) > 32 {
		return nil, fmt.Errorf("%w: ServerHello session id", errMalformed)
	}
	if len(r.b) > 0 && !r.bad {
		if err := parseExtensions(r.vec16(), func(typ uint16, data []byte) error {
			m.extensions = append(m.extensions, typ)
			if typ == extRenegotiationInfo {
				if len(data) == 1 && data[0] == 0 {
					m.renegInfo = true
				} else {
					m.renegBad = true
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	if !r.done() {
		return nil, fmt.Errorf("%w: ServerHello", errMalformed)
	}
	return m, nil
}

// PSK ServerKeyExchange (RFC 4279 §2): psk_identity_hint<0..2^16-1>.
func marshalServerKeyExchange(hint string) []byte {
	return handshake(typeServerKeyExchange, appendVec16(nil, []byte(hint)))
}

func parseServerKeyExchange(body []byte) (string, error) {
	r := &reader{b: body}
	hint := r.vec16()
	if !r.done() {
		return "", fmt.Errorf("%w: ServerKeyExchange", errMalformed)
	}
	return string(hint), nil
}

// PSK ClientKeyExchange (RFC 4279 §2): psk_identity<0..2^16-1>.
func marshalClientKeyExchange(identity string) []byte {
	return handshake(typeClientKeyExchange, appendVec16(nil, []byte(identity)))
}

func parseClientKeyExchange(body []byte) (string, error) {
	r := &reader{b: body}
	id := r.vec16()
	if !r.done() {
		return "", fmt.Errorf("%w: ClientKeyExchange", errMalformed)
	}
	return string(id), nil
}

func parseFinished(body []byte) ([]byte, error) {
	if len(body) != verifyDataLength {
		return nil, fmt.Errorf("%w: Finished of %d bytes", errMalformed, len(body))
	}
	return body, nil
}

// pskPremaster builds the plain-PSK premaster secret of RFC 4279 §2:
// uint16 N, N zero bytes, uint16 N, the PSK.
func pskPremaster(psk []byte) []byte {
	n := len(psk)
	b := make([]byte, 2+n+2+n)
	binary.BigEndian.PutUint16(b, uint16(n))
	binary.BigEndian.PutUint16(b[2+n:], uint16(n))
	copy(b[4+n:], psk)
	return b
}
