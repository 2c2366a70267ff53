package firmware

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"
)

// Log capacities. AMT overwrites the oldest records when a log is full
// (OverwritePolicy 2, "wraps when full").
const (
	MaxAuditRecords = 1000
	MaxEventRecords = 390 // AMT_MessageLog.MaxNumberOfRecords on real firmware
)

// Audit application IDs (AMT_AuditLog records; spec/mps.md §6.5).
const (
	AuditSecurityAdmin      = 16
	AuditRemoteControl      = 17
	AuditRedirectionManager = 18
	AuditNetworkTime        = 21
	AuditKVM                = 29
	AuditUserOptIn          = 30
)

// Initiator types of audit records.
const (
	InitiatorDigest   = 0 // HTTP digest user
	InitiatorKerberos = 1
	InitiatorLocal    = 2
	InitiatorKVMPort  = 3 // KVM default port (5900)
)

// Initiator identifies who caused an audited action.
type Initiator struct {
	Type int    // InitiatorDigest, InitiatorLocal, …
	User string // digest user name
	Addr string // remote IP address ("" for local access)
}

// DigestInitiator is a digest-authenticated user calling from addr (an IP,
// or host:port; "" when unknown).
func DigestInitiator(user, addr string) Initiator {
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		addr = ap.Addr().Unmap().String()
	}
	return Initiator{Type: InitiatorDigest, User: user, Addr: addr}
}

// LocalInitiator is the platform itself (BIOS, MEBx, an alarm).
var LocalInitiator = Initiator{Type: InitiatorLocal}

// deviceNowLocked is the device clock (system clock plus the time-sync
// offset), to the second, in UTC.
func (f *Firmware) deviceNowLocked() time.Time {
	return f.now().Add(time.Duration(f.st.ClockOffsetSeconds) * time.Second).UTC().Truncate(time.Second)
}

// Audit appends a record to the audit log (its Time defaults to the device
// clock) and persists the state.
func (f *Firmware) Audit(r AuditRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.appendAuditLocked(r)
	f.dirty = true
	if err := f.saveLocked(); err != nil {
		f.log.Error("audit: persist", "err", err)
	}
}

// auditLocked records an event caused by by.
func (f *Firmware) auditLocked(appID, eventID int, by Initiator, ex []byte, event string) {
	f.appendAuditLocked(AuditRecord{AppID: appID, EventID: eventID, InitiatorType: by.Type, Initiator: by.User, NetAddress: by.Addr, Extended: ex, Event: event})
}

func (f *Firmware) appendAuditLocked(r AuditRecord) {
	if r.Time.IsZero() {
		r.Time = f.deviceNowLocked()
	}
	f.st.AuditLog = append(f.st.AuditLog, r)
	if n := len(f.st.AuditLog); n > MaxAuditRecords {
		f.st.AuditLog = slices.Delete(f.st.AuditLog, 0, n-MaxAuditRecords)
	}
}

// LogEvent appends a record to the event log (its Time defaults to the
// device clock) and persists the state.
func (f *Firmware) LogEvent(e EventRecord) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logEventLocked(e)
	f.dirty = true
	if err := f.saveLocked(); err != nil {
		f.log.Error("event log: persist", "err", err)
	}
}

func (f *Firmware) logEventLocked(e EventRecord) {
	if e.Time.IsZero() {
		e.Time = f.deviceNowLocked()
	}
	f.st.EventLog = append(f.st.EventLog, e)
	if n := len(f.st.EventLog); n > MaxEventRecords {
		f.st.EventLog = slices.Delete(f.st.EventLog, 0, n-MaxEventRecords)
	}
}

// AuditRecords returns a copy of the audit log, oldest first.
func (f *Firmware) AuditRecords() []AuditRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.st.AuditLog)
}

// EventRecords returns a copy of the event log, oldest first.
func (f *Firmware) EventRecords() []EventRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.st.EventLog)
}

// AppendBinary appends the record as AMT_AuditLog.ReadRecords returns it
// (before base64): u16be AuditAppID, u16be EventID, u8 InitiatorType and
// the initiator (digest: u8 length + user; Kerberos: u32 user id, u8 length
// + SID; local and KVM port: nothing), u32be timestamp, u8 MCLocationType,
// u8 length + NetAddress, u8 length + extended data (spec/mps.md §6.5).
// Strings longer than 255 bytes are cut.
func (r AuditRecord) AppendBinary(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(r.AppID))
	b = binary.BigEndian.AppendUint16(b, uint16(r.EventID))
	b = append(b, byte(r.InitiatorType))
	switch r.InitiatorType {
	case InitiatorDigest:
		b = appendShort(b, []byte(r.Initiator))
	case InitiatorKerberos:
		b = binary.BigEndian.AppendUint32(b, 0)
		b = appendShort(b, []byte(r.Initiator))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(r.Time.Unix()))
	// MCLocationType: 0 IPv4, 1 IPv6, 2 none (unverified numbering; the
	// real-device fixture shows 2 with an empty address for a local event)
	loc := byte(2)
	if a, err := netip.ParseAddr(r.NetAddress); err == nil {
		loc = 0
		if a.Is6() && !a.Is4In6() {
			loc = 1
		}
	}
	b = append(b, loc)
	b = appendShort(b, []byte(r.NetAddress))
	return appendShort(b, r.Extended)
}

func appendShort(b, s []byte) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return append(append(b, byte(len(s))), s...)
}

// EventRecordSize is the size of one encoded event log record.
const EventRecordSize = 21

// AppendBinary appends the 21-byte record AMT_MessageLog.GetRecords returns
// (before base64): u32le timestamp, then one byte each for DeviceAddress,
// EventSensorType, EventType, EventOffset, EventSourceType, EventSeverity,
// SensorNumber, Entity, EntityInstance, then 8 bytes of event data.
func (e EventRecord) AppendBinary(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(e.Time.Unix()))
	b = append(b, byte(e.DeviceAddress), byte(e.Sensor), byte(e.EventType), byte(e.Offset), byte(e.SourceType),
		byte(e.Severity), byte(e.SensorNumber), byte(e.Entity), byte(e.EntityInstance))
	return append(b, e.Data[:]...)
}

// Platform event constants used by the simulated BIOS and power logic.
const (
	sensorFirmwareProgress = 15   // system firmware progress (IPMI sensor type 0x0F)
	sensorACPIPowerState   = 0x22 // system ACPI power state
	eventTypeSensorSpecial = 0x6F // sensor-specific
	sourceASFBIOS          = 0x68 // event source: ASF 1.0 / BIOS (as real records show)
	entityBIOS             = 34
	entitySystemBoard      = 7
	severityMonitor        = 1
	severityInformation    = 2
)

// BIOS progress codes (EventData[1] of sensor 15, offset 2).
var bootProgress = []struct {
	code byte
	desc string
}{
	{1, "Memory initialization."},
	{7, "PCI resource configuration"},
	{9, "Video initialization"},
	{19, "Starting operating system boot process"},
}

// bootEventsLocked logs the firmware progress events of one boot.
func (f *Firmware) bootEventsLocked() {
	for _, p := range bootProgress {
		f.logEventLocked(EventRecord{DeviceAddress: 255, Sensor: sensorFirmwareProgress, EventType: eventTypeSensorSpecial, Offset: 2,
			SourceType: sourceASFBIOS, Severity: severityMonitor, SensorNumber: 255, Entity: entityBIOS,
			Data: [8]byte{0x40, p.code}, Description: p.desc})
	}
}

// acpiEventLocked logs a change of the system's ACPI power state (offset:
// 0 S0/G0 working, 3 S3 sleeping, 4 S4 hibernate, 5 S5/G2 soft off).
func (f *Firmware) acpiEventLocked(offset int, desc string) {
	f.logEventLocked(EventRecord{DeviceAddress: 255, Sensor: sensorACPIPowerState, EventType: eventTypeSensorSpecial, Offset: offset,
		SourceType: sourceASFBIOS, Severity: severityInformation, SensorNumber: 255, Entity: entitySystemBoard,
		Description: desc})
}
