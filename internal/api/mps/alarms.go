package mps

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/alarmclock"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
)

const alarmExc = "Exception during alarm occurrences request"

// xmlText escapes a value the WS-MAN library inserts into XML as is
// (selectors, AddAlarm fields): without it a caller could inject elements.
func xmlText(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

var durationRe = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$`)

// durationMinutes converts an xs:duration such as P1DT2H30M to minutes.
func durationMinutes(s string) int64 {
	m := durationRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0
	}
	n := func(i int) int64 { v, _ := strconv.ParseFloat(m[i], 64); return int64(v) }
	return n(1)*525600 + n(2)*43200 + n(3)*1440 + n(4)*60 + n(5) + n(6)/60
}

func (h *handlers) getAlarms(w http.ResponseWriter, r *http.Request) {
	c, ok := h.connect(w, r, alarmExc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.IPS.AlarmClockOccurrence.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.IPS.AlarmClockOccurrence.Pull(ec) })
	if err != nil {
		c.fail(err, alarmExc)
		return
	}
	out := []any{}
	for _, it := range itemsOf(env, "IPS_AlarmClockOccurrence") {
		o := xmljs.Obj(it)
		if o == nil {
			continue
		}
		o.Set("InternalInMinutes", durationMinutes(xmljs.Text(xmljs.Path(o, "Interval", "Interval"))))
		out = append(out, o)
	}
	c.json(out)
}

func (h *handlers) addAlarm(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	c, ok := h.connect(w, r, alarmExc)
	if !ok {
		return
	}
	defer c.close()
	invalid := func() { badRequest(w, r, "Alarm add request invalid parameters for guid : "+c.guid+".") }
	name, start := body["ElementName"], body["StartTime"]
	if name == nil || start == nil {
		invalid()
		return
	}
	startTime, err := time.Parse(time.RFC3339, xmljsString(start))
	if err != nil {
		invalid()
		return
	}
	id := xmljsString(name)
	if v, ok := body["InstanceID"]; ok && v != nil {
		id = xmljsString(v)
	}
	interval := 0
	if v, ok := body["Interval"]; ok && v != nil {
		f, ok := v.(float64)
		if !ok || f < 0 || f != float64(int(f)) {
			invalid()
			return
		}
		interval = int(f)
	}
	del := true
	if v, ok := body["DeleteOnCompletion"].(bool); ok {
		del = v
	}
	alarm := alarmclock.AlarmClockOccurrence{ElementName: xmlText(xmljsString(name)), InstanceID: xmlText(id),
		StartTime: startTime, Interval: interval, DeleteOnCompletion: del}
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.AlarmClockService.AddAlarm(alarm) })
	var fault *amt.FaultError
	if errors.As(err, &fault) {
		logErr(r, "AddAlarm refused", err)
		if strings.Contains(fault.SubCode, "QuotaLimit") {
			badRequest(w, r, "Alarm add request quota exceeded for guid : "+c.guid+".")
		} else {
			invalid()
		}
		return
	}
	if err != nil {
		c.fail(err, alarmExc)
		return
	}
	rv := xmljs.Path(env, "Body", "AddAlarm_OUTPUT", "ReturnValue")
	c.json(xmljs.NewObject().Set("status", "SUCCESS").Set("ReturnValue", rv))
}

func (h *handlers) deleteAlarm(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	c, ok := h.connect(w, r, alarmExc)
	if !ok {
		return
	}
	defer c.close()
	name, present := body["Name"]
	if !present {
		badRequest(w, r, "Invalid alarm occurrence request for guid : "+c.guid+".")
		return
	}
	_, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.IPS.AlarmClockOccurrence.Delete(xmlText(xmljsString(name)))
	})
	var fault *amt.FaultError
	if errors.As(err, &fault) {
		logErr(r, "alarm delete refused", err)
		writeErr(w, r, http.StatusNotFound, "Alarm instance not found", "Alarm occurrence delete request failed for guid : "+c.guid+".")
		return
	}
	if err != nil {
		c.fail(err, alarmExc)
		return
	}
	c.json(map[string]string{"status": "SUCCESS"})
}

// xmljsString is a JSON body value as a string (JavaScript String(v)).
func xmljsString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return xmljs.Text(xmljs.Number(x))
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}
