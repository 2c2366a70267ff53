package cira

import (
	"sync"
	"time"
)

// deadline is a settable point in time with a channel that is closed when
// it passes (the mechanism net.Pipe uses for its deadlines). The zero value
// has no deadline.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passes; nil until needed
}

// set arms the deadline; the zero time disarms it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		// The timer fired (or is firing): its channel is closed or about to
		// be; start afresh.
		d.cancel = nil
	}
	d.timer = nil
	if d.cancel != nil {
		select {
		case <-d.cancel:
			d.cancel = nil
		default:
		}
	}
	if t.IsZero() {
		return
	}
	if d.cancel == nil {
		d.cancel = make(chan struct{})
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.cancel)
		return
	}
	c := d.cancel
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.cancel == c {
			close(c)
		}
	})
}

// wait returns a channel closed once the deadline has passed; nil (blocks
// forever in a select) when no deadline is set.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

// exceeded reports whether the deadline has passed.
func (d *deadline) exceeded() bool {
	select {
	case <-d.wait():
		return true
	default:
		return false
	}
}

// stop releases the timer.
func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
