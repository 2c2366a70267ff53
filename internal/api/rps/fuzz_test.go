package rps

import (
	"testing"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/store"
)

// FuzzBodies feeds arbitrary request bodies (bytes from the network) to the
// validators and merge logic that need no database: none may panic, and a
// body that passes validation must convert without surprises.
func FuzzBodies(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"configName":"c","mpsServerAddress":"1.2.3.4","mpsPort":4433,"username":"admin","commonName":"1.2.3.4","serverAddressFormat":3,"authMethod":2,"mpsRootCertificate":"x"}`,
		`{"configName":["c"],"mpsPort":[4433],"serverAddressFormat":{"a":1},"mpsServerAddress":7}`,
		`{"profileName":"p","authenticationProtocol":0,"pxeTimeout":120,"wiredInterface":true,"version":"1"}`,
		`{"name":"p","address":"::1","port":65535,"networkDnsSuffix":"a.com"}`,
		`{"profileName":"p","activation":"acmactivate","wifiConfigs":[{"profileName":"a","priority":1.5},null,"x"],"proxyConfigs":[{"name":"b","priority":1e300}],"tags":[1,{}]}`,
		`{"provisioningCert":"TUlJ","provisioningCertPassword":"x"}`,
		`{"powerPolicy":"Desktop: ON in S0","userAcls":[{"username":"op","password":"Op3rator!pass","realms":[3,"Redirection",22,1.5,null],"accessPermission":"any"},{"username":1},null]}`,
	} {
		f.Add([]byte(s))
	}
	cur := &store.Profile{Name: "p", Activation: activationACM, GenerateRandomPassword: true, DHCPEnabled: true, UserConsent: "KVM",
		WifiConfigs: []store.ProfileWifi{{Name: "w", Priority: 1}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := api.ParseJSONObject(data)
		if err != nil {
			return
		}
		if errs := validateCIRACreate(body); len(errs) == 0 {
			if p := toInt(body["mpsPort"]); p < 1024 || p > 49151 {
				t.Fatalf("valid CIRA create with port %d", p)
			}
		}
		validateCIRAUpdate(body)
		validate8021x(body, false)
		validate8021x(body, true)
		if errs := validateProxy(body, false); len(errs) == 0 {
			if p := toInt(body["port"]); p < 0 || p > 65535 {
				t.Fatalf("valid proxy with port %d", p)
			}
		}
		links(body["wifiConfigs"], "profileName", "wifi")
		links(body["proxyConfigs"], "name", "proxy")
		wifiLinks(body["wifiConfigs"])
		proxyLinks(body["proxyConfigs"])
		strList(body["tags"])
		linkPolicy(body["linkPolicy"])
		next, _, _, msg := mergeProfile(cur, body, map[string]string{fieldMEBxPassword: "Mebx-Pa55word!"})
		if msg == "" && next.Activation == activationCCM && next.UserConsent != "All" {
			t.Fatalf("CCM profile with consent %q", next.UserConsent)
		}
		decodePFX(str(body, "provisioningCert"))
		if next != nil {
			pws, msg := mergeExtensions(next, body, map[string]string{"USER_ACL_PASSWORD:op": "Op3rator!pass"})
			if msg == "" {
				for _, a := range next.UserACLs {
					if !validACLUsername(a.Username) || pws["USER_ACL_PASSWORD:"+a.Username] == "" {
						t.Fatalf("merged user %+v without a valid name or a password", a)
					}
					for _, r := range a.Realms {
						if !validRealm(r) {
							t.Fatalf("merged realm %d", r)
						}
					}
				}
			}
		}
		validPowerPolicy(body["powerPolicy"])
	})
}
