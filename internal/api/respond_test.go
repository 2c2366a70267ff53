package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWeakETag(t *testing.T) {
	// Express's constant for an empty body (etag package), and two bodies
	// computed independently (len hex, base64 SHA-1 truncated to 27).
	tests := map[string]string{
		"":   `W/"0-2jmj7l5rSw0yVb/vlWAYkK/YBwk"`,
		"[]": `W/"2-l9Fw4VUO7kr8CvBlt4zaMCqXZ0w"`,
		`{"message":"admin path. use admin/profiles"}`: `W/"2c-ohlg5A8WQG7fycFF4AvuSNBRsDc"`,
	}
	for body, want := range tests {
		if got := WeakETag([]byte(body)); got != want {
			t.Errorf("WeakETag(%q) = %s, want %s", body, got, want)
		}
	}
}

func TestMarshalLikeJSONStringify(t *testing.T) {
	b, err := Marshal(map[string]string{"a": "<&>"})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"a":"<&>"}` {
		t.Fatalf("got %s", b)
	}
}

func TestWriteJSONConditional(t *testing.T) {
	body := `[]`
	etag := WeakETag([]byte(body))
	tests := []struct {
		name       string
		method     string
		status     int
		hdr        map[string]string
		wantStatus int
	}{
		{"plain", "GET", 200, nil, 200},
		{"match", "GET", 200, map[string]string{"If-None-Match": etag}, 304},
		{"strong form matches weakly", "GET", 200, map[string]string{"If-None-Match": strings.TrimPrefix(etag, "W/")}, 304},
		{"list", "GET", 200, map[string]string{"If-None-Match": `"x", ` + etag}, 304},
		{"star", "GET", 200, map[string]string{"If-None-Match": "*"}, 304},
		{"HEAD", "HEAD", 200, map[string]string{"If-None-Match": etag}, 304},
		{"other tag", "GET", 200, map[string]string{"If-None-Match": `W/"2-xxx"`}, 200},
		{"no-cache", "GET", 200, map[string]string{"If-None-Match": etag, "Cache-Control": "no-cache"}, 200},
		{"max-age does not disable", "GET", 200, map[string]string{"If-None-Match": etag, "Cache-Control": "max-age"}, 304},
		{"not GET", "POST", 200, map[string]string{"If-None-Match": etag}, 200},
		{"not 2xx", "GET", 404, map[string]string{"If-None-Match": etag}, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/x", nil)
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			WriteJSONBytes(w, r, tc.status, []byte(body))
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, tc.wantStatus)
			}
			if w.Header().Get("ETag") != etag {
				t.Fatalf("ETag %q, want %q", w.Header().Get("ETag"), etag)
			}
			if tc.wantStatus == http.StatusNotModified && w.Body.Len() != 0 {
				t.Fatalf("304 with a body: %q", w.Body.String())
			}
			if tc.wantStatus != http.StatusNotModified && w.Body.String() != body {
				t.Fatalf("body %q", w.Body.String())
			}
		})
	}
}

func TestWriteJSONKeepsHandlerETag(t *testing.T) {
	w := httptest.NewRecorder()
	w.Header().Set("ETag", "7")
	WriteJSON(w, httptest.NewRequest("PATCH", "/x", nil), http.StatusConflict, map[string]int{"a": 1})
	if w.Header().Get("ETag") != "7" || w.Code != 409 {
		t.Fatalf("ETag %q status %d", w.Header().Get("ETag"), w.Code)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Fatalf("content type %q", ct)
	}
}
