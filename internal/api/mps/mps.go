// Package mps serves amtd's MPS-compatible management API (spec/mps.md §6):
// device records, the CIRA root certificate, health and version, relay
// tokens, and the /api/v1/amt/* actions (power, boot, features, user
// consent, logs, inventory, alarms, certificates, network, KVM displays,
// deactivation), under /api/v1 and, through the server's gateway prefix
// rules, /mps/api/v1.
//
// Devices are reached through internal/devaccess: by their CIRA connection
// to this instance or, unlike MPS, directly on the LAN. A device that can be
// reached neither way gets MPS's 404 ("Device not found/connected…").
//
// Wire shapes follow MPS: validation errors (express-validator), error
// bodies {"error":…,"errorDescription":…}, and the xml2js-parsed WS-MAN
// envelopes MPS returns for several routes (package xmljs). MPS's
// 4-calls-per-second throttle per device is not reproduced; devaccess bounds
// the concurrent calls instead.
package mps

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/cira"
	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// Base is the API's base path.
const Base = "/api/v1"

// Defaults.
const (
	DefaultRedirectionTokenLifetime = 5 * time.Minute // MPS redirection_expiration_time
	DefaultRequestTimeout           = 2 * time.Minute
	DefaultCallTimeout              = 30 * time.Second
	DefaultPowerStateTimeout        = 10 * time.Second // MPS timeout_ms_default
)

// CIRAConnections is what the API needs from the CIRA server; *cira.Server
// implements it.
type CIRAConnections interface {
	Lookup(uuid string) (cira.ConnInfo, bool)
	Disconnect(uuid string) bool
}

// RedirectionStatus reports the redirection (KVM/SOL/IDER) sessions active
// for a device (GET /api/v1/devices/redirectstatus/:guid).
type RedirectionStatus interface {
	Sessions(guid string) (kvm, sol, ider bool)
}

// Options configure the MPS routes.
type Options struct {
	// Access reaches devices (CIRA first, then LAN). Nil: no device is ever
	// reachable (every device-specific route answers 404).
	Access *devaccess.Access
	// CIRA is this instance's CIRA server (disconnect, redirect status).
	// Nil when CIRA is not running.
	CIRA CIRAConnections
	// InstanceID is this instance's name (mpsInstance of the devices it
	// holds).
	InstanceID string
	// CIRARootCert returns the CIRA root CA certificate as PEM for
	// GET /api/v1/ciracert. Nil, an error or an empty result answer MPS's
	// 500 "MPS root certificate does not exist".
	CIRARootCert func(ctx context.Context) ([]byte, error)
	// Redirections reports relay sessions (nil: none active).
	Redirections RedirectionStatus
	// RedirectionTokenLifetime of relay tokens (default 5 minutes).
	RedirectionTokenLifetime time.Duration
	// RequestTimeout bounds all device calls of one request (default 2 min).
	RequestTimeout time.Duration
	// CallTimeout bounds each WS-MAN call (default 30 s).
	CallTimeout time.Duration
	// PowerStateTimeout bounds each call of GET /amt/power/state (default
	// 10 s; a timeout answers 404 as MPS does).
	PowerStateTimeout time.Duration
	// OnDeviceDeleted is called after a device record was deleted (by
	// DELETE /devices/:guid or a successful deactivation), e.g. to publish
	// an event. Optional.
	OnDeviceDeleted func(guid string)
}

type handlers struct {
	srv  *api.Server
	st   store.Store
	sec  secrets.Store
	opts Options
	log  *slog.Logger
}

// Register adds the MPS routes to srv.
func Register(srv *api.Server, opts Options) {
	if opts.RedirectionTokenLifetime <= 0 {
		opts.RedirectionTokenLifetime = DefaultRedirectionTokenLifetime
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.PowerStateTimeout <= 0 {
		opts.PowerStateTimeout = DefaultPowerStateTimeout
	}
	h := &handlers{srv: srv, st: srv.Store(), sec: srv.Secrets(), opts: opts, log: srv.Logger()}

	// service
	srv.HandleFunc(http.MethodGet, Base+"/ciracert", h.ciraCert, api.Public())
	srv.HandleFunc(http.MethodGet, Base+"/health", h.health, api.Public())
	srv.HandleFunc(http.MethodGet, Base+"/version", h.version, api.Public())
	srv.HandleFunc(http.MethodGet, Base+"/authorize/redirection/:guid", h.redirectionToken)

	// devices
	d := Base + "/devices"
	srv.HandleFunc(http.MethodGet, d, h.listDevices)
	srv.HandleFunc(http.MethodGet, d+"/stats", h.deviceStats)
	srv.HandleFunc(http.MethodGet, d+"/tags", h.deviceTags)
	srv.HandleFunc(http.MethodGet, d+"/:guid", h.getDevice)
	srv.HandleFunc(http.MethodGet, d+"/redirectstatus/:guid", h.redirectStatus)
	srv.HandleFunc(http.MethodGet, d+"/:guid/provisioning-log", h.provisioningLog)
	srv.HandleFunc(http.MethodPost, d, h.createDevice)
	srv.HandleFunc(http.MethodPatch, d, h.updateDevice)
	srv.HandleFunc(http.MethodDelete, d+"/refresh/:guid", h.refreshDevice)
	srv.HandleFunc(http.MethodDelete, d+"/:guid", h.deleteDevice)
	srv.HandleFunc(http.MethodDelete, d+"/disconnect/:guid", h.disconnectDevice)

	// AMT actions
	a := Base + "/amt"
	srv.HandleFunc(http.MethodGet, a+"/log/audit/:guid", h.auditLog)
	srv.HandleFunc(http.MethodGet, a+"/log/event/:guid", h.eventLog)
	srv.HandleFunc(http.MethodGet, a+"/generalSettings/:guid", h.generalSettings)
	srv.HandleFunc(http.MethodGet, a+"/hardwareInfo/:guid", h.hardwareInfo)
	srv.HandleFunc(http.MethodPost, a+"/power/action/:guid", h.powerAction)
	srv.HandleFunc(http.MethodPost, a+"/power/bootOptions/:guid", h.bootOptions)
	srv.HandleFunc(http.MethodGet, a+"/power/capabilities/:guid", h.powerCapabilities)
	srv.HandleFunc(http.MethodGet, a+"/power/state/:guid", h.powerState)
	srv.HandleFunc(http.MethodGet, a+"/power/bootSources/:guid", h.bootSources)
	srv.HandleFunc(http.MethodGet, a+"/features/:guid", h.getFeatures)
	srv.HandleFunc(http.MethodPost, a+"/features/:guid", h.setFeatures)
	srv.HandleFunc(http.MethodGet, a+"/version/:guid", h.amtVersion)
	srv.HandleFunc(http.MethodDelete, a+"/deactivate/:guid", h.deactivate)
	srv.HandleFunc(http.MethodGet, a+"/userConsentCode/cancel/:guid", h.cancelConsent)
	srv.HandleFunc(http.MethodGet, a+"/userConsentCode/:guid", h.requestConsent)
	srv.HandleFunc(http.MethodPost, a+"/userConsentCode/:guid", h.sendConsent)
	srv.HandleFunc(http.MethodGet, a+"/alarmOccurrences/:guid", h.getAlarms)
	srv.HandleFunc(http.MethodPost, a+"/alarmOccurrences/:guid", h.addAlarm)
	srv.HandleFunc(http.MethodDelete, a+"/alarmOccurrences/:guid", h.deleteAlarm)
	srv.HandleFunc(http.MethodGet, a+"/certificates/:guid", h.getCertificates)
	srv.HandleFunc(http.MethodPost, a+"/certificates/:guid", h.addCertificate)
	srv.HandleFunc(http.MethodDelete, a+"/certificates/:guid", h.deleteCertificate)
	srv.HandleFunc(http.MethodDelete, a+"/certificates/:guid/:instanceId", h.deleteCertificate)
	srv.HandleFunc(http.MethodGet, a+"/kvm/displays/:guid", h.getDisplays)
	srv.HandleFunc(http.MethodPut, a+"/kvm/displays/:guid", h.setDisplay)
	srv.HandleFunc(http.MethodPost, a+"/network/linkPreference/:guid", h.linkPreference)
	srv.HandleFunc(http.MethodGet, a+"/networkSettings/:guid", h.networkSettings)
	srv.HandleFunc(http.MethodGet, a+"/networkSettings/wired/:guid", h.getWired)
	srv.HandleFunc(http.MethodPatch, a+"/networkSettings/wired/:guid", h.patchWired)
	srv.HandleFunc(http.MethodGet, a+"/networkSettings/wireless/state/:guid", h.getWirelessState)
	srv.HandleFunc(http.MethodPost, a+"/networkSettings/wireless/state/:guid", h.setWirelessState)
	srv.HandleFunc(http.MethodGet, a+"/networkSettings/wireless/profileSync/:guid", h.getProfileSync)
	srv.HandleFunc(http.MethodPost, a+"/networkSettings/wireless/profileSync/:guid", h.setProfileSync)
	srv.HandleFunc(http.MethodGet, a+"/networkSettings/wireless/profile/:guid", h.getWirelessProfiles)
	srv.HandleFunc(http.MethodPost, a+"/networkSettings/wireless/profile/:guid", h.addWirelessProfile)
	srv.HandleFunc(http.MethodPatch, a+"/networkSettings/wireless/profile/:guid", h.updateWirelessProfile)
	srv.HandleFunc(http.MethodDelete, a+"/networkSettings/wireless/profile/:guid/:profileName", h.deleteWirelessProfile)
}

// ---- responses ----

// MPS's ErrorResponse texts (spec/mps.md §6.1).
const (
	msgBadRequest     = "Incorrect URI or Bad Request"
	msgUnauthorized   = "Unauthorized"
	msgNotFound       = "Not Found"
	msgInternal       = "Internal Server Error"
	msgNotImplemented = "Not Implemented"
	msgNotConnected   = "Device not found/connected. Please connect again using CIRA."
)

// errorBody is MPS's ErrorResponse: {"error":…,"errorDescription":…}.
type errorBody struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"errorDescription"`
}

func writeErr(w http.ResponseWriter, r *http.Request, status int, title, desc string) {
	api.WriteJSON(w, r, status, errorBody{title, desc})
}

func badRequest(w http.ResponseWriter, r *http.Request, desc string) {
	writeErr(w, r, http.StatusBadRequest, msgBadRequest, desc)
}

func internalError(w http.ResponseWriter, r *http.Request, desc string) {
	writeErr(w, r, http.StatusInternalServerError, msgInternal, desc)
}

func notConnected(w http.ResponseWriter, r *http.Request, guid string) {
	writeErr(w, r, http.StatusNotFound, msgNotConnected, "guid : "+guid)
}

func validationFailed(w http.ResponseWriter, r *http.Request, errs valid.Errors) {
	api.WriteJSON(w, r, http.StatusBadRequest, errs.Body())
}

// decodeBody parses the JSON body; a malformed one answers MPS's
// 400 {"error":"Incorrect URI or Bad Request"} (413 for an oversized one).
func decodeBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	body, err := api.DecodeBody(r)
	if err != nil {
		var e *api.Error
		if errors.As(err, &e) && e.Status == http.StatusRequestEntityTooLarge {
			api.WriteError(w, r, e)
			return nil, false
		}
		api.WriteJSON(w, r, http.StatusBadRequest, map[string]string{"error": msgBadRequest})
		return nil, false
	}
	return body, true
}

// logErr logs a failure with its cause (never a secret: causes are device
// or store errors).
func logErr(r *http.Request, what string, err error) {
	api.LoggerFrom(r.Context()).Warn("mps: "+what, "path", r.URL.Path, "err", err)
}

// isoTime formats like JavaScript's Date.toJSON.
func isoTime(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
