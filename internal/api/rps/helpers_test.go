package rps_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/api/rps"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

const base = "/api/v1/admin"

func register(s *api.Server) {
	rps.Register(s, rps.Options{EnterpriseAssistantURL: "http://ea.example:8000"})
}

// newEnv starts a server with authentication disabled (tenant "").
func newEnv(t *testing.T) *apitest.Env {
	t.Helper()
	return apitest.New(t, apitest.Options{Auth: api.AuthConfig{Mode: api.AuthNone}, Version: "1.2.3", Register: register})
}

// newJWTEnv starts a server that requires tokens.
func newJWTEnv(t *testing.T) *apitest.Env {
	t.Helper()
	return apitest.New(t, apitest.Options{Auth: api.AuthConfig{Username: "admin", Password: "Adm1n-Pa55word!"}, Register: register})
}

func tokenFor(t *testing.T, env *apitest.Env, tenant string) string {
	t.Helper()
	tok, err := env.Server.Auth().IssueToken(tenant, api.AllDevices, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func expect(t *testing.T, resp *apitest.Response, status int) {
	t.Helper()
	if resp.Status != status {
		t.Fatalf("status %d, want %d: %s", resp.Status, status, resp.Body)
	}
}

// must sends a request and checks the status.
func must(t *testing.T, env *apitest.Env, status int, method, path string, body any, hdr ...string) *apitest.Response {
	t.Helper()
	resp := env.Do(t, method, path, body, hdr...)
	expect(t, resp, status)
	return resp
}

// validationErrors returns "path: msg" of a 400 validation answer.
func validationErrors(t *testing.T, resp *apitest.Response) []string {
	t.Helper()
	if resp.Status != 400 {
		t.Fatalf("status %d, want 400: %s", resp.Status, resp.Body)
	}
	var body struct {
		Errors []map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil || body.Errors == nil {
		t.Fatalf("not a validation answer: %s", resp.Body)
	}
	var out []string
	for _, e := range body.Errors {
		if e["type"] != "field" {
			t.Errorf("error type %v", e["type"])
		}
		out = append(out, fmt.Sprintf("%s: %s", e["path"], e["msg"]))
	}
	return out
}

func errorBody(t *testing.T, resp *apitest.Response) (string, string) {
	t.Helper()
	var b struct{ Error, Message string }
	if err := json.Unmarshal(resp.Body, &b); err != nil {
		t.Fatalf("%s", resp.Body)
	}
	return b.Error, b.Message
}

// pfx returns a base64 PFX whose leaf CN is cn.
func pfx(cn, password string, opts ...func(*testpki.ChainOptions)) string {
	o := testpki.ChainOptions{LeafCN: cn, AMTOU: true}
	for _, f := range opts {
		f(&o)
	}
	return base64.StdEncoding.EncodeToString(testpki.NewChain(o).PFX(password, false))
}

// Fixtures.

func ciraBody(name string) map[string]any {
	return map[string]any{"configName": name, "mpsServerAddress": "192.168.8.50", "mpsPort": 4433, "username": "admin",
		"commonName": "192.168.8.50", "serverAddressFormat": 3, "authMethod": 2, "mpsRootCertificate": "rootcert", "proxyDetails": ""}
}

func wirelessBody(name, passphrase string) map[string]any {
	return map[string]any{"profileName": name, "authenticationMethod": 6, "encryptionMethod": 4, "ssid": "home",
		"pskPassphrase": passphrase, "linkPolicy": []int{14, 16}}
}

func proxyBody(name, addr string) map[string]any {
	return map[string]any{"name": name, "address": addr, "port": 900, "networkDnsSuffix": "intel.com"}
}

func ccmBody(name string) map[string]any {
	return map[string]any{"profileName": name, "activation": "ccmactivate", "tags": []string{"tag1"}, "dhcpEnabled": true,
		"generateRandomPassword": true, "generateRandomMEBxPassword": true}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == deleteKey {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

type deleteMarker struct{}

var deleteKey = deleteMarker{}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func join(l []string) string { return strings.Join(l, "\n") }
