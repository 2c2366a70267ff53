package provision

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
)

// A few WS-MAN requests go-wsman-messages cannot express: association
// instances addressed by endpoint-reference selectors (the library's
// PolicyAppliesToMPS.Put always addresses the Periodic rule, and its
// TLSCredentialContext.Delete uses a Name selector). They are built here in
// the library's envelope shape and sent with the library's digest client.

const (
	nsAddressing = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	nsWSMan      = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
	amtSchema    = "http://intel.com/wbem/wscim/1/amt-schema/1/"
	actionPut    = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Put"
	actionDelete = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
	anonymous    = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
)

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// epr is an endpoint reference: a class and its key selectors (in order).
type epr struct {
	class     string // e.g. AMT_ManagementPresenceRemoteSAP
	selectors [][2]string
}

// xml renders the reference as the library does inside selector values.
func (r epr) xml() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<EndpointReference xmlns=%q><Address xmlns=%q>%s</Address><ReferenceParameters xmlns=%q><ResourceURI xmlns=%q>%s%s</ResourceURI><SelectorSet xmlns=%q>`,
		nsAddressing, nsAddressing, anonymous, nsAddressing, nsWSMan, amtSchema, r.class, nsWSMan)
	for _, s := range r.selectors {
		fmt.Fprintf(&b, `<Selector Name=%q>%s</Selector>`, s[0], xmlEscape(s[1]))
	}
	b.WriteString(`</SelectorSet></ReferenceParameters></EndpointReference>`)
	return b.String()
}

// rawEnvelope builds a request with EPR-valued selectors.
func rawEnvelope(action, class string, selectors []struct {
	name string
	ref  epr
}, body string) string {
	var sel strings.Builder
	for _, s := range selectors {
		fmt.Fprintf(&sel, `<w:Selector Name=%q>%s</w:Selector>`, s.name, s.ref.xml())
	}
	return envelope(action, class, sel.String(), body)
}

// methodEnvelope builds an invocation of class.method with plain-text
// selectors and the method's input parameters (escaped XML, "h:" prefixed),
// for methods go-wsman-messages has no call for.
func methodEnvelope(class, method string, selectors [][2]string, params string) string {
	uri := amtSchema + class
	return envelope(uri+"/"+method, class, selectorsXML("w", selectors),
		`<h:`+method+`_INPUT xmlns:h="`+uri+`">`+params+`</h:`+method+`_INPUT>`)
}

// envelope is a request in the library's envelope shape: selectors are
// rendered <w:Selector> elements ("" for none).
func envelope(action, class, selectors, body string) string {
	var id [8]byte
	_, _ = rand.Read(id[:])
	if selectors != "" {
		selectors = "<w:SelectorSet>" + selectors + "</w:SelectorSet>"
	}
	return `<?xml version="1.0" encoding="utf-8"?><Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:a="` + nsAddressing +
		`" xmlns:w="` + nsWSMan + `" xmlns="http://www.w3.org/2003/05/soap-envelope"><Header><a:Action>` + action +
		`</a:Action><a:To>/wsman</a:To><w:ResourceURI>` + amtSchema + class + `</w:ResourceURI><a:MessageID>uuid:` + hex.EncodeToString(id[:]) +
		`</a:MessageID><a:ReplyTo><a:Address>` + anonymous + `</a:Address></a:ReplyTo><w:OperationTimeout>PT60S</w:OperationTimeout>` +
		selectors + `</Header><Body>` + body + `</Body></Envelope>`
}

type eprSelector = struct {
	name string
	ref  epr
}

// mpsRef is the AMT_ManagementPresenceRemoteSAP named name.
func mpsRef(name string) epr {
	return epr{class: "AMT_ManagementPresenceRemoteSAP", selectors: [][2]string{
		{"CreationClassName", "AMT_ManagementPresenceRemoteSAP"}, {"Name", name},
		{"SystemCreationClassName", "CIM_ComputerSystem"}, {"SystemName", "Intel(r) AMT"}}}
}

// policyRef is the AMT_RemoteAccessPolicyRule named name.
func policyRef(name string) epr {
	return epr{class: "AMT_RemoteAccessPolicyRule", selectors: [][2]string{
		{"CreationClassName", "AMT_RemoteAccessPolicyRule"}, {"PolicyRuleName", name},
		{"SystemCreationClassName", "CIM_ComputerSystem"}, {"SystemName", "Intel(r) AMT"}}}
}

// putAppliesToMPS writes one AMT_RemoteAccessPolicyAppliesToMPS association
// (MpsType both, OrderOfAccess 0), addressed by its two references.
func putAppliesToMPS(m wsman.Messages, mpsName, policyName string, mpsType, order int) error {
	me, ps := mpsRef(mpsName), policyRef(policyName)
	body := fmt.Sprintf(`<h:AMT_RemoteAccessPolicyAppliesToMPS xmlns:h="%sAMT_RemoteAccessPolicyAppliesToMPS"><h:ManagedElement><b:Address xmlns:b=%q>%s</b:Address><b:ReferenceParameters xmlns:b=%q><c:ResourceURI xmlns:c=%q>%s%s</c:ResourceURI><c:SelectorSet xmlns:c=%q>%s</c:SelectorSet></b:ReferenceParameters></h:ManagedElement><h:OrderOfAccess>%d</h:OrderOfAccess><h:MpsType>%d</h:MpsType><h:PolicySet><b:Address xmlns:b=%q>%s</b:Address><b:ReferenceParameters xmlns:b=%q><c:ResourceURI xmlns:c=%q>%s%s</c:ResourceURI><c:SelectorSet xmlns:c=%q>%s</c:SelectorSet></b:ReferenceParameters></h:PolicySet></h:AMT_RemoteAccessPolicyAppliesToMPS>`,
		amtSchema,
		nsAddressing, anonymous, nsAddressing, nsWSMan, amtSchema, me.class, nsWSMan, selectorsXML("c", me.selectors),
		order, mpsType,
		nsAddressing, anonymous, nsAddressing, nsWSMan, amtSchema, ps.class, nsWSMan, selectorsXML("c", ps.selectors))
	env := rawEnvelope(actionPut, "AMT_RemoteAccessPolicyAppliesToMPS",
		[]eprSelector{{"ManagedElement", me}, {"PolicySet", ps}}, body)
	_, err := m.Client.Post(env)
	return err
}

func selectorsXML(prefix string, sels [][2]string) string {
	var b strings.Builder
	for _, s := range sels {
		fmt.Fprintf(&b, `<%s:Selector Name=%q>%s</%s:Selector>`, prefix, s[0], xmlEscape(s[1]), prefix)
	}
	return b.String()
}

// deleteTLSContext deletes the AMT_TLSCredentialContext associating the
// certificate certID with AMT's TLS endpoint collection.
func deleteTLSContext(m wsman.Messages, certID string) error {
	cert := epr{class: "AMT_PublicKeyCertificate", selectors: [][2]string{{"InstanceID", certID}}}
	coll := epr{class: "AMT_TLSProtocolEndpointCollection", selectors: [][2]string{{"ElementName", "TLSProtocolEndpointInstances Collection"}}}
	env := rawEnvelope(actionDelete, "AMT_TLSCredentialContext",
		[]eprSelector{{"ElementInContext", cert}, {"ElementProvidingContext", coll}}, "")
	_, err := m.Client.Post(env)
	return err
}
