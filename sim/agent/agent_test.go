package agent

import (
	"context"
	"errors"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const (
	resp401  = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"Digest:0A1B2C3D4E5F60718293A4B5C6D7E8F9\", nonce=\"B9AX94iAAAAAAAAAx6rrSfPHGUrx/3uA\",stale=\"false\",qop=\"auth\"\r\nContent-Type: text/html\r\nServer: Intel(R) Active Management Technology 16.1.25.2050\r\nContent-Length: 13\r\nConnection: close\r\n\r\n<html></html>"
	resp200a = "HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml; charset=UTF-8\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	resp200b = "5\r\n<a/>\n\r\n0\r\n\r\n"
)

// fastConfig is a Config with test-sized protocol timings.
func fastConfig(ws, meiPath, lms string) Config {
	return Config{
		URL:              ws,
		MEIPath:          meiPath,
		LMSAddr:          lms,
		Hostname:         "vm",
		FirstByteTimeout: time.Second, // generous: a slow reply under -race must not read as silence
		IdleTimeout:      250 * time.Millisecond,
		RoundTimeout:     2 * time.Second,
		Logger:           quietLogger(),
	}
}

const zeroIPAndHostname = `"ipConfiguration":{"dhcp":false,"static":false,"ipsync":false,"ipAddress":"","netmask":"","gateway":"","primaryDns":"","secondaryDns":""},"hostnameInfo":{"dnsSuffixOS":"","hostname":""}`

const certHashesJSON = `"certHashes":["e7685634efacf69ace939a6b255b7b4fabef42935b50a265acb5cb6027e44e70","742c3192e607e424eb4549542be1bbc53e6174e2"]`

// TestActivateV3 checks the first message byte for byte, then relays wsman
// rounds against a real LMS stand-in, with a heartbeat, quiet rounds, an
// unknown method, v3's `progress` quirk and success.
func TestActivateV3(t *testing.T) {
	fw := newTestFirmware()
	meiPath := startMEI(t, fw)

	req := func(n int) string { return chunkedPOST("<Envelope>request " + strconvHex(n) + "</Envelope>") }
	lms := startLMS(t, func(raw []byte) lmsAction {
		switch {
		case strings.Contains(string(raw), "request 1<"):
			return lmsAction{bursts: [][]byte{[]byte(resp401)}}
		case strings.Contains(string(raw), "request 2<"):
			return lmsAction{} // close without a byte: quiet round at EOF
		case strings.Contains(string(raw), "request 3<"):
			return lmsAction{hold: true} // silent: quiet round at the first-byte timeout
		case strings.Contains(string(raw), "request 4<"):
			return lmsAction{bursts: [][]byte{[]byte(resp200a), []byte(resp200b)}}
		default:
			return lmsAction{bursts: [][]byte{[]byte(resp200a + resp200b)}}
		}
	})

	wantPayload := `{"ver":"16.1.25","build":"2050","sku":"16392","features":"AMT Pro Corporate",` +
		`"uuid":"4c4c4544-0038-4b10-8052-b4c04f564433","username":"$$OsAdmin","password":"LsaP@ss123",` +
		`"currentMode":0,"hostname":"vm","fqdn":"example.com","client":"RPC",` + certHashesJSON + `,` +
		zeroIPAndHostname + `,"friendlyName":"desk-7","lmsInstalled":true}`
	wantFirst := `{"method":"activate --profile myprofile","apiKey":"key","appVersion":"Development Build",` +
		`"protocolVersion":"4.0.0","status":"ok","message":"ok","fqdn":"","payload":"` + b64(wantPayload) +
		`","tenantId":"tenant-1"}`
	response := func(p string) string {
		return `{"method":"response","apiKey":"key","appVersion":"Development Build","protocolVersion":"4.0.0",` +
			`"status":"ok","message":"ok","fqdn":"","payload":"` + b64(p) + `","tenantId":""}`
	}

	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		raw, _ := readMsg(t, ws)
		if string(raw) != wantFirst {
			t.Errorf("first message\n got %s\nwant %s", raw, wantFirst)
		}
		sendWSMAN(t, ws, req(1))
		if raw, _ := readMsg(t, ws); string(raw) != response(resp401) {
			t.Errorf("response 1\n got %s\nwant %s", raw, response(resp401))
		}
		send(t, ws, []byte(`{"method":"heartbeat_request","apiKey":"xxxxx","appVersion":"2.40.0","protocolVersion":"4.0.0","status":"ok","message":"","payload":"","tenantId":""}`))
		wantHB := `{"method":"heartbeat_response","apiKey":"xxxxx","appVersion":"2.40.0","protocolVersion":"4.0.0","status":"success","message":"","fqdn":"","payload":"","tenantId":""}`
		if raw, _ := readMsg(t, ws); string(raw) != wantHB {
			t.Errorf("heartbeat\n got %s\nwant %s", raw, wantHB)
		}
		sendWSMAN(t, ws, req(2)) // quiet
		sendWSMAN(t, ws, req(3)) // quiet
		sendWSMAN(t, ws, req(4))
		if raw, _ := readMsg(t, ws); string(raw) != response(resp200a+resp200b) {
			t.Errorf("response 4 (two bursts)\n got %s", raw)
		}
		send(t, ws, serverMsg("some_future_method", "ok", "", b64(req(5))))
		if raw, _ := readMsg(t, ws); string(raw) != response(resp200a+resp200b) {
			t.Errorf("response 5 (unknown method)\n got %s", raw)
		}
		send(t, ws, serverMsg("progress", "ok", "Activation completed", nil)) // v3: relayed, quiet
		send(t, ws, serverMsg("success", "success",
			`{"Status":"Client control mode.","Network":"Wired Network Configured","CIRAConnection":"Configured","TLSConfiguration":""}`, nil))
	})

	cfg := fastConfig(srv.url("/activate"), meiPath, lms.addr())
	cfg.Command, cfg.Profile, cfg.TenantID, cfg.FriendlyName = "activate", "myprofile", "tenant-1", "desk-7"
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	srv.wait(t)

	up := <-srv.upgrade
	if up.URL.Path != "/activate" || up.Header.Get("Origin") != "" || up.Header.Get("Sec-WebSocket-Protocol") != "" ||
		up.Header.Get("User-Agent") != "Go-http-client/1.1" || up.Header.Get("Authorization") != "" {
		t.Errorf("upgrade request %s %v", up.URL.Path, up.Header)
	}
	if res.Method != "success" || res.Status == nil || res.Status.Status != "Client control mode." ||
		res.Status.Network != "Wired Network Configured" || res.Status.CIRAConnection != "Configured" {
		t.Errorf("result %+v status %+v", res, res.Status)
	}
	if res.Rounds != 3 || res.QuietRounds != 3 || res.Heartbeats != 1 {
		t.Errorf("rounds %d quiet %d heartbeats %d, want 3/3/1", res.Rounds, res.QuietRounds, res.Heartbeats)
	}
	if res.Payload.Password != "" || res.Payload.UUID != "4c4c4544-0038-4b10-8052-b4c04f564433" || !res.Payload.LMSInstalled {
		t.Errorf("result payload %+v", res.Payload)
	}
	if res.Timing.Total <= 0 || res.Timing.Session <= 0 || res.Timing.Identity <= 0 {
		t.Errorf("timing %+v", res.Timing)
	}

	// LMS saw: two probes, then one connection per relayed message with
	// the request bytes unchanged (progress: a connection with no bytes).
	want := []string{"", "", req(1), req(2), req(3), req(4), req(5), ""}
	recs := lms.Records()
	if len(recs) != len(want) {
		t.Fatalf("LMS connections %d, want %d: %q", len(recs), len(want), recs)
	}
	for i, w := range want {
		if string(recs[i]) != w {
			t.Errorf("LMS connection %d received %q, want %q", i, recs[i], w)
		}
	}

	wantCalls := []string{"GetControlMode", "IsChangeToAMTEnabled", "GetLANInterfaceSettings",
		"GetCodeVersions", "GetCodeVersions", "GetCodeVersions", "GetUUID", "GetControlMode",
		"GetLocalSystemAccount", "CertHashes", "CertHashes", "CertHashes", "GetPKIFQDNSuffix"}
	if got := fw.Calls(); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("MEI calls\n got %v\nwant %v", got, wantCalls)
	}
}

// TestDeactivateV3: activated device, operator password, -f, error reply in
// plain text.
func TestDeactivateV3(t *testing.T) {
	fw := newTestFirmware()
	fw.mode = 1
	fw.suffix = ""
	meiPath := startMEI(t, fw)
	lms := startLMS(t, func([]byte) lmsAction { return lmsAction{} })
	const errText = "Device 4c4c4544-0038-4b10-8052-b4c04f564433 deactivation failed. It is in unknown mode: 7."
	wantPayload := `{"ver":"16.1.25","build":"2050","sku":"16392","features":"AMT Pro Corporate",` +
		`"uuid":"4c4c4544-0038-4b10-8052-b4c04f564433","username":"$$OsAdmin","password":"P@ssw0rd",` +
		`"currentMode":1,"hostname":"vm","fqdn":"corp.example","client":"RPC",` + certHashesJSON + `,` +
		zeroIPAndHostname + `,"lmsInstalled":true}`
	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		_, m := readMsg(t, ws)
		if m.Method != "deactivate --password P@ssw0rd -f" || m.TenantID != "" {
			t.Errorf("method %q tenant %q", m.Method, m.TenantID)
		}
		if got := unb64(t, m.Payload); got != wantPayload {
			t.Errorf("payload\n got %s\nwant %s", got, wantPayload)
		}
		send(t, ws, serverMsg("error", "failed", errText, nil))
	})
	cfg := fastConfig(srv.url("/deactivate"), meiPath, lms.addr())
	cfg.Command, cfg.Password, cfg.Force = "deactivate", "P@ssw0rd", true
	cfg.OSDNSSuffix = "corp.example" // PKI suffix empty: OS suffix fallback
	res, err := Run(context.Background(), cfg)
	var rpsErr *RPSError
	if !errors.As(err, &rpsErr) || rpsErr.Message != errText || rpsErr.Status != nil {
		t.Fatalf("Run = %v", err)
	}
	if err.Error() != "rps returned error: "+errText {
		t.Errorf("error text %q", err)
	}
	if res.Method != "error" || res.Message != errText || res.Status != nil {
		t.Errorf("result %+v", res)
	}
	srv.wait(t)
}

// TestMaintenanceV2: v2 method syntax, progressSupported, filled
// ipConfiguration, one LMS probe, progress logged (not relayed), error with
// a status JSON.
func TestMaintenanceV2(t *testing.T) {
	fw := newTestFirmware()
	fw.mode = 2
	meiPath := startMEI(t, fw)
	lms := startLMS(t, func([]byte) lmsAction { return lmsAction{bursts: [][]byte{[]byte(resp200a + resp200b)}} })
	ip := IPConfiguration{Static: true, IPSync: true, IPAddress: "192.168.1.100", Netmask: "255.255.255.0",
		Gateway: "192.168.1.1", PrimaryDNS: "192.168.1.2", SecondaryDNS: "8.8.8.8"}
	wantPayload := `{"ver":"16.1.25","build":"2050","sku":"16392","features":"AMT Pro Corporate",` +
		`"uuid":"4c4c4544-0038-4b10-8052-b4c04f564433","username":"$$OsAdmin","password":"P@ssw0rd",` +
		`"currentMode":2,"hostname":"vm","fqdn":"override.example","client":"RPC",` + certHashesJSON + `,` +
		`"ipConfiguration":{"dhcp":false,"static":true,"ipsync":true,"ipAddress":"192.168.1.100","netmask":"255.255.255.0","gateway":"192.168.1.1","primaryDns":"192.168.1.2","secondaryDns":"8.8.8.8"},` +
		`"hostnameInfo":{"dnsSuffixOS":"","hostname":""},"progressSupported":true}`
	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		_, m := readMsg(t, ws)
		if m.Method != "maintenance -password P@ssw0rd --syncip" {
			t.Errorf("method %q", m.Method)
		}
		if got := unb64(t, m.Payload); got != wantPayload {
			t.Errorf("payload\n got %s\nwant %s", got, wantPayload)
		}
		send(t, ws, serverMsg("progress", "ok", "Configuring network settings", nil))
		sendWSMAN(t, ws, chunkedPOST("<Envelope/>"))
		if _, m := readMsg(t, ws); m.Method != "response" || unb64(t, m.Payload) != resp200a+resp200b {
			t.Errorf("response %+v", m)
		}
		send(t, ws, serverMsg("error", "failed", `{"Status":"syncip failed IPAddress already synchronized"}`, nil))
	})
	cfg := fastConfig(srv.url("/maintenance"), meiPath, lms.addr())
	cfg.Command, cfg.Password, cfg.Task, cfg.IPConfiguration = "maintenance", "P@ssw0rd", "syncip", ip
	cfg.HostnameInfo = HostnameInfo{DNSSuffixOS: "ignored.example", Hostname: "ignored"} // not syncip's
	cfg.DNSSuffixOverride = "override.example"
	res, err := Run(context.Background(), cfg)
	var rpsErr *RPSError
	if !errors.As(err, &rpsErr) || rpsErr.Status == nil || rpsErr.Status.Status != "syncip failed IPAddress already synchronized" {
		t.Fatalf("Run = %v", err)
	}
	if !reflect.DeepEqual(res.Progress, []string{"Configuring network settings"}) || res.Rounds != 1 || res.QuietRounds != 0 {
		t.Errorf("result %+v", res)
	}
	srv.wait(t)
	recs := lms.Records()
	if len(recs) != 2 || len(recs[0]) != 0 || string(recs[1]) != chunkedPOST("<Envelope/>") {
		t.Errorf("LMS connections %q (want one probe, one request)", recs)
	}
	for _, c := range fw.Calls() {
		if c == "GetPKIFQDNSuffix" {
			t.Error("PKI DNS suffix read although overridden")
		}
	}
}

func TestCommandMethod(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Command: "activate", Profile: "p1", Force: true}, "activate --profile p1"},
		{Config{Command: "deactivate", Password: "pw"}, "deactivate --password pw"},
		{Config{Command: "deactivate", Password: "pw", Force: true}, "deactivate --password pw -f"},
		{Config{Command: "maintenance", Password: "pw", Task: "syncclock"}, "maintenance -password pw --synctime"},
		{Config{Command: "maintenance", Password: "pw", Task: "changepassword", TaskArg: "New1!"}, "maintenance -password pw --changepassword New1!"},
		{Config{Command: "maintenance", Password: "pw", Task: "changepassword", Force: true}, "maintenance -password pw --changepassword -f"},
		{Config{Command: "maintenance", Password: "pw", Task: "synchostname", TaskArg: "x", Force: true}, "maintenance -password pw --synchostname -f"},
		{Config{Command: "maintenance", Password: "pw", Task: "syncdeviceinfo"}, "maintenance -password pw --syncdeviceinfo"},
	} {
		if got := commandMethod(tc.cfg); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cfg, got, tc.want)
		}
	}
}

func TestDecodeFeatures(t *testing.T) {
	for _, tc := range []struct{ ver, sku, want string }{
		{"16.1.25", "16392", "AMT Pro Corporate"},
		{"11.8.50", "16392", "AMT Pro Corporate"},
		{"15.0.23", "16400", "Intel Standard Manageability Corporate"},
		{"12.0.1", "8200", "AMT Pro AT-p"},
		{"5.2.1", "0x812e", "iQST ASF AMT Pro TPM Home IT L3 Mgt Upgrade"},
		{"3.2.1", "14", "iQST ASF AMT"},
		{"2.1.0", "1", "ASF + iQST"},
		{"2.1.0", "9", "Unknown"},
		{"16", "16392", "Invalid AMT version format"},
		{"x.1", "16392", "Invalid AMT version"},
		{"16.1", "abc", "Invalid SKU"},
	} {
		if got := decodeFeatures(tc.ver, tc.sku); got != tc.want {
			t.Errorf("decodeFeatures(%q, %q) = %q, want %q", tc.ver, tc.sku, got, tc.want)
		}
	}
}

// noServer is a ws:// URL whose server fails the test when contacted.
func noServer(t *testing.T) string {
	s := startWS(t, func(t *testing.T, ws *websocket.Conn) { t.Error("server contacted") })
	return s.url("/activate")
}

func TestLocalFailures(t *testing.T) {
	ctx := context.Background()
	lms := startLMS(t, func([]byte) lmsAction { return lmsAction{} })
	closedPort := func() string {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := l.Addr().String()
		l.Close()
		return a
	}()

	t.Run("missing password on activated device", func(t *testing.T) {
		fw := newTestFirmware()
		fw.mode = 1
		cfg := fastConfig(noServer(t), startMEI(t, fw), lms.addr())
		cfg.Command, cfg.Profile = "activate", "p"
		if _, err := Run(ctx, cfg); !errors.Is(err, ErrMissingPassword) {
			t.Fatalf("Run = %v", err)
		}
	})
	for _, u := range [][16]byte{{}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 0, 9}} {
		t.Run("firmware UUID "+strconvHex(int(u[0])), func(t *testing.T) {
			fw := newTestFirmware()
			fw.uuid = u
			cfg := fastConfig(noServer(t), startMEI(t, fw), lms.addr())
			cfg.Command, cfg.Profile = "activate", "p"
			if _, err := Run(ctx, cfg); !errors.Is(err, ErrInvalidUUID) {
				t.Fatalf("Run = %v", err)
			}
		})
	}
	t.Run("sentinel UUID override", func(t *testing.T) {
		cfg := fastConfig(noServer(t), startMEI(t, newTestFirmware()), lms.addr())
		cfg.Command, cfg.Profile, cfg.UUIDOverride = "activate", "p", "03000200-0400-0500-0006-000700080009"
		if _, err := Run(ctx, cfg); !errors.Is(err, ErrInvalidUUID) {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("no LMS", func(t *testing.T) {
		cfg := fastConfig(noServer(t), startMEI(t, newTestFirmware()), closedPort)
		cfg.Command, cfg.Profile = "activate", "p"
		res, err := Run(ctx, cfg)
		if !errors.Is(err, ErrLMEUnsupported) || res.Payload.LMSInstalled {
			t.Fatalf("Run = %v, payload %+v", err, res.Payload)
		}
	})
	t.Run("TLS enforced without LMS", func(t *testing.T) {
		fw := newTestFirmware()
		fw.flags = 0xC2
		cfg := fastConfig(noServer(t), startMEI(t, fw), lms.addr())
		cfg.LMSTLSAddr = closedPort
		cfg.Command, cfg.Profile = "activate", "p"
		if _, err := Run(ctx, cfg); !errors.Is(err, ErrLMSConnectionFailed) {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("no MEI", func(t *testing.T) {
		cfg := fastConfig(noServer(t), t.TempDir()+"/absent.sock", lms.addr())
		cfg.Command, cfg.Profile, cfg.ControlModeAttempts, cfg.ControlModeRetryDelay = "activate", "p", 2, time.Millisecond
		if _, err := Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "GetControlMode") {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("bad config", func(t *testing.T) {
		for _, cfg := range []Config{
			{Command: "activate", URL: "ws://x/", MEIPath: "m"},
			{Command: "activate", Profile: "p", URL: "http://x/", MEIPath: "m"},
			{Command: "activate", Profile: "p", URL: "ws://x/"},
			{Command: "maintenance", Task: "synctime", Version: "v3", URL: "ws://x/", MEIPath: "m"},
			{Command: "maintenance", Task: "reboot", URL: "ws://x/", MEIPath: "m"},
			{Command: "configure", URL: "ws://x/", MEIPath: "m"},
		} {
			if _, err := Run(ctx, cfg); err == nil {
				t.Errorf("Run(%+v) accepted", cfg)
			}
		}
	})
}

func TestServerFailures(t *testing.T) {
	ctx := context.Background()
	fw := newTestFirmware()
	meiPath := startMEI(t, fw)
	lmsAddr := startLMS(t, func([]byte) lmsAction {
		return lmsAction{bursts: [][]byte{[]byte("HTTP/1.1 200 OK\r\n")}}
	}).addr()
	run := func(t *testing.T, script func(t *testing.T, ws *websocket.Conn), mod func(*Config)) (Result, error) {
		srv := startWS(t, script)
		cfg := fastConfig(srv.url("/activate"), meiPath, lmsAddr)
		cfg.Command, cfg.Profile = "activate", "p"
		if mod != nil {
			mod(&cfg)
		}
		res, err := Run(ctx, cfg)
		srv.wait(t)
		return res, err
	}

	t.Run("closed without success or error", func(t *testing.T) {
		_, err := run(t, func(t *testing.T, ws *websocket.Conn) { readMsg(t, ws) }, nil)
		if !errors.Is(err, ErrConnectionClosed) {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("payload not base64 (v3)", func(t *testing.T) {
		_, err := run(t, func(t *testing.T, ws *websocket.Conn) {
			readMsg(t, ws)
			send(t, ws, serverMsg("wsman", "ok", "", "%%%"))
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			ws.ReadMessage() // the agent gives up and goes away
		}, nil)
		if err == nil || err.Error() != "unable to decode base64 payload from RPS" {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		_, err := run(t, func(t *testing.T, ws *websocket.Conn) {
			readMsg(t, ws)
			send(t, ws, []byte("hello"))
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			ws.ReadMessage()
		}, nil)
		if err == nil || !strings.Contains(err.Error(), "invalid message") {
			t.Fatalf("Run = %v", err)
		}
	})
	t.Run("success with plain text", func(t *testing.T) {
		res, err := run(t, func(t *testing.T, ws *websocket.Conn) {
			readMsg(t, ws)
			send(t, ws, serverMsg("success", "success", "all good", nil))
		}, nil)
		if err != nil || res.Method != "success" || res.Message != "all good" || res.Status != nil {
			t.Fatalf("Run = %+v, %v", res, err)
		}
	})
	t.Run("context cancelled while waiting for the server", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
			readMsg(t, ws)
			cancel()
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			ws.ReadMessage()
		})
		cfg := fastConfig(srv.url("/activate"), meiPath, lmsAddr)
		cfg.Command, cfg.Profile = "activate", "p"
		if _, err := Run(cctx, cfg); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
		srv.wait(t)
	})
}

// TestRoundTimeoutV3: an LMS that keeps trickling bytes past v3's per-round
// budget ends the run.
func TestRoundTimeoutV3(t *testing.T) {
	meiPath := startMEI(t, newTestFirmware())
	stop := make(chan struct{})
	defer close(stop)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				if n, _ := c.Read(buf); n == 0 {
					return // probe
				}
				tick := time.NewTicker(20 * time.Millisecond) // pacing, always under the idle timeout
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := c.Write([]byte("x")); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		readMsg(t, ws)
		sendWSMAN(t, ws, chunkedPOST("<a/>"))
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, data, err := ws.ReadMessage(); err == nil {
			t.Errorf("agent answered a round cut by its budget: %s", data)
		}
	})
	cfg := fastConfig(srv.url("/activate"), meiPath, ln.Addr().String())
	cfg.Command, cfg.Profile, cfg.RoundTimeout = "activate", "p", 400*time.Millisecond
	cfg.IdleTimeout = 2 * time.Second // every read deadline is the round budget: the cut is deterministic
	_, err = Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "timeout waiting for AMT response after 400ms") {
		t.Fatalf("Run = %v", err)
	}
	srv.wait(t)
}

func TestMaintenanceV2Hostname(t *testing.T) {
	fw := newTestFirmware()
	fw.mode = 1
	meiPath := startMEI(t, fw)
	lms := startLMS(t, func([]byte) lmsAction { return lmsAction{} })
	srv := startWS(t, func(t *testing.T, ws *websocket.Conn) {
		_, m := readMsg(t, ws)
		if m.Method != "maintenance -password pw --synchostname -f" {
			t.Errorf("method %q", m.Method)
		}
		p := unb64(t, m.Payload)
		if !strings.Contains(p, `"ipConfiguration":{"dhcp":false,"static":false,"ipsync":false,"ipAddress":"","netmask":"","gateway":"","primaryDns":"","secondaryDns":""},"hostnameInfo":{"dnsSuffixOS":"corp.example","hostname":"desk-9"},"progressSupported":true}`) {
			t.Errorf("payload %s", p)
		}
		send(t, ws, serverMsg("success", "success", `{"Status":"synchostname completed succesfully"}`, nil))
	})
	cfg := fastConfig(srv.url("/maintenance"), meiPath, lms.addr())
	cfg.Command, cfg.Password, cfg.Task, cfg.Force = "maintenance", "pw", "synchostname", true
	cfg.HostnameInfo = HostnameInfo{DNSSuffixOS: "corp.example", Hostname: "desk-9"}
	cfg.IPConfiguration = IPConfiguration{DHCP: true} // not synchostname's
	res, err := Run(context.Background(), cfg)
	if err != nil || res.Status == nil || res.Status.Status != "synchostname completed succesfully" {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	srv.wait(t)
}
