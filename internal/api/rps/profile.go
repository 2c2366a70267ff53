package rps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/store"
)

// Activation modes amtd accepts (RPS accepts any internal action name,
// admin-api.md §11.4).
const (
	activationACM = "acmactivate"
	activationCCM = "ccmactivate"
)

const (
	msgActivation      = "Activation accepts either acmactivate (admin control activation) or ccmactivate (client control mode activation)"
	msgAMTPassword     = "AMT password is required field should contains at least one lowercase letter, one uppercase letter, one numeric digit,and one special character and password length should be in between 8 to 32."
	msgMEBxPassword    = "MEBx password is required field should contains at least one lowercase letter, one uppercase letter, one numeric digit,and one special character and password length should be in between 8 to 32."
	msgEitherAMT       = "Either generateRandomPassword should be enabled or provide amtPassword"
	msgMEBxForACM      = "MEBx Password is required for acmactivate"
	msgMEBxForACMLower = "MEBx password is required for acmactivate"
	msgRandomAMTBoth   = "Either generate Random AMT Password should be enabled or should provide AMT Password but not both"
	msgRandomAMTNone   = "If generate random AMT password is disabled, amtPassword is mandatory"
	msgRandomMEBxBoth  = "Either generate MEBx password should be enabled or should provide MEBx password, but not both"
	msgRandomMEBxNone  = "If generate random MEBx password is disabled, mebxPassword is mandatory"
	msgTLSMode         = "tlsMode must be set to one of these values: 1 (Server Authentication Only), 2 (Server and Non-TLS Authentication), 3 (Mutual TLS only), 4 (Mutual and Non-TLS authentication)"
	msgUserConsent     = "User consent must be one of None,All,KVM"
	msgCCMConsent      = "User consent is required for all the actions in client control mode"
	msgVersion         = "Version is required to patch/update a record."
)

// profileJSON is an AMT profile on the wire, in RPS's key order
// (admin-api.md §5). Passwords are write-only.
type profileJSON struct {
	ProfileName                string          `json:"profileName"`
	Activation                 string          `json:"activation"`
	CIRAConfigName             *string         `json:"ciraConfigName"`
	GenerateRandomPassword     bool            `json:"generateRandomPassword"`
	GenerateRandomMEBxPassword bool            `json:"generateRandomMEBxPassword"`
	Tags                       []string        `json:"tags"`
	DHCPEnabled                bool            `json:"dhcpEnabled"`
	TLSMode                    *int            `json:"tlsMode"`
	UserConsent                string          `json:"userConsent"`
	IDEREnabled                bool            `json:"iderEnabled"`
	KVMEnabled                 bool            `json:"kvmEnabled"`
	SOLEnabled                 bool            `json:"solEnabled"`
	TenantID                   string          `json:"tenantId"`
	TLSSigningAuthority        *string         `json:"tlsSigningAuthority"`
	Version                    string          `json:"version"`
	IEEE8021xProfileName       *string         `json:"ieee8021xProfileName"`
	WifiConfigs                []wifiLinkJSON  `json:"wifiConfigs"`
	IPSyncEnabled              *bool           `json:"ipSyncEnabled"`
	LocalWifiSyncEnabled       *bool           `json:"localWifiSyncEnabled"`
	UEFIWifiSyncEnabled        *bool           `json:"uefiWifiSyncEnabled"`
	ProxyConfigs               []proxyLinkJSON `json:"proxyConfigs"`
	// amtd extensions (useracl.go), absent when unset.
	PowerPolicy string        `json:"powerPolicy,omitempty"`
	UserACLs    []userACLJSON `json:"userAcls,omitempty"`
}

type wifiLinkJSON struct {
	Priority    int    `json:"priority"`
	ProfileName string `json:"profileName"`
}

type proxyLinkJSON struct {
	Priority int    `json:"priority"`
	Name     string `json:"name"`
}

func profileOut(p *store.Profile) profileJSON {
	out := profileJSON{
		ProfileName: p.Name, Activation: p.Activation, CIRAConfigName: p.CIRAConfigName,
		GenerateRandomPassword: p.GenerateRandomPassword, GenerateRandomMEBxPassword: p.GenerateRandomMEBxPassword,
		Tags: p.Tags, DHCPEnabled: p.DHCPEnabled, TLSMode: p.TLSMode, UserConsent: p.UserConsent,
		IDEREnabled: p.IDEREnabled, KVMEnabled: p.KVMEnabled, SOLEnabled: p.SOLEnabled, TenantID: p.TenantID,
		TLSSigningAuthority: p.TLSSigningAuthority, Version: versionString(p.Version),
		IEEE8021xProfileName: p.IEEE8021xProfileName, IPSyncEnabled: p.IPSyncEnabled,
		LocalWifiSyncEnabled: p.LocalWifiSyncEnabled, UEFIWifiSyncEnabled: p.UEFIWifiSyncEnabled,
		WifiConfigs: []wifiLinkJSON{}, ProxyConfigs: []proxyLinkJSON{},
		PowerPolicy: p.PowerPolicy, UserACLs: userACLsOut(p.UserACLs),
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	for _, l := range p.WifiConfigs {
		out.WifiConfigs = append(out.WifiConfigs, wifiLinkJSON{Priority: l.Priority, ProfileName: l.Name})
	}
	for _, l := range p.ProxyConfigs {
		out.ProxyConfigs = append(out.ProxyConfigs, proxyLinkJSON{Priority: l.Priority, Name: l.Name})
	}
	return out
}

// inPasswordClass is RPS's class [a-zA-Z0-9$@$!%*#?&-_~^] (where &-_ is
// the range 0x26–0x5F).
func inPasswordClass(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 0x26 && c <= 0x5f || strings.IndexByte("$!%#~^", c) >= 0
}

// isProfileName: ^[a-zA-Z0-9$@$!%*#?&-_~^]+$ (no spaces or control
// characters, admin-api.md §11.5).
func isProfileName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !inPasswordClass(s[i]) {
			return false
		}
	}
	return true
}

// IsStrongPassword is RPS's AMT/MEBx password rule:
// ^(?=.*[0-9])(?=.*[!@#$%^&*])(?=.*[a-z])(?=.*[A-Z])[a-zA-Z0-9$@$!%*#?&-_~^]{8,32}$
func IsStrongPassword(s string) bool {
	if len(s) < 8 || len(s) > 32 {
		return false
	}
	var digit, special, lower, upper bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !inPasswordClass(c) {
			return false
		}
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		}
		if strings.IndexByte("!@#$%^&*", c) >= 0 {
			special = true
		}
	}
	return digit && special && lower && upper
}

// isTrue is JavaScript `v === true`.
func isTrue(v any) bool { b, ok := v.(bool); return ok && b }

// isFalse is JavaScript `v === false`.
func isFalse(v any) bool { b, ok := v.(bool); return ok && !b }

// refChecker looks up referenced objects during validation; the first
// store failure is kept and answered 500 after validation.
type refChecker struct {
	ctx    context.Context
	st     store.Store
	tenant string
	err    error
}

func (c *refChecker) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

func (c *refChecker) missingWifi(names []string) []string {
	var missing []string
	for _, n := range names {
		if _, err := c.st.GetWirelessConfig(c.ctx, c.tenant, n); errors.Is(err, store.ErrNotFound) {
			missing = append(missing, n)
		} else if err != nil {
			c.fail(err)
		}
	}
	return missing
}

func (c *refChecker) missingProxies(names []string) []string {
	var missing []string
	for _, n := range names {
		if _, err := c.st.GetProxyConfig(c.ctx, c.tenant, n); errors.Is(err, store.ErrNotFound) {
			missing = append(missing, n)
		} else if err != nil {
			c.fail(err)
		}
	}
	return missing
}

// ieee8021x returns the 802.1x config or nil when it does not exist.
func (c *refChecker) ieee8021x(name string) *store.IEEE8021xConfig {
	cfg, err := c.st.GetIEEE8021xConfig(c.ctx, c.tenant, name)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			c.fail(err)
		}
		return nil
	}
	return cfg
}

// links checks a wifiConfigs/proxyConfigs array: element shape, priority
// 1–255, duplicates. It returns the names in order and an error message.
func links(v any, nameKey, what string) (names []string, priorities []int, msg string) {
	arr, _ := v.([]any)
	seen := map[string]bool{}
	for _, el := range arr {
		obj, ok := el.(map[string]any)
		if !ok {
			return nil, nil, fmt.Sprintf("%s config entries should be objects with %s and priority", what, nameKey)
		}
		name, ok := obj[nameKey].(string)
		if !ok || name == "" {
			return nil, nil, fmt.Sprintf("%s config entries should be objects with %s and priority", what, nameKey)
		}
		pr, ok := obj["priority"].(float64)
		if !ok || pr != float64(int(pr)) || pr < 1 || pr > 255 {
			return nil, nil, fmt.Sprintf("%s config priority should be an integer and between 1 and 255", what)
		}
		key := strings.ToLower(name)
		if seen[key] {
			return nil, nil, fmt.Sprintf("%s config %s is listed more than once", what, name)
		}
		seen[key] = true
		names = append(names, name)
		priorities = append(priorities, int(pr))
	}
	return names, priorities, ""
}

// tagsCheck (amtd): tags must be strings.
func tagsCheck(v any) string {
	arr, ok := v.([]any)
	if !ok {
		return ""
	}
	for _, el := range arr {
		if _, ok := el.(string); !ok {
			return "tags should be an array of strings"
		}
	}
	return ""
}

func (h *handlers) validateProfile(ctx context.Context, body map[string]any, update bool) (valid.Errors, error) {
	refs := &refChecker{ctx: ctx, st: h.st, tenant: api.Tenant(ctx)}
	v := valid.New()
	activation := body["activation"]
	isACM := activation == activationACM

	v.Body(body, "profileName").NotEmpty("AMT profile name is required").
		Matches(isProfileName, "AMT profile name accepts letters, numbers, special characters and no spaces")
	if update {
		v.Body(body, "activation").IsIn([]any{activationACM, activationCCM}, msgActivation)
		v.Body(body, "amtPassword").OptionalNullable().Redact().Matches(IsStrongPassword, msgAMTPassword)
		v.Body(body, "generateRandomPassword").Optional().
			IsBoolean("Generate random AMT password must be a boolean true or false").
			Custom(func(val any) string {
				if isTrue(val) && has(body, "amtPassword") {
					return msgRandomAMTBoth
				}
				return ""
			})
		v.Body(body, "mebxPassword").OptionalNullable().Redact().Matches(IsStrongPassword, msgMEBxPassword)
		v.Body(body, "generateRandomMEBxPassword").Optional().
			IsBoolean("Generate random MEBx password must be a boolean true or false").
			Custom(func(val any) string {
				if isACM && isTrue(val) && has(body, "mebxPassword") {
					return msgRandomMEBxBoth
				}
				return ""
			})
	} else {
		v.Body(body, "activation").NotEmpty("Activation is required").
			IsIn([]any{activationACM, activationCCM}, msgActivation).
			Custom(func(val any) string {
				if !has(body, "amtPassword") && !truthy(body["generateRandomPassword"]) {
					return msgEitherAMT
				}
				if val == activationACM && !has(body, "mebxPassword") && !truthy(body["generateRandomMEBxPassword"]) {
					return msgMEBxForACM
				}
				return ""
			})
		v.Body(body, "amtPassword").If(!isTrue(body["generateRandomPassword"])).Optional().Redact().
			Matches(IsStrongPassword, msgAMTPassword)
		v.Body(body, "generateRandomPassword").Default(false).
			IsBoolean("Generate random AMT password must be a boolean true or false").
			Custom(func(val any) string {
				if isTrue(val) {
					if has(body, "amtPassword") {
						return msgRandomAMTBoth
					}
				} else if !has(body, "amtPassword") {
					return msgRandomAMTNone
				}
				return ""
			})
		v.Body(body, "mebxPassword").OptionalNullable().Redact().Matches(IsStrongPassword, msgMEBxPassword)
		v.Body(body, "generateRandomMEBxPassword").Default(false).
			IsBoolean("Generate random MEBx password must be a boolean true or false").
			Custom(func(val any) string {
				if !isACM {
					return ""
				}
				if isTrue(val) {
					if has(body, "mebxPassword") {
						return msgRandomMEBxBoth
					}
				} else if !has(body, "mebxPassword") {
					return msgRandomMEBxNone
				}
				return ""
			})
	}
	v.Body(body, "tlsMode").OptionalNullable().IsInt(valid.Range(1, 4), msgTLSMode)
	v.Body(body, "tlsSigningAuthority").OptionalNullable().
		IsIn([]any{"SelfSigned", "MicrosoftCA"}, "TLS Signing Authority must be one of SelfSigned,MicrosoftCA")
	v.Body(body, "ciraConfigName").OptionalNullable().Custom(func(any) string {
		if has(body, "tlsMode") {
			return "CIRA cannot be configured if TLS is enabled"
		}
		return ""
	})
	v.Body(body, "tags").OptionalNullable().IsArray("").Custom(tagsCheck)
	if update {
		v.Body(body, "dhcpEnabled").Optional().IsBoolean("DHCP enabled must be a boolean")
	} else {
		v.Body(body, "dhcpEnabled").NotEmpty("").IsBoolean("DHCP enabled must be a boolean")
	}
	v.Body(body, "ipSyncEnabled").OptionalNullable().IsBoolean("ipSyncEnabled must be a boolean")
	v.Body(body, "localWifiSyncEnabled").OptionalNullable().IsBoolean("localWifiSyncEnabled must be a boolean")
	v.Body(body, "uefiWifiSyncEnabled").OptionalNullable().IsBoolean("uefiWifiSyncEnabled must be a boolean")
	v.Body(body, "wifiConfigs").OptionalNullable().IsArray("").Custom(func(val any) string {
		arr, ok := val.([]any)
		if !ok {
			return ""
		}
		if len(arr) > 0 {
			if update && !has(body, "dhcpEnabled") {
				return "DHCP enabled should be true"
			}
			if !toBool(body["dhcpEnabled"]) {
				return "Wifi supports only DHCP in AMT"
			}
		}
		if len(arr) > 8 {
			return "A maximum of 8 wifi profiles can be stored at a time."
		}
		names, _, msg := links(val, "profileName", "wifi")
		if msg != "" {
			return msg
		}
		if missing := refs.missingWifi(names); len(missing) > 0 {
			return fmt.Sprintf("wifi configs %s does not exists in db", strings.Join(missing, ","))
		}
		return ""
	})
	v.Body(body, "proxyConfigs").OptionalNullable().IsArray("").Custom(func(val any) string {
		arr, ok := val.([]any)
		if !ok {
			return ""
		}
		if len(arr) > 15 {
			return "A maximum of 15 proxy profiles can be stored at a time."
		}
		names, _, msg := links(val, "name", "proxy")
		if msg != "" {
			return msg
		}
		if missing := refs.missingProxies(names); len(missing) > 0 {
			return fmt.Sprintf("proxy configs %s does not exists in db", strings.Join(missing, ","))
		}
		return ""
	})
	v.Body(body, "ieee8021xProfileName").OptionalNullable().Custom(func(val any) string {
		name := valid.String(val)
		cfg := refs.ieee8021x(name)
		switch {
		case cfg == nil && update:
			return fmt.Sprintf("IEEEProfile config %s does not exists in db", name)
		case cfg == nil:
			return fmt.Sprintf("Ieee8021x profile %s does not exist in db", name)
		case !cfg.WiredInterface:
			return fmt.Sprintf("Ieee8021x profile %s is for wireless interfaces", name)
		}
		return ""
	})
	v.Body(body, "userConsent").OptionalNullable().IsIn([]any{"None", "All", "KVM"}, msgUserConsent).
		Custom(func(val any) string {
			if activation == activationCCM && val != "All" {
				return msgCCMConsent
			}
			return ""
		})
	v.Body(body, "iderEnabled").OptionalNullable().IsBoolean("IDER enabled must be a boolean")
	v.Body(body, "kvmEnabled").OptionalNullable().IsBoolean("KVM enabled must be a boolean")
	v.Body(body, "solEnabled").OptionalNullable().IsBoolean("Serial Over Lan (sol) enabled must be a boolean")
	// amtd extensions (useracl.go)
	v.Body(body, "powerPolicy").OptionalNullable().Custom(func(val any) string {
		if !validPowerPolicy(val) {
			return msgPowerPolicy
		}
		return ""
	})
	v.Body(body, "userAcls").OptionalNullable().Redact().Custom(func(val any) string {
		// on update a known user may keep its stored password (checked
		// against the stored profile in mergeExtensions)
		_, msg := parseUserACLs(val, func(string) bool { return !update })
		return msg
	})
	if update {
		v.Body(body, "version").NotEmpty(msgVersion)
	}
	scalarCheck(v, body, "powerPolicy", "profileName", "activation", "amtPassword", "generateRandomPassword", "mebxPassword",
		"generateRandomMEBxPassword", "tlsMode", "tlsSigningAuthority", "ciraConfigName", "dhcpEnabled", "ipSyncEnabled",
		"localWifiSyncEnabled", "uefiWifiSyncEnabled", "ieee8021xProfileName", "userConsent", "iderEnabled", "kvmEnabled",
		"solEnabled", "version")
	return v.Errors(), refs.err
}

func strList(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, el := range arr {
		out = append(out, valid.String(el))
	}
	return out
}

func wifiLinks(v any) []store.ProfileWifi {
	names, prios, _ := links(v, "profileName", "wifi")
	out := make([]store.ProfileWifi, len(names))
	for i := range names {
		out[i] = store.ProfileWifi{Name: names[i], Priority: prios[i]}
	}
	return out
}

func proxyLinks(v any) []store.ProfileProxy {
	names, prios, _ := links(v, "name", "proxy")
	out := make([]store.ProfileProxy, len(names))
	for i := range names {
		out[i] = store.ProfileProxy{Name: names[i], Priority: prios[i]}
	}
	return out
}

func optBool(body map[string]any, key string) *bool {
	if !has(body, key) {
		return nil
	}
	return boolPtr(toBool(body[key]))
}

// applyTLSDefaults: no TLS mode → no signing authority; TLS without an
// authority → SelfSigned.
func applyTLSDefaults(p *store.Profile) {
	switch {
	case p.TLSMode == nil:
		p.TLSSigningAuthority = nil
	case p.TLSSigningAuthority == nil:
		p.TLSSigningAuthority = strPtr("SelfSigned")
	}
}

// profileSecret is the secret entry of a profile: its static passwords and
// its AMT users' passwords (fields of acls).
func profileSecret(amt, mebx string, acls ...map[string]string) map[string]string {
	data := map[string]string{}
	for _, m := range acls {
		for k, v := range m {
			if v != "" {
				data[k] = v
			}
		}
	}
	if amt != "" {
		data[fieldAMTPassword] = amt
	}
	if mebx != "" {
		data[fieldMEBxPassword] = mebx
	}
	return data
}

func (h *handlers) listProfiles(w http.ResponseWriter, r *http.Request) {
	listObjects(w, r, h.st.ListProfiles, h.st.CountProfiles, profileOut)
}

func (h *handlers) getProfile(w http.ResponseWriter, r *http.Request) {
	getObject(w, r, "profileName", typeAMT, h.st.GetProfile, profileOut)
}

func (h *handlers) createProfile(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	errs, err := h.validateProfile(ctx, body, false)
	if err != nil {
		opFailed(w, r, str(body, "profileName"), err)
		return
	}
	if len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	tenant := api.Tenant(ctx)
	p := &store.Profile{
		TenantID:                   tenant,
		Name:                       str(body, "profileName"),
		Activation:                 str(body, "activation"),
		GenerateRandomPassword:     toBool(body["generateRandomPassword"]),
		GenerateRandomMEBxPassword: toBool(body["generateRandomMEBxPassword"]),
		Tags:                       strList(body["tags"]),
		DHCPEnabled:                toBool(body["dhcpEnabled"]),
		IPSyncEnabled:              optBool(body, "ipSyncEnabled"),
		LocalWifiSyncEnabled:       optBool(body, "localWifiSyncEnabled"),
		UEFIWifiSyncEnabled:        optBool(body, "uefiWifiSyncEnabled"),
		IDEREnabled:                has(body, "iderEnabled") && toBool(body["iderEnabled"]),
		KVMEnabled:                 !has(body, "kvmEnabled") || toBool(body["kvmEnabled"]),
		SOLEnabled:                 has(body, "solEnabled") && toBool(body["solEnabled"]),
		WifiConfigs:                wifiLinks(body["wifiConfigs"]),
		ProxyConfigs:               proxyLinks(body["proxyConfigs"]),
	}
	if has(body, "ciraConfigName") {
		p.CIRAConfigName = strPtr(str(body, "ciraConfigName"))
	}
	if has(body, "ieee8021xProfileName") {
		p.IEEE8021xProfileName = strPtr(str(body, "ieee8021xProfileName"))
	}
	if has(body, "tlsMode") {
		p.TLSMode = intPtr(toInt(body["tlsMode"]))
	}
	if has(body, "tlsSigningAuthority") {
		p.TLSSigningAuthority = strPtr(str(body, "tlsSigningAuthority"))
	}
	applyTLSDefaults(p)
	if has(body, "powerPolicy") {
		p.PowerPolicy = strings.TrimSpace(str(body, "powerPolicy"))
	}
	acls, _ := parseUserACLs(body["userAcls"], func(string) bool { return true }) // validated above
	p.UserACLs = aclsOf(acls)
	var amtPw, mebxPw string
	if !p.GenerateRandomPassword {
		amtPw = str(body, "amtPassword")
	}
	if p.Activation == activationCCM {
		p.GenerateRandomMEBxPassword = false
	} else if !p.GenerateRandomMEBxPassword {
		mebxPw = str(body, "mebxPassword")
	}
	switch {
	case has(body, "userConsent"):
		p.UserConsent = str(body, "userConsent")
	case p.Activation == activationCCM:
		p.UserConsent = "All"
	default:
		p.UserConsent = "KVM"
	}
	err = h.createWithSecret(ctx, tenant, kindProfile, profileSecret(amtPw, mebxPw, aclPasswords(acls, nil)), func(id string) error {
		p.SecretID = id
		return h.st.CreateProfile(ctx, p)
	})
	var ref *store.RefError
	switch {
	case errors.Is(err, store.ErrDuplicate):
		badRequest(w, r, "Unique key violation", "AMT profile "+p.Name+" already exists")
	case errors.As(err, &ref) && errors.Is(err, store.ErrMissingReference):
		badRequest(w, r, "Foreign key constraint violation", "Referenced constraint "+ref.Name+" doesn't exist")
	case err != nil:
		opFailed(w, r, p.Name, err)
	default:
		logChange(r, "created AMT profile", kindProfile, p.Name)
		api.WriteJSON(w, r, http.StatusCreated, profileOut(p))
	}
}

func (h *handlers) updateProfile(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	name := str(body, "profileName")
	errs, err := h.validateProfile(ctx, body, true)
	if err != nil {
		opFailed(w, r, name, err)
		return
	}
	if len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	tenant := api.Tenant(ctx)
	cur, err := h.st.GetProfile(ctx, tenant, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeAMT, name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	claimed, ifMatch := requestVersion(r, body)
	if !versionMatches(claimed, cur.Version) {
		conflict(w, r, ifMatch, cur.Version, profileOut(cur))
		return
	}
	old, err := h.readSecret(ctx, tenant, kindProfile, cur.SecretID)
	if err != nil {
		opFailed(w, r, name, err)
		return
	}
	next, amtPw, mebxPw, msg := mergeProfile(cur, body, old)
	var aclPws map[string]string
	if msg == "" {
		aclPws, msg = mergeExtensions(next, body, old)
	}
	if msg != "" {
		badRequest(w, r, "Error", msg)
		return
	}
	data := profileSecret(amtPw, mebxPw, aclPws)
	err = h.updateWithSecret(ctx, tenant, kindProfile, cur.SecretID, !sameSecret(data, old), data, func(id string) error {
		next.SecretID = id
		return h.st.UpdateProfile(ctx, next)
	})
	var ref *store.RefError
	if errors.As(err, &ref) && errors.Is(err, store.ErrMissingReference) {
		badRequest(w, r, "Foreign key constraint violation", "Referenced config "+ref.Name+" doesn't exist")
		return
	}
	if h.updateFailed(w, r, err, ifMatch, typeAMT, name, func() (any, int64, error) {
		p, err := h.st.GetProfile(ctx, tenant, name)
		if err != nil {
			return nil, 0, err
		}
		return profileOut(p), p.Version, nil
	}) {
		return
	}
	logChange(r, "updated AMT profile", kindProfile, next.Name)
	api.WriteJSON(w, r, http.StatusOK, profileOut(next))
}

// mergeProfile applies an update body to the stored profile (admin-api.md
// §5 update semantics). It returns the new profile, the static passwords to
// keep, or a message for a 400 {"error":"Error"} answer.
func mergeProfile(cur *store.Profile, body map[string]any, old map[string]string) (next *store.Profile, amtPw, mebxPw, msg string) {
	n := *cur
	next = &n
	next.Tags = append([]string(nil), cur.Tags...)
	next.WifiConfigs = append([]store.ProfileWifi(nil), cur.WifiConfigs...)
	next.ProxyConfigs = append([]store.ProfileProxy(nil), cur.ProxyConfigs...)

	if has(body, "activation") {
		next.Activation = str(body, "activation")
	}
	// AMT password: random when asked, the given one, else as before.
	switch {
	case toBool(body["generateRandomPassword"]):
		next.GenerateRandomPassword = true
	case has(body, "amtPassword"):
		next.GenerateRandomPassword = false
		amtPw = str(body, "amtPassword")
	default:
		if !next.GenerateRandomPassword {
			amtPw = old[fieldAMTPassword]
		}
	}
	switch {
	case toBool(body["generateRandomMEBxPassword"]):
		next.GenerateRandomMEBxPassword = true
	case has(body, "mebxPassword"):
		next.GenerateRandomMEBxPassword = false
		mebxPw = str(body, "mebxPassword")
	default:
		if !next.GenerateRandomMEBxPassword {
			mebxPw = old[fieldMEBxPassword]
		}
	}
	if next.Activation == activationCCM {
		next.GenerateRandomMEBxPassword = false
		mebxPw = ""
	}
	if next.Activation == activationACM && !next.GenerateRandomMEBxPassword && mebxPw == "" {
		return nil, "", "", msgMEBxForACMLower
	}
	if !next.GenerateRandomPassword && amtPw == "" {
		return nil, "", "", msgEitherAMT
	}

	// Replaced by the request value (omitting clears), as RPS does.
	next.CIRAConfigName, next.TLSMode, next.IEEE8021xProfileName = nil, nil, nil
	if has(body, "ciraConfigName") {
		next.CIRAConfigName = strPtr(str(body, "ciraConfigName"))
	}
	if has(body, "tlsMode") {
		next.TLSMode = intPtr(toInt(body["tlsMode"]))
	}
	if has(body, "ieee8021xProfileName") {
		next.IEEE8021xProfileName = strPtr(str(body, "ieee8021xProfileName"))
	}
	if has(body, "tlsSigningAuthority") {
		next.TLSSigningAuthority = strPtr(str(body, "tlsSigningAuthority"))
	}
	applyTLSDefaults(next)

	if has(body, "tags") {
		next.Tags = strList(body["tags"])
	}
	if has(body, "dhcpEnabled") {
		next.DHCPEnabled = toBool(body["dhcpEnabled"])
	}
	if has(body, "ipSyncEnabled") {
		next.IPSyncEnabled = optBool(body, "ipSyncEnabled")
	}
	if has(body, "localWifiSyncEnabled") {
		next.LocalWifiSyncEnabled = optBool(body, "localWifiSyncEnabled")
	}
	if has(body, "uefiWifiSyncEnabled") {
		next.UEFIWifiSyncEnabled = optBool(body, "uefiWifiSyncEnabled")
	}
	if has(body, "userConsent") {
		next.UserConsent = str(body, "userConsent")
	}
	switch {
	case next.Activation == activationCCM:
		next.UserConsent = "All" // CCM always requires consent
	case next.UserConsent == "":
		next.UserConsent = "KVM"
	}
	if has(body, "iderEnabled") {
		next.IDEREnabled = toBool(body["iderEnabled"])
	}
	if has(body, "kvmEnabled") {
		next.KVMEnabled = toBool(body["kvmEnabled"])
	}
	if has(body, "solEnabled") {
		next.SOLEnabled = toBool(body["solEnabled"])
	}
	if has(body, "wifiConfigs") {
		next.WifiConfigs = wifiLinks(body["wifiConfigs"])
	}
	if !next.DHCPEnabled {
		next.WifiConfigs = nil // Wi-Fi needs DHCP in AMT
	}
	if has(body, "proxyConfigs") {
		next.ProxyConfigs = proxyLinks(body["proxyConfigs"])
	}
	return next, amtPw, mebxPw, ""
}

func (h *handlers) deleteProfile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := r.PathValue("profileName")
	cur, err := h.st.GetProfile(ctx, tenant, name)
	if err == nil {
		err = h.st.DeleteProfile(ctx, tenant, name)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeAMT, name)
	case err != nil:
		opFailed(w, r, name, err)
	default:
		h.dropSecret(ctx, tenant, kindProfile, cur.SecretID)
		logChange(r, "deleted AMT profile", kindProfile, cur.Name)
		api.NoContent(w)
	}
}
