package mps

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/store"
)

// Validation messages (spec/mps.md §6.3).
const (
	msgTop        = "The number of items to return should be a positive integer"
	msgSkip       = "The number of items to skip before starting to collect the result set should be a positive integer"
	msgCount      = "To return total number of records in result set should be boolean"
	msgHostname   = "Hostname must be less than 256 characters"
	msgDNSLen     = "dnsSuffix must be less than 256 characters"
	msgDNSValid   = "dnsSuffix must be a valid DNS suffix"
	msgDNSString  = "dnsSuffix must be a string"
	msgTags       = "tags should be an array of strings"
	msgDeviceInfo = "deviceInfo should be an object if provided"
	defaultTop    = 25
)

// nullableFields are the string columns a body may set to null; the answer
// to that request shows null (the store keeps "").
var nullableFields = []string{"hostname", "friendlyName", "dnsSuffix", "mpsusername"}

// deviceJSON renders a device record as MPS does; full adds the connection
// times (single-device answers). nulls are fields to show as null.
func (h *handlers) deviceJSON(d *store.Device, full bool, nulls map[string]bool) *xmljs.Object {
	str := func(field, v string) any {
		if nulls[field] {
			return nil
		}
		return v
	}
	tags := make([]any, len(d.Tags))
	for i, t := range d.Tags {
		tags[i] = t
	}
	var inst any
	if d.MPSInstance != nil {
		inst = *d.MPSInstance
	}
	connected := d.ConnectionStatus
	lastConnected, lastSeen := d.LastConnected, d.LastSeen
	if h.opts.CIRA != nil {
		// A live connection here is fresher than the record (connects are
		// written in batches; the last keepalive is only kept in memory).
		if info, ok := h.opts.CIRA.Lookup(d.GUID); ok {
			connected = true
			if h.opts.InstanceID != "" {
				inst = h.opts.InstanceID
			}
			lastConnected, lastSeen = &info.ConnectedAt, &info.LastSeen
		}
	}
	o := xmljs.NewObject().
		Set("guid", d.GUID).
		Set("hostname", str("hostname", d.Hostname)).
		Set("tags", tags).
		Set("mpsInstance", inst).
		Set("connectionStatus", connected).
		Set("mpsusername", str("mpsusername", d.MPSUsername)).
		Set("tenantId", d.TenantID).
		Set("friendlyName", str("friendlyName", d.FriendlyName)).
		Set("dnsSuffix", str("dnsSuffix", d.DNSSuffix))
	if full {
		o.Set("lastConnected", isoTime(lastConnected)).
			Set("lastSeen", isoTime(lastSeen)).
			Set("lastDisconnected", isoTime(d.LastDisconnected))
	}
	if d.DeviceInfo != nil {
		o.Set("deviceInfo", d.DeviceInfo)
	} else {
		o.Set("deviceInfo", nil)
	}
	return o
}

// ---- GET /devices ----

func (h *handlers) listDevices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	v := valid.New()
	top := v.Query(q, "$top").Optional().IsInt(valid.IntOpts{Min: ptr(0)}, msgTop)
	skip := v.Query(q, "$skip").Optional().IsInt(valid.IntOpts{Min: ptr(0)}, msgSkip)
	count := v.Query(q, "$count").Optional().IsBoolean(msgCount)
	v.Query(q, "tags").Optional().Custom(mustString(""))
	v.Query(q, "hostname").Optional().IsLength(0, 256, "").Custom(mustString(""))
	v.Query(q, "status").Optional().Matches(isNumeric, "").IsIn([]any{"0", "1"}, "")
	v.Query(q, "method").Optional().IsIn([]any{"AND", "OR"}, "").Custom(mustString(""))
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	page := store.Page{Top: defaultTop}
	if top.Present() {
		page.Top, _ = strconv.Atoi(valid.String(top.Value()))
	}
	if skip.Present() {
		page.Skip, _ = strconv.Atoi(valid.String(skip.Value()))
	}
	var f store.DeviceFilter
	switch {
	case q.Get("hostname") != "":
		f.Hostname = q.Get("hostname")
	case q.Get("friendlyName") != "":
		f.FriendlyName = q.Get("friendlyName")
	case q.Get("tags") != "":
		f.Tags = strings.Split(q.Get("tags"), ",")
		f.TagsMatchAll = q.Get("method") == "AND"
	}
	if s := q.Get("status"); s != "" {
		c := s == "1"
		f.Connected = &c
	}
	tenant := api.Tenant(r.Context())
	devs, err := h.st.ListDevices(r.Context(), tenant, f, page)
	if err != nil {
		logErr(r, "listing devices", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	out := make([]any, len(devs))
	for i := range devs {
		out[i] = h.deviceJSON(&devs[i], false, nil)
	}
	if count.Present() && (valid.String(count.Value()) == "true" || valid.String(count.Value()) == "1") {
		total, err := h.st.CountDevices(r.Context(), tenant, store.DeviceFilter{})
		if err != nil {
			logErr(r, "counting devices", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		api.WriteJSON(w, r, http.StatusOK, xmljs.NewObject().Set("data", out).Set("totalCount", total))
		return
	}
	api.WriteJSON(w, r, http.StatusOK, out)
}

func (h *handlers) deviceStats(w http.ResponseWriter, r *http.Request) {
	tenant := api.Tenant(r.Context())
	total, err := h.st.CountDevices(r.Context(), tenant, store.DeviceFilter{})
	if err != nil {
		logErr(r, "counting devices", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	yes := true
	connected, err := h.st.CountDevices(r.Context(), tenant, store.DeviceFilter{Connected: &yes})
	if err != nil {
		logErr(r, "counting devices", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	api.WriteJSON(w, r, http.StatusOK, xmljs.NewObject().
		Set("totalCount", total).Set("connectedCount", connected).Set("disconnectedCount", total-connected))
}

func (h *handlers) deviceTags(w http.ResponseWriter, r *http.Request) {
	tags, err := h.st.DeviceTags(r.Context(), api.Tenant(r.Context()))
	if err != nil {
		logErr(r, "listing tags", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	api.WriteJSON(w, r, http.StatusOK, tags)
}

// guidParam validates the :guid path parameter as a UUID.
func guidParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	guid := r.PathValue("guid")
	v := valid.New()
	v.Field(valid.LocParams, "guid", guid, true).Matches(isUUID, "")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return "", false
	}
	return guid, true
}

// requestTenant is the request's tenant; a request without one (the
// default tenant) may name one with ?tenantId= (MPS).
func requestTenant(r *http.Request) string {
	t := api.Tenant(r.Context())
	if t == "" {
		t = r.URL.Query().Get("tenantId")
	}
	return t
}

func (h *handlers) getDevice(w http.ResponseWriter, r *http.Request) {
	guid, ok := guidParam(w, r)
	if !ok {
		return
	}
	d, err := h.st.GetDevice(r.Context(), guid)
	if errors.Is(err, store.ErrNotFound) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if err != nil {
		logErr(r, "reading a device", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if d.TenantID != requestTenant(r) {
		api.NoContent(w)
		return
	}
	api.WriteJSON(w, r, http.StatusOK, h.deviceJSON(d, true, nil))
}

// ---- POST/PATCH /devices ----

// validateDevice runs MPS's device validator on a POST/PATCH body.
func validateDevice(body map[string]any) valid.Errors {
	v := valid.New()
	v.Body(body, "guid").Matches(isUUID, "").Custom(mustString(""))
	v.Body(body, "friendlyName").OptionalNullable().Custom(mustString(""))
	v.Body(body, "hostname").OptionalNullable().Custom(mustString("")).IsLength(0, 255, msgHostname)
	dns := v.Body(body, "dnsSuffix").OptionalNullable().Custom(mustString(msgDNSString)).IsLength(0, 255, msgDNSLen)
	if s, ok := dns.Value().(string); ok && s != "" && valid.Length(s) <= 255 {
		dns.Check(valid.IsFQDN(s, valid.FQDNOpts{AllowTrailingDot: true}), msgDNSValid)
	}
	v.Body(body, "mpsusername").OptionalNullable().Custom(mustString(""))
	v.Body(body, "connect").OptionalNullable().Matches(func(s string) bool { return isISO8601(s) }, "")
	v.Body(body, "disconnect").OptionalNullable().Matches(func(s string) bool { return isISO8601(s) }, "")
	tags := v.Body(body, "tags").Optional().IsArray(msgTags)
	if arr, ok := tags.Value().([]any); ok {
		for i, el := range arr {
			v.Field(valid.LocBody, "tags["+strconv.Itoa(i)+"]", el, true).Custom(mustString(msgTags))
		}
	}
	v.Body(body, "deviceInfo").OptionalNullable().Custom(func(x any) string {
		if _, ok := x.(map[string]any); !ok {
			return msgDeviceInfo
		}
		return ""
	})
	return v.Errors()
}

// isISO8601 is validator.js isISO8601 (non-strict) without the regexp
// look-aheads Go lacks: a calendar date, optionally with a time and zone.
func isISO8601(s string) bool {
	return iso8601Simple.MatchString(s)
}

var iso8601Simple = regexp.MustCompile(`^[+-]?\d{4}(-?(0[1-9]|1[0-2])(-?([12]\d|0[1-9]|3[01]))?)?([T\s](([01]\d|2[0-3])(:?[0-5]\d)?(:?[0-5]\d)?([.,]\d+)?)([zZ]|[+-]([01]\d|2[0-3]):?([0-5]\d)?)?)?$`)

// applyBody merges a validated body over d (MPS: {...device, ...body}) and
// returns the fields given as null. Server-owned fields (connection status,
// instance, times) are not taken from the body.
func applyBody(d *store.Device, body map[string]any) map[string]bool {
	nulls := map[string]bool{}
	setStr := func(field string, dst *string) {
		v, ok := body[field]
		if !ok {
			return
		}
		if v == nil {
			*dst = ""
			nulls[field] = true
			return
		}
		if s, ok := v.(string); ok {
			*dst = s
		}
	}
	setStr("hostname", &d.Hostname)
	setStr("friendlyName", &d.FriendlyName)
	setStr("dnsSuffix", &d.DNSSuffix)
	setStr("mpsusername", &d.MPSUsername)
	if arr, ok := body["tags"].([]any); ok {
		d.Tags = make([]string, 0, len(arr))
		for _, el := range arr {
			d.Tags = append(d.Tags, el.(string))
		}
	}
	if v, ok := body["deviceInfo"]; ok {
		if m, isObj := v.(map[string]any); isObj {
			var info store.DeviceInfo
			if data, err := json.Marshal(m); err == nil && json.Unmarshal(data, &info) == nil {
				d.DeviceInfo = &info
			} else {
				d.DeviceInfo = lenientDeviceInfo(m)
			}
		} else {
			d.DeviceInfo = nil
		}
	}
	return nulls
}

// lenientDeviceInfo keeps the string fields of a deviceInfo object whose
// other fields do not fit the stored shape.
func lenientDeviceInfo(m map[string]any) *store.DeviceInfo {
	s := func(k string) string { return valid.String(m[k]) }
	return &store.DeviceInfo{FWVersion: s("fwVersion"), FWBuild: s("fwBuild"), FWSku: s("fwSku"),
		CurrentMode: s("currentMode"), Features: s("features"), IPAddress: s("ipAddress")}
}

// bodyTenant is the tenant of a device body: the request's, or for a
// request in the default tenant, the body's tenantId (MPS takes it from the
// body).
func bodyTenant(r *http.Request, body map[string]any) string {
	t := api.Tenant(r.Context())
	if t == "" {
		if s, ok := body["tenantId"].(string); ok {
			t = s
		}
	}
	return t
}

type mpsValidationError struct {
	Error   string `json:"error"`
	Message string `json:"message"`
}

func (h *handlers) createDevice(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validateDevice(body); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	guid := strings.ToLower(body["guid"].(string))
	tenant := bodyTenant(r, body)
	ctx := r.Context()
	d, err := h.st.GetDevice(ctx, guid)
	status := http.StatusOK
	switch {
	case errors.Is(err, store.ErrNotFound):
		d = &store.Device{GUID: guid, TenantID: tenant, Tags: []string{}}
		status = http.StatusCreated
	case err != nil:
		logErr(r, "reading a device", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	case d.TenantID != tenant:
		api.WriteJSON(w, r, http.StatusBadRequest, mpsValidationError{"Unique key violation", "Device ID " + guid + " already exists"})
		return
	}
	nulls := applyBody(d, body)
	if status == http.StatusCreated {
		// MPS inserts absent columns as null.
		for _, f := range nullableFields {
			if _, given := body[f]; !given {
				nulls[f] = true
			}
		}
	}
	if _, err := h.st.PutDevice(ctx, d); err != nil {
		if errors.Is(err, store.ErrDuplicate) {
			api.WriteJSON(w, r, http.StatusBadRequest, mpsValidationError{"Unique key violation", "Device ID " + guid + " already exists"})
			return
		}
		logErr(r, "storing a device", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	api.WriteJSON(w, r, status, h.deviceJSON(d, true, nulls))
}

func (h *handlers) updateDevice(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validateDevice(body); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	guid := strings.ToLower(body["guid"].(string))
	ctx := r.Context()
	d, err := h.st.GetDevice(ctx, guid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.TenantID != api.Tenant(ctx)) {
		api.WriteJSON(w, r, http.StatusNotFound, mpsValidationError{"NOT FOUND", "Device ID " + body["guid"].(string) + " not found"})
		return
	}
	if err != nil {
		logErr(r, "reading a device", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	nulls := applyBody(d, body)
	if _, err := h.st.PutDevice(ctx, d); err != nil {
		logErr(r, "storing a device", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	api.WriteJSON(w, r, http.StatusOK, h.deviceJSON(d, true, nulls))
}

// ---- DELETE ----

func (h *handlers) deleteDevice(w http.ResponseWriter, r *http.Request) {
	guid := r.PathValue("guid")
	q := r.URL.Query()
	v := valid.New()
	v.Field(valid.LocParams, "guid", guid, true).Matches(isUUID, "")
	del := v.Query(q, "isSecretToBeDeleted").Optional().IsBoolean("")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	ctx := r.Context()
	d, err := h.st.GetDevice(ctx, guid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.TenantID != api.Tenant(ctx)) {
		api.WriteJSON(w, r, http.StatusNotFound, mpsValidationError{"NOT FOUND", "Device ID " + guid + " not found"})
		return
	}
	if err != nil {
		logErr(r, "reading a device", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if err := h.st.DeleteDevice(ctx, guid); err != nil && !errors.Is(err, store.ErrNotFound) {
		logErr(r, "deleting a device", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if s := valid.String(del.Value()); s == "true" || s == "1" {
		if err := devcreds.Delete(ctx, h.sec, d.GUID); err != nil {
			logErr(r, "deleting device secrets", err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
	}
	if h.opts.Access != nil {
		h.opts.Access.Invalidate(d.GUID)
	}
	if h.opts.OnDeviceDeleted != nil {
		h.opts.OnDeviceDeleted(d.GUID)
	}
	api.NoContent(w)
}

// refreshDevice is DELETE /devices/refresh/:guid: forget cached clients so
// the next call reads the credentials again; 404 (empty) when the device
// is not reachable from here.
func (h *handlers) refreshDevice(w http.ResponseWriter, r *http.Request) {
	guid, ok := guidParam(w, r)
	if !ok {
		return
	}
	if h.opts.Access == nil {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	rt, err := h.opts.Access.Lookup(r.Context(), guid)
	if err != nil || rt.Tenant != api.Tenant(r.Context()) {
		if err != nil && !errors.Is(err, devaccess.ErrNotConnected) {
			logErr(r, "looking up a device", err)
		}
		w.WriteHeader(http.StatusNotFound)
		return
	}
	h.opts.Access.Invalidate(guid)
	api.WriteJSON(w, r, http.StatusOK, xmljs.NewObject().Set("success", 200).Set("description", "Device info refreshed : "+guid))
}

// disconnectDevice is DELETE /devices/disconnect/:guid: close the device's
// CIRA connection to this instance.
func (h *handlers) disconnectDevice(w http.ResponseWriter, r *http.Request) {
	guid, ok := guidParam(w, r)
	if !ok {
		return
	}
	// Relay sessions run over CIRA or the LAN: answer for any device the
	// API can reach (MPS: CIRA-connected only).
	if h.opts.Access == nil {
		notConnected(w, r, guid)
		return
	}
	route, err := h.opts.Access.Lookup(r.Context(), guid)
	if err != nil {
		notConnected(w, r, guid)
		return
	}
	if route.Tenant != api.Tenant(r.Context()) {
		writeErr(w, r, http.StatusUnauthorized, msgUnauthorized, msgUnauthorized)
		return
	}
	if !h.opts.CIRA.Disconnect(guid) {
		internalError(w, r, "Exception during Device Disconnect")
		return
	}
	if h.opts.Access != nil {
		h.opts.Access.Invalidate(guid)
	}
	api.WriteJSON(w, r, http.StatusOK, xmljs.NewObject().Set("success", 200).Set("description", "Device CIRA connection disconnected : "+guid))
}

// redirectStatus is GET /devices/redirectstatus/:guid; relay sessions run
// over CIRA only, so the device must be CIRA-connected here.
func (h *handlers) redirectStatus(w http.ResponseWriter, r *http.Request) {
	guid, ok := guidParam(w, r)
	if !ok {
		return
	}
	// Relay sessions run over CIRA or the LAN: answer for any device the
	// API can reach (MPS: CIRA-connected only).
	if h.opts.Access == nil {
		notConnected(w, r, guid)
		return
	}
	route, err := h.opts.Access.Lookup(r.Context(), guid)
	if err != nil {
		notConnected(w, r, guid)
		return
	}
	if route.Tenant != api.Tenant(r.Context()) {
		api.NoContent(w)
		return
	}
	var kvm, sol, ider bool
	if h.opts.Redirections != nil {
		kvm, sol, ider = h.opts.Redirections.Sessions(strings.ToLower(guid))
	}
	api.WriteJSON(w, r, http.StatusOK, xmljs.NewObject().
		Set("isKVMConnected", kvm).Set("isSOLConnected", sol).Set("isIDERConnected", ider))
}

// ---- small validators ----

func ptr(f float64) *float64 { return &f }

// mustString is express-validator's isString(): the raw value is a string.
func mustString(msg string) func(any) string {
	return func(v any) string {
		if _, ok := v.(string); ok {
			return ""
		}
		if msg == "" {
			return valid.DefaultMessage
		}
		return msg
	}
}

// isNumeric is validator.js isNumeric: optional sign, digits, optional
// fraction.
func isNumeric(s string) bool {
	return numericRe.MatchString(s)
}

var numericRe = regexp.MustCompile(`^[+-]?([0-9]*[.])?[0-9]+$`)
