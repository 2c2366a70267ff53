package provision

import (
	"context"
	"fmt"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/redirection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/kvm"
	iphttp "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/http"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/optin"
)

// proxies adds the profile's HTTP proxies in priority order (activation.md
// §10.5).
func (c *configRun) proxies(ctx context.Context) error {
	step := "proxy"
	if len(c.p.ProxyConfigs) == 0 {
		return nil
	}
	var added []string
	for _, link := range c.p.ProxyConfigs {
		pc, err := c.e.cfg.Store.GetProxyConfig(ctx, c.t.TenantID, link.Name)
		if err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("reading proxy config %s: %w", link.Name, err))
			c.res.Components.CIRAProxy = failed("Failed to add proxy " + link.Name)
			return errStatus("Failed to add proxy " + link.Name)
		}
		rv := -1
		err = c.do(ctx, func(m wsman.Messages) error {
			r, err := m.IPS.HTTPProxyService.AddProxyAccessPoint(pc.Address, iphttp.InfoFormat(pc.InfoFormat), pc.Port, pc.NetworkDNSSuffix)
			if r.Body.AddProxyAccessPointResponse.XMLName.Local != "" {
				rv = r.Body.AddProxyAccessPointResponse.ReturnValue
				return nil
			}
			return err
		})
		if err == nil && rv != rvDuplicate {
			err = checkRV("AddProxyAccessPoint", rv)
		}
		if err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("proxy %s: %w", pc.Name, err))
			c.res.Components.CIRAProxy = failed("Failed to add proxy " + pc.Name)
			return errStatus("Failed to add proxy " + pc.Name)
		}
		added = append(added, fmt.Sprintf("%s (%s:%d for %s)", pc.Name, pc.Address, pc.Port, pc.NetworkDNSSuffix))
	}
	c.j.OK(ctx, step, "added "+strings.Join(added, ", "))
	c.res.Components.CIRAProxy = ok("Proxies configured")
	c.t.Progress("Proxies configuration completed")
	return nil
}

// Opt-in (user consent) values of IPS_OptInService.OptInRequired.
const (
	optInNone = 0
	optInKVM  = 1
	optInAll  = 4294967295
)

// userConsent returns the profile's OptInRequired (defaults: All for CCM,
// KVM for ACM).
func userConsent(consent string, controlMode int) int {
	switch strings.ToLower(consent) {
	case "none":
		return optInNone
	case "kvm":
		return optInKVM
	case "all":
		return optInAll
	}
	if controlMode == 2 {
		return optInKVM
	}
	return optInAll
}

// features sets redirection (KVM, SOL, IDER) and user consent
// (activation.md §10.6). Failures are logged and do not fail the run.
func (c *configRun) features(ctx context.Context) {
	step := "features"
	if err := c.configureFeatures(ctx); err != nil {
		c.j.Fail(ctx, step, err)
	}
}

func (c *configRun) configureFeatures(ctx context.Context) error {
	step := "features"
	var red redirection.RedirectionResponse
	var opt optin.OptInServiceResponse
	var sap kvm.KVMRedirectionSAP
	if err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.RedirectionService.Get()
		red = r.Body.GetAndPutResponse
		return err
	}); err != nil {
		return fmt.Errorf("reading the redirection service: %w", err)
	}
	if err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.IPS.OptInService.Get()
		opt = r.Body.GetAndPutResponse
		return err
	}); err != nil {
		return fmt.Errorf("reading the opt-in service: %w", err)
	}
	if err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.CIM.KVMRedirectionSAP.Get()
		sap = r.Body.GetResponse
		return err
	}); err != nil {
		return fmt.Errorf("reading the KVM redirection SAP: %w", err)
	}

	sol, ider, kvmOn := c.p.SOLEnabled, c.p.IDEREnabled, c.p.KVMEnabled
	state := redirection.DisableIDERAndSOL
	switch {
	case sol && ider:
		state = redirection.EnableIDERAndSOL
	case ider:
		state = redirection.EnableIDERAndDisableSOL
	case sol:
		state = redirection.EnableSOLAndDisableIDER
	}
	// KVM EnabledState 2 (enabled) and 6 (enabled but offline) both count.
	curKVM := sap.EnabledState == kvm.EnabledStateEnabled || sap.EnabledState == kvm.EnabledStateEnabledButOffline
	listener := sol || ider || kvmOn
	var did []string
	if int(red.EnabledState) != int(state) || curKVM != kvmOn || red.ListenerEnabled != listener {
		rv := -1
		err := c.do(ctx, func(m wsman.Messages) error {
			r, err := m.AMT.RedirectionService.RequestStateChange(state)
			if r.Body.RequestStateChange_OUTPUT.XMLName.Local != "" {
				rv = int(r.Body.RequestStateChange_OUTPUT.ReturnValue)
				return nil
			}
			return err
		})
		if err == nil {
			err = checkRV("AMT_RedirectionService.RequestStateChange", rv)
		}
		if err != nil {
			return fmt.Errorf("setting SOL/IDER: %w", err)
		}
		kvmReq := kvm.RedirectionSAPDisable
		if kvmOn {
			kvmReq = kvm.RedirectionSAPEnable
		}
		rv = -1
		err = c.do(ctx, func(m wsman.Messages) error {
			r, err := m.CIM.KVMRedirectionSAP.RequestStateChange(kvmReq)
			if r.Body.RequestStateChange_OUTPUT.XMLName.Local != "" {
				rv = int(r.Body.RequestStateChange_OUTPUT.ReturnValue)
				return nil
			}
			return err
		})
		if err == nil {
			err = checkRV("CIM_KVMRedirectionSAP.RequestStateChange", rv)
		}
		if err != nil {
			return fmt.Errorf("setting KVM: %w", err)
		}
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.RedirectionService.Put(redirection.RedirectionRequest{
				CreationClassName: red.CreationClassName, ElementName: red.ElementName, EnabledState: redirection.EnabledState(state),
				ListenerEnabled: listener, Name: red.Name, SystemCreationClassName: red.SystemCreationClassName,
				SystemName: red.SystemName,
			})
			return err
		}); err != nil {
			return fmt.Errorf("enabling the redirection listener: %w", err)
		}
		did = append(did, fmt.Sprintf("KVM %v, SOL %v, IDER %v", kvmOn, sol, ider))
	}
	consent := userConsent(c.p.UserConsent, c.t.ControlMode)
	if int(opt.OptInRequired) != consent {
		if err := c.do(ctx, func(m wsman.Messages) error {
			_, err := m.IPS.OptInService.Put(optin.OptInServiceRequest{
				CanModifyOptInPolicy: opt.CanModifyOptInPolicy, CreationClassName: opt.CreationClassName,
				ElementName: opt.ElementName, Name: opt.Name, OptInCodeTimeout: opt.OptInCodeTimeout,
				OptInDisplayTimeout: opt.OptInDisplayTimeout, OptInRequired: consent, OptInState: opt.OptInState,
				SystemName: opt.SystemName, SystemCreationClassName: opt.SystemCreationClassName,
			})
			return err
		}); err != nil {
			return fmt.Errorf("setting user consent: %w", err)
		}
		did = append(did, fmt.Sprintf("user consent %d", consent))
	}
	if len(did) == 0 {
		c.j.Skipped(ctx, step, "redirection and user consent already as required")
	} else {
		c.j.OK(ctx, step, strings.Join(did, "; "))
	}
	return nil
}
