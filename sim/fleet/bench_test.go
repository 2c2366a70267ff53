package fleet_test

import (
	"context"
	"flag"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/amtd-project/amtd/sim/fleet"
	"github.com/amtd-project/amtd/sim/mei"
)

var (
	benchDevices = flag.Int("fleet.devices", 1000, "devices in BenchmarkFleetIdle")
	benchDir     = flag.String("fleet.dir", "", "parent folder of BenchmarkFleetIdle's state (default: the temporary folder)")
)

// BenchmarkFleetIdle starts a fleet in a fresh folder and reports the start
// time and what an idle device costs the process: RSS (VmRSS, after
// returning free memory to the system), Go heap, descriptors and
// goroutines, right after the start and again after every device has
// answered one MEI command and one LMS connection.
//
//	go test -run XXX -bench FleetIdle -benchtime 1x ./sim/fleet/ -fleet.devices 10000
func BenchmarkFleetIdle(b *testing.B) {
	n := *benchDevices
	for range b.N {
		dir, err := os.MkdirTemp(*benchDir, "flb")
		if err != nil {
			b.Fatal(err)
		}
		before := fleet.ReadStats(true)
		t0 := time.Now()
		f, err := fleet.Start(context.Background(), fleet.Options{Dir: dir, Devices: n, HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort})
		if err != nil {
			b.Fatal(err)
		}
		startDur := time.Since(t0)
		idle := fleet.ReadStats(true)
		report(b, "", before, idle, n)
		b.ReportMetric(startDur.Seconds(), "start-s")
		b.ReportMetric(float64(startDur.Microseconds())/float64(n), "start-µs/device")

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		for _, d := range f.Devices() {
			if _, err := (mei.Host{Path: d.MEIPath}).GetControlMode(ctx); err != nil {
				b.Fatal(err)
			}
			c, err := net.Dial("tcp", d.LMSAddr)
			if err != nil {
				b.Fatal(err)
			}
			io.WriteString(c, "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
			if _, err := io.ReadAll(c); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
		cancel()
		used := fleet.ReadStats(true)
		report(b, "-used", before, used, n)

		t1 := time.Now()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(time.Since(t1).Seconds(), "close-s")
		os.RemoveAll(dir)
	}
}

func report(b *testing.B, suffix string, before, after fleet.Stats, n int) {
	per := func(a, b float64) float64 { return (a - b) / float64(n) }
	b.ReportMetric(per(float64(after.RSS), float64(before.RSS)), "rss-B/device"+suffix)
	b.ReportMetric(per(float64(after.HeapAlloc), float64(before.HeapAlloc)), "heap-B/device"+suffix)
	b.ReportMetric(per(float64(after.HeapInuse+after.StackInuse), float64(before.HeapInuse+before.StackInuse)), "inuse-B/device"+suffix)
	b.ReportMetric(per(float64(after.FDs), float64(before.FDs)), "fds/device"+suffix)
	b.ReportMetric(float64(after.Goroutines-before.Goroutines), "goroutines"+suffix)
	b.ReportMetric(float64(after.RSS)/(1<<20), "rss-MiB"+suffix)
}
