package mei

import (
	"context"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// BenchmarkIdleListeners measures what an idle device socket costs in the Go
// process (heap + goroutine stacks, after one PTHI command on each socket),
// for the epoll Fleet and for one Server.Serve goroutine per socket:
//
//	go test -run XXX -bench IdleListeners -benchtime 1x ./sim/mei/
//
// Kernel socket memory is not included.
func BenchmarkIdleListeners(b *testing.B) {
	const n = 2000
	for _, mode := range []string{"fleet-epoll", "goroutine-per-socket"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				dir := b.TempDir()
				ctx, cancel := context.WithCancel(context.Background())
				fws := make([]*fakeFirmware, n) // firmware is not the socket's cost
				for i := range fws {
					fws[i] = newFakeFirmware()
				}
				before := memInUse()
				goBefore := runtime.NumGoroutine()
				var stopAll func()
				paths := make([]string, n)
				switch mode {
				case "fleet-epoll":
					f, err := NewFleet(quietLogger())
					if err != nil {
						b.Fatal(err)
					}
					for i := range n {
						paths[i] = FleetSocketPath(dir, strconv.Itoa(i))
						if err := f.Add(paths[i], NewServer(fws[i], Options{Logger: quietLogger()})); err != nil {
							b.Fatal(err)
						}
					}
					done := make(chan error, 1)
					go func() { done <- f.Serve(ctx) }()
					stopAll = func() { cancel(); <-done }
				default:
					done := make(chan error, n)
					for i := range n {
						paths[i] = filepath.Join(dir, strconv.Itoa(i)+".sock")
						l, err := listenUnix(paths[i])
						if err != nil {
							b.Fatal(err)
						}
						s := NewServer(fws[i], Options{Logger: quietLogger()})
						go func() { done <- s.Serve(ctx, l) }()
					}
					stopAll = func() {
						cancel()
						for range n {
							<-done
						}
					}
				}
				for _, p := range paths { // every socket has served once
					if _, err := (Host{Path: p}).GetControlMode(ctx); err != nil {
						b.Fatal(err)
					}
				}
				after := memInUse()
				b.ReportMetric(float64(after-before)/n, "B/socket")
				b.ReportMetric(float64(runtime.NumGoroutine()-goBefore)/n, "goroutines/socket")
				stopAll()
			}
		})
	}
}

func memInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}
