package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/legacy/server"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// pskExample is the constructed PSK hello of legacy.md §3.1.
const pskExample = "0100020000000000" + "4b529b93d413181de4871c697a6b7a2b" + "4142434431323334"

// sample23SHA256 is the SHA-256 of MeshCentral's real 23-hash PKI hello
// sample (legacy.md §3.2), computed from the published bytes.
const sample23SHA256 = "9dfc7f5ec76c72bafce8b3e2a3a4ee846085aa539e42dbfc501923c503383a26"

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRealHelloBytesFromUnknownUUIDs(t *testing.T) {
	e := newEnv(t, envOptions{})
	pki := legacytest.PKIHello(t, "939b524b-13d4-1d18-e487-1c697a6b7a2b", 0)
	if s := sha256.Sum256(pki); hex.EncodeToString(s[:]) != sample23SHA256 {
		t.Fatal("the PKI hello is not byte for byte the device sample")
	}
	// The device does not close after sending: the server must process the
	// complete hello and close (send returns only then).
	if out := e.send("", pki); len(out) != 0 {
		t.Fatalf("server answered %q", out)
	}
	ev := e.next()
	if ev.Outcome != server.OutcomeUnknownUUID || ev.GUID != "939b524b-13d4-1d18-e487-1c697a6b7a2b" || ev.Version != 3 ||
		ev.SourceIP != "127.0.0.1" || len(ev.Hashes) != 23 || !ev.AdminCredentialsSet || ev.ID == 0 {
		t.Fatalf("PKI event = %+v", ev)
	}
	if ev.Hashes[0].Type != 2 || ev.Hashes[0].Hash != "c3846bf24b9e93ca64274c0ec67c1ecc5e024ffcacd2d74019350e81fe546ae4" {
		t.Fatalf("first hash = %+v", ev.Hashes[0])
	}
	// The PSK example, with two trailing bytes the layout does not define.
	e.send("", append(unhex(t, pskExample), 0xde, 0xad))
	ev = e.next()
	if ev.Outcome != server.OutcomeUnknownUUID || ev.Version != 2 || ev.PID != "ABCD1234" || len(ev.Hashes) != 0 {
		t.Fatalf("PSK event = %+v", ev)
	}
	stored := e.events()
	if len(stored) != 2 || stored[0].PID != "ABCD1234" || stored[1].RetryCount != 0 || stored[1].Outcome != server.OutcomeUnknownUUID {
		t.Fatalf("stored = %+v", stored)
	}
	if s := e.srv.Stats(); s.UnknownUUID != 2 || s.Hellos != 2 || s.Accepted != 0 {
		t.Fatalf("stats = %+v", s)
	}
	if !strings.Contains(e.logs.String(), "unknown UUID discarded") {
		t.Fatal("no log line for the unknown UUID")
	}
}

func TestMalformedHellosAreDroppedAndServingGoesOn(t *testing.T) {
	e := newEnv(t, envOptions{timing: server.Timing{ReadTimeout: 300 * time.Millisecond}})
	good := legacytest.PKIHello(t, "d2ffc23e-9dd1-412d-860a-54b2039b72ff", 1)
	badType := bytes.Clone(good)
	badType[25] = 2 // type SHA-256 …
	badType[26] = 20
	cases := []struct {
		name  string
		data  []byte
		close bool
	}{
		{"admin flag 2", append([]byte{2, 0}, good[2:]...), false},
		{"version 4", append([]byte{1, 0, 4, 0}, good[4:]...), false},
		{"type and size disagree", badType, false},
		{"unknown hash type", append(bytes.Clone(good[:25]), 9, 20), false},
		{"truncated, then closed", good[:100], true},
		{"count larger than data, then closed", good[:25+34*2], true},
		{"PSK hello cut short, then closed", unhex(t, pskExample)[:20], true},
	}
	for _, c := range cases {
		e.sendOpts("", c.close, c.data)
		ev := e.next()
		if ev.Outcome != server.OutcomeInvalid || ev.SourceIP != "127.0.0.1" || ev.Detail == "" {
			t.Fatalf("%s: result %+v", c.name, ev)
		}
	}
	if !strings.Contains(e.logs.String(), "invalid hello from 127.0.0.1") {
		t.Fatal("no 'invalid hello from <ip>' log line")
	}
	// Nothing stored for invalid hellos; a valid one still works.
	e.send("", good)
	if ev := e.next(); ev.Outcome != server.OutcomeUnknownUUID || ev.RetryCount != 1 {
		t.Fatalf("valid hello after the invalid ones: %+v", ev)
	}
	if n := len(e.events()); n != 1 {
		t.Fatalf("%d events stored", n)
	}
	// An incomplete hello kept open times out; serving goes on.
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(good[:10]); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("server did not close an incomplete hello: %d, %v", n, err)
	}
	s := e.srv.Stats()
	if s.Invalid != int64(len(cases)) || s.Incomplete != 1 || s.Hellos != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestBrowserPageAndSizeLimit(t *testing.T) {
	e := newEnv(t, envOptions{})
	out := string(e.send("", []byte("GET / HT"), []byte("TP/1.1\r\nHost: amtd\r\n\r\n")))
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/html\r\n", "Connection: close\r\n",
		"devices should send notification to this port for activation"} {
		if !strings.Contains(out, want) {
			t.Fatalf("page lacks %q:\n%s", want, out)
		}
	}
	// More than 16000 bytes: closed without an answer.
	big := append([]byte("GET /"), bytes.Repeat([]byte("a"), server.MaxRead)...)
	if out := e.send("", big); len(out) != 0 {
		t.Fatalf("answered an oversized request: %q", out[:min(len(out), 40)])
	}
	if s := e.srv.Stats(); s.Pages != 1 || s.TooLarge != 1 || s.Hellos != 0 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestRetentionKeepsNewestHellos(t *testing.T) {
	e := newEnv(t, envOptions{keep: 3})
	for i := range 5 {
		e.send("", legacytest.PKIHello(t, "939b524b-13d4-1d18-e487-1c697a6b7a2b", uint32(i)))
		e.next()
	}
	l := e.events()
	if len(l) != 3 || l[0].RetryCount != 4 || l[2].RetryCount != 2 {
		t.Fatalf("kept %+v", l)
	}
}

func TestAcceptUnknownPolicy(t *testing.T) {
	st, sec := legacytest.Open(t)
	if _, err := server.New(server.Config{Store: st, Secrets: sec, AcceptUnknown: true}); err == nil {
		t.Fatal("New accepted an incomplete config")
	}
	e := newEnvOn(t, st, sec, envOptions{acceptUnknown: true, defaultProfile: "staging"})
	e.send("", legacytest.PKIHello(t, "939b524b-13d4-1d18-e487-1c697a6b7a2b", 0))
	ev := e.next()
	// Accepted by the policy, then refused: the default profile does not exist.
	if ev.Outcome != server.OutcomeRefused || !strings.Contains(ev.Detail, `profile "staging" does not exist`) {
		t.Fatalf("result = %+v", ev)
	}
	l := e.events()
	if len(l) != 1 || l[0].Outcome != server.OutcomeRefused {
		t.Fatalf("stored = %+v", l)
	}
	if !strings.Contains(e.log(ev.GUID), "legacy.refused error profile \"staging\" does not exist") {
		t.Fatalf("provisioning log:\n%s", e.log(ev.GUID))
	}
}

// A device that accepts the connection back and never answers keeps its
// configuration in progress: further hellos are ignored; after the failure,
// the UUID cools down.
func TestInProgressAndCooldown(t *testing.T) {
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := hold.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	port := hold.Addr().(*net.TCPAddr).Port
	st, sec := legacytest.Open(t)
	ctx := t.Context()
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com"})
	legacytest.AddDomain(t, st, sec, "", "corp", "corp.example.com", chain)
	if err := st.CreateProfile(ctx, &store.Profile{Name: "acm", Activation: "acmactivate", GenerateRandomPassword: true,
		GenerateRandomMEBxPassword: true, Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	const a, b = "939b524b-13d4-1d18-e487-1c697a6b7a2b", "d2ffc23e-9dd1-412d-860a-54b2039b72ff"
	if err := st.PutLegacyDevices(ctx, []store.LegacyDevice{{GUID: a, ProfileName: "acm"}, {GUID: b, ProfileName: "acm"}}); err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, st, sec, envOptions{devicePort: port, timing: server.Timing{Cooldown: time.Hour, HandshakeTimeout: time.Minute}})
	root := legacytest.RootSHA256(chain)
	e.send("127.0.0.1", legacytest.PKIHello(t, a, 0, root))
	var held net.Conn
	select {
	case held = <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not connect back")
	}
	e.send("127.0.0.1", legacytest.PKIHello(t, a, 1, root))
	if ev := e.next(); ev.Outcome != server.OutcomeBusy || ev.RetryCount != 1 {
		t.Fatalf("second hello = %+v", ev)
	}
	// Another UUID from the same source address is busy too.
	e.send("127.0.0.1", legacytest.PKIHello(t, b, 0, root))
	if ev := e.next(); ev.Outcome != server.OutcomeBusy || !strings.Contains(ev.Detail, "source address") {
		t.Fatalf("hello of another UUID from the same address = %+v", ev)
	}
	held.Close() // the handshake fails
	ev := e.next()
	if ev.Outcome != server.OutcomeFailed || ev.RetryCount != 0 || !strings.Contains(ev.Detail, "TLS") {
		t.Fatalf("first hello's result = %+v", ev)
	}
	e.send("127.0.0.1", legacytest.PKIHello(t, a, 2, root))
	if ev := e.next(); ev.Outcome != server.OutcomeCooldown {
		t.Fatalf("hello after the failure = %+v", ev)
	}
	if s := e.srv.Stats(); s.Ignored != 3 || s.Failed != 1 || s.Accepted != 1 {
		t.Fatalf("stats = %+v", s)
	}
	// Shutdown with nothing in progress returns promptly.
	e.stop()
}

// Serve ends a configuration in progress when its context ends.
func TestServeStopsSessions(t *testing.T) {
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := hold.Accept(); err == nil {
			accepted <- c
		}
	}()
	st, sec := legacytest.Open(t)
	ctx := t.Context()
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com"})
	legacytest.AddDomain(t, st, sec, "", "corp", "corp.example.com", chain)
	if err := st.CreateProfile(ctx, &store.Profile{Name: "acm", GenerateRandomPassword: true, GenerateRandomMEBxPassword: true, Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	const a = "939b524b-13d4-1d18-e487-1c697a6b7a2b"
	if err := st.PutLegacyDevices(ctx, []store.LegacyDevice{{GUID: a, ProfileName: "acm"}}); err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, st, sec, envOptions{devicePort: hold.Addr().(*net.TCPAddr).Port,
		timing: server.Timing{HandshakeTimeout: time.Hour, SessionTimeout: time.Hour}})
	e.send("", legacytest.PKIHello(t, a, 0, legacytest.RootSHA256(chain)))
	held := <-accepted
	defer held.Close()
	e.stop() // must not wait for the hour
	ev := e.next()
	if ev.Outcome != server.OutcomeFailed || !strings.Contains(ev.Detail, "context canceled") {
		t.Fatalf("result = %+v", ev)
	}
}
