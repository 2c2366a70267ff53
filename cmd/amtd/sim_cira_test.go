package main

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSimCIRAFleet: a fleet activated by `amtd sim --activate` with a CIRA
// profile through the real server, then restarted with --cira-server: every
// device calls amtd's CIRA listener home from its own loopback address
// (the configured MPS name does not resolve), authenticates with the
// password provisioning gave it, and the connections are logged and
// summed up.
func TestSimCIRAFleet(t *testing.T) {
	c := testConfig(t)
	c.Auth = "none"
	c.ActivationDelay = 0
	c.MPSHost = "mps.sim-cira.invalid"
	s, base, _ := startTestServer(t, c)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.shutdown(ctx)
	}()
	code, rootPEM := apiCall(t, "GET", base+"/api/v1/ciracert", nil)
	blk, _ := pem.Decode(rootPEM)
	if code != 200 || blk == nil {
		t.Fatalf("ciracert: %d %q", code, rootPEM)
	}
	if code, b := apiCall(t, "POST", base+"/api/v1/admin/ciraconfigs", map[string]any{
		"configName": "home", "mpsServerAddress": c.MPSHost, "mpsPort": 4433, "username": "fleetuser",
		"serverAddressFormat": 201, "authMethod": 2, "mpsRootCertificate": base64.StdEncoding.EncodeToString(blk.Bytes),
	}); code != 201 {
		t.Fatalf("cira config: %d %s", code, b)
	}
	if code, b := apiCall(t, "POST", base+"/api/v1/admin/profiles", map[string]any{
		"profileName": "remote", "activation": "ccmactivate", "generateRandomPassword": true,
		"dhcpEnabled": true, "ciraConfigName": "home"}); code != 201 {
		t.Fatalf("profile: %d %s", code, b)
	}

	dir := simDir(t)
	fleetArgs := []string{"--dir", dir, "--devices", "3", "--addr-base", "127.1.12.1", "--http-port", "0", "--tls-port", "0", "--log-level", "warn"}
	ws := "ws" + strings.TrimPrefix(base, "http")
	code, out, errOut := runAmtd(t, append(append([]string{"sim"}, fleetArgs...), "--activate", ws+"/activate", "--profile", "remote", "--concurrency", "3")...)
	if code != 0 || !strings.Contains(out, "activate: 3 devices, 3 ok") {
		t.Fatalf("activate: exit %d\n%s\n%s", code, out, errOut)
	}

	logPath := filepath.Join(t.TempDir(), "cira.csv")
	p := startSim(t, 3, append(fleetArgs, "--cira-server", s.ciraLn.Addr().String(), "--cira-log", logPath)...)
	deadline := time.Now().Add(30 * time.Second)
	for s.cira.Count() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 devices connected over CIRA: %s%s", s.cira.Count(), p.out.String(), p.errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The server registers a session before the device has seen the last
	// answer of its handshake: wait for the devices' own "connected" events
	// too, or the summary below may be taken before the last one.
	for n := 0; n < 3; n = strings.Count(readFileOrEmpty(logPath), ",connected,") {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 devices logged their connection: %s%s", n, p.out.String(), p.errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range p.devices {
		info, ok := s.cira.Lookup(d["uuid"])
		if !ok {
			t.Fatalf("device %s not connected", d["index"])
		}
		host, _, _ := net.SplitHostPort(info.RemoteAddr)
		want, _, _ := net.SplitHostPort(d["lms"])
		if host != want {
			t.Errorf("device %s connected from %s, not its own address %s", d["index"], host, want)
		}
	}
	if code := p.stop(); code != 0 {
		t.Fatalf("sim exit %d: %s", code, p.errOut.String())
	}
	summary := p.out.String()
	if !strings.Contains(summary, "cira: 3 of 3 devices connected at exit; 3 connections, 0 disconnections, 0 failed attempts") ||
		!strings.Contains(summary, "cira: first connections of 3 devices") {
		t.Fatalf("summary:\n%s", summary)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("log lines (want 3 connected; disconnections after the summary are not logged):\n%s", b)
	}
	for _, l := range lines {
		f := strings.Split(l, ",")
		if len(f) != 6 || f[3] != "connected" {
			t.Fatalf("log line %q", l)
		}
		at, err1 := strconv.ParseInt(f[0], 10, 64)
		dialed, err2 := strconv.ParseInt(f[4], 10, 64)
		if err1 != nil || err2 != nil || dialed <= 0 || at <= dialed {
			t.Fatalf("log line times %q", l)
		}
	}
}

func TestSimCIRAFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--cira-server", "no-port"},
		{"--cira", "--cira-timescale", "0"},
	} {
		code, _, errOut := runAmtd(t, append([]string{"sim", "--dir", simDir(t)}, args...)...)
		if code != 2 || !strings.Contains(errOut, "--cira") {
			t.Errorf("%v: exit %d, %s", args, code, errOut)
		}
	}
}

// readFileOrEmpty is the file's content, or "" while it cannot be read.
func readFileOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
