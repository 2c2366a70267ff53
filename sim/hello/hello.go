// Package hello sends the hellos of simulated Intel AMT devices in legacy
// setup (spec/legacy.md §2–§4, §13): a device whose configuration was
// started (setup.bin, MEBx, PTHI StartConfigurationEx; package
// sim/firmware) announces itself to the configuration server with up to 15
// hellos — one per minute ×5, one every 10 minutes ×5, one per hour ×5,
// retry count 0–14 — and, if nobody configures it, closes its setup window
// an hour after the last one. A time scale makes the schedule usable in
// tests.
//
// Each hello goes to the first of (legacy.md §2): the address given to the
// Scheduler as configuration (Options.Server), the device's configured
// address (setup.bin 2.17 / MEBx), its configured FQDN (2.4), then a DNS
// look-up of ProvisionServer.<domain> with the domain entered in the MEBx
// (the AMT domain name; bare "ProvisionServer" when blank) and, failing
// that, ProvisionServer.<DHCP option 15 domain>. Port: the device's
// configured port, else Options.Port (9971). The device connects, writes
// the hello (version 3 with its active root hashes, at most 23 by default;
// version 2 with its PID in PSK mode), half-closes, and waits for the
// server to close.
//
// One Scheduler serves a whole fleet: one goroutine keeps the devices in
// setup in a timer heap, and hellos are sent by at most Options.Workers
// short-lived goroutines. A device that is not in setup costs nothing.
//
// Like the rest of sim/, the package never imports server packages; it
// shares the hello codec (internal/legacy/hello) with the server.
package hello

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/hello"
	"github.com/amtd-project/amtd/sim/firmware"
)

// Defaults.
const (
	DefaultPort          = firmware.DefaultHelloPort // 9971
	DefaultMaxHashes     = 23                        // "at most 23 for backward compatibility" (legacy.md §3.2)
	DefaultWorkers       = 64
	DefaultDialTimeout   = 10 * time.Second
	DefaultLingerTimeout = 10 * time.Second
)

// DefaultSchedule returns the wait before each of the 15 hellos of one
// setup window (legacy.md §4): the first at once, then 4 × 1 minute, 5 ×
// 10 minutes, 5 × 1 hour.
func DefaultSchedule() []time.Duration {
	s := []time.Duration{0}
	for range 4 {
		s = append(s, time.Minute)
	}
	for range 5 {
		s = append(s, 10*time.Minute)
	}
	for range 5 {
		s = append(s, time.Hour)
	}
	return s
}

// DefaultCloseAfter is how long after the last hello the setup window
// closes when nobody configured the device.
const DefaultCloseAfter = time.Hour

// Options configure a Scheduler. Zero values take the defaults.
type Options struct {
	// Server is the configuration server given as configuration, "host",
	// "host:port" or "ip:port"; it takes precedence over what the devices
	// hold. "" uses each device's own settings and DNS.
	Server string
	// Port is used when neither Server nor the device gives one (9971).
	Port int
	// DNSServer ("ip:port") answers the ProvisionServer look-ups instead of
	// the system resolver; Resolver overrides both.
	DNSServer string
	Resolver  *net.Resolver

	// Schedule is the wait before each hello (DefaultSchedule); its length
	// is the number of hellos, the retry count runs 0 … len-1.
	Schedule []time.Duration
	// CloseAfter: after the last hello, how long until the setup window
	// closes (DefaultCloseAfter); negative: never.
	CloseAfter time.Duration
	// TimeScale divides Schedule and CloseAfter: 60 turns minutes into
	// seconds. Default 1.
	TimeScale float64

	// MaxHashes caps the hashes of a version 3 hello (23; 24 like newer
	// firmware).
	MaxHashes int
	// Workers bounds the hellos in flight (64).
	Workers int
	// DialTimeout bounds the DNS look-up and the connection (10 s);
	// LingerTimeout the wait for the server to close after the hello (10 s).
	DialTimeout, LingerTimeout time.Duration

	Logger *slog.Logger
	// OnSend, when set, is called after every hello attempt (from the
	// sending goroutine).
	OnSend func(Attempt)
}

// Attempt describes one hello.
type Attempt struct {
	UUID    string
	Retry   int
	Version int
	// Target is the address the hello was sent to ("" when none was found);
	// Via says how it was found ("configured address", "DNS
	// ProvisionServer.corp.example.com", …).
	Target, Via string
	Err         error
}

// Scheduler sends the hellos of any number of devices.
type Scheduler struct {
	o          Options
	log        *slog.Logger
	resolver   *net.Resolver
	gaps       []time.Duration
	closeAfter time.Duration

	mu      sync.Mutex
	entries map[*firmware.Firmware]*entry
	h       entryHeap
	closed  bool

	wake   chan struct{}
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type entry struct {
	fw      *firmware.Firmware
	from    netip.Addr
	epoch   uint64
	next    int // retry count of the next hello; len(gaps) = the closing step
	due     time.Time
	idx     int // position in the heap, -1 when not in it
	busy    bool
	removed bool
}

// Validate checks the options as New does.
func (o Options) Validate() error {
	_, err := o.withDefaults()
	return err
}

func (o Options) withDefaults() (Options, error) {
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.Port < 1 || o.Port > 65535 {
		return o, fmt.Errorf("hello: port %d", o.Port)
	}
	if o.TimeScale == 0 {
		o.TimeScale = 1
	}
	if o.TimeScale < 0 {
		return o, fmt.Errorf("hello: time scale %g", o.TimeScale)
	}
	if o.Schedule == nil {
		o.Schedule = DefaultSchedule()
	}
	if len(o.Schedule) == 0 || len(o.Schedule) > 255 {
		return o, fmt.Errorf("hello: a schedule of %d hellos", len(o.Schedule))
	}
	if o.CloseAfter == 0 {
		o.CloseAfter = DefaultCloseAfter
	}
	if o.MaxHashes == 0 {
		o.MaxHashes = DefaultMaxHashes
	}
	if o.MaxHashes < 0 || o.MaxHashes > hello.MaxHashes {
		return o, fmt.Errorf("hello: at most %d hashes", hello.MaxHashes)
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.LingerTimeout <= 0 {
		o.LingerTimeout = DefaultLingerTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Server != "" {
		if _, _, err := splitServer(o.Server, 0); err != nil {
			return o, err
		}
	}
	if o.DNSServer != "" && o.Resolver == nil {
		if _, err := netip.ParseAddrPort(o.DNSServer); err != nil {
			return o, fmt.Errorf("hello: DNS server %q: want ip:port", o.DNSServer)
		}
	}
	for _, g := range o.Schedule {
		if g < 0 {
			return o, errors.New("hello: negative wait in the schedule")
		}
	}
	return o, nil
}

// New starts a scheduler; Close stops it.
func New(o Options) (*Scheduler, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Scheduler{o: o, log: o.Logger, entries: map[*firmware.Firmware]*entry{},
		wake: make(chan struct{}, 1), sem: make(chan struct{}, o.Workers)}
	switch {
	case o.Resolver != nil:
		s.resolver = o.Resolver
	case o.DNSServer != "":
		server := o.DNSServer
		s.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, server)
		}}
	default:
		s.resolver = net.DefaultResolver
	}
	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) / o.TimeScale) }
	for _, g := range o.Schedule {
		s.gaps = append(s.gaps, scale(g))
	}
	s.closeAfter = -1
	if o.CloseAfter > 0 {
		s.closeAfter = scale(o.CloseAfter)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s, nil
}

// Close stops the scheduler and waits for hellos in flight.
func (s *Scheduler) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Track brings a device's hellos in line with its firmware: while the
// firmware's legacy setup window is open (firmware.LegacyStatus().Active)
// the device is scheduled — from retry 0 when the window (re)opened since
// the last call — and otherwise it is dropped. from is the local address
// hellos are sent from (the device's IP, so that the server connects back
// to it); an invalid address lets the system choose. Call it when the
// device starts and on its firmware's EventLegacySetupChanged and
// EventProvisioningChanged.
func (s *Scheduler) Track(fw *firmware.Firmware, from netip.Addr) {
	st := fw.LegacyStatus()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	old := s.entries[fw]
	if !st.Active {
		if old != nil {
			s.removeLocked(old)
		}
		return
	}
	if old != nil && old.epoch == st.Epoch {
		old.from = from
		return
	}
	if old != nil {
		s.removeLocked(old)
	}
	e := &entry{fw: fw, from: from, epoch: st.Epoch, due: time.Now().Add(s.gaps[0]), idx: -1}
	s.entries[fw] = e
	heap.Push(&s.h, e)
	s.poke()
}

// Untrack drops a device (it stops).
func (s *Scheduler) Untrack(fw *firmware.Firmware) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[fw]; e != nil {
		s.removeLocked(e)
	}
}

// Scheduled reports whether the device has hellos (or its window closing)
// ahead.
func (s *Scheduler) Scheduled(fw *firmware.Firmware) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[fw] != nil
}

// Len is the number of devices in setup being scheduled.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *Scheduler) removeLocked(e *entry) {
	if s.entries[e.fw] == e {
		delete(s.entries, e.fw)
	}
	e.removed = true
	if !e.busy && e.idx >= 0 {
		heap.Remove(&s.h, e.idx)
	}
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) run() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		var due []*entry
		for len(s.h) > 0 && !s.h[0].due.After(now) {
			e := heap.Pop(&s.h).(*entry)
			e.busy = true
			due = append(due, e)
		}
		wait := time.Duration(-1)
		if len(s.h) > 0 {
			wait = s.h[0].due.Sub(now)
		}
		s.mu.Unlock()
		for _, e := range due {
			select {
			case s.sem <- struct{}{}:
			case <-s.ctx.Done():
				return
			}
			s.wg.Add(1)
			go s.fire(e)
		}
		if len(due) > 0 {
			continue // time passed while waiting for workers
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-s.wake:
			timer.Stop()
		case <-s.ctx.Done():
			timer.Stop()
			return
		}
	}
}

// fire sends one hello, or closes the window after the last one.
func (s *Scheduler) fire(e *entry) {
	defer s.wg.Done()
	defer func() { <-s.sem }()
	s.mu.Lock() // Track may change from meanwhile
	from, retry, epoch := e.from, e.next, e.epoch
	s.mu.Unlock()
	st := e.fw.LegacyStatus()
	if !st.Active || st.Epoch != epoch {
		s.finish(e, true)
		return
	}
	if retry >= len(s.gaps) {
		e.fw.CloseSetupWindow(epoch)
		s.finish(e, true)
		return
	}
	a := s.send(s.ctx, e.fw, from, retry)
	if s.ctx.Err() == nil {
		if a.Err != nil {
			e.fw.RecordLegacyEvent(firmware.LegacyHelloFailed, fmt.Sprintf("hello retry %d: %v", a.Retry, a.Err))
		} else {
			e.fw.RecordLegacyEvent(firmware.LegacyHelloSent, fmt.Sprintf("hello retry %d (version %d) sent to %s (%s)", a.Retry, a.Version, a.Target, a.Via))
		}
		if s.o.OnSend != nil {
			s.o.OnSend(a)
		}
	}
	s.finish(e, false)
}

func (s *Scheduler) finish(e *entry, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.busy = false
	if drop || e.removed || s.entries[e.fw] != e {
		if s.entries[e.fw] == e {
			delete(s.entries, e.fw)
		}
		return
	}
	e.next++
	var gap time.Duration
	switch {
	case e.next < len(s.gaps):
		gap = s.gaps[e.next]
	case s.closeAfter < 0:
		delete(s.entries, e.fw) // the window never closes by itself
		return
	default:
		gap = s.closeAfter
	}
	e.due = e.due.Add(gap)
	if now := time.Now(); e.due.Before(now) {
		e.due = now
	}
	heap.Push(&s.h, e)
	s.poke()
}

// Build returns the hello a device in setup sends now with the given retry
// count: version 2 with its PID in PSK setup, version 3 with its active
// trusted root hashes (table order, at most maxHashes) in PKI setup.
func Build(fw *firmware.Firmware, retry, maxHashes int) (*hello.Hello, error) {
	st := fw.LegacyStatus()
	h := &hello.Hello{AdminCredentialsSet: fw.AdminCredentialsSet(), RetryCount: uint32(retry), UUID: hello.UUID(fw.UUID())}
	switch st.Mode {
	case firmware.SetupPSK:
		pid, _, ok := fw.PSKCredentials()
		if !ok {
			return nil, errors.New("hello: PSK setup without PID")
		}
		h.Version, h.PID = hello.VersionPSK, pid
	case firmware.SetupPKI:
		h.Version = hello.VersionPKI
		for _, e := range fw.CertHashes() {
			if !e.IsActive || len(h.Hashes) >= maxHashes {
				continue
			}
			t := hello.HashType(e.Algorithm)
			if t.Size() == 0 || t.Size() != len(e.Hash) {
				continue
			}
			h.Hashes = append(h.Hashes, hello.HashEntry{Type: t, Hash: e.Hash})
		}
	default:
		return nil, errors.New("hello: the device is not in legacy setup")
	}
	return h, nil
}

// Send sends one hello now, outside the schedule (tests, tools): the
// device must be in legacy setup. The attempt is not recorded in the
// device's legacy log.
func (s *Scheduler) Send(ctx context.Context, fw *firmware.Firmware, from netip.Addr, retry int) Attempt {
	return s.send(ctx, fw, from, retry)
}

// send delivers one hello to the first server found.
func (s *Scheduler) send(ctx context.Context, fw *firmware.Firmware, from netip.Addr, retry int) Attempt {
	a := Attempt{UUID: fw.UUIDString(), Retry: retry}
	h, err := Build(fw, retry, s.o.MaxHashes)
	if err != nil {
		a.Err = err
		return a
	}
	a.Version = h.Version
	msg, err := h.Encode()
	if err != nil {
		a.Err = err
		return a
	}
	dctx, cancel := context.WithTimeout(ctx, s.o.DialTimeout)
	defer cancel()
	addrs, via, err := s.discover(dctx, fw)
	a.Via = via
	if err != nil {
		a.Err = err
		return a
	}
	var errs []error
	for _, ap := range addrs {
		a.Target = ap.String()
		err := s.deliver(dctx, ctx, from, ap, msg)
		if err == nil {
			a.Err = nil
			return a
		}
		errs = append(errs, err)
	}
	a.Err = errors.Join(errs...)
	return a
}

// deliver connects, writes the hello, half-closes and waits for the server
// to close (legacy.md §5: the server may process on close or at once).
func (s *Scheduler) deliver(dctx, ctx context.Context, from netip.Addr, to netip.AddrPort, msg []byte) error {
	d := net.Dialer{}
	if from.IsValid() && !from.IsUnspecified() && from.IsLoopback() == to.Addr().IsLoopback() && from.Is4() == to.Addr().Is4() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
	}
	conn, err := d.DialContext(dctx, "tcp", to.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(s.o.LingerTimeout))
	if _, err := conn.Write(msg); err != nil {
		return fmt.Errorf("writing the hello to %s: %w", to, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	// the hello is delivered; wait (bounded) for the server to close
	_, _ = io.Copy(io.Discard, io.LimitReader(conn, 64<<10))
	return nil
}

// discover finds the configuration server (legacy.md §2).
func (s *Scheduler) discover(ctx context.Context, fw *firmware.Firmware) ([]netip.AddrPort, string, error) {
	cAddr, cPort, cFQDN := fw.ProvisioningServer()
	port := s.o.Port
	if cPort != 0 {
		port = cPort
	}
	if s.o.Server != "" {
		host, p, _ := splitServer(s.o.Server, port)
		addrs, err := s.resolve(ctx, host, p)
		return addrs, "configured server " + s.o.Server, err
	}
	if cAddr != "" {
		a, err := netip.ParseAddr(cAddr)
		if err != nil {
			return nil, "configured address", fmt.Errorf("configured address %q: %w", cAddr, err)
		}
		return []netip.AddrPort{netip.AddrPortFrom(a, uint16(port))}, "configured address", nil
	}
	if cFQDN != "" {
		addrs, err := s.resolve(ctx, cFQDN, port)
		return addrs, "configured FQDN " + cFQDN, err
	}
	var domain, dhcp string
	fw.View(func(st *firmware.State) { domain, dhcp = st.Network.DomainName, st.Network.DHCPDomain })
	names := []string{"ProvisionServer"}
	if d := strings.Trim(domain, ". "); d != "" {
		names[0] = "ProvisionServer." + d
	}
	if d := strings.Trim(dhcp, ". "); d != "" && !strings.EqualFold(d, strings.Trim(domain, ". ")) {
		names = append(names, "ProvisionServer."+d)
	}
	var errs []error
	for _, n := range names {
		addrs, err := s.resolve(ctx, n, port)
		if err == nil {
			return addrs, "DNS " + n, nil
		}
		errs = append(errs, err)
	}
	return nil, "DNS " + strings.Join(names, ", "), fmt.Errorf("no configuration server found: %w", errors.Join(errs...))
}

// resolve looks a name up as a fully qualified name (no search list, as a
// device has none), IPv4 first; an IP address is returned as is.
func (s *Scheduler) resolve(ctx context.Context, host string, port int) ([]netip.AddrPort, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), uint16(port))}, nil
	}
	ips, err := s.resolver.LookupNetIP(ctx, "ip", strings.TrimSuffix(host, ".")+".")
	if err != nil {
		return nil, fmt.Errorf("look-up of %s: %w", host, err)
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int { return cmp.Compare(boolInt(!a.Unmap().Is4()), boolInt(!b.Unmap().Is4())) })
	out := make([]netip.AddrPort, 0, len(ips))
	for _, ip := range ips {
		out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("look-up of %s: no address", host)
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// splitServer parses "host", "host:port" or "[v6]:port".
func splitServer(s string, defPort int) (string, int, error) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || h == "" {
			return "", 0, fmt.Errorf("hello: server %q: bad port", s)
		}
		return h, n, nil
	}
	if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " /") {
		return "", 0, fmt.Errorf("hello: server %q", s)
	}
	return strings.Trim(s, "[]"), defPort, nil
}

// entryHeap orders entries by due time.
type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.idx = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.idx = -1
	*h = old[:len(old)-1]
	return e
}
