package mps

import (
	"net/http"
	"strconv"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/store"
)

// ProvisioningLogEntry is one line of GET /api/v1/devices/:guid/provisioning-log
// (amtd's addition: what was done to a device, step by step, by activation,
// configuration, maintenance, deactivation and legacy provisioning).
type ProvisioningLogEntry struct {
	Seq     int64     `json:"seq"`
	Time    time.Time `json:"time"`
	Session string    `json:"session"`
	Step    string    `json:"step"`
	Result  string    `json:"result"`
	Detail  string    `json:"detail,omitempty"`
}

// provisioningLog answers the device's log, oldest first, paged with $top
// (default 1000) and $skip. The log outlives the device record (a
// deactivated device's history stays readable); entries of other tenants
// are never shown, and a device with none in this tenant is 404.
func (h *handlers) provisioningLog(w http.ResponseWriter, r *http.Request) {
	guid, ok := guidParam(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	v := valid.New()
	top := v.Query(q, "$top").Optional().IsInt(valid.IntOpts{Min: ptr(0)}, msgTop)
	skip := v.Query(q, "$skip").Optional().IsInt(valid.IntOpts{Min: ptr(0)}, msgSkip)
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	page := store.Page{Top: 1000}
	if top.Present() {
		page.Top, _ = strconv.Atoi(valid.String(top.Value()))
	}
	if skip.Present() {
		page.Skip, _ = strconv.Atoi(valid.String(skip.Value()))
	}
	events, err := h.st.ListEvents(r.Context(), guid, page)
	if err != nil {
		logErr(r, "reading a provisioning log", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	tenant := requestTenant(r)
	out := make([]ProvisioningLogEntry, 0, len(events))
	for _, e := range events {
		if e.TenantID == tenant {
			out = append(out, ProvisioningLogEntry{Seq: e.Seq, Time: e.Time.UTC(), Session: e.Session,
				Step: e.Step, Result: e.Result, Detail: e.Detail})
		}
	}
	if len(out) == 0 && page.Skip == 0 {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	api.WriteJSON(w, r, http.StatusOK, out)
}
