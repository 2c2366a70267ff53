package hello_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/amtd-project/amtd/internal/amthashes"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/hello"
)

const testUUID = "939b524b-13d4-1d18-e487-1c697a6b7a2b" // the spec's sample device

// smbiosUUID is testUUID on the wire (legacy.md §3: first three fields little-endian).
var smbiosUUID = []byte{0x4b, 0x52, 0x9b, 0x93, 0xd4, 0x13, 0x18, 0x1d, 0xe4, 0x87, 0x1c, 0x69, 0x7a, 0x6b, 0x7a, 0x2b}

type received struct {
	data []byte
	from netip.Addr
	at   time.Time
}

// helloServer is a raw TCP listener that reads each connection to EOF (the
// device half-closes after its hello) and reports what it got.
func helloServer(t *testing.T) (port int, got <-chan received) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan received, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			b, err := io.ReadAll(c)
			at := time.Now()
			c.Close()
			if err != nil {
				t.Errorf("reading a hello: %v", err)
				continue
			}
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			ch <- received{data: b, from: ap.Addr().Unmap(), at: at}
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr).Port, ch
}

func next(t *testing.T, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no hello")
	}
	return received{}
}

// dnsServer answers A queries from zone ("name." → IPv4), NXDOMAIN for
// other names, and logs the questions.
type dnsLog struct {
	mu sync.Mutex
	q  []string
}

func (l *dnsLog) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.q...)
}

func dnsServer(t *testing.T, zone map[string]string) (string, *dnsLog) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := &dnsLog{}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		name := strings.ToLower(q.Question[0].Name)
		log.mu.Lock()
		if q.Question[0].Qtype == dns.TypeA {
			log.q = append(log.q, name)
		}
		log.mu.Unlock()
		ip, ok := zone[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
		} else if q.Question[0].Qtype == dns.TypeA {
			rr, err := dns.NewRR(name + " 60 IN A " + ip)
			if err != nil {
				t.Error(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return pc.LocalAddr().String(), log
}

func keys(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 400), nil }

// setupFirmware is a device whose PKI configuration was started.
func setupFirmware(t *testing.T, cfg firmware.Config) *firmware.Firmware {
	t.Helper()
	if cfg.UUID == "" {
		cfg.UUID = testUUID
	}
	cfg.GenerateKey = keys
	fw, err := firmware.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rv := fw.StartConfigurationEx(false); rv != 0 {
		t.Fatalf("StartConfigurationEx: %d", rv)
	}
	return fw
}

func newScheduler(t *testing.T, o hello.Options) *hello.Scheduler {
	t.Helper()
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	s, err := hello.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// follow calls Track on every legacy change, as sim/device does.
func follow(s *hello.Scheduler, fw *firmware.Firmware) {
	fw.OnEvent(func(e firmware.Event) {
		if e == firmware.EventLegacySetupChanged || e == firmware.EventProvisioningChanged {
			s.Track(fw, netip.Addr{})
		}
	})
	s.Track(fw, netip.Addr{})
}

// TestPKIHelloBytes checks a version 3 hello against legacy.md §3.2 field
// by field: the 23 active hashes (the user hash in handle order, the last
// default dropped), 807 bytes as in the spec's sample; 24 on request.
func TestPKIHelloBytes(t *testing.T) {
	port, got := helloServer(t)
	fw := setupFirmware(t, firmware.Config{})
	if rv := fw.SetMEBxPassword("N3w-MEBx-pass"); rv != 0 {
		t.Fatal(rv)
	}
	user := bytes.Repeat([]byte{0xab}, 32)
	if _, rv := fw.AddCustomizedCertificateHash(2, user, "amtd root"); rv != 0 {
		t.Fatal(rv)
	}
	var want [][]byte
	for _, e := range amthashes.Defaults() {
		if e.Active {
			h, _ := hex.DecodeString(e.SHA256)
			want = append(want, h)
		}
	}
	want = append(want[:20], append([][]byte{user}, want[20:]...)...) // handles 0–19, 20 (user), 23…

	for _, max := range []int{0, 24} {
		s := newScheduler(t, hello.Options{Server: "127.0.0.1", Port: port, MaxHashes: max, Schedule: []time.Duration{0}, CloseAfter: -1})
		a := s.Send(context.Background(), fw, netip.Addr{}, 3)
		if a.Err != nil || a.Version != 3 || a.Via != "configured server 127.0.0.1" {
			t.Fatalf("attempt %+v", a)
		}
		b := next(t, got).data
		n := 23
		if max == 24 {
			n = 24
		}
		if len(b) != 25+n*34 {
			t.Fatalf("%d bytes, want %d", len(b), 25+n*34)
		}
		if !bytes.Equal(b[0:2], []byte{1, 0}) || !bytes.Equal(b[2:4], []byte{3, 0}) || binary.LittleEndian.Uint32(b[4:8]) != 3 ||
			!bytes.Equal(b[8:24], smbiosUUID) || int(b[24]) != n {
			t.Fatalf("header % x", b[:25])
		}
		p := 25
		for i := range n {
			if b[p] != 2 || b[p+1] != 32 || !bytes.Equal(b[p+2:p+34], want[i]) {
				t.Fatalf("entry %d: % x", i, b[p:p+34])
			}
			p += 34
		}
	}
}

// TestPSKHelloBytes checks a version 2 hello (legacy.md §3.1).
func TestPSKHelloBytes(t *testing.T) {
	port, got := helloServer(t)
	fw, err := firmware.Open(firmware.Config{UUID: testUUID, Version: "10.0.55", GenerateKey: keys})
	if err != nil {
		t.Fatal(err)
	}
	if rv := fw.SetPIDPPS("ABCD-1234", "ABCD-EFGH-JKLM-NPQR-STUV-WXYZ-2345-6789"); rv != 0 {
		t.Fatal(rv)
	}
	if rv := fw.StartConfigurationEx(false); rv != 0 {
		t.Fatal(rv)
	}
	s := newScheduler(t, hello.Options{Server: "127.0.0.1:" + strconv.Itoa(port)})
	if a := s.Send(context.Background(), fw, netip.Addr{}, 0); a.Err != nil || a.Version != 2 {
		t.Fatalf("%+v", a)
	}
	want := append(append([]byte{0, 0, 2, 0, 0, 0, 0, 0}, smbiosUUID...), "ABCD1234"...)
	if b := next(t, got).data; !bytes.Equal(b, want) {
		t.Fatalf("hello % x\nwant  % x", b, want)
	}
}

// TestDiscovery follows legacy.md §2: bare ProvisionServer (no MEBx
// domain), then the DHCP domain; the MEBx domain first when set; the
// device's configured address before DNS; the scheduler's configured server
// before everything.
func TestDiscovery(t *testing.T) {
	port, got := helloServer(t)
	port2, got2 := helloServer(t)
	dnsAddr, log := dnsServer(t, map[string]string{
		"provisionserver.corp.example.com.": "127.0.0.1",
		"provisionserver.mebx.example.org.": "127.0.0.1",
	})
	fw := setupFirmware(t, firmware.Config{DNSSuffix: "corp.example.com"})
	s := newScheduler(t, hello.Options{DNSServer: dnsAddr, Port: port})
	ctx := context.Background()

	a := s.Send(ctx, fw, netip.Addr{}, 0)
	if a.Err != nil || a.Via != "DNS ProvisionServer.corp.example.com" || a.Target != "127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("DHCP domain: %+v", a)
	}
	next(t, got)
	if q := log.names(); len(q) < 2 || q[0] != "provisionserver." || q[len(q)-1] != "provisionserver.corp.example.com." {
		t.Fatalf("DNS questions %v", q)
	}

	fw.Update(func(st *firmware.State) error { st.Network.DomainName = "mebx.example.org"; return nil })
	if a := s.Send(ctx, fw, netip.Addr{}, 1); a.Err != nil || a.Via != "DNS ProvisionServer.mebx.example.org" {
		t.Fatalf("MEBx domain: %+v", a)
	}
	next(t, got)

	if rv := fw.SetProvisioningServer("127.0.0.1", port2, ""); rv != 0 {
		t.Fatal(rv)
	}
	if a := s.Send(ctx, fw, netip.Addr{}, 2); a.Err != nil || a.Via != "configured address" {
		t.Fatalf("configured address: %+v", a)
	}
	if r := next(t, got2); binary.LittleEndian.Uint32(r.data[4:8]) != 2 {
		t.Fatal("wrong hello at the configured address")
	}

	over := newScheduler(t, hello.Options{Server: "127.0.0.1:" + strconv.Itoa(port)})
	if a := over.Send(ctx, fw, netip.Addr{}, 3); a.Err != nil || a.Via != "configured server 127.0.0.1:"+strconv.Itoa(port) {
		t.Fatalf("scheduler's server: %+v", a)
	}
	next(t, got)

	// nothing resolves: the failure is reported and logged by the schedule
	lost := setupFirmware(t, firmware.Config{UUID: "4c4c4544-0038-4b10-8052-b4c04f564433", DNSSuffix: "nowhere.example.net"})
	attempts := make(chan hello.Attempt, 4)
	s2 := newScheduler(t, hello.Options{DNSServer: dnsAddr, Port: port, Schedule: []time.Duration{0}, CloseAfter: -1,
		OnSend: func(a hello.Attempt) { attempts <- a }})
	s2.Track(lost, netip.Addr{})
	select {
	case a := <-attempts:
		if a.Err == nil || !strings.Contains(a.Err.Error(), "no configuration server found") {
			t.Fatalf("%+v", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no attempt")
	}
	found := false
	for _, e := range lost.LegacyEvents() {
		found = found || e.Kind == firmware.LegacyHelloFailed && strings.Contains(e.Detail, "ProvisionServer.nowhere.example.net")
	}
	if !found {
		t.Fatalf("failure not logged: %+v", lost.LegacyEvents())
	}
}

// TestScheduleTimeScaled runs the whole 15-hello schedule 14400 times
// faster: retry counts 0–14 in order, none early, then the setup window
// closes an hour (scaled) after the last hello and nothing more is sent.
func TestScheduleTimeScaled(t *testing.T) {
	const scale = 14400
	port, got := helloServer(t)
	fw := setupFirmware(t, firmware.Config{})
	s := newScheduler(t, hello.Options{Server: "127.0.0.1", Port: port, TimeScale: scale})
	start := time.Now()
	follow(s, fw)
	// registered after follow's hook: called once the scheduler has seen the change
	closed := make(chan struct{})
	var once sync.Once
	fw.OnEvent(func(e firmware.Event) {
		if e == firmware.EventLegacySetupChanged && !fw.LegacyStatus().Active {
			once.Do(func() { close(closed) })
		}
	})
	var offset time.Duration
	for i, gap := range hello.DefaultSchedule() {
		offset += gap / scale
		r := next(t, got)
		if n := binary.LittleEndian.Uint32(r.data[4:8]); n != uint32(i) {
			t.Fatalf("hello %d has retry count %d", i, n)
		}
		if early := r.at.Sub(start); early < offset {
			t.Fatalf("hello %d after %s, not before %s", i, early, offset)
		}
	}
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("the setup window did not close")
	}
	if el := time.Since(start); el < offset+hello.DefaultCloseAfter/scale {
		t.Fatalf("closed after %s", el)
	}
	if fw.ProvisioningState() != firmware.StateIn || s.Scheduled(fw) {
		t.Fatal("after the window: still scheduled or not in setup")
	}
	select {
	case r := <-got:
		t.Fatalf("a 16th hello (retry %d)", binary.LittleEndian.Uint32(r.data[4:8]))
	default:
	}
	found := false
	for _, e := range fw.LegacyEvents() {
		found = found || e.Kind == firmware.LegacyWindowClosed
	}
	if !found {
		t.Fatal("window closing not logged")
	}
	// StartConfigurationEx re-opens the window: retry 0 again
	if rv := fw.StartConfigurationEx(false); rv != 0 {
		t.Fatal(rv)
	}
	if r := next(t, got); binary.LittleEndian.Uint32(r.data[4:8]) != 0 {
		t.Fatal("the restarted schedule does not start at retry 0")
	}
}

// TestHellosStopWhenSetupEnds: StopConfiguration (as CommitChanges) takes
// the device off the schedule.
func TestHellosStopWhenSetupEnds(t *testing.T) {
	port, got := helloServer(t)
	fw := setupFirmware(t, firmware.Config{})
	s := newScheduler(t, hello.Options{Server: "127.0.0.1", Port: port, Schedule: []time.Duration{0, time.Hour}})
	follow(s, fw)
	next(t, got)
	if !s.Scheduled(fw) || s.Len() != 1 {
		t.Fatal("not scheduled")
	}
	if rv := fw.StopConfiguration(); rv != 0 {
		t.Fatal(rv)
	}
	if s.Scheduled(fw) || s.Len() != 0 {
		t.Fatal("still scheduled after StopConfiguration")
	}
	// not in setup: Send refuses to build a hello
	if a := s.Send(context.Background(), fw, netip.Addr{}, 0); a.Err == nil {
		t.Fatal("hello sent outside setup")
	}
}

// TestSourceAddress: hellos leave from the device's address, so that the
// server connects back to it.
func TestSourceAddress(t *testing.T) {
	port, got := helloServer(t)
	fw := setupFirmware(t, firmware.Config{})
	s := newScheduler(t, hello.Options{Server: "127.0.0.1", Port: port})
	from := netip.MustParseAddr("127.0.0.77")
	if a := s.Send(context.Background(), fw, from, 0); a.Err != nil {
		t.Fatal(a.Err)
	}
	if r := next(t, got); r.from != from {
		t.Fatalf("from %s", r.from)
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, o := range []hello.Options{
		{Port: 70000}, {TimeScale: -1}, {Schedule: []time.Duration{}}, {MaxHashes: 300}, {DNSServer: "dns.example"}, {Server: "a b"},
	} {
		if s, err := hello.New(o); err == nil {
			s.Close()
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestManyDevicesOneGoroutine: devices waiting for their next hello cost a
// heap entry, not a goroutine.
func TestManyDevicesOneGoroutine(t *testing.T) {
	s := newScheduler(t, hello.Options{Server: "127.0.0.1:9", Schedule: []time.Duration{time.Hour}})
	before := runtime.NumGoroutine()
	const n = 300
	fws := make([]*firmware.Firmware, n)
	for i := range fws {
		fw, err := firmware.Open(firmware.Config{GenerateKey: keys})
		if err != nil {
			t.Fatal(err)
		}
		if rv := fw.StartConfigurationEx(false); rv != 0 {
			t.Fatal(rv)
		}
		s.Track(fw, netip.Addr{})
		fws[i] = fw
	}
	if s.Len() != n {
		t.Fatalf("%d scheduled", s.Len())
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Fatalf("%d goroutines for %d scheduled devices (was %d)", g, n, before)
	}
	for _, fw := range fws {
		s.Untrack(fw)
	}
	if s.Len() != 0 {
		t.Fatal("not untracked")
	}
}
