package rps

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/store"
)

// Wireless authentication methods.
const (
	authWPAPSK   = 4
	authWPA8021x = 5
	authWPA2PSK  = 6
	authWPA28021 = 7
)

// wirelessJSON is a wireless config on the wire (admin-api.md §6). pskValue
// is RPS's legacy column: null on create and get, absent from update
// answers. The passphrase is write-only.
type wirelessJSON struct {
	ProfileName          string  `json:"profileName"`
	AuthenticationMethod int     `json:"authenticationMethod"`
	EncryptionMethod     int     `json:"encryptionMethod"`
	SSID                 string  `json:"ssid"`
	PSKValue             *int    `json:"pskValue"`
	LinkPolicy           []int   `json:"linkPolicy"`
	TenantID             string  `json:"tenantId"`
	IEEE8021xProfileName *string `json:"ieee8021xProfileName"`
	Version              string  `json:"version"`
}

// wirelessUpdateJSON is the update answer (no pskValue).
type wirelessUpdateJSON struct {
	ProfileName          string  `json:"profileName"`
	AuthenticationMethod int     `json:"authenticationMethod"`
	EncryptionMethod     int     `json:"encryptionMethod"`
	SSID                 string  `json:"ssid"`
	LinkPolicy           []int   `json:"linkPolicy"`
	TenantID             string  `json:"tenantId"`
	IEEE8021xProfileName *string `json:"ieee8021xProfileName"`
	Version              string  `json:"version"`
}

func wirelessOut(c *store.WirelessConfig) wirelessJSON {
	lp := c.LinkPolicy
	if lp == nil {
		lp = []int{}
	}
	return wirelessJSON{ProfileName: c.Name, AuthenticationMethod: c.AuthenticationMethod, EncryptionMethod: c.EncryptionMethod,
		SSID: c.SSID, LinkPolicy: lp, TenantID: c.TenantID, IEEE8021xProfileName: c.IEEE8021xProfileName,
		Version: versionString(c.Version)}
}

func wirelessUpdateOut(c *store.WirelessConfig) wirelessUpdateJSON {
	o := wirelessOut(c)
	return wirelessUpdateJSON{ProfileName: o.ProfileName, AuthenticationMethod: o.AuthenticationMethod,
		EncryptionMethod: o.EncryptionMethod, SSID: o.SSID, LinkPolicy: o.LinkPolicy, TenantID: o.TenantID,
		IEEE8021xProfileName: o.IEEE8021xProfileName, Version: o.Version}
}

func isPSK(method string) bool   { return method == "4" || method == "6" }
func is8021x(method string) bool { return method == "5" || method == "7" }

var linkPolicies = map[float64]bool{1: true, 14: true, 16: true, 224: true}

func (h *handlers) validateWireless(ctx context.Context, body map[string]any, update bool) (valid.Errors, error) {
	refs := &refChecker{ctx: ctx, st: h.st, tenant: api.Tenant(ctx)}
	method := str(body, "authenticationMethod")
	v := valid.New()
	v.Body(body, "profileName").NotEmpty("Wireless profile name is required").
		Matches(reAlnum.MatchString, "Wireless profile name should be alphanumeric").
		IsLength(0, 32, "Wireless profile name maximum length is 32")
	v.Body(body, "authenticationMethod").NotEmpty("Authentication method is required").
		IsIn([]any{4, 5, 6, 7}, "Authentication method must be one of 4:WPA PSK, 5:WPA IEEE 802.1x, 6:WPA2 PSK, 7:WPA2 IEEE 802.1x")
	v.Body(body, "encryptionMethod").NotEmpty("Encryption method is required").
		IsIn([]any{3, 4}, "Encryption method must be one of 3:TKIP, 4:CCMP")
	v.Body(body, "ssid").NotEmpty("SSID is required").IsLength(0, 32, "Maximum length is 32")
	v.Body(body, "pskPassphrase").If(isPSK(method)).Redact().
		IsLength(8, 63, "PSK Passphrase length should be greater than or equal to 8 and less than or equal to 63")
	ieee := v.Body(body, "ieee8021xProfileName")
	if is8021x(method) {
		ieee.NotEmpty("ieee8021xProfileName is required")
	} else {
		ieee.Check(str(body, "ieee8021xProfileName") == "", "ieee8021xProfileName can not be specified with the provided authenticationMethod")
	}
	if name := str(body, "ieee8021xProfileName"); name != "" {
		ieee.Custom(func(any) string {
			cfg := refs.ieee8021x(name)
			switch {
			case cfg == nil:
				return fmt.Sprintf("Ieee8021x profile %s does not exist in db", name)
			case cfg.WiredInterface:
				return fmt.Sprintf("Ieee8021x profile %s is for wired interfaces", name)
			}
			return ""
		})
	}
	v.Body(body, "linkPolicy").OptionalNullable().IsArray("LinkPolicy should be an array of integers").
		Custom(func(val any) string {
			arr, ok := val.([]any)
			if !ok {
				return ""
			}
			for _, el := range arr {
				f, ok := el.(float64)
				if !ok || f != float64(int(f)) {
					return "Array does not contain integers"
				}
			}
			for _, el := range arr {
				if !linkPolicies[el.(float64)] {
					return "Array values should be either 1: available on S0 AC, 14: available on Sx AC, 16: available on S0 DC, 224: available on Sx DC"
				}
			}
			return ""
		})
	if update {
		v.Body(body, "version").NotEmpty(msgVersion)
	}
	scalarCheck(v, body, "profileName", "authenticationMethod", "encryptionMethod", "ssid", "pskPassphrase",
		"ieee8021xProfileName", "version")
	return v.Errors(), refs.err
}

func linkPolicy(v any) []int {
	arr, _ := v.([]any)
	out := make([]int, 0, len(arr))
	for _, el := range arr {
		out = append(out, toInt(el))
	}
	return out
}

func (h *handlers) listWireless(w http.ResponseWriter, r *http.Request) {
	listObjects(w, r, h.st.ListWirelessConfigs, h.st.CountWirelessConfigs, wirelessOut)
}

func (h *handlers) getWireless(w http.ResponseWriter, r *http.Request) {
	getObject(w, r, "profileName", typeWireless, h.st.GetWirelessConfig, wirelessOut)
}

func (h *handlers) createWireless(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	errs, err := h.validateWireless(ctx, body, false)
	if err != nil {
		opFailed(w, r, str(body, "profileName"), err)
		return
	}
	if len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	tenant := api.Tenant(ctx)
	c := &store.WirelessConfig{
		TenantID:             tenant,
		Name:                 str(body, "profileName"),
		AuthenticationMethod: toInt(body["authenticationMethod"]),
		EncryptionMethod:     toInt(body["encryptionMethod"]),
		SSID:                 str(body, "ssid"),
		LinkPolicy:           linkPolicy(body["linkPolicy"]),
	}
	if name := str(body, "ieee8021xProfileName"); name != "" {
		c.IEEE8021xProfileName = strPtr(name)
	}
	data := map[string]string{}
	if isPSK(str(body, "authenticationMethod")) {
		data[fieldPSK] = str(body, "pskPassphrase")
	}
	err = h.createWithSecret(ctx, tenant, kindWireless, data, func(id string) error {
		c.SecretID = id
		return h.st.CreateWirelessConfig(ctx, c)
	})
	switch {
	case errors.Is(err, store.ErrDuplicate):
		badRequest(w, r, "Unique key violation", "Wireless profile "+c.Name+" already exists")
	case errors.Is(err, store.ErrMissingReference):
		badRequest(w, r, "Error", "Operation failed for Wireless profile: "+c.Name)
	case err != nil:
		opFailed(w, r, c.Name, err)
	default:
		logChange(r, "created wireless config", kindWireless, c.Name)
		api.WriteJSON(w, r, http.StatusCreated, wirelessOut(c))
	}
}

func (h *handlers) updateWireless(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	name := str(body, "profileName")
	errs, err := h.validateWireless(ctx, body, true)
	if err != nil {
		opFailed(w, r, name, err)
		return
	}
	if len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	tenant := api.Tenant(ctx)
	cur, err := h.st.GetWirelessConfig(ctx, tenant, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeWireless, name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	claimed, ifMatch := requestVersion(r, body)
	if !versionMatches(claimed, cur.Version) {
		conflict(w, r, ifMatch, cur.Version, wirelessOut(cur))
		return
	}
	next := *cur
	next.AuthenticationMethod = toInt(body["authenticationMethod"])
	next.EncryptionMethod = toInt(body["encryptionMethod"])
	next.SSID = str(body, "ssid")
	if has(body, "linkPolicy") {
		next.LinkPolicy = linkPolicy(body["linkPolicy"])
	}
	next.IEEE8021xProfileName = nil
	if n := str(body, "ieee8021xProfileName"); n != "" {
		next.IEEE8021xProfileName = strPtr(n)
	}
	old, err := h.readSecret(ctx, tenant, kindWireless, cur.SecretID)
	if err != nil {
		opFailed(w, r, name, err)
		return
	}
	data := map[string]string{}
	if isPSK(str(body, "authenticationMethod")) {
		data[fieldPSK] = str(body, "pskPassphrase")
	}
	err = h.updateWithSecret(ctx, tenant, kindWireless, cur.SecretID, !sameSecret(data, old), data, func(id string) error {
		next.SecretID = id
		return h.st.UpdateWirelessConfig(ctx, &next)
	})
	if errors.Is(err, store.ErrMissingReference) {
		badRequest(w, r, "Error", "Operation failed for Wireless profile: "+name)
		return
	}
	if h.updateFailed(w, r, err, ifMatch, typeWireless, name, func() (any, int64, error) {
		c, err := h.st.GetWirelessConfig(ctx, tenant, name)
		if err != nil {
			return nil, 0, err
		}
		return wirelessOut(c), c.Version, nil
	}) {
		return
	}
	logChange(r, "updated wireless config", kindWireless, next.Name)
	api.WriteJSON(w, r, http.StatusOK, wirelessUpdateOut(&next))
}

func (h *handlers) deleteWireless(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := r.PathValue("profileName")
	cur, err := h.st.GetWirelessConfig(ctx, tenant, name)
	if err == nil {
		err = h.st.DeleteWirelessConfig(ctx, tenant, name)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeWireless, name)
	case errors.Is(err, store.ErrInUse):
		badRequest(w, r, "Foreign key violation", "Wireless profile: "+name+" is associated with an AMT Profile.")
	case err != nil:
		opFailed(w, r, name, err)
	default:
		h.dropSecret(ctx, tenant, kindWireless, cur.SecretID)
		logChange(r, "deleted wireless config", kindWireless, cur.Name)
		api.NoContent(w)
	}
}
