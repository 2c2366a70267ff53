package rps_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

func domainBody(name, suffix, cert, pw string) map[string]any {
	return map[string]any{"profileName": name, "domainSuffix": suffix, "provisioningCert": cert, "provisioningCertStorageFormat": "string", "provisioningCertPassword": pw}
}

func TestDomainCertificateChecks(t *testing.T) {
	env := newEnv(t)
	good := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.vprodemo.com", AMTOU: true})
	goodB64 := base64.StdEncoding.EncodeToString(good.PFX("P@ssw0rd", false))

	resp := must(t, env, 201, "POST", base+"/domains", domainBody("vprodemo", "vprodemo.com", goodB64, "P@ssw0rd"))
	obj := resp.Object(t)
	if obj["expirationDate"] != good.Leaf.NotAfter.UTC().Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("expirationDate %v, want the leaf's NotAfter", obj["expirationDate"])
	}
	for _, k := range []string{"provisioningCert", "provisioningCertPassword"} {
		if _, ok := obj[k]; ok {
			t.Errorf("answer contains %s", k)
		}
	}
	check, ok := obj["certificateCheck"].(map[string]any)
	if !ok || check["amtDefaultRoot"] != nil || len(check["rootCertificateSha256"].(string)) != 64 {
		t.Fatalf("certificateCheck %v", obj["certificateCheck"])
	}
	var codes []string
	for _, w := range check["warnings"].([]any) {
		codes = append(codes, w.(map[string]any)["code"].(string))
	}
	if !contains(codes, certs.WarnRootNotDefault) {
		t.Errorf("warnings %v lack %s", codes, certs.WarnRootNotDefault)
	}
	// GET has no certificate report.
	if _, ok := must(t, env, 200, "GET", base+"/domains/VPRODEMO", nil).Object(t)["certificateCheck"]; ok {
		t.Error("GET answer has certificateCheck")
	}

	expired := pfx("amt.other.com", "pw", func(o *testpki.ChainOptions) {
		o.NotBefore, o.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
	noEKU := pfx("amt.other.com", "pw", func(o *testpki.ChainOptions) { o.NoAMTOID, o.AMTOU = true, false })
	tests := []struct {
		name, cert, pw, suffix, want string
	}{
		{"not base64", "!!!", "pw", "other.com", certs.MsgDecrypt},
		{"not PKCS#12", base64.StdEncoding.EncodeToString([]byte("hello, world")), "pw", "other.com", ""},
		{"wrong password", goodB64, "wrong", "vprodemo.com", certs.MsgDecrypt},
		{"domain mismatch", goodB64, "P@ssw0rd", "other.com", "FQDN not associated with provisioning certificate"},
		{"expired", expired, "pw", "other.com", "Uploaded certificate has expired"},
		{"no AMT OID or OU", noEKU, "pw", "other.com", "Leaf certificate is missing the Intel AMT Activation EKU OID (2.16.840.1.113741.1.2.3)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := validationErrors(t, env.Do(t, "POST", base+"/domains", domainBody("d-"+strings.ReplaceAll(tc.name, " ", "-")[:5], tc.suffix, tc.cert, tc.pw)))
			if len(errs) != 1 || !strings.HasPrefix(errs[0], "provisioningCert: ") || (tc.want != "" && errs[0] != "provisioningCert: "+tc.want) {
				t.Fatalf("errors %v, want provisioningCert: %s", errs, tc.want)
			}
		})
	}
	// Nothing of the rejected uploads was stored.
	if l := must(t, env, 200, "GET", base+"/domains", nil).JSON(t).([]any); len(l) != 1 {
		t.Fatalf("domains: %v", l)
	}
	if live := env.Tracked.Live("system/"); len(live) != 1 {
		t.Fatalf("secret entries: %v", live)
	}

	// Update: a bad new certificate is refused and the stored one stays.
	expiredHere := pfx("amt.vprodemo.com", "pw", func(o *testpki.ChainOptions) {
		o.NotBefore, o.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)
	})
	resp = env.Do(t, "PATCH", base+"/domains", map[string]any{"profileName": "vprodemo", "provisioningCert": expiredHere, "provisioningCertPassword": "pw", "provisioningCertStorageFormat": "raw", "version": "1"})
	if errs := validationErrors(t, resp); len(errs) != 1 || errs[0] != "provisioningCert: Uploaded certificate has expired" {
		t.Fatalf("bad update: %v", errs)
	}
	// A new suffix with the stored certificate is fine when no new
	// certificate or password is given (nothing to check).
	must(t, env, 200, "PATCH", base+"/domains", map[string]any{"profileName": "vprodemo", "domainSuffix": "sub.vprodemo.com", "provisioningCertStorageFormat": "raw", "version": "1"})
	// A new password alone is checked against the stored certificate.
	resp = env.Do(t, "PATCH", base+"/domains", map[string]any{"profileName": "vprodemo", "provisioningCertPassword": "wrong", "provisioningCertStorageFormat": "raw", "version": "2"})
	if errs := validationErrors(t, resp); len(errs) != 1 || errs[0] != "provisioningCert: "+certs.MsgDecrypt {
		t.Fatalf("password-only update: %v", errs)
	}
	// A good new certificate: 200, expiration recomputed, report attached.
	other := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.vprodemo.com", NotAfter: time.Now().Add(90 * 24 * time.Hour)})
	resp = must(t, env, 200, "PATCH", base+"/domains", map[string]any{"profileName": "vprodemo", "provisioningCert": base64.StdEncoding.EncodeToString(other.PFX("new", true)),
		"provisioningCertPassword": "new", "provisioningCertStorageFormat": "raw", "version": "2"})
	obj = resp.Object(t)
	if obj["expirationDate"] != other.Leaf.NotAfter.UTC().Format("2006-01-02T15:04:05.000Z") || obj["certificateCheck"] == nil || obj["domainSuffix"] != "sub.vprodemo.com" {
		t.Fatalf("update answer %v", obj)
	}
	// Duplicate suffix on update.
	must(t, env, 201, "POST", base+"/domains", domainBody("second", "vprodemo.com", goodB64, "P@ssw0rd"))
	e, m := errorBody(t, must(t, env, 400, "PATCH", base+"/domains", map[string]any{"profileName": "second", "domainSuffix": "SUB.vprodemo.com", "provisioningCertStorageFormat": "raw", "version": "1"}))
	if e != "Unique key violation" || m != "Domain second ID or Suffix already exists" {
		t.Fatalf("duplicate suffix: %q %q", e, m)
	}
}
