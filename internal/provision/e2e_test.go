package provision_test

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/firmware"
)

// End-to-end: the rpc-go WebSocket server (rpcproto) with the engine, a
// real SQLite store and sealed secret store, and simulated devices driven
// by amtd's rpc-go implementation over real sockets. Assertions read the
// simulated firmware's state, not amtd's.

func ha1(realm, pw string) string {
	s := md5.Sum([]byte("admin:" + realm + ":" + pw))
	return hex.EncodeToString(s[:])
}

// mustSucceed runs the agent and requires success.
func mustSucceed(t *testing.T, w *world, srv *server, d *simDevice, cfg agent.Config) agent.Result {
	t.Helper()
	res, err := srv.run(t, d, cfg)
	if err != nil || res.Method != "success" {
		dumpLog(t, w, d.guid())
		t.Fatalf("%s: %v (%s)", cfg.Command, err, res.Message)
	}
	return res
}

// adminPassword asserts that amtd holds exactly one current AMT password,
// nothing pending, and that the device's admin account is that password.
func adminPassword(t *testing.T, w *world, d *simDevice) string {
	t.Helper()
	c := w.creds(d.guid())
	pw := c.Current(devcreds.AMT)
	if pw == "" || c.Pending(devcreds.AMT) != "" {
		t.Fatalf("stored AMT password: current set %v, pending set %v", pw != "", c.Pending(devcreds.AMT) != "")
	}
	st := d.state()
	if st.Admin.Username != "admin" || st.Admin.HA1 != ha1(st.Realm, pw) {
		t.Fatal("the device's admin password is not the one amtd holds")
	}
	if !d.authenticates(pw) {
		t.Fatal("stored password refused by the device")
	}
	return pw
}

func TestE2ECCMActivationAndDeactivation(t *testing.T) {
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, true, func(p *store.Profile) {
		p.SOLEnabled, p.IDEREnabled = true, true
	})
	srv := w.startServer()
	d := w.newDevice(devOpts{})

	res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "ccm", FriendlyName: "desk-42"})
	if res.Status == nil || res.Status.Status != "Client control mode." {
		t.Fatalf("status %+v", res.Status)
	}
	st := d.state()
	if st.ControlMode != firmware.ModeCCM {
		t.Fatalf("control mode %d", st.ControlMode)
	}
	pw := adminPassword(t, w, d)
	if strings.Contains(res.Message, pw) {
		t.Fatal("password in the client message")
	}
	// Configuration landed on the device.
	if !st.Network.Wired.DHCPEnabled || !st.Network.Wired.IpSyncEnabled {
		t.Errorf("wired: %+v", st.Network.Wired)
	}
	if st.Redirection.EnabledState != 32771 || !st.Redirection.ListenerEnabled || !st.Redirection.KVMEnabled {
		t.Errorf("redirection: %+v", st.Redirection)
	}
	if st.OptIn.Required != 4294967295 {
		t.Errorf("user consent: %d", st.OptIn.Required)
	}
	// The device record.
	rec, err := w.st.GetDevice(w.ctx(), d.guid())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Hostname != testHost || rec.DNSSuffix != suffix || rec.ProfileName != "ccm" || rec.FriendlyName != "desk-42" ||
		!slices.Equal(rec.Tags, []string{"t1", "t2"}) || rec.DeviceInfo == nil || rec.DeviceInfo.CurrentMode != "1" ||
		rec.DeviceInfo.FWVersion != "16.1.25" {
		t.Errorf("device record: %+v %+v", rec, rec.DeviceInfo)
	}
	// The provisioning log is ordered and secret-free.
	ev := w.events(d.guid())
	if len(ev) < 5 || ev[len(ev)-1].Step != "activate.done" || ev[len(ev)-1].Result != "ok" {
		t.Fatalf("log: %+v", ev)
	}
	for i, e := range ev {
		if e.Seq != int64(i+1) || strings.Contains(e.Detail, pw) {
			t.Fatalf("log entry %d: %+v", i, e)
		}
	}

	// Deactivation with the stored password.
	res = mustSucceed(t, w, srv, d, agent.Config{Command: "deactivate", Password: pw})
	if res.Status == nil || res.Status.Status != "Deactivated" {
		t.Fatalf("deactivate status %+v", res.Status)
	}
	if d.fw.ControlMode() != 0 {
		t.Fatalf("device still in mode %d", d.fw.ControlMode())
	}
	if _, err := w.st.GetDevice(w.ctx(), d.guid()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device record kept: %v", err)
	}
	if c := w.creds(d.guid()); len(c) != 0 {
		t.Fatal("device credentials kept after deactivation")
	}
}

func acmChain() *testpki.Chain {
	return testpki.NewChain(testpki.ChainOptions{LeafCN: "amt." + suffix, Intermediate: true})
}

func TestE2EACMActivationUpgradeAndDeactivation(t *testing.T) {
	w := newWorld(t)
	chain := acmChain()
	w.addDomain(testDomain, suffix, chain)
	w.addProfile("ccm", provision.ActivationCCM, false)
	w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) { p.GenerateRandomMEBxPassword = true })
	srv := w.startServer()

	// ACM from pre-provisioning.
	d := w.newDevice(devOpts{trust: chain})
	res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "acm"})
	if res.Status.Status != "Activated to admin control mode." {
		t.Fatalf("status %q", res.Status.Status)
	}
	if d.fw.ControlMode() != firmware.ModeACM {
		t.Fatalf("mode %d", d.fw.ControlMode())
	}
	adminPassword(t, w, d)
	mebx := w.creds(d.guid()).Current(devcreds.MEBx)
	if mebx == "" || !d.fw.MEBxPasswordMatches(mebx) {
		t.Fatal("the device's MEBx password is not the one amtd holds")
	}
	if d.state().OptIn.Required != 1 {
		t.Errorf("ACM default user consent: %d", d.state().OptIn.Required)
	}

	// CCM device upgraded to ACM.
	d2 := w.newDevice(devOpts{trust: chain})
	mustSucceed(t, w, srv, d2, agent.Config{Command: "activate", Profile: "ccm"})
	if d2.fw.ControlMode() != firmware.ModeCCM {
		t.Fatal("not in CCM")
	}
	res = mustSucceed(t, w, srv, d2, agent.Config{Command: "activate", Profile: "acm", Password: staticPW})
	if res.Status.Status != "Upgraded to admin control mode." {
		t.Fatalf("upgrade status %q", res.Status.Status)
	}
	if d2.fw.ControlMode() != firmware.ModeACM {
		t.Fatalf("mode after upgrade %d", d2.fw.ControlMode())
	}
	pw := adminPassword(t, w, d2)
	if pw == staticPW || d2.authenticates(staticPW) {
		t.Fatal("the password was not rotated to the ACM profile's random one")
	}
	if !d2.fw.MEBxPasswordMatches(w.creds(d2.guid()).Current(devcreds.MEBx)) {
		t.Fatal("MEBx password after upgrade")
	}

	// Re-activation of an ACM device: password rotation, configuration again.
	res = mustSucceed(t, w, srv, d2, agent.Config{Command: "activate", Profile: "acm", Password: pw})
	if res.Status.Status != "already enabled in admin mode." {
		t.Fatalf("reconfigure status %q", res.Status.Status)
	}
	pw2 := adminPassword(t, w, d2)
	if pw2 == pw || d2.authenticates(pw) {
		t.Fatal("password not rotated on re-activation")
	}

	// ACM deactivation.
	mustSucceed(t, w, srv, d2, agent.Config{Command: "deactivate", Password: pw2})
	if d2.fw.ControlMode() != 0 {
		t.Fatal("ACM device not deactivated")
	}
}

func TestE2EMaintenance(t *testing.T) {
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, false)
	srv := w.startServer()
	d := w.newDevice(devOpts{})
	mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "ccm"})
	pw := staticPW
	maint := func(task string, f func(c *agent.Config)) agent.Result {
		t.Helper()
		cfg := agent.Config{Command: "maintenance", Task: task, Password: pw, Version: "v2"}
		if f != nil {
			f(&cfg)
		}
		res := mustSucceed(t, w, srv, d, cfg)
		if res.Status == nil || res.Status.Status != task+" completed succesfully" {
			t.Fatalf("%s: %+v", task, res.Status)
		}
		return res
	}

	// synctime: the device's clock is an hour off.
	if err := d.fw.Update(func(s *firmware.State) error { s.ClockOffsetSeconds = 3600; return nil }); err != nil {
		t.Fatal(err)
	}
	maint("synctime", nil)
	if off := d.state().ClockOffsetSeconds; off > 2 || off < -2 {
		t.Fatalf("clock offset after synctime: %d s", off)
	}

	// syncip: a static wired configuration takes the host's address.
	if err := d.fw.Update(func(s *firmware.State) error {
		s.Network.Wired.DHCPEnabled, s.Network.Wired.IpSyncEnabled = false, true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ip := agent.IPConfiguration{Static: true, IPAddress: "10.1.2.3", Netmask: "255.255.255.0", Gateway: "10.1.2.1", PrimaryDNS: "10.1.2.53", SecondaryDNS: "10.1.2.54"}
	maint("syncip", func(c *agent.Config) { c.IPConfiguration = ip })
	wired := d.state().Network.Wired
	if wired.IPAddress != "10.1.2.3" || wired.SubnetMask != "255.255.255.0" || wired.DefaultGateway != "10.1.2.1" ||
		wired.PrimaryDNS != "10.1.2.53" || wired.SecondaryDNS != "10.1.2.54" || wired.IpSyncEnabled {
		t.Fatalf("wired after syncip: %+v", wired)
	}
	// The same address again: RPS's "already synchronized" failure.
	res, err := srv.run(t, d, agent.Config{Command: "maintenance", Task: "syncip", Password: pw, Version: "v2", IPConfiguration: ip})
	if err == nil || res.Status == nil || res.Status.Status != "syncip failed IPAddress already synchronized" {
		t.Fatalf("syncip again: %v %+v", err, res.Status)
	}

	// synchostname.
	maint("synchostname", func(c *agent.Config) {
		c.HostnameInfo = agent.HostnameInfo{Hostname: "renamed", DNSSuffixOS: "lab.example.com"}
	})
	if n := d.state().Network; n.HostName != "renamed" || n.DomainName != "lab.example.com" {
		t.Fatalf("host name on the device: %q %q", n.HostName, n.DomainName)
	}
	if rec, _ := w.st.GetDevice(w.ctx(), d.guid()); rec.Hostname != "renamed" || rec.DNSSuffix != "lab.example.com" {
		t.Fatalf("record after synchostname: %+v", rec)
	}

	// changepassword to a given password, then to a random one.
	maint("changepassword", func(c *agent.Config) { c.TaskArg = "N3w-P@ssw0rd" })
	if adminPassword(t, w, d) != "N3w-P@ssw0rd" || d.authenticates(pw) {
		t.Fatal("changepassword with a new password")
	}
	pw = "N3w-P@ssw0rd"
	maint("changepassword", nil)
	pw = adminPassword(t, w, d)
	if pw == "N3w-P@ssw0rd" {
		t.Fatal("random changepassword kept the old password")
	}

	// syncdeviceinfo updates the record from the first message.
	before, _ := w.st.GetDevice(w.ctx(), d.guid())
	if err := d.fw.Update(func(s *firmware.State) error { s.Versions.AMT = "16.1.30"; return nil }); err != nil {
		t.Fatal(err)
	}
	maint("syncdeviceinfo", nil)
	after, _ := w.st.GetDevice(w.ctx(), d.guid())
	if after.DeviceInfo.FWVersion != "16.1.30" || !after.DeviceInfo.LastUpdated.After(*before.DeviceInfo.LastUpdated) {
		t.Fatalf("device info not synced: %+v", after.DeviceInfo)
	}

	// A wrong password is refused before any WS-MAN.
	res, err = srv.run(t, d, agent.Config{Command: "maintenance", Task: "synctime", Password: "Wr0ng-P@ss", Version: "v2"})
	if err == nil || res.Message != "AMT password DOES NOT match stored version for Device "+d.guid() {
		t.Fatalf("wrong password: %v %q", err, res.Message)
	}
}

// noSecretsInLog fails if a device's provisioning log contains any of its
// stored credentials or the given secrets.
func noSecretsInLog(t *testing.T, w *world, guid string, extra ...string) {
	t.Helper()
	var secrets []string
	for k, v := range w.creds(guid) {
		if k != provision.MarkerKind && len(v) >= 6 {
			secrets = append(secrets, v)
		}
	}
	secrets = append(secrets, extra...)
	for _, e := range w.events(guid) {
		for _, s := range secrets {
			if strings.Contains(e.Detail, s) || strings.Contains(e.Step, s) {
				t.Fatalf("a secret is in the provisioning log: step %s", e.Step)
			}
		}
	}
}
