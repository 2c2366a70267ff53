package provision_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/wsman"
)

// mustFail runs the agent and requires the server's error, returning its
// text (the Status of a status message, or the plain message).
func mustFail(t *testing.T, srv *server, d *simDevice, cfg agent.Config) string {
	t.Helper()
	res, err := srv.run(t, d, cfg)
	var rerr *agent.RPSError
	if !errors.As(err, &rerr) || res.Method != "error" {
		t.Fatalf("want the server's error, got %v (%s %q)", err, res.Method, res.Message)
	}
	if res.Status != nil {
		return res.Status.Status
	}
	return res.Message
}

// untouched: the device is still pre-provisioning with no admin account
// and no certificate chain injected.
func untouched(t *testing.T, d *simDevice) {
	t.Helper()
	st := d.state()
	if st.ControlMode != 0 || st.ProvisioningState != 0 || st.Admin.HA1 != "" || d.fw.CertChainStatus() != 0 {
		t.Fatalf("device touched: mode %d state %d admin set %v chain %d", st.ControlMode, st.ProvisioningState, st.Admin.HA1 != "", d.fw.CertChainStatus())
	}
}

func TestE2ENegative(t *testing.T) {
	w := newWorld(t)
	chain := acmChain()
	w.addDomain(testDomain, suffix, chain)
	w.addProfile("ccm", provision.ActivationCCM, true)
	w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) { p.GenerateRandomMEBxPassword = true })
	w.addCIRA("cira1", "")
	w.addProfile("cira", provision.ActivationCCM, true, func(p *store.Profile) { p.CIRAConfigName = ptr("cira1") })
	srv := w.startServer()

	t.Run("unknown profile", func(t *testing.T) {
		d := w.newDevice(devOpts{trust: chain})
		msg := mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "nosuch"})
		if msg != "Device "+d.guid()+" activation failed. nosuch does not match list of available AMT profiles." {
			t.Fatalf("message %q", msg)
		}
		untouched(t, d)
	})

	t.Run("ACM with no matching domain", func(t *testing.T) {
		d := w.newDevice(devOpts{trust: chain})
		msg := mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "acm", DNSSuffixOverride: "other.example.org"})
		if msg != "Device "+d.guid()+" activation failed. Specified AMT domain suffix: other.example.org does not match list of available AMT domain suffixes." {
			t.Fatalf("message %q", msg)
		}
		untouched(t, d)
	})

	t.Run("root hash not trusted", func(t *testing.T) {
		d := w.newDevice(devOpts{}) // the domain's root is not in its hash table
		msg := mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "acm"})
		if msg != "Invalid domain certificate, hash does not exists in list of trusted root certificates on AMT" {
			t.Fatalf("message %q", msg)
		}
		untouched(t, d)
		if c := w.creds(d.guid()); len(c) != 0 {
			t.Fatalf("a secret entry was written for a device that was not touched: %d fields", len(c))
		}
	})

	t.Run("device refuses the chain", func(t *testing.T) {
		d := w.newDevice(devOpts{trust: chain})
		d.dev.AddFault(wsman.FaultRule{Class: "IPS_HostBasedSetupService", Op: "AddNextCertInChain", Kind: wsman.FaultReturnValue, ReturnValue: 4, Count: 1})
		msg := mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "acm"})
		if msg != "Device "+d.guid()+" activation failed. Error while adding the certificates to AMT." {
			t.Fatalf("message %q", msg)
		}
		if d.fw.ControlMode() != 0 || d.state().Admin.HA1 != "" {
			t.Fatal("device activated despite the refused chain")
		}
	})

	t.Run("wrong password on an activated device", func(t *testing.T) {
		d := w.newDevice(devOpts{})
		mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "ccm"})
		pw := adminPassword(t, w, d)
		before := d.state()
		msg := mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "ccm", Password: "Wr0ng-P@ssword"})
		if msg != "AMT password DOES NOT match stored version for Device "+d.guid() {
			t.Fatalf("message %q", msg)
		}
		msg = mustFail(t, srv, d, agent.Config{Command: "deactivate", Password: "Wr0ng-P@ssword"})
		if msg != "AMT password DOES NOT match stored version for Device "+d.guid() {
			t.Fatalf("deactivate message %q", msg)
		}
		if after := d.state(); after.Admin != before.Admin || after.ControlMode != 1 || adminPassword(t, w, d) != pw {
			t.Fatal("device changed by refused requests")
		}
		// Forced deactivation skips the stored-password check, but the
		// device itself still refuses a wrong password.
		msg = mustFail(t, srv, d, agent.Config{Command: "deactivate", Password: "Wr0ng-P@ssword", Force: true})
		if msg != "Unable to authenticate with AMT" {
			t.Fatalf("forced deactivate message %q", msg)
		}
		if d.fw.ControlMode() != 1 || !d.authenticates(pw) {
			t.Fatal("device changed by a refused forced deactivation")
		}
	})

	t.Run("device fault mid-configuration", func(t *testing.T) {
		d := w.newDevice(devOpts{})
		d.dev.AddFault(wsman.FaultRule{Class: "AMT_RemoteAccessService", Op: "AddMpServer", Kind: wsman.FaultHTTP400, Count: 1})
		msg := mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "cira"})
		if msg != "Client control mode. Configuration failed: Failed to add mps" {
			t.Fatalf("message %q", msg)
		}
		// Consistent: activated with the password amtd holds, no MPS entry.
		pw := adminPassword(t, w, d)
		if len(d.state().CIRA.MPServers) != 0 {
			t.Fatal("MPS entry left behind")
		}
		ev := w.events(d.guid())
		if !slices_contains(ev, func(e store.ProvisioningEvent) bool {
			return e.Step == "cira" && e.Result == "error" && strings.Contains(e.Detail, "Failed to add mps")
		}) {
			t.Fatal("the failure is not in the provisioning log")
		}
		// Running activation again completes it; the operator does not
		// know the random password.
		res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "cira", Password: "Unkn0wn-P@ss"})
		if res.Status.CIRAConnection != "Configured" {
			t.Fatalf("status %+v", res.Status)
		}
		if pw2 := adminPassword(t, w, d); pw2 == pw {
			t.Fatal("password not rotated on completion")
		}
		if st := d.state(); len(st.CIRA.MPServers) != 1 || st.CIRA.MPServers[0].Password != w.creds(d.guid()).Current(devcreds.MPS) {
			t.Fatal("CIRA not configured on completion")
		}
		// Completed: the RPS password rule applies again.
		msg = mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "cira", Password: "Unkn0wn-P@ss"})
		if !strings.HasPrefix(msg, "AMT password DOES NOT match") {
			t.Fatalf("after completion: %q", msg)
		}
	})

	t.Run("connection cut after AdminSetup", func(t *testing.T) {
		// The device activates and resets the connection; the rpc client
		// gives up (as rpc-go does on an LMS error) and the session ends.
		d := w.newDevice(devOpts{trust: chain})
		d.dev.AddFault(wsman.FaultRule{Class: "IPS_HostBasedSetupService", Op: "AdminSetup", Kind: wsman.FaultResetAfter, Count: 1})
		if _, err := srv.run(t, d, agent.Config{Command: "activate", Profile: "acm"}); err == nil {
			t.Fatal("the cut run succeeded")
		}
		if d.fw.ControlMode() != firmware.ModeACM {
			t.Fatalf("mode %d", d.fw.ControlMode())
		}
		ok := false
		for _, pw := range w.creds(d.guid()).Candidates(devcreds.AMT) {
			ok = ok || d.authenticates(pw)
		}
		if !ok {
			t.Fatal("device unreachable with the credentials amtd holds")
		}
		res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "acm", Password: "Unkn0wn-P@ss"})
		if res.Status.Status != "already enabled in admin mode." {
			t.Fatalf("status %q", res.Status.Status)
		}
		adminPassword(t, w, d)
		if !d.fw.MEBxPasswordMatches(w.creds(d.guid()).Current(devcreds.MEBx)) {
			t.Fatal("MEBx password")
		}
	})

	t.Run("MEBx password refused after AdminSetup", func(t *testing.T) {
		d := w.newDevice(devOpts{trust: chain})
		d.dev.AddFault(wsman.FaultRule{Class: "AMT_SetupAndConfigurationService", Op: "SetMEBxPassword", Kind: wsman.FaultReturnValue, ReturnValue: 1, Count: 1})
		msg := mustFail(t, srv, d, agent.Config{Command: "activate", Profile: "acm"})
		if !strings.HasPrefix(msg, "Failed to set MEBx password: SetMEBxPassword returned 1") {
			t.Fatalf("message %q", msg)
		}
		// Activated, recorded, reachable; nothing pending for the MEBx.
		if d.fw.ControlMode() != firmware.ModeACM {
			t.Fatal("not activated")
		}
		adminPassword(t, w, d)
		if rec, err := w.st.GetDevice(w.ctx(), d.guid()); err != nil || rec.DeviceInfo.CurrentMode != "2" {
			t.Fatalf("device record after a failed MEBx step: %+v %v", rec, err)
		}
		mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "acm", Password: "Unkn0wn-P@ss"})
		if !d.fw.MEBxPasswordMatches(w.creds(d.guid()).Current(devcreds.MEBx)) {
			t.Fatal("MEBx password not set on completion")
		}
	})

	t.Run("Unprovision fails", func(t *testing.T) {
		d := w.newDevice(devOpts{})
		mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "ccm"})
		pw := adminPassword(t, w, d)
		d.dev.AddFault(wsman.FaultRule{Class: "AMT_SetupAndConfigurationService", Op: "Unprovision", Kind: wsman.FaultReturnValue, ReturnValue: 1, Count: 1})
		msg := mustFail(t, srv, d, agent.Config{Command: "deactivate", Password: pw})
		if !strings.HasPrefix(msg, "Failed to deactivate device: ") {
			t.Fatalf("message %q", msg)
		}
		// Nothing forgotten: the device is still activated and reachable.
		if d.fw.ControlMode() != 1 || adminPassword(t, w, d) != pw {
			t.Fatal("credentials lost after a failed deactivation")
		}
		if _, err := w.st.GetDevice(w.ctx(), d.guid()); err != nil {
			t.Fatal("device record deleted after a failed deactivation")
		}
	})
}

func slices_contains[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if f(v) {
			return true
		}
	}
	return false
}

var _ = testpki.SlotLeaf
