package redir

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

const testPassword = "P@ssw0rd-Sim1"

// provisioned is a CCM device with the admin password set.
func provisioned(t testing.TB) *firmware.Firmware {
	t.Helper()
	fw, err := firmware.Open(firmware.Config{UUID: "4c4c4544-0038-4b10-8052-b4c04f564433", DNSSuffix: "corp.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte("admin:" + fw.Realm() + ":" + testPassword))
	if rv := fw.Setup(2, hex.EncodeToString(sum[:])); rv != 0 {
		t.Fatalf("Setup %d", rv)
	}
	return fw
}

func giveConsent(t *testing.T, fw *firmware.Firmware) {
	t.Helper()
	if rv := fw.StartOptIn(); rv != 0 {
		t.Fatalf("StartOptIn %d", rv)
	}
	code, _ := fw.DisplayedOptInCode()
	n, err := strconv.Atoi(code) // not fmt.Sscan: a leading 0 would read as octal
	if err != nil {
		t.Fatal(err)
	}
	if rv := fw.SendOptInCode(n); rv != 0 {
		t.Fatalf("SendOptInCode %d", rv)
	}
}

// serve runs Serve for each connection of a real loopback listener.
func serve(t *testing.T, fw *firmware.Firmware) (addr string, results chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	results = make(chan error, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { results <- Serve(ctx, c, Config{Firmware: fw, HandshakeTimeout: 10 * time.Second}) }()
		}
	}()
	t.Cleanup(func() {
		cancel()
		ln.Close()
		<-done
	})
	return ln.Addr().String(), results
}

// console is a test console speaking the redirection protocol.
type console struct {
	t   *testing.T
	c   net.Conn
	r   *bufio.Reader
	seq uint32
}

func dial(t *testing.T, addr string) *console {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &console{t: t, c: c, r: bufio.NewReader(c)}
}

func (c *console) send(b ...byte) {
	c.t.Helper()
	if _, err := c.c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

func (c *console) read(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("read %d bytes: %v", n, err)
	}
	return b
}

func (c *console) start(tag [4]byte) byte {
	c.t.Helper()
	c.send(append([]byte{StartRedirectionSession, 0, 0, 0}, tag[:]...)...)
	r := c.read(13)
	if r[0] != StartRedirectionSessionReply {
		c.t.Fatalf("start reply % x", r)
	}
	return r[1]
}

func (c *console) auth(authType byte, data []byte) (status, typ byte, reply []byte) {
	c.t.Helper()
	c.send(binary.LittleEndian.AppendUint32([]byte{AuthenticateSession, 0, 0, 0, authType}, uint32(len(data)))...)
	c.send(data...)
	h := c.read(9)
	if h[0] != AuthenticateSessionReply {
		c.t.Fatalf("auth reply % x", h)
	}
	return h[1], h[4], c.read(int(binary.LittleEndian.Uint32(h[5:])))
}

func lp(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		b = append(append(b, byte(len(f))), f...)
	}
	return b
}

// digestLogin logs in as MPS's interceptor does: an empty digest first to
// get the challenge, then the response. It returns the final status.
func (c *console) digestLogin(user, password string) byte {
	c.t.Helper()
	st, typ, ch := c.auth(AuthDigest, lp(user, "", "", DigestURI, "", "", "", ""))
	if st != AuthFailure || typ != AuthDigest {
		c.t.Fatalf("challenge: status %d type %d", st, typ)
	}
	f, ok := lpStrings(ch, 3)
	if !ok || f[2] != "auth" {
		c.t.Fatalf("challenge data % x", ch)
	}
	realm, nonce := f[0], f[1]
	resp := DigestResponse(user, realm, password, nonce, "00000001", "0a1b2c3d4e", "auth", DigestURI)
	st, _, _ = c.auth(AuthDigest, lp(user, realm, nonce, DigestURI, "0a1b2c3d4e", "00000001", resp, "auth"))
	return st
}

func (c *console) solStart() {
	c.t.Helper()
	msg := binary.LittleEndian.AppendUint32([]byte{StartSOLRedirection, 0, 0, 0}, c.seq)
	for _, v := range []uint16{10000, 100, 0, 10000, 100, 0} {
		msg = binary.LittleEndian.AppendUint16(msg, v)
	}
	c.send(append(msg, 0, 0, 0, 0)...)
	r := c.read(23)
	if r[0] != StartSOLRedirectionReply || r[1] != 0 {
		c.t.Fatalf("SOL start reply % x", r)
	}
	// settings, as MeshCommander and ui-toolkit send them
	c.send(binary.LittleEndian.AppendUint32([]byte{SOLSettings, 0, 0, 0}, c.seq)...)
	c.send(0, 0, 0x1B, 0, 0, 0)
}

func (c *console) solType(s string) {
	c.t.Helper()
	c.seq++
	msg := binary.LittleEndian.AppendUint32([]byte{SOLDataToHost, 0, 0, 0}, c.seq)
	msg = binary.LittleEndian.AppendUint16(msg, uint16(len(s)))
	c.send(append(msg, s...)...)
}

// solReadUntil collects SOL output until it contains want.
func (c *console) solReadUntil(want string) string {
	c.t.Helper()
	var out strings.Builder
	for !strings.Contains(out.String(), want) {
		h := c.read(10)
		if h[0] != SOLDataFromHost {
			c.t.Fatalf("SOL message % x (have %q)", h, out.String())
		}
		out.Write(c.read(int(binary.LittleEndian.Uint16(h[8:]))))
	}
	return out.String()
}

func lastAudit(fw *firmware.Firmware, n int) []firmware.AuditRecord {
	a := fw.AuditRecords()
	return a[len(a)-n:]
}

func TestSOLSessionWithConsent(t *testing.T) {
	fw := provisioned(t)
	addr, results := serve(t, fw)

	// CCM requires consent for SOL: the login is refused after the digest
	c := dial(t, addr)
	if st := c.start(TagSOL); st != StatusSuccess {
		t.Fatalf("start %d", st)
	}
	if st := c.digestLogin("admin", testPassword); st != AuthFailure {
		t.Fatalf("login without consent: %d", st)
	}
	if err := <-results; !errors.Is(err, ErrRefused) {
		t.Fatalf("Serve: %v", err)
	}

	giveConsent(t, fw)
	c = dial(t, addr)
	if st := c.start(TagSOL); st != StatusSuccess {
		t.Fatalf("start %d", st)
	}
	// query of the supported authentication types
	if st, typ, types := c.auth(AuthQuery, nil); st != AuthSuccess || typ != AuthQuery || !bytes.Contains(types, []byte{AuthDigest}) {
		t.Fatalf("query: %d %d % x", st, typ, types)
	}
	if st := c.digestLogin("admin", testPassword); st != AuthSuccess {
		t.Fatalf("login: %d", st)
	}
	c.solStart()
	if out := c.solReadUntil("login: "); !strings.Contains(out, "serial console") {
		t.Fatalf("banner %q", out)
	}
	if fw.RedirectionSessions(firmware.RedirSOL) != 1 || fw.OptInState() != firmware.OptInStateInSession {
		t.Fatalf("session not counted: %d, consent %d", fw.RedirectionSessions(firmware.RedirSOL), fw.OptInState())
	}
	c.solType("echo hel")
	c.solType("lo\x7fo\r")
	if out := c.solReadUntil("login: "); out != "echo hello\b \bo\r\nhello\r\nsim login: " {
		t.Fatalf("console output %q", out)
	}
	// keepalive ping → pong
	c.send(binary.LittleEndian.AppendUint32([]byte{SOLKeepAlivePing, 0, 0, 0}, 9)...)
	if r := c.read(8); r[0] != SOLKeepAlivePong {
		t.Fatalf("pong % x", r)
	}
	c.send(binary.LittleEndian.AppendUint32([]byte{EndSOLRedirection, 0, 0, 0}, 10)...)
	if r := c.read(8); r[0] != EndSOLRedirectionReply {
		t.Fatalf("end reply % x", r)
	}
	c.send(EndRedirectionSession, 0, 0, 0)
	if err := <-results; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	a := lastAudit(fw, 2)
	if a[0].AppID != firmware.AuditRedirectionManager || a[0].EventID != 4 || a[1].EventID != 5 || a[0].Initiator != "admin" {
		t.Fatalf("audit %+v", a)
	}
	if fw.RedirectionSessions(firmware.RedirSOL) != 0 || fw.OptInState() != firmware.OptInStateNotStarted {
		t.Fatal("session or consent left after the end")
	}
}

func TestLoginFailuresAndRefusals(t *testing.T) {
	fw := provisioned(t)
	fw.Update(func(s *firmware.State) error { s.OptIn.Required = firmware.OptInRequiredNone; return nil })
	addr, results := serve(t, fw)

	c := dial(t, addr)
	if st := c.start([4]byte{'X', 'X', 'X', 'X'}); st != StatusUnknownType {
		t.Fatalf("unknown type: %d", st)
	}
	<-results

	c = dial(t, addr)
	c.start(TagSOL)
	// two wrong digests and a wrong password: the third failure closes
	for i := range 2 {
		if st := c.digestLogin("admin", "wrong"); st != AuthFailure {
			t.Fatalf("attempt %d: %d", i, st)
		}
	}
	if st, _, _ := c.auth(AuthPassword, lp("admin", "wrong too")); st != AuthFailure {
		t.Fatal("password login with a wrong password")
	}
	if err := <-results; !errors.Is(err, ErrRefused) {
		t.Fatalf("after three failures: %v", err)
	}

	// user/password login works; Kerberos is not supported
	c = dial(t, addr)
	c.start(TagSOL)
	if st, _, _ := c.auth(AuthKerberos, []byte{1, 2, 3}); st != AuthNotSupported {
		t.Fatalf("kerberos: %d", st)
	}
	if st, _, _ := c.auth(AuthPassword, lp("admin", testPassword)); st != AuthSuccess {
		t.Fatalf("password login: %d", st)
	}
	c.c.Close()
	<-results

	// disabled feature
	fw.Update(func(s *firmware.State) error { s.Redirection.EnabledState = 32769; return nil }) // IDER only
	c = dial(t, addr)
	if st := c.start(TagSOL); st != StatusUnsupported {
		t.Fatalf("SOL disabled: %d", st)
	}
	<-results
	// IDE-R: start, keepalive, end
	c = dial(t, addr)
	c.start(TagIDER)
	if st := c.digestLogin("admin", testPassword); st != AuthSuccess {
		t.Fatalf("login %d", st)
	}
	c.send(append([]byte{StartKVMOrIDER, 0, 0, 0, 1, 0, 0, 0}, make([]byte, 10)...)...)
	if r := c.read(30); r[0] != StartKVMOrIDERReply || r[1] != 0 {
		t.Fatalf("IDER start reply % x", r)
	}
	c.send(binary.LittleEndian.AppendUint32([]byte{IDERKeepAlivePing, 0, 0, 0}, 2)...)
	if r := c.read(8); r[0] != IDERKeepAlivePong {
		t.Fatalf("IDER pong % x", r)
	}
	c.send(EndRedirectionSession, 0, 0, 0)
	if err := <-results; err != nil {
		t.Fatal(err)
	}
	if a := lastAudit(fw, 2); a[0].EventID != 0 || a[1].EventID != 1 {
		t.Fatalf("IDE-R audit %+v", a)
	}
}

// rfbClient does the RFB 3.8 handshake and returns width, height and name.
func (c *console) rfbHandshake() (int, int, string) {
	c.t.Helper()
	if v := c.read(12); string(v) != "RFB 003.008\n" {
		c.t.Fatalf("version %q", v)
	}
	c.send([]byte("RFB 003.008\n")...)
	if st := c.read(2); st[0] != 1 || st[1] != 1 {
		c.t.Fatalf("security types % x", st)
	}
	c.send(1)
	if r := c.read(4); binary.BigEndian.Uint32(r) != 0 {
		c.t.Fatalf("security result % x", r)
	}
	c.send(1) // shared
	init := c.read(24)
	name := c.read(int(binary.BigEndian.Uint32(init[20:])))
	return int(binary.BigEndian.Uint16(init)), int(binary.BigEndian.Uint16(init[2:])), string(name)
}

func (c *console) updateRequest(incremental byte, w, h int) {
	b := []byte{rfbUpdateRequest, incremental, 0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(w))
	c.send(binary.BigEndian.AppendUint16(b, uint16(h))...)
}

// readRRE reads a one-rectangle RRE update and returns its colour.
func (c *console) readRRE() uint32 {
	c.t.Helper()
	h := c.read(4 + 12)
	if h[0] != 0 || binary.BigEndian.Uint16(h[2:]) != 1 || int32(binary.BigEndian.Uint32(h[12:])) != rfbEncodingRRE {
		c.t.Fatalf("update header % x", h)
	}
	body := c.read(8)
	if binary.BigEndian.Uint32(body) != 0 {
		c.t.Fatal("sub-rectangles")
	}
	return binary.LittleEndian.Uint32(body[4:])
}

func TestKVMSession(t *testing.T) {
	fw := provisioned(t)
	addr, results := serve(t, fw)
	giveConsent(t, fw) // CCM: KVM needs consent

	c := dial(t, addr)
	if st := c.start(TagKVM); st != StatusSuccess {
		t.Fatalf("start %d", st)
	}
	if st := c.digestLogin("admin", testPassword); st != AuthSuccess {
		t.Fatalf("login %d", st)
	}
	c.send(StartKVMOrIDER, 0, 0, 0, 0, 0, 0, 0)
	if r := c.read(8); r[0] != StartKVMOrIDERReply {
		t.Fatalf("KVM start reply % x", r)
	}
	w, h, name := c.rfbHandshake()
	hw := fw.Hardware()
	if w != hw.Displays[0].Width || h != hw.Displays[0].Height || !strings.Contains(name, hw.Chassis.Model) {
		t.Fatalf("screen %dx%d %q", w, h, name)
	}
	if fw.RedirectionSessions(firmware.RedirKVM) != 1 {
		t.Fatal("KVM session not counted")
	}
	// a second KVM session is refused while this one runs
	c2 := dial(t, addr)
	if st := c2.start(TagKVM); st != StatusBusy {
		t.Fatalf("second KVM session: %d", st)
	}
	<-results

	// SetEncodings: RRE
	c.send(append([]byte{rfbSetEncodings, 0, 0, 1}, 0, 0, 0, rfbEncodingRRE)...)
	c.updateRequest(0, w, h)
	if col := c.readRRE(); col != ScreenColor(0) {
		t.Fatalf("initial colour %06x", col)
	}
	// an incremental request is answered when a key changes the screen
	c.updateRequest(1, w, h)
	c.send(rfbPointerEvent, 1, 0, 10, 0, 10)
	c.send(rfbKeyEvent, 1, 0, 0, 0, 0, 0, 'a')
	if col := c.readRRE(); col != ScreenColor('a') {
		t.Fatalf("colour after a key %06x", col)
	}
	// raw encoding of a small area
	c.send(append([]byte{rfbSetEncodings, 0, 0, 1}, 0, 0, 0, 0)...)
	b := []byte{rfbUpdateRequest, 0, 0, 0, 0, 0, 0, 2, 0, 1}
	c.send(b...)
	hdr := c.read(16)
	if int32(binary.BigEndian.Uint32(hdr[12:])) != rfbEncodingRaw {
		t.Fatalf("raw header % x", hdr)
	}
	if px := c.read(8); binary.LittleEndian.Uint32(px[4:]) != ScreenColor('a') {
		t.Fatalf("raw pixels % x", px)
	}
	c.c.Close()
	if err := <-results; err == nil || errors.Is(err, ErrProtocol) {
		t.Fatalf("Serve after the console left: %v", err)
	}
	if fw.RedirectionSessions(firmware.RedirKVM) != 0 {
		t.Fatal("KVM session left")
	}
	if a := lastAudit(fw, 2); a[0].EventID != 8 || a[1].EventID != 9 {
		t.Fatalf("KVM audit %+v", a)
	}
}

// zero is a Rand that yields zeros: nonces become predictable for the fuzz seeds.
type zero struct{}

func (zero) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// FuzzServe feeds arbitrary console bytes to a session (the seeds log in
// with the nonce the zero Rand produces, so the fuzzer reaches SOL, KVM
// and IDE-R parsing).
func FuzzServe(f *testing.F) {
	fw := provisioned(f)
	fw.Update(func(s *firmware.State) error { s.OptIn.Required = firmware.OptInRequiredNone; return nil })
	nonce := strings.Repeat("00", 16)
	resp := DigestResponse("admin", fw.Realm(), testPassword, nonce, "00000001", "c", "auth", DigestURI)
	login := func(tag [4]byte) []byte {
		b := append([]byte{StartRedirectionSession, 0, 0, 0}, tag[:]...)
		first := lp("admin", "", "", DigestURI, "", "", "", "")
		b = append(binary.LittleEndian.AppendUint32(append(b, AuthenticateSession, 0, 0, 0, AuthDigest), uint32(len(first))), first...)
		second := lp("admin", fw.Realm(), nonce, DigestURI, "c", "00000001", resp, "auth")
		return append(binary.LittleEndian.AppendUint32(append(b, AuthenticateSession, 0, 0, 0, AuthDigest), uint32(len(second))), second...)
	}
	sol := append(login(TagSOL), append([]byte{StartSOLRedirection}, make([]byte, 23)...)...)
	sol = append(sol, SOLDataToHost, 0, 0, 0, 1, 0, 0, 0, 5, 0, 'h', 'e', 'l', 'p', '\r', EndRedirectionSession, 0, 0, 0)
	f.Add(sol)
	kvm := append(login(TagKVM), StartKVMOrIDER, 0, 0, 0, 0, 0, 0, 0)
	kvm = append(kvm, "RFB 003.008\n\x01\x01\x02\x00\x00\x01\x00\x00\x00\x02\x03\x00\x00\x00\x00\x00\x00\x10\x00\x10\x04\x01\x00\x00\x00\x00\x00\x61"...)
	f.Add(kvm)
	f.Add(append(login(TagIDER), append([]byte{StartKVMOrIDER}, make([]byte, 17)...)...))
	f.Add([]byte{StartRedirectionSession, 0, 0, 0, 'S', 'O', 'L', ' ', AuthenticateSession, 0, 0, 0, AuthQuery, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		dev, con := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = Serve(context.Background(), dev, Config{Firmware: fw, Rand: zero{}, HandshakeTimeout: 5 * time.Second})
		}()
		go func() { _, _ = io.Copy(io.Discard, con) }()
		_, _ = con.Write(in)
		con.Close()
		<-done
		if n := fw.RedirectionSessions(firmware.RedirSOL) + fw.RedirectionSessions(firmware.RedirKVM) + fw.RedirectionSessions(firmware.RedirIDER); n != 0 {
			t.Fatalf("%d sessions left open", n)
		}
	})
}
