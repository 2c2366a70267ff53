package firmware

import "errors"

// Boot sources (CIM_BootSourceSetting InstanceIDs).
const (
	BootSourceHDD   = "Intel(r) AMT: Force Hard-drive Boot"
	BootSourcePXE   = "Intel(r) AMT: Force PXE Boot"
	BootSourceCD    = "Intel(r) AMT: Force CD/DVD Boot"
	BootSourceHTTPS = "Intel(r) AMT: Force OCR UEFI HTTPS Boot"
	// One-Click Recovery boot options (AMT 16+): the BIOS reports them as
	// numbered options; BIOSBootString tells which is which.
	BootSourceWinRE = "Intel(r) AMT: Force OCR UEFI Boot Option1"
	BootSourcePBA   = "Intel(r) AMT: Force OCR UEFI Boot Option2"
)

// BootConfigInstance is the only CIM_BootConfigSetting.
const BootConfigInstance = "Intel(r) AMT: Boot Configuration 0"

// BootSource describes one CIM_BootSourceSetting instance.
type BootSource struct {
	InstanceID           string
	StructuredBootString string
	BIOSBootString       string // OCR options only
	BootString           string // OCR options only
}

// BootSources lists the boot sources of the platform; One-Click Recovery
// sources exist on AMT 16 and later (their strings are plausible, not
// copied from a device).
func (f *Firmware) BootSources() []BootSource {
	f.mu.Lock()
	major, _ := majorVersion(f.st.Versions.AMT)
	f.mu.Unlock()
	out := []BootSource{
		{InstanceID: BootSourceHDD, StructuredBootString: "CIM:Hard-Disk:1"},
		{InstanceID: BootSourcePXE, StructuredBootString: "CIM:Network:1"},
		{InstanceID: BootSourceCD, StructuredBootString: "CIM:CD/DVD:1"},
	}
	if major >= 16 {
		out = append(out,
			BootSource{InstanceID: BootSourceHTTPS, StructuredBootString: "CIM:Network:2"},
			BootSource{InstanceID: BootSourceWinRE, StructuredBootString: "CIM:Hard-Disk:2",
				BIOSBootString: "Windows Recovery Environment (WinRe)", BootString: `\EFI\Microsoft\Boot\winre.efi`},
			BootSource{InstanceID: BootSourcePBA, StructuredBootString: "CIM:Hard-Disk:3",
				BIOSBootString: "Pre-Boot Authentication (PBA)", BootString: `\EFI\Vendor\pba.efi`},
		)
	}
	return out
}

// OCRSupported reports whether the firmware has One-Click Recovery (AMT 16+).
func (f *Firmware) OCRSupported() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	major, _ := majorVersion(f.st.Versions.AMT)
	return major >= 16
}

// Errors of the boot configuration methods.
var (
	// ErrBootOptionConflict: a boot source and a BIOS-level option
	// (BIOSSetup, BIOSPause, ReflashBIOS) cannot both be set.
	ErrBootOptionConflict = errors.New("firmware: a boot source cannot be combined with BIOS setup, pause or reflash")
	// ErrConsentRequired: the operation needs user consent that was not given.
	ErrConsentRequired = errors.New("firmware: user consent required")
)

// SetBootSettings is AMT_BootSettingData.Put of the writable properties.
func (f *Firmware) SetBootSettings(s BootSettings, by Initiator) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.Boot.Source != "" && (s.BIOSSetup || s.BIOSPause || s.ReflashBIOS) {
		return ErrBootOptionConflict
	}
	s.OptionsCleared = false
	f.st.Boot.Settings = s
	f.auditLocked(AuditRemoteControl, 4, by, bootOptionsData(f.st.Boot.Source, s), "Set boot options")
	f.persistLocked("boot settings")
	return nil
}

// ChangeBootOrder is CIM_BootConfigSetting.ChangeBootOrder: source "" clears
// the order. It returns PTInvalidParameter for an unknown source.
func (f *Firmware) ChangeBootOrder(source string) (uint32, error) {
	if source != "" {
		known := false
		for _, s := range f.BootSources() {
			known = known || s.InstanceID == source
		}
		if !known {
			return PTInvalidParameter, nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if source != "" {
		// AMT 7+: forcing a boot source needs consent when consent is required for everything
		if f.st.OptIn.Required == OptInRequiredAll && !f.consentGivenLocked() {
			return 0, ErrConsentRequired
		}
		st := f.st.Boot.Settings
		if st.BIOSSetup || st.BIOSPause || st.ReflashBIOS {
			return PowerNotReady, nil
		}
	}
	f.st.Boot.Source = source
	f.persistLocked("boot order")
	return PTSuccess, nil
}

// SetBootConfigRole is CIM_BootService.SetBootConfigRole (role 1: the
// configuration is used at the next boot; 32768: it is not).
func (f *Firmware) SetBootConfigRole(instanceID string, role int) uint32 {
	if instanceID != BootConfigInstance || (role != 1 && role != 32768) {
		return PTInvalidParameter
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Boot.ConfigRole = role
	f.persistLocked("boot config role")
	return PTSuccess
}

// SetBootServiceState is CIM_BootService.RequestStateChange (One-Click
// Recovery: 32768 disabled, 32769 enabled, 32770 and 32771 further modes).
func (f *Firmware) SetBootServiceState(state int) uint32 {
	if state < 32768 || state > 32771 {
		return PowerInvalidParam
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.Boot.ServiceState = state
	f.persistLocked("boot service")
	return PTSuccess
}
