package fleet

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/sim/agent"
)

// AgentOptions describe one rpc-go run per device.
type AgentOptions struct {
	// Config is the template of every run (URL, Command, Profile, Password,
	// Task…). MEIPath, LMSAddr, LMSTLSAddr and Hostname are set per device
	// (Hostname only when the template leaves it empty).
	Config agent.Config
	// Concurrency is how many devices run at once (default 1).
	Concurrency int
	// Timeout limits one device's run (0: no limit but ctx's).
	Timeout time.Duration
	// Done, when set, is called after each device (from several goroutines).
	Done func(AgentResult)
}

// AgentResult is one device's run.
type AgentResult struct {
	Device   *Device
	Duration time.Duration
	Result   agent.Result
	// Err is nil when the server answered success.
	Err error
}

// OK reports a successful run.
func (r AgentResult) OK() bool { return r.Err == nil }

// Message is the failure message: the server's error message, or the
// local error.
func (r AgentResult) Message() string {
	if r.Err == nil {
		return ""
	}
	var re *agent.RPSError
	if errors.As(r.Err, &re) && re.Message != "" {
		return "server error: " + re.Message
	}
	return r.Err.Error()
}

// AgentReport sums up a RunAgents call.
type AgentReport struct {
	// Results in device order.
	Results    []AgentResult
	OK, Failed int
	// P50, P99 and Max of the per-device durations.
	P50, P99, Max time.Duration
	// Elapsed is the wall time of the whole run.
	Elapsed time.Duration
}

// errNotRun marks devices not started because ctx ended.
var errNotRun = errors.New("not run: cancelled")

// RunAgents runs o.Config on every device, at most o.Concurrency at once,
// and waits for all of them. Cancelling ctx stops the runs.
func (f *Fleet) RunAgents(ctx context.Context, o AgentOptions) AgentReport {
	conc := max(1, o.Concurrency)
	devs := f.devices
	rep := AgentReport{Results: make([]AgentResult, len(devs))}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(conc, len(devs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(devs) {
					return
				}
				r := runOne(ctx, devs[i], o.Config, o.Timeout)
				rep.Results[i] = r
				if o.Done != nil {
					o.Done(r)
				}
			}
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	durs := make([]time.Duration, 0, len(devs))
	for _, r := range rep.Results {
		if r.OK() {
			rep.OK++
		} else {
			rep.Failed++
		}
		if !errors.Is(r.Err, errNotRun) {
			durs = append(durs, r.Duration)
		}
	}
	rep.P50, rep.P99, rep.Max = percentile(durs, 50), percentile(durs, 99), percentile(durs, 100)
	return rep
}

func runOne(ctx context.Context, d *Device, tmpl agent.Config, timeout time.Duration) AgentResult {
	if ctx.Err() != nil {
		return AgentResult{Device: d, Err: errNotRun}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cfg := tmpl
	cfg.MEIPath = d.MEIPath
	cfg.LMSAddr = d.LMSAddr
	cfg.LMSTLSAddr = d.TLSAddr()
	if cfg.Hostname == "" {
		cfg.Hostname = d.Hostname
	}
	t0 := time.Now()
	res, err := agent.Run(ctx, cfg)
	r := AgentResult{Device: d, Duration: time.Since(t0), Result: res, Err: err}
	if err == nil && res.Method != "success" {
		r.Err = errors.New("run ended without success: " + res.Method + " " + res.Message)
	}
	return r
}

// percentile by the nearest-rank method (p in 1..100); 0 without samples.
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100 // ceil(p/100 * n)
	return s[max(rank, 1)-1]
}
