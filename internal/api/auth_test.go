package api_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
)

func login(t *testing.T, env *apitest.Env, user, pw string) *apitest.Response {
	t.Helper()
	return env.Do(t, "POST", "/api/v1/authorize", map[string]string{"username": user, "password": pw})
}

func TestAuthorizeValidation(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Username: "standalone", Password: "G@ppm0ym"})
	tests := []struct {
		body     any
		wantMsgs []string
	}{
		// MPS checks isString (default message) before not-empty.
		{map[string]string{}, []string{"Invalid value", "User name is required", "Password is required"}},
		{map[string]string{"username": "standalone"}, []string{"Password is required"}},
		{map[string]string{"password": "x"}, []string{"Invalid value", "User name is required"}},
		{map[string]any{"username": 5, "password": "x"}, []string{"Invalid value"}},
		{map[string]string{"username": "", "password": ""}, []string{"User name is required", "Password is required"}},
	}
	for _, tc := range tests {
		resp := env.Do(t, "POST", "/api/v1/authorize", tc.body)
		if resp.Status != 400 {
			t.Fatalf("%v: %d", tc.body, resp.Status)
		}
		errs := resp.Object(t)["errors"].([]any)
		if len(errs) != len(tc.wantMsgs) {
			t.Fatalf("%v: %s", tc.body, resp.Body)
		}
		for i, m := range tc.wantMsgs {
			e := errs[i].(map[string]any)
			if e["msg"] != m || e["location"] != "body" || e["type"] != "field" {
				t.Errorf("%v: error %d = %v, want %q", tc.body, i, e, m)
			}
		}
	}
	if resp := env.Do(t, "POST", "/api/v1/authorize", `{"username":`); resp.Status != 400 {
		t.Fatalf("malformed JSON: %d", resp.Status)
	}
}

func TestAuthorizeAndBearerTokens(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Username: "standalone", Password: "G@ppm0ym", Issuer: "iss-test", TokenLifetime: 30 * time.Minute})

	// Wrong password, wrong user: MPS's 401.
	for _, c := range [][2]string{{"standalone", "wrong"}, {"other", "G@ppm0ym"}, {"standalone", "g@ppm0ym"}} {
		resp := login(t, env, c[0], c[1])
		if resp.Status != 401 || resp.Object(t)["message"] != "Incorrect Username and/or Password!" {
			t.Fatalf("%v: %d %s", c, resp.Status, resp.Body)
		}
	}
	// The user name is case-insensitive (MPS), the password is not.
	resp := login(t, env, "StandAlone", "G@ppm0ym")
	if resp.Status != 200 {
		t.Fatalf("login: %d %s", resp.Status, resp.Body)
	}
	tok := resp.Object(t)["token"].(string)
	claims := decodeClaims(t, tok)
	if claims["iss"] != "iss-test" || claims["deviceId"] != "*" || claims["tenantId"] != "" {
		t.Fatalf("claims %v", claims)
	}
	exp := int64(claims["exp"].(float64))
	if d := time.Until(time.Unix(exp, 0)); d < 29*time.Minute || d > 31*time.Minute {
		t.Fatalf("exp in %v, want 30m", d)
	}
	// The gateway path works too.
	if resp := env.Do(t, "POST", "/mps/login/api/v1/authorize", map[string]string{"username": "standalone", "password": "G@ppm0ym"}); resp.Status != 200 {
		t.Fatalf("gateway login: %d", resp.Status)
	}

	relay, _ := env.Server.Auth().IssueToken("", "123e4567-e89b-12d3-a456-426614174000", time.Minute)
	expired, _ := env.Server.Auth().IssueToken("", api.AllDevices, -time.Minute)
	other := newEnv(t, api.AuthConfig{Username: "standalone", Password: "G@ppm0ym", Issuer: "iss-test"})
	foreign, _ := other.Server.Auth().IssueToken("", api.AllDevices, time.Hour)
	tests := []struct {
		name, header string
		want         int
		reason       string
	}{
		{"no header", "", 401, "missing bearer token"},
		{"basic scheme", "Basic YWRtaW46YWRtaW4=", 401, "missing bearer token"},
		{"empty bearer", "Bearer ", 401, "missing bearer token"},
		{"garbage", "Bearer abc.def.ghi", 401, "invalid token"},
		{"relay token", "Bearer " + relay, 401, "not valid for API access"},
		{"expired", "Bearer " + expired, 401, "token expired"},
		{"other server's key", "Bearer " + foreign, 401, "invalid token"},
		{"alg none", "Bearer " + unsignedToken(), 401, "invalid token"},
		{"wrong issuer", "Bearer " + hs256Token(t, env, map[string]any{"tenantId": "", "iss": "kong", "deviceId": "*", "exp": time.Now().Add(time.Hour).Unix()}), 401, "invalid token"},
		{"no exp", "Bearer " + hs256Token(t, env, map[string]any{"tenantId": "", "iss": "iss-test", "deviceId": "*"}), 401, "invalid token"},
		{"good", "Bearer " + tok, 200, ""},
		{"lower-case scheme", "bearer " + tok, 200, ""},
	}
	for _, tc := range tests {
		var hdr []string
		if tc.header != "" {
			hdr = []string{"Authorization", tc.header}
		}
		resp := env.Do(t, "GET", "/api/v1/test/tenant", nil, hdr...)
		if resp.Status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.Status, resp.Body, tc.want)
			continue
		}
		if tc.want == 401 {
			if !strings.Contains(string(resp.Body), tc.reason) || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: body %s", tc.name, resp.Body)
			}
		}
	}
	// Public routes need no token.
	if resp := env.Do(t, "GET", "/api/v1/test/public", nil); resp.Status != 200 {
		t.Fatalf("public route: %d", resp.Status)
	}
}

func TestTenantFromToken(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Username: "admin", Password: "Adm1n-Pa55word!"})
	tok, err := env.Server.Auth().IssueToken("tenant-42", api.AllDevices, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resp := env.Do(t, "GET", "/api/v1/test/tenant", nil, "Authorization", "Bearer "+tok)
	if resp.Status != 200 || resp.Object(t)["tenant"] != "tenant-42" {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
}

func TestGeneratedAdminPassword(t *testing.T) {
	first := newEnv(t, api.AuthConfig{})
	user, pw, ok := first.Server.GeneratedCredentials()
	if !ok || user != "admin" || len(pw) < 20 {
		t.Fatalf("generated %q %q %v", user, pw, ok)
	}
	hash, err := first.Store.GetSetting(t.Context(), api.SettingAdminPasswordHash)
	if err != nil || !strings.HasPrefix(hash, "$argon2id$") || strings.Contains(hash, pw) {
		t.Fatalf("stored hash %q, %v", hash, err)
	}
	resp := login(t, first, "admin", pw)
	if resp.Status != 200 {
		t.Fatalf("login with generated password: %d", resp.Status)
	}
	tok := resp.Object(t)["token"].(string)
	if login(t, first, "admin", pw+"x").Status != 401 {
		t.Fatal("wrong password accepted")
	}

	// Restart on the same data folder (database and sealed secrets):
	// nothing is generated, the stored hash and the signing key are reused.
	first.HTTP.Close()
	first.Store.Close()
	second := apitest.New(t, apitest.Options{Dir: first.Dir, Register: testRoutes})
	if _, _, ok := second.Server.GeneratedCredentials(); ok {
		t.Fatal("a second start generated another password")
	}
	if login(t, second, "admin", pw).Status != 200 {
		t.Fatal("generated password not accepted after restart")
	}
	if resp := second.Do(t, "GET", "/api/v1/test/tenant", nil, "Authorization", "Bearer "+tok); resp.Status != 200 {
		t.Fatalf("token from before the restart: %d %s", resp.Status, resp.Body)
	}
	if strings.Contains(second.Logs.String(), pw) || strings.Contains(first.Logs.String(), pw) {
		t.Fatal("generated password in the log")
	}
}

func TestConfiguredPasswordIsNotStored(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Username: "ops", Password: "C0nfigured-Pa55!"})
	if _, _, ok := env.Server.GeneratedCredentials(); ok {
		t.Fatal("generated a password although one is configured")
	}
	if _, err := env.Store.GetSetting(t.Context(), api.SettingAdminPasswordHash); err == nil {
		t.Fatal("configured password's hash was stored")
	}
	if login(t, env, "ops", "C0nfigured-Pa55!").Status != 200 {
		t.Fatal("configured credentials rejected")
	}
}

func TestUnknownAuthMode(t *testing.T) {
	env := newEnv(t, api.AuthConfig{Mode: api.AuthNone})
	_, err := api.New(t.Context(), api.Config{Store: env.Store, Secrets: env.Secrets, Auth: api.AuthConfig{Mode: "basic"}})
	if err == nil {
		t.Fatal("unknown auth mode accepted")
	}
}

func decodeClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", tok)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if string(hdr) != `{"alg":"HS256","typ":"JWT"}` {
		t.Fatalf("header %s", hdr)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func unsignedToken() string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(`{"tenantId":"","iss":"iss-test","deviceId":"*","exp":9999999999}`)) + "."
}

// hs256Token signs claims with the server's real key (read from the secret
// store), to test claim checks independently of the signature.
func hs256Token(t *testing.T, env *apitest.Env, claims map[string]any) string {
	t.Helper()
	data, err := env.Secrets.Get(t.Context(), api.SigningKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(data["KEY"])
	enc := base64.RawURLEncoding.EncodeToString
	payload, _ := json.Marshal(claims)
	msg := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return msg + "." + enc(mac.Sum(nil))
}

// FuzzVerify: bearer tokens come from the network; nothing but a token
// signed with the server's key may verify.
func FuzzVerify(f *testing.F) {
	env := apitest.New(f, apitest.Options{Auth: api.AuthConfig{Username: "a", Password: "Adm1n-Pa55word!"}})
	good, _ := env.Server.Auth().IssueToken("", api.AllDevices, time.Hour)
	f.Add(good)
	f.Add(unsignedToken())
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := env.Server.Auth().Verify(tok)
		if err == nil && tok != good {
			t.Fatalf("forged token verified: %q → %+v", tok, c)
		}
	})
}
