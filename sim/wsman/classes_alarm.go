package wsman

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

// ---- AMT_AlarmClockService ----

func alarmClockService() *Class {
	return &Class{
		Name: "AMT_AlarmClockService",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{service(NewInstance("AMT_AlarmClockService"), "Intel(r) AMT Alarm Clock Service").S("SystemName", "ManagedSystem")}, nil
		},
		Methods: map[string]Method{
			"AddAlarm": func(c *Call) (*Output, error) {
				t := c.Req.Body.Child("AlarmTemplate")
				if t == nil {
					return RV(firmware.PTInvalidParameter), nil
				}
				a := firmware.Alarm{InstanceID: strings.TrimSpace(t.Text1("InstanceID")), ElementName: strings.TrimSpace(t.Text1("ElementName"))}
				start, err := time.Parse(time.RFC3339, strings.TrimSpace(t.Child("StartTime").Text1("Datetime")))
				if err != nil {
					return RV(firmware.PTInvalidParameter), nil
				}
				a.StartTime = start
				if iv := t.Child("Interval"); iv != nil {
					d, err := ParseInterval(strings.TrimSpace(iv.Text1("Interval")))
					if err != nil || d%time.Minute != 0 {
						return RV(firmware.PTInvalidParameter), nil
					}
					a.IntervalMinutes = int(d / time.Minute)
				}
				if v, ok := t.Value("DeleteOnCompletion"); ok {
					b, err := strconv.ParseBool(strings.TrimSpace(v))
					if err != nil {
						return RV(firmware.PTInvalidParameter), nil
					}
					a.DeleteOnCompletion = b
				}
				if rv := c.FW.AddAlarm(a); rv != firmware.PTSuccess {
					return RV(rv), nil
				}
				return (&Output{}).WithRef("AlarmClock", Ref("IPS_AlarmClockOccurrence", "InstanceID", a.InstanceID)), nil
			},
		},
	}
}

// ---- IPS_AlarmClockOccurrence ----

func alarmClockOccurrence() *Class {
	return &Class{
		Name: "IPS_AlarmClockOccurrence",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			for _, a := range c.FW.Alarms() {
				in := NewInstance("IPS_AlarmClockOccurrence").B("DeleteOnCompletion", a.DeleteOnCompletion).
					S("ElementName", a.ElementName).S("InstanceID", a.InstanceID).D("StartTime", cimDatetime(a.StartTime))
				if a.IntervalMinutes > 0 { // a one-time alarm has no Interval
					in.Dur("Interval", FormatInterval(time.Duration(a.IntervalMinutes)*time.Minute))
				}
				out = append(out, in)
			}
			return out, nil
		},
		Delete: func(c *Call, target *Instance) error {
			id, _ := target.Get("InstanceID")
			if !c.FW.DeleteAlarm(id) {
				return FaultInvalidSelectors()
			}
			return nil
		},
	}
}

var errInterval = errors.New("wsman: malformed interval")

// ParseInterval parses the xs:duration subset CIM intervals use:
// P[nD][T[nH][nM][nS]] (no years or months; a leading '-' is refused).
func ParseInterval(s string) (time.Duration, error) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, errInterval
	}
	var total time.Duration
	inTime, any := false, false
	for rest != "" {
		if rest[0] == 'T' {
			if inTime {
				return 0, errInterval
			}
			inTime, rest = true, rest[1:]
			if rest == "" {
				return 0, errInterval
			}
			continue
		}
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i > 9 || i == len(rest) {
			return 0, errInterval
		}
		n, _ := strconv.Atoi(rest[:i])
		var unit time.Duration
		switch {
		case rest[i] == 'D' && !inTime:
			unit = 24 * time.Hour
		case rest[i] == 'H' && inTime:
			unit = time.Hour
		case rest[i] == 'M' && inTime:
			unit = time.Minute
		case rest[i] == 'S' && inTime:
			unit = time.Second
		default:
			return 0, errInterval
		}
		const limit = 100 * 365 * 24 * time.Hour
		if time.Duration(n) > (limit-total)/unit {
			return 0, errInterval
		}
		total += time.Duration(n) * unit
		any, rest = true, rest[i+1:]
	}
	if !any {
		return 0, errInterval
	}
	return total, nil
}

// FormatInterval writes a whole-minute duration as P1D, PT2H30M, P1DT5M, ….
func FormatInterval(d time.Duration) string {
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m := d/time.Hour, (d%time.Hour)/time.Minute
	var b strings.Builder
	b.WriteString("P")
	if days > 0 {
		b.WriteString(strconv.Itoa(int(days)) + "D")
	}
	if h > 0 || m > 0 {
		b.WriteString("T")
		if h > 0 {
			b.WriteString(strconv.Itoa(int(h)) + "H")
		}
		if m > 0 {
			b.WriteString(strconv.Itoa(int(m)) + "M")
		}
	}
	if b.Len() == 1 {
		b.WriteString("0D")
	}
	return b.String()
}
