package provision

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/ethernetport"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/general"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/wifiportconfiguration"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/models"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/wifi"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/ieee8021x"

	"github.com/amtd-project/amtd/internal/store"
)

// generalRequest is a Put of AMT_GeneralSettings carrying the values read.
func generalRequest(g general.GeneralSettingsResponse) general.GeneralSettingsRequest {
	return general.GeneralSettingsRequest{
		ElementName: g.ElementName, InstanceID: g.InstanceID, IdleWakeTimeout: g.IdleWakeTimeout,
		HostName: g.HostName, DomainName: g.DomainName, PingResponseEnabled: g.PingResponseEnabled,
		WsmanOnlyMode: g.WsmanOnlyMode, PreferredAddressFamily: g.PreferredAddressFamily,
		DHCPv6ConfigurationTimeout: g.DHCPv6ConfigurationTimeout, DDNSUpdateEnabled: g.DDNSUpdateEnabled,
		DDNSUpdateByDHCPServerEnabled: g.DDNSUpdateByDHCPServerEnabled, SharedFQDN: g.SharedFQDN,
		HostOSFQDN: g.HostOSFQDN, DDNSTTL: g.DDNSTTL, AMTNetworkEnabled: g.AMTNetworkEnabled,
		RmcpPingResponseEnabled: g.RmcpPingResponseEnabled, DDNSPeriodicUpdateInterval: g.DDNSPeriodicUpdateInterval,
		PresenceNotificationInterval: g.PresenceNotificationInterval, ThunderboltDockEnabled: g.ThunderboltDockEnabled,
		OemID: g.OemID, DHCPSyncRequiresHostname: int(g.DHCPSyncRequiresHostname),
	}
}

// network configures general settings, the wired and the wireless
// interface (activation.md §10.2–10.4).
func (c *configRun) network(ctx context.Context) error {
	if err := c.generalSettings(ctx); err != nil {
		c.res.addNetwork("Failed to update general settings")
		c.res.Components.WiredNetwork = failed(statusText(err))
		return err
	}
	if err := c.readPorts(ctx); err != nil {
		c.j.Fail(ctx, "network", err)
		c.res.Components.WiredNetwork = failed("Failed to pull ethernet port settings")
		return errStatus("Failed to pull ethernet port settings")
	}
	var first error
	if err := c.wiredNetwork(ctx); err != nil {
		first = err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := c.wirelessNetwork(ctx); err != nil && first == nil {
		first = err
	}
	return first
}

func (c *configRun) generalSettings(ctx context.Context) error {
	g := *c.t.General
	if g.SharedFQDN && g.AMTNetworkEnabled == 1 && g.RmcpPingResponseEnabled {
		c.j.Skipped(ctx, "network.general", "general settings already as required")
		return nil
	}
	req := generalRequest(g)
	req.SharedFQDN, req.AMTNetworkEnabled, req.RmcpPingResponseEnabled = true, 1, true
	if err := c.do(ctx, func(m wsman.Messages) error {
		_, err := m.AMT.GeneralSettings.Put(req)
		return err
	}); err != nil {
		return c.j.Fail(ctx, "network.general", err)
	}
	g.SharedFQDN, g.AMTNetworkEnabled, g.RmcpPingResponseEnabled = true, 1, true
	c.t.General = &g
	c.j.OK(ctx, "network.general", "shared FQDN, AMT network and RMCP ping enabled")
	return nil
}

func ethernetRequest(s ethernetSettings) ethernetport.SettingsRequest {
	return ethernetport.SettingsRequest{
		ElementName: s.ElementName, InstanceID: s.InstanceID, VLANTag: s.VLANTag, SharedMAC: s.SharedMAC,
		LinkIsUp: s.LinkIsUp, LinkPolicy: s.LinkPolicy, LinkPreference: s.LinkPreference,
		SharedStaticIp: s.SharedStaticIp, IpSyncEnabled: s.IpSyncEnabled, DHCPEnabled: s.DHCPEnabled,
		IPAddress: s.IPAddress, SubnetMask: s.SubnetMask, DefaultGateway: s.DefaultGateway,
		PrimaryDNS: s.PrimaryDNS, SecondaryDNS: s.SecondaryDNS,
		ConsoleTcpMaxRetransmissions: ethernetport.ConsoleTCPMaxRetransmissions(s.ConsoleTcpMaxRetransmissions),
		PhysicalConnectionType:       s.PhysicalConnectionType, PhysicalNicMedium: s.PhysicalNicMedium,
	}
}

// wiredNetwork applies DHCP/static and IP sync (activation.md §10.3) and
// wired 802.1x.
func (c *configRun) wiredNetwork(ctx context.Context) error {
	step := "network.wired"
	w := c.wired
	if w == nil || w.MACAddress == "" {
		c.j.Skipped(ctx, step, "the device has no wired interface")
		c.res.Components.WiredNetwork = rpcResult(NotApplicable, "Not applicable for wireless only device")
		return nil
	}
	req := ethernetRequest(*w)
	if c.p.DHCPEnabled {
		req.DHCPEnabled, req.IpSyncEnabled, req.SharedStaticIp = true, true, false
	} else {
		ipSync := true
		if c.p.IPSyncEnabled != nil {
			ipSync = *c.p.IPSyncEnabled
		}
		req.DHCPEnabled, req.IpSyncEnabled, req.SharedStaticIp = false, ipSync, ipSync
		if !ipSync && (w.IPAddress == "" || w.SubnetMask == "") {
			msg := "Invalid configuration - IPAddress and SubnetMask are required when AMT profile is static and IpSyncEnabled is false"
			c.j.FailText(ctx, step, msg)
			c.res.addNetwork(msg)
			c.res.Components.WiredNetwork = failed(msg)
			return errStatus(msg)
		}
	}
	if req.IpSyncEnabled {
		req.IPAddress, req.SubnetMask, req.DefaultGateway, req.PrimaryDNS, req.SecondaryDNS = "", "", "", "", ""
	}
	changed := req.DHCPEnabled != w.DHCPEnabled || req.IpSyncEnabled != w.IpSyncEnabled || req.SharedStaticIp != w.SharedStaticIp
	mode := "static"
	if req.DHCPEnabled {
		mode = "DHCP"
	}
	switch {
	case !changed:
		c.j.Skipped(ctx, step, fmt.Sprintf("wired already %s, IP sync %v", mode, req.IpSyncEnabled))
	case c.t.TLSEnforced:
		c.j.Skipped(ctx, step, "Ethernet settings are not changed on TLS-enforced devices")
	default:
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.EthernetPortSettings.Put(w.InstanceID, req)
			return err
		}); err != nil {
			c.j.Fail(ctx, step, err)
			c.res.addNetwork("Failed to put wired ethernet port settings")
			c.res.Components.WiredNetwork = failed(errorText(err))
			return errStatus("Failed to put wired ethernet port settings")
		}
		c.j.OK(ctx, step, fmt.Sprintf("wired %s, IP sync %v", mode, req.IpSyncEnabled))
	}
	details := "Wired Network Configured"
	if c.p.IEEE8021xProfileName != nil && *c.p.IEEE8021xProfileName != "" {
		if err := c.wired8021x(ctx, *c.p.IEEE8021xProfileName); err != nil {
			msg := "Wired 802.1x configuration failed: " + statusText(err)
			c.res.addNetwork(msg)
			c.res.Components.WiredNetwork = failed(msg)
			return errStatus(msg)
		}
		details += " with 802.1x"
	}
	c.res.addNetwork(details)
	c.res.Components.WiredNetwork = ok(details)
	return nil
}

// radiusRoot is the root the device trusts for the authentication server.
func (e *Engine) radiusRoot() ([]byte, error) {
	if len(e.cfg.RADIUSRootDER) > 0 {
		return e.cfg.RADIUSRootDER, nil
	}
	if e.cfg.CA == nil {
		return nil, errors.New("no CA configured for 802.1x certificates")
	}
	return e.cfg.CA.RootDER(), nil
}

// eapTLSCredentials issues the device an EAP-TLS client certificate for a
// key it generates, and installs the trust root of the RADIUS server.
func (c *configRun) eapTLSCredentials(ctx context.Context) (clientCertID, rootID, identity string, err error) {
	if c.e.cfg.CA == nil {
		return "", "", "", errors.New("no CA configured for 802.1x certificates")
	}
	root, err := c.e.radiusRoot()
	if err != nil {
		return "", "", "", err
	}
	identity = c.t.deviceName()
	clientCertID, _, err = c.deviceCertificate(ctx, func(pub crypto.PublicKey) ([]byte, error) {
		return c.e.cfg.CA.SignPublicKey(pub, pkix.Name{CommonName: identity}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, 0)
	}, nil)
	if err != nil {
		return "", "", "", err
	}
	rootID, err = c.addTrustedRoot(ctx, root)
	if err != nil {
		return "", "", "", fmt.Errorf("adding the RADIUS root certificate: %w", err)
	}
	return clientCertID, rootID, identity, nil
}

// wired8021x configures EAP-TLS on the wired interface with a client
// certificate issued by amtd's CA (activation.md §10.3, without an
// Enterprise Assistant).
func (c *configRun) wired8021x(ctx context.Context, name string) error {
	step := "network.wired8021x"
	cfg, err := c.e.cfg.Store.GetIEEE8021xConfig(ctx, c.t.TenantID, name)
	if err != nil {
		return c.j.Fail(ctx, step, fmt.Errorf("reading 802.1x config %s: %w", name, err))
	}
	if cfg.AuthenticationProtocol != 0 {
		err := fmt.Errorf("802.1x protocol %d needs user credentials amtd does not keep; only EAP-TLS (0) is supported", cfg.AuthenticationProtocol)
		return c.j.Fail(ctx, step, err)
	}
	var cur ieee8021x.IEEE8021xSettingsResponse
	if err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.IPS.IEEE8021xSettings.Get()
		cur = r.Body.IEEE8021xSettingsResponse
		return err
	}); err != nil {
		return c.j.Fail(ctx, step, err)
	}
	certID, rootID, identity, err := c.eapTLSCredentials(ctx)
	if err != nil {
		return c.j.Fail(ctx, step, err)
	}
	pxe := 120
	if cfg.PXETimeout != nil {
		pxe = *cfg.PXETimeout
	}
	if err := c.do(ctx, func(m wsman.Messages) error {
		_, err := m.IPS.IEEE8021xSettings.Put(ieee8021x.IEEE8021xSettingsRequest{
			ElementName: cur.ElementName, InstanceID: cur.InstanceID, Enabled: 2, AvailableInS0: true,
			AuthenticationProtocol: 0, Username: identity, PxeTimeout: pxe,
		})
		return err
	}); err != nil {
		return c.j.Fail(ctx, step, fmt.Errorf("enabling 802.1x: %w", err))
	}
	rv := -1
	err = c.do(ctx, func(m wsman.Messages) error {
		r, err := m.IPS.IEEE8021xSettings.SetCertificates(rootID, certID)
		if r.Body.SetCertificatesResponse.XMLName.Local != "" {
			rv = int(r.Body.SetCertificatesResponse.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("SetCertificates", rv)
	}
	if err != nil {
		return c.j.Fail(ctx, step, fmt.Errorf("setting 802.1x certificates: %w", err))
	}
	c.j.OK(ctx, step, fmt.Sprintf("EAP-TLS as %s with a certificate from amtd's CA (802.1x config %s)", identity, cfg.Name))
	return nil
}

// wirelessNetwork configures Wi-Fi (activation.md §10.4).
func (c *configRun) wirelessNetwork(ctx context.Context) error {
	step := "network.wireless"
	localSync := c.p.LocalWifiSyncEnabled != nil && *c.p.LocalWifiSyncEnabled
	if len(c.p.WifiConfigs) == 0 && !localSync {
		c.res.Components.WirelessNetwork = rpcResult(NotApplicable, "No wireless profiles provided")
		return nil
	}
	if c.wireless == nil || c.wireless.MACAddress == "" {
		c.j.Skipped(ctx, step, "the device has no wireless interface")
		c.res.Components.WirelessNetwork = rpcResult(NotApplicable, "Device does not support wireless")
		return nil
	}
	fail := func(msg string, err error) error {
		c.j.Fail(ctx, step, fmt.Errorf("%s: %w", msg, err))
		c.res.addNetwork(msg)
		c.res.Components.WirelessNetwork = failed(msg)
		return errStatus(msg)
	}
	// The wireless port follows DHCP.
	wl := *c.wireless
	if !wl.DHCPEnabled || !wl.IpSyncEnabled {
		req := ethernetRequest(wl)
		req.DHCPEnabled, req.IpSyncEnabled, req.SharedStaticIp = true, true, false
		req.IPAddress, req.SubnetMask, req.DefaultGateway, req.PrimaryDNS, req.SecondaryDNS = "", "", "", "", ""
		req.ConsoleTcpMaxRetransmissions = ethernetport.ConsoleTCPMaxRetransmissions7
		if !c.t.TLSEnforced {
			if err := c.do(ctx, func(m wsman.Messages) error {
				_, err := m.AMT.EthernetPortSettings.Put(wl.InstanceID, req)
				return err
			}); err != nil {
				return fail("Failed to put wireless ethernet port settings", err)
			}
		}
	}
	var svc wifiportconfiguration.WiFiPortConfigurationServiceResponse
	if err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.WiFiPortConfigurationService.Get()
		svc = r.Body.WiFiPortConfigurationService
		return err
	}); err != nil {
		return fail("Failed to get WiFi port configuration service", err)
	}
	uefiSupported := svc.UEFIWiFiProfileShareEnabled
	if svc.LocalProfileSynchronizationEnabled == wifiportconfiguration.LocalSyncDisabled {
		if err := c.do(ctx, func(m wsman.Messages) error {
			r, err := m.AMT.BootCapabilities.Get()
			uefiSupported = r.Body.BootCapabilitiesGetResponse.UEFIWiFiCoExistenceAndProfileShare
			return err
		}); err != nil {
			c.j.Info(ctx, step, "boot capabilities not read: "+errorText(err))
		}
	}
	want := wifiportconfiguration.LocalSyncDisabled
	if localSync {
		want = wifiportconfiguration.UnrestrictedSync
	}
	uefi := svc.UEFIWiFiProfileShareEnabled
	if uefiSupported && c.p.UEFIWifiSyncEnabled != nil {
		uefi = *c.p.UEFIWifiSyncEnabled
	}
	if svc.LocalProfileSynchronizationEnabled != want || svc.UEFIWiFiProfileShareEnabled != uefi {
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.WiFiPortConfigurationService.Put(wifiportconfiguration.WiFiPortConfigurationServiceRequest{
				RequestedState: svc.RequestedState, EnabledState: svc.EnabledState, HealthState: svc.HealthState,
				ElementName: svc.ElementName, SystemCreationClassName: svc.SystemCreationClassName,
				SystemName: svc.SystemName, CreationClassName: svc.CreationClassName, Name: svc.Name,
				LocalProfileSynchronizationEnabled: want, LastConnectedSsidUnderMeControl: svc.LastConnectedSsidUnderMeControl,
				NoHostCsmeSoftwarePolicy: svc.NoHostCsmeSoftwarePolicy, UEFIWiFiProfileShareEnabled: uefi,
			})
			return err
		}); err != nil {
			return fail("Failed to put WiFi port configuration service", err)
		}
	}
	rv := -1
	err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.CIM.WiFiPort.RequestStateChange(32769)
		if r.Body.RequestStateChange_OUTPUT.XMLName.Local != "" {
			rv = int(r.Body.RequestStateChange_OUTPUT.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("CIM_WiFiPort.RequestStateChange", rv)
	}
	if err != nil {
		return fail("Failed to enable the WiFi port", err)
	}
	if len(c.p.WifiConfigs) == 0 {
		msg := "Wireless Only Local Profile Sync Configured"
		c.j.OK(ctx, step, msg)
		c.res.addNetwork(msg)
		c.res.Components.WirelessNetwork = rpcResult(Success, msg)
		c.res.Components.WirelessNetwork.Mode = "LocalProfileSync"
		return nil
	}
	var added, failedNames []string
	for _, wc := range c.p.WifiConfigs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := c.addWiFiProfile(ctx, wc); err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("Wi-Fi profile %s: %w", wc.Name, err))
			failedNames = append(failedNames, wc.Name)
			continue
		}
		added = append(added, wc.Name)
	}
	msg := "Wireless Configured"
	if len(added) > 0 {
		msg += ". Added " + strings.Join(added, ", ")
	}
	if len(failedNames) > 0 {
		msg += ". Failed to add " + strings.Join(failedNames, ", ")
		c.res.addNetwork(msg)
		c.res.Components.WirelessNetwork = failed(msg)
		c.t.Progress("Wireless network configuration failed: " + strings.Join(failedNames, ", "))
		return errStatus(msg)
	}
	c.j.OK(ctx, step, msg)
	c.res.addNetwork(msg)
	c.res.Components.WirelessNetwork = ok(msg)
	c.t.Progress("Wireless network configuration completed")
	return nil
}

// addWiFiProfile adds one wireless config as an AMT Wi-Fi profile.
func (c *configRun) addWiFiProfile(ctx context.Context, link store.ProfileWifi) error {
	wc, err := c.e.cfg.Store.GetWirelessConfig(ctx, c.t.TenantID, link.Name)
	if err != nil {
		return fmt.Errorf("reading wireless config: %w", err)
	}
	settings := wifi.WiFiEndpointSettingsRequest{
		ElementName:          wc.Name,
		InstanceID:           "Intel(r) AMT:WiFi Endpoint Settings " + wc.Name,
		AuthenticationMethod: wifi.AuthenticationMethod(wc.AuthenticationMethod),
		EncryptionMethod:     wifi.EncryptionMethod(wc.EncryptionMethod),
		SSID:                 wc.SSID,
		Priority:             link.Priority,
	}
	var ieee models.IEEE8021xSettings
	clientCert, caCert := "", ""
	switch wc.AuthenticationMethod {
	case 4, 6: // WPA/WPA2 PSK
		sec, err := c.e.secretEntry(ctx, wc.TenantID, KindWireless, wc.SecretID)
		if err != nil {
			return err
		}
		if sec[FieldPSKPassphrase] == "" {
			return errors.New("no passphrase in the secret store")
		}
		settings.PSKPassPhrase = sec[FieldPSKPassphrase]
	case 5, 7: // WPA/WPA2 802.1x
		if wc.IEEE8021xProfileName == nil || *wc.IEEE8021xProfileName == "" {
			return errors.New("802.1x authentication without an 802.1x config")
		}
		cfg, err := c.e.cfg.Store.GetIEEE8021xConfig(ctx, c.t.TenantID, *wc.IEEE8021xProfileName)
		if err != nil {
			return fmt.Errorf("reading 802.1x config: %w", err)
		}
		if cfg.AuthenticationProtocol != 0 {
			return fmt.Errorf("802.1x protocol %d needs user credentials amtd does not keep; only EAP-TLS (0) is supported", cfg.AuthenticationProtocol)
		}
		certID, rootID, identity, err := c.eapTLSCredentials(ctx)
		if err != nil {
			return err
		}
		ieee = models.IEEE8021xSettings{ElementName: wc.Name, InstanceID: "Intel(r) AMT: 8021X Settings " + wc.Name,
			AuthenticationProtocol: 0, Username: identity}
		clientCert, caCert = certID, rootID
	default:
		return fmt.Errorf("authentication method %d is not supported", wc.AuthenticationMethod)
	}
	rv := -1
	err = c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.WiFiPortConfigurationService.AddWiFiSettings(settings, ieee, "WiFi Endpoint 0", clientCert, caCert)
		if r.Body.AddWiFiSettingsOutput.XMLName.Local != "" {
			rv = int(r.Body.AddWiFiSettingsOutput.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("AddWiFiSettings", rv)
	}
	return err
}
