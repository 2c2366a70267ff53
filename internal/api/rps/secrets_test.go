package rps_test

import (
	"bytes"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/testutil/pgtest"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestSecretsNeverInDatabaseOrLogs writes every kind of secret through the
// API (creates and updates), then scans the raw SQLite files, the captured
// server log and every API answer for them (issue item 4).
func TestSecretsNeverInDatabaseOrLogs(t *testing.T) {
	env := newEnv(t)
	checkSecretsNeverStored(t, env, func() []byte {
		files, _ := filepath.Glob(apitest.DBPath(env.Dir) + "*")
		if len(files) == 0 {
			t.Fatal("no database files")
		}
		var db []byte
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			db = append(db, data...)
		}
		return db
	})
}

// TestSecretsNeverInPostgres: the same with the admin API on PostgreSQL,
// scanning every row of every table as text.
func TestSecretsNeverInPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	env := apitest.New(t, apitest.Options{Auth: api.AuthConfig{Mode: api.AuthNone}, Register: register, DSN: dsn})
	if env.Store.Dialect() != "POSTGRES" {
		t.Fatalf("dialect %s", env.Store.Dialect())
	}
	checkSecretsNeverStored(t, env, func() []byte {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.QueryContext(t.Context(), `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`)
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var n string
			rows.Scan(&n)
			tables = append(tables, n)
		}
		rows.Close()
		var dump []byte
		for _, tbl := range tables {
			r, err := db.QueryContext(t.Context(), fmt.Sprintf(`SELECT t::text FROM %q t`, tbl))
			if err != nil {
				t.Fatal(err)
			}
			for r.Next() {
				var line string
				r.Scan(&line)
				dump = append(dump, line...)
				dump = append(dump, '\n')
			}
			r.Close()
		}
		if !bytes.Contains(dump, []byte("vprodemo.com")) {
			t.Fatal("the dump misses the stored rows")
		}
		// bytea columns are dumped as \x<hex>: search their bytes too.
		sealed := byteaText.FindAll(dump, -1)
		if len(sealed) == 0 {
			t.Fatal("no sealed (bytea) values in the dump")
		}
		for _, m := range sealed {
			if raw, err := hex.DecodeString(string(m[2:])); err == nil {
				dump = append(dump, raw...)
			}
		}
		return dump
	})
}

var byteaText = regexp.MustCompile(`\\x[0-9a-f]+`)

// checkSecretsNeverStored writes every kind of secret through the API, then
// checks that none appears in dump() (the raw database), the log or any
// API answer.
func checkSecretsNeverStored(t *testing.T, env *apitest.Env, dump func() []byte) {
	pfxPassword := "Pfx-Secret-7x!"
	certB64 := pfx("amt.vprodemo.com", pfxPassword)
	cert2B64 := pfx("amt.vprodemo.com", pfxPassword, func(o *testpki.ChainOptions) { o.RootCN = "second root" })
	secretValues := []string{
		"Cira-Secret-1a!", "Cira-Secret-2b!",
		pfxPassword, certB64, cert2B64,
		"Amt-Secret-3c!", "Mebx-Secret-4d!", "Amt-Secret-5e!",
		"Psk-Secret-6f-passphrase", "Psk-Secret-7g-passphrase",
		"Acl-Secret-8h!", "Acl-Secret-9i!", "acl-weak-secret-10j",
	}
	var answers [][]byte
	do := func(status int, method, path string, body any) {
		t.Helper()
		answers = append(answers, must(t, env, status, method, path, body).Body)
	}
	do(201, "POST", base+"/ciraconfigs", with(ciraBody("c1"), "password", "Cira-Secret-1a!"))
	do(200, "PATCH", base+"/ciraconfigs", map[string]any{"configName": "c1", "password": "Cira-Secret-2b!", "version": "1"})
	do(200, "PATCH", base+"/ciraconfigs", map[string]any{"configName": "c1", "regeneratePassword": true, "version": "2"})
	do(201, "POST", base+"/domains", map[string]any{"profileName": "d1", "domainSuffix": "vprodemo.com", "provisioningCert": certB64, "provisioningCertStorageFormat": "raw", "provisioningCertPassword": pfxPassword})
	do(200, "PATCH", base+"/domains", map[string]any{"profileName": "d1", "provisioningCert": cert2B64, "provisioningCertStorageFormat": "raw", "version": "1"})
	do(201, "POST", base+"/wirelessconfigs", wirelessBody("w1", "Psk-Secret-6f-passphrase"))
	do(200, "PATCH", base+"/wirelessconfigs", with(wirelessBody("w1", "Psk-Secret-7g-passphrase"), "version", "1"))
	do(201, "POST", base+"/profiles", map[string]any{"profileName": "p1", "activation": "acmactivate", "amtPassword": "Amt-Secret-3c!", "mebxPassword": "Mebx-Secret-4d!", "dhcpEnabled": true,
		"ciraConfigName": "c1", "wifiConfigs": []any{map[string]any{"priority": 1, "profileName": "w1"}},
		"userAcls": []any{map[string]any{"username": "operator", "password": "Acl-Secret-8h!", "accessPermission": "any"}}})
	do(200, "PATCH", base+"/profiles", map[string]any{"profileName": "p1", "activation": "acmactivate", "amtPassword": "Amt-Secret-5e!", "dhcpEnabled": true, "version": "1", "ciraConfigName": "c1",
		"userAcls": []any{map[string]any{"username": "operator", "password": "Acl-Secret-9i!", "accessPermission": "any"}}})
	// Failed requests carrying secrets.
	env.Do(t, "POST", base+"/profiles", map[string]any{"profileName": "p2", "activation": "ccmactivate", "amtPassword": "weak-Amt-Secret-3c!", "dhcpEnabled": "maybe"})
	env.Do(t, "POST", base+"/profiles", with(ccmBody("p3"), "userAcls", []any{map[string]any{"username": "op", "password": "acl-weak-secret-10j", "accessPermission": "any"}}))
	env.Do(t, "POST", base+"/profiles", with(ccmBody("p4"), "userAcls", []any{map[string]any{"username": "admin", "password": "Acl-Secret-8h!", "accessPermission": "any"}}))
	env.Do(t, "POST", base+"/domains", map[string]any{"profileName": "d2", "domainSuffix": "other.com", "provisioningCert": certB64, "provisioningCertStorageFormat": "raw", "provisioningCertPassword": pfxPassword})
	env.Do(t, "POST", base+"/wirelessconfigs", `{"profileName":"w9","pskPassphrase":"Psk-Secret-6f-passphrase",`)
	for _, p := range []string{"/ciraconfigs", "/domains", "/wirelessconfigs", "/profiles", "/profiles/p1", "/domains/d1", "/ciraconfigs/c1", "/wirelessconfigs/w1"} {
		answers = append(answers, must(t, env, 200, "GET", base+p, nil).Body)
	}
	answers = append(answers, env.Do(t, "POST", base+"/domains", map[string]any{"profileName": "d3", "domainSuffix": "x.com", "provisioningCert": certB64, "provisioningCertStorageFormat": "raw", "provisioningCertPassword": "wrong-" + pfxPassword}).Body)

	// The secrets are really stored (the export reads them back).
	doc := exportDoc(t, env, "p1", "d1")
	amt := doc["configuration"].(map[string]any)["amtSpecific"].(map[string]any)
	if amt["adminPassword"] != "Amt-Secret-5e!" || amt["mebxPassword"] != "Mebx-Secret-4d!" || amt["provisioningCert"] != cert2B64 || amt["provisioningCertPwd"] != pfxPassword {
		t.Fatalf("stored secrets not read back: %v", amt)
	}
	// The AMT users' passwords are stored too, in the profile's entry only.
	var aclStored bool
	for _, k := range env.Tracked.Live("system/") {
		if data, err := env.Secrets.Get(t.Context(), k); err == nil && data["USER_ACL_PASSWORD:operator"] == "Acl-Secret-9i!" {
			aclStored = strings.Contains(k, "/profiles/")
		}
	}
	if !aclStored {
		t.Fatal("the user ACL password is not in the profile's secret entry")
	}

	env.HTTP.Close()
	if err := env.Store.Close(); err != nil {
		t.Fatal(err)
	}
	db := dump()
	logs := env.Logs.String()
	for _, s := range secretValues {
		needles := [][]byte{[]byte(s)}
		if strings.HasPrefix(s, "MII") { // a PFX: also its DER and a 32-byte slice of it
			der, _ := base64.StdEncoding.DecodeString(s)
			needles = append(needles, der[100:132])
		}
		for _, n := range needles {
			if bytes.Contains(db, n) {
				t.Errorf("secret %.20q… found in the database files", s)
			}
			if strings.Contains(logs, string(n)) {
				t.Errorf("secret %.20q… found in the log", s)
			}
			for _, a := range answers {
				if bytes.Contains(a, n) {
					t.Errorf("secret %.20q… found in an API answer: %.200s", s, a)
				}
			}
		}
	}
	if !strings.Contains(logs, "http request") {
		t.Fatal("log capture is empty")
	}
}

// TestSecretLifecycle checks which secret entries exist after each step:
// one per object with secrets, replaced (never overwritten) on update,
// removed on delete, and no orphan or overwrite after failed writes.
func TestSecretLifecycle(t *testing.T) {
	env := newEnv(t)
	live := func() []string { return env.Tracked.Live("system/") }
	read := func(key string) map[string]string {
		data, err := env.Secrets.Get(t.Context(), key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		return data
	}

	must(t, env, 201, "POST", base+"/ciraconfigs", with(ciraBody("c1"), "password", "First-Pa55!"))
	keys := live()
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "tenants/t_/ciraconfigs/") || read(keys[0])["MPS_PASSWORD"] != "First-Pa55!" {
		t.Fatalf("after create: %v", keys)
	}
	first := keys[0]

	// A duplicate (other case) with another password: 400, the existing
	// secret untouched, no orphan.
	must(t, env, 400, "POST", base+"/ciraconfigs", with(ciraBody("C1"), "password", "Intruder-Pa55!"))
	if got := live(); len(got) != 1 || got[0] != first || read(first)["MPS_PASSWORD"] != "First-Pa55!" {
		t.Fatalf("after duplicate: %v", got)
	}

	// An update without secret changes keeps the entry.
	must(t, env, 200, "PATCH", base+"/ciraconfigs", map[string]any{"configName": "c1", "mpsPort": 4434, "version": "1"})
	if got := live(); len(got) != 1 || got[0] != first {
		t.Fatalf("after plain update: %v", got)
	}
	// A new password: a new entry, the old one deleted.
	must(t, env, 200, "PATCH", base+"/ciraconfigs", map[string]any{"configName": "c1", "password": "Second-Pa55!", "version": "2"})
	got := live()
	if len(got) != 1 || got[0] == first || read(got[0])["MPS_PASSWORD"] != "Second-Pa55!" {
		t.Fatalf("after password update: %v", got)
	}
	// A stale update with a new password: 409 and nothing written.
	must(t, env, 409, "PATCH", base+"/ciraconfigs", map[string]any{"configName": "c1", "password": "Third-Pa55!", "version": "1"})
	if again := live(); len(again) != 1 || again[0] != got[0] {
		t.Fatalf("after stale update: %v", again)
	}

	// A failed create (missing CIRA reference) leaves no orphan.
	must(t, env, 400, "POST", base+"/profiles", map[string]any{"profileName": "p1", "activation": "acmactivate", "amtPassword": "Amt-Pa55word!", "mebxPassword": "Mebx-Pa55word!", "dhcpEnabled": true, "ciraConfigName": "nope"})
	if again := live(); len(again) != 1 {
		t.Fatalf("after failed profile create: %v", again)
	}
	// Random passwords only: no entry at all.
	must(t, env, 201, "POST", base+"/profiles", ccmBody("p2"))
	if again := live(); len(again) != 1 {
		t.Fatalf("random-password profile stored a secret: %v", again)
	}
	// Deletes remove the entries.
	must(t, env, 204, "DELETE", base+"/ciraconfigs/c1", nil)
	must(t, env, 201, "POST", base+"/wirelessconfigs", wirelessBody("w1", "P@ssw0rd1"))
	must(t, env, 204, "DELETE", base+"/wirelessconfigs/w1", nil)
	if again := live(); len(again) != 0 {
		t.Fatalf("after deletes: %v", again)
	}
}
