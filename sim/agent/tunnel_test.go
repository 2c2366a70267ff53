package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestTLSEnforcedScripted: a device with TLS enforced on local ports (flag
// 0x40) relays tls_data over one persistent connection to the TLS port,
// reconnects on a new ClientHello and reports AMT's close as
// connection_reset.
func TestTLSEnforcedScripted(t *testing.T) {
	fw := newTestFirmware()
	fw.flags = 0xC2
	meiPath := startMEI(t, fw)
	clientHello := func(tag string) []byte { return append([]byte{0x16, 3, 1, 0, 40, 0x01}, tag...) }
	tun := startTunnelLMS(t, func(conn int, data []byte) tunnelAction {
		switch s := string(data); {
		case strings.HasSuffix(s, "CH1"):
			return tunnelAction{reply: []byte("SERVER-FLIGHT-1")}
		case s == "app-data":
			return tunnelAction{reply: []byte("R1")}
		case s == "silence":
			return tunnelAction{}
		case s == "bye":
			return tunnelAction{close: true}
		case strings.HasSuffix(s, "CH2"):
			return tunnelAction{reply: []byte("SERVER-FLIGHT-2")}
		}
		return tunnelAction{close: true}
	})
	http16992 := startLMS(t, func([]byte) lmsAction { return lmsAction{} })

	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		_, m := readMsg(t, ws)
		if p := unb64(t, m.Payload); !strings.HasSuffix(p, `"tlsEnforced":true,"lmsInstalled":true}`) {
			t.Errorf("payload tail: %s", p)
		}
		expect := func(method, payload string) {
			t.Helper()
			_, m := readMsg(t, ws)
			if m.Method != method || unb64(t, m.Payload) != payload || m.Status != "ok" || m.Message != "ok" {
				t.Errorf("got %s %q, want %s %q", m.Method, unb64(t, m.Payload), method, payload)
			}
		}
		send(t, ws, serverMsg("tls_data", "ok", "", base64.StdEncoding.EncodeToString(clientHello("CH1"))))
		expect("tls_data", "SERVER-FLIGHT-1")
		sendWSMAN(t, ws, "app-data") // in tunnel mode every relayed message is TLS data
		expect("tls_data", "R1")
		send(t, ws, serverMsg("tls_data", "ok", "", b64("silence"))) // quiet round
		send(t, ws, serverMsg("tls_data", "ok", "", b64("bye")))
		_, m = readMsg(t, ws)
		if m.Method != "connection_reset" || m.Payload != "Y29ubmVjdGlvbl9jbG9zZWQ=" {
			t.Errorf("got %s %q, want connection_reset", m.Method, m.Payload)
		}
		send(t, ws, serverMsg("tls_data", "ok", "", base64.StdEncoding.EncodeToString(clientHello("CH2"))))
		expect("tls_data", "SERVER-FLIGHT-2")
		send(t, ws, serverMsg("success", "success", `{"Status":"Admin control mode."}`, nil))
	})
	cfg := fastConfig(srv.url("/activate"), meiPath, http16992.addr())
	cfg.LMSTLSAddr = tun.addr()
	cfg.TLSFirstByteTimeout, cfg.TLSIdleTimeout = time.Second, 250*time.Millisecond
	cfg.Command, cfg.Profile = "activate", "acm"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.wait(t)
	if !res.Payload.TLSEnforced || res.Rounds != 3 || res.QuietRounds != 1 || res.ConnectionResets != 1 {
		t.Errorf("result %+v", res)
	}
	// The two probes (connections 0 and 1) carried nothing; the session used
	// connection 2 until AMT closed it, then connection 3.
	var conns []int
	for _, c := range tun.Chunks() {
		conns = append(conns, c.conn)
	}
	if want := []int{2, 2, 2, 2, 3}; !equalInts(conns, want) {
		t.Errorf("tunnel connections %v, want %v", conns, want)
	}
	if recs := http16992.Records(); len(recs) != 0 {
		t.Errorf("port 16992 used on a TLS-enforced device: %q", recs)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPortSwitch: --tls-tunnel on a non-enforced device; WS-MAN over 16992,
// then port_switch to 16993, acknowledged, then tls_data.
func TestPortSwitch(t *testing.T) {
	meiPath := startMEI(t, newTestFirmware())
	lms := startLMS(t, func([]byte) lmsAction { return lmsAction{bursts: [][]byte{[]byte(resp401)}} })
	tun := startTunnelLMS(t, func(_ int, data []byte) tunnelAction {
		return tunnelAction{reply: append([]byte("echo:"), data...)}
	})
	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		_, m := readMsg(t, ws)
		if p := unb64(t, m.Payload); !strings.HasSuffix(p, `"tlsTunnel":true,"lmsInstalled":true}`) {
			t.Errorf("payload tail: %s", p)
		}
		sendWSMAN(t, ws, chunkedPOST("<a/>"))
		if _, m := readMsg(t, ws); m.Method != "response" {
			t.Errorf("got %s", m.Method)
		}
		send(t, ws, serverMsg("port_switch", "ok", "", `{"port":"16993","delay":0}`))
		raw, _ := readMsg(t, ws)
		wantAck := `{"method":"port_switch_ack","apiKey":"key","appVersion":"Development Build","protocolVersion":"4.0.0","status":"ok","message":"ok","fqdn":"","payload":"b2s=","tenantId":""}`
		if string(raw) != wantAck {
			t.Errorf("ack %s", raw)
		}
		send(t, ws, serverMsg("tls_data", "ok", "", b64("hello")))
		if _, m := readMsg(t, ws); m.Method != "tls_data" || unb64(t, m.Payload) != "echo:hello" {
			t.Errorf("got %s %q", m.Method, unb64(t, m.Payload))
		}
		sendWSMAN(t, ws, "again") // after the switch a wsman payload also goes to the tunnel
		if _, m := readMsg(t, ws); m.Method != "tls_data" || unb64(t, m.Payload) != "echo:again" {
			t.Errorf("got %s %q", m.Method, unb64(t, m.Payload))
		}
		send(t, ws, serverMsg("success", "success", `{"Status":"Client control mode."}`, nil))
	})
	cfg := fastConfig(srv.url("/activate"), meiPath, lms.addr())
	cfg.LMSTLSAddr = tun.addr()
	cfg.TLSTunnel = true
	cfg.TLSFirstByteTimeout, cfg.TLSIdleTimeout = time.Second, 250*time.Millisecond
	cfg.Command, cfg.Profile = "activate", "p"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.wait(t)
	if res.PortSwitches != 1 || res.Rounds != 3 {
		t.Errorf("result %+v", res)
	}
	chunks := tun.Chunks()
	if len(chunks) != 2 || chunks[0].conn != chunks[1].conn {
		t.Errorf("tunnel chunks %+v (want two on one connection)", chunks)
	}
}

// wsTLSConn carries a TLS client's bytes as tls_data messages, the way the
// server drives a TLS session through rpc-go.
type wsTLSConn struct {
	ws     *websocket.Conn
	pr     *io.PipeReader
	pw     *io.PipeWriter
	wmu    sync.Mutex
	resets int
}

func newWSTLSConn(t *testing.T, ws *websocket.Conn) *wsTLSConn {
	pr, pw := io.Pipe()
	c := &wsTLSConn{ws: ws, pr: pr, pw: pw}
	go func() {
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			var m envelope
			if err := json.Unmarshal(data, &m); err != nil {
				t.Errorf("bad client message %s", data)
				continue
			}
			switch m.Method {
			case "tls_data":
				b, _ := base64.StdEncoding.DecodeString(m.Payload)
				if _, err := pw.Write(b); err != nil {
					return
				}
			default:
				t.Errorf("unexpected client message %s", data)
			}
		}
	}()
	return c
}

func (c *wsTLSConn) Read(p []byte) (int, error) { return c.pr.Read(p) }
func (c *wsTLSConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.TextMessage, serverMsg("tls_data", "ok", "", base64.StdEncoding.EncodeToString(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// TestTLSTunnelRealSession runs a real TLS 1.3 session from the test's
// "server" through the agent's tunnel to an HTTPS listener standing in for
// LMS on 16993, with two requests on one TLS session.
func TestTLSTunnelRealSession(t *testing.T) {
	fw := newTestFirmware()
	fw.flags = 0xC2
	meiPath := startMEI(t, fw)
	var served int
	var mu sync.Mutex
	amt := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		served++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/soap+xml; charset=UTF-8")
		io.WriteString(w, "<Envelope>"+string(body)+"</Envelope>")
	}))
	amt.Config.ErrorLog = log.New(io.Discard, "", 0) // the probes close without a handshake
	amt.StartTLS()
	defer amt.Close()
	roots := amt.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs

	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		readMsg(t, ws) // first message
		tunnel := newWSTLSConn(t, ws)
		tc := tls.Client(&tunnelConn{tunnel}, &tls.Config{RootCAs: roots, ServerName: "example.com", MinVersion: tls.VersionTLS13})
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Errorf("TLS handshake through the tunnel: %v", err)
			return
		}
		br := bufio.NewReader(tc)
		for _, body := range []string{"first", "second"} {
			req := "POST /wsman HTTP/1.1\r\nHost: 127.0.0.1:16993\r\nContent-Length: " + strconvDec(len(body)) + "\r\n\r\n" + body
			if _, err := io.WriteString(tc, req); err != nil {
				t.Errorf("write: %v", err)
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Errorf("read response: %v", err)
				return
			}
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(got) != "<Envelope>"+body+"</Envelope>" {
				t.Errorf("response %d %q", resp.StatusCode, got)
			}
		}
		tunnel.wmu.Lock()
		send(t, ws, serverMsg("success", "success", `{"Status":"Admin control mode."}`, nil))
		tunnel.wmu.Unlock()
	})
	cfg := fastConfig(srv.url("/activate"), meiPath, "127.0.0.1:1")
	cfg.LMSTLSAddr = amt.Listener.Addr().String()
	cfg.TLSFirstByteTimeout, cfg.TLSIdleTimeout = time.Second, 250*time.Millisecond
	cfg.Command, cfg.Profile = "activate", "acm"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.wait(t)
	mu.Lock()
	defer mu.Unlock()
	if served != 2 || res.Rounds < 3 {
		t.Errorf("served %d requests, %d rounds (%+v)", served, res.Rounds, res)
	}
}

// tunnelConn adapts wsTLSConn to net.Conn for crypto/tls.
type tunnelConn struct{ *wsTLSConn }

func (tunnelConn) Close() error                     { return nil }
func (tunnelConn) LocalAddr() net.Addr              { return dummyAddr{} }
func (tunnelConn) RemoteAddr() net.Addr             { return dummyAddr{} }
func (tunnelConn) SetDeadline(time.Time) error      { return nil }
func (tunnelConn) SetReadDeadline(time.Time) error  { return nil }
func (tunnelConn) SetWriteDeadline(time.Time) error { return nil }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "ws" }
func (dummyAddr) String() string  { return "tunnel" }
