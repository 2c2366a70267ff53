package api_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
)

// testRoutes registers small routes exercising the foundation.
func testRoutes(s *api.Server) {
	s.HandleFunc("GET", "/api/v1/test/tenant", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, r, http.StatusOK, map[string]string{"tenant": api.Tenant(r.Context())})
	})
	s.HandleFunc("GET", "/api/v1/test/public", func(w http.ResponseWriter, r *http.Request) {
		api.WriteJSON(w, r, http.StatusOK, map[string]string{"ok": "yes"})
	}, api.Public())
	s.HandleFunc("POST", "/api/v1/test/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := api.DecodeBody(r)
		if err != nil {
			var e *api.Error
			errors.As(err, &e)
			api.WriteError(w, r, e)
			return
		}
		api.WriteJSON(w, r, http.StatusOK, map[string]int{"keys": len(body)})
	})
	s.HandleFunc("GET", "/api/v1/test/panic", func(w http.ResponseWriter, r *http.Request) {
		panic(errors.New("internal detail /var/lib/amtd/db"))
	})
	s.HandleFunc("GET", "/api/v1/test/stream", func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		_, ok := w.(http.Hijacker)
		fmt.Fprintf(w, "hijacker=%v", ok)
	})
}

func newEnv(t *testing.T, auth api.AuthConfig) *apitest.Env {
	return apitest.New(t, apitest.Options{Auth: auth, Register: testRoutes, Version: "9.9.9"})
}

func TestUnknownRoutesAre404(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Mode: api.AuthNone})
	for _, mp := range [][2]string{{"PUT", "/api/v1/test/tenant"}, {"DELETE", "/api/v1/test/echo"}, {"COPY", "/api/v1/test/tenant"}, {"GET", "/nope"}, {"OPTIONS", "/api/v1/test/tenant"}} {
		resp := env.Do(t, mp[0], mp[1], nil)
		if resp.Status != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", mp[0], mp[1], resp.Status)
		}
	}
	// HEAD is served by GET without a body.
	if resp := env.Do(t, "HEAD", "/api/v1/test/tenant", nil); resp.Status != 200 || len(resp.Body) != 0 {
		t.Errorf("HEAD: %d %q", resp.Status, resp.Body)
	}
}

func TestBodyLimits(t *testing.T) {
	env := apitest.New(t, apitest.Options{Auth: api.AuthConfig{Mode: api.AuthNone}, Register: testRoutes, MaxBodyBytes: 1024})
	big := `{"a":"` + strings.Repeat("x", 2000) + `"}`
	// Announced length over the limit: refused before the handler.
	resp := env.Do(t, "POST", "/api/v1/test/echo", big)
	if resp.Status != http.StatusRequestEntityTooLarge || !strings.Contains(string(resp.Body), "1024") {
		t.Fatalf("413 expected: %d %s", resp.Status, resp.Body)
	}
	// Chunked body (no Content-Length) over the limit: refused while reading.
	req, _ := http.NewRequest("POST", env.URL+"/api/v1/test/echo", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	r2, err := env.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked: %d, want 413", r2.StatusCode)
	}
	if resp := env.Do(t, "POST", "/api/v1/test/echo", `{"a":1}`); resp.Status != 200 {
		t.Fatalf("small body: %d %s", resp.Status, resp.Body)
	}
	if resp := env.Do(t, "POST", "/api/v1/test/echo", `{"a":`); resp.Status != 400 || !strings.Contains(string(resp.Body), "malformed JSON") {
		t.Fatalf("malformed: %d %s", resp.Status, resp.Body)
	}
	if api.MaxBodyBytes != 1<<20 {
		t.Fatalf("documented default limit changed: %d", api.MaxBodyBytes)
	}
}

func TestPanicRecovery(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Mode: api.AuthNone})
	resp := env.Do(t, "GET", "/api/v1/test/panic", nil)
	if resp.Status != http.StatusInternalServerError {
		t.Fatalf("status %d", resp.Status)
	}
	if strings.Contains(string(resp.Body), "/var/lib") || !strings.Contains(string(resp.Body), "Internal Server Error") {
		t.Fatalf("body leaks or is wrong: %s", resp.Body)
	}
	if !strings.Contains(env.Logs.String(), "panic in HTTP handler") {
		t.Fatal("panic not logged")
	}
	// The server keeps serving.
	if resp := env.Do(t, "GET", "/api/v1/test/tenant", nil); resp.Status != 200 {
		t.Fatalf("after panic: %d", resp.Status)
	}
}

func TestResponseWriterKeepsInterfaces(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Mode: api.AuthNone})
	resp := env.Do(t, "GET", "/api/v1/test/stream", nil)
	if string(resp.Body) != "hijacker=true" {
		t.Fatalf("got %q", resp.Body)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id")
	}
}

func TestRequestLogNeverHasBodiesOrAuthorization(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Username: "admin", Password: "Adm1n-Pa55word!"})
	resp := env.Do(t, "POST", "/api/v1/authorize", map[string]string{"username": "admin", "password": "Adm1n-Pa55word!"})
	if resp.Status != 200 {
		t.Fatalf("authorize: %d %s", resp.Status, resp.Body)
	}
	tok := resp.Object(t)["token"].(string)
	env.Do(t, "POST", "/api/v1/test/echo", `{"secretField":"Body-Secret-42"}`, "Authorization", "Bearer "+tok)
	env.Do(t, "POST", "/api/v1/authorize", map[string]string{"username": "admin", "password": "Wrong-Pa55word!"})
	logs := env.Logs.String()
	for _, s := range []string{"Adm1n-Pa55word!", "Wrong-Pa55word!", "Body-Secret-42", tok, "Bearer"} {
		if strings.Contains(logs, s) {
			t.Errorf("log contains %q", s)
		}
	}
	if !strings.Contains(logs, `"path":"/api/v1/test/echo"`) || !strings.Contains(logs, `"status":200`) {
		t.Errorf("request log line missing:\n%s", logs)
	}
}

func TestAuthNone(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Mode: api.AuthNone})
	if !strings.Contains(env.Logs.String(), "AUTHENTICATION IS DISABLED") {
		t.Fatal("no loud warning for auth=none")
	}
	if resp := env.Do(t, "GET", "/api/v1/test/tenant", nil); resp.Status != 200 || resp.Object(t)["tenant"] != "" {
		t.Fatalf("no token: %d %s", resp.Status, resp.Body)
	}
	// Garbage tokens are ignored, valid tokens still carry the tenant.
	if resp := env.Do(t, "GET", "/api/v1/test/tenant", nil, "Authorization", "Bearer {{token}}"); resp.Status != 200 {
		t.Fatalf("garbage token: %d", resp.Status)
	}
	tok, _ := env.Server.Auth().IssueToken("acme", api.AllDevices, time.Hour)
	if resp := env.Do(t, "GET", "/api/v1/test/tenant", nil, "Authorization", "Bearer "+tok); resp.Object(t)["tenant"] != "acme" {
		t.Fatalf("tenant from token: %s", resp.Body)
	}
	// Nothing to log in to: MPS's answer with authentication disabled.
	resp := env.Do(t, "POST", "/api/v1/authorize", map[string]string{"username": "a", "password": "b"})
	if resp.Status != http.StatusMethodNotAllowed || resp.Object(t)["message"] != "Authentication disabled on MPS" {
		t.Fatalf("authorize: %d %s", resp.Status, resp.Body)
	}
	if _, _, ok := env.Server.GeneratedCredentials(); ok {
		t.Fatal("auth=none generated a password")
	}
}

func TestHealthRoute(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Mode: api.AuthNone})
	status, rep := env.Server.Health(t.Context())
	if status != 200 || rep.DB.Name != "SQLITE" || rep.DB.Status != "OK" {
		t.Fatalf("health %d %+v", status, rep)
	}
	st, ok := rep.SecretStore.Status.(map[string]any)
	if !ok || st["initialized"] != true || st["sealed"] != false {
		t.Fatalf("secret store status %+v", rep.SecretStore)
	}
	env.Store.Close()
	status, rep = env.Server.Health(t.Context())
	if status != http.StatusServiceUnavailable || rep.DB.Status != "unknown error" {
		t.Fatalf("closed store: %d %+v", status, rep)
	}
}
