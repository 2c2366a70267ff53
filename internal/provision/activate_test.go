package provision_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/sim/wsman"
)

func status(t *testing.T, o rpcproto.Outcome) rpcproto.StatusMessage {
	t.Helper()
	var m rpcproto.StatusMessage
	if err := json.Unmarshal([]byte(o.Message), &m); err != nil {
		t.Fatalf("not a status message: %q", o.Message)
	}
	return m
}

func TestDirectCCM(t *testing.T) {
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, true)
	d := w.newDevice(devOpts{})
	out := w.runDirect(w.ctx(), d, request(d, activateCmd("ccm"), ""), nil)
	if !out.Success {
		dumpLog(t, w, d.guid())
		t.Fatalf("activation failed: %s", out.Message)
	}
	dumpLog(t, w, d.guid())
	st := status(t, out)
	if st.Status != "Client control mode." {
		t.Fatalf("status %+v", st)
	}
	if d.fw.ControlMode() != 1 {
		t.Fatalf("device mode %d", d.fw.ControlMode())
	}
	c := w.creds(d.guid())
	pw := c.Current(devcreds.AMT)
	if pw == "" || c.Pending(devcreds.AMT) != "" || !d.authenticates(pw) {
		t.Fatalf("stored password does not open the device")
	}
	if strings.Contains(out.Message, pw) {
		t.Fatal("password in the status message")
	}
}

func dumpLog(t *testing.T, w *world, guid string) {
	t.Helper()
	for _, e := range w.events(guid) {
		t.Logf("%3d %s %-24s %-7s %s", e.Seq, e.Time.Format("15:04:05.000"), e.Step, e.Result, e.Detail)
	}
}

// TestAnswerLost: a one-shot activation call whose answer is lost is
// verified with Get IPS_HostBasedSetupService and the new password, never
// resent (activation.md §4.3, §5.7).
func TestAnswerLost(t *testing.T) {
	w := newWorld(t)
	chain := acmChain()
	w.addDomain(testDomain, suffix, chain)
	w.addProfile("ccm", provision.ActivationCCM, true)
	w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) { p.GenerateRandomMEBxPassword = true })
	for _, c := range []struct{ profile, op string }{{"ccm", "Setup"}, {"acm", "AdminSetup"}} {
		d := w.newDevice(devOpts{trust: chain})
		d.dev.AddFault(wsman.FaultRule{Class: "IPS_HostBasedSetupService", Op: c.op, Kind: wsman.FaultResetAfter, Count: 1})
		sent := 0
		conn := &directConn{hook: func(_ int, req *http.Request) error {
			if soapAction(req) == "IPS_HostBasedSetupService/"+c.op {
				sent++
			}
			return nil
		}}
		out := w.runDirect(w.ctx(), d, request(d, activateCmd(c.profile), ""), conn)
		if !out.Success {
			dumpLog(t, w, d.guid())
			t.Fatalf("%s: %s", c.op, out.Message)
		}
		if c.op == "AdminSetup" && sent != 1 {
			t.Fatalf("AdminSetup sent %d times", sent)
		}
		adminPassword(t, w, d)
		found := false
		for _, e := range w.events(d.guid()) {
			found = found || (e.Step == "activate.verify" && e.Result == "ok")
		}
		if !found {
			t.Fatalf("%s: success not verified with the device", c.op)
		}
	}
}
