package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/fleet"
	"github.com/amtd-project/amtd/sim/hello"
)

func init() {
	register(&command{name: "sim", summary: "run simulated AMT devices (one or a fleet), or drive them through activation", run: runSim})
}

// listAllAbove: larger fleets print a summary instead of one line per
// device (unless --list).
const listAllAbove = 64

// simConfig is every `amtd sim` setting.
type simConfig struct {
	Dir            string
	Devices        int
	LMS            string
	MEI            string
	AddrBase       string
	HTTPPort       int
	TLSPort        int
	AMTVersion     string
	Build          string
	SKU            string
	DNSSuffix      string
	TrustHashes    cli.StringList
	HostnamePrefix string
	Latency        time.Duration
	TLSEnforced    bool
	Faults         cli.StringList
	LogLevel       string
	List           bool

	// Legacy setup (spec/legacy.md).
	USB             string
	SetupMode       string
	PKIDNSSuffix    string
	ProvisionServer string
	ProvisionPort   int
	DNSServer       string
	HelloTimescale  float64
	HelloHashes     int
	SetupPasswords  cli.StringList
	CommitRestart   time.Duration
	Network         bool

	// CIRA clients (sim_cira.go).
	CIRA simCIRAConfig

	// Agent mode.
	Activate     string
	Deactivate   string
	Maintenance  string
	Profile      string
	Password     string
	Task         string
	Concurrency  int
	Insecure     bool
	AgentTimeout time.Duration
}

func simFlags(c *simConfig) *cli.FlagSet {
	fs := cli.New("sim", "Runs simulated Intel AMT devices until SIGINT/SIGTERM: WS-MAN with digest\n"+
		"authentication on each device's LMS address (16992, and 16993 once TLS is on) and\n"+
		"its MEI host interface on a Unix socket (spec/heci.md §8). Each device's state\n"+
		"is a JSON file in --dir; devices keep their UUID and state across restarts.\n\n"+
		"One device (the default) listens on --lms (127.0.0.1:16992) with its MEI socket\n"+
		"at --mei. A fleet (--devices N) gives device i the i-th loopback address from\n"+
		"--addr-base behind shared wildcard listeners, and its socket at DIR/<uuid>/mei.sock.\n\n"+
		"Agent mode (--activate, --deactivate or --maintenance URL) starts the devices,\n"+
		"runs amtd's rpc-go client once per device against the server, prints a summary\n"+
		"and exits (status 1 if any device failed).")
	fs.StringVar(&c.Dir, "dir", "", "state folder (required): DIR/<uuid>/firmware.json per device, DIR/fleet.json lists them in order")
	fs.IntVar(&c.Devices, "devices", 1, "number of devices; devices already in --dir keep their UUID, new ones are created")
	fs.StringVar(&c.LMS, "lms", "", "single device: its LMS (WS-MAN HTTP) address; port 0 picks a free port (default \"127.0.0.1:16992\")")
	fs.StringVar(&c.MEI, "mei", "", "single device: its MEI socket path (default DIR/<uuid>/mei.sock)")
	fs.StringVar(&c.AddrBase, "addr-base", "", "fleet: address of the first device; the next ones follow, skipping .0 and .255,\nwithin 127.0.0.0/8 (default \"127.1.0.1\")")
	fs.IntVar(&c.HTTPPort, "http-port", fleet.DefaultHTTPPort, "fleet: HTTP port of every device (a wildcard listener); 0 picks a free port")
	fs.IntVar(&c.TLSPort, "tls-port", fleet.DefaultTLSPort, "TLS port of every device (fleet: a wildcard listener); 0 picks a free port")
	fs.StringVar(&c.AMTVersion, "amt-version", "", "AMT firmware version, e.g. 16.1.25, 11.8.50 or 19.0.5 (default \""+firmware.DefaultVersion+"\" for new devices)")
	fs.StringVar(&c.Build, "build", "", "firmware build number (default \""+firmware.DefaultBuild+"\" for new devices)")
	fs.StringVar(&c.SKU, "sku", "", "firmware SKU (default \""+firmware.DefaultSKU+"\" for new devices)")
	fs.StringVar(&c.DNSSuffix, "dns-suffix", "", "DNS suffix the devices get from DHCP (option 15)")
	fs.Var(&c.TrustHashes, "trust-hash", fmt.Sprintf("`SHA256HEX` of a user root certificate, as entered in the MEBx (SHA-1 and SHA-384\nhex are accepted too); repeatable, at most %d", firmware.MaxUserHashes))
	fs.StringVar(&c.HostnamePrefix, "hostname-prefix", fleet.DefaultHostnamePrefix, "host names of the simulated machines: prefix + 4-digit index (sent by the agent)")
	fs.DurationVar(&c.Latency, "latency", 0, "delay before every WS-MAN answer, like real firmware (e.g. 80ms)")
	fs.BoolVar(&c.TLSEnforced, "tls-enforced", false, "local WS-MAN only over TLS (AMT 19+ behaviour); when not given: enforced for AMT 19 and later")
	fs.Var(&c.Faults, "fault", "WS-MAN `RULE` for every device, repeatable:\n"+fleet.FaultSyntax)
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.List, "list", false, fmt.Sprintf("print one line per device even for fleets of more than %d", listAllAbove))

	fs.StringVar(&c.USB, "usb", "", "legacy setup: a setup.bin (USB one-touch setup, legacy.md §11); each device still in\n"+
		"pre-provisioning applies the next unused record at start (index order) and the record is marked used\n"+
		"in the file; a record with 2.28 = 1 starts configuration: the device sends hellos")
	fs.StringVar(&c.SetupMode, "setup-mode", "", "legacy setup as in the MEBx for devices still in pre-provisioning: \"pki\" (remote\n"+
		"configuration on) or \"psk\" (a generated PID/PPS per device, listed in DIR/"+fleet.PSKPairsName+"; needs\n"+
		"--amt-version before 11); then configuration starts and the devices send hellos")
	fs.StringVar(&c.PKIDNSSuffix, "pki-dns-suffix", "", "the devices' PKI DNS suffix, as entered in the MEBx: the provisioning certificate's CN must fit it")
	fs.StringVar(&c.ProvisionServer, "provision-server", "", "legacy setup: send hellos to `HOST[:PORT]` (port default --provision-port), as a configured\n"+
		"provisioning server address; without it a device uses its setup.bin/MEBx address or looks up\n"+
		"ProvisionServer.<domain> in DNS")
	fs.IntVar(&c.ProvisionPort, "provision-port", 9971, "legacy setup: hello port when the server comes from DNS or --provision-server has none")
	fs.StringVar(&c.DNSServer, "dns-server", "", "legacy setup: `IP:PORT` of the DNS server for the ProvisionServer look-ups (default: the system resolver)")
	fs.Float64Var(&c.HelloTimescale, "hello-timescale", 1, "legacy setup: run the hello schedule (15 hellos over about 6 hours, legacy.md §4) this many times\nfaster, e.g. 60 (minutes become seconds)")
	fs.IntVar(&c.HelloHashes, "hello-hashes", 23, "legacy setup: most root hashes in a PKI hello, 23 (older firmware) or 24 (newer)")
	fs.Var(&c.SetupPasswords, "setup-password", "legacy setup: digest `PASSWORD` of admin in a setup session, repeatable (default: the empty password)")
	fs.DurationVar(&c.CommitRestart, "commit-restart", 3*time.Second, "legacy setup: after CommitChanges the TLS port is closed this long while AMT restarts its web server")
	fs.BoolVar(&c.Network, "network", false, "serve the addresses as the devices' network interface (802.3 TLS settings), as a configuration\n"+
		"server reaches them, instead of the host's LMS view; implied by --usb and --setup-mode")

	c.CIRA.addFlags(fs)

	fs.StringVar(&c.Activate, "activate", "", "agent mode: activate every device at this URL (ws://host:8181/activate)")
	fs.StringVar(&c.Deactivate, "deactivate", "", "agent mode: deactivate every device at this URL (needs --password)")
	fs.StringVar(&c.Maintenance, "maintenance", "", "agent mode: run --task on every device at this URL (rpc-go v2 maintenance)")
	fs.StringVar(&c.Profile, "profile", "", "agent mode: activation profile")
	fs.StringVar(&c.Password, "password", "", "agent mode: AMT admin password (prefer the environment variable)")
	fs.StringVar(&c.Task, "task", "", "agent mode: maintenance task: synctime, syncip, synchostname, syncdeviceinfo, changepassword")
	fs.IntVar(&c.Concurrency, "concurrency", 10, "agent mode: devices running at once")
	fs.BoolVar(&c.Insecure, "insecure", false, "agent mode: do not verify the server certificate of a wss:// URL (rpc-go -n)")
	fs.DurationVar(&c.AgentTimeout, "agent-timeout", 10*time.Minute, "agent mode: limit for one device's run")
	return fs
}

// simOptions checks the flags and turns them into fleet options and, in
// agent mode, the agent template.
func simOptions(c simConfig, fs *cli.FlagSet) (fleet.Options, *agent.Config, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o := fleet.Options{Dir: c.Dir, Devices: c.Devices, Version: c.AMTVersion, Build: c.Build, SKU: c.SKU,
		DNSSuffix: c.DNSSuffix, HostnamePrefix: c.HostnamePrefix, Latency: c.Latency}
	if c.Dir == "" {
		return o, nil, errors.New("--dir is required")
	}
	if c.Devices < 1 {
		return o, nil, fmt.Errorf("--devices must be at least 1, not %d", c.Devices)
	}
	if c.Devices > 1 && (c.LMS != "" || c.MEI != "") {
		return o, nil, errors.New("--lms and --mei are for a single device; a fleet uses --addr-base and DIR/<uuid>/mei.sock")
	}
	if c.AddrBase != "" && (c.LMS != "" || c.MEI != "") {
		return o, nil, errors.New("--addr-base (fleet layout) cannot be combined with --lms or --mei")
	}
	o.Single = c.Devices == 1 && c.AddrBase == ""
	if o.Single {
		if set["http-port"] {
			return o, nil, errors.New("--http-port is for fleets; a single device takes its port from --lms")
		}
		o.LMSAddr, o.MEIPath = c.LMS, c.MEI
	}
	if c.AddrBase != "" {
		a, err := netip.ParseAddr(c.AddrBase)
		if err != nil {
			return o, nil, fmt.Errorf("--addr-base: %w", err)
		}
		o.AddrBase = a
	}
	port := func(name string, p int) (int, error) {
		switch {
		case p == 0:
			return fleet.AnyPort, nil
		case p < 0 || p > 65535:
			return 0, fmt.Errorf("--%s %d is not a port", name, p)
		}
		return p, nil
	}
	var err error
	if o.HTTPPort, err = port("http-port", c.HTTPPort); err != nil {
		return o, nil, err
	}
	if o.TLSPort, err = port("tls-port", c.TLSPort); err != nil {
		return o, nil, err
	}
	if len(c.TrustHashes) > firmware.MaxUserHashes {
		return o, nil, fmt.Errorf("--trust-hash: at most %d user hashes (as the MEBx allows), got %d", firmware.MaxUserHashes, len(c.TrustHashes))
	}
	o.TrustHashes = c.TrustHashes
	if set["tls-enforced"] {
		v := c.TLSEnforced
		o.TLSEnforced = &v
	}
	for _, s := range c.Faults {
		r, err := fleet.ParseFault(s)
		if err != nil {
			return o, nil, fmt.Errorf("--fault: %w", err)
		}
		o.Faults = append(o.Faults, r)
	}
	if err := legacyOptions(c, &o); err != nil {
		return o, nil, err
	}
	if o.CIRA, err = c.CIRA.options(); err != nil {
		return o, nil, err
	}

	// agent mode
	var modes []string
	ac := agent.Config{Profile: c.Profile, Password: c.Password, Task: c.Task}
	for _, m := range []struct{ name, url string }{{"activate", c.Activate}, {"deactivate", c.Deactivate}, {"maintenance", c.Maintenance}} {
		if m.url != "" {
			modes = append(modes, "--"+m.name)
			ac.Command, ac.URL = m.name, m.url
		}
	}
	switch {
	case len(modes) > 1:
		return o, nil, fmt.Errorf("%s: choose one", strings.Join(modes, ", "))
	case len(modes) == 0:
		// Agent flags are ignored (they may come from the environment).
		return o, nil, nil
	}
	if !strings.HasPrefix(ac.URL, "ws://") && !strings.HasPrefix(ac.URL, "wss://") {
		return o, nil, fmt.Errorf("--%s: the URL must be ws:// or wss://, not %q", ac.Command, ac.URL)
	}
	switch ac.Command {
	case "activate":
		if c.Profile == "" {
			return o, nil, errors.New("--activate needs --profile")
		}
	case "deactivate":
		if c.Password == "" {
			return o, nil, errors.New("--deactivate needs --password (or AMTD_PASSWORD)")
		}
	case "maintenance":
		if c.Task == "" {
			return o, nil, errors.New("--maintenance needs --task")
		}
	}
	if c.Concurrency < 1 {
		return o, nil, fmt.Errorf("--concurrency must be at least 1, not %d", c.Concurrency)
	}
	if c.Insecure {
		ac.TLSConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for, like rpc-go -n
	}
	return o, &ac, nil
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c simConfig
	fs := simFlags(&c)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	opts, ac, err := simOptions(c, fs)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	log, err := newLogger(stderr, c.LogLevel, "text")
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	opts.Logger = log
	rec, err := startCIRARecorder(c.CIRA, opts.CIRA)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer rec.report(stdout, c.Devices, log)

	base := fleet.ReadStats(true)
	t0 := time.Now()
	f, err := fleet.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil { // interrupted while starting
			return nil
		}
		return err
	}
	defer f.Close()
	started := time.Since(t0)

	if ac != nil {
		ac.Logger = log
		return runAgents(ctx, f, *ac, c, stdout)
	}
	printFleet(stdout, f, c.List, started, base)
	<-ctx.Done()
	rec.report(stdout, c.Devices, log) // before the devices disconnect
	log.Info("stopping the simulated devices")
	return f.Close()
}

// setupInfo describes a device in legacy setup: " setup=pki" or
// " setup=psk pid=ABCD1234".
func setupInfo(d *fleet.Device) string {
	st := d.Firmware.LegacyStatus()
	switch st.Mode {
	case firmware.SetupPKI:
		return " setup=pki"
	case firmware.SetupPSK:
		pid, _, _ := d.Firmware.PSKCredentials()
		return " setup=psk pid=" + pid
	}
	return ""
}

func modeName(m uint32) string {
	switch m {
	case firmware.ModePre:
		return "pre"
	case firmware.ModeCCM:
		return "ccm"
	case firmware.ModeACM:
		return "acm"
	}
	return fmt.Sprint(m)
}

// legacyOptions checks the legacy setup flags.
func legacyOptions(c simConfig, o *fleet.Options) error {
	switch c.SetupMode {
	case "", fleet.SetupPKI, fleet.SetupPSK:
	default:
		return fmt.Errorf("--setup-mode %q: pki or psk", c.SetupMode)
	}
	if c.USB != "" && c.SetupMode != "" {
		return errors.New("--usb and --setup-mode exclude each other: the setup.bin says how the devices are set up")
	}
	if c.USB != "" {
		if _, err := firmware.SetupBinAvailable(c.USB); err != nil {
			return fmt.Errorf("--usb: %w", err)
		}
	}
	if c.ProvisionPort < 1 || c.ProvisionPort > 65535 {
		return fmt.Errorf("--provision-port %d is not a port", c.ProvisionPort)
	}
	if c.HelloTimescale <= 0 {
		return fmt.Errorf("--hello-timescale must be positive, not %g", c.HelloTimescale)
	}
	if c.HelloHashes != 23 && c.HelloHashes != 24 {
		return fmt.Errorf("--hello-hashes must be 23 or 24, not %d", c.HelloHashes)
	}
	if c.DNSServer != "" {
		if _, err := netip.ParseAddrPort(c.DNSServer); err != nil {
			return fmt.Errorf("--dns-server %q: want IP:PORT", c.DNSServer)
		}
	}
	if c.CommitRestart < 0 {
		return errors.New("--commit-restart must not be negative")
	}
	o.SetupBin, o.SetupMode, o.PKIDNSSuffix = c.USB, c.SetupMode, c.PKIDNSSuffix
	o.Network = c.Network || c.USB != "" || c.SetupMode != ""
	o.CommitRestart = c.CommitRestart
	if len(c.SetupPasswords) > 0 {
		o.SetupPasswords = c.SetupPasswords
	}
	o.Hello = hello.Options{Server: c.ProvisionServer, Port: c.ProvisionPort, DNSServer: c.DNSServer,
		TimeScale: c.HelloTimescale, MaxHashes: c.HelloHashes}
	if err := o.Hello.Validate(); err != nil { // the server address
		return fmt.Errorf("--provision-server: %w", err)
	}
	return nil
}

// printFleet prints the running devices, one line each, or a summary of a
// large fleet.
func printFleet(w io.Writer, f *fleet.Fleet, all bool, took time.Duration, base fleet.Stats) {
	devs := f.Devices()
	noun := "devices"
	if len(devs) == 1 {
		noun = "device"
	}
	fmt.Fprintf(w, "amtd sim: %d %s running (started in %s; state in %s); SIGINT or SIGTERM stops them\n",
		len(devs), noun, took.Round(time.Millisecond), f.Dir())
	if all || len(devs) <= listAllAbove {
		for _, d := range devs {
			tlsAddr := d.TLSAddr()
			if tlsAddr == "" {
				tlsAddr = "-" // a free port, chosen when TLS is turned on
			}
			fmt.Fprintf(w, "device %d uuid=%s lms=%s tls=%s mei=%s mode=%s%s\n",
				d.Index, d.UUID, d.LMSAddr, tlsAddr, d.MEIPath, modeName(d.Firmware.ControlMode()), setupInfo(d))
		}
	} else {
		first, last := devs[0], devs[len(devs)-1]
		h, _, _ := net.SplitHostPort(first.LMSAddr)
		lh, _, _ := net.SplitHostPort(last.LMSAddr)
		httpL, tlsL := f.Listeners()
		fmt.Fprintf(w, "addresses %s … %s (HTTP %s, TLS %s shared); MEI sockets %s/<uuid>/mei.sock; order in %s/%s (--list prints every device)\n",
			h, lh, httpL, tlsL, f.Dir(), f.Dir(), fleet.ManifestName)
		fmt.Fprintf(w, "device 0 uuid=%s lms=%s mei=%s\n", first.UUID, first.LMSAddr, first.MEIPath)
		fmt.Fprintf(w, "device %d uuid=%s lms=%s mei=%s\n", last.Index, last.UUID, last.LMSAddr, last.MEIPath)
	}
	if len(devs) > 1 {
		s := fleet.ReadStats(true)
		n := float64(len(devs))
		fmt.Fprintf(w, "process: RSS %.1f MiB (%.1f KiB per device), Go heap %.1f MiB (%.1f KiB per device), %d descriptors, %d goroutines\n",
			float64(s.RSS)/(1<<20), float64(s.RSS-base.RSS)/1024/n,
			float64(s.HeapAlloc)/(1<<20), (float64(s.HeapAlloc)-float64(base.HeapAlloc))/1024/n, s.FDs, s.Goroutines)
	}
}

// runAgents is agent mode: one rpc-go run per device, then a summary.
func runAgents(ctx context.Context, f *fleet.Fleet, ac agent.Config, c simConfig, stdout io.Writer) error {
	devs := f.Devices()
	log := ac.Logger
	log.Info("agent mode", "command", ac.Command, "url", ac.URL, "devices", len(devs), "concurrency", c.Concurrency)
	rep := f.RunAgents(ctx, fleet.AgentOptions{Config: ac, Concurrency: c.Concurrency, Timeout: c.AgentTimeout,
		Done: func(r fleet.AgentResult) {
			if r.OK() {
				log.Debug("device done", "index", r.Device.Index, "uuid", r.Device.UUID, "took", r.Duration)
			} else {
				log.Warn("device failed", "index", r.Device.Index, "uuid", r.Device.UUID, "took", r.Duration, "err", r.Message())
			}
		}})
	fmt.Fprintf(stdout, "%s: %d devices, %d ok, %d failed in %s (concurrency %d); per device p50 %s, p99 %s, max %s\n",
		ac.Command, len(devs), rep.OK, rep.Failed, rep.Elapsed.Round(time.Millisecond), c.Concurrency,
		rep.P50.Round(time.Millisecond), rep.P99.Round(time.Millisecond), rep.Max.Round(time.Millisecond))
	for _, r := range rep.Results {
		if !r.OK() {
			fmt.Fprintf(stdout, "FAILED device %d uuid=%s lms=%s: %s\n", r.Device.Index, r.Device.UUID, r.Device.LMSAddr, r.Message())
		}
	}
	if err := f.Close(); err != nil {
		log.Warn("stopping the simulated devices", "err", err)
	}
	if rep.Failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d devices failed", rep.Failed, len(devs))}
	}
	return nil
}
