package mps

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/messagelog"

	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/api/valid"
)

// ---- audit log ----

func (h *handlers) auditLog(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during AMT AuditLog request"
	q := r.URL.Query()
	v := valid.New()
	si := v.Query(q, "startIndex").Optional().IsInt(valid.IntOpts{Min: ptr(0)}, "")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	start, _ := strconv.Atoi(valid.String(si.Value()))
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	read := func(index int) (*xmljs.Object, error) {
		env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.AuditLog.ReadRecords(index) })
		if err != nil {
			return nil, err
		}
		out := xmljs.Obj(xmljs.Path(env, "Body", "ReadRecords_OUTPUT"))
		if out == nil {
			return nil, errNoAnswer
		}
		return out, nil
	}
	first := start
	if first <= 0 {
		first = 1
	}
	out, err := read(first)
	if err != nil {
		c.fail(err, exc)
		return
	}
	// AMT returns the oldest records first; the route returns the newest
	// first, so read the window that ends startIndex records from the end.
	total, _ := xmljs.Int(out.Get("TotalRecordCount"))
	returned, _ := xmljs.Int(out.Get("RecordsReturned"))
	adjust := 0
	if total > returned {
		reversed := total - int64(start) - returned
		if reversed < returned {
			adjust = int(returned)
			reversed = 1
		}
		if out, err = read(int(reversed)); err != nil {
			c.fail(err, exc)
			return
		}
	}
	total, _ = xmljs.Int(out.Get("TotalRecordCount"))
	returned, _ = xmljs.Int(out.Get("RecordsReturned"))
	records := []any{}
	if returned > 0 {
		for _, rec := range xmljs.List(out.Get("EventRecords")) {
			raw, err := base64.StdEncoding.DecodeString(xmljs.Text(rec))
			if err != nil {
				continue
			}
			records = append([]any{decodeAuditRecord(raw)}, records...)
		}
		if adjust > 0 && adjust < len(records) {
			records = records[len(records)-adjust:]
		}
	}
	c.json(xmljs.NewObject().Set("totalCnt", total).Set("records", records))
}

// binStr is a byte string read the way JavaScript reads a "binary" string:
// out-of-range reads give 0 and empty substrings.
type binStr []byte

func (b binStr) at(i int) int {
	if i < 0 || i >= len(b) {
		return 0
	}
	return int(b[i])
}

func (b binStr) sub(from, to int) binStr {
	from, to = max(from, 0), min(to, len(b))
	if from >= to {
		return nil
	}
	return b[from:to]
}

// latin1 maps each byte to the code point of the same value (a JavaScript
// binary string).
func (b binStr) latin1() string {
	rs := make([]rune, len(b))
	for i, c := range b {
		rs[i] = rune(c)
	}
	return string(rs)
}

func (b binStr) u16be(i int) int { return b.at(i)<<8 | b.at(i+1) }
func (b binStr) u32be(i int) uint32 {
	return uint32(b.at(i))<<24 | uint32(b.at(i+1))<<16 | uint32(b.at(i+2))<<8 | uint32(b.at(i+3))
}

// decodeAuditRecord decodes one AMT_AuditLog record (spec/mps.md §6.5).
// Device data: every read is bounds-checked.
func decodeAuditRecord(raw []byte) *xmljs.Object {
	b := binStr(raw)
	app, ev := b.u16be(0), b.u16be(2)
	itype := b.at(4)
	var appName any
	if n, ok := auditNames[app]; ok && app < 100 {
		appName = n
	}
	event, ok := auditNames[app*100+ev]
	if !ok || event == "" {
		event = "#" + strconv.Itoa(ev)
	}
	initiator, ptr := "", 0
	switch itype {
	case 0: // HTTP digest
		n := b.at(5)
		initiator, ptr = b.sub(6, 6+n).latin1(), 6+n
	case 1: // Kerberos
		n := b.at(9)
		initiator, ptr = sidString(b.sub(10, 10+n)), 10+n
	case 2:
		initiator, ptr = "Local", 5
	case 3:
		initiator, ptr = "KVM Default Port", 5
	}
	ts := b.u32be(ptr)
	ptr += 4
	loc := b.at(ptr)
	ptr++
	netLen := b.at(ptr)
	ptr++
	netAddr := strings.Replace(b.sub(ptr, ptr+netLen).latin1(), "0000:0000:0000:0000:0000:0000:0000:0001", "::1", 1)
	ptr += netLen
	exLen := b.at(ptr)
	ptr++
	ex := b.sub(ptr, ptr+exLen)
	var exStr any
	if s, ok := auditExtendedString(app*100+ev, ex); ok {
		exStr = s
	}
	o := xmljs.NewObject().Set("AuditAppID", app).Set("EventID", ev).Set("InitiatorType", itype)
	if appName != nil {
		o.Set("AuditApp", appName) // MPS leaves it undefined for unknown applications
	}
	return o.Set("Event", event).Set("Initiator", initiator).
		Set("Time", time.Unix(int64(ts), 0).UTC().Format("2006-01-02T15:04:05.000Z")).
		Set("MCLocationType", loc).Set("NetAddress", netAddr).
		Set("Ex", ex.latin1()).Set("ExStr", exStr)
}

// sidString formats a Windows SID: S-<revision>-<authority>-<subauthorities…>.
func sidString(b binStr) string {
	if len(b) < 8 {
		return ""
	}
	var auth uint64
	for i := 2; i < 8; i++ {
		auth = auth<<8 | uint64(b[i])
	}
	s := "S-" + strconv.Itoa(int(b[0])) + "-" + strconv.FormatUint(auth, 10)
	for i := 8; i+4 <= len(b); i += 4 {
		s += "-" + strconv.FormatUint(uint64(binary.LittleEndian.Uint32(b[i:])), 10)
	}
	return s
}

// pick returns names[i], or "" out of range.
func pick(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return ""
	}
	return names[i]
}

// auditExtendedString is the human-readable extended data MPS shows for
// some audit events (ACL changes, TLS, unprovisioning, firmware update,
// user consent); ok is false (ExStr null) for the others.
func auditExtendedString(id int, ex binStr) (string, bool) {
	auth := []string{"NoAuth", "ServerAuth", "MutualAuth"}
	consent := []string{"None", "KVM", "All"}
	switch id {
	case 1602, 1604: // ACL entry added / removed
		if len(ex) > 0 && ex.at(0) == 0 {
			return ex.sub(2, 2+ex.at(1)).latin1(), true
		}
	case 1603: // ACL entry modified
		if ex.at(1) == 0 {
			return ex.sub(3, len(ex)).latin1(), true
		}
	case 1605:
		return pick([]string{"Invalid ME access", "Invalid MEBx access"}, ex.at(0)), true
	case 1606:
		s := pick([]string{"Disabled", "Enabled"}, ex.at(0))
		if ex.at(1) == 0 {
			s += ", " + ex.sub(3, len(ex)).latin1()
		}
		return s, true
	case 1607:
		return "Remote " + pick(auth, ex.at(0)) + ", Local " + pick(auth, ex.at(1)), true
	case 1619:
		return pick([]string{"BIOS", "MEBx", "Local MEI", "Local WSMAN", "Remote WSMAN"}, ex.at(0)), true
	case 1900:
		return fmt.Sprintf("From %d.%d.%d.%d to %d.%d.%d.%d", ex.u16be(0), ex.u16be(2), ex.u16be(4), ex.u16be(6),
			ex.u16be(8), ex.u16be(10), ex.u16be(12), ex.u16be(14)), true
	case 3000:
		return "From " + pick(consent, ex.at(0)) + " to " + pick(consent, ex.at(1)), true
	case 3001:
		return pick([]string{"Success", "Failed 3 times"}, ex.at(0)), true
	}
	return "", false
}

// ---- event log ----

func (h *handlers) eventLog(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during AMT Event Log request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	pos, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.MessageLog.PositionToFirstRecord() })
	if err != nil {
		c.fail(err, exc)
		return
	}
	id, ok := xmljs.Int(xmljs.Path(pos, "Body", "PositionToFirstRecord_OUTPUT", "IterationIdentifier"))
	if !ok {
		badRequest(w, r, "Event Log request failed for guid : "+c.guid+".")
		return
	}
	env, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.AMT.MessageLog.GetRecords(int(id), messagelog.MaxAMTRecords)
	})
	if err != nil {
		c.fail(err, exc)
		return
	}
	out := []any{}
	for _, rec := range xmljs.List(xmljs.Path(env, "Body", "GetRecords_OUTPUT", "RecordArray")) {
		raw, err := base64.StdEncoding.DecodeString(xmljs.Text(rec))
		if err != nil {
			continue
		}
		if o := decodeEventRecord(raw); o != nil {
			out = append(out, o)
		}
	}
	c.json(out)
}

// decodeEventRecord decodes one 21-byte AMT_MessageLog record; nil for
// records without a valid time stamp (or too short).
func decodeEventRecord(raw []byte) *xmljs.Object {
	if len(raw) < 21 {
		return nil
	}
	ts := binary.LittleEndian.Uint32(raw)
	if ts == 0 || ts == 0xFFFFFFFF {
		return nil
	}
	data := make([]any, 8)
	ints := make([]int, 8)
	for i := 0; i < 8; i++ {
		data[i] = int(raw[13+i])
		ints[i] = int(raw[13+i])
	}
	entity := int(raw[11])
	entityStr, ok := messagelog.SystemEntityTypes[entity]
	if !ok || entityStr == "" {
		entityStr = "Unknown"
	}
	return xmljs.NewObject().
		Set("DeviceAddress", int(raw[4])).Set("EventSensorType", int(raw[5])).Set("EventType", int(raw[6])).
		Set("EventOffset", int(raw[7])).Set("EventSourceType", int(raw[8])).Set("EventSeverity", int(raw[9])).
		Set("SensorNumber", int(raw[10])).Set("Entity", entity).Set("EntityInstance", int(raw[12])).
		Set("EventData", data).
		Set("TimeStamp", time.Unix(int64(ts), 0).UTC().Format("2006-01-02T15:04:05.000Z")).
		Set("EntityStr", entityStr).
		Set("Desc", eventDescription(int(raw[5]), int(raw[7]), ints))
}

// eventDescription is MPS's text for an event by sensor type; nil when
// there is none.
func eventDescription(sensorType, offset int, d []int) any {
	str := func(m map[int]string, k int) any {
		if s, ok := m[k]; ok {
			return s
		}
		return nil
	}
	switch sensorType {
	case 6:
		return fmt.Sprintf("Authentication failed %d times. The system may be under attack.", d[1]+d[2]<<8)
	case 15:
		if d[0] == 235 {
			return "Invalid Data"
		}
		if offset == 0 {
			return str(messagelog.SystemFirmwareError, d[1])
		}
		return str(messagelog.SystemFirmwareProgress, d[1])
	case 18:
		if d[0] == 170 {
			state, ok := messagelog.WatchdogCurrentStates[d[7]]
			if !ok {
				state = "undefined" // what MPS's template prints
			}
			return fmt.Sprintf("Agent watchdog %02x%02x%02x%02x-%02x%02x-... changed to %s",
				d[4], d[3], d[2], d[1], d[6], d[5], state)
		}
		return nil
	case 30:
		return "No bootable media"
	case 32:
		return "Operating system lockup or power interrupt"
	case 35:
		return "System boot failure"
	case 37:
		return "System firmware started (at least one CPU is properly executing)."
	}
	return "Unknown Sensor Type #" + strconv.Itoa(sensorType)
}
