package wsman

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/amtd-project/amtd/sim/firmware"
)

type S = firmware.State

// ---- AMT_GeneralSettings ----

var generalFields = []field[*S]{
	fInt("AMTNetworkEnabled", func(s *S) *int { return &s.Network.AMTNetworkEnabled }),
	fInt("DDNSPeriodicUpdateInterval", func(s *S) *int { return &s.Network.DDNSPeriodicInterval }),
	fInt("DDNSTTL", func(s *S) *int { return &s.Network.DDNSTTL }),
	fBool("DDNSUpdateByDHCPServerEnabled", func(s *S) *bool { return &s.Network.DDNSUpdateByDHCPServer }),
	fBool("DDNSUpdateEnabled", func(s *S) *bool { return &s.Network.DDNSUpdateEnabled }),
	fConst("DHCPSyncRequiresHostname", func(*S) string { return "1" }),
	fConst("DHCPv6ConfigurationTimeout", func(*S) string { return "0" }),
	fConst("DigestRealm", func(s *S) string { return s.Realm }),
	fStr("DomainName", func(s *S) *string { return &s.Network.DomainName }),
	fConst("ElementName", func(*S) string { return "Intel(r) AMT: General Settings" }),
	fStr("HostName", func(s *S) *string { return &s.Network.HostName }),
	fStr("HostOSFQDN", func(s *S) *string { return &s.Network.HostOSFQDN }),
	fInt("IdleWakeTimeout", func(s *S) *int { return &s.Network.IdleWakeTimeout }),
	fConst("InstanceID", func(*S) string { return "Intel(r) AMT: General Settings" }),
	fConst("NetworkInterfaceEnabled", func(*S) string { return "true" }),
	fBool("PingResponseEnabled", func(s *S) *bool { return &s.Network.PingResponseEnabled }),
	fConst("PowerSource", func(*S) string { return "0" }),
	fInt("PreferredAddressFamily", func(s *S) *int { return &s.Network.PreferredAddressFamily }),
	fInt("PresenceNotificationInterval", func(s *S) *int { return &s.Network.PresenceNotification }),
	fInt("PrivacyLevel", func(s *S) *int { return &s.Network.PrivacyLevel }),
	fBool("RmcpPingResponseEnabled", func(s *S) *bool { return &s.Network.RmcpPingResponseEnabled }),
	fBool("SharedFQDN", func(s *S) *bool { return &s.Network.SharedFQDN }),
	fConst("ThunderboltDockEnabled", func(*S) string { return "0" }),
	fBool("WsmanOnlyMode", func(s *S) *bool { return &s.Network.WsmanOnlyMode }),
}

func generalSettingsInstance(s *S) *Instance {
	return render(NewInstance("AMT_GeneralSettings"), generalFields, s)
}

func generalSettings() *Class {
	return &Class{
		Name: "AMT_GeneralSettings",
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			c.FW.View(func(s *S) { in = generalSettingsInstance(s) })
			return []*Instance{in}, nil
		},
		Put: func(c *Call, _ *Instance) (*Instance, error) {
			var out *Instance
			err := c.FW.Update(func(s *S) error {
				tmp := *s
				if err := apply(c.Req.Body, generalFields, &tmp); err != nil {
					return err
				}
				if len(tmp.Network.HostName) > 63 || len(tmp.Network.DomainName) > 191 || strings.ContainsAny(tmp.Network.HostName, " ./") ||
					tmp.Network.AMTNetworkEnabled < 0 || tmp.Network.AMTNetworkEnabled > 1 {
					return FaultInvalidRepresentation()
				}
				s.Network = tmp.Network
				out = generalSettingsInstance(s)
				return nil
			})
			return out, err
		},
		LSA: []string{OpGet, OpEnumerate},
	}
}

// ---- IPS_HostBasedSetupService ----

func hostBasedSetupInstance(c *Call) *Instance {
	nonce := c.FW.ConfigurationNonce()
	chain := c.FW.CertChainStatus()
	in := service(NewInstance("IPS_HostBasedSetupService"), "Intel(r) AMT Host Based Setup Service")
	c.FW.View(func(s *S) {
		in.L("AllowedControlModes", "2", "1").
			I("CertChainStatus", int64(chain)).
			S("ConfigurationNonce", base64.StdEncoding.EncodeToString(nonce)).
			I("CurrentControlMode", int64(s.ControlMode))
	})
	return in
}

func hostBasedSetup() *Class {
	return &Class{
		Name:   "IPS_HostBasedSetupService",
		Common: true,
		Get:    func(c *Call) (*Instance, error) { return hostBasedSetupInstance(c), nil },
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{hostBasedSetupInstance(c)}, nil
		},
		Methods: map[string]Method{
			"Setup": func(c *Call) (*Output, error) {
				enc, _ := c.IntParam("NetAdminPassEncryptionType")
				pw, _ := c.Param("NetworkAdminPassword")
				return RV(c.FW.Setup(int(enc), pw)), nil
			},
			"AdminSetup": func(c *Call) (*Output, error) {
				enc, _ := c.IntParam("NetAdminPassEncryptionType")
				pw, _ := c.Param("NetworkAdminPassword")
				nonce, _ := c.Param("McNonce")
				alg, _ := c.IntParam("SigningAlgorithm")
				sig, _ := c.Param("DigitalSignature")
				return RV(c.FW.AdminSetup(int(enc), pw, nonce, int(alg), sig)), nil
			},
			"UpgradeClientToAdmin": func(c *Call) (*Output, error) {
				nonce, _ := c.Param("McNonce")
				alg, _ := c.IntParam("SigningAlgorithm")
				sig, _ := c.Param("DigitalSignature")
				return RV(c.FW.UpgradeClientToAdmin(nonce, int(alg), sig)), nil
			},
			"AddNextCertInChain": func(c *Call) (*Output, error) {
				cert, _ := c.Param("NextCertificate")
				leaf, ok1 := c.BoolParam("IsLeafCertificate")
				root, ok2 := c.BoolParam("IsRootCertificate")
				if !ok1 || !ok2 {
					return RV(firmware.ChainInvalidParam), nil
				}
				return RV(c.FW.AddNextCertInChain(cert, leaf, root)), nil
			},
		},
		LSA: []string{"*"},
	}
}

// ---- AMT_SetupAndConfigurationService ----

func setupAndConfigurationInstance(s *S) *Instance {
	mode := int64(1)
	if s.ControlMode == firmware.ModeCCM {
		mode = 4
	}
	// The OTP (legacy.md §8) is readable in the IN state only; unset or
	// unreadable it reads as 32 zero bytes (as go-wsman-messages' fixtures).
	otp := make([]byte, 32)
	if s.ProvisioningState == firmware.StateIn && len(s.Legacy.OTP) > 0 {
		otp = s.Legacy.OTP
	}
	return service(NewInstance("AMT_SetupAndConfigurationService"), "Intel(r) AMT Setup and Configuration Service").
		I("EnabledState", 5).
		I("PasswordModel", 1).
		I("ProvisioningMode", mode).
		S("ProvisioningServerOTP", base64.StdEncoding.EncodeToString(otp)).
		I("ProvisioningState", int64(s.ProvisioningState)).
		I("RequestedState", 12).
		B("ZeroTouchConfigurationEnabled", !s.Legacy.RemoteConfigDisabled)
}

func setupAndConfiguration() *Class {
	return &Class{
		Name:   "AMT_SetupAndConfigurationService",
		Common: true,
		Instances: func(c *Call) ([]*Instance, error) {
			var in *Instance
			c.FW.View(func(s *S) { in = setupAndConfigurationInstance(s) })
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"CommitChanges": func(c *Call) (*Output, error) { return RV(c.FW.CommitChanges()), nil },
			"SetMEBxPassword": func(c *Call) (*Output, error) {
				pw, _ := c.Param("Password")
				return RV(c.FW.SetMEBxPassword(pw)), nil
			},
			"Unprovision": func(c *Call) (*Output, error) {
				mode, ok := c.IntParam("ProvisioningMode")
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				return RV(c.FW.UnprovisionWSMAN(int(mode))), nil
			},
			"PartialUnprovision": func(c *Call) (*Output, error) { return RV(c.FW.PartialUnprovision()), nil },
			"GetUuid": func(c *Call) (*Output, error) {
				u := c.FW.UUID()
				return (&Output{}).With("UUID", base64.StdEncoding.EncodeToString(u[:])), nil
			},
		},
		LSA: []string{OpGet, OpEnumerate, "GetUuid"},
	}
}

// ---- AMT_AuthorizationService ----

func authorization() *Class {
	return &Class{
		Name: "AMT_AuthorizationService",
		Instances: func(c *Call) ([]*Instance, error) {
			in := service(NewInstance("AMT_AuthorizationService"), "Intel(r) AMT Authorization Service").
				I("AllowHttpQopAuthOnly", 1).I("EnabledState", 5).I("RequestedState", 12)
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"SetAdminAclEntryEx": func(c *Call) (*Output, error) {
				user, _ := c.Param("Username")
				pw, _ := c.Param("DigestPassword")
				return RV(c.FW.SetAdminACL(user, pw)), nil
			},
			"GetAdminAclEntry": func(c *Call) (*Output, error) {
				var user string
				c.FW.View(func(s *S) { user = s.Admin.Username })
				return (&Output{}).With("Username", user), nil
			},
			"AddUserAclEntryEx": func(c *Call) (*Output, error) {
				user, _ := c.Param("DigestUsername")
				pw, _ := c.Param("DigestPassword")
				perm, realms, rv := aclParams(c)
				if rv != firmware.PTSuccess {
					return RV(rv), nil
				}
				h, rv := c.FW.AddUser(strings.TrimSpace(user), pw, perm, realms)
				if rv != firmware.PTSuccess {
					return RV(rv), nil
				}
				return (&Output{ReturnValue: rv}).With("Handle", strconv.Itoa(h)), nil
			},
			"UpdateUserAclEntryEx": func(c *Call) (*Output, error) {
				h, ok := c.IntParam("Handle")
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				user, _ := c.Param("DigestUsername")
				pw, _ := c.Param("DigestPassword")
				perm, realms, rv := aclParams(c)
				if rv != firmware.PTSuccess {
					return RV(rv), nil
				}
				return RV(c.FW.UpdateUser(int(h), strings.TrimSpace(user), pw, perm, realms, c.initiator())), nil
			},
			"EnumerateUserAclEntries": func(c *Call) (*Output, error) {
				start := int64(1)
				if v, ok := c.IntParam("StartIndex"); ok {
					start = v
				}
				handles := c.FW.UserHandles()
				if start < 1 || (start > int64(len(handles)) && len(handles) > 0) {
					return RV(firmware.PTInvalidIndex), nil
				}
				page := handles[min(int(start-1), len(handles)):]
				if len(page) > maxACLHandles {
					page = page[:maxACLHandles]
				}
				hs := make([]string, len(page))
				for i, h := range page {
					hs[i] = strconv.Itoa(h)
				}
				return (&Output{}).With("TotalCount", strconv.Itoa(len(handles))).
					With("HandlesCount", strconv.Itoa(len(page))).WithList("Handles", hs...), nil
			},
			"GetUserAclEntryEx": func(c *Call) (*Output, error) {
				h, ok := c.IntParam("Handle")
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				u, ok := c.FW.GetUser(int(h))
				if !ok {
					return RV(firmware.PTInvalidHandle), nil
				}
				rs := make([]string, len(u.Realms))
				for i, r := range u.Realms {
					rs[i] = strconv.Itoa(r)
				}
				return (&Output{}).With("DigestUsername", u.Username).
					With("AccessPermission", strconv.Itoa(u.AccessPermission)).WithList("Realms", rs...), nil
			},
			"RemoveUserAclEntry": func(c *Call) (*Output, error) {
				h, ok := c.IntParam("Handle")
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				return RV(c.FW.RemoveUser(int(h), c.initiator())), nil
			},
		},
	}
}

// maxACLHandles is how many handles EnumerateUserAclEntries returns at once.
const maxACLHandles = 50

// aclParams reads AccessPermission and Realms of an Add/Update call.
func aclParams(c *Call) (perm int, realms []int, rv uint32) {
	p, ok := c.IntParam("AccessPermission")
	if !ok {
		return 0, nil, firmware.PTInvalidParameter
	}
	for _, r := range c.Params("Realms") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil {
			return 0, nil, firmware.PTInvalidParameter
		}
		realms = append(realms, n)
	}
	return int(p), realms, firmware.PTSuccess
}

// ---- CIM_SoftwareIdentity ----

func softwareIdentity() *Class {
	return &Class{
		Name: "CIM_SoftwareIdentity",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			for _, v := range c.FW.SoftwareIdentity() {
				out = append(out, NewInstance("CIM_SoftwareIdentity").S("InstanceID", v.Description).B("IsEntity", true).S("VersionString", v.Version))
			}
			return out, nil
		},
		LSA: []string{OpGet, OpEnumerate},
	}
}

// ---- AMT_BootCapabilities ----

func bootCapabilities() *Class {
	return &Class{
		Name: "AMT_BootCapabilities",
		Instances: func(c *Call) ([]*Instance, error) {
			in := NewInstance("AMT_BootCapabilities").S("ElementName", "Intel(r) AMT: Boot Capabilities").S("InstanceID", "Intel(r) AMT:BootCapabilities 0")
			for _, p := range []struct {
				n string
				v bool
			}{{"BIOSPause", false}, {"BIOSReflash", true}, {"BIOSSecureBoot", true}, {"BIOSSetup", true}, {"ConfigurationDataReset", false},
				{"ForceCDorDVDBoot", true}, {"ForceDiagnosticBoot", false}, {"ForceHardDriveBoot", true}, {"ForceHardDriveSafeModeBoot", false},
				{"ForcePXEBoot", true}, {"ForcedProgressEvents", true}, {"IDER", true}, {"KeyboardLock", true}, {"PowerButtonLock", false},
				{"ResetButtonLock", false}, {"SOL", true}, {"SecureErase", false}, {"SleepButtonLock", false}, {"UserPasswordBypass", true},
				{"VerbosityQuiet", false}, {"VerbosityScreenBlank", false}, {"VerbosityVerbose", false},
				{"UEFIWiFiCoExistenceAndProfileShare", true}} {
				in.B(p.n, p.v)
			}
			if c.FW.OCRSupported() { // One-Click Recovery (AMT 16+)
				in.B("AMTSecureBootControl", true).B("ForceUEFIHTTPSBoot", true).B("ForceUEFIPBABoot", true).B("ForceWinREBoot", true)
			}
			return []*Instance{in}, nil
		},
	}
}
