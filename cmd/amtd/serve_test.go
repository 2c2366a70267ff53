package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startTestServer(t *testing.T, c serveConfig) (*server, string, *bytes.Buffer) {
	t.Helper()
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := startServer(context.Background(), c, log, &out)
	if err != nil {
		t.Fatal(err)
	}
	return s, "http://" + s.addr.String(), &out
}

func testConfig(t *testing.T) serveConfig {
	var c serveConfig
	fs := serveFlags(&c)
	fs.SetLookupEnv(func(string) (string, bool) { return "", false })
	if err := fs.Parse([]string{"--http", "127.0.0.1:0", "--cira", "127.0.0.1:0", "--mps-host", "mps.test.example", "--hello", "127.0.0.1:0",
		"--data", filepath.Join(t.TempDir(), "data")}); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestServeFirstStart: the first start creates the data folder with the
// database and a 0600 master key, generates administrator credentials and
// prints them once, and the API requires a token obtained with them.
func TestServeFirstStart(t *testing.T) {
	c := testConfig(t)
	s, base, out := startTestServer(t, c)
	line := out.String()
	i := strings.Index(line, `password "`)
	if i < 0 {
		t.Fatalf("no generated password printed: %q", line)
	}
	pass := line[i+len(`password "`):]
	pass = pass[:strings.IndexByte(pass, '"')]

	st, err := os.Stat(filepath.Join(c.DataDir, "master.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key: %v %v", st, err)
	}
	resp, err := http.Get(base + "/api/v1/admin/profiles")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("profiles without token: %d", resp.StatusCode)
	}
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": pass})
	resp, err = http.Post(base+"/api/v1/authorize", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.Token == "" {
		t.Fatalf("authorize: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/api/v1/admin/profiles", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("profiles with token: %d", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	// Second start: no new credentials printed; the stored hash still works.
	c.HTTPAddr = "127.0.0.1:0"
	s2, base2, out2 := startTestServer(t, c)
	defer s2.shutdown(context.Background())
	if strings.Contains(out2.String(), "password") {
		t.Fatalf("credentials printed again: %q", out2.String())
	}
	resp, err = http.Post(base2+"/api/v1/authorize", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("authorize after restart: %d", resp.StatusCode)
	}
}

// TestServeGracefulShutdown: a request in flight when shutdown starts
// completes, and the listener is closed afterwards.
func TestServeGracefulShutdown(t *testing.T) {
	c := testConfig(t)
	c.Auth = "none"
	s, base, _ := startTestServer(t, c)
	// Hold a request open by sending its body slowly.
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/api/v1/admin/proxyconfigs", "application/json", pr)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	pw.Write([]byte(`{"name":"p1","address":"proxy.example.com",`))
	for s.started.Load() == 0 { // the server is reading the request
		time.Sleep(time.Millisecond)
	}
	shut := make(chan error, 1)
	go func() { shut <- s.shutdown(context.Background()) }()
	pw.Write([]byte(`"port":8080,"networkDnsSuffix":"example.com"}`))
	pw.Close()
	if code := <-done; code != http.StatusCreated {
		t.Fatalf("in-flight request: %d", code)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/api/v1/admin/health"); err == nil {
		t.Fatal("listener still open after shutdown")
	}
}

func TestServeHelpListsEveryFlagWithEnv(t *testing.T) {
	var c serveConfig
	fs := serveFlags(&c)
	var b bytes.Buffer
	fs.PrintUsage(&b)
	for _, want := range []string{"--http", "$AMTD_HTTP", "--data", "$AMTD_DATA", "--db", "--vault-addr", "--auth", "$AMTD_MASTER_KEY"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestServeCIRAListener: the CIRA port speaks TLS with a certificate from
// amtd's CA named after --mps-host (served without SNI, as AMT sends none),
// offers RSA key exchange, and answers the operator's GET probe.
func TestServeCIRAListener(t *testing.T) {
	c := testConfig(t)
	s, _, _ := startTestServer(t, c)
	defer s.shutdown(context.Background())
	conf := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}
	conn, err := tls.Dial("tcp", s.ciraLn.Addr().String(), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	st := conn.ConnectionState()
	leaf := st.PeerCertificates[0]
	if leaf.Subject.CommonName != "mps.test.example" || st.CipherSuite != tls.TLS_RSA_WITH_AES_128_GCM_SHA256 {
		t.Fatalf("CN %q suite %x", leaf.Subject.CommonName, st.CipherSuite)
	}
	if err := leaf.VerifyHostname("mps.test.example"); err != nil {
		t.Errorf("SAN: %v", err)
	}
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	b, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(b), "HTTP/1.1 200 OK") {
		t.Fatalf("probe answer %q", b)
	}
}
