package device_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
)

// startFleet starts n in-memory devices on 127.1.x.y behind one shared
// listener.
func startFleet(tb testing.TB, n int) (*device.Host, []*device.Device) {
	tb.Helper()
	host := device.NewHost(nil)
	tb.Cleanup(func() { host.Close() })
	bound, err := host.ListenLoopback(context.Background(), "0")
	if err != nil {
		tb.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(bound)
	devs := make([]*device.Device, 0, n)
	for i := range n {
		fw, err := firmware.Open(firmware.Config{DNSSuffix: testSuffix})
		if err != nil {
			tb.Fatal(err)
		}
		d, err := device.New(device.Config{Firmware: fw, Host: host, Addrs: []string{fmt.Sprintf("127.1.%d.%d:%s", i/250, i%250+1, port)}})
		if err != nil {
			tb.Fatal(err)
		}
		if err := d.Start(context.Background()); err != nil {
			tb.Fatal(err)
		}
		devs = append(devs, d)
	}
	tb.Cleanup(func() {
		for _, d := range devs {
			d.Close()
		}
	})
	return host, devs
}

// TestIdleDevicesHaveNoGoroutines: an idle device costs no goroutine (one
// accept loop serves the whole fleet) and no timer.
func TestIdleDevicesHaveNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	_, devs := startFleet(t, 200)
	if extra := runtime.NumGoroutine() - before; extra > 3 {
		t.Fatalf("%d goroutines for 200 idle devices", extra)
	}
	// and they all answer
	for _, d := range []*device.Device{devs[0], devs[117], devs[199]} {
		if gs, err := lsaClient(d).AMT.GeneralSettings.Get(); err != nil || gs.Body.GetResponse.DigestRealm != d.Firmware().Realm() {
			t.Fatalf("%s: %v", d.Addr(), err)
		}
	}
}

// BenchmarkIdleFleet reports the memory an idle device costs.
//
//	go test -run XXX -bench IdleFleet -benchtime 1x ./sim/device/
func BenchmarkIdleFleet(b *testing.B) {
	const n = 2000
	for range b.N {
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		g0 := runtime.NumGoroutine()
		_, devs := startFleet(b, n)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/n, "heap-bytes/device")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/device")
		runtime.KeepAlive(devs)
	}
}
