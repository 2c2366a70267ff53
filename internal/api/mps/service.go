package mps

import (
	"bytes"
	"errors"
	"net/http"
	"strings"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/store"
)

// ciraCert is GET /api/v1/ciracert: the CIRA root CA as PEM text.
func (h *handlers) ciraCert(w http.ResponseWriter, r *http.Request) {
	var pem []byte
	var err error
	if h.opts.CIRARootCert != nil {
		pem, err = h.opts.CIRARootCert(r.Context())
	}
	if err != nil || !bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) {
		if err != nil {
			logErr(r, "reading the CIRA root certificate", err)
		}
		internalError(w, r, "MPS root certificate does not exist")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("ETag", api.WeakETag(pem))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(pem)
	}
}

// health is GET /api/v1/health.
func (h *handlers) health(w http.ResponseWriter, r *http.Request) {
	status, rep := h.srv.Health(r.Context())
	api.WriteJSON(w, r, status, rep)
}

// version is GET /api/v1/version.
func (h *handlers) version(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, r, http.StatusOK, map[string]string{"serviceVersion": h.srv.Version()})
}

// redirectionToken is GET /api/v1/authorize/redirection/:guid: a token for
// one relay session to the device (deviceId = guid), valid for
// RedirectionTokenLifetime; 404 with an empty body when the device is not in
// the request's tenant.
func (h *handlers) redirectionToken(w http.ResponseWriter, r *http.Request) {
	guid := r.PathValue("guid")
	v := valid.New()
	v.Field(valid.LocParams, "guid", guid, true).Matches(isUUID, "")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	tenant := api.Tenant(r.Context())
	dev, err := h.st.GetDevice(r.Context(), guid)
	if errors.Is(err, store.ErrNotFound) || (err == nil && dev.TenantID != tenant) {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if err != nil {
		logErr(r, "reading a device", err)
		internalError(w, r, "Exception during Redirection Token request")
		return
	}
	tok, err := h.srv.Auth().IssueToken(tenant, strings.ToLower(dev.GUID), h.opts.RedirectionTokenLifetime)
	if err != nil {
		logErr(r, "signing a relay token", err)
		internalError(w, r, "Exception during Redirection Token request")
		return
	}
	api.WriteJSON(w, r, http.StatusOK, map[string]string{"token": tok})
}

// isUUID is validator.js isUUID(str, 'loose'): 8-4-4-4-12 hex digits, any
// version nibble.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
