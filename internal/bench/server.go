package bench

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/pgbin"
)

// MPSHost is the MPS name the simulated devices are given. It does not
// resolve: the simulators dial each instance's CIRA address (amtd sim
// --cira-server) and check the certificate against this name.
const MPSHost = "mps.bench.invalid"

// serveOpts start one `amtd serve`.
type serveOpts struct {
	Name       string // file names in the run folder, instance ID
	Data       string // --data
	DB         string // --db ("" SQLite in the data folder)
	MasterKey  string // AMTD_MASTER_KEY (hex), for instances sharing one database
	Advertise  bool   // --advertise-addr = the HTTP address (several instances)
	ExtraFlags []string
}

// instance is a running `amtd serve`.
type instance struct {
	name     string
	p        *proc
	api      *api
	httpAddr string
	ciraAddr string
	gcSeen   int // gctrace lines already consumed
}

// startServe starts `amtd serve` on free loopback ports with API
// authentication off, --activation-delay 0s, no hello listener, logs at
// warn, and the Go runtime's GC trace on its stderr (heap figures).
func (e *env) startServe(ctx context.Context, o serveOpts) (*instance, error) {
	hp, err := pgbin.FreePort()
	if err != nil {
		return nil, err
	}
	cp, err := pgbin.FreePort()
	if err != nil {
		return nil, err
	}
	in := &instance{name: o.Name, httpAddr: fmt.Sprintf("127.0.0.1:%d", hp), ciraAddr: fmt.Sprintf("127.0.0.1:%d", cp)}
	args := []string{"serve", "--http", in.httpAddr, "--data", o.Data, "--auth", "none", "--activation-delay", "0s",
		"--cira", in.ciraAddr, "--mps-host", MPSHost, "--hello", "", "--log-level", "warn", "--instance-id", o.Name}
	if o.DB != "" {
		args = append(args, "--db", o.DB)
	}
	if o.Advertise {
		args = append(args, "--advertise-addr", in.httpAddr)
	}
	args = append(args, o.ExtraFlags...)
	envv := []string{"GODEBUG=gctrace=1"}
	if o.MasterKey != "" {
		envv = append(envv, "AMTD_MASTER_KEY="+o.MasterKey)
	}
	p, err := startProc(o.Name, e.run, envv, nil, e.Exe, e.amtdArgs(args)...)
	if err != nil {
		return nil, err
	}
	in.p = p
	in.api = newAPI("http://" + in.httpAddr)
	if err := in.api.waitReady(ctx, p); err != nil {
		p.stop(30 * time.Second)
		return nil, err
	}
	return in, nil
}

func (in *instance) stop() error { return in.p.stop(2 * time.Minute) }

func (in *instance) sample() (sample, error) { return readSample(in.p.pid()) }

// gcRecord is one line of the Go runtime's GC trace (GODEBUG=gctrace=1).
type gcRecord struct {
	LiveMB   int // heap marked live by the cycle
	StacksMB int // goroutine stacks scanned
	Forced   bool
}

var gcLine = regexp.MustCompile(`^gc \d+ @[0-9.]+s .* (\d+)->(\d+)->(\d+) MB, \d+ MB goal, (\d+) MB stacks`)

// gcRecords parses every GC trace line in stderr.
func gcRecords(stderr string) []gcRecord {
	var out []gcRecord
	for _, l := range strings.Split(stderr, "\n") {
		m := gcLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		live, _ := strconv.Atoi(m[3])
		st, _ := strconv.Atoi(m[4])
		out = append(out, gcRecord{LiveMB: live, StacksMB: st, Forced: strings.HasSuffix(l, "(forced)")})
	}
	return out
}

// markGC remembers how many GC cycles the instance has traced so far.
func (in *instance) markGC() { in.gcSeen = len(gcRecords(in.p.stderr())) }

// lastGC is the latest GC cycle after the mark, if any.
func (in *instance) lastGC() (gcRecord, bool) {
	recs := gcRecords(in.p.stderr())
	if len(recs) <= in.gcSeen {
		return gcRecord{}, false
	}
	return recs[len(recs)-1], true
}

// waitGC waits (up to limit) for a GC cycle after the mark: an idle Go
// process collects at least every two minutes.
func (in *instance) waitGC(ctx context.Context, limit time.Duration) (gcRecord, error) {
	deadline := time.Now().Add(limit)
	for {
		if r, ok := in.lastGC(); ok {
			return r, nil
		}
		if time.Now().After(deadline) {
			return gcRecord{}, fmt.Errorf("%s: no GC cycle within %s", in.name, limit)
		}
		select {
		case <-ctx.Done():
			return gcRecord{}, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// ciraPort is the instance's CIRA port.
func (in *instance) ciraPort() string {
	_, p, _ := net.SplitHostPort(in.ciraAddr)
	return p
}

// dataDir names a data folder of the run.
func (e *env) dataDir(name string) string { return filepath.Join(e.run, name+"-data") }
