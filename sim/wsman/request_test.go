package wsman

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/sim/firmware"
)

const libraryRequest = `<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><a:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Put</a:Action><a:To>/wsman</a:To><w:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_RemoteAccessPolicyAppliesToMPS</w:ResourceURI><a:MessageID>7</a:MessageID><a:ReplyTo><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout><w:SelectorSet><w:Selector Name="ManagedElement"><EndpointReference xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><Address xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</Address><ReferenceParameters xmlns="http://schemas.xmlsoap.org/ws/2004/08/addressing"><ResourceURI xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">http://intel.com/wbem/wscim/1/amt-schema/1/AMT_ManagementPresenceRemoteSAP</ResourceURI><SelectorSet xmlns="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><Selector Name="CreationClassName">AMT_ManagementPresenceRemoteSAP</Selector><Selector Name="Name">Intel(r) AMT:Management Presence Server 0</Selector></SelectorSet></ReferenceParameters></EndpointReference></w:Selector></w:SelectorSet></Header><Body><h:AMT_RemoteAccessPolicyAppliesToMPS xmlns:h="http://intel.com/wbem/wscim/1/amt-schema/1/AMT_RemoteAccessPolicyAppliesToMPS"><h:MpsType>2</h:MpsType><h:OrderOfAccess>0</h:OrderOfAccess></h:AMT_RemoteAccessPolicyAppliesToMPS></Body></Envelope>`

// RPS's builder: other prefixes, other header order, no OperationTimeout.
const rpsRequest = `<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsman="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd">
  <s:Header>
    <wsman:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_EthernetPortSettings</wsman:ResourceURI>
    <wsa:MessageID>uuid:0A1B-77</wsa:MessageID>
    <wsa:Action>http://schemas.xmlsoap.org/ws/2004/09/transfer/Get</wsa:Action>
    <wsa:To>/wsman</wsa:To>
    <wsman:SelectorSet><wsman:Selector Name="InstanceID">Intel(r) AMT Ethernet Port Settings 0</wsman:Selector></wsman:SelectorSet>
  </s:Header>
  <s:Body/>
</s:Envelope>`

func TestParseLibraryShape(t *testing.T) {
	r, err := Parse([]byte(libraryRequest))
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != ActionPut || r.MessageID != "7" || r.ResourceURI != AMTSchema+"AMT_RemoteAccessPolicyAppliesToMPS" || r.OperationTimeout != "PT60S" || r.To != "/wsman" {
		t.Fatalf("header: %+v", r)
	}
	epr := r.SelectorEPR("ManagedElement")
	if epr == nil || epr.ResourceURI != AMTSchema+"AMT_ManagementPresenceRemoteSAP" {
		t.Fatalf("EPR selector: %+v", r.Selectors)
	}
	if v, _ := epr.Selector("Name"); v != "Intel(r) AMT:Management Presence Server 0" {
		t.Fatalf("EPR Name %q", v)
	}
	if r.Body == nil || r.Body.Local != "AMT_RemoteAccessPolicyAppliesToMPS" || r.Body.Text1("MpsType") != "2" {
		t.Fatalf("body %+v", r.Body)
	}
}

func TestParseOtherPrefixesAndOrder(t *testing.T) {
	r, err := Parse([]byte(rpsRequest))
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != ActionGet || r.MessageID != "uuid:0A1B-77" || r.OperationTimeout != "" || r.Body != nil {
		t.Fatalf("%+v", r)
	}
	if v, ok := r.Selector("InstanceID"); !ok || v != "Intel(r) AMT Ethernet Port Settings 0" {
		t.Fatalf("selector %q", v)
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{
		"", "not xml", "<a/>", `<Envelope><Header/></Envelope>`,
		`<Envelope><Header></Header><Body></Body></Envelope>`, // no Action
		`<?xml version="1.0" encoding="ISO-2022-JP"?><Envelope/>`,
		strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100),
		`<Envelope><Header><Action>x</Action></Header><Body></Body></Envelope><Envelope/>`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("accepted %.60q", bad)
		}
	}
}

func newTestEngine(t testing.TB) (*Engine, *firmware.Firmware) {
	fw, err := firmware.Open(firmware.Config{DNSSuffix: "corp.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	return NewEngine(fw, Options{}), fw
}

func TestEngineFaultsAndEnvelope(t *testing.T) {
	e, fw := newTestEngine(t)
	sess := Session{User: firmware.LSAUsername}
	res := e.Serve(context.Background(), []byte("garbage"), sess)
	if res.Status != 400 || !strings.Contains(string(res.Body), "e:SchemaValidationError") {
		t.Fatalf("garbage: %d %s", res.Status, res.Body)
	}
	unknown := strings.Replace(rpsRequest, "AMT_EthernetPortSettings", "AMT_NoSuchClass", 1)
	res = e.Serve(context.Background(), []byte(unknown), sess)
	if res.Status != 400 || !strings.Contains(string(res.Body), "b:DestinationUnreachable") || !strings.Contains(string(res.Body), "<b:RelatesTo>uuid:0A1B-77</b:RelatesTo>") {
		t.Fatalf("unknown class: %s", res.Body)
	}
	get := strings.Replace(rpsRequest, "AMT_EthernetPortSettings", "AMT_GeneralSettings", 1)
	get = strings.Replace(get, `<wsman:SelectorSet><wsman:Selector Name="InstanceID">Intel(r) AMT Ethernet Port Settings 0</wsman:Selector></wsman:SelectorSet>`, "", 1)
	res = e.Serve(context.Background(), []byte(get), sess)
	body := string(res.Body)
	if res.Status != 200 || !strings.Contains(body, "<g:DigestRealm>"+fw.Realm()+"</g:DigestRealm>") {
		t.Fatalf("get: %d %s", res.Status, body)
	}
	// properties in byte order
	if strings.Index(body, "<g:AMTNetworkEnabled>") > strings.Index(body, "<g:DDNSTTL>") || strings.Index(body, "<g:SharedFQDN>") > strings.Index(body, "<g:WsmanOnlyMode>") {
		t.Fatal("properties not sorted")
	}
	bad := strings.Replace(get, "transfer/Get", "transfer/Frobnicate", 1)
	if res := e.Serve(context.Background(), []byte(bad), sess); res.Status != 400 || !strings.Contains(string(res.Body), "b:ActionNotSupported") {
		t.Fatalf("unknown action: %s", res.Body)
	}
}

func TestEnumerationContexts(t *testing.T) {
	e, _ := newTestEngine(t)
	sess := Session{User: firmware.LSAUsername}
	enum := strings.NewReplacer("transfer/Get", "enumeration/Enumerate", "<s:Body/>", `<s:Body><Enumerate xmlns="http://schemas.xmlsoap.org/ws/2004/09/enumeration"/></s:Body>`).Replace(rpsRequest)
	enum = strings.Replace(enum, AMTSchema+"AMT_EthernetPortSettings", ResourceURI("CIM_SoftwareIdentity"), 1)
	res := e.Serve(context.Background(), []byte(enum), sess)
	ctxID := between(string(res.Body), "<g:EnumerationContext>", "</g:EnumerationContext>")
	if res.Status != 200 || len(ctxID) != 36 {
		t.Fatalf("enumerate: %s", res.Body)
	}
	pull := func(ctx string, max int) Result {
		b := strings.NewReplacer("transfer/Get", "enumeration/Pull", "<s:Body/>", `<s:Body><Pull xmlns="http://schemas.xmlsoap.org/ws/2004/09/enumeration"><EnumerationContext>`+ctx+`</EnumerationContext><MaxElements>`+strconv.Itoa(max)+`</MaxElements></Pull></s:Body>`).Replace(rpsRequest)
		return e.Serve(context.Background(), []byte(strings.Replace(b, AMTSchema+"AMT_EthernetPortSettings", ResourceURI("CIM_SoftwareIdentity"), 1)), sess)
	}
	first := pull(ctxID, 3)
	if first.Status != 200 || strings.Count(string(first.Body), "<h:CIM_SoftwareIdentity>") != 3 || strings.Contains(string(first.Body), "EndOfSequence") {
		t.Fatalf("first pull: %s", first.Body)
	}
	rest := pull(ctxID, 999)
	if rest.Status != 200 || !strings.Contains(string(rest.Body), "<g:EndOfSequence></g:EndOfSequence>") {
		t.Fatalf("second pull: %s", rest.Body)
	}
	if again := pull(ctxID, 999); again.Status != 400 || !strings.Contains(string(again.Body), "c:InvalidEnumerationContext") {
		t.Fatalf("pull after end: %s", again.Body)
	}
	// contexts are bounded
	for range 100 {
		e.Serve(context.Background(), []byte(enum), sess)
	}
	if n := e.OpenEnumerations(); n > 32 {
		t.Fatalf("%d open enumerations", n)
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	j := strings.Index(s, b)
	if j < 0 {
		return ""
	}
	return s[:j]
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(libraryRequest))
	f.Add([]byte(rpsRequest))
	f.Add([]byte(`<Envelope><Header><Action>x</Action><SelectorSet><Selector Name="a"><EndpointReference><ReferenceParameters><SelectorSet><Selector/></SelectorSet></ReferenceParameters></EndpointReference></Selector></SelectorSet></Header><Body><x/></Body></Envelope>`))
	e, _ := newTestEngine(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse(data)
		if err == nil && r.Action == "" {
			t.Fatal("parsed without Action")
		}
		for _, user := range []string{firmware.LSAUsername, "admin"} {
			res := e.Serve(context.Background(), data, Session{User: user})
			if res.Status != 200 && res.Status != 400 && res.Inject == FaultNone {
				t.Fatalf("status %d", res.Status)
			}
		}
	})
}
