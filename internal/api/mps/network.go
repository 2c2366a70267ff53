package mps

import (
	"errors"
	"net/http"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/ethernetport"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/wifiportconfiguration"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/models"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/wifi"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/api/valid"
)

const (
	netExc      = "Exception during AMT Network Settings request"
	wiredPort   = "Intel(r) AMT Ethernet Port Settings 0"
	wirelessPrt = "Intel(r) AMT Ethernet Port Settings 1"
	wifiPrefix  = "Intel(r) AMT:WiFi Endpoint Settings "
)

// Enumeration names of the network answers (they mirror Console's).
var (
	linkPolicyNames     = map[int64]string{1: "S0 AC", 14: "Sx AC", 16: "S0 DC", 224: "Sx DC"}
	connectionTypeNames = map[int64]string{0: "Integrated LAN NIC", 1: "Discrete LAN NIC", 2: "LAN via Thunderbolt Dock", 3: "Wireless LAN"}
	nicMediumNames      = map[int64]string{0: "SMBUS", 1: "PCIe"}
	linkOwnerNames      = map[int64]string{1: "Management Engine", 2: "Host"}
	protectionNames     = map[int64]string{0: "Override", 1: "None", 2: "Passive", 3: "High"}
	ieee8021xEnabled    = map[int64]string{2: "EnabledWithCertificates", 3: "Disabled", 6: "EnabledWithoutCertificates"}
	authMethodNames     = map[int64]string{1: "Other", 2: "OpenSystem", 3: "SharedKey", 4: "WPAPSK", 5: "WPAIEEE8021x", 6: "WPA2PSK", 7: "WPA2IEEE8021x", 32768: "WPA3SAE", 32769: "WPA3OWE"}
	encryptionNames     = map[int64]string{1: "Other", 2: "WEP", 3: "TKIP", 4: "CCMP", 5: "None"}
	bssTypeNames        = map[int64]string{0: "Unknown", 2: "Independent", 3: "Infrastructure"}
	wifiStateNames      = map[int64]string{3: "WifiDisabled", 32768: "WifiEnabledS0", 32769: "WifiEnabledS0SxAC"}
)

func nameOf(m map[int64]string, v any) any {
	n, ok := xmljs.Int(v)
	if !ok {
		return nil
	}
	if s, ok := m[n]; ok {
		return s
	}
	return nil
}

func valueOf(m map[int64]string, name string) (int64, bool) {
	for k, v := range m {
		if strings.EqualFold(v, name) {
			return k, true
		}
	}
	return 0, false
}

// orDefault returns v, or def when v is absent.
func orDefault(v, def any) any {
	if v == nil {
		return def
	}
	return v
}

// portInfo maps an AMT_EthernetPortSettings instance to MPS's
// NetworkInfo fields.
func portInfo(p any, wireless bool) *xmljs.Object {
	g := func(k string) any { return xmljs.Path(p, k) }
	policies := []any{}
	for _, lp := range xmljs.List(g("LinkPolicy")) {
		if s := nameOf(linkPolicyNames, lp); s != nil {
			policies = append(policies, s)
		}
	}
	o := xmljs.NewObject().
		Set("elementName", orDefault(g("ElementName"), "")).
		Set("instanceID", orDefault(g("InstanceID"), "")).
		Set("vlanTag", orDefault(g("VLANTag"), 0)).
		Set("sharedMAC", xmljs.Bool(g("SharedMAC"))).
		Set("macAddress", orDefault(g("MACAddress"), "")).
		Set("linkIsUp", xmljs.Bool(g("LinkIsUp"))).
		Set("linkPolicy", policies).
		Set("sharedStaticIP", xmljs.Bool(g("SharedStaticIp"))).
		Set("sharedDynamicIP", xmljs.Bool(g("SharedDynamicIP"))).
		Set("ipSyncEnabled", xmljs.Bool(g("IpSyncEnabled"))).
		Set("dhcpEnabled", xmljs.Bool(g("DHCPEnabled"))).
		Set("ipAddress", orDefault(g("IPAddress"), "")).
		Set("subnetMask", orDefault(g("SubnetMask"), "")).
		Set("defaultGateway", orDefault(g("DefaultGateway"), "")).
		Set("primaryDNS", orDefault(g("PrimaryDNS"), "")).
		Set("secondaryDNS", orDefault(g("SecondaryDNS"), ""))
	if n, _ := xmljs.Int(g("ConsoleTcpMaxRetransmissions")); n != 0 {
		o.Set("consoleTCPMaxRetransmissions", n)
	}
	o.Set("physicalConnectionType", nameOf(connectionTypeNames, g("PhysicalConnectionType"))).
		Set("physicalNICMedium", nameOf(nicMediumNames, g("PhysicalNicMedium")))
	if wireless {
		o.Set("linkPreference", nameOf(linkOwnerNames, g("LinkPreference"))).
			Set("linkControl", nameOf(linkOwnerNames, g("LinkControl"))).
			Set("wlanLinkProtectionLevel", nameOf(protectionNames, g("WLANLinkProtectionLevel")))
	}
	return o
}

// ports returns the wired and wireless AMT_EthernetPortSettings instances.
func (c *devCall) ports() (wired, wireless any, err error) {
	env, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.AMT.EthernetPortSettings.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.AMT.EthernetPortSettings.Pull(ec) })
	if err != nil {
		return nil, nil, err
	}
	for _, p := range itemsOf(env, "AMT_EthernetPortSettings") {
		id := xmljs.Text(xmljs.Path(p, "InstanceID"))
		switch {
		case strings.Contains(id, wiredPort):
			wired = p
		case strings.Contains(id, wirelessPrt):
			wireless = p
		}
	}
	return wired, wireless, nil
}

// tolerateFault turns a WS-MAN fault (class absent on this device) into
// "nothing"; other errors stay.
func tolerateFault(c *devCall, what string, err error) error {
	var fault *amt.FaultError
	if errors.As(err, &fault) {
		logErr(c.r, what+" not available", err)
		return nil
	}
	return err
}

func (c *devCall) wiredInfo(p any) (*xmljs.Object, error) {
	o := portInfo(p, false)
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.IEEE8021xSettings.Get() })
	if err != nil {
		return o, tolerateFault(c, "IPS_IEEE8021xSettings", err)
	}
	s := xmljs.Path(env, "Body", "IPS_IEEE8021xSettings")
	o.Set("ieee8021x", xmljs.NewObject().
		Set("enabled", nameOf(ieee8021xEnabled, xmljs.Path(s, "Enabled"))).
		Set("availableInS0", xmljs.Bool(xmljs.Path(s, "AvailableInS0"))).
		Set("pxeTimeout", orDefault(xmljs.Path(s, "PxeTimeout"), 0)))
	return o, nil
}

func (c *devCall) wirelessInfo(p any) (*xmljs.Object, error) {
	o := portInfo(p, true)
	networks := []any{}
	env, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.WiFiEndpointSettings.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.WiFiEndpointSettings.Pull(ec) })
	if err != nil {
		if err = tolerateFault(c, "CIM_WiFiEndpointSettings", err); err != nil {
			return nil, err
		}
	}
	for _, it := range itemsOf(env, "CIM_WiFiEndpointSettings") {
		networks = append(networks, xmljs.NewObject().
			Set("elementName", orDefault(xmljs.Path(it, "ElementName"), "")).
			Set("ssid", orDefault(xmljs.Path(it, "SSID"), "")).
			Set("authenticationMethod", nameOf(authMethodNames, xmljs.Path(it, "AuthenticationMethod"))).
			Set("encryptionMethod", nameOf(encryptionNames, xmljs.Path(it, "EncryptionMethod"))).
			Set("priority", orDefault(xmljs.Path(it, "Priority"), 0)).
			Set("bsstype", nameOf(bssTypeNames, xmljs.Path(it, "BSSType"))))
	}
	o.Set("wifiNetworks", networks)
	settings := []any{}
	env, err = c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.IEEE8021xSettings.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.IEEE8021xSettings.Pull(ec) })
	if err != nil {
		if err = tolerateFault(c, "CIM_IEEE8021xSettings", err); err != nil {
			return nil, err
		}
	}
	for _, it := range itemsOf(env, "CIM_IEEE8021xSettings") {
		settings = append(settings, xmljs.NewObject().
			Set("authenticationProtocol", orDefault(xmljs.Path(it, "AuthenticationProtocol"), 0)).
			Set("roamingIdentity", orDefault(xmljs.Path(it, "RoamingIdentity"), "")).
			Set("serverCertificateName", orDefault(xmljs.Path(it, "ServerCertificateName"), "")).
			Set("serverCertificateNameComparison", orDefault(xmljs.Path(it, "ServerCertificateNameComparison"), 0)).
			Set("username", orDefault(xmljs.Path(it, "Username"), "")).
			Set("domain", orDefault(xmljs.Path(it, "Domain"), "")))
	}
	o.Set("ieee8021xSettings", settings)
	env, err = c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.WiFiPortConfigurationService.Get() })
	if err != nil {
		return o, tolerateFault(c, "AMT_WiFiPortConfigurationService", err)
	}
	s := xmljs.Path(env, "Body", "AMT_WiFiPortConfigurationService")
	g := func(k string) any { return xmljs.Path(s, k) }
	o.Set("wifiPortConfigService", xmljs.NewObject().
		Set("requestedState", orDefault(g("RequestedState"), 0)).
		Set("enabledState", orDefault(g("EnabledState"), 0)).
		Set("healthState", orDefault(g("HealthState"), 0)).
		Set("elementName", orDefault(g("ElementName"), "")).
		Set("systemCreationClassName", orDefault(g("SystemCreationClassName"), "")).
		Set("systemName", orDefault(g("SystemName"), "")).
		Set("creationClassName", orDefault(g("CreationClassName"), "")).
		Set("name", orDefault(g("Name"), "")).
		Set("localProfileSynchronizationEnabled", orDefault(g("localProfileSynchronizationEnabled"), 0)).
		Set("lastConnectedSsidUnderMeControl", orDefault(g("LastConnectedSsidUnderMeControl"), "")).
		Set("noHostCsmeSoftwarePolicy", orDefault(g("NoHostCsmeSoftwarePolicy"), 0)).
		Set("uefiWiFiProfileShareEnabled", xmljs.Bool(g("UEFIWiFiProfileShareEnabled"))))
	return o, nil
}

func (h *handlers) networkSettings(w http.ResponseWriter, r *http.Request) {
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	wired, wireless, err := c.ports()
	if err != nil {
		c.fail(err, netExc)
		return
	}
	if wired == nil && wireless == nil {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Network Settings not found")
		return
	}
	out := xmljs.NewObject().Set("wired", nil).Set("wireless", nil)
	if wired != nil {
		o, err := c.wiredInfo(wired)
		if err != nil {
			c.fail(err, netExc)
			return
		}
		out.Set("wired", o)
	}
	if wireless != nil {
		o, err := c.wirelessInfo(wireless)
		if err != nil {
			c.fail(err, netExc)
			return
		}
		out.Set("wireless", o)
	}
	c.json(out)
}

func (h *handlers) getWired(w http.ResponseWriter, r *http.Request) {
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	wired, _, err := c.ports()
	if err != nil {
		c.fail(err, netExc)
		return
	}
	if wired == nil {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Wired Network Settings not found")
		return
	}
	o, err := c.wiredInfo(wired)
	if err != nil {
		c.fail(err, netExc)
		return
	}
	c.json(o)
}

func (h *handlers) patchWired(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "dhcpEnabled").IsBoolean("dhcpEnabled must be a boolean")
	v.Body(body, "ipSyncEnabled").Optional().IsBoolean("ipSyncEnabled must be a boolean")
	for _, f := range []string{"ipAddress", "subnetMask", "defaultGateway", "primaryDNS", "secondaryDNS"} {
		ch := v.Body(body, f)
		if valid.String(ch.Value()) == "" || ch.Value() == false || ch.Value() == float64(0) {
			continue // optional({checkFalsy: true})
		}
		ch.Matches(valid.IsIPv4, f+" must be a valid IPv4 address")
	}
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	if _, present := body["ieee8021x"]; present {
		writeErr(w, r, http.StatusNotImplemented, msgNotImplemented, "Wired 802.1X configuration is not yet supported")
		return
	}
	wired, _, err := c.ports()
	if err != nil {
		c.fail(err, netExc)
		return
	}
	if wired == nil {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Wired Network Settings not found")
		return
	}
	g := func(k string) any { return xmljs.Path(wired, k) }
	req := ethernetport.SettingsRequest{
		ElementName: xmljs.Text(g("ElementName")), InstanceID: xmljs.Text(g("InstanceID")),
		SharedMAC: xmljs.Bool(g("SharedMAC")), LinkIsUp: xmljs.Bool(g("LinkIsUp")),
		SharedStaticIp: xmljs.Bool(g("SharedStaticIp")), IpSyncEnabled: xmljs.Bool(g("IpSyncEnabled")),
		DHCPEnabled: toBoolean(body["dhcpEnabled"]),
	}
	if n, ok := xmljs.Int(g("VLANTag")); ok {
		req.VLANTag = int(n)
	}
	for _, lp := range xmljs.List(g("LinkPolicy")) {
		if n, ok := xmljs.Int(lp); ok {
			req.LinkPolicy = append(req.LinkPolicy, ethernetport.LinkPolicy(n))
		}
	}
	if v, ok := body["ipSyncEnabled"]; ok {
		req.IpSyncEnabled = toBoolean(v)
	}
	if !req.DHCPEnabled {
		str := func(f, cur string) string {
			if s, ok := body[f].(string); ok && s != "" {
				return s
			}
			return cur
		}
		req.IPAddress = str("ipAddress", xmljs.Text(g("IPAddress")))
		req.SubnetMask = str("subnetMask", xmljs.Text(g("SubnetMask")))
		req.DefaultGateway = str("defaultGateway", xmljs.Text(g("DefaultGateway")))
		req.PrimaryDNS = str("primaryDNS", xmljs.Text(g("PrimaryDNS")))
		req.SecondaryDNS = str("secondaryDNS", xmljs.Text(g("SecondaryDNS")))
		req.SharedStaticIp = true
	}
	if _, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.AMT.EthernetPortSettings.Put(xmlText(req.InstanceID), req)
	}); err != nil {
		var fault *amt.FaultError
		if errors.As(err, &fault) {
			logErr(r, "wired settings refused", err)
			badRequest(w, r, "Wired Network Settings update failed")
			return
		}
		c.fail(err, netExc)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) linkPreference(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "linkPreference").IsIn([]any{1, 2}, "linkPreference must be 1 (ME) or 2 (HOST)")
	v.Body(body, "timeout").IsInt(valid.IntOpts{Min: ptr(0)}, "timeout must be a non-negative integer")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	pref, timeout := actionOf(body["linkPreference"]), actionOf(body["timeout"])
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	_, wireless, err := c.ports()
	if err != nil {
		c.fail(err, netExc)
		return
	}
	if wireless == nil {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "No WiFi port found on the device for guid : "+c.guid+".")
		return
	}
	id := xmljs.Text(xmljs.Path(wireless, "InstanceID"))
	if q := r.URL.Query().Get("instanceID"); q != "" {
		id = q
	}
	env, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.AMT.EthernetPortSettings.SetLinkPreference(uint32(pref), uint32(timeout), xmlText(id))
	})
	if err != nil {
		c.fail(err, netExc)
		return
	}
	rv, _ := xmljs.Int(xmljs.Path(env, "Body", "SetLinkPreference_OUTPUT", "ReturnValue"))
	c.json(xmljs.NewObject().Set("ReturnValue", rv).Set("ReturnValueStr", statusName(rv)))
}

// ---- wireless state ----

func (c *devCall) wifiPort() (any, error) {
	env, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.WiFiPort.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.WiFiPort.Pull(ec) })
	if err != nil {
		return nil, err
	}
	if l := itemsOf(env, "CIM_WiFiPort"); len(l) > 0 {
		return l[0], nil
	}
	return nil, nil
}

func (h *handlers) getWirelessState(w http.ResponseWriter, r *http.Request) {
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	p, err := c.wifiPort()
	if err != nil {
		if err = tolerateFault(c, "CIM_WiFiPort", err); err != nil {
			c.fail(err, netExc)
			return
		}
	}
	state := nameOf(wifiStateNames, xmljs.Path(p, "EnabledState"))
	if p == nil || state == nil {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Wireless State not found")
		return
	}
	c.json(map[string]any{"state": state})
}

func (h *handlers) setWirelessState(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	ch := v.Body(body, "state").NotEmpty("state is required")
	want, known := valueOf(wifiStateNames, valid.String(body["state"]))
	if ch.Present() && valid.String(body["state"]) != "" {
		ch.Check(known, "state must be one of WifiDisabled, WifiEnabledS0, WifiEnabledS0SxAC")
	}
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.CIM.WiFiPort.RequestStateChange(int(want)) })
	if err != nil {
		c.fail(err, netExc)
		return
	}
	if rv, _ := xmljs.Int(xmljs.Path(env, "Body", "RequestStateChange_OUTPUT", "ReturnValue")); rv != 0 {
		badRequest(w, r, "Wireless State change failed")
		return
	}
	c.json(map[string]any{"state": wifiStateNames[want]})
}

// ---- profile sync ----

func (c *devCall) profileSync() (svc *xmljs.Object, uefiSupported bool, err error) {
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.WiFiPortConfigurationService.Get() })
	if err != nil {
		return nil, false, tolerateFault(c, "AMT_WiFiPortConfigurationService", err)
	}
	svc = xmljs.Obj(xmljs.Path(env, "Body", "AMT_WiFiPortConfigurationService"))
	caps, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.BootCapabilities.Get() })
	if err != nil {
		return svc, false, tolerateFault(c, "AMT_BootCapabilities", err)
	}
	return svc, xmljs.Bool(xmljs.Path(caps, "Body", "AMT_BootCapabilities", "UEFIWiFiCoExistenceAndProfileShare")), nil
}

func (h *handlers) getProfileSync(w http.ResponseWriter, r *http.Request) {
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	svc, uefi, err := c.profileSync()
	if err != nil {
		c.fail(err, netExc)
		return
	}
	if svc == nil {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Wireless Profile Sync not found")
		return
	}
	local, _ := xmljs.Int(svc.Get("localProfileSynchronizationEnabled"))
	c.json(xmljs.NewObject().Set("localProfileSync", local != 0).
		Set("uefiProfileSync", xmljs.Bool(svc.Get("UEFIWiFiProfileShareEnabled"))).
		Set("uefiProfileSyncSupported", uefi))
}

func strictBool(msg string) func(any) string {
	return func(v any) string {
		if _, ok := v.(bool); ok {
			return ""
		}
		return msg
	}
}

func (h *handlers) setProfileSync(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "localProfileSync").Optional().Custom(strictBool("localProfileSync must be a boolean"))
	v.Body(body, "uefiProfileSync").Optional().Custom(strictBool("uefiProfileSync must be a boolean"))
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	svc, uefi, err := c.profileSync()
	if err != nil {
		c.fail(err, netExc)
		return
	}
	if svc == nil {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Wireless Profile Sync not found")
		return
	}
	local, _ := xmljs.Int(svc.Get("localProfileSynchronizationEnabled"))
	wantLocal := local != 0
	if b, ok := body["localProfileSync"].(bool); ok {
		wantLocal = b
	}
	wantUEFI := xmljs.Bool(svc.Get("UEFIWiFiProfileShareEnabled"))
	if b, ok := body["uefiProfileSync"].(bool); ok {
		wantUEFI = b
	}
	if wantUEFI && !uefi {
		api.WriteJSON(w, r, http.StatusConflict, map[string]string{"errorDescription": "UEFI WiFi profile sync is not supported on this device"})
		return
	}
	i := func(k string) int { n, _ := xmljs.Int(svc.Get(k)); return int(n) }
	req := wifiportconfiguration.WiFiPortConfigurationServiceRequest{
		RequestedState:              wifiportconfiguration.RequestedState(i("RequestedState")),
		EnabledState:                wifiportconfiguration.EnabledState(i("EnabledState")),
		HealthState:                 wifiportconfiguration.HealthState(i("HealthState")),
		ElementName:                 xmljs.Text(svc.Get("ElementName")),
		SystemCreationClassName:     xmljs.Text(svc.Get("SystemCreationClassName")),
		SystemName:                  xmljs.Text(svc.Get("SystemName")),
		CreationClassName:           xmljs.Text(svc.Get("CreationClassName")),
		Name:                        xmljs.Text(svc.Get("Name")),
		NoHostCsmeSoftwarePolicy:    wifiportconfiguration.NoHostCsmeSoftwarePolicy(i("NoHostCsmeSoftwarePolicy")),
		UEFIWiFiProfileShareEnabled: wantUEFI,
	}
	if wantLocal {
		req.LocalProfileSynchronizationEnabled = 3 // unrestricted
	}
	if _, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.WiFiPortConfigurationService.Put(req) }); err != nil {
		c.fail(err, netExc)
		return
	}
	c.json(xmljs.NewObject().Set("localProfileSync", wantLocal).Set("uefiProfileSync", wantUEFI).Set("uefiProfileSyncSupported", uefi))
}

// ---- wireless profiles ----

func (c *devCall) wifiProfiles() ([]any, error) {
	env, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.WiFiEndpointSettings.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.WiFiEndpointSettings.Pull(ec) })
	if err != nil {
		return nil, err
	}
	return itemsOf(env, "CIM_WiFiEndpointSettings"), nil
}

func (h *handlers) getWirelessProfiles(w http.ResponseWriter, r *http.Request) {
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	list, err := c.wifiProfiles()
	if err != nil {
		c.fail(err, netExc)
		return
	}
	out := []any{}
	for _, it := range list {
		out = append(out, xmljs.NewObject().
			Set("profileName", strings.TrimPrefix(xmljs.Text(xmljs.Path(it, "InstanceID")), wifiPrefix)).
			Set("ssid", orDefault(xmljs.Path(it, "SSID"), "")).
			Set("priority", orDefault(xmljs.Path(it, "Priority"), 0)).
			Set("authenticationMethod", nameOf(authMethodNames, xmljs.Path(it, "AuthenticationMethod"))).
			Set("encryptionMethod", nameOf(encryptionNames, xmljs.Path(it, "EncryptionMethod"))))
	}
	c.json(out)
}

// wifiProfileInput validates a wireless profile body.
func wifiProfileInput(body map[string]any) (wifi.WiFiEndpointSettingsRequest, valid.Errors) {
	v := valid.New()
	v.Body(body, "profileName").IsAlphanumeric("profileName must be alphanumeric")
	v.Body(body, "ssid").NotEmpty("ssid is required").IsLength(0, 32, "ssid must be at most 32 characters")
	v.Body(body, "priority").IsInt(valid.Range(1, 255), "priority must be between 1 and 255")
	auth := v.Body(body, "authenticationMethod").NotEmpty("authenticationMethod is required")
	am, amOK := valueOf(authMethodNames, valid.String(body["authenticationMethod"]))
	if auth.Present() && valid.String(body["authenticationMethod"]) != "" {
		auth.Check(amOK, "authenticationMethod is invalid")
	}
	enc := v.Body(body, "encryptionMethod").NotEmpty("encryptionMethod is required")
	em, emOK := valueOf(encryptionNames, valid.String(body["encryptionMethod"]))
	if enc.Present() && valid.String(body["encryptionMethod"]) != "" {
		enc.Check(emOK, "encryptionMethod is invalid")
	}
	psk := am == 4 || am == 6 || am == 32768
	v.Body(body, "password").If(psk).Redact().IsLength(8, 63, "password must be 8 to 63 characters")
	name := valid.String(body["profileName"])
	return wifi.WiFiEndpointSettingsRequest{
		ElementName:          name,
		InstanceID:           wifiPrefix + name,
		AuthenticationMethod: wifi.AuthenticationMethod(am),
		EncryptionMethod:     wifi.EncryptionMethod(em),
		SSID:                 valid.String(body["ssid"]),
		Priority:             actionOf(body["priority"]),
		PSKPassPhrase:        valid.String(body["password"]),
	}, v.Errors()
}

func (h *handlers) saveWirelessProfile(w http.ResponseWriter, r *http.Request, update bool) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	req, errs := wifiProfileInput(body)
	if len(errs) > 0 {
		validationFailed(w, r, errs)
		return
	}
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	if _, x := body["ieee8021x"]; x || req.AuthenticationMethod == 5 || req.AuthenticationMethod == 7 {
		writeErr(w, r, http.StatusNotImplemented, msgNotImplemented, "Wireless 802.1X profiles are not yet supported")
		return
	}
	list, err := c.wifiProfiles()
	if err != nil {
		if err = tolerateFault(c, "CIM_WiFiEndpointSettings", err); err != nil {
			c.fail(err, netExc)
			return
		}
	}
	exists := false
	for _, it := range list {
		same := xmljs.Text(xmljs.Path(it, "InstanceID")) == req.InstanceID
		exists = exists || same
		if p, _ := xmljs.Int(xmljs.Path(it, "Priority")); !same && int(p) == req.Priority {
			api.WriteJSON(w, r, http.StatusConflict, map[string]string{"errorDescription": "Wireless Profile with the requested priority already exists"})
			return
		}
	}
	switch {
	case !update && exists:
		api.WriteJSON(w, r, http.StatusConflict, map[string]string{"errorDescription": "Wireless Profile already exists"})
		return
	case update && !exists:
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Wireless Profile not found")
		return
	}
	var rv int64 = -1
	err = c.do(func(m wsman.Messages) error {
		var resp wifiportconfiguration.Response
		var err error
		if update {
			resp, err = m.AMT.WiFiPortConfigurationService.UpdateWiFiSettings(req, models.IEEE8021xSettings{}, "", "")
		} else {
			resp, err = m.AMT.WiFiPortConfigurationService.AddWiFiSettings(req, models.IEEE8021xSettings{}, "WiFi Endpoint 0", "", "")
		}
		// the library reports a non-zero ReturnValue as an error; read it
		if env, perr := parseAnswer(resp); perr == nil {
			out := "AddWiFiSettings_OUTPUT"
			if update {
				out = "UpdateWiFiSettings_OUTPUT"
			}
			if n, ok := xmljs.Int(xmljs.Path(env, "Body", out, "ReturnValue")); ok {
				rv = n
				return nil
			}
		}
		return err
	})
	msg := "Wireless Profile add failed"
	if update {
		msg = "Wireless Profile update failed"
	}
	switch {
	case err != nil:
		c.fail(err, msg)
		return
	case rv == 23: // MAX_LIMIT_REACHED
		api.WriteJSON(w, r, http.StatusConflict, map[string]string{"errorDescription": "Maximum number of wireless profiles already configured on the device"})
		return
	case rv != 0:
		badRequest(w, r, msg+": "+statusName(rv))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handlers) addWirelessProfile(w http.ResponseWriter, r *http.Request) {
	h.saveWirelessProfile(w, r, false)
}

func (h *handlers) updateWirelessProfile(w http.ResponseWriter, r *http.Request) {
	h.saveWirelessProfile(w, r, true)
}

func (h *handlers) deleteWirelessProfile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("profileName")
	v := valid.New()
	v.Field(valid.LocParams, "profileName", name, true).IsAlphanumeric("profileName must be alphanumeric")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	c, ok := h.connect(w, r, netExc)
	if !ok {
		return
	}
	defer c.close()
	_, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.CIM.WiFiEndpointSettings.Delete(wifiPrefix + name)
	})
	var fault *amt.FaultError
	if errors.As(err, &fault) {
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Wireless Profile not found")
		return
	}
	if err != nil {
		c.fail(err, netExc)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
