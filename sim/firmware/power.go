package firmware

import (
	"slices"
	"time"
)

// CIM power states (CIM_AssociatedPowerManagementService.PowerState and
// CIM_PowerManagementService.RequestPowerStateChange; spec/mps.md §6.5).
const (
	PowerOn                     = 2
	PowerSleepLight             = 3
	PowerSleepDeep              = 4
	PowerCycleOffSoft           = 5
	PowerOffHard                = 6
	PowerHibernate              = 7
	PowerOffSoft                = 8
	PowerCycleOffHard           = 9
	PowerMasterBusReset         = 10
	PowerNMI                    = 11
	PowerOffSoftGraceful        = 12
	PowerOffHardGraceful        = 13
	PowerMasterBusResetGraceful = 14
	PowerCycleOffSoftGraceful   = 15
	PowerCycleOffHardGraceful   = 16
)

// OS power saving states (IPS_PowerManagementService.OSPowerSavingState).
const (
	OSPowerUnknown     = 0
	OSPowerUnsupported = 1
	OSPowerFull        = 2
	OSPowerSaving      = 3
)

// Return values of the power methods (CIM: 0 completed, 2 unknown or
// unspecified error — what AMT answers for a transition the current state
// does not allow, e.g. a reset while off — 4 failed, 5 invalid parameter).
const (
	PowerSuccess      uint32 = 0
	PowerNotReady     uint32 = 2
	PowerFailed       uint32 = 4
	PowerInvalidParam uint32 = 5
)

// AvailablePowerStates lists the power changes the firmware accepts in
// state current, in the order real firmware reports them
// (CIM_AssociatedPowerManagementService.AvailableRequestedPowerStates).
// The graceful, sleep and hibernate actions exist from AMT 10 on.
func AvailablePowerStates(current, amtMajor int) []int {
	switch current {
	case PowerOn:
		if amtMajor < 10 {
			return []int{PowerMasterBusReset, PowerOffSoft, PowerCycleOffSoft, PowerNMI}
		}
		return []int{PowerMasterBusReset, PowerOffSoft, PowerCycleOffSoft, PowerNMI, PowerSleepDeep, PowerHibernate, PowerMasterBusResetGraceful, PowerOffSoftGraceful}
	case PowerSleepLight, PowerSleepDeep, PowerHibernate:
		return []int{PowerOn, PowerOffSoft}
	default:
		return []int{PowerOn}
	}
}

// PowerState is the host's CIM power state (after any alarm that is due).
func (f *Firmware) PowerState() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.alarmsDueLocked() {
		f.persistLocked("alarm")
	}
	return f.st.PowerState
}

// OSPowerSavingState is the OS power saving state; ok is false while the
// host is not on (real firmware omits the property then).
func (f *Firmware) OSPowerSavingState() (state int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.alarmsDueLocked() {
		f.persistLocked("alarm")
	}
	if f.st.PowerState != PowerOn {
		return OSPowerUnknown, false
	}
	return f.st.OSPowerSaving, true
}

// persistLocked saves after a change made outside Update.
func (f *Firmware) persistLocked(what string) {
	f.dirty = true
	if err := f.saveLocked(); err != nil {
		f.log.Error(what+": persist", "err", err)
	}
}

// RequestPowerStateChange is CIM_PowerManagementService.RequestPowerStateChange.
// The change is immediate: on return the power state, the event log (BIOS
// progress events of a boot, ACPI state changes) and the audit log (remote
// control events) show it, and a boot consumes the boot settings.
func (f *Firmware) RequestPowerStateChange(state int, by Initiator) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alarmsDueLocked()
	major, _ := majorVersion(f.st.Versions.AMT)
	if !slices.Contains(AvailablePowerStates(f.st.PowerState, major), state) {
		return PowerNotReady
	}
	var boot []byte
	switch state {
	case PowerOn:
		boot = f.bootLocked(state)
		f.auditLocked(AuditRemoteControl, 0, by, boot, "Performed power up")
	case PowerOffSoft, PowerOffSoftGraceful:
		f.powerOffLocked()
		if state == PowerOffSoft {
			f.auditLocked(AuditRemoteControl, 1, by, nil, "Performed power down")
		} else {
			f.auditLocked(AuditRemoteControl, 5, by, nil, "Performed graceful power down")
		}
	case PowerCycleOffSoft:
		f.powerOffLocked()
		boot = f.bootLocked(state)
		f.auditLocked(AuditRemoteControl, 2, by, boot, "Performed power cycle")
	case PowerMasterBusReset, PowerMasterBusResetGraceful:
		boot = f.bootLocked(state)
		if state == PowerMasterBusReset {
			f.auditLocked(AuditRemoteControl, 3, by, boot, "Performed reset")
		} else {
			f.auditLocked(AuditRemoteControl, 6, by, boot, "Performed graceful reset")
		}
	case PowerSleepDeep:
		f.st.PowerState = PowerSleepDeep
		f.acpiEventLocked(3, "S3 sleeping")
		f.auditLocked(AuditRemoteControl, 7, by, nil, "Performed standby")
	case PowerHibernate:
		f.st.PowerState = PowerHibernate
		f.acpiEventLocked(4, "S4 hibernate")
		f.auditLocked(AuditRemoteControl, 8, by, nil, "Performed hibernate")
	case PowerNMI:
		f.auditLocked(AuditRemoteControl, 9, by, nil, "Performed NMI")
	}
	f.persistLocked("power")
	return PowerSuccess
}

func (f *Firmware) powerOffLocked() {
	f.st.PowerState = PowerOffSoft
	f.acpiEventLocked(5, "S5/G2 soft off")
}

// bootLocked boots the host: it applies the boot settings when the boot
// configuration is the next one (SetBootConfigRole 1), records the boot,
// clears the one-time options as the BIOS does, and logs the BIOS progress.
// It returns the remote-control extended data (boot options) for the audit
// record.
func (f *Firmware) bootLocked(action int) []byte {
	b := &f.st.Boot
	rec := BootRecord{Time: f.deviceNowLocked(), Action: action}
	if b.ConfigRole == 1 {
		rec.Source, rec.Settings = b.Source, b.Settings
		rec.Settings.OptionsCleared = false
	}
	b.Last = &rec
	b.Source = ""
	b.ConfigRole = 32768
	b.Settings = clearedBootSettings(b.Settings)
	f.st.PowerState = PowerOn
	f.st.OSPowerSaving = OSPowerFull
	f.acpiEventLocked(0, "S0/G0 working")
	f.bootEventsLocked()
	return bootOptionsData(rec.Source, rec.Settings)
}

// clearedBootSettings keeps the persistent properties and clears the
// one-time boot options.
func clearedBootSettings(s BootSettings) BootSettings {
	return BootSettings{EnforceSecureBoot: s.EnforceSecureBoot, OptionsCleared: true}
}

// bootOptionsData is the 7-byte remote-control extended data: special
// command, its parameter (high, low), boot options mask (2 bytes), OEM
// parameters (2 bytes).
func bootOptionsData(source string, s BootSettings) []byte {
	out := make([]byte, 7)
	switch source {
	case BootSourcePXE:
		out[0] = 1
	case BootSourceHDD:
		out[0] = 2
		if s.UseSafeMode {
			out[0] = 3
		}
	case BootSourceCD:
		out[0] = 5
	case BootSourceHTTPS:
		out[0] = 194
	case BootSourceWinRE, BootSourcePBA:
		out[0] = 195
	}
	var low byte
	if s.UseIDER {
		low |= 1
	}
	if s.EnforceSecureBoot && s.UseIDER {
		low |= 2
	}
	if s.ReflashBIOS {
		low |= 4
	}
	if s.BIOSSetup {
		low |= 8
	}
	if s.BIOSPause {
		low |= 16
	}
	if out[0] == 0 && low != 0 {
		out[0] = 193 // Intel command
		if s.UseIDER && s.IDERBootDevice == 0 {
			out[1] = 1 // storage redirection connected to a floppy
		}
	}
	out[2] = low
	if s.UseSOL {
		out[5] = 1
	}
	return out
}

// RequestOSPowerSavingStateChange is IPS_PowerManagementService's method:
// 2 full power, 3 OS power saving; only while the host is on.
func (f *Firmware) RequestOSPowerSavingStateChange(state int, by Initiator) uint32 {
	if state != OSPowerFull && state != OSPowerSaving {
		return PowerInvalidParam
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alarmsDueLocked()
	if f.st.PowerState != PowerOn {
		return PowerFailed
	}
	if f.st.OSPowerSaving != state {
		f.st.OSPowerSaving = state
		f.persistLocked("os power saving")
	}
	return PowerSuccess
}

// ---- alarm clock ----

// MaxAlarms is how many IPS_AlarmClockOccurrence instances AMT keeps.
const MaxAlarms = 5

// AddAlarm is AMT_AlarmClockService.AddAlarm.
func (f *Firmware) AddAlarm(a Alarm) uint32 {
	if a.InstanceID == "" || len(a.InstanceID) > 32 || len(a.ElementName) > 32 || a.StartTime.IsZero() || a.IntervalMinutes < 0 {
		return PTInvalidParameter
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.alarmsDueLocked()
	if !a.StartTime.After(f.deviceNowLocked()) {
		return PTInvalidParameter
	}
	if slices.ContainsFunc(f.st.Alarms, func(x Alarm) bool { return x.InstanceID == a.InstanceID }) {
		return PTDuplicate
	}
	if len(f.st.Alarms) >= MaxAlarms {
		return PTMaxLimitReached
	}
	if a.ElementName == "" {
		a.ElementName = a.InstanceID
	}
	a.StartTime = a.StartTime.UTC().Truncate(time.Second)
	a.Fired = false
	f.st.Alarms = append(f.st.Alarms, a)
	f.persistLocked("alarm")
	return PTSuccess
}

// Alarms lists the alarm clock occurrences (after firing the due ones).
func (f *Firmware) Alarms() []Alarm {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.alarmsDueLocked() {
		f.persistLocked("alarm")
	}
	return slices.Clone(f.st.Alarms)
}

// DeleteAlarm removes an occurrence; false when there is none by that id.
func (f *Firmware) DeleteAlarm(instanceID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.st.Alarms)
	f.st.Alarms = slices.DeleteFunc(f.st.Alarms, func(a Alarm) bool { return a.InstanceID == instanceID })
	if len(f.st.Alarms) == n {
		return false
	}
	f.persistLocked("alarm")
	return true
}

// alarmsDueLocked fires the alarms whose time has come: the host is woken
// (powered on when off, asleep or hibernating) and the alarm is
// rescheduled, kept as fired, or deleted. The firmware runs no timer: the
// state catches up whenever it is looked at. It reports whether anything
// changed.
func (f *Firmware) alarmsDueLocked() bool {
	if len(f.st.Alarms) == 0 {
		return false
	}
	now := f.deviceNowLocked()
	changed := false
	kept := f.st.Alarms[:0]
	for _, a := range f.st.Alarms {
		if a.Fired || a.StartTime.After(now) {
			kept = append(kept, a)
			continue
		}
		changed = true
		if f.st.PowerState != PowerOn {
			f.bootLocked(PowerOn)
			f.auditLocked(AuditRemoteControl, 0, LocalInitiator, nil, "Alarm clock wake: "+a.InstanceID)
		}
		switch {
		case a.IntervalMinutes > 0:
			step := time.Duration(a.IntervalMinutes) * time.Minute
			missed := now.Sub(a.StartTime)/step + 1
			a.StartTime = a.StartTime.Add(missed * step)
			kept = append(kept, a)
		case a.DeleteOnCompletion:
		default:
			a.Fired = true
			kept = append(kept, a)
		}
	}
	f.st.Alarms = kept
	return changed
}
