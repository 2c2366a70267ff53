package mps_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/devaccess/devaccesstest"
	"github.com/amtd-project/amtd/sim/firmware"
)

// lastBoot is the simulated host's most recent boot.
func lastBoot(t *testing.T, sim *devaccesstest.Sim) firmware.BootRecord {
	t.Helper()
	var b *firmware.BootRecord
	sim.FW.View(func(s *firmware.State) {
		if s.Boot.Last != nil {
			c := *s.Boot.Last
			b = &c
		}
	})
	if b == nil {
		t.Fatal("the host has not booted")
	}
	return *b
}

func TestPowerState(t *testing.T) { bothPaths(t, testPowerState) }

func testPowerState(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	g := sim.GUID
	wantBody(t, must(t, e, 200, "GET", "/api/v1/amt/power/state/"+g, nil), `{"powerstate":2,"OSPowerSavingState":2}`)

	resp := must(t, e, 200, "POST", "/api/v1/amt/power/action/"+g, map[string]any{"action": 8, "useSOL": false})
	o := resp.JSON(t)
	if jsonPath(o, "Body", "ReturnValue") != float64(0) || jsonPath(o, "Body", "ReturnValueStr") != "SUCCESS" ||
		!strings.HasSuffix(jsonPath(o, "Header", "Action").(string), "RequestPowerStateChangeResponse") {
		t.Fatalf("power off: %s", resp.Body)
	}
	if ps := jsonPath(must(t, e, 200, "GET", "/api/v1/amt/power/state/"+g, nil).JSON(t), "powerstate"); ps != float64(8) {
		t.Fatalf("power state after off: %v", ps)
	}
	must(t, e, 200, "POST", "/api/v1/amt/power/action/"+g, map[string]any{"action": 2})
	if ps := jsonPath(must(t, e, 200, "GET", "/api/v1/amt/power/state/"+g, nil).JSON(t), "powerstate"); ps != float64(2) {
		t.Fatalf("power state after on: %v", ps)
	}
	if b := lastBoot(t, sim); b.Action != 2 || b.Source != "" {
		t.Fatalf("boot after power on: %+v", b)
	}
	// OS power saving: already at full power
	wantBody(t, must(t, e, 200, "POST", "/api/v1/amt/power/action/"+g, map[string]any{"action": 500}),
		`{"Body":{"ReturnValue":0,"ReturnValueStr":"COMPLETED_WITH_NO_ERROR"}}`)
	// extended actions are not power actions: MPS's ReturnValue-36 body, and the device is left alone
	before := len(must(t, e, 200, "GET", "/api/v1/amt/log/audit/"+g+"?startIndex=0", nil).Body)
	for _, a := range []int{17, 100, 401} {
		wantBody(t, must(t, e, 200, "POST", "/api/v1/amt/power/action/"+g, map[string]any{"action": a}),
			`{"Body":{"RequestPowerStateChange_OUTPUT":{"ReturnValue":36,"ReturnValueStr":"INVALID_PARAMETER"}}}`)
	}
	if after := len(must(t, e, 200, "GET", "/api/v1/amt/log/audit/"+g+"?startIndex=0", nil).Body); after != before {
		t.Fatal("an extended action on /power/action changed the device")
	}
}

func TestBootOptions(t *testing.T) { bothPaths(t, testBootOptions) }

func testBootOptions(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	g := sim.GUID
	path := "/api/v1/amt/power/bootOptions/" + g
	// boot changes need no consent only when user consent is KVM-only
	must(t, e, 200, "POST", "/api/v1/amt/features/"+g, map[string]any{"userConsent": "kvm", "enableSOL": true, "enableIDER": true, "enableKVM": true})

	resp := must(t, e, 200, "POST", path, map[string]any{"action": 101, "useSOL": false})
	if jsonPath(resp.JSON(t), "Body", "ReturnValueStr") != "SUCCESS" {
		t.Fatalf("reset to BIOS: %s", resp.Body)
	}
	if b := lastBoot(t, sim); b.Action != 10 || !b.Settings.BIOSSetup || b.Source != "" {
		t.Fatalf("reset to BIOS: %+v", b)
	}
	// (the host is on: the "reset to" variants boot it again)
	must(t, e, 200, "POST", path, map[string]any{"action": 400, "useSOL": true})
	if b := lastBoot(t, sim); b.Action != 10 || b.Source != "Intel(r) AMT: Force PXE Boot" || !b.Settings.UseSOL || b.Settings.BIOSSetup {
		t.Fatalf("power on to PXE with SOL: %+v", b)
	}
	must(t, e, 200, "POST", path, map[string]any{"action": 202, "useSOL": false})
	if b := lastBoot(t, sim); b.Source != "Intel(r) AMT: Force CD/DVD Boot" || !b.Settings.UseIDER || b.Settings.IDERBootDevice != 1 {
		t.Fatalf("reset to IDE-R CD: %+v", b)
	}
	// One-Click Recovery: HTTPS boot carries its URL in the UEFI parameters
	must(t, e, 200, "POST", path, map[string]any{"action": 105, "useSOL": false, "bootDetails": map[string]any{"url": "https://boot.example.com/img.iso"}})
	b := lastBoot(t, sim)
	raw, _ := base64.StdEncoding.DecodeString(b.Settings.UefiBootParametersArray)
	if b.Source != "Intel(r) AMT: Force OCR UEFI HTTPS Boot" || b.Settings.UefiBootNumberOfParams != 2 ||
		!strings.Contains(string(raw), "https://boot.example.com/img.iso") || !b.Settings.ForcedProgressEvents {
		t.Fatalf("HTTPS boot: %+v", b)
	}
	// WinRE found by its BIOS string; PBA by its path
	must(t, e, 200, "POST", path, map[string]any{"action": 109, "useSOL": false})
	if b := lastBoot(t, sim); !strings.HasPrefix(b.Source, "Intel(r) AMT: Force OCR UEFI Boot Option") {
		t.Fatalf("WinRE: %+v", b)
	}
	sources := must(t, e, 200, "GET", "/api/v1/amt/power/bootSources/"+g, nil).JSON(t).([]any)
	var pbaPath, pbaID string
	for _, s := range sources {
		if strings.Contains(jsonPath(s, "biosBootString").(string), "PBA") {
			pbaPath, pbaID = jsonPath(s, "bootString").(string), jsonPath(s, "instanceID").(string)
		}
		for _, k := range []string{"biosBootString", "bootString", "elementName", "failThroughSupported", "instanceID", "structuredBiosBootString"} {
			if _, ok := s.(map[string]any)[k]; !ok {
				t.Fatalf("boot source lacks %s: %v", k, s)
			}
		}
	}
	if pbaPath == "" {
		t.Fatalf("no PBA source in %v", sources)
	}
	must(t, e, 200, "POST", path, map[string]any{"action": 107, "useSOL": false, "bootDetails": map[string]any{"bootPath": pbaPath}})
	if b := lastBoot(t, sim); b.Source != pbaID {
		t.Fatalf("PBA: %+v", b)
	}
	badReq := `{"error":"Incorrect URI or Bad Request","errorDescription":"Boot source for action 108 not found for guid : ` + g + `."}`
	wantBody(t, must(t, e, 400, "POST", path, map[string]any{"action": 108, "useSOL": false, "bootDetails": map[string]any{"bootPath": `\nothing.efi`}}), badReq)
	// CCM cannot turn secure boot off
	wantBody(t, must(t, e, 400, "POST", path, map[string]any{"action": 106, "useSOL": false, "bootDetails": map[string]any{"url": "https://x.example.com/a", "enforceSecureBoot": false}}),
		`{"error":"Incorrect URI or Bad Request","errorDescription":"EnforceSecureBoot cannot be turned off in CCM"}`)
	wantErrors(t, e.Do(t, "POST", path, map[string]any{"action": 106, "useSOL": false, "bootDetails": map[string]any{"url": "not a url", "bootPath": 3}}),
		"body bootDetails.url: Invalid value", "body bootDetails.bootPath: Invalid value")
}

func TestOCRFeature(t *testing.T) { bothPaths(t, testOCRFeature) }

func testOCRFeature(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	path := "/api/v1/amt/features/" + sim.GUID
	got := must(t, e, 200, "GET", path, nil).Object(t)
	if got["ocr"] != false || got["httpsBootSupported"] != true || got["winREBootSupported"] != true || got["localPBABootSupported"] != true {
		t.Fatalf("OCR features: %v", got)
	}
	must(t, e, 200, "POST", path, map[string]any{"userConsent": "all", "enableSOL": true, "enableIDER": true, "enableKVM": true, "ocr": true})
	if got := must(t, e, 200, "GET", path, nil).Object(t); got["ocr"] != true {
		t.Fatalf("ocr after enabling: %v", got)
	}
}

func TestLogs(t *testing.T) { bothPaths(t, testLogs) }

func testLogs(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	g := sim.GUID
	must(t, e, 200, "POST", "/api/v1/amt/power/action/"+g, map[string]any{"action": 10})
	resp := must(t, e, 200, "GET", "/api/v1/amt/log/audit/"+g+"?startIndex=0", nil)
	o := resp.JSON(t)
	records := jsonPath(o, "records").([]any)
	total := jsonPath(o, "totalCnt").(float64)
	if total < 2 || len(records) == 0 || len(records) > 10 {
		t.Fatalf("audit log: %s", resp.Body)
	}
	// newest first: the reset we just made
	if jsonPath(records, 0, "Event") != "Performed Reset" || jsonPath(records, 0, "AuditApp") != "RCO" ||
		jsonPath(records, 0, "Initiator") != "admin" || jsonPath(records, 0, "InitiatorType") != float64(0) {
		t.Fatalf("newest audit record: %v", records[0])
	}
	for _, r := range records {
		for _, k := range []string{"AuditAppID", "EventID", "InitiatorType", "AuditApp", "Event", "Initiator", "Time", "MCLocationType", "NetAddress", "Ex", "ExStr"} {
			if _, ok := r.(map[string]any)[k]; !ok {
				t.Fatalf("audit record lacks %s: %v", k, r)
			}
		}
	}
	resp = must(t, e, 200, "GET", "/api/v1/amt/log/event/"+g, nil)
	events := resp.JSON(t).([]any)
	if len(events) == 0 || jsonPath(events, 0, "EntityStr") == nil || len(jsonPath(events, 0, "EventData").([]any)) != 8 {
		t.Fatalf("event log: %s", resp.Body)
	}
}

func TestAlarms(t *testing.T) { bothPaths(t, testAlarms) }

func testAlarms(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	path := "/api/v1/amt/alarmOccurrences/" + sim.GUID
	wantBody(t, must(t, e, 200, "GET", path, nil), `[]`)
	wantBody(t, must(t, e, 200, "POST", path, map[string]any{"ElementName": "nightly", "StartTime": "2030-01-01T02:00:00Z", "Interval": 1440, "DeleteOnCompletion": false}),
		`{"status":"SUCCESS","ReturnValue":0}`)
	// a name with XML in it is stored as text, not markup
	must(t, e, 200, "POST", path, map[string]any{"ElementName": "a<b>&c", "InstanceID": "x2", "StartTime": "2030-01-02T00:00:00Z"})
	list := must(t, e, 200, "GET", path, nil).JSON(t).([]any)
	if len(list) != 2 {
		t.Fatalf("alarms: %v", list)
	}
	var nightly, odd any
	for _, a := range list {
		switch jsonPath(a, "InstanceID") {
		case "nightly":
			nightly = a
		case "x2":
			odd = a
		}
	}
	if jsonPath(nightly, "InternalInMinutes") != float64(1440) || jsonPath(nightly, "StartTime", "Datetime") != "2030-01-01T02:00:00Z" ||
		jsonPath(nightly, "DeleteOnCompletion") != false {
		t.Fatalf("nightly alarm: %v", nightly)
	}
	if jsonPath(odd, "ElementName") != "a<b>&c" {
		t.Fatalf("escaped alarm: %v", odd)
	}
	wantBody(t, must(t, e, 400, "POST", path, map[string]any{"ElementName": "x"}),
		`{"error":"Incorrect URI or Bad Request","errorDescription":"Alarm add request invalid parameters for guid : `+sim.GUID+`."}`)
	wantBody(t, must(t, e, 400, "DELETE", path, map[string]any{}),
		`{"error":"Incorrect URI or Bad Request","errorDescription":"Invalid alarm occurrence request for guid : `+sim.GUID+`."}`)
	wantBody(t, must(t, e, 200, "DELETE", path, map[string]any{"Name": "nightly"}), `{"status":"SUCCESS"}`)
	wantBody(t, must(t, e, 404, "DELETE", path, map[string]any{"Name": "nightly"}),
		`{"error":"Alarm instance not found","errorDescription":"Alarm occurrence delete request failed for guid : `+sim.GUID+`."}`)
}

func TestHardwareInfo(t *testing.T) { bothPaths(t, testHardwareInfo) }

func testHardwareInfo(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	resp := must(t, e, 200, "GET", "/api/v1/amt/hardwareInfo/"+sim.GUID, nil)
	o := resp.JSON(t)
	for _, class := range []string{"CIM_ComputerSystemPackage", "CIM_SystemPackaging", "CIM_Chassis", "CIM_Chip", "CIM_Card",
		"CIM_BIOSElement", "CIM_Processor", "CIM_PhysicalMemory", "CIM_MediaAccessDevice", "CIM_PhysicalPackage"} {
		if jsonPath(o, class, "status") != float64(200) || jsonPath(o, class, "responses") == nil {
			t.Errorf("%s: %v", class, jsonPath(o, class))
		}
	}
	if jsonPath(o, "CIM_BIOSElement", "response", "Version") == nil || len(jsonPath(o, "CIM_PhysicalMemory", "responses").([]any)) == 0 {
		t.Fatalf("inventory: %.2000s", resp.Body)
	}
}

func TestKVMDisplays(t *testing.T) { bothPaths(t, testKVMDisplays) }

func testKVMDisplays(t *testing.T, opts envOpts) {
	e := newEnv(t, opts)
	sim := e.lanSim(t, devaccesstest.SimOptions{}, "")
	path := "/api/v1/amt/kvm/displays/" + sim.GUID
	resp := must(t, e, 200, "GET", path, nil)
	displays := jsonPath(resp.JSON(t), "displays").([]any)
	if len(displays) == 0 || jsonPath(displays, 0, "displayIndex") != float64(0) || jsonPath(displays, 0, "isActive") != true {
		t.Fatalf("displays: %s", resp.Body)
	}
	resp = must(t, e, 200, "PUT", path, map[string]any{"displayIndex": 0})
	if jsonPath(resp.JSON(t), "IPS_KVMRedirectionSettingData", "DefaultScreen") != float64(0) {
		t.Fatalf("put: %s", resp.Body)
	}
	// a screen the device does not have
	must(t, e, 500, "PUT", path, map[string]any{"displayIndex": 9})
	wantErrors(t, e.Do(t, "PUT", path, map[string]any{"displayIndex": "x"}), "body displayIndex: Invalid value", "body displayIndex: Invalid value")
}
