package cluster_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/amtd-project/amtd/internal/cluster"
	"github.com/amtd-project/amtd/internal/store"
)

// echo is what an instance's local handler saw.
type echo struct {
	Instance, Method, Path, Query, Auth, Host, Hop, XFF, Body string
}

// inst is one amtd instance reduced to its HTTP side: a real server on
// loopback whose local handler records and echoes requests, behind a
// Forwarder.
type inst struct {
	id    string
	srv   *httptest.Server
	fwd   *cluster.Forwarder
	calls atomic.Int64

	mu       sync.Mutex
	local    map[string]bool // devices CIRA-connected here
	behave   func(w http.ResponseWriter, r *http.Request) bool
	lookups  atomic.Int64
	override func(guid string) (*store.Instance, error) // replaces the store's answer
}

func (i *inst) setLocal(guid string, on bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.local[guid] = on
}

func (i *inst) set(f func()) {
	i.mu.Lock()
	defer i.mu.Unlock()
	f()
}

func (i *inst) isLocal(guid string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.local[guid]
}

func (i *inst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i.calls.Add(1)
	i.mu.Lock()
	behave := i.behave
	i.mu.Unlock()
	if behave != nil && behave(w, r) {
		return
	}
	b, _ := io.ReadAll(r.Body)
	json.NewEncoder(w).Encode(echo{Instance: i.id, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		Auth: r.Header.Get("Authorization"), Host: r.Host, Hop: r.Header.Get(cluster.HopHeader),
		XFF: r.Header.Get("X-Forwarded-For"), Body: string(b)})
}

// owners counts lookups and lets a test override the store's answer.
type owners struct {
	i  *inst
	st store.Store
}

func (o owners) DeviceOwner(ctx context.Context, guid string) (*store.Instance, error) {
	o.i.lookups.Add(1)
	o.i.mu.Lock()
	ov := o.i.override
	o.i.mu.Unlock()
	if ov != nil {
		return ov(guid)
	}
	return o.st.DeviceOwner(ctx, guid)
}

type instOpts struct {
	tls       bool
	transport cluster.TransportOptions
	cacheTTL  time.Duration
}

// newInst starts an instance and records its lease (address = its URL).
func newInst(t *testing.T, st store.Store, id string, o instOpts) *inst {
	t.Helper()
	i := &inst{id: id, local: map[string]bool{}}
	f, err := cluster.NewForwarder(cluster.ForwarderConfig{
		Self: id, Owners: owners{i, st}, Local: i.isLocal, Transport: cluster.NewTransport(o.transport),
		CacheTTL: o.cacheTTL, Logger: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	i.fwd = f
	i.srv = httptest.NewUnstartedServer(f.Wrap(i))
	if o.tls {
		i.srv.StartTLS()
	} else {
		i.srv.Start()
	}
	t.Cleanup(i.srv.Close)
	if _, err := st.ClaimInstance(context.Background(), store.Instance{ID: id, Addr: i.srv.URL, Incarnation: "x"}, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	return i
}

type resp struct {
	status   int
	instance string
	body     []byte
	echo     echo
}

func do(t *testing.T, method, url, body string, hdr ...string) resp {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k+1 < len(hdr); k += 2 {
		req.Header.Set(hdr[k], hdr[k+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, instance: res.Header.Get(cluster.InstanceHeader), body: b}
	json.Unmarshal(b, &r.echo)
	if res.Header.Get("X-Amtd-Owner-Stale") != "" && req.Header.Get(cluster.HopHeader) == "" {
		t.Errorf("internal header leaked to the client")
	}
	return r
}

func pair(t *testing.T, ao, bo instOpts) (st store.Store, a, b *inst) {
	t.Helper()
	conns := dialects(t)["postgres"](t)
	st = conns()
	a = newInst(t, conns(), "a", ao)
	b = newInst(t, conns(), "b", bo)
	return st, a, b
}

// TestForward: a device request landing on the wrong instance is executed
// by the owner, with the client's method, path, query, body, Authorization
// and Host; other requests, and devices no live peer holds, stay local.
func TestForward(t *testing.T) {
	st, a, b := pair(t, instOpts{}, instOpts{})
	addDevice(t, st, dev1, "a")
	a.setLocal(dev1, true)
	addDevice(t, st, dev2, "")

	const tok = "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"
	r := do(t, "POST", b.srv.URL+"/api/v1/amt/power/action/"+dev1+"?x=1", `{"action":8}`,
		"Authorization", tok, "Content-Type", "application/json")
	e := r.echo
	if r.status != 200 || r.instance != "a" || e.Instance != "a" || e.Method != "POST" || e.Path != "/api/v1/amt/power/action/"+dev1 ||
		e.Query != "x=1" || e.Auth != tok || e.Body != `{"action":8}` || e.Hop != "b" || e.Host != strings.TrimPrefix(b.srv.URL, "http://") ||
		e.XFF != "127.0.0.1" {
		t.Fatalf("forwarded: %d %q %+v", r.status, r.instance, e)
	}
	if b.calls.Load() != 0 {
		t.Fatal("b's local handler ran")
	}

	// Gateway prefix, other letter case, the devices routes, the relay.
	upper := strings.ToUpper(dev1)
	for _, p := range []string{
		"/mps/api/v1/AMT/Power/bootOptions/" + upper,
		"/api/v1/amt/certificates/" + dev1 + "/Intel(r)%20AMT%20Certificate:%20Handle:%201",
		"/api/v1/devices/redirectStatus/" + dev1,
		"/api/v1/devices/disconnect/" + dev1,
		"/api/v1/devices/refresh/" + dev1 + "/",
		"/relay/webrelay.ashx?p=2&host=" + dev1 + "&port=16994&mode=sol",
		"/mps/relay/webrelay.ashx?host=" + upper,
		"/mps/ws/relay/webrelay.ashx?host=" + dev1 + "&mode=kvm",
	} {
		if r := do(t, "GET", b.srv.URL+p, ""); r.instance != "a" || r.echo.Instance != "a" {
			t.Errorf("%s: served by %q (%q)", p, r.echo.Instance, r.instance)
		}
	}

	// Not device routes, devices nobody holds, unknown devices: local.
	for _, p := range []string{
		"/api/v1/devices",
		"/api/v1/devices/" + dev1,
		"/api/v1/authorize/redirection/" + dev1,
		"/api/v1/amt/version/" + dev2,
		"/api/v1/amt/version/" + dev3,
		"/api/v1/amt/version/not-a-guid",
	} {
		if r := do(t, "GET", b.srv.URL+p, ""); r.echo.Instance != "b" {
			t.Errorf("%s: served by %q", p, r.echo.Instance)
		}
	}
	// The owner serves its own devices without asking the store.
	before := a.lookups.Load()
	if r := do(t, "GET", a.srv.URL+"/api/v1/amt/version/"+dev1, ""); r.echo.Instance != "a" || r.instance != "a" || r.echo.Hop != "" {
		t.Fatalf("owner: %+v", r)
	}
	if a.lookups.Load() != before {
		t.Fatal("owner looked its own device up")
	}
}

// TestForwardLoopGuard: a forwarded request is never forwarded again, even
// when the instance it reaches believes another one holds the device; the
// forwarding instance drops its stale cache entry.
func TestForwardLoopGuard(t *testing.T) {
	_, a, b := pair(t, instOpts{}, instOpts{cacheTTL: time.Hour})
	addr := map[string]string{"a": a.srv.URL, "b": b.srv.URL}
	// Each believes the other holds the device; neither has it.
	a.set(func() {
		a.override = func(string) (*store.Instance, error) { return &store.Instance{ID: "b", Addr: addr["b"]}, nil }
	})
	b.set(func() {
		b.override = func(string) (*store.Instance, error) { return &store.Instance{ID: "a", Addr: addr["a"]}, nil }
	})

	r := do(t, "GET", b.srv.URL+"/api/v1/amt/version/"+dev1, "")
	if r.echo.Instance != "a" || r.instance != "a" || r.echo.Hop != "b" {
		t.Fatalf("served by %+v (%q)", r.echo, r.instance)
	}
	if a.calls.Load() != 1 || b.calls.Load() != 0 || a.lookups.Load() != 0 {
		t.Fatalf("a ran %d, b ran %d, a looked up %d", a.calls.Load(), b.calls.Load(), a.lookups.Load())
	}
	// A request carrying the hop header is served where it lands.
	if r := do(t, "GET", a.srv.URL+"/api/v1/amt/version/"+dev1, "", cluster.HopHeader, "x"); r.echo.Instance != "a" {
		t.Fatalf("hop-marked request went to %q", r.echo.Instance)
	}
	// a said the device is not there: b looks again next time instead of
	// using its cache (one hour).
	n := b.lookups.Load()
	do(t, "GET", b.srv.URL+"/api/v1/amt/version/"+dev1, "")
	if b.lookups.Load() != n+1 {
		t.Fatalf("stale owner kept in cache: lookups %d → %d", n, b.lookups.Load())
	}
}

// TestForwardCache: within the TTL one lookup serves many requests, for
// devices with and without an owner.
func TestForwardCache(t *testing.T) {
	st, a, b := pair(t, instOpts{}, instOpts{cacheTTL: time.Hour})
	addDevice(t, st, dev1, "a")
	a.setLocal(dev1, true)
	for range 20 {
		if r := do(t, "GET", b.srv.URL+"/api/v1/amt/version/"+dev1, ""); r.echo.Instance != "a" {
			t.Fatalf("served by %q", r.echo.Instance)
		}
		if r := do(t, "GET", b.srv.URL+"/api/v1/amt/version/"+dev2, ""); r.echo.Instance != "b" {
			t.Fatalf("served by %q", r.echo.Instance)
		}
	}
	if n := b.lookups.Load(); n != 2 {
		t.Fatalf("%d lookups for 40 requests on 2 devices", n)
	}
	// No cache: every request looks up.
	_, _, c := pair(t, instOpts{}, instOpts{cacheTTL: -1})
	for range 5 {
		do(t, "GET", c.srv.URL+"/api/v1/amt/version/"+dev2, "")
	}
	if n := c.lookups.Load(); n != 5 {
		t.Fatalf("%d lookups without cache, want 5", n)
	}
}

// TestForwardOwnerUnreachable: when the owner cannot be reached the
// request was never sent, so it is served here, body intact; when the
// owner fails after receiving it, the client gets 502; when it does not
// answer in time, 504.
func TestForwardOwnerUnreachable(t *testing.T) {
	st, a, b := pair(t, instOpts{}, instOpts{transport: cluster.TransportOptions{ResponseTimeout: 300 * time.Millisecond}})
	addDevice(t, st, dev1, "a")
	a.setLocal(dev1, true)

	// a's lease names an address nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := st.ClaimInstance(context.Background(), store.Instance{ID: "a", Addr: dead, Incarnation: "x"}, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	r := do(t, "POST", b.srv.URL+"/api/v1/amt/alarmOccurrences/"+dev1, `{"ElementName":"x"}`)
	if r.status != 200 || r.echo.Instance != "b" || r.instance != "b" || r.echo.Body != `{"ElementName":"x"}` {
		t.Fatalf("unreachable owner: %d %q %+v", r.status, r.instance, r.echo)
	}

	// Back at a real address; a's handler now drops the connection.
	if _, err := st.ClaimInstance(context.Background(), store.Instance{ID: "a", Addr: a.srv.URL, Incarnation: "x"}, time.Hour, false); err != nil {
		t.Fatal(err)
	}
	b2 := newInst(t, st, "b2", instOpts{transport: cluster.TransportOptions{ResponseTimeout: 300 * time.Millisecond}})
	a.set(func() { a.behave = dropOrStall })
	r = do(t, "GET", b2.srv.URL+"/api/v1/amt/version/"+dev1+"?fail=drop", "")
	if r.status != http.StatusBadGateway || !bytes.Contains(r.body, []byte(`"error":"Bad Gateway"`)) || b2.calls.Load() != 0 {
		t.Fatalf("dropped: %d %s", r.status, r.body)
	}
	r = do(t, "GET", b2.srv.URL+"/api/v1/amt/version/"+dev1+"?fail=slow", "")
	if r.status != http.StatusGatewayTimeout || b2.calls.Load() != 0 {
		t.Fatalf("slow: %d %s", r.status, r.body)
	}
	if r := do(t, "GET", b2.srv.URL+"/api/v1/amt/version/"+dev1, ""); r.echo.Instance != "a" {
		t.Fatalf("after failures: served by %q", r.echo.Instance)
	}
}

// dropOrStall fails requests with ?fail=drop (connection closed without
// an answer) or ?fail=slow (no answer until the client gives up).
func dropOrStall(w http.ResponseWriter, r *http.Request) bool {
	switch r.URL.Query().Get("fail") {
	case "drop":
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close()
		return true
	case "slow":
		<-r.Context().Done()
		return true
	}
	return false
}

// TestForwardTLS: instances serving https trust a peer presenting their
// own certificate; a peer whose certificate is not trusted is never sent
// the request (served here instead).
func TestForwardTLS(t *testing.T) {
	conns := dialects(t)["postgres"](t)
	st := conns()
	a := newInst(t, conns(), "a", instOpts{tls: true})
	leaf := a.srv.TLS.Certificates[0].Certificate[0]
	b := newInst(t, conns(), "b", instOpts{tls: true, transport: cluster.TransportOptions{TrustLeaf: leaf}})
	c := newInst(t, conns(), "c", instOpts{tls: true}) // trusts only the system roots
	addDevice(t, st, dev1, "a")
	a.setLocal(dev1, true)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(base string) string {
		res, err := client.Get(base + "/api/v1/amt/version/" + dev1)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var e echo
		json.NewDecoder(res.Body).Decode(&e)
		return e.Instance
	}
	if got := get(b.srv.URL); got != "a" {
		t.Fatalf("through b: served by %q", got)
	}
	if got := get(c.srv.URL); got != "c" {
		t.Fatalf("through c (untrusted peer): served by %q", got)
	}
	if a.calls.Load() != 1 {
		t.Fatalf("a ran %d requests", a.calls.Load())
	}
}

// relayEcho stands in for the relay: it upgrades forwarded requests,
// echoing the subprotocol, and answers each message prefixed with "a:".
func relayEcho(up websocket.Upgrader) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "webrelay.ashx") {
			return false
		}
		if r.Header.Get(cluster.HopHeader) != "b" {
			http.Error(w, "not forwarded", 400)
			return true
		}
		proto := r.Header.Get("Sec-WebSocket-Protocol")
		c, err := up.Upgrade(w, r, http.Header{"Sec-WebSocket-Protocol": {proto}})
		if err != nil {
			return true
		}
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return true
			}
			if c.WriteMessage(mt, append([]byte("a:"), p...)) != nil {
				return true
			}
		}
	}
}

// TestForwardWebSocket: the relay's WebSocket upgrade is forwarded with its
// subprotocol (the relay token), and the session's bytes flow both ways.
func TestForwardWebSocket(t *testing.T) {
	st, a, b := pair(t, instOpts{}, instOpts{})
	addDevice(t, st, dev1, "a")
	a.setLocal(dev1, true)
	up := websocket.Upgrader{}
	a.set(func() { a.behave = relayEcho(up) })
	const token = "eyJhbGciOiJIUzI1NiJ9.eyJkZXZpY2VJZCI6IngifQ.sig"
	url := "ws" + strings.TrimPrefix(b.srv.URL, "http") + "/relay/webrelay.ashx?p=2&host=" + dev1 + "&port=16994&mode=kvm"
	c, res, err := websocket.DefaultDialer.Dial(url, http.Header{"Sec-WebSocket-Protocol": {token}})
	if err != nil {
		t.Fatalf("dial through b: %v (%v)", err, res)
	}
	defer c.Close()
	if got := res.Header.Get("Sec-WebSocket-Protocol"); got != token {
		t.Fatalf("subprotocol echoed %q", got)
	}
	if res.Header.Get(cluster.InstanceHeader) != "a" {
		t.Fatalf("upgrade served by %q", res.Header.Get(cluster.InstanceHeader))
	}
	for i := range 3 {
		msg := bytes.Repeat([]byte{byte(i)}, 40000)
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			t.Fatal(err)
		}
		_, p, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(p, append([]byte("a:"), msg...)) {
			t.Fatalf("message %d: %d bytes back", i, len(p))
		}
	}
	if b.calls.Load() != 0 {
		t.Fatal("b's local handler ran")
	}
}

func TestDeviceOf(t *testing.T) {
	g := dev1
	for _, tc := range []struct {
		url  string
		want string
	}{
		{"/api/v1/amt/version/" + g, g},
		{"/API/V1/AMT/power/state/" + strings.ToUpper(g), g},
		{"/mps/api/v1/amt/networkSettings/wireless/profile/" + g + "/" + dev2, g},
		{"/api/v1/amt/certificates/" + g + "/" + dev2, g},
		{"/api/v1/amt/version/" + g + "/", g},
		{"/api/v1/devices/disconnect/" + g, g},
		{"/api/v1/devices/RedirectStatus/" + g, g},
		{"/mps/api/v1/devices/refresh/" + g, g},
		{"/relay/webrelay.ashx?host=" + g + "&mode=kvm", g},
		{"/relay/webrelay.ashx/?host=" + g, g},
		{"/mps/relay/webrelay.ashx?host=" + g, g},
		{"/mps/ws/relay/webrelay.ashx?p=2&host=" + g, g},
		{"/ws/relay/webrelay.ashx?host=" + g, ""},
		{"/mps/ws/api/v1/amt/version/" + g, ""},
		{"/api/v1/amt/version/", ""},
		{"/api/v1/amt/version/" + g[:35], ""},
		{"/api/v1/amt/version/" + g + "0", ""},
		{"/api/v1/amt/version/" + strings.ReplaceAll(g, "-", "_"), ""},
		{"/api/v1/devices/" + g, ""},
		{"/api/v1/devices/stats", ""},
		{"/api/v1/devices/disconnect/nope/" + g, ""},
		{"/api/v1/authorize/redirection/" + g, ""},
		{"/relay/webrelay.ashx?guid=" + g, ""},
		{"/relay/other.ashx?host=" + g, ""},
		{"/rps/api/v1/amt/version/" + g, ""},
		{"/mps/mps/api/v1/amt/version/" + g, ""},
		{"/api/v1/admin/devices/disconnect/" + g, ""},
	} {
		r := httptest.NewRequest("GET", tc.url, nil)
		got, ok := cluster.DeviceOf(r)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: %q %v, want %q", tc.url, got, ok, tc.want)
		}
	}
}

// FuzzDeviceOf: request targets come from the network. A match is always
// a lower-case UUID taken from the request.
func FuzzDeviceOf(f *testing.F) {
	for _, s := range []string{
		"/api/v1/amt/version/" + dev1, "/mps/api/v1/devices/refresh/" + dev1, "/relay/webrelay.ashx?host=" + dev1,
		"/api/v1/amt//x/%2F/" + dev1, "/mps/", "/", "/api/v1/devices/disconnect/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		r, err := http.ReadRequest(bufioReader("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"))
		if err != nil {
			return
		}
		g, ok := cluster.DeviceOf(r)
		if !ok {
			if g != "" {
				t.Fatalf("no match but %q", g)
			}
			return
		}
		if len(g) != 36 || strings.ToLower(g) != g || strings.Count(g, "-") != 4 {
			t.Fatalf("%q: matched %q", target, g)
		}
		if !strings.Contains(strings.ToLower(r.URL.Path+"?"+r.URL.Query().Get("host")), g) {
			t.Fatalf("%q: %q is not in the request", target, g)
		}
	})
}

func TestAdvertiseURL(t *testing.T) {
	tcp := func(s string) net.Addr { a, _ := net.ResolveTCPAddr("tcp", s); return a }
	for _, tc := range []struct {
		addr string
		ln   net.Addr
		tls  bool
		want string
		err  bool
	}{
		{"", tcp("10.1.2.3:8181"), false, "http://10.1.2.3:8181", false},
		{"", tcp("[fd00::5]:8181"), true, "https://[fd00::5]:8181", false},
		{"", tcp("0.0.0.0:8181"), false, "", false},
		{"", tcp("[::]:8181"), false, "", false},
		{"amtd-1.internal:8181", tcp("0.0.0.0:8181"), true, "https://amtd-1.internal:8181", false},
		{"10.0.0.5:9000", nil, false, "http://10.0.0.5:9000", false},
		{"https://10.0.0.5:9000/", nil, false, "https://10.0.0.5:9000", false},
		{"http://amtd-1", nil, true, "http://amtd-1", false},
		{"ftp://x:1", nil, false, "", true},
		{"http://x:1/path", nil, false, "", true},
		{"http://u:p@x:1", nil, false, "", true},
		{"x", nil, false, "", true},
		{"0.0.0.0:8181", nil, false, "", true},
		{":8181", nil, false, "", true},
	} {
		got, err := cluster.AdvertiseURL(tc.addr, tc.ln, tc.tls)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("AdvertiseURL(%q, %v, %v) = %q, %v", tc.addr, tc.ln, tc.tls, got, err)
		}
	}
}

func TestNewForwarderChecks(t *testing.T) {
	if _, err := cluster.NewForwarder(cluster.ForwarderConfig{Self: "a"}); err == nil {
		t.Fatal("no Owners accepted")
	}
	st := dialects(t)["sqlite"](t)()
	if _, err := cluster.NewForwarder(cluster.ForwarderConfig{Owners: st}); err == nil {
		t.Fatal("no Self accepted")
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
