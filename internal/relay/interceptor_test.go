package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"unicode/utf8"
)

// Wire messages built by hand, independently of the interceptor.

func startMsg(tag [4]byte) []byte { return append([]byte{0x10, 0, 0, 0}, tag[:]...) }

func startReply(status byte, oem []byte) []byte {
	if status != 0 {
		return []byte{0x11, status, 0, 0, 1, 0, 1, 1, 0x57, 0x01, 0, 0, 0}
	}
	b := []byte{0x11, 0, 0, 0, 1, 0, 1, 1, 0x57, 0x01, 0, 0, byte(len(oem))}
	return append(b, oem...)
}

func authMsg(code, status, authType byte, data []byte) []byte {
	b := binary.LittleEndian.AppendUint32([]byte{code, status, 0, 0, authType}, uint32(len(data)))
	return append(b, data...)
}

func lp(fields ...string) []byte {
	var b []byte
	for _, f := range fields {
		b = append(append(b, byte(len(f))), f...)
	}
	return b
}

const (
	tRealm  = "Digest:0123456789ABCDEF0123456789ABCDEF"
	tNonce  = "6f1d2a3b4c5d6e7f8091a2b3c4d5e6f7"
	tCnonce = "a1b2c3d4e5"
	tPass   = "Str0ng-Adm1n-Pw!"
)

func mustOut(t *testing.T, got []byte, err error, want []byte) {
	t.Helper()
	if err != nil {
		t.Fatalf("error %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("output\n got % x\nwant % x", got, want)
	}
}

// TestInterceptorInjectsDigest follows a complete login with injection: the
// browser's digest messages are replaced by the relay's, the device's
// messages pass unchanged, and after the success everything passes.
func TestInterceptorInjectsDigest(t *testing.T) {
	var tags [][4]byte
	x := newInterceptor(true, "admin", tPass, tCnonce, func(tag [4]byte) error { tags = append(tags, tag); return nil })

	out, err := x.browser(startMsg(tagSOL))
	mustOut(t, out, err, startMsg(tagSOL))
	if len(tags) != 1 || tags[0] != tagSOL {
		t.Fatalf("start hook %q", tags)
	}
	out, err = x.device(startReply(0, []byte{7, 7}))
	mustOut(t, out, err, startReply(0, []byte{7, 7}))

	// a query passes both ways and does not end the handshake
	out, err = x.browser(authMsg(0x13, 0, 0, nil))
	mustOut(t, out, err, authMsg(0x13, 0, 0, nil))
	out, err = x.device(authMsg(0x14, 0, 0, []byte{1, 4}))
	mustOut(t, out, err, authMsg(0x14, 0, 0, []byte{1, 4}))
	if x.passThrough() {
		t.Fatal("pass-through after a query")
	}

	// rule 1: the browser's first digest becomes an empty one
	browserDigest := authMsg(0x13, 0, 4, lp("someone", "", "", "/RedirectionService", "", "", "", ""))
	want1 := []byte{0x13, 0, 0, 0, 4, 5 + 27, 0, 0, 0, 5, 'a', 'd', 'm', 'i', 'n', 0, 0, 19}
	want1 = append(want1, "/RedirectionService"...)
	want1 = append(want1, 0, 0, 0, 0)
	out, err = x.browser(browserDigest)
	mustOut(t, out, err, want1)

	// the challenge is recorded and forwarded
	challenge := authMsg(0x14, 1, 4, lp(tRealm, tNonce, "auth"))
	out, err = x.device(challenge)
	mustOut(t, out, err, challenge)

	// rule 2: the browser's digest (made with a placeholder password) is
	// replaced by one made with the stored password
	response := DigestResponse("admin", tRealm, tPass, tNonce, "00000001", tCnonce, "auth")
	if len(response) != 32 {
		t.Fatalf("response %q", response)
	}
	want2data := lp("admin", tRealm, tNonce, "/RedirectionService", tCnonce, "00000001", response, "auth")
	want2 := authMsg(0x13, 0, 4, want2data)
	if int(binary.LittleEndian.Uint32(want2[5:])) != len("admin")+len(tRealm)+len(tNonce)+19+len(tCnonce)+8+32+4+8 {
		t.Fatal("length arithmetic")
	}
	wrong := DigestResponse("someone", tRealm, "placeholder", tNonce, "00000001", "ffff", "auth")
	out, err = x.browser(authMsg(0x13, 0, 4, lp("someone", tRealm, tNonce, "/RedirectionService", "ffff", "00000001", wrong, "auth")))
	mustOut(t, out, err, want2)
	if bytes.Contains(out, []byte(tPass)) || bytes.Contains(out, []byte("someone")) {
		t.Fatal("password or browser user in the injected message")
	}

	// a second failure (new nonce): the next digest uses nc 2
	challenge2 := authMsg(0x14, 1, 4, lp(tRealm, "nonce-2", "auth"))
	out, err = x.device(challenge2)
	mustOut(t, out, err, challenge2)
	out, err = x.browser(browserDigest)
	resp2 := DigestResponse("admin", tRealm, tPass, "nonce-2", "00000002", tCnonce, "auth")
	mustOut(t, out, err, authMsg(0x13, 0, 4, lp("admin", tRealm, "nonce-2", "/RedirectionService", tCnonce, "00000002", resp2, "auth")))

	// success, with the first session bytes in the same chunk
	success := authMsg(0x14, 0, 4, nil)
	out, err = x.device(append(append([]byte{}, success...), 0x21, 0xFF, 0x00))
	mustOut(t, out, err, append(append([]byte{}, success...), 0x21, 0xFF, 0x00))
	if !x.passThrough() {
		t.Fatal("no pass-through after the success")
	}
	// anything passes now, in both directions, unchanged (and uncopied)
	for _, p := range [][]byte{{0x40, 1, 2}, {0x13, 0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF}, {0xEE}} {
		out, err = x.browser(p)
		mustOut(t, out, err, p)
		if &out[0] != &p[0] {
			t.Fatal("pass-through copied the data")
		}
		out, err = x.device(p)
		mustOut(t, out, err, p)
	}
}

// TestInterceptorByteByByte: the result does not depend on how the stream
// is cut into chunks.
func TestInterceptorByteByByte(t *testing.T) {
	browser := [][]byte{
		startMsg(tagKVM),
		authMsg(0x13, 0, 4, lp("x", "", "", "/RedirectionService", "", "", "", "")),
		authMsg(0x13, 0, 4, lp("x", tRealm, tNonce, "/RedirectionService", "c", "00000001", "r", "auth")),
		{0x40, 0, 0, 0, 0, 0, 0, 0},
	}
	device := [][]byte{
		startReply(0, nil),
		authMsg(0x14, 1, 4, lp(tRealm, tNonce, "auth")),
		append(authMsg(0x14, 0, 4, nil), 0x41, 1, 0, 0),
	}
	whole := newInterceptor(true, "admin", tPass, tCnonce, nil)
	split := newInterceptor(true, "admin", tPass, tCnonce, nil)
	for i := range browser {
		w, err := whole.browser(browser[i])
		if err != nil {
			t.Fatal(err)
		}
		var s []byte
		for _, c := range browser[i] {
			o, err := split.browser([]byte{c})
			if err != nil {
				t.Fatal(err)
			}
			s = append(s, o...)
		}
		if !bytes.Equal(w, s) {
			t.Fatalf("browser message %d: whole % x, split % x", i, w, s)
		}
		if i < len(device) {
			w, err := whole.device(device[i])
			if err != nil {
				t.Fatal(err)
			}
			var s []byte
			for _, c := range device[i] {
				o, err := split.device([]byte{c})
				if err != nil {
					t.Fatal(err)
				}
				s = append(s, o...)
			}
			if !bytes.Equal(w, s) || !bytes.Equal(w, device[i]) {
				t.Fatalf("device message %d: whole % x, split % x", i, w, s)
			}
		}
	}
	if !whole.passThrough() || !split.passThrough() {
		t.Fatal("login not seen")
	}
}

// TestInterceptorWithoutInjection: the browser's login goes out as sent.
func TestInterceptorWithoutInjection(t *testing.T) {
	x := newInterceptor(false, "admin", tPass, tCnonce, nil)
	msgs := [][]byte{
		startMsg(tagSOL),
		authMsg(0x13, 0, 4, lp("admin", tRealm, tNonce, "/RedirectionService", "c", "00000001", "r", "auth")),
		authMsg(0x13, 0, 1, lp("admin", "pw")),
		{0x12, 0, 0, 0},
	}
	for _, m := range msgs {
		out, err := x.browser(m)
		mustOut(t, out, err, m)
	}
	// with injection, a user/password login is not touched either
	y := newInterceptor(true, "admin", tPass, tCnonce, nil)
	out, err := y.browser(msgs[2])
	mustOut(t, out, err, msgs[2])
}

// TestInterceptorRefusedStart: a refused session start is forwarded, and
// what the device sends until it closes passes.
func TestInterceptorRefusedStart(t *testing.T) {
	x := newInterceptor(true, "admin", tPass, tCnonce, nil)
	r := startReply(2, nil) // busy
	out, err := x.device(r[:4])
	mustOut(t, out, err, r[:4])
	out, err = x.device(r[4:])
	mustOut(t, out, err, r[4:])
}

// TestInterceptorMalformed: anything else before the login breaks the
// stream, for good.
func TestInterceptorMalformed(t *testing.T) {
	cases := []struct {
		name    string
		browser []byte
		device  []byte
	}{
		{name: "browser sends session data before the login", browser: []byte{0x40, 1, 0, 0, 0, 0, 0, 0}},
		{name: "browser sends a reply type", browser: authMsg(0x14, 0, 4, nil)},
		{name: "device sends a request type", device: startMsg(tagSOL)},
		{name: "device sends SOL data before the login", device: []byte{0x2A, 0, 0, 0}},
		{name: "oversized browser authentication", browser: []byte{0x13, 0, 0, 0, 2, 0, 0, 0x10, 0}},
		{name: "oversized device authentication", device: []byte{0x14, 1, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF}},
		{name: "challenge overruns its message", device: authMsg(0x14, 1, 4, []byte{5, 'r', 'e', 'a', 'l', 'm', 200, 'n'})},
		{name: "challenge missing qop", device: authMsg(0x14, 1, 4, lp("realm", "nonce"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := newInterceptor(true, "admin", tPass, tCnonce, nil)
			var err error
			if c.browser != nil {
				_, err = x.browser(c.browser)
			} else {
				_, err = x.device(c.device)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v, want ErrMalformed", err)
			}
			// sticky, both ways
			if _, err := x.browser(startMsg(tagSOL)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("after the error: %v", err)
			}
			if _, err := x.device(startReply(0, nil)); !errors.Is(err, ErrMalformed) {
				t.Fatalf("after the error: %v", err)
			}
		})
	}
}

// TestInterceptorStartHook: the hook's error breaks the stream before the
// message is forwarded.
func TestInterceptorStartHook(t *testing.T) {
	hookErr := errors.New("busy")
	x := newInterceptor(true, "admin", tPass, tCnonce, func([4]byte) error { return hookErr })
	out, err := x.browser(startMsg(tagKVM))
	if !errors.Is(err, hookErr) || out != nil {
		t.Fatalf("out % x, err %v", out, err)
	}
}

// FuzzInterceptor feeds arbitrary device then browser streams, whole and
// cut at arbitrary points: no panic, partial messages stay bounded, and the
// output and the error do not depend on the cuts.
func FuzzInterceptor(f *testing.F) {
	f.Add(append(startReply(0, nil), authMsg(0x14, 1, 4, lp(tRealm, tNonce, "auth"))...),
		append(startMsg(tagSOL), authMsg(0x13, 0, 4, lp("u", "", "", "/RedirectionService", "", "", "", ""))...), uint8(3), true)
	f.Add(append(authMsg(0x14, 1, 4, lp(tRealm, tNonce, "auth")), authMsg(0x14, 0, 4, nil)...),
		append(authMsg(0x13, 0, 4, nil), 0x40, 1, 2, 3), uint8(1), true)
	f.Add(startReply(2, nil), []byte{0x12, 0, 0, 0}, uint8(7), false)
	f.Add([]byte{0x14, 1, 0, 0, 4, 3, 0, 0, 0, 9, 9, 9}, []byte{0x13, 0, 0, 0, 4, 0xFF, 0xFF, 0, 0}, uint8(2), true)
	f.Fuzz(func(t *testing.T, dev, br []byte, cut uint8, inject bool) {
		step := int(cut%16) + 1
		run := func(chunk int) (out []byte, err error) {
			x := newInterceptor(inject, "admin", tPass, tCnonce, nil)
			for _, in := range []struct {
				data []byte
				fn   func([]byte) ([]byte, error)
			}{{dev, x.device}, {br, x.browser}} {
				d := in.data
				for len(d) > 0 && err == nil {
					n := min(chunk, len(d))
					var o []byte
					o, err = in.fn(d[:n])
					out = append(out, o...)
					d = d[n:]
					if len(x.fromBrowser) > 9+maxAuthData || len(x.fromDevice) > 9+maxAuthData {
						t.Fatalf("partial message of %d/%d bytes", len(x.fromBrowser), len(x.fromDevice))
					}
				}
				if err != nil {
					break
				}
			}
			return out, err
		}
		wOut, wErr := run(len(dev) + len(br) + 1)
		sOut, sErr := run(step)
		if (wErr == nil) != (sErr == nil) {
			t.Fatalf("whole: %v, cut every %d: %v", wErr, step, sErr)
		}
		if wErr == nil && !bytes.Equal(wOut, sOut) {
			t.Fatalf("whole % x\ncut every %d % x", wOut, step, sOut)
		}
		if wErr != nil && !errors.Is(wErr, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", wErr)
		}
	})
}

// FuzzLatin1: text frames decode to one byte per code point; anything
// accepted re-encodes to the same text.
func FuzzLatin1(f *testing.F) {
	f.Add([]byte("\x10\x00\x00\x00KVMR"))
	f.Add([]byte("ÿ\u00e9\u0100"))
	f.Add([]byte{0xC3})
	f.Fuzz(func(t *testing.T, text []byte) {
		b, ok := latin1(text)
		if !ok {
			return
		}
		var back []byte
		for _, c := range b {
			back = utf8.AppendRune(back, rune(c))
		}
		if !bytes.Equal(back, text) {
			t.Fatalf("%q decoded to % x", text, b)
		}
	})
}
