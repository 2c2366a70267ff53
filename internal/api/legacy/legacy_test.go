package legacy_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/api/legacy"
	"github.com/amtd-project/amtd/internal/store"
)

const base = legacy.Base

func newEnv(t *testing.T) *apitest.Env {
	t.Helper()
	env := apitest.New(t, apitest.Options{Auth: api.AuthConfig{Username: "admin", Password: "Adm1n-Pa55word!"},
		Register: legacy.Register})
	tok, err := env.Server.Auth().IssueToken("", api.AllDevices, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	env.Token = tok
	for _, tenant := range []string{"", "t2"} {
		if err := env.Store.CreateProfile(t.Context(), &store.Profile{TenantID: tenant, Name: "acm", Activation: "acmactivate", Tags: []string{}}); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func do(t *testing.T, env *apitest.Env, status int, method, path string, body any, hdr ...string) *apitest.Response {
	t.Helper()
	r := env.Do(t, method, path, body, hdr...)
	if r.Status != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	return r
}

func TestAllowListRoutes(t *testing.T) {
	env := newEnv(t)
	// One entry.
	r := do(t, env, 201, "POST", base+"/devices", map[string]string{"uuid": "939B524B13D41D18E4871C697A6B7A2B",
		"hostname": "pc-1", "domain": "Corp.Example.com", "profile": "acm"})
	var created []map[string]any
	if err := json.Unmarshal(r.Body, &created); err != nil || len(created) != 1 ||
		created[0]["uuid"] != "939b524b-13d4-1d18-e487-1c697a6b7a2b" || created[0]["domain"] != "corp.example.com" {
		t.Fatalf("created %s", r.Body)
	}
	// Several, all or nothing.
	r = do(t, env, 400, "POST", base+"/devices", map[string]any{"devices": []map[string]string{
		{"uuid": "d2ffc23e-9dd1-412d-860a-54b2039b72ff", "profile": "acm"},
		{"uuid": "bad", "profile": "nope"},
	}})
	var bad struct {
		Errors []struct {
			Line    int    `json:"line"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.Body, &bad); err != nil || len(bad.Errors) != 1 || bad.Errors[0].Line != 2 || bad.Errors[0].Field != "uuid" {
		t.Fatalf("errors %s", r.Body)
	}
	r = do(t, env, 200, "GET", base+"/devices?$count=true", nil)
	var list struct {
		Data       []map[string]any `json:"data"`
		TotalCount int              `json:"totalCount"`
	}
	if err := json.Unmarshal(r.Body, &list); err != nil || list.TotalCount != 1 || len(list.Data) != 1 {
		t.Fatalf("list %s", r.Body)
	}

	// CSV import: a bad file stores nothing and reports each line.
	csv := "uuid,hostname,domain,profile\n" +
		"d2ffc23e-9dd1-412d-860a-54b2039b72ff,pc-2,corp.example.com,acm\n" +
		"11111111-2222-3333-4444-555555555555,pc 3,corp.example.com,acm\n" +
		"22222222-2222-3333-4444-555555555555,pc-4,corp.example.com,missing\n"
	r = do(t, env, 400, "POST", base+"/devices/import", csv, "Content-Type", "text/csv")
	if err := json.Unmarshal(r.Body, &bad); err != nil || len(bad.Errors) != 1 || bad.Errors[0].Line != 3 || bad.Errors[0].Field != "hostname" {
		t.Fatalf("csv errors %s", r.Body)
	}
	csv = strings.Replace(csv, "pc 3", "pc-3", 1)
	r = do(t, env, 400, "POST", base+"/devices/import", csv, "Content-Type", "text/csv")
	if err := json.Unmarshal(r.Body, &bad); err != nil || len(bad.Errors) != 1 || bad.Errors[0].Line != 4 || bad.Errors[0].Field != "profile" {
		t.Fatalf("csv errors %s", r.Body)
	}
	if n, _ := env.Store.CountLegacyDevices(t.Context(), ""); n != 1 {
		t.Fatalf("%d entries after failed imports", n)
	}
	csv = strings.Replace(csv, ",missing", ",", 1)
	r = do(t, env, 201, "POST", base+"/devices/import?defaultProfile=acm", csv, "Content-Type", "text/csv")
	if n, _ := env.Store.CountLegacyDevices(t.Context(), ""); n != 4 {
		t.Fatalf("%d entries after the import: %s", n, r.Body)
	}
	// JSON-wrapped CSV.
	do(t, env, 201, "POST", base+"/devices/import", map[string]string{"csv": "33333333-2222-3333-4444-555555555555,,,acm\n"})

	r = do(t, env, 200, "GET", base+"/devices/D2FFC23E-9DD1-412D-860A-54B2039B72FF", nil)
	if !strings.Contains(string(r.Body), `"hostname":"pc-2"`) {
		t.Fatalf("get %s", r.Body)
	}
	do(t, env, 204, "DELETE", base+"/devices/d2ffc23e9dd1412d860a54b2039b72ff", nil)
	do(t, env, 404, "GET", base+"/devices/d2ffc23e-9dd1-412d-860a-54b2039b72ff", nil)
	do(t, env, 400, "GET", base+"/devices/not-a-uuid", nil)

	// Tenants: another tenant sees nothing and cannot take a UUID.
	tok2, err := env.Server.Auth().IssueToken("t2", api.AllDevices, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth2 := []string{"Authorization", "Bearer " + tok2}
	if r := do(t, env, 200, "GET", base+"/devices", nil, auth2...); string(r.Body) != "[]" {
		t.Fatalf("t2 list %s", r.Body)
	}
	do(t, env, 404, "GET", base+"/devices/939b524b-13d4-1d18-e487-1c697a6b7a2b", nil, auth2...)
	do(t, env, 409, "POST", base+"/devices", map[string]string{"uuid": "939b524b-13d4-1d18-e487-1c697a6b7a2b", "profile": "acm"}, auth2...)

	// Authentication is required.
	env.Token = ""
	do(t, env, 401, "GET", base+"/devices", nil)
}

func TestHelloAndPSKRoutes(t *testing.T) {
	env := newEnv(t)
	ctx := t.Context()
	for i, out := range []string{"unknown-uuid", "provisioned"} {
		if err := env.Store.AppendHelloEvent(ctx, &store.HelloEvent{GUID: "939b524b-13d4-1d18-e487-1c697a6b7a2b",
			SourceIP: "192.0.2.10", Version: 3, RetryCount: int64(i), Outcome: out,
			Hashes: []store.HelloHash{{Type: 2, Hash: strings.Repeat("ab", 32)}}}, 0); err != nil {
			t.Fatal(err)
		}
	}
	r := do(t, env, 200, "GET", base+"/hellos?uuid=939B524B13D41D18E4871C697A6B7A2B&$top=1", nil)
	var hellos []map[string]any
	if err := json.Unmarshal(r.Body, &hellos); err != nil || len(hellos) != 1 || hellos[0]["outcome"] != "provisioned" ||
		hellos[0]["ip"] != "192.0.2.10" || len(hellos[0]["hashes"].([]any)) != 1 {
		t.Fatalf("hellos %s", r.Body)
	}
	do(t, env, 400, "GET", base+"/hellos?$top=5000", nil)

	r = do(t, env, 201, "POST", base+"/psk", map[string]any{"count": 3})
	var pairs []map[string]any
	if err := json.Unmarshal(r.Body, &pairs); err != nil || len(pairs) != 3 {
		t.Fatalf("generated %s", r.Body)
	}
	if strings.Contains(strings.ToLower(string(r.Body)), "pps") {
		t.Fatalf("answer mentions a PPS: %s", r.Body)
	}
	r = do(t, env, 200, "GET", base+"/psk?available=true&$count=true", nil)
	if !strings.Contains(string(r.Body), `"totalCount":3`) || strings.Contains(strings.ToLower(string(r.Body)), "pps") {
		t.Fatalf("list %s", r.Body)
	}
	pid := pairs[0]["pid"].(string)
	do(t, env, 204, "DELETE", base+"/psk/"+pid, nil)
	do(t, env, 404, "DELETE", base+"/psk/"+pid, nil)
	do(t, env, 400, "POST", base+"/psk", map[string]any{"count": 0})
	do(t, env, 400, "POST", base+"/psk", map[string]any{"count": 1.5})
	// Only the remaining two pairs' sealed entries are left.
	if live := env.Tracked.Live("system/", "jwt"); len(live) != 2 {
		t.Fatalf("sealed entries %v", live)
	}
}
