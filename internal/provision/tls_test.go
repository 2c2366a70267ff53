package provision_test

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/firmware"
)

// End-to-end over the rpc-go TLS tunnel (activation.md §7–§8): the rpcproto
// server with the engine, a real SQLite store and sealed secrets, and
// simulated AMT 19 devices (TLS enforced on local ports, their own
// certificate on 16993) or AMT 16 devices with --tls-tunnel, driven by the
// agent, which relays tls_data, connection_reset and port_switch as rpc-go
// does. Assertions read the firmware's state.

// pinnedCert asserts that the device's TLS port presents the certificate
// amtd holds for it (current, nothing pending), issued by amtd's CA.
func pinnedCert(t *testing.T, w *world, d *simDevice) []byte {
	t.Helper()
	c := w.creds(d.guid())
	der, err := base64.StdEncoding.DecodeString(c.Current(devcreds.TLSCert))
	if err != nil || len(der) == 0 || c.Pending(devcreds.TLSCert) != "" {
		t.Fatalf("stored TLS certificate: current %d bytes, pending set %v", len(der), c.Pending(devcreds.TLSCert) != "")
	}
	if got := d.tlsCertificate(); !bytes.Equal(got, der) {
		t.Fatal("the device's TLS port does not present the certificate amtd pinned")
	}
	return der
}

func TestE2EAMT19CCM(t *testing.T) {
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, true)
	srv := w.startServer()
	d := w.newDevice(devOpts{version: amt19})
	if !d.enforced() || d.dev.TLSAddr() == "" {
		t.Fatal("the AMT 19 device does not enforce TLS")
	}

	res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "ccm"})
	if !res.Payload.TLSEnforced || res.Rounds == 0 || res.QuietRounds != 0 {
		// A silent round costs rpc-go's first-byte timeout (2 s) per call.
		t.Fatalf("payload/rounds: %+v", res)
	}
	if res.Status.Status != "Client control mode." {
		t.Fatalf("status %q", res.Status.Status)
	}
	st := d.state()
	if st.ControlMode != firmware.ModeCCM {
		t.Fatalf("control mode %d", st.ControlMode)
	}
	adminPassword(t, w, d)
	if st.Redirection.EnabledState != 32768 || !st.Redirection.KVMEnabled || st.OptIn.Required != 4294967295 {
		t.Errorf("features: %+v %+v", st.Redirection, st.OptIn)
	}
	noSecretsInLog(t, w, d.guid())
}
