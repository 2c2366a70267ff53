// Package apitest starts a real api.Server for tests: real SQLite store in a
// temporary folder, real secret store, real HTTP on a loopback socket, and a
// captured log. Route groups register through Options.Register.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

// Options configure an Env.
type Options struct {
	Auth     api.AuthConfig
	Version  string
	Register func(*api.Server)
	Now      func() time.Time
	// Dir reuses a data folder (a "restart"); default t.TempDir().
	Dir string
	// DSN, when set, is the database (e.g. a pgtest Postgres) instead of
	// the data folder's SQLite file; the master key stays in Dir.
	DSN string
	// MaxBodyBytes overrides the server's body limit.
	MaxBodyBytes int64
	// Secrets replaces the data folder's secret store (e.g. to share one
	// between two servers).
	Secrets secrets.Store
}

// Env is a running server.
type Env struct {
	URL     string
	Dir     string
	Server  *api.Server
	Store   store.Store
	Secrets secrets.Store // Tracked, as a secrets.Store
	Tracked *Tracking     // the server's secret store, with the keys it holds
	Logs    *SyncBuffer
	HTTP    *httptest.Server
	Token   string // bearer token sent by Do (set by the test)
}

// DBPath is the SQLite file of a data folder.
func DBPath(dir string) string { return filepath.Join(dir, "amtd.db") }

// New starts a server. Everything is closed by t.Cleanup.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	ctx := context.Background()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	logs := &SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dsn := o.DSN
	if dsn == "" {
		dsn = DBPath(dir)
	}
	st, err := sqlstore.Open(ctx, dsn, log)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	sec := o.Secrets
	if sec == nil {
		if sec, err = OpenSecrets(ctx, dir, st); err != nil {
			t.Fatalf("open secrets: %v", err)
		}
	}
	tracked := NewTracking(sec)
	srv, err := api.New(ctx, api.Config{Store: st, Secrets: tracked, Logger: log, Auth: o.Auth, Version: o.Version,
		Now: o.Now, MaxBodyBytes: o.MaxBodyBytes})
	if err != nil {
		_ = st.Close()
		t.Fatalf("api.New: %v", err)
	}
	if o.Register != nil {
		o.Register(srv)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		_ = st.Close()
	})
	return &Env{URL: hs.URL, Dir: dir, Server: srv, Store: st, Secrets: tracked, Tracked: tracked, Logs: logs, HTTP: hs}
}

// Response is a captured HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r *Response) JSON(t testing.TB) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("response is not JSON (%d): %q", r.Status, r.Body)
	}
	return v
}

// Object decodes the body as a JSON object.
func (r *Response) Object(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.JSON(t).(map[string]any)
	if !ok {
		t.Fatalf("response is not a JSON object: %s", r.Body)
	}
	return m
}

// Do sends a request. body may be nil, a string/[]byte (sent as is) or any
// value (JSON-encoded). hdr are "Key", "Value" pairs. The Env's Token is
// sent as a bearer token unless hdr sets Authorization.
func (e *Env) Do(t testing.TB, method, path string, body any, hdr ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.Token != "" {
		req.Header.Set("Authorization", "Bearer "+e.Token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.HTTP.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// SyncBuffer is a goroutine-safe bytes.Buffer for captured logs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
