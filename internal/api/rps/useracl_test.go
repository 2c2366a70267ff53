package rps_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/api/apitest"
)

const (
	aclPW1 = "Op3rator!pass"
	aclPW2 = "N3w-Op3rator!"
	aclPW3 = "R3ader#pass"
)

func aclProfile(name string) map[string]any {
	return with(ccmBody(name), "powerPolicy", "Desktop: ON in S0, ME Wake in S3, S4-5", "userAcls", []any{
		map[string]any{"username": "operator", "password": aclPW1, "realms": []any{3, "RemoteControl", "redirectionrealm"}, "accessPermission": "network"},
		map[string]any{"username": "reader", "password": aclPW3, "accessPermission": "any"},
	})
}

// profileSecretEntry is the secret entry of the only profile with one.
func profileSecretEntry(t *testing.T, env *apitest.Env) map[string]string {
	t.Helper()
	var keys []string
	for _, k := range env.Tracked.Live("system/") {
		if strings.Contains(k, "/profiles/") {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("profile secret entries: %v", keys)
	}
	data, err := env.Secrets.Get(t.Context(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestProfileUserACLsAndPowerPolicy: the amtd profile extensions are
// stored, answered without passwords, absent from profiles without them,
// kept by updates that omit them, and exported without passwords.
func TestProfileUserACLsAndPowerPolicy(t *testing.T) {
	env := newEnv(t)
	created := must(t, env, 201, "POST", base+"/profiles", aclProfile("p1"))
	wantACLs := []any{
		map[string]any{"username": "operator", "realms": []any{3.0, 5.0, 2.0}, "accessPermission": "network"},
		map[string]any{"username": "reader", "realms": []any{}, "accessPermission": "any"},
	}
	check := func(obj map[string]any, policy string, acls []any) {
		t.Helper()
		if policy == "" {
			if _, ok := obj["powerPolicy"]; ok {
				t.Errorf("powerPolicy present: %v", obj["powerPolicy"])
			}
		} else if obj["powerPolicy"] != policy {
			t.Errorf("powerPolicy %v", obj["powerPolicy"])
		}
		if acls == nil {
			if _, ok := obj["userAcls"]; ok {
				t.Errorf("userAcls present: %v", obj["userAcls"])
			}
		} else if !reflect.DeepEqual(obj["userAcls"], acls) {
			t.Errorf("userAcls %v, want %v", obj["userAcls"], acls)
		}
	}
	const policy = "Desktop: ON in S0, ME Wake in S3, S4-5"
	check(created.Object(t), policy, wantACLs)
	got := must(t, env, 200, "GET", base+"/profiles/p1", nil)
	check(got.Object(t), policy, wantACLs)
	list := must(t, env, 200, "GET", base+"/profiles", nil)
	for _, b := range [][]byte{created.Body, got.Body, list.Body} {
		for _, pw := range []string{aclPW1, aclPW3, "password"} {
			if bytes.Contains(b, []byte(pw)) {
				t.Fatalf("%q in an answer: %s", pw, b)
			}
		}
	}
	sec := profileSecretEntry(t, env)
	if sec["USER_ACL_PASSWORD:operator"] != aclPW1 || sec["USER_ACL_PASSWORD:reader"] != aclPW3 || len(sec) != 2 {
		t.Fatalf("secret entry fields %d, operator %v reader %v", len(sec), sec["USER_ACL_PASSWORD:operator"] == aclPW1, sec["USER_ACL_PASSWORD:reader"] == aclPW3)
	}

	// A profile without the extensions answers RPS's shape.
	plain := must(t, env, 201, "POST", base+"/profiles", ccmBody("plain"))
	check(plain.Object(t), "", nil)
	must(t, env, 204, "DELETE", base+"/profiles/plain", nil)

	// An update that omits them keeps them and the passwords.
	upd := must(t, env, 200, "PATCH", base+"/profiles", with(ccmBody("p1"), "version", "1"))
	check(upd.Object(t), policy, wantACLs)
	if s := profileSecretEntry(t, env); s["USER_ACL_PASSWORD:operator"] != aclPW1 {
		t.Fatal("omitting userAcls lost the operator's password")
	}
	// A known user without a password keeps it; a new password replaces it;
	// a user left out is dropped with its password.
	upd = must(t, env, 200, "PATCH", base+"/profiles", with(ccmBody("p1"), "version", "2", "powerPolicy", "Desktop: ON in S0", "userAcls", []any{
		map[string]any{"username": "operator", "realms": []any{5}, "accessPermission": "local"},
	}))
	check(upd.Object(t), "Desktop: ON in S0", []any{map[string]any{"username": "operator", "realms": []any{5.0}, "accessPermission": "local"}})
	if s := profileSecretEntry(t, env); s["USER_ACL_PASSWORD:operator"] != aclPW1 || s["USER_ACL_PASSWORD:reader"] != "" {
		t.Fatalf("after update: operator kept %v, reader dropped %v", s["USER_ACL_PASSWORD:operator"] == aclPW1, s["USER_ACL_PASSWORD:reader"] == "")
	}
	must(t, env, 200, "PATCH", base+"/profiles", with(ccmBody("p1"), "version", "3", "userAcls", []any{
		map[string]any{"username": "operator", "password": aclPW2, "accessPermission": "any"},
	}))
	if s := profileSecretEntry(t, env); s["USER_ACL_PASSWORD:operator"] != aclPW2 {
		t.Fatal("new password not stored")
	}
	// A new user needs a password.
	resp := must(t, env, 400, "PATCH", base+"/profiles", with(ccmBody("p1"), "version", "4", "userAcls", []any{
		map[string]any{"username": "newbie", "accessPermission": "any"},
	}))
	if _, msg := errorBody(t, resp); msg != "userAcls user newbie needs a password" {
		t.Fatalf("message %q", msg)
	}

	// The export carries them, without the passwords.
	doc := exportDoc(t, env, "p1", "")
	amt := doc["configuration"].(map[string]any)["amtSpecific"].(map[string]any)
	if amt["powerPolicy"] != "Desktop: ON in S0" || !reflect.DeepEqual(amt["userAcls"], []any{
		map[string]any{"username": "operator", "realms": []any{}, "accessPermission": "any"}}) {
		t.Fatalf("export: %v %v", amt["powerPolicy"], amt["userAcls"])
	}

	// null clears both, and the password leaves the secret store.
	cleared := must(t, env, 200, "PATCH", base+"/profiles", with(ccmBody("p1"), "version", "4", "userAcls", nil, "powerPolicy", nil))
	check(cleared.Object(t), "", nil)
	for _, k := range env.Tracked.Live("system/") {
		if strings.Contains(k, "/profiles/") {
			t.Fatalf("a random-password profile without users keeps a secret entry %s", k)
		}
	}
}

func TestProfileUserACLValidation(t *testing.T) {
	env := newEnv(t)
	acl := func(kv ...any) map[string]any {
		return with(map[string]any{"username": "operator", "password": aclPW1, "accessPermission": "any"}, kv...)
	}
	const weak = "weakpass1"
	tests := []struct {
		name string
		body map[string]any
		want string
	}{
		{"admin", with(ccmBody("v"), "userAcls", []any{acl("username", "Admin")}), "userAcls: userAcls username should be 1 to 16 printable ASCII characters without spaces or , : \" & < >, not starting with $$ and not admin"},
		{"long name", with(ccmBody("v"), "userAcls", []any{acl("username", strings.Repeat("u", 17))}), "userAcls: userAcls username should be 1 to 16 printable ASCII characters without spaces or , : \" & < >, not starting with $$ and not admin"},
		{"colon", with(ccmBody("v"), "userAcls", []any{acl("username", "a:b")}), "userAcls: userAcls username should be 1 to 16 printable ASCII characters without spaces or , : \" & < >, not starting with $$ and not admin"},
		{"twice", with(ccmBody("v"), "userAcls", []any{acl(), acl("username", "OPERATOR")}), "userAcls: userAcls user OPERATOR is listed more than once"},
		{"weak password", with(ccmBody("v"), "userAcls", []any{acl("password", weak)}), "userAcls: userAcls password of operator should contain at least one lowercase letter, one uppercase letter, one numeric digit, and one special character and be 8 to 32 characters long"},
		{"no password", with(ccmBody("v"), "userAcls", []any{acl("password", deleteKey)}), "userAcls: userAcls user operator needs a password"},
		{"permission", with(ccmBody("v"), "userAcls", []any{acl("accessPermission", 1)}), "userAcls: userAcls accessPermission of operator should be one of local, network, any"},
		{"reserved realm", with(ccmBody("v"), "userAcls", []any{acl("realms", []any{22})}), "userAcls: userAcls realms of operator: 22 is not an AMT realm a user can be given"},
		{"unknown realm name", with(ccmBody("v"), "userAcls", []any{acl("realms", []any{"Everything"})}), "userAcls: userAcls realms of operator: Everything is not an AMT realm a user can be given"},
		{"extra key", with(ccmBody("v"), "userAcls", []any{acl("kerberosSid", "S-1")}), "userAcls: userAcls entries accept only username, password, realms and accessPermission, not \"kerberosSid\""},
		{"eight users", with(ccmBody("v"), "userAcls", []any{acl("username", "u1"), acl("username", "u2"), acl("username", "u3"), acl("username", "u4"),
			acl("username", "u5"), acl("username", "u6"), acl("username", "u7"), acl("username", "u8")}), "userAcls: userAcls should be an array of at most 7 objects with username, password, realms and accessPermission"},
		{"not an array", with(ccmBody("v"), "userAcls", "operator"), "userAcls: userAcls should be an array of at most 7 objects with username, password, realms and accessPermission"},
		{"empty policy", with(ccmBody("v"), "powerPolicy", " "), "powerPolicy: powerPolicy should be the description or the scheme GUID of an AMT power package (1 to 128 printable characters)"},
		{"long policy", with(ccmBody("v"), "powerPolicy", strings.Repeat("p", 129)), "powerPolicy: powerPolicy should be the description or the scheme GUID of an AMT power package (1 to 128 printable characters)"},
		{"policy number", with(ccmBody("v"), "powerPolicy", 3), "powerPolicy: powerPolicy should be the description or the scheme GUID of an AMT power package (1 to 128 printable characters)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := env.Do(t, "POST", base+"/profiles", tc.body)
			errs := validationErrors(t, resp)
			if len(errs) != 1 || errs[0] != tc.want {
				t.Fatalf("errors:\n%s\nwant\n%s", join(errs), tc.want)
			}
			for _, pw := range []string{aclPW1, weak} {
				if bytes.Contains(resp.Body, []byte(pw)) {
					t.Fatalf("password echoed: %s", resp.Body)
				}
			}
		})
	}
	// Seven users is the limit, not an error.
	var seven []any
	for i := 1; i <= 7; i++ {
		seven = append(seven, acl("username", "u"+string(rune('0'+i))))
	}
	must(t, env, 201, "POST", base+"/profiles", with(ccmBody("seven"), "userAcls", seven, "powerPolicy", "cyJzRiPcQy+pihPTeYLYVQ=="))
}
