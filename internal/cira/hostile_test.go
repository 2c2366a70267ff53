package cira

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/apf"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"
)

func enc(ms ...apf.Message) []byte {
	var b []byte
	for _, m := range ms {
		b, _ = m.AppendBinary(b)
	}
	return b
}

// authPreamble is a valid session up to forwarding.
func authPreamble(dev device) []byte {
	return enc(
		&apf.ProtocolVersion{Major: 1, TriggerReason: 4, UUID: dev.uuid},
		&apf.ServiceRequest{Service: apf.ServiceAuth},
		&apf.UserAuthRequest{Username: dev.user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: dev.pw},
		&apf.ServiceRequest{Service: apf.ServicePortForward},
		&apf.GlobalRequest{Name: apf.RequestTCPIPForward, WantReply: true, Port: 16992},
	)
}

// hostileStreams are byte streams a broken or hostile peer might send after
// the TLS handshake.
func hostileStreams(r *mrand.Rand, victim, own device) [][]byte {
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	pv := enc(&apf.ProtocolVersion{Major: 1, UUID: victim.uuid})
	valid := authPreamble(own)
	out := [][]byte{
		random(1 + r.IntN(5000)),
		append([]byte{apf.MsgProtocolVersion}, random(40)...), // truncated
		pv[:50], // truncated PROTOCOLVERSION
		append(bytes.Clone(pv), apf.MsgServiceRequest, 0xFF, 0xFF, 0xFF, 0xFF), // oversize length
		append(bytes.Clone(pv), enc(&apf.ServiceRequest{Service: apf.ServiceAuth}, // the victim's UUID, wrong password
			&apf.UserAuthRequest{Username: victim.user, Service: apf.ServicePortForward, Method: apf.MethodPassword, Password: "guess"})...),
		append(bytes.Clone(valid), enc(&apf.ChannelData{RecipientChannel: 99, Data: []byte("x")})...),                 // unknown channel
		append(bytes.Clone(valid), enc(&apf.ChannelOpenConfirmation{RecipientChannel: 1, SenderChannel: 1})...),       // confirm of nothing
		append(bytes.Clone(valid), enc(&apf.ProtocolVersion{Major: 1, UUID: own.uuid})...),                            // wrong state
		append(bytes.Clone(valid), apf.MsgChannelData, 0, 0, 0, 1, 0x7F, 0xFF, 0xFF, 0xFF),                            // oversize data
		append(bytes.Clone(valid), random(1+r.IntN(3000))...),                                                         // garbage after auth
		append(bytes.Clone(valid), enc(&apf.GlobalRequest{Name: apf.RequestUDPSendTo, Data: random(100)})[:20]...),    // truncated
		append(bytes.Clone(valid), enc(&apf.UserAuthRequest{Username: "a", Service: "b", Method: apf.MethodNone})...), // wrong state
	}
	// Mutations of a valid stream.
	for i := 0; i < 4; i++ {
		m := bytes.Clone(valid)
		for j := 0; j < 1+r.IntN(4); j++ {
			m[r.IntN(len(m))] = byte(r.Uint32())
		}
		out = append(out, m)
	}
	return out
}

// A malformed or hostile peer costs one connection, never the server: a
// healthy device keeps answering WS-MAN calls while dozens of peers send
// garbage, truncated frames, oversize lengths and out-of-state messages.
func TestHostilePeers(t *testing.T) {
	ts, table := startServer(t, func(c *Config) { c.AuthTimeout = time.Second; c.IdleTimeout = time.Second })
	healthy := addDevice(t, table)
	own := addDevice(t, table)
	h := newAMTHandler("admin", "pw-healthy")
	d := connectDevice(t, ts.addr, healthy.uuid, healthy.user, healthy.pw, deviceOptions{handler: h})
	ts.nextEvent(t, 5*time.Second)

	stop := make(chan struct{})
	healthyErr := make(chan error, 1)
	calls := 0
	go func() {
		m := wsman.NewMessages(client.Parameters{Target: healthy.uuid.String(), Username: "admin", Password: "pw-healthy",
			UseDigest: true, Transport: ts.srv.RoundTripper(healthy.uuid.String())})
		for {
			select {
			case <-stop:
				if calls >= 5 {
					healthyErr <- nil
					return
				}
			default:
			}
			if _, err := m.AMT.GeneralSettings.Get(); err != nil {
				healthyErr <- fmt.Errorf("call %d: %w", calls, err)
				return
			}
			calls++
		}
	}()

	r := mrand.New(mrand.NewPCG(1, 2))
	var wg sync.WaitGroup
	for round := 0; round < 3; round++ {
		for i, stream := range hostileStreams(r, healthy, own) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hostile(t, ts.addr, stream, i%3 == 0)
			}()
		}
		// Plain TCP garbage, no TLS.
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.Write([]byte("\x16\x03\x01\x00\x05hello, not TLS at all"))
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 100)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-healthyErr; err != nil {
		t.Fatalf("healthy device failed while under attack: %v", err)
	}
	if _, ok := ts.srv.Lookup(healthy.uuid.String()); !ok || ts.srv.Count() != 1 {
		t.Fatalf("healthy device registered: %v; %d connections", ok, ts.srv.Count())
	}
	d.ping()
	// New devices still connect.
	fresh := addDevice(t, table)
	connectDevice(t, ts.addr, fresh.uuid, fresh.user, fresh.pw, deviceOptions{}).ping()
}

// hostile sends stream after TLS and waits until the server closes.
func hostile(t *testing.T, addr string, stream []byte, trickle bool) {
	c, err := tls.Dial("tcp", addr, amtTLS(getPKI(t)))
	if err != nil {
		t.Errorf("hostile dial: %v", err)
		return
	}
	defer c.Close()
	go func() {
		if trickle {
			for len(stream) > 0 {
				n := min(len(stream), 7)
				if _, err := c.Write(stream[:n]); err != nil {
					return
				}
				stream = stream[n:]
			}
			return
		}
		c.Write(stream)
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if isTimeoutErr(err) {
				t.Errorf("the server left a hostile connection open (stream %x…)", stream[:min(len(stream), 16)])
			}
			return
		}
	}
}

// FuzzSession feeds arbitrary bytes to a live server over real TLS, either
// from the first message or after a valid authentication, and checks that
// the server survives and keeps serving.
func FuzzSession(f *testing.F) {
	ts, table := startServer(f, func(c *Config) { c.AuthTimeout = 2 * time.Second; c.IdleTimeout = 2 * time.Second })
	dev := addDevice(f, table)
	for _, s := range hostileStreams(mrand.New(mrand.NewPCG(3, 4)), dev, dev) {
		f.Add(false, s)
	}
	f.Add(true, enc(&apf.KeepaliveRequest{Cookie: 1}, &apf.ChannelWindowAdjust{RecipientChannel: 1, BytesToAdd: 5}))
	f.Add(true, enc(&apf.ChannelOpen{ChannelType: "x", SenderChannel: 3}, &apf.ChannelClose{RecipientChannel: 8}))
	cfg := amtTLS(getPKI(f))
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	preamble := authPreamble(dev)
	f.Fuzz(func(t *testing.T, auth bool, data []byte) {
		c, err := tls.Dial("tcp", ts.addr, cfg)
		if err != nil {
			t.Fatalf("the server stopped accepting: %v", err)
		}
		defer c.Close()
		stream := data
		if auth {
			stream = append(bytes.Clone(preamble), data...)
		}
		// A keepalive at the end (answered if the session survived), then
		// end of input: the server has handled every byte when it closes.
		stream = append(stream, enc(&apf.KeepaliveRequest{Cookie: 0x5EED})...)
		go func() {
			c.Write(stream)
			c.CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		for {
			if _, err := c.Read(buf); err != nil {
				if isTimeoutErr(err) {
					t.Fatal("the server neither closed nor went idle")
				}
				break
			}
		}
	})
	// The server still works.
	probe := addDevice(f, table)
	d := connectDevice(f, ts.addr, probe.uuid, probe.user, probe.pw, deviceOptions{})
	d.ping()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := ts.srv.Dial(ctx, "00000000-0000-0000-0000-000000000000", 1); err == nil {
		f.Fatal("Dial to nowhere succeeded")
	}
}
