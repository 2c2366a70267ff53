package server_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/ca"
	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/legacy/server"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type envOptions struct {
	devicePort     int
	acceptUnknown  bool
	defaultProfile string
	setupPasswords []string
	timing         server.Timing
	maxSessions    int
	keep           int
}

// env is a running legacy server on loopback with real SQLite and sealed
// secrets.
type env struct {
	t       *testing.T
	st      store.Store
	sec     secrets.Store
	ca      *ca.CA
	srv     *server.Server
	addr    string
	logs    *syncBuffer
	results chan store.HelloEvent
	cancel  context.CancelFunc
	done    chan error
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	st, sec := legacytest.Open(t)
	return newEnvOn(t, st, sec, o)
}

func newEnvOn(t *testing.T, st store.Store, sec secrets.Store, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	authority, err := ca.LoadOrCreateWith(ctx, sec, "system/ca", "amtd test CA", ca.Options{GenerateKey: legacytest.Keys})
	if err != nil {
		t.Fatal(err)
	}
	engine, err := provision.New(provision.Config{Store: st, Secrets: sec, CA: authority, CIRARootDER: authority.RootDER(),
		Timing: &provision.Timing{CallTimeout: 20 * time.Second}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	timing := o.timing
	if timing.ReadTimeout == 0 {
		timing.ReadTimeout = 5 * time.Second
	}
	if timing.HandshakeTimeout == 0 {
		timing.HandshakeTimeout = 10 * time.Second
	}
	e := &env{t: t, st: st, sec: sec, ca: authority, logs: logs, results: make(chan store.HelloEvent, 64), done: make(chan error, 1)}
	cfg := server.Config{
		Store: st, Secrets: sec, Engine: engine, CA: authority, Logger: log,
		AcceptUnknown: o.acceptUnknown, DefaultProfile: o.defaultProfile,
		DevicePort: o.devicePort, Timing: timing, NoCommitDelay: true, MaxSessions: o.maxSessions,
		KeepHelloEvents: o.keep,
		OnResult:        func(ev store.HelloEvent) { e.results <- ev },
	}
	if o.setupPasswords != nil {
		cfg.SetupPasswords = func(context.Context) ([]string, error) { return o.setupPasswords, nil }
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	e.srv, e.addr, e.cancel = srv, ln.Addr().String(), cancel
	go func() { e.done <- srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return e
}

// stop ends Serve and waits for it.
func (e *env) stop() {
	e.t.Helper()
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("Serve did not return after cancel")
	}
}

// send opens a connection from the local address ip (127.0.0.x; "" any),
// writes each part in its own Write, and returns what the server answered
// before closing.
func (e *env) send(ip string, parts ...[]byte) []byte {
	e.t.Helper()
	return e.sendOpts(ip, false, parts...)
}

func (e *env) sendOpts(ip string, closeWrite bool, parts ...[]byte) []byte {
	e.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	for _, p := range parts {
		if _, err := c.Write(p); err != nil {
			e.t.Fatalf("write: %v", err)
		}
	}
	if closeWrite {
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			e.t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	out, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		e.t.Fatalf("reading until the server closes: %v", err)
	}
	return out
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

// next waits for the next final hello record.
func (e *env) next() store.HelloEvent {
	e.t.Helper()
	select {
	case ev := <-e.results:
		return ev
	case <-time.After(90 * time.Second):
		e.t.Fatalf("no hello result; log:\n%s", e.logs.String())
	}
	return store.HelloEvent{}
}

// events lists the stored hello events of the default tenant.
func (e *env) events() []store.HelloEvent {
	e.t.Helper()
	l, err := e.st.ListHelloEvents(e.t.Context(), "", store.HelloFilter{}, store.Page{Top: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// steps returns "step:result" of a device's provisioning log.
func (e *env) steps(guid string) []string {
	e.t.Helper()
	l, err := e.st.ListEvents(e.t.Context(), guid, store.Page{Top: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range l {
		out = append(out, ev.Step+":"+ev.Result)
	}
	return out
}

func (e *env) log(guid string) string {
	e.t.Helper()
	l, err := e.st.ListEvents(e.t.Context(), guid, store.Page{Top: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var b strings.Builder
	for _, ev := range l {
		b.WriteString(ev.Step + " " + ev.Result + " " + ev.Detail + "\n")
	}
	return b.String()
}
