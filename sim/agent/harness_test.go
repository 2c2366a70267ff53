package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/amtd-project/amtd/sim/hostif"
	"github.com/amtd-project/amtd/sim/mei"
)

// --- a small in-test device: firmware behind a real MEI socket ---

type testFirmware struct {
	mu     sync.Mutex
	uuid   [16]byte
	mode   uint32
	flags  uint8
	suffix string
	hashes []hostif.CertHashEntry
	lsa    string
	calls  []string // PTHI/WDIF calls in order
}

func newTestFirmware() *testFirmware {
	return &testFirmware{
		uuid:   [16]byte{0x44, 0x45, 0x4c, 0x4c, 0x38, 0x00, 0x10, 0x4b, 0x80, 0x52, 0xb4, 0xc0, 0x4f, 0x56, 0x44, 0x33},
		flags:  0x82,
		suffix: " example.com. ",
		lsa:    "LsaP@ss123",
		hashes: []hostif.CertHashEntry{
			{Handle: 0, IsDefault: true, IsActive: true, Algorithm: 2, Hash: mustHex("e7685634efacf69ace939a6b255b7b4fabef42935b50a265acb5cb6027e44e70"), Name: "Root A"},
			{Handle: 1, IsDefault: true, IsActive: false, Algorithm: 1, Hash: mustHex("742c3192e607e424eb4549542be1bbc53e6174e2"), Name: "Root B"},
		},
	}
}

func mustHex(s string) []byte {
	b, err := hexDecode(s)
	if err != nil {
		panic(err)
	}
	return b
}

func (f *testFirmware) call(name string) {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.mu.Unlock()
}

func (f *testFirmware) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *testFirmware) UUID() [16]byte { f.call("GetUUID"); return f.uuid }
func (f *testFirmware) ControlMode() uint32 {
	f.call("GetControlMode")
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode
}
func (f *testFirmware) ProvisioningState() uint32 { return 0 }
func (f *testFirmware) CodeVersions() (string, []hostif.VersionEntry) {
	f.call("GetCodeVersions")
	return "BIOS", []hostif.VersionEntry{
		{Description: "Flash", Version: "16.1.25.2050"},
		{Description: "AMT", Version: "16.1.25"},
		{Description: "Sku", Version: "16392"},
		{Description: "Build Number", Version: "2050"},
	}
}
func (f *testFirmware) LocalSystemAccount() (string, string) {
	f.call("GetLocalSystemAccount")
	return "$$OsAdmin", f.lsa
}
func (f *testFirmware) LANInterface(i uint32) (hostif.LANSettings, bool) {
	f.call("GetLANInterfaceSettings")
	if i != 0 {
		return hostif.LANSettings{}, false
	}
	return hostif.LANSettings{Enabled: true, IPv4: [4]byte{192, 168, 1, 100}, LinkUp: true}, true
}
func (f *testFirmware) CertHashes() []hostif.CertHashEntry { f.call("CertHashes"); return f.hashes }
func (f *testFirmware) PKIDNSSuffix() string               { f.call("GetPKIFQDNSuffix"); return f.suffix }
func (f *testFirmware) Unprovision() uint32                { return hostif.StatusSuccess }
func (f *testFirmware) StartConfigurationHBased(uint8, []byte) (uint32, uint8, []byte) {
	return hostif.StatusInvalidAMTMode, 0, nil
}
func (f *testFirmware) StopConfiguration() uint32 { return hostif.StatusSuccess }
func (f *testFirmware) WatchdogFlags() uint8      { f.call("IsChangeToAMTEnabled"); return f.flags }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startMEI serves fw on a socket and returns its path.
func startMEI(t *testing.T, fw hostif.Firmware) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mei.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := mei.NewServer(fw, mei.Options{Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

// --- a stand-in for LMS on 16992: one HTTP request per connection ---

// lmsAction is how the LMS stand-in answers one connection.
type lmsAction struct {
	bursts [][]byte // written in order, then the connection is closed
	hold   bool     // write nothing and keep the connection open until the client closes
}

type fakeLMS struct {
	t       *testing.T
	l       net.Listener
	handler func(req []byte) lmsAction
	wg      sync.WaitGroup
	mu      sync.Mutex
	records [][]byte // raw bytes received, per connection in accept order
}

func startLMS(t *testing.T, handler func(req []byte) lmsAction) *fakeLMS {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLMS{t: t, l: l, handler: handler}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.stop)
	return f
}

func (f *fakeLMS) addr() string { return f.l.Addr().String() }

func (f *fakeLMS) accept() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		idx := len(f.records)
		f.records = append(f.records, nil)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			var raw bytes.Buffer
			br := bufio.NewReader(io.TeeReader(c, &raw))
			req, err := http.ReadRequest(br)
			if err == nil {
				_, err = io.ReadAll(req.Body)
			}
			f.mu.Lock()
			f.records[idx] = raw.Bytes()
			f.mu.Unlock()
			if err != nil { // probe or empty relay: client closed without a request
				return
			}
			act := f.handler(raw.Bytes())
			if act.hold {
				_, _ = io.Copy(io.Discard, c)
				return
			}
			for _, b := range act.bursts {
				if _, err := c.Write(b); err != nil {
					return
				}
			}
		}()
	}
}

func (f *fakeLMS) stop() {
	f.l.Close()
	f.wg.Wait()
}

// Records waits for every connection handler and returns what was received.
func (f *fakeLMS) Records() [][]byte {
	f.stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.records
}

// --- a stand-in for LMS on 16993: persistent raw TLS-tunnel connections ---

type tunnelAction struct {
	reply []byte
	close bool // close the connection after reply
}

type fakeTunnelLMS struct {
	l       net.Listener
	handler func(conn int, data []byte) tunnelAction
	wg      sync.WaitGroup
	mu      sync.Mutex
	got     []tunnelChunk
}

type tunnelChunk struct {
	conn int
	data []byte
}

func startTunnelLMS(t *testing.T, handler func(conn int, data []byte) tunnelAction) *fakeTunnelLMS {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeTunnelLMS{l: l, handler: handler}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				buf := make([]byte, 65536)
				for {
					m, err := c.Read(buf)
					if err != nil {
						return
					}
					data := append([]byte(nil), buf[:m]...)
					f.mu.Lock()
					f.got = append(f.got, tunnelChunk{n, data})
					f.mu.Unlock()
					act := f.handler(n, data)
					if len(act.reply) > 0 {
						if _, err := c.Write(act.reply); err != nil {
							return
						}
					}
					if act.close {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); f.wg.Wait() })
	return f
}

func (f *fakeTunnelLMS) addr() string { return f.l.Addr().String() }

func (f *fakeTunnelLMS) Chunks() []tunnelChunk {
	f.l.Close()
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got
}

// --- a scripted WebSocket server ---

// wsServer runs script on the first WebSocket connection it accepts.
type wsServer struct {
	*httptest.Server
	upgrade chan *http.Request // the upgrade request
	done    chan struct{}
}

func startWS(t *testing.T, script func(t *testing.T, ws *websocket.Conn)) *wsServer {
	t.Helper()
	s := &wsServer{upgrade: make(chan *http.Request, 1), done: make(chan struct{})}
	var once sync.Once
	up := websocket.Upgrader{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		defer ws.Close()
		first := false
		once.Do(func() { first = true })
		if !first {
			t.Errorf("second WebSocket connection")
			return
		}
		s.upgrade <- r
		defer close(s.done)
		script(t, ws)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *wsServer) url(path string) string { return "ws" + strings.TrimPrefix(s.URL, "http") + path }

// wait for the script to finish.
func (s *wsServer) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		t.Fatal("WebSocket script did not finish")
	}
}

// readMsg reads one client message: raw bytes and decoded envelope.
func readMsg(t *testing.T, ws *websocket.Conn) ([]byte, envelope) {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	typ, data, err := ws.ReadMessage()
	if err != nil {
		t.Errorf("server read: %v", err)
		return nil, envelope{}
	}
	if typ != websocket.TextMessage {
		t.Errorf("client sent frame type %d, want text", typ)
	}
	var m envelope
	if err := json.Unmarshal(data, &m); err != nil {
		t.Errorf("client message not JSON: %s", data)
	}
	return data, m
}

// serverMsg is an RPS-shaped server message.
func serverMsg(method, status, message string, payload any) []byte {
	b, _ := json.Marshal(struct {
		Method          string `json:"method"`
		APIKey          string `json:"apiKey"`
		AppVersion      string `json:"appVersion"`
		ProtocolVersion string `json:"protocolVersion"`
		Status          string `json:"status"`
		Message         string `json:"message"`
		Payload         any    `json:"payload"`
		TenantID        string `json:"tenantId"`
	}{method, "xxxxx", "2.40.0", "4.0.0", status, message, payload, ""})
	return b
}

func send(t *testing.T, ws *websocket.Conn, msg []byte) {
	t.Helper()
	if err := ws.WriteMessage(websocket.TextMessage, msg); err != nil {
		t.Errorf("server write: %v", err)
	}
}

func sendWSMAN(t *testing.T, ws *websocket.Conn, req string) {
	t.Helper()
	send(t, ws, serverMsg("wsman", "ok", "", base64.StdEncoding.EncodeToString([]byte(req))))
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func unb64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Errorf("payload %q not base64: %v", s, err)
	}
	return string(b)
}

// chunkedPOST is a WS-MAN request shaped as RPS builds it.
func chunkedPOST(body string) string {
	return "POST /wsman HTTP/1.1\r\nHost: 4c4c4544-0038-4b10-8052-b4c04f564433:16992\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
		strings.ToUpper(strconvHex(len(body))) + "\r\n" + body + "\r\n0\r\n\r\n"
}
