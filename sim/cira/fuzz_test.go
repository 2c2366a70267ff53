package cira

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
	"github.com/amtd-project/amtd/sim/firmware"
)

// echo serves every forwarded port by echoing.
type echo struct{}

func (echo) ChannelHandler(port uint16) func(context.Context, net.Conn) {
	if port == 664 {
		return nil
	}
	return func(_ context.Context, c net.Conn) { _, _ = io.Copy(c, c) }
}

func msgs(t testing.TB, ms ...apf.Message) []byte {
	var b []byte
	for _, m := range ms {
		var err error
		if b, err = m.AppendBinary(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// FuzzSession feeds arbitrary MPS bytes to the device's APF session (after
// TLS): handshake answers, keepalives, channel opens, data beyond windows,
// closes in any order. The session must end without panicking or leaking
// its channel goroutines.
func FuzzSession(f *testing.F) {
	fw, err := firmware.Open(firmware.Config{UUID: "4c4c4544-0038-4b10-8052-b4c04f564433"})
	if err != nil {
		f.Fatal(err)
	}
	handshake := []apf.Message{&apf.ServiceAccept{Service: apf.ServiceAuth}, &apf.UserAuthSuccess{}, &apf.ServiceAccept{Service: apf.ServicePortForward}}
	for _, p := range forwardedPorts {
		handshake = append(handshake, &apf.RequestSuccess{HasPort: true, Port: uint32(p)})
	}
	handshake = append(handshake, &apf.KeepaliveOptionsRequest{Interval: 30})
	f.Add(msgs(f, append(handshake,
		&apf.ChannelOpen{ChannelType: apf.ChannelForwardedTCPIP, SenderChannel: 7, InitialWindow: 8, ConnectedPort: 16992},
		&apf.ChannelData{RecipientChannel: 1, Data: []byte("hello world")},
		&apf.ChannelWindowAdjust{RecipientChannel: 1, BytesToAdd: 100},
		&apf.KeepaliveRequest{Cookie: 3},
		&apf.ChannelClose{RecipientChannel: 1},
		&apf.ChannelOpen{ChannelType: apf.ChannelForwardedTCPIP, SenderChannel: 8, InitialWindow: 8, ConnectedPort: 664},
		&apf.GlobalRequest{Name: "x", WantReply: true},
		&apf.Disconnect{Reason: 11})...))
	f.Add(msgs(f, append(handshake,
		&apf.ChannelOpen{ChannelType: apf.ChannelForwardedTCPIP, SenderChannel: 7, InitialWindow: 0xFFFFFFFF, ConnectedPort: 16994},
		&apf.ChannelWindowAdjust{RecipientChannel: 1, BytesToAdd: 0xFFFFFFFF},
		&apf.ChannelData{RecipientChannel: 1, Data: make([]byte, 20000)})...))
	f.Add(msgs(f, &apf.ServiceAccept{Service: apf.ServiceAuth}, &apf.UserAuthFailure{Methods: "password"}))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := New(Config{Firmware: fw, Services: echo{}, Options: Options{ChannelWindow: 4096, HandshakeTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		s := newSession(c, target{server: firmware.MPServer{AccessInfo: "mps.test", Port: 4433, Username: "u", Password: "p"}, trigger: 4})
		dev, mps := net.Pipe()
		s.raw = dev
		go func() { _, _ = io.Copy(io.Discard, mps) }()
		go func() {
			_, _ = mps.Write(in)
			mps.Close()
		}()
		s.ctx = context.Background()
		_, err = s.apf(dev)
		s.shutdown(err)
		c.wg.Wait()
	})
}
