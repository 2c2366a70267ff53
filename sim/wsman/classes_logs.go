package wsman

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

// cimDatetime formats a time as AMT writes CIM datetimes.
func cimDatetime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// ---- AMT_AuditLog ----

// auditRecordsPerRead is how many records ReadRecords returns at most.
const auditRecordsPerRead = 10

func auditLog() *Class {
	return &Class{
		Name: "AMT_AuditLog",
		Instances: func(c *Call) ([]*Instance, error) {
			recs := c.FW.AuditRecords()
			free := 100 - len(recs)*100/firmware.MaxAuditRecords
			in := NewInstance("AMT_AuditLog").I("AuditState", 16).I("CurrentNumberOfRecords", int64(len(recs))).
				S("ElementName", "Intel(r) AMT Audit Log").I("EnabledState", 2).I("MaxAllowedAuditors", 1).I("MaxNumberOfRecords", 0).
				S("Name", "Intel(r) AMT:Audit Log").I("OverwritePolicy", 2).I("PercentageFree", int64(free)).I("RequestedState", 2).
				I("StoragePolicy", 1)
			if len(recs) > 0 {
				in.D("TimeOfLastRecord", cimDatetime(recs[len(recs)-1].Time))
			}
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			// ReadRecords returns up to 10 records from StartIndex (1-based),
			// oldest first, each base64 of AMT's binary record.
			"ReadRecords": func(c *Call) (*Output, error) {
				start, ok := c.IntParam("StartIndex")
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				if start < 1 {
					start = 1
				}
				recs := c.FW.AuditRecords()
				var out []string
				for i := int(start) - 1; i >= 0 && i < len(recs) && len(out) < auditRecordsPerRead; i++ {
					out = append(out, base64.StdEncoding.EncodeToString(recs[i].AppendBinary(nil)))
				}
				return (&Output{}).With("TotalRecordCount", strconv.Itoa(len(recs))).With("RecordsReturned", strconv.Itoa(len(out))).
					WithList("EventRecords", out...), nil
			},
		},
	}
}

// ---- AMT_MessageLog ----

// maxGetRecords bounds MaxReadRecords (the whole log).
const maxGetRecords = firmware.MaxEventRecords

func messageLog() *Class {
	return &Class{
		Name: "AMT_MessageLog",
		Instances: func(c *Call) ([]*Instance, error) {
			n := len(c.FW.EventRecords())
			in := service(NewInstance("AMT_MessageLog"), "Intel(r) AMT:MessageLog 1").Del("SystemCreationClassName").Del("SystemName").
				L("Capabilities", "5", "6", "8", "7").I("CharacterSet", 10).I("CurrentNumberOfRecords", int64(n)).
				I("EnabledDefault", 2).I("EnabledState", 2).I("HealthState", 5).B("IsFrozen", false).I("LastChange", 0).
				I("LogState", 4).I("MaxLogSize", 0).I("MaxNumberOfRecords", firmware.MaxEventRecords).
				I("MaxRecordSize", firmware.EventRecordSize).I("OperationalStatus", 2).I("OverwritePolicy", 2).
				I("PercentageNearFull", int64(n*100/firmware.MaxEventRecords)).I("RequestedState", 12).I("SizeOfHeader", 0).
				I("SizeOfRecordHeader", 0).S("Status", "OK")
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"PositionToFirstRecord": func(c *Call) (*Output, error) {
				return (&Output{}).With("IterationIdentifier", "1"), nil
			},
			// GetRecords returns records from the 1-based position
			// IterationIdentifier, newest first. The returned identifier is
			// the position of the last record returned, as the real-device
			// fixture shows.
			"GetRecords": func(c *Call) (*Output, error) {
				id, ok1 := c.IntParam("IterationIdentifier")
				max, ok2 := c.IntParam("MaxReadRecords")
				if !ok1 || !ok2 || id < 1 || max < 1 {
					return RV(firmware.PTInvalidParameter), nil
				}
				max = min(max, maxGetRecords)
				recs := c.FW.EventRecords()
				var out []string
				pos := int(id)
				for ; pos <= len(recs) && len(out) < int(max); pos++ {
					r := recs[len(recs)-pos] // newest first
					out = append(out, base64.StdEncoding.EncodeToString(r.AppendBinary(nil)))
				}
				last := int(id) + len(out) - 1
				if len(out) == 0 {
					last = int(id)
				}
				return (&Output{}).With("IterationIdentifier", strconv.Itoa(last)).
					With("NoMoreRecords", strconv.FormatBool(pos > len(recs))).WithList("RecordArray", out...), nil
			},
		},
	}
}
