package provision_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/sim/agent"
	"github.com/amtd-project/amtd/sim/firmware"
)

func ptr[T any](v T) *T { return &v }

// certByID returns the device's stored certificate with that InstanceID.
func certByID(t *testing.T, st firmware.State, id string) *x509.Certificate {
	t.Helper()
	h, ok := firmware.ParseCertInstanceID(id)
	if !ok {
		t.Fatalf("not a certificate InstanceID: %q", id)
	}
	for _, c := range st.Certs {
		if c.Handle == h {
			cert, err := x509.ParseCertificate(c.DER)
			if err != nil {
				t.Fatal(err)
			}
			return cert
		}
	}
	t.Fatalf("certificate %q not on the device", id)
	return nil
}

// issuedBy checks that cert chains to root.
func issuedBy(t *testing.T, cert *x509.Certificate, root []byte, eku x509.ExtKeyUsage) {
	t.Helper()
	r, err := x509.ParseCertificate(root)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(r)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
		t.Fatalf("certificate %q not issued by amtd's CA for %v: %v", cert.Subject, eku, err)
	}
}

func hasTrustedRoot(st firmware.State, der []byte) bool {
	for _, c := range st.Certs {
		if c.TrustedRoot && bytes.Equal(c.DER, der) {
			return true
		}
	}
	return false
}

// TestE2EFullConfiguration: every configuration step of a profile lands in
// the simulated device's state — wired DHCP with 802.1x EAP-TLS, two Wi-Fi
// profiles (PSK, and 802.1x EAP-TLS with a certificate from amtd's CA),
// local and UEFI profile sync, an HTTP proxy, redirection and consent, TLS
// with a certificate from amtd's CA for a device-generated key. A second
// device gets CIRA. Re-activation starts from a clean slate
// (unconfiguration) and configures the same state again.
func TestE2EFullConfiguration(t *testing.T) {
	w := newWorld(t)
	chain := acmChain()
	w.addDomain(testDomain, suffix, chain)
	w.add8021x("wired1x", true, 0)
	w.add8021x("wifi1x", false, 0)
	w.addWireless("home", 6, "HomeNet", "home-passphrase", "")
	w.addWireless("corpwifi", 7, "CorpNet", "", "wifi1x")
	w.addProxy("proxy1", "proxy.example.com", 3128, "example.com")
	w.addProfile("full", provision.ActivationACM, true, func(p *store.Profile) {
		p.GenerateRandomMEBxPassword = true
		p.IEEE8021xProfileName = ptr("wired1x")
		p.WifiConfigs = []store.ProfileWifi{{Name: "home", Priority: 1}, {Name: "corpwifi", Priority: 2}}
		p.LocalWifiSyncEnabled, p.UEFIWifiSyncEnabled = ptr(true), ptr(true)
		p.ProxyConfigs = []store.ProfileProxy{{Name: "proxy1", Priority: 1}}
		p.TLSMode, p.TLSSigningAuthority = ptr(2), ptr("SelfSigned")
		p.SOLEnabled, p.IDEREnabled, p.KVMEnabled, p.UserConsent = true, false, true, "None"
	})
	w.addCIRA("cira1", "")
	w.addProfile("cira", provision.ActivationCCM, false, func(p *store.Profile) { p.CIRAConfigName = ptr("cira1") })
	srv := w.startServer()

	d := w.newDevice(devOpts{trust: chain})
	res := mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "full"})
	if res.Status.TLSConfiguration != "Configured" || !strings.Contains(res.Status.Network, "Wireless Configured") ||
		!strings.Contains(res.Status.Network, "Wired Network Configured") {
		t.Fatalf("status %+v", res.Status)
	}
	dumpLog(t, w, d.guid())
	check := func() {
		t.Helper()
		st := d.state()
		// Wired: DHCP, 802.1x EAP-TLS with a client certificate from amtd's CA.
		if !st.Network.Wired.DHCPEnabled || !st.Network.Wired.IpSyncEnabled {
			t.Errorf("wired %+v", st.Network.Wired)
		}
		x := st.IEEE8021x.Wired
		if x.Enabled != 2 || x.AuthenticationProtocol != 0 || x.ClientCertificate == "" || x.ServerCertificateIssuer == "" {
			t.Fatalf("wired 802.1x %+v", x)
		}
		issuedBy(t, certByID(t, st, x.ClientCertificate), w.ca.RootDER(), x509.ExtKeyUsageClientAuth)
		if root := certByID(t, st, x.ServerCertificateIssuer); !bytes.Equal(root.Raw, w.ca.RootDER()) {
			t.Errorf("802.1x server issuer is not amtd's CA root")
		}
		// Wireless.
		wifi := st.WiFi
		if wifi.LocalProfileSync != 3 || wifi.PortRequestedState != 32769 {
			t.Errorf("wifi port %+v", wifi)
		}
		byName := map[string]firmware.WiFiProfile{}
		for _, p := range wifi.Profiles {
			byName[p.ElementName] = p
		}
		if h := byName["home"]; h.SSID != "HomeNet" || h.Priority != 1 || h.AuthenticationMethod != 6 || !h.PSKSet {
			t.Errorf("home profile %+v", h)
		}
		c := byName["corpwifi"]
		if c.SSID != "CorpNet" || c.Priority != 2 || c.AuthenticationMethod != 7 || c.ClientCredential == "" || c.CACredential == "" {
			t.Fatalf("corpwifi profile %+v", c)
		}
		issuedBy(t, certByID(t, st, c.ClientCredential), w.ca.RootDER(), x509.ExtKeyUsageClientAuth)
		// Proxy.
		if len(st.Proxies) != 1 || st.Proxies[0].AccessInfo != "proxy.example.com" || st.Proxies[0].Port != 3128 ||
			st.Proxies[0].NetworkDnsSuffix != "example.com" {
			t.Errorf("proxies %+v", st.Proxies)
		}
		// Features.
		if st.Redirection.EnabledState != 32770 || !st.Redirection.KVMEnabled || !st.Redirection.ListenerEnabled || st.OptIn.Required != 0 {
			t.Errorf("redirection %+v, consent %d", st.Redirection, st.OptIn.Required)
		}
		// TLS, committed, with the certificate amtd keeps for pinning.
		tc := st.TLS.Committed
		if !tc.Remote.Enabled || !tc.Remote.AcceptNonSecureConnections || tc.Remote.MutualAuthentication || !tc.Local.Enabled {
			t.Errorf("TLS %+v", tc)
		}
		var tlsDER []byte
		for _, sc := range st.Certs {
			if sc.Handle == tc.Cert {
				tlsDER = sc.DER
			}
		}
		cert, err := x509.ParseCertificate(tlsDER)
		if err != nil {
			t.Fatal("no committed TLS certificate")
		}
		issuedBy(t, cert, w.ca.RootDER(), x509.ExtKeyUsageServerAuth)
		if cert.Subject.CommonName != "AMT-"+testHost {
			t.Errorf("TLS certificate CN %q", cert.Subject.CommonName)
		}
		pinned, _ := base64.StdEncoding.DecodeString(w.creds(d.guid()).Current(devcreds.TLSCert))
		if !bytes.Equal(pinned, tlsDER) {
			t.Error("amtd does not hold the device's TLS certificate")
		}
		if len(st.CIRA.MPServers) != 0 {
			t.Error("CIRA configured by a TLS profile")
		}
	}
	check()
	noSecretsInLog(t, w, d.guid(), "home-passphrase")

	// Re-activation (device now ACM): unconfigured and configured again.
	pw := adminPassword(t, w, d)
	mustSucceed(t, w, srv, d, agent.Config{Command: "activate", Profile: "full", Password: pw})
	check()
	st := d.state()
	if len(st.WiFi.Profiles) != 2 || len(st.Proxies) != 1 {
		t.Fatalf("re-activation duplicated configuration: %d Wi-Fi profiles, %d proxies", len(st.WiFi.Profiles), len(st.Proxies))
	}

	// CIRA on a second device.
	d2 := w.newDevice(devOpts{})
	res = mustSucceed(t, w, srv, d2, agent.Config{Command: "activate", Profile: "cira"})
	if res.Status.CIRAConnection != "Configured" {
		t.Fatalf("CIRA status %+v", res.Status)
	}
	st = d2.state()
	cira := st.CIRA
	mpsPW := w.creds(d2.guid()).Current(devcreds.MPS)
	if len(cira.MPServers) != 1 || len(mpsPW) != 16 {
		t.Fatalf("MPS servers %d, stored MPS password length %d", len(cira.MPServers), len(mpsPW))
	}
	m := cira.MPServers[0]
	if m.AccessInfo != "mps.example.com" || m.Port != 4433 || m.InfoFormat != 201 || m.AuthMethod != 2 ||
		m.Username != "mpsuser01" || m.Password != mpsPW {
		t.Errorf("MPS entry %+v", m)
	}
	rules := map[string]firmware.PolicyRule{}
	for _, r := range cira.Policies {
		rules[r.Name] = r
	}
	if p := rules["Periodic"]; p.Trigger != 2 || p.ExtendedData != "AAAAAAAAABk=" || p.TunnelLifeTime != 0 {
		t.Errorf("periodic rule %+v", p)
	}
	if u := rules["User Initiated"]; u.Trigger != 0 || u.TunnelLifeTime != 300 {
		t.Errorf("user-initiated rule %+v", u)
	}
	if len(cira.AppliesTo) != 2 {
		t.Errorf("applies-to %+v", cira.AppliesTo)
	}
	for _, a := range cira.AppliesTo {
		if a.MpsType != 2 || a.OrderOfAccess != 0 {
			t.Errorf("applies-to %+v", a)
		}
	}
	if cira.UserInitiatedState != 32771 || len(cira.DetectionStrings) != 1 || !strings.HasSuffix(cira.DetectionStrings[0], ".com") {
		t.Errorf("user-initiated %d, detection %v", cira.UserInitiatedState, cira.DetectionStrings)
	}
	if !hasTrustedRoot(st, w.cira.RootDER()) {
		t.Error("CIRA root not trusted by the device")
	}
	if rec, _ := w.st.GetDevice(w.ctx(), d2.guid()); rec.MPSUsername != "mpsuser01" {
		t.Errorf("device record mpsusername %q", rec.MPSUsername)
	}
	noSecretsInLog(t, w, d2.guid())
}

// TestConfigureDirect: the configuration steps on their own, over a plain
// HTTP connection to a device activated by someone else (the path legacy
// PKI provisioning reuses): no rpc-go session involved.
func TestConfigureDirect(t *testing.T) {
	w := newWorld(t)
	w.addProxy("proxy1", "proxy.example.com", 3128, "example.com")
	p := w.addProfile("direct", provision.ActivationCCM, false, func(p *store.Profile) {
		p.ProxyConfigs = []store.ProfileProxy{{Name: "proxy1", Priority: 1}}
		p.TLSMode = ptr(4)
	})
	d := w.newDevice(devOpts{})
	// Activated outside amtd's flows (CCM with the library).
	if code := d.fw.Setup(2, ha1(d.fw.Realm(), staticPW)); code != 0 {
		t.Fatalf("Setup: %d", code)
	}
	client := amt.NewClient(d.transport(), amt.Params{Target: d.guid(), Username: "admin", Password: staticPW})
	res, out := w.eng.Configure(w.ctx(), &provision.Target{Client: client, GUID: d.guid(), TenantID: tenant, Hostname: "direct-host", ControlMode: 1}, p)
	if out.Err != nil {
		dumpLog(t, w, d.guid())
		t.Fatalf("configure: %v", out.Err)
	}
	if res.TLS != "Configured" || res.Components.CIRAProxy.Result != provision.Success {
		t.Fatalf("result %+v", res)
	}
	st := d.state()
	if len(st.Proxies) != 1 || !st.TLS.Committed.Remote.Enabled || !st.TLS.Committed.Remote.MutualAuthentication ||
		!st.TLS.Committed.Remote.AcceptNonSecureConnections {
		t.Fatalf("device: proxies %+v TLS %+v", st.Proxies, st.TLS.Committed)
	}
	if !hasTrustedRoot(st, w.ca.RootDER()) {
		t.Fatal("amtd's CA root not trusted (mutual TLS)")
	}
	if ev := w.events(d.guid()); len(ev) == 0 || ev[len(ev)-1].Step != "tls" {
		t.Fatalf("configuration not in the provisioning log: %+v", ev)
	}
}
