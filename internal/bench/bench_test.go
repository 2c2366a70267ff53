package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestGCRecords(t *testing.T) {
	trace := `amtd: something else
gc 5 @0.001s 13%: 0.056+0.11+0.001 ms clock, 0.11+0.032/0.040/0+0.003 ms cpu, 63->64->64 MB, 64 MB goal, 0 MB stacks, 0 MB globals, 2 P
time=… level=WARN msg="not a gc line: 1->2->3 MB"
gc 6 @120.002s 0%: 0.009+0.064+0.001 ms clock, 0.019+0/0.048/0.023+0.003 ms cpu, 100->100->97 MB, 128 MB goal, 78 MB stacks, 0 MB globals, 2 P (forced)
gc 7 @1.2s 1%: truncated line`
	got := gcRecords(trace)
	want := []gcRecord{{LiveMB: 64}, {LiveMB: 97, StacksMB: 78, Forced: true}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCIRALogAnalysis(t *testing.T) {
	dir := t.TempDir()
	base := time.Unix(1_800_000_000, 0)
	ns := func(d time.Duration) string { return itoa(base.Add(d).UnixNano()) }
	logA := filepath.Join(dir, "a.csv")
	logB := filepath.Join(dir, "b.csv")
	write := func(path string, lines ...string) {
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(logA,
		ns(100*time.Millisecond)+",0,uuid-a0,connected,"+ns(0)+",",
		ns(300*time.Millisecond)+",1,uuid-a1,failed,"+ns(200*time.Millisecond)+",cira: TLS with x: EOF; reset",
		ns(900*time.Millisecond)+",1,uuid-a1,connected,"+ns(800*time.Millisecond)+",",
		ns(5*time.Second)+",0,uuid-a0,disconnected,0,cira: connection lost",
		ns(6*time.Second)+",0,uuid-a0,connected,"+ns(5500*time.Millisecond)+",",
		"garbage line",
		ns(7*time.Second)+",2,uuid-a2,conn") // being written
	write(logB,
		ns(2*time.Second)+",0,uuid-b0,connected,"+ns(1*time.Second)+",")
	fleets := []*fleetRun{{log: logA}, {log: logB}, {log: filepath.Join(dir, "missing.csv")}}

	b, err := analyze(fleets, base)
	if err != nil {
		t.Fatal(err)
	}
	// first connections: a0 (100 ms), a1 (100 ms), b0 (1 s); a0's reconnection is not a first
	if b.Connected != 3 || b.Failed != 1 || b.Disconnects != 1 {
		t.Fatalf("burst %+v", b)
	}
	if !b.FirstDial.Equal(base) || !b.Last.Equal(base.Add(2*time.Second)) || b.span() != 2*time.Second {
		t.Fatalf("span %v → %v", b.FirstDial, b.Last)
	}
	if p := percentile(b.Handshakes, 100); p != time.Second {
		t.Fatalf("max handshake %v", p)
	}
	if len(b.FailedSamples) != 1 || !strings.Contains(b.FailedSamples[0], "EOF; reset") {
		t.Fatalf("failure samples %q", b.FailedSamples)
	}

	// After 4 s: only a0's reconnection counts, as a first connection.
	late, err := analyze(fleets, base.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if late.Connected != 1 || late.Disconnects != 1 || percentile(late.Handshakes, 50) != 500*time.Millisecond {
		t.Fatalf("late %+v", late)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestPercentileAndSplit(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(101-i)*time.Millisecond)
	}
	if p := percentile(d, 50); p != 50*time.Millisecond {
		t.Errorf("p50 %v", p)
	}
	if p := percentile(d, 99); p != 99*time.Millisecond {
		t.Errorf("p99 %v", p)
	}
	if p := percentile(nil, 50); p != 0 {
		t.Errorf("empty %v", p)
	}
	if got := splitDevices(19500, 3); got[0]+got[1]+got[2] != 19500 || got[0] != 6500 {
		t.Errorf("split %v", got)
	}
	if got := splitDevices(10, 3); got[0] != 4 || got[1] != 3 || got[2] != 3 {
		t.Errorf("split %v", got)
	}
	if a := addrBase(2); a.String() != "127.18.0.1" {
		t.Errorf("addrBase %s", a)
	}
}

func TestAgentSummary(t *testing.T) {
	m := agentSummary.FindStringSubmatch("activate: 1000 devices, 998 ok, 2 failed in 34.154s (concurrency 1000); per device p50 30.211s, p99 34.101s, max 34.151s\n")
	if m == nil || m[2] != "998" || m[3] != "2" || m[4] != "34.154s" || m[5] != "30.211s" || m[7] != "34.151s" {
		t.Fatalf("%q", m)
	}
}

func TestReadSampleSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	s, err := readSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.HWM < s.RSS || s.FDs < 3 || s.Threads < 1 {
		t.Fatalf("%+v", s)
	}
	// burn some CPU: the counter moves
	t0 := time.Now()
	x := 0
	for time.Since(t0) < 50*time.Millisecond {
		x++
	}
	s2, _ := readSample(os.Getpid())
	if s2.CPU <= s.CPU {
		t.Fatalf("CPU %v → %v", s.CPU, s2.CPU)
	}
}

func TestPassword(t *testing.T) {
	for range 50 {
		p, err := password()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 16 || !strings.ContainsAny(p, "ABCDEFGHJKLMNPQRSTUVWXYZ") || !strings.ContainsAny(p, "abcdefghijkmnopqrstuvwxyz") ||
			!strings.ContainsAny(p, "23456789") || !strings.ContainsAny(p, "!@#$%^*") {
			t.Fatalf("weak password %q", p)
		}
	}
}

func FuzzGCRecords(f *testing.F) {
	f.Add("gc 6 @120.002s 0%: 0.009+0.064+0.001 ms clock, 0.019+0/0.048/0.023+0.003 ms cpu, 100->100->97 MB, 128 MB goal, 78 MB stacks, 0 MB globals, 2 P (forced)")
	f.Add("gc 1 @0s 0%: , 1->2->99999999999999999999 MB, 1 MB goal, 1 MB stacks")
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range gcRecords(s) {
			if r.LiveMB < 0 || r.StacksMB < 0 {
				t.Fatalf("%+v", r)
			}
		}
	})
}

func FuzzCIRALog(f *testing.F) {
	f.Add("1800000000000000000,0,u,connected,1799999999000000000,\n")
	f.Add("1,2,3,4,5,6,7\n,,,,,\n-1,-1,x,failed,-5,err")
	f.Fuzz(func(t *testing.T, s string) {
		path := filepath.Join(t.TempDir(), "log.csv")
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		evs, err := readCIRALog(path)
		if err != nil {
			return // e.g. a line longer than the scanner's buffer
		}
		if _, err := analyze([]*fleetRun{{log: path}}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		_ = evs
	})
}
