// Package legacy serves amtd's legacy-provisioning admin routes (an amtd
// extension, not part of RPS's API), under /api/v1/admin/legacy:
//
//	GET    /devices               allow-list (expected machines), by UUID
//	GET    /devices/:uuid         one entry
//	POST   /devices               add or replace entries: one object, or {"devices":[…]}; all or nothing
//	POST   /devices/import        CSV import (text/csv body, or {"csv":"…"}); all or nothing
//	DELETE /devices/:uuid         remove an entry
//	GET    /hellos                hello messages received, newest first (?uuid=, ?ip=)
//	GET    /psk                   generated PID/PPS pairs, without the PPS (?available=true)
//	POST   /psk                   generate pairs: {"count":N}
//	DELETE /psk/:pid              remove a pair and its sealed PPS
//
// Lists take $top (default 100, at most 1000), $skip and $count (then the
// answer is {"data":[…],"totalCount":N}). Entries are scoped to the token's
// tenant. A rejected import answers 400 with every problem:
// {"error":"Bad Request","message":"…","errors":[{"line":2,"field":"uuid","message":"…"}]}.
package legacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/legacy/allowlist"
	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/store"
)

// Base is the routes' base path.
const Base = "/api/v1/admin/legacy"

const (
	defaultTop = 100
	maxTop     = 1000
)

type handlers struct {
	st  store.Store
	psk *psk.Keeper
}

// Register adds the legacy routes to srv.
func Register(srv *api.Server) {
	h := &handlers{st: srv.Store(), psk: &psk.Keeper{Store: srv.Store(), Secrets: srv.Secrets(), Now: srv.Now}}
	srv.HandleFunc(http.MethodGet, Base+"/devices", h.listDevices)
	srv.HandleFunc(http.MethodGet, Base+"/devices/:uuid", h.getDevice)
	srv.HandleFunc(http.MethodPost, Base+"/devices", h.putDevices)
	srv.HandleFunc(http.MethodPost, Base+"/devices/import", h.importCSV)
	srv.HandleFunc(http.MethodDelete, Base+"/devices/:uuid", h.deleteDevice)
	srv.HandleFunc(http.MethodGet, Base+"/hellos", h.listHellos)
	srv.HandleFunc(http.MethodGet, Base+"/psk", h.listPSK)
	srv.HandleFunc(http.MethodPost, Base+"/psk", h.generatePSK)
	srv.HandleFunc(http.MethodDelete, Base+"/psk/:pid", h.deletePSK)
}

// ---- wire shapes ----

type deviceJSON struct {
	UUID      string `json:"uuid"`
	Hostname  string `json:"hostname"`
	Domain    string `json:"domain"`
	Profile   string `json:"profile"`
	TenantID  string `json:"tenantId"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
}

func deviceOut(d *store.LegacyDevice) deviceJSON {
	return deviceJSON{UUID: d.GUID, Hostname: d.Hostname, Domain: d.DNSSuffix, Profile: d.ProfileName, TenantID: d.TenantID,
		CreatedAt: isoTime(d.CreatedAt), UpdatedAt: isoTime(d.UpdatedAt)}
}

type helloJSON struct {
	ID                  int64             `json:"id"`
	UUID                string            `json:"uuid"`
	IP                  string            `json:"ip"`
	Version             int               `json:"version"`
	RetryCount          int64             `json:"retryCount"`
	AdminCredentialsSet bool              `json:"adminCredentialsSet"`
	Hashes              []store.HelloHash `json:"hashes"`
	PID                 string            `json:"pid,omitempty"`
	ReceivedAt          string            `json:"receivedAt"`
	Outcome             string            `json:"outcome"`
	Detail              string            `json:"detail"`
}

func helloOut(e *store.HelloEvent) helloJSON {
	h := e.Hashes
	if h == nil {
		h = []store.HelloHash{}
	}
	return helloJSON{ID: e.ID, UUID: e.GUID, IP: e.SourceIP, Version: e.Version, RetryCount: e.RetryCount,
		AdminCredentialsSet: e.AdminCredentialsSet, Hashes: h, PID: e.PID, ReceivedAt: isoTime(e.ReceivedAt),
		Outcome: e.Outcome, Detail: e.Detail}
}

type pskJSON struct {
	PID        string  `json:"pid"`
	TenantID   string  `json:"tenantId"`
	CreatedAt  string  `json:"createdAt"`
	ExportedAt *string `json:"exportedAt"`
	ExportedTo string  `json:"exportedTo,omitempty"`
	UsedBy     string  `json:"usedBy,omitempty"`
	UsedAt     *string `json:"usedAt"`
}

func pskOut(p *store.PSKPair) pskJSON {
	out := pskJSON{PID: p.PID, TenantID: p.TenantID, CreatedAt: isoTime(p.CreatedAt), ExportedTo: p.ExportedTo, UsedBy: p.UsedBy}
	if p.ExportedAt != nil {
		s := isoTime(*p.ExportedAt)
		out.ExportedAt = &s
	}
	if p.UsedAt != nil {
		s := isoTime(*p.UsedAt)
		out.UsedAt = &s
	}
	return out
}

func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// ---- answers ----

type lineErrorJSON struct {
	Line    int    `json:"line"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func importFailed(w http.ResponseWriter, r *http.Request, errs allowlist.Errors) {
	out := make([]lineErrorJSON, len(errs))
	for i, e := range errs {
		out[i] = lineErrorJSON{Line: e.Line, Field: e.Field, Message: e.Msg}
	}
	api.WriteJSON(w, r, http.StatusBadRequest, struct {
		Error   string          `json:"error"`
		Message string          `json:"message"`
		Errors  []lineErrorJSON `json:"errors"`
	}{"Bad Request", fmt.Sprintf("nothing was imported: %d problem(s)", len(errs)), out})
}

func badRequest(w http.ResponseWriter, r *http.Request, msg string) {
	api.WriteError(w, r, &api.Error{Status: http.StatusBadRequest, Message: msg})
}

func notFound(w http.ResponseWriter, r *http.Request, msg string) {
	api.WriteError(w, r, &api.Error{Status: http.StatusNotFound, Message: msg})
}

// failed answers a store error: 409 for a UUID or PID owned elsewhere, 500
// otherwise (logged, not shown).
func failed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrDuplicate) {
		api.WriteError(w, r, &api.Error{Status: http.StatusConflict, Message: "an entry with this UUID or PID exists in another tenant"})
		return
	}
	api.LoggerFrom(r.Context()).Error("legacy admin request failed", "err", err)
	api.WriteError(w, r, &api.Error{Status: http.StatusInternalServerError, Message: "operation failed"})
}

// ---- lists ----

type listParams struct {
	page  store.Page
	count bool
}

func parseList(w http.ResponseWriter, r *http.Request) (listParams, bool) {
	q := r.URL.Query()
	p := listParams{page: store.Page{Top: defaultTop}}
	num := func(name string, lo, hi int) (int, bool) {
		v := q.Get(name)
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			badRequest(w, r, fmt.Sprintf("%s must be an integer from %d to %d", name, lo, hi))
			return 0, false
		}
		return n, true
	}
	var ok bool
	if q.Has("$top") {
		if p.page.Top, ok = num("$top", 0, maxTop); !ok {
			return p, false
		}
	}
	if q.Has("$skip") {
		if p.page.Skip, ok = num("$skip", 0, 1<<30); !ok {
			return p, false
		}
	}
	if q.Has("$count") {
		switch q.Get("$count") {
		case "true", "1", "":
			p.count = true
		case "false", "0":
		default:
			badRequest(w, r, "$count must be true or false")
			return p, false
		}
	}
	return p, true
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
		failed(w, r, err)
		return
	}
	api.WriteJSON(w, r, http.StatusOK, struct {
		Data       []T `json:"data"`
		TotalCount int `json:"totalCount"`
	}{items, n})
}

// ---- allow-list ----

func (h *handlers) listDevices(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	tenant := api.Tenant(r.Context())
	l, err := h.st.ListLegacyDevices(r.Context(), tenant, p.page)
	if err != nil {
		failed(w, r, err)
		return
	}
	out := make([]deviceJSON, len(l))
	for i := range l {
		out[i] = deviceOut(&l[i])
	}
	writeList(w, r, p, out, func() (int, error) { return h.st.CountLegacyDevices(r.Context(), tenant) })
}

// lookup finds the tenant's entry for a UUID in any textual form.
func (h *handlers) lookup(w http.ResponseWriter, r *http.Request) (*store.LegacyDevice, bool) {
	e := allowlist.Entry{GUID: r.PathValue("uuid"), Profile: "-"}
	if errs := allowlist.Normalize(&e, 0); len(errs) > 0 {
		badRequest(w, r, "uuid: "+errs[0].Msg)
		return nil, false
	}
	d, err := h.st.GetLegacyDevice(r.Context(), e.GUID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.TenantID != api.Tenant(r.Context())) {
		notFound(w, r, "device "+e.GUID+" is not on the allow-list")
		return nil, false
	}
	if err != nil {
		failed(w, r, err)
		return nil, false
	}
	return d, true
}

func (h *handlers) getDevice(w http.ResponseWriter, r *http.Request) {
	if d, ok := h.lookup(w, r); ok {
		api.WriteJSON(w, r, http.StatusOK, deviceOut(d))
	}
}

func (h *handlers) deleteDevice(w http.ResponseWriter, r *http.Request) {
	d, ok := h.lookup(w, r)
	if !ok {
		return
	}
	if err := h.st.DeleteLegacyDevice(r.Context(), d.TenantID, d.GUID); err != nil && !errors.Is(err, store.ErrNotFound) {
		failed(w, r, err)
		return
	}
	api.LoggerFrom(r.Context()).Info("legacy allow-list entry deleted", "uuid", d.GUID)
	api.NoContent(w)
}

type entryJSON struct {
	UUID     string `json:"uuid"`
	Hostname string `json:"hostname"`
	Domain   string `json:"domain"`
	Profile  string `json:"profile"`
}

func (h *handlers) putDevices(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		readFailed(w, r, err)
		return
	}
	var many struct {
		Devices []entryJSON `json:"devices"`
	}
	var one entryJSON
	var in []entryJSON
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&many); err == nil && many.Devices != nil {
		in = many.Devices
	} else {
		dec = json.NewDecoder(strings.NewReader(string(data)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&one); err != nil {
			badRequest(w, r, `body must be {"uuid","hostname","domain","profile"} or {"devices":[…]}`)
			return
		}
		in = []entryJSON{one}
	}
	entries := make([]allowlist.Entry, len(in))
	for i, e := range in {
		entries[i] = allowlist.Entry{GUID: e.UUID, Hostname: e.Hostname, Domain: e.Domain, Profile: e.Profile}
	}
	h.store(w, r, entries)
}

func (h *handlers) store(w http.ResponseWriter, r *http.Request, entries []allowlist.Entry) {
	tenant := api.Tenant(r.Context())
	err := allowlist.Import(r.Context(), h.st, tenant, entries, nil)
	var errs allowlist.Errors
	switch {
	case errors.As(err, &errs):
		importFailed(w, r, errs)
		return
	case err != nil:
		failed(w, r, err)
		return
	}
	out := make([]deviceJSON, 0, len(entries))
	for _, e := range entries {
		if d, err := h.st.GetLegacyDevice(r.Context(), normalizedGUID(e.GUID)); err == nil {
			out = append(out, deviceOut(d))
		}
	}
	api.LoggerFrom(r.Context()).Info("legacy allow-list entries stored", "count", len(entries))
	api.WriteJSON(w, r, http.StatusCreated, out)
}

func normalizedGUID(s string) string {
	e := allowlist.Entry{GUID: s, Profile: "-"}
	allowlist.Normalize(&e, 0)
	return e.GUID
}

func readFailed(w http.ResponseWriter, r *http.Request, err error) {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		api.WriteError(w, r, api.TooLarge(mbe.Limit))
		return
	}
	badRequest(w, r, "could not read the request body")
}

// importCSV takes a CSV file as the body (text/csv, or any non-JSON type),
// or JSON {"csv":"…","defaultProfile":"…"}; ?defaultProfile= applies to a
// raw body.
func (h *handlers) importCSV(w http.ResponseWriter, r *http.Request) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		readFailed(w, r, err)
		return
	}
	text, def := string(data), r.URL.Query().Get("defaultProfile")
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		var body struct {
			CSV            string `json:"csv"`
			DefaultProfile string `json:"defaultProfile"`
		}
		if err := json.Unmarshal(data, &body); err != nil {
			badRequest(w, r, `JSON body must be {"csv":"…","defaultProfile":"…"}`)
			return
		}
		text = body.CSV
		if body.DefaultProfile != "" {
			def = body.DefaultProfile
		}
	}
	entries, err := allowlist.ParseCSV(strings.NewReader(text), def)
	var errs allowlist.Errors
	if errors.As(err, &errs) {
		importFailed(w, r, errs)
		return
	}
	if err != nil {
		badRequest(w, r, err.Error())
		return
	}
	h.store(w, r, entries)
}

// ---- hellos ----

func (h *handlers) listHellos(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := store.HelloFilter{SourceIP: q.Get("ip")}
	if u := q.Get("uuid"); u != "" {
		f.GUID = normalizedGUID(u)
	}
	tenant := api.Tenant(r.Context())
	l, err := h.st.ListHelloEvents(r.Context(), tenant, f, p.page)
	if err != nil {
		failed(w, r, err)
		return
	}
	out := make([]helloJSON, len(l))
	for i := range l {
		out[i] = helloOut(&l[i])
	}
	writeList(w, r, p, out, func() (int, error) { return h.st.CountHelloEvents(r.Context(), tenant, f) })
}

// ---- PSK pairs ----

func (h *handlers) listPSK(w http.ResponseWriter, r *http.Request) {
	p, ok := parseList(w, r)
	if !ok {
		return
	}
	f := store.PSKFilter{Available: r.URL.Query().Get("available") == "true"}
	tenant := api.Tenant(r.Context())
	l, err := h.st.ListPSKPairs(r.Context(), tenant, f, p.page)
	if err != nil {
		failed(w, r, err)
		return
	}
	out := make([]pskJSON, len(l))
	for i := range l {
		out[i] = pskOut(&l[i])
	}
	writeList(w, r, p, out, func() (int, error) { return h.st.CountPSKPairs(r.Context(), tenant, f) })
}

func (h *handlers) generatePSK(w http.ResponseWriter, r *http.Request) {
	body, err := api.DecodeBody(r)
	if err != nil {
		var ae *api.Error
		if errors.As(err, &ae) {
			api.WriteError(w, r, ae)
			return
		}
		badRequest(w, r, "malformed body")
		return
	}
	n, ok := body["count"].(float64)
	if !ok || n != float64(int(n)) || n < 1 || n > psk.MaxGenerate {
		badRequest(w, r, fmt.Sprintf("count must be an integer from 1 to %d", psk.MaxGenerate))
		return
	}
	rows, err := h.psk.Generate(r.Context(), api.Tenant(r.Context()), int(n))
	if err != nil {
		failed(w, r, err)
		return
	}
	out := make([]pskJSON, len(rows))
	for i := range rows {
		out[i] = pskOut(&rows[i])
	}
	api.LoggerFrom(r.Context()).Info("PSK pairs generated", "count", len(rows))
	api.WriteJSON(w, r, http.StatusCreated, out)
}

func (h *handlers) deletePSK(w http.ResponseWriter, r *http.Request) {
	err := h.psk.Delete(r.Context(), api.Tenant(r.Context()), r.PathValue("pid"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, "no PID/PPS pair "+r.PathValue("pid"))
	case err != nil:
		failed(w, r, err)
	default:
		api.NoContent(w)
	}
}
