package mei

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/amtd-project/amtd/sim/hostif"
)

// fakeFirmware is a small in-test hostif.Firmware.
type fakeFirmware struct {
	mu        sync.Mutex
	uuid      [16]byte
	mode      uint32
	provState uint32
	bios      string
	versions  []hostif.VersionEntry
	lsaUser   string
	lsaPass   string
	wired     hostif.LANSettings
	wireless  *hostif.LANSettings
	hashes    []hostif.CertHashEntry
	suffix    string
	flags     uint8
	amtHash   []byte
	gotHash   []byte
	gotAlg    uint8
	available atomic.Bool
	unprovs   int

	inFlight, maxInFlight atomic.Int32
}

func newFakeFirmware() *fakeFirmware {
	fw := &fakeFirmware{
		uuid:      [16]byte{0x44, 0x45, 0x4c, 0x4c, 0x38, 0x00, 0x10, 0x4b, 0x80, 0x52, 0xb4, 0xc0, 0x4f, 0x56, 0x44, 0x33},
		mode:      1,
		provState: 2,
		bios:      "SIMBIOS.86A.0042.2024",
		versions: []hostif.VersionEntry{
			{Description: "Flash", Version: "16.1.25.2050"},
			{Description: "Netstack", Version: "16.1.25.2050"},
			{Description: "AMTApps", Version: "16.1.25.2050"},
			{Description: "AMT", Version: "16.1.25"},
			{Description: "Sku", Version: "16392"},
			{Description: "VendorID", Version: "8086"},
			{Description: "Build Number", Version: "2050"},
			{Description: "Recovery Version", Version: "16.1.25"},
			{Description: "Recovery Build Num", Version: "2050"},
			{Description: "Legacy Mode", Version: "False"},
		},
		lsaUser: "$$OsAdmin",
		lsaPass: "Xy7!kQ2@pL9#mN4$",
		wired: hostif.LANSettings{
			Enabled: true, IPv4: [4]byte{192, 168, 1, 100}, DHCPEnabled: true, DHCPMode: 1, LinkUp: true,
			MAC: [6]byte{0x00, 0x1b, 0x21, 0xaa, 0xbb, 0xcc},
		},
		hashes: []hostif.CertHashEntry{
			{Handle: 0, IsDefault: true, IsActive: true, Algorithm: 2, Hash: seq(32, 0x10), Name: "DigiCert Global Root G2"},
			{Handle: 1, IsDefault: true, IsActive: false, Algorithm: 1, Hash: seq(20, 0x80), Name: "Old Root"},
			{Handle: 23, IsDefault: true, IsActive: true, Algorithm: 3, Hash: seq(48, 0x30), Name: "Sha384 Root"},
		},
		suffix:  "example.com",
		flags:   0x82,
		amtHash: seq(32, 0xa0),
	}
	fw.available.Store(true)
	return fw
}

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func (f *fakeFirmware) enter() func() {
	n := f.inFlight.Add(1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { f.inFlight.Add(-1) }
}

func (f *fakeFirmware) UUID() [16]byte { defer f.enter()(); return f.uuid }
func (f *fakeFirmware) ControlMode() uint32 {
	defer f.enter()()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode
}
func (f *fakeFirmware) ProvisioningState() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.provState
}
func (f *fakeFirmware) CodeVersions() (string, []hostif.VersionEntry) { return f.bios, f.versions }
func (f *fakeFirmware) LocalSystemAccount() (string, string)          { return f.lsaUser, f.lsaPass }
func (f *fakeFirmware) LANInterface(i uint32) (hostif.LANSettings, bool) {
	switch i {
	case 0:
		return f.wired, true
	case 1:
		if f.wireless != nil {
			return *f.wireless, true
		}
	}
	return hostif.LANSettings{}, false
}
func (f *fakeFirmware) CertHashes() []hostif.CertHashEntry { return f.hashes }
func (f *fakeFirmware) PKIDNSSuffix() string               { return f.suffix }
func (f *fakeFirmware) Unprovision() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode != 1 {
		return hostif.StatusInvalidAMTMode
	}
	f.mode, f.provState = 0, 0
	f.unprovs++
	return hostif.StatusSuccess
}
func (f *fakeFirmware) StartConfigurationHBased(alg uint8, h []byte) (uint32, uint8, []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode != 0 {
		return hostif.StatusInvalidAMTMode, 0, nil
	}
	f.gotAlg, f.gotHash = alg, h
	f.provState = 1
	return hostif.StatusSuccess, 2, f.amtHash
}
func (f *fakeFirmware) StopConfiguration() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.provState = 0
	return hostif.StatusSuccess
}
func (f *fakeFirmware) WatchdogFlags() uint8 { return f.flags }
func (f *fakeFirmware) MEIAvailable() bool   { return f.available.Load() }

var _ hostif.Firmware = (*fakeFirmware)(nil)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startServer serves fw on a socket in a temporary folder and returns its
// path; the server stops at the end of the test.
func startServer(t testing.TB, fw hostif.Firmware, opts Options) (string, *Server) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	path := filepath.Join(t.TempDir(), "mei.sock")
	l, err := listenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(fw, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path, srv
}

func dialRaw(t testing.TB, path string) net.Conn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
