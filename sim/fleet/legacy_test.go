package fleet_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/fleet"
	"github.com/amtd-project/amtd/sim/hello"
)

type sink struct {
	data []byte
	from netip.Addr
}

// helloSink is a raw TCP hello listener.
func helloSink(t *testing.T) (string, <-chan sink) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan sink, 64)
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
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			ch <- sink{b, ap.Addr().Unmap()}
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), ch
}

func hellosFrom(t *testing.T, ch <-chan sink, n int) map[netip.Addr][]byte {
	t.Helper()
	got := map[netip.Addr][]byte{}
	deadline := time.After(20 * time.Second)
	for len(got) < n {
		select {
		case s := <-ch:
			got[s.from] = s.data
		case <-deadline:
			t.Fatalf("hellos from %d devices, want %d", len(got), n)
		}
	}
	return got
}

func writeSetupBin(t *testing.T, records ...[]setupbin.Var) string {
	t.Helper()
	f := setupbin.NewFile(3, 0)
	for _, r := range records {
		f.AddRecord(true, r...)
	}
	img, err := setupbin.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "setup.bin")
	if err := os.WriteFile(p, img, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFleetSetupBin: every device of a fleet takes the next record of a
// shared setup.bin at start, in index order, and hellos from its own
// address; the setup TLS port accepts the provisioning chain; a restart
// consumes nothing more; too few records fail before any is used.
func TestFleetSetupBin(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov.site1.example.com"})
	root := sha256.Sum256(chain.Root.Raw)
	hash, err := setupbin.CertHashVar(2, root[:], "amtd")
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]setupbin.Var
	for _, site := range []string{"site1", "site2", "site3"} {
		recs = append(recs, []setupbin.Var{
			setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"),
			setupbin.StringVar(setupbin.NewMEBxPassword, "N3w-MEBx-pass"),
			setupbin.StringVar(setupbin.PKIDNSSuffix, site+".example.com"),
			setupbin.U8Var(setupbin.RemoteConfigEnabled, 1),
			hash,
			setupbin.U8Var(setupbin.ProvisionHaltActive, 1),
		})
	}
	path := writeSetupBin(t, recs...)
	server, hellos := helloSink(t)
	dir := shortDir(t)

	// four devices, three records: refused before anything is consumed
	if _, err := fleet.Start(context.Background(), fleet.Options{Dir: shortDir(t), Devices: 4, AddrBase: netip.MustParseAddr("127.3.1.1"),
		HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort, GenerateKey: keys(), SetupBin: path}); err == nil || !strings.Contains(err.Error(), "3 unused record(s) for 4 device(s)") {
		t.Fatalf("too few records: %v", err)
	}
	if n, _ := firmware.SetupBinAvailable(path); n != 3 {
		t.Fatalf("%d records left after the refusal", n)
	}

	o := fleet.Options{Dir: dir, Devices: 3, AddrBase: netip.MustParseAddr("127.3.0.1"), SetupBin: path, Network: true,
		Hello: hello.Options{Server: server, Schedule: []time.Duration{0, time.Hour}}}
	f := start(t, o)
	got := hellosFrom(t, hellos, 3)
	for i, d := range f.Devices() {
		ip := netip.MustParseAddr("127.3.0." + string(rune('1'+i)))
		h, ok := got[ip]
		if !ok || binary.LittleEndian.Uint16(h[2:4]) != 3 || h[0] != 1 {
			t.Fatalf("device %d: hello % x", i, h)
		}
		if want := "site" + string(rune('1'+i)) + ".example.com"; d.Firmware.PKIDNSSuffix() != want {
			t.Errorf("device %d took suffix %s, want %s", i, d.Firmware.PKIDNSSuffix(), want)
		}
		if !f.Hellos().Scheduled(d.Firmware) {
			t.Errorf("device %d not scheduled", i)
		}
	}
	if n, _ := firmware.SetupBinAvailable(path); n != 0 {
		t.Fatalf("%d records left", n)
	}
	// device 0's setup port (its own address, the shared TLS listener)
	d0 := f.Devices()[0]
	tc := &tls.Config{InsecureSkipVerify: true, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}, MaxVersion: tls.VersionTLS12, //nolint:gosec // test
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &tls.Certificate{Certificate: [][]byte{chain.Leaf.Raw, chain.Root.Raw}, PrivateKey: chain.Key}, nil
		}}
	conn, err := tls.Dial("tcp", d0.TLSAddr(), tc)
	if err != nil {
		t.Fatalf("setup session with device 0 at %s: %v", d0.TLSAddr(), err)
	}
	conn.Close()
	f.Close()

	// restart: nothing more consumed, hellos start again
	before, _ := os.ReadFile(path)
	start(t, o)
	hellosFrom(t, hellos, 3)
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the restart touched the setup.bin")
	}
}

// TestFleetPSKMode: devices set up with generated PID/PPS pairs (listed in
// psk-pairs.csv) send version 2 hellos with their PIDs; modern firmware is
// refused with a hint.
func TestFleetPSKMode(t *testing.T) {
	server, hellos := helloSink(t)
	dir := shortDir(t)
	f := start(t, fleet.Options{Dir: dir, Devices: 2, AddrBase: netip.MustParseAddr("127.3.2.1"), Version: "10.0.55", SetupMode: fleet.SetupPSK,
		Network: true, Hello: hello.Options{Server: server, Schedule: []time.Duration{0}}})
	csv, err := os.ReadFile(filepath.Join(dir, fleet.PSKPairsName))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(csv))
	var pids []string
	for _, l := range lines {
		pid, pps, _ := strings.Cut(l, ",")
		if len(pid) != 8 || len(pps) != 32 {
			t.Fatalf("line %q", l)
		}
		pids = append(pids, pid)
	}
	var sent []string
	for _, h := range hellosFrom(t, hellos, 2) {
		if len(h) != 32 || h[2] != 2 {
			t.Fatalf("hello % x", h)
		}
		sent = append(sent, string(h[24:]))
	}
	sort.Strings(pids)
	sort.Strings(sent)
	if len(pids) != 2 || strings.Join(pids, ",") != strings.Join(sent, ",") {
		t.Fatalf("PIDs %v, hellos %v", pids, sent)
	}
	for _, d := range f.Devices() {
		if st := d.Firmware.LegacyStatus(); st.Mode != firmware.SetupPSK || !st.Active {
			t.Fatalf("device %d: %+v", d.Index, st)
		}
	}

	if _, err := fleet.Start(context.Background(), fleet.Options{Dir: shortDir(t), Devices: 1, AddrBase: netip.MustParseAddr("127.3.3.1"),
		HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort, GenerateKey: keys(), SetupMode: fleet.SetupPSK}); err == nil || !strings.Contains(err.Error(), "has no PSK") {
		t.Fatalf("PSK on AMT 16: %v", err)
	}
}
