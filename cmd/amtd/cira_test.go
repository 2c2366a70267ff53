package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/mei"
)

func apiCall(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestServeCIRAEndToEnd: a simulated device activated through `amtd serve`
// with a CIRA profile calls home to amtd's CIRA listener, authenticates with
// the MPS credentials amtd generated for it, and is then managed through the
// MPS-compatible API over that connection; state changes are asserted on the
// device. The device's record names no reachable LAN address, so every call
// goes through CIRA.
func TestServeCIRAEndToEnd(t *testing.T) {
	c := testConfig(t)
	c.Auth = "none"
	c.ActivationDelay = 0
	c.MPSHost = "mps.example.test"
	s, base, _ := startTestServer(t, c)
	defer s.shutdown(context.Background())

	code, rootPEM := apiCall(t, "GET", base+"/api/v1/ciracert", nil)
	blk, _ := pem.Decode(rootPEM)
	if code != 200 || blk == nil {
		t.Fatalf("ciracert: %d %q", code, rootPEM)
	}
	if code, b := apiCall(t, "POST", base+"/api/v1/admin/ciraconfigs", map[string]any{
		"configName": "home", "mpsServerAddress": "mps.example.test", "mpsPort": 4433, "username": "ciraUser1",
		"serverAddressFormat": 201, "authMethod": 2, "mpsRootCertificate": base64.StdEncoding.EncodeToString(blk.Bytes),
	}); code != 201 {
		t.Fatalf("cira config: %d %s", code, b)
	}
	if code, b := apiCall(t, "POST", base+"/api/v1/admin/profiles", map[string]any{
		"profileName": "remote", "activation": "ccmactivate", "generateRandomPassword": true,
		"dhcpEnabled": true, "ciraConfigName": "home", "kvmEnabled": true, "solEnabled": true,
	}); code != 201 {
		t.Fatalf("profile: %d %s", code, b)
	}

	dir := t.TempDir()
	fw, err := firmware.Open(firmware.Config{Path: filepath.Join(dir, "fw.json"), DNSSuffix: "corp.example.com", Hostname: "laptop-7"})
	if err != nil {
		t.Fatal(err)
	}
	var ciraAddr atomic.Value // the listener moves when the server restarts
	ciraAddr.Store(s.ciraLn.Addr().String())
	d, err := device.New(device.Config{Firmware: fw, Addrs: []string{"127.0.0.1:0"}, LMS: true,
		CIRA: &cira.Options{TimeScale: 0.01, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
			// "mps.example.test" resolves to amtd's CIRA listener; the device
			// still checks the certificate's name against it.
			Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, ciraAddr.Load().(string))
			}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sock, _ := os.MkdirTemp("", "mei")
	defer os.RemoveAll(sock)
	meiPath := filepath.Join(sock, "mei.sock")
	l, err := net.Listen("unix", meiPath)
	if err != nil {
		t.Fatal(err)
	}
	go mei.NewServer(fw, mei.Options{}).Serve(ctx, l)

	res, err := agent.Run(ctx, agent.Config{URL: "ws" + strings.TrimPrefix(base, "http") + "/activate",
		Command: "activate", Profile: "remote", MEIPath: meiPath, LMSAddr: d.Addr(), Hostname: "laptop-7"})
	if err != nil || res.Status == nil || res.Status.CIRAConnection != "Configured" {
		t.Fatalf("activation: %v %+v", err, res.Status)
	}
	guid := fw.UUIDString()

	// The device calls home; the connection shows in the device record.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := apiCall(t, "GET", base+"/api/v1/devices/"+guid, nil)
		var dev struct {
			ConnectionStatus bool   `json:"connectionStatus"`
			MPSInstance      string `json:"mpsInstance"`
			MPSUsername      string `json:"mpsusername"`
		}
		json.Unmarshal(b, &dev)
		if code == 200 && dev.ConnectionStatus {
			if dev.MPSInstance != c.InstanceID || dev.MPSUsername != "ciraUser1" {
				t.Fatalf("device record %s", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device never connected over CIRA (client %+v): %d %s", d.CIRA().Status(), code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !s.cira.IsConnected(guid) {
		t.Fatal("CIRA server does not hold the device")
	}

	// The device record has no address and its hostname does not resolve:
	// the API can reach it only through the CIRA connection.

	code, b := apiCall(t, "GET", base+"/api/v1/amt/version/"+guid, nil)
	if code != 200 || !strings.Contains(string(b), "16.1") {
		t.Fatalf("version over CIRA: %d %s", code, b)
	}
	events := len(fw.Snapshot().EventLog)
	if code, b := apiCall(t, "POST", base+"/api/v1/amt/power/action/"+guid, map[string]any{"action": 8}); code != 200 {
		t.Fatalf("power off: %d %s", code, b)
	}
	if fw.PowerState() != 8 || len(fw.Snapshot().EventLog) <= events {
		t.Fatalf("device after power off: state %d, events %d→%d", fw.PowerState(), events, len(fw.Snapshot().EventLog))
	}
	if code, b := apiCall(t, "POST", base+"/api/v1/amt/power/action/"+guid, map[string]any{"action": 2}); code != 200 || fw.PowerState() != 2 {
		t.Fatalf("power on: %d %s (state %d)", code, b, fw.PowerState())
	}
	if code, b := apiCall(t, "POST", base+"/api/v1/amt/features/"+guid, map[string]any{
		"userConsent": "all", "enableSOL": false, "enableIDER": true, "enableKVM": false}); code != 200 {
		t.Fatalf("features: %d %s", code, b)
	}
	if r := fw.Snapshot().Redirection; r.EnabledState != 32769 || r.KVMEnabled {
		t.Fatalf("device redirection after features set: %+v", r)
	}
	if code, b := apiCall(t, "GET", base+"/api/v1/amt/hardwareInfo/"+guid, nil); code != 200 || !strings.Contains(string(b), "CIM_BIOSElement") {
		t.Fatalf("hardwareInfo: %d %.200s", code, b)
	}

	// Disconnect from the server side: the device record follows, and the
	// device calls back.
	if code, b := apiCall(t, "DELETE", base+"/api/v1/devices/disconnect/"+guid, nil); code != 200 {
		t.Fatalf("disconnect: %d %s", code, b)
	}
	deadline = time.Now().Add(30 * time.Second)
	for !s.cira.IsConnected(guid) {
		if time.Now().After(deadline) {
			t.Fatal("device did not reconnect after the server dropped it")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// The server restarts (same data folder, new listeners): the device
	// calls back and is managed again, with the credentials amtd kept.
	if err := s.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.HTTPAddr, c.CIRAAddr = "127.0.0.1:0", "127.0.0.1:0"
	s2, base2, _ := startTestServer(t, c)
	defer s2.shutdown(context.Background())
	ciraAddr.Store(s2.ciraLn.Addr().String())
	deadline = time.Now().Add(30 * time.Second)
	for !s2.cira.IsConnected(guid) {
		if time.Now().After(deadline) {
			t.Fatalf("device did not reconnect after the server restarted (client %+v)", d.CIRA().Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, b := apiCall(t, "POST", base2+"/api/v1/amt/power/action/"+guid, map[string]any{"action": 8}); code != 200 || fw.PowerState() != 8 {
		t.Fatalf("power off after the restart: %d %s (state %d)", code, b, fw.PowerState())
	}
}
