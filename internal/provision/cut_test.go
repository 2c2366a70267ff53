package provision_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/sim/agent"
)

// cutProxy stands between the agent and the device's LMS address: one
// connection per relayed WS-MAN request. At request cutAt it resets the
// agent's connection — after the device answered (acted) or without
// forwarding the request (lost) — and the agent, like rpc-go on an LMS
// error, gives up: the session ends mid-flow over real sockets.
type cutProxy struct {
	l      net.Listener
	target string
	cutAt  int
	acted  bool
	n      atomic.Int64
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, target string, cutAt int, acted bool) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target, cutAt: cutAt, acted: acted}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c.(*net.TCPConn))
		}()
	}
}

func (p *cutProxy) handle(c *net.TCPConn) {
	defer c.Close()
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return // a probe connection
	}
	body, _ := io.ReadAll(req.Body)
	n := int(p.n.Add(1))
	cut := n == p.cutAt
	if cut && !p.acted {
		c.SetLinger(0)
		return
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	req.Body = io.NopCloser(bytesReader(body))
	req.ContentLength = int64(len(body))
	if err := req.Write(up); err != nil {
		return
	}
	resp, err := io.ReadAll(up)
	if err != nil && len(resp) == 0 {
		return
	}
	if cut {
		c.SetLinger(0) // the device acted; the answer never arrives
		return
	}
	_, _ = c.Write(resp)
}

// TestConnectionCut: the rpc client's connection is cut at WS-MAN calls of
// a CCM+CIRA activation over real sockets; the device stays reachable
// with what amtd holds and activation run again completes.
func TestConnectionCut(t *testing.T) {
	w := newWorld(t)
	w.addCIRA("cira1", "")
	w.addProfile("ccm", provision.ActivationCCM, true, func(p *store.Profile) { p.CIRAConfigName = ptr("cira1") })
	srv := w.startServer()
	// Requests of a clean activation: 401 challenges included.
	var calls []int
	step := 5
	if raceDetector {
		step = 12
	}
	probe := w.newDevice(devOpts{})
	px := startCutProxy(t, probe.dev.Addr(), -1, false)
	mustSucceed(t, w, srv, probe, agent.Config{Command: "activate", Profile: "ccm", LMSAddr: px.l.Addr().String()})
	total := int(px.n.Load())
	for n := 1; n <= total; n += step {
		calls = append(calls, n)
	}
	calls = append(calls, 3, total) // Setup (after the 401 and the realm), the last call
	slices.Sort(calls)
	calls = slices.Compact(calls)
	for _, n := range calls {
		for _, acted := range []bool{false, true} {
			t.Run(fmt.Sprintf("call%02d/acted=%v", n, acted), func(t *testing.T) {
				d := w.newDevice(devOpts{})
				px := startCutProxy(t, d.dev.Addr(), n, acted)
				if _, err := srv.run(t, d, agent.Config{Command: "activate", Profile: "ccm", LMSAddr: px.l.Addr().String()}); err == nil {
					t.Fatal("the cut run succeeded")
				}
				st := d.state()
				creds := w.creds(d.guid())
				if st.ControlMode == 0 {
					if st.Admin.HA1 != "" {
						t.Fatal("pre-provisioning device with an admin account")
					}
				} else if !slices.ContainsFunc(creds.Candidates(devcreds.AMT), d.authenticates) {
					t.Fatal("device unreachable with the credentials amtd holds")
				}
				for _, m := range st.CIRA.MPServers {
					if !slices.Contains(creds.Candidates(devcreds.MPS), m.Password) {
						t.Fatal("the device's MPS password is not one amtd holds")
					}
				}
				res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "ccm", Password: "Unkn0wn-P@ss"})
				if res.Status.CIRAConnection != "Configured" {
					t.Fatalf("status %+v", res.Status)
				}
				adminPassword(t, w, d)
			})
		}
	}
}
