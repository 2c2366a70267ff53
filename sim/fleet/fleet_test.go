package fleet_test

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/hostbasedsetup"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/fleet"
	"github.com/amtd-project/amtd/sim/hostif"
	"github.com/amtd-project/amtd/sim/mei"
	simwsman "github.com/amtd-project/amtd/sim/wsman"
)

const testPassword = "P@ssw0rd-Fleet1"

// shortDir is a state folder whose socket paths fit in sun_path whatever
// the test's name.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "fl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func keys() func(bits int) (*rsa.PrivateKey, error) {
	var n atomic.Int64
	return func(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 400+int(n.Add(1)%8)), nil }
}

func start(t testing.TB, o fleet.Options) *fleet.Fleet {
	t.Helper()
	if o.HTTPPort == 0 {
		o.HTTPPort = fleet.AnyPort
	}
	if o.TLSPort == 0 {
		o.TLSPort = fleet.AnyPort
	}
	if o.GenerateKey == nil {
		o.GenerateKey = keys()
	}
	f, err := fleet.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// wsmanClient is Intel's WS-MAN client with digest over real HTTP to addr.
func wsmanClient(addr, user, pw string) wsman.Messages {
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
	return wsman.NewMessages(client.Parameters{Target: "127.0.0.1", Username: user, Password: pw, UseDigest: true, Transport: tr, Timeout: 10 * time.Second})
}

// lsaClient authenticates with the LSA account read over the device's MEI
// socket, as a host tool does.
func lsaClient(t *testing.T, d *fleet.Device) wsman.Messages {
	t.Helper()
	u, p, err := mei.Host{Path: d.MEIPath}.GetLocalSystemAccount(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return wsmanClient(d.LMSAddr, u, p)
}

func uuidOverMEI(t *testing.T, path string) string {
	t.Helper()
	b, err := mei.Host{Path: path}.GetUUID(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// SMBIOS order back to text
	return fmt.Sprintf("%x-%x-%x-%x-%x", []byte{b[3], b[2], b[1], b[0]}, []byte{b[5], b[4]}, []byte{b[7], b[6]}, b[8:10], b[10:16])
}

// TestFleetStartsDistinctDevices: every device has its own address from the
// base, its own MEI socket and state file, answers over both with its own
// identity, and idle devices cost no goroutine.
func TestFleetStartsDistinctDevices(t *testing.T) {
	const n = 20
	dir := shortDir(t)
	f := start(t, fleet.Options{Dir: dir, Devices: n, AddrBase: netip.MustParseAddr("127.1.3.250")})
	devs := f.Devices()
	if len(devs) != n {
		t.Fatalf("%d devices", len(devs))
	}
	httpL, _ := f.Listeners()
	_, port, _ := net.SplitHostPort(httpL)
	seen := map[string]bool{}
	for i, d := range devs {
		want, _ := fleet.AddrAt(netip.MustParseAddr("127.1.3.250"), i)
		if d.LMSAddr != net.JoinHostPort(want.String(), port) || d.Index != i {
			t.Errorf("device %d: LMS %s, want %s:%s", i, d.LMSAddr, want, port)
		}
		if d.MEIPath != mei.FleetSocketPath(dir, d.UUID) || d.StatePath != firmware.DevicePath(dir, d.UUID) {
			t.Errorf("device %d: paths %s %s", i, d.MEIPath, d.StatePath)
		}
		if d.Hostname != fmt.Sprintf("sim-%04d", i) {
			t.Errorf("device %d: hostname %s", i, d.Hostname)
		}
		for _, k := range []string{d.UUID, d.LMSAddr, d.MEIPath} {
			if seen[k] {
				t.Errorf("device %d: %s used twice", i, k)
			}
			seen[k] = true
		}
		if _, err := os.Stat(d.StatePath); err != nil {
			t.Error(err)
		}
	}
	if devs[5].LMSAddr[:len("127.1.4.1:")] != "127.1.4.1:" { // .255 and .0 skipped
		t.Errorf("device 5 at %s", devs[5].LMSAddr)
	}
	for _, i := range []int{0, 7, n - 1} {
		d := devs[i]
		if got := uuidOverMEI(t, d.MEIPath); got != d.UUID {
			t.Errorf("device %d: MEI says %s, want %s", i, got, d.UUID)
		}
		gs, err := lsaClient(t, d).AMT.GeneralSettings.Get()
		if err != nil || gs.Body.GetResponse.DigestRealm != d.Firmware.Realm() {
			t.Errorf("device %d over LMS: %v", i, err)
		}
	}
	// An address of the range that has no device refuses like a closed port.
	beyond, _ := fleet.AddrAt(netip.MustParseAddr("127.1.3.250"), n)
	if _, err := wsmanClient(net.JoinHostPort(beyond.String(), port), "admin", "x").AMT.GeneralSettings.Get(); err == nil {
		t.Error("an address without a device answered")
	}
	// The manifest lists the devices in index order.
	data, err := os.ReadFile(filepath.Join(dir, fleet.ManifestName))
	if err != nil || !strings.Contains(string(data), devs[n-1].UUID) {
		t.Fatalf("manifest: %v %s", err, data)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(devs[0].MEIPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", devs[0].LMSAddr, time.Second); err == nil {
		t.Error("LMS still listening after Close")
	}
}

// TestIdleDevicesCostNoGoroutine: a fleet runs two accept loops and one
// epoll loop whatever its size (a little slack for goroutines of earlier
// tests still winding down).
func TestIdleDevicesCostNoGoroutine(t *testing.T) {
	const n = 300
	g0 := runtime.NumGoroutine()
	f := start(t, fleet.Options{Dir: shortDir(t), Devices: n})
	if extra := runtime.NumGoroutine() - g0; extra > 10 {
		t.Errorf("%d goroutines for %d idle devices", extra, n)
	}
	if m, err := (mei.Host{Path: f.Devices()[n-1].MEIPath}).GetControlMode(ctx(t)); err != nil || m != 0 {
		t.Errorf("last device: %d %v", m, err)
	}
}

// TestFleetRestartKeepsIdentityAndState: UUIDs, indices and addresses are
// stable across restarts, growing the fleet adds devices after the old
// ones, and an activation survives.
func TestFleetRestartKeepsIdentityAndState(t *testing.T) {
	dir := shortDir(t)
	f := start(t, fleet.Options{Dir: dir, Devices: 3})
	var uuids, addrs []string
	for _, d := range f.Devices() {
		uuids = append(uuids, d.UUID)
		addrs = append(addrs, strings.Split(d.LMSAddr, ":")[0])
	}
	d1 := f.Devices()[1]
	m := lsaClient(t, d1)
	res, err := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, d1.Firmware.Realm(), testPassword)
	if err != nil || res.Body.Setup_OUTPUT.ReturnValue != 0 {
		t.Fatalf("Setup: %v %+v", err, res.Body.Setup_OUTPUT)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	f2 := start(t, fleet.Options{Dir: dir, Devices: 5})
	devs := f2.Devices()
	for i := range 3 {
		if devs[i].UUID != uuids[i] || strings.Split(devs[i].LMSAddr, ":")[0] != addrs[i] {
			t.Errorf("device %d: %s at %s, was %s at %s", i, devs[i].UUID, devs[i].LMSAddr, uuids[i], addrs[i])
		}
	}
	if slices.Contains(uuids, devs[3].UUID) || slices.Contains(uuids, devs[4].UUID) || devs[3].UUID == devs[4].UUID {
		t.Error("new devices reuse UUIDs")
	}
	mode, err := mei.Host{Path: devs[1].MEIPath}.GetControlMode(ctx(t))
	if err != nil || mode != firmware.ModeCCM {
		t.Fatalf("device 1 after restart: mode %d, %v", mode, err)
	}
	if m, _ := (mei.Host{Path: devs[0].MEIPath}).GetControlMode(ctx(t)); m != firmware.ModePre {
		t.Errorf("device 0 mode %d", m)
	}
	if _, err := wsmanClient(devs[1].LMSAddr, "admin", testPassword).AMT.GeneralSettings.Get(); err != nil {
		t.Errorf("admin after restart: %v", err)
	}
	f2.Close()

	// A smaller fleet runs the first devices; without the manifest the
	// device folders are found again and no device is created.
	f3 := start(t, fleet.Options{Dir: dir, Devices: 2})
	if f3.Devices()[0].UUID != uuids[0] || f3.Devices()[1].UUID != uuids[1] {
		t.Error("smaller fleet changed the first devices")
	}
	f3.Close()
	var all []string
	for _, d := range devs {
		all = append(all, d.UUID)
	}
	if err := os.Remove(filepath.Join(dir, fleet.ManifestName)); err != nil {
		t.Fatal(err)
	}
	f4 := start(t, fleet.Options{Dir: dir, Devices: 5})
	var again []string
	for _, d := range f4.Devices() {
		again = append(again, d.UUID)
	}
	slices.Sort(all)
	if !slices.Equal(again, all) {
		t.Errorf("without manifest: %v, want %v", again, all)
	}
}

// TestFleetOptionsApplyToEveryDevice: firmware version, DNS suffix, trust
// hashes, faults and latency reach every device.
func TestFleetOptionsApplyToEveryDevice(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	rule, err := fleet.ParseFault("AMT_GeneralSettings.Get=http500:1")
	if err != nil {
		t.Fatal(err)
	}
	const latency = 40 * time.Millisecond
	f := start(t, fleet.Options{
		Dir: shortDir(t), Devices: 3, Version: "11.8.50", Build: "3425", SKU: "8",
		DNSSuffix: "fleet.example.com", TrustHashes: []string{hash},
		Faults: []simwsman.FaultRule{rule}, Latency: latency,
	})
	for _, d := range f.Devices() {
		h := mei.Host{Path: d.MEIPath}
		v, err := h.GetCodeVersions(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if amt, _ := v.Get("AMT"); amt != "11.8.50" {
			t.Errorf("AMT version %q", amt)
		}
		if b, _ := v.Get("Build Number"); b != "3425" {
			t.Errorf("build %q", b)
		}
		if s, err := h.GetPKIFQDNSuffix(ctx(t)); err != nil || s != "fleet.example.com" {
			t.Errorf("suffix %q %v", s, err)
		}
		hashes, err := h.CertHashes(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(hashes, func(e hostif.CertHashEntry) bool { return !e.IsDefault && hex.EncodeToString(e.Hash) == hash }) {
			t.Error("user trust hash missing")
		}
		// First call fails (count 1), the next one works; each takes at
		// least the configured latency.
		m := lsaClient(t, d)
		t0 := time.Now()
		if _, err := m.AMT.GeneralSettings.Get(); err == nil {
			t.Error("fault not injected")
		}
		if _, err := m.AMT.GeneralSettings.Get(); err != nil {
			t.Errorf("second call: %v", err)
		}
		if el := time.Since(t0); el < 2*latency {
			t.Errorf("two calls in %v with %v latency", el, latency)
		}
	}
}

// TestFleetTLSEnforced: AMT 19 devices serve 16993 from the start and
// refuse plain LMS connections.
func TestFleetTLSEnforced(t *testing.T) {
	f := start(t, fleet.Options{Dir: shortDir(t), Devices: 2, Version: "19.0.5"})
	for _, d := range f.Devices() {
		flags, err := mei.Host{Path: d.MEIPath}.IsChangeToAMTEnabled(ctx(t))
		if err != nil || flags&0x40 == 0 {
			t.Errorf("watchdog flags %#x %v", flags, err)
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d.TLSAddr(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("TLS to %s: %v", d.TLSAddr(), err)
		}
		conn.Close()
		c, err := net.DialTimeout("tcp", d.LMSAddr, 5*time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
			b, _ := io.ReadAll(c)
			c.Close()
			if len(b) > 0 {
				t.Errorf("plain LMS answered on a TLS-enforced device: %q", b)
			}
		}
	}
	off := false
	g := start(t, fleet.Options{Dir: shortDir(t), Devices: 1, Version: "19.0.5", TLSEnforced: &off})
	if flags, _ := (mei.Host{Path: g.Devices()[0].MEIPath}).IsChangeToAMTEnabled(ctx(t)); flags&0x40 != 0 {
		t.Error("TLSEnforced=false ignored")
	}
}

// TestSingleDevice: the single layout binds the LMS address itself and
// puts the MEI socket where asked.
func TestSingleDevice(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "mei.sock")
	f := start(t, fleet.Options{Dir: dir, Single: true, LMSAddr: "127.0.0.1:0", MEIPath: sock})
	d := f.Devices()[0]
	if d.MEIPath != sock || !strings.HasPrefix(d.LMSAddr, "127.0.0.1:") || strings.HasSuffix(d.LMSAddr, ":0") {
		t.Fatalf("device %+v", d)
	}
	if h, _ := f.Listeners(); h != "" {
		t.Errorf("shared listener %s for a single device", h)
	}
	if got := uuidOverMEI(t, sock); got != d.UUID {
		t.Errorf("uuid %s", got)
	}
	if _, err := lsaClient(t, d).AMT.GeneralSettings.Get(); err != nil {
		t.Error(err)
	}
}

// TestStartErrors: bad options fail clearly, before touching the folder
// where possible; a folder in use is refused.
func TestStartErrors(t *testing.T) {
	long := "/tmp/" + strings.Repeat("d", 60)
	cases := []struct {
		name string
		o    fleet.Options
		want string
	}{
		{"no dir", fleet.Options{}, "state folder is required"},
		{"long dir", fleet.Options{Dir: long, Devices: 2}, "too long for the MEI sockets"},
		{"long mei", fleet.Options{Dir: shortDir(t), Single: true, MEIPath: long + "/" + strings.Repeat("s", 60)}, "Unix sockets allow at most 107"},
		{"single with many", fleet.Options{Dir: shortDir(t), Single: true, Devices: 2}, "exactly one device"},
		{"mei for fleet", fleet.Options{Dir: shortDir(t), Devices: 2, MEIPath: "/tmp/x.sock"}, "single device"},
		{"base outside loopback", fleet.Options{Dir: shortDir(t), Devices: 2, AddrBase: netip.MustParseAddr("10.0.0.1")}, "127.0.0.0/8"},
		{"fleet too big", fleet.Options{Dir: shortDir(t), Devices: 300, AddrBase: netip.MustParseAddr("127.255.255.1")}, "do not fit"},
		{"hashes", fleet.Options{Dir: shortDir(t), TrustHashes: []string{"a", "b", "c", "d"}}, "at most 3"},
		{"bad version", fleet.Options{Dir: shortDir(t), Version: "x.y"}, "device 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.o.HTTPPort, c.o.TLSPort = fleet.AnyPort, fleet.AnyPort
			f, err := fleet.Start(context.Background(), c.o)
			if err == nil {
				f.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q, want %q", err, c.want)
			}
		})
	}
	if _, err := os.Stat(long); err == nil {
		t.Error("long folder created")
	}

	dir := shortDir(t)
	start(t, fleet.Options{Dir: dir})
	if _, err := fleet.Start(context.Background(), fleet.Options{Dir: dir, HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second simulator on the same folder: %v", err)
	}
	// A damaged manifest is reported, not silently replaced.
	dir2 := shortDir(t)
	os.WriteFile(filepath.Join(dir2, fleet.ManifestName), []byte(`{"devices":["nope"]}`), 0o644)
	if _, err := fleet.Start(context.Background(), fleet.Options{Dir: dir2, HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort}); err == nil || !strings.Contains(err.Error(), "fleet.json") {
		t.Fatalf("damaged manifest: %v", err)
	}
}

// TestPortInUse: a taken fleet port is an error, and nothing is left
// behind (the folder can be used again).
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	var port int
	fmt.Sscan(p, &port)
	dir := shortDir(t)
	if _, err := fleet.Start(context.Background(), fleet.Options{Dir: dir, Devices: 2, HTTPPort: port, TLSPort: fleet.AnyPort}); err == nil {
		t.Fatal("started on a port in use")
	}
	start(t, fleet.Options{Dir: dir, Devices: 2})
}

func TestAddrAt(t *testing.T) {
	base := netip.MustParseAddr("127.1.0.1")
	for _, c := range []struct {
		base string
		i    int
		want string
	}{
		{"127.1.0.1", 0, "127.1.0.1"},
		{"127.1.0.1", 253, "127.1.0.254"},
		{"127.1.0.1", 254, "127.1.1.1"},
		{"127.1.0.1", 9999, "127.1.39.94"},
		{"127.0.255.254", 1, "127.1.0.1"},
		{"127.255.255.254", 0, "127.255.255.254"},
	} {
		got, err := fleet.AddrAt(netip.MustParseAddr(c.base), c.i)
		if err != nil || got.String() != c.want {
			t.Errorf("AddrAt(%s, %d) = %s, %v; want %s", c.base, c.i, got, err, c.want)
		}
	}
	for _, bad := range []string{"127.1.0.0", "127.1.0.255", "128.0.0.1", "::1"} {
		if _, err := fleet.AddrAt(netip.MustParseAddr(bad), 0); err == nil {
			t.Errorf("base %s accepted", bad)
		}
	}
	if _, err := fleet.AddrAt(netip.MustParseAddr("127.255.255.254"), 1); err == nil {
		t.Error("overflow accepted")
	}
	// distinct for a 10 000-device fleet
	seen := map[netip.Addr]bool{}
	for i := range 10000 {
		a, err := fleet.AddrAt(base, i)
		if err != nil || seen[a] || !netip.MustParsePrefix("127.0.0.0/8").Contains(a) {
			t.Fatalf("device %d: %s %v", i, a, err)
		}
		seen[a] = true
	}
}

func TestParseFault(t *testing.T) {
	for _, c := range []struct {
		in   string
		want simwsman.FaultRule
	}{
		{"IPS_HostBasedSetupService.Setup=return:1", simwsman.FaultRule{Class: "IPS_HostBasedSetupService", Op: "Setup", Kind: simwsman.FaultReturnValue, ReturnValue: 1}},
		{"IPS_HostBasedSetupService.AdminSetup=return:2087:3", simwsman.FaultRule{Class: "IPS_HostBasedSetupService", Op: "AdminSetup", Kind: simwsman.FaultReturnValue, ReturnValue: 2087, Count: 3}},
		{"AMT_GeneralSettings.Get=http500:2", simwsman.FaultRule{Class: "AMT_GeneralSettings", Op: "Get", Kind: simwsman.FaultHTTP500, Count: 2}},
		{"*.*=hang", simwsman.FaultRule{Kind: simwsman.FaultHang}},
		{"*.Put=reset", simwsman.FaultRule{Op: "Put", Kind: simwsman.FaultReset}},
		{"CIM_Foo.*=reset-after", simwsman.FaultRule{Class: "CIM_Foo", Kind: simwsman.FaultResetAfter}},
		{"A.B=HTTP400", simwsman.FaultRule{Class: "A", Op: "B", Kind: simwsman.FaultHTTP400}},
	} {
		got, err := fleet.ParseFault(c.in)
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v", c.in, got, err)
		}
	}
	for _, bad := range []string{"", "A.B", "AB=hang", "A.B=explode", "A.B=return", "A.B=return:x", "A.B=hang:0", "A.B=hang:1:2", "A.B=return:1:2:3", "A B.C=hang", "A.B=return:4294967296"} {
		if _, err := fleet.ParseFault(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"IPS_HostBasedSetupService.Setup=return:1", "*.*=hang:3", "A.B=return:1:2", "=", "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := fleet.ParseFault(s)
		if err != nil {
			return
		}
		if r.Kind == simwsman.FaultNone || r.Count < 0 || strings.Contains(r.Class, ".") {
			t.Fatalf("%q parsed to %+v", s, r)
		}
	})
}

// TestRunAgentsReportsFailures: with no server every device fails with the
// transport error, and the report counts them.
func TestRunAgentsReportsFailures(t *testing.T) {
	f := start(t, fleet.Options{Dir: shortDir(t), Devices: 4})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "ws://" + ln.Addr().String() + "/activate"
	ln.Close() // nothing listens there any more
	var done atomic.Int64
	rep := f.RunAgents(ctx(t), fleet.AgentOptions{Concurrency: 2, Done: func(fleet.AgentResult) { done.Add(1) },
		Config: agentConfig(url)})
	if rep.OK != 0 || rep.Failed != 4 || done.Load() != 4 || len(rep.Results) != 4 {
		t.Fatalf("report %+v", rep)
	}
	for i, r := range rep.Results {
		if r.Device != f.Devices()[i] || r.OK() || r.Message() == "" {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if rep.P50 <= 0 || rep.P99 < rep.P50 || rep.Max < rep.P99 {
		t.Errorf("percentiles %v %v %v", rep.P50, rep.P99, rep.Max)
	}
	// A cancelled run starts nothing.
	c, cancel := context.WithCancel(context.Background())
	cancel()
	rep = f.RunAgents(c, fleet.AgentOptions{Config: agentConfig(url)})
	if rep.Failed != 4 || rep.Max != 0 {
		t.Errorf("cancelled: %+v", rep)
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func agentConfig(url string) agent.Config {
	return agent.Config{URL: url, Command: "activate", Profile: "p", Logger: quiet(), HandshakeTimeout: 5 * time.Second}
}
