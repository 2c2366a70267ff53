package fleet_test

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	ciraserver "github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/cira"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/fleet"
)

// mpsName does not resolve: the fleet's CIRAOptions.Server must be used,
// and the devices still check the certificate against this name.
const mpsName = "mps.fleet.invalid"

// ciraPKI is a root the devices trust and a server certificate for mpsName.
func ciraPKI(t *testing.T) (root *x509.Certificate, server tls.Certificate) {
	t.Helper()
	now := time.Now()
	rootKey, leafKey := testpki.Key(2048, 430), testpki.Key(2048, 431)
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fleet CIRA root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(nil, rt, rt, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	if root, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	lt := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: mpsName}, DNSNames: []string{mpsName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leaf, err := x509.CreateCertificate(nil, lt, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	return root, tls.Certificate{Certificate: [][]byte{leaf}, PrivateKey: leafKey}
}

// configureCIRA provisions a device and configures CIRA in its firmware
// state, as an activation with a CIRA configuration would.
func configureCIRA(t *testing.T, fw *firmware.Firmware, root *x509.Certificate, password string) {
	t.Helper()
	sum := md5.Sum([]byte("admin:" + fw.Realm() + ":" + testPassword))
	if rv := fw.Setup(2, hex.EncodeToString(sum[:])); rv != 0 {
		t.Fatalf("Setup: %d", rv)
	}
	if _, rv := fw.AddCertificate(root.Raw, true); rv != 0 {
		t.Fatalf("AddCertificate: %d", rv)
	}
	const server = "Intel(r) AMT:Management Presence Server 0"
	err := fw.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *firmware.State) error {
		s.CIRA.MPServers = []firmware.MPServer{{Name: server, AccessInfo: mpsName, InfoFormat: 201, Port: 4433,
			AuthMethod: 2, Username: "fleetuser", Password: password}}
		s.CIRA.Policies = []firmware.PolicyRule{{Name: "Periodic", Trigger: 2, ExtendedData: "AAAAAAAAABk="}}
		s.CIRA.AppliesTo = []firmware.AppliesTo{{Policy: "Periodic", MPServer: server, MpsType: 2}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestFleetCIRA: devices configured for CIRA call the fleet's CIRA server
// address (the configured name does not resolve), each from its own
// loopback address, authenticate, and report their events with the
// attempt's dial time. A device not configured for CIRA stays away.
func TestFleetCIRA(t *testing.T) {
	root, cert := ciraPKI(t)
	const configured = 3
	var mu sync.Mutex
	passwords := map[string]string{} // uuid → MPS password
	srv, err := ciraserver.NewServer(ciraserver.Config{Certificate: &cert, Logger: slog.New(slog.DiscardHandler),
		Authenticator: ciraserver.AuthenticatorFunc(func(_ context.Context, uuid string) (ciraserver.DeviceAuth, error) {
			mu.Lock()
			defer mu.Unlock()
			pw, ok := passwords[uuid]
			if !ok {
				return ciraserver.DeviceAuth{}, ciraserver.ErrUnknownDevice
			}
			return ciraserver.DeviceAuth{Username: "fleetuser", Password: pw}, nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()

	events := make(chan fleet.CIRAEvent, 64)
	f := start(t, fleet.Options{Dir: shortDir(t), Devices: configured + 1, GenerateKey: keys(),
		CIRA: &fleet.CIRAOptions{Server: ln.Addr().String(), MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
			Observer: func(e fleet.CIRAEvent) { events <- e }}})
	devs := f.Devices()
	for i, d := range devs[:configured] {
		pw := "Mps-P@ss-" + string(rune('a'+i))
		mu.Lock()
		passwords[d.UUID] = pw
		mu.Unlock()
		configureCIRA(t, d.Firmware, root, pw)
	}

	connected := map[int]fleet.CIRAEvent{}
	deadline := time.After(30 * time.Second)
	for len(connected) < configured {
		select {
		case e := <-events:
			switch e.Kind {
			case cira.EventConnected:
				if e.Dialed.IsZero() || e.Handshake() <= 0 || e.UUID != devs[e.Index].UUID {
					t.Fatalf("connected event %+v", e)
				}
				connected[e.Index] = e
			case cira.EventAttemptFailed:
				t.Fatalf("device %d: attempt failed: %v", e.Index, e.Err)
			}
		case <-deadline:
			t.Fatalf("%d of %d devices connected", len(connected), configured)
		}
	}
	for i, d := range devs[:configured] {
		info, ok := srv.Lookup(d.UUID)
		if !ok {
			t.Fatalf("device %d not held by the server", i)
		}
		host, _, _ := net.SplitHostPort(info.RemoteAddr)
		want, _, _ := net.SplitHostPort(d.LMSAddr)
		if host != want {
			t.Errorf("device %d connected from %s, want its own address %s", i, host, want)
		}
	}
	if srv.Count() != configured {
		t.Fatalf("server holds %d connections, want %d (the unconfigured device must not connect)", srv.Count(), configured)
	}
	if st := devs[configured].Sim.CIRA().Status(); st.State != cira.StateIdle {
		t.Fatalf("unconfigured device's client is %s", st.State)
	}
}

func TestFleetCIRABadServer(t *testing.T) {
	_, err := fleet.Start(context.Background(), fleet.Options{Dir: shortDir(t), Devices: 2,
		HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort, CIRA: &fleet.CIRAOptions{Server: "no-port"}})
	if err == nil {
		t.Fatal("a CIRA server address without a port was accepted")
	}
}
