package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/environmentdetection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/remoteaccess"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/userinitiatedconnection"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/store"
)

// Remote access policy triggers and settings (activation.md §10.8).
const (
	triggerUserInitiated = 0
	triggerPeriodic      = 2
	// periodicExtendedData: 8 bytes big-endian, periodic type 0 (interval)
	// then 25 seconds.
	periodicExtendedData = "AAAAAAAAABk="
	mpsTypeBoth          = 2
)

// cira configures CIRA to the profile's CIRA config (activation.md §10.8).
func (c *configRun) cira(ctx context.Context) error {
	step := "cira"
	fail := func(msg string, err error) error {
		if err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("%s: %w", msg, err))
		} else {
			c.j.FailText(ctx, step, msg)
		}
		c.res.CIRA = msg
		c.res.Components.CIRAConnection = failed(msg)
		c.t.Progress("CIRA configuration failed: " + msg)
		return errStatus(msg)
	}
	cfg, err := c.e.cfg.Store.GetCIRAConfig(ctx, c.t.TenantID, *c.p.CIRAConfigName)
	if err != nil {
		return fail("Failed to get CIRA config", err)
	}
	// The MPS password: the CIRA config's, else a new random one per device.
	sec, err := c.e.secretEntry(ctx, cfg.TenantID, KindCIRA, cfg.SecretID)
	if err != nil {
		return fail("Failed to get CIRA config", err)
	}
	mpsPassword := sec[FieldMPSPassword]
	if mpsPassword == "" {
		if mpsPassword, err = RandomPassword(c.e.cfg.Rand); err != nil {
			return fail("Failed to generate mps password", err)
		}
	}
	root := c.e.cfg.CIRARootDER
	if len(root) == 0 {
		root = certDER(cfg.MPSRootCertificate)
	}
	if len(root) == 0 {
		return fail("Failed to add trusted root certificate", errors.New("no CIRA root certificate configured"))
	}
	if _, err := c.addTrustedRoot(ctx, root); err != nil {
		return fail("Failed to add trusted root certificate", err)
	}
	// Durable before the device: the MPS password, and the device record
	// the presence server authenticates against.
	if _, err := devcreds.Stage(ctx, c.e.cfg.Secrets, c.t.GUID, devcreds.MPS, mpsPassword); err != nil {
		return fail("Failed to save mps password to secret provider", err)
	}
	if err := c.e.setMPSUsername(ctx, c.t, cfg.Username); err != nil {
		return fail("Failed to save device to mps", err)
	}
	c.mpsUser = cfg.Username
	cn := ""
	if cfg.ServerAddressFormat == 3 {
		cn = cfg.CommonName
	}
	rv := -1
	err = c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.RemoteAccessService.AddMPS(remoteaccess.AddMpServerRequest{
			AccessInfo: cfg.MPSServerAddress, InfoFormat: remoteaccess.MPServerInfoFormat(cfg.ServerAddressFormat),
			Port: cfg.MPSPort, AuthMethod: 2, Username: cfg.Username, Password: mpsPassword, CommonName: cn,
		})
		if r.Body.AddMpServerResponse.XMLName.Local != "" {
			rv = int(r.Body.AddMpServerResponse.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("AddMpServer", rv)
	}
	if err != nil {
		return fail("Failed to add mps", err)
	}
	if _, err := devcreds.Commit(context.WithoutCancel(ctx), c.e.cfg.Secrets, c.t.GUID, devcreds.MPS, mpsPassword); err != nil {
		return fail("Failed to save mps password to secret provider", err)
	}
	servers, err := c.mpServers(ctx)
	if err != nil {
		return fail("Failed to Pull Management Presence Remote SAP", err)
	}
	if len(servers) == 0 {
		return fail("Failed to Pull Management Presence Remote SAP", errors.New("no MPS entry after AddMpServer"))
	}
	mpsName := servers[0].Name
	for _, s := range servers {
		if s.AccessInfo == cfg.MPSServerAddress {
			mpsName = s.Name
		}
	}
	for _, rule := range []struct {
		trigger  int
		lifetime int
		ext      string
		failMsg  string
	}{
		{triggerPeriodic, 0, periodicExtendedData, "Failed to add remote policy access rule"},
		{triggerUserInitiated, 300, "", "Failed to add User Initiated remote policy access rule"},
	} {
		rv := -1
		err := c.do(ctx, func(m wsman.Messages) error {
			r, err := m.AMT.RemoteAccessService.AddRemoteAccessPolicyRule(remoteaccess.RemoteAccessPolicyRuleRequest{
				Trigger: remoteaccess.Trigger(rule.trigger), TunnelLifeTime: rule.lifetime, ExtendedData: rule.ext,
			}, mpsName)
			if r.Body.AddRemotePolicyRuleResponse.XMLName.Local != "" {
				rv = int(r.Body.AddRemotePolicyRuleResponse.ReturnValue)
				return nil
			}
			return err
		})
		if err == nil {
			err = checkRV("AddRemoteAccessPolicyRule", rv)
		}
		if err != nil {
			return fail(rule.failMsg, err)
		}
	}
	applies, err := c.appliesToMPS(ctx)
	if err != nil {
		return fail("Failed to pull AMT_RemoteAccessPolicyAppliesToMPS", err)
	}
	for _, a := range applies {
		policy := ""
		for _, s := range a.PolicySet.ReferenceParameters.SelectorSet.Selectors {
			if s.Name == "PolicyRuleName" {
				policy = s.Text
			}
		}
		mps := mpsName
		for _, s := range a.ManagedElement.ReferenceParameters.SelectorSet.Selectors {
			if s.Name == "Name" {
				mps = s.Text
			}
		}
		if policy == "" {
			continue
		}
		if err := c.do(ctx, func(m wsman.Messages) error { return putAppliesToMPS(m, mps, policy, mpsTypeBoth, 0) }); err != nil {
			return fail("Failed to put AMT_RemoteAccessPolicyAppliesToMPS", err)
		}
	}
	rv = -1
	err = c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.UserInitiatedConnectionService.RequestStateChange(userinitiatedconnection.BIOSandOSInterfacesEnabled)
		if r.Body.RequestStateChange_OUTPUT.XMLName.Local != "" {
			rv = int(r.Body.RequestStateChange_OUTPUT.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("AMT_UserInitiatedConnectionService.RequestStateChange", rv)
	}
	if err != nil {
		return fail("Failed to set user initiated connection service", err)
	}
	detection := c.e.cfg.CIRADetectionString
	if detection == "" {
		detection = randomUUID(c.e.cfg.Rand) + ".com"
	}
	var env environmentdetection.EnvironmentDetectionSettingDataResponse
	if err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.EnvironmentDetectionSettingData.Get()
		env = r.Body.GetAndPutResponse
		return err
	}); err != nil {
		return fail("Failed to get environment detection settings", err)
	}
	if err := c.do(ctx, func(m wsman.Messages) error {
		_, err := m.AMT.EnvironmentDetectionSettingData.Put(environmentdetection.EnvironmentDetectionSettingDataRequest{
			ElementName: env.ElementName, InstanceID: env.InstanceID, DetectionAlgorithm: env.DetectionAlgorithm,
			DetectionStrings: []string{detection}, DetectionIPv6LocalPrefixes: env.DetectionIPv6LocalPrefixes,
		})
		return err
	}); err != nil {
		return fail("Failed to put environment detection settings", err)
	}
	c.j.OK(ctx, step, fmt.Sprintf("MPS %s:%d as %s (CIRA config %s), periodic and user-initiated policies, detection string %s",
		cfg.MPSServerAddress, cfg.MPSPort, cfg.Username, cfg.Name, detection))
	c.res.CIRA = "Configured"
	c.res.Components.CIRAConnection = ok("Configured")
	c.t.Progress("CIRA configuration completed")
	return nil
}

// setMPSUsername records the CIRA user name in the device record before
// the device is told to connect.
func (e *Engine) setMPSUsername(ctx context.Context, t *Target, user string) error {
	wctx := context.WithoutCancel(ctx)
	d, err := e.cfg.Store.GetDevice(wctx, t.GUID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d == nil) {
		d = &store.Device{GUID: t.GUID, TenantID: t.TenantID, Hostname: t.Hostname, DNSSuffix: t.DNSSuffix}
	} else if err != nil {
		return err
	}
	d.MPSUsername = user
	_, err = e.cfg.Store.PutDevice(wctx, d)
	return err
}

func randomUUID(r io.Reader) string {
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	_, _ = io.ReadFull(r, b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
