package tlspsk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testPID = "ABCD1234"
	testPPS = "Q2W3E4R5T6Y7U8I9O0PAZSXDCFVGBHNJ"
)

func testConfig(t testing.TB) *Config {
	t.Helper()
	cfg, err := PIDPPSConfig("abcd-1234", "q2w3-e4r5-t6y7-u8i9-o0pa-zsxd-cfvg-bhnj")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Identity != testPID || string(cfg.PSK) != testPPS {
		t.Fatalf("PIDPPSConfig normalisation: %q", cfg.Identity)
	}
	return cfg
}

// pair runs a real TCP connection on loopback: the server side is handed to
// serve in its own goroutine, the client side is returned.
func pair(t *testing.T, scfg *Config, serve func(*Conn) error) (net.Conn, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	done := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		c := Server(raw, scfg)
		defer c.Close()
		done <- serve(c)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw, done
}

// echo is a server that answers every line with "echo: " + line until EOF.
func echo(c *Conn) error {
	if err := c.Handshake(); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := io.WriteString(c, "echo: "+line); err != nil {
			return err
		}
	}
}

func TestGoToGoAllVersionsAndSuites(t *testing.T) {
	for _, v := range []uint16{VersionTLS10, VersionTLS11, VersionTLS12} {
		for _, id := range CipherSuites() {
			if !suiteByID(id).usableWith(v) {
				continue
			}
			t.Run(VersionName(v)+"/"+CipherSuiteName(id), func(t *testing.T) {
				scfg := testConfig(t)
				scfg.MinVersion, scfg.MaxVersion, scfg.CipherSuites = v, v, []uint16{id}
				raw, done := pair(t, scfg, echo)
				c := Client(raw, testConfig(t))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := c.HandshakeContext(ctx); err != nil {
					t.Fatal(err)
				}
				st := c.ConnectionState()
				if st.Version != v || st.CipherSuite != id || st.Identity != testPID || !st.HandshakeComplete {
					t.Fatalf("state %+v", st)
				}
				r := bufio.NewReader(c)
				// Small lines, then one larger than a record to check fragmentation.
				for _, msg := range []string{"hello\n", "x\n", strings.Repeat("A", 40000) + "\n"} {
					if _, err := io.WriteString(c, msg); err != nil {
						t.Fatal(err)
					}
					got, err := r.ReadString('\n')
					if err != nil || got != "echo: "+msg {
						t.Fatalf("got %d bytes, %v", len(got), err)
					}
				}
				if err := c.Close(); err != nil {
					t.Fatal(err)
				}
				if err := <-done; err != nil {
					t.Fatalf("server: %v", err)
				}
			})
		}
	}
}

func TestNegotiation(t *testing.T) {
	cases := []struct {
		name         string
		client, srv  func(*Config)
		wantVersion  uint16
		wantSuite    uint16
		wantClient   error
		wantAlert    Alert
		wantSrvError error
	}{
		{name: "defaults pick TLS 1.2 GCM", wantVersion: VersionTLS12, wantSuite: TLS_PSK_WITH_AES_128_GCM_SHA256},
		{name: "server capped at 1.0", srv: func(c *Config) { c.MaxVersion = VersionTLS10 }, wantVersion: VersionTLS10, wantSuite: TLS_PSK_WITH_AES_128_CBC_SHA256},
		{name: "client capped at 1.1", client: func(c *Config) { c.MaxVersion = VersionTLS11 }, wantVersion: VersionTLS11, wantSuite: TLS_PSK_WITH_AES_128_CBC_SHA256},
		{name: "server order decides", srv: func(c *Config) { c.CipherSuites = []uint16{TLS_PSK_WITH_AES_256_CBC_SHA, TLS_PSK_WITH_AES_128_CBC_SHA} }, wantVersion: VersionTLS12, wantSuite: TLS_PSK_WITH_AES_256_CBC_SHA},
		{name: "AMT-like server: TLS 1.0 AES128-SHA only", srv: func(c *Config) {
			c.MaxVersion, c.CipherSuites = VersionTLS10, []uint16{TLS_PSK_WITH_AES_128_CBC_SHA}
		}, wantVersion: VersionTLS10, wantSuite: TLS_PSK_WITH_AES_128_CBC_SHA},
		{name: "identity hint", srv: func(c *Config) { c.IdentityHint = "AMT" }, wantVersion: VersionTLS12, wantSuite: TLS_PSK_WITH_AES_128_GCM_SHA256},
		{name: "no common version", client: func(c *Config) { c.MaxVersion = VersionTLS10 }, srv: func(c *Config) { c.MinVersion = VersionTLS12 },
			wantAlert: AlertProtocolVersion, wantSrvError: ErrVersion},
		{name: "no common suite", client: func(c *Config) { c.CipherSuites = []uint16{TLS_PSK_WITH_AES_256_CBC_SHA} }, srv: func(c *Config) { c.CipherSuites = []uint16{TLS_PSK_WITH_AES_128_CBC_SHA} },
			wantAlert: AlertHandshakeFailure, wantSrvError: ErrNoCommonSuite},
		{name: "GCM only at TLS 1.1", client: func(c *Config) { c.MaxVersion = VersionTLS11 }, srv: func(c *Config) { c.CipherSuites = []uint16{TLS_PSK_WITH_AES_128_GCM_SHA256} },
			wantAlert: AlertHandshakeFailure, wantSrvError: ErrNoCommonSuite},
		{name: "wrong PSK", client: func(c *Config) { c.PSK = []byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") },
			wantAlert: AlertBadRecordMAC, wantSrvError: ErrBadRecordMAC},
		{name: "unknown identity", client: func(c *Config) { c.Identity = "ZZZZ9999" },
			wantAlert: AlertUnknownPSKIdentity, wantSrvError: ErrUnknownIdentity},
		{name: "GetPSK lookup", srv: func(c *Config) {
			c.Identity, c.PSK = "", nil
			c.GetPSK = func(id string) ([]byte, error) {
				if id == testPID {
					return []byte(testPPS), nil
				}
				return nil, ErrUnknownIdentity
			}
		}, wantVersion: VersionTLS12, wantSuite: TLS_PSK_WITH_AES_128_GCM_SHA256},
		{name: "GetPSK refuses", srv: func(c *Config) {
			c.GetPSK = func(id string) ([]byte, error) { return nil, errors.New("store down") }
		}, wantAlert: AlertUnknownPSKIdentity, wantSrvError: ErrUnknownIdentity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := testConfig(t), testConfig(t)
			if tc.client != nil {
				tc.client(ccfg)
			}
			if tc.srv != nil {
				tc.srv(scfg)
			}
			raw, done := pair(t, scfg, echo)
			c := Client(raw, ccfg)
			err := c.Handshake()
			if tc.wantAlert == 0 && tc.wantClient == nil {
				c.Close() // ends the echo server
			}
			serr := <-done
			if tc.wantAlert == 0 && tc.wantClient == nil {
				if err != nil || serr != nil {
					t.Fatalf("client %v, server %v", err, serr)
				}
				st := c.ConnectionState()
				if st.Version != tc.wantVersion || st.CipherSuite != tc.wantSuite {
					t.Fatalf("negotiated %s %s", VersionName(st.Version), CipherSuiteName(st.CipherSuite))
				}
				if scfg.IdentityHint != "" && st.IdentityHint != scfg.IdentityHint {
					t.Fatalf("hint %q", st.IdentityHint)
				}
				return
			}
			if err == nil {
				t.Fatal("client handshake succeeded")
			}
			if tc.wantClient != nil && !errors.Is(err, tc.wantClient) {
				t.Errorf("client error %v, want %v", err, tc.wantClient)
			}
			var ae *AlertError
			if tc.wantClient == nil && (!errors.As(err, &ae) || !ae.Remote || ae.Alert != tc.wantAlert) {
				t.Errorf("client error %v, want remote alert %s", err, tc.wantAlert)
			}
			if !errors.Is(serr, tc.wantSrvError) {
				t.Errorf("server error %v, want %v", serr, tc.wantSrvError)
			}
			if serr != nil && strings.Contains(serr.Error(), testPPS) || strings.Contains(err.Error(), testPPS) {
				t.Error("error text contains the PSK")
			}
			// The failed connection stays failed.
			if _, err2 := c.Write([]byte("x")); err2 == nil {
				t.Error("write after failed handshake")
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]*Config{
		"no PSK":           {Identity: "X"},
		"no identity":      {PSK: []byte("k")},
		"bad versions":     {Identity: "X", PSK: []byte("k"), MinVersion: VersionTLS12, MaxVersion: VersionTLS10},
		"SSL 3":            {Identity: "X", PSK: []byte("k"), MinVersion: 0x0300},
		"TLS 1.3":          {Identity: "X", PSK: []byte("k"), MaxVersion: 0x0304},
		"no known suites":  {Identity: "X", PSK: []byte("k"), CipherSuites: []uint16{0x002f}},
		"identity too big": {Identity: strings.Repeat("x", 129), PSK: []byte("k")},
	} {
		a, b := net.Pipe()
		c := Client(a, cfg)
		if err := c.Handshake(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
		a.Close()
		b.Close()
	}
	a, b := net.Pipe()
	if err := Server(a, nil).Handshake(); !errors.Is(err, ErrConfig) {
		t.Errorf("nil config: %v", err)
	}
	a.Close()
	b.Close()
	for _, bad := range []string{"", "SHORT", strings.Repeat("a", 31) + "!", strings.Repeat("A", 33)} {
		if _, err := PSKFromPPS(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("PSKFromPPS(%q) = %v", bad, err)
		}
	}
	if _, err := PIDPPSConfig("ABC", testPPS); !errors.Is(err, ErrConfig) {
		t.Error(err)
	}
}

func TestHandshakeContextCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c // never answers
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	srv := <-accepted
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c := Client(raw, testConfig(t))
	errc := make(chan error, 1)
	go func() { errc <- c.HandshakeContext(ctx) }()
	// The ClientHello reaching the silent server proves the handshake is
	// blocked reading; then cancel.
	buf := make([]byte, 5)
	if _, err := io.ReadFull(srv, buf); err != nil || buf[0] != recordHandshake {
		t.Fatalf("no ClientHello: %v %x", err, buf)
	}
	cancel()
	err = <-errc
	if !errors.Is(err, ErrHandshakeTimeout) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if err2 := c.Handshake(); err2 == nil {
		t.Fatal("handshake error not sticky")
	}
	// Already-expired context: nothing is sent.
	c2 := Client(raw, testConfig(t))
	if err := c2.HandshakeContext(ctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestDialAndListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, testConfig(t))
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		echo(c.(*Conn))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, "tcp", inner.Addr().String(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var _ net.Conn = c
	fmt.Fprint(c, "ping\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo: ping\n" {
		t.Fatalf("%q %v", line, err)
	}
	c.Close()
	wg.Wait()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
}

// TestConcurrentReadWrite streams data in both directions at once.
func TestConcurrentReadWrite(t *testing.T) {
	const total = 1 << 20
	raw, done := pair(t, testConfig(t), func(c *Conn) error {
		// Server: copy everything back.
		_, err := io.Copy(c, c)
		return err
	})
	c := Client(raw, testConfig(t))
	src := make([]byte, total)
	rand.Read(src)
	werr := make(chan error, 1)
	go func() {
		for p := src; len(p) > 0; {
			n := min(len(p), 7777)
			if _, err := c.Write(p[:n]); err != nil {
				werr <- err
				return
			}
			p = p[n:]
		}
		werr <- c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("echoed %d bytes, differ", len(got))
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReadDeadlineResumes checks that a read timeout does not break the
// connection (partial records are kept).
func TestReadDeadlineResumes(t *testing.T) {
	release := make(chan struct{})
	raw, done := pair(t, testConfig(t), func(c *Conn) error {
		if err := c.Handshake(); err != nil {
			return err
		}
		<-release
		_, err := io.WriteString(c, "late\n")
		return err
	})
	c := Client(raw, testConfig(t))
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 10)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want timeout, got %v", err)
	}
	close(release)
	c.SetReadDeadline(time.Time{})
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "late\n" {
		t.Fatalf("%q %v", line, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRenegotiationRefused(t *testing.T) {
	// The server sends a HelloRequest after the handshake; the client answers
	// with a no_renegotiation warning and the connection keeps working.
	raw, done := pair(t, testConfig(t), func(c *Conn) error {
		if err := c.Handshake(); err != nil {
			return err
		}
		c.out.Lock()
		c.writeRecordLocked(recordHandshake, handshake(typeHelloRequest, nil))
		c.writeRecordLocked(recordApplicationData, []byte("after\n"))
		err := c.flushLocked()
		c.out.Unlock()
		if err != nil {
			return err
		}
		// Expect the warning alert, then close_notify → EOF.
		c.in.Lock()
		err = c.readRecord(false)
		c.in.Unlock()
		if err != nil {
			return fmt.Errorf("reading warning: %w", err)
		}
		if c.emptyInRow != 1 {
			return errors.New("no warning alert received")
		}
		_, err = c.Read(make([]byte, 1))
		if err != io.EOF {
			return fmt.Errorf("want EOF, got %v", err)
		}
		return nil
	})
	c := Client(raw, testConfig(t))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "after\n" {
		t.Fatalf("%q %v", line, err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Known-answer checks of the PRFs, computed independently from the RFC
// definitions with HMAC directly.
func TestPRF(t *testing.T) {
	secret := []byte("a secret of odd length")
	seed := []byte("seed")
	// TLS 1.2 P_SHA256, two blocks.
	h := func(key, data []byte) []byte { m := hmac.New(sha256.New, key); m.Write(data); return m.Sum(nil) }
	ls := append([]byte("label"), seed...)
	a1 := h(secret, ls)
	a2 := h(secret, a1)
	want := append(h(secret, append(append([]byte(nil), a1...), ls...)), h(secret, append(append([]byte(nil), a2...), ls...))...)
	if got := prf12(sha256.New)(secret, "label", seed, 40); !bytes.Equal(got, want[:40]) {
		t.Fatalf("P_SHA256 %x", got)
	}
	// TLS 1.0: halves overlap by one byte for odd lengths.
	pm := func(hf func() hash.Hash, key []byte, n int) []byte {
		var out []byte
		a := ls
		for len(out) < n {
			m := hmac.New(hf, key)
			m.Write(a)
			a = m.Sum(nil)
			m = hmac.New(hf, key)
			m.Write(a)
			m.Write(ls)
			out = append(out, m.Sum(nil)...)
		}
		return out[:n]
	}
	s1, s2 := secret[:11], secret[11:]
	if len(secret) != 22 {
		t.Fatal("fixture")
	}
	odd := append(secret, 'x') // 23 bytes: halves of 12 sharing byte 11
	x1 := pm(md5Hash, odd[:12], 50)
	x2 := pm(sha1Hash, odd[11:], 50)
	for i := range x1 {
		x1[i] ^= x2[i]
	}
	if got := prf10(odd, "label", seed, 50); !bytes.Equal(got, x1) {
		t.Fatalf("TLS 1.0 PRF (odd) %x", got)
	}
	y1, y2 := pm(md5Hash, s1, 30), pm(sha1Hash, s2, 30)
	for i := range y1 {
		y1[i] ^= y2[i]
	}
	if got := prf10(secret, "label", seed, 30); !bytes.Equal(got, y1) {
		t.Fatal("TLS 1.0 PRF (even)")
	}
	// Plain PSK premaster, RFC 4279 §2.
	if got := hex.EncodeToString(pskPremaster([]byte{0xaa, 0xbb})); got != "000200000002aabb" {
		t.Fatal(got)
	}
}

func md5Hash() hash.Hash  { return md5.New() }
func sha1Hash() hash.Hash { return sha1.New() }

func cipherCBC(t *testing.T, key, iv, dst, src []byte) {
	t.Helper()
	b, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(dst, src)
}

// TestCBCRecordTampering flips every byte position class of a protected
// record and expects bad_record_mac each time.
func TestCBCRecordTampering(t *testing.T) {
	for _, v := range []uint16{VersionTLS10, VersionTLS11, VersionTLS12} {
		for _, id := range []uint16{TLS_PSK_WITH_AES_128_CBC_SHA, TLS_PSK_WITH_AES_256_CBC_SHA384, TLS_PSK_WITH_AES_128_GCM_SHA256} {
			s := suiteByID(id)
			if !s.usableWith(v) {
				continue
			}
			k := deriveKeys(v, s, pskPremaster([]byte("k")), make([]byte, 32), make([]byte, 32))
			hdr := []byte{recordApplicationData, byte(v >> 8), byte(v), 0, 0}
			for _, n := range []int{0, 1, 15, 16, 100} {
				seal, _ := newProtection(v, s, k.clientKey, k.clientMAC, k.clientIV)
				ct, err := seal.seal(7, hdr, bytes.Repeat([]byte{'p'}, n), rand.Reader)
				if err != nil {
					t.Fatal(err)
				}
				open := func() protection { p, _ := newProtection(v, s, k.clientKey, k.clientMAC, k.clientIV); return p }
				if pt, err := open().open(7, hdr, ct); err != nil || len(pt) != n {
					t.Fatalf("%s %s n=%d: %v", VersionName(v), s.name, n, err)
				}
				if _, err := open().open(8, hdr, ct); err == nil {
					t.Fatal("wrong sequence number accepted")
				}
				for i := range ct {
					bad := bytes.Clone(ct)
					bad[i] ^= 0x01
					if _, err := open().open(7, hdr, bad); !errors.Is(err, errBadRecordMAC) {
						// TLS 1.0 without explicit IV: flipping the first
						// block changes the first plaintext block → MAC fails too.
						t.Fatalf("%s %s n=%d: flip at %d accepted", VersionName(v), s.name, n, i)
					}
				}
				for _, cut := range []int{1, 16, len(ct)} {
					if cut > len(ct) {
						continue
					}
					if _, err := open().open(7, hdr, ct[:len(ct)-cut]); err == nil {
						t.Fatal("truncated record accepted")
					}
				}
			}
		}
	}
}

// TestBadPaddingCaught builds CBC records whose MAC is right but whose
// padding bytes are wrong; they must be rejected like a bad MAC.
func TestBadPaddingCaught(t *testing.T) {
	s := suiteByID(TLS_PSK_WITH_AES_128_CBC_SHA)
	k := deriveKeys(VersionTLS12, s, pskPremaster([]byte("k")), make([]byte, 32), make([]byte, 32))
	hdr := []byte{recordApplicationData, 3, 3, 0, 0}
	p, _ := newCBC(s, k.clientKey, k.clientMAC, nil, VersionTLS12)
	plain := []byte("0123456789") // 10 + 20 MAC = 30 → 2 padding bytes (value 1)
	p.mac.Reset()
	p.mac.Write(macHeader(1, hdr, len(plain)))
	p.mac.Write(plain)
	body := append(append(bytes.Clone(plain), p.mac.Sum(nil)...), 0x05, 0x01) // padding byte wrong
	iv := make([]byte, 16)
	ct := make([]byte, len(body))
	cipherCBC(t, k.clientKey, iv, ct, body)
	if _, err := p.open(1, hdr, append(iv, ct...)); !errors.Is(err, errBadRecordMAC) {
		t.Fatal("bad padding accepted")
	}
	body[30] = 0x01
	cipherCBC(t, k.clientKey, iv, ct, body)
	if pt, err := p.open(1, hdr, append(iv, ct...)); err != nil || string(pt) != "0123456789" {
		t.Fatalf("good padding rejected: %v", err)
	}
}

// TestClientChecksServer scripts a misbehaving server and checks the alert
// the client sends for each fault.
func TestClientChecksServer(t *testing.T) {
	sh := func(f func(*serverHello)) []byte {
		m := &serverHello{version: VersionTLS12, random: make([]byte, 32), cipherSuite: TLS_PSK_WITH_AES_128_CBC_SHA}
		f(m)
		return m.marshal()
	}
	done := handshake(typeServerHelloDone, nil)
	cases := []struct {
		name   string
		stream []byte
		alert  Alert
		err    error
	}{
		{"version above max", record(recordHandshake, VersionTLS10, sh(func(m *serverHello) { m.version = 0x0304 })), AlertProtocolVersion, ErrVersion},
		{"version below min", record(recordHandshake, VersionTLS10, sh(func(m *serverHello) { m.version = 0x0300 })), AlertProtocolVersion, ErrVersion},
		{"suite not offered", record(recordHandshake, VersionTLS10, sh(func(m *serverHello) { m.cipherSuite = 0x002f })), AlertIllegalParameter, ErrNoCommonSuite},
		{"compression", record(recordHandshake, VersionTLS10, sh(func(m *serverHello) { m.compression = 1 })), AlertIllegalParameter, ErrMalformed},
		{"unrequested extension", record(recordHandshake, VersionTLS10, func() []byte {
			b := sh(func(*serverHello) {})
			b = append(b, 0, 4, 0, 0x17, 0, 0) // extended_master_secret
			b[3] += 6
			return b
		}()), AlertUnsupportedExtension, ErrUnexpected},
		{"renegotiation_info with data", record(recordHandshake, VersionTLS10, func() []byte {
			b := sh(func(*serverHello) {})
			b = append(b, 0, 6, 0xff, 0x01, 0, 2, 1, 9)
			b[3] += 8
			return b
		}()), AlertHandshakeFailure, ErrRenegotiation},
		{"certificate", record(recordHandshake, VersionTLS10, append(sh(func(*serverHello) {}), handshake(typeCertificate, []byte{0, 0, 0})...)), AlertUnexpectedMessage, ErrUnexpected},
		{"done with body", record(recordHandshake, VersionTLS10, append(sh(func(*serverHello) {}), handshake(typeServerHelloDone, []byte{1})...)), AlertDecodeError, ErrMalformed},
		{"record version changes", append(record(recordHandshake, VersionTLS10, sh(func(*serverHello) {})), record(recordHandshake, VersionTLS11, done)...), AlertProtocolVersion, ErrVersion},
		{"application data in handshake", record(recordApplicationData, VersionTLS10, []byte("x")), AlertUnexpectedMessage, ErrUnexpected},
		{"not TLS", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), AlertUnexpectedMessage, ErrUnexpected},
		{"oversized record", []byte{recordHandshake, 3, 1, 0x48, 0x01}, AlertRecordOverflow, ErrRecordOverflow},
		{"early ChangeCipherSpec", record(recordChangeCipherSpec, VersionTLS10, []byte{1}), AlertUnexpectedMessage, ErrUnexpected},
		{"empty handshake record", record(recordHandshake, VersionTLS10, nil), AlertUnexpectedMessage, ErrUnexpected},
		{"bad alert length", record(recordAlert, VersionTLS10, []byte{2}), AlertDecodeError, ErrMalformed},
		{"huge handshake message", record(recordHandshake, VersionTLS10, []byte{typeServerHello, 0xff, 0xff, 0xff}), AlertDecodeError, ErrMalformed},
	}
	for _, tc := range cases {
		c := Client(&scriptConn{r: bytes.NewReader(tc.stream)}, testConfig(t))
		err := c.Handshake()
		var ae *AlertError
		if !errors.As(err, &ae) || ae.Remote || ae.Alert != tc.alert || !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, want local %s / %v", tc.name, err, tc.alert, tc.err)
		}
	}
	// A warning other than close_notify is ignored; a fatal alert ends it.
	stream := append(record(recordAlert, VersionTLS10, []byte{1, byte(AlertNoRenegotiation)}), record(recordAlert, VersionTLS10, []byte{2, byte(AlertHandshakeFailure)})...)
	err := Client(&scriptConn{r: bytes.NewReader(stream)}, testConfig(t)).Handshake()
	var ae *AlertError
	if !errors.As(err, &ae) || !ae.Remote || ae.Alert != AlertHandshakeFailure || ae.Error() != "tlspsk: peer sent fatal alert handshake_failure" {
		t.Fatalf("fatal alert: %v", err)
	}
	// EOF in the middle of a record.
	if err := Client(&scriptConn{r: bytes.NewReader([]byte{22, 3, 1, 0, 9, 1})}, testConfig(t)).Handshake(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
}
