package rps_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/amtd-project/amtd/internal/api/apitest"
)

// TestWireShapes compares whole answers with the spec's examples (key order
// included).
func TestWireShapes(t *testing.T) {
	env := newEnv(t)
	tests := []struct {
		name, path string
		body       any
		want       string
	}{
		{"cira", "/ciraconfigs", ciraBody("ciraconfig2"),
			`{"configName":"ciraconfig2","mpsServerAddress":"192.168.8.50","mpsPort":4433,"username":"admin","commonName":"192.168.8.50","serverAddressFormat":3,"authMethod":2,"mpsRootCertificate":"rootcert","proxyDetails":"","tenantId":"","version":"1"}`},
		{"wireless", "/wirelessconfigs", map[string]any{"profileName": "home", "authenticationMethod": 6, "encryptionMethod": 4, "ssid": "home", "pskPassphrase": "P@ssw0rd", "linkPolicy": []int{14, 16}},
			`{"profileName":"home","authenticationMethod":6,"encryptionMethod":4,"ssid":"home","pskValue":null,"linkPolicy":[14,16],"tenantId":"","ieee8021xProfileName":null,"version":"1"}`},
		{"802.1x", "/ieee8021xconfigs", map[string]any{"profileName": "wired8021xConfig", "authenticationProtocol": 0, "pxeTimeout": 120, "wiredInterface": true},
			`{"profileName":"wired8021xConfig","authenticationProtocol":0,"pxeTimeout":120,"wiredInterface":true,"tenantId":"","version":"1"}`},
		{"802.1x wireless default pxe", "/ieee8021xconfigs", map[string]any{"profileName": "wless", "authenticationProtocol": 2, "wiredInterface": false},
			`{"profileName":"wless","authenticationProtocol":2,"pxeTimeout":120,"wiredInterface":false,"tenantId":"","version":"1"}`},
		{"proxy", "/proxyconfigs", map[string]any{"name": "proxy1", "address": "www.vprodemo.com", "port": 900, "networkDnsSuffix": "intel.com"},
			`{"name":"proxy1","address":"www.vprodemo.com","infoFormat":201,"port":900,"networkDnsSuffix":"intel.com","tenantId":""}`},
		{"proxy ipv6", "/proxyconfigs", map[string]any{"name": "proxy6", "address": "2001:db8::1", "port": 8080, "networkDnsSuffix": "intel.com"},
			`{"name":"proxy6","address":"2001:db8::1","infoFormat":4,"port":8080,"networkDnsSuffix":"intel.com","tenantId":""}`},
		{"profile ccm", "/profiles", map[string]any{"profileName": "profile6", "activation": "ccmactivate", "tags": []string{"tag1"}, "dhcpEnabled": false, "generateRandomPassword": true, "generateRandomMEBxPassword": true, "localWifiSyncEnabled": true, "uefiWifiSyncEnabled": true},
			`{"profileName":"profile6","activation":"ccmactivate","ciraConfigName":null,"generateRandomPassword":true,"generateRandomMEBxPassword":false,"tags":["tag1"],"dhcpEnabled":false,"tlsMode":null,"userConsent":"All","iderEnabled":false,"kvmEnabled":true,"solEnabled":false,"tenantId":"","tlsSigningAuthority":null,"version":"1","ieee8021xProfileName":null,"wifiConfigs":[],"ipSyncEnabled":null,"localWifiSyncEnabled":true,"uefiWifiSyncEnabled":true,"proxyConfigs":[]}`},
		{"profile acm tls", "/profiles", map[string]any{"profileName": "acm1", "activation": "acmactivate", "amtPassword": "G@ppm0ym", "mebxPassword": "G@ppm0ym", "dhcpEnabled": true, "tlsMode": 2,
			"wifiConfigs": []any{map[string]any{"priority": 1, "profileName": "home"}}, "proxyConfigs": []any{map[string]any{"priority": 2, "name": "proxy1"}}},
			`{"profileName":"acm1","activation":"acmactivate","ciraConfigName":null,"generateRandomPassword":false,"generateRandomMEBxPassword":false,"tags":[],"dhcpEnabled":true,"tlsMode":2,"userConsent":"KVM","iderEnabled":false,"kvmEnabled":true,"solEnabled":false,"tenantId":"","tlsSigningAuthority":"SelfSigned","version":"1","ieee8021xProfileName":null,"wifiConfigs":[{"priority":1,"profileName":"home"}],"ipSyncEnabled":null,"localWifiSyncEnabled":null,"uefiWifiSyncEnabled":null,"proxyConfigs":[{"priority":2,"name":"proxy1"}]}`},
	}
	for _, tc := range tests {
		resp := env.Do(t, "POST", base+tc.path, tc.body)
		if resp.Status != 201 || string(resp.Body) != tc.want {
			t.Errorf("%s: %d\n got %s\nwant %s", tc.name, resp.Status, resp.Body, tc.want)
		}
	}
	// GETs return the same objects.
	if resp := must(t, env, 200, "GET", base+"/ciraconfigs/CIRACONFIG2", nil); !strings.HasPrefix(string(resp.Body), `{"configName":"ciraconfig2",`) {
		t.Errorf("get cira: %s", resp.Body)
	}
	// Wireless update answers have no pskValue.
	resp := must(t, env, 200, "PATCH", base+"/wirelessconfigs", with(wirelessBody("home", "N3w-Passphrase"), "version", "1"))
	if string(resp.Body) != `{"profileName":"home","authenticationMethod":6,"encryptionMethod":4,"ssid":"home","linkPolicy":[14,16],"tenantId":"","ieee8021xProfileName":null,"version":"2"}` {
		t.Errorf("wireless update: %s", resp.Body)
	}
	must(t, env, 200, "GET", base+"/", nil)
	if resp := must(t, env, 200, "GET", "/api/v1/admin", nil); string(resp.Body) != `{"message":"admin path. use admin/profiles"}` {
		t.Errorf("admin root: %s", resp.Body)
	}
	if resp := must(t, env, 200, "GET", base+"/version/", nil); string(resp.Body) != `{"serviceVersion":"1.2.3","protocolVersion":"4.0.0"}` {
		t.Errorf("version: %s", resp.Body)
	}
	if resp := must(t, env, 200, "GET", base+"/health", nil); !strings.Contains(string(resp.Body), `"db":{"name":"SQLITE","status":"OK"}`) {
		t.Errorf("health: %s", resp.Body)
	}
	// The gateway prefix serves the same routes.
	must(t, env, 200, "GET", "/rps"+base+"/proxyconfigs/proxy1", nil)
}

// TestCRUD runs create, duplicate (any case), get (any case), list, update,
// delete and the not-found answers for every type.
func TestCRUD(t *testing.T) {
	env := newEnv(t)
	type kind struct {
		path, typ, nameKey, name, dupMsg string
		create                           map[string]any
		update                           map[string]any
		check                            func(obj map[string]any) bool
	}
	kinds := []kind{
		{"/ciraconfigs", "CIRA", "configName", "CiraOne", "CIRA Config CIRAONE already exists.", ciraBody("CiraOne"),
			map[string]any{"configName": "ciraone", "mpsPort": 4434}, func(o map[string]any) bool { return o["mpsPort"] == 4434.0 }},
		{"/wirelessconfigs", "Wireless", "profileName", "HomeNet", "Wireless profile HOMENET already exists", wirelessBody("HomeNet", "P@ssw0rd1"),
			with(wirelessBody("homenet", "P@ssw0rd2"), "ssid", "new"), func(o map[string]any) bool { return o["ssid"] == "new" }},
		{"/ieee8021xconfigs", "802.1x", "profileName", "Wired1", "802.1x config: WIRED1 already exists", map[string]any{"profileName": "Wired1", "authenticationProtocol": 0, "pxeTimeout": 120, "wiredInterface": true},
			map[string]any{"profileName": "wired1", "authenticationProtocol": 5, "pxeTimeout": 0, "wiredInterface": true}, func(o map[string]any) bool { return o["pxeTimeout"] == 0.0 && o["authenticationProtocol"] == 5.0 }},
		{"/proxyconfigs", "Proxy", "name", "ProxyA", "Proxy profile PROXYA already exists", proxyBody("ProxyA", "proxy-a.example.com"),
			proxyBody("proxya", "10.0.0.1"), func(o map[string]any) bool { return o["infoFormat"] == 3.0 && o["address"] == "10.0.0.1" }},
		{"/profiles", "AMT", "profileName", "ProfA", "AMT profile PROFA already exists", ccmBody("ProfA"),
			with(ccmBody("profa"), "tags", []string{"x", "y"}), func(o map[string]any) bool { return len(o["tags"].([]any)) == 2 }},
	}
	for _, k := range kinds {
		t.Run(k.typ, func(t *testing.T) {
			created := must(t, env, 201, "POST", base+k.path, k.create).Object(t)
			dup := with(k.create, k.nameKey, strings.ToUpper(k.name))
			e, m := errorBody(t, must(t, env, 400, "POST", base+k.path, dup))
			if e != "Unique key violation" || m != k.dupMsg {
				t.Errorf("duplicate: %q %q", e, m)
			}
			got := must(t, env, 200, "GET", base+k.path+"/"+strings.ToLower(k.name), nil).Object(t)
			if got[k.nameKey] != k.name {
				t.Errorf("get keeps the stored case: %v", got[k.nameKey])
			}
			list := must(t, env, 200, "GET", base+k.path, nil).JSON(t).([]any)
			if len(list) != 1 {
				t.Errorf("list: %v", list)
			}
			upd := k.update
			if v, ok := created["version"]; ok {
				upd = with(upd, "version", v)
			}
			updated := must(t, env, 200, "PATCH", base+k.path, upd).Object(t)
			if !k.check(updated) || updated[k.nameKey] != k.name {
				t.Errorf("update answer: %v", updated)
			}
			if _, ok := created["version"]; ok && updated["version"] == created["version"] {
				t.Errorf("version did not change: %v", updated["version"])
			}
			again := must(t, env, 200, "GET", base+k.path+"/"+k.name, nil).Object(t)
			if !k.check(again) {
				t.Errorf("update not stored: %v", again)
			}
			must(t, env, 204, "DELETE", base+k.path+"/"+strings.ToUpper(k.name), nil)
			// Not-found messages name the object as requested.
			for _, c := range []struct {
				resp *apitest.Response
				name string
			}{
				{env.Do(t, "GET", base+k.path+"/"+k.name, nil), k.name},
				{env.Do(t, "DELETE", base+k.path+"/"+k.name, nil), k.name},
				{env.Do(t, "PATCH", base+k.path, upd), upd[k.nameKey].(string)},
			} {
				resp := c.resp
				wantMsg := fmt.Sprintf("%s profile %s Not Found", k.typ, c.name)
				e, m := errorBody(t, resp)
				if resp.Status != 404 || e != "Not Found" || m != wantMsg {
					t.Errorf("after delete: %d %q %q, want 404 %q", resp.Status, e, m, wantMsg)
				}
			}
		})
	}
}

func TestListsPagingAndCount(t *testing.T) {
	env := newEnv(t)
	for _, n := range []string{"charlie", "Alpha", "bravo", "delta"} {
		must(t, env, 201, "POST", base+"/proxyconfigs", proxyBody(n, n+".example.com"))
	}
	names := func(v any) string {
		var out []string
		for _, o := range v.([]any) {
			out = append(out, o.(map[string]any)["name"].(string))
		}
		return strings.Join(out, ",")
	}
	if got := names(must(t, env, 200, "GET", base+"/proxyconfigs", nil).JSON(t)); got != "Alpha,bravo,charlie,delta" {
		t.Errorf("order by name: %s", got)
	}
	if got := names(must(t, env, 200, "GET", base+"/proxyconfigs?$top=2&$skip=1", nil).JSON(t)); got != "bravo,charlie" {
		t.Errorf("page: %s", got)
	}
	if got := names(must(t, env, 200, "GET", base+"/proxyconfigs?$top=0", nil).JSON(t)); got != "" {
		t.Errorf("$top=0: %s", got)
	}
	for _, q := range []string{"$count=true", "$count=1", "$count=0"} {
		obj := must(t, env, 200, "GET", base+"/proxyconfigs?$top=1&"+q, nil).Object(t)
		if obj["totalCount"] != 4.0 || len(obj["data"].([]any)) != 1 {
			t.Errorf("%s: %v", q, obj)
		}
	}
	if _, ok := must(t, env, 200, "GET", base+"/proxyconfigs?$count=false", nil).JSON(t).([]any); !ok {
		t.Error("$count=false: want a bare array")
	}
}

func TestETagAndNotModified(t *testing.T) {
	env := newEnv(t)
	first := must(t, env, 200, "GET", base+"/domains/", nil)
	etag := first.Header.Get("ETag")
	if !strings.HasPrefix(etag, `W/"2-`) {
		t.Fatalf("ETag %q", etag)
	}
	// Same content, other query string: still fresh (the suite relies on it).
	resp := env.Do(t, "GET", base+"/domains?$top=10&$skip=0", nil, "If-None-Match", etag, "Cache-Control", "max-age")
	if resp.Status != http.StatusNotModified || len(resp.Body) != 0 {
		t.Fatalf("304 expected: %d %q", resp.Status, resp.Body)
	}
	must(t, env, 201, "POST", base+"/proxyconfigs", proxyBody("p1", "p1.example.com"))
	item := must(t, env, 200, "GET", base+"/proxyconfigs/p1", nil)
	must(t, env, 304, "GET", base+"/proxyconfigs/p1", nil, "If-None-Match", item.Header.Get("ETag"))
	// A change makes the old tag stale.
	must(t, env, 200, "PATCH", base+"/proxyconfigs", proxyBody("p1", "p2.example.com"))
	must(t, env, 200, "GET", base+"/proxyconfigs/p1", nil, "If-None-Match", item.Header.Get("ETag"))
}

func TestOptimisticConcurrency(t *testing.T) {
	env := newEnv(t)
	must(t, env, 201, "POST", base+"/ciraconfigs", ciraBody("c1"))
	must(t, env, 201, "POST", base+"/profiles", ccmBody("p1"))
	must(t, env, 201, "POST", base+"/wirelessconfigs", wirelessBody("w1", "P@ssw0rd1"))
	must(t, env, 201, "POST", base+"/ieee8021xconfigs", map[string]any{"profileName": "x1", "authenticationProtocol": 0, "pxeTimeout": 1, "wiredInterface": true})
	pfxB64 := pfx("amt.vprodemo.com", "P@ssw0rd")
	must(t, env, 201, "POST", base+"/domains", map[string]any{"profileName": "d1", "domainSuffix": "vprodemo.com", "provisioningCert": pfxB64, "provisioningCertStorageFormat": "raw", "provisioningCertPassword": "P@ssw0rd"})

	updates := map[string]map[string]any{
		"/ciraconfigs":      {"configName": "c1", "mpsPort": 4434},
		"/profiles":         ccmBody("p1"),
		"/wirelessconfigs":  wirelessBody("w1", "P@ssw0rd1"),
		"/ieee8021xconfigs": {"profileName": "x1", "authenticationProtocol": 0, "pxeTimeout": 2, "wiredInterface": true},
		"/domains":          {"profileName": "d1", "provisioningCertStorageFormat": "string"},
	}
	for path, body := range updates {
		t.Run(path, func(t *testing.T) {
			// Stale version in the body: 409, current object, ETag header.
			resp := must(t, env, 409, "PATCH", base+path, with(body, "version", "123"))
			if resp.Header.Get("ETag") != "1" || resp.Object(t)["version"] != "1" {
				t.Fatalf("409: ETag %q body %s", resp.Header.Get("ETag"), resp.Body)
			}
			// Stale If-Match: 412, even with a right body version.
			resp = must(t, env, 412, "PATCH", base+path, with(body, "version", "1"), "If-Match", "123")
			if resp.Header.Get("ETag") != "1" {
				t.Fatalf("412: ETag %q", resp.Header.Get("ETag"))
			}
			// Right If-Match overrides a wrong body version; numbers work.
			resp = must(t, env, 200, "PATCH", base+path, with(body, "version", "999"), "If-Match", `"1"`)
			if resp.Object(t)["version"] != "2" {
				t.Fatalf("200: %s", resp.Body)
			}
			must(t, env, 200, "PATCH", base+path, with(body, "version", 2))
		})
	}
	// CIRA and domain PATCH do not require a version, but a missing one
	// never matches.
	must(t, env, 409, "PATCH", base+"/ciraconfigs", map[string]any{"configName": "c1"})
	must(t, env, 409, "PATCH", base+"/domains", map[string]any{"profileName": "d1", "provisioningCertStorageFormat": "raw"})

	// Racing updates with the same version: exactly one wins.
	cur := must(t, env, 200, "GET", base+"/profiles/p1", nil).Object(t)["version"]
	const n = 8
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			statuses[i] = env.Do(t, "PATCH", base+"/profiles", with(ccmBody("p1"), "tags", []string{fmt.Sprint(i)}, "version", cur)).Status
		}(i)
	}
	wg.Wait()
	ok := 0
	for _, s := range statuses {
		switch s {
		case 200:
			ok++
		case 409:
		default:
			t.Fatalf("racing update: status %d", s)
		}
	}
	if ok != 1 {
		t.Fatalf("racing updates: %d succeeded, want 1 (%v)", ok, statuses)
	}
}

func TestTenantScoping(t *testing.T) {
	env := newJWTEnv(t)
	a, b := tokenFor(t, env, "tenantA"), tokenFor(t, env, "tenant/B")
	as := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

	must(t, env, 201, "POST", base+"/wirelessconfigs", wirelessBody("shared", "Tenant-A-Secret"), as(a)...)
	created := must(t, env, 201, "POST", base+"/profiles", with(ccmBody("p1"), "tenantId", "tenant/B",
		"wifiConfigs", []any{map[string]any{"priority": 1, "profileName": "shared"}}), as(a)...).Object(t)
	if created["tenantId"] != "tenantA" {
		t.Fatalf("client-supplied tenantId not overwritten: %v", created["tenantId"])
	}
	// B sees nothing of A's and can use the same names.
	must(t, env, 404, "GET", base+"/profiles/p1", nil, as(b)...)
	must(t, env, 404, "GET", base+"/wirelessconfigs/shared", nil, as(b)...)
	if l := must(t, env, 200, "GET", base+"/profiles", nil, as(b)...).JSON(t).([]any); len(l) != 0 {
		t.Fatalf("B lists A's profiles: %v", l)
	}
	// A's wireless config cannot be linked from B.
	resp := env.Do(t, "POST", base+"/profiles", with(ccmBody("p1"), "wifiConfigs", []any{map[string]any{"priority": 1, "profileName": "shared"}}), as(b)...)
	if errs := validationErrors(t, resp); !contains(errs, "wifiConfigs: wifi configs shared does not exists in db") {
		t.Fatalf("cross-tenant link: %v", errs)
	}
	must(t, env, 201, "POST", base+"/wirelessconfigs", wirelessBody("shared", "Tenant-B-Secret"), as(b)...)
	must(t, env, 201, "POST", base+"/profiles", ccmBody("p1"), as(b)...)
	must(t, env, 404, "DELETE", base+"/proxyconfigs/none", nil, as(b)...)
	// B deleting its objects leaves A's alone, secrets included.
	must(t, env, 204, "DELETE", base+"/profiles/p1", nil, as(b)...)
	must(t, env, 204, "DELETE", base+"/wirelessconfigs/shared", nil, as(b)...)
	must(t, env, 200, "GET", base+"/profiles/p1", nil, as(a)...)
	live := env.Tracked.Live("system/")
	if len(live) != 1 || !strings.HasPrefix(live[0], "tenants/t_tenantA/wirelessconfigs/") {
		t.Fatalf("secret keys after B's deletes: %v", live)
	}
	// Without a token: 401, nothing leaks.
	must(t, env, 401, "GET", base+"/profiles", nil)
}
