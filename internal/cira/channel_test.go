package cira

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
)

// connected starts a server and one device without an HTTP handler; the
// test plays the application end of each channel.
func connected(t *testing.T, mod func(*Config), opts deviceOptions) (*testServer, device, *testDevice) {
	t.Helper()
	ts, table := startServer(t, mod)
	dev := addDevice(t, table)
	d := connectDevice(t, ts.addr, dev.uuid, dev.user, dev.pw, opts)
	ts.nextEvent(t, 5*time.Second)
	return ts, dev, d
}

func dial(t *testing.T, ts *testServer, dev device, port uint16) *Channel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := ts.srv.Dial(ctx, dev.uuid.String(), port)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	return ch
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (d *testDevice) onlyChannel(t *testing.T) *devChan {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.chans) != 1 {
		t.Fatalf("device has %d channels", len(d.chans))
	}
	for _, c := range d.chans {
		return c
	}
	return nil
}

// Server → device: never beyond the device's credit, segments of at most
// min(credit, 16 KiB), and Write holds the producer back until credit comes.
func TestChannelSendRespectsCredit(t *testing.T) {
	ts, dev, d := connected(t, nil, deviceOptions{window: 1000, noAutoAdjust: true})
	ch := dial(t, ts, dev, 16994)
	if a, ok := ch.RemoteAddr().(*Addr); !ok || a.Port != 16994 || a.UUID != dev.uuid.String() || a.Network() != "cira" {
		t.Fatalf("RemoteAddr %v", ch.RemoteAddr())
	}
	app := d.nextApp()
	dc := d.onlyChannel(t)
	if dc.port != 16994 {
		t.Fatalf("device saw port %d", dc.port)
	}

	payload := randomBytes(t, 5000)
	wrote := make(chan error, 1)
	go func() {
		n, err := ch.Write(payload)
		if err == nil && n != len(payload) {
			err = io.ErrShortWrite
		}
		wrote <- err
	}()
	got := make([]byte, 0, len(payload))
	buf := make([]byte, 8192)
	readSome := func(want int) {
		t.Helper()
		for len(got) < want {
			app.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := app.Read(buf)
			if err != nil {
				t.Fatalf("device app read: %v (have %d of %d)", err, len(got), want)
			}
			got = append(got, buf[:n]...)
		}
	}
	readSome(1000)
	d.sync()
	select {
	case err := <-wrote:
		t.Fatalf("Write returned (%v) with 4000 bytes beyond credit", err)
	default:
	}
	dc.mu.Lock()
	if dc.window != 0 || dc.totalBytes != 1000 {
		t.Fatalf("device window %d, received %d; want 0 and 1000", dc.window, dc.totalBytes)
	}
	dc.window += 2500
	dc.mu.Unlock()
	must(t, d.send(&apf.ChannelWindowAdjust{RecipientChannel: dc.remote, BytesToAdd: 2500}))
	readSome(3500)
	d.sync()
	dc.mu.Lock()
	if dc.totalBytes != 3500 {
		t.Fatalf("received %d after granting 3500", dc.totalBytes)
	}
	dc.window += 1 << 20
	dc.mu.Unlock()
	must(t, d.send(&apf.ChannelWindowAdjust{RecipientChannel: dc.remote, BytesToAdd: 1 << 20}))
	readSome(5000)
	must(t, <-wrote)
	if !bytes.Equal(got, payload) {
		t.Fatal("data corrupted")
	}

	// A big write goes out in segments of at most 16 KiB.
	big := randomBytes(t, 200000)
	go func() { _, err := ch.Write(big); wrote <- err }()
	got = got[:0]
	readSome(len(big))
	must(t, <-wrote)
	if !bytes.Equal(got, big) {
		t.Fatal("big write corrupted")
	}
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	if len(d.violations) > 0 {
		t.Fatalf("violations: %v", d.violations)
	}
	if d.maxDataLen > 16<<10 || d.maxDataLen < 8<<10 {
		t.Fatalf("largest CHANNEL_DATA %d bytes", d.maxDataLen)
	}
}

// Device → server: credit is returned only for bytes the reader has taken,
// in batches of at least half the window.
func TestChannelReceiveCreditFollowsConsumer(t *testing.T) {
	const window = MinChannelWindow
	ts, dev, d := connected(t, func(c *Config) { c.ChannelWindow = window }, deviceOptions{maxSegment: 4000})
	ch := dial(t, ts, dev, 16994)
	app := d.nextApp()
	dc := d.onlyChannel(t)
	dc.mu.Lock()
	if dc.credit != window {
		t.Fatalf("device credit %d, want the advertised %d", dc.credit, window)
	}
	dc.mu.Unlock()

	payload := randomBytes(t, 2*window)
	wrote := make(chan error, 1)
	go func() { _, err := app.Write(payload); wrote <- err }()
	// The device can send one window; nothing is read, so no credit returns.
	waitFor(t, func() bool { dc.mu.Lock(); defer dc.mu.Unlock(); return dc.credit == 0 })
	d.sync()
	dc.mu.Lock()
	if dc.credit != 0 {
		t.Fatalf("credit returned (%d) before anything was read", dc.credit)
	}
	dc.mu.Unlock()

	read := func(n int) []byte {
		t.Helper()
		b := make([]byte, n)
		ch.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(ch, b); err != nil {
			t.Fatalf("server read: %v", err)
		}
		return b
	}
	adjusts := func() []uint32 {
		dc.mu.Lock()
		defer dc.mu.Unlock()
		return append([]uint32(nil), dc.adjusts...)
	}
	got := read(window/2 - 1)
	d.sync()
	if a := adjusts(); len(a) != 0 {
		t.Fatalf("credit %v returned below half the window", a)
	}
	got = append(got, read(1)...)
	d.sync()
	if a := adjusts(); len(a) != 1 || a[0] != window/2 {
		t.Fatalf("adjusts %v after reading half the window, want [%d]", a, window/2)
	}
	got = append(got, read(len(payload)-len(got))...)
	must(t, <-wrote)
	if !bytes.Equal(got, payload) {
		t.Fatal("data corrupted")
	}
	d.sync()
	var sum uint32
	for _, a := range adjusts() {
		if a < window/2 {
			t.Fatalf("adjust of %d, below half the window", a)
		}
		sum += a
	}
	if sum > uint32(len(payload)) {
		t.Fatalf("%d bytes of credit returned for %d consumed", sum, len(payload))
	}
}

// A device that sends beyond its credit loses its connection with
// DISCONNECT(2); other devices are unaffected.
func TestChannelDataBeyondCredit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		sizes []int
	}{
		{"one oversize message", []int{MinChannelWindow + 1}},
		{"credit used up", []int{20000, 12768, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, dev, d := connected(t, func(c *Config) { c.ChannelWindow = MinChannelWindow }, deviceOptions{})
			ch := dial(t, ts, dev, 16994)
			defer ch.Close()
			dc := d.onlyChannel(t)
			for _, n := range tc.sizes {
				// The server may close before the device has finished writing.
				d.send(&apf.ChannelData{RecipientChannel: dc.remote, Data: make([]byte, n)})
			}
			msgs := d.waitClosed(5 * time.Second)
			if len(msgs) == 0 {
				t.Fatal("closed without DISCONNECT")
			}
			if m, ok := msgs[len(msgs)-1].(*apf.Disconnect); !ok || m.Reason != apf.DisconnectProtocolError {
				t.Fatalf("last message %+v", msgs[len(msgs)-1])
			}
			ch.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadAll(ch); !errors.Is(err, ErrConnectionLost) {
				t.Fatalf("channel read after the connection died: %v", err)
			}
		})
	}
}

func TestChannelCloseByServer(t *testing.T) {
	ts, dev, d := connected(t, nil, deviceOptions{})
	ch := dial(t, ts, dev, 16995)
	app := d.nextApp()
	must(t, ch.Close())
	app.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := app.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("device app read after server close: %v", err)
	}
	d.sync()
	if n := channelCount(ts, dev); n != 0 {
		t.Fatalf("server keeps %d channels after both closes", n)
	}
	if _, err := ch.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
	if _, err := ch.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	must(t, ch.Close()) // idempotent
	d.statsMu.Lock()
	defer d.statsMu.Unlock()
	if len(d.violations) > 0 {
		t.Fatalf("violations: %v", d.violations)
	}
}

func TestChannelCloseByDevice(t *testing.T) {
	ts, dev, d := connected(t, nil, deviceOptions{})
	ch := dial(t, ts, dev, 16994)
	app := d.nextApp()
	_, err := app.Write([]byte("last words"))
	must(t, err)
	must(t, app.Close())
	ch.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(ch)
	if err != nil || string(b) != "last words" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if _, err := ch.Write([]byte("x")); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("Write after device close: %v", err)
	}
	d.sync()
	if n := channelCount(ts, dev); n != 0 {
		t.Fatalf("server keeps %d channels", n)
	}
	if n := deviceChannels(d); n != 0 {
		t.Fatalf("device keeps %d channels: the server did not answer the close", n)
	}
	must(t, ch.Close())
	d.sync()
	select {
	case m := <-d.msgs:
		t.Fatalf("unexpected %+v after a close of a closed channel", m)
	default:
	}
}

func TestChannelOpenRefused(t *testing.T) {
	var mode string
	var held *apf.ChannelOpen
	heldCh := make(chan *apf.ChannelOpen, 1)
	opts := deviceOptions{onOpen: func(d *testDevice, m *apf.ChannelOpen) bool {
		switch mode {
		case "failure":
			d.send(&apf.ChannelOpenFailure{RecipientChannel: m.SenderChannel, Reason: apf.OpenConnectFailed})
		case "close":
			d.send(&apf.ChannelClose{RecipientChannel: m.SenderChannel})
		case "hold":
			heldCh <- m
		default:
			return false
		}
		return true
	}}
	ts, dev, d := connected(t, nil, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	mode = "failure"
	_, err := ts.srv.Dial(ctx, dev.uuid.String(), 5900)
	var oe *OpenError
	if !errors.As(err, &oe) || oe.Reason != apf.OpenConnectFailed || oe.Port != 5900 {
		t.Fatalf("Dial with CHANNEL_OPEN_FAILURE: %v", err)
	}
	if n := channelCount(ts, dev); n != 0 {
		t.Fatalf("%d channels after a refused open", n)
	}

	// Closed before confirmation: refused, and the close is not answered.
	mode = "close"
	_, err = ts.srv.Dial(ctx, dev.uuid.String(), 5900)
	if !errors.As(err, &oe) || oe.Reason != 0 {
		t.Fatalf("Dial with CHANNEL_CLOSE before confirmation: %v", err)
	}
	d.sync()
	if n := channelCount(ts, dev); n != 0 {
		t.Fatalf("%d channels after close-before-confirmation", n)
	}

	// The opener gives up; the late confirmation is answered with a close.
	mode = "hold"
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	_, err = ts.srv.Dial(short, dev.uuid.String(), 16994)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial with an unanswered open: %v", err)
	}
	held = <-heldCh
	must(t, d.send(&apf.ChannelOpenConfirmation{RecipientChannel: held.SenderChannel, SenderChannel: 555, InitialWindow: 4096}))
	if m := d.expect(apf.MsgChannelClose, 5*time.Second).(*apf.ChannelClose); m.RecipientChannel != 555 {
		t.Fatalf("close for %d, want 555", m.RecipientChannel)
	}
	if n := channelCount(ts, dev); n != 1 {
		t.Fatalf("%d channels while waiting for the device's close", n)
	}
	must(t, d.send(&apf.ChannelClose{RecipientChannel: held.SenderChannel}))
	d.sync()
	if n := channelCount(ts, dev); n != 0 {
		t.Fatalf("%d channels after both closes", n)
	}
	mode = ""
	ch := dial(t, ts, dev, 16994)
	ch.Close()
}

func TestChannelDeadlinesAndLimits(t *testing.T) {
	ts, dev, d := connected(t, func(c *Config) { c.MaxChannels = 2 }, deviceOptions{window: 10, noAutoAdjust: true})
	ch := dial(t, ts, dev, 16994)
	app := d.nextApp()

	ch.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := ch.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) || !isTimeoutErr(err) || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("Read past deadline: %v after %v", err, time.Since(start))
	}
	// Extending the deadline revives reads.
	ch.SetReadDeadline(time.Now().Add(5 * time.Second))
	go app.Write([]byte("ok"))
	b := make([]byte, 2)
	if _, err := io.ReadFull(ch, b); err != nil || string(b) != "ok" {
		t.Fatalf("Read after extending: %q %v", b, err)
	}
	// Write waiting for credit stops at the write deadline, having sent
	// what the credit allowed.
	ch.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := ch.Write(make([]byte, 100))
	if !errors.Is(err, os.ErrDeadlineExceeded) || n != 10 {
		t.Fatalf("Write past deadline: n=%d, %v", n, err)
	}
	ch.SetDeadline(time.Time{})

	ch2 := dial(t, ts, dev, 16995)
	defer ch2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ts.srv.Dial(ctx, dev.uuid.String(), 16994); !errors.Is(err, ErrTooManyChannels) {
		t.Fatalf("third channel: %v", err)
	}
	if _, err := ts.srv.Dial(ctx, newUUID(t).String(), 16994); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Dial to an unknown device: %v", err)
	}
	if _, err := ts.srv.Dial(ctx, "not-a-uuid", 16994); err == nil {
		t.Fatal("Dial with a malformed UUID succeeded")
	}
	ch.Close()
}

// When the connection dies, channel operations fail with ErrConnectionLost
// (after the data already received), and blocked calls wake up.
func TestChannelConnectionLost(t *testing.T) {
	ts, dev, d := connected(t, nil, deviceOptions{window: 1, noAutoAdjust: true})
	ch := dial(t, ts, dev, 16994)
	app := d.nextApp()
	_, err := app.Write([]byte("buffered"))
	must(t, err)
	d.sync()
	// A Write blocked on credit and a Read after the buffered data.
	wrote := make(chan error, 1)
	go func() { _, err := ch.Write(make([]byte, 1000)); wrote <- err }()
	d.conn.Close()
	if err := <-wrote; !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("blocked Write: %v", err)
	}
	b, err := io.ReadAll(ch)
	if string(b) != "buffered" || !errors.Is(err, ErrConnectionLost) {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	if e := ts.nextEvent(t, 5*time.Second); e.connected {
		t.Fatalf("event %+v", e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := ts.srv.Dial(ctx, dev.uuid.String(), 16994); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Dial after the connection died: %v", err)
	}
}

// Messages for a channel already forgotten (a device racing our close) are
// ignored; for an id never used they are a protocol error.
func TestChannelStragglers(t *testing.T) {
	ts, dev, d := connected(t, nil, deviceOptions{})
	ch := dial(t, ts, dev, 16994)
	id := ch.local
	must(t, ch.Close())
	d.sync()
	if n := channelCount(ts, dev); n != 0 {
		t.Fatalf("%d channels", n)
	}
	must(t, d.send(&apf.ChannelWindowAdjust{RecipientChannel: id, BytesToAdd: 100}))
	must(t, d.send(&apf.ChannelData{RecipientChannel: id, Data: []byte("late")}))
	must(t, d.send(&apf.ChannelClose{RecipientChannel: id}))
	d.ping()
	must(t, d.send(&apf.ChannelWindowAdjust{RecipientChannel: id + 1000, BytesToAdd: 100}))
	msgs := d.waitClosed(5 * time.Second)
	if len(msgs) != 1 || msgs[0].(*apf.Disconnect).Reason != apf.DisconnectProtocolError {
		t.Fatalf("messages before close: %+v", msgs)
	}
}
