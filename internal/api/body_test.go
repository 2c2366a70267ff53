package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecodeBody(t *testing.T) {
	tests := []struct {
		name        string
		ctype, body string
		want        map[string]any
		wantStatus  int // 0: success
	}{
		{"empty", "application/json", "", map[string]any{}, 0},
		{"whitespace", "application/json", " \n", map[string]any{}, 0},
		{"object", "application/json", `{"a":1,"b":"x","c":true,"d":null}`, map[string]any{"a": 1.0, "b": "x", "c": true, "d": nil}, 0},
		{"no content type", "", `{"a":"x"}`, map[string]any{"a": "x"}, 0},
		{"charset", "application/json; charset=utf-8", `{"a":"x"}`, map[string]any{"a": "x"}, 0},
		{"duplicate key: last wins", "application/json", `{"a":1,"a":2}`, map[string]any{"a": 2.0}, 0},
		{"form", "application/x-www-form-urlencoded", "a=1&b=x+y", map[string]any{"a": "1", "b": "x y"}, 0},
		{"malformed", "application/json", `{"a":`, nil, 400},
		{"trailing garbage", "application/json", `{"a":1} x`, nil, 400},
		{"two objects", "application/json", `{} {}`, nil, 400},
		{"array", "application/json", `[1,2]`, nil, 400},
		{"string", "application/json", `"x"`, nil, 400},
		{"number", "application/json", `42`, nil, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/x", strings.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			got, err := DecodeBody(r)
			if tc.wantStatus != 0 {
				var e *Error
				if !errors.As(err, &e) || e.Status != tc.wantStatus || e.Message == "" {
					t.Fatalf("err = %v, want status %d with a reason", err, tc.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Fatalf("%s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
}

func TestDecodeBodyLimit(t *testing.T) {
	r := httptest.NewRequest("POST", "/x", strings.NewReader(`{"a":"`+strings.Repeat("x", 100)+`"}`))
	w := httptest.NewRecorder()
	r.Body = http.MaxBytesReader(w, r.Body, 50)
	_, err := DecodeBody(r)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("err = %v, want 413", err)
	}
}

func TestMalformedJSONReasonDoesNotEchoInput(t *testing.T) {
	_, err := ParseJSONObject([]byte(`{"password":"S3cret!" oops}`))
	if err == nil || strings.Contains(err.Error(), "S3cret") || strings.Contains(err.Error(), "oops") {
		t.Fatalf("err = %v", err)
	}
}

// FuzzParseJSONObject: request bodies come from the network.
func FuzzParseJSONObject(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"a":1}`, `[1]`, `{"a":{"b":[1,2,{"c":null}]}}`, `{"a":"\u0000"}`, `{`, `1e999`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := ParseJSONObject(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
				t.Fatalf("error %v is not a 400 *Error", err)
			}
			return
		}
		if obj == nil {
			t.Fatal("nil object without error")
		}
	})
}
