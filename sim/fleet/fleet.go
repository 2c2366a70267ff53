// Package fleet runs many simulated AMT devices in one process: one state
// file per device in a folder (DIR/<uuid>/firmware.json), UUIDs that stay
// the same across restarts, one loopback address per device behind shared
// 16992/16993 listeners (sim/device.Host), and one MEI socket per device
// (DIR/<uuid>/mei.sock) served by a single epoll goroutine (sim/mei.Fleet).
// An idle device costs memory only: no goroutine and no timer of its own.
//
// A fleet of one may instead bind its own LMS address (127.0.0.1:16992 by
// default) and put its MEI socket anywhere, as `amtd sim` does for a single
// device.
//
// RunAgents drives every device of a fleet through sim/agent (amtd's rpc-go
// client) against an activation server.
//
// Like the rest of sim/, the package never imports server packages.
package fleet

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/hello"
	"github.com/amtd-project/amtd/sim/mei"
	"github.com/amtd-project/amtd/sim/wsman"
)

// Ports of the shared fleet listeners.
const (
	DefaultHTTPPort = device.HTTPPort  // 16992
	DefaultTLSPort  = device.HTTPSPort // 16993
	// AnyPort asks for a free port (tests, or several fleets on one host).
	AnyPort = -1
)

// DefaultAddrBase is the first device address of a fleet.
var DefaultAddrBase = netip.MustParseAddr("127.1.0.1")

// DefaultSingleLMS is the LMS address of a single device.
const DefaultSingleLMS = "127.0.0.1:16992"

// DefaultHostnamePrefix names the simulated hosts: sim-0000, sim-0001, …
const DefaultHostnamePrefix = "sim-"

// MaxSocketPath is the longest Unix socket path Linux accepts (sun_path is
// 108 bytes with the terminating NUL).
const MaxSocketPath = 107

// Options configure a fleet. Firmware options apply to every device, on
// creation and again on every start (as a command line would).
type Options struct {
	// Dir holds the devices' state (required). It is created if needed.
	Dir string
	// Devices is how many devices run (default 1). Devices already in Dir
	// keep their UUID and index; new ones are created up to this count.
	Devices int

	// Single selects the single-device layout (Devices must be 1): the
	// device binds LMSAddr itself instead of sharing fleet listeners.
	Single bool
	// LMSAddr is the single device's HTTP address (default
	// 127.0.0.1:16992; port 0 picks a free port).
	LMSAddr string
	// MEIPath is the single device's MEI socket (default DIR/<uuid>/mei.sock).
	MEIPath string

	// AddrBase is the fleet's first device address (default 127.1.0.1);
	// device i gets the i-th address after it whose last byte is 1–254.
	// Addresses stay in 127.0.0.0/8.
	AddrBase netip.Addr
	// HTTPPort and TLSPort: the fleet's shared listeners on the wildcard
	// address (defaults 16992 and 16993; AnyPort picks free ports). For a
	// single device TLSPort is its 16993 port on the host of LMSAddr.
	HTTPPort, TLSPort int

	// Firmware identity and settings (empty: firmware defaults).
	Version, Build, SKU string
	// DNSSuffix is what DHCP option 15 gives each device.
	DNSSuffix string
	// TrustHashes are user root hashes (hex), at most firmware.MaxUserHashes.
	TrustHashes []string
	// TLSEnforced overrides the firmware default (AMT 19+: enforced).
	TLSEnforced *bool
	// HostnamePrefix names the simulated hosts (default "sim-"): device i's
	// host is prefix + its 4-digit index. RunAgents sends it as rpc-go's
	// host name; the AMT host name is left to provisioning.
	HostnamePrefix string

	// Latency delays every WS-MAN answer; MEILatency every MEI answer.
	Latency, MEILatency time.Duration
	// Faults are installed on every device's WS-MAN engine.
	Faults []wsman.FaultRule

	// Legacy setup (spec/legacy.md; see legacy.go). PKIDNSSuffix is the
	// MEBx PKI DNS suffix of every device; SetupPasswords the setup-mode
	// digest passwords (default: the empty password).
	PKIDNSSuffix   string
	SetupPasswords []string
	// SetupBin: each device still in pre-provisioning applies the next
	// unused record of this setup.bin at start, in index order, as with a
	// USB key (firmware.ApplySetupBin).
	SetupBin string
	// SetupMode "pki" or "psk": devices still in pre-provisioning are set
	// up as in the MEBx and start configuration (remote configuration on;
	// or a generated PID/PPS, listed in DIR/psk-pairs.csv for
	// `amtd psk import`; PSK needs firmware before 11.0).
	SetupMode string
	// Hello configures the hellos of devices in legacy setup (one shared
	// scheduler; its zero value is the real schedule to ProvisionServer
	// through the system resolver).
	Hello hello.Options
	// Network: the devices' addresses are their network interface (the
	// 802.3 TLS settings govern 16993), as a configuration server reaches
	// them, instead of the host's LMS view. Legacy setup needs it: the
	// server configures remote TLS and comes back on 16993.
	Network bool
	// CommitRestart: how long 16993 stays closed after CommitChanges ends
	// a legacy setup (device.Config.CommitRestart).
	CommitRestart time.Duration

	// CIRA turns on the devices' CIRA clients (cira.go); nil: devices
	// never call an MPS home.
	CIRA *CIRAOptions

	// Workers opening devices in parallel at start (default 32: opening
	// is dominated by fsync of the state files).
	Workers int
	// GenerateKey replaces RSA key generation (tests use cached keys).
	GenerateKey func(bits int) (*rsa.PrivateKey, error)
	// Logger; default discards.
	Logger *slog.Logger
}

// Device is one running simulated device.
type Device struct {
	// Index is the device's position in the fleet (stable across restarts).
	Index int
	UUID  string
	// LMSAddr is its WS-MAN HTTP address; LMSTLSAddr its HTTPS address
	// (for a single device on a free port: "" until TLS is active).
	LMSAddr, LMSTLSAddr string
	// MEIPath is its MEI socket (spec/heci.md §8).
	MEIPath string
	// Hostname is the simulated host's name (HostnamePrefix + index).
	Hostname string
	// StatePath is its JSON state file.
	StatePath string

	Firmware *firmware.Firmware
	Sim      *device.Device
}

// TLSAddr is the device's current HTTPS address.
func (d *Device) TLSAddr() string {
	if a := d.Sim.TLSAddr(); a != "" {
		return a
	}
	return d.LMSTLSAddr
}

// Fleet is a running set of simulated devices.
type Fleet struct {
	opts    Options
	log     *slog.Logger
	dir     string
	devices []*Device
	host    *device.Host // shared listeners (nil for a single device)
	mei     *mei.Fleet
	hellos  *hello.Scheduler
	lock    *dirLock

	httpAddr, tlsAddr string // shared listeners, as bound

	cancel    context.CancelFunc
	serveDone chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Start opens (or creates) the devices in opts.Dir and makes them
// reachable. ctx bounds the start only; the fleet runs until Close.
func Start(ctx context.Context, opts Options) (*Fleet, error) {
	o, err := opts.normalize()
	if err != nil {
		return nil, err
	}
	f := &Fleet{opts: o, log: o.Logger, dir: o.Dir}
	if err := f.start(ctx); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (o Options) normalize() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("fleet: a state folder is required")
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return o, fmt.Errorf("fleet: %w", err)
	}
	o.Dir = abs
	if o.Devices == 0 {
		o.Devices = 1
	}
	if o.Devices < 0 {
		return o, fmt.Errorf("fleet: %d devices", o.Devices)
	}
	if o.Single && o.Devices != 1 {
		return o, fmt.Errorf("fleet: a single-device layout (LMS address, MEI path) needs exactly one device, not %d", o.Devices)
	}
	if !o.Single && (o.LMSAddr != "" || o.MEIPath != "") {
		return o, errors.New("fleet: LMSAddr and MEIPath are for a single device")
	}
	if o.Single {
		if o.LMSAddr == "" {
			o.LMSAddr = DefaultSingleLMS
		}
		if _, _, err := net.SplitHostPort(o.LMSAddr); err != nil {
			return o, fmt.Errorf("fleet: LMS address %q: %w", o.LMSAddr, err)
		}
		if o.MEIPath != "" {
			if o.MEIPath, err = filepath.Abs(o.MEIPath); err != nil {
				return o, fmt.Errorf("fleet: %w", err)
			}
			if len(o.MEIPath) > MaxSocketPath {
				return o, fmt.Errorf("fleet: MEI socket path %q is %d bytes; Unix sockets allow at most %d", o.MEIPath, len(o.MEIPath), MaxSocketPath)
			}
		}
	}
	if !o.Single || o.MEIPath == "" {
		// every DIR/<uuid>/mei.sock has the same length
		p := mei.FleetSocketPath(o.Dir, "00000000-0000-0000-0000-000000000000")
		if len(p) > MaxSocketPath {
			return o, fmt.Errorf("fleet: state folder %q is too long for the MEI sockets in it (%s is %d bytes; Unix sockets allow %d): use a folder of at most %d bytes",
				o.Dir, filepath.Join("…", "<uuid>", "mei.sock"), len(p), MaxSocketPath, MaxSocketPath-(len(p)-len(o.Dir)))
		}
	}
	if !o.AddrBase.IsValid() {
		o.AddrBase = DefaultAddrBase
	}
	if !o.Single {
		if _, err := AddrAt(o.AddrBase, o.Devices-1); err != nil {
			return o, err
		}
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = DefaultHTTPPort
	}
	if o.TLSPort == 0 {
		o.TLSPort = DefaultTLSPort
	}
	for _, p := range []int{o.HTTPPort, o.TLSPort} {
		if p != AnyPort && (p < 1 || p > 65535) {
			return o, fmt.Errorf("fleet: port %d", p)
		}
	}
	if len(o.TrustHashes) > firmware.MaxUserHashes {
		return o, fmt.Errorf("fleet: at most %d trust hashes (as the MEBx allows), got %d", firmware.MaxUserHashes, len(o.TrustHashes))
	}
	if o.HostnamePrefix == "" {
		o.HostnamePrefix = DefaultHostnamePrefix
	}
	switch o.SetupMode {
	case "", SetupPKI, SetupPSK:
	default:
		return o, fmt.Errorf("fleet: setup mode %q (pki or psk)", o.SetupMode)
	}
	if o.SetupMode != "" && o.SetupBin != "" {
		return o, errors.New("fleet: a setup.bin and a setup mode exclude each other (the file says how the devices are set up)")
	}
	if o.SetupBin != "" {
		if o.SetupBin, err = filepath.Abs(o.SetupBin); err != nil {
			return o, fmt.Errorf("fleet: %w", err)
		}
	}
	if o.CIRA != nil {
		c := *o.CIRA
		if err := c.normalize(); err != nil {
			return o, err
		}
		o.CIRA = &c
	}
	if o.Workers <= 0 {
		o.Workers = 32
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

func portString(p int) string {
	if p == AnyPort {
		return "0"
	}
	return strconv.Itoa(p)
}

func (f *Fleet) start(ctx context.Context) error {
	o := f.opts
	lock, err := lockDir(o.Dir)
	if err != nil {
		return err
	}
	f.lock = lock
	uuids, err := loadUUIDs(o.Dir, o.Devices)
	if err != nil {
		return err
	}

	if !o.Single {
		f.host = device.NewHost(o.Logger)
		if f.httpAddr, err = f.host.ListenLoopback(ctx, portString(o.HTTPPort)); err != nil {
			return fmt.Errorf("fleet: HTTP listener: %w", err)
		}
		if f.tlsAddr, err = f.host.ListenLoopback(ctx, portString(o.TLSPort)); err != nil {
			return fmt.Errorf("fleet: TLS listener: %w", err)
		}
	}
	if f.mei, err = mei.NewFleet(o.Logger); err != nil {
		return err
	}
	ho := o.Hello
	if ho.Logger == nil {
		ho.Logger = o.Logger
	}
	if f.hellos, err = hello.New(ho); err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	serveCtx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.serveDone = make(chan struct{})
	go func() {
		defer close(f.serveDone)
		if err := f.mei.Serve(serveCtx); err != nil {
			f.log.Error("fleet: MEI sockets", "err", err)
		}
	}()

	f.devices = make([]*Device, len(uuids))
	var next atomic.Int64
	var firstErr error
	var errMu sync.Mutex
	var wg sync.WaitGroup
	workers := min(o.Workers, len(uuids))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(uuids) {
					return
				}
				errMu.Lock()
				stop := firstErr != nil
				errMu.Unlock()
				if stop {
					return
				}
				if err := ctx.Err(); err != nil {
					errMu.Lock()
					firstErr = cmpErr(firstErr, err)
					errMu.Unlock()
					return
				}
				d, err := f.startDevice(i, uuids[i])
				if err != nil {
					errMu.Lock()
					firstErr = cmpErr(firstErr, err)
					errMu.Unlock()
					return
				}
				f.devices[i] = d
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := f.legacySetup(ctx); err != nil {
		return err
	}
	f.log.Info("fleet started", "devices", len(f.devices), "dir", o.Dir)
	return nil
}

func cmpErr(old, e error) error {
	if old != nil {
		return old
	}
	return e
}

// startDevice opens device i's state and makes it reachable.
func (f *Fleet) startDevice(i int, uuid string) (*Device, error) {
	o := f.opts
	d := &Device{Index: i, UUID: uuid, StatePath: firmware.DevicePath(o.Dir, uuid),
		Hostname: o.HostnamePrefix + fmt.Sprintf("%04d", i)}
	fw, err := firmware.Open(firmware.Config{
		Path: d.StatePath, UUID: uuid,
		Version: o.Version, Build: o.Build, SKU: o.SKU,
		TLSEnforced: o.TLSEnforced, DNSSuffix: o.DNSSuffix, TrustHashes: o.TrustHashes,
		PKIDNSSuffix: o.PKIDNSSuffix, SetupPasswords: o.SetupPasswords,
		GenerateKey: o.GenerateKey, Logger: o.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("fleet: device %d (%s): %w", i, uuid, err)
	}
	if fw.UUIDString() != uuid {
		return nil, fmt.Errorf("fleet: %s holds device %s, not %s", d.StatePath, fw.UUIDString(), uuid)
	}
	d.Firmware = fw
	cfg := device.Config{Firmware: fw, LMS: !o.Network, Latency: o.Latency, Logger: o.Logger,
		Hellos: f.hellos, CommitRestart: o.CommitRestart}
	var src netip.Addr // CIRA source address: the device's own (fleet layout)
	if o.Single {
		host, _, _ := net.SplitHostPort(o.LMSAddr)
		cfg.Addrs = []string{o.LMSAddr}
		cfg.TLSAddrs = []string{net.JoinHostPort(host, portString(o.TLSPort))}
	} else {
		ip, err := AddrAt(o.AddrBase, i)
		if err != nil {
			return nil, err
		}
		_, hp, _ := net.SplitHostPort(f.httpAddr)
		_, tp, _ := net.SplitHostPort(f.tlsAddr)
		cfg.Host = f.host
		cfg.Addrs = []string{net.JoinHostPort(ip.String(), hp)}
		cfg.TLSAddrs = []string{net.JoinHostPort(ip.String(), tp)}
		src = ip
	}
	if o.CIRA != nil {
		cfg.CIRA = f.ciraOptions(i, uuid, src)
	}
	sim, err := device.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("fleet: device %d: %w", i, err)
	}
	for _, r := range o.Faults {
		sim.AddFault(r)
	}
	// Background: the fleet closes its devices itself, and a context that
	// is never cancelled costs the device nothing.
	if err := sim.Start(context.Background()); err != nil {
		return nil, fmt.Errorf("fleet: device %d (%s): %w", i, uuid, err)
	}
	d.Sim = sim
	d.LMSAddr = sim.Addr()
	if a := sim.TLSAddr(); a != "" {
		d.LMSTLSAddr = a
	} else if !strings.HasSuffix(cfg.TLSAddrs[0], ":0") {
		d.LMSTLSAddr = cfg.TLSAddrs[0]
	}
	d.MEIPath = mei.FleetSocketPath(o.Dir, uuid)
	if o.Single && o.MEIPath != "" {
		d.MEIPath = o.MEIPath
	}
	srv := mei.NewServer(fw, mei.Options{Logger: o.Logger, Latency: o.MEILatency})
	if err := f.mei.Add(d.MEIPath, srv); err != nil {
		sim.Close()
		d.Sim = nil
		return nil, fmt.Errorf("fleet: device %d MEI socket: %w", i, err)
	}
	return d, nil
}

// Devices are the running devices in index order.
func (f *Fleet) Devices() []*Device { return f.devices }

// Dir is the fleet's state folder (absolute).
func (f *Fleet) Dir() string { return f.dir }

// Listeners are the shared HTTP and TLS listener addresses ("" for a single
// device).
func (f *Fleet) Listeners() (httpAddr, tlsAddr string) { return f.httpAddr, f.tlsAddr }

// Close stops every device, removes the MEI sockets and releases the
// folder. Device state is on disk already (every change is persisted when
// it happens).
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		var wg sync.WaitGroup
		sem := make(chan struct{}, max(1, runtime.GOMAXPROCS(0)*4))
		for _, d := range f.devices {
			if d == nil || d.Sim == nil {
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() { // Close waits for a device's open connections
				defer wg.Done()
				defer func() { <-sem }()
				d.Sim.Close()
			}()
		}
		wg.Wait()
		if f.hellos != nil {
			f.hellos.Close()
		}
		if f.host != nil {
			f.closeErr = f.host.Close()
		}
		if f.mei != nil {
			if err := f.mei.Close(); err != nil && f.closeErr == nil {
				f.closeErr = err
			}
		}
		if f.cancel != nil {
			f.cancel()
			<-f.serveDone
		}
		if f.lock != nil {
			f.lock.release()
		}
	})
	return f.closeErr
}
