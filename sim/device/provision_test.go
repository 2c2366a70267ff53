package device_test

import (
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/setupandconfiguration"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/hostbasedsetup"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
	"github.com/amtd-project/amtd/sim/hostif"
)

func md5hex(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }

func TestHTTPAndDigestAsAMT(t *testing.T) {
	d := startDevice(t, devOpts{})
	fw := d.Firmware()

	// unauthenticated: 401 with AMT's exact challenge, Content-Length, close
	raw := rawExchange(t, d.Addr(), "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	if !strings.HasPrefix(raw, "HTTP/1.1 401 Unauthorized\r\n") {
		t.Fatalf("first answer: %q", raw)
	}
	re := regexp.MustCompile(`(?m)^WWW-Authenticate: Digest realm="(Digest:[0-9A-F]{32})", nonce="[A-Za-z0-9+/]{32}",stale="false",qop="auth"\r$`)
	sm := re.FindStringSubmatch(raw)
	if sm == nil || sm[1] != fw.Realm() {
		t.Fatalf("challenge not in AMT's shape: %q", raw)
	}
	for _, h := range []string{"Content-Length: ", "Connection: close", "Server: Intel(R) Active Management Technology 16.1.25.2050", "Content-Type: text/html"} {
		if !strings.Contains(raw, h) {
			t.Errorf("401 lacks %q", h)
		}
	}

	// an authorised Get, Content-Length and chunked requests alike
	user, pw := fw.LocalSystemAccount()
	get := soapRequest("http://schemas.xmlsoap.org/ws/2004/09/transfer/Get", "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings", "uuid:4711-abc", "", "")
	for _, chunked := range []bool{false, true} {
		raw = digestPost(t, d.Addr(), user, pw, get, chunked)
		if !strings.HasPrefix(raw, "HTTP/1.1 200 OK\r\n") {
			t.Fatalf("chunked=%v: %q", chunked, raw)
		}
		head, body, _ := strings.Cut(raw, "\r\n\r\n")
		for _, h := range []string{"Transfer-Encoding: chunked", "Content-Type: application/soap+xml; charset=UTF-8", "X-Frame-Options: DENY", "Date: "} {
			if !strings.Contains(head, h) {
				t.Errorf("200 head lacks %q: %q", h, head)
			}
		}
		if !regexp.MustCompile(`^[0-9A-F]{4}\r\n<\?xml version="1.0" encoding="UTF-8"\?><a:Envelope xmlns:a=`).MatchString(body) || !strings.HasSuffix(body, "\r\n0\r\n\r\n") {
			t.Errorf("body not chunked with 4-digit upper-case sizes: %.80q … %q", body, body[max(0, len(body)-20):])
		}
		for _, want := range []string{
			"<b:RelatesTo>uuid:4711-abc</b:RelatesTo>",
			`<b:Action a:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse</b:Action>`,
			`xmlns:g="http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"`,
			"<g:DigestRealm>" + fw.Realm() + "</g:DigestRealm>",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("body lacks %q", want)
			}
		}
		if !regexp.MustCompile(`<b:MessageID>uuid:00000000-8086-8086-8086-[0-9A-F]{12}</b:MessageID>`).MatchString(body) {
			t.Errorf("MessageID not AMT-shaped")
		}
	}

	// a probe connection (connect, close) is harmless
	for range 3 {
		c, err := netDial(d.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}

	// Intel's client: realm read with the LSA
	m := lsaClient(d)
	gs, err := m.AMT.GeneralSettings.Get()
	if err != nil {
		t.Fatal(err)
	}
	if gs.Body.GetResponse.DigestRealm != fw.Realm() || gs.Body.GetResponse.InstanceID != "Intel(r) AMT: General Settings" {
		t.Fatalf("GeneralSettings: %+v", gs.Body.GetResponse)
	}
	// wrong password: the library gives up after its one retry
	if _, err := wsmanClient(d, user, "nope").AMT.GeneralSettings.Get(); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v", err)
	}
	// nobody but the LSA before activation
	if _, err := wsmanClient(d, "admin", testPassword).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("admin accepted before activation")
	}
	// the LSA cannot configure before activation
	if _, err := m.AMT.TimeSynchronizationService.GetLowAccuracyTimeSynch(); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("LSA configured the device: %v", err)
	}
}

func activateCCM(t *testing.T, d *device.Device) {
	t.Helper()
	m := lsaClient(d)
	gs, err := m.AMT.GeneralSettings.Get()
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, gs.Body.GetResponse.DigestRealm, testPassword)
	if err != nil || res.Body.Setup_OUTPUT.ReturnValue != 0 {
		t.Fatalf("Setup: %v %+v", err, res.Body.Setup_OUTPUT)
	}
}

func TestCCMActivationAndUnprovision(t *testing.T) {
	d := startDevice(t, devOpts{})
	fw := d.Firmware()
	m := lsaClient(d)
	hbs, err := m.IPS.HostBasedSetupService.Get()
	if err != nil {
		t.Fatal(err)
	}
	g := hbs.Body.GetResponse
	if g.CurrentControlMode != 0 || len(g.AllowedControlModes) != 2 || g.CertChainStatus != 0 {
		t.Fatalf("HBS before: %+v", g)
	}
	if n, err := base64.StdEncoding.DecodeString(g.ConfigurationNonce); err != nil || len(n) != 20 {
		t.Fatalf("nonce %q", g.ConfigurationNonce)
	}
	// a bad password hash is InvalidParam
	bad, _ := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeNone, fw.Realm(), testPassword)
	if bad.Body.Setup_OUTPUT.ReturnValue != 3 {
		t.Fatalf("Setup with encryption type 0: %d", bad.Body.Setup_OUTPUT.ReturnValue)
	}
	lsaUser, lsaPW := fw.LocalSystemAccount()
	activateCCM(t, d)
	if fw.ControlMode() != 1 || fw.ProvisioningState() != 2 {
		t.Fatalf("PTHI view after Setup: mode %d state %d", fw.ControlMode(), fw.ProvisioningState())
	}
	// the LSA is out, admin with the new password is in
	if _, err := wsmanClient(d, lsaUser, lsaPW).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("LSA accepted after activation")
	}
	if _, err := wsmanClient(d, "admin", "other").AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("wrong admin password accepted")
	}
	a := adminClient(d)
	hbs, err = a.IPS.HostBasedSetupService.Get()
	if err != nil || hbs.Body.GetResponse.CurrentControlMode != 1 {
		t.Fatalf("HBS after: %v %+v", err, hbs.Body.GetResponse)
	}
	sc, err := a.AMT.SetupAndConfigurationService.Get()
	if err != nil || sc.Body.GetResponse.ProvisioningState != 2 || sc.Body.GetResponse.ProvisioningMode != 4 {
		t.Fatalf("SetupAndConfiguration: %v %+v", err, sc.Body.GetResponse)
	}
	// a second Setup is InvalidState
	again, _ := a.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, fw.Realm(), testPassword)
	if again.Body.Setup_OUTPUT.ReturnValue != 2 {
		t.Fatalf("second Setup: %d", again.Body.Setup_OUTPUT.ReturnValue)
	}
	// MEBx password is blocked in CCM
	mebx, _ := a.AMT.SetupAndConfigurationService.SetMEBXPassword("Mebx-P@ss1")
	if mebx.Body.SetMEBxPassword_OUTPUT.ReturnValue != 16 {
		t.Fatalf("SetMEBxPassword in CCM: %d", mebx.Body.SetMEBxPassword_OUTPUT.ReturnValue)
	}
	// GetUuid
	uu, err := a.AMT.SetupAndConfigurationService.GetUUID()
	if err != nil {
		t.Fatal(err)
	}
	want := fw.UUID()
	if uu.Body.GetUuid_OUTPUT.UUID != base64.StdEncoding.EncodeToString(want[:]) {
		t.Fatalf("GetUuid %q", uu.Body.GetUuid_OUTPUT.UUID)
	}
	// Unprovision: back to pre-provisioning, new LSA, realm kept
	realm := fw.Realm()
	up, err := a.AMT.SetupAndConfigurationService.Unprovision(setupandconfiguration.ProvisioningModeValue(1))
	if err != nil || up.Body.Unprovision_OUTPUT.ReturnValue != 0 {
		t.Fatalf("Unprovision: %v %d", err, up.Body.Unprovision_OUTPUT.ReturnValue)
	}
	if fw.ControlMode() != 0 || fw.ProvisioningState() != 0 || fw.Realm() != realm {
		t.Fatal("not back to pre-provisioning with the same realm")
	}
	if _, pw := fw.LocalSystemAccount(); pw == lsaPW {
		t.Fatal("LSA password unchanged by unprovision")
	}
	if _, err := adminClient(d).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("admin still accepted after unprovision")
	}
	if _, err := lsaClient(d).AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("new LSA refused: %v", err)
	}
}

// signNonces is what RPS/rpc-go send as DigitalSignature.
func signNonces(t *testing.T, key crypto.Signer, fwNonce, mcNonce []byte) string {
	t.Helper()
	h := sha256.Sum256(append(append([]byte(nil), fwNonce...), mcNonce...))
	sig, err := key.(*rsa.PrivateKey).Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func b64(c *x509.Certificate) string { return base64.StdEncoding.EncodeToString(c.Raw) }

type acmCase struct {
	name       string
	chain      testpki.ChainOptions
	trust      bool // root hash in the device table
	certs      func(c *testpki.Chain) []*x509.Certificate
	staleNonce bool
	wrongKey   bool
	addRV      []uint32 // expected AddNextCertInChain return values (nil: all 0)
	setupRV    uint32
}

func TestACMActivationChecks(t *testing.T) {
	full := func(c *testpki.Chain) []*x509.Certificate {
		if c.Intermediate != nil {
			return []*x509.Certificate{c.Leaf, c.Intermediate, c.Root}
		}
		return []*x509.Certificate{c.Leaf, c.Root}
	}
	cases := []acmCase{
		{name: "good chain with intermediate", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix, Intermediate: true}, trust: true, certs: full},
		{name: "good chain, OU instead of OID", chain: testpki.ChainOptions{LeafCN: testSuffix, NoAMTOID: true, AMTOU: true}, trust: true, certs: full},
		{name: "wildcard CN", chain: testpki.ChainOptions{LeafCN: "*." + testSuffix}, trust: true, certs: full},
		{name: "incomplete chain (no root)", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix, Intermediate: true}, trust: true,
			certs: func(c *testpki.Chain) []*x509.Certificate { return []*x509.Certificate{c.Leaf, c.Intermediate} }, setupRV: 2},
		{name: "root not in the hash table", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix}, trust: false, certs: full, addRV: []uint32{0, 4}, setupRV: 2},
		{name: "no OID and no OU", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix, NoAMTOID: true}, trust: true, certs: full, setupRV: 5},
		{name: "CN domain mismatch", chain: testpki.ChainOptions{LeafCN: "prov.other.example.net"}, trust: true, certs: full, setupRV: 5},
		{name: "suffix only as substring", chain: testpki.ChainOptions{LeafCN: "badcorp.example.com"}, trust: true, certs: full, setupRV: 5},
		{name: "bad signature", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix}, trust: true, certs: full, wrongKey: true, setupRV: 5},
		{name: "stale nonce", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix}, trust: true, certs: full, staleNonce: true, setupRV: 5},
		{name: "out of order (root first)", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix, Intermediate: true}, trust: true,
			certs: func(c *testpki.Chain) []*x509.Certificate { return []*x509.Certificate{c.Leaf, c.Root, c.Intermediate} }, addRV: []uint32{0, 4, 3}, setupRV: 2},
		{name: "chain longer than four", chain: testpki.ChainOptions{LeafCN: "prov." + testSuffix, Intermediate: true}, trust: true,
			certs: func(c *testpki.Chain) []*x509.Certificate {
				return []*x509.Certificate{c.Leaf, c.Intermediate, c.Root, c.Root, c.Root}
			}, addRV: []uint32{0, 0, 0, 0, 5}, setupRV: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			chain := testpki.NewChain(tc.chain)
			o := devOpts{}
			if tc.trust {
				o.chain = chain
			}
			d := startDevice(t, o)
			fw := d.Firmware()
			m := lsaClient(d)
			gs, err := m.AMT.GeneralSettings.Get()
			if err != nil {
				t.Fatal(err)
			}
			hbs, err := m.IPS.HostBasedSetupService.Get()
			if err != nil {
				t.Fatal(err)
			}
			fwNonce, _ := base64.StdEncoding.DecodeString(hbs.Body.GetResponse.ConfigurationNonce)
			certs := tc.certs(chain)
			for i, c := range certs {
				res, _ := m.IPS.HostBasedSetupService.AddNextCertInChain(b64(c), i == 0, i == len(certs)-1 && c == chain.Root)
				want := uint32(0)
				if i < len(tc.addRV) {
					want = tc.addRV[i]
				}
				if got := uint32(res.Body.AddNextCertInChain_OUTPUT.ReturnValue); got != want {
					t.Fatalf("AddNextCertInChain #%d: %d, want %d", i, got, want)
				}
			}
			if tc.staleNonce {
				if _, err := m.IPS.HostBasedSetupService.Get(); err != nil { // a newer nonce replaces fwNonce
					t.Fatal(err)
				}
			}
			mcNonce := make([]byte, 20)
			rand.Read(mcNonce)
			key := chain.LeafKey
			if tc.wrongKey {
				key = testpki.Key(2048, testpki.SlotOther)
			}
			sig := signNonces(t, key, fwNonce, mcNonce)
			res, err := m.IPS.HostBasedSetupService.AdminSetup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, gs.Body.GetResponse.DigestRealm, testPassword,
				base64.StdEncoding.EncodeToString(mcNonce), hostbasedsetup.SigningAlgorithmRSASHA2256, sig)
			if got := uint32(res.Body.AdminSetup_OUTPUT.ReturnValue); got != tc.setupRV {
				t.Fatalf("AdminSetup: %d (%v), want %d", got, err, tc.setupRV)
			}
			if tc.setupRV != 0 {
				if fw.ControlMode() != 0 {
					t.Fatal("device activated despite the failure")
				}
				return
			}
			if fw.ControlMode() != 2 || fw.ProvisioningState() != 2 {
				t.Fatalf("after AdminSetup: mode %d state %d", fw.ControlMode(), fw.ProvisioningState())
			}
			a := adminClient(d)
			hbs, err = a.IPS.HostBasedSetupService.Get()
			if err != nil || hbs.Body.GetResponse.CurrentControlMode != 2 {
				t.Fatalf("HBS as admin: %v %+v", err, hbs.Body.GetResponse)
			}
			mebx, err := a.AMT.SetupAndConfigurationService.SetMEBXPassword("Mebx-P@ss1")
			if err != nil || mebx.Body.SetMEBxPassword_OUTPUT.ReturnValue != 0 || !fw.MEBxPasswordMatches("Mebx-P@ss1") {
				t.Fatalf("SetMEBxPassword: %v %d", err, mebx.Body.SetMEBxPassword_OUTPUT.ReturnValue)
			}
			weak, _ := a.AMT.SetupAndConfigurationService.SetMEBXPassword("weak")
			if weak.Body.SetMEBxPassword_OUTPUT.ReturnValue != 2054 {
				t.Fatalf("weak MEBx password: %d", weak.Body.SetMEBxPassword_OUTPUT.ReturnValue)
			}
			// PTHI Unprovision is CCM-only
			if st := fw.Unprovision(); st != hostif.StatusInvalidAMTMode || fw.ControlMode() != 2 {
				t.Fatalf("PTHI Unprovision in ACM: status %d mode %d", st, fw.ControlMode())
			}
			// password rotation with SetAdminAclEntryEx (base64 of the raw MD5)
			sum := md5.Sum([]byte("admin:" + fw.Realm() + ":New-P@ssw0rd2"))
			rot, err := a.AMT.AuthorizationService.SetAdminAclEntryEx("admin", base64.StdEncoding.EncodeToString(sum[:]))
			if err != nil || rot.Body.SetAdminResponse.ReturnValue != 0 {
				t.Fatalf("SetAdminAclEntryEx: %v %+v", err, rot.Body.SetAdminResponse)
			}
			if _, err := adminClient(d).AMT.GeneralSettings.Get(); err == nil {
				t.Fatal("old admin password still accepted")
			}
			if _, err := wsmanClient(d, "admin", "New-P@ssw0rd2").AMT.GeneralSettings.Get(); err != nil {
				t.Fatalf("new admin password refused: %v", err)
			}
		})
	}
}

func TestUpgradeClientToAdmin(t *testing.T) {
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "prov." + testSuffix})
	d := startDevice(t, devOpts{chain: chain})
	activateCCM(t, d)
	a := adminClient(d)
	// an upgrade without a chain is InvalidState
	res, _ := a.IPS.HostBasedSetupService.UpgradeClientToAdmin("AAAA", hostbasedsetup.SigningAlgorithmRSASHA2256, "AAAA")
	if res.Body.UpgradeClientToAdmin_OUTPUT.ReturnValue != 2 {
		t.Fatalf("upgrade without chain: %d", res.Body.UpgradeClientToAdmin_OUTPUT.ReturnValue)
	}
	hbs, err := a.IPS.HostBasedSetupService.Get()
	if err != nil {
		t.Fatal(err)
	}
	fwNonce, _ := base64.StdEncoding.DecodeString(hbs.Body.GetResponse.ConfigurationNonce)
	for i, c := range []*x509.Certificate{chain.Leaf, chain.Root} {
		r, _ := a.IPS.HostBasedSetupService.AddNextCertInChain(b64(c), i == 0, i == 1)
		if r.Body.AddNextCertInChain_OUTPUT.ReturnValue != 0 {
			t.Fatalf("AddNextCertInChain: %d", r.Body.AddNextCertInChain_OUTPUT.ReturnValue)
		}
	}
	hbs, _ = a.IPS.HostBasedSetupService.Get() // CertChainStatus; also a new nonce
	if hbs.Body.GetResponse.CertChainStatus != 2 {
		t.Fatalf("CertChainStatus %d", hbs.Body.GetResponse.CertChainStatus)
	}
	fwNonce, _ = base64.StdEncoding.DecodeString(hbs.Body.GetResponse.ConfigurationNonce)
	mc := make([]byte, 20)
	rand.Read(mc)
	res, err = a.IPS.HostBasedSetupService.UpgradeClientToAdmin(base64.StdEncoding.EncodeToString(mc), hostbasedsetup.SigningAlgorithmRSASHA2256, signNonces(t, chain.LeafKey, fwNonce, mc))
	if err != nil || res.Body.UpgradeClientToAdmin_OUTPUT.ReturnValue != 0 {
		t.Fatalf("UpgradeClientToAdmin: %v %d", err, res.Body.UpgradeClientToAdmin_OUTPUT.ReturnValue)
	}
	if d.Firmware().ControlMode() != 2 {
		t.Fatal("not ACM")
	}
	// admin password unchanged
	if _, err := adminClient(d).AMT.GeneralSettings.Get(); err != nil {
		t.Fatal(err)
	}
}

var _ = wsman.Messages{}
var _ = firmware.ModeACM

func TestOlderFirmwareVersion(t *testing.T) {
	d := startDevice(t, devOpts{fw: firmware.Config{Version: "11.8.50", Build: "3425", SKU: "16392"}})
	raw := rawExchange(t, d.Addr(), "POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
	if !strings.Contains(raw, "Server: Intel(R) Active Management Technology 11.8.50.3425\r\n") {
		t.Fatalf("Server header: %q", raw)
	}
	m := lsaClient(d)
	sw, err := m.CIM.SoftwareIdentity.Enumerate()
	if err != nil {
		t.Fatal(err)
	}
	items, err := m.CIM.SoftwareIdentity.Pull(sw.Body.EnumerateResponse.EnumerationContext)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, i := range items.Body.PullResponse.SoftwareIdentityItems {
		got[i.InstanceID] = i.VersionString
	}
	if got["AMT"] != "11.8.50" || got["Build Number"] != "3425" {
		t.Fatalf("software identity %v", got)
	}
	if d.Firmware().WatchdogFlags()&0x40 != 0 {
		t.Fatal("AMT 11 reported as TLS-enforced")
	}
	activateCCM(t, d)
}
