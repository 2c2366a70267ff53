// Package rps serves amtd's RPS-compatible admin API (spec/admin-api.md):
// CIRA configs, domains (provisioning certificates), AMT profiles with their
// export, wireless, IEEE 802.1x and proxy configs, plus the admin health and
// version routes, under /api/v1/admin (and /rps/api/v1/admin).
//
// Wire shapes (field order, messages, status codes) follow RPS 2.40.0; the
// flaws listed in admin-api.md §11 are not copied: secrets (CIRA password,
// PFX and its password, AMT/MEBx passwords, PSK passphrases) live only in the
// secret store, under keys scoped by tenant and a random per-object id, and
// never appear in responses or logs.
//
// Secret writes are ordered so that nothing is ever half-stored: a create
// writes the secret under a new id and then inserts the row (deleting the
// secret when the insert fails); an update with new secret values writes them
// under a new id, updates the row, and only then deletes the old entry (or
// deletes the new one when the update fails).
package rps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// Base is the admin API's base path.
const Base = "/api/v1/admin"

// ProtocolVersion is the rpc-go protocol version reported by GET /version.
const ProtocolVersion = "4.0.0"

// Options configures the admin routes.
type Options struct {
	// EnterpriseAssistantURL is written into exported profiles whose TLS
	// signing authority is MicrosoftCA.
	EnterpriseAssistantURL string
	// CheckPFX is the certificate doctor (default certs.CheckPFX).
	CheckPFX func(pfx []byte, password, domainSuffix string, now time.Time) *certs.Report
	// SecretTimeout bounds the clean-up of a secret after a failed write
	// (default 10s); it runs even when the request was cancelled.
	SecretTimeout time.Duration
}

type handlers struct {
	srv     *api.Server
	st      store.Store
	sec     secrets.Store
	now     func() time.Time
	opts    Options
	cleanup time.Duration
}

// Register adds the admin routes to srv.
func Register(srv *api.Server, opts Options) {
	if opts.CheckPFX == nil {
		opts.CheckPFX = certs.CheckPFX
	}
	h := &handlers{srv: srv, st: srv.Store(), sec: srv.Secrets(), now: srv.Now, opts: opts, cleanup: opts.SecretTimeout}
	if h.cleanup <= 0 {
		h.cleanup = 10 * time.Second
	}

	srv.HandleFunc(http.MethodGet, Base, h.adminRoot)
	srv.HandleFunc(http.MethodGet, Base+"/version", h.version, api.Public())
	srv.HandleFunc(http.MethodGet, Base+"/health", h.health, api.Public())

	srv.HandleFunc(http.MethodGet, Base+"/ciraconfigs", h.listCIRA)
	srv.HandleFunc(http.MethodGet, Base+"/ciraconfigs/:ciraConfigName", h.getCIRA)
	srv.HandleFunc(http.MethodPost, Base+"/ciraconfigs", h.createCIRA)
	srv.HandleFunc(http.MethodPatch, Base+"/ciraconfigs", h.updateCIRA)
	srv.HandleFunc(http.MethodDelete, Base+"/ciraconfigs/:ciraConfigName", h.deleteCIRA)

	srv.HandleFunc(http.MethodGet, Base+"/domains", h.listDomains)
	srv.HandleFunc(http.MethodGet, Base+"/domains/:domainName", h.getDomain)
	srv.HandleFunc(http.MethodPost, Base+"/domains", h.createDomain)
	srv.HandleFunc(http.MethodPatch, Base+"/domains", h.updateDomain)
	srv.HandleFunc(http.MethodDelete, Base+"/domains/:domainName", h.deleteDomain)

	srv.HandleFunc(http.MethodGet, Base+"/profiles", h.listProfiles)
	srv.HandleFunc(http.MethodGet, Base+"/profiles/:profileName", h.getProfile)
	srv.HandleFunc(http.MethodGet, Base+"/profiles/export/:profileName", h.exportProfile)
	srv.HandleFunc(http.MethodPost, Base+"/profiles", h.createProfile)
	srv.HandleFunc(http.MethodPatch, Base+"/profiles", h.updateProfile)
	srv.HandleFunc(http.MethodDelete, Base+"/profiles/:profileName", h.deleteProfile)

	srv.HandleFunc(http.MethodGet, Base+"/wirelessconfigs", h.listWireless)
	srv.HandleFunc(http.MethodGet, Base+"/wirelessconfigs/:profileName", h.getWireless)
	srv.HandleFunc(http.MethodPost, Base+"/wirelessconfigs", h.createWireless)
	srv.HandleFunc(http.MethodPatch, Base+"/wirelessconfigs", h.updateWireless)
	srv.HandleFunc(http.MethodDelete, Base+"/wirelessconfigs/:profileName", h.deleteWireless)

	srv.HandleFunc(http.MethodGet, Base+"/ieee8021xconfigs", h.list8021x)
	srv.HandleFunc(http.MethodGet, Base+"/ieee8021xconfigs/:profileName", h.get8021x)
	srv.HandleFunc(http.MethodPost, Base+"/ieee8021xconfigs", h.create8021x)
	srv.HandleFunc(http.MethodPatch, Base+"/ieee8021xconfigs", h.update8021x)
	srv.HandleFunc(http.MethodDelete, Base+"/ieee8021xconfigs/:profileName", h.delete8021x)

	srv.HandleFunc(http.MethodGet, Base+"/proxyconfigs", h.listProxies)
	srv.HandleFunc(http.MethodGet, Base+"/proxyconfigs/:name", h.getProxy)
	srv.HandleFunc(http.MethodPost, Base+"/proxyconfigs", h.createProxy)
	srv.HandleFunc(http.MethodPatch, Base+"/proxyconfigs", h.updateProxy)
	srv.HandleFunc(http.MethodDelete, Base+"/proxyconfigs/:name", h.deleteProxy)
}

func (h *handlers) adminRoot(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, r, http.StatusOK, map[string]string{"message": "admin path. use admin/profiles"})
}

func (h *handlers) version(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, r, http.StatusOK, struct {
		ServiceVersion  string `json:"serviceVersion"`
		ProtocolVersion string `json:"protocolVersion"`
	}{h.srv.Version(), ProtocolVersion})
}

func (h *handlers) health(w http.ResponseWriter, r *http.Request) {
	status, rep := h.srv.Health(r.Context())
	api.WriteJSON(w, r, status, rep)
}

// ---- responses ----

// Object types in not-found messages ("<Type> profile <name> Not Found").
const (
	typeDomain   = "Domain"
	typeWireless = "Wireless"
	type8021x    = "802.1x"
	typeCIRA     = "CIRA"
	typeAMT      = "AMT"
	typeProxy    = "Proxy"
)

type errorBody struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func notFound(w http.ResponseWriter, r *http.Request, typ, name string) {
	api.WriteJSON(w, r, http.StatusNotFound, errorBody{"Not Found", fmt.Sprintf("%s profile %s Not Found", typ, name)})
}

func badRequest(w http.ResponseWriter, r *http.Request, name, msg string) {
	api.WriteJSON(w, r, http.StatusBadRequest, errorBody{name, msg})
}

// opFailed is RPS's 500 answer; the cause goes to the log only.
func opFailed(w http.ResponseWriter, r *http.Request, name string, err error) {
	api.LoggerFrom(r.Context()).Error("admin API operation failed", "method", r.Method, "path", r.URL.Path, "err", err)
	api.WriteJSON(w, r, http.StatusInternalServerError, map[string]string{"message": fmt.Sprintf("Operation failed: %s %s", r.Method, name)})
}

func validationFailed(w http.ResponseWriter, r *http.Request, errs valid.Errors) {
	api.WriteJSON(w, r, http.StatusBadRequest, errs.Body())
}

// decodeBody parses the JSON body or answers 400/413.
func decodeBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	body, err := api.DecodeBody(r)
	if err != nil {
		var e *api.Error
		if !errors.As(err, &e) {
			e = &api.Error{Status: http.StatusBadRequest, Message: "unreadable request body"}
		}
		api.WriteError(w, r, e)
		return nil, false
	}
	return body, true
}

// ---- lists ----

const (
	msgTop   = "The number of items to return should be a positive integer"
	msgSkip  = "The number of items to skip before starting to collect the result set should be a positive integer"
	msgCount = "To return total number of records in result set should be boolean"
	maxPage  = 9999999999
)

type listParams struct {
	page  store.Page
	count bool
}

// parseList validates $top, $skip and $count (admin-api.md §2.1).
func parseList(w http.ResponseWriter, r *http.Request) (listParams, bool) {
	q := r.URL.Query()
	v := valid.New()
	top := v.Query(q, "$top").Optional().IsInt(valid.Range(0, maxPage), msgTop)
	skip := v.Query(q, "$skip").Optional().IsInt(valid.Range(0, maxPage), msgSkip)
	cnt := v.Query(q, "$count").Optional().IsBoolean(msgCount)
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return listParams{}, false
	}
	p := listParams{page: store.Page{Top: 25}}
	if top.Present() {
		p.page.Top = clampInt(valid.String(firstOf(top.Value())))
	}
	if skip.Present() {
		p.page.Skip = clampInt(valid.String(firstOf(skip.Value())))
	}
	p.count = cnt.Present() && valid.String(firstOf(cnt.Value())) != "false"
	return p, true
}

func firstOf(v any) any {
	if arr, ok := v.([]any); ok && len(arr) > 0 {
		return arr[0]
	}
	return v
}

func clampInt(s string) int {
	n, err := strconv.ParseInt(strings.TrimPrefix(s, "+"), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	if n > int64(^uint(0)>>1) {
		return int(^uint(0) >> 1)
	}
	return int(n)
}

// writeList answers a list: a bare array, or {"data":[…],"totalCount":N}
// when $count asks for it.
// listObjects answers a list route: one page of the tenant's objects, as a
// bare array or with the total count ($count).
func listObjects[T, J any](w http.ResponseWriter, r *http.Request,
	list func(ctx context.Context, tenant string, p store.Page) ([]T, error),
	count func(ctx context.Context, tenant string) (int, error), out func(*T) J) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	items, err := list(ctx, tenant, p.page)
	if err != nil {
		opFailed(w, r, "", err)
		return
	}
	js := make([]J, len(items))
	for i := range items {
		js[i] = out(&items[i])
	}
	writeList(w, r, p, js, func() (int, error) { return count(ctx, tenant) })
}

// getObject answers a get-by-name route (the name in path parameter param;
// typ names the kind in the 404 message).
func getObject[T, J any](w http.ResponseWriter, r *http.Request, param, typ string,
	get func(ctx context.Context, tenant, name string) (*T, error), out func(*T) J) {
	name := r.PathValue(param)
	obj, err := get(r.Context(), api.Tenant(r.Context()), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typ, name)
	case err != nil:
		opFailed(w, r, name, err)
	default:
		api.WriteJSON(w, r, http.StatusOK, out(obj))
	}
}

func writeList[T any](w http.ResponseWriter, r *http.Request, p listParams, items []T, count func() (int, error)) {
	if items == nil {
		items = []T{}
	}
	if !p.count {
		api.WriteJSON(w, r, http.StatusOK, items)
		return
	}
	n, err := count()
	if err != nil {
		opFailed(w, r, "", err)
		return
	}
	api.WriteJSON(w, r, http.StatusOK, struct {
		Data       []T `json:"data"`
		TotalCount int `json:"totalCount"`
	}{items, n})
}

// ---- versions and conflicts ----

func versionString(v int64) string { return strconv.FormatInt(v, 10) }

// requestVersion returns the version the client claims to update: the
// If-Match header when present (RPS's if-match middleware), else
// body.version. ifMatch reports whether the header was present (a conflict
// then answers 412 instead of 409).
func requestVersion(r *http.Request, body map[string]any) (version string, ifMatch bool) {
	if vals, ok := r.Header["If-Match"]; ok && len(vals) > 0 {
		v := strings.TrimSpace(vals[0])
		v = strings.TrimPrefix(v, "W/")
		v = strings.Trim(v, `"`)
		return v, true
	}
	return valid.String(body["version"]), false
}

// versionMatches compares a client version with the stored one.
func versionMatches(claimed string, stored int64) bool {
	n, err := strconv.ParseInt(strings.TrimSpace(claimed), 10, 64)
	return err == nil && n == stored
}

// conflict answers 409 (or 412 after If-Match) with the stored object and
// its version in the ETag header (admin-api.md §2.3).
func conflict(w http.ResponseWriter, r *http.Request, ifMatch bool, version int64, current any) {
	w.Header().Set("ETag", versionString(version))
	status := http.StatusConflict
	if ifMatch {
		status = http.StatusPreconditionFailed
	}
	api.WriteJSON(w, r, status, current)
}

// ---- secrets ----

// Secret entry kinds and fields: the shared scheme of package secrets.
const (
	kindCIRA     = secrets.KindCIRA
	kindDomain   = secrets.KindDomain
	kindProfile  = secrets.KindProfile
	kindWireless = secrets.KindWireless

	fieldMPSPassword  = secrets.FieldMPSPassword
	fieldCert         = secrets.FieldPFX
	fieldCertPassword = secrets.FieldPFXPassword
	fieldAMTPassword  = secrets.FieldAMTPassword
	fieldMEBxPassword = secrets.FieldMEBxPassword
	fieldPSK          = secrets.FieldPSKPassphrase
)

// SecretKey is the secret-store key of an object's secret entry
// (secrets.ObjectKey).
func SecretKey(tenant, kind, id string) string { return secrets.ObjectKey(tenant, kind, id) }

func newSecretID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// readSecret returns an object's secret entry (empty when it has none).
func (h *handlers) readSecret(ctx context.Context, tenant, kind, id string) (map[string]string, error) {
	if id == "" {
		return map[string]string{}, nil
	}
	data, err := h.sec.Get(ctx, SecretKey(tenant, kind, id))
	if errors.Is(err, secrets.ErrNotFound) {
		return map[string]string{}, nil
	}
	return data, err
}

// writeNewSecret stores data under a fresh id and returns the id ("" when
// data is empty: nothing to store).
func (h *handlers) writeNewSecret(ctx context.Context, tenant, kind string, data map[string]string) (string, error) {
	if len(data) == 0 {
		return "", nil
	}
	id := newSecretID()
	if err := h.sec.Put(ctx, SecretKey(tenant, kind, id), data); err != nil {
		return "", fmt.Errorf("storing secret: %w", err)
	}
	return id, nil
}

// dropSecret deletes a secret entry, even if ctx is cancelled; failures are
// logged (an orphaned sealed entry is harmless but worth knowing about).
func (h *handlers) dropSecret(ctx context.Context, tenant, kind, id string) {
	if id == "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cleanup)
	defer cancel()
	if err := h.sec.Delete(cctx, SecretKey(tenant, kind, id)); err != nil {
		api.LoggerFrom(ctx).Warn("could not delete a secret entry", "kind", kind, "secret_id", id, "err", err)
	}
}

// createWithSecret stores data under a new id, then runs insert with that
// id; when insert fails the new secret is deleted.
func (h *handlers) createWithSecret(ctx context.Context, tenant, kind string, data map[string]string, insert func(secretID string) error) error {
	id, err := h.writeNewSecret(ctx, tenant, kind, data)
	if err != nil {
		return err
	}
	if err := insert(id); err != nil {
		h.dropSecret(ctx, tenant, kind, id)
		return err
	}
	return nil
}

// updateWithSecret: when changed, stores data under a new id, runs update
// with it, then deletes the old entry (or the new one when update fails).
// When not changed, update runs with the old id.
func (h *handlers) updateWithSecret(ctx context.Context, tenant, kind, oldID string, changed bool, data map[string]string, update func(secretID string) error) error {
	if !changed {
		return update(oldID)
	}
	id, err := h.writeNewSecret(ctx, tenant, kind, data)
	if err != nil {
		return err
	}
	if err := update(id); err != nil {
		h.dropSecret(ctx, tenant, kind, id)
		return err
	}
	h.dropSecret(ctx, tenant, kind, oldID)
	return nil
}

func sameSecret(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// ---- value helpers ----

// secretFields are redacted in validation errors.
var secretFields = map[string]bool{"password": true, "amtPassword": true, "mebxPassword": true,
	"pskPassphrase": true, "provisioningCert": true, "provisioningCertPassword": true}

// scalarCheck (amtd): fields holding one value must not be arrays or
// objects; RPS's validators look at each element of an array and RPS then
// stores the value's string form ("[object Object]"). The errors come after
// RPS's, so RPS's messages keep their positions.
func scalarCheck(v *valid.Validator, body map[string]any, fields ...string) {
	for _, f := range fields {
		switch body[f].(type) {
		case []any, map[string]any:
			c := v.Body(body, f)
			if secretFields[f] {
				c.Redact()
			}
			c.Check(false, f+" must be a single value, not an array or an object")
		}
	}
}

// str is the string form of a body value ("" for absent or null).
func str(body map[string]any, key string) string { return valid.String(body[key]) }

// has reports whether a body field is present and not null (JS `!= null`).
func has(body map[string]any, key string) bool {
	v, ok := body[key]
	return ok && v != nil
}

// toInt converts a validated number (JSON number or numeric string).
func toInt(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case string:
		n, _ := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return int(n)
	case bool:
		if x {
			return 1
		}
	}
	return 0
}

// toBool converts a validated boolean (true/false, "true"/"false"/"1"/"0").
func toBool(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true" || x == "1"
	case float64:
		return x == 1
	}
	return false
}

// truthy is JavaScript truthiness.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0 && x == x
	}
	return true
}

// isNumber is `typeof v === 'number'`.
func isNumber(v any) bool { _, ok := v.(float64); return ok }

// numEq is JavaScript `v === n`.
func numEq(v any, n float64) bool { f, ok := v.(float64); return ok && f == n }

func intPtr(i int) *int          { return &i }
func boolPtr(b bool) *bool       { return &b }
func strPtr(s string) *string    { return &s }
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// logAttrs is a helper for structured logs of object changes (names only).
func logChange(r *http.Request, msg, kind, name string) {
	api.LoggerFrom(r.Context()).LogAttrs(r.Context(), slog.LevelInfo, msg, slog.String("kind", kind), slog.String("name", name))
}
