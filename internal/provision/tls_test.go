package provision_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/wsman"
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
	t.Parallel() // the tunnel tests mostly wait on the agent's idle pauses
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, true)
	srv := w.startServer()
	d := w.newDevice(devOpts{version: amt19, noWifi: true})
	if !d.enforced() || d.dev.TLSAddr() == "" {
		t.Fatal("the AMT 19 device does not enforce TLS")
	}
	// AMT drops one TLS connection without answering (the unconfiguration's
	// first call, whose failure would fail the activation): the call is
	// made again on a new TLS session.
	d.dev.AddFault(wsman.FaultRule{Class: "AMT_EthernetPortSettings", Op: "Enumerate", Kind: wsman.FaultReset, Count: 1})

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

// auditEvents lists the device's audit log descriptions.
func auditEvents(d *simDevice) []string {
	var out []string
	for _, r := range d.state().AuditLog {
		out = append(out, r.Event)
	}
	return out
}

func mustTunnel(t *testing.T, res agent.Result) {
	t.Helper()
	if res.Rounds == 0 || res.QuietRounds != 0 {
		// A silent round costs rpc-go's first-byte timeout (2 s) per call.
		t.Fatalf("tunnel rounds %d, silent rounds %d", res.Rounds, res.QuietRounds)
	}
}

// TestE2EAMT19ACM: an ACM profile on AMT 19 (RPS's flow): CCM over the
// tunnel, amtd's TLS certificate, the rollover, UpgradeClientToAdmin over a
// tunnel pinned to that certificate, CommitChanges, MEBx. Then
// re-activation with a TLS-only profile (a new certificate, rolled over in
// the middle of the session) and deactivation, each through tunnels pinned
// to the certificate amtd holds.
func TestE2EAMT19ACM(t *testing.T) {
	t.Parallel() // the tunnel tests mostly wait on the agent's idle pauses
	w := newWorld(t)
	chain := acmChain()
	w.addDomain(testDomain, suffix, chain)
	w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) { p.GenerateRandomMEBxPassword = true })
	w.addProfile("acmtls", provision.ActivationACM, true, func(p *store.Profile) {
		p.GenerateRandomMEBxPassword = true
		p.TLSMode = ptr(3)
	})
	srv := w.startServer()
	d := w.newDevice(devOpts{version: amt19, trust: chain, noWifi: true})
	own := d.tlsCertificate()

	res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "acm"})
	mustTunnel(t, res)
	if res.Status.Status != "Activated to admin control mode." || res.Status.TLSConfiguration != "Configured" {
		t.Fatalf("status %+v", res.Status)
	}
	st := d.state()
	if st.ControlMode != firmware.ModeACM {
		t.Fatalf("control mode %d", st.ControlMode)
	}
	// Through CCM and the upgrade, not AdminSetup.
	ev := strings.Join(auditEvents(d), "|")
	if !strings.Contains(ev, "Provisioning completed: host-based CCM") || !strings.Contains(ev, "Upgrade client to admin control mode") {
		t.Fatalf("audit log: %s", ev)
	}
	pw := adminPassword(t, w, d)
	if c := w.creds(d.guid()); !d.fw.MEBxPasswordMatches(c.Current(devcreds.MEBx)) || c.Pending(devcreds.MEBx) != "" {
		t.Fatal("the device's MEBx password is not the one amtd holds")
	}
	cert1 := pinnedCert(t, w, d)
	if bytes.Equal(cert1, own) {
		t.Fatal("the device still presents its own certificate")
	}
	// The profile has no tlsMode: server authentication, non-TLS allowed.
	if r := st.TLS.Committed.Remote; !r.Enabled || !r.AcceptNonSecureConnections || r.MutualAuthentication || !st.TLS.Committed.Local.Enabled {
		t.Fatalf("TLS %+v", st.TLS.Committed)
	}
	if w.creds(d.guid()).Current(provision.MarkerKind) != "" {
		t.Fatal("activation marker left")
	}
	noSecretsInLog(t, w, d.guid())

	// Re-activation with a mutual-TLS-only profile: new password, new
	// certificate rolled over in the middle of the session.
	res = mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "acmtls", Password: pw})
	mustTunnel(t, res)
	if res.Status.Status != "already enabled in admin mode." || res.Status.TLSConfiguration != "Configured" {
		t.Fatalf("re-activation status %+v", res.Status)
	}
	pw2 := adminPassword(t, w, d)
	if pw2 == pw {
		t.Fatal("password not rotated")
	}
	cert2 := pinnedCert(t, w, d)
	if bytes.Equal(cert2, cert1) {
		t.Fatal("the TLS certificate was not replaced")
	}
	if r := d.state().TLS.Committed.Remote; !r.Enabled || r.AcceptNonSecureConnections || !r.MutualAuthentication {
		t.Fatalf("mutual TLS-only remote settings %+v", r)
	}
	if !hasTrustedRoot(d.state(), w.ca.RootDER()) {
		t.Fatal("amtd's CA root is not trusted for mutual authentication")
	}

	// Deactivation through a tunnel pinned to the new certificate.
	res = mustSucceed(t, w, srv, d, agent.Config{Command: "deactivate", Password: pw2})
	mustTunnel(t, res)
	if res.Status.Status != "Deactivated" {
		t.Fatalf("deactivation %+v", res.Status)
	}
	if d.fw.ControlMode() != 0 || len(w.creds(d.guid())) != 0 {
		t.Fatal("device not deactivated or credentials kept")
	}
	if !bytes.Equal(d.tlsCertificate(), own) {
		t.Fatal("the unprovisioned device does not present its own certificate again")
	}
}

// TestE2EAMT19ACMFailureUnprovisions: the upgrade to ACM fails after the
// device was activated in CCM (the provisioning certificate is not for the
// device's domain): the device is returned to pre-provisioning and amtd
// forgets it.
func TestE2EAMT19ACMFailureUnprovisions(t *testing.T) {
	t.Parallel() // the tunnel tests mostly wait on the agent's idle pauses
	w := newWorld(t)
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.elsewhere.example.net", Intermediate: true})
	w.addDomain(testDomain, suffix, chain)
	w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) { p.GenerateRandomMEBxPassword = true })
	srv := w.startServer()
	d := w.newDevice(devOpts{version: amt19, trust: chain, noWifi: true})

	res, err := srv.run(t, d, agent.Config{Command: "activate", Profile: "acm"})
	if err == nil || res.Method != "error" || res.Status == nil ||
		res.Status.Status != "Failed to upgrade to admin control mode..ACM activation failed." {
		dumpLog(t, w, d.guid())
		t.Fatalf("outcome %v %+v", err, res.Status)
	}
	st := d.state()
	if st.ControlMode != 0 || st.Admin.HA1 != "" {
		t.Fatalf("device left in mode %d", st.ControlMode)
	}
	if !strings.Contains(strings.Join(auditEvents(d), "|"), "Provisioning completed: host-based CCM") {
		t.Fatal("the device was never in CCM")
	}
	if len(w.creds(d.guid())) != 0 {
		t.Fatal("credentials of an unprovisioned device kept")
	}
	if _, err := w.st.GetDevice(w.ctx(), d.guid()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device record: %v", err)
	}
	var rolledBack bool
	for _, e := range w.events(d.guid()) {
		rolledBack = rolledBack || (e.Step == "activate.rollback" && e.Result == provision.ResultOK)
	}
	if !rolledBack {
		t.Fatal("no rollback in the provisioning log")
	}
}

// TestE2ETLSTunnelPortSwitch: --tls-tunnel on an AMT 16 device (not
// TLS-enforced) with an ACM profile (activation.md §8): CCM over 16992, TLS
// with amtd's certificate, port_switch to 16993, then the upgrade to ACM,
// CommitChanges and MEBx through tunnels pinned to that certificate.
func TestE2ETLSTunnelPortSwitch(t *testing.T) {
	t.Parallel() // the tunnel tests mostly wait on the agent's idle pauses
	w := newWorld(t)
	chain := acmChain()
	w.addDomain(testDomain, suffix, chain)
	w.addProfile("acm", provision.ActivationACM, true, func(p *store.Profile) {
		p.GenerateRandomMEBxPassword = true
		p.TLSMode = ptr(4)
	})
	srv := w.startServer()
	d := w.newDevice(devOpts{trust: chain, tlsPort: true, noWifi: true})
	if d.enforced() || d.dev.TLSAddr() != "" {
		t.Fatal("the AMT 16 device serves TLS before it is configured")
	}

	res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "acm", TLSTunnel: true})
	if !res.Payload.TLSTunnel || res.PortSwitches != 1 || res.QuietRounds != 0 {
		t.Fatalf("agent: %+v", res)
	}
	if res.Status.Status != "Activated to admin control mode." || res.Status.TLSConfiguration != "Configured" {
		t.Fatalf("status %+v", res.Status)
	}
	if d.fw.ControlMode() != firmware.ModeACM {
		t.Fatalf("control mode %d", d.fw.ControlMode())
	}
	if ev := strings.Join(auditEvents(d), "|"); !strings.Contains(ev, "Upgrade client to admin control mode") {
		t.Fatalf("audit log: %s", ev)
	}
	adminPassword(t, w, d)
	pinnedCert(t, w, d)
	if !d.fw.MEBxPasswordMatches(w.creds(d.guid()).Current(devcreds.MEBx)) {
		t.Fatal("MEBx password")
	}
	// Mutual TLS with non-TLS allowed: amtd's CA root outlives the
	// unconfiguration that followed the TLS set-up.
	if r := d.state().TLS.Committed.Remote; !r.Enabled || !r.AcceptNonSecureConnections || !r.MutualAuthentication ||
		!hasTrustedRoot(d.state(), w.ca.RootDER()) {
		t.Fatalf("TLS %+v", r)
	}
	// The upgrade went through the tunnel: the port switch came first.
	var switched, upgraded int
	for i, e := range w.events(d.guid()) {
		switch e.Step {
		case "tls.portswitch":
			switched = i
		case "acm.upgrade":
			upgraded = i
		}
	}
	if switched == 0 || upgraded < switched {
		t.Fatalf("port switch at log entry %d, upgrade at %d", switched, upgraded)
	}
}

// TestE2ETLSOnlyMaintenance: a device amtd configured for TLS only
// (tlsMode 1) is reached on 16993 in later sessions — maintenance from an
// rpc-go v2 agent: port_switch, then tunnels pinned to amtd's certificate.
func TestE2ETLSOnlyMaintenance(t *testing.T) {
	t.Parallel() // the tunnel tests mostly wait on the agent's idle pauses
	w := newWorld(t)
	w.addProfile("ccmtls", provision.ActivationCCM, false, func(p *store.Profile) { p.TLSMode = ptr(1) })
	srv := w.startServer()
	d := w.newDevice(devOpts{tlsPort: true, noWifi: true})

	// Activation configures TLS only; the session then moves to 16993.
	res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "ccmtls"})
	if res.PortSwitches != 1 || res.QuietRounds != 0 {
		t.Fatalf("activation: %+v", res)
	}
	if r := d.state().TLS.Committed.Remote; !r.Enabled || r.AcceptNonSecureConnections {
		t.Fatalf("remote TLS %+v", r)
	}
	pinnedCert(t, w, d)

	// synctime on a clock an hour off.
	if err := d.fw.Update(func(s *firmware.State) error { s.ClockOffsetSeconds = 3600; return nil }); err != nil {
		t.Fatal(err)
	}
	res = mustSucceed(t, w, srv, d, agent.Config{Command: "maintenance", Task: "synctime", Password: staticPW, Version: "v2"})
	if res.Status.Status != "synctime completed succesfully" || res.PortSwitches != 1 || res.Rounds == 0 || res.QuietRounds != 0 {
		t.Fatalf("synctime: %+v %+v", res, res.Status)
	}
	if off := d.state().ClockOffsetSeconds; off > 2 || off < -2 {
		t.Fatalf("clock offset after synctime: %d s", off)
	}
	// changepassword: the new password is durable and set over TLS.
	res = mustSucceed(t, w, srv, d, agent.Config{Command: "maintenance", Task: "changepassword", Password: staticPW, Version: "v2"})
	if res.Status.Status != "changepassword completed succesfully" || res.PortSwitches != 1 {
		t.Fatalf("changepassword: %+v", res.Status)
	}
	if pw := adminPassword(t, w, d); pw == staticPW || d.authenticates(staticPW) {
		t.Fatal("password not changed")
	}
	var tunneled int
	for _, e := range w.events(d.guid()) {
		if e.Step == "tls.certificate" && strings.Contains(e.Detail, "issued by amtd, pinned") {
			tunneled++
		}
	}
	if tunneled != 2 {
		t.Fatalf("%d maintenance sessions reached the device over the pinned tunnel, want 2", tunneled)
	}

	// Deactivation through the tunnel: Unprovision closes the TLS port
	// only after its answer.
	pw := adminPassword(t, w, d)
	res = mustSucceed(t, w, srv, d, agent.Config{Command: "deactivate", Password: pw})
	if res.PortSwitches != 1 || res.Status.Status != "Deactivated" {
		t.Fatalf("deactivation: %+v %+v", res, res.Status)
	}
	if d.fw.ControlMode() != 0 || len(w.creds(d.guid())) != 0 || d.state().TLS.Committed.Remote.Enabled {
		t.Fatal("device not deactivated, TLS kept or credentials kept")
	}
}

// TestTunnelPeerVerification: what amtd accepts from a TLS-enforced device.
// With On-Die CA roots configured, the device's own certificate must chain
// to one of them (a foreign root: nothing is sent to the device past the
// handshake); once amtd installed its certificate, only that certificate
// is accepted, and a device presenting another one is refused — its
// credentials stay where they are.
func TestTunnelPeerVerification(t *testing.T) {
	t.Parallel() // the tunnel tests mostly wait on the agent's idle pauses
	w := newWorld(t)
	w.addProfile("ccm", provision.ActivationCCM, true, func(p *store.Profile) { p.TLSMode = ptr(2) })
	d := w.newDevice(devOpts{version: amt19, noWifi: true})

	// A path to the device without a TLS tunnel cannot reach it.
	out := w.eng.Run(w.ctx(), request(d, activateCmd("ccm"), ""), plainOnly{&directConn{rt: d.transport()}})
	if out.Success || status(t, out).Status != "Failed to initialize TLS tunnel" {
		t.Fatalf("no tunnel: %s", out.Message)
	}

	// A root that did not issue the device's certificate.
	foreign := x509.NewCertPool()
	foreign.AddCert(acmChain().Root)
	w.tune = func(c *provision.Config) { c.ODCARoots = foreign }
	w.restart()
	out = w.runDirect(w.ctx(), d, request(d, activateCmd("ccm"), ""), nil)
	if out.Success || status(t, out).Status != "Failed to establish TLS tunnel connection" {
		t.Fatalf("foreign On-Die CA root: %s", out.Message)
	}
	if d.fw.ControlMode() != 0 || len(w.creds(d.guid())) != 0 {
		t.Fatal("the device was touched")
	}

	// The device's certificate as the On-Die CA root.
	self, err := x509.ParseCertificate(d.tlsCertificate())
	if err != nil {
		t.Fatal(err)
	}
	odca := x509.NewCertPool()
	odca.AddCert(self)
	w.tune = func(c *provision.Config) { c.ODCARoots = odca }
	w.restart()
	out = w.runDirect(w.ctx(), d, request(d, activateCmd("ccm"), ""), nil)
	if !out.Success {
		dumpLog(t, w, d.guid())
		t.Fatalf("activation: %s", out.Message)
	}
	var verified bool
	for _, e := range w.events(d.guid()) {
		verified = verified || (e.Step == "tls.certificate" && strings.Contains(e.Detail, "verified against the On-Die CA roots"))
	}
	if !verified {
		t.Fatal("the On-Die CA verification is not in the log")
	}
	pw := adminPassword(t, w, d)
	pinnedCert(t, w, d)

	// amtd's record says the device has another certificate: refused.
	c := w.creds(d.guid())
	c[devcreds.TLSCert] = base64.StdEncoding.EncodeToString(acmChain().Leaf.Raw)
	if err := w.sec.Put(w.ctx(), devcreds.Key(d.guid()), c); err != nil {
		t.Fatal(err)
	}
	out = w.runDirect(w.ctx(), d, request(d, rpcproto.Command{Name: "deactivate", Password: pw, HasPass: true}, pw), nil)
	if out.Success || status(t, out).Status != "Failed to establish TLS tunnel connection" {
		t.Fatalf("deactivation with a foreign certificate: %s", out.Message)
	}
	if d.fw.ControlMode() != firmware.ModeCCM || w.creds(d.guid()).Current(devcreds.AMT) != pw {
		t.Fatal("device or credentials changed after a refused handshake")
	}
}

// TestE2EAMT19TLS13: TLS 1.3 through the tunnel (the engine's default). The
// client's Finished, which the device does not answer, travels in the same
// tls_data message as the first request, so rpc-go never waits out its
// first-byte timeout on a silent round.
func TestE2EAMT19TLS13(t *testing.T) {
	t.Parallel() // the tunnel tests mostly wait on the agent's idle pauses
	w := newWorld(t)
	w.tune = func(c *provision.Config) { c.TunnelTLS = nil }
	w.restart()
	w.addProfile("ccm", provision.ActivationCCM, false)
	d := w.newDevice(devOpts{version: amt19, noWifi: true})
	if out := w.runDirect(w.ctx(), d, request(d, activateCmd("ccm"), ""), nil); !out.Success {
		t.Fatalf("activation: %s", out.Message)
	}
	srv := w.startServer()
	res := mustSucceed(t, w, srv, d, agent.Config{Command: "deactivate", Password: staticPW, TLSFirstByteTimeout: 300 * time.Millisecond})
	if res.QuietRounds != 0 || res.ConnectionResets != 0 {
		t.Fatalf("agent: %+v", res)
	}
	if d.fw.ControlMode() != 0 {
		t.Fatal("not deactivated")
	}
}

// plainOnly is a provision.Conn without the TLS tunnel.
type plainOnly struct{ c *directConn }

func (p plainOnly) RoundTrip(req *http.Request) (*http.Response, error) { return p.c.RoundTrip(req) }
func (p plainOnly) Wait(ctx context.Context, d time.Duration) error     { return p.c.Wait(ctx, d) }
func (p plainOnly) Progress(string)                                     {}
