package tlspsk

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose peer "sends" a fixed byte string and
// swallows everything written to it.
type scriptConn struct{ r io.Reader }

func (s *scriptConn) Read(b []byte) (int, error)       { return s.r.Read(b) }
func (s *scriptConn) Write(b []byte) (int, error)      { return len(b), nil }
func (s *scriptConn) Close() error                     { return nil }
func (s *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }

func record(typ uint8, vers uint16, body []byte) []byte {
	return append([]byte{typ, byte(vers >> 8), byte(vers), byte(len(body) >> 8), byte(len(body))}, body...)
}

func seedClientHello() []byte {
	ch := &clientHello{version: VersionTLS12, random: make([]byte, 32), cipherSuites: []uint16{TLS_PSK_WITH_AES_128_CBC_SHA, scsvRenegotiation}, compression: []uint8{0}}
	return ch.marshal()
}

func seedServerFlight() []byte {
	sh := &serverHello{version: VersionTLS10, random: make([]byte, 32), cipherSuite: TLS_PSK_WITH_AES_128_CBC_SHA, renegInfo: true}
	msgs := append(sh.marshal(), marshalServerKeyExchange("hint")...)
	return append(msgs, handshake(typeServerHelloDone, nil)...)
}

// FuzzHandshakeMessages feeds arbitrary bodies to every handshake message
// parser.
func FuzzHandshakeMessages(f *testing.F) {
	f.Add(seedClientHello()[4:])
	f.Add(seedServerFlight()[4:])
	f.Add([]byte{0, 4, 'A', 'B', 'C', 'D'})
	// ClientHello with an extensions block carrying renegotiation_info.
	f.Add(append(seedClientHello()[4:], 0, 5, 0xff, 0x01, 0, 1, 0))
	f.Fuzz(func(t *testing.T, body []byte) {
		if m, err := parseClientHello(body); err == nil {
			if len(m.random) != 32 || len(m.cipherSuites) == 0 || len(m.compression) == 0 {
				t.Fatalf("accepted ClientHello %+v", m)
			}
			// Re-marshal (without extensions) and parse again.
			again, err := parseClientHello(m.marshal()[4:])
			if err != nil || again.version != m.version || !slices.Equal(again.cipherSuites, m.cipherSuites) || !bytes.Equal(again.sessionID, m.sessionID) {
				t.Fatalf("re-parse: %v", err)
			}
		}
		if m, err := parseServerHello(body); err == nil {
			if len(m.random) != 32 {
				t.Fatal("short random accepted")
			}
			again, err := parseServerHello(m.marshal()[4:])
			if err != nil || again.cipherSuite != m.cipherSuite || again.renegInfo != m.renegInfo {
				t.Fatalf("re-parse: %v", err)
			}
		}
		if hint, err := parseServerKeyExchange(body); err == nil {
			if !bytes.Equal(marshalServerKeyExchange(hint)[4:], body) {
				t.Fatal("ServerKeyExchange round trip")
			}
		}
		if id, err := parseClientKeyExchange(body); err == nil {
			if !bytes.Equal(marshalClientKeyExchange(id)[4:], body) {
				t.Fatal("ClientKeyExchange round trip")
			}
		}
		if _, err := parseFinished(body); (err == nil) != (len(body) == verifyDataLength) {
			t.Fatal("Finished length check")
		}
	})
}

// FuzzServerHandshake drives the server handshake with an arbitrary client
// byte stream: it must end with an error (the stream cannot contain a valid
// Finished for a random server) and never panic or hang.
func FuzzServerHandshake(f *testing.F) {
	f.Add(record(recordHandshake, VersionTLS10, seedClientHello()))
	ch := seedClientHello()
	f.Add(append(record(recordHandshake, VersionTLS10, ch[:10]), record(recordHandshake, VersionTLS10, ch[10:])...))
	f.Add(append(record(recordHandshake, VersionTLS10, seedClientHello()),
		record(recordHandshake, VersionTLS12, marshalClientKeyExchange(testPID))...))
	f.Add([]byte{0x80, 0x2e, 0x01, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, stream []byte) {
		cfg := &Config{Identity: testPID, PSK: []byte(testPPS), IdentityHint: "h"}
		c := Server(&scriptConn{r: bytes.NewReader(stream)}, cfg)
		err := c.Handshake()
		if err == nil {
			t.Fatal("handshake succeeded against a scripted stream")
		}
		var ae *AlertError
		if !errors.As(err, &ae) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

// FuzzClientHandshake drives the client handshake with an arbitrary server
// byte stream.
func FuzzClientHandshake(f *testing.F) {
	f.Add(record(recordHandshake, VersionTLS10, seedServerFlight()))
	f.Add(append(record(recordHandshake, VersionTLS10, seedServerFlight()), record(recordChangeCipherSpec, VersionTLS10, []byte{1})...))
	f.Add(record(recordAlert, VersionTLS10, []byte{2, 115}))
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := Client(&scriptConn{r: bytes.NewReader(stream)}, &Config{Identity: testPID, PSK: []byte(testPPS)})
		err := c.Handshake()
		if err == nil {
			t.Fatal("handshake succeeded against a scripted stream")
		}
		var ae *AlertError
		if !errors.As(err, &ae) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}
