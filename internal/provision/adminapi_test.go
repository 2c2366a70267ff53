package provision_test

import (
	"context"
	"encoding/base64"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/api/rps"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/sim/agent"
)

// TestActivationFromAdminAPIObjects: profiles, a domain, a wireless config
// and a CIRA config created through the RPS-compatible admin API, then an
// ACM activation with the agent: the device gets exactly the passwords,
// passphrase and MPS password given to the API.
func TestActivationFromAdminAPIObjects(t *testing.T) {
	env := apitest.New(t, apitest.Options{Auth: api.AuthConfig{Mode: api.AuthNone},
		Register: func(s *api.Server) { rps.Register(s, rps.Options{}) }})
	w := newWorld(t) // for the CA and the simulated devices
	chain := acmChain()
	post := func(path string, body map[string]any) {
		t.Helper()
		if r := env.Do(t, "POST", "/api/v1/admin"+path, body); r.Status != 201 {
			t.Fatalf("POST %s: %d %s", path, r.Status, r.Body)
		}
	}
	post("/domains", map[string]any{"profileName": "dom1", "domainSuffix": suffix,
		"provisioningCert":              base64.StdEncoding.EncodeToString(chain.PFX("Pfx-P@ss1", false)),
		"provisioningCertStorageFormat": "string", "provisioningCertPassword": "Pfx-P@ss1"})
	post("/wirelessconfigs", map[string]any{"profileName": "office", "authenticationMethod": 6, "encryptionMethod": 4,
		"ssid": "OfficeNet", "pskPassphrase": "office-passphrase", "linkPolicy": []int{14, 16}})
	post("/ciraconfigs", map[string]any{"configName": "cira1", "mpsServerAddress": "mps.example.com", "mpsPort": 4433,
		"username": "mpsuser01", "password": "Mps-P@ssw0rd1", "commonName": "mps.example.com", "serverAddressFormat": 201,
		"authMethod": 2, "mpsRootCertificate": base64.StdEncoding.EncodeToString(w.cira.RootDER())})
	post("/profiles", map[string]any{"profileName": "acm1", "activation": "acmactivate", "amtPassword": "Amt-P@ssw0rd1",
		"mebxPassword": "Mebx-P@ssw0rd1", "dhcpEnabled": true, "ciraConfigName": "cira1", "tags": []string{"api"},
		"wifiConfigs": []map[string]any{{"profileName": "office", "priority": 1}}, "userConsent": "None"})

	timing := provision.Timing{}
	eng, err := provision.New(provision.Config{Store: env.Store, Secrets: env.Secrets, CA: w.ca, Timing: &timing, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	rs := rpcproto.NewServer(rpcproto.Config{RoundTimeout: 5 * time.Second, Logger: quiet()}, eng)
	hs := httptest.NewServer(rs)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rs.Shutdown(ctx)
		hs.Close()
	}()
	srv := &server{url: "ws" + strings.TrimPrefix(hs.URL, "http"), srv: rs}

	d := w.newDevice(devOpts{trust: chain})
	res, err := srv.run(t, d, agent.Config{Command: "activate", Profile: "acm1"})
	if err != nil {
		t.Fatalf("activation: %v (%s)", err, res.Message)
	}
	st := d.state()
	if st.ControlMode != 2 || st.Admin.HA1 != ha1(st.Realm, "Amt-P@ssw0rd1") || !d.fw.MEBxPasswordMatches("Mebx-P@ssw0rd1") {
		t.Fatal("the device does not have the profile's passwords")
	}
	if len(st.WiFi.Profiles) != 1 || st.WiFi.Profiles[0].SSID != "OfficeNet" || !st.WiFi.Profiles[0].PSKSet {
		t.Fatalf("wifi %+v", st.WiFi.Profiles)
	}
	if len(st.CIRA.MPServers) != 1 || st.CIRA.MPServers[0].Password != "Mps-P@ssw0rd1" || st.CIRA.MPServers[0].Username != "mpsuser01" {
		t.Fatalf("CIRA %+v", st.CIRA.MPServers)
	}
	c, err := devcreds.Load(context.Background(), env.Secrets, d.guid())
	if err != nil || c.Current(devcreds.AMT) != "Amt-P@ssw0rd1" || c.Current(devcreds.MPS) != "Mps-P@ssw0rd1" {
		t.Fatalf("device credentials: %v", err)
	}
	// The device is visible through the store the APIs read.
	rec, err := env.Store.GetDevice(context.Background(), d.guid())
	if err != nil || rec.ProfileName != "acm1" || rec.MPSUsername != "mpsuser01" || len(rec.Tags) != 1 || rec.Tags[0] != "api" {
		t.Fatalf("device record %+v %v", rec, err)
	}
}
