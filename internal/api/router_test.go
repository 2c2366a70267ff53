package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRouterLookup(t *testing.T) {
	rt := NewRouter(DefaultPrefixRules())
	h := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(name)) })
	}
	rt.Handle("GET", "/api/v1/admin/domains", h("list"))
	rt.Handle("GET", "/api/v1/admin/domains/:domainName", h("get"))
	rt.Handle("GET", "/api/v1/admin/profiles/export/:profileName", h("export"))
	rt.Handle("GET", "/api/v1/devices/:guid", h("device"))
	rt.Handle("GET", "/api/v1/devices/stats", h("stats"))
	rt.Handle("POST", "/api/v1/amt/power/bootOptions/:guid", h("boot"))
	rt.Handle("POST", "/api/v1/authorize", h("auth"), Alias("/mps/login/api/v1/authorize"))

	tests := []struct {
		method, path string
		want         string // route pattern, "" for no match
		params       []string
	}{
		{"GET", "/api/v1/admin/domains", "/api/v1/admin/domains", nil},
		{"GET", "/api/v1/admin/domains/", "/api/v1/admin/domains", nil},
		{"GET", "/API/V1/Admin/Domains", "/api/v1/admin/domains", nil},
		{"HEAD", "/api/v1/admin/domains", "/api/v1/admin/domains", nil},
		{"GET", "/api/v1/admin/domains/NewDomain", "/api/v1/admin/domains/:domainName", []string{"NewDomain"}},
		{"GET", "/api/v1/admin/domains/a%2Fb%20c", "/api/v1/admin/domains/:domainName", []string{"a/b c"}},
		{"GET", "/api/v1/admin/profiles/export/P1", "/api/v1/admin/profiles/export/:profileName", []string{"P1"}},
		{"GET", "/api/v1/devices/stats", "/api/v1/devices/stats", nil},
		{"GET", "/api/v1/devices/STATS", "/api/v1/devices/stats", nil},
		{"GET", "/api/v1/devices/123e4567-e89b-12d3-a456-426614174000", "/api/v1/devices/:guid", []string{"123e4567-e89b-12d3-a456-426614174000"}},
		{"POST", "/api/v1/amt/power/bootoptions/G", "/api/v1/amt/power/bootOptions/:guid", []string{"G"}},
		{"POST", "/api/v1/amt/power/bootOptions/G", "/api/v1/amt/power/bootOptions/:guid", []string{"G"}},
		// gateway prefixes
		{"GET", "/rps/api/v1/admin/domains/x", "/rps/api/v1/admin/domains/:domainName", []string{"x"}},
		{"GET", "/mps/api/v1/devices/stats", "/mps/api/v1/devices/stats", nil},
		{"POST", "/mps/login/api/v1/authorize", "/mps/login/api/v1/authorize", nil},
		{"POST", "/mps/api/v1/authorize", "/mps/api/v1/authorize", nil},
		// no match: admin routes are not under /mps, MPS routes not under /rps
		{"GET", "/mps/api/v1/admin/domains", "", nil},
		{"GET", "/rps/api/v1/devices/stats", "", nil},
		// unknown method or path → no match (404, never 405)
		{"PUT", "/api/v1/admin/domains", "", nil},
		{"DELETE", "/api/v1/admin/domains", "", nil},
		{"COPY", "/api/v1/admin/domains", "", nil},
		{"GET", "/api/v1/admin/domains/a/b", "", nil},
		{"GET", "/api/v1/admin//domains", "", nil},
		{"GET", "/nothing", "", nil},
		{"GET", "", "", nil},
	}
	for _, tc := range tests {
		m, err := rt.lookup(tc.method, tc.path)
		if err != nil {
			t.Errorf("%s %s: %v", tc.method, tc.path, err)
			continue
		}
		got := ""
		if m != nil {
			got = m.route.pattern
		}
		if got != tc.want {
			t.Errorf("%s %s: matched %q, want %q", tc.method, tc.path, got, tc.want)
			continue
		}
		if m != nil && strings.Join(m.params, "|") != strings.Join(tc.params, "|") {
			t.Errorf("%s %s: params %q, want %q", tc.method, tc.path, m.params, tc.params)
		}
	}

	if _, err := rt.lookup("GET", "/api/v1/admin/domains/%zz"); err == nil {
		t.Error("malformed escape in a parameter: want an error")
	}
}

func TestRouterSetsPathValues(t *testing.T) {
	rt := NewRouter(nil)
	rt.Handle("GET", "/a/:x/b/:y", http.NotFoundHandler())
	m, err := rt.lookup("GET", "/A/One/B/Two")
	if err != nil || m == nil {
		t.Fatalf("lookup: %v %v", m, err)
	}
	r := httptest.NewRequest("GET", "/A/One/B/Two", nil)
	m.setParams(r)
	if r.PathValue("x") != "One" || r.PathValue("y") != "Two" {
		t.Fatalf("path values %q %q", r.PathValue("x"), r.PathValue("y"))
	}
}

func TestRouterRejectsBadPatterns(t *testing.T) {
	for _, p := range []string{"nope", "/a//b", "/a/:", "/a/:x/:x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("pattern %q: want a panic", p)
				}
			}()
			NewRouter(nil).Handle("GET", p, http.NotFoundHandler())
		}()
	}
	rt := NewRouter(nil)
	rt.Handle("GET", "/a/:x", http.NotFoundHandler())
	defer func() {
		if recover() == nil {
			t.Error("duplicate route (same shape, other case and parameter name): want a panic")
		}
	}()
	rt.Handle("GET", "/A/:y", http.NotFoundHandler())
}

func TestPrefixRules(t *testing.T) {
	rt := NewRouter(DefaultPrefixRules())
	rt.Handle("GET", "/api/v1/admin/x", http.NotFoundHandler())
	rt.Handle("GET", "/relay/webrelay.ashx", http.NotFoundHandler(), Alias("/mps/ws/relay/webrelay.ashx"))
	rt.Handle("GET", "/internal", http.NotFoundHandler(), NoPrefix())
	got := strings.Join(rt.Routes(), ",")
	want := "GET /api/v1/admin/x,GET /rps/api/v1/admin/x,GET /relay/webrelay.ashx,GET /mps/relay/webrelay.ashx,GET /mps/ws/relay/webrelay.ashx,GET /internal"
	if got != want {
		t.Fatalf("routes\n got %s\nwant %s", got, want)
	}
}

// FuzzRouterLookup: request paths come from the network.
func FuzzRouterLookup(f *testing.F) {
	rt := NewRouter(DefaultPrefixRules())
	rt.Handle("GET", "/api/v1/admin/domains/:domainName", http.NotFoundHandler())
	rt.Handle("GET", "/api/v1/devices/stats", http.NotFoundHandler())
	rt.Handle("GET", "/api/v1/devices/:guid", http.NotFoundHandler())
	for _, s := range []string{"/api/v1/admin/domains/x", "/rps/api/v1/admin/domains/%41", "//", "/api/v1/devices/%zz", "", "/a/b/c/d/e/f/g"} {
		f.Add("GET", s)
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		m, err := rt.lookup(method, path)
		if err != nil || m == nil {
			return
		}
		n := 0
		for _, s := range m.route.segs {
			if s.param != "" {
				n++
			}
		}
		if n != len(m.params) {
			t.Fatalf("%d params for %d parameter segments", len(m.params), n)
		}
	})
}
