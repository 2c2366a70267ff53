package wsman

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Limits of the request parser (a real device has small buffers too).
const (
	MaxRequestSize = 1 << 20
	maxDepth       = 32
	maxElements    = 20000
)

// Element is a generic XML element; names are matched by local name only
// (clients use any prefixes).
type Element struct {
	Local    string
	Space    string
	Attrs    []xml.Attr
	Text     string // character data directly inside the element, trimmed
	Children []*Element
}

// Child returns the first child with the local name, or nil.
func (e *Element) Child(local string) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Local == local {
			return c
		}
	}
	return nil
}

// All returns the children with the local name.
func (e *Element) All(local string) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Local == local {
			out = append(out, c)
		}
	}
	return out
}

// Value returns the text of the first child with the local name and whether it exists.
func (e *Element) Value(local string) (string, bool) {
	c := e.Child(local)
	if c == nil {
		return "", false
	}
	return c.Text, true
}

// Text1 returns the text of the first child with the local name ("" if absent).
func (e *Element) Text1(local string) string {
	v, _ := e.Value(local)
	return v
}

// Attr returns an attribute by local name.
func (e *Element) Attr(local string) (string, bool) {
	if e == nil {
		return "", false
	}
	for _, a := range e.Attrs {
		if a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// ErrMalformed is returned for requests that are not a SOAP envelope.
var ErrMalformed = errors.New("wsman: malformed request")

// parseTree parses XML into an Element tree with depth and size limits.
func parseTree(data []byte) (*Element, error) {
	if len(data) > MaxRequestSize {
		return nil, fmt.Errorf("%w: too large", ErrMalformed)
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	d.CharsetReader = func(charset string, input io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return input, nil
		}
		return nil, fmt.Errorf("%w: charset %q", ErrMalformed, charset)
	}
	var root *Element
	var stack []*Element
	var text [][]byte
	count := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			count++
			if count > maxElements || len(stack) >= maxDepth {
				return nil, fmt.Errorf("%w: too deep or too many elements", ErrMalformed)
			}
			el := &Element{Local: t.Name.Local, Space: t.Name.Space, Attrs: t.Attr}
			if len(stack) == 0 {
				if root != nil {
					return nil, fmt.Errorf("%w: several root elements", ErrMalformed)
				}
				root = el
			} else {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, el)
			}
			stack = append(stack, el)
			text = append(text, nil)
		case xml.EndElement:
			el := stack[len(stack)-1]
			el.Text = strings.TrimSpace(string(text[len(text)-1]))
			stack = stack[:len(stack)-1]
			text = text[:len(text)-1]
		case xml.CharData:
			if len(stack) > 0 {
				text[len(text)-1] = append(text[len(text)-1], t...)
			} else if len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("%w: text outside the envelope", ErrMalformed)
			}
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	return root, nil
}

// Selector is one WS-MAN selector: a value or an endpoint reference.
type Selector struct {
	Name  string
	Value string
	EPR   *EPR
}

// EPR is a WS-Addressing endpoint reference to a CIM instance.
type EPR struct {
	Address     string
	ResourceURI string
	Selectors   []Selector
}

// Selector returns the value of the named selector.
func (r *EPR) Selector(name string) (string, bool) {
	if r == nil {
		return "", false
	}
	for _, s := range r.Selectors {
		if s.Name == name {
			return s.Value, true
		}
	}
	return "", false
}

// Request is a parsed WS-MAN request.
type Request struct {
	Action           string
	To               string
	ResourceURI      string
	MessageID        string
	ReplyTo          string
	OperationTimeout string
	Selectors        []Selector
	// Body is the first element inside the SOAP Body (nil when empty).
	Body *Element
}

// Selector returns the value of a header selector.
func (r *Request) Selector(name string) (string, bool) {
	for _, s := range r.Selectors {
		if s.Name == name {
			return s.Value, true
		}
	}
	return "", false
}

// SelectorEPR returns a header selector holding an endpoint reference.
func (r *Request) SelectorEPR(name string) *EPR {
	for _, s := range r.Selectors {
		if s.Name == name && s.EPR != nil {
			return s.EPR
		}
	}
	return nil
}

// Parse parses a SOAP 1.2 WS-MAN request. It accepts any namespace prefixes,
// any header order, and an absent OperationTimeout.
func Parse(data []byte) (*Request, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	if root.Local != "Envelope" {
		return nil, fmt.Errorf("%w: root is %q, not Envelope", ErrMalformed, root.Local)
	}
	hdr := root.Child("Header")
	body := root.Child("Body")
	if hdr == nil || body == nil {
		return nil, fmt.Errorf("%w: Header or Body missing", ErrMalformed)
	}
	r := &Request{
		Action:           hdr.Text1("Action"),
		To:               hdr.Text1("To"),
		ResourceURI:      hdr.Text1("ResourceURI"),
		MessageID:        hdr.Text1("MessageID"),
		OperationTimeout: hdr.Text1("OperationTimeout"),
	}
	if rt := hdr.Child("ReplyTo"); rt != nil {
		r.ReplyTo = rt.Text1("Address")
	}
	if ss := hdr.Child("SelectorSet"); ss != nil {
		r.Selectors = parseSelectors(ss, 0)
	}
	if len(body.Children) > 0 {
		r.Body = body.Children[0]
	}
	if r.Action == "" {
		return nil, fmt.Errorf("%w: no Action", ErrMalformed)
	}
	return r, nil
}

func parseSelectors(ss *Element, depth int) []Selector {
	var out []Selector
	for _, s := range ss.All("Selector") {
		name, _ := s.Attr("Name")
		sel := Selector{Name: name, Value: s.Text}
		if depth < 4 {
			if epr := s.Child("EndpointReference"); epr != nil {
				sel.EPR = parseEPRDepth(epr, depth+1)
			} else if s.Child("ReferenceParameters") != nil {
				sel.EPR = parseEPRDepth(s, depth+1)
			}
		}
		out = append(out, sel)
	}
	return out
}

// ParseEPR reads an endpoint reference written as Address +
// ReferenceParameters{ResourceURI, SelectorSet} children of e.
func ParseEPR(e *Element) *EPR { return parseEPRDepth(e, 0) }

func parseEPRDepth(e *Element, depth int) *EPR {
	if e == nil {
		return nil
	}
	if inner := e.Child("EndpointReference"); inner != nil {
		e = inner
	}
	rp := e.Child("ReferenceParameters")
	if rp == nil {
		return nil
	}
	out := &EPR{Address: e.Text1("Address"), ResourceURI: rp.Text1("ResourceURI")}
	if ss := rp.Child("SelectorSet"); ss != nil {
		out.Selectors = parseSelectors(ss, depth)
	}
	return out
}

// Pull parameters of an enumeration Pull body.
func pullParams(body *Element) (ctx string, maxElements int) {
	ctx = body.Text1("EnumerationContext")
	maxElements = 1
	if v, ok := body.Value("MaxElements"); ok {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			maxElements = n
		}
	}
	return ctx, maxElements
}
