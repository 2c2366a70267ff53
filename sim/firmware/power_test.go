package firmware

import (
	"encoding/base64"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openAt(t *testing.T, c *clock) *Firmware {
	t.Helper()
	f, err := Open(Config{UUID: "4c4c4544-0038-4b10-8052-b4c04f564433", DNSSuffix: "corp.example.com", Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var admin = DigestInitiator("admin", "192.0.2.7:51234")

func TestPowerCycleShowsInStateAndLogs(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	f := openAt(t, c)
	if f.PowerState() != PowerOn {
		t.Fatalf("factory power state %d", f.PowerState())
	}
	events := len(f.EventRecords())
	if rv := f.RequestPowerStateChange(PowerCycleOffSoft, admin); rv != PowerSuccess {
		t.Fatalf("cycle: %d", rv)
	}
	if f.PowerState() != PowerOn {
		t.Fatalf("after cycle: %d", f.PowerState())
	}
	log := f.EventRecords()[events:]
	if len(log) != 2+len(bootProgress) || log[0].Sensor != sensorACPIPowerState || log[0].Offset != 5 || log[1].Offset != 0 {
		t.Fatalf("event log after cycle: %+v", log)
	}
	last := log[len(log)-1]
	if last.Sensor != sensorFirmwareProgress || last.Entity != entityBIOS || last.Data[1] != 19 || !last.Time.Equal(c.now()) {
		t.Fatalf("last boot event %+v", last)
	}
	audit := f.AuditRecords()
	a := audit[len(audit)-1]
	if a.AppID != AuditRemoteControl || a.EventID != 2 || a.Initiator != "admin" || a.NetAddress != "192.0.2.7" || len(a.Extended) != 7 {
		t.Fatalf("audit %+v", a)
	}
	if s := f.Snapshot(); s.Boot.Last == nil || s.Boot.Last.Action != PowerCycleOffSoft {
		t.Fatalf("boot record %+v", s.Boot.Last)
	}
}

func TestPowerTransitions(t *testing.T) {
	f := openAt(t, &clock{t: time.Now()})
	steps := []struct {
		req  int
		rv   uint32
		want int
	}{
		{PowerOn, PowerNotReady, PowerOn}, // already on
		{PowerOffSoft, PowerSuccess, PowerOffSoft},
		{PowerMasterBusReset, PowerNotReady, PowerOffSoft}, // reset while off: AMT answers 2
		{PowerOffSoft, PowerNotReady, PowerOffSoft},
		{PowerOn, PowerSuccess, PowerOn},
		{PowerSleepDeep, PowerSuccess, PowerSleepDeep},
		{PowerOn, PowerSuccess, PowerOn},
		{PowerHibernate, PowerSuccess, PowerHibernate},
		{PowerOffSoft, PowerSuccess, PowerOffSoft},
		{PowerOn, PowerSuccess, PowerOn},
		{PowerMasterBusResetGraceful, PowerSuccess, PowerOn},
		{PowerOffSoftGraceful, PowerSuccess, PowerOffSoft},
		{PowerOn, PowerSuccess, PowerOn},
		{PowerOffHard, PowerNotReady, PowerOn}, // not offered by the firmware
		{99, PowerNotReady, PowerOn},
	}
	for i, s := range steps {
		if rv := f.RequestPowerStateChange(s.req, admin); rv != s.rv || f.PowerState() != s.want {
			t.Fatalf("step %d (%d): rv %d state %d, want %d %d", i, s.req, rv, f.PowerState(), s.rv, s.want)
		}
	}
	if st, ok := f.OSPowerSavingState(); !ok || st != OSPowerFull {
		t.Fatalf("os power saving %d %v", st, ok)
	}
	if rv := f.RequestOSPowerSavingStateChange(OSPowerSaving, admin); rv != 0 {
		t.Fatal(rv)
	}
	if st, _ := f.OSPowerSavingState(); st != OSPowerSaving {
		t.Fatal(st)
	}
	f.RequestPowerStateChange(PowerOffSoft, admin)
	if _, ok := f.OSPowerSavingState(); ok {
		t.Fatal("OS power saving state reported while off")
	}
	if rv := f.RequestOSPowerSavingStateChange(OSPowerFull, admin); rv != PowerFailed {
		t.Fatalf("while off: %d", rv)
	}
}

func TestBootSettingsApplyOnce(t *testing.T) {
	f := openAt(t, &clock{t: time.Now()})
	if rv, err := f.ChangeBootOrder(BootSourcePXE); err != nil || rv != 0 {
		// factory OptInRequired is "all" but the device is not provisioned:
		// consent rules still apply
		if !errors.Is(err, ErrConsentRequired) {
			t.Fatalf("ChangeBootOrder: %d %v", rv, err)
		}
	}
	f.Update(func(s *State) error { s.OptIn.Required = OptInRequiredNone; return nil })
	if rv := f.SetBootConfigRole(BootConfigInstance, 1); rv != 0 {
		t.Fatal(rv)
	}
	if err := f.SetBootSettings(BootSettings{UseSOL: true}, admin); err != nil {
		t.Fatal(err)
	}
	if rv, err := f.ChangeBootOrder(BootSourcePXE); err != nil || rv != 0 {
		t.Fatalf("ChangeBootOrder: %d %v", rv, err)
	}
	if err := f.SetBootSettings(BootSettings{BIOSSetup: true}, admin); !errors.Is(err, ErrBootOptionConflict) {
		t.Fatalf("BIOS setup with a boot source: %v", err)
	}
	if rv, _ := f.ChangeBootOrder("Intel(r) AMT: Force Floppy Boot"); rv != PTInvalidParameter {
		t.Fatalf("unknown source: %d", rv)
	}
	if rv := f.RequestPowerStateChange(PowerMasterBusReset, admin); rv != 0 {
		t.Fatal(rv)
	}
	s := f.Snapshot()
	if s.Boot.Last == nil || s.Boot.Last.Source != BootSourcePXE || !s.Boot.Last.Settings.UseSOL {
		t.Fatalf("boot record %+v", s.Boot.Last)
	}
	if s.Boot.Source != "" || s.Boot.Settings.UseSOL || !s.Boot.Settings.OptionsCleared || s.Boot.ConfigRole != 32768 {
		t.Fatalf("options not cleared after the boot: %+v", s.Boot)
	}
	if a := s.AuditLog[len(s.AuditLog)-1]; a.EventID != 3 || a.Extended[0] != 1 || a.Extended[5] != 1 {
		t.Fatalf("reset audit record %+v", a)
	}
	// the next boot is a normal one
	f.RequestPowerStateChange(PowerMasterBusReset, admin)
	if s := f.Snapshot(); s.Boot.Last.Source != "" {
		t.Fatalf("second boot %+v", s.Boot.Last)
	}
}

func TestAlarmWakesHost(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)}
	f := openAt(t, c)
	start := c.now().Add(time.Hour)
	if rv := f.AddAlarm(Alarm{InstanceID: "once", StartTime: start, DeleteOnCompletion: true}); rv != 0 {
		t.Fatal(rv)
	}
	if rv := f.AddAlarm(Alarm{InstanceID: "daily", ElementName: "Daily", StartTime: start.Add(time.Minute), IntervalMinutes: 1440}); rv != 0 {
		t.Fatal(rv)
	}
	if rv := f.AddAlarm(Alarm{InstanceID: "once", StartTime: start}); rv != PTDuplicate {
		t.Fatalf("duplicate: %d", rv)
	}
	if rv := f.AddAlarm(Alarm{InstanceID: "past", StartTime: c.now().Add(-time.Minute)}); rv != PTInvalidParameter {
		t.Fatalf("past: %d", rv)
	}
	for i := range 3 {
		if rv := f.AddAlarm(Alarm{InstanceID: string(rune('a' + i)), StartTime: start.Add(48 * time.Hour)}); rv != 0 {
			t.Fatal(rv)
		}
	}
	if rv := f.AddAlarm(Alarm{InstanceID: "sixth", StartTime: start}); rv != PTMaxLimitReached {
		t.Fatalf("sixth: %d", rv)
	}
	f.RequestPowerStateChange(PowerOffSoft, admin)
	c.add(90 * time.Minute)
	if f.PowerState() != PowerOn {
		t.Fatal("alarm did not wake the host")
	}
	al := f.Alarms()
	if slices.ContainsFunc(al, func(a Alarm) bool { return a.InstanceID == "once" }) {
		t.Fatal("one-time alarm with DeleteOnCompletion kept")
	}
	i := slices.IndexFunc(al, func(a Alarm) bool { return a.InstanceID == "daily" })
	if i < 0 || !al[i].StartTime.Equal(start.Add(time.Minute+24*time.Hour)) {
		t.Fatalf("daily alarm not rescheduled: %+v", al)
	}
	if !f.DeleteAlarm("daily") || f.DeleteAlarm("daily") {
		t.Fatal("delete")
	}
}

// The encodings reproduce real records from go-wsman-messages' fixtures.
func TestRecordEncodings(t *testing.T) {
	ex := []byte{0x00, 0x0c, 0x00, 0x00, 0x00, 0x28, 0x05, 0x99, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x24, 0x05, 0x94}
	a := AuditRecord{AppID: 19, EventID: 0, InitiatorType: InitiatorLocal, Time: time.Unix(0x3ff4cd6e, 0), Extended: ex}
	if got := base64.StdEncoding.EncodeToString(a.AppendBinary(nil)); got != "ABMAAAI/9M1uAgAQAAwAAAAoBZkADAAAACQFlA==" {
		t.Fatalf("audit record %s", got)
	}
	d := AuditRecord{AppID: 17, EventID: 2, InitiatorType: InitiatorDigest, Initiator: "admin", NetAddress: "10.0.0.5", Time: time.Unix(1, 0)}
	want := []byte{0, 17, 0, 2, 0, 5, 'a', 'd', 'm', 'i', 'n', 0, 0, 0, 1, 0, 8, '1', '0', '.', '0', '.', '0', '.', '5', 0}
	if got := d.AppendBinary(nil); string(got) != string(want) {
		t.Fatalf("digest record % x", got)
	}
	e := EventRecord{Time: time.Unix(0x65010622, 0), DeviceAddress: 255, Sensor: 15, EventType: 0x6f, Offset: 2, SourceType: 0x68,
		Severity: 1, SensorNumber: 255, Entity: 34, Data: [8]byte{0x40, 7}}
	if got := base64.StdEncoding.EncodeToString(e.AppendBinary(nil)); got != "IgYBZf8PbwJoAf8iAEAHAAAAAAAA" {
		t.Fatalf("event record %s", got)
	}
}

func TestHardwareIsStablePerDevice(t *testing.T) {
	a := hardwareFor("4c4c4544-0038-4b10-8052-b4c04f564433", "BIOS.1")
	b := hardwareFor("4c4c4544-0038-4b10-8052-b4c04f564433", "BIOS.1")
	c := hardwareFor("11111111-2222-4333-8444-555555555555", "BIOS.1")
	if a.Chassis != b.Chassis || a.PlatformGUID != "44454C4C3800104B8052B4C04F564433" {
		t.Fatalf("%+v", a)
	}
	if a.Chassis.SerialNumber == c.Chassis.SerialNumber || len(a.Memory) == 0 || len(a.Disks) == 0 || len(a.Displays) == 0 {
		t.Fatalf("%+v / %+v", a, c)
	}
}
