package relay_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// Frame sizes measured: a SOL message (a line of console output or a
// keystroke batch) and a KVM framebuffer chunk.
var benchSizes = []struct {
	name string
	size int
}{{"sol-64B", 64}, {"kvm-16KiB", 16 << 10}}

func echo(conn net.Conn) { io.Copy(conn, conn) }

// BenchmarkRelayCIRAEcho: one frame browser → relay → CIRA → device and
// back per operation (ns/op is the round trip; MB/s counts one direction).
// Compare with BenchmarkCIRAChannelEcho for the relay's added latency.
//
//	go test -run '^$' -bench 'CIRA' -benchtime 3s ./internal/relay/
func BenchmarkRelayCIRAEcho(b *testing.B) {
	e := newEnv(b, envOpts{cira: true})
	s := startRawDevice(b, e, echo)
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			br := e.open(b, s.guid, "kvm")
			e.nextStart(b)
			rawLogin(b, br)
			_ = br.ws.SetDeadline(time.Time{})
			frame := make([]byte, sz.size)
			buf := make([]byte, sz.size)
			b.SetBytes(int64(sz.size))
			b.ResetTimer()
			for range b.N {
				if _, err := br.ws.Write(frame); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(br.Reader(), buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			br.Close()
			e.nextEnd(b)
		})
	}
}

// BenchmarkCIRAChannelEcho is the baseline: the same round trip on a CIRA
// channel opened directly (no WebSocket, no relay).
func BenchmarkCIRAChannelEcho(b *testing.B) {
	e := newEnv(b, envOpts{cira: true})
	s := startRawDevice(b, e, echo)
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ch, err := e.cira.Dial(ctx, s.guid, 16994)
			if err != nil {
				b.Fatal(err)
			}
			defer ch.Close()
			ch.Write([]byte{0x10, 0, 0, 0, 'K', 'V', 'M', 'R'})
			io.ReadFull(ch, make([]byte, 13))
			ch.Write([]byte{0x13, 0, 0, 0, 4, 0, 0, 0, 0})
			io.ReadFull(ch, make([]byte, 9))
			frame := make([]byte, sz.size)
			buf := make([]byte, sz.size)
			b.SetBytes(int64(sz.size))
			b.ResetTimer()
			for range b.N {
				if _, err := ch.Write(frame); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(ch, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRelayCIRAStream: one-way throughput through the relay over
// CIRA, frames of the given size back to back.
//
//	to-browser: the device streams (KVM screen updates), the browser reads.
//	to-device: the browser streams (IDE-R disk data), the device counts and
//	acknowledges the total at the end.
func BenchmarkRelayCIRAStream(b *testing.B) {
	e := newEnv(b, envOpts{cira: true})
	// The device reads an 8-byte command: 'S' + size: stream frames of
	// size until the channel closes; 'R' + total: read total bytes, answer
	// one byte.
	s := startRawDevice(b, e, func(conn net.Conn) {
		cmd := make([]byte, 8)
		if _, err := io.ReadFull(conn, cmd); err != nil {
			return
		}
		n := int64(binary.BigEndian.Uint64(cmd) & (1<<56 - 1))
		switch cmd[0] {
		case 'S':
			p := make([]byte, n)
			for {
				if _, err := conn.Write(p); err != nil {
					return
				}
			}
		case 'R':
			if _, err := io.CopyN(io.Discard, conn, n); err != nil {
				return
			}
			conn.Write([]byte{1})
			io.Copy(io.Discard, conn)
		}
	})
	command := func(op byte, n int64) []byte {
		c := binary.BigEndian.AppendUint64(nil, uint64(n))
		c[0] = op
		return c
	}
	for _, sz := range benchSizes {
		b.Run("to-browser-"+sz.name, func(b *testing.B) {
			br := e.open(b, s.guid, "kvm")
			e.nextStart(b)
			rawLogin(b, br)
			_ = br.ws.SetDeadline(time.Time{})
			br.send(b, command('S', int64(sz.size)))
			b.SetBytes(int64(sz.size))
			b.ResetTimer()
			if _, err := io.CopyN(io.Discard, br.Reader(), int64(b.N)*int64(sz.size)); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			br.Close()
			e.nextEnd(b)
		})
		b.Run("to-device-"+sz.name, func(b *testing.B) {
			br := e.open(b, s.guid, "kvm")
			e.nextStart(b)
			rawLogin(b, br)
			_ = br.ws.SetDeadline(time.Time{})
			br.send(b, command('R', int64(b.N)*int64(sz.size)))
			frame := make([]byte, sz.size)
			b.SetBytes(int64(sz.size))
			b.ResetTimer()
			for range b.N {
				if _, err := br.ws.Write(frame); err != nil {
					b.Fatal(err)
				}
			}
			if ack := br.readFull(b, 1); ack[0] != 1 {
				b.Fatal(fmt.Sprintf("ack % x", ack))
			}
			b.StopTimer()
			br.Close()
			e.nextEnd(b)
		})
	}
}
