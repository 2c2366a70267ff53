// Package bench is amtd's scale harness (`amtd bench …`): it runs the real
// binaries — `amtd serve` instances, `amtd sim` fleets, a PostgreSQL server
// started from the machine's own binaries — as separate processes on
// loopback, drives them through the REST API and the simulators, and
// measures from outside: /proc for CPU time and memory, the Go runtime's GC
// trace for the servers' heap, pg_stat_database for database load, the
// simulators' summaries and CIRA event logs for latencies.
//
// Scenarios (see docs/BENCHMARKS.md for the figures and the commands):
//
//   - Activate: N devices activating at once through the rpc-go protocol
//     (CCM and ACM profiles with a CIRA configuration), on SQLite and/or
//     PostgreSQL.
//   - CIRA: one instance holding as many idle CIRA connections as one
//     process may open (connect burst, handshake times, memory and CPU per
//     idle connection, database writes while idle), then WS-MAN latency
//     over CIRA against the same calls over the LAN.
//   - Cluster: several instances sharing one PostgreSQL, each holding its
//     share of the devices, and API requests sent to instances that do not
//     hold the device (forwarded) against requests sent to the owner.
//
// Devices for the CIRA scenarios are seeded (seed.go) rather than activated;
// the activation scenario measures activations themselves.
//
// The machine's limits shape the runs: one process may open 20,000 files,
// so a simulator process holds at most about 9,900 CIRA devices (a MEI
// socket and a connection each) and a server about 19,900 connections;
// every simulated device dials from its own 127.x address.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/amtd-project/amtd/sim/fleet"
)

// Options are common to every scenario.
type Options struct {
	// Exe is the amtd binary the servers and simulators run (default: the
	// running executable); ExeArgs come before the subcommand (tests run
	// their own binary as amtd).
	Exe     string
	ExeArgs []string
	// Work holds each run's folder: server data, logs, PostgreSQL (default
	// /tmp/amtd-bench).
	Work string
	// SimDir holds the simulators' state (default /dev/shm/amtd-bench when
	// /dev/shm exists: on tmpfs the simulators' fsyncs cost nothing, so the
	// figures are the server's).
	SimDir string
	// Keep leaves the run folders in place (default: removed at the end).
	Keep bool
	// Out receives the results, Log the progress (default: discarded).
	Out, Log io.Writer
}

// env is one run of a scenario.
type env struct {
	Options
	run  string // Work/<scenario>-<time>
	sims string // SimDir/<scenario>-<time>
}

func newEnv(o Options, scenario string) (*env, error) {
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Exe = exe
	}
	if o.Work == "" {
		o.Work = filepath.Join(os.TempDir(), "amtd-bench")
	}
	if o.SimDir == "" {
		o.SimDir = o.Work
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			o.SimDir = "/dev/shm/amtd-bench"
		}
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	stamp := time.Now().Format("20060102-150405")
	e := &env{Options: o, run: filepath.Join(o.Work, scenario+"-"+stamp), sims: filepath.Join(o.SimDir, scenario+"-"+stamp)}
	for _, d := range []string{e.run, e.sims} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// MEI socket paths must fit in sun_path: DIR/<uuid>/mei.sock.
	if probe := filepath.Join(e.sims, "sim-00", "00000000-0000-0000-0000-000000000000", "mei.sock"); len(probe) > fleet.MaxSocketPath {
		return nil, fmt.Errorf("bench: simulator folder %s is too long for MEI socket paths", e.sims)
	}
	e.logf("run folder %s, simulator state in %s", e.run, e.sims)
	return e, nil
}

// amtdArgs are the arguments of an amtd child.
func (e *env) amtdArgs(args []string) []string {
	return append(append([]string(nil), e.ExeArgs...), args...)
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.Log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func (e *env) outf(format string, args ...any) { fmt.Fprintf(e.Out, format+"\n", args...) }

// cleanup removes the run's folders unless Keep is set.
func (e *env) cleanup() {
	if e.Keep {
		e.logf("kept %s and %s", e.run, e.sims)
		return
	}
	os.RemoveAll(e.sims)
	os.RemoveAll(e.run)
}

// simOpts start one `amtd sim` process.
type simOpts struct {
	Name     string
	Devices  int
	AddrBase netip.Addr
	HTTPPort int      // 0: a free port
	Args     []string // agent mode or CIRA flags
}

// simDir is the state folder of a named fleet.
func (e *env) simDir(name string) string { return filepath.Join(e.sims, name) }

// startSim starts `amtd sim` on the fleet folder of o.Name.
func (e *env) startSim(o simOpts) (*proc, error) {
	args := []string{"sim", "--dir", e.simDir(o.Name), "--devices", strconv.Itoa(o.Devices), "--addr-base", o.AddrBase.String(),
		"--http-port", strconv.Itoa(o.HTTPPort), "--tls-port", "0", "--hostname-prefix", o.Name + "-", "--log-level", "warn"}
	return startProc(o.Name, e.run, nil, nil, e.Exe, e.amtdArgs(append(args, o.Args...))...)
}

// addrBase is the first address of fleet k: 127.(16+k).0.1, a /16 each.
func addrBase(k int) netip.Addr { return netip.AddrFrom4([4]byte{127, byte(16 + k), 0, 1}) }

// ciraEvent is one line of an `amtd sim --cira-log` file.
type ciraEvent struct {
	At     time.Time
	Index  int
	UUID   string
	Kind   string // connected, disconnected, failed, stopped
	Dialed time.Time
	Err    string
}

func (e ciraEvent) handshake() time.Duration {
	if e.Dialed.IsZero() {
		return 0
	}
	return e.At.Sub(e.Dialed)
}

// readCIRALog parses a --cira-log file (a line being written is skipped).
func readCIRALog(path string) ([]ciraEvent, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ciraEvent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.SplitN(sc.Text(), ",", 6)
		if len(p) != 6 {
			continue
		}
		at, err1 := strconv.ParseInt(p[0], 10, 64)
		idx, err2 := strconv.Atoi(p[1])
		dial, err3 := strconv.ParseInt(p[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		ev := ciraEvent{At: time.Unix(0, at), Index: idx, UUID: p[2], Kind: p[3], Err: p[5]}
		if dial > 0 {
			ev.Dialed = time.Unix(0, dial)
		}
		out = append(out, ev)
	}
	return out, sc.Err()
}

// percentile by the nearest-rank method (p in (0,100]) of unsorted samples.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999)
	return s[min(max(rank, 1), len(s))-1]
}

// ms formats a duration in milliseconds with three significant decimals.
func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64) + " ms" }

// mib formats bytes in MiB.
func mib(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) + " MiB" }

// loadAverage is the 1-minute load average (/proc/loadavg).
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
