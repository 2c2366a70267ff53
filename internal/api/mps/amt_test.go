package mps_test

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api/mps"
	"github.com/amtd-project/amtd/internal/devaccess/devaccesstest"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/firmware"
	simwsman "github.com/amtd-project/amtd/sim/wsman"
)

func TestGeneralSettingsVersionCapabilities(t *testing.T) {
	bothPaths(t, testGeneralSettingsVersionCapabilities)
}

func testGeneralSettingsVersionCapabilities(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")

	resp := must(t, e, 200, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil)
	o := resp.JSON(t)
	if jsonPath(o, "Body", "AMT_GeneralSettings", "DigestRealm") != sim.FW.Realm() ||
		jsonPath(o, "Header", "Action") != "http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse" ||
		jsonPath(o, "Header", "To") == nil {
		t.Fatalf("general settings: %s", resp.Body)
	}
	// The envelope keeps the device's element order: Header first.
	if !strings.HasPrefix(string(resp.Body), `{"Header":{`) {
		t.Fatalf("envelope order: %.60s", resp.Body)
	}

	resp = must(t, e, 200, "GET", "/api/v1/amt/version/"+sim.GUID, nil)
	o = resp.JSON(t)
	var amtVersion any
	for _, it := range jsonPath(o, "CIM_SoftwareIdentity", "responses").([]any) {
		if jsonPath(it, "InstanceID") == "AMT" {
			amtVersion = jsonPath(it, "VersionString")
		}
	}
	var fwVersion string
	sim.FW.View(func(s *firmware.State) { fwVersion = s.Versions.AMT })
	if amtVersion != fwVersion || jsonPath(o, "CIM_SoftwareIdentity", "status") != float64(200) {
		t.Fatalf("version %v (firmware %s): %s", amtVersion, fwVersion, resp.Body)
	}
	if jsonPath(o, "AMT_SetupAndConfigurationService", "response", "ProvisioningMode") != float64(4) ||
		jsonPath(o, "AMT_SetupAndConfigurationService", "responses", "Body", "AMT_SetupAndConfigurationService", "ProvisioningMode") != float64(4) {
		t.Fatalf("setup and configuration: %s", resp.Body)
	}

	resp = must(t, e, 200, "GET", "/api/v1/amt/power/capabilities/"+sim.GUID, nil)
	caps := resp.Object(t)
	for _, k := range []string{"Power up", "Power cycle", "Power down", "Reset", "Soft-off", "Sleep", "Hibernate",
		"Reset to IDE-R Floppy", "Power on to IDE-R CDROM", "Reset to PXE", "Power on to PXE"} {
		if _, ok := caps[k]; !ok {
			t.Errorf("capabilities lack %q: %s", k, resp.Body)
		}
	}
	if caps["Power up"] != float64(2) || caps["Reset to PXE"] != float64(400) || !strings.HasPrefix(string(resp.Body), `{"Power up":2,"Power cycle":5,"Power down":8,"Reset":10,`) {
		t.Fatalf("capabilities: %s", resp.Body)
	}
}

func TestOldFirmwareCapabilities(t *testing.T) { bothPaths(t, testOldFirmwareCapabilities) }

func testOldFirmwareCapabilities(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{Version: "9.5.3"}, "")
	caps := must(t, e, 200, "GET", "/api/v1/amt/power/capabilities/"+sim.GUID, nil).Object(t)
	if _, ok := caps["Sleep"]; ok {
		t.Fatalf("AMT 9 has no Sleep action: %v", caps)
	}
}

func TestFeatures(t *testing.T) { bothPaths(t, testFeatures) }

func testFeatures(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	path := "/api/v1/amt/features/" + sim.GUID
	set := map[string]any{"userConsent": "all", "enableSOL": true, "enableIDER": false, "enableKVM": true}
	wantBody(t, must(t, e, 200, "POST", path, set), `{"status":"AMT Features updated"}`)
	got := must(t, e, 200, "GET", path, nil).Object(t)
	if got["userConsent"] != "all" || got["SOL"] != true || got["IDER"] != false || got["KVM"] != true ||
		got["redirection"] != true || got["kvmAvailable"] != true || got["remoteErase"] != false {
		t.Fatalf("features after set: %v", got)
	}
	keys := []string{"userConsent", "redirection", "KVM", "SOL", "IDER", "optInState", "kvmAvailable", "ocr",
		"httpsBootSupported", "winREBootSupported", "localPBABootSupported", "remoteErase"}
	body := string(must(t, e, 200, "GET", path, nil).Body)
	last := -1
	for _, k := range keys {
		i := strings.Index(body, `"`+k+`":`)
		if i <= last {
			t.Fatalf("key %s out of order in %s", k, body)
		}
		last = i
	}
	// string booleans as the Postman suite sends them
	set = map[string]any{"userConsent": "kvm", "enableSOL": "false", "enableIDER": "true", "enableKVM": "false"}
	must(t, e, 200, "POST", path, set)
	got = must(t, e, 200, "GET", path, nil).Object(t)
	if got["userConsent"] != "kvm" || got["SOL"] != false || got["IDER"] != true || got["KVM"] != false {
		t.Fatalf("features after second set: %v", got)
	}
	// CCM devices refuse to drop user consent (AMT answers AccessDenied).
	set["userConsent"] = "none"
	wantBody(t, must(t, e, 500, "POST", path, set),
		`{"error":"Internal Server Error","errorDescription":"Exception during AMT Features Set request"}`)
	if got := must(t, e, 200, "GET", path, nil).Object(t); got["userConsent"] != "kvm" {
		t.Fatalf("consent changed by a refused request: %v", got)
	}
}

func TestUserConsent(t *testing.T) { bothPaths(t, testUserConsent) }

func testUserConsent(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	must(t, e, 200, "POST", "/api/v1/amt/features/"+sim.GUID, map[string]any{"userConsent": "all", "enableSOL": true, "enableIDER": true, "enableKVM": true})

	resp := must(t, e, 200, "GET", "/api/v1/amt/userConsentCode/"+sim.GUID, nil)
	if jsonPath(resp.JSON(t), "Body", "ReturnValue") != float64(0) || jsonPath(resp.JSON(t), "Body", "ReturnValueStr") != "SUCCESS" ||
		!strings.HasSuffix(jsonPath(resp.JSON(t), "Header", "Action").(string), "StartOptInResponse") {
		t.Fatalf("start opt-in: %s", resp.Body)
	}
	// A wrong code: AMT refuses it (non-zero ReturnValue → 400, same shape).
	resp = e.Do(t, "POST", "/api/v1/amt/userConsentCode/"+sim.GUID, map[string]any{"consentCode": 1})
	if resp.Status != 400 || jsonPath(resp.JSON(t), "Body", "ReturnValue") == float64(0) || jsonPath(resp.JSON(t), "Body", "ReturnValueStr") == nil {
		t.Fatalf("wrong consent code: %d %s", resp.Status, resp.Body)
	}
	resp = must(t, e, 200, "GET", "/api/v1/amt/userConsentCode/cancel/"+sim.GUID, nil)
	if jsonPath(resp.JSON(t), "Body", "ReturnValueStr") != "SUCCESS" {
		t.Fatalf("cancel: %s", resp.Body)
	}
}

func TestCertificates(t *testing.T) { bothPaths(t, testCertificates) }

func testCertificates(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	path := "/api/v1/amt/certificates/" + sim.GUID
	before := must(t, e, 200, "GET", path, nil)
	o := before.JSON(t)
	if jsonPath(o, "certificates", "keyManagementItems") == nil || jsonPath(o, "publicKeys", "publicPrivateKeyPairItems") == nil ||
		jsonPath(o, "profileAssociation") == nil {
		t.Fatalf("certificates shape: %s", before.Body)
	}
	n0 := len(jsonPath(o, "certificates", "publicKeyCertificateItems").([]any))

	chain := testpki.NewChain(testpki.ChainOptions{RootCN: "mps test root"})
	der := base64.StdEncoding.EncodeToString(chain.Root.Raw)
	resp := must(t, e, 200, "POST", path, map[string]any{"cert": der, "isTrusted": true})
	handle, _ := jsonPath(resp.JSON(t), "handle").(string)
	if !strings.HasPrefix(handle, "Intel(r) AMT Certificate: Handle: ") {
		t.Fatalf("add: %s", resp.Body)
	}
	o = must(t, e, 200, "GET", path, nil).JSON(t)
	items := jsonPath(o, "certificates", "publicKeyCertificateItems").([]any)
	var added any
	for _, it := range items {
		if jsonPath(it, "instanceID") == handle {
			added = it
		}
	}
	if len(items) != n0+1 || added == nil || jsonPath(added, "trustedRootCertificate") != true ||
		jsonPath(added, "displayName") != "mps test root" || jsonPath(added, "x509Certificate") != der {
		t.Fatalf("after add: %v", items)
	}
	// The same certificate as base64 of PEM text is accepted too; AMT
	// refuses the duplicate.
	pemB64 := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\n" + der + "\n-----END CERTIFICATE-----\n"))
	resp = e.Do(t, "POST", path, map[string]any{"cert": pemB64, "isTrusted": true})
	if resp.Status != 400 || !strings.Contains(string(resp.Body), "DUPLICATE") {
		t.Fatalf("duplicate: %d %s", resp.Status, resp.Body)
	}
	// expired
	old := testpki.NewChain(testpki.ChainOptions{RootNotBefore: time.Now().Add(-48 * time.Hour), RootNotAfter: time.Now().Add(-24 * time.Hour)})
	wantErrors(t, e.Do(t, "POST", path, map[string]any{"cert": base64.StdEncoding.EncodeToString(old.Root.Raw), "isTrusted": true}),
		"body cert: Certificate has expired")

	// delete by path, then 404
	wantBody(t, must(t, e, 200, "DELETE", path+"/"+handle, nil), `{"message":"Certificate deleted successfully","handle":"`+handle+`"}`)
	wantBody(t, must(t, e, 404, "DELETE", path, map[string]any{"handle": handle}),
		`{"error":"Not Found","errorDescription":"Certificate with handle '`+handle+`' not found"}`)
	o = must(t, e, 200, "GET", path, nil).JSON(t)
	if n := len(jsonPath(o, "certificates", "publicKeyCertificateItems").([]any)); n != n0 {
		t.Fatalf("after delete: %d certificates, want %d", n, n0)
	}
	_ = x509.ParseCertificate
}

func TestNetwork(t *testing.T) { bothPaths(t, testNetwork) }

func testNetwork(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	g := sim.GUID
	resp := must(t, e, 200, "GET", "/api/v1/amt/networkSettings/"+g, nil)
	o := resp.JSON(t)
	wired := jsonPath(o, "wired")
	if jsonPath(wired, "instanceID") != "Intel(r) AMT Ethernet Port Settings 0" || jsonPath(wired, "macAddress") == "" ||
		jsonPath(wired, "ieee8021x") == nil {
		t.Fatalf("wired: %s", resp.Body)
	}
	if w := jsonPath(o, "wireless"); w != nil && jsonPath(w, "wifiNetworks") == nil {
		t.Fatalf("wireless: %s", resp.Body)
	}
	resp = must(t, e, 200, "GET", "/api/v1/amt/networkSettings/wired/"+g, nil)
	if jsonPath(resp.JSON(t), "instanceID") != "Intel(r) AMT Ethernet Port Settings 0" {
		t.Fatalf("wired get: %s", resp.Body)
	}
	// static address
	must(t, e, 204, "PATCH", "/api/v1/amt/networkSettings/wired/"+g, map[string]any{
		"dhcpEnabled": false, "ipSyncEnabled": false, "ipAddress": "192.168.7.20", "subnetMask": "255.255.255.0", "defaultGateway": "192.168.7.1",
		"primaryDNS": "192.168.7.2"})
	w2 := must(t, e, 200, "GET", "/api/v1/amt/networkSettings/wired/"+g, nil).JSON(t)
	if jsonPath(w2, "dhcpEnabled") != false || jsonPath(w2, "ipAddress") != "192.168.7.20" {
		t.Fatalf("after patch: %v", w2)
	}
	must(t, e, 501, "PATCH", "/api/v1/amt/networkSettings/wired/"+g, map[string]any{"dhcpEnabled": true, "ieee8021x": map[string]any{}})

	// wireless radio state
	must(t, e, 200, "GET", "/api/v1/amt/networkSettings/wireless/state/"+g, nil)
	wantBody(t, must(t, e, 200, "POST", "/api/v1/amt/networkSettings/wireless/state/"+g, map[string]any{"state": "wifienableds0sxac"}),
		`{"state":"WifiEnabledS0SxAC"}`)
	wantBody(t, must(t, e, 200, "GET", "/api/v1/amt/networkSettings/wireless/state/"+g, nil), `{"state":"WifiEnabledS0SxAC"}`)

	// profile sync
	resp = must(t, e, 200, "POST", "/api/v1/amt/networkSettings/wireless/profileSync/"+g, map[string]any{"localProfileSync": true})
	if jsonPath(resp.JSON(t), "localProfileSync") != true {
		t.Fatalf("profile sync: %s", resp.Body)
	}
	if jsonPath(must(t, e, 200, "GET", "/api/v1/amt/networkSettings/wireless/profileSync/"+g, nil).JSON(t), "localProfileSync") != true {
		t.Fatal("profile sync not stored")
	}
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/networkSettings/wireless/profileSync/"+g, map[string]any{"localProfileSync": "yes"}),
		"body localProfileSync: localProfileSync must be a boolean")

	// wireless profiles
	prof := map[string]any{"profileName": "home", "ssid": "home-ssid", "priority": 1, "authenticationMethod": "WPA2PSK",
		"encryptionMethod": "CCMP", "password": "superSecret1"}
	must(t, e, 204, "POST", "/api/v1/amt/networkSettings/wireless/profile/"+g, prof)
	resp = must(t, e, 200, "GET", "/api/v1/amt/networkSettings/wireless/profile/"+g, nil)
	if jsonPath(resp.JSON(t), 0, "profileName") != "home" || jsonPath(resp.JSON(t), 0, "authenticationMethod") != "WPA2PSK" ||
		strings.Contains(string(resp.Body), "superSecret1") {
		t.Fatalf("profiles: %s", resp.Body)
	}
	must(t, e, 409, "POST", "/api/v1/amt/networkSettings/wireless/profile/"+g, prof)
	prof2 := map[string]any{"profileName": "work", "ssid": "w", "priority": 1, "authenticationMethod": "WPA2PSK", "encryptionMethod": "CCMP", "password": "superSecret2"}
	must(t, e, 409, "POST", "/api/v1/amt/networkSettings/wireless/profile/"+g, prof2) // same priority
	prof["ssid"] = "renamed"
	must(t, e, 204, "PATCH", "/api/v1/amt/networkSettings/wireless/profile/"+g, prof)
	must(t, e, 204, "DELETE", "/api/v1/amt/networkSettings/wireless/profile/"+g+"/home", nil)
	must(t, e, 404, "DELETE", "/api/v1/amt/networkSettings/wireless/profile/"+g+"/home", nil)
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/networkSettings/wireless/profile/"+g, map[string]any{"profileName": "a b", "ssid": "", "priority": 0,
		"authenticationMethod": "WPA2PSK", "encryptionMethod": "CCMP", "password": "short"}),
		"body profileName: profileName must be alphanumeric", "body ssid: ssid is required",
		"body priority: priority must be between 1 and 255", "body password: password must be 8 to 63 characters")

	// link preference on the wireless port
	resp = must(t, e, 200, "POST", "/api/v1/amt/network/linkPreference/"+g, map[string]any{"linkPreference": 1, "timeout": 300})
	if jsonPath(resp.JSON(t), "ReturnValueStr") == nil {
		t.Fatalf("link preference: %s", resp.Body)
	}
}

func TestDeactivate(t *testing.T) { bothPaths(t, testDeactivate) }

func testDeactivate(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	wantBody(t, must(t, e, 200, "DELETE", "/api/v1/amt/deactivate/"+sim.GUID, nil), `{"status":"SUCCESS"}`)
	if sim.FW.ControlMode() != firmware.ModePre {
		t.Fatalf("device still activated: mode %d", sim.FW.ControlMode())
	}
	ctx := context.Background()
	if _, err := e.Store.GetDevice(ctx, sim.GUID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device record kept: %v", err)
	}
	if _, err := e.Secrets.Get(ctx, devcreds.Key(sim.GUID)); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("device secrets kept: %v", err)
	}
	wantBody(t, must(t, e, 404, "GET", "/api/v1/amt/version/"+sim.GUID, nil), notConnectedBody(sim.GUID))
}

func TestTenantAndRefresh(t *testing.T) { bothPaths(t, testTenantAndRefresh) }

func testTenantAndRefresh(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "acme")
	// default tenant token: the device is someone else's
	wantBody(t, must(t, e, 401, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil), `{"error":"Unauthorized","errorDescription":"Unauthorized"}`)
	must(t, e, 404, "DELETE", "/api/v1/devices/refresh/"+sim.GUID, nil)
	e.Token = tokenFor(t, e.Env, "acme")
	must(t, e, 200, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil)
	if e.access.Cached(sim.GUID) != 1 {
		t.Fatalf("cached clients %d", e.access.Cached(sim.GUID))
	}
	wantBody(t, must(t, e, 200, "DELETE", "/api/v1/devices/refresh/"+sim.GUID, nil),
		`{"success":200,"description":"Device info refreshed : `+sim.GUID+`"}`)
	if e.access.Cached(sim.GUID) != 0 {
		t.Fatal("refresh kept the cached client")
	}
	// a password change stored by provisioning, then refresh: works again
	must(t, e, 200, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil)
	// redirect status answers for LAN devices too (the relay reaches them)
	wantBody(t, must(t, e, 200, "GET", "/api/v1/devices/redirectstatus/"+sim.GUID, nil),
		`{"isKVMConnected":false,"isSOLConnected":false,"isIDERConnected":false}`)
	// …in their tenant only
	e.Token = tokenFor(t, e.Env, "")
	must(t, e, 204, "GET", "/api/v1/devices/redirectstatus/"+sim.GUID, nil)
}

func TestTLSPinned(t *testing.T) { bothPaths(t, testTLSPinned) }

func testTLSPinned(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{TLSEnforced: true}, "")
	resp := must(t, e, 200, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil)
	if jsonPath(resp.JSON(t), "Body", "AMT_GeneralSettings", "DigestRealm") != sim.FW.Realm() {
		t.Fatalf("over TLS: %s", resp.Body)
	}
}

func TestDeviceFaults(t *testing.T) {
	e := newEnv(t, envOpts{mps: func(o *mps.Options) { o.PowerStateTimeout = 150 * time.Millisecond }})
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	sim.Device.AddFault(simwsman.FaultRule{Class: "AMT_GeneralSettings", Op: "Get", Kind: simwsman.FaultHTTP400})
	wantBody(t, must(t, e, 500, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil),
		`{"error":"Internal Server Error","errorDescription":"Exception during AMT General Settings request"}`)
	sim.Device.ClearFaults()
	must(t, e, 200, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil)
	sim.Device.AddFault(simwsman.FaultRule{Class: "CIM_SoftwareIdentity", Op: "Pull", Kind: simwsman.FaultReset})
	wantBody(t, must(t, e, 500, "GET", "/api/v1/amt/version/"+sim.GUID, nil),
		`{"error":"Internal Server Error","errorDescription":"Exception during AMT Version request"}`)
	sim.Device.ClearFaults()
	// a slow device: power state gives up after its (short) deadline with MPS's 404
	sim.Device.SetLatency(time.Second)
	start := time.Now()
	wantBody(t, must(t, e, 404, "GET", "/api/v1/amt/power/state/"+sim.GUID, nil),
		`{"error":"Not Found","errorDescription":"Exception during Power State request"}`)
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Fatalf("power state took %v with a 150ms deadline per call", d)
	}
}

func TestCIRAPath(t *testing.T) {
	cs := devaccesstest.StartCIRA(t, nil)
	e := newEnv(t, envOpts{cira: cs})
	sim := devaccesstest.StartSim(t, devaccesstest.SimOptions{})
	sim.StoreCredentials(t, e.Secrets, false)
	cs.Allow(sim.GUID, "admin", "Mps-Passw0rd1", "")
	cs.Connect(t, sim, "admin", "Mps-Passw0rd1")
	// no device record, no LAN address: reachable by CIRA only
	resp := must(t, e, 200, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil)
	if jsonPath(resp.JSON(t), "Body", "AMT_GeneralSettings", "DigestRealm") != sim.FW.Realm() {
		t.Fatalf("over CIRA: %s", resp.Body)
	}
	must(t, e, 200, "GET", "/api/v1/amt/version/"+sim.GUID, nil)
	// large answers cross the channel window several times
	hw := must(t, e, 200, "GET", "/api/v1/amt/hardwareInfo/"+sim.GUID, nil)
	if jsonPath(hw.JSON(t), "CIM_BIOSElement", "status") != float64(200) {
		t.Fatalf("hardware info over CIRA: %.500s", hw.Body)
	}
	wantBody(t, must(t, e, 200, "GET", "/api/v1/amt/power/state/"+sim.GUID, nil), `{"powerstate":2,"OSPowerSavingState":2}`)
	must(t, e, 200, "GET", "/api/v1/amt/log/audit/"+sim.GUID+"?startIndex=0", nil)
	must(t, e, 200, "POST", "/api/v1/amt/features/"+sim.GUID, map[string]any{"userConsent": "kvm", "enableSOL": true, "enableIDER": true, "enableKVM": true})
	if got := must(t, e, 200, "GET", "/api/v1/amt/features/"+sim.GUID, nil).Object(t); got["userConsent"] != "kvm" {
		t.Fatalf("features over CIRA: %v", got)
	}
	// redirect status comes from the relay
	e.sessions[sim.GUID] = [3]bool{true, false, true}
	wantBody(t, must(t, e, 200, "GET", "/api/v1/devices/redirectstatus/"+sim.GUID, nil),
		`{"isKVMConnected":true,"isSOLConnected":false,"isIDERConnected":true}`)
	// another tenant: 204 on redirect status, 401 on actions and disconnect
	def := e.Token
	e.Token = tokenFor(t, e.Env, "t2")
	must(t, e, 204, "GET", "/api/v1/devices/redirectstatus/"+sim.GUID, nil)
	must(t, e, 401, "GET", "/api/v1/amt/version/"+sim.GUID, nil)
	must(t, e, 401, "DELETE", "/api/v1/devices/disconnect/"+sim.GUID, nil)
	e.Token = def
	// a device record shows the live connection
	must(t, e, 201, "POST", "/api/v1/devices", map[string]any{"guid": sim.GUID})
	if jsonPath(must(t, e, 200, "GET", "/api/v1/devices/"+sim.GUID, nil).JSON(t), "connectionStatus") != true {
		t.Fatal("connectionStatus false while CIRA-connected")
	}
	// disconnect from the server side
	gone := cs.ExpectDisconnect(sim.GUID)
	wantBody(t, must(t, e, 200, "DELETE", "/api/v1/devices/disconnect/"+sim.GUID, nil),
		`{"success":200,"description":"Device CIRA connection disconnected : `+sim.GUID+`"}`)
	<-gone
	wantBody(t, must(t, e, 404, "GET", "/api/v1/amt/generalSettings/"+sim.GUID, nil), notConnectedBody(sim.GUID))
	wantBody(t, must(t, e, 404, "DELETE", "/api/v1/devices/disconnect/"+sim.GUID, nil), notConnectedBody(sim.GUID))
}
