package mps_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/api/mps"
	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/devaccess/devaccesstest"
	"github.com/amtd-project/amtd/internal/store"
)

const testRootPEM = "-----BEGIN CERTIFICATE-----\nMIIBtest\n-----END CERTIFICATE-----\n"

type envOpts struct {
	cira *devaccesstest.CIRAServer
	// viaCIRA: lanSim connects its devices over CIRA and gives them no LAN
	// route, so every call goes through the CIRA connection.
	viaCIRA  bool
	noAccess bool
	rootCert func(context.Context) ([]byte, error)
	mps      func(*mps.Options)
}

type env struct {
	*apitest.Env
	access *devaccess.Access
	dialer *devaccesstest.Dialer
	cira   *devaccesstest.CIRAServer
	// viaCIRA: see envOpts.
	viaCIRA bool
	// redirections reported by the fake relay
	sessions map[string][3]bool
}

func (e *env) Sessions(guid string) (kvm, sol, ider bool) {
	s := e.sessions[guid]
	return s[0], s[1], s[2]
}

// newEnv starts the API with JWT authentication (a token of the default
// tenant is set), devaccess over the env's dialer, and optionally CIRA.
func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := &env{dialer: devaccesstest.NewDialer(), cira: o.cira, viaCIRA: o.viaCIRA, sessions: map[string][3]bool{}}
	e.Env = apitest.New(t, apitest.Options{
		Auth:    api.AuthConfig{Username: "admin", Password: "Adm1n-Pa55word!"},
		Version: "9.8.7",
		Register: func(s *api.Server) {
			opts := mps.Options{Redirections: e, PowerStateTimeout: 2 * time.Second}
			if !o.noAccess {
				ao := devaccess.Options{Store: s.Store(), Secrets: s.Secrets(), DialContext: e.dialer.DialContext}
				if o.cira != nil {
					ao.CIRA = o.cira.Server
				}
				a, err := devaccess.New(ao)
				if err != nil {
					t.Fatal(err)
				}
				e.access = a
				opts.Access = a
			}
			if o.cira != nil {
				opts.CIRA = o.cira.Server
			}
			opts.CIRARootCert = o.rootCert
			if opts.CIRARootCert == nil {
				opts.CIRARootCert = func(context.Context) ([]byte, error) { return []byte(testRootPEM), nil }
			}
			if o.mps != nil {
				o.mps(&opts)
			}
			mps.Register(s, opts)
		},
	})
	e.Token = tokenFor(t, e.Env, "")
	return e
}

func tokenFor(t *testing.T, e *apitest.Env, tenant string) string {
	t.Helper()
	tok, err := e.Server.Auth().IssueToken(tenant, api.AllDevices, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// lanSim starts an activated simulated device recorded for tenant with a
// LAN address the env's dialer maps to it, and its credentials stored.
func (e *env) lanSim(t *testing.T, so devaccesstest.SimOptions, tenant string) *devaccesstest.Sim {
	t.Helper()
	sim := devaccesstest.StartSim(t, so)
	host := "dev-" + sim.GUID[:8] + ".lan.test"
	if e.viaCIRA {
		// The record keeps its LAN name, but nothing answers there.
		e.cira.Allow(sim.GUID, "mpsuser", "Mps-Passw0rd1", tenant)
		e.cira.Connect(t, sim, "mpsuser", "Mps-Passw0rd1")
	} else {
		e.dialer.Add(host, sim)
	}
	if _, err := e.Store.PutDevice(context.Background(), &store.Device{GUID: sim.GUID, TenantID: tenant, Hostname: host,
		DeviceInfo: &store.DeviceInfo{IPAddress: host}, Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	sim.StoreCredentials(t, e.Secrets, so.TLSEnforced)
	return sim
}

// bothPaths runs a management test twice: with the device on the LAN, and
// with the same device reachable only over CIRA.
func bothPaths(t *testing.T, test func(*testing.T, envOpts)) {
	t.Run("lan", func(t *testing.T) { test(t, envOpts{}) })
	t.Run("cira", func(t *testing.T) { test(t, envOpts{cira: devaccesstest.StartCIRA(t, nil), viaCIRA: true}) })
}

func must(t *testing.T, e *env, status int, method, path string, body any, hdr ...string) *apitest.Response {
	t.Helper()
	resp := e.Do(t, method, path, body, hdr...)
	if resp.Status != status {
		t.Logf("server log:\n%s", lastLines(e.Logs.String(), 8))
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.Status, status, resp.Body)
	}
	return resp
}

// jsonPath follows keys (and [i] indexes) in a decoded JSON value.
func jsonPath(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

// errorsOf returns "location path: msg" of a validation answer.
func errorsOf(t *testing.T, resp *apitest.Response) []string {
	t.Helper()
	var body struct {
		Errors []struct {
			Msg, Path, Location string
		} `json:"errors"`
	}
	if err := json.Unmarshal(resp.Body, &body); err != nil || resp.Status != 400 {
		t.Fatalf("not a validation answer (%d): %s", resp.Status, resp.Body)
	}
	out := make([]string, len(body.Errors))
	for i, e := range body.Errors {
		out[i] = fmt.Sprintf("%s %s: %s", e.Location, e.Path, e.Msg)
	}
	return out
}

func wantErrors(t *testing.T, resp *apitest.Response, want ...string) {
	t.Helper()
	got := errorsOf(t, resp)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("validation errors\n got: %q\nwant: %q", got, want)
	}
}

// wantBody compares a JSON answer with a JSON text (key order ignored).
func wantBody(t *testing.T, resp *apitest.Response, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(resp.Body, &g); err != nil {
		t.Fatalf("answer is not JSON: %s", resp.Body)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Fatalf("body\n got: %s\nwant: %s", gb, wb)
	}
}

func notConnectedBody(guid string) string {
	return `{"error":"Device not found/connected. Please connect again using CIRA.","errorDescription":"guid : ` + guid + `"}`
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
