package rps_test

import (
	"strings"
	"testing"
)

// TestProfileUpdateSemantics covers admin-api.md §5's update rules.
func TestProfileUpdateSemantics(t *testing.T) {
	env := newEnv(t)
	must(t, env, 201, "POST", base+"/ciraconfigs", ciraBody("cira1"))
	must(t, env, 201, "POST", base+"/wirelessconfigs", wirelessBody("home", "P@ssw0rd1"))
	must(t, env, 201, "POST", base+"/proxyconfigs", proxyBody("proxy1", "proxy.example.com"))
	p := must(t, env, 201, "POST", base+"/profiles", with(ccmBody("p1"), "ciraConfigName", "cira1", "tags", []string{"a", "b"},
		"wifiConfigs", []any{map[string]any{"priority": 1, "profileName": "home"}},
		"proxyConfigs", []any{map[string]any{"priority": 1, "name": "proxy1"}})).Object(t)
	ver := p["version"]
	update := func(body map[string]any) map[string]any {
		t.Helper()
		out := must(t, env, 200, "PATCH", base+"/profiles", with(body, "version", ver)).Object(t)
		ver = out["version"]
		return out
	}

	// generateRandomPassword false without a password keeps the random
	// setting (RPS); omitted ciraConfigName is cleared, tags and links kept.
	out := update(map[string]any{"profileName": "p1", "activation": "ccmactivate", "generateRandomPassword": false})
	if out["generateRandomPassword"] != true || out["ciraConfigName"] != nil || len(out["tags"].([]any)) != 2 ||
		len(out["wifiConfigs"].([]any)) != 1 || len(out["proxyConfigs"].([]any)) != 1 {
		t.Fatalf("after minimal update: %v", out)
	}
	// Switching to ACM needs a MEBx source.
	resp := must(t, env, 400, "PATCH", base+"/profiles", map[string]any{"profileName": "p1", "activation": "acmactivate", "version": ver})
	if e, m := errorBody(t, resp); e != "Error" || m != "MEBx password is required for acmactivate" {
		t.Fatalf("acm without mebx: %q %q", e, m)
	}
	out = update(map[string]any{"profileName": "p1", "activation": "acmactivate", "mebxPassword": "Mebx-Pa55word!", "amtPassword": "Amt-Pa55word!", "userConsent": "KVM"})
	if out["activation"] != "acmactivate" || out["generateRandomPassword"] != false || out["userConsent"] != "KVM" {
		t.Fatalf("to ACM: %v", out)
	}
	// Omitted static passwords keep the stored secrets.
	out = update(map[string]any{"profileName": "p1", "activation": "acmactivate", "tlsMode": 1})
	amt := exportDoc(t, env, "p1", "")["configuration"].(map[string]any)["amtSpecific"].(map[string]any)
	if amt["adminPassword"] != "Amt-Pa55word!" || amt["mebxPassword"] != "Mebx-Pa55word!" || out["tlsSigningAuthority"] != "SelfSigned" || out["userConsent"] != "KVM" {
		t.Fatalf("kept secrets: %v / %v", amt, out)
	}
	// Back to CCM: MEBx dropped, consent forced to All, TLS cleared with its
	// authority, DHCP off clears the Wi-Fi links.
	out = update(map[string]any{"profileName": "p1", "activation": "ccmactivate", "dhcpEnabled": false})
	amt = exportDoc(t, env, "p1", "")["configuration"].(map[string]any)["amtSpecific"].(map[string]any)
	if amt["mebxPassword"] != "" || amt["adminPassword"] != "Amt-Pa55word!" || out["userConsent"] != "All" ||
		out["tlsMode"] != nil || out["tlsSigningAuthority"] != nil || len(out["wifiConfigs"].([]any)) != 0 || out["generateRandomMEBxPassword"] != false {
		t.Fatalf("to CCM: %v / %v", out, amt)
	}
	// Random again: the static AMT password goes away.
	update(map[string]any{"profileName": "p1", "activation": "ccmactivate", "generateRandomPassword": true})
	if live := env.Tracked.Live("system/", "tenants/t_/wirelessconfigs/"); len(live) != 0 {
		t.Fatalf("profile secret kept after switching to random passwords: %v", live)
	}
	// A missing CIRA config on update.
	resp = must(t, env, 400, "PATCH", base+"/profiles", map[string]any{"profileName": "p1", "activation": "ccmactivate", "ciraConfigName": "nope", "version": ver})
	if e, m := errorBody(t, resp); e != "Foreign key constraint violation" || m != "Referenced config nope doesn't exist" {
		t.Fatalf("missing cira on update: %q %q", e, m)
	}
	// … and on create.
	resp = must(t, env, 400, "POST", base+"/profiles", with(ccmBody("p2"), "ciraConfigName", "nociraconfig"))
	if e, m := errorBody(t, resp); !strings.HasPrefix(e, "Foreign key constraint violation") || m != "Referenced constraint nociraconfig doesn't exist" {
		t.Fatalf("missing cira on create: %q %q", e, m)
	}
}

func TestDeleteInUse(t *testing.T) {
	env := newEnv(t)
	must(t, env, 201, "POST", base+"/ciraconfigs", ciraBody("cira1"))
	must(t, env, 201, "POST", base+"/ieee8021xconfigs", map[string]any{"profileName": "wired1", "authenticationProtocol": 0, "pxeTimeout": 1, "wiredInterface": true})
	must(t, env, 201, "POST", base+"/ieee8021xconfigs", map[string]any{"profileName": "wless1", "authenticationProtocol": 0, "wiredInterface": false})
	must(t, env, 201, "POST", base+"/wirelessconfigs", map[string]any{"profileName": "corp", "authenticationMethod": 7, "encryptionMethod": 4, "ssid": "corp", "ieee8021xProfileName": "wless1"})
	must(t, env, 201, "POST", base+"/proxyconfigs", proxyBody("proxy1", "proxy.example.com"))
	must(t, env, 201, "POST", base+"/profiles", with(ccmBody("p1"), "ciraConfigName", "cira1", "ieee8021xProfileName", "wired1",
		"wifiConfigs", []any{map[string]any{"priority": 1, "profileName": "corp"}}, "proxyConfigs", []any{map[string]any{"priority": 1, "name": "proxy1"}}))
	tests := []struct{ path, err, msg string }{
		{"/ciraconfigs/cira1", "Foreign key violation", "CIRA Config: cira1 is associated with an AMT profile"},
		{"/wirelessconfigs/corp", "Foreign key violation", "Wireless profile: corp is associated with an AMT Profile."},
		{"/ieee8021xconfigs/wired1", "Error", "802.1x config: wired1 is associated with an AMT Profile."},
		{"/ieee8021xconfigs/wless1", "Error", "802.1x config: wless1 is associated with a wireless profile."},
		{"/proxyconfigs/proxy1", "Foreign key violation", "Proxy profile: proxy1 is associated with an AMT Profile."},
	}
	for _, tc := range tests {
		e, m := errorBody(t, must(t, env, 400, "DELETE", base+tc.path, nil))
		if e != tc.err || m != tc.msg {
			t.Errorf("DELETE %s: %q %q, want %q %q", tc.path, e, m, tc.err, tc.msg)
		}
	}
	must(t, env, 204, "DELETE", base+"/profiles/p1", nil)
	for _, p := range []string{"/ciraconfigs/cira1", "/wirelessconfigs/corp", "/ieee8021xconfigs/wired1", "/ieee8021xconfigs/wless1", "/proxyconfigs/proxy1"} {
		must(t, env, 204, "DELETE", base+p, nil)
	}
}

// TestBadInput: malformed bodies, wrong types and oversized bodies are 4xx
// with a reason, and nothing is stored (issue item 8).
func TestBadInput(t *testing.T) {
	env := newEnv(t)
	tests := []struct {
		name, path, body string
		status           int
		reason           string
	}{
		{"malformed JSON", "/ciraconfigs", `{"configName":"c1",`, 400, "malformed JSON"},
		{"array body", "/profiles", `[{"profileName":"p1"}]`, 400, "must be a JSON object"},
		{"string body", "/wirelessconfigs", `"x"`, 400, "must be a JSON object"},
		{"trailing data", "/proxyconfigs", `{"name":"p1"} {}`, 400, "data after"},
		{"oversized", "/domains", `{"profileName":"d1","provisioningCert":"` + strings.Repeat("A", 1<<20) + `"}`, 413, "exceeds the limit"},
		{"wrong types", "/ciraconfigs", `{"configName":["c1"],"mpsServerAddress":{"a":1},"mpsPort":true,"username":5,"serverAddressFormat":"3","authMethod":null,"mpsRootCertificate":false}`, 400, `"errors"`},
		{"arrays for single values", "/ciraconfigs", `{"configName":["c1"],"mpsServerAddress":"192.168.8.50","mpsPort":[4433],"username":"admin","commonName":"192.168.8.50","serverAddressFormat":3,"authMethod":2,"mpsRootCertificate":"x"}`, 400,
			`{"type":"field","value":["c1"],"msg":"configName must be a single value, not an array or an object","path":"configName","location":"body"},{"type":"field","value":[4433],"msg":"mpsPort must be a single value, not an array or an object","path":"mpsPort","location":"body"}`},
		{"object for a password", "/profiles", `{"profileName":"p1","activation":"ccmactivate","amtPassword":{"x":"Secret-In-Object"},"dhcpEnabled":true}`, 400, `"value":"[redacted]","msg":"amtPassword must be a single value`},
		{"wifi entries not objects", "/profiles", `{"profileName":"p1","activation":"ccmactivate","generateRandomPassword":true,"dhcpEnabled":true,"wifiConfigs":["home"]}`, 400, "should be objects"},
		{"wifi priority as text", "/profiles", `{"profileName":"p1","activation":"ccmactivate","generateRandomPassword":true,"dhcpEnabled":true,"wifiConfigs":[{"profileName":"home","priority":"1"}]}`, 400, "priority should be an integer"},
		{"duplicate wifi entry", "/profiles", `{"profileName":"p1","activation":"ccmactivate","generateRandomPassword":true,"dhcpEnabled":true,"wifiConfigs":[{"profileName":"a","priority":1},{"profileName":"A","priority":2}]}`, 400, "more than once"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := env.Do(t, "POST", base+tc.path, tc.body)
			if resp.Status != tc.status || !strings.Contains(string(resp.Body), tc.reason) {
				t.Fatalf("%d %.300s, want %d with %q", resp.Status, resp.Body, tc.status, tc.reason)
			}
		})
	}
	for _, p := range []string{"/ciraconfigs", "/profiles", "/wirelessconfigs", "/proxyconfigs", "/domains"} {
		if l := must(t, env, 200, "GET", base+p, nil).JSON(t).([]any); len(l) != 0 {
			t.Errorf("%s: %v stored", p, l)
		}
	}
	if live := env.Tracked.Live("system/"); len(live) != 0 {
		t.Errorf("secrets stored: %v", live)
	}
	// Form bodies work as in RPS (values in string form).
	resp := env.Do(t, "POST", base+"/proxyconfigs", "name=p1&address=10.1.2.3&port=8080&networkDnsSuffix=intel.com", "Content-Type", "application/x-www-form-urlencoded")
	if resp.Status != 201 || !strings.Contains(string(resp.Body), `"port":8080,`) || !strings.Contains(string(resp.Body), `"infoFormat":3`) {
		t.Fatalf("form body: %d %s", resp.Status, resp.Body)
	}
}
