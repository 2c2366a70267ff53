package bench

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/secrets/local"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/fleet"
)

// Seeding puts simulated devices in the state an activation with a CIRA
// configuration leaves them in, without running the activations (tens of
// milliseconds of CPU each, so 100,000 of them would take most of an hour
// on two cores):
//
//   - device side, in each device's firmware state (sim/firmware, the
//     simulator's own API): client control mode with a random admin
//     password, amtd's CIRA root as a trusted root certificate, and the
//     remote access configuration RPS-style provisioning writes — one MPS
//     (MPSHost, port 4433, username/password authentication with a random
//     per-device password), the Periodic and User Initiated policies
//     applying to it, a detection string that never matches (the device is
//     always "outside"), user-initiated connections allowed;
//   - server side, in amtd's store and sealed secret store (the same
//     repositories provisioning writes through): the device record (host
//     name, MPS username, firmware versions, control mode, provisioning
//     status) and the device's AMT and MPS passwords.
//
// The CIRA connections that follow are real: TLS against amtd's CIRA
// certificate, checked by the device against the trusted root and the
// configured name, and APF authentication with the per-device password
// against what amtd holds.

// seedSpec describes one fleet to seed.
type seedSpec struct {
	Name     string // host name prefix of the fleet's machines
	Dir      string
	Devices  int
	AddrBase netip.Addr
	// CIRA configures CIRA; otherwise the device is reached on the LAN: its
	// record holds its address.
	CIRA bool
}

// seededDevice is what the harness needs to know about a seeded device.
type seededDevice struct {
	UUID string
	Addr string // its loopback address
}

// seeder writes seeded devices into amtd's store.
type seeder struct {
	st      *sqlstore.Store
	sec     secrets.Store
	rootDER []byte // amtd's CIRA root
	workers int
}

const (
	mpsUsername = "benchuser"
	ciraMPSName = "Intel(r) AMT:Management Presence Server 0"
	// seedProfile names the device records' profile (none needs to exist).
	seedProfile = "bench-seeded"
)

func openSeeder(ctx context.Context, dsn string, masterKey []byte, rootDER []byte) (*seeder, error) {
	st, err := sqlstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	sec, err := local.New(st, masterKey)
	if err != nil {
		st.Close()
		return nil, err
	}
	return &seeder{st: st, sec: sec, rootDER: rootDER, workers: 8}, nil
}

func (s *seeder) close() error { return s.st.Close() }

// seed creates the fleet's devices (sim/fleet, in this process, then
// closed) and seeds every one of them.
func (s *seeder) seed(ctx context.Context, spec seedSpec) ([]seededDevice, error) {
	f, err := fleet.Start(ctx, fleet.Options{Dir: spec.Dir, Devices: spec.Devices, AddrBase: spec.AddrBase,
		HTTPPort: fleet.AnyPort, TLSPort: fleet.AnyPort, HostnamePrefix: spec.Name + "-"})
	if err != nil {
		return nil, err
	}
	defer f.Close()
	devs := f.Devices()
	out := make([]seededDevice, len(devs))
	detection, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	detection += ".invalid"
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d := devs[i]
				host, _, _ := net.SplitHostPort(d.LMSAddr)
				out[i] = seededDevice{UUID: d.UUID, Addr: host}
				if err := s.seedDevice(ctx, d, host, spec.CIRA, detection); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("seeding device %d (%s): %w", i, d.UUID, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range devs {
		mu.Lock()
		stop := firstErr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	return out, f.Close()
}

func (s *seeder) seedDevice(ctx context.Context, d *fleet.Device, addr string, withCIRA bool, detection string) error {
	fw := d.Firmware
	if fw.ControlMode() != firmware.ModePre {
		return errors.New("not in pre-provisioning (seed a fresh folder)")
	}
	amtPW, err := password()
	if err != nil {
		return err
	}
	mpsPW, err := password()
	if err != nil {
		return err
	}
	// Durable before the device, as provisioning does.
	creds := map[string]string{devcreds.AMT: amtPW}
	if withCIRA {
		creds[devcreds.MPS] = mpsPW
	}
	if err := s.sec.Put(ctx, devcreds.Key(d.UUID), creds); err != nil {
		return err
	}
	sum := md5.Sum([]byte("admin:" + fw.Realm() + ":" + amtPW))
	if rv := fw.Setup(2, hex.EncodeToString(sum[:])); rv != 0 {
		return fmt.Errorf("Setup returned %d", rv)
	}
	if withCIRA {
		if _, rv := fw.AddCertificate(s.rootDER, true); rv != 0 {
			return fmt.Errorf("AddCertificate returned %d", rv)
		}
		err := fw.UpdateNotify(firmware.EventRemoteAccessChanged, func(st *firmware.State) error {
			st.CIRA.MPServers = []firmware.MPServer{{Name: ciraMPSName, AccessInfo: MPSHost, InfoFormat: 201, Port: 4433,
				AuthMethod: 2, Username: mpsUsername, Password: mpsPW}}
			st.CIRA.NextMPServer = 1
			st.CIRA.Policies = []firmware.PolicyRule{
				{Name: "Periodic", Trigger: 2, ExtendedData: "AAAAAAAAABk="},
				{Name: "User Initiated", Trigger: 0, TunnelLifeTime: 300}}
			st.CIRA.AppliesTo = []firmware.AppliesTo{
				{Policy: "Periodic", MPServer: ciraMPSName, MpsType: 2},
				{Policy: "User Initiated", MPServer: ciraMPSName, MpsType: 2}}
			st.CIRA.DetectionStrings = []string{detection}
			st.CIRA.UserInitiatedState = 32771
			return nil
		})
		if err != nil {
			return err
		}
	}
	v := fw.Snapshot().Versions
	now := time.Now().UTC()
	status := map[string]any{
		"Activation":     map[string]any{"Result": "Success", "Mode": "CCM", "Details": "Client control mode."},
		"CIRAConnection": map[string]any{"Result": "NotApplicable", "Details": "CIRA not part of this configuration"},
	}
	rec := &store.Device{GUID: d.UUID, Hostname: d.Hostname, Tags: []string{}, ProfileName: seedProfile,
		DeviceInfo: &store.DeviceInfo{FWVersion: v.AMT, FWBuild: v.Build, FWSku: v.SKU, CurrentMode: "1",
			Features: "AMT Pro Corporate", LastUpdated: &now, ActivatedAt: &now, LastProvisionedAt: &now, Status: status}}
	if withCIRA {
		rec.MPSUsername = mpsUsername
		status["CIRAConnection"] = map[string]any{"Result": "Success", "Details": "Configured"}
	} else {
		rec.DeviceInfo.IPAddress = addr // reached on the LAN at this address
	}
	_, err = s.st.PutDevice(ctx, rec)
	return err
}

// password is a random AMT-strength password (upper, lower, digit, symbol).
func password() (string, error) {
	const (
		upper = "ABCDEFGHJKLMNPQRSTUVWXYZ"
		lower = "abcdefghijkmnopqrstuvwxyz"
		digit = "23456789"
		sym   = "!@#$%^*"
		all   = upper + lower + digit + sym
	)
	pick := func(set string) (byte, error) {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(set))))
		if err != nil {
			return 0, err
		}
		return set[n.Int64()], nil
	}
	b := make([]byte, 0, 16)
	for _, set := range []string{upper, lower, digit, sym} {
		c, err := pick(set)
		if err != nil {
			return "", err
		}
		b = append(b, c)
	}
	for len(b) < 16 {
		c, err := pick(all)
		if err != nil {
			return "", err
		}
		b = append(b, c)
	}
	return string(b), nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ciraDB is a PostgreSQL server with a database prepared for seeded CIRA
// devices: amtd's schema and CA (from a first `amtd serve` start) and a
// CIRA configuration, the master key every instance shares, and a seeder.
type ciraDB struct {
	pg     *postgres
	dsn    string
	keyHex string
	seeder *seeder
}

// prepareCIRADB starts PostgreSQL, creates database name and prepares it;
// close stops what it started.
func (e *env) prepareCIRADB(ctx context.Context, name string) (db *ciraDB, err error) {
	pg, err := startPostgres(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			pg.stop()
		}
	}()
	dsn, err := pg.createDB(ctx, name)
	if err != nil {
		return nil, err
	}
	keyHex, err := randomHex(32)
	if err != nil {
		return nil, err
	}
	key, _ := hex.DecodeString(keyHex)
	setup, err := e.startServe(ctx, serveOpts{Name: "serve-setup", Data: e.dataDir("setup"), DB: dsn, MasterKey: keyHex})
	if err != nil {
		return nil, err
	}
	root, err := setupCIRAConfig(ctx, setup.api)
	setup.stop()
	if err != nil {
		return nil, err
	}
	sd, err := openSeeder(ctx, dsn, key, root)
	if err != nil {
		return nil, err
	}
	return &ciraDB{pg: pg, dsn: dsn, keyHex: keyHex, seeder: sd}, nil
}

// doneSeeding closes the seeder (idempotent).
func (db *ciraDB) doneSeeding() {
	if db.seeder != nil {
		db.seeder.close()
		db.seeder = nil
	}
}

func (db *ciraDB) close() {
	db.doneSeeding()
	db.pg.stop()
}
