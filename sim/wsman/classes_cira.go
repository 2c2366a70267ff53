package wsman

import (
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/amtd-project/amtd/sim/firmware"
)

const mpsPrefix = "Intel(r) AMT:Management Presence Server "

// Remote access capabilities of the simulated firmware (fixture values).
const (
	maxMPServers    = 6
	maxMpsPerPolicy = 2
	maxPolicies     = 3
)

func mpsRef(name string) *EPR {
	return Ref("AMT_ManagementPresenceRemoteSAP", "CreationClassName", "AMT_ManagementPresenceRemoteSAP", "Name", name,
		"SystemCreationClassName", "CIM_ComputerSystem", "SystemName", "Intel(r) AMT")
}

func policyRef(name string) *EPR {
	return Ref("AMT_RemoteAccessPolicyRule", "CreationClassName", "AMT_RemoteAccessPolicyRule", "PolicyRuleName", name,
		"SystemCreationClassName", "CIM_ComputerSystem", "SystemName", "Intel(r) AMT")
}

var triggerNames = map[int64]string{0: "User Initiated", 1: "Alert", 2: "Periodic"}

// ---- AMT_RemoteAccessService ----

func remoteAccessService() *Class {
	return &Class{
		Name: "AMT_RemoteAccessService",
		Instances: func(c *Call) ([]*Instance, error) {
			in := service(NewInstance("AMT_RemoteAccessService"), "Intel(r) AMT Remote Access Service").
				B("IsRemoteTunnelConnected", false).I("RemoteTunnelKeepAliveTimeout", 4294967295)
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"AddMpServer":               addMpServer,
			"AddRemoteAccessPolicyRule": addRemoteAccessPolicyRule,
		},
	}
}

func addMpServer(c *Call) (*Output, error) {
	access, _ := c.Param("AccessInfo")
	access = strings.TrimSpace(access)
	format, _ := c.IntParam("InfoFormat")
	port, _ := c.IntParam("Port")
	auth, _ := c.IntParam("AuthMethod")
	user, _ := c.Param("Username")
	pw, _ := c.Param("Password")
	cn, _ := c.Param("CN")
	var certID string
	if e := c.Req.Body.Child("Certificate"); e != nil {
		if r := ParseEPR(e); r != nil {
			certID, _ = r.Selector("InstanceID")
		} else {
			certID = e.Text
		}
	}
	if !validAccessInfo(access, int(format)) || port < 1 || port > 65535 || len(cn) > 255 {
		return RV(firmware.PTInvalidParameter), nil
	}
	switch auth {
	case 1: // mutual authentication
		if certID == "" {
			return RV(firmware.PTInvalidParameter), nil
		}
	case 2: // username/password
		if user == "" || len(user) > 16 || pw == "" || len(pw) > 16 {
			return RV(firmware.PTInvalidParameter), nil
		}
	default:
		return RV(firmware.PTInvalidParameter), nil
	}
	rv := firmware.PTSuccess
	var name string
	err := c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error {
		for _, m := range s.CIRA.MPServers {
			if strings.EqualFold(m.AccessInfo, access) && m.Port == int(port) {
				rv = firmware.PTDuplicate
				return nil
			}
		}
		if len(s.CIRA.MPServers) >= maxMPServers {
			rv = firmware.PTMaxLimitReached
			return nil
		}
		if certID != "" {
			h, ok := firmware.ParseCertInstanceID(certID)
			if !ok || !slices.ContainsFunc(s.Certs, func(sc firmware.StoredCert) bool { return sc.Handle == h }) {
				rv = firmware.PTInvalidParameter
				return nil
			}
		}
		name = mpsPrefix + strconv.Itoa(s.CIRA.NextMPServer)
		s.CIRA.NextMPServer++
		s.CIRA.MPServers = append(s.CIRA.MPServers, firmware.MPServer{Name: name, AccessInfo: access, InfoFormat: int(format), Port: int(port),
			AuthMethod: int(auth), Username: user, Password: pw, CN: cn, Certificate: certID})
		return nil
	})
	if err != nil || rv != firmware.PTSuccess {
		return RV(rv), err
	}
	return (&Output{}).WithRef("MpServer", mpsRef(name)), nil
}

func addRemoteAccessPolicyRule(c *Call) (*Output, error) {
	trigger, ok := c.IntParam("Trigger")
	name := triggerNames[trigger]
	if !ok || name == "" {
		return RV(firmware.PTInvalidParameter), nil
	}
	life, _ := c.IntParam("TunnelLifeTime")
	ext, _ := c.Param("ExtendedData")
	ext = strings.TrimSpace(ext)
	data, err := base64.StdEncoding.DecodeString(ext)
	if err != nil || len(data) > 32 || life < 0 {
		return RV(firmware.PTInvalidParameter), nil
	}
	if trigger == 2 && len(data) < 8 { // periodic: type + interval (or hour, minute)
		return RV(firmware.PTInvalidParameter), nil
	}
	var servers []string
	for _, e := range c.Req.Body.All("MpServer") {
		r := ParseEPR(e)
		n, _ := r.Selector("Name")
		if n == "" {
			return RV(firmware.PTInvalidParameter), nil
		}
		servers = append(servers, n)
	}
	if len(servers) == 0 || len(servers) > maxMpsPerPolicy {
		return RV(firmware.PTInvalidParameter), nil
	}
	rv := firmware.PTSuccess
	err = c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error {
		for _, n := range servers {
			if !slices.ContainsFunc(s.CIRA.MPServers, func(m firmware.MPServer) bool { return m.Name == n }) {
				rv = firmware.PTInvalidParameter
				return nil
			}
		}
		if slices.ContainsFunc(s.CIRA.Policies, func(p firmware.PolicyRule) bool { return p.Name == name }) {
			rv = firmware.PTDuplicate
			return nil
		}
		if len(s.CIRA.Policies) >= maxPolicies {
			rv = firmware.PTMaxLimitReached
			return nil
		}
		s.CIRA.Policies = append(s.CIRA.Policies, firmware.PolicyRule{Name: name, Trigger: int(trigger), TunnelLifeTime: int(life), ExtendedData: ext})
		for i, n := range servers {
			s.CIRA.AppliesTo = append(s.CIRA.AppliesTo, firmware.AppliesTo{Policy: name, MPServer: n, OrderOfAccess: i})
		}
		return nil
	})
	if err != nil || rv != firmware.PTSuccess {
		return RV(rv), err
	}
	return (&Output{}).WithRef("PolicyRule", policyRef(name)), nil
}

// ---- AMT_ManagementPresenceRemoteSAP ----

func managementPresenceRemoteSAP() *Class {
	return &Class{
		Name: "AMT_ManagementPresenceRemoteSAP",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			c.FW.View(func(s *S) {
				for _, m := range s.CIRA.MPServers {
					in := NewInstance("AMT_ManagementPresenceRemoteSAP").S("AccessInfo", m.AccessInfo).
						S("CreationClassName", "AMT_ManagementPresenceRemoteSAP").S("ElementName", "Intel(r) AMT:Management Presence Server").
						I("InfoFormat", int64(m.InfoFormat)).S("Name", m.Name).I("Port", int64(m.Port)).
						S("SystemCreationClassName", "CIM_ComputerSystem").S("SystemName", "Intel(r) AMT")
					if m.CN != "" {
						in.S("CN", m.CN)
					}
					out = append(out, in)
				}
			})
			return out, nil
		},
		Delete: func(c *Call, target *Instance) error {
			name, _ := target.Get("Name")
			return c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error {
				s.CIRA.MPServers = slices.DeleteFunc(s.CIRA.MPServers, func(m firmware.MPServer) bool { return m.Name == name })
				s.CIRA.AppliesTo = slices.DeleteFunc(s.CIRA.AppliesTo, func(a firmware.AppliesTo) bool { return a.MPServer == name })
				// a policy without a server is gone too
				s.CIRA.Policies = slices.DeleteFunc(s.CIRA.Policies, func(p firmware.PolicyRule) bool {
					return !slices.ContainsFunc(s.CIRA.AppliesTo, func(a firmware.AppliesTo) bool { return a.Policy == p.Name })
				})
				return nil
			})
		},
	}
}

// ---- AMT_RemoteAccessPolicyRule ----

func remoteAccessPolicyRule() *Class {
	return &Class{
		Name: "AMT_RemoteAccessPolicyRule",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			c.FW.View(func(s *S) {
				for _, p := range s.CIRA.Policies {
					out = append(out, NewInstance("AMT_RemoteAccessPolicyRule").S("CreationClassName", "AMT_RemoteAccessPolicyRule").
						S("ElementName", "Inte(r) AMT:Remote Access Policy"). // sic, as real firmware
						S("ExtendedData", p.ExtendedData).S("PolicyRuleName", p.Name).
						S("SystemCreationClassName", "CIM_ComputerSystem").S("SystemName", "Intel(r) AMT").
						I("Trigger", int64(p.Trigger)).I("TunnelLifeTime", int64(p.TunnelLifeTime)))
				}
			})
			return out, nil
		},
		Delete: func(c *Call, target *Instance) error {
			name, _ := target.Get("PolicyRuleName")
			return c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error {
				s.CIRA.Policies = slices.DeleteFunc(s.CIRA.Policies, func(p firmware.PolicyRule) bool { return p.Name == name })
				s.CIRA.AppliesTo = slices.DeleteFunc(s.CIRA.AppliesTo, func(a firmware.AppliesTo) bool { return a.Policy == name })
				return nil
			})
		},
	}
}

// ---- AMT_RemoteAccessPolicyAppliesToMPS ----

func appliesToInstance(a firmware.AppliesTo) *Instance {
	return NewInstance("AMT_RemoteAccessPolicyAppliesToMPS").R("ManagedElement", mpsRef(a.MPServer)).
		I("MpsType", int64(a.MpsType)).I("OrderOfAccess", int64(a.OrderOfAccess)).R("PolicySet", policyRef(a.Policy))
}

func remoteAccessPolicyAppliesToMPS() *Class {
	return &Class{
		Name: "AMT_RemoteAccessPolicyAppliesToMPS",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			c.FW.View(func(s *S) {
				for _, a := range s.CIRA.AppliesTo {
					out = append(out, appliesToInstance(a))
				}
			})
			return out, nil
		},
		Put: func(c *Call, target *Instance) (*Instance, error) {
			mps, _ := target.Ref("ManagedElement").Selector("Name")
			pol, _ := target.Ref("PolicySet").Selector("PolicyRuleName")
			var out *Instance
			err := c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error {
				i := slices.IndexFunc(s.CIRA.AppliesTo, func(a firmware.AppliesTo) bool { return a.MPServer == mps && a.Policy == pol })
				if i < 0 {
					return FaultInvalidSelectors()
				}
				a := s.CIRA.AppliesTo[i]
				if v, ok := c.IntParam("MpsType"); ok {
					if v < 0 || v > 2 {
						return FaultInvalidRepresentation()
					}
					a.MpsType = int(v)
				}
				if v, ok := c.IntParam("OrderOfAccess"); ok {
					if v < 0 || v >= maxMpsPerPolicy {
						return FaultInvalidRepresentation()
					}
					a.OrderOfAccess = int(v)
				}
				s.CIRA.AppliesTo[i] = a
				out = appliesToInstance(a)
				return nil
			})
			return out, err
		},
		Delete: func(c *Call, target *Instance) error {
			mps, _ := target.Ref("ManagedElement").Selector("Name")
			pol, _ := target.Ref("PolicySet").Selector("PolicyRuleName")
			return c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error {
				s.CIRA.AppliesTo = slices.DeleteFunc(s.CIRA.AppliesTo, func(a firmware.AppliesTo) bool { return a.MPServer == mps && a.Policy == pol })
				return nil
			})
		},
	}
}

// ---- AMT_RemoteAccessCapabilities ----

func remoteAccessCapabilities() *Class {
	return &Class{
		Name: "AMT_RemoteAccessCapabilities",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{NewInstance("AMT_RemoteAccessCapabilities").S("ElementName", "Intel(r) AMT:Remote Access Capabilities").
				S("InstanceID", "Intel(r) AMT:Remote Access Capabilities").I("MaxMpsPerPolicy", maxMpsPerPolicy).
				I("MaxTotalMpServers", maxMPServers).I("MaxTotalPolicies", maxPolicies).I("MaxTotalProxyEntryPoints", 15)}, nil
		},
	}
}

// ---- AMT_UserInitiatedConnectionService ----

func userInitiatedConnection() *Class {
	return &Class{
		Name: "AMT_UserInitiatedConnectionService",
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			c.FW.View(func(s *S) {
				in = service(NewInstance("AMT_UserInitiatedConnectionService"), "Intel(r) AMT User Initiated Connection Service").
					I("EnabledState", int64(s.CIRA.UserInitiatedState))
			})
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"RequestStateChange": func(c *Call) (*Output, error) {
				st, ok := c.IntParam("RequestedState")
				if !ok || st < 32768 || st > 32771 {
					return RV(cimInvalidParameter), nil
				}
				err := c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error { s.CIRA.UserInitiatedState = int(st); return nil })
				return RV(0), err
			},
		},
	}
}

// ---- AMT_EnvironmentDetectionSettingData ----

func environmentDetectionInstance(s *S) *Instance {
	return NewInstance("AMT_EnvironmentDetectionSettingData").I("DetectionAlgorithm", 0).
		L("DetectionStrings", s.CIRA.DetectionStrings...).
		S("ElementName", "Intel(r) AMT Environment Detection Settings").S("InstanceID", "Intel(r) AMT Environment Detection Settings")
}

func environmentDetection() *Class {
	return &Class{
		Name: "AMT_EnvironmentDetectionSettingData",
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			c.FW.View(func(s *S) { in = environmentDetectionInstance(s) })
			return []*Instance{in}, nil
		},
		Put: func(c *Call, _ *Instance) (*Instance, error) {
			var list []string
			for _, v := range c.Params("DetectionStrings") {
				if v = strings.TrimSpace(v); v != "" {
					if len(v) > 192 {
						return nil, FaultInvalidRepresentation()
					}
					list = append(list, v)
				}
			}
			if len(list) > 4 {
				return nil, FaultInvalidRepresentation()
			}
			var out *Instance
			err := c.FW.UpdateNotify(firmware.EventRemoteAccessChanged, func(s *S) error {
				s.CIRA.DetectionStrings = list
				out = environmentDetectionInstance(s)
				return nil
			})
			return out, err
		},
	}
}
