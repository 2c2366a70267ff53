package wsman

import (
	"strconv"

	"github.com/amtd-project/amtd/sim/firmware"
)

// initiator is the audit identity of the caller.
func (c *Call) initiator() firmware.Initiator {
	return firmware.DigestInitiator(c.Session.User, c.Session.Addr)
}

// audit records an event caused by the caller.
func (c *Call) audit(appID, eventID int, desc string) {
	in := c.initiator()
	c.FW.Audit(firmware.AuditRecord{AppID: appID, EventID: eventID, InitiatorType: in.Type, Initiator: in.User, NetAddress: in.Addr, Event: desc})
}

func (c *Call) amtMajor() int {
	var v string
	c.FW.View(func(s *S) { v = s.Versions.AMT })
	n := 0
	for _, ch := range v {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int(ch-'0')
	}
	return n
}

// computerSystemRef is the host (CIM_ComputerSystem ManagedSystem).
func computerSystemRef() *EPR {
	return Ref("CIM_ComputerSystem", "CreationClassName", "CIM_ComputerSystem", "Name", "ManagedSystem")
}

const powerServiceName = "Intel(r) AMT Power Management Service"

func powerServiceRef() *EPR {
	return Ref("CIM_PowerManagementService", "CreationClassName", "CIM_PowerManagementService", "Name", powerServiceName,
		"SystemCreationClassName", "CIM_ComputerSystem", "SystemName", "Intel(r) AMT")
}

// ---- IPS_PowerManagementService ----

func ipsPowerManagementService() *Class {
	return &Class{
		Name: "IPS_PowerManagementService",
		Instances: func(c *Call) ([]*Instance, error) {
			in := service(NewInstance("IPS_PowerManagementService"), powerServiceName).I("EnabledState", 5).I("RequestedState", 12)
			// real firmware omits OSPowerSavingState while the host is off
			if st, ok := c.FW.OSPowerSavingState(); ok {
				in.I("OSPowerSavingState", int64(st))
			}
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"RequestOSPowerSavingStateChange": func(c *Call) (*Output, error) {
				st, ok := c.IntParam("OSPowerSavingState")
				if !ok {
					return RV(firmware.PowerInvalidParam), nil
				}
				return RV(c.FW.RequestOSPowerSavingStateChange(int(st), c.initiator())), nil
			},
		},
	}
}

// ---- CIM_PowerManagementService ----

func cimPowerManagementService() *Class {
	return &Class{
		Name: "CIM_PowerManagementService",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{service(NewInstance("CIM_PowerManagementService"), powerServiceName).I("EnabledState", 5).I("RequestedState", 12)}, nil
		},
		Methods: map[string]Method{
			"RequestPowerStateChange": func(c *Call) (*Output, error) {
				st, ok := c.IntParam("PowerState")
				if !ok {
					return RV(firmware.PowerInvalidParam), nil
				}
				if me := c.RefParam("ManagedElement"); me != nil {
					if n, _ := me.Selector("Name"); n != "" && n != "ManagedSystem" {
						return RV(firmware.PowerInvalidParam), nil
					}
				}
				return RV(c.FW.RequestPowerStateChange(int(st), c.initiator())), nil
			},
		},
	}
}

// ---- CIM_AssociatedPowerManagementService (also what
// CIM_ServiceAvailableToElement enumerates) ----

func associatedPowerInstance(c *Call) *Instance {
	st := c.FW.PowerState()
	var avail []string
	for _, p := range firmware.AvailablePowerStates(st, c.amtMajor()) {
		avail = append(avail, strconv.Itoa(p))
	}
	return NewInstance("CIM_AssociatedPowerManagementService").L("AvailableRequestedPowerStates", avail...).
		I("PowerState", int64(st)).R("ServiceProvided", powerServiceRef()).R("UserOfService", computerSystemRef())
}

func associatedPowerManagementService() *Class {
	return &Class{
		Name: "CIM_AssociatedPowerManagementService",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{associatedPowerInstance(c)}, nil
		},
	}
}

func serviceAvailableToElement() *Class {
	return &Class{
		Name: "CIM_ServiceAvailableToElement",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{associatedPowerInstance(c)}, nil
		},
	}
}

// ---- CIM_PowerManagementCapabilities ----

func powerManagementCapabilities() *Class {
	return &Class{
		Name: "CIM_PowerManagementCapabilities",
		Instances: func(c *Call) ([]*Instance, error) {
			supported := []string{"5", "8", "2", "10", "11"}
			if c.amtMajor() >= 10 {
				supported = append(supported, "12", "14", "4", "7")
			}
			in := NewInstance("CIM_PowerManagementCapabilities").S("ElementName", "Power Management Capabilities").
				S("InstanceID", "Intel(r) AMT:PowerManagementCapabilities 0").S("OtherPowerChangeCapabilities", "").
				L("PowerChangeCapabilities", "2", "3", "4", "7", "8").
				L("PowerStatesSupported", supported...).L("RequestedPowerStatesSupported", supported...)
			return []*Instance{in}, nil
		},
	}
}

// ---- AMT_SystemPowerScheme ----

// systemPowerScheme lists the platform's power packages; SetPowerScheme on
// an instance (InstanceID selector) selects it.
func systemPowerScheme() *Class {
	return &Class{
		Name: "AMT_SystemPowerScheme",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			for _, p := range c.FW.PowerSchemes() {
				out = append(out, NewInstance("AMT_SystemPowerScheme").S("Description", p.Description).
					S("ElementName", firmware.PowerSchemeElementName).S("InstanceID", p.InstanceID).S("SchemeGUID", p.SchemeGUID()))
			}
			return out, nil
		},
		Methods: map[string]Method{
			"SetPowerScheme": func(c *Call) (*Output, error) {
				target, err := c.engine.selectInstance(c)
				if err != nil {
					return nil, err
				}
				id, _ := target.Get("InstanceID")
				return RV(c.FW.SetPowerScheme(id, c.initiator())), nil
			},
		},
	}
}
