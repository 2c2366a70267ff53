package cira

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"
)

// amtHandler is a tiny AMT WS-MAN endpoint: digest authentication as
// spec/wsman.md §2 describes it and an AMT_GeneralSettings Get answer.
type amtHandler struct {
	realm, user, pass string
	nonce             string

	mu          sync.Mutex
	challenges  int
	authorised  int
	hostHeaders []string
	connHeaders []string
	inFlight    atomic.Int32
	maxInFlight atomic.Int32
	block       chan struct{} // when set, authorised requests wait on it
}

func newAMTHandler(user, pass string) *amtHandler {
	return &amtHandler{realm: "Digest:A3829B3827DE4D33D4449B366831FD01", user: user, pass: pass, nonce: "cn2gYXhhtO7TUgGbdQ2Ap2xnZo1yC6Fe"}
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func parseDigest(h string) map[string]string {
	out := map[string]string{}
	h, ok := strings.CutPrefix(h, "Digest ")
	if !ok {
		return nil
	}
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

func (h *amtHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := h.inFlight.Add(1)
	defer h.inFlight.Add(-1)
	for {
		m := h.maxInFlight.Load()
		if n <= m || h.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.hostHeaders = append(h.hostHeaders, r.Host)
	h.connHeaders = append(h.connHeaders, r.Header.Get("Connection"))
	h.mu.Unlock()

	p := parseDigest(r.Header.Get("Authorization"))
	ha1 := md5hex(h.user + ":" + h.realm + ":" + h.pass)
	ha2 := md5hex(r.Method + ":" + p["uri"])
	want := md5hex(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	if p == nil || p["username"] != h.user || p["realm"] != h.realm || p["nonce"] != h.nonce || p["response"] != want {
		h.mu.Lock()
		h.challenges++
		h.mu.Unlock()
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="%s", nonce="%s",stale="false",qop="auth"`, h.realm, h.nonce))
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "<HTML><HEAD><TITLE>401 Unauthorized</TITLE></HEAD><BODY>Log on failed. Incorrect user name or password, or user account temporarily locked.</BODY></HTML>")
		return
	}
	h.mu.Lock()
	h.authorised++
	block := h.block
	h.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	if !strings.Contains(string(body), "AMT_GeneralSettings") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/soap+xml; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	// Two writes with a flush between: a chunked body, as AMT sends.
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope" xmlns:b="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:g="http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"><a:Header><b:RelatesTo>0</b:RelatesTo><b:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse</b:Action></a:Header>`)
	w.(http.Flusher).Flush()
	fmt.Fprintf(w, `<a:Body><g:AMT_GeneralSettings><g:DigestRealm>%s</g:DigestRealm><g:HostName>sim-host</g:HostName><g:InstanceID>Intel(r) AMT: General Settings</g:InstanceID><g:Padding>%s</g:Padding></g:AMT_GeneralSettings></a:Body></a:Envelope>`,
		h.realm, strings.Repeat("p", 30000)) // larger than one segment and the device's window
}

func TestWSMANThroughRoundTripper(t *testing.T) {
	ts, table := startServer(t, nil)
	dev := addDevice(t, table)
	h := newAMTHandler("admin", "AMT-Passw0rd!")
	d := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{handler: h, window: 8192, maxSegment: 3000})
	ts.nextEvent(t, 5*time.Second)

	m := wsman.NewMessages(client.Parameters{
		Target: dev.uuid.String(), Username: "admin", Password: "AMT-Passw0rd!", UseDigest: true,
		Transport: ts.srv.RoundTripper(dev.uuid.String()), Timeout: 10 * time.Second,
	})
	for i := 0; i < 3; i++ {
		resp, err := m.AMT.GeneralSettings.Get()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if got := resp.Body.GetResponse.DigestRealm; got != h.realm {
			t.Fatalf("call %d: DigestRealm %q", i, got)
		}
		if resp.Body.GetResponse.HostName != "sim-host" {
			t.Fatalf("HostName %q", resp.Body.GetResponse.HostName)
		}
	}
	h.mu.Lock()
	challenges, authorised := h.challenges, h.authorised
	hosts, conns := h.hostHeaders, h.connHeaders
	h.mu.Unlock()
	if challenges != 1 || authorised != 3 {
		t.Fatalf("%d challenges and %d authorised requests, want 1 and 3", challenges, authorised)
	}
	for i := range hosts {
		if hosts[i] != dev.uuid.String()+":16992" || conns[i] != "close" {
			t.Fatalf("request %d: Host %q, Connection %q", i, hosts[i], conns[i])
		}
	}
	// Every exchange used its own channel and all of them are gone on both
	// sides; flow control was respected.
	d.sync()
	if n, m := channelCount(ts, dev), deviceChannels(d); n != 0 || m != 0 {
		t.Fatalf("channels left: %d on the server, %d on the device", n, m)
	}
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	if len(d.violations) > 0 {
		t.Fatalf("flow-control violations: %v", d.violations)
	}
}

// The server-wide Transport routes by the URL's host.
func TestTransportRoutesByHost(t *testing.T) {
	ts, table := startServer(t, nil)
	h := newAMTHandler("admin", "pw-123456")
	var devs []device
	for i := 0; i < 2; i++ {
		dev := addDevice(t, table)
		devs = append(devs, dev)
		connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{handler: h})
	}
	for _, dev := range devs {
		m := wsman.NewMessages(client.Parameters{Target: dev.uuid.String(), Username: "admin", Password: "pw-123456",
			UseDigest: true, Transport: ts.srv.Transport()})
		if _, err := m.AMT.GeneralSettings.Get(); err != nil {
			t.Fatal(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hostHeaders[1] == h.hostHeaders[len(h.hostHeaders)-1] {
		t.Fatalf("both devices got the same Host: %v", h.hostHeaders)
	}
	// A device that is not connected.
	m := wsman.NewMessages(client.Parameters{Target: newUUID(t).String(), Username: "admin", Password: "x", UseDigest: true, Transport: ts.srv.Transport()})
	if _, err := m.AMT.GeneralSettings.Get(); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("unconnected device: %v", err)
	}
}

// waitFor polls a condition that depends on goroutines outside the
// protocol (e.g. the device's pump), failing after 5 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

func channelCount(ts *testServer, dev device) int {
	c := ts.srv.reg.get(dev.uuid)
	if c == nil {
		return -1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.chans)
}

func deviceChannels(d *testDevice) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.chans)
}

// At most WSMANConcurrency exchanges per device at once; the rest wait and
// then complete.
func TestRoundTripperConcurrencyLimit(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.WSMANConcurrency = 3 })
	dev := addDevice(t, table)
	h := newAMTHandler("admin", "pw-concurrency")
	h.block = make(chan struct{})
	connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{handler: h})

	const calls = 8
	errs := make(chan error, calls)
	for i := 0; i < calls; i++ {
		go func() {
			m := wsman.NewMessages(client.Parameters{Target: dev.uuid.String(), Username: "admin", Password: "pw-concurrency",
				UseDigest: true, Transport: ts.srv.RoundTripper(dev.uuid.String())})
			_, err := m.AMT.GeneralSettings.Get()
			errs <- err
		}()
	}
	// Three authorised requests get through and block; the others wait for
	// a slot (each first needs its own 401 exchange).
	waitFor(t, func() bool { h.mu.Lock(); defer h.mu.Unlock(); return h.authorised == 3 })
	h.mu.Lock()
	if h.authorised != 3 || h.maxInFlight.Load() > 3 {
		t.Fatalf("%d authorised, %d in flight", h.authorised, h.maxInFlight.Load())
	}
	close(h.block)
	h.mu.Unlock()
	for i := 0; i < calls; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	if m := h.maxInFlight.Load(); m != 3 {
		t.Fatalf("at most %d exchanges in flight, want 3", m)
	}
}

// The request context bounds the exchange: the channel is closed, the slot
// released, and the error is the context's.
func TestRoundTripperContext(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.WSMANConcurrency = 1 })
	dev := addDevice(t, table)
	h := newAMTHandler("admin", "pw-ctx")
	h.block = make(chan struct{}) // never closed: the device does not answer
	d := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{handler: h})
	rt := ts.srv.RoundTripper(dev.uuid.String())

	// Authorise directly so the request reaches the blocking stage.
	req := func(ctx context.Context) *http.Request {
		r, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+dev.uuid.String()+":16992/wsman", strings.NewReader("<AMT_GeneralSettings/>"))
		ha1 := md5hex("admin:" + h.realm + ":pw-ctx")
		resp := md5hex(ha1 + ":" + h.nonce + ":00000001:abc:auth:" + md5hex("POST:/wsman"))
		r.Header.Set("Authorization", fmt.Sprintf(`Digest username="admin",realm="%s",nonce="%s",uri="/wsman",qop="auth",nc="00000001",cnonce="abc",response="%s"`, h.realm, h.nonce, resp))
		return r
	}
	for i := 0; i < 2; i++ { // twice: the single slot must have been released
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err := rt.RoundTrip(req(ctx))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("RoundTrip: %v", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Fatalf("returned %v after a 200ms deadline", el)
		}
	}
	d.sync()
	if n := channelCount(ts, dev); n != 0 {
		t.Fatalf("%d channels left after timed-out exchanges", n)
	}
	// A cancelled context before anything happens.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := rt.RoundTrip(req(ctx)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	// https is refused: the tunnel carries plain HTTP.
	r, _ := http.NewRequest(http.MethodPost, "https://"+dev.uuid.String()+":16993/wsman", nil)
	if _, err := rt.RoundTrip(r); !errors.Is(err, ErrTLSInTunnel) {
		t.Fatalf("https: %v", err)
	}
}

// The response size limit holds.
func TestRoundTripperResponseLimit(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.MaxResponseBytes = 10000 })
	dev := addDevice(t, table)
	connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, deviceOptions{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 20000))
	})})
	r, _ := http.NewRequest(http.MethodPost, "http://"+dev.uuid.String()+":16992/wsman", strings.NewReader("x"))
	if _, err := ts.srv.RoundTripper(dev.uuid.String()).RoundTrip(r); !errors.Is(err, ErrResponseTooLarge) {
		t.Fatalf("RoundTrip: %v", err)
	}
}
