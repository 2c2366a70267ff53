package fleet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/sim/cira"
)

// CIRAOptions turn on the devices' CIRA clients (package sim/cira). A
// device whose firmware is configured for CIRA — provisioned, an MPS added
// with AddMpServer, a policy, environment detection saying "outside", as an
// activation with a CIRA configuration leaves it — calls its MPS home,
// keeps the connection alive and serves WS-MAN and redirection over it.
//
// In the fleet layout each device dials from its own loopback address, as
// separate machines would: the server sees one source address per device,
// and ephemeral ports last however many devices connect.
type CIRAOptions struct {
	// Server, when set, is the address (host:port) every device dials
	// instead of the MPS address its firmware holds, which usually names a
	// host that does not resolve where the simulator runs. The device still
	// checks the server certificate against the configured name.
	Server string
	// TimeScale multiplies the protocol durations (keepalive interval,
	// periodic policy, backoff bounds); default 1 (real time).
	TimeScale float64
	// MinBackoff and MaxBackoff bound the delay before a reconnection
	// (sim/cira defaults when zero).
	MinBackoff, MaxBackoff time.Duration
	// Observer, when set, is told about every device's connection events.
	// It runs on the clients' goroutines and must not block.
	Observer func(CIRAEvent)
}

// CIRAEvent is a CIRA client event of one device of the fleet.
type CIRAEvent struct {
	// Index and UUID name the device.
	Index int
	UUID  string
	cira.Event
	// Time is when the event happened. Dialed, for EventConnected and
	// EventAttemptFailed, is when the attempt began to dial the server:
	// Time - Dialed is the connection's handshake time (TCP, TLS and APF
	// up to the last port forward).
	Time, Dialed time.Time
}

// Handshake is Time - Dialed, or 0 when the event has no dial time.
func (e CIRAEvent) Handshake() time.Duration {
	if e.Dialed.IsZero() {
		return 0
	}
	return e.Time.Sub(e.Dialed)
}

func (c *CIRAOptions) normalize() error {
	if c.Server != "" {
		if _, _, err := net.SplitHostPort(c.Server); err != nil {
			return fmt.Errorf("fleet: CIRA server %q: %w", c.Server, err)
		}
	}
	if c.TimeScale < 0 {
		return errors.New("fleet: CIRA time scale must not be negative")
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("fleet: CIRA backoff bounds must not be negative")
	}
	return nil
}

// ciraOptions are device i's CIRA client options: dial from src (when
// valid) to the fleet's server or the configured one, and report events
// with the dial time of the attempt.
func (f *Fleet) ciraOptions(i int, uuid string, src netip.Addr) *cira.Options {
	o := f.opts.CIRA
	var dialed atomic.Int64 // UnixNano of the current attempt's dial
	dialer := &net.Dialer{}
	if src.IsValid() {
		dialer.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	co := &cira.Options{
		TimeScale: o.TimeScale, MinBackoff: o.MinBackoff, MaxBackoff: o.MaxBackoff, Logger: f.log,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if o.Server != "" {
				addr = o.Server
			}
			dialed.Store(time.Now().UnixNano())
			return dialer.DialContext(ctx, network, addr)
		},
	}
	if o.Observer != nil {
		co.Observer = func(e cira.Event) {
			ev := CIRAEvent{Index: i, UUID: uuid, Event: e, Time: time.Now()}
			if e.Kind == cira.EventConnected || e.Kind == cira.EventAttemptFailed {
				if ns := dialed.Load(); ns != 0 {
					ev.Dialed = time.Unix(0, ns)
				}
			}
			o.Observer(ev)
		}
	}
	return co
}
