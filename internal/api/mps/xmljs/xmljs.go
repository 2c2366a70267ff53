// Package xmljs turns a WS-MAN XML envelope into the JSON value MPS puts in
// its responses. MPS parses every device answer with xml2js configured as
//
//	{ignoreAttrs: true, mergeAttrs: false, explicitArray: false,
//	 tagNameProcessors: [stripPrefix],
//	 valueProcessors: [parseNumbers (except ElementName/InstanceID with a
//	                   leading 0), parseBooleans]}
//
// and several routes return (parts of) that object as is, so its shape is
// part of MPS's API (spec/mps.md §6.5). Parse reproduces xml2js's algorithm:
//
//   - the result is {<root name>: <root value>};
//   - namespace prefixes are dropped from element names; attributes are
//     ignored;
//   - an element with only text becomes that text, converted by the value
//     processors (JavaScript's Number/parseInt/parseFloat rules, then
//     "true"/"false" in any case to booleans);
//   - an element with children becomes an object whose keys follow document
//     order; a repeated child name becomes an array (a single child is not
//     wrapped); non-blank text mixed with children is kept under "_", first;
//   - an empty element (or one with only blank text) becomes that blank text,
//     usually "".
//
// Objects keep key order when encoded to JSON (see Object), and numbers are
// printed as JavaScript prints them (see Number).
package xmljs

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"

	"github.com/amtd-project/amtd/internal/api/valid"
)

// MaxDepth bounds element nesting (WS-MAN answers nest about 8 deep).
const MaxDepth = 128

// Object is a JSON object that keeps its keys in insertion order, as
// JavaScript objects with non-numeric keys do.
type Object struct {
	keys []string
	vals map[string]any
}

// NewObject returns an empty Object.
func NewObject() *Object { return &Object{vals: map[string]any{}} }

// Set sets key (appended at the end when new).
func (o *Object) Set(key string, v any) *Object {
	if _, ok := o.vals[key]; !ok {
		o.keys = append(o.keys, key)
	}
	o.vals[key] = v
	return o
}

// Get returns the value at key (nil when absent or o is nil).
func (o *Object) Get(key string) any {
	if o == nil {
		return nil
	}
	return o.vals[key]
}

// Has reports whether key is present.
func (o *Object) Has(key string) bool {
	if o == nil {
		return false
	}
	_, ok := o.vals[key]
	return ok
}

// Keys returns the keys in order.
func (o *Object) Keys() []string {
	if o == nil {
		return nil
	}
	return append([]string(nil), o.keys...)
}

// Len is the number of keys.
func (o *Object) Len() int {
	if o == nil {
		return 0
	}
	return len(o.keys)
}

// MarshalJSON encodes the object with its keys in order, without HTML
// escaping (as JSON.stringify).
func (o *Object) MarshalJSON() ([]byte, error) {
	if o == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	if err := encode(&b, o, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Number is a JavaScript number: encoded as String(n) prints it, NaN and
// ±Infinity as null (JSON.stringify).
type Number float64

// MarshalJSON implements json.Marshaler.
func (n Number) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return []byte(valid.JSNumber(f)), nil
}

func encode(b *bytes.Buffer, v any, depth int) error {
	if depth > MaxDepth+2 {
		return errors.New("xmljs: value nested too deeply")
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case *Object:
		if x == nil {
			b.WriteString("null")
			return nil
		}
		b.WriteByte('{')
		for i, k := range x.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := encode(b, x.vals[k], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, el := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encode(b, el, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case string:
		writeString(b, x)
	case Number:
		out, _ := x.MarshalJSON()
		b.Write(out)
	default:
		enc := json.NewEncoder(b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return err
		}
		// Encode appends a newline.
		b.Truncate(b.Len() - 1)
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	b.Truncate(b.Len() - 1)
}

// frame is an element being parsed.
type frame struct {
	name string
	obj  *Object
	text strings.Builder
}

// Parse converts an XML document as xml2js does with MPS's options.
func Parse(data []byte) (*Object, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	var stack []*frame
	var root *Object
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xmljs: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil {
				return nil, errors.New("xmljs: more than one root element")
			}
			if len(stack) >= MaxDepth {
				return nil, errors.New("xmljs: elements nested too deeply")
			}
			stack = append(stack, &frame{name: stripPrefix(t.Name.Local), obj: NewObject()})
		case xml.CharData:
			if len(stack) == 0 {
				if !isBlank(string(t)) {
					return nil, errors.New("xmljs: text outside the root element")
				}
				continue
			}
			stack[len(stack)-1].text.Write(t)
		case xml.EndElement:
			f := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			v := f.value()
			if len(stack) == 0 {
				root = NewObject().Set(f.name, v)
				continue
			}
			assignOrPush(stack[len(stack)-1].obj, f.name, v)
		}
	}
	if root == nil {
		return nil, errors.New("xmljs: no root element")
	}
	return root, nil
}

// value is xml2js's onclosetag for one element.
func (f *frame) value() any {
	text := f.text.String()
	if isBlank(text) {
		if f.obj.Len() == 0 {
			return text // emptyTag '' keeps the blank text itself
		}
		return f.obj
	}
	v := processValue(text, f.name)
	if f.obj.Len() == 0 {
		return v
	}
	// the character key was created first when the element opened
	obj := NewObject().Set("_", v)
	for _, k := range f.obj.keys {
		obj.Set(k, f.obj.vals[k])
	}
	return obj
}

func assignOrPush(o *Object, key string, v any) {
	old, ok := o.vals[key]
	if !ok {
		o.Set(key, v)
		return
	}
	if arr, isArr := old.([]any); isArr {
		o.vals[key] = append(arr, v)
		return
	}
	o.vals[key] = []any{old, v}
}

// stripPrefix is xml2js's processors.stripPrefix: everything up to the last
// colon goes (encoding/xml already split the first prefix off).
func stripPrefix(name string) string {
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// isJSSpace reports the characters JavaScript's \s and String.prototype.trim
// treat as white space.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A || (r > 0x7F && unicode.Is(unicode.Zs, r))
}

func isBlank(s string) bool {
	for _, r := range s {
		if !isJSSpace(r) {
			return false
		}
	}
	return true
}

// processValue runs MPS's value processors on an element's text.
func processValue(s, name string) any {
	var v any
	if (name == "ElementName" || name == "InstanceID") && len(s) > 1 && s[0] == '0' {
		v = s
	} else {
		v = parseNumbers(s)
	}
	return parseBooleans(v)
}

// parseBooleans is xml2js's processors.parseBooleans.
func parseBooleans(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	switch strings.ToLower(s) {
	case "true":
		return true
	case "false":
		return false
	}
	return v
}

// parseNumbers is xml2js's processors.parseNumbers:
//
//	if (!isNaN(str)) str = str % 1 === 0 ? parseInt(str, 10) : parseFloat(str)
func parseNumbers(s string) any {
	n, ok := jsNumber(s)
	if !ok {
		return s
	}
	if !math.IsInf(n, 0) && n == math.Trunc(n) {
		return Number(jsParseInt(s))
	}
	return Number(jsParseFloat(s))
}

// jsNumber is JavaScript's Number(string); ok is false for NaN.
func jsNumber(s string) (float64, bool) {
	t := strings.TrimFunc(s, isJSSpace)
	if t == "" {
		return 0, true
	}
	switch t {
	case "Infinity", "+Infinity":
		return math.Inf(1), true
	case "-Infinity":
		return math.Inf(-1), true
	}
	if len(t) > 2 && t[0] == '0' {
		base := 0
		switch t[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			return parseRadix(t[2:], base)
		}
	}
	if decimalLiteral(t) != len(t) {
		return 0, false
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

func parseRadix(digits string, base int) (float64, bool) {
	if digits == "" {
		return 0, false
	}
	var f float64
	for _, c := range digits {
		var d int
		switch {
		case c >= '0' && c <= '9':
			d = int(c - '0')
		case c >= 'a' && c <= 'f':
			d = int(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = int(c-'A') + 10
		default:
			return 0, false
		}
		if d >= base {
			return 0, false
		}
		f = f*float64(base) + float64(d)
	}
	return f, true
}

// decimalLiteral returns the length of the longest prefix of s that is a
// JavaScript StrDecimalLiteral: [+-] (digits [. digits] | . digits) [e [+-] digits],
// or [+-]Infinity. 0 when there is none.
func decimalLiteral(s string) int {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	if strings.HasPrefix(s[i:], "Infinity") {
		return i + len("Infinity")
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intDigits := i - start
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		fracDigits = j - i - 1
		if intDigits > 0 || fracDigits > 0 {
			i = j
		}
	}
	if intDigits == 0 && fracDigits == 0 {
		return 0
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		if k > j {
			i = k
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// jsParseInt is parseInt(s, 10): leading white space, a sign, then the
// longest run of decimal digits; NaN when there is none.
func jsParseInt(s string) float64 {
	t := strings.TrimLeftFunc(s, isJSSpace)
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	i := 0
	for i < len(t) && isDigit(t[i]) {
		i++
	}
	if i == 0 {
		return math.NaN()
	}
	f, _ := strconv.ParseFloat(t[:i], 64)
	if neg {
		f = -f
	}
	return f
}

// jsParseFloat is parseFloat(s): the longest StrDecimalLiteral prefix after
// leading white space; NaN when there is none.
func jsParseFloat(s string) float64 {
	t := strings.TrimLeftFunc(s, isJSSpace)
	n := decimalLiteral(t)
	if n == 0 {
		return math.NaN()
	}
	p := t[:n]
	switch strings.TrimLeft(p, "+-") {
	case "Infinity":
		if strings.HasPrefix(p, "-") {
			return math.Inf(-1)
		}
		return math.Inf(1)
	}
	f, err := strconv.ParseFloat(p, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return math.NaN()
	}
	return f
}

// ---- navigation helpers ----

// Path follows object keys from v; nil when a step is missing or not an
// object.
func Path(v any, keys ...string) any {
	for _, k := range keys {
		o, ok := v.(*Object)
		if !ok || o == nil {
			return nil
		}
		v = o.Get(k)
	}
	return v
}

// Obj returns v as an object (nil otherwise).
func Obj(v any) *Object {
	o, _ := v.(*Object)
	return o
}

// List returns v as a list: nil for nil, the array itself, or [v] for a
// single value (xml2js does not wrap single children).
func List(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{v}
	}
}

// Text is v's string form as JavaScript's String(v) gives it for the
// scalar values Parse produces ("" for nil and objects).
func Text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case Number:
		f := float64(x)
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return valid.JSNumber(f)
	case bool:
		if x {
			return "true"
		}
		return "false"
	}
	return ""
}

// Int returns v as an integer when it is a finite number or a numeric
// string.
func Int(v any) (int64, bool) {
	switch x := v.(type) {
	case Number:
		f := float64(x)
		if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Bool returns v as JavaScript truthiness of the values Parse produces.
func Bool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case Number:
		f := float64(x)
		return f != 0 && !math.IsNaN(f)
	case string:
		return x != ""
	case nil:
		return false
	}
	return true
}
