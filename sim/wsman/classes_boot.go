package wsman

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/amtd-project/amtd/sim/firmware"
)

// ---- AMT_BootSettingData ----

type bootFieldsT = *firmware.BootSettings

var bootSettingFields = []field[bootFieldsT]{
	fBool("BIOSPause", func(b bootFieldsT) *bool { return &b.BIOSPause }),
	fBool("BIOSSetup", func(b bootFieldsT) *bool { return &b.BIOSSetup }),
	fInt("BootMediaIndex", func(b bootFieldsT) *int { return &b.BootMediaIndex }),
	fBool("ConfigurationDataReset", func(b bootFieldsT) *bool { return &b.ConfigurationDataReset }),
	fBool("EnforceSecureBoot", func(b bootFieldsT) *bool { return &b.EnforceSecureBoot }),
	fInt("FirmwareVerbosity", func(b bootFieldsT) *int { return &b.FirmwareVerbosity }),
	fBool("ForcedProgressEvents", func(b bootFieldsT) *bool { return &b.ForcedProgressEvents }),
	fInt("IDERBootDevice", func(b bootFieldsT) *int { return &b.IDERBootDevice }),
	fBool("LockKeyboard", func(b bootFieldsT) *bool { return &b.LockKeyboard }),
	fBool("LockPowerButton", func(b bootFieldsT) *bool { return &b.LockPowerButton }),
	fBool("LockResetButton", func(b bootFieldsT) *bool { return &b.LockResetButton }),
	fBool("LockSleepButton", func(b bootFieldsT) *bool { return &b.LockSleepButton }),
	fBool("PlatformErase", func(b bootFieldsT) *bool { return &b.PlatformErase }),
	fBool("ReflashBIOS", func(b bootFieldsT) *bool { return &b.ReflashBIOS }),
	fBool("SecureErase", func(b bootFieldsT) *bool { return &b.SecureErase }),
	fInt("UefiBootNumberOfParams", func(b bootFieldsT) *int { return &b.UefiBootNumberOfParams }),
	fBool("UseIDER", func(b bootFieldsT) *bool { return &b.UseIDER }),
	fBool("UseSOL", func(b bootFieldsT) *bool { return &b.UseSOL }),
	fBool("UseSafeMode", func(b bootFieldsT) *bool { return &b.UseSafeMode }),
	fBool("UserPasswordBypass", func(b bootFieldsT) *bool { return &b.UserPasswordBypass }),
}

func bootSettingInstance(c *Call) *Instance {
	var b firmware.BootSettings
	c.FW.View(func(s *S) { b = s.Boot.Settings })
	ocr := c.FW.OCRSupported()
	in := render(NewInstance("AMT_BootSettingData"), bootSettingFields, &b).
		Texts("BIOSLastStatus", "2", "0").I("BootguardStatus", 127).
		S("ElementName", "Intel(r) AMT Boot Configuration Settings").S("InstanceID", "Intel(r) AMT:BootSettingData 0").
		B("OptionsCleared", b.OptionsCleared).S("OwningEntity", "Intel(r) AMT").B("RPEEnabled", ocr).S("RSEPassword", "").
		B("SecureBootControlEnabled", ocr).B("UEFIHTTPSBootEnabled", ocr).B("UEFILocalPBABootEnabled", ocr).B("WinREBootEnabled", ocr)
	if b.UefiBootParametersArray != "" {
		in.S("UefiBootParametersArray", b.UefiBootParametersArray)
	}
	return in
}

func bootSettingData() *Class {
	return &Class{
		Name: "AMT_BootSettingData",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{bootSettingInstance(c)}, nil
		},
		Put: func(c *Call, _ *Instance) (*Instance, error) {
			var b firmware.BootSettings
			c.FW.View(func(s *S) { b = s.Boot.Settings })
			if err := apply(c.Req.Body, bootSettingFields, &b); err != nil {
				return nil, err
			}
			if v, ok := c.Param("UefiBootParametersArray"); ok {
				b.UefiBootParametersArray = strings.TrimSpace(v)
			}
			if b.UefiBootParametersArray != "" || b.UefiBootNumberOfParams != 0 {
				raw, err := base64.StdEncoding.DecodeString(b.UefiBootParametersArray)
				if err != nil {
					return nil, FaultInvalidRepresentation()
				}
				n, err := CountUEFIBootParams(raw)
				if err != nil || n != b.UefiBootNumberOfParams {
					return nil, FaultInvalidRepresentation()
				}
			}
			if b.BootMediaIndex < 0 || b.FirmwareVerbosity < 0 || b.FirmwareVerbosity > 3 || (b.IDERBootDevice != 0 && b.IDERBootDevice != 1) {
				return nil, FaultInvalidRepresentation()
			}
			if err := c.FW.SetBootSettings(b, c.initiator()); err != nil {
				if errors.Is(err, firmware.ErrBootOptionConflict) {
					return nil, FaultInvalidRepresentation()
				}
				return nil, err
			}
			return bootSettingInstance(c), nil
		},
	}
}

// Errors of the UEFI boot parameter TLV parser.
var errUEFIParams = errors.New("wsman: malformed UEFI boot parameters")

// CountUEFIBootParams parses AMT_BootSettingData.UefiBootParametersArray
// (decoded): entries of u16le vendor (0x8086), u16le type, u32le length and
// the value (spec/mps.md §6.5). It returns the number of entries.
func CountUEFIBootParams(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if len(b) < 8 {
			return 0, errUEFIParams
		}
		vendor := binary.LittleEndian.Uint16(b)
		l := binary.LittleEndian.Uint32(b[4:])
		if vendor != 0x8086 || l > 1024 || uint64(len(b)-8) < uint64(l) {
			return 0, errUEFIParams
		}
		b = b[8+l:]
		n++
	}
	return n, nil
}

// ---- CIM_BootConfigSetting ----

func bootConfigSetting() *Class {
	return &Class{
		Name: "CIM_BootConfigSetting",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{NewInstance("CIM_BootConfigSetting").S("ElementName", "Intel(r) AMT: Boot Configuration").
				S("InstanceID", firmware.BootConfigInstance)}, nil
		},
		Methods: map[string]Method{
			"ChangeBootOrder": func(c *Call) (*Output, error) {
				var source string
				// "Source" (AMT 5.0 and earlier: "source")
				e := c.Req.Body.Child("Source")
				if e == nil {
					e = c.Req.Body.Child("source")
				}
				if e != nil {
					r := ParseEPR(e)
					if r == nil {
						return RV(firmware.PTInvalidParameter), nil
					}
					source, _ = r.Selector("InstanceID")
					if source == "" {
						return RV(firmware.PTInvalidParameter), nil
					}
				}
				rv, err := c.FW.ChangeBootOrder(source)
				if errors.Is(err, firmware.ErrConsentRequired) {
					return nil, FaultAccessDenied()
				}
				return RV(rv), err
			},
		},
	}
}

// ---- CIM_BootService ----

func bootService() *Class {
	return &Class{
		Name: "CIM_BootService",
		Instances: func(c *Call) ([]*Instance, error) {
			var st int
			c.FW.View(func(s *S) { st = s.Boot.ServiceState })
			return []*Instance{service(NewInstance("CIM_BootService"), "Intel(r) AMT Boot Service").I("EnabledState", int64(st)).
				I("OperationalStatus", 0).I("RequestedState", 12)}, nil
		},
		Methods: map[string]Method{
			"SetBootConfigRole": func(c *Call) (*Output, error) {
				id, _ := c.RefParam("BootConfigSetting").Selector("InstanceID")
				role, ok := c.IntParam("Role")
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				return RV(c.FW.SetBootConfigRole(id, int(role))), nil
			},
			"RequestStateChange": func(c *Call) (*Output, error) {
				st, ok := c.IntParam("RequestedState")
				if !ok {
					return RV(cimInvalidParameter), nil
				}
				if !c.FW.OCRSupported() {
					return RV(cimNotSupported), nil
				}
				return RV(c.FW.SetBootServiceState(int(st))), nil
			},
		},
	}
}

// ---- CIM_BootSourceSetting ----

func bootSourceSetting() *Class {
	return &Class{
		Name: "CIM_BootSourceSetting",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			for _, s := range c.FW.BootSources() {
				in := NewInstance("CIM_BootSourceSetting").S("ElementName", "Intel(r) AMT: Boot Source").I("FailThroughSupported", 2).
					S("InstanceID", s.InstanceID).S("StructuredBootString", s.StructuredBootString)
				if s.BIOSBootString != "" {
					in.S("BIOSBootString", s.BIOSBootString).S("BootString", s.BootString)
				}
				out = append(out, in)
			}
			return out, nil
		},
	}
}
