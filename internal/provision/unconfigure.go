package provision

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/environmentdetection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/tls"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/ieee8021x"

	"github.com/amtd-project/amtd/internal/amt"
)

// TLS setting instances.
const (
	tlsRemoteInstance = "Intel(r) AMT 802.3 TLS Settings"
	tlsLocalInstance  = "Intel(r) AMT LMS TLS Settings"
)

// unconfigure brings the device to a known state before configuration
// (activation.md §10.1): wired 802.1x off, Wi-Fi profiles, proxies, CIRA
// (policies, MPS), TLS, keys and certificates removed, environment
// detection cleared.
func (c *configRun) unconfigure(ctx context.Context) error {
	step := "unconfigure"
	if err := c.readPorts(ctx); err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading ethernet port settings: %w", err))
		return errStatus("Failed to pull ethernet port settings")
	}
	var done []string

	if c.wired != nil && c.wired.MACAddress != "" {
		var s ieee8021x.IEEE8021xSettingsResponse
		if err := c.do(ctx, func(m wsman.Messages) error {
			r, err := m.IPS.IEEE8021xSettings.Get()
			s = r.Body.IEEE8021xSettingsResponse
			return err
		}); err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("reading wired 802.1x settings: %w", err))
			return errStatus("Failed to get 8021x profile")
		}
		if s.Enabled == 2 || s.Enabled == 6 {
			if err := c.do(ctx, func(m wsman.Messages) error {
				_, err := m.IPS.IEEE8021xSettings.Put(ieee8021x.IEEE8021xSettingsRequest{
					ElementName: s.ElementName, InstanceID: s.InstanceID, Enabled: 3,
					AvailableInS0: s.AvailableInS0, PxeTimeout: s.PxeTimeout,
				})
				return err
			}); err != nil {
				c.j.Fail(ctx, step, fmt.Errorf("disabling wired 802.1x: %w", err))
				return errStatus("Failed to disable 8021x profile")
			}
			done = append(done, "wired 802.1x disabled")
		}
	}

	if c.wireless != nil && c.wireless.MACAddress != "" {
		profiles, err := c.wifiProfiles(ctx)
		if err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("reading Wi-Fi profiles: %w", err))
			return errStatus("Failed to pull wifi endpoint settings")
		}
		n := 0
		for _, wp := range profiles {
			// Priority 0 and unnamed entries are OEM/UEFI profiles.
			if wp.InstanceID == "" || wp.Priority == 0 {
				continue
			}
			if err := c.do(ctx, func(m wsman.Messages) error {
				_, err := m.CIM.WiFiEndpointSettings.Delete(wp.InstanceID)
				return err
			}); err != nil {
				c.j.Fail(ctx, step, fmt.Errorf("deleting Wi-Fi profile %s: %w", wp.ElementName, err))
				return errStatus("Failed to delete wifi endpoint settings")
			}
			n++
		}
		if n > 0 {
			done = append(done, fmt.Sprintf("%d Wi-Fi profiles deleted", n))
		}
	}

	proxies, err := c.proxyAccessPoints(ctx)
	if err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading HTTP proxies: %w", err))
		return errStatus("Failed to enumerate HTTP Proxy Access Point")
	}
	for _, pa := range proxies {
		if pa.Name == "" {
			continue
		}
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.IPS.HTTPProxyAccessPointService.Delete(pa.Name)
			return err
		}); err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("deleting HTTP proxy %s: %w", pa.AccessInfo, err))
			return errStatus("Failed to delete HTTP Proxy Access Point")
		}
	}
	if len(proxies) > 0 {
		done = append(done, fmt.Sprintf("%d HTTP proxies deleted", len(proxies)))
	}

	// CIRA: policies (absent ones answer a fault, which is expected), then
	// the MPS entries.
	for _, name := range []string{"User Initiated", "Alert", "Periodic"} {
		_ = c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.RemoteAccessPolicyRule.Delete(name)
			return err
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	servers, err := c.mpServers(ctx)
	if err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading MPS entries: %w", err))
		return errStatus("Failed to enumerate Management Presence Remote SAP")
	}
	for _, s := range servers {
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.ManagementPresenceRemoteSAP.Delete(s.Name)
			return err
		}); err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("deleting MPS %s: %w", s.AccessInfo, err))
			return errStatus("Failed to delete Management Presence Remote SAP")
		}
	}
	if len(servers) > 0 {
		done = append(done, "CIRA removed")
		c.res.CIRA = "unconfigured"
	}

	// TLS.
	settings, err := c.tlsSettings(ctx)
	if err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading TLS settings: %w", err))
		return errStatus("Failed to pull TLS setting data")
	}
	tlsOn := false
	for _, s := range settings {
		tlsOn = tlsOn || s.Enabled
	}
	keepTLS := c.t.TLSEnforced || c.t.KeepTLS || c.t.TLSConfigured
	if tlsOn && keepTLS {
		done = append(done, "TLS kept (the session depends on it)")
	}
	if tlsOn && !keepTLS {
		// Durable before the device: TLS is being disabled (tunnel.go).
		if err := c.e.stageTLSMode(ctx, c.t.GUID, 0); err != nil {
			c.j.Fail(ctx, step, err)
			return errStatus("Failed to save device information to Secret Provider")
		}
		for _, s := range settings {
			if !s.Enabled {
				continue
			}
			req := tls.SettingDataRequest{ElementName: s.ElementName, InstanceID: s.InstanceID, Enabled: false,
				NonSecureConnectionsSupported: s.NonSecureConnectionsSupported}
			if s.InstanceID == tlsRemoteInstance {
				req.AcceptNonSecureConnections = true
			}
			if err := c.doTLS(ctx, func(m wsman.Messages) error {
				_, err := m.AMT.TLSSettingData.Put(s.InstanceID, req)
				return err
			}); err != nil {
				c.j.Fail(ctx, step, fmt.Errorf("disabling TLS (%s): %w", s.InstanceID, err))
				return errStatus("Failed to disable TLS")
			}
		}
		if err := c.commitChanges(ctx); err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("committing TLS changes: %w", err))
			return errStatus("Failed to disable TLS")
		}
		if err := c.e.commitTLSMode(ctx, c.t.GUID, 0); err != nil {
			c.j.Fail(ctx, step, err)
			return errStatus("Failed to save device information to Secret Provider")
		}
		if err := c.wait(ctx, c.e.timing.TLSPutDelay); err != nil {
			return err
		}
		done = append(done, "TLS disabled")
		c.res.TLS = "unconfigured"
	}

	// TLS credential context, keys, certificates.
	contexts, err := c.tlsContexts(ctx)
	if err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading TLS credential contexts: %w", err))
		return errStatus("Failed to pull TLS credential context")
	}
	// Kept with TLS: the certificate in the credential context (the one
	// the device presents) and amtd's CA root (mutual authentication).
	keepCerts := map[string]bool{}
	for _, tc := range contexts {
		certID := tlsSelectorValue(tc.ElementInContext.ReferenceParameters.SelectorSet.Selectors, "InstanceID")
		if keepTLS {
			keepCerts[certID] = true
			continue
		}
		if err := c.do(ctx, func(m wsman.Messages) error { return deleteTLSContext(m, certID) }); err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("deleting the TLS credential context: %w", err))
			return errStatus("Failed to delete TLS credential context")
		}
	}
	keys, err := c.keyPairs(ctx)
	if err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading key pairs: %w", err))
		return errStatus("Failed to pull public private key pair")
	}
	// The key of a kept certificate stays too.
	var keptPubs []crypto.PublicKey
	if len(keepCerts) > 0 {
		list, err := c.certificates(ctx)
		if err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("reading certificates: %w", err))
			return errStatus("Failed to pull public key certificate")
		}
		for _, pc := range list {
			if !keepCerts[pc.InstanceID] {
				continue
			}
			if der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(pc.X509Certificate)); err == nil {
				if cert, err := x509.ParseCertificate(der); err == nil {
					keptPubs = append(keptPubs, cert.PublicKey)
				}
			}
		}
	}
	nKeys := 0
	for _, k := range keys {
		if pub, err := parseDeviceKey(k.DERKey); err == nil && slices.ContainsFunc(keptPubs, func(p crypto.PublicKey) bool {
			e, ok := p.(interface{ Equal(crypto.PublicKey) bool })
			return ok && e.Equal(pub)
		}) {
			continue
		}
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.PublicPrivateKeyPair.Delete(k.InstanceID)
			return err
		}); err != nil {
			// A key still used by a certificate association cannot go.
			c.j.Info(ctx, step, fmt.Sprintf("key %s not deleted: %s", k.InstanceID, errorText(err)))
			continue
		}
		nKeys++
	}
	certsOnDevice, err := c.certificates(ctx)
	if err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading certificates: %w", err))
		return errStatus("Failed to pull public key certificate")
	}
	var caRoot []byte
	if keepTLS && c.e.cfg.CA != nil {
		caRoot = c.e.cfg.CA.RootDER()
	}
	nCerts := 0
	for _, pc := range certsOnDevice {
		if pc.ReadOnlyCertificate || keepCerts[pc.InstanceID] {
			continue
		}
		if der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(pc.X509Certificate)); err == nil && caRoot != nil && bytes.Equal(der, caRoot) {
			continue
		}
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.PublicKeyCertificate.Delete(pc.InstanceID)
			return err
		}); err != nil {
			c.j.Info(ctx, step, fmt.Sprintf("certificate %s not deleted: %s", pc.InstanceID, errorText(err)))
			continue
		}
		nCerts++
	}
	if nKeys > 0 || nCerts > 0 {
		done = append(done, fmt.Sprintf("%d keys and %d certificates deleted", nKeys, nCerts))
	}

	// Environment detection.
	var env environmentdetection.EnvironmentDetectionSettingDataResponse
	if err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.EnvironmentDetectionSettingData.Get()
		env = r.Body.GetAndPutResponse
		return err
	}); err != nil {
		c.j.Fail(ctx, step, fmt.Errorf("reading environment detection: %w", err))
		return errStatus("Failed to get environment detection settings")
	}
	if len(env.DetectionStrings) > 0 {
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.EnvironmentDetectionSettingData.Put(environmentdetection.EnvironmentDetectionSettingDataRequest{
				ElementName: env.ElementName, InstanceID: env.InstanceID, DetectionAlgorithm: env.DetectionAlgorithm,
				DetectionIPv6LocalPrefixes: env.DetectionIPv6LocalPrefixes,
			})
			return err
		}); err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("clearing environment detection: %w", err))
			return errStatus("Failed to clear environment detection settings")
		}
		done = append(done, "environment detection cleared")
	}
	if len(done) == 0 {
		done = append(done, "nothing to remove")
	}
	c.j.OK(ctx, step, strings.Join(done, "; "))
	return nil
}

// commitChanges applies pending TLS settings (AMT_SetupAndConfigurationService.CommitChanges).
func (c *configRun) commitChanges(ctx context.Context) error {
	return c.e.commitChanges(ctx, c.t.Client)
}

// commitChanges is AMT_SetupAndConfigurationService.CommitChanges, with
// the TLS call timeout (AMT may take long to apply TLS settings).
func (e *Engine) commitChanges(ctx context.Context, cl *amt.Client) error {
	rv := -1
	err := e.doTLS(ctx, cl, func(m wsman.Messages) error {
		r, err := m.AMT.SetupAndConfigurationService.CommitChanges()
		if r.Body.CommitChanges_OUTPUT.XMLName.Local != "" {
			rv = int(r.Body.CommitChanges_OUTPUT.ReturnValue)
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	return checkRV("CommitChanges", rv)
}

// checkRV is amt.Check with a missing ReturnValue (-1) reported as such.
func checkRV(call string, rv int) error {
	if rv == -1 {
		return fmt.Errorf("%s: no ReturnValue in the answer", call)
	}
	return amt.Check(call, rv)
}

func tlsSelectorValue(sels []tls.SelectorResponse, name string) string {
	for _, s := range sels {
		if s.Name == name {
			return s.Text
		}
	}
	return ""
}
