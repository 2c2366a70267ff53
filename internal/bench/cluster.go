package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClusterOptions configure the cluster scenario.
type ClusterOptions struct {
	Instances       int           // amtd serve instances (default 5)
	PerInstance     int           // devices connected to each (default 19,800)
	SimsPerInstance int           // amtd sim processes per instance (default 3)
	Idle            time.Duration // idle window (default 2 minutes)
	Settle          time.Duration // wait after the last connection (default 30 s)
	Requests        int           // forwarded and direct requests each (default 1000)
}

// member is one instance of the cluster and its devices.
type member struct {
	in     *instance
	fleets []*fleetRun
	burst  burst
	base   sample
	baseGC gcRecord
}

// Cluster runs the multi-instance scenario.
func Cluster(ctx context.Context, o Options, c ClusterOptions) error {
	if c.Instances <= 0 {
		c.Instances = 5
	}
	if c.PerInstance <= 0 {
		c.PerInstance = 19800
	}
	if c.SimsPerInstance <= 0 {
		c.SimsPerInstance = 3
	}
	if c.Idle <= 0 {
		c.Idle = 2 * time.Minute
	}
	if c.Requests <= 0 {
		c.Requests = 1000
	}
	e, err := newEnv(o, "cluster")
	if err != nil {
		return err
	}
	defer e.cleanup()
	total := c.Instances * c.PerInstance
	e.logf("cluster: %d instances × %d devices = %d, %d simulators per instance; load average %s", c.Instances, c.PerInstance, total, c.SimsPerInstance, loadAverage())

	db, err := e.prepareCIRADB(ctx, "cluster")
	if err != nil {
		return err
	}
	defer db.close()
	pg, dsn, keyHex, sd := db.pg, db.dsn, db.keyHex, db.seeder
	t0 := time.Now()
	members := make([]*member, c.Instances)
	for i := range members {
		m := &member{}
		members[i] = m
		for k, n := range splitDevices(c.PerInstance, c.SimsPerInstance) {
			name := fmt.Sprintf("i%dc%d", i, k)
			devs, err := sd.seed(ctx, seedSpec{Name: name, Dir: e.simDir(name), Devices: n, AddrBase: addrBase(i*c.SimsPerInstance + k), CIRA: true})
			if err != nil {
				return err
			}
			m.fleets = append(m.fleets, &fleetRun{name: name, devices: devs, log: filepath.Join(e.run, name+".cira.csv")})
		}
		e.logf("seeded %d devices for instance %d", c.PerInstance, i)
	}
	db.doneSeeding()
	e.outf("\nseeding: %d devices in %s", total, time.Since(t0).Round(time.Second))

	for i, m := range members {
		if m.in, err = e.startServe(ctx, serveOpts{Name: fmt.Sprintf("amtd-%d", i), Data: e.dataDir(fmt.Sprintf("amtd-%d", i)),
			DB: dsn, MasterKey: keyHex, Advertise: true}); err != nil {
			return err
		}
		defer m.in.stop()
	}
	defer func() {
		for _, m := range members {
			for _, f := range m.fleets {
				if f.p != nil {
					f.p.stop(2 * time.Minute)
				}
			}
		}
	}()
	if err := sleepCtx(ctx, min(3*time.Second, c.Settle)); err != nil {
		return err
	}
	for _, m := range members {
		if m.base, err = m.in.sample(); err != nil {
			return err
		}
		m.baseGC, _ = lastOf(gcRecords(m.in.p.stderr()))
	}

	// Connect each instance's devices in turn.
	for i, m := range members {
		e.logf("connecting %d devices to instance %d (load average %s)", c.PerInstance, i, loadAverage())
		start := time.Now()
		for k, f := range m.fleets {
			f.p, err = e.startSim(simOpts{Name: f.name, Devices: len(f.devices), AddrBase: addrBase(i*c.SimsPerInstance + k),
				Args: []string{"--cira-server", m.in.ciraAddr, "--cira-log", f.log}})
			if err != nil {
				return err
			}
		}
		if m.burst, err = e.waitConnected(ctx, m.fleets, start, c.PerInstance, 20*time.Minute); err != nil {
			return fmt.Errorf("instance %d: %w", i, err)
		}
		e.logf("instance %d: %d connected in %s", i, m.burst.Connected, m.burst.span().Round(time.Millisecond))
	}
	if err := sleepCtx(ctx, c.Settle); err != nil {
		return err
	}
	st, err := members[0].in.api.deviceStats(ctx)
	if err != nil {
		return err
	}
	memAvail := memAvailable()

	// Idle window.
	e.logf("idle window of %s (load average %s)", c.Idle, loadAverage())
	s0 := make([]sample, len(members))
	for i, m := range members {
		m.in.markGC()
		s0[i], _ = m.in.sample()
	}
	if err := pg.resetStatements(ctx); err != nil {
		return err
	}
	pg0, err := pg.stats(ctx, "cluster")
	if err != nil {
		return err
	}
	var allFleets []*fleetRun
	for _, m := range members {
		allFleets = append(allFleets, m.fleets...)
	}
	sim0 := simCPU(allFleets)
	idleStart, load0 := time.Now(), loadAverage()
	if err := sleepCtx(ctx, c.Idle); err != nil {
		return err
	}
	s1 := make([]sample, len(members))
	for i, m := range members {
		s1[i], _ = m.in.sample()
	}
	pg1, err := pg.stats(ctx, "cluster")
	if err != nil {
		return err
	}
	stmts, err := pg.statements(ctx, "cluster")
	if err != nil {
		return err
	}
	sim1, load1 := simCPU(allFleets), loadAverage()
	gcs := make([]gcRecord, len(members))
	gcOK := true
	gcDeadline := time.Now().Add(gcWait(c.Idle))
	for i, m := range members {
		var err error
		if gcs[i], err = m.in.waitGC(ctx, time.Until(gcDeadline)); err != nil {
			gcOK = false
		}
	}
	idle, err := analyze(allFleets, idleStart)
	if err != nil {
		return err
	}
	dpg := pg1.sub(pg0)

	// Forwarded against direct requests.
	fw, err := e.forwarding(ctx, members, c.Requests, pg)
	if err != nil {
		return err
	}

	// Results.
	e.outf("\ncluster: %d amtd serve instances on one PostgreSQL %s, %d devices each (%d), %d amtd sim processes per instance", c.Instances, pg.version(ctx), c.PerInstance, total, c.SimsPerInstance)
	e.outf("API (any instance): %d devices, %d connected; MemAvailable with everything connected: %s", st.Total, st.Connected, mib(memAvail))
	e.outf("\n| instance | connect burst | connections/s | handshake p50 | p99 | failed attempts | RSS before → idle | RSS per connection | heap per connection (GC trace) | descriptors | CPU in the idle window | of one core |")
	e.outf("|---|---|---|---|---|---|---|---|---|---|---|---|")
	window := s1[0].At.Sub(s0[0].At)
	var cpuSum time.Duration
	for i, m := range members {
		n := float64(c.PerInstance)
		heap := "—"
		if gcOK {
			heap = fmt.Sprintf("%.0f B", float64(gcs[i].LiveMB-m.baseGC.LiveMB)*(1<<20)/n)
		}
		cpu := s1[i].CPU - s0[i].CPU
		cpuSum += cpu
		e.outf("| %d | %.2f s | %.0f | %s | %s | %d | %s → %s | %.1f KiB | %s | %d | %.2f s | %.2f %% |", i, m.burst.span().Seconds(), m.burst.rate(),
			ms(percentile(m.burst.Handshakes, 50)), ms(percentile(m.burst.Handshakes, 99)), m.burst.Failed,
			mib(m.base.RSS), mib(s1[i].RSS), float64(s1[i].RSS-m.base.RSS)/1024/n, heap, s1[i].FDs, cpu.Seconds(), 100*cpu.Seconds()/window.Seconds())
	}
	e.outf("\nidle window %s (load average %s → %s): instances' CPU %.2f s (%.2f %% of a core), PostgreSQL CPU %.2f s, %d transactions committed, rows inserted/updated/deleted %d/%d/%d, WAL %d B; simulators' CPU %.1f s; disconnections %d, failed attempts %d",
		window.Round(time.Second), load0, load1, cpuSum.Seconds(), 100*cpuSum.Seconds()/window.Seconds(), dpg.CPU.Seconds(), dpg.Commits,
		dpg.Inserted, dpg.Updated, dpg.Deleted, dpg.WALBytes, (sim1 - sim0).Seconds(), idle.Disconnects, idle.Failed)
	e.outf("statements the instances ran in the idle window (pg_stat_statements): %s", summarizeStatements(stmts))
	fw.print(e)
	return nil
}

// forwardResult is the forwarding measurement.
type forwardResult struct {
	direct, forwarded     latency
	bodyMismatch, checked int
	recordChecks          int
	recordErrors          []string
	powerChecks           int
	powerErrors           []string
	pg                    pgStats
	stmts                 []statement
	window                time.Duration
}

func (f *forwardResult) print(e *env) {
	e.outf("\nGET /api/v1/amt/generalSettings/:guid for random devices, one request at a time (after one warm-up request per device to its owner):")
	e.outf("| sent to | requests | p50 | p99 | max | errors |")
	e.outf("|---|---|---|---|---|---|")
	for _, l := range []*latency{&f.direct, &f.forwarded} {
		e.outf("| %s | %d | %s | %s | %s | %d |", l.name, len(l.samples), ms(percentile(l.samples, 50)), ms(percentile(l.samples, 99)), ms(percentile(l.samples, 100)), l.errors)
	}
	e.outf("\nforwarding adds %s at p50, %s at p99", ms(percentile(f.forwarded.samples, 50)-percentile(f.direct.samples, 50)),
		ms(percentile(f.forwarded.samples, 99)-percentile(f.direct.samples, 99)))
	e.outf("spot checks: forwarded answer's body identical to the owner's for %d of %d devices; device record through a non-owner names the owner and shows it connected: %d checked, errors %v; power off/on through non-owners seen by another non-owner: %d checked, errors %v",
		f.checked-f.bodyMismatch, f.checked, f.recordChecks, f.recordErrors, f.powerChecks, f.powerErrors)
	e.outf("database during the requests (%s): %d transactions committed, %d rows fetched, WAL %d B, PostgreSQL CPU %.2f s; %s",
		f.window.Round(time.Millisecond), f.pg.Commits, f.pg.Fetched, f.pg.WALBytes, f.pg.CPU.Seconds(), summarizeStatements(f.stmts))
}

func (e *env) forwarding(ctx context.Context, members []*member, requests int, pg *postgres) (*forwardResult, error) {
	type dev struct {
		uuid  string
		owner int
	}
	const sampleDevices = 200
	var devs []dev
	for i, m := range members {
		for _, f := range m.fleets {
			for _, d := range f.devices {
				devs = append(devs, dev{d.UUID, i})
			}
		}
	}
	rand.Shuffle(len(devs), func(i, j int) { devs[i], devs[j] = devs[j], devs[i] })
	devs = devs[:min(sampleDevices, len(devs))]
	e.logf("forwarding: %d requests each, direct and forwarded, over %d random devices", requests, len(devs))
	r := &forwardResult{direct: latency{name: "the owner (direct)"}, forwarded: latency{name: "another instance (forwarded)"}}
	other := func(owner int) int {
		j := rand.IntN(len(members) - 1)
		if j >= owner {
			j++
		}
		return j
	}
	const path = "/api/v1/amt/generalSettings/"
	bodies := map[string][]byte{}
	for _, d := range devs { // warm-up at the owner; the answer to compare with
		b, err := members[d.owner].in.api.must(ctx, http.MethodGet, path+d.uuid, nil)
		if err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		bodies[d.uuid] = b
	}
	if err := pg.resetStatements(ctx); err != nil {
		return nil, err
	}
	pg0, err := pg.stats(ctx, "cluster")
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for i := range requests {
		d := devs[i%len(devs)]
		order := []int{d.owner, other(d.owner)}
		if rand.IntN(2) == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, via := range order {
			l := &r.direct
			if via != d.owner {
				l = &r.forwarded
			}
			code, body, took, err := members[via].in.api.call(ctx, http.MethodGet, path+d.uuid, nil)
			if err != nil || code != http.StatusOK {
				l.errors++
				if l.errors <= 3 {
					e.logf("%s %s: %d %v %.200s", l.name, d.uuid, code, err, body)
				}
				continue
			}
			l.samples = append(l.samples, took)
			if via != d.owner && i < len(devs) {
				r.checked++
				if !sameBody(body, bodies[d.uuid]) {
					r.bodyMismatch++
					if r.bodyMismatch == 1 {
						e.logf("forwarded answer differs from the owner's:\n%s\n%s", body, bodies[d.uuid])
					}
				}
			}
		}
	}
	r.window = time.Since(t0)
	pg1, err := pg.stats(ctx, "cluster")
	if err != nil {
		return nil, err
	}
	r.pg = pg1.sub(pg0)
	if r.stmts, err = pg.statements(ctx, "cluster"); err != nil {
		return nil, err
	}

	// Device records through every instance.
	for _, d := range devs[:min(20, len(devs))] {
		for j, m := range members {
			if j == d.owner {
				continue
			}
			r.recordChecks++
			b, err := m.in.api.must(ctx, http.MethodGet, "/api/v1/devices/"+d.uuid, nil)
			var rec struct {
				ConnectionStatus bool    `json:"connectionStatus"`
				MPSInstance      *string `json:"mpsInstance"`
			}
			if err == nil {
				err = json.Unmarshal(b, &rec)
			}
			want := members[d.owner].in.name
			if err != nil || !rec.ConnectionStatus || rec.MPSInstance == nil || *rec.MPSInstance != want {
				r.recordErrors = append(r.recordErrors, fmt.Sprintf("%s via %d: %v %.120s", d.uuid, j, err, b))
			}
		}
	}
	// A state change through one non-owner, read through another.
	for _, d := range devs[:min(5, len(devs))] {
		r.powerChecks++
		a, b := other(d.owner), other(d.owner)
		for _, step := range []struct{ action, want int }{{8, 8}, {2, 2}} {
			if _, err := members[a].in.api.must(ctx, http.MethodPost, "/api/v1/amt/power/action/"+d.uuid, map[string]any{"action": step.action}); err != nil {
				r.powerErrors = append(r.powerErrors, err.Error())
				break
			}
			body, err := members[b].in.api.must(ctx, http.MethodGet, "/api/v1/amt/power/state/"+d.uuid, nil)
			if err != nil {
				r.powerErrors = append(r.powerErrors, err.Error())
				break
			}
			if !strings.Contains(string(body), `"powerstate":`+strconv.Itoa(step.want)) {
				r.powerErrors = append(r.powerErrors, fmt.Sprintf("%s: after action %d: %.100s", d.uuid, step.action, body))
			}
		}
	}
	return r, nil
}

// sameBody compares two MPS answers' "Body" (the WS-MAN header's message
// IDs differ from call to call; the body holds the device's settings,
// its digest realm among them).
func sameBody(a, b []byte) bool {
	var x, y struct {
		Body json.RawMessage `json:"Body"`
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil || len(x.Body) == 0 {
		return false
	}
	return bytes.Equal(x.Body, y.Body)
}

// memAvailable is MemAvailable from /proc/meminfo, in bytes.
func memAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "MemAvailable:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}
