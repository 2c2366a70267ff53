package wsman

import (
	"strconv"

	"github.com/amtd-project/amtd/sim/firmware"
)

// ---- AMT_RedirectionService ----

func redirectionInstance(s *S) *Instance {
	return service(NewInstance("AMT_RedirectionService"), "Intel(r) AMT Redirection Service").
		I("EnabledState", int64(s.Redirection.EnabledState)).B("ListenerEnabled", s.Redirection.ListenerEnabled)
}

func redirectionService() *Class {
	return &Class{
		Name: "AMT_RedirectionService",
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			c.FW.View(func(s *S) { in = redirectionInstance(s) })
			return []*Instance{in}, nil
		},
		Put: func(c *Call, _ *Instance) (*Instance, error) {
			var out *Instance
			err := c.FW.Update(func(s *S) error {
				if b, ok := c.BoolParam("ListenerEnabled"); ok {
					s.Redirection.ListenerEnabled = b
				} else if _, present := c.Param("ListenerEnabled"); present {
					return FaultInvalidRepresentation()
				}
				out = redirectionInstance(s)
				return nil
			})
			return out, err
		},
		Methods: map[string]Method{
			"RequestStateChange": func(c *Call) (*Output, error) {
				st, ok := c.IntParam("RequestedState")
				if !ok || st < 32768 || st > 32771 {
					return RV(cimInvalidParameter), nil
				}
				var old int
				err := c.FW.Update(func(s *S) error {
					old, s.Redirection.EnabledState = s.Redirection.EnabledState, int(st)
					return nil
				})
				if err != nil {
					return nil, err
				}
				// IDE-R is bit 0, SOL bit 1 of the state above 32768
				was, now := old-32768, int(st)-32768
				for _, f := range []struct {
					bit     int
					on, off int
					name    string
				}{{1, 2, 3, "IDE-R"}, {2, 6, 7, "SoL"}} {
					switch {
					case now&f.bit != 0 && was&f.bit == 0:
						c.audit(firmware.AuditRedirectionManager, f.on, f.name+" enabled")
					case now&f.bit == 0 && was&f.bit != 0:
						c.audit(firmware.AuditRedirectionManager, f.off, f.name+" disabled")
					}
				}
				return RV(0), nil
			},
		},
	}
}

// ---- CIM_KVMRedirectionSAP ----

// kvmEnabledState: 2 enabled (a session runs), 6 enabled but offline (the
// normal "enabled" report of real firmware), 3 disabled.
func kvmInstance(s *S, sessions int) *Instance {
	state := int64(3)
	if s.Redirection.KVMEnabled {
		state = 6
		if sessions > 0 {
			state = 2
		}
	}
	return NewInstance("CIM_KVMRedirectionSAP").S("CreationClassName", "CIM_KVMRedirectionSAP").
		S("ElementName", "KVM Redirection Service Access Point").I("EnabledState", state).I("KVMProtocol", 4).
		S("Name", "KVM Redirection Service Access Point").I("RequestedState", int64(s.Redirection.KVMRequested)).
		S("SystemCreationClassName", "CIM_ComputerSystem").S("SystemName", "ManagedSystem")
}

func kvmRedirectionSAP() *Class {
	return &Class{
		Name: "CIM_KVMRedirectionSAP",
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			n := c.FW.RedirectionSessions(firmware.RedirKVM)
			c.FW.View(func(s *S) { in = kvmInstance(s, n) })
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"RequestStateChange": func(c *Call) (*Output, error) {
				st, ok := c.IntParam("RequestedState")
				if !ok || (st != 2 && st != 3) {
					return RV(cimInvalidParameter), nil
				}
				var was bool
				err := c.FW.Update(func(s *S) error {
					was = s.Redirection.KVMEnabled
					s.Redirection.KVMEnabled = st == 2
					s.Redirection.KVMRequested = int(st)
					return nil
				})
				if err != nil {
					return nil, err
				}
				switch {
				case st == 2 && !was:
					c.audit(firmware.AuditRedirectionManager, 10, "KVM enabled")
				case st == 3 && was:
					c.audit(firmware.AuditRedirectionManager, 11, "KVM disabled")
				}
				return RV(0), nil
			},
		},
	}
}

// ---- IPS_OptInService ----

const optInAll = 4294967295

func optInInstance(c *Call, s *S) *Instance {
	can := int64(0)
	if s.ControlMode == firmware.ModeACM {
		can = 1
	}
	return service(NewInstance("IPS_OptInService"), "Intel(r) AMT OptIn Service").
		I("CanModifyOptInPolicy", can).I("OptInCodeTimeout", int64(s.OptIn.CodeTimeout)).
		I("OptInDisplayTimeout", int64(s.OptIn.DisplayTimeout)).I("OptInRequired", int64(s.OptIn.Required))
}

func optInService() *Class {
	withState := func(c *Call, in *Instance) *Instance { return in.I("OptInState", int64(c.FW.OptInState())) }
	return &Class{
		Name: "IPS_OptInService",
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			c.FW.View(func(s *S) { in = optInInstance(c, s) })
			return []*Instance{withState(c, in)}, nil
		},
		Put: func(c *Call, _ *Instance) (*Instance, error) {
			var out *Instance
			var policyChanged bool
			err := c.FW.Update(func(s *S) error {
				o := s.OptIn
				if v, ok := c.IntParam("OptInRequired"); ok {
					if v != 0 && v != 1 && v != optInAll {
						return FaultInvalidRepresentation()
					}
					if s.ControlMode != firmware.ModeACM && v == 0 { // consent is mandatory in CCM
						return FaultAccessDenied()
					}
					o.Required = uint32(v)
				}
				if v, ok := c.IntParam("OptInDisplayTimeout"); ok {
					if v < 60 || v > 999 {
						return FaultInvalidRepresentation()
					}
					o.DisplayTimeout = int(v)
				}
				if v, ok := c.IntParam("OptInCodeTimeout"); ok {
					if v < 60 || v > 900 {
						return FaultInvalidRepresentation()
					}
					o.CodeTimeout = int(v)
				}
				policyChanged = o.Required != s.OptIn.Required
				s.OptIn = o
				out = optInInstance(c, s)
				return nil
			})
			if err != nil {
				return nil, err
			}
			if policyChanged {
				c.audit(firmware.AuditUserOptIn, 0, "Opt-in policy changed")
			}
			return withState(c, out), nil
		},
		Methods: map[string]Method{
			"StartOptIn": func(c *Call) (*Output, error) { return RV(c.FW.StartOptIn()), nil },
			"SendOptInCode": func(c *Call) (*Output, error) {
				code, ok := c.IntParam("OptInCode")
				if !ok {
					return RV(firmware.OptInInvalidCode), nil
				}
				rv := c.FW.SendOptInCode(int(code))
				c.audit(firmware.AuditUserOptIn, 1, "Consent code sent")
				return RV(rv), nil
			},
			"CancelOptIn": func(c *Call) (*Output, error) { return RV(c.FW.CancelOptIn()), nil },
		},
	}
}

// ---- IPS_KVMRedirectionSettingData ----

const kvmSettingsID = "Intel(r) KVM Redirection Settings"

func kvmSettingsInstance(s *S) *Instance {
	k := s.KVM
	return NewInstance("IPS_KVMRedirectionSettingData").B("BackToBackFbMode", k.BackToBackFbMode).I("DefaultScreen", int64(k.DefaultScreen)).
		S("ElementName", kvmSettingsID).B("EnabledByMEBx", true).S("InstanceID", kvmSettingsID).
		B("Is5900PortEnabled", k.Is5900PortEnabled).B("OptInPolicy", s.OptIn.Required != firmware.OptInRequiredNone).
		I("OptInPolicyTimeout", int64(k.OptInPolicyTimeout)).S("RFBPassword", "").I("SessionTimeout", int64(k.SessionTimeout))
}

func kvmRedirectionSettingData() *Class {
	return &Class{
		Name: "IPS_KVMRedirectionSettingData",
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			c.FW.View(func(s *S) { in = kvmSettingsInstance(s) })
			return []*Instance{in}, nil
		},
		Put: func(c *Call, _ *Instance) (*Instance, error) {
			screens := len(c.FW.Hardware().Displays)
			var out *Instance
			err := c.FW.Update(func(s *S) error {
				k := s.KVM
				if v, ok := c.IntParam("DefaultScreen"); ok {
					if v < 0 || int(v) >= screens {
						return FaultInvalidRepresentation()
					}
					k.DefaultScreen = int(v)
				}
				if v, ok := c.IntParam("SessionTimeout"); ok {
					if v < 0 || v > 65535 {
						return FaultInvalidRepresentation()
					}
					k.SessionTimeout = int(v)
				}
				if v, ok := c.IntParam("OptInPolicyTimeout"); ok {
					if v < 0 || v > 65535 {
						return FaultInvalidRepresentation()
					}
					k.OptInPolicyTimeout = int(v)
				}
				if v, ok := c.BoolParam("BackToBackFbMode"); ok {
					k.BackToBackFbMode = v
				}
				if pw, _ := c.Param("RFBPassword"); pw != "" {
					// RFB passwords are exactly 8 characters and strong
					if len(pw) != 8 || !firmware.StrongPassword(pw) {
						return FaultInvalidRepresentation()
					}
					k.RFBPasswordSet = true
				}
				if v, ok := c.BoolParam("Is5900PortEnabled"); ok {
					if v && !k.RFBPasswordSet {
						return FaultInvalidRepresentation()
					}
					k.Is5900PortEnabled = v
				}
				s.KVM = k
				out = kvmSettingsInstance(s)
				return nil
			})
			return out, err
		},
		Methods: map[string]Method{
			"TerminateSession": func(c *Call) (*Output, error) { return RV(0), nil },
		},
	}
}

// ---- IPS_ScreenSettingData ----

func screenSettingData() *Class {
	return &Class{
		Name: "IPS_ScreenSettingData",
		Instances: func(c *Call) ([]*Instance, error) {
			disp := c.FW.Hardware().Displays
			var active, rx, ry, ux, uy []string
			for i := range 4 {
				if i < len(disp) {
					d := disp[i]
					active = append(active, "true")
					rx, ry = append(rx, strconv.Itoa(d.Width)), append(ry, strconv.Itoa(d.Height))
					ux, uy = append(ux, strconv.Itoa(d.X)), append(uy, strconv.Itoa(d.Y))
				} else {
					active = append(active, "false")
					rx, ry, ux, uy = append(rx, "0"), append(ry, "0"), append(ux, "-1"), append(uy, "-1")
				}
			}
			in := NewInstance("IPS_ScreenSettingData").S("ElementName", "Intel(r) Screen Settings").S("InstanceID", "Intel(r) Screen Settings").
				Texts("IsActive", active...).I("PrimaryIndex", 1).I("SecondaryIndex", 2).I("TertiaryIndex", 3).I("QuadraryIndex", 4).
				Texts("ResolutionX", rx...).Texts("ResolutionY", ry...).Texts("UpperLeftX", ux...).Texts("UpperLeftY", uy...)
			return []*Instance{in}, nil
		},
	}
}
