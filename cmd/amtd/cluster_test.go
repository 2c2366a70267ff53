package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/cluster"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/internal/testutil/pgtest"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/mei"
)

// The serve tests that need PostgreSQL share one throw-away server.
func TestMain(m *testing.M) { pgtest.Main(m) }

const clusterAdminPassword = "Cluster-Adm1n-Pa55"

// syncBuffer is a log sink shared by a server's goroutines.
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

// startInstance starts one `amtd serve` of a cluster sharing dsn and the
// master key; its log is shown when the test fails.
func startInstance(t *testing.T, dsn, key, id string) (*server, string) {
	t.Helper()
	c := testConfig(t)
	c.DB, c.MasterKey, c.InstanceID = dsn, key, id
	c.AdminPassword = clusterAdminPassword
	c.ActivationDelay = 0
	c.MPSHost = "mps.example.test"
	c.LeaseTTL, c.LeaseRenew = time.Second, 200*time.Millisecond
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := startServer(context.Background(), c, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", id, logs.String())
		}
	})
	return s, "http://" + s.addr.String()
}

// crash stops s the way a killed process stops: its database connections
// go first, so neither its lease nor its devices' records are released.
func crash(s *server) {
	s.store.Close()
	s.shutdown(context.Background())
}

type answer struct {
	code     int
	instance string // X-Amtd-Instance: the instance that executed it
	body     []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("not a JSON object: %s", a.body)
	}
	return m
}

func call(t *testing.T, method, url, token string, body any) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, instance: resp.Header.Get(cluster.InstanceHeader), body: b}
}

// deviceView is a device as GET /api/v1/devices[/:guid] shows it.
type deviceView struct {
	GUID             string  `json:"guid"`
	ConnectionStatus bool    `json:"connectionStatus"`
	MPSInstance      *string `json:"mpsInstance"`
}

func (d deviceView) instance() string {
	if d.MPSInstance == nil {
		return ""
	}
	return *d.MPSInstance
}

func getDevice(t *testing.T, base, token, guid string) deviceView {
	t.Helper()
	a := call(t, "GET", base+"/api/v1/devices/"+guid, token, nil)
	var d deviceView
	if a.code != 200 || json.Unmarshal(a.body, &d) != nil {
		t.Fatalf("GET device: %d %s", a.code, a.body)
	}
	return d
}

func listDevice(t *testing.T, base, token, guid string) deviceView {
	t.Helper()
	a := call(t, "GET", base+"/api/v1/devices?$top=100", token, nil)
	var l []deviceView
	if a.code != 200 || json.Unmarshal(a.body, &l) != nil {
		t.Fatalf("GET devices: %d %s", a.code, a.body)
	}
	for _, d := range l {
		if d.GUID == guid {
			return d
		}
	}
	t.Fatalf("%s not listed: %s", guid, a.body)
	return deviceView{}
}

// waitFor polls cond (an observable state of the system under test, e.g.
// a device record) until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestServeTwoInstances: two `amtd serve` sharing one PostgreSQL. A
// simulated device, activated with a CIRA profile, calls home through an
// L4 balancer that sends it to instance A. Requests sent to B for it are
// executed by A (forwarded with the client's token); both list it
// connected to A. A is killed: once its lease expires B reports the device
// disconnected and answers for it itself; the device calls back through
// the balancer, now to B, and B serves it directly. B's graceful stop
// marks it disconnected at once.
func TestServeTwoInstances(t *testing.T) {
	dsn := pgtest.DSN(t)
	kb := make([]byte, 32)
	rand.Read(kb)
	key := hex.EncodeToString(kb)
	a, baseA := startInstance(t, dsn, key, "amtd-a")
	aStopped := false
	defer func() {
		if !aStopped {
			a.shutdown(context.Background())
		}
	}()
	b, baseB := startInstance(t, dsn, key, "amtd-b")
	bStopped := false
	defer func() {
		if !bStopped {
			b.shutdown(context.Background())
		}
	}()

	// One token, obtained from B, is honoured by both (shared signing key).
	tok := call(t, "POST", baseB+"/api/v1/authorize", "", map[string]string{"username": "admin", "password": clusterAdminPassword})
	token, _ := tok.json(t)["token"].(string)
	if tok.code != 200 || token == "" {
		t.Fatalf("authorize: %d %s", tok.code, tok.body)
	}

	// A CIRA profile pointing devices at "mps.example.test", which the
	// balancer below resolves.
	root := call(t, "GET", baseB+"/api/v1/ciracert", "", nil)
	blk, _ := pem.Decode(root.body)
	if root.code != 200 || blk == nil {
		t.Fatalf("ciracert: %d %s", root.code, root.body)
	}
	if r := call(t, "POST", baseB+"/api/v1/admin/ciraconfigs", token, map[string]any{
		"configName": "home", "mpsServerAddress": "mps.example.test", "mpsPort": 4433, "username": "ciraUser1",
		"serverAddressFormat": 201, "authMethod": 2, "mpsRootCertificate": base64.StdEncoding.EncodeToString(blk.Bytes),
	}); r.code != 201 {
		t.Fatalf("cira config: %d %s", r.code, r.body)
	}
	if r := call(t, "POST", baseB+"/api/v1/admin/profiles", token, map[string]any{
		"profileName": "remote", "activation": "ccmactivate", "generateRandomPassword": true,
		"dhcpEnabled": true, "ciraConfigName": "home",
	}); r.code != 201 {
		t.Fatalf("profile: %d %s", r.code, r.body)
	}

	// The balancer: the device's CIRA connections go to backend, or fail
	// while it is empty.
	var backend atomic.Value
	backend.Store(a.ciraLn.Addr().String())
	dir := t.TempDir()
	fw, err := firmware.Open(firmware.Config{Path: filepath.Join(dir, "fw.json"), DNSSuffix: "corp.example.com", Hostname: "laptop-9"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.New(device.Config{Firmware: fw, Addrs: []string{"127.0.0.1:0"}, LMS: true,
		CIRA: &cira.Options{TimeScale: 0.01, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				to := backend.Load().(string)
				if to == "" {
					return nil, errors.New("balancer: no backend")
				}
				return (&net.Dialer{}).DialContext(ctx, network, to)
			}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sock, _ := os.MkdirTemp("", "mei")
	defer os.RemoveAll(sock)
	meiPath := filepath.Join(sock, "mei.sock")
	l, err := net.Listen("unix", meiPath)
	if err != nil {
		t.Fatal(err)
	}
	go mei.NewServer(fw, mei.Options{}).Serve(ctx, l)
	res, err := agent.Run(ctx, agent.Config{URL: "ws" + strings.TrimPrefix(baseA, "http") + "/activate",
		Command: "activate", Profile: "remote", MEIPath: meiPath, LMSAddr: d.Addr(), Hostname: "laptop-9"})
	if err != nil || res.Status == nil || res.Status.CIRAConnection != "Configured" {
		t.Fatalf("activation: %v %+v", err, res.Status)
	}
	guid := strings.ToLower(fw.UUIDString())

	// Connected to A, recorded so, and listed so by both instances.
	waitFor(t, 30*time.Second, "device not recorded connected to A", func() bool {
		return getDevice(t, baseB, token, guid).instance() == "amtd-a"
	})
	if !a.cira.IsConnected(guid) || b.cira.IsConnected(guid) {
		t.Fatalf("CIRA connection: on A %v, on B %v", a.cira.IsConnected(guid), b.cira.IsConnected(guid))
	}
	for _, base := range []string{baseA, baseB} {
		if v := listDevice(t, base, token, guid); !v.ConnectionStatus || v.instance() != "amtd-a" {
			t.Fatalf("%s lists %+v", base, v)
		}
		if v := getDevice(t, base, token, guid); !v.ConnectionStatus || v.instance() != "amtd-a" {
			t.Fatalf("%s shows %+v", base, v)
		}
	}

	// Requests to B are executed by A, over A's CIRA connection.
	r := call(t, "GET", baseB+"/api/v1/amt/version/"+guid, token, nil)
	if r.code != 200 || r.instance != "amtd-a" || !strings.Contains(string(r.body), "AMT_SetupAndConfigurationService") ||
		!strings.Contains(string(r.body), `"16.`) {
		t.Fatalf("version through B: %d %q %.300s", r.code, r.instance, r.body)
	}
	r = call(t, "GET", baseB+"/api/v1/amt/generalSettings/"+guid, token, nil)
	if r.code != 200 || r.instance != "amtd-a" || !strings.Contains(string(r.body), `"HostName":"laptop-9"`) {
		t.Fatalf("general settings through B: %d %q %.300s", r.code, r.instance, r.body)
	}
	r = call(t, "GET", baseB+"/api/v1/amt/power/state/"+guid, token, nil)
	if r.code != 200 || r.instance != "amtd-a" || r.json(t)["powerstate"] != float64(fw.PowerState()) {
		t.Fatalf("power state through B: %d %q %s (device %d)", r.code, r.instance, r.body, fw.PowerState())
	}
	r = call(t, "POST", baseB+"/mps/api/v1/amt/power/action/"+strings.ToUpper(guid), token, map[string]any{"action": 8})
	if r.code != 200 || r.instance != "amtd-a" || fw.PowerState() != 8 {
		t.Fatalf("power off through B: %d %q %s (device state %d)", r.code, r.instance, r.body, fw.PowerState())
	}
	r = call(t, "GET", baseB+"/api/v1/devices/redirectstatus/"+guid, token, nil)
	if r.code != 200 || r.instance != "amtd-a" || r.json(t)["isKVMConnected"] != false {
		t.Fatalf("redirect status through B: %d %q %s", r.code, r.instance, r.body)
	}
	// The owner authenticates forwarded requests like its own.
	if r := call(t, "GET", baseB+"/api/v1/amt/version/"+guid, "", nil); r.code != 401 {
		t.Fatalf("without a token through B: %d %s", r.code, r.body)
	}
	if r := call(t, "GET", baseB+"/api/v1/amt/version/"+guid, token+"x", nil); r.code != 401 {
		t.Fatalf("bad token through B: %d %s", r.code, r.body)
	}

	// A is killed; the balancer has no backend for the device meanwhile.
	backend.Store("")
	killed := time.Now()
	crash(a)
	aStopped = true
	waitFor(t, 10*time.Second, "B still shows the device connected after A's lease expired", func() bool {
		return !getDevice(t, baseB, token, guid).ConnectionStatus
	})
	if since := time.Since(killed); since < 500*time.Millisecond {
		t.Fatalf("device disconnected %v after the crash, before A's lease (1 s) could expire", since)
	}
	if v := listDevice(t, baseB, token, guid); v.ConnectionStatus || v.MPSInstance != nil {
		t.Fatalf("B lists %+v", v)
	}
	// Nobody holds it: B answers itself — no relay sessions (the relay
	// could only try the LAN); an AMT action tries the LAN, where the
	// device's name does not resolve.
	r = call(t, "GET", baseB+"/api/v1/devices/redirectstatus/"+guid, token, nil)
	if r.code != 200 || r.instance != "amtd-b" || !strings.Contains(string(r.body), `"isSOLConnected":false`) {
		t.Fatalf("redirect status while disconnected: %d %q %s", r.code, r.instance, r.body)
	}
	r = call(t, "GET", baseB+"/api/v1/amt/version/"+guid, token, nil)
	if r.code != 404 || r.instance != "amtd-b" || !strings.Contains(string(r.body), "Device not found/connected") {
		t.Fatalf("version while disconnected: %d %q %s", r.code, r.instance, r.body)
	}

	// The device calls back, now to B, which serves it directly.
	backend.Store(b.ciraLn.Addr().String())
	waitFor(t, 30*time.Second, "device did not reconnect to B", func() bool { return b.cira.IsConnected(guid) })
	r = call(t, "GET", baseB+"/api/v1/amt/version/"+guid, token, nil)
	if r.code != 200 || r.instance != "amtd-b" {
		t.Fatalf("version on B: %d %q %.300s", r.code, r.instance, r.body)
	}
	r = call(t, "GET", baseB+"/api/v1/amt/power/state/"+guid, token, nil)
	if r.code != 200 || r.instance != "amtd-b" || r.json(t)["powerstate"] != float64(8) {
		t.Fatalf("power state on B: %d %q %s", r.code, r.instance, r.body)
	}
	waitFor(t, 10*time.Second, "device not recorded connected to B", func() bool {
		v := listDevice(t, baseB, token, guid)
		return v.ConnectionStatus && v.instance() == "amtd-b"
	})

	// B stops gracefully: the device record says disconnected at once.
	if err := b.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	bStopped = true
	st, err := sqlstore.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dev, err := st.GetDevice(context.Background(), guid)
	if err != nil || dev.ConnectionStatus || dev.MPSInstance != nil {
		t.Fatalf("after B's graceful stop: %+v %v", dev, err)
	}
	if l, err := st.ListInstances(context.Background()); err != nil || len(l) != 0 {
		t.Fatalf("leases after both stopped: %+v %v", l, err)
	}
}
