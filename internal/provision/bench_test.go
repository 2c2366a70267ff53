package provision_test

import (
	"sync/atomic"
	"testing"

	"github.com/amtd-project/amtd/internal/provision"
)

// BenchmarkCCMActivation measures CCM activations with the default profile
// (unconfiguration, network, features), run in parallel against separate
// simulated devices over loopback HTTP, with the real SQLite store and
// sealed secret store, 32 sessions at a time on 2 CPUs. Device creation is
// outside the timer.
//
//	go test ./internal/provision -run XXX -bench CCMActivation -benchtime 200x
func BenchmarkCCMActivation(b *testing.B) {
	w := newWorld(b)
	w.addProfile("ccm", provision.ActivationCCM, true)
	devs := make([]*simDevice, b.N)
	for i := range devs {
		devs[i] = w.newDevice(devOpts{})
	}
	var next atomic.Int64
	b.SetParallelism(16) // many sessions at once
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d := devs[next.Add(1)-1]
			if out := w.runDirect(w.ctx(), d, request(d, activateCmd("ccm"), ""), nil); !out.Success {
				b.Error(out.Message)
			}
		}
	})
}
