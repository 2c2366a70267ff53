package rps

import (
	"errors"
	"net/http"
	"regexp"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/store"
)

// proxyJSON is a proxy config on the wire (admin-api.md §8): no version.
type proxyJSON struct {
	Name             string `json:"name"`
	Address          string `json:"address"`
	InfoFormat       int    `json:"infoFormat"`
	Port             int    `json:"port"`
	NetworkDNSSuffix string `json:"networkDnsSuffix"`
	TenantID         string `json:"tenantId"`
}

func proxyOut(c *store.ProxyConfig) proxyJSON {
	return proxyJSON{Name: c.Name, Address: c.Address, InfoFormat: c.InfoFormat, Port: c.Port,
		NetworkDNSSuffix: c.NetworkDNSSuffix, TenantID: c.TenantID}
}

// reProxyFQDN is RPS's proxy FQDN pattern without its redundant leading
// look-ahead (?!:\/\/).
var reProxyFQDN = regexp.MustCompile(`^([a-zA-Z0-9-_]+\.)*[a-zA-Z0-9][a-zA-Z0-9-_]+\.[a-zA-Z]{2,11}$`)

// infoFormat derives the AMT address format: 4 IPv6, 3 IPv4, 201 FQDN.
func infoFormat(addr string) int {
	switch {
	case valid.IsIPv6(addr):
		return 4
	case valid.IsIPv4(addr):
		return 3
	}
	return 201
}

func validateProxy(body map[string]any, update bool) valid.Errors {
	v := valid.New()
	if !update {
		v.Body(body, "name").NotEmpty("Proxy profile name is required").
			Matches(reAlnum.MatchString, "Proxy profile name should be alphanumeric").
			IsLength(0, 32, "Proxy profile name maximum length is 32")
	}
	v.Body(body, "address").NotEmpty("Server address is required").
		Matches(func(s string) bool { return valid.IsIPv4(s) || valid.IsIPv6(s) || reProxyFQDN.MatchString(s) },
			"Server address must be a valid IPv4, IPv6, or FQDN")
	v.Body(body, "port").Exists("").IsPort("Port value should range between 1 and 65535")
	v.Body(body, "networkDnsSuffix").NotEmpty("Domain name of the network is required").
		Matches(func(s string) bool { return valid.IsFQDN(s, valid.DefaultFQDN) },
			"Domain name of the network should contain alphanumeric and hyphens in the middle").
		IsLength(0, 192, "Domain name of the network maximum length is 192")
	scalarCheck(v, body, "name", "address", "port", "networkDnsSuffix")
	return v.Errors()
}

func (h *handlers) listProxies(w http.ResponseWriter, r *http.Request) {
	listObjects(w, r, h.st.ListProxyConfigs, h.st.CountProxyConfigs, proxyOut)
}

func (h *handlers) getProxy(w http.ResponseWriter, r *http.Request) {
	getObject(w, r, "name", typeProxy, h.st.GetProxyConfig, proxyOut)
}

func (h *handlers) createProxy(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validateProxy(body, false); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	ctx := r.Context()
	c := &store.ProxyConfig{
		TenantID:         api.Tenant(ctx),
		Name:             str(body, "name"),
		Address:          str(body, "address"),
		Port:             toInt(body["port"]),
		NetworkDNSSuffix: str(body, "networkDnsSuffix"),
	}
	c.InfoFormat = infoFormat(c.Address)
	err := h.st.CreateProxyConfig(ctx, c)
	switch {
	case errors.Is(err, store.ErrDuplicate):
		badRequest(w, r, "Unique key violation", "Proxy profile "+c.Name+" already exists")
	case err != nil:
		opFailed(w, r, c.Name, err)
	default:
		logChange(r, "created proxy config", "proxyconfigs", c.Name)
		api.WriteJSON(w, r, http.StatusCreated, proxyOut(c))
	}
}

func (h *handlers) updateProxy(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	if errs := validateProxy(body, true); len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := str(body, "name")
	cur, err := h.st.GetProxyConfig(ctx, tenant, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeProxy, name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	next := *cur
	next.Address = str(body, "address")
	next.InfoFormat = infoFormat(next.Address)
	next.Port = toInt(body["port"])
	next.NetworkDNSSuffix = str(body, "networkDnsSuffix")
	err = h.st.UpdateProxyConfig(ctx, &next)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeProxy, name)
	case errors.Is(err, store.ErrDuplicate):
		badRequest(w, r, "Unique key violation", "Proxy profile "+name+" already exists")
	case err != nil:
		opFailed(w, r, name, err)
	default:
		logChange(r, "updated proxy config", "proxyconfigs", next.Name)
		api.WriteJSON(w, r, http.StatusOK, proxyOut(&next))
	}
}

func (h *handlers) deleteProxy(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("name")
	err := h.st.DeleteProxyConfig(ctx, api.Tenant(ctx), name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeProxy, name)
	case errors.Is(err, store.ErrInUse):
		badRequest(w, r, "Foreign key violation", "Proxy profile: "+name+" is associated with an AMT Profile.")
	case err != nil:
		opFailed(w, r, name, err)
	default:
		logChange(r, "deleted proxy config", "proxyconfigs", name)
		api.NoContent(w)
	}
}
