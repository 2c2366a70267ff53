package wsman

import (
	"bytes"
	"encoding/xml"
	"slices"
	"strconv"
	"strings"
)

// Namespaces used in requests and responses.
const (
	NSSoap        = "http://www.w3.org/2003/05/soap-envelope"
	NSAddressing  = "http://schemas.xmlsoap.org/ws/2004/08/addressing"
	NSWSMan       = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"
	NSTrust       = "http://schemas.xmlsoap.org/ws/2005/02/trust"
	NSSecExt      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	NSCIMBinding  = "http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd"
	NSEnumeration = "http://schemas.xmlsoap.org/ws/2004/09/enumeration"
	NSTransfer    = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
	NSEventing    = "http://schemas.xmlsoap.org/ws/2004/08/eventing"
	NSCommon      = "http://schemas.dmtf.org/wbem/wscim/1/common"
	NSXSI         = "http://www.w3.org/2001/XMLSchema-instance"
	Anonymous     = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"

	AMTSchema = "http://intel.com/wbem/wscim/1/amt-schema/1/"
	CIMSchema = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/"
	IPSSchema = "http://intel.com/wbem/wscim/1/ips-schema/1/"

	ActionGet             = NSTransfer + "/Get"
	ActionPut             = NSTransfer + "/Put"
	ActionCreate          = NSTransfer + "/Create"
	ActionDelete          = NSTransfer + "/Delete"
	ActionEnumerate       = NSEnumeration + "/Enumerate"
	ActionPull            = NSEnumeration + "/Pull"
	ActionRelease         = NSEnumeration + "/Release"
	ActionFault           = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
	ActionAddressingFault = NSAddressing + "/fault"
)

// ResourceURI returns the resource URI of a class by its prefix.
func ResourceURI(class string) string {
	switch {
	case strings.HasPrefix(class, "AMT_"):
		return AMTSchema + class
	case strings.HasPrefix(class, "IPS_"):
		return IPSSchema + class
	default:
		return CIMSchema + class
	}
}

// Value is one property value: text, an endpoint reference, a CIM datetime
// or a CIM interval (both <Datetime>/<Interval> in the common namespace).
type Value struct {
	Text     string
	Ref      *EPR
	Datetime string
	Interval string
}

// Prop is a named property; several values render as repeated elements.
type Prop struct {
	Name   string
	Values []Value
}

// Instance is a CIM instance to render; properties are written in
// alphabetical (byte) order as AMT does.
type Instance struct {
	Class string
	URI   string
	Props []Prop
}

// NewInstance starts an instance of class.
func NewInstance(class string) *Instance { return &Instance{Class: class, URI: ResourceURI(class)} }

func (in *Instance) set(name string, vals []Value) *Instance {
	for i := range in.Props {
		if in.Props[i].Name == name {
			in.Props[i].Values = vals
			return in
		}
	}
	in.Props = append(in.Props, Prop{Name: name, Values: vals})
	return in
}

// S sets a string property.
func (in *Instance) S(name, v string) *Instance { return in.set(name, []Value{{Text: v}}) }

// I sets an integer property.
func (in *Instance) I(name string, v int64) *Instance { return in.S(name, strconv.FormatInt(v, 10)) }

// B sets a boolean property.
func (in *Instance) B(name string, v bool) *Instance { return in.S(name, strconv.FormatBool(v)) }

// L sets an array property (omitted when empty).
func (in *Instance) L(name string, vs ...string) *Instance {
	if len(vs) == 0 {
		return in.Del(name)
	}
	vals := make([]Value, len(vs))
	for i, v := range vs {
		vals[i] = Value{Text: v}
	}
	return in.set(name, vals)
}

// R sets a reference property.
func (in *Instance) R(name string, r *EPR) *Instance { return in.set(name, []Value{{Ref: r}}) }

// D sets a datetime property (<Datetime> in the common namespace).
func (in *Instance) D(name, dt string) *Instance { return in.set(name, []Value{{Datetime: dt}}) }

// Dur sets an interval property (<Interval> in the common namespace, an
// xs:duration such as P1DT2H).
func (in *Instance) Dur(name, d string) *Instance { return in.set(name, []Value{{Interval: d}}) }

// Texts sets an array property keeping empty values (unlike L).
func (in *Instance) Texts(name string, vs ...string) *Instance {
	vals := make([]Value, len(vs))
	for i, v := range vs {
		vals[i] = Value{Text: v}
	}
	return in.set(name, vals)
}

// Del removes a property.
func (in *Instance) Del(name string) *Instance {
	in.Props = slices.DeleteFunc(in.Props, func(p Prop) bool { return p.Name == name })
	return in
}

// Get returns the first text value of a property.
func (in *Instance) Get(name string) (string, bool) {
	for _, p := range in.Props {
		if p.Name == name && len(p.Values) > 0 {
			return p.Values[0].Text, true
		}
	}
	return "", false
}

// Ref returns a reference property.
func (in *Instance) Ref(name string) *EPR {
	for _, p := range in.Props {
		if p.Name == name && len(p.Values) > 0 {
			return p.Values[0].Ref
		}
	}
	return nil
}

func (in *Instance) hasDatetime() bool {
	for _, p := range in.Props {
		for _, v := range p.Values {
			if v.Datetime != "" || v.Interval != "" {
				return true
			}
		}
	}
	return false
}

// Ref builds an endpoint reference with anonymous address.
func Ref(class string, selectors ...string) *EPR {
	r := &EPR{Address: Anonymous, ResourceURI: ResourceURI(class)}
	for i := 0; i+1 < len(selectors); i += 2 {
		r.Selectors = append(r.Selectors, Selector{Name: selectors[i], Value: selectors[i+1]})
	}
	return r
}

// Output is a method's *_OUTPUT: parameters in order, then ReturnValue.
type Output struct {
	Params      []Prop
	ReturnValue uint32
}

// RV is an output with only a ReturnValue.
func RV(v uint32) *Output { return &Output{ReturnValue: v} }

// With adds a text output parameter.
func (o *Output) With(name, v string) *Output {
	o.Params = append(o.Params, Prop{Name: name, Values: []Value{{Text: v}}})
	return o
}

// WithList adds a repeated text output parameter (omitted when empty).
func (o *Output) WithList(name string, vs ...string) *Output {
	if len(vs) == 0 {
		return o
	}
	vals := make([]Value, len(vs))
	for i, v := range vs {
		vals[i] = Value{Text: v}
	}
	o.Params = append(o.Params, Prop{Name: name, Values: vals})
	return o
}

// WithRef adds a reference output parameter.
func (o *Output) WithRef(name string, r *EPR) *Output {
	o.Params = append(o.Params, Prop{Name: name, Values: []Value{{Ref: r}}})
	return o
}

// ---- writer ----

type writer struct{ bytes.Buffer }

func (w *writer) text(s string) { _ = xml.EscapeText(w, []byte(s)) }

func (w *writer) elem(prefix, name, text string) {
	w.WriteString("<" + prefix + ":" + name + ">")
	w.text(text)
	w.WriteString("</" + prefix + ":" + name + ">")
}

// epr writes Address and ReferenceParameters (b = addressing, c = wsman).
func (w *writer) eprContent(r *EPR, b, c string) {
	addr := r.Address
	if addr == "" {
		addr = Anonymous
	}
	w.elem(b, "Address", addr)
	w.WriteString("<" + b + ":ReferenceParameters>")
	w.elem(c, "ResourceURI", r.ResourceURI)
	w.WriteString("<" + c + ":SelectorSet>")
	for _, s := range r.Selectors {
		w.WriteString("<" + c + `:Selector Name="`)
		_ = xml.EscapeText(w, []byte(s.Name))
		w.WriteString(`">`)
		if s.EPR != nil {
			w.WriteString("<" + b + ":EndpointReference>")
			w.eprContent(s.EPR, b, c)
			w.WriteString("</" + b + ":EndpointReference>")
		} else {
			w.text(s.Value)
		}
		w.WriteString("</" + c + ":Selector>")
	}
	w.WriteString("</" + c + ":SelectorSet>")
	w.WriteString("</" + b + ":ReferenceParameters>")
}

func (w *writer) prop(p, common string, pr Prop) {
	for _, v := range pr.Values {
		w.WriteString("<" + p + ":" + pr.Name + ">")
		switch {
		case v.Ref != nil:
			w.eprContent(v.Ref, "b", "c")
		case v.Datetime != "":
			w.elem(common, "Datetime", v.Datetime)
		case v.Interval != "":
			w.elem(common, "Interval", v.Interval)
		default:
			w.text(v.Text)
		}
		w.WriteString("</" + p + ":" + pr.Name + ">")
	}
}

func (w *writer) instance(in *Instance, p, common string) {
	props := slices.Clone(in.Props)
	slices.SortStableFunc(props, func(a, b Prop) int { return strings.Compare(a.Name, b.Name) })
	w.WriteString("<" + p + ":" + in.Class + ">")
	for _, pr := range props {
		w.prop(p, common, pr)
	}
	w.WriteString("</" + p + ":" + in.Class + ">")
}

type nsDecl struct{ prefix, uri string }

// envelope writes a full response envelope with the standard prefix set
// a..f, then extra (g, h, …) and xsi.
func envelope(extra []nsDecl, relatesTo, action, messageID, resourceURI string, body func(w *writer)) []byte {
	w := &writer{}
	w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	w.WriteString(`<a:Envelope xmlns:a="` + NSSoap + `" xmlns:b="` + NSAddressing + `" xmlns:c="` + NSWSMan + `" xmlns:d="` + NSTrust + `" xmlns:e="` + NSSecExt + `" xmlns:f="` + NSCIMBinding + `"`)
	for _, ns := range extra {
		w.WriteString(` xmlns:` + ns.prefix + `="`)
		w.text(ns.uri)
		w.WriteString(`"`)
	}
	w.WriteString(` xmlns:xsi="` + NSXSI + `">`)
	w.WriteString(`<a:Header>`)
	w.elem("b", "To", Anonymous)
	w.elem("b", "RelatesTo", relatesTo)
	w.WriteString(`<b:Action a:mustUnderstand="true">`)
	w.text(action)
	w.WriteString(`</b:Action>`)
	w.elem("b", "MessageID", messageID)
	if resourceURI != "" {
		w.elem("c", "ResourceURI", resourceURI)
	}
	w.WriteString(`</a:Header><a:Body>`)
	if body != nil {
		body(w)
	}
	w.WriteString(`</a:Body></a:Envelope>`)
	return w.Bytes()
}

// ---- faults ----

// Fault is a SOAP fault answered with HTTP 400.
type Fault struct {
	Code    string // Sender or Receiver
	Subcode string // prefixed for the fault envelope: b: addressing, c: enumeration, e: wsman
	Reason  string
	Detail  string
	// Action overrides the fault action (addressing faults).
	Action string
}

func (f *Fault) Error() string { return "wsman fault " + f.Subcode + ": " + f.Reason }

// Standard faults (DSP0226).
func FaultActionNotSupported() *Fault {
	return &Fault{Code: "Sender", Subcode: "b:ActionNotSupported", Reason: "The action is not supported by the service.", Action: ActionAddressingFault}
}
func FaultDestinationUnreachable() *Fault {
	return &Fault{Code: "Sender", Subcode: "b:DestinationUnreachable", Reason: "No route can be determined to reach the destination role defined by the WS-Addressing To.", Action: ActionAddressingFault}
}
func FaultInvalidSelectors() *Fault {
	return &Fault{Code: "Sender", Subcode: "e:InvalidSelectors", Reason: "The Selectors for the resource are not valid."}
}
func FaultAlreadyExists() *Fault {
	return &Fault{Code: "Sender", Subcode: "e:AlreadyExists", Reason: "The sender attempted to create a resource which already exists."}
}
func FaultSchemaValidation() *Fault {
	return &Fault{Code: "Sender", Subcode: "e:SchemaValidationError", Reason: "The supplied SOAP violates the corresponding XML Schema definition."}
}
func FaultInvalidRepresentation() *Fault {
	return &Fault{Code: "Sender", Subcode: "e:InvalidRepresentation", Reason: "The XML content is invalid."}
}
func FaultAccessDenied() *Fault {
	return &Fault{Code: "Sender", Subcode: "e:AccessDenied", Reason: "The sender was not authorized to access the resource."}
}
func FaultInvalidEnumerationContext() *Fault {
	return &Fault{Code: "Receiver", Subcode: "c:InvalidEnumerationContext", Reason: "The supplied enumeration context is invalid."}
}
func FaultInternalError(reason string) *Fault {
	if reason == "" {
		reason = "The service cannot comply with the request due to internal processing errors."
	}
	return &Fault{Code: "Receiver", Subcode: "e:InternalError", Reason: reason}
}

// faultEnvelope uses the prefix set AMT uses for faults (wsman.md §6).
func faultEnvelope(f *Fault, relatesTo, messageID string) []byte {
	w := &writer{}
	w.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	w.WriteString(`<a:Envelope xmlns:g="` + NSCIMBinding + `" xmlns:f="` + NSEventing + `" xmlns:e="` + NSWSMan + `" xmlns:d="` + NSTransfer + `" xmlns:c="` + NSEnumeration + `" xmlns:b="` + NSAddressing + `" xmlns:a="` + NSSoap + `" xmlns:h="` + NSTrust + `" xmlns:i="` + NSSecExt + `" xmlns:xsi="` + NSXSI + `">`)
	w.WriteString(`<a:Header>`)
	w.elem("b", "To", Anonymous)
	if relatesTo != "" {
		w.elem("b", "RelatesTo", relatesTo)
	}
	action := f.Action
	if action == "" {
		action = ActionFault
	}
	w.WriteString(`<b:Action a:mustUnderstand="true">`)
	w.text(action)
	w.WriteString(`</b:Action>`)
	w.elem("b", "MessageID", messageID)
	w.WriteString(`</a:Header><a:Body><a:Fault><a:Code><a:Value>a:`)
	w.text(f.Code)
	w.WriteString(`</a:Value><a:Subcode><a:Value>`)
	w.text(f.Subcode)
	w.WriteString(`</a:Value></a:Subcode></a:Code><a:Reason><a:Text xml:lang="en-US">`)
	w.text(f.Reason)
	w.WriteString(`</a:Text></a:Reason><a:Detail>`)
	w.text(f.Detail)
	w.WriteString(`</a:Detail></a:Fault></a:Body></a:Envelope>`)
	return w.Bytes()
}
