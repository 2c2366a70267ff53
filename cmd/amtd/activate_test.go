package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/mei"
)

// simDevice starts a simulated device with its LMS on a free loopback port
// and its MEI on a Unix socket.
func simDevice(t *testing.T) (*firmware.Firmware, *device.Device, string) {
	t.Helper()
	dir := t.TempDir()
	fw, err := firmware.Open(firmware.Config{Path: filepath.Join(dir, "fw.json"), DNSSuffix: "corp.example.com", Hostname: "desk-1"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := device.New(device.Config{Firmware: fw, Addrs: []string{"127.0.0.1:0"}, LMS: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sock, err := os.MkdirTemp("", "mei") // short path: Unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sock, "mei.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mei.NewServer(fw, mei.Options{}).Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done; d.Close(); os.RemoveAll(sock) })
	return fw, d, path
}

func postJSON(t *testing.T, url string, v any) *http.Response {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestServeActivatesThroughTheAgent: `amtd serve` as wired by the command
// (store, sealed secrets, admin API, activation WebSocket) activates a
// simulated device driven by amtd's rpc-go agent with a profile created
// through the API; then deactivates it.
func TestServeActivatesThroughTheAgent(t *testing.T) {
	c := testConfig(t)
	c.Auth = "none"
	c.ActivationDelay = 0
	s, base, _ := startTestServer(t, c)
	defer s.shutdown(context.Background())

	resp := postJSON(t, base+"/api/v1/admin/profiles", map[string]any{
		"profileName": "office", "activation": "ccmactivate", "generateRandomPassword": true,
		"dhcpEnabled": true, "tags": []string{"floor2"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create profile: %d", resp.StatusCode)
	}

	fw, d, meiPath := simDevice(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws := "ws" + strings.TrimPrefix(base, "http") + "/activate"
	res, err := agent.Run(ctx, agent.Config{URL: ws, Command: "activate", Profile: "office",
		MEIPath: meiPath, LMSAddr: d.Addr(), Hostname: "desk-1"})
	if err != nil {
		t.Fatalf("activate: %v (%+v)", err, res)
	}
	if res.Status == nil || res.Status.Status != "Client control mode." {
		t.Fatalf("status %+v", res.Status)
	}
	if fw.ControlMode() != 1 {
		t.Fatalf("device control mode %d after activation", fw.ControlMode())
	}

	// The device record is there, and the random password amtd set is the
	// one it holds.
	guid := fw.UUIDString()
	dev, err := s.store.GetDevice(ctx, guid)
	if err != nil || dev.Hostname != "desk-1" || len(dev.Tags) != 1 || dev.Tags[0] != "floor2" {
		t.Fatalf("device record %+v %v", dev, err)
	}
	creds, err := devcreds.Load(ctx, s.secrets, guid)
	if err != nil || creds.Current(devcreds.AMT) == "" || creds.Pending(devcreds.AMT) != "" {
		t.Fatalf("credentials: pending=%v err=%v", creds.Pending(devcreds.AMT) != "", err)
	}
	pw := creds.Current(devcreds.AMT)

	// The provisioning log: through the API and the command line.
	code, body := apiCall(t, "GET", base+"/api/v1/devices/"+guid+"/provisioning-log", nil)
	var entries []struct{ Step, Result, Detail string }
	json.Unmarshal(body, &entries)
	if code != 200 || len(entries) < 3 || !strings.Contains(string(body), `"result":"ok"`) {
		t.Fatalf("provisioning log: %d %s", code, body)
	}
	if strings.Contains(string(body), pw) {
		t.Fatal("the provisioning log shows the AMT password")
	}
	var out, errOut bytes.Buffer
	if rc := run(ctx, []string{"provisioning-log", "--data", c.DataDir, guid}, &out, &errOut); rc != 0 ||
		!strings.Contains(out.String(), entries[0].Step) || strings.Count(out.String(), "\n") != len(entries)+1 {
		t.Fatalf("amtd provisioning-log: %d %q %q", rc, out.String(), errOut.String())
	}

	ws = "ws" + strings.TrimPrefix(base, "http") + "/deactivate"
	res, err = agent.Run(ctx, agent.Config{URL: ws, Command: "deactivate", Password: pw,
		MEIPath: meiPath, LMSAddr: d.Addr(), Hostname: "desk-1"})
	if err != nil {
		t.Fatalf("deactivate: %v", err)
	}
	if fw.ControlMode() != 0 {
		t.Fatalf("device control mode %d after deactivation", fw.ControlMode())
	}
	if _, err := s.store.GetDevice(ctx, guid); err == nil {
		t.Fatal("device record kept after deactivation")
	}
	// The log outlives the device record.
	code, body = apiCall(t, "GET", base+"/api/v1/devices/"+guid+"/provisioning-log", nil)
	if code != 200 || !strings.Contains(string(body), "deactivate") {
		t.Fatalf("provisioning log after deactivation: %d %s", code, body)
	}
	if code, _ := apiCall(t, "GET", base+"/api/v1/devices/00000000-0000-4000-8000-000000000000/provisioning-log", nil); code != 404 {
		t.Fatalf("log of an unknown device: %d", code)
	}
}
