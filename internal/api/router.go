package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// Router matches requests the way Express does, which is what RPS/MPS clients
// were written against:
//
//   - literal path segments match case-insensitively (/power/bootOptions and
//     /power/bootoptions are the same route); parameters keep their case and
//     are URL-decoded;
//   - a trailing slash is optional (/domains/ is /domains);
//   - an unknown path or a known path with an unknown method answers 404, never
//     405 (admin-api.md §1);
//   - HEAD is served by the GET route.
//
// When several routes match, the one whose first differing segment is a
// literal wins (/devices/stats beats /devices/:guid), so registration order
// does not matter.
//
// Every route is also reachable under the gateway prefixes of the Router's
// PrefixRules (by default /rps for /api/v1/admin/… and /mps for the rest),
// because Intel's web UI and gateway call those paths.
//
// Path parameters are set with http.Request.SetPathValue: handlers read them
// with r.PathValue("name").
type Router struct {
	mu       sync.RWMutex
	routes   []*route
	prefixes []PrefixRule
}

// PrefixRule mounts routes under an extra path prefix: a route whose pattern
// starts with Under (segment-wise, case-insensitively) and with none of
// Except is also served at Prefix+pattern.
type PrefixRule struct {
	Prefix string   // e.g. "/rps"
	Under  string   // e.g. "/api/v1/admin"; "/" for every route
	Except []string // pattern prefixes excluded from the rule
}

// DefaultPrefixRules are the gateway prefixes of Intel's deployment: the RPS
// admin API under /rps, everything else (MPS API, relay) under /mps.
func DefaultPrefixRules() []PrefixRule {
	return []PrefixRule{
		{Prefix: "/rps", Under: "/api/v1/admin"},
		{Prefix: "/mps", Under: "/", Except: []string{"/api/v1/admin"}},
	}
}

type segment struct {
	lit   string // literal (compared case-insensitively) when param == ""
	param string
}

type route struct {
	method  string // upper case
	pattern string // as registered (without gateway prefix)
	segs    []segment
	handler http.Handler
	public  bool
}

// RouteOption changes how a route is registered.
type RouteOption func(*routeOptions)

type routeOptions struct {
	public   bool
	noPrefix bool
	aliases  []string
}

// Public marks a route that needs no bearer token (e.g. POST /api/v1/authorize,
// or a WebSocket route that authenticates by its own means).
func Public() RouteOption { return func(o *routeOptions) { o.public = true } }

// NoPrefix registers the route only at its own pattern, not under the gateway
// prefixes.
func NoPrefix() RouteOption { return func(o *routeOptions) { o.noPrefix = true } }

// Alias also serves the route at the given full patterns (no gateway prefix
// is added to them), e.g. Alias("/mps/login/api/v1/authorize").
func Alias(patterns ...string) RouteOption {
	return func(o *routeOptions) { o.aliases = append(o.aliases, patterns...) }
}

// NewRouter returns an empty router with the given prefix rules.
func NewRouter(rules []PrefixRule) *Router {
	return &Router{prefixes: append([]PrefixRule(nil), rules...)}
}

// Handle registers h for method and pattern. Pattern segments starting with
// ':' are parameters ("/api/v1/admin/domains/:domainName"). It panics on a
// malformed pattern or a duplicate registration, as net/http.ServeMux does.
func (rt *Router) Handle(method, pattern string, h http.Handler, opts ...RouteOption) {
	var o routeOptions
	for _, fn := range opts {
		fn(&o)
	}
	method = strings.ToUpper(method)
	patterns := []string{pattern}
	if !o.noPrefix {
		for _, rule := range rt.prefixes {
			if ruleApplies(rule, pattern) {
				patterns = append(patterns, strings.TrimRight(rule.Prefix, "/")+pattern)
			}
		}
	}
	patterns = append(patterns, o.aliases...)

	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, p := range patterns {
		segs, err := parsePattern(p)
		if err != nil {
			panic(fmt.Sprintf("api: route %s %s: %v", method, p, err))
		}
		nr := &route{method: method, pattern: p, segs: segs, handler: h, public: o.public}
		for _, old := range rt.routes {
			if old.method == method && sameShape(old.segs, segs) {
				panic(fmt.Sprintf("api: route %s %s registered twice (as %s)", method, p, old.pattern))
			}
		}
		rt.routes = append(rt.routes, nr)
	}
}

// HandleFunc registers a handler function.
func (rt *Router) HandleFunc(method, pattern string, h http.HandlerFunc, opts ...RouteOption) {
	rt.Handle(method, pattern, h, opts...)
}

func ruleApplies(rule PrefixRule, pattern string) bool {
	if !hasPathPrefix(pattern, rule.Under) {
		return false
	}
	for _, ex := range rule.Except {
		if hasPathPrefix(pattern, ex) {
			return false
		}
	}
	return true
}

// hasPathPrefix reports whether path starts with prefix at a segment
// boundary, case-insensitively.
func hasPathPrefix(path, prefix string) bool {
	prefix = strings.TrimRight(prefix, "/")
	if prefix == "" {
		return true
	}
	if len(path) < len(prefix) || !strings.EqualFold(path[:len(prefix)], prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

func parsePattern(p string) ([]segment, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("pattern must start with /")
	}
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil, nil
	}
	parts := strings.Split(p[1:], "/")
	segs := make([]segment, len(parts))
	seen := map[string]bool{}
	for i, part := range parts {
		switch {
		case part == "":
			return nil, fmt.Errorf("empty segment")
		case strings.HasPrefix(part, ":"):
			name := part[1:]
			if name == "" || seen[name] {
				return nil, fmt.Errorf("bad or duplicate parameter %q", part)
			}
			seen[name] = true
			segs[i] = segment{param: name}
		default:
			segs[i] = segment{lit: part}
		}
	}
	return segs, nil
}

func sameShape(a, b []segment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i].param == "") != (b[i].param == "") {
			return false
		}
		if a[i].param == "" && !strings.EqualFold(a[i].lit, b[i].lit) {
			return false
		}
	}
	return true
}

// match is the result of routing one request.
type match struct {
	route  *route
	params []string // values, aligned with the route's parameter segments
}

// errBadPath: a parameter segment could not be URL-decoded.
type errBadPath struct{ seg string }

func (e errBadPath) Error() string { return "malformed path segment " + e.seg }

// lookup finds the route for method and escaped path. It returns nil when
// nothing matches (the caller answers 404).
func (rt *Router) lookup(method, escapedPath string) (*match, error) {
	p := strings.TrimSuffix(escapedPath, "/")
	var parts []string
	if p != "" {
		if !strings.HasPrefix(p, "/") {
			return nil, nil
		}
		parts = strings.Split(p[1:], "/")
	}
	if method == http.MethodHead {
		method = http.MethodGet
	}
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	var best *route
	for _, r := range rt.routes {
		if r.method != method || len(r.segs) != len(parts) || !literalsMatch(r.segs, parts) {
			continue
		}
		if best == nil || moreSpecific(r.segs, best.segs) {
			best = r
		}
	}
	if best == nil {
		return nil, nil
	}
	m := &match{route: best}
	for i, s := range best.segs {
		if s.param == "" {
			continue
		}
		v, err := url.PathUnescape(parts[i])
		if err != nil {
			return nil, errBadPath{seg: parts[i]}
		}
		m.params = append(m.params, v)
	}
	return m, nil
}

func literalsMatch(segs []segment, parts []string) bool {
	for i, s := range segs {
		if s.param != "" {
			if parts[i] == "" {
				return false
			}
			continue
		}
		if !strings.EqualFold(s.lit, parts[i]) {
			// Literal segments are compared after decoding too, so
			// %2D-style escapes of plain characters still match.
			if dec, err := url.PathUnescape(parts[i]); err != nil || !strings.EqualFold(s.lit, dec) {
				return false
			}
		}
	}
	return true
}

// moreSpecific: at the first segment where a and b differ in kind, a has the
// literal.
func moreSpecific(a, b []segment) bool {
	for i := range a {
		al, bl := a[i].param == "", b[i].param == ""
		if al != bl {
			return al
		}
	}
	return false
}

// setParams stores the matched parameters on the request.
func (m *match) setParams(r *http.Request) {
	i := 0
	for _, s := range m.route.segs {
		if s.param != "" {
			r.SetPathValue(s.param, m.params[i])
			i++
		}
	}
}

// Routes lists the registered method/pattern pairs (for tests and debugging).
func (rt *Router) Routes() []string {
	rt.mu.RLock()
	defer rt.mu.RUnlock()
	out := make([]string, 0, len(rt.routes))
	for _, r := range rt.routes {
		out = append(out, r.method+" "+r.pattern)
	}
	return out
}
