package device_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	amtalarm "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/alarmclock"
	amtboot "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/boot"
	cimboot "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/boot"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/power"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/kvmredirection"

	"github.com/amtd-project/amtd/sim/device"
	"github.com/amtd-project/amtd/sim/firmware"
)

// consent runs the user consent flow: StartOptIn, read the code from the
// simulated screen, SendOptInCode.
func consent(t *testing.T, d *device.Device, a wsman.Messages) {
	t.Helper()
	if r := must(a.IPS.OptInService.StartOptIn())(t).Body.StartOptInResponse; r.ReturnValue != 0 {
		t.Fatalf("StartOptIn %d", r.ReturnValue)
	}
	code, shown := d.Firmware().DisplayedOptInCode()
	if !shown {
		t.Fatal("no code on the screen")
	}
	n := 0
	for _, c := range code {
		n = n*10 + int(c-'0')
	}
	if r := must(a.IPS.OptInService.SendOptInCode(n))(t).Body.SendOptInCodeResponse; r.ReturnValue != 0 {
		t.Fatalf("SendOptInCode %d", r.ReturnValue)
	}
}

func powerState(t *testing.T, a wsman.Messages) (int, []int) {
	t.Helper()
	enum := must(a.CIM.ServiceAvailableToElement.Enumerate())(t)
	items := must(a.CIM.ServiceAvailableToElement.Pull(enum.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.AssociatedPowerManagementService
	if len(items) != 1 {
		t.Fatalf("CIM_ServiceAvailableToElement items %+v", items)
	}
	var avail []int
	for _, v := range items[0].AvailableRequestedPowerStates {
		avail = append(avail, int(v))
	}
	return int(items[0].PowerState), avail
}

// TestPowerCycleShowsInStateAndLogs: a power cycle through Intel's client,
// read back as MPS does (power state, event log, audit log).
func TestPowerCycleShowsInStateAndLogs(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)

	if st, avail := powerState(t, a); st != 2 || !slices.Equal(avail, []int{10, 8, 5, 11, 4, 7, 14, 12}) {
		t.Fatalf("power state %d, available %v", st, avail)
	}
	if ps := must(a.IPS.PowerManagementService.Get())(t).Body.GetResponse; ps.OSPowerSavingState != 2 {
		t.Fatalf("OS power saving %+v", ps)
	}
	if r := must(a.CIM.PowerManagementService.RequestPowerStateChange(power.PowerCycleOffHard /* 5, "Verified Hardware Power Cycle" */))(t).Body.RequestPowerStateChangeResponse; r.ReturnValue != 0 {
		t.Fatalf("power cycle: %d", r.ReturnValue)
	}
	if st, _ := powerState(t, a); st != 2 {
		t.Fatalf("after power cycle: %d", st)
	}

	// event log, newest first: the boot of the cycle, after the S5 of its off half
	must(a.AMT.MessageLog.PositionToFirstRecord())(t)
	recs := must(a.AMT.MessageLog.GetRecords(1, 390))(t).Body.GetRecordsResponse
	if !recs.NoMoreRecords || len(recs.RefinedEventData) != 6 || recs.IterationIdentifier != 6 {
		t.Fatalf("event log: %d records, id %d, no more %v", len(recs.RefinedEventData), recs.IterationIdentifier, recs.NoMoreRecords)
	}
	if e := recs.RefinedEventData[0]; e.Description != "Starting operating system boot process" || e.Entity != "BIOS" || e.EventSensorType != 15 {
		t.Fatalf("newest event %+v", e)
	}
	if e := recs.RawEventData[5]; e.EventSensorType != 0x22 || e.EventOffset != 5 {
		t.Fatalf("oldest event (S5) %+v", e)
	}
	if ts := recs.RefinedEventData[0].TimeStamp; time.Since(ts) > time.Minute || time.Since(ts) < -time.Minute {
		t.Fatalf("event time %v", ts)
	}
	// paging
	page := must(a.AMT.MessageLog.GetRecords(5, 10))(t).Body.GetRecordsResponse
	if len(page.RawEventData) != 2 || !page.NoMoreRecords || page.RawEventData[1].EventSensorType != 0x22 {
		t.Fatalf("second page %+v", page.RawEventData)
	}

	// audit log as AMT encodes it, decoded by the library (newest first)
	audit := must(a.AMT.AuditLog.ReadRecords(1))(t).Body
	if audit.ReadRecordsResponse.TotalRecordCount != 2 || audit.ReadRecordsResponse.RecordsReturned != 2 {
		t.Fatalf("audit counts %+v", audit.ReadRecordsResponse)
	}
	cycle := audit.DecodedRecordsResponse[0]
	if cycle.AuditAppID != 17 || cycle.EventID != 2 || cycle.Event != "Performed Power Cycle" || cycle.Initiator != "admin" ||
		cycle.NetAddress != "127.0.0.1" || !strings.Contains(cycle.ExStr, "Remote power cycle initiated") {
		t.Fatalf("power cycle audit record %+v", cycle)
	}
	if p := audit.DecodedRecordsResponse[1]; p.AuditApp != "Security Admin Events" || p.Event != "AMT Provisioning Completed" || p.Initiator != "$$OsAdmin" {
		t.Fatalf("activation audit record %+v", p)
	}

	// off: only power on is offered, the OS state is not reported, reset fails
	if r := must(a.CIM.PowerManagementService.RequestPowerStateChange(power.PowerOffHard /* 8, "Verified Hardware Power Off" */))(t).Body.RequestPowerStateChangeResponse; r.ReturnValue != 0 {
		t.Fatalf("power off: %d", r.ReturnValue)
	}
	if st, avail := powerState(t, a); st != 8 || !slices.Equal(avail, []int{2}) {
		t.Fatalf("off: %d %v", st, avail)
	}
	if ps := must(a.IPS.PowerManagementService.Get())(t).Body.GetResponse; ps.OSPowerSavingState != 0 {
		t.Fatalf("OS power saving reported while off: %+v", ps)
	}
	if r := must(a.CIM.PowerManagementService.RequestPowerStateChange(power.MasterBusReset))(t).Body.RequestPowerStateChangeResponse; r.ReturnValue != 2 {
		t.Fatalf("reset while off: %d", r.ReturnValue)
	}
	if r := must(a.CIM.PowerManagementService.RequestPowerStateChange(power.PowerOn))(t).Body.RequestPowerStateChangeResponse; r.ReturnValue != 0 {
		t.Fatalf("power on: %d", r.ReturnValue)
	}
	if r := must(a.IPS.PowerManagementService.RequestOSPowerSavingStateChange(3))(t).Body.RequestOSPowerSavingStateChangeResponse; r.ReturnValue != 0 {
		t.Fatalf("OS power saving: %d", r.ReturnValue)
	}
	if ps := must(a.IPS.PowerManagementService.Get())(t).Body.GetResponse; ps.OSPowerSavingState != 3 {
		t.Fatalf("OS power saving %+v", ps)
	}
	if got := d.Firmware().PowerState(); got != firmware.PowerOn {
		t.Fatalf("firmware power state %d", got)
	}
	caps := must(a.CIM.PowerManagementCapabilities.Get())(t).Body.PowerManagementCapabilitiesGetResponse
	if caps.InstanceID != "Intel(r) AMT:PowerManagementCapabilities 0" || len(caps.PowerStatesSupported) != 9 {
		t.Fatalf("capabilities %+v", caps)
	}
}

// TestBootSettingsApplied: the MPS boot-options sequence (clear order, Put
// boot settings, SetBootConfigRole, ChangeBootOrder, reset) boots the host
// from the source once, with the options, then clears them.
func TestBootSettingsApplied(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)
	fw := d.Firmware()

	enum := must(a.CIM.BootSourceSetting.Enumerate())(t)
	sources := must(a.CIM.BootSourceSetting.Pull(enum.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.BootSourceSettingItems
	var ids []string
	for _, s := range sources {
		ids = append(ids, s.InstanceID)
	}
	if !slices.Contains(ids, firmware.BootSourcePXE) || !slices.Contains(ids, firmware.BootSourceHTTPS) || len(ids) != 6 {
		t.Fatalf("boot sources %v", ids)
	}
	caps := must(a.AMT.BootCapabilities.Get())(t).Body.BootCapabilitiesGetResponse
	if !caps.ForcePXEBoot || !caps.ForceUEFIHTTPSBoot || !caps.BIOSSetup {
		t.Fatalf("boot capabilities %+v", caps)
	}

	// CCM requires consent for everything: forcing a boot source is refused
	if _, err := a.CIM.BootConfigSetting.ChangeBootOrder(cimboot.PXE); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("ChangeBootOrder without consent: %v", err)
	}
	consent(t, d, a)

	// MPS sequence for action 400 (reset to PXE) with SOL
	must(a.CIM.BootConfigSetting.ChangeBootOrder(""))(t)
	bs := must(a.AMT.BootSettingData.Get())(t).Body.BootSettingDataGetResponse
	if bs.InstanceID != "Intel(r) AMT:BootSettingData 0" || !bs.OptionsCleared || !bs.UEFIHTTPSBootEnabled {
		t.Fatalf("boot settings %+v", bs)
	}
	req := amtboot.BootSettingDataRequest{ElementName: bs.ElementName, InstanceID: bs.InstanceID, OwningEntity: bs.OwningEntity, UseSOL: true,
		BIOSLastStatus: bs.BIOSLastStatus, EnforceSecureBoot: bs.EnforceSecureBoot}
	put := must(a.AMT.BootSettingData.Put(req))(t).Body.BootSettingDataGetResponse
	if !put.UseSOL || put.OptionsCleared {
		t.Fatalf("boot settings Put %+v", put)
	}
	if r := must(a.CIM.BootService.SetBootConfigRole(firmware.BootConfigInstance, 1))(t).Body.SetBootConfigRole_OUTPUT; r.ReturnValue != 0 {
		t.Fatalf("SetBootConfigRole %d", r.ReturnValue)
	}
	if r := must(a.CIM.BootConfigSetting.ChangeBootOrder(cimboot.PXE))(t).Body.ChangeBootOrder_OUTPUT; r.ReturnValue != 0 {
		t.Fatalf("ChangeBootOrder %d", r.ReturnValue)
	}
	// a BIOS-level option cannot join a forced boot source
	req.BIOSSetup = true
	if _, err := a.AMT.BootSettingData.Put(req); err == nil {
		t.Fatal("BIOSSetup accepted with a boot source")
	}
	if r := must(a.CIM.PowerManagementService.RequestPowerStateChange(power.MasterBusReset))(t).Body.RequestPowerStateChangeResponse; r.ReturnValue != 0 {
		t.Fatalf("reset %d", r.ReturnValue)
	}
	last := fw.Snapshot().Boot.Last
	if last == nil || last.Source != firmware.BootSourcePXE || !last.Settings.UseSOL || last.Action != 10 {
		t.Fatalf("the boot did not use the settings: %+v", last)
	}
	after := must(a.AMT.BootSettingData.Get())(t).Body.BootSettingDataGetResponse
	if after.UseSOL || !after.OptionsCleared {
		t.Fatalf("boot options not cleared by the boot: %+v", after)
	}
	audit := must(a.AMT.AuditLog.ReadRecords(1))(t).Body.DecodedRecordsResponse
	if r := audit[0]; r.Event != "Performed Reset" || !strings.Contains(r.ExStr, "Special Command: PXE") {
		t.Fatalf("reset audit %+v", r)
	}

	// One-Click Recovery state
	if r := must(a.CIM.BootService.RequestStateChange(32769))(t).Body.RequestStateChange_OUTPUT; r.ReturnValue != 0 {
		t.Fatalf("boot service state %d", r.ReturnValue)
	}
	if s := must(a.CIM.BootService.Get())(t).Body.ServiceGetResponse; s.EnabledState != 32769 || s.Name != "Intel(r) AMT Boot Service" {
		t.Fatalf("boot service %+v", s)
	}
	if cs := must(a.CIM.BootConfigSetting.Get())(t).Body.ConfigSettingGetResponse; cs.InstanceID != firmware.BootConfigInstance {
		t.Fatalf("boot config setting %+v", cs)
	}
}

func TestAlarmClock(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)
	start := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)

	add := must(a.AMT.AlarmClockService.AddAlarm(amtalarm.AlarmClockOccurrence{InstanceID: "wake", ElementName: "Wake up", StartTime: start, Interval: 1440, DeleteOnCompletion: false}))(t).Body.AddAlarmOutput
	if add.ReturnValue != 0 || !strings.HasSuffix(add.AlarmClock.ReferenceParameters.ResourceURI, "IPS_AlarmClockOccurrence") {
		t.Fatalf("AddAlarm %+v", add)
	}
	must(a.AMT.AlarmClockService.AddAlarm(amtalarm.AlarmClockOccurrence{InstanceID: "once", StartTime: start.Add(time.Hour), DeleteOnCompletion: true}))(t)
	if r := must(a.AMT.AlarmClockService.AddAlarm(amtalarm.AlarmClockOccurrence{InstanceID: "wake", StartTime: start}))(t).Body.AddAlarmOutput; r.ReturnValue == 0 {
		t.Fatal("duplicate alarm accepted")
	}

	enum := must(a.IPS.AlarmClockOccurrence.Enumerate())(t)
	items := must(a.IPS.AlarmClockOccurrence.Pull(enum.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.Items
	if len(items) != 2 {
		t.Fatalf("alarms %+v", items)
	}
	w := items[0]
	if w.InstanceID != "wake" || w.ElementName != "Wake up" || !w.StartTime.Datetime.Equal(start) || w.Interval.Interval != "P1D" || w.DeleteOnCompletion {
		t.Fatalf("alarm %+v", w)
	}
	if o := items[1]; o.Interval.Interval != "" || !o.DeleteOnCompletion {
		t.Fatalf("one-time alarm %+v", o)
	}
	must(a.IPS.AlarmClockOccurrence.Delete("wake"))(t)
	if _, err := a.IPS.AlarmClockOccurrence.Delete("wake"); err == nil {
		t.Fatal("deleted twice")
	}
	if al := d.Firmware().Alarms(); len(al) != 1 || al[0].InstanceID != "once" {
		t.Fatalf("firmware alarms %+v", al)
	}
}

func TestKVMDisplaysAndInventory(t *testing.T) {
	d := startDevice(t, devOpts{})
	activateCCM(t, d)
	a := adminClient(d)
	hw := d.Firmware().Hardware()

	enum := must(a.IPS.ScreenSettingData.Enumerate())(t)
	screens := must(a.IPS.ScreenSettingData.Pull(enum.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.ScreenSettingDataItems
	if len(screens) != 1 || len(screens[0].IsActive) != 4 || screens[0].ResolutionX[0] != 1920 || screens[0].PrimaryIndex != 1 {
		t.Fatalf("screens %+v", screens)
	}
	active := 0
	for _, on := range screens[0].IsActive {
		if on {
			active++
		}
	}
	if active != len(hw.Displays) {
		t.Fatalf("%d active screens, hardware has %d", active, len(hw.Displays))
	}
	k := must(a.IPS.KVMRedirectionSettingData.Get())(t).Body.KVMRedirectionSettingsResponse
	if k.InstanceID != "Intel(r) KVM Redirection Settings" || !k.OptInPolicy || k.SessionTimeout != 3 {
		t.Fatalf("KVM settings %+v", k)
	}
	put := kvmredirection.KVMRedirectionSettingsRequest{ElementName: k.ElementName, InstanceID: k.InstanceID, EnabledByMEBx: true,
		SessionTimeout: 5, DefaultScreen: uint8(len(hw.Displays) - 1)}
	if p := must(a.IPS.KVMRedirectionSettingData.Put(&put))(t).Body.KVMRedirectionSettingsResponse; int(p.DefaultScreen) != len(hw.Displays)-1 || p.SessionTimeout != 5 {
		t.Fatalf("KVM settings Put %+v", p)
	}
	put.DefaultScreen = 3
	if _, err := a.IPS.KVMRedirectionSettingData.Put(&put); err == nil {
		t.Fatal("default screen beyond the displays accepted")
	}

	// hardware inventory, as GET /amt/hardwareInfo reads it
	if p := must(a.CIM.ComputerSystemPackage.Get())(t).Body.GetResponse; p.PlatformGUID != hw.PlatformGUID {
		t.Fatalf("computer system package %+v", p)
	}
	if c := must(a.CIM.Chassis.Get())(t).Body.PackageResponse; c.Manufacturer != hw.Chassis.Manufacturer || c.SerialNumber != hw.Chassis.SerialNumber {
		t.Fatalf("chassis %+v", c)
	}
	if c := must(a.CIM.Card.Get())(t).Body.PackageResponse; c.Model != hw.Board.Model {
		t.Fatalf("card %+v", c)
	}
	if b := must(a.CIM.BIOSElement.Get())(t).Body.BIOSElementGetResponse; b.Version != hw.BIOS.Version || !b.PrimaryBIOS {
		t.Fatalf("BIOS %+v", b)
	}
	pe := must(a.CIM.Processor.Enumerate())(t)
	if p := must(a.CIM.Processor.Pull(pe.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.PackageItems; len(p) != 1 || p[0].MaxClockSpeed != hw.CPUs[0].MaxSpeed {
		t.Fatalf("processors %+v", p)
	}
	ce := must(a.CIM.Chip.Enumerate())(t)
	if c := must(a.CIM.Chip.Pull(ce.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.ChipItems; len(c) != 1 || c[0].Version != hw.CPUs[0].Version {
		t.Fatalf("chips %+v", c)
	}
	me := must(a.CIM.PhysicalMemory.Enumerate())(t)
	if m := must(a.CIM.PhysicalMemory.Pull(me.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.MemoryItems; len(m) != len(hw.Memory) || uint64(m[0].Capacity) != hw.Memory[0].Capacity {
		t.Fatalf("memory %+v", m)
	}
	de := must(a.CIM.MediaAccessDevice.Enumerate())(t)
	if m := must(a.CIM.MediaAccessDevice.Pull(de.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.MediaAccessDevices; len(m) != len(hw.Disks) || uint64(m[0].MaxMediaSize) != hw.Disks[0].MaxMediaSize {
		t.Fatalf("disks %+v", m)
	}
	ppe := must(a.CIM.PhysicalPackage.Enumerate())(t)
	pp := must(a.CIM.PhysicalPackage.Pull(ppe.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse
	if len(pp.Card) != 1 || len(pp.Chassis) != 1 || pp.Chassis[0].Model != hw.Chassis.Model {
		t.Fatalf("physical packages %+v", pp)
	}
	spe := must(a.CIM.SystemPackaging.Enumerate())(t)
	if sp := must(a.CIM.SystemPackaging.Pull(spe.Body.EnumerateResponse.EnumerationContext))(t).Body.PullResponse.SystemPackageItems; len(sp) != 1 || sp[0].PlatformGUID != hw.PlatformGUID {
		t.Fatalf("system packaging %+v", sp)
	}
}
