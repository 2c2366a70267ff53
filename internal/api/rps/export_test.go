package rps_test

import (
	"encoding/base64"
	"net/url"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/config"

	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/api/rps"
)

// exportDoc fetches and decrypts a profile export.
func exportDoc(t *testing.T, env *apitest.Env, profile, domain string) map[string]any {
	t.Helper()
	path := base + "/profiles/export/" + url.PathEscape(profile)
	if domain != "" {
		path += "?domainName=" + url.QueryEscape(domain)
	}
	resp := must(t, env, 200, "GET", path, nil)
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("export answer may be cached: %q", resp.Header.Get("Cache-Control"))
	}
	obj := resp.Object(t)
	if obj["filename"] != profile+".yaml" {
		t.Fatalf("filename %v", obj["filename"])
	}
	key := obj["key"].(string)
	raw, err := base64.StdEncoding.DecodeString(key)
	if len(key) != 32 || err != nil || len(raw) != 24 {
		t.Fatalf("key %q is not base64 of 24 bytes", key)
	}
	plain, err := rps.DecryptExport(obj["content"].(string), key)
	if err != nil {
		t.Fatalf("decrypt: %v", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(plain, &doc); err != nil {
		t.Fatalf("yaml: %v\n%s", err, plain)
	}
	// rpc-go and Console read it as go-wsman-messages' config.Configuration.
	var cfg config.Configuration
	if err := yaml.Unmarshal(plain, &cfg); err != nil {
		t.Fatalf("config.Configuration: %v", err)
	}
	if cfg.Name != profile {
		t.Fatalf("config name %q", cfg.Name)
	}
	return doc
}

func TestEncryptWithRandomKey(t *testing.T) {
	content, key, err := rps.EncryptWithRandomKey([]byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := base64.StdEncoding.DecodeString(content)
	if len(data) != 12+5+16 {
		t.Fatalf("content is %d bytes, want nonce+plaintext+tag = 33", len(data))
	}
	plain, err := rps.DecryptExport(content, key)
	if err != nil || string(plain) != "hello" {
		t.Fatalf("%q %v", plain, err)
	}
	if _, err := rps.DecryptExport(content, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); err == nil {
		t.Fatal("wrong key decrypted")
	}
}

func TestProfileExport(t *testing.T) {
	env := newEnv(t)
	must(t, env, 201, "POST", base+"/ieee8021xconfigs", map[string]any{"profileName": "wired1", "authenticationProtocol": 0, "pxeTimeout": 60, "wiredInterface": true})
	must(t, env, 201, "POST", base+"/ieee8021xconfigs", map[string]any{"profileName": "wless1", "authenticationProtocol": 2, "wiredInterface": false})
	must(t, env, 201, "POST", base+"/wirelessconfigs", wirelessBody("home", "Home-Passphrase"))
	must(t, env, 201, "POST", base+"/wirelessconfigs", map[string]any{"profileName": "corp", "authenticationMethod": 7, "encryptionMethod": 4, "ssid": "corp", "ieee8021xProfileName": "wless1"})
	must(t, env, 201, "POST", base+"/proxyconfigs", proxyBody("proxy1", "proxy.example.com"))
	must(t, env, 201, "POST", base+"/ciraconfigs", with(ciraBody("cira1"), "password", "Mps-Pa55word!"))
	cert := pfx("amt.vprodemo.com", "Cert-Pa55")
	must(t, env, 201, "POST", base+"/domains", map[string]any{"profileName": "dom1", "domainSuffix": "vprodemo.com", "provisioningCert": cert, "provisioningCertStorageFormat": "raw", "provisioningCertPassword": "Cert-Pa55"})
	must(t, env, 201, "POST", base+"/profiles", map[string]any{
		"profileName": "acm1", "activation": "acmactivate", "amtPassword": "Amt-Pa55word!", "mebxPassword": "Mebx-Pa55word!",
		"dhcpEnabled": true, "ipSyncEnabled": true, "localWifiSyncEnabled": true, "uefiWifiSyncEnabled": false, "tags": []string{"a"},
		"ciraConfigName": "cira1", "ieee8021xProfileName": "wired1", "userConsent": "None", "iderEnabled": true, "kvmEnabled": false, "solEnabled": true,
		"wifiConfigs":  []any{map[string]any{"priority": 1, "profileName": "home"}, map[string]any{"priority": 2, "profileName": "corp"}},
		"proxyConfigs": []any{map[string]any{"priority": 1, "name": "proxy1"}},
	})

	doc := exportDoc(t, env, "acm1", "dom1")
	c := doc["configuration"].(map[string]any)
	amt := c["amtSpecific"].(map[string]any)
	want := map[string]any{"controlMode": "acmactivate", "adminPassword": "Amt-Pa55word!", "mebxPassword": "Mebx-Pa55word!",
		"provisioningCert": cert, "provisioningCertPwd": "Cert-Pa55", "generateRandomPassword": false}
	for k, v := range want {
		if amt[k] != v {
			t.Errorf("amtSpecific.%s = %v, want %v", k, amt[k], v)
		}
	}
	cira := amt["cira"].(map[string]any)
	if cira["mpsAddress"] != "192.168.8.50" || cira["mpsPort"] != 4433 || cira["mpsUsername"] != "admin" || cira["mpsPassword"] != "Mps-Pa55word!" || cira["mpsCert"] != "rootcert" {
		t.Errorf("cira %v", cira)
	}
	red := c["redirection"].(map[string]any)
	svc := red["services"].(map[string]any)
	if red["enabled"] != true || red["userConsent"] != "None" || svc["kvm"] != false || svc["sol"] != true || svc["ider"] != true {
		t.Errorf("redirection %v (amtd exports the real settings)", red)
	}
	net := c["network"].(map[string]any)
	wired := net["wired"].(map[string]any)
	if wired["dhcpEnabled"] != true || wired["ipSyncEnabled"] != true || wired["sharedStaticIP"] != false ||
		wired["ieee8021x"].(map[string]any)["pxeTimeout"] != 60 {
		t.Errorf("wired %v", wired)
	}
	wl := net["wireless"].(map[string]any)
	profiles := wl["profiles"].([]any)
	if wl["wifiSyncEnabled"] != true || len(profiles) != 2 {
		t.Fatalf("wireless %v", wl)
	}
	home := profiles[0].(map[string]any)
	if home["profileName"] != "home" || home["password"] != "Home-Passphrase" || home["pskPassphrase"] != "Home-Passphrase" || home["authenticationMethod"] != 6 || home["priority"] != 1 {
		t.Errorf("home %v", home)
	}
	corp := profiles[1].(map[string]any)
	if corp["ieee8021xProfileName"] != "wless1" || corp["ieee8021x"].(map[string]any)["authenticationProtocol"] != 2 || corp["password"] != "" {
		t.Errorf("corp %v", corp)
	}
	if px := net["proxy"].([]any); len(px) != 1 || px[0].(map[string]any)["address"] != "proxy.example.com" {
		t.Errorf("proxies %v", net["proxy"])
	}
	if tls := c["tls"].(map[string]any); tls["enabled"] != false {
		t.Errorf("tls %v", tls)
	}

	// CCM with random passwords and TLS.
	must(t, env, 201, "POST", base+"/profiles", with(ccmBody("ccm1"), "tlsMode", 4, "tlsSigningAuthority", "MicrosoftCA"))
	doc = exportDoc(t, env, "ccm1", "dom1")
	c = doc["configuration"].(map[string]any)
	amt = c["amtSpecific"].(map[string]any)
	if amt["adminPassword"] != "" || amt["generateRandomPassword"] != true || amt["provisioningCert"] != "" {
		t.Errorf("ccm amtSpecific %v", amt)
	}
	tls := c["tls"].(map[string]any)
	if tls["enabled"] != true || tls["mutualAuthentication"] != true || tls["allowNonTLS"] != true || tls["signingAuthority"] != "MicrosoftCA" {
		t.Errorf("tls %v", tls)
	}
	if ea := c["enterpriseAssistant"].(map[string]any); ea["url"] != "http://ea.example:8000" {
		t.Errorf("enterprise assistant %v", ea)
	}

	// Errors.
	if _, m := errorBody(t, must(t, env, 404, "GET", base+"/profiles/export/nope", nil)); m != "AMT profile nope Not Found" {
		t.Errorf("unknown profile: %q", m)
	}
	if _, m := errorBody(t, must(t, env, 404, "GET", base+"/profiles/export/acm1?domainName=nodomain", nil)); m != "Domain profile nodomain Not Found" {
		t.Errorf("unknown domain: %q", m)
	}
}
