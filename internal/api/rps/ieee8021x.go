package rps

import (
	"errors"
	"net/http"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/store"
)

// ieee8021xJSON is an 802.1x config on the wire (admin-api.md §7). The
// credential fields RPS accepts (username, password, …) are not stored:
// credentials come from the Enterprise Assistant at activation.
type ieee8021xJSON struct {
	ProfileName            string `json:"profileName"`
	AuthenticationProtocol int    `json:"authenticationProtocol"`
	PXETimeout             *int   `json:"pxeTimeout"`
	WiredInterface         bool   `json:"wiredInterface"`
	TenantID               string `json:"tenantId"`
	Version                string `json:"version"`
}

func ieee8021xOut(c *store.IEEE8021xConfig) ieee8021xJSON {
	return ieee8021xJSON{ProfileName: c.Name, AuthenticationProtocol: c.AuthenticationProtocol, PXETimeout: c.PXETimeout,
		WiredInterface: c.WiredInterface, TenantID: c.TenantID, Version: versionString(c.Version)}
}

// DefaultPXETimeout is applied when a create omits pxeTimeout.
const DefaultPXETimeout = 120

func validate8021x(body map[string]any, update bool) valid.Errors {
	wired := toBool(body["wiredInterface"])
	v := valid.New()
	v.Body(body, "profileName").NotEmpty("802.1x profile name is required").
		Matches(reAlnum.MatchString, "802.1x profile name should be alphanumeric").
		IsLength(0, 32, "802.1x profile name maximum length is 32")
	v.Body(body, "wiredInterface").NotEmpty("Wired interface flag is required").
		Custom(func(val any) string {
			if s := valid.String(val); s != "" && !valid.IsBooleanString(s) {
				return "Wired interface flag must be a boolean"
			}
			return ""
		})
	proto := v.Body(body, "authenticationProtocol").NotEmpty("Authentication protocol is required")
	if wired {
		proto.IsIn([]any{0, 2, 3, 5, 10}, "Authentication protocol must be one of 0:EAP-TLS, 3:PEAPv1/EAP-GTC, 5:EAP-FAST/GTC, 10:EAP-FAST/TLS, 2:PEAPv0/EAP-MSCHAPv2")
		v.Body(body, "pxeTimeout").NotEmpty("PXE Timeout is required").
			Custom(func(val any) string {
				if !isNumber(val) {
					return "PXE Timeout must be number"
				}
				return ""
			}).
			IsInt(valid.Range(0, 86400), "PXE Timeout value should be 0 - 86400")
	} else {
		proto.IsIn([]any{0, 2}, "Authentication protocol must be one of 0:EAP-TLS, 2:PEAPv0/EAP-MSCHAPv2")
		v.Body(body, "pxeTimeout").OptionalNullable().
			IsInt(valid.Range(0, 86400), "PXE Timeout value should be 0 - 86400")
	}
	if update {
		v.Body(body, "version").NotEmpty(msgVersion)
	}
	scalarCheck(v, body, "profileName", "authenticationProtocol", "pxeTimeout", "wiredInterface", "version")
	return v.Errors()
}

func (h *handlers) list8021x(w http.ResponseWriter, r *http.Request) {
	listObjects(w, r, h.st.ListIEEE8021xConfigs, h.st.CountIEEE8021xConfigs, ieee8021xOut)
}

func (h *handlers) get8021x(w http.ResponseWriter, r *http.Request) {
	getObject(w, r, "profileName", type8021x, h.st.GetIEEE8021xConfig, ieee8021xOut)
}

func pxeFrom(body map[string]any) *int {
	if has(body, "pxeTimeout") {
		return intPtr(toInt(body["pxeTimeout"]))
	}
	return nil
}

func (h *handlers) create8021x(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validate8021x(body, false); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	ctx := r.Context()
	c := &store.IEEE8021xConfig{
		TenantID:               api.Tenant(ctx),
		Name:                   str(body, "profileName"),
		AuthenticationProtocol: toInt(body["authenticationProtocol"]),
		PXETimeout:             pxeFrom(body),
		WiredInterface:         toBool(body["wiredInterface"]),
	}
	if c.PXETimeout == nil {
		c.PXETimeout = intPtr(DefaultPXETimeout)
	}
	err := h.st.CreateIEEE8021xConfig(ctx, c)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		badRequest(w, r, "Unique key violation", "802.1x config: "+c.Name+" already exists")
	case err != nil:
		opFailed(w, r, c.Name, err)
	default:
		logChange(r, "created 802.1x config", "ieee8021xconfigs", c.Name)
		api.WriteJSON(w, r, http.StatusCreated, ieee8021xOut(c))
	}
}

func (h *handlers) update8021x(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validate8021x(body, true); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := str(body, "profileName")
	cur, err := h.st.GetIEEE8021xConfig(ctx, tenant, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, type8021x, name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	claimed, ifMatch := requestVersion(r, body)
	if !versionMatches(claimed, cur.Version) {
		conflict(w, r, ifMatch, cur.Version, ieee8021xOut(cur))
		return
	}
	next := *cur
	next.AuthenticationProtocol = toInt(body["authenticationProtocol"])
	next.WiredInterface = toBool(body["wiredInterface"])
	if p := pxeFrom(body); p != nil {
		next.PXETimeout = p
	}
	err = h.st.UpdateIEEE8021xConfig(ctx, &next)
	if h.updateFailed(w, r, err, ifMatch, type8021x, name, func() (any, int64, error) {
		c, err := h.st.GetIEEE8021xConfig(ctx, tenant, name)
		if err != nil {
			return nil, 0, err
		}
		return ieee8021xOut(c), c.Version, nil
	}) {
		return
	}
	logChange(r, "updated 802.1x config", "ieee8021xconfigs", next.Name)
	api.WriteJSON(w, r, http.StatusOK, ieee8021xOut(&next))
}

func (h *handlers) delete8021x(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("profileName")
	err := h.st.DeleteIEEE8021xConfig(ctx, api.Tenant(ctx), name)
	var ref *store.RefError
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, type8021x, name)
	case errors.As(err, &ref) && errors.Is(err, store.ErrInUse) && ref.Kind == "wireless":
		badRequest(w, r, "Error", "802.1x config: "+name+" is associated with a wireless profile.")
	case errors.Is(err, store.ErrInUse):
		badRequest(w, r, "Error", "802.1x config: "+name+" is associated with an AMT Profile.")
	case err != nil:
		opFailed(w, r, name, err)
	default:
		logChange(r, "deleted 802.1x config", "ieee8021xconfigs", name)
		api.NoContent(w)
	}
}
