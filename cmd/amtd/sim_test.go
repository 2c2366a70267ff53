package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/hostbasedsetup"

	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/mei"
)

const simTestPassword = "P@ssw0rd-Sim42"

// simDir is a state folder short enough for the MEI sockets in it.
func simDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "as")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// notifyBuffer is an output that tells waiters when something was written.
type notifyBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	ch  chan struct{}
}

func newNotifyBuffer() *notifyBuffer { return &notifyBuffer{ch: make(chan struct{}, 1)} }

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.ch <- struct{}{}:
	default:
	}
	return n, err
}

func (b *notifyBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// simProc is an `amtd sim` running in this process.
type simProc struct {
	t       *testing.T
	cancel  context.CancelFunc
	done    chan int
	out     *notifyBuffer
	errOut  *notifyBuffer
	devices []map[string]string
}

// startSim runs `amtd sim args…` until it has printed lines device lines.
func startSim(t *testing.T, lines int, args ...string) *simProc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &simProc{t: t, cancel: cancel, done: make(chan int, 1), out: newNotifyBuffer(), errOut: newNotifyBuffer()}
	go func() { p.done <- run(ctx, append([]string{"sim", "--log-level", "warn"}, args...), p.out, p.errOut) }()
	t.Cleanup(func() { p.stop() })
	timeout := time.NewTimer(60 * time.Second)
	defer timeout.Stop()
	for {
		p.devices = parseDevices(p.out.String())
		if len(p.devices) >= lines && (lines <= 1 || strings.Contains(p.out.String(), "process:")) {
			return p
		}
		select {
		case <-p.out.ch:
		case code := <-p.done:
			p.done <- code
			t.Fatalf("amtd sim exited with %d: %s%s", code, p.out.String(), p.errOut.String())
		case <-timeout.C:
			t.Fatalf("amtd sim did not start: %s%s", p.out.String(), p.errOut.String())
		}
	}
}

// stop cancels the command (as SIGINT does) and returns its exit status.
func (p *simProc) stop() int {
	p.cancel()
	code := <-p.done
	p.done <- code
	return code
}

// parseDevices reads the "device N key=value…" lines.
func parseDevices(out string) []map[string]string {
	var devs []map[string]string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "device" {
			continue
		}
		m := map[string]string{"index": f[1]}
		for _, kv := range f[2:] {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = strings.TrimSuffix(v, ":")
			}
		}
		devs = append(devs, m)
	}
	return devs
}

func simCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// wsmanTo is Intel's WS-MAN client with digest authentication, over real
// HTTP to addr.
func wsmanTo(addr, user, pw string) wsman.Messages {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	return wsman.NewMessages(client.Parameters{Target: "127.0.0.1", Username: user, Password: pw, UseDigest: true, Transport: tr, Timeout: 10 * time.Second})
}

func meiUUID(t *testing.T, path string) string {
	t.Helper()
	b, err := mei.Host{Path: path}.GetUUID(simCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", []byte{b[3], b[2], b[1], b[0]}, []byte{b[5], b[4]}, []byte{b[7], b[6]}, b[8:10], b[10:16])
}

// TestSimSingleDevice: a host tool reads the device over the MEI socket
// (UUID, LSA), activates it over LMS with Intel's WS-MAN client and digest
// authentication, and after a restart the device is the same and still
// activated.
func TestSimSingleDevice(t *testing.T) {
	dir := simDir(t)
	sock := filepath.Join(dir, "mei.sock")
	args := []string{"--dir", dir, "--devices", "1", "--lms", "127.0.0.1:0", "--mei", sock, "--tls-port", "0", "--dns-suffix", "sim.example.com"}
	p := startSim(t, 1, args...)
	d := p.devices[0]
	if d["mei"] != sock || !strings.HasPrefix(d["lms"], "127.0.0.1:") || d["mode"] != "pre" || d["tls"] != "-" {
		t.Fatalf("device line %v", d)
	}
	if got := meiUUID(t, sock); got != d["uuid"] {
		t.Fatalf("MEI UUID %s, printed %s", got, d["uuid"])
	}
	h := mei.Host{Path: sock}
	if s, err := h.GetPKIFQDNSuffix(simCtx(t)); err != nil || s != "sim.example.com" {
		t.Errorf("DNS suffix %q %v", s, err)
	}
	user, pw, err := h.GetLocalSystemAccount(simCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	m := wsmanTo(d["lms"], user, pw)
	gs, err := m.AMT.GeneralSettings.Get()
	if err != nil {
		t.Fatal(err)
	}
	realm := gs.Body.GetResponse.DigestRealm
	res, err := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, realm, simTestPassword)
	if err != nil || res.Body.Setup_OUTPUT.ReturnValue != 0 {
		t.Fatalf("Setup: %v %+v", err, res.Body.Setup_OUTPUT)
	}
	if mode, err := h.GetControlMode(simCtx(t)); err != nil || mode != firmware.ModeCCM {
		t.Fatalf("control mode %d %v", mode, err)
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, p.errOut.String())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("MEI socket left behind: %v", err)
	}

	p2 := startSim(t, 1, args...)
	d2 := p2.devices[0]
	if d2["uuid"] != d["uuid"] || d2["mode"] != "ccm" {
		t.Fatalf("after restart: %v (was %v)", d2, d)
	}
	if mode, err := h.GetControlMode(simCtx(t)); err != nil || mode != firmware.ModeCCM {
		t.Fatalf("control mode after restart %d %v", mode, err)
	}
	if gs, err := wsmanTo(d2["lms"], "admin", simTestPassword).AMT.GeneralSettings.Get(); err != nil || gs.Body.GetResponse.DigestRealm != realm {
		t.Fatalf("admin after restart: %v", err)
	}
	u2, pw2, _ := h.GetLocalSystemAccount(simCtx(t))
	if _, err := wsmanTo(d2["lms"], u2, pw2).AMT.GeneralSettings.Get(); err == nil {
		t.Error("LSA accepted on an activated device")
	}
}

// TestSimSingleTLSEnforced: an AMT 19 device serves TLS on its own port
// from the start, says so over MEI, and refuses plain LMS connections.
func TestSimSingleTLSEnforced(t *testing.T) {
	dir := simDir(t)
	p := startSim(t, 1, "--dir", dir, "--lms", "127.0.0.1:0", "--tls-port", "0", "--amt-version", "19.0.5")
	d := p.devices[0]
	if !strings.HasPrefix(d["tls"], "127.0.0.1:") || d["tls"] == d["lms"] {
		t.Fatalf("device line %v", d)
	}
	if flags, err := (mei.Host{Path: d["mei"]}).IsChangeToAMTEnabled(simCtx(t)); err != nil || flags&0x40 == 0 {
		t.Errorf("watchdog flags %#x %v", flags, err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d["tls"], &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	u, pw, err := mei.Host{Path: d["mei"]}.GetLocalSystemAccount(simCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wsmanTo(d["lms"], u, pw).AMT.GeneralSettings.Get(); err == nil {
		t.Error("plain LMS answered on a TLS-enforced device")
	}
	// --tls-enforced=false overrides the version's default.
	p.stop()
	p = startSim(t, 1, "--dir", dir, "--lms", "127.0.0.1:0", "--tls-port", "0", "--amt-version", "19.0.5", "--tls-enforced=false")
	if flags, _ := (mei.Host{Path: p.devices[0]["mei"]}).IsChangeToAMTEnabled(simCtx(t)); flags&0x40 != 0 {
		t.Error("--tls-enforced=false ignored")
	}
}

// TestSimFleet: twenty devices with distinct addresses from --addr-base and
// distinct MEI sockets, each answering with its own identity.
func TestSimFleet(t *testing.T) {
	const n = 20
	dir := simDir(t)
	p := startSim(t, n, "--dir", dir, "--devices", fmt.Sprint(n), "--addr-base", "127.1.9.1", "--http-port", "0", "--tls-port", "0",
		"--amt-version", "11.8.50", "--trust-hash", strings.Repeat("0f", 32), "--fault", "AMT_GeneralSettings.Put=http500")
	if len(p.devices) != n {
		t.Fatalf("%d device lines:\n%s", len(p.devices), p.out.String())
	}
	seen := map[string]bool{}
	for i, d := range p.devices {
		ip := strings.Split(d["lms"], ":")[0]
		if ip != fmt.Sprintf("127.1.9.%d", i+1) {
			t.Errorf("device %d at %s", i, d["lms"])
		}
		if d["mei"] != filepath.Join(dir, d["uuid"], "mei.sock") {
			t.Errorf("device %d socket %s", i, d["mei"])
		}
		for _, k := range []string{d["uuid"], d["lms"], d["mei"]} {
			if seen[k] {
				t.Errorf("%s twice", k)
			}
			seen[k] = true
		}
		if got := meiUUID(t, d["mei"]); got != d["uuid"] {
			t.Errorf("device %d: MEI UUID %s, printed %s", i, got, d["uuid"])
		}
		v, err := mei.Host{Path: d["mei"]}.GetCodeVersions(simCtx(t))
		if amt, _ := v.Get("AMT"); err != nil || amt != "11.8.50" {
			t.Errorf("device %d: version %q %v", i, amt, err)
		}
	}
	for _, i := range []int{0, n - 1} {
		d := p.devices[i]
		u, pw, err := mei.Host{Path: d["mei"]}.GetLocalSystemAccount(simCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := wsmanTo(d["lms"], u, pw).AMT.GeneralSettings.Get(); err != nil {
			t.Errorf("device %d over LMS: %v", i, err)
		}
	}
	if !strings.Contains(p.out.String(), "process: RSS") {
		t.Errorf("no process line: %s", p.out.String())
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// TestSimLargeFleetSummary: above the listing threshold a summary is
// printed (first and last device), unless --list.
func TestSimLargeFleetSummary(t *testing.T) {
	dir := simDir(t)
	p := startSim(t, 2, "--dir", dir, "--devices", "70", "--http-port", "0", "--tls-port", "0")
	if len(p.devices) != 2 || p.devices[1]["index"] != "69" || !strings.Contains(p.out.String(), "addresses 127.1.0.1 … 127.1.0.70") {
		t.Fatalf("summary:\n%s", p.out.String())
	}
	p.stop()
	p = startSim(t, 70, "--dir", dir, "--devices", "70", "--http-port", "0", "--tls-port", "0", "--list")
	if len(p.devices) != 70 {
		t.Fatalf("--list printed %d devices", len(p.devices))
	}
}

func TestSimFlagErrors(t *testing.T) {
	dir := simDir(t)
	hash := strings.Repeat("ab", 32)
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "--dir is required"},
		{[]string{"--dir", dir, "--devices", "0"}, "at least 1"},
		{[]string{"--dir", dir, "--devices", "2", "--lms", "127.0.0.1:1"}, "single device"},
		{[]string{"--dir", dir, "--addr-base", "127.1.0.1", "--mei", "x"}, "cannot be combined"},
		{[]string{"--dir", dir, "--http-port", "1234"}, "--http-port is for fleets"},
		{[]string{"--dir", dir, "--tls-port", "70000"}, "not a port"},
		{[]string{"--dir", dir, "--devices", "2", "--addr-base", "10.1.0.1"}, "127.0.0.0/8"},
		{[]string{"--dir", dir, "--devices", "2", "--addr-base", "nope"}, "--addr-base"},
		{[]string{"--dir", dir, "--trust-hash", hash, "--trust-hash", hash, "--trust-hash", hash, "--trust-hash", hash}, "at most 3"},
		{[]string{"--dir", dir, "--fault", "AMT_GeneralSettings.Get=boom"}, "unknown kind"},
		{[]string{"--dir", dir, "--activate", "ws://127.0.0.1:1/activate"}, "needs --profile"},
		{[]string{"--dir", dir, "--deactivate", "ws://127.0.0.1:1/deactivate"}, "needs --password"},
		{[]string{"--dir", dir, "--maintenance", "ws://127.0.0.1:1/maintenance"}, "needs --task"},
		{[]string{"--dir", dir, "--activate", "http://x/activate", "--profile", "p"}, "ws:// or wss://"},
		{[]string{"--dir", dir, "--activate", "ws://x/a", "--deactivate", "ws://x/d", "--profile", "p"}, "choose one"},
		{[]string{"--dir", dir, "--log-level", "loud"}, "--log-level"},
		{[]string{"--dir", "/tmp/" + strings.Repeat("x", 70)}, "too long"},
	} {
		code, _, errOut := runAmtd(t, append([]string{"sim"}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want %q", c.args, code, errOut, c.want)
		}
	}
}

// TestSimEnvironment: every flag has its AMTD_* variable; the command line
// wins.
func TestSimEnvironment(t *testing.T) {
	var c simConfig
	fs := simFlags(&c)
	env := map[string]string{"AMTD_DIR": "/tmp/x", "AMTD_DEVICES": "7", "AMTD_TRUST_HASH": "aa,bb", "AMTD_FAULT": "A.B=hang,C.D=reset",
		"AMTD_TLS_ENFORCED": "true", "AMTD_LATENCY": "80ms", "AMTD_PASSWORD": "pw"}
	fs.SetLookupEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err := fs.Parse([]string{"--devices", "3"}); err != nil {
		t.Fatal(err)
	}
	if c.Dir != "/tmp/x" || c.Devices != 3 || len(c.TrustHashes) != 2 || len(c.Faults) != 2 || !c.TLSEnforced || c.Latency != 80*time.Millisecond || c.Password != "pw" {
		t.Fatalf("%+v", c)
	}
	o, ac, err := simOptions(c, fs)
	if err != nil || ac != nil || o.TLSEnforced == nil || !*o.TLSEnforced || len(o.Faults) != 2 || o.Single {
		t.Fatalf("%+v %v %v", o, ac, err)
	}

	var help bytes.Buffer
	fs.PrintUsage(&help)
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(help.String(), "--"+f.Name) || !strings.Contains(help.String(), "$"+cli.EnvName(f.Name)) {
			t.Errorf("--%s missing from the help with its variable", f.Name)
		}
	})
}

// ---- agent mode against a real `amtd serve` ----

// startActivationServer runs amtd serve in this process (no API
// authentication, no activation delay) with a CCM profile "ccm" whose AMT
// password is simTestPassword.
func startActivationServer(t *testing.T) (httpBase, wsBase string) {
	t.Helper()
	var c serveConfig
	fs := serveFlags(&c)
	fs.SetLookupEnv(func(string) (string, bool) { return "", false })
	if err := fs.Parse([]string{"--http", "127.0.0.1:0", "--data", filepath.Join(t.TempDir(), "data"), "--auth", "none",
		"--activation-delay", "0s", "--wsman-round-timeout", "5s"}); err != nil {
		t.Fatal(err)
	}
	s, base, _ := startTestServer(t, c)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.shutdown(ctx)
	})
	body, _ := json.Marshal(map[string]any{"profileName": "ccm", "activation": "ccmactivate", "amtPassword": simTestPassword,
		"generateRandomPassword": false, "dhcpEnabled": true, "tags": []string{}})
	resp, err := http.Post(base+"/api/v1/admin/profiles", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("create profile: %d %s", resp.StatusCode, b)
	}
	return base, "ws" + strings.TrimPrefix(base, "http")
}

// TestSimAgentMode: a fleet is activated by `amtd sim --activate` against
// the real server, stays activated across a restart of the simulator, takes
// a maintenance task, is deactivated; failures are reported with their
// message and a non-zero exit.
func TestSimAgentMode(t *testing.T) {
	_, ws := startActivationServer(t)
	dir := simDir(t)
	fleetArgs := []string{"--dir", dir, "--devices", "3", "--addr-base", "127.1.11.1", "--http-port", "0", "--tls-port", "0", "--log-level", "warn"}

	code, out, errOut := runAmtd(t, append(append([]string{"sim"}, fleetArgs...), "--activate", ws+"/activate", "--profile", "ccm", "--concurrency", "2")...)
	if code != 0 || !strings.Contains(out, "activate: 3 devices, 3 ok, 0 failed") {
		t.Fatalf("activate: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, simTestPassword) {
		t.Fatal("password printed")
	}

	// The simulator restarted: every device is still activated.
	p := startSim(t, 3, fleetArgs...)
	for _, d := range p.devices {
		if d["mode"] != "ccm" {
			t.Errorf("device %s mode %s after restart", d["index"], d["mode"])
		}
		if mode, err := (mei.Host{Path: d["mei"]}).GetControlMode(simCtx(t)); err != nil || mode != firmware.ModeCCM {
			t.Errorf("MEI mode %d %v", mode, err)
		}
		if _, err := wsmanTo(d["lms"], "admin", simTestPassword).AMT.GeneralSettings.Get(); err != nil {
			t.Errorf("admin password: %v", err)
		}
	}
	p.stop()

	code, out, errOut = runAmtd(t, append(append([]string{"sim"}, fleetArgs...), "--maintenance", ws+"/maintenance", "--task", "synctime", "--password", simTestPassword)...)
	if code != 0 || !strings.Contains(out, "maintenance: 3 devices, 3 ok") {
		t.Fatalf("maintenance: exit %d\n%s\n%s", code, out, errOut)
	}

	// A wrong password fails on every device, with the server's message.
	code, out, _ = runAmtd(t, append(append([]string{"sim"}, fleetArgs...), "--deactivate", ws+"/deactivate", "--password", "Wrong-Passw0rd")...)
	if code != 1 || !strings.Contains(out, "3 failed") || strings.Count(out, "FAILED device") != 3 {
		t.Fatalf("deactivate with a wrong password: exit %d\n%s", code, out)
	}
	code, out, errOut = runAmtd(t, append(append([]string{"sim"}, fleetArgs...), "--deactivate", ws+"/deactivate", "--password", simTestPassword)...)
	if code != 0 || !strings.Contains(out, "deactivate: 3 devices, 3 ok") {
		t.Fatalf("deactivate: exit %d\n%s\n%s", code, out, errOut)
	}
	p = startSim(t, 3, fleetArgs...)
	for _, d := range p.devices {
		if d["mode"] != "pre" {
			t.Errorf("device %s mode %s after deactivation", d["index"], d["mode"])
		}
	}
	p.stop()

	code, out, _ = runAmtd(t, append(append([]string{"sim"}, fleetArgs...), "--activate", ws+"/activate", "--profile", "no-such-profile")...)
	if code != 1 || !strings.Contains(out, "0 ok, 3 failed") || !strings.Contains(out, "FAILED device 0") {
		t.Fatalf("unknown profile: exit %d\n%s", code, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "FAILED") && !strings.Contains(line, "server error") {
			t.Errorf("failure without the server's message: %s", line)
		}
	}
}
