package device_test

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/environmentdetection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/ethernetport"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/general"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/publickey"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/redirection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/remoteaccess"
	amttls "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/tls"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/userinitiatedconnection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/wifiportconfiguration"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/kvm"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/models"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/wifi"
	ipshttp "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/http"
	ipsieee "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/ieee8021x"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/optin"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/device"
)

// must(f())(t) fails the test on an error and returns f's value.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestGeneralAndEthernet(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)
	fw := d.Firmware()

	gs := must(a.AMT.GeneralSettings.Get())(t).Body.GetResponse
	req := general.GeneralSettingsRequest{
		H: "", ElementName: gs.ElementName, InstanceID: gs.InstanceID, HostName: "sim-host", DomainName: testSuffix,
		SharedFQDN: true, AMTNetworkEnabled: general.AMTNetworkEnabled, RmcpPingResponseEnabled: true, PingResponseEnabled: true,
		DDNSUpdateByDHCPServerEnabled: true, DDNSTTL: 900, DDNSPeriodicUpdateInterval: 1440, IdleWakeTimeout: 1,
	}
	put := must(a.AMT.GeneralSettings.Put(req))(t).Body
	if put.GetResponse.HostName != "sim-host" || put.GetResponse.DomainName != testSuffix {
		t.Fatalf("GeneralSettings Put: %+v", put.GetResponse)
	}
	if s := fw.Snapshot(); s.Network.HostName != "sim-host" || s.Network.DomainName != testSuffix {
		t.Fatal("hostname not in the firmware state")
	}

	enum := must(a.AMT.EthernetPortSettings.Enumerate())(t)
	items := must(a.AMT.EthernetPortSettings.Pull(enum.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.EthernetPortItems
	if len(items) != 2 || items[0].InstanceID != "Intel(r) AMT Ethernet Port Settings 0" || !items[0].DHCPEnabled || items[1].PhysicalConnectionType != 3 {
		t.Fatalf("ports %+v", items)
	}
	wired := items[0]
	// static IP without an address: the firmware refuses
	_, err := a.AMT.EthernetPortSettings.Put(wired.InstanceID, ethernetport.SettingsRequest{
		ElementName: wired.ElementName, InstanceID: wired.InstanceID, DHCPEnabled: false, IpSyncEnabled: false, SharedStaticIp: false})
	if err == nil || !strings.Contains(err.Error(), "InvalidRepresentation") {
		t.Fatalf("static without address: %v", err)
	}
	res := must(a.AMT.EthernetPortSettings.Put(wired.InstanceID, ethernetport.SettingsRequest{
		ElementName: wired.ElementName, InstanceID: wired.InstanceID, DHCPEnabled: false, IpSyncEnabled: false,
		IPAddress: "10.1.2.3", SubnetMask: "255.255.255.0", DefaultGateway: "10.1.2.1", PrimaryDNS: "10.1.2.1"}))(t)
	if p := res.Body.GetAndPutResponse; p.DHCPEnabled || p.IPAddress != "10.1.2.3" {
		t.Fatalf("static Put: %+v", p)
	}
	if lan, _ := fw.LANInterface(0); lan.DHCPEnabled || lan.IPv4 != [4]byte{10, 1, 2, 3} {
		t.Fatalf("PTHI view of the wired port: %+v", lan)
	}
	// wireless is DHCP only
	if _, err := a.AMT.EthernetPortSettings.Put("Intel(r) AMT Ethernet Port Settings 1", ethernetport.SettingsRequest{InstanceID: "Intel(r) AMT Ethernet Port Settings 1", DHCPEnabled: false}); err == nil {
		t.Fatal("wireless static accepted")
	}
	if _, err := a.AMT.EthernetPortSettings.Put("Intel(r) AMT Ethernet Port Settings 7", ethernetport.SettingsRequest{InstanceID: "x", DHCPEnabled: true}); err == nil || !strings.Contains(err.Error(), "InvalidSelectors") {
		t.Fatalf("unknown port: %v", err)
	}

	// software identity, boot capabilities, time
	sw := must(a.CIM.SoftwareIdentity.Enumerate())(t)
	ids := must(a.CIM.SoftwareIdentity.Pull(sw.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.SoftwareIdentityItems
	found := false
	for _, i := range ids {
		found = found || (i.InstanceID == "AMT" && i.VersionString == "16.1.25")
	}
	if !found {
		t.Fatalf("CIM_SoftwareIdentity AMT missing: %+v", ids)
	}
	bc := must(a.AMT.BootCapabilities.Get())(t).Body.BootCapabilitiesGetResponse
	if bc.InstanceID != "Intel(r) AMT:BootCapabilities 0" || !bc.SOL || !bc.IDER {
		t.Fatalf("boot capabilities %+v", bc)
	}
	ta0 := must(a.AMT.TimeSynchronizationService.GetLowAccuracyTimeSynch())(t).Body.GetLowAccuracyTimeSynchResponse
	if ta0.ReturnValue != 0 || ta0.Ta0 < time.Now().Unix()-5 {
		t.Fatalf("Ta0 %+v", ta0)
	}
	future := time.Now().Add(time.Hour).Unix()
	set := must(a.AMT.TimeSynchronizationService.SetHighAccuracyTimeSynch(ta0.Ta0, future, future))(t)
	if set.Body.SetHighAccuracyTimeSynchResponse.ReturnValue != 0 || fw.Now().Unix() < future-5 {
		t.Fatalf("time sync: %+v, device clock %v", set.Body.SetHighAccuracyTimeSynchResponse, fw.Now())
	}
}

// nullSignedCSR builds a certificate request for a key that lives on the
// device, with an empty signature (what the Enterprise Assistant sends).
func nullSignedCSR(t *testing.T, pub crypto.PublicKey, cn string) []byte {
	t.Helper()
	spki := must(x509.MarshalPKIXPublicKey(pub))(t)
	subject := must(asn1.Marshal(pkix.Name{CommonName: cn}.ToRDNSequence()))(t)
	tbs := must(asn1.Marshal(struct {
		Version       int
		Subject       asn1.RawValue
		PublicKey     asn1.RawValue
		RawAttributes []asn1.RawValue `asn1:"tag:0"`
	}{0, asn1.RawValue{FullBytes: subject}, asn1.RawValue{FullBytes: spki}, []asn1.RawValue{}}))(t)
	return must(asn1.Marshal(struct {
		TBS       asn1.RawValue
		Algorithm pkix.AlgorithmIdentifier
		Signature asn1.BitString
	}{asn1.RawValue{FullBytes: tbs}, pkix.AlgorithmIdentifier{Algorithm: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, Parameters: asn1.NullRawValue}, asn1.BitString{}}))(t)
}

// issue signs a certificate for pub with the chain's root.
func issue(t *testing.T, ca *testpki.Chain, pub crypto.PublicKey, cn string, eku x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn, Organization: []string{"None"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), ExtKeyUsage: []x509.ExtKeyUsage{eku},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Root, pub, ca.RootKey)
	if err != nil {
		t.Fatal(err)
	}
	return must(x509.ParseCertificate(der))(t)
}

// deviceKey generates a key pair on the device and returns its handle ID and public key.
func deviceKey(t *testing.T, a wsman.Messages) (string, crypto.PublicKey) {
	t.Helper()
	gen := must(a.AMT.PublicKeyManagementService.GenerateKeyPair(publickey.RSA, publickey.KeyLength2048))(t).Body.GenerateKeyPair_OUTPUT
	if gen.ReturnValue != 0 {
		t.Fatalf("GenerateKeyPair %d", gen.ReturnValue)
	}
	id := gen.KeyPair.ReferenceParameters.SelectorSet.Selectors[0].Text
	kp := must(a.AMT.PublicPrivateKeyPair.Get(id))(t).Body.GetResponse
	der := must(base64.StdEncoding.DecodeString(kp.DERKey))(t)
	return id, must(x509.ParsePKCS1PublicKey(der))(t)
}

func TestCertificatesAndTLS(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)
	ca := testpki.NewChain(testpki.ChainOptions{LeafCN: "unused"})
	pkm := a.AMT.PublicKeyManagementService

	root := must(pkm.AddTrustedRootCertificate(b64(ca.Root)))(t).Body.AddTrustedRootCertificate_OUTPUT
	if root.ReturnValue != 0 || root.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors[0].Text != "Intel(r) AMT Certificate: Handle: 0" {
		t.Fatalf("AddTrustedRootCertificate: %+v", root)
	}
	if dup, _ := pkm.AddTrustedRootCertificate(b64(ca.Root)); dup.Body.AddTrustedRootCertificate_OUTPUT.ReturnValue != 2058 { // the library also returns an error
		t.Fatalf("duplicate root: %d", dup.Body.AddTrustedRootCertificate_OUTPUT.ReturnValue)
	}
	if bad, _ := pkm.AddTrustedRootCertificate("bm90IGEgY2VydA=="); bad.Body.AddTrustedRootCertificate_OUTPUT.ReturnValue != 2063 {
		t.Fatalf("garbage root: %d", bad.Body.AddTrustedRootCertificate_OUTPUT.ReturnValue)
	}
	if bad, _ := pkm.GenerateKeyPair(publickey.RSA, publickey.KeyLength(1024)); bad.Body.GenerateKeyPair_OUTPUT.ReturnValue != 2062 {
		t.Fatalf("1024-bit key: %d", bad.Body.GenerateKeyPair_OUTPUT.ReturnValue)
	}
	keyID, pub := deviceKey(t, a)

	// PKCS#10 signed by the device key, with and without a null-signed request
	csrRes := must(pkm.GeneratePKCS10RequestEx(keyID, "", publickey.SHA256RSA))(t).Body.GeneratePKCS10RequestEx_OUTPUT
	csr := must(x509.ParseCertificateRequest(must(base64.StdEncoding.DecodeString(csrRes.SignedCertificateRequest))(t)))(t)
	if csrRes.ReturnValue != 0 || csr.CheckSignature() != nil || !csr.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatalf("PKCS#10: rv %d sig %v", csrRes.ReturnValue, csr.CheckSignature())
	}
	nullDER := nullSignedCSR(t, pub, "ea-subject")
	csrRes = must(pkm.GeneratePKCS10RequestEx(keyID, base64.StdEncoding.EncodeToString(nullDER), publickey.SHA256RSA))(t).Body.GeneratePKCS10RequestEx_OUTPUT
	csr = must(x509.ParseCertificateRequest(must(base64.StdEncoding.DecodeString(csrRes.SignedCertificateRequest))(t)))(t)
	if csr.Subject.CommonName != "ea-subject" || csr.CheckSignature() != nil {
		t.Fatalf("null-signed request: %+v %v", csr.Subject, csr.CheckSignature())
	}
	if sha1, _ := pkm.GeneratePKCS10RequestEx(keyID, "", publickey.SHA1RSA); sha1.Body.GeneratePKCS10RequestEx_OUTPUT.ReturnValue != 2066 {
		t.Fatalf("SHA-1 request: %d", sha1.Body.GeneratePKCS10RequestEx_OUTPUT.ReturnValue)
	}

	// the TLS certificate for the device key; a certificate without a key is refused
	leaf := issue(t, ca, pub, "AMT-sim", x509.ExtKeyUsageServerAuth)
	if nokey, _ := pkm.AddCertificate(b64(issue(t, ca, testpki.Key(2048, testpki.SlotOther).Public(), "x", x509.ExtKeyUsageServerAuth))); nokey.Body.AddCertificate_OUTPUT.ReturnValue != 2064 {
		t.Fatalf("certificate without key: %d", nokey.Body.AddCertificate_OUTPUT.ReturnValue)
	}
	added := must(pkm.AddCertificate(b64(leaf)))(t).Body.AddCertificate_OUTPUT
	certID := added.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors[0].Text
	if added.ReturnValue != 0 || certID != "Intel(r) AMT Certificate: Handle: 1" {
		t.Fatalf("AddCertificate: %+v", added)
	}
	ce := must(a.AMT.PublicKeyCertificate.Enumerate())(t)
	certs := must(a.AMT.PublicKeyCertificate.Pull(ce.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.PublicKeyCertificateItems
	if len(certs) != 2 || !certs[0].TrustedRootCertificate || certs[1].TrustedRootCertificate || certs[1].Subject != "O=None,CN=AMT-sim" || certs[0].Issuer != "O=amtd test,CN=amtd test root" {
		t.Fatalf("certificates %+v", certs)
	}
	ke := must(a.AMT.PublicPrivateKeyPair.Enumerate())(t)
	if keys := must(a.AMT.PublicPrivateKeyPair.Pull(ke.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.PublicPrivateKeyPairItems; len(keys) != 1 || keys[0].InstanceID != keyID {
		t.Fatalf("keys %+v", keys)
	}
	cd := must(a.CIM.ConcreteDependency.Enumerate())(t)
	if deps := must(a.CIM.ConcreteDependency.Pull(cd.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.Items; len(deps) != 1 {
		t.Fatalf("concrete dependencies %+v", deps)
	}

	// credential context: Create, then AlreadyExists as real firmware says
	cc := must(a.AMT.TLSCredentialContext.Create(certID))(t).Body.CredentialContextCreateResponse
	if cc.ReferenceParameters.ResourceURI != "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_TLSCredentialContext" {
		t.Fatalf("Create: %+v", cc)
	}
	if _, err := a.AMT.TLSCredentialContext.Create(certID); err == nil || !strings.Contains(err.Error(), "AlreadyExists") {
		t.Fatalf("second Create: %v", err)
	}
	if _, err := a.AMT.PublicKeyCertificate.Delete(certID); err == nil {
		t.Fatal("certificate in use deleted")
	}

	// TLS: server authentication only (tlsMode 1), committed
	ts := must(a.AMT.TLSSettingData.Enumerate())(t)
	settings := must(a.AMT.TLSSettingData.Pull(ts.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.SettingDataItems
	if len(settings) != 2 || settings[0].InstanceID != "Intel(r) AMT 802.3 TLS Settings" || settings[1].InstanceID != "Intel(r) AMT LMS TLS Settings" {
		t.Fatalf("TLS settings %+v", settings)
	}
	remote := amttls.SettingDataRequest{ElementName: settings[0].ElementName, InstanceID: settings[0].InstanceID, Enabled: true, AcceptNonSecureConnections: false}
	if p := must(a.AMT.TLSSettingData.Put(remote.InstanceID, remote))(t).Body.SettingDataGetAndPutResponse; !p.Enabled || p.AcceptNonSecureConnections {
		t.Fatalf("TLS Put %+v", p)
	}
	if d.TLSAddr() != "" {
		t.Fatal("TLS port open before CommitChanges")
	}
	if c := must(a.AMT.SetupAndConfigurationService.CommitChanges())(t).Body.CommitChanges_OUTPUT; c.ReturnValue != 0 {
		t.Fatalf("CommitChanges %d", c.ReturnValue)
	}
	if d.TLSAddr() == "" {
		t.Fatal("TLS port not open after CommitChanges")
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Root)
	tc := wsmanTLSClient(d, "admin", testPassword, &tls.Config{RootCAs: pool, ServerName: "AMT-sim"})
	if _, err := tc.AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("WS-MAN over TLS: %v", err)
	}
	// old AMT style RSA key exchange still works
	rsaOnly := &tls.Config{RootCAs: pool, ServerName: "AMT-sim", MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256}}
	if _, err := wsmanTLSClient(d, "admin", testPassword, rsaOnly).AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("RSA key exchange: %v", err)
	}
	// non-TLS port now refuses
	if _, err := a.AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("plain HTTP answered with TLS-only configuration")
	}

	// mutual authentication with a trusted CN
	client := issue(t, ca, testpki.Key(2048, testpki.SlotOther).Public(), "console.example.com", x509.ExtKeyUsageClientAuth)
	mutual := amttls.SettingDataRequest{ElementName: remote.ElementName, InstanceID: remote.InstanceID, Enabled: true, MutualAuthentication: true, TrustedCN: []string{"console.example.com"}}
	must(tc.AMT.TLSSettingData.Put(mutual.InstanceID, mutual))(t)
	must(tc.AMT.SetupAndConfigurationService.CommitChanges())(t)
	if _, err := wsmanTLSClient(d, "admin", testPassword, &tls.Config{RootCAs: pool, ServerName: "AMT-sim"}).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("TLS without client certificate accepted under mutual authentication")
	}
	mcfg := &tls.Config{RootCAs: pool, ServerName: "AMT-sim", Certificates: []tls.Certificate{{Certificate: [][]byte{client.Raw}, PrivateKey: testpki.Key(2048, testpki.SlotOther)}}}
	mc := wsmanTLSClient(d, "admin", testPassword, mcfg)
	if _, err := mc.AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("mutual TLS: %v", err)
	}

	// unconfigure (activation.md §10.1 order)
	off := amttls.SettingDataRequest{ElementName: remote.ElementName, InstanceID: remote.InstanceID, Enabled: false, AcceptNonSecureConnections: true}
	must(mc.AMT.TLSSettingData.Put(off.InstanceID, off))(t)
	must(mc.AMT.SetupAndConfigurationService.CommitChanges())(t)
	if d.TLSAddr() != "" {
		t.Fatal("TLS port still open")
	}
	a = adminClient(d)
	if _, err := a.AMT.TLSCredentialContext.Delete(certID); err != nil {
		t.Fatalf("delete credential context: %v", err)
	}
	if _, err := a.AMT.PublicPrivateKeyPair.Delete(keyID); err != nil {
		t.Fatalf("delete key: %v", err)
	}
	for _, id := range []string{certID, "Intel(r) AMT Certificate: Handle: 0"} {
		if _, err := a.AMT.PublicKeyCertificate.Delete(id); err != nil {
			t.Fatalf("delete %s: %v", id, err)
		}
	}
	if _, err := a.AMT.PublicKeyCertificate.Delete(certID); err == nil || !strings.Contains(err.Error(), "InvalidSelectors") {
		t.Fatalf("deleting twice: %v", err)
	}
	if s := d.Firmware().Snapshot(); len(s.Certs) != 0 || len(s.Keys) != 0 || s.TLS.CredentialCert != -1 {
		t.Fatalf("store not empty: %+v", s.TLS)
	}
}

func TestWirelessAnd8021x(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)

	cfg := must(a.AMT.WiFiPortConfigurationService.Get())(t).Body.WiFiPortConfigurationService
	put := must(a.AMT.WiFiPortConfigurationService.Put(wifiportconfiguration.WiFiPortConfigurationServiceRequest{
		ElementName: cfg.ElementName, Name: cfg.Name, CreationClassName: cfg.CreationClassName, SystemName: cfg.SystemName, SystemCreationClassName: cfg.SystemCreationClassName,
		LocalProfileSynchronizationEnabled: 3, UEFIWiFiProfileShareEnabled: true}))(t).Body.WiFiPortConfigurationService
	if put.LocalProfileSynchronizationEnabled != 3 || !put.UEFIWiFiProfileShareEnabled {
		t.Fatalf("WiFiPortConfigurationService Put %+v", put)
	}
	if rsc := must(a.CIM.WiFiPort.RequestStateChange(32769))(t).Body.RequestStateChange_OUTPUT; rsc.ReturnValue != 0 {
		t.Fatalf("WiFiPort RequestStateChange %d", rsc.ReturnValue)
	}
	if rsc, _ := a.CIM.WiFiPort.RequestStateChange(7); rsc.Body.RequestStateChange_OUTPUT.ReturnValue != 5 {
		t.Fatalf("WiFiPort bad state %d", rsc.Body.RequestStateChange_OUTPUT.ReturnValue)
	}
	pe := must(a.CIM.WiFiPort.Enumerate())(t)
	if ports := must(a.CIM.WiFiPort.Pull(pe.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.WiFiPortItems; len(ports) != 1 || ports[0].EnabledState != 32769 {
		t.Fatalf("WiFi port %+v", ports)
	}

	psk := wifi.WiFiEndpointSettingsRequest{ElementName: "home", InstanceID: "Intel(r) AMT:WiFi Endpoint Settings home", SSID: "homenet", Priority: 1,
		AuthenticationMethod: wifi.AuthenticationMethodWPA2PSK, EncryptionMethod: wifi.EncryptionMethodCCMP, PSKPassPhrase: "correct horse"}
	res, err := a.AMT.WiFiPortConfigurationService.AddWiFiSettings(psk, models.IEEE8021xSettings{}, "WiFi Endpoint 0", "", "")
	if err != nil || res.Body.AddWiFiSettingsOutput.ReturnValue != 0 {
		t.Fatalf("AddWiFiSettings: %v %+v", err, res.Body.AddWiFiSettingsOutput)
	}
	if dup, _ := a.AMT.WiFiPortConfigurationService.AddWiFiSettings(psk, models.IEEE8021xSettings{}, "WiFi Endpoint 0", "", ""); dup.Body.AddWiFiSettingsOutput.ReturnValue != 2058 {
		t.Fatalf("duplicate profile: %d", dup.Body.AddWiFiSettingsOutput.ReturnValue)
	}
	short := psk
	short.ElementName, short.InstanceID, short.PSKPassPhrase = "short", "Intel(r) AMT:WiFi Endpoint Settings short", "123"
	if bad, _ := a.AMT.WiFiPortConfigurationService.AddWiFiSettings(short, models.IEEE8021xSettings{}, "WiFi Endpoint 0", "", ""); bad.Body.AddWiFiSettingsOutput.ReturnValue != 2070 {
		t.Fatalf("short passphrase: %d", bad.Body.AddWiFiSettingsOutput.ReturnValue)
	}

	// WPA2-802.1x with EAP-TLS: device key, client certificate, CA
	ca := testpki.NewChain(testpki.ChainOptions{LeafCN: "unused"})
	keyID, pub := deviceKey(t, a)
	_ = keyID
	clientCert := must(a.AMT.PublicKeyManagementService.AddCertificate(b64(issue(t, ca, pub, "device-8021x", x509.ExtKeyUsageClientAuth))))(t).Body.AddCertificate_OUTPUT
	caCert := must(a.AMT.PublicKeyManagementService.AddTrustedRootCertificate(b64(ca.Root)))(t).Body.AddTrustedRootCertificate_OUTPUT
	if clientCert.ReturnValue != 0 || caCert.ReturnValue != 0 {
		t.Fatalf("certificates: %d %d", clientCert.ReturnValue, caCert.ReturnValue)
	}
	clientID := clientCert.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors[0].Text
	caID := caCert.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors[0].Text
	ent := wifi.WiFiEndpointSettingsRequest{ElementName: "corp", InstanceID: "Intel(r) AMT:WiFi Endpoint Settings corp", SSID: "corpnet", Priority: 2,
		AuthenticationMethod: wifi.AuthenticationMethodWPA2IEEE8021x, EncryptionMethod: wifi.EncryptionMethodCCMP}
	x := models.IEEE8021xSettings{ElementName: "corp", InstanceID: "Intel(r) AMT:IEEE 802.1x Settings corp", AuthenticationProtocol: 0, Username: "device-8021x"}
	res, err = a.AMT.WiFiPortConfigurationService.AddWiFiSettings(ent, x, "WiFi Endpoint 0", clientID, caID)
	if err != nil || res.Body.AddWiFiSettingsOutput.ReturnValue != 0 {
		t.Fatalf("AddWiFiSettings 802.1x: %v %d", err, res.Body.AddWiFiSettingsOutput.ReturnValue)
	}
	es := must(a.CIM.WiFiEndpointSettings.Enumerate())(t)
	profiles := must(a.CIM.WiFiEndpointSettings.Pull(es.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.EndpointSettingsItems
	if len(profiles) != 2 || profiles[0].SSID != "homenet" || profiles[1].AuthenticationMethod != wifi.AuthenticationMethodWPA2IEEE8021x {
		t.Fatalf("profiles %+v", profiles)
	}
	xe := must(a.CIM.IEEE8021xSettings.Enumerate())(t)
	if xs := must(a.CIM.IEEE8021xSettings.Pull(xe.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.IEEE8021xSettingsItems; len(xs) != 1 || xs[0].ElementName != "corp" {
		t.Fatalf("802.1x settings %+v", xs)
	}
	cc := must(a.CIM.CredentialContext.Enumerate())(t)
	ctxs := must(a.CIM.CredentialContext.Pull(cc.Body.EnumerateResponse.EnumerationContext))(t)
	if n := strings.Count(ctxs.XMLOutput, "<h:CIM_CredentialContext>"); n != 2 {
		t.Fatalf("%d credential contexts", n)
	}
	if _, err := a.CIM.WiFiEndpointSettings.Delete("Intel(r) AMT:WiFi Endpoint Settings home"); err != nil {
		t.Fatalf("delete profile: %v", err)
	}
	if s := d.Firmware().Snapshot(); len(s.WiFi.Profiles) != 1 || s.WiFi.LocalProfileSync != 3 || s.WiFi.PortEnabledState != 32769 {
		t.Fatalf("wifi state %+v", s.WiFi)
	}

	// wired 802.1x
	w := must(a.IPS.IEEE8021xSettings.Get())(t).Body.IEEE8021xSettingsResponse
	if w.InstanceID != "Intel(r) AMT: 8021X Settings" || w.Enabled != 3 {
		t.Fatalf("IPS_IEEE8021xSettings %+v", w)
	}
	wp := must(a.IPS.IEEE8021xSettings.Put(ipsieee.IEEE8021xSettingsRequest{ElementName: w.ElementName, InstanceID: w.InstanceID,
		Enabled: 2, AvailableInS0: true, AuthenticationProtocol: 0, Username: "wired-dev", PxeTimeout: 120}))(t).Body.IEEE8021xSettingsResponse
	if wp.Enabled != 2 || !wp.AvailableInS0 || d.Firmware().Snapshot().IEEE8021x.Wired.Username != "wired-dev" {
		t.Fatalf("wired Put %+v", wp)
	}
	sc := must(a.IPS.IEEE8021xSettings.SetCertificates(caID, clientID))(t).Body.SetCertificatesResponse
	if sc.ReturnValue != 0 {
		t.Fatalf("SetCertificates %d", sc.ReturnValue)
	}
	if bad := must(a.IPS.IEEE8021xSettings.SetCertificates("Intel(r) AMT Certificate: Handle: 42", clientID))(t).Body.SetCertificatesResponse; bad.ReturnValue != 36 {
		t.Fatalf("SetCertificates with unknown certificate %d", bad.ReturnValue)
	}

	// proxies
	ap := must(a.IPS.HTTPProxyService.AddProxyAccessPoint("proxy.corp.example.com", ipshttp.InfoFormatFQDN, 8080, testSuffix))(t).Body.AddProxyAccessPointResponse
	if ap.ReturnValue != 0 || !strings.HasPrefix(ap.ProxyAccessPoint.ReferenceParameters.SelectorSet.Selector[1].Value, "Intel(r) ME:HTTP Proxy Access Point ") {
		t.Fatalf("AddProxyAccessPoint %+v", ap)
	}
	if dup := must(a.IPS.HTTPProxyService.AddProxyAccessPoint("proxy.corp.example.com", ipshttp.InfoFormatFQDN, 8080, testSuffix))(t).Body.AddProxyAccessPointResponse; dup.ReturnValue != 2058 {
		t.Fatalf("duplicate proxy %d", dup.ReturnValue)
	}
	pa := must(a.IPS.HTTPProxyAccessPointService.Enumerate())(t)
	items := must(a.IPS.HTTPProxyAccessPointService.Pull(pa.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.Items
	if len(items) != 1 || items[0].Port != 8080 || items[0].NetworkDnsSuffix != testSuffix {
		t.Fatalf("proxies %+v", items)
	}
	if _, err := a.IPS.HTTPProxyAccessPointService.Delete(items[0].Name); err != nil {
		t.Fatalf("delete proxy: %v", err)
	}
}

func TestCIRAConfiguration(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)
	ca := testpki.NewChain(testpki.ChainOptions{LeafCN: "unused"})
	must(a.AMT.PublicKeyManagementService.AddTrustedRootCertificate(b64(ca.Root)))(t)

	mps := remoteaccess.AddMpServerRequest{AccessInfo: "mps.example.com", InfoFormat: remoteaccess.FQDN, Port: 4433, AuthMethod: remoteaccess.UsernamePasswordAuthentication, Username: "ciraUser", Password: "CiraP@ss1"}
	add := must(a.AMT.RemoteAccessService.AddMPS(mps))(t).Body.AddMpServerResponse
	if add.ReturnValue != 0 {
		t.Fatalf("AddMpServer %d", add.ReturnValue)
	}
	if dup := must(a.AMT.RemoteAccessService.AddMPS(mps))(t).Body.AddMpServerResponse; dup.ReturnValue != 2058 {
		t.Fatalf("duplicate MPS %d", dup.ReturnValue)
	}
	long := mps
	long.AccessInfo, long.Password = "mps2.example.com", strings.Repeat("P@ss", 5)
	if bad := must(a.AMT.RemoteAccessService.AddMPS(long))(t).Body.AddMpServerResponse; bad.ReturnValue != 36 {
		t.Fatalf("long MPS password %d", bad.ReturnValue)
	}
	se := must(a.AMT.ManagementPresenceRemoteSAP.Enumerate())(t)
	saps := must(a.AMT.ManagementPresenceRemoteSAP.Pull(se.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.ManagementRemoteItems
	if len(saps) != 1 || saps[0].Name != "Intel(r) AMT:Management Presence Server 0" || saps[0].Port != 4433 {
		t.Fatalf("RemoteSAP %+v", saps)
	}
	periodic := remoteaccess.RemoteAccessPolicyRuleRequest{Trigger: remoteaccess.Periodic, TunnelLifeTime: 0, ExtendedData: "AAAAAAAAABk="}
	if r := must(a.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(periodic, saps[0].Name))(t).Body.AddRemotePolicyRuleResponse; r.ReturnValue != 0 {
		t.Fatalf("periodic rule %d", r.ReturnValue)
	}
	user := remoteaccess.RemoteAccessPolicyRuleRequest{Trigger: remoteaccess.UserInitiated, TunnelLifeTime: 300}
	if r := must(a.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(user, saps[0].Name))(t).Body.AddRemotePolicyRuleResponse; r.ReturnValue != 0 {
		t.Fatalf("user-initiated rule %d", r.ReturnValue)
	}
	if r := must(a.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(user, saps[0].Name))(t).Body.AddRemotePolicyRuleResponse; r.ReturnValue != 2058 {
		t.Fatalf("duplicate rule %d", r.ReturnValue)
	}
	if r := must(a.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(remoteaccess.RemoteAccessPolicyRuleRequest{Trigger: remoteaccess.Alert}, "Intel(r) AMT:Management Presence Server 9"))(t).Body.AddRemotePolicyRuleResponse; r.ReturnValue != 36 {
		t.Fatalf("rule for unknown MPS %d", r.ReturnValue)
	}
	re := must(a.AMT.RemoteAccessPolicyRule.Enumerate())(t)
	if rules := must(a.AMT.RemoteAccessPolicyRule.Pull(re.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.RemotePolicyRuleItems; len(rules) != 2 || rules[0].PolicyRuleName != "Periodic" || rules[0].ExtendedData != "AAAAAAAAABk=" {
		t.Fatalf("rules %+v", rules)
	}
	ae := must(a.AMT.RemoteAccessPolicyAppliesToMPS.Enumerate())(t)
	applies := must(a.AMT.RemoteAccessPolicyAppliesToMPS.Pull(ae.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.PolicyAppliesItems
	if len(applies) != 2 {
		t.Fatalf("applies-to %+v", applies)
	}
	for _, ap := range applies {
		req := &remoteaccess.RemoteAccessPolicyAppliesToMPSRequest{
			ManagedElement: remoteaccess.ManagedElement{Address: ap.ManagedElement.Address, B: "http://schemas.xmlsoap.org/ws/2004/08/addressing",
				ReferenceParameters: remoteaccess.ReferenceParameters{ResourceURI: ap.ManagedElement.ReferenceParameters.ResourceURI}},
			OrderOfAccess: 0, MPSType: remoteaccess.BothMPS,
			PolicySet: remoteaccess.PolicySet{Address: ap.PolicySet.Address, B: "http://schemas.xmlsoap.org/ws/2004/08/addressing",
				ReferenceParameters: remoteaccess.ReferenceParameters{ResourceURI: ap.PolicySet.ReferenceParameters.ResourceURI}},
		}
		if _, err := a.AMT.RemoteAccessPolicyAppliesToMPS.Put(req); err != nil {
			t.Fatalf("AppliesToMPS Put: %v", err)
		}
	}
	// go-wsman-messages always addresses the Periodic association in the
	// header selectors (RPS rewrites them); the device follows the selectors
	for _, ap := range d.Firmware().Snapshot().CIRA.AppliesTo {
		if want := map[string]int{"Periodic": 2, "User Initiated": 0}[ap.Policy]; ap.MpsType != want {
			t.Fatalf("MpsType: %+v", ap)
		}
	}
	if r := must(a.AMT.UserInitiatedConnectionService.RequestStateChange(userinitiatedconnection.BIOSandOSInterfacesEnabled))(t).Body.RequestStateChange_OUTPUT; r.ReturnValue != 0 {
		t.Fatalf("user initiated %d", r.ReturnValue)
	}
	if g := must(a.AMT.UserInitiatedConnectionService.Get())(t).Body.GetResponse; g.EnabledState != 32771 {
		t.Fatalf("user initiated state %d", g.EnabledState)
	}
	env := must(a.AMT.EnvironmentDetectionSettingData.Get())(t).Body.GetAndPutResponse
	envPut := must(a.AMT.EnvironmentDetectionSettingData.Put(environmentdetection.EnvironmentDetectionSettingDataRequest{
		ElementName: env.ElementName, InstanceID: env.InstanceID, DetectionStrings: []string{"b332bb28-ef3a-43b0-b998-342285ac1e26.com"}}))(t).Body.GetAndPutResponse
	if len(envPut.DetectionStrings) != 1 {
		t.Fatalf("detection strings %+v", envPut)
	}
	// unconfigure: rules, then the server
	for _, n := range []string{"Periodic", "User Initiated"} {
		if _, err := a.AMT.RemoteAccessPolicyRule.Delete(n); err != nil {
			t.Fatalf("delete rule %s: %v", n, err)
		}
	}
	if _, err := a.AMT.ManagementPresenceRemoteSAP.Delete(saps[0].Name); err != nil {
		t.Fatalf("delete SAP: %v", err)
	}
	if s := d.Firmware().Snapshot().CIRA; len(s.MPServers)+len(s.Policies)+len(s.AppliesTo) != 0 {
		t.Fatalf("CIRA not cleared %+v", s)
	}
}

func TestRedirectionKVMAndConsent(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)
	fw := d.Firmware()

	if r := must(a.AMT.RedirectionService.RequestStateChange(redirection.EnableIDERAndSOL))(t).Body.RequestStateChange_OUTPUT; r.ReturnValue != 0 {
		t.Fatalf("redirection RequestStateChange %d", r.ReturnValue)
	}
	rs := must(a.AMT.RedirectionService.Get())(t).Body.GetAndPutResponse
	put := must(a.AMT.RedirectionService.Put(redirection.RedirectionRequest{CreationClassName: rs.CreationClassName, ElementName: rs.ElementName, Name: rs.Name,
		SystemCreationClassName: rs.SystemCreationClassName, SystemName: rs.SystemName, EnabledState: redirection.EnabledState(rs.EnabledState), ListenerEnabled: false}))(t).Body.GetAndPutResponse
	if put.ListenerEnabled || put.EnabledState != 32771 {
		t.Fatalf("redirection Put %+v", put)
	}
	if r := must(a.CIM.KVMRedirectionSAP.RequestStateChange(kvm.RedirectionSAPDisable))(t).Body.RequestStateChange_OUTPUT; r.ReturnValue != 0 {
		t.Fatalf("KVM disable %d", r.ReturnValue)
	}
	if k := must(a.CIM.KVMRedirectionSAP.Get())(t).Body.GetResponse; k.EnabledState != 3 {
		t.Fatalf("KVM state %d", k.EnabledState)
	}
	if r := must(a.CIM.KVMRedirectionSAP.RequestStateChange(kvm.RedirectionSAPEnable))(t).Body.RequestStateChange_OUTPUT; r.ReturnValue != 0 {
		t.Fatalf("KVM enable %d", r.ReturnValue)
	}
	if k := must(a.CIM.KVMRedirectionSAP.Get())(t).Body.GetResponse; k.EnabledState != 6 || k.RequestedState != 2 {
		t.Fatalf("KVM enabled state %+v", k)
	}

	oi := must(a.IPS.OptInService.Get())(t).Body.GetAndPutResponse
	if oi.OptInRequired != 4294967295 || oi.CanModifyOptInPolicy != 0 {
		t.Fatalf("opt-in in CCM %+v", oi)
	}
	req := optin.OptInServiceRequest{CreationClassName: oi.CreationClassName, ElementName: oi.ElementName, Name: oi.Name, SystemName: oi.SystemName,
		SystemCreationClassName: oi.SystemCreationClassName, OptInCodeTimeout: oi.OptInCodeTimeout, OptInDisplayTimeout: oi.OptInDisplayTimeout, OptInRequired: 0}
	if _, err := a.IPS.OptInService.Put(req); err == nil {
		t.Fatal("consent disabled in CCM")
	}
	req.OptInRequired = 1
	if p := must(a.IPS.OptInService.Put(req))(t).Body.GetAndPutResponse; p.OptInRequired != 1 {
		t.Fatalf("opt-in Put %+v", p)
	}
	if r := must(a.IPS.OptInService.CancelOptIn())(t).Body.CancelOptInResponse; r.ReturnValue != 2 {
		t.Fatalf("cancel without request %d", r.ReturnValue)
	}
	if r := must(a.IPS.OptInService.StartOptIn())(t).Body.StartOptInResponse; r.ReturnValue != 0 {
		t.Fatalf("StartOptIn %d", r.ReturnValue)
	}
	code, shown := fw.DisplayedOptInCode()
	if !shown || len(code) != 6 {
		t.Fatalf("code on screen %q %v", code, shown)
	}
	wrong := 0
	if code == "000000" {
		wrong = 1
	}
	if r := must(a.IPS.OptInService.SendOptInCode(wrong))(t).Body.SendOptInCodeResponse; r.ReturnValue != 2066 {
		t.Fatalf("wrong code %d", r.ReturnValue)
	}
	n := 0
	for _, c := range code {
		n = n*10 + int(c-'0')
	}
	if r := must(a.IPS.OptInService.SendOptInCode(n))(t).Body.SendOptInCodeResponse; r.ReturnValue != 0 {
		t.Fatalf("right code %d", r.ReturnValue)
	}
	if s := must(a.IPS.OptInService.Get())(t).Body.GetAndPutResponse; s.OptInState != 3 {
		t.Fatalf("opt-in state %d", s.OptInState)
	}
	if r := must(a.IPS.OptInService.CancelOptIn())(t).Body.CancelOptInResponse; r.ReturnValue != 0 {
		t.Fatalf("cancel %d", r.ReturnValue)
	}
}

var _ = errors.New
var _ device.Config
