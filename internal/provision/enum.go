package provision

import (
	"context"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/ethernetport"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/managementpresence"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/publickey"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/publicprivate"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/remoteaccess"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/tls"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/wifi"
	iphttp "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/http"
)

// Enumerate + Pull helpers: two WS-MAN exchanges, each with the per-call
// timeout. Pull asks for all items at once (the library's MaxElements 999).

func (c *configRun) enumPull(ctx context.Context, enum func(m wsman.Messages) (string, error), pull func(m wsman.Messages, ec string) error) error {
	var ec string
	if err := c.do(ctx, func(m wsman.Messages) error {
		var err error
		ec, err = enum(m)
		return err
	}); err != nil {
		return err
	}
	return c.do(ctx, func(m wsman.Messages) error { return pull(m, ec) })
}

// ethernetSettings is one AMT_EthernetPortSettings instance.
type ethernetSettings = ethernetport.SettingsResponse

const (
	wiredInstance    = "Intel(r) AMT Ethernet Port Settings 0"
	wirelessInstance = "Intel(r) AMT Ethernet Port Settings 1"
)

func (c *configRun) ethernetPorts(ctx context.Context) ([]ethernetSettings, error) {
	var items []ethernetSettings
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.AMT.EthernetPortSettings.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.AMT.EthernetPortSettings.Pull(ec)
		items = r.Body.PullResponse.EthernetPortItems
		return err
	})
	return items, err
}

// readPorts sets c.wired and c.wireless from the device (by InstanceID;
// a port is present when it has a MAC address).
func (c *configRun) readPorts(ctx context.Context) error {
	items, err := c.ethernetPorts(ctx)
	if err != nil {
		return err
	}
	c.wired, c.wireless = nil, nil
	for i := range items {
		it := items[i]
		switch {
		case strings.HasSuffix(it.InstanceID, "Settings 0"):
			c.wired = &it
		case strings.HasSuffix(it.InstanceID, "Settings 1"):
			c.wireless = &it
		}
	}
	return nil
}

func (c *configRun) certificates(ctx context.Context) ([]publickey.PublicKeyCertificateResponse, error) {
	var items []publickey.PublicKeyCertificateResponse
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.AMT.PublicKeyCertificate.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.AMT.PublicKeyCertificate.Pull(ec)
		items = r.Body.PullResponse.PublicKeyCertificateItems
		return err
	})
	return items, err
}

func (c *configRun) keyPairs(ctx context.Context) ([]publicprivate.PublicPrivateKeyPair, error) {
	var items []publicprivate.PublicPrivateKeyPair
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.AMT.PublicPrivateKeyPair.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.AMT.PublicPrivateKeyPair.Pull(ec)
		items = r.Body.PullResponse.PublicPrivateKeyPairItems
		return err
	})
	return items, err
}

func (c *configRun) tlsSettings(ctx context.Context) ([]tls.SettingDataResponse, error) {
	var items []tls.SettingDataResponse
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.AMT.TLSSettingData.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.AMT.TLSSettingData.Pull(ec)
		items = r.Body.PullResponse.SettingDataItems
		return err
	})
	return items, err
}

func (c *configRun) tlsContexts(ctx context.Context) ([]tls.CredentialContextResponse, error) {
	var items []tls.CredentialContextResponse
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.AMT.TLSCredentialContext.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.AMT.TLSCredentialContext.Pull(ec)
		items = r.Body.PullResponse.CredentialContextItems
		return err
	})
	return items, err
}

func (c *configRun) mpServers(ctx context.Context) ([]managementpresence.ManagementRemoteResponse, error) {
	var items []managementpresence.ManagementRemoteResponse
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.AMT.ManagementPresenceRemoteSAP.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.AMT.ManagementPresenceRemoteSAP.Pull(ec)
		items = r.Body.PullResponse.ManagementRemoteItems
		return err
	})
	return items, err
}

func (c *configRun) appliesToMPS(ctx context.Context) ([]remoteaccess.RemoteAccessPolicyAppliesToMPSResponse, error) {
	var items []remoteaccess.RemoteAccessPolicyAppliesToMPSResponse
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.AMT.RemoteAccessPolicyAppliesToMPS.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.AMT.RemoteAccessPolicyAppliesToMPS.Pull(ec)
		items = r.Body.PullResponse.PolicyAppliesItems
		return err
	})
	return items, err
}

func (c *configRun) wifiProfiles(ctx context.Context) ([]wifi.WiFiEndpointSettingsResponse, error) {
	var items []wifi.WiFiEndpointSettingsResponse
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.CIM.WiFiEndpointSettings.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.CIM.WiFiEndpointSettings.Pull(ec)
		items = r.Body.PullResponse.EndpointSettingsItems
		return err
	})
	return items, err
}

func (c *configRun) proxyAccessPoints(ctx context.Context) ([]iphttp.HTTPProxyAccessPointItem, error) {
	var items []iphttp.HTTPProxyAccessPointItem
	err := c.enumPull(ctx, func(m wsman.Messages) (string, error) {
		r, err := m.IPS.HTTPProxyAccessPointService.Enumerate()
		return r.Body.EnumerateResponse.EnumerationContext, err
	}, func(m wsman.Messages, ec string) error {
		r, err := m.IPS.HTTPProxyAccessPointService.Pull(ec)
		items = r.Body.PullResponse.Items
		return err
	})
	return items, err
}
