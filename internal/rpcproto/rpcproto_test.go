package rpcproto

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/gorilla/websocket"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		in   string
		want Command
	}{
		{"activate --profile office", Command{Name: "activate", Profile: "office"}},
		{"deactivate --password P@ssw0rd", Command{Name: "deactivate", Password: "P@ssw0rd", HasPass: true}},
		{"deactivate --password P@ssw0rd -f", Command{Name: "deactivate", Password: "P@ssw0rd", HasPass: true, Force: true}},
		{"maintenance -password P@ss --synctime", Command{Name: "maintenance", Password: "P@ss", HasPass: true, Task: "synctime"}},
		{"maintenance -password P@ss --changepassword N3w!pass -f", Command{Name: "maintenance", Password: "P@ss", HasPass: true, Task: "changepassword", TaskArg: "N3w!pass", Force: true}},
		{"maintenance -password P@ss --changepassword", Command{Name: "maintenance", Password: "P@ss", HasPass: true, Task: "changepassword"}},
		{"maintenance -p P@ss --syncip", Command{Name: "maintenance", Password: "P@ss", HasPass: true, Task: "syncip"}},
		{"bogus --profile x", Command{Name: "bogus", Profile: "x"}},
	}
	for _, c := range cases {
		if got := ParseCommand(c.in); got != c.want {
			t.Errorf("ParseCommand(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestProtocolVersion(t *testing.T) {
	for v, ok := range map[string]bool{"4.0.0": true, "4.1.0": false, "3.0.0": false, "5.0.0": false, "4.0": false, "a.b.c": false} {
		if err := CheckProtocolVersion(v); (err == nil) != ok {
			t.Errorf("CheckProtocolVersion(%q) = %v", v, err)
		}
	}
	if err := CheckProtocolVersion("4.2.0"); err == nil || err.Error() != "protocol version NOT supported: 4.2.0" {
		t.Errorf("message: %v", err)
	}
}

func TestDecodePayloadUUIDArray(t *testing.T) {
	js := `{"ver":"16.1.25","build":"2050","client":"RPC","uuid":[68,69,76,76,56,0,16,75,128,82,180,192,79,86,68,51]}`
	p, err := DecodePayload(base64.StdEncoding.EncodeToString([]byte(js)))
	if err != nil {
		t.Fatal(err)
	}
	if p.UUID != "4c4c4544-0038-4b10-8052-b4c04f564433" {
		t.Errorf("uuid %s", p.UUID)
	}
	if _, err := DecodePayload(base64.StdEncoding.EncodeToString([]byte(`{"ver":"16","client":"RPC"}`))); err == nil || err.Error() != "Invalid payload from client" {
		t.Errorf("missing fields: %v", err)
	}
	if _, err := DecodePayload("!!!"); err == nil || !strings.HasPrefix(err.Error(), "Failed to parse client message payload. ") {
		t.Errorf("bad base64: %v", err)
	}
}

// fakeClient plays rpc-go over a real WebSocket: it sends the first message
// and answers wsman messages with answer(raw request) (nil = quiet round).
type fakeClient struct {
	conn     *websocket.Conn
	received [][]byte
}

func dialServer(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(srv.URL, "http") + "/activate"
	c, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func firstMessage(method string, payload map[string]any) map[string]any {
	b, _ := json.Marshal(payload)
	return map[string]any{"method": method, "apiKey": "key", "appVersion": "Development Build", "protocolVersion": "4.0.0",
		"status": "ok", "message": "ok", "fqdn": "", "payload": base64.StdEncoding.EncodeToString(b), "tenantId": ""}
}

var goodPayload = map[string]any{"ver": "16.1.25", "build": "2050", "sku": "16392", "uuid": "4c4c4544-0038-4b10-8052-b4c04f564433",
	"username": "$$OsAdmin", "password": "lsa", "currentMode": 0, "hostname": "vm", "fqdn": "example.com", "client": "RPC", "certHashes": []string{}}

func runClient(t *testing.T, c *websocket.Conn, answer func(n int, raw []byte) []byte) (terminal map[string]any, wsman [][]byte) {
	t.Helper()
	for {
		var m map[string]any
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("client read: %v", err)
		}
		switch m["method"] {
		case "wsman":
			raw, err := base64.StdEncoding.DecodeString(m["payload"].(string))
			if err != nil {
				t.Fatal(err)
			}
			wsman = append(wsman, raw)
			if a := answer(len(wsman), raw); a != nil {
				resp := map[string]any{"method": "response", "apiKey": "key", "appVersion": "x", "protocolVersion": "4.0.0",
					"status": "ok", "message": "ok", "fqdn": "", "payload": base64.StdEncoding.EncodeToString(a), "tenantId": ""}
				if err := c.WriteJSON(resp); err != nil {
					t.Fatal(err)
				}
			}
		case "heartbeat_request":
			m["method"] = "heartbeat_response"
			m["status"] = "success"
			c.WriteJSON(m)
		default:
			return m, wsman
		}
	}
}

const okResponse = "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml; charset=UTF-8\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n0\r\n\r\n"

func TestRelayRoundTrip(t *testing.T) {
	var got atomic.Value
	h := HandlerFunc(func(ctx context.Context, s *Session) Outcome {
		req, _ := http.NewRequest("POST", "http://"+s.Request.Payload.UUID+":16992/wsman", strings.NewReader("<Envelope/>"))
		req.Header.Set("Content-Type", "application/soap+xml; charset=utf-8")
		resp, err := s.RoundTrip(req.WithContext(ctx))
		if err != nil {
			return Outcome{Message: err.Error()}
		}
		b, _ := io.ReadAll(resp.Body)
		got.Store(string(b))
		if err := s.Heartbeat(ctx, time.Second); err != nil {
			return Outcome{Message: "heartbeat: " + err.Error()}
		}
		return Outcome{Success: true, Message: StatusMessage{Status: "Client control mode."}.String()}
	})
	srv := httptest.NewServer(NewServer(Config{RoundTimeout: 2 * time.Second}, h))
	defer srv.Close()
	c := dialServer(t, srv)
	if err := c.WriteJSON(firstMessage("activate --profile p", goodPayload)); err != nil {
		t.Fatal(err)
	}
	term, reqs := runClient(t, c, func(int, []byte) []byte { return []byte(okResponse) })
	if term["method"] != "success" || term["status"] != "success" || term["payload"] != nil {
		t.Fatalf("terminal %v", term)
	}
	if term["message"] != `{"Status":"Client control mode."}` {
		t.Errorf("message %q", term["message"])
	}
	if got.Load() != "hello" {
		t.Errorf("body %v", got.Load())
	}
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(reqs[0])))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	if r.Host != "4c4c4544-0038-4b10-8052-b4c04f564433:16992" || r.URL.Path != "/wsman" || string(body) != "<Envelope/>" || !r.Close {
		t.Errorf("relayed request: host %q path %q body %q close %v", r.Host, r.URL.Path, body, r.Close)
	}
}

func TestRelayRetriesQuietRoundsButNotOneShot(t *testing.T) {
	for _, oneShot := range []bool{false, true} {
		var errText atomic.Value
		h := HandlerFunc(func(ctx context.Context, s *Session) Outcome {
			rctx := ctx
			if oneShot {
				rctx = amt.NoRetry(ctx)
			}
			req, _ := http.NewRequestWithContext(rctx, "POST", "http://x:16992/wsman", strings.NewReader("x"))
			_, err := s.RoundTrip(req)
			if err != nil {
				errText.Store(err.Error())
				return Outcome{Message: "failed"}
			}
			return Outcome{Success: true, Message: "ok"}
		})
		srv := httptest.NewServer(NewServer(Config{RoundTimeout: 150 * time.Millisecond}, h))
		c := dialServer(t, srv)
		c.WriteJSON(firstMessage("activate --profile p", goodPayload))
		term, reqs := runClient(t, c, func(n int, _ []byte) []byte {
			if n < 3 {
				return nil // quiet rounds
			}
			return []byte(okResponse)
		})
		srv.Close()
		if oneShot {
			if len(reqs) != 1 || term["method"] != "error" || errText.Load() != ErrNoResponse.Error() {
				t.Errorf("one-shot: %d requests, terminal %v, err %v", len(reqs), term, errText.Load())
			}
		} else if len(reqs) != 3 || term["method"] != "success" {
			t.Errorf("retry: %d requests, terminal %v", len(reqs), term)
		}
	}
}

func TestFirstMessageValidation(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, s *Session) Outcome { return Outcome{Success: true} })
	srv := httptest.NewServer(NewServer(Config{}, h))
	defer srv.Close()
	bad := map[string]any{}
	for k, v := range goodPayload {
		bad[k] = v
	}
	bad["uuid"] = "short"
	cases := []struct {
		msg  map[string]any
		want string
	}{
		{firstMessage("explode", goodPayload), "Device 4c4c4544-0038-4b10-8052-b4c04f564433 Not a supported method received from AMT device"},
		{func() map[string]any {
			m := firstMessage("activate --profile p", goodPayload)
			m["protocolVersion"] = "5.0.0"
			return m
		}(), "protocol version NOT supported: 5.0.0"},
		{firstMessage("maintenance -password x", goodPayload), " - missing maintenance task in message"},
		{firstMessage("activate --profile p", bad), " - uuid not valid length"},
		{firstMessage("activate --profile p", map[string]any{"client": "RPC"}), "Invalid payload from client"},
	}
	for _, c := range cases {
		conn := dialServer(t, srv)
		conn.WriteJSON(c.msg)
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m["method"] != "error" || m["status"] != "failed" || !strings.HasSuffix(m["message"].(string), c.want) {
			t.Errorf("got %v, want message ending %q", m, c.want)
		}
	}
}

func TestHandlerPanicStillAnswers(t *testing.T) {
	h := HandlerFunc(func(ctx context.Context, s *Session) Outcome { panic("boom") })
	srv := httptest.NewServer(NewServer(Config{}, h))
	defer srv.Close()
	c := dialServer(t, srv)
	c.WriteJSON(firstMessage("activate --profile p", goodPayload))
	var m map[string]any
	if err := c.ReadJSON(&m); err != nil {
		t.Fatal(err)
	}
	if m["method"] != "error" {
		t.Fatalf("got %v", m)
	}
}
