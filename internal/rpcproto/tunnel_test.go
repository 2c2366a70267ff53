package rpcproto

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// bridgeClient plays rpc-go in TLS-tunnel mode, round by round as rpc-go
// does: each tls_data from the server is written to the device connection
// (a new connection when it starts with a ClientHello), then the device's
// answer is read (first byte within a second, then until 50 ms of silence)
// and sent back as tls_data; a connection the device closed without
// answering is reported with connection_reset.
func bridgeClient(t *testing.T, c *websocket.Conn, device string) map[string]any {
	t.Helper()
	msg := func(method string, payload []byte) map[string]any {
		return map[string]any{"method": method, "apiKey": "key", "appVersion": "x", "protocolVersion": "4.0.0",
			"status": "ok", "message": "ok", "fqdn": "", "payload": base64.StdEncoding.EncodeToString(payload), "tenantId": ""}
	}
	var conn net.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("client read: %v", err)
		}
		switch m["method"] {
		case "tls_data":
			p, _ := base64.StdEncoding.DecodeString(m["payload"].(string))
			if len(p) > 5 && p[0] == 0x16 && p[5] == 0x01 && conn != nil {
				conn.Close()
				conn = nil
			}
			if conn == nil {
				var err error
				if conn, err = net.Dial("tcp", device); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := conn.Write(p); err != nil {
				conn.Close()
				conn = nil
				c.WriteJSON(msg("connection_reset", []byte("lms_error")))
				continue
			}
			var resp []byte
			buf := make([]byte, 16384)
			wait := time.Second
			var rerr error
			for {
				conn.SetReadDeadline(time.Now().Add(wait))
				n, err := conn.Read(buf)
				resp = append(resp, buf[:n]...)
				if err != nil {
					rerr = err
					break
				}
				wait = 50 * time.Millisecond
			}
			if len(resp) > 0 {
				c.WriteJSON(msg("tls_data", resp))
			}
			if ne, ok := rerr.(net.Error); !ok || !ne.Timeout() { // EOF: the device closed
				conn.Close()
				conn = nil
				if len(resp) == 0 {
					c.WriteJSON(msg("connection_reset", []byte("connection_closed")))
				}
			}
		case "port_switch":
			c.WriteJSON(msg("port_switch_ack", []byte("ok")))
		default:
			return m
		}
	}
}

func TestTLSTunnel(t *testing.T) {
	var served atomic.Int32
	dev := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		served.Add(1)
		w.Header().Set("Connection", "close") // as AMT: one answer per connection
		w.Write([]byte("echo:" + string(b)))
	}))
	dev.StartTLS()
	defer dev.Close()

	h := HandlerFunc(func(ctx context.Context, s *Session) Outcome {
		if err := s.PortSwitch(ctx, 16993, 0); err != nil {
			return Outcome{Message: "port switch: " + err.Error()}
		}
		rt := s.TLSTransport(&tls.Config{InsecureSkipVerify: true})
		for i, body := range []string{"one", "two"} {
			req, _ := http.NewRequestWithContext(ctx, "POST", "https://"+s.Request.Payload.UUID+":16993/wsman", strings.NewReader(body))
			resp, err := rt.RoundTrip(req)
			if err != nil {
				return Outcome{Message: err.Error()}
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "echo:"+body {
				return Outcome{Message: "request " + string(rune('0'+i)) + " got " + string(b)}
			}
		}
		return Outcome{Success: true, Message: "ok"}
	})
	srv := httptest.NewServer(NewServer(Config{RoundTimeout: time.Second}, h))
	defer srv.Close()
	c := dialServer(t, srv)
	c.WriteJSON(firstMessage("activate --profile p", goodPayload))
	term := bridgeClient(t, c, dev.Listener.Addr().String())
	if term["method"] != "success" {
		t.Fatalf("terminal %v", term)
	}
	if served.Load() != 2 {
		t.Fatalf("device served %d requests", served.Load())
	}
}
