package agent

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"
)

// FuzzServerMessage feeds arbitrary server messages to the agent's message
// handling (JSON envelope, base64 payloads, port_switch JSON, status JSON).
// Relays go to an LMS that closes at once; nothing may panic, and every
// message the agent sends must be a well-formed envelope.
func FuzzServerMessage(f *testing.F) {
	for _, s := range []string{
		`{"method":"wsman","payload":"UE9TVCAvd3NtYW4gSFRUUC8xLjENCg0K"}`,
		`{"method":"heartbeat_request","apiKey":"xxxxx","payload":""}`,
		`{"method":"success","message":"{\"Status\":\"Client control mode.\"}","payload":null}`,
		`{"method":"error","message":"plain","payload":null}`,
		`{"method":"progress","message":"Activation completed","payload":null}`,
		`{"method":"tls_data","payload":"FgMBAAUBaGVsbG8="}`,
		`{"method":"port_switch","payload":"{\"port\":\"16993\",\"delay\":3}"}`,
		`{"method":"port_switch","payload":"{\"port\":\"x\",\"delay\":-1}"}`,
		`{"method":"wsman","payload":"%%%"}`,
		`{"method":7}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	f.Fuzz(func(t *testing.T, msg []byte, v2 bool) {
		cfg := Config{
			URL: "ws://127.0.0.1/activate", Command: "activate", Profile: "p", MEIPath: "unused",
			LMSAddr: ln.Addr().String(), LMSTLSAddr: ln.Addr().String(),
			FirstByteTimeout: 50 * time.Millisecond, IdleTimeout: 10 * time.Millisecond,
			TLSFirstByteTimeout: 50 * time.Millisecond, TLSIdleTimeout: 10 * time.Millisecond,
			PortSwitchMaxDelay: time.Millisecond, PortSwitchAttempts: 1, Logger: quietLogger(),
		}
		if v2 {
			cfg.Version = "v2"
		}
		r, err := newRun(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer r.closeTunnel()
		r.write = func(b []byte) error {
			var m envelope
			if err := json.Unmarshal(b, &m); err != nil || m.Method == "" {
				t.Fatalf("agent sent %q", b)
			}
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done, _ := r.handle(ctx, msg)
		if done && r.res.Method != "success" && r.res.Method != "error" {
			t.Fatalf("terminal with method %q", r.res.Method)
		}
	})
}
