package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/fleet"
)

// simCIRAConfig is `amtd sim`'s CIRA client settings.
type simCIRAConfig struct {
	Enabled   bool
	Server    string
	TimeScale float64
	Log       string
}

func (c *simCIRAConfig) addFlags(fs *cli.FlagSet) {
	fs.BoolVar(&c.Enabled, "cira", false, "run the devices' CIRA clients: a device configured for CIRA (by an activation with a CIRA\n"+
		"config) calls its MPS home and keeps the connection alive; in a fleet each device dials from its own address")
	fs.StringVar(&c.Server, "cira-server", "", "CIRA: dial `HOST:PORT` instead of the MPS address the devices were given (the server\n"+
		"certificate is still checked against that name); implies --cira")
	fs.Float64Var(&c.TimeScale, "cira-timescale", 1, "CIRA: multiply the keepalive interval, the periodic policy and the backoff by this\n(0.01 turns 30 s into 300 ms)")
	fs.StringVar(&c.Log, "cira-log", "", "CIRA: append one CSV line per connection event to `FILE`:\n"+
		"unix_ns,index,uuid,event,dial_unix_ns,error (event: connected, disconnected, failed, stopped); implies --cira")
}

// options checks the flags; nil when CIRA is off.
func (c simCIRAConfig) options() (*fleet.CIRAOptions, error) {
	if !c.Enabled && c.Server == "" && c.Log == "" {
		return nil, nil
	}
	if c.TimeScale <= 0 {
		return nil, fmt.Errorf("--cira-timescale must be positive, not %g", c.TimeScale)
	}
	o := &fleet.CIRAOptions{Server: c.Server, TimeScale: c.TimeScale}
	if c.Server != "" {
		if _, _, err := net.SplitHostPort(c.Server); err != nil {
			return nil, fmt.Errorf("--cira-server: %w", err)
		}
	}
	return o, nil
}

// ciraRecorder counts the fleet's CIRA events, keeps the handshake time of
// each device's first connection, and writes the --cira-log lines.
type ciraRecorder struct {
	mu          sync.Mutex
	log         *os.File
	logErr      error
	connected   map[int]bool
	first       map[int]time.Duration // device index → handshake of its first connection
	firstDial   time.Time
	lastFirst   time.Time // the latest first connection
	connections int
	disconnects int
	failures    int
	reported    bool
}

// startCIRARecorder opens the log (if any) and installs the recorder as the
// fleet's CIRA observer; nil (a recorder that reports nothing) when CIRA is
// off.
func startCIRARecorder(c simCIRAConfig, o *fleet.CIRAOptions) (*ciraRecorder, error) {
	if o == nil {
		return nil, nil
	}
	r := &ciraRecorder{connected: map[int]bool{}, first: map[int]time.Duration{}}
	if c.Log != "" {
		f, err := os.OpenFile(c.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--cira-log: %w", err)
		}
		r.log = f
	}
	o.Observer = r.observe
	return r, nil
}

func (r *ciraRecorder) observe(e fleet.CIRAEvent) {
	var kind string
	switch e.Kind {
	case cira.EventConnected:
		kind = "connected"
	case cira.EventDisconnected:
		kind = "disconnected"
	case cira.EventAttemptFailed:
		kind = "failed"
	case cira.EventStopped:
		kind = "stopped"
	default:
		return // keepalive options, retry scheduling
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Kind {
	case cira.EventConnected:
		r.connections++
		r.connected[e.Index] = true
		if _, seen := r.first[e.Index]; !seen {
			r.first[e.Index] = e.Handshake()
			if r.firstDial.IsZero() || e.Dialed.Before(r.firstDial) {
				r.firstDial = e.Dialed
			}
			r.lastFirst = e.Time
		}
	case cira.EventDisconnected:
		r.disconnects++
		delete(r.connected, e.Index)
	case cira.EventAttemptFailed:
		r.failures++
		if r.firstDial.IsZero() || (!e.Dialed.IsZero() && e.Dialed.Before(r.firstDial)) {
			r.firstDial = e.Dialed
		}
	}
	if r.log == nil || r.logErr != nil {
		return
	}
	var dial int64
	if !e.Dialed.IsZero() {
		dial = e.Dialed.UnixNano()
	}
	msg := ""
	if e.Err != nil {
		msg = strings.NewReplacer(",", ";", "\n", " ").Replace(e.Err.Error())
	}
	_, r.logErr = fmt.Fprintf(r.log, "%d,%d,%s,%s,%d,%s\n", e.Time.UnixNano(), e.Index, e.UUID, kind, dial, msg)
}

// report prints the summary and closes the log, once; later calls and a nil
// recorder do nothing.
func (r *ciraRecorder) report(w io.Writer, devices int, log *slog.Logger) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reported {
		return
	}
	r.reported = true
	hs := make([]time.Duration, 0, len(r.first))
	for _, d := range r.first {
		hs = append(hs, d)
	}
	slices.Sort(hs)
	fmt.Fprintf(w, "cira: %d of %d devices connected at exit; %d connections, %d disconnections, %d failed attempts\n",
		len(r.connected), devices, r.connections, r.disconnects, r.failures)
	if n := len(hs); n > 0 {
		span := r.lastFirst.Sub(r.firstDial)
		rate := ""
		if span > 0 {
			rate = fmt.Sprintf(", %.0f/s", float64(n)/span.Seconds())
		}
		fmt.Fprintf(w, "cira: first connections of %d devices in %s from the first dial%s; handshake p50 %s, p99 %s, max %s\n",
			n, span.Round(time.Millisecond), rate, rank(hs, 50).Round(time.Microsecond), rank(hs, 99).Round(time.Microsecond),
			hs[n-1].Round(time.Microsecond))
	}
	if r.log != nil {
		if err := errors.Join(r.logErr, r.log.Close()); err != nil {
			log.Warn("--cira-log", "err", err)
		}
		r.log = nil
	}
}

// rank is the nearest-rank percentile p (1..100) of sorted durations.
func rank(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100
	return sorted[max(i, 1)-1]
}
