// Package valid reproduces the semantics of express-validator v7, which RPS
// and MPS use, closely enough that amtd's validation errors are the same
// objects, in the same order, with the same messages (admin-api.md §2.2):
//
//   - a Validator collects errors from chains, in the order the chains are
//     built; a chain is one field;
//   - inside a chain every failing validator adds an error (chains do not
//     stop at the first failure), unless the chain is skipped by Optional,
//     OptionalNullable or If;
//   - validators see the value in string form (JSON true is "true", 4433 is
//     "4433", null and absent are ""); Custom checks see the raw value;
//   - an error carries the raw value (the key is omitted when the field is
//     absent), the message ("Invalid value" when none is given), the path and
//     the location.
//
// Methods are evaluated eagerly, in call order, so a chain reads like the
// express-validator chain it mirrors:
//
//	v := valid.New()
//	v.Body(body, "mpsPort").NotEmpty("MPS port is required").
//		IsInt(valid.Range(1024, 49151), "MPS Port value should range between 1024 and 49151")
package valid

import (
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"
)

// DefaultMessage is express-validator's message for a validator without
// withMessage.
const DefaultMessage = "Invalid value"

// Locations of a field.
const (
	LocBody   = "body"
	LocQuery  = "query"
	LocParams = "params"
)

// FieldError is one validation error, serialised as express-validator v7
// does: {"type":"field","value":…,"msg":…,"path":…,"location":…}.
type FieldError struct {
	Value    any
	HasValue bool // false when the field was absent: "value" is omitted
	Msg      string
	Path     string
	Location string
}

// MarshalJSON keeps express-validator's key order and omits "value" for
// absent fields.
func (e FieldError) MarshalJSON() ([]byte, error) {
	type withValue struct {
		Type     string `json:"type"`
		Value    any    `json:"value"`
		Msg      string `json:"msg"`
		Path     string `json:"path"`
		Location string `json:"location"`
	}
	type withoutValue struct {
		Type     string `json:"type"`
		Msg      string `json:"msg"`
		Path     string `json:"path"`
		Location string `json:"location"`
	}
	if e.HasValue {
		return json.Marshal(withValue{"field", e.Value, e.Msg, e.Path, e.Location})
	}
	return json.Marshal(withoutValue{"field", e.Msg, e.Path, e.Location})
}

// Errors is the list of failures; the 400 body is {"errors":Errors}.
type Errors []FieldError

// Body is the JSON body of a 400 validation answer.
func (e Errors) Body() any {
	return struct {
		Errors Errors `json:"errors"`
	}{e}
}

// Validator accumulates errors.
type Validator struct {
	errs Errors
}

// New returns an empty Validator.
func New() *Validator { return &Validator{} }

// Errors returns the errors collected so far (nil when none).
func (v *Validator) Errors() Errors { return v.errs }

// Failed reports whether any chain failed.
func (v *Validator) Failed() bool { return len(v.errs) > 0 }

// Add appends an error directly (for checks that are not chains).
func (v *Validator) Add(e FieldError) { v.errs = append(v.errs, e) }

// Field starts a chain for a field at a location with its raw value.
func (v *Validator) Field(loc, path string, value any, present bool) *Chain {
	return &Chain{v: v, loc: loc, path: path, value: value, present: present}
}

// Body starts a chain for a body field.
func (v *Validator) Body(body map[string]any, path string) *Chain {
	val, ok := body[path]
	return v.Field(LocBody, path, val, ok)
}

// Query starts a chain for a query parameter (a repeated parameter is an
// array of strings, as Express's query parser makes it).
func (v *Validator) Query(q url.Values, path string) *Chain {
	vals, ok := q[path]
	if !ok || len(vals) == 0 {
		return v.Field(LocQuery, path, nil, false)
	}
	if len(vals) == 1 {
		return v.Field(LocQuery, path, vals[0], true)
	}
	arr := make([]any, len(vals))
	for i, s := range vals {
		arr[i] = s
	}
	return v.Field(LocQuery, path, arr, true)
}

// Chain validates one field. Its methods return the chain for chaining.
type Chain struct {
	v       *Validator
	loc     string
	path    string
	value   any
	present bool
	skip    bool
	redact  bool
}

// Redacted is the value reported in errors of a Redact chain.
const Redacted = "[redacted]"

// Redact marks a secret field (a password, a PFX): its errors report the
// value as Redacted instead of echoing the secret back.
func (c *Chain) Redact() *Chain {
	c.redact = true
	return c
}

// Value is the field's raw value (after Default).
func (c *Chain) Value() any { return c.value }

// Present reports whether the field was given.
func (c *Chain) Present() bool { return c.present }

// Optional skips the rest of the chain when the field is absent.
func (c *Chain) Optional() *Chain {
	if !c.present {
		c.skip = true
	}
	return c
}

// OptionalNullable skips the rest of the chain when the field is absent or
// null (optional({nullable:true})).
func (c *Chain) OptionalNullable() *Chain {
	if !c.present || c.value == nil {
		c.skip = true
	}
	return c
}

// If skips the rest of the chain when cond is false.
func (c *Chain) If(cond bool) *Chain {
	if !cond {
		c.skip = true
	}
	return c
}

// Default replaces an absent, null or empty-string value (default()).
func (c *Chain) Default(v any) *Chain {
	if c.skip {
		return c
	}
	if !c.present || c.value == nil || c.value == "" {
		c.value, c.present = v, true
	}
	return c
}

func (c *Chain) fail(msg string) {
	if msg == "" {
		msg = DefaultMessage
	}
	val := c.value
	if c.redact && c.present && val != nil {
		val = Redacted
	}
	c.v.errs = append(c.v.errs, FieldError{Value: val, HasValue: c.present, Msg: msg, Path: c.path, Location: c.loc})
}

// standard runs a string validator on the value, or on each element of an
// array value (express-validator's behaviour for standard validators).
func (c *Chain) standard(ok func(string) bool, msg string) *Chain {
	if c.skip {
		return c
	}
	pass := true
	if arr, isArr := c.value.([]any); isArr {
		for _, el := range arr {
			if !ok(String(el)) {
				pass = false
			}
		}
	} else {
		pass = ok(String(c.value))
	}
	if !pass {
		c.fail(msg)
	}
	return c
}

// NotEmpty is not().isEmpty(): the string form is not "".
func (c *Chain) NotEmpty(msg string) *Chain {
	if arr, isArr := c.value.([]any); isArr && len(arr) == 0 {
		if !c.skip {
			c.fail(msg)
		}
		return c
	}
	return c.standard(func(s string) bool { return s != "" }, msg)
}

// Exists fails when the field is absent (exists()).
func (c *Chain) Exists(msg string) *Chain {
	if !c.skip && !c.present {
		c.fail(msg)
	}
	return c
}

// Matches tests the string form with a predicate (matches(regex)).
func (c *Chain) Matches(pred func(string) bool, msg string) *Chain { return c.standard(pred, msg) }

// IntOpts bounds IsInt (validator.js isInt options).
type IntOpts struct {
	Min, Max           *float64
	NoLeadingZeroes    bool
	GreaterThan, Below *float64 // gt, lt
}

// Range is IntOpts{Min: min, Max: max}.
func Range(min, max float64) IntOpts { return IntOpts{Min: &min, Max: &max} }

// IsInt is isInt(options).
func (c *Chain) IsInt(o IntOpts, msg string) *Chain {
	return c.standard(func(s string) bool { return IsIntString(s, o) }, msg)
}

// IsIntString implements validator.js isInt on a string.
func IsIntString(s string, o IntOpts) bool {
	if s == "" {
		return false
	}
	body := s
	if body[0] == '+' || body[0] == '-' {
		body = body[1:]
	}
	if body == "" {
		return false
	}
	for _, r := range body {
		if r < '0' || r > '9' {
			return false
		}
	}
	if o.NoLeadingZeroes && len(body) > 1 && body[0] == '0' {
		return false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !strings.Contains(err.Error(), "range") {
		return false
	}
	if o.Min != nil && f < *o.Min {
		return false
	}
	if o.Max != nil && f > *o.Max {
		return false
	}
	if o.GreaterThan != nil && !(f > *o.GreaterThan) {
		return false
	}
	if o.Below != nil && !(f < *o.Below) {
		return false
	}
	return true
}

// IsBoolean is isBoolean() (strict: "true", "false", "1", "0").
func (c *Chain) IsBoolean(msg string) *Chain {
	return c.standard(IsBooleanString, msg)
}

// IsBooleanString implements validator.js isBoolean (strict).
func IsBooleanString(s string) bool {
	switch s {
	case "true", "false", "1", "0":
		return true
	}
	return false
}

// IsIn is isIn(values): the string form equals one of values' string forms.
func (c *Chain) IsIn(values []any, msg string) *Chain {
	return c.standard(func(s string) bool {
		for _, v := range values {
			if String(v) == s {
				return true
			}
		}
		return false
	}, msg)
}

// IsLength is isLength({min, max}); max < 0 means no maximum.
func (c *Chain) IsLength(min, max int, msg string) *Chain {
	return c.standard(func(s string) bool {
		n := Length(s)
		return n >= min && (max < 0 || n <= max)
	}, msg)
}

// IsAlphanumeric is isAlphanumeric() for en-US.
func (c *Chain) IsAlphanumeric(msg string) *Chain { return c.standard(IsAlphanumeric, msg) }

// IsArray is isArray(): the raw value is an array.
func (c *Chain) IsArray(msg string) *Chain {
	if c.skip {
		return c
	}
	if _, ok := c.value.([]any); !ok {
		c.fail(msg)
	}
	return c
}

// IsPort is isPort(): an integer 0–65535 without leading zeroes.
func (c *Chain) IsPort(msg string) *Chain {
	return c.IsInt(IntOpts{Min: ptr(0), Max: ptr(65535), NoLeadingZeroes: true}, msg)
}

// IsString is isString(): the value is a JSON string (absent fails too).
func (c *Chain) IsString(msg string) *Chain {
	if c.skip {
		return c
	}
	if _, ok := c.value.(string); !ok {
		c.fail(msg)
	}
	return c
}

// Check adds msg when ok is false (a custom check computed by the caller).
func (c *Chain) Check(ok bool, msg string) *Chain {
	if !c.skip && !ok {
		c.fail(msg)
	}
	return c
}

// Custom runs fn on the raw value; a non-empty result is the error message
// (custom() that throws).
func (c *Chain) Custom(fn func(v any) string) *Chain {
	if c.skip {
		return c
	}
	if msg := fn(c.value); msg != "" {
		c.fail(msg)
	}
	return c
}

func ptr(f float64) *float64 { return &f }

// String converts a value to the string form express-validator's standard
// validators see (its toString): null/absent → "", numbers as JavaScript
// prints them, booleans "true"/"false", objects "[object Object]", arrays
// joined with commas.
func String(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		if math.IsNaN(x) {
			return ""
		}
		return JSNumber(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case json.Number:
		return x.String()
	case []any:
		parts := make([]string, len(x))
		for i, el := range x {
			if el != nil {
				parts[i] = String(el)
			}
		}
		return strings.Join(parts, ",")
	case map[string]any:
		return "[object Object]"
	default:
		return ""
	}
}

// JSNumber formats a float64 as JavaScript's String(number) does.
func JSNumber(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	abs := math.Abs(f)
	if abs >= 1e21 || abs < 1e-6 {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go: 1e+21, 1.5e-07; JavaScript: 1e+21, 1.5e-7.
		mant, exp, _ := strings.Cut(s, "e")
		sign := exp[0]
		digits := strings.TrimLeft(exp[1:], "0")
		if digits == "" {
			digits = "0"
		}
		return mant + "e" + string(sign) + digits
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Length counts characters as validator.js isLength does (code points,
// variation selectors excluded).
func Length(s string) int {
	n := 0
	for _, r := range s {
		if r == '\uFE0E' || r == '\uFE0F' {
			continue
		}
		n++
	}
	return n
}

// IsAlphanumeric: only ASCII letters and digits, at least one.
func IsAlphanumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z') {
			return false
		}
	}
	return true
}
