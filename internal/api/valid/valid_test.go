package valid

import (
	"encoding/json"
	"math"
	"net/url"
	"testing"
)

func TestString(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, ""}, {"x", "x"}, {true, "true"}, {false, "false"},
		{4433.0, "4433"}, {1.5, "1.5"}, {-0.0, "0"}, {1e21, "1e+21"}, {1.5e-7, "1.5e-7"}, {123456789012.0, "123456789012"},
		{math.NaN(), ""}, {math.Inf(1), "Infinity"},
		{map[string]any{"a": 1.0}, "[object Object]"}, {[]any{1.0, "a", nil}, "1,a,"},
	}
	for _, tc := range tests {
		if got := String(tc.in); got != tc.want {
			t.Errorf("String(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsIntString(t *testing.T) {
	r := Range(1024, 49151)
	tests := []struct {
		s    string
		o    IntOpts
		want bool
	}{
		{"4433", r, true}, {"1024", r, true}, {"49151", r, true}, {"1023", r, false}, {"49152", r, false},
		{"+4433", r, true}, {"04433", r, true}, {"4433.0", r, false}, {"", r, false}, {"wrong", r, false}, {"-", IntOpts{}, false},
		{"-5", IntOpts{}, true}, {"05", IntOpts{NoLeadingZeroes: true}, false}, {"0", IntOpts{NoLeadingZeroes: true}, true},
		{"99999999999999999999", Range(0, 9999999999), false},
	}
	for _, tc := range tests {
		if got := IsIntString(tc.s, tc.o); got != tc.want {
			t.Errorf("IsIntString(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestIsFQDN(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"intel.com", true}, {"a.b-c.example.org", true}, {"-intel.com", false}, {"intel-.com", false},
		{"intel", false}, {"intel.c", false}, {"intel.123", false}, {"in_tel.com", false}, {"intel.com.", false},
		{"a..com", false}, {"xn--bcher-kva.example", true}, {"intel .com", false}, {"example.xn--p1ai", true},
	}
	for _, tc := range tests {
		if got := IsFQDN(tc.s, DefaultFQDN); got != tc.want {
			t.Errorf("IsFQDN(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
	if !IsFQDN("intel.com.", FQDNOpts{RequireTLD: true, AllowTrailingDot: true}) || !IsFQDN("in_tel.com", FQDNOpts{RequireTLD: true, AllowUnderscores: true}) {
		t.Error("options ignored")
	}
}

func TestIsIP(t *testing.T) {
	for s, want := range map[string]bool{"192.168.8.50": true, "255.255.255.255": true, "256.1.1.1": false, "01.1.1.1": false, "1.1.1": false, "a.b.c.d": false} {
		if IsIPv4(s) != want {
			t.Errorf("IsIPv4(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"::1": true, "fe80::1%eth0": true, "2001:db8::": true, "::ffff:1.2.3.4": true, "1.2.3.4": false, "fe80::1%": false, "g::1": false} {
		if IsIPv6(s) != want {
			t.Errorf("IsIPv6(%q) != %v", s, want)
		}
	}
}

func TestChainSemantics(t *testing.T) {
	body := map[string]any{"port": "wrong", "nul": nil, "empty": "", "flag": true, "pw": "short", "list": []any{1.0, "x"}}
	v := New()
	// Every failing validator of a chain reports, in order.
	v.Body(body, "missing").NotEmpty("required").IsInt(Range(1, 2), "range")
	// Optional skips absent fields only; OptionalNullable also null.
	v.Body(body, "missing").Optional().NotEmpty("never")
	v.Body(body, "nul").OptionalNullable().NotEmpty("never")
	v.Body(body, "nul").Optional().NotEmpty("null is present")
	// If skips the rest of the chain.
	v.Body(body, "port").If(false).IsInt(IntOpts{}, "never")
	v.Body(body, "port").IsInt(IntOpts{}, "")
	// Default fills "" and absent values before validation.
	d := v.Body(body, "empty").Default(false).IsBoolean("never")
	if d.Value() != false {
		t.Errorf("Default: value %v", d.Value())
	}
	v.Body(body, "flag").IsBoolean("never").IsIn([]any{"true"}, "never").Custom(func(x any) string {
		if x != true {
			return "custom sees the raw value"
		}
		return ""
	})
	v.Body(body, "pw").Redact().IsLength(8, 63, "too short")
	v.Body(body, "list").IsInt(IntOpts{}, "array elements") // "x" fails
	v.Query(url.Values{"$top": {"ten"}}, "$top").Optional().IsInt(IntOpts{}, "top")

	got, _ := json.Marshal(v.Errors())
	want := `[` +
		`{"type":"field","msg":"required","path":"missing","location":"body"},` +
		`{"type":"field","msg":"range","path":"missing","location":"body"},` +
		`{"type":"field","value":null,"msg":"null is present","path":"nul","location":"body"},` +
		`{"type":"field","value":"wrong","msg":"Invalid value","path":"port","location":"body"},` +
		`{"type":"field","value":"[redacted]","msg":"too short","path":"pw","location":"body"},` +
		`{"type":"field","value":[1,"x"],"msg":"array elements","path":"list","location":"body"},` +
		`{"type":"field","value":"ten","msg":"top","path":"$top","location":"query"}]`
	if string(got) != want {
		t.Fatalf("errors\n got %s\nwant %s", got, want)
	}
}
