package relay_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	simcira "github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/device"
)

// rawDevice serves the redirection port behind the simulator's CIRA client
// with a minimal session manager (any session start and any login are
// accepted) followed by a raw byte service: the relay is measured, not the
// simulated console.
type rawDevice struct {
	d *device.Device
	// serve runs after the login on the channel.
	serve func(conn net.Conn)
}

func (r *rawDevice) ChannelHandler(port uint16) func(ctx context.Context, conn net.Conn) {
	if port != 16994 {
		return r.d.ChannelHandler(port)
	}
	return func(ctx context.Context, conn net.Conn) {
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		start := make([]byte, 8)
		if _, err := io.ReadFull(conn, start); err != nil || start[0] != 0x10 {
			return
		}
		conn.Write([]byte{0x11, 0, 0, 0, 1, 0, 1, 1, 0x57, 0x01, 0, 0, 0})
		hdr := make([]byte, 9)
		if _, err := io.ReadFull(conn, hdr); err != nil || hdr[0] != 0x13 {
			return
		}
		if _, err := io.CopyN(io.Discard, conn, int64(binary.LittleEndian.Uint32(hdr[5:]))); err != nil {
			return
		}
		conn.Write([]byte{0x14, 0, 0, 0, 4, 0, 0, 0, 0})
		r.serve(conn)
	}
}

// startRawDevice starts a CIRA-connected device whose redirection port is
// served by serve.
func startRawDevice(t testing.TB, e *env, serve func(net.Conn)) *simDev {
	t.Helper()
	rd := &rawDevice{serve: serve}
	s := startDevice(t, devOpts{cira: e.cira, services: func(d *device.Device) simcira.Services { rd.d = d; return rd }})
	e.recordCIRA(t, s, "")
	return s
}

// rawLogin runs the session start and the (injected) login on a relay
// session to a rawDevice.
func rawLogin(t testing.TB, b *browser) {
	t.Helper()
	b.send(t, []byte{0x10, 0, 0, 0, 'K', 'V', 'M', 'R'})
	b.readFull(t, 13)
	b.send(t, []byte{0x13, 0, 0, 0, 4, 0, 0, 0, 0})
	if r := b.readFull(t, 9); r[0] != 0x14 || r[1] != 0 {
		t.Fatalf("login reply % x", r)
	}
}

// TestRelayBackpressure: a browser that does not read holds the device
// back; the relay does not buffer what the device keeps sending. The
// device writes with a deadline: once every buffer on the way (device
// channel window, the relay's read buffer and CIRA window, the sockets) is
// full, its write times out. Then the browser reads everything, in order.
func TestRelayBackpressure(t *testing.T) {
	e := newEnv(t, envOpts{cira: true})
	var sent atomic.Int64
	stalled := make(chan error, 1)
	const chunk = 16 << 10
	const total = 256 << 20
	s := startRawDevice(t, e, func(conn net.Conn) {
		p := make([]byte, chunk)
		for sent.Load() < total {
			for i := range p {
				p[i] = byte((sent.Load() + int64(i)) % 251)
			}
			_ = conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := conn.Write(p)
			sent.Add(int64(n))
			if err != nil {
				stalled <- err
				// wait for the browser to drain, then finish the stream
				_ = conn.SetWriteDeadline(time.Time{})
				if _, err := conn.Write(p[n:]); err != nil {
					return
				}
				sent.Add(int64(len(p) - n))
				break
			}
		}
		// signal the end of the stream by closing
	})
	b := e.open(t, s.guid, "kvm")
	e.nextStart(t)
	rawLogin(t, b)

	select {
	case err := <-stalled:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("device write: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the device could send %d bytes to a browser that reads nothing", sent.Load())
	}
	held := sent.Load()
	t.Logf("in flight when the device stalled: %d KiB", held>>10)
	if held >= total/4 {
		t.Fatalf("%d bytes accepted from the device while the browser read nothing", held)
	}
	// everything arrives, in order
	got := int64(0)
	buf := make([]byte, 64<<10)
	for got < held {
		n, err := b.Reader().Read(buf)
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		for i := 0; i < n; i++ {
			if buf[i] != byte((got+int64(i))%251) {
				t.Fatalf("byte %d corrupted", got+int64(i))
			}
		}
		got += int64(n)
	}
}
