package provision_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/rpcproto"
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
