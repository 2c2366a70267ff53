package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/bench"
	"github.com/amtd-project/amtd/internal/cli"
)

func init() {
	register(&command{name: "bench", summary: "scale measurements with real servers and simulators (docs/BENCHMARKS.md)", run: runBench})
}

const benchUsage = `Usage: amtd bench <scenario> [flags]   (amtd bench <scenario> --help)

Scale measurements on this machine: amtd serve instances, amtd sim fleets and a
PostgreSQL server (from the machine's initdb/postgres, run as the postgres user
when started as root) as separate processes on loopback, measured from outside.
Results go to stdout as Markdown tables, progress to stderr.

  activate   N devices activating at once (CCM and ACM with a CIRA config)
  cira       one instance holding ~19,500 idle CIRA connections; WS-MAN latency
             over CIRA against the LAN
  cluster    several instances sharing one PostgreSQL, devices spread over them,
             API requests forwarded to the owning instance
`

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, benchUsage)
		return nil
	}
	var o bench.Options
	common := func(fs *cli.FlagSet) {
		fs.StringVar(&o.Work, "work", "", "folder for each run's server data, logs and PostgreSQL (default $TMPDIR/amtd-bench)")
		fs.StringVar(&o.SimDir, "sim-dir", "", "folder for the simulators' state (default /dev/shm/amtd-bench: tmpfs, so their fsyncs cost nothing)")
		fs.BoolVar(&o.Keep, "keep", false, "keep the run folders (logs, CIRA event logs, data) instead of removing them")
	}
	o.Out, o.Log = stdout, stderr
	scenario, rest := args[0], args[1:]
	switch scenario {
	case "activate":
		var a bench.ActivateOptions
		var dbs, modes string
		fs := cli.New("bench activate", "Activates --devices simulated devices at once through `amtd sim --activate` against a fresh\n"+
			"`amtd serve --activation-delay 0s` per database and mode: a CIRA config and a CCM or ACM profile\n"+
			"(ACM: a domain with a provisioning certificate generated for the run, its root trusted by the\n"+
			"devices) made through the admin API. Reports activations/s, per-activation p50/p99, the server's\n"+
			"peak RSS and CPU time, and PostgreSQL's CPU and commits.")
		common(fs)
		fs.IntVar(&a.Devices, "devices", 1000, "devices activating")
		fs.IntVar(&a.Concurrency, "concurrency", 0, "devices at once (default: all)")
		fs.StringVar(&dbs, "db", "sqlite,postgres", "databases, comma-separated: sqlite, postgres")
		fs.StringVar(&modes, "modes", "ccm,acm", "activation modes, comma-separated: ccm, acm")
		if err := parseBench(fs, rest, stderr); err != nil {
			return err
		}
		a.DBs, a.Modes = splitList(dbs), splitList(modes)
		return bench.Activate(ctx, o, a)
	case "cira":
		var c bench.CIRAOptions
		fs := cli.New("bench cira", "One `amtd serve` on PostgreSQL holding --devices idle CIRA connections from seeded simulated\n"+
			"devices in --sims `amtd sim` processes: connect burst (connections/s, handshake p50/p99), server\n"+
			"RSS and Go heap per connection, CPU and database transactions over an idle window at the real\n"+
			"30 s keepalive; single reconnections' handshake; then WS-MAN round trips (generalSettings,\n"+
			"hardwareInfo) over CIRA against the same calls to devices on the LAN.")
		common(fs)
		fs.IntVar(&c.Devices, "devices", 19500, "CIRA devices")
		fs.IntVar(&c.Sims, "sims", 3, "amtd sim processes sharing the devices (each under the 20,000-file limit: 2 per device)")
		fs.DurationVar(&c.Idle, "idle", 5*time.Minute, "idle window over which CPU and database writes are measured")
		fs.DurationVar(&c.Settle, "settle", time.Minute, "wait after the last connection before the idle window")
		fs.IntVar(&c.LANDevices, "lan-devices", 50, "devices reached on the LAN for the WS-MAN comparison (their fleet listens on port 16992)")
		fs.IntVar(&c.Requests, "requests", 1000, "API requests per WS-MAN latency measurement")
		fs.IntVar(&c.Reconnects, "reconnects", 200, "devices disconnected one at a time to time single reconnections")
		if err := parseBench(fs, rest, stderr); err != nil {
			return err
		}
		return bench.CIRA(ctx, o, c)
	case "cluster":
		var c bench.ClusterOptions
		fs := cli.New("bench cluster", "--instances `amtd serve` processes sharing one PostgreSQL (shared master key, advertised\n"+
			"addresses), each holding --per-instance seeded devices over CIRA, connected one instance at a time;\n"+
			"then an idle window (CPU, memory, database load) and API requests for random devices sent to an\n"+
			"instance that does not hold the device (forwarded) and to the one that does, with spot checks.")
		common(fs)
		fs.IntVar(&c.Instances, "instances", 5, "amtd serve instances")
		fs.IntVar(&c.PerInstance, "per-instance", 19800, "devices connected to each instance")
		fs.IntVar(&c.SimsPerInstance, "sims-per-instance", 3, "amtd sim processes per instance")
		fs.DurationVar(&c.Idle, "idle", 2*time.Minute, "idle window over which CPU and database load are measured")
		fs.DurationVar(&c.Settle, "settle", 30*time.Second, "wait after the last connection before the idle window")
		fs.IntVar(&c.Requests, "requests", 1000, "forwarded and direct API requests each")
		if err := parseBench(fs, rest, stderr); err != nil {
			return err
		}
		return bench.Cluster(ctx, o, c)
	}
	fmt.Fprint(stderr, benchUsage)
	return &exitError{code: 2, err: fmt.Errorf("unknown scenario %q", scenario)}
}

func parseBench(fs *cli.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	// No AMTD_* environment: --devices and the like would otherwise follow
	// settings meant for amtd sim.
	fs.VisitAll(func(f *flag.Flag) { fs.NoEnv(f.Name) })
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
