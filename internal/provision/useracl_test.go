package provision_test

import (
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/sim/agent"
)

const (
	operatorPW  = "Op3rator!pass"
	operatorPW2 = "N3w-Op3rator!"
	netopPW     = "N3t-op!pass"
)

// putACLSecret writes a profile's secret entry with its AMT users'
// passwords (the profile uses random AMT/MEBx passwords).
func putACLSecret(w *world, p *store.Profile, pws map[string]string) {
	w.t.Helper()
	sec := map[string]string{}
	for u, pw := range pws {
		sec[secrets.UserACLPasswordField(u)] = pw
	}
	if err := w.sec.Put(w.ctx(), provision.DefaultSecretKey(tenant, provision.KindProfile, p.SecretID), sec); err != nil {
		w.t.Fatal(err)
	}
}

// logIn reports whether user/pw authenticates with HTTP digest on the
// device's WS-MAN port (the simulated device is the host's LMS endpoint:
// the local interface).
func logIn(d *simDevice, user, pw string) bool {
	c := amt.NewClient(d.transport(), amt.Params{Target: d.guid(), Username: user, Password: pw, Timeout: 5 * time.Second})
	_, err := getGeneral(c)
	return err == nil
}

func eventFor(w *world, guid, step string) *store.ProvisioningEvent {
	ev := w.events(guid)
	for i := len(ev) - 1; i >= 0; i-- {
		if ev[i].Step == step {
			return &ev[i]
		}
	}
	return nil
}

// TestE2EPowerPolicyAndUserACLs: the profile's power package and AMT users
// land on the device in CCM and ACM; the users log in with digest on the
// network port as their access permission allows; a second activation
// updates an existing user (new password, same handle) instead of failing
// on a duplicate; no password reaches the provisioning log.
func TestE2EPowerPolicyAndUserACLs(t *testing.T) {
	w := newWorld(t)
	chain := acmChain()
	w.addDomain(testDomain, suffix, chain)
	acls := []store.UserACL{
		{Username: "operator", Realms: []int{3, 5}, AccessPermission: 2},
		{Username: "netop", Realms: []int{2}, AccessPermission: 1},
	}
	ccm := w.addProfile("aclccm", provision.ActivationCCM, true, func(p *store.Profile) {
		p.PowerPolicy = "desktop: on in s0" // the description, any case
		p.UserACLs = acls
	})
	putACLSecret(w, ccm, map[string]string{"operator": operatorPW, "netop": netopPW})
	acm := w.addProfile("aclacm", provision.ActivationACM, true, func(p *store.Profile) {
		p.GenerateRandomMEBxPassword = true
		// "Desktop: ON in S0, ME Wake in S3, S4-5, OFF After Power Loss" by its GUID's text form
		p.PowerPolicy = "EDE30BD6-C504-462C-B772-D18018EE2FC4"
		p.UserACLs = acls[:1]
	})
	putACLSecret(w, acm, map[string]string{"operator": operatorPW})
	srv := w.startServer()

	t.Run("ccm", func(t *testing.T) {
		d := w.newDevice(devOpts{})
		mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "aclccm"})
		st := d.state()
		if st.ControlMode != 1 || st.PowerScheme != "SCHEME 0" {
			t.Fatalf("mode %d power scheme %q", st.ControlMode, st.PowerScheme)
		}
		if len(st.Users) != 2 || st.Users[0].Username != "operator" || st.Users[0].AccessPermission != 2 ||
			len(st.Users[0].Realms) != 2 || st.Users[1].Username != "netop" || st.Users[1].AccessPermission != 1 {
			t.Fatalf("users %+v", st.Users)
		}
		if !logIn(d, "operator", operatorPW) || logIn(d, "operator", operatorPW2) {
			t.Fatal("operator's digest login is wrong")
		}
		// network only: refused on the local (LMS) port, accepted on the network
		if logIn(d, "netop", netopPW) || !d.fw.UserCanLogIn("netop", netopPW, false) {
			t.Fatal("netop's access permission is not honoured")
		}
		e := eventFor(w, d.guid(), "power.policy")
		if e == nil || e.Result != provision.ResultOK || !strings.Contains(e.Detail, "Desktop: ON in S0") {
			t.Fatalf("power.policy event %+v", e)
		}
		e = eventFor(w, d.guid(), "useracl")
		if e == nil || e.Result != provision.ResultOK || !strings.Contains(e.Detail, "added operator (any, realms 3,5)") {
			t.Fatalf("useracl event %+v", e)
		}

		// reconfiguration: a new password for operator updates its entry
		handle := st.Users[0].Handle
		putACLSecret(w, ccm, map[string]string{"operator": operatorPW2, "netop": netopPW})
		mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "aclccm", Password: adminPassword(t, w, d)})
		st = d.state()
		if len(st.Users) != 2 || st.Users[0].Handle != handle {
			t.Fatalf("users after reconfiguration %+v", st.Users)
		}
		if logIn(d, "operator", operatorPW) || !logIn(d, "operator", operatorPW2) {
			t.Fatal("operator's password was not updated")
		}
		e = eventFor(w, d.guid(), "useracl")
		if e == nil || !strings.Contains(e.Detail, "updated operator") {
			t.Fatalf("useracl event %+v", e)
		}
		for _, ev := range w.events(d.guid()) {
			for _, pw := range []string{operatorPW, operatorPW2, netopPW} {
				if strings.Contains(ev.Detail, pw) {
					t.Fatalf("password in the provisioning log: %+v", ev)
				}
			}
		}
		putACLSecret(w, ccm, map[string]string{"operator": operatorPW, "netop": netopPW})
	})

	t.Run("acm", func(t *testing.T) {
		d := w.newDevice(devOpts{trust: chain})
		mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "aclacm"})
		st := d.state()
		if st.ControlMode != 2 || st.PowerScheme != "SCHEME 2" || len(st.Users) != 1 {
			t.Fatalf("mode %d power scheme %q users %+v", st.ControlMode, st.PowerScheme, st.Users)
		}
		if !logIn(d, "operator", operatorPW) {
			t.Fatal("operator cannot log in")
		}
	})
}

// TestE2EPowerPolicyUnknown: a power policy the device does not offer
// fails the configuration with an error naming the device's schemes.
func TestE2EPowerPolicyUnknown(t *testing.T) {
	w := newWorld(t)
	w.addProfile("mobile", provision.ActivationCCM, true, func(p *store.Profile) { p.PowerPolicy = "Mobile: ON in S0" })
	srv := w.startServer()
	d := w.newDevice(devOpts{})
	res, err := srv.run(t, d, agent.Config{Command: "activate", Profile: "mobile"})
	if err == nil && res.Method == "success" {
		t.Fatalf("activation with an unknown power policy succeeded: %+v", res)
	}
	e := eventFor(w, d.guid(), "power.policy")
	if e == nil || e.Result != provision.ResultError || !strings.Contains(e.Detail, `"Mobile: ON in S0" matches none`) ||
		!strings.Contains(e.Detail, "Desktop: ON in S0, ME Wake in S3, S4-5") {
		t.Fatalf("power.policy event %+v", e)
	}
	if got := d.fw.ActivePowerScheme(); got != "SCHEME 1" {
		t.Fatalf("power scheme changed to %s", got)
	}
}
