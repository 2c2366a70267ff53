package provision_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/wsman"
)

// TestConcurrentSessions: many devices are activated at the same time over
// real sockets, while one device hangs on a call; every other device
// completes while the hung one is still waiting.
func TestConcurrentSessions(t *testing.T) {
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, true)
	srv := w.startServer()
	n := 16
	if raceDetector {
		n = 8
	}
	devs := make([]*simDevice, n)
	for i := range devs {
		devs[i] = w.newDevice(devOpts{})
		devs[i].startMEI()
	}
	slow := w.newDevice(devOpts{})
	slow.startMEI()
	// The slow device never answers its first redirection Get.
	slow.dev.AddFault(wsman.FaultRule{Class: "AMT_RedirectionService", Op: "Get", Kind: wsman.FaultHang})

	slowCtx, cancelSlow := context.WithCancel(context.Background())
	defer cancelSlow()
	slowDone := make(chan error, 1)
	go func() {
		cfg := agent.Config{Command: "activate", Profile: "ccm", URL: srv.url + "/activate", MEIPath: slow.mei,
			LMSAddr: slow.dev.Addr(), Hostname: testHost, Logger: quiet()}
		_, err := agent.Run(slowCtx, cfg)
		slowDone <- err
	}()

	var wg sync.WaitGroup
	var failed atomic.Int64
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := srv.run(t, d, agent.Config{Command: "activate", Profile: "ccm"})
			if err != nil || res.Method != "success" {
				failed.Add(1)
				t.Errorf("%s: %v %s", d.guid(), err, res.Message)
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-slowDone:
		t.Fatalf("the hung device's session ended before the others: %v", err)
	default:
	}
	if failed.Load() != 0 {
		t.Fatal("sessions failed")
	}
	for _, d := range devs {
		adminPassword(t, w, d)
	}
	// The hung session ends when its client goes away; its device is still
	// reachable with what amtd holds.
	cancelSlow()
	<-slowDone
	slow.dev.ClearFaults()
	if slow.fw.ControlMode() == 1 {
		ok := false
		for _, pw := range w.creds(slow.guid()).Candidates("AMT_PASSWORD") {
			ok = ok || slow.authenticates(pw)
		}
		if !ok {
			t.Fatal("hung device unreachable with stored credentials")
		}
	}
}

// TestSameDeviceSerialised: two sessions for one device at the same time do
// not interleave: one runs all its calls before the other starts.
func TestSameDeviceSerialised(t *testing.T) {
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, false)
	d := w.newDevice(devOpts{})
	// Activate first, so that both sessions are re-activations that succeed.
	if out := w.runDirect(w.ctx(), d, request(d, activateCmd("ccm"), ""), nil); !out.Success {
		t.Fatal(out.Message)
	}
	for round := range 3 {
		var mu sync.Mutex
		var order []int // session index per device call
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				conn := &directConn{hook: func(int, *http.Request) error {
					mu.Lock()
					order = append(order, i)
					mu.Unlock()
					return nil
				}}
				req := request(d, activateCmd("ccm"), staticPW)
				<-start
				if out := w.runDirect(w.ctx(), d, req, conn); !out.Success {
					t.Errorf("round %d session %d: %s", round, i, out.Message)
				}
			}()
		}
		close(start)
		wg.Wait()
		switches := 0
		for j := 1; j < len(order); j++ {
			if order[j] != order[j-1] {
				switches++
			}
		}
		if switches != 1 {
			t.Fatalf("round %d: sessions interleaved on the device (%d switches in %v)", round, switches, order)
		}
	}
	adminPassword(t, w, d)
}
