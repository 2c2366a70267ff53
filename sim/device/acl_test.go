package device_test

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/authorization"

	"github.com/amtd-project/amtd/sim/firmware"
)

// rawInvoke sends a method request go-wsman-messages has no call for,
// with the library's digest client, and returns the response body.
func rawInvoke(t *testing.T, m wsman.Messages, class, method, selectorName, selectorValue, params string) string {
	t.Helper()
	uri := "http://intel.com/wbem/wscim/1/amt-schema/1/" + class
	sel := ""
	if selectorName != "" {
		sel = fmt.Sprintf(`<w:SelectorSet><w:Selector Name=%q>%s</w:Selector></w:SelectorSet>`, selectorName, selectorValue)
	}
	env := `<?xml version="1.0" encoding="utf-8"?><Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Header><a:Action>` +
		uri + "/" + method + `</a:Action><a:To>/wsman</a:To><w:ResourceURI>` + uri + `</w:ResourceURI><a:MessageID>uuid:1</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo>` +
		sel + `</Header><Body><h:` + method + `_INPUT xmlns:h="` + uri + `">` + params + `</h:` + method + `_INPUT></Body></Envelope>`
	out, err := m.Client.Post(env)
	if err != nil {
		t.Fatalf("%s.%s: %v", class, method, err)
	}
	return string(out)
}

func digestPassword(user, realm, pw string) string {
	h := md5.Sum([]byte(user + ":" + realm + ":" + pw))
	return base64.StdEncoding.EncodeToString(h[:])
}

func TestPowerSchemes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "firmware.json")
	d := startDevice(t, devOpts{fw: firmware.Config{Path: path}})
	activateCCM(t, d)
	m := adminClient(d)
	en, err := m.AMT.SystemPowerScheme.Enumerate()
	if err != nil {
		t.Fatal(err)
	}
	pr, err := m.AMT.SystemPowerScheme.Pull(en.Body.EnumerateResponse.EnumerationContext)
	if err != nil {
		t.Fatal(err)
	}
	items := pr.Body.PullResponse.SystemPowerSchemeItems
	if len(items) != 3 {
		t.Fatalf("schemes: %+v", items)
	}
	want := map[string]string{
		"Desktop: ON in S0":                      "lE+DEvsQT9yWjh4jKwyQZQ==",
		"Desktop: ON in S0, ME Wake in S3, S4-5": "cyJzRiPcQy+pihPTeYLYVQ==",
	}
	var s0 string
	for _, it := range items {
		if it.ElementName != firmware.PowerSchemeElementName || !strings.HasPrefix(it.InstanceID, "SCHEME ") {
			t.Fatalf("scheme %+v", it)
		}
		if g, ok := want[it.Description]; ok && g != it.SchemeGUID {
			t.Fatalf("%s: GUID %s, want %s", it.Description, it.SchemeGUID, g)
		}
		if it.Description == "Desktop: ON in S0" {
			s0 = it.InstanceID
		}
	}
	if got := d.Firmware().ActivePowerScheme(); got != "SCHEME 1" {
		t.Fatalf("factory scheme %s", got)
	}
	out := rawInvoke(t, m, "AMT_SystemPowerScheme", "SetPowerScheme", "InstanceID", s0, "")
	if !strings.Contains(out, "ReturnValue>0<") {
		t.Fatalf("SetPowerScheme: %s", out)
	}
	if got := d.Firmware().Snapshot().PowerScheme; got != s0 {
		t.Fatalf("active scheme %q, want %q", got, s0)
	}
	// an unknown instance is a selector fault
	if out, err := m.Client.Post(setSchemeEnvelope("SCHEME 9")); err == nil {
		t.Fatalf("SetPowerScheme on SCHEME 9: %s", out)
	}
	if got := d.Firmware().ActivePowerScheme(); got != s0 {
		t.Fatalf("after SCHEME 9: %s", got)
	}
	// the selection is in the device's state file
	var st firmware.State
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil || st.PowerScheme != s0 {
		t.Fatalf("persisted scheme %q (%v)", st.PowerScheme, err)
	}
}

func setSchemeEnvelope(id string) string {
	uri := "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_SystemPowerScheme"
	return `<?xml version="1.0" encoding="utf-8"?><Envelope xmlns="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Header><a:Action>` +
		uri + `/SetPowerScheme</a:Action><a:To>/wsman</a:To><w:ResourceURI>` + uri + `</w:ResourceURI><a:MessageID>uuid:2</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:SelectorSet><w:Selector Name="InstanceID">` +
		id + `</w:Selector></w:SelectorSet></Header><Body><h:SetPowerScheme_INPUT xmlns:h="` + uri + `"></h:SetPowerScheme_INPUT></Body></Envelope>`
}

func TestUserACLEntries(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	fw := d.Firmware()
	realm := fw.Realm()
	m := adminClient(d)
	const pw, pw2 = "Op3rator!pass", "N3w-Op3rator!"

	add := func(user, password string, perm authorization.AccessPermission, realms ...authorization.RealmValues) (int, int) {
		r, err := m.AMT.AuthorizationService.AddUserAclEntryEx(user, digestPassword(user, realm, password), perm, realms)
		if err != nil {
			t.Fatal(err)
		}
		return r.Body.AddUserResponse.Handle, int(r.Body.AddUserResponse.ReturnValue)
	}
	h, rv := add("operator", pw, 1, 3, 5)
	if rv != 0 || h == 0 {
		t.Fatalf("AddUserAclEntryEx: handle %d rv %d", h, rv)
	}
	if _, rv := add("operator", pw, 1, 3); rv != int(firmware.PTDuplicate) {
		t.Fatalf("duplicate add: rv %d", rv)
	}
	if _, rv := add("badrealm", pw, 1, 1); rv != int(firmware.PTInvalidRealm) {
		t.Fatalf("realm 1: rv %d", rv)
	}
	hl, rv := add("localop", pw, 0, 3)
	if rv != 0 {
		t.Fatalf("local user: rv %d", rv)
	}

	en, err := m.AMT.AuthorizationService.EnumerateUserACLEntries(1)
	if err != nil {
		t.Fatal(err)
	}
	eo := en.Body.EnumerateUserResponse
	if eo.TotalCount != 2 || eo.HandlesCount != 2 || len(eo.Handles) != 2 || eo.Handles[0] != h || eo.Handles[1] != hl {
		t.Fatalf("EnumerateUserAclEntries: %+v", eo)
	}
	g, err := m.AMT.AuthorizationService.GetUserACLEntryEx(h)
	if err != nil {
		t.Fatal(err)
	}
	gu := g.Body.GetUserResponse
	if gu.DigestUsername != "operator" || gu.AccessPermission != 1 || len(gu.Realms) != 2 || gu.Realms[1] != 5 {
		t.Fatalf("GetUserAclEntryEx: %+v", gu)
	}

	// the new user logs in over the network with its password; the local
	// only user does not
	if _, err := wsmanClient(d, "operator", pw).AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("operator cannot log in: %v", err)
	}
	if _, err := wsmanClient(d, "operator", pw2).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("operator logged in with a wrong password")
	}
	if _, err := wsmanClient(d, "localop", pw).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("a local-only user logged in over the network")
	}
	if !fw.UserCanLogIn("localop", pw, true) || fw.UserCanLogIn("localop", pw, false) {
		t.Fatal("local access permission not honoured")
	}

	// update: new password, any access
	out := rawInvoke(t, m, "AMT_AuthorizationService", "UpdateUserAclEntryEx", "", "",
		fmt.Sprintf(`<h:Handle>%d</h:Handle><h:DigestUsername>operator</h:DigestUsername><h:DigestPassword>%s</h:DigestPassword><h:AccessPermission>2</h:AccessPermission><h:Realms>3</h:Realms>`,
			h, digestPassword("operator", realm, pw2)))
	if !strings.Contains(out, "ReturnValue>0<") {
		t.Fatalf("UpdateUserAclEntryEx: %s", out)
	}
	if _, err := wsmanClient(d, "operator", pw).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("old password still accepted")
	}
	if _, err := wsmanClient(d, "operator", pw2).AMT.GeneralSettings.Get(); err != nil {
		t.Fatalf("new password refused: %v", err)
	}
	if u, _ := fw.GetUser(h); u.AccessPermission != 2 || len(u.Realms) != 1 {
		t.Fatalf("after update: %+v", u)
	}
	// renaming onto another user is a duplicate; an unknown handle is refused
	out = rawInvoke(t, m, "AMT_AuthorizationService", "UpdateUserAclEntryEx", "", "",
		fmt.Sprintf(`<h:Handle>%d</h:Handle><h:DigestUsername>localop</h:DigestUsername><h:DigestPassword>%s</h:DigestPassword><h:AccessPermission>2</h:AccessPermission>`,
			h, digestPassword("localop", realm, pw2)))
	if !strings.Contains(out, fmt.Sprintf("ReturnValue>%d<", firmware.PTDuplicate)) {
		t.Fatalf("rename onto localop: %s", out)
	}

	// remove
	r, err := m.AMT.AuthorizationService.RemoveUserACLEntry(h)
	if err != nil || r.Body.RemoveUserResponse.ReturnValue != 0 {
		t.Fatalf("RemoveUserAclEntry: %v %+v", err, r.Body.RemoveUserResponse)
	}
	if _, err := wsmanClient(d, "operator", pw2).AMT.GeneralSettings.Get(); err == nil {
		t.Fatal("removed user still logs in")
	}
	if got := fw.UserHandles(); len(got) != 1 || got[0] != hl {
		t.Fatalf("handles after remove: %v", got)
	}
}
