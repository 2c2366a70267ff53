package cira

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
)

// BenchmarkIdleConnections measures what one idle CIRA connection costs the
// server: N devices connect over loopback (TLS 1.2, RSA key exchange,
// AES-128-GCM, as AMT negotiates), authenticate, forward AMT's seven ports
// and receive the keepalive options; then the process's memory is compared
// with the baseline taken before they came. In "after-traffic" each device
// has also sent one full-size (16 KiB) TLS record, as a WS-MAN response
// would, before going idle.
//
// The devices run in a child process (this test binary re-executed), so
// that the figure is the server's alone and N can approach the per-process
// descriptor limit:
//
//	CIRA_BENCH_CONNS=19500 go test -run '^$' -bench IdleConnections -benchtime 1x ./internal/cira
//
// Metrics, per connection: heap-B/conn (live heap after GC), stack-B/conn
// (goroutine stacks), B/conn (the two together), rss-B/conn (resident set
// growth after returning free memory to the OS; Linux; includes the
// runtime's own overhead: span fragmentation, GC metadata, poll descriptors).
// CIRA_BENCH_HEAPPROFILE=file with -memprofilerate 1 writes the live heap
// by allocation site at the moment of measurement.
func BenchmarkIdleConnections(b *testing.B) {
	b.Run("fresh", benchmarkIdleConnections)
	b.Run("after-traffic", benchmarkIdleConnections)
}

func benchmarkIdleConnections(b *testing.B) {
	n := 2000
	if v := os.Getenv("CIRA_BENCH_CONNS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	p := getPKI(b)
	const pw = "Bench-Passw0rd"
	srv, err := NewServer(Config{
		Certificate: &p.cert,
		Authenticator: AuthenticatorFunc(func(ctx context.Context, uuid string) (DeviceAuth, error) {
			return DeviceAuth{Tenant: "bench", Username: "admin", Password: pw}, nil
		}),
		Logger:        testLogger(b),
		IdleTimeout:   time.Hour,
		ForwardSettle: 50 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		<-served
	}()

	before := settledMemStats()
	rssBefore := residentBytes()
	goroutinesBefore := runtime.NumGoroutine()

	cmd := exec.Command(os.Args[0], "-test.run=^TestFleetHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), "CIRA_FLEET_ADDR="+ln.Addr().String(), "CIRA_FLEET_CONNS="+strconv.Itoa(n), "CIRA_FLEET_PASSWORD="+pw)
	if b.Name() == "BenchmarkIdleConnections/after-traffic" {
		cmd.Env = append(cmd.Env, "CIRA_FLEET_BIG_RECORD=1")
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		stdin.Close() // the fleet exits when its stdin closes
		cmd.Wait()
	}()
	ready := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line := sc.Text(); line == "READY" {
			ready = true
			break
		} else if strings.HasPrefix(line, "ERROR") {
			b.Fatal(line)
		}
	}
	if !ready {
		b.Fatal("the fleet exited before all devices connected")
	}
	go io.Copy(io.Discard, stdout)
	connectTime := time.Since(start)
	if got := srv.Count(); got != n {
		b.Fatalf("%d devices registered, want %d", got, n)
	}

	after := settledMemStats()
	rssAfter := residentBytes()
	goroutines := runtime.NumGoroutine() - goroutinesBefore
	if path := os.Getenv("CIRA_BENCH_HEAPPROFILE"); path != "" {
		// With -memprofilerate 1, the live heap by allocation site while
		// the connections are up.
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)
	b.ReportMetric(heap, "heap-B/conn")
	b.ReportMetric(stack, "stack-B/conn")
	b.ReportMetric(heap+stack, "B/conn")
	if rssBefore > 0 && rssAfter > 0 {
		b.ReportMetric(float64(rssAfter-rssBefore)/float64(n), "rss-B/conn")
	}
	b.ReportMetric(float64(goroutines)/float64(n), "goroutines/conn")
	b.Logf("%d idle connections (connected in %v): %.0f B/conn live heap + %.0f B/conn stacks = %.0f B/conn (%.1f KiB); RSS %+.0f B/conn; %d goroutines",
		n, connectTime.Round(time.Millisecond), heap, stack, heap+stack, (heap+stack)/1024, float64(rssAfter-rssBefore)/float64(n), goroutines)
}

// residentBytes returns the process's resident set size after returning
// free memory to the OS (Linux; 0 elsewhere).
func residentBytes() int64 {
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}

// settledMemStats collects garbage until the heap stops shrinking (stacks
// are shrunk during GC too) and returns the statistics.
func settledMemStats() runtime.MemStats {
	var ms runtime.MemStats
	last := ^uint64(0)
	for i := 0; i < 10; i++ {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc+ms.StackInuse >= last {
			break
		}
		last = ms.HeapAlloc + ms.StackInuse
	}
	return ms
}

// TestFleetHelperProcess is the device fleet of BenchmarkIdleConnections,
// run in a child process; it does nothing unless CIRA_FLEET_ADDR is set.
func TestFleetHelperProcess(t *testing.T) {
	addr := os.Getenv("CIRA_FLEET_ADDR")
	if addr == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("CIRA_FLEET_CONNS"))
	pw := os.Getenv("CIRA_FLEET_PASSWORD")
	cfg := &tls.Config{
		InsecureSkipVerify: true, // a load generator; the handshake is what matters
		MinVersion:         tls.VersionTLS12,
		MaxVersion:         tls.VersionTLS12,
		CipherSuites:       []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
		// Full-size records from the first byte.
		DynamicRecordSizingDisabled: true,
	}
	conns := make([]*tls.Conn, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := fleetDevice(addr, cfg, pw)
			if err != nil {
				errs <- fmt.Errorf("device %d: %w", i, err)
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	os.Exit(0)
}

// fleetDevice connects one device and leaves it idle.
func fleetDevice(addr string, cfg *tls.Config, pw string) (*tls.Conn, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	var uuid apf.UUID
	if _, err := io.ReadFull(randReader{}, uuid[:]); err != nil {
		return nil, err
	}
	msgs := []apf.Message{
		&apf.ProtocolVersion{Major: 1, TriggerReason: apf.TriggerPeriodic, UUID: uuid},
		&apf.ServiceRequest{Service: apf.ServiceAuth},
		&apf.UserAuthRequest{Username: "admin", Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: pw},
		&apf.ServiceRequest{Service: apf.ServicePortForward},
	}
	for _, p := range []uint32{16993, 16992, 664, 623, 16995, 16994, 5900} {
		msgs = append(msgs, &apf.GlobalRequest{Name: apf.RequestTCPIPForward, WantReply: true, Port: p})
	}
	if _, err := c.Write(enc(msgs...)); err != nil {
		c.Close()
		return nil, err
	}
	rd := apf.NewReader(c, apf.Limits{})
	forwards := 7
	rd.RequestSuccessHasPort = func() bool { return true }
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	for {
		m, err := rd.ReadMessage()
		if err != nil {
			c.Close()
			return nil, err
		}
		switch m := m.(type) {
		case *apf.UserAuthFailure, *apf.Disconnect:
			c.Close()
			return nil, fmt.Errorf("refused: %T", m)
		case *apf.RequestSuccess:
			forwards--
		case *apf.KeepaliveOptionsRequest:
			if forwards != 0 {
				c.Close()
				return nil, fmt.Errorf("keepalive options before the forwards were answered")
			}
			if _, err := c.Write(enc(&apf.KeepaliveOptionsReply{Interval: m.Interval, Timeout: m.Timeout})); err != nil {
				c.Close()
				return nil, err
			}
			if os.Getenv("CIRA_FLEET_BIG_RECORD") != "" {
				// One full-size TLS record (as a WS-MAN response would
				// bring), then a keepalive round trip.
				big := enc(&apf.GlobalRequest{Name: apf.RequestUDPSendTo, Data: make([]byte, 16000)}, &apf.KeepaliveRequest{Cookie: 7})
				if _, err := c.Write(big); err != nil {
					c.Close()
					return nil, err
				}
				if _, err := rd.ReadMessage(); err != nil {
					c.Close()
					return nil, err
				}
			}
			c.SetReadDeadline(time.Time{})
			return c, nil
		}
	}
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) { return rand.Read(p) }
