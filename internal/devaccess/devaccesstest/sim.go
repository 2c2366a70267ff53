// Package devaccesstest runs real simulated AMT devices for tests of
// internal/devaccess and the management API: a sim/device activated in
// client control mode on a loopback port, a CIRA server (internal/cira) on
// loopback with a test PKI, and a device-side APF client that connects a
// simulated device to that server the way AMT firmware does (TLS, APF
// authentication, port forwards, keepalives) and carries every channel the
// server opens to the device's WS-MAN listener.
package devaccesstest

import (
	"context"
	"crypto/md5"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
)

// DefaultPassword is the AMT admin password of simulated devices.
const DefaultPassword = "P@ssw0rd-Dev1"

// SimOptions configure StartSim.
type SimOptions struct {
	// Version of the firmware (default the simulator's).
	Version string
	// TLSEnforced makes the device serve TLS on its 16993 port with its
	// self-signed certificate from the start (AMT 19+ behaviour).
	TLSEnforced bool
	// Password of "admin" (default DefaultPassword).
	Password string
	// NotActivated leaves the device in pre-provisioning.
	NotActivated bool
	// NoWireless removes the wireless adapter.
	NoWireless bool
	// Logger receives the simulator's logs (default: discarded).
	Logger *slog.Logger
}

// Sim is a running simulated device.
type Sim struct {
	Device   *device.Device
	FW       *firmware.Firmware
	GUID     string
	Password string
}

var keySlot atomic.Int64

// keys hands out cached test keys (slots 200+) so firmware key generation
// is fast.
func keys(bits int) (*rsa.PrivateKey, error) {
	return testpki.Key(bits, 200+int(keySlot.Add(1)%8)), nil
}

// StartSim starts an activated (CCM) simulated device on 127.0.0.1 with a
// random port; it is stopped by t.Cleanup.
func StartSim(t testing.TB, o SimOptions) *Sim {
	t.Helper()
	if o.Password == "" {
		o.Password = DefaultPassword
	}
	cfg := firmware.Config{Version: o.Version, DNSSuffix: "sim.example.com", GenerateKey: keys, NoWireless: o.NoWireless, Logger: o.Logger}
	if o.TLSEnforced {
		v := true
		cfg.TLSEnforced = &v
	}
	fw, err := firmware.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !o.NotActivated {
		sum := md5.Sum([]byte("admin:" + fw.Realm() + ":" + o.Password))
		if rv := fw.Setup(2, hex.EncodeToString(sum[:])); rv != 0 {
			t.Fatalf("sim: Setup returned %d", rv)
		}
	}
	d, err := device.New(device.Config{Firmware: fw, Addrs: []string{"127.0.0.1:0"}, Logger: o.Logger})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		d.Close()
	})
	return &Sim{Device: d, FW: fw, GUID: strings.ToLower(fw.UUIDString()), Password: o.Password}
}

// StoreCredentials writes the device's AMT password (and, with pinTLS, its
// current TLS certificate for pinning) to the secret store, as provisioning
// does.
func (s *Sim) StoreCredentials(t testing.TB, sec secrets.Store, pinTLS bool) {
	t.Helper()
	ctx := context.Background()
	if err := devcreds.Set(ctx, sec, s.GUID, devcreds.AMT, s.Password); err != nil {
		t.Fatal(err)
	}
	if pinTLS {
		if err := devcreds.Set(ctx, sec, s.GUID, devcreds.TLSCert, s.TLSCertB64(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// TLSCertB64 is the certificate the device's TLS port serves, base64 DER.
func (s *Sim) TLSCertB64(t testing.TB) string {
	t.Helper()
	st := s.FW.TLSServer()
	cert := st.Cert
	if cert == nil {
		c, err := s.FW.SelfCertificate()
		if err != nil {
			t.Fatal(err)
		}
		cert = c
	}
	return base64.StdEncoding.EncodeToString(cert.Certificate[0])
}

// Dialer maps AMT's fixed LAN ports of one host name to simulated devices'
// loopback listeners: "host:16992" to the device's HTTP address and
// "host:16993" to its TLS address. Unknown addresses are dialled as given.
type Dialer struct {
	mu sync.Mutex
	m  map[string]func() string
}

// NewDialer returns an empty Dialer.
func NewDialer() *Dialer { return &Dialer{m: map[string]func() string{}} }

// Add routes host's AMT ports to the device.
func (d *Dialer) Add(host string, s *Sim) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[net.JoinHostPort(host, "16992")] = s.Device.Addr
	d.m[net.JoinHostPort(host, "16993")] = s.Device.TLSAddr
}

// DialContext is a devaccess.Options.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	f, ok := d.m[addr]
	d.mu.Unlock()
	if ok {
		if a := f(); a != "" {
			addr = a
		}
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}
