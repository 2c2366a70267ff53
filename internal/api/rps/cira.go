package rps

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/store"
)

// ciraJSON is a CIRA config on the wire (admin-api.md §3).
type ciraJSON struct {
	ConfigName          string `json:"configName"`
	MPSServerAddress    string `json:"mpsServerAddress"`
	MPSPort             int    `json:"mpsPort"`
	Username            string `json:"username"`
	CommonName          string `json:"commonName"`
	ServerAddressFormat int    `json:"serverAddressFormat"`
	AuthMethod          int    `json:"authMethod"`
	MPSRootCertificate  string `json:"mpsRootCertificate"`
	ProxyDetails        string `json:"proxyDetails"`
	TenantID            string `json:"tenantId"`
	Version             string `json:"version"`
}

func ciraOut(c *store.CIRAConfig) ciraJSON {
	return ciraJSON{
		ConfigName: c.Name, MPSServerAddress: c.MPSServerAddress, MPSPort: c.MPSPort, Username: c.Username,
		CommonName: c.CommonName, ServerAddressFormat: c.ServerAddressFormat, AuthMethod: c.AuthMethod,
		MPSRootCertificate: c.MPSRootCertificate, ProxyDetails: c.ProxyDetails, TenantID: c.TenantID,
		Version: versionString(c.Version),
	}
}

var (
	reConfigName = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	reAlnum      = regexp.MustCompile(`^[a-zA-Z0-9]+$`)
	reIPv4       = regexp.MustCompile(`^([01]?[0-9]?[0-9]|2[0-4][0-9]|25[0-5])\.([01]?[0-9]?[0-9]|2[0-4][0-9]|25[0-5])\.([01]?[0-9]?[0-9]|2[0-4][0-9]|25[0-5])\.([01]?[0-9]?[0-9]|2[0-4][0-9]|25[0-5])$`)
	// RPS's IPv6 pattern, alternatives anchored as in the original (the
	// first only at the start, the second only at the end).
	reIPv6 = regexp.MustCompile(`^((?:[0-9A-Fa-f]{1,4}))((?::[0-9A-Fa-f]{1,4}))*::((?:[0-9A-Fa-f]{1,4}))((?::[0-9A-Fa-f]{1,4}))*|((?:[0-9A-Fa-f]{1,4}))((?::[0-9A-Fa-f]{1,4})){7}$`)
)

// isCIRAFQDN is RPS's FQDN pattern
// ^(?=.{1,254}$)((?=[a-z0-9-]{1,63}\.)(xn--+)?[a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,63}$
// (lower case only, as in RPS), written without look-aheads.
func isCIRAFQDN(s string) bool {
	if len(s) < 1 || len(s) > 254 {
		return false
	}
	labels := splitDots(s)
	if len(labels) < 2 {
		return false
	}
	tld := labels[len(labels)-1]
	if len(tld) < 2 || len(tld) > 63 {
		return false
	}
	for i := 0; i < len(tld); i++ {
		if tld[i] < 'a' || tld[i] > 'z' {
			return false
		}
	}
	for _, l := range labels[:len(labels)-1] {
		if len(l) < 1 || len(l) > 63 {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
		if !ciraLabel(l) {
			return false
		}
	}
	return true
}

// ciraLabel: (xn--+)?[a-z0-9]+(-[a-z0-9]+)*
func ciraLabel(l string) bool {
	if len(l) > 4 && l[:4] == "xn--" {
		rest := l[4:]
		for len(rest) > 0 && rest[0] == '-' {
			rest = rest[1:]
		}
		if plainLabel(rest) {
			return true
		}
	}
	return plainLabel(l)
}

func plainLabel(l string) bool {
	if l == "" || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 1; i < len(l); i++ {
		if l[i] == '-' && l[i-1] == '-' {
			return false
		}
	}
	return true
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// serverAddressCheck is RPS's custom check of mpsServerAddress against
// serverAddressFormat (strict comparisons on the raw JSON values).
func serverAddressCheck(body map[string]any) func(any) string {
	return func(value any) string {
		format, ok := body["serverAddressFormat"]
		if !ok || format == nil {
			return "serverAddressFormat is required"
		}
		if value == nil {
			return ""
		}
		s, isStr := value.(string)
		switch {
		case numEq(format, 3):
			if !isStr || !reIPv4.MatchString(s) {
				return "serverAddressFormat 3 requires IPV4 server address"
			}
			if !has(body, "commonName") {
				return "commonName is required when serverAddressFormat is 3"
			}
		case numEq(format, 4):
			if !isStr || !reIPv6.MatchString(s) {
				return "serverAddressFormat 4 requires IPV6 server address"
			}
		case numEq(format, 201):
			if !isStr || (!isCIRAFQDN(s) && !reIPv4.MatchString(s)) {
				return "serverAddressFormat 201 requires FQDN server address"
			}
		}
		return ""
	}
}

var addressFormats = []any{3, 4, 201}

func validateCIRACreate(body map[string]any) valid.Errors {
	v := valid.New()
	v.Body(body, "configName").NotEmpty("CIRA profile name is required").
		Matches(reConfigName.MatchString, "CIRA profile name accepts letters, numbers, underscore and hyphen only")
	v.Body(body, "serverAddressFormat").NotEmpty("MPS server address format is required").
		IsIn(addressFormats, "MPS server address format should be either 3(IPV4) , 4(IPV6) or 201(FQDN)")
	v.Body(body, "mpsServerAddress").NotEmpty("MPS server address is required").Custom(serverAddressCheck(body))
	v.Body(body, "mpsPort").NotEmpty("MPS port is required").
		IsInt(valid.Range(1024, 49151), "MPS Port value should range between 1024 and 49151")
	v.Body(body, "username").NotEmpty("MPS user name is required").
		Matches(reAlnum.MatchString, "MPS user name should be alphanumeric").
		IsLength(5, 16, "MPS user name length should be in between 5 to 16")
	v.Body(body, "commonName").If(!numEq(body["serverAddressFormat"], 201)).Optional().
		Matches(reIPv4.MatchString, "Cert. Hostname(CN) should be an IP address.")
	v.Body(body, "authMethod").NotEmpty("Authentication method is required").
		IsIn([]any{1, 2}, "Authentication method should be either 1 (Mutual Auth) or 2 (username and password)")
	v.Body(body, "mpsRootCertificate").NotEmpty("MPS public root certificate is required")
	v.Body(body, "password").OptionalNullable().Redact().Custom(mpsPasswordCheck)
	scalarCheck(v, body, ciraFields...)
	return v.Errors()
}

var ciraFields = []string{"configName", "mpsServerAddress", "mpsPort", "username", "commonName", "serverAddressFormat",
	"authMethod", "mpsRootCertificate", "proxyDetails", "regeneratePassword"}

// mpsPasswordCheck (amtd): a static MPS password must be a string AMT can
// take (RPS stores anything).
func mpsPasswordCheck(v any) string {
	s, ok := v.(string)
	if !ok || len(s) > 64 {
		return "MPS password should be a string of at most 64 characters"
	}
	return ""
}

func validateCIRAUpdate(body map[string]any) valid.Errors {
	v := valid.New()
	v.Body(body, "configName").NotEmpty("CIRA profile name is required").
		Matches(reConfigName.MatchString, "CIRA profile name accepts letters, numbers, underscore and hyphen only")
	v.Body(body, "serverAddressFormat").Optional().
		IsIn(addressFormats, "MPS server address format 3(IPV4) , 4(IPV6) or 201(FQDN)").
		Custom(func(any) string {
			if !has(body, "mpsServerAddress") {
				return "Server address is required to update"
			}
			return ""
		})
	v.Body(body, "mpsServerAddress").Optional().Custom(serverAddressCheck(body))
	v.Body(body, "mpsPort").Optional().Custom(func(val any) string {
		f, ok := val.(float64)
		if !ok || f <= 1024 || f >= 49151 || f != float64(int(f)) {
			return "MPS Port value should range between 1024 and 49151"
		}
		return ""
	})
	v.Body(body, "username").Optional().
		Matches(reAlnum.MatchString, "MPS user name should be alphanumeric").
		IsLength(5, 16, "MPS user name length should be in between 5 to 16")
	v.Body(body, "commonName").If(!numEq(body["serverAddressFormat"], 201)).Optional().
		Matches(reIPv4.MatchString, "Cert. Hostname(CN) should be an IP address.").
		Custom(func(any) string {
			if !has(body, "serverAddressFormat") || !has(body, "mpsServerAddress") {
				return "serverAddressFormat and mpsServerAddress is required"
			}
			return ""
		})
	v.Body(body, "authMethod").Optional().
		IsIn([]any{1, 2}, "Authentication method accepts either 1 - Mutual Auth or 2 -username/password)")
	v.Body(body, "regeneratePassword").Optional().IsBoolean("")
	v.Body(body, "password").OptionalNullable().Redact().Custom(mpsPasswordCheck)
	scalarCheck(v, body, ciraFields...)
	return v.Errors()
}

func (h *handlers) listCIRA(w http.ResponseWriter, r *http.Request) {
	listObjects(w, r, h.st.ListCIRAConfigs, h.st.CountCIRAConfigs, ciraOut)
}

func (h *handlers) getCIRA(w http.ResponseWriter, r *http.Request) {
	getObject(w, r, "ciraConfigName", typeCIRA, h.st.GetCIRAConfig, ciraOut)
}

func (h *handlers) createCIRA(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validateCIRACreate(body); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	c := &store.CIRAConfig{
		TenantID:            tenant,
		Name:                str(body, "configName"),
		MPSServerAddress:    str(body, "mpsServerAddress"),
		MPSPort:             toInt(body["mpsPort"]),
		Username:            str(body, "username"),
		CommonName:          str(body, "commonName"),
		ServerAddressFormat: toInt(body["serverAddressFormat"]),
		AuthMethod:          toInt(body["authMethod"]),
		MPSRootCertificate:  str(body, "mpsRootCertificate"),
		ProxyDetails:        str(body, "proxyDetails"),
	}
	data := map[string]string{}
	if pw := str(body, "password"); pw != "" {
		data[fieldMPSPassword] = pw
	}
	err := h.createWithSecret(ctx, tenant, kindCIRA, data, func(id string) error {
		c.SecretID = id
		return h.st.CreateCIRAConfig(ctx, c)
	})
	switch {
	case errors.Is(err, store.ErrDuplicate):
		badRequest(w, r, "Unique key violation", "CIRA Config "+c.Name+" already exists.")
	case err != nil:
		opFailed(w, r, c.Name, err)
	default:
		logChange(r, "created CIRA config", kindCIRA, c.Name)
		api.WriteJSON(w, r, http.StatusCreated, ciraOut(c))
	}
}

func (h *handlers) updateCIRA(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validateCIRAUpdate(body); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := str(body, "configName")
	cur, err := h.st.GetCIRAConfig(ctx, tenant, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeCIRA, name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	claimed, ifMatch := requestVersion(r, body)
	if !versionMatches(claimed, cur.Version) {
		conflict(w, r, ifMatch, cur.Version, ciraOut(cur))
		return
	}
	next := *cur
	if has(body, "mpsServerAddress") {
		next.MPSServerAddress = str(body, "mpsServerAddress")
	}
	if has(body, "mpsPort") {
		next.MPSPort = toInt(body["mpsPort"])
	}
	if has(body, "username") {
		next.Username = str(body, "username")
	}
	if _, ok := body["commonName"]; ok {
		next.CommonName = str(body, "commonName")
	}
	if has(body, "serverAddressFormat") {
		next.ServerAddressFormat = toInt(body["serverAddressFormat"])
	}
	if has(body, "authMethod") {
		next.AuthMethod = toInt(body["authMethod"])
	}
	if has(body, "mpsRootCertificate") {
		next.MPSRootCertificate = str(body, "mpsRootCertificate")
	}
	if _, ok := body["proxyDetails"]; ok {
		next.ProxyDetails = str(body, "proxyDetails")
	}

	// A new static password, or regeneratePassword: a new random one that
	// every device of this config gets.
	var data map[string]string
	changed := false
	switch {
	case str(body, "password") != "":
		data, changed = map[string]string{fieldMPSPassword: str(body, "password")}, true
	case toBool(body["regeneratePassword"]):
		pw, err := randomAMTPassword(16)
		if err != nil {
			opFailed(w, r, name, err)
			return
		}
		data, changed = map[string]string{fieldMPSPassword: pw}, true
	}
	err = h.updateWithSecret(ctx, tenant, kindCIRA, cur.SecretID, changed, data, func(id string) error {
		next.SecretID = id
		return h.st.UpdateCIRAConfig(ctx, &next)
	})
	if h.updateFailed(w, r, err, ifMatch, typeCIRA, name, func() (any, int64, error) {
		c, err := h.st.GetCIRAConfig(ctx, tenant, name)
		if err != nil {
			return nil, 0, err
		}
		return ciraOut(c), c.Version, nil
	}) {
		return
	}
	logChange(r, "updated CIRA config", kindCIRA, next.Name)
	api.WriteJSON(w, r, http.StatusOK, ciraOut(&next))
}

// updateFailed handles the errors of a store update common to every type:
// a lost race (ErrConflict) answers 409/412 with the now-current object, a
// vanished object 404, anything else 500. It reports whether it answered.
func (h *handlers) updateFailed(w http.ResponseWriter, r *http.Request, err error, ifMatch bool, typ, name string, reload func() (any, int64, error)) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, store.ErrConflict):
		cur, ver, gerr := reload()
		if gerr != nil {
			if errors.Is(gerr, store.ErrNotFound) {
				notFound(w, r, typ, name)
			} else {
				opFailed(w, r, name, gerr)
			}
			return true
		}
		conflict(w, r, ifMatch, ver, cur)
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typ, name)
	default:
		opFailed(w, r, name, err)
	}
	return true
}

func (h *handlers) deleteCIRA(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := r.PathValue("ciraConfigName")
	cur, err := h.st.GetCIRAConfig(ctx, tenant, name)
	if err == nil {
		err = h.st.DeleteCIRAConfig(ctx, tenant, name)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeCIRA, name)
	case errors.Is(err, store.ErrInUse):
		badRequest(w, r, "Foreign key violation", "CIRA Config: "+name+" is associated with an AMT profile")
	case err != nil:
		opFailed(w, r, name, err)
	default:
		h.dropSecret(ctx, tenant, kindCIRA, cur.SecretID)
		logChange(r, "deleted CIRA config", kindCIRA, cur.Name)
		api.NoContent(w)
	}
}
