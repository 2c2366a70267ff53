package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"time"
)

// CIRAOptions configure the CIRA scenario.
type CIRAOptions struct {
	Devices    int           // CIRA devices (default 19,500)
	Sims       int           // amtd sim processes sharing them (default 3)
	Idle       time.Duration // idle window (default 5 minutes)
	Settle     time.Duration // wait after the connect burst (default 1 minute)
	LANDevices int           // devices reached on the LAN (default 50)
	Requests   int           // API requests per latency measurement (default 1000)
	Reconnects int           // single reconnections timed (default 200)
}

// fleetRun is one seeded fleet and its running simulator.
type fleetRun struct {
	name    string
	devices []seededDevice
	log     string // --cira-log
	p       *proc
}

// burst sums up the first connections of a set of devices.
type burst struct {
	Connected          int
	FirstDial, Last    time.Time
	Handshakes         []time.Duration
	Failed             int
	T10, T90           time.Time // when 10 % and 90 % of the devices were connected
	FailedSamples      []string
	Disconnects, Stops int
}

func (b burst) span() time.Duration { return b.Last.Sub(b.FirstDial) }

func (b burst) rate() float64 {
	if b.span() <= 0 {
		return 0
	}
	return float64(b.Connected) / b.span().Seconds()
}

// rate1090 is the connection rate between 10 % and 90 % of the devices.
func (b burst) rate1090() float64 {
	d := b.T90.Sub(b.T10)
	if d <= 0 {
		return 0
	}
	return 0.8 * float64(b.Connected) / d.Seconds()
}

// analyze reads the fleets' CIRA logs: each device's first connection at or
// after since, failures and disconnections after since.
func analyze(fleets []*fleetRun, since time.Time) (burst, error) {
	var b burst
	var firsts []time.Time
	for _, f := range fleets {
		evs, err := readCIRALog(f.log)
		if err != nil {
			return b, err
		}
		seen := map[string]bool{}
		for _, ev := range evs {
			if ev.At.Before(since) {
				continue
			}
			if !ev.Dialed.IsZero() && (b.FirstDial.IsZero() || ev.Dialed.Before(b.FirstDial)) {
				b.FirstDial = ev.Dialed
			}
			switch ev.Kind {
			case "connected":
				if seen[ev.UUID] {
					continue
				}
				seen[ev.UUID] = true
				b.Connected++
				b.Handshakes = append(b.Handshakes, ev.handshake())
				firsts = append(firsts, ev.At)
				if ev.At.After(b.Last) {
					b.Last = ev.At
				}
			case "failed":
				b.Failed++
				if len(b.FailedSamples) < 5 {
					b.FailedSamples = append(b.FailedSamples, ev.Err)
				}
			case "disconnected":
				b.Disconnects++
			case "stopped":
				b.Stops++
			}
		}
	}
	slices.SortFunc(firsts, func(a, b time.Time) int { return a.Compare(b) })
	if n := len(firsts); n > 0 {
		b.T10, b.T90 = firsts[n/10], firsts[min(n-1, n*9/10)]
	}
	return b, nil
}

// waitConnected waits until want devices have connected at or after since
// (limit: timeout), failing early when a simulator exits.
func (e *env) waitConnected(ctx context.Context, fleets []*fleetRun, since time.Time, want int, timeout time.Duration) (burst, error) {
	deadline := time.Now().Add(timeout)
	last := -1
	for {
		b, err := analyze(fleets, since)
		if err != nil {
			return b, err
		}
		if b.Connected >= want {
			return b, nil
		}
		for _, f := range fleets {
			if f.p.exited() {
				return b, fmt.Errorf("%s exited: %s", f.name, f.p.tail())
			}
		}
		if time.Now().After(deadline) {
			return b, fmt.Errorf("%d of %d devices connected after %s (%d failed attempts, e.g. %v)", b.Connected, want, timeout, b.Failed, b.FailedSamples)
		}
		if b.Connected/1000 != last/1000 {
			e.logf("  %d of %d connected, %d failed attempts", b.Connected, want, b.Failed)
			last = b.Connected
		}
		if err := sleepCtx(ctx, time.Second); err != nil {
			return b, err
		}
	}
}

// splitDevices divides n devices among k processes.
func splitDevices(n, k int) []int {
	out := make([]int, k)
	for i := range out {
		out[i] = n / k
		if i < n%k {
			out[i]++
		}
	}
	return out
}

// CIRA runs the single-instance CIRA scenario.
func CIRA(ctx context.Context, o Options, c CIRAOptions) error {
	if c.Devices <= 0 {
		c.Devices = 19500
	}
	if c.Sims <= 0 {
		c.Sims = 3
	}
	if c.Idle <= 0 {
		c.Idle = 5 * time.Minute
	}
	if c.Requests <= 0 {
		c.Requests = 1000
	}
	e, err := newEnv(o, "cira")
	if err != nil {
		return err
	}
	defer e.cleanup()
	e.logf("CIRA: %d devices in %d simulators, %d LAN devices; load average %s", c.Devices, c.Sims, c.LANDevices, loadAverage())

	db, err := e.prepareCIRADB(ctx, "cira")
	if err != nil {
		return err
	}
	defer db.close()
	pg, dsn, keyHex, sd := db.pg, db.dsn, db.keyHex, db.seeder
	t0 := time.Now()
	so := serveOpts{Name: "serve", Data: e.dataDir("serve"), DB: dsn, MasterKey: keyHex}
	var fleets []*fleetRun
	for k, n := range splitDevices(c.Devices, c.Sims) {
		name := fmt.Sprintf("cira%02d", k)
		devs, err := sd.seed(ctx, seedSpec{Name: name, Dir: e.simDir(name), Devices: n, AddrBase: addrBase(k), CIRA: true})
		if err != nil {
			return err
		}
		fleets = append(fleets, &fleetRun{name: name, devices: devs, log: filepath.Join(e.run, name+".cira.csv")})
		e.logf("seeded %s: %d devices", name, n)
	}
	var lan []seededDevice
	if c.LANDevices > 0 {
		if lan, err = sd.seed(ctx, seedSpec{Name: "lan", Dir: e.simDir("lan"), Devices: c.LANDevices, AddrBase: addrBase(c.Sims)}); err != nil {
			return err
		}
	}
	db.doneSeeding()
	e.outf("\nseeding: %d CIRA devices and %d LAN devices in %s", c.Devices, c.LANDevices, time.Since(t0).Round(time.Second))

	// The measured server.
	in, err := e.startServe(ctx, so)
	if err != nil {
		return err
	}
	defer in.stop()
	var lanProc *proc
	if len(lan) > 0 {
		if lanProc, err = e.startSim(simOpts{Name: "lan", Devices: len(lan), AddrBase: addrBase(c.Sims), HTTPPort: 16992}); err != nil {
			return err
		}
		defer lanProc.stop(time.Minute)
	}
	if err := sleepCtx(ctx, min(3*time.Second, c.Settle)); err != nil { // let start-up garbage be collected
		return err
	}
	base, err := in.sample()
	if err != nil {
		return err
	}
	baseGC, _ := lastOf(gcRecords(in.p.stderr()))
	_ = resetHWM(in.p.pid())

	// Connect burst: every simulator starts at once; each device dials as
	// soon as it is loaded.
	e.logf("starting %d simulators (load average %s)", len(fleets), loadAverage())
	start := time.Now()
	for k, f := range fleets {
		f.p, err = e.startSim(simOpts{Name: f.name, Devices: len(f.devices), AddrBase: addrBase(k),
			Args: []string{"--cira-server", in.ciraAddr, "--cira-log", f.log}})
		if err != nil {
			return err
		}
	}
	defer func() {
		for _, f := range fleets {
			if f.p != nil {
				f.p.stop(2 * time.Minute)
			}
		}
	}()
	b, err := e.waitConnected(ctx, fleets, start, c.Devices, 20*time.Minute)
	if err != nil {
		return err
	}
	afterBurst, _ := in.sample()
	e.logf("all %d connected in %s", b.Connected, b.span().Round(time.Millisecond))
	if err := sleepCtx(ctx, c.Settle); err != nil {
		return err
	}
	st, err := in.api.deviceStats(ctx)
	if err != nil {
		return err
	}

	// Idle window.
	e.logf("idle window of %s (load average %s)", c.Idle, loadAverage())
	in.markGC()
	idleStart := time.Now()
	s0, _ := in.sample()
	if err := pg.resetStatements(ctx); err != nil {
		return err
	}
	pg0, err := pg.stats(ctx, "cira")
	if err != nil {
		return err
	}
	sim0 := simCPU(fleets)
	load0 := loadAverage()
	if err := sleepCtx(ctx, c.Idle); err != nil {
		return err
	}
	s1, _ := in.sample()
	pg1, err := pg.stats(ctx, "cira")
	if err != nil {
		return err
	}
	stmts, err := pg.statements(ctx, "cira")
	if err != nil {
		return err
	}
	sim1 := simCPU(fleets)
	load1 := loadAverage()
	idleGC, gcErr := in.waitGC(ctx, gcWait(c.Idle))
	idle, err := analyze(fleets, idleStart)
	if err != nil {
		return err
	}
	window := s1.At.Sub(s0.At)
	dpg := pg1.sub(pg0)

	// Single reconnections against the loaded server.
	var single burst
	if c.Reconnects > 0 {
		if single, err = e.reconnects(ctx, in, fleets, c.Reconnects); err != nil {
			return err
		}
	}

	// WS-MAN over CIRA and over the LAN.
	lat, err := e.wsmanLatency(ctx, in, fleets, lan, c.Requests)
	if err != nil {
		return err
	}
	final, _ := in.sample()

	// Results.
	n := float64(c.Devices)
	e.outf("\nCIRA: one amtd serve (PostgreSQL %s), %d devices in %d amtd sim processes (each device from its own 127.x address)", pg.version(ctx), c.Devices, c.Sims)
	e.outf("\nconnect burst (every simulator started at once):")
	e.outf("| devices connected | first dial → last connected | connections/s (overall) | connections/s (10 %%→90 %%) | handshake p50 | p99 | max | failed attempts | server CPU during the burst | per connection |")
	e.outf("|---|---|---|---|---|---|---|---|---|---|")
	e.outf("| %d | %.2f s | %.0f | %.0f | %s | %s | %s | %d | %.1f s | %.2f ms |", b.Connected, b.span().Seconds(), b.rate(), b.rate1090(),
		ms(percentile(b.Handshakes, 50)), ms(percentile(b.Handshakes, 99)), ms(percentile(b.Handshakes, 100)), b.Failed,
		(afterBurst.CPU - base.CPU).Seconds(), float64((afterBurst.CPU-base.CPU).Microseconds())/1000/n)
	if len(b.FailedSamples) > 0 {
		e.outf("failed attempts, e.g.: %v", b.FailedSamples)
	}
	e.outf("\nidle connections (API: %d devices, %d connected):", st.Total, st.Connected)
	heapLine := "—"
	if gcErr == nil {
		heapLine = fmt.Sprintf("%d → %d MB live heap, %d → %d MB stacks: heap %.0f B, stacks %.0f B per connection",
			baseGC.LiveMB, idleGC.LiveMB, baseGC.StacksMB, idleGC.StacksMB,
			float64(idleGC.LiveMB-baseGC.LiveMB)*(1<<20)/n, float64(idleGC.StacksMB-baseGC.StacksMB)*(1<<20)/n)
	}
	e.outf("| server RSS before → idle | RSS per connection | peak RSS (VmHWM) | Go heap and stacks (GC trace) | descriptors | threads |")
	e.outf("|---|---|---|---|---|---|")
	e.outf("| %s → %s | %.1f KiB | %s | %s | %d | %d |", mib(base.RSS), mib(s1.RSS), float64(s1.RSS-base.RSS)/1024/n, mib(s1.HWM), heapLine, s1.FDs, s1.Threads)
	e.outf("\nidle window %s (load average %s at the start, %s at the end), keepalive every 30 s (%.0f/s):", window.Round(time.Second), load0, load1, n/30)
	e.outf("| server CPU | of one core | PostgreSQL CPU | transactions committed | rows inserted/updated/deleted | WAL written | simulators' CPU | disconnections, failed attempts |")
	e.outf("|---|---|---|---|---|---|---|---|")
	e.outf("| %.2f s | %.2f %% | %.2f s | %d | %d / %d / %d | %d B | %.1f s | %d, %d |", (s1.CPU - s0.CPU).Seconds(), 100*(s1.CPU-s0.CPU).Seconds()/window.Seconds(),
		dpg.CPU.Seconds(), dpg.Commits, dpg.Inserted, dpg.Updated, dpg.Deleted, dpg.WALBytes, (sim1 - sim0).Seconds(), idle.Disconnects, idle.Failed)
	e.outf("statements amtd ran in the idle window (pg_stat_statements): %s", summarizeStatements(stmts))
	if c.Reconnects > 0 {
		e.outf("\nsingle reconnections (%d devices disconnected by the API one at a time, %d connections held): handshake p50 %s, p99 %s, max %s; %d failed attempts",
			single.Connected, c.Devices-1, ms(percentile(single.Handshakes, 50)), ms(percentile(single.Handshakes, 99)), ms(percentile(single.Handshakes, 100)), single.Failed)
	}
	lat.print(e)
	e.outf("\nserver at the end: RSS %s, VmHWM %s, CPU %.1f s in all", mib(final.RSS), mib(final.HWM), final.CPU.Seconds())
	return nil
}

// gcWait bounds the wait for a GC cycle after an idle window: an idle Go
// process collects at least every 2 minutes, so a window of 5 minutes
// holds one; after windows under a minute (tests) the harness does not
// wait, and reports no heap figure if no cycle ran.
func gcWait(idle time.Duration) time.Duration {
	if idle < time.Minute {
		return 0
	}
	return 3 * time.Minute
}

func lastOf(r []gcRecord) (gcRecord, bool) {
	if len(r) == 0 {
		return gcRecord{}, false
	}
	return r[len(r)-1], true
}

// simCPU is the CPU time of the running simulators.
func simCPU(fleets []*fleetRun) time.Duration {
	var t time.Duration
	for _, f := range fleets {
		if f.p != nil {
			if s, err := readSample(f.p.pid()); err == nil {
				t += s.CPU
			}
		}
	}
	return t
}

// reconnects disconnects n random devices one at a time through the API
// (DELETE /api/v1/devices/disconnect/:guid), 250 ms apart, and times their
// reconnections (the simulator waits 0.5–1 s before calling back).
func (e *env) reconnects(ctx context.Context, in *instance, fleets []*fleetRun, n int) (burst, error) {
	e.logf("timing %d single reconnections", n)
	var all []seededDevice
	for _, f := range fleets {
		all = append(all, f.devices...)
	}
	since := time.Now()
	for _, i := range rand.Perm(len(all))[:min(n, len(all))] {
		if _, err := in.api.must(ctx, http.MethodDelete, "/api/v1/devices/disconnect/"+all[i].UUID, nil); err != nil {
			return burst{}, err
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return burst{}, err
		}
	}
	return e.waitConnected(ctx, fleets, since, min(n, len(all)), 2*time.Minute)
}

// latency is a set of API round trips.
type latency struct {
	name    string
	samples []time.Duration
	errors  int
}

type latencies []*latency

func (l latencies) print(e *env) {
	e.outf("\nAPI round trips (one request at a time, keep-alive HTTP to the instance):")
	e.outf("| request | path | requests | p50 | p99 | max | errors |")
	e.outf("|---|---|---|---|---|---|---|")
	for _, x := range l {
		e.outf("| %s | %d | %s | %s | %s | %d |", x.name, len(x.samples), ms(percentile(x.samples, 50)), ms(percentile(x.samples, 99)), ms(percentile(x.samples, 100)), x.errors)
	}
}

// wsmanLatency times GET generalSettings (one WS-MAN Get) and GET
// hardwareInfo (a dozen WS-MAN exchanges) on devices over CIRA and on the
// LAN, interleaved, after one warm-up request per device (the API's
// client cache then holds the digest challenge, as in steady use).
func (e *env) wsmanLatency(ctx context.Context, in *instance, fleets []*fleetRun, lan []seededDevice, requests int) (latencies, error) {
	const sampleDevices = 50
	var cira []seededDevice
	for _, f := range fleets {
		cira = append(cira, f.devices...)
	}
	rand.Shuffle(len(cira), func(i, j int) { cira[i], cira[j] = cira[j], cira[i] })
	cira = cira[:min(sampleDevices, len(cira))]
	lan = lan[:min(sampleDevices, len(lan))]
	e.logf("WS-MAN latency: %d requests over CIRA (%d devices) and the LAN (%d devices)", requests, len(cira), len(lan))
	type target struct {
		l    *latency
		devs []seededDevice
		path string
	}
	var out latencies
	var targets []target
	for _, t := range []struct {
		name, path string
		devs       []seededDevice
	}{
		{"GET generalSettings | CIRA", "/api/v1/amt/generalSettings/", cira},
		{"GET generalSettings | LAN", "/api/v1/amt/generalSettings/", lan},
		{"GET hardwareInfo | CIRA", "/api/v1/amt/hardwareInfo/", cira},
		{"GET hardwareInfo | LAN", "/api/v1/amt/hardwareInfo/", lan},
	} {
		if len(t.devs) == 0 {
			continue
		}
		l := &latency{name: t.name}
		out = append(out, l)
		targets = append(targets, target{l, t.devs, t.path})
	}
	for _, t := range targets { // warm-up
		for _, d := range t.devs {
			if _, err := in.api.must(ctx, http.MethodGet, t.path+d.UUID, nil); err != nil {
				return nil, fmt.Errorf("warm-up %s: %w", t.l.name, err)
			}
		}
	}
	for i := range requests {
		for _, t := range targets {
			d := t.devs[i%len(t.devs)]
			code, body, took, err := in.api.call(ctx, http.MethodGet, t.path+d.UUID, nil)
			if err != nil || code != http.StatusOK {
				t.l.errors++
				if t.l.errors <= 3 {
					e.logf("%s %s: %d %v %.200s", t.l.name, d.UUID, code, err, body)
				}
				continue
			}
			t.l.samples = append(t.l.samples, took)
		}
	}
	return out, nil
}
