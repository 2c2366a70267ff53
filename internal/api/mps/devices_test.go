package mps_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/secrets"
)

const (
	g1 = "143e4567-e89b-12d3-a456-426614174000"
	g2 = "d12428be-9fa1-4226-9784-54b2038beab6"
	g3 = "d12428be-9fa1-4226-9784-54b2038beab7"
)

func TestDeviceCreateShapes(t *testing.T) {
	e := newEnv(t, envOpts{})
	resp := must(t, e, 201, "POST", "/api/v1/devices", map[string]any{
		"guid": strings.ToUpper(g1), "hostname": "hostname", "friendlyName": "friendlyName", "tags": []string{},
		"mpsusername": "admin", "dnsSuffix": "test.com",
		"deviceInfo": map[string]any{"fwVersion": "16.1.25", "fwBuild": "2128", "fwSku": "16392", "currentMode": "0",
			"features": "AMT Pro Corporate ", "ipAddress": "", "unknownKey": 1},
	})
	// Key order is part of the shape.
	want := `{"guid":"` + g1 + `","hostname":"hostname","tags":[],"mpsInstance":null,"connectionStatus":false,` +
		`"mpsusername":"admin","tenantId":"","friendlyName":"friendlyName","dnsSuffix":"test.com",` +
		`"lastConnected":null,"lastSeen":null,"lastDisconnected":null,` +
		`"deviceInfo":{"fwVersion":"16.1.25","fwBuild":"2128","fwSku":"16392","currentMode":"0","features":"AMT Pro Corporate ","ipAddress":""}}`
	if string(resp.Body) != want {
		t.Fatalf("created device\n got: %s\nwant: %s", resp.Body, want)
	}
	// Upsert: the same GUID again merges and answers 200.
	resp = must(t, e, 200, "POST", "/api/v1/devices", map[string]any{"guid": g1, "hostname": "DESKTOP-2T73VQK", "tags": []string{"acm"}})
	obj := resp.Object(t)
	if obj["hostname"] != "DESKTOP-2T73VQK" || obj["friendlyName"] != "friendlyName" || jsonPath(obj, "tags", 0) != "acm" ||
		jsonPath(obj, "deviceInfo", "fwVersion") != "16.1.25" {
		t.Fatalf("merged device: %s", resp.Body)
	}
	// A new device without optional fields shows them as null (MPS inserts nulls).
	resp = must(t, e, 201, "POST", "/api/v1/devices", map[string]any{"guid": g2})
	wantBody(t, resp, `{"guid":"`+g2+`","hostname":null,"tags":[],"mpsInstance":null,"connectionStatus":false,"mpsusername":null,"tenantId":"","friendlyName":null,"dnsSuffix":null,"lastConnected":null,"lastSeen":null,"lastDisconnected":null,"deviceInfo":null}`)
	// GET answers the stored record.
	resp = must(t, e, 200, "GET", "/api/v1/devices/"+g1, nil)
	if jsonPath(resp.JSON(t), "hostname") != "DESKTOP-2T73VQK" {
		t.Fatalf("get: %s", resp.Body)
	}
}

func TestDeviceValidation(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, c := range []struct {
		body map[string]any
		want []string
	}{
		{map[string]any{"guid": "143e4567-e89b-12d3-a456-426614174"}, []string{"body guid: Invalid value"}},
		{map[string]any{"guid": []any{}}, []string{"body guid: Invalid value"}},
		{map[string]any{}, []string{"body guid: Invalid value", "body guid: Invalid value"}}, // isUUID, isString
		{map[string]any{"guid": g1, "tags": "test"}, []string{"body tags: tags should be an array of strings"}},
		{map[string]any{"guid": g1, "tags": []any{"a", 1}}, []string{"body tags[1]: tags should be an array of strings"}},
		{map[string]any{"guid": g1, "hostname": strings.Repeat("h", 256)}, []string{"body hostname: Hostname must be less than 256 characters"}},
		{map[string]any{"guid": g1, "hostname": 5}, []string{"body hostname: Invalid value"}},
		{map[string]any{"guid": g1, "dnsSuffix": "None?injected_query_string=123"}, []string{"body dnsSuffix: dnsSuffix must be a valid DNS suffix"}},
		{map[string]any{"guid": g1, "dnsSuffix": strings.Repeat("a", 256)}, []string{"body dnsSuffix: dnsSuffix must be less than 256 characters"}},
		{map[string]any{"guid": g1, "dnsSuffix": map[string]any{}}, []string{"body dnsSuffix: dnsSuffix must be a string"}},
		{map[string]any{"guid": g1, "deviceInfo": "not an object"}, []string{"body deviceInfo: deviceInfo should be an object if provided"}},
		{map[string]any{"guid": g1, "deviceInfo": []any{}}, []string{"body deviceInfo: deviceInfo should be an object if provided"}},
		{map[string]any{"guid": g1, "connect": "yesterday"}, []string{"body connect: Invalid value"}},
	} {
		resp := e.Do(t, "POST", "/api/v1/devices", c.body)
		wantErrors(t, resp, c.want...)
	}
	// accepted forms
	for _, s := range []any{"", nil, "os.suffix.com.", "localdomain", "os.suffix.com"} {
		resp := e.Do(t, "POST", "/api/v1/devices", map[string]any{"guid": g1, "dnsSuffix": s, "connect": "2026-01-02T03:04:05Z"})
		if resp.Status != 201 && resp.Status != 200 {
			t.Fatalf("dnsSuffix %v: %d %s", s, resp.Status, resp.Body)
		}
		if got := jsonPath(resp.JSON(t), "dnsSuffix"); got != s {
			t.Fatalf("dnsSuffix %v echoed as %v", s, got)
		}
	}
	// malformed JSON
	resp := e.Do(t, "POST", "/api/v1/devices", `{"guid":`)
	wantBody(t, resp, `{"error":"Incorrect URI or Bad Request"}`)
	// path and query validation
	wantErrors(t, e.Do(t, "GET", "/api/v1/devices/143e4567-e89b-12d3-a456-426614174", nil), "params guid: Invalid value")
	wantErrors(t, e.Do(t, "DELETE", "/api/v1/devices/"+g1+"?isSecretToBeDeleted=t", nil), "query isSecretToBeDeleted: Invalid value")
	wantErrors(t, e.Do(t, "GET", "/api/v1/devices?$top=-1&$skip=x&$count=maybe&status=2&method=XOR", nil),
		"query $top: The number of items to return should be a positive integer",
		"query $skip: The number of items to skip before starting to collect the result set should be a positive integer",
		"query $count: To return total number of records in result set should be boolean",
		"query status: Invalid value",
		"query method: Invalid value")
}

func TestDeviceListFiltersAndStats(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, d := range []map[string]any{
		{"guid": g1, "hostname": "alpha", "friendlyName": "A", "tags": []string{"acm", "lab"}},
		{"guid": g2, "hostname": "beta", "friendlyName": "B", "tags": []string{"ccm"}},
		{"guid": g3, "hostname": "alpha", "tags": []string{"lab"}},
	} {
		must(t, e, 201, "POST", "/api/v1/devices", d)
	}
	guids := func(resp any) string {
		var out []string
		for _, d := range resp.([]any) {
			out = append(out, d.(map[string]any)["guid"].(string)[:4])
			if _, has := d.(map[string]any)["lastSeen"]; has {
				t.Fatal("list rows carry lastSeen")
			}
		}
		return strings.Join(out, ",")
	}
	for q, want := range map[string]string{
		"":                                   "143e,d124,d124",
		"?hostname=alpha":                    "143e,d124",
		"?friendlyName=B":                    "d124",
		"?tags=lab":                          "143e,d124",
		"?tags=acm,ccm":                      "143e,d124",
		"?tags=acm,lab&method=AND":           "143e",
		"?status=1":                          "",
		"?status=0&$top=1&$skip=1":           "d124",
		"?$top=0":                            "",
		"?hostname=alpha&friendlyName=B":     "143e,d124", // hostname wins
		"?tags=nothing":                      "",
		"?$top=2&$skip=0&$count=false":       "143e,d124",
		"?$top=10&$skip=0&$count=0&tags=ccm": "d124",
	} {
		resp := must(t, e, 200, "GET", "/api/v1/devices"+q, nil)
		if got := guids(resp.JSON(t)); got != want {
			t.Errorf("GET devices%s = %s, want %s", q, got, want)
		}
	}
	resp := must(t, e, 200, "GET", "/api/v1/devices?$top=1&$skip=0&$count=true", nil)
	if jsonPath(resp.JSON(t), "totalCount") != float64(3) || len(jsonPath(resp.JSON(t), "data").([]any)) != 1 {
		t.Fatalf("count: %s", resp.Body)
	}
	wantBody(t, must(t, e, 200, "GET", "/api/v1/devices/stats", nil), `{"totalCount":3,"connectedCount":0,"disconnectedCount":3}`)
	wantBody(t, must(t, e, 200, "GET", "/api/v1/devices/tags", nil), `["acm","ccm","lab"]`)
	// Another tenant sees nothing.
	e.Token = tokenFor(t, e.Env, "other")
	wantBody(t, must(t, e, 200, "GET", "/api/v1/devices/stats", nil), `{"totalCount":0,"connectedCount":0,"disconnectedCount":0}`)
	wantBody(t, must(t, e, 200, "GET", "/api/v1/devices", nil), `[]`)
	wantBody(t, must(t, e, 200, "GET", "/api/v1/devices/tags", nil), `[]`)
}

func TestDeviceTenantsUpdateDelete(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	must(t, e, 201, "POST", "/api/v1/devices", map[string]any{"guid": g1, "hostname": "h"})
	// ?tenantId= of another tenant: 204; absent: 404.
	must(t, e, 204, "GET", "/api/v1/devices/"+g1+"?tenantId=123", nil)
	must(t, e, 404, "GET", "/api/v1/devices/"+g2, nil)
	// A token of another tenant: 204 too, and PATCH/DELETE do not find it.
	defTok := e.Token
	e.Token = tokenFor(t, e.Env, "t2")
	must(t, e, 204, "GET", "/api/v1/devices/"+g1, nil)
	wantBody(t, must(t, e, 404, "PATCH", "/api/v1/devices", map[string]any{"guid": g1, "hostname": "x"}),
		`{"error":"NOT FOUND","message":"Device ID `+g1+` not found"}`)
	must(t, e, 404, "DELETE", "/api/v1/devices/"+g1, nil)
	// Creating the same GUID in another tenant is refused, not merged.
	must(t, e, 400, "POST", "/api/v1/devices", map[string]any{"guid": g1})
	// t2 creates its own device.
	resp := must(t, e, 201, "POST", "/api/v1/devices", map[string]any{"guid": g2})
	if jsonPath(resp.JSON(t), "tenantId") != "t2" {
		t.Fatalf("tenant of created device: %s", resp.Body)
	}
	e.Token = defTok

	// PATCH merges; null shows as null in that answer.
	resp = must(t, e, 200, "PATCH", "/api/v1/devices", map[string]any{"guid": g1, "dnsSuffix": nil, "friendlyName": "F", "tags": []string{"acm"}})
	if o := resp.Object(t); o["dnsSuffix"] != nil || o["friendlyName"] != "F" || o["hostname"] != "h" {
		t.Fatalf("patched: %s", resp.Body)
	}
	wantBody(t, must(t, e, 404, "PATCH", "/api/v1/devices", map[string]any{"guid": g3}),
		`{"error":"NOT FOUND","message":"Device ID `+g3+` not found"}`)

	// DELETE keeps the secrets unless asked.
	if err := devcreds.Set(ctx, e.Secrets, g1, devcreds.AMT, "Secret-Passw0rd"); err != nil {
		t.Fatal(err)
	}
	must(t, e, 204, "DELETE", "/api/v1/devices/"+g1+"?isSecretToBeDeleted=false", nil)
	if c, err := devcreds.Load(ctx, e.Secrets, g1); err != nil || c.Current(devcreds.AMT) == "" {
		t.Fatalf("secrets deleted without isSecretToBeDeleted: %v %v", c, err)
	}
	wantBody(t, must(t, e, 404, "DELETE", "/api/v1/devices/"+g1, nil), `{"error":"NOT FOUND","message":"Device ID `+g1+` not found"}`)
	must(t, e, 201, "POST", "/api/v1/devices", map[string]any{"guid": g1})
	must(t, e, 204, "DELETE", "/api/v1/devices/"+g1+"?isSecretToBeDeleted=true", nil)
	if _, err := e.Secrets.Get(ctx, devcreds.Key(g1)); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("secrets kept with isSecretToBeDeleted=true: %v", err)
	}
	// Secrets never appear in answers.
	for _, p := range []string{"/api/v1/devices", "/api/v1/devices/" + g2} {
		if strings.Contains(string(e.Do(t, "GET", p, nil).Body), "Secret-Passw0rd") {
			t.Fatal("secret in an answer")
		}
	}
}

func TestServiceRoutes(t *testing.T) {
	e := newEnv(t, envOpts{})
	// public routes need no token
	e.Token = ""
	resp := must(t, e, 200, "GET", "/api/v1/ciracert", nil)
	if string(resp.Body) != testRootPEM || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("ciracert: %q %s", resp.Body, resp.Header.Get("Content-Type"))
	}
	must(t, e, 200, "GET", "/mps/api/v1/ciracert", nil)
	wantBody(t, must(t, e, 200, "GET", "/api/v1/version", nil), `{"serviceVersion":"9.8.7"}`)
	resp = must(t, e, 200, "GET", "/api/v1/health", nil)
	if jsonPath(resp.JSON(t), "db", "status") != "OK" || jsonPath(resp.JSON(t), "secretStore", "status", "initialized") != true {
		t.Fatalf("health: %s", resp.Body)
	}
	// everything else does
	must(t, e, 401, "GET", "/api/v1/devices", nil)

	noCert := newEnv(t, envOpts{rootCert: func(context.Context) ([]byte, error) { return nil, errors.New("no CA") }})
	wantBody(t, must(t, noCert, 500, "GET", "/api/v1/ciracert", nil),
		`{"error":"Internal Server Error","errorDescription":"MPS root certificate does not exist"}`)
}

func TestRedirectionToken(t *testing.T) {
	e := newEnv(t, envOpts{})
	wantErrors(t, e.Do(t, "GET", "/api/v1/authorize/redirection/1", nil), "params guid: Invalid value")
	resp := must(t, e, 404, "GET", "/api/v1/authorize/redirection/"+g1, nil)
	if len(resp.Body) != 0 {
		t.Fatalf("404 body: %q", resp.Body)
	}
	must(t, e, 201, "POST", "/api/v1/devices", map[string]any{"guid": g1})
	resp = must(t, e, 200, "GET", "/api/v1/authorize/redirection/"+strings.ToUpper(g1), nil)
	tok, _ := jsonPath(resp.JSON(t), "token").(string)
	c, err := e.Server.Auth().Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.DeviceID != g1 || c.TenantID != "" {
		t.Fatalf("claims %+v", c)
	}
	if left := time.Until(c.ExpiresAt.Time); left > 5*time.Minute || left < 4*time.Minute {
		t.Fatalf("relay token lifetime %v", left)
	}
	// A relay token is not an API token.
	old := e.Token
	e.Token = tok
	must(t, e, 401, "GET", "/api/v1/devices", nil)
	// Another tenant does not see the device.
	e.Token = tokenFor(t, e.Env, "t2")
	must(t, e, 404, "GET", "/api/v1/authorize/redirection/"+g1, nil)
	e.Token = old
	_ = api.AllDevices
}

func TestNotConnectedAndValidationOrder(t *testing.T) {
	e := newEnv(t, envOpts{})
	// A recorded device without credentials or address is not reachable.
	must(t, e, 201, "POST", "/api/v1/devices", map[string]any{"guid": g2, "hostname": "hostname"})
	for _, c := range []struct{ method, path string }{
		{"GET", "/api/v1/amt/generalSettings/1"},
		{"GET", "/api/v1/amt/power/state/" + g2},
		{"GET", "/api/v1/amt/power/capabilities/test-guid-123"},
		{"POST", "/api/v1/amt/power/action/" + g2},
		{"GET", "/api/v1/amt/features/1"},
		{"GET", "/api/v1/amt/log/audit/1?startIndex=0"},
		{"GET", "/api/v1/amt/log/event/1"},
		{"GET", "/api/v1/amt/userConsentCode/cancel/1"},
		{"DELETE", "/api/v1/amt/certificates/1/handle"},
		{"GET", "/api/v1/amt/networkSettings/wireless/profileSync/x"},
		{"DELETE", "/api/v1/amt/deactivate/1"},
		{"GET", "/api/v1/devices/redirectstatus/" + g2},
		{"DELETE", "/api/v1/devices/disconnect/" + g2},
		{"GET", "/mps/api/v1/AMT/Power/BootSources/1"},
	} {
		var body any
		if c.method == "POST" {
			body = map[string]any{"action": 8}
		}
		resp := must(t, e, 404, c.method, c.path, body)
		guid := c.path[strings.LastIndex(c.path, "/")+1:]
		if i := strings.Index(guid, "?"); i >= 0 {
			guid = guid[:i]
		}
		if strings.Contains(c.path, "certificates") {
			guid = "1"
		}
		wantBody(t, resp, notConnectedBody(guid))
	}
	must(t, e, 404, "DELETE", "/api/v1/devices/refresh/"+g2, nil)
	// Routes that validate before looking for the device.
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/power/action/1", map[string]any{"action": 9}), "body action: Invalid value")
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/power/bootOptions/1", map[string]any{"action": 2, "useSOL": "no"}),
		"body action: Invalid value", "body useSOL: Invalid value")
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/features/1", map[string]any{"userConsent": "KVM", "enableSOL": true, "enableIDER": 1, "enableKVM": "yes"}),
		"body userConsent: Invalid value", "body enableKVM: Invalid value")
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/certificates/1", map[string]any{"cert": "", "isTrusted": true}),
		"body cert: Certificate is required", "body cert: Invalid certificate format (not valid DER or PEM)")
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/certificates/1", map[string]any{"cert": "dummy", "isTrusted": "notbool"}),
		"body cert: Invalid certificate format (not valid DER or PEM)", "body isTrusted: isTrusted must be a boolean value")
	wantErrors(t, e.Do(t, "DELETE", "/api/v1/amt/certificates/1", map[string]any{}),
		"params instanceId: At least one of instanceId or handle must be provided")
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/network/linkPreference/x", map[string]any{"linkPreference": 3, "timeout": -1}),
		"body linkPreference: linkPreference must be 1 (ME) or 2 (HOST)", "body timeout: timeout must be a non-negative integer")
	wantErrors(t, e.Do(t, "PATCH", "/api/v1/amt/networkSettings/wired/x", map[string]any{"ipAddress": "1.2.3"}),
		"body dhcpEnabled: dhcpEnabled must be a boolean", "body ipAddress: ipAddress must be a valid IPv4 address")
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/networkSettings/wireless/state/x", map[string]any{"state": "on"}),
		"body state: state must be one of WifiDisabled, WifiEnabledS0, WifiEnabledS0SxAC")
	wantErrors(t, e.Do(t, "GET", "/api/v1/amt/log/audit/1?startIndex=-1", nil), "query startIndex: Invalid value")
	wantErrors(t, e.Do(t, "POST", "/api/v1/amt/userConsentCode/1", map[string]any{"consentCode": "abc"}), "body consentCode: Invalid value")

	// Without any device access configured, devices are never reachable.
	none := newEnv(t, envOpts{noAccess: true})
	wantBody(t, must(t, none, 404, "GET", "/api/v1/amt/version/"+g1, nil), notConnectedBody(g1))
	_ = http.MethodGet
}
