package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/firmware"
)

// simHelloSink is a raw TCP hello listener on loopback.
func simHelloSink(t *testing.T) (*net.TCPAddr, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan []byte, 16)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c)
			c.Close()
			ch <- b
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().(*net.TCPAddr), ch
}

func simNextHello(t *testing.T, ch <-chan []byte) []byte {
	t.Helper()
	select {
	case b := <-ch:
		return b
	case <-time.After(20 * time.Second):
		t.Fatal("no hello")
	}
	return nil
}

// TestSimUSB: `amtd sim --usb` applies the next record of a setup.bin to
// each new device (the record says where the server is, 2.17/2.18), the
// device hellos that address and accepts the provisioning chain on its
// setup TLS port; a second simulator takes the next record; a restart
// consumes nothing.
func TestSimUSB(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov.usb.example.com"})
	root := sha256.Sum256(chain.Root.Raw)
	hash, err := setupbin.CertHashVar(2, root[:], "amtd")
	if err != nil {
		t.Fatal(err)
	}
	server, hellos := simHelloSink(t)
	f := setupbin.NewFile(4, 0)
	for range 2 {
		f.AddRecord(false,
			setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"),
			setupbin.StringVar(setupbin.NewMEBxPassword, "N3w-MEBx-pass"),
			setupbin.StringVar(setupbin.PKIDNSSuffix, "usb.example.com"),
			setupbin.U8Var(setupbin.RemoteConfigEnabled, 1),
			hash,
			setupbin.ServerAddressVar(netip.MustParseAddr("127.0.0.1")),
			setupbin.U16Var(setupbin.ProvisioningServerPort, uint16(server.Port)),
			setupbin.U8Var(setupbin.ProvisionHaltActive, 1))
	}
	img, err := setupbin.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	usb := filepath.Join(t.TempDir(), "setup.bin")
	if err := os.WriteFile(usb, img, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := simDir(t)
	args := []string{"--dir", dir, "--lms", "127.0.0.1:0", "--tls-port", "0", "--usb", usb, "--commit-restart", "0s"}
	p := startSim(t, 1, args...)
	d := p.devices[0]
	if d["setup"] != "pki" || d["tls"] == "-" {
		t.Fatalf("device line %v", d)
	}
	h := simNextHello(t, hellos)
	if binary.LittleEndian.Uint16(h[2:4]) != 3 || h[0] != 1 {
		t.Fatalf("hello % x", h[:25])
	}
	tc := &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, //nolint:gosec // test
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &tls.Certificate{Certificate: [][]byte{chain.Leaf.Raw, chain.Root.Raw}, PrivateKey: chain.Key}, nil
		}}
	conn, err := tls.Dial("tcp", d["tls"], tc)
	if err != nil {
		t.Fatalf("setup session: %v", err)
	}
	conn.Close()
	if n, _ := firmware.SetupBinAvailable(usb); n != 1 {
		t.Fatalf("%d records left", n)
	}
	p.stop()

	// restart: the device is still in setup, nothing consumed, hellos again
	p = startSim(t, 1, args...)
	if p.devices[0]["uuid"] != d["uuid"] || p.devices[0]["setup"] != "pki" {
		t.Fatalf("after restart %v", p.devices[0])
	}
	simNextHello(t, hellos)
	if n, _ := firmware.SetupBinAvailable(usb); n != 1 {
		t.Fatalf("%d records left after the restart", n)
	}
	p.stop()

	// another machine takes the second record, a third finds none
	p2 := startSim(t, 1, "--dir", simDir(t), "--lms", "127.0.0.1:0", "--tls-port", "0", "--usb", usb)
	if p2.devices[0]["setup"] != "pki" || p2.devices[0]["uuid"] == d["uuid"] {
		t.Fatalf("second machine %v", p2.devices[0])
	}
	p2.stop()
	code, _, errOut := runAmtd(t, "sim", "--dir", simDir(t), "--lms", "127.0.0.1:0", "--tls-port", "0", "--usb", usb)
	if code == 0 || !strings.Contains(errOut, "0 unused record(s) for 1 device(s)") {
		t.Fatalf("third machine: exit %d %s", code, errOut)
	}
}

// TestSimSetupModeDNS: `--setup-mode pki` with the DHCP domain finds the
// hello listener through ProvisionServer.<domain> on the given DNS server,
// at --provision-port, with the schedule scaled by --hello-timescale.
func TestSimSetupModeDNS(t *testing.T) {
	server, hellos := simHelloSink(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if strings.EqualFold(q.Question[0].Name, "ProvisionServer.dns.example.com.") {
			if q.Question[0].Qtype == dns.TypeA {
				rr, _ := dns.NewRR("ProvisionServer.dns.example.com. 60 IN A 127.0.0.1")
				m.Answer = append(m.Answer, rr)
			}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })

	p := startSim(t, 1, "--dir", simDir(t), "--lms", "127.0.0.1:0", "--tls-port", "0", "--setup-mode", "pki", "--dns-suffix", "dns.example.com",
		"--dns-server", pc.LocalAddr().String(), "--provision-port", strconv.Itoa(server.Port), "--hello-timescale", "3600", "--hello-hashes", "24")
	if p.devices[0]["setup"] != "pki" {
		t.Fatalf("%v", p.devices[0])
	}
	first := simNextHello(t, hellos)
	second := simNextHello(t, hellos) // one minute later, scaled to 17 ms
	if binary.LittleEndian.Uint32(first[4:8]) != 0 || binary.LittleEndian.Uint32(second[4:8]) != 1 {
		t.Fatal("retry counts")
	}
	if first[24] != 23 { // the default table has 23 active entries; --hello-hashes 24 allows one more
		t.Fatalf("%d hashes", first[24])
	}
}

// TestSimPSKSetupMode: PSK devices print their PID; the pairs are in the
// folder for `amtd psk import`.
func TestSimPSKSetupMode(t *testing.T) {
	server, hellos := simHelloSink(t)
	dir := simDir(t)
	p := startSim(t, 1, "--dir", dir, "--lms", "127.0.0.1:0", "--tls-port", "0", "--setup-mode", "psk", "--amt-version", "10.0.55",
		"--provision-server", server.String())
	pid := p.devices[0]["pid"]
	if p.devices[0]["setup"] != "psk" || len(pid) != 8 {
		t.Fatalf("%v", p.devices[0])
	}
	if h := simNextHello(t, hellos); string(h[24:]) != pid {
		t.Fatalf("hello % x", h)
	}
	csv, err := os.ReadFile(filepath.Join(dir, "psk-pairs.csv"))
	if err != nil || !strings.HasPrefix(string(csv), pid+",") {
		t.Fatalf("pairs %q %v", csv, err)
	}
}

func TestSimLegacyFlagErrors(t *testing.T) {
	dir := simDir(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--setup-mode", "otp"}, "pki or psk"},
		{[]string{"--setup-mode", "pki", "--usb", "x"}, "exclude each other"},
		{[]string{"--usb", filepath.Join(dir, "missing.bin")}, "--usb"},
		{[]string{"--hello-timescale", "0"}, "--hello-timescale"},
		{[]string{"--hello-hashes", "30"}, "23 or 24"},
		{[]string{"--dns-server", "localhost"}, "IP:PORT"},
		{[]string{"--provision-port", "0"}, "not a port"},
		{[]string{"--provision-server", "a b"}, "--provision-server"},
		{[]string{"--setup-mode", "psk", "--lms", "127.0.0.1:0", "--tls-port", "0"}, "has no PSK"},
	} {
		code, _, errOut := runAmtd(t, append([]string{"sim", "--dir", dir}, c.args...)...)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want %q", c.args, code, errOut, c.want)
		}
	}
}
