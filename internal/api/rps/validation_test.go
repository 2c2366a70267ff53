package rps_test

import (
	"reflect"
	"strings"
	"testing"
)

// TestValidationMessages checks complete error lists (path and message, in
// order) for the admin API's validators (admin-api.md §2.2, §3–§8).
func TestValidationMessages(t *testing.T) {
	env := newEnv(t)
	must(t, env, 201, "POST", base+"/ieee8021xconfigs", map[string]any{"profileName": "wired1", "authenticationProtocol": 0, "pxeTimeout": 120, "wiredInterface": true})
	must(t, env, 201, "POST", base+"/ieee8021xconfigs", map[string]any{"profileName": "wless1", "authenticationProtocol": 0, "wiredInterface": false})
	must(t, env, 201, "POST", base+"/wirelessconfigs", wirelessBody("home", "P@ssw0rd1"))
	must(t, env, 201, "POST", base+"/proxyconfigs", proxyBody("proxy1", "proxy.example.com"))
	must(t, env, 201, "POST", base+"/ciraconfigs", ciraBody("cira1"))
	must(t, env, 201, "POST", base+"/profiles", ccmBody("existing"))

	const (
		msgPort   = "MPS Port value should range between 1024 and 49151"
		msgFormat = "MPS server address format should be either 3(IPV4) , 4(IPV6) or 201(FQDN)"
		msgAuth   = "Authentication method should be either 1 (Mutual Auth) or 2 (username and password)"
		msgPw     = "AMT password is required field should contains at least one lowercase letter, one uppercase letter, one numeric digit,and one special character and password length should be in between 8 to 32."
		msgVer    = "version: Version is required to patch/update a record."
	)
	tests := []struct {
		name, method, path string
		body               any
		want               []string
	}{
		// CIRA create
		{"cira: empty body", "POST", "/ciraconfigs", map[string]any{}, []string{
			"configName: CIRA profile name is required",
			"configName: CIRA profile name accepts letters, numbers, underscore and hyphen only",
			"serverAddressFormat: MPS server address format is required",
			"serverAddressFormat: " + msgFormat,
			"mpsServerAddress: MPS server address is required",
			"mpsServerAddress: serverAddressFormat is required",
			"mpsPort: MPS port is required",
			"mpsPort: " + msgPort,
			"username: MPS user name is required",
			"username: MPS user name should be alphanumeric",
			"username: MPS user name length should be in between 5 to 16",
			"authMethod: Authentication method is required",
			"authMethod: " + msgAuth,
			"mpsRootCertificate: MPS public root certificate is required",
		}},
		{"cira: no username", "POST", "/ciraconfigs", with(ciraBody("c2"), "username", deleteKey), []string{
			"username: MPS user name is required", "username: MPS user name should be alphanumeric", "username: MPS user name length should be in between 5 to 16"}},
		{"cira: port bounds are inclusive on create", "POST", "/ciraconfigs", with(ciraBody("c2"), "mpsPort", 1023), []string{"mpsPort: " + msgPort}},
		{"cira: port as text", "POST", "/ciraconfigs", with(ciraBody("c2"), "mpsPort", "wrong"), []string{"mpsPort: " + msgPort}},
		{"cira: format 4 with IPv4", "POST", "/ciraconfigs", with(ciraBody("c2"), "serverAddressFormat", 4), []string{"mpsServerAddress: serverAddressFormat 4 requires IPV6 server address"}},
		{"cira: format 3 without CN", "POST", "/ciraconfigs", with(ciraBody("c2"), "commonName", deleteKey), []string{"mpsServerAddress: commonName is required when serverAddressFormat is 3"}},
		{"cira: format 201 with bad FQDN", "POST", "/ciraconfigs", with(ciraBody("c2"), "serverAddressFormat", 201, "mpsServerAddress", "Not_A.Host"), []string{"mpsServerAddress: serverAddressFormat 201 requires FQDN server address"}},
		{"cira: CN not an IP", "POST", "/ciraconfigs", with(ciraBody("c2"), "commonName", "mps.example.com"), []string{"commonName: Cert. Hostname(CN) should be an IP address."}},
		{"cira: auth method text", "POST", "/ciraconfigs", with(ciraBody("c2"), "authMethod", "mutual"), []string{"authMethod: " + msgAuth}},
		{"cira: bad name and user", "POST", "/ciraconfigs", with(ciraBody("bad name"), "username", "ad@min"), []string{
			"configName: CIRA profile name accepts letters, numbers, underscore and hyphen only", "username: MPS user name should be alphanumeric"}},
		{"cira: password must be a string", "POST", "/ciraconfigs", with(ciraBody("c2"), "password", 12345), []string{"password: MPS password should be a string of at most 64 characters"}},
		// CIRA update
		{"cira update: address without format", "PATCH", "/ciraconfigs", map[string]any{"configName": "cira1", "mpsServerAddress": "192.168.8.55"}, []string{"mpsServerAddress: serverAddressFormat is required"}},
		{"cira update: CN alone", "PATCH", "/ciraconfigs", map[string]any{"configName": "cira1", "commonName": "192.168.8.55"}, []string{"commonName: serverAddressFormat and mpsServerAddress is required"}},
		{"cira update: port bounds are exclusive", "PATCH", "/ciraconfigs", map[string]any{"configName": "cira1", "mpsPort": 1024}, []string{"mpsPort: " + msgPort}},
		{"cira update: port must be a number", "PATCH", "/ciraconfigs", map[string]any{"configName": "cira1", "mpsPort": "4433"}, []string{"mpsPort: " + msgPort}},
		{"cira update: format without address", "PATCH", "/ciraconfigs", map[string]any{"configName": "cira1", "serverAddressFormat": 5}, []string{
			"serverAddressFormat: MPS server address format 3(IPV4) , 4(IPV6) or 201(FQDN)", "serverAddressFormat: Server address is required to update"}},
		{"cira update: auth method", "PATCH", "/ciraconfigs", map[string]any{"configName": "cira1", "authMethod": 3}, []string{"authMethod: Authentication method accepts either 1 - Mutual Auth or 2 -username/password)"}},
		// Domains
		{"domain: empty body", "POST", "/domains", map[string]any{}, []string{
			"profileName: AMT Domain profile name is required",
			"profileName: AMT Domain profile name accepts letters, numbers, hyphens (-), and underscores (_)",
			"provisioningCertPassword: Provisioning Cert Password is required",
			"domainSuffix: Domain suffix name is required",
			"provisioningCert: Provisioning certificate is required",
			"provisioningCertStorageFormat: Provisioning Cert Storage Format is required",
			"provisioningCertStorageFormat: Provisioning Cert Storage Format should be either 'raw' or 'string'",
		}},
		{"domain: long password, no cert check without a cert", "POST", "/domains", map[string]any{"profileName": "d1", "domainSuffix": "a.com", "provisioningCertStorageFormat": "raw", "provisioningCertPassword": strings.Repeat("x", 65)}, []string{
			"provisioningCertPassword: Password should not exceed 64 characters in length", "provisioningCert: Provisioning certificate is required"}},
		{"domain: undecodable certificate", "POST", "/domains", map[string]any{"profileName": "d1", "domainSuffix": "a.com", "provisioningCertStorageFormat": "raw", "provisioningCertPassword": "x", "provisioningCert": "%%%not base64%%%"}, []string{
			"provisioningCert: Unable to decrypt provisioning certificate. Please check that the password is correct, and that the certificate is a valid certificate."}},
		{"domain update: storage format required in practice", "PATCH", "/domains", map[string]any{"profileName": "d1", "provisioningCertPassword": strings.Repeat("x", 65)}, []string{
			`provisioningCertStorageFormat: Provisioning Cert Storage Format is either "raw" or "string"`, "provisioningCertPassword: Password should not exceed 64 characters in length"}},
		// Profiles create
		{"profile: no activation", "POST", "/profiles", map[string]any{"profileName": "p6", "amtPassword": "Intel123!", "mebxPassword": "Intel123!", "generateRandomPassword": false}, []string{
			"activation: Activation is required",
			"activation: Activation accepts either acmactivate (admin control activation) or ccmactivate (client control mode activation)",
			"dhcpEnabled: Invalid value", "dhcpEnabled: DHCP enabled must be a boolean"}},
		{"profile: deactivate is not an activation (RPS accepts it)", "POST", "/profiles", with(ccmBody("p6"), "activation", "deactivate"), []string{
			"activation: Activation accepts either acmactivate (admin control activation) or ccmactivate (client control mode activation)"}},
		{"profile: ccm without passwords", "POST", "/profiles", map[string]any{"profileName": "p6", "activation": "ccmactivate", "dhcpEnabled": false, "generateRandomPassword": false}, []string{
			"activation: Either generateRandomPassword should be enabled or provide amtPassword",
			"generateRandomPassword: If generate random AMT password is disabled, amtPassword is mandatory"}},
		{"profile: both random and static", "POST", "/profiles", with(ccmBody("p6"), "amtPassword", "Intel123!"), []string{
			"generateRandomPassword: Either generate Random AMT Password should be enabled or should provide AMT Password but not both"}},
		{"profile: weak password", "POST", "/profiles", with(ccmBody("p6"), "generateRandomPassword", false, "amtPassword", "Intel123"), []string{"amtPassword: " + msgPw}},
		{"profile: weak password, random flag absent (RPS skips the check)", "POST", "/profiles", with(ccmBody("p6"), "generateRandomPassword", deleteKey, "amtPassword", "weak"), []string{"amtPassword: " + msgPw}},
		{"profile: acm without mebx", "POST", "/profiles", map[string]any{"profileName": "p6", "activation": "acmactivate", "amtPassword": "Intel123!", "dhcpEnabled": true}, []string{
			"activation: MEBx Password is required for acmactivate",
			"generateRandomMEBxPassword: If generate random MEBx password is disabled, mebxPassword is mandatory"}},
		{"profile: kvm options", "POST", "/profiles", with(ccmBody("p6"), "userConsent", "BadValue", "iderEnabled", "foo", "kvmEnabled", "foo", "solEnabled", "foo"), []string{
			"userConsent: User consent must be one of None,All,KVM",
			"userConsent: User consent is required for all the actions in client control mode",
			"iderEnabled: IDER enabled must be a boolean", "kvmEnabled: KVM enabled must be a boolean",
			"solEnabled: Serial Over Lan (sol) enabled must be a boolean"}},
		{"profile: tls and cira", "POST", "/profiles", with(ccmBody("p6"), "ciraConfigName", "cira1", "tlsMode", 4), []string{"ciraConfigName: CIRA cannot be configured if TLS is enabled"}},
		{"profile: tls mode and authority", "POST", "/profiles", with(ccmBody("p6"), "tlsMode", 5, "tlsSigningAuthority", "BogusCA"), []string{
			"tlsMode: tlsMode must be set to one of these values: 1 (Server Authentication Only), 2 (Server and Non-TLS Authentication), 3 (Mutual TLS only), 4 (Mutual and Non-TLS authentication)",
			"tlsSigningAuthority: TLS Signing Authority must be one of SelfSigned,MicrosoftCA"}},
		{"profile: wifi without dhcp", "POST", "/profiles", with(ccmBody("p6"), "dhcpEnabled", deleteKey, "wifiConfigs", []any{map[string]any{"priority": 1, "profileName": "home"}}), []string{
			"dhcpEnabled: Invalid value", "dhcpEnabled: DHCP enabled must be a boolean", "wifiConfigs: Wifi supports only DHCP in AMT"}},
		{"profile: wifi priority", "POST", "/profiles", with(ccmBody("p6"), "wifiConfigs", []any{map[string]any{"priority": 256, "profileName": "home"}}), []string{
			"wifiConfigs: wifi config priority should be an integer and between 1 and 255"}},
		{"profile: unknown wifi and proxies", "POST", "/profiles", with(ccmBody("p6"), "wifiConfigs", []any{map[string]any{"priority": 1, "profileName": "home2"}, map[string]any{"priority": 2, "profileName": "x"}},
			"proxyConfigs", []any{map[string]any{"priority": 1, "name": "nope"}}), []string{
			"wifiConfigs: wifi configs home2,x does not exists in db", "proxyConfigs: proxy configs nope does not exists in db"}},
		{"profile: too many wifi", "POST", "/profiles", with(ccmBody("p6"), "wifiConfigs", make([]any, 9)), []string{"wifiConfigs: A maximum of 8 wifi profiles can be stored at a time."}},
		{"profile: 802.1x wireless and unknown", "POST", "/profiles", with(ccmBody("p6"), "ieee8021xProfileName", "wless1"), []string{"ieee8021xProfileName: Ieee8021x profile wless1 is for wireless interfaces"}},
		{"profile: 802.1x unknown", "POST", "/profiles", with(ccmBody("p6"), "ieee8021xProfileName", "nope"), []string{"ieee8021xProfileName: Ieee8021x profile nope does not exist in db"}},
		{"profile: tags must be strings (amtd)", "POST", "/profiles", with(ccmBody("p6"), "tags", []any{"a", 1}), []string{"tags: tags should be an array of strings"}},
		{"profile: name with a space", "POST", "/profiles", ccmBody("my profile"), []string{"profileName: AMT profile name accepts letters, numbers, special characters and no spaces"}},
		// Profiles update
		{"profile update: no version", "PATCH", "/profiles", ccmBody("existing"), []string{msgVer}},
		{"profile update: dhcp absent with wifi", "PATCH", "/profiles", with(ccmBody("existing"), "dhcpEnabled", deleteKey, "version", "1", "wifiConfigs", []any{map[string]any{"priority": 1, "profileName": "home"}}), []string{
			"wifiConfigs: DHCP enabled should be true"}},
		{"profile update: unknown 802.1x", "PATCH", "/profiles", with(ccmBody("existing"), "version", "1", "ieee8021xProfileName", "nope"), []string{"ieee8021xProfileName: IEEEProfile config nope does not exists in db"}},
		{"profile update: invalid activation", "PATCH", "/profiles", with(ccmBody("existing"), "version", "1", "activation", "activate"), []string{
			"activation: Activation accepts either acmactivate (admin control activation) or ccmactivate (client control mode activation)"}},
		// Wireless
		{"wireless: empty", "POST", "/wirelessconfigs", map[string]any{}, []string{
			"profileName: Wireless profile name is required", "profileName: Wireless profile name should be alphanumeric",
			"authenticationMethod: Authentication method is required",
			"authenticationMethod: Authentication method must be one of 4:WPA PSK, 5:WPA IEEE 802.1x, 6:WPA2 PSK, 7:WPA2 IEEE 802.1x",
			"encryptionMethod: Encryption method is required", "encryptionMethod: Encryption method must be one of 3:TKIP, 4:CCMP",
			"ssid: SSID is required"}},
		{"wireless: psk too short, ssid too long", "POST", "/wirelessconfigs", with(wirelessBody("w2", "short"), "ssid", strings.Repeat("s", 33)), []string{
			"ssid: Maximum length is 32", "pskPassphrase: PSK Passphrase length should be greater than or equal to 8 and less than or equal to 63"}},
		{"wireless: psk missing", "POST", "/wirelessconfigs", with(wirelessBody("w2", ""), "pskPassphrase", deleteKey), []string{
			"pskPassphrase: PSK Passphrase length should be greater than or equal to 8 and less than or equal to 63"}},
		{"wireless: 802.1x needs a profile", "POST", "/wirelessconfigs", with(wirelessBody("w2", "x"), "authenticationMethod", 7), []string{"ieee8021xProfileName: ieee8021xProfileName is required"}},
		{"wireless: psk with 802.1x profile", "POST", "/wirelessconfigs", with(wirelessBody("w2", "P@ssw0rd1"), "ieee8021xProfileName", "errant"), []string{
			"ieee8021xProfileName: ieee8021xProfileName can not be specified with the provided authenticationMethod",
			"ieee8021xProfileName: Ieee8021x profile errant does not exist in db"}},
		{"wireless: wired 802.1x profile", "POST", "/wirelessconfigs", with(wirelessBody("w2", "x"), "authenticationMethod", 5, "ieee8021xProfileName", "wired1"), []string{"ieee8021xProfileName: Ieee8021x profile wired1 is for wired interfaces"}},
		{"wireless: link policy", "POST", "/wirelessconfigs", with(wirelessBody("w2", "P@ssw0rd1"), "linkPolicy", []any{14, 15}), []string{
			"linkPolicy: Array values should be either 1: available on S0 AC, 14: available on Sx AC, 16: available on S0 DC, 224: available on Sx DC"}},
		{"wireless: link policy not integers", "POST", "/wirelessconfigs", with(wirelessBody("w2", "P@ssw0rd1"), "linkPolicy", []any{"a"}), []string{"linkPolicy: Array does not contain integers"}},
		{"wireless: link policy not an array", "POST", "/wirelessconfigs", with(wirelessBody("w2", "P@ssw0rd1"), "linkPolicy", 14), []string{"linkPolicy: LinkPolicy should be an array of integers"}},
		{"wireless update: version", "PATCH", "/wirelessconfigs", wirelessBody("home", "P@ssw0rd1"), []string{msgVer}},
		// 802.1x
		{"8021x: name", "POST", "/ieee8021xconfigs", map[string]any{"profileName": "test_#", "authenticationProtocol": 0, "pxeTimeout": 120, "wiredInterface": true}, []string{"profileName: 802.1x profile name should be alphanumeric"}},
		{"8021x: wired protocol", "POST", "/ieee8021xconfigs", map[string]any{"profileName": "x1", "authenticationProtocol": 1, "pxeTimeout": 120, "wiredInterface": true}, []string{
			"authenticationProtocol: Authentication protocol must be one of 0:EAP-TLS, 3:PEAPv1/EAP-GTC, 5:EAP-FAST/GTC, 10:EAP-FAST/TLS, 2:PEAPv0/EAP-MSCHAPv2"}},
		{"8021x: wireless protocol", "POST", "/ieee8021xconfigs", map[string]any{"profileName": "x1", "authenticationProtocol": 3, "wiredInterface": false}, []string{
			"authenticationProtocol: Authentication protocol must be one of 0:EAP-TLS, 2:PEAPv0/EAP-MSCHAPv2"}},
		{"8021x: pxe text", "POST", "/ieee8021xconfigs", map[string]any{"profileName": "x1", "authenticationProtocol": 0, "pxeTimeout": "120", "wiredInterface": true}, []string{"pxeTimeout: PXE Timeout must be number"}},
		{"8021x: pxe missing", "POST", "/ieee8021xconfigs", map[string]any{"profileName": "x1", "authenticationProtocol": 0, "wiredInterface": true}, []string{
			"pxeTimeout: PXE Timeout is required", "pxeTimeout: PXE Timeout must be number", "pxeTimeout: PXE Timeout value should be 0 - 86400"}},
		{"8021x: pxe range", "POST", "/ieee8021xconfigs", map[string]any{"profileName": "x1", "authenticationProtocol": 0, "pxeTimeout": 86401, "wiredInterface": true}, []string{"pxeTimeout: PXE Timeout value should be 0 - 86400"}},
		{"8021x: wired flag", "POST", "/ieee8021xconfigs", map[string]any{"profileName": "x1", "authenticationProtocol": 0}, []string{"wiredInterface: Wired interface flag is required"}},
		{"8021x update: version", "PATCH", "/ieee8021xconfigs", map[string]any{"profileName": "wired1", "authenticationProtocol": 0, "pxeTimeout": 1, "wiredInterface": true}, []string{msgVer}},
		// Proxies
		{"proxy: empty name", "POST", "/proxyconfigs", proxyBody("", "proxy.dummy.com"), []string{"name: Proxy profile name is required", "name: Proxy profile name should be alphanumeric"}},
		{"proxy: address", "POST", "/proxyconfigs", proxyBody("p2", "invalid@address!format"), []string{"address: Server address must be a valid IPv4, IPv6, or FQDN"}},
		{"proxy: port", "POST", "/proxyconfigs", with(proxyBody("p2", "192.168.9.58"), "port", 65536), []string{"port: Port value should range between 1 and 65535"}},
		{"proxy: port missing", "POST", "/proxyconfigs", with(proxyBody("p2", "192.168.9.58"), "port", deleteKey), []string{"port: Invalid value", "port: Port value should range between 1 and 65535"}},
		{"proxy: dns suffix", "POST", "/proxyconfigs", with(proxyBody("p2", "192.168.9.58"), "networkDnsSuffix", "-intel.com"), []string{
			"networkDnsSuffix: Domain name of the network should contain alphanumeric and hyphens in the middle"}},
		{"proxy: name too long", "POST", "/proxyconfigs", proxyBody(strings.Repeat("p", 33), "::1"), []string{"name: Proxy profile name maximum length is 32"}},
		// Lists
		{"list query", "GET", "/domains?$top=ten&$skip=-1&$count=notboolean", nil, []string{
			"$top: The number of items to return should be a positive integer",
			"$skip: The number of items to skip before starting to collect the result set should be a positive integer",
			"$count: To return total number of records in result set should be boolean"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := validationErrors(t, env.Do(t, tc.method, base+tc.path, tc.body))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("errors\n got:\n%s\nwant:\n%s", join(got), join(tc.want))
			}
		})
	}
}

// TestValidationErrorShape checks the express-validator object: the raw
// value (not its string form), the omitted value of absent fields, location
// query, and redacted secrets.
func TestValidationErrorShape(t *testing.T) {
	env := newEnv(t)
	resp := env.Do(t, "POST", base+"/profiles", with(ccmBody("p"), "tlsMode", 5, "amtPassword", "Intel123", "generateRandomPassword", false))
	got := string(resp.Body)
	want := `{"errors":[{"type":"field","value":"[redacted]","msg":"AMT password is required field should contains at least one lowercase letter, one uppercase letter, one numeric digit,and one special character and password length should be in between 8 to 32.","path":"amtPassword","location":"body"},` +
		`{"type":"field","value":5,"msg":"tlsMode must be set to one of these values: 1 (Server Authentication Only), 2 (Server and Non-TLS Authentication), 3 (Mutual TLS only), 4 (Mutual and Non-TLS authentication)","path":"tlsMode","location":"body"}]}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	resp = env.Do(t, "POST", base+"/profiles", with(ccmBody("p"), "amtPassword", "Intel123!"))
	if !strings.Contains(string(resp.Body), `{"type":"field","value":true,"msg":"Either generate Random AMT Password`) {
		t.Fatalf("boolean value: %s", resp.Body)
	}
	resp = env.Do(t, "POST", base+"/ciraconfigs", with(ciraBody("c"), "mpsPort", deleteKey))
	if !strings.Contains(string(resp.Body), `{"type":"field","msg":"MPS port is required","path":"mpsPort","location":"body"}`) {
		t.Fatalf("absent value: %s", resp.Body)
	}
	resp = env.Do(t, "GET", base+"/profiles?$count=maybe", nil)
	if string(resp.Body) != `{"errors":[{"type":"field","value":"maybe","msg":"To return total number of records in result set should be boolean","path":"$count","location":"query"}]}` {
		t.Fatalf("query error: %s", resp.Body)
	}
}
