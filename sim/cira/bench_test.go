package cira_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"flag"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	ciraserver "github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
)

var benchDevices = flag.Int("cira.devices", 500, "devices in BenchmarkIdleConnectedFleet")

// cirafw is a provisioned device configured for CIRA directly in its state
// (what the RPS-style WS-MAN configuration produces), without a LAN side.
func cirafw(tb testing.TB, p *pki) *firmware.Firmware {
	tb.Helper()
	fw, err := firmware.Open(firmware.Config{DNSSuffix: "corp.example.com"})
	if err != nil {
		tb.Fatal(err)
	}
	sum := md5.Sum([]byte("admin:" + fw.Realm() + ":" + adminPassword))
	if rv := fw.Setup(2, hex.EncodeToString(sum[:])); rv != 0 {
		tb.Fatalf("Setup %d", rv)
	}
	if _, rv := fw.AddCertificate(p.root.Raw, true); rv != 0 {
		tb.Fatalf("AddCertificate %d", rv)
	}
	err = fw.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *firmware.State) error {
		s.CIRA.MPServers = []firmware.MPServer{{Name: "Intel(r) AMT:Management Presence Server 0", AccessInfo: mpsName, InfoFormat: 201, Port: 4433,
			AuthMethod: 2, Username: mpsUser, Password: mpsPassword}}
		s.CIRA.Policies = []firmware.PolicyRule{{Name: "Periodic", Trigger: 2, ExtendedData: "AAAAAAAAABk="}}
		s.CIRA.AppliesTo = []firmware.AppliesTo{{Policy: "Periodic", MPServer: "Intel(r) AMT:Management Presence Server 0", MpsType: 2}}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return fw
}

// BenchmarkIdleConnectedFleet measures what an idle, connected CIRA device
// costs: heap and goroutines per device once every device of the fleet has
// authenticated and forwarded its ports to amtd's presence server in the
// same process (so the figures include the server's side of each
// connection), with MPS's 30 s keepalive.
//
//	go test -run XXX -bench IdleConnectedFleet -benchtime 1x ./sim/cira/ -cira.devices 2000
func BenchmarkIdleConnectedFleet(b *testing.B) {
	n := *benchDevices
	p := newPKI(b, mpsName)
	for range b.N {
		var wg sync.WaitGroup
		wg.Add(n)
		srv, err := ciraserver.NewServer(ciraserver.Config{
			Certificate: &p.server,
			Authenticator: ciraserver.AuthenticatorFunc(func(ctx context.Context, uuid string) (ciraserver.DeviceAuth, error) {
				return ciraserver.DeviceAuth{Username: mpsUser, Password: mpsPassword}, nil
			}),
			Logger:        slog.New(slog.DiscardHandler),
			ForwardSettle: 100 * time.Millisecond,
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
		addr := ln.Addr().String()
		fws := make([]*firmware.Firmware, n)
		for i := range fws {
			fws[i] = cirafw(b, p)
		}
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()
		start := time.Now()
		devs := make([]*device.Device, n)
		for i, fw := range fws {
			var once sync.Once
			d, err := device.New(device.Config{Firmware: fw, NoListen: true, CIRA: &cira.Options{
				Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				},
				Observer: func(e cira.Event) {
					if e.Kind == cira.EventKeepaliveOptions {
						once.Do(wg.Done)
					}
				},
			}})
			if err != nil {
				b.Fatal(err)
			}
			if err := d.Start(ctx); err != nil {
				b.Fatal(err)
			}
			devs[i] = d
		}
		wg.Wait()
		connect := time.Since(start)
		for range 3 { // each cycle halves the stacks that use less than a quarter
			runtime.GC()
		}
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(n), "heap-bytes/device")
		b.ReportMetric(float64(m1.StackInuse-m0.StackInuse)/float64(n), "stack-bytes/device")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(n), "goroutines/device")
		b.ReportMetric(float64(connect.Milliseconds()), "ms-to-connect-all")
		if srv.Count() != n {
			b.Fatalf("%d devices connected, want %d", srv.Count(), n)
		}
		for _, d := range devs {
			d.Close()
		}
		cancel()
		<-served
	}
}
