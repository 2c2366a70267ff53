package mps

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	amtboot "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/boot"
	cimboot "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/boot"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/power"
	ipspower "github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/power"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/api/valid"
)

// combinedPowerStates are the actions MPS's validators accept (DMTF power
// states and the extended boot actions).
var combinedPowerStates = []any{2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17,
	100, 101, 104, 105, 106, 107, 108, 109, 110, 200, 201, 202, 203, 300, 301, 400, 401, 500, 501}

// extendedPowerStates are the actions of /power/bootOptions.
var extendedPowerStates = []any{100, 101, 104, 105, 106, 107, 108, 109, 110, 200, 201, 202, 203, 300, 301, 400, 401, 500, 501}

// ---- power state ----

func (h *handlers) powerState(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during Power State request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	c.timeout = h.opts.PowerStateTimeout
	var osState any = xmljs.Number(0)
	if env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.PowerManagementService.Get() }); err == nil {
		if v := xmljs.Path(env, "Body", "IPS_PowerManagementService", "OSPowerSavingState"); v != nil && v != "" {
			osState = v
		}
	} else {
		logErr(r, "reading OSPowerSavingState", err)
	}
	env, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.ServiceAvailableToElement.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.ServiceAvailableToElement.Pull(ec) })
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			logErr(r, exc, err)
			writeErr(w, r, http.StatusNotFound, msgNotFound, exc)
			return
		}
		c.fail(err, exc)
		return
	}
	var ps any
	if list := itemsOf(env, "CIM_AssociatedPowerManagementService"); len(list) > 0 {
		ps = xmljs.Path(list[0], "PowerState")
	}
	if ps == nil || ps == "" {
		badRequest(w, r, "Power State request failed for guid : "+c.guid+".")
		return
	}
	c.json(xmljs.NewObject().Set("powerstate", ps).Set("OSPowerSavingState", osState))
}

// ---- power action ----

// returnValueBody is {"Body":{"ReturnValue":n,"ReturnValueStr":"…"}}.
func returnValueBody(rv int64, str string) *xmljs.Object {
	return xmljs.NewObject().Set("Body", xmljs.NewObject().Set("ReturnValue", rv).Set("ReturnValueStr", str))
}

// invalidParameterBody is MPS's answer to actions it does not pass to AMT.
func invalidParameterBody() *xmljs.Object {
	return xmljs.NewObject().Set("Body", xmljs.NewObject().Set("RequestPowerStateChange_OUTPUT",
		xmljs.NewObject().Set("ReturnValue", 36).Set("ReturnValueStr", "INVALID_PARAMETER")))
}

// statusName is AMT's status name for a ReturnValue (unknown →
// UNKNOWN_ERROR, as MPS).
func statusName(rv int64) string {
	if n := amt.ReturnValueName(int(rv)); n != "unknown" {
		return n
	}
	return "UNKNOWN_ERROR"
}

func actionOf(v any) int {
	n, _ := strconv.Atoi(valid.String(v))
	return n
}

func (h *handlers) powerAction(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during Power Action request"
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "action").IsIn(combinedPowerStates, "").Matches(isNumeric, "")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	action := actionOf(body["action"])
	if (action > 16 && action < 500) || action > 501 {
		// extended actions belong to /power/bootOptions (spec/mps.md §6.5)
		api.WriteJSON(w, r, http.StatusOK, invalidParameterBody())
		return
	}
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	if err := c.clearBootSettings(); err != nil {
		c.fail(err, exc)
		return
	}
	if action == 500 || action == 501 {
		out, err := c.osPowerSaving(action)
		if err != nil {
			c.fail(err, exc)
			return
		}
		c.json(out)
		return
	}
	out, err := c.requestPowerState(action)
	if err != nil {
		c.fail(err, exc)
		return
	}
	c.json(out)
}

// clearBootSettings is MPS's first step of a power action: the boot
// settings read back with every one-time boot flag cleared.
func (c *devCall) clearBootSettings() error {
	var cur amtboot.BootSettingDataResponse
	if err := c.do(func(m wsman.Messages) error {
		resp, err := m.AMT.BootSettingData.Get()
		cur = resp.Body.BootSettingDataGetResponse
		return err
	}); err != nil {
		return err
	}
	req := bootRequest(cur)
	req.BIOSPause, req.BIOSSetup, req.BootMediaIndex = false, false, 0
	req.ConfigurationDataReset, req.FirmwareVerbosity, req.ForcedProgressEvents = false, 0, false
	req.IDERBootDevice, req.LockKeyboard, req.LockPowerButton = 0, false, false
	req.LockResetButton, req.LockSleepButton, req.ReflashBIOS = false, false, false
	req.UseIDER, req.UseSOL, req.UseSafeMode, req.UserPasswordBypass, req.SecureErase = false, false, false, false, false
	return c.do(func(m wsman.Messages) error {
		_, err := m.AMT.BootSettingData.Put(req)
		return err
	})
}

// bootRequest copies a read AMT_BootSettingData into a Put request.
func bootRequest(cur amtboot.BootSettingDataResponse) amtboot.BootSettingDataRequest {
	return amtboot.BootSettingDataRequest{
		BIOSPause: cur.BIOSPause, BIOSSetup: cur.BIOSSetup, BootMediaIndex: cur.BootMediaIndex,
		BootguardStatus: cur.BootguardStatus, ConfigurationDataReset: cur.ConfigurationDataReset,
		ElementName: cur.ElementName, EnforceSecureBoot: cur.EnforceSecureBoot,
		FirmwareVerbosity: cur.FirmwareVerbosity, ForcedProgressEvents: cur.ForcedProgressEvents,
		IDERBootDevice: cur.IDERBootDevice, InstanceID: cur.InstanceID, LockKeyboard: cur.LockKeyboard,
		LockPowerButton: cur.LockPowerButton, LockResetButton: cur.LockResetButton,
		LockSleepButton: cur.LockSleepButton, OptionsCleared: cur.OptionsCleared, OwningEntity: cur.OwningEntity,
		PlatformErase: cur.PlatformErase, RPEEnabled: cur.RPEEnabled, ReflashBIOS: cur.ReflashBIOS,
		SecureBootControlEnabled: cur.SecureBootControlEnabled, SecureErase: cur.SecureErase,
		UEFIHTTPSBootEnabled: cur.UEFIHTTPSBootEnabled, UEFILocalPBABootEnabled: cur.UEFILocalPBABootEnabled,
		UefiBootNumberOfParams: cur.UefiBootNumberOfParams, UseIDER: cur.UseIDER, UseSOL: cur.UseSOL,
		UseSafeMode: cur.UseSafeMode, UserPasswordBypass: cur.UserPasswordBypass, WinREBootEnabled: cur.WinREBootEnabled,
	}
}

// osPowerSaving handles actions 500 (OS to full power) and 501 (OS to
// power saving).
func (c *devCall) osPowerSaving(action int) (*xmljs.Object, error) {
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.PowerManagementService.Get() })
	if err != nil {
		return nil, err
	}
	cur, _ := xmljs.Int(xmljs.Path(env, "Body", "IPS_PowerManagementService", "OSPowerSavingState"))
	target := int64(2)
	if action == 501 {
		target = 3
	}
	switch {
	case cur == 0:
		return returnValueBody(1, "OS_POWER_STATE_UNKNOWN"), nil
	case cur == 1:
		return returnValueBody(2, "OS_POWER_STATE_UNSUPPORTED"), nil
	case cur == target:
		return returnValueBody(0, "COMPLETED_WITH_NO_ERROR"), nil
	}
	env, err = c.envelope(func(m wsman.Messages) (any, error) {
		return m.IPS.PowerManagementService.RequestOSPowerSavingStateChange(ipspower.OSPowerSavingState(target))
	})
	if err != nil {
		return nil, err
	}
	rv, _ := xmljs.Int(xmljs.Path(env, "Body", "RequestOSPowerSavingStateChange_OUTPUT", "ReturnValue"))
	if rv == 0 {
		return returnValueBody(0, "COMPLETED_WITH_NO_ERROR"), nil
	}
	return returnValueBody(rv, statusName(rv)), nil
}

// requestPowerState sends CIM_PowerManagementService.RequestPowerStateChange
// (waking the OS first for power on) and shapes the answer as MPS:
// {"Header":…,"Body":{"ReturnValue":n,"ReturnValueStr":"…"}}.
func (c *devCall) requestPowerState(action int) (*xmljs.Object, error) {
	if action == 2 {
		if env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.PowerManagementService.Get() }); err == nil {
			if s, _ := xmljs.Int(xmljs.Path(env, "Body", "IPS_PowerManagementService", "OSPowerSavingState")); s == 3 {
				if _, err := c.envelope(func(m wsman.Messages) (any, error) {
					return m.IPS.PowerManagementService.RequestOSPowerSavingStateChange(ipspower.OSPowerSavingState(2))
				}); err != nil {
					return nil, err
				}
			}
		}
	}
	env, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.CIM.PowerManagementService.RequestPowerStateChange(power.PowerState(action))
	})
	if err != nil {
		return nil, err
	}
	out := xmljs.Obj(xmljs.Path(env, "Body", "RequestPowerStateChange_OUTPUT"))
	if out == nil {
		return nil, errNoAnswer
	}
	rv, _ := xmljs.Int(out.Get("ReturnValue"))
	out.Set("ReturnValueStr", statusName(rv))
	return xmljs.NewObject().Set("Header", env.Get("Header")).Set("Body", out), nil
}

// ---- capabilities and boot sources ----

func (h *handlers) powerCapabilities(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during Power Capabilities request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	sw, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.SoftwareIdentity.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.SoftwareIdentity.Pull(ec) })
	if err != nil {
		c.fail(err, exc)
		return
	}
	bc, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.BootCapabilities.Get() })
	if err != nil {
		c.fail(err, exc)
		return
	}
	major := amtMajor(sw)
	caps := xmljs.Obj(xmljs.Path(bc, "Body", "AMT_BootCapabilities"))
	o := xmljs.NewObject().Set("Power up", 2).Set("Power cycle", 5).Set("Power down", 8).Set("Reset", 10)
	if major > 9 {
		o.Set("Soft-off", 12).Set("Soft-reset", 14).Set("Sleep", 4).Set("Hibernate", 7)
	}
	if xmljs.Bool(caps.Get("BIOSSetup")) {
		o.Set("Power up to BIOS", 100).Set("Reset to BIOS", 101)
	}
	if xmljs.Bool(caps.Get("SecureErase")) {
		o.Set("Reset to Secure Erase", 104)
	}
	o.Set("Reset to IDE-R Floppy", 200).Set("Power on to IDE-R Floppy", 201).
		Set("Reset to IDE-R CDROM", 202).Set("Power on to IDE-R CDROM", 203)
	if xmljs.Bool(caps.Get("ForceDiagnosticBoot")) {
		o.Set("Power on to diagnostic", 300).Set("Reset to diagnostic", 301)
	}
	o.Set("Reset to PXE", 400).Set("Power on to PXE", 401)
	c.json(o)
}

// amtMajor is the major version of the CIM_SoftwareIdentity instance "AMT".
func amtMajor(pullEnv *xmljs.Object) int {
	for _, it := range itemsOf(pullEnv, "CIM_SoftwareIdentity") {
		if xmljs.Text(xmljs.Path(it, "InstanceID")) == "AMT" {
			v := xmljs.Text(xmljs.Path(it, "VersionString"))
			n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
			return n
		}
	}
	return 0
}

// bootSourceKeys maps CIM_BootSourceSetting properties to MPS's names.
var bootSourceKeys = [][2]string{
	{"BIOSBootString", "biosBootString"}, {"BootString", "bootString"}, {"ElementName", "elementName"},
	{"FailThroughSupported", "failThroughSupported"}, {"InstanceID", "instanceID"},
	{"StructuredBIOSBootString", "structuredBiosBootString"},
}

func (h *handlers) bootSources(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during Boot Sources request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.bootSourceSettings()
	if err != nil {
		c.fail(err, exc)
		return
	}
	out := []any{}
	for _, it := range itemsOf(env, "CIM_BootSourceSetting") {
		o := xmljs.NewObject()
		for _, k := range bootSourceKeys {
			v := xmljs.Path(it, k[0])
			if v == nil {
				if k[0] == "FailThroughSupported" {
					v = 0
				} else {
					v = ""
				}
			}
			o.Set(k[1], v)
		}
		out = append(out, o)
	}
	c.json(out)
}

func (c *devCall) bootSourceSettings() (*xmljs.Object, error) {
	return c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.BootSourceSetting.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.BootSourceSetting.Pull(ec) })
}

// ---- boot options ----

// Boot sources (CIM_BootSourceSetting instance IDs).
const (
	sourceHTTPS     = "Intel(r) AMT: Force OCR UEFI HTTPS Boot"
	sourceOCRPrefix = "Intel(r) AMT: Force OCR UEFI Boot Option"
	sourceCD        = "Intel(r) AMT: Force CD/DVD Boot"
	sourcePXE       = "Intel(r) AMT: Force PXE Boot"
	bootConfig0     = "Intel(r) AMT: Boot Configuration 0"
)

// bootPowerAction is the power state each boot action ends with.
func bootPowerAction(action int) int {
	switch action {
	case 100, 104, 106, 108, 110, 201, 203, 300, 401:
		return 2
	}
	return 10
}

// isURL approximates validator.js isURL: an http, https or ftp URL with a
// host.
func isURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ftp":
		return true
	}
	return false
}

func (h *handlers) bootOptions(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during Boot Setting request"
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	details, _ := body["bootDetails"].(map[string]any)
	v := valid.New()
	v.Body(body, "action").IsIn(extendedPowerStates, "").Matches(isNumeric, "")
	v.Body(body, "useSOL").IsBoolean("")
	nested := func(key string) *valid.Chain {
		val, present := details[key]
		return v.Field(valid.LocBody, "bootDetails."+key, val, present)
	}
	nested("url").Optional().Matches(isURL, "")
	nested("username").Optional().Custom(mustString(""))
	nested("password").Optional().Redact().Custom(mustString(""))
	nested("bootPath").Optional().Custom(mustString(""))
	nested("enforceSecureBoot").Optional().IsBoolean("")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	action := actionOf(body["action"])
	useSOL := valid.String(body["useSOL"]) == "true" || valid.String(body["useSOL"]) == "1"
	enforce := true
	if e, present := details["enforceSecureBoot"]; present {
		s := valid.String(e)
		enforce = s == "true" || s == "1"
	}
	bootPath, _ := details["bootPath"].(string)
	httpsURL, _ := details["url"].(string)

	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()

	if action == 500 || action == 501 {
		if err := c.clearBootSettings(); err != nil {
			c.fail(err, exc)
			return
		}
		out, err := c.osPowerSaving(action)
		if err != nil {
			c.fail(err, exc)
			return
		}
		c.json(out)
		return
	}

	if !enforce {
		env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.SetupAndConfigurationService.Get() })
		if err != nil {
			c.fail(err, exc)
			return
		}
		if mode, _ := xmljs.Int(xmljs.Path(env, "Body", "AMT_SetupAndConfigurationService", "ProvisioningMode")); mode == 4 {
			badRequest(w, r, "EnforceSecureBoot cannot be turned off in CCM")
			return
		}
	}

	source := ""
	var tlv []byte
	params := 0
	switch action {
	case 105, 106:
		source = sourceHTTPS
		tlv = appendTLV(tlv, 1, []byte(httpsURL))
		tlv = appendTLV(tlv, 20, []byte{1})
		params = 2
	case 107, 108, 109, 110:
		env, err := c.bootSourceSettings()
		if err != nil {
			c.fail(err, exc)
			return
		}
		source = findBootSource(itemsOf(env, "CIM_BootSourceSetting"), action, bootPath)
		if source == "" {
			badRequest(w, r, "Boot source for action "+strconv.Itoa(action)+" not found for guid : "+c.guid+".")
			return
		}
		var n [2]byte
		binary.LittleEndian.PutUint16(n[:], uint16(len(bootPath)))
		tlv = appendTLV(tlv, 2, []byte(bootPath))
		tlv = appendTLV(tlv, 3, n[:])
		params = 2
	case 202, 203:
		source = sourceCD
	case 400, 401:
		source = sourcePXE
	}

	var cur amtboot.BootSettingDataResponse
	if err := c.do(func(m wsman.Messages) error {
		resp, err := m.AMT.BootSettingData.Get()
		cur = resp.Body.BootSettingDataGetResponse
		return err
	}); err != nil {
		c.fail(err, exc)
		return
	}
	req := bootRequest(cur)
	req.BIOSPause, req.BIOSSetup, req.BootMediaIndex = false, action < 104, 0
	req.ConfigurationDataReset, req.FirmwareVerbosity, req.ForcedProgressEvents = false, 0, false
	req.IDERBootDevice = 0
	if action == 202 || action == 203 {
		req.IDERBootDevice = 1
	}
	req.LockKeyboard, req.LockPowerButton, req.LockResetButton, req.LockSleepButton = false, false, false, false
	req.ReflashBIOS, req.UseIDER, req.UseSOL = false, action >= 200 && action < 300, useSOL
	req.UseSafeMode, req.UserPasswordBypass, req.SecureErase = false, false, false
	if action >= 105 && action <= 110 {
		req.BIOSLastStatus = nil
		req.UseIDER, req.BIOSSetup, req.UseSOL, req.BootMediaIndex = false, false, false, 0
		req.EnforceSecureBoot, req.UserPasswordBypass, req.ForcedProgressEvents = enforce, false, true
		req.UefiBootNumberOfParams = params
		req.UefiBootParametersArray = base64.StdEncoding.EncodeToString(tlv)
	}
	steps := []func(m wsman.Messages) error{
		func(m wsman.Messages) error { _, err := m.CIM.BootConfigSetting.ChangeBootOrder(""); return err },
		func(m wsman.Messages) error { _, err := m.AMT.BootSettingData.Put(req); return err },
		func(m wsman.Messages) error {
			_, err := m.CIM.BootService.SetBootConfigRole(bootConfig0, 1)
			return err
		},
		func(m wsman.Messages) error {
			_, err := m.CIM.BootConfigSetting.ChangeBootOrder(cimboot.Source(source))
			return err
		},
	}
	for _, step := range steps {
		if err := c.do(step); err != nil {
			c.fail(err, exc)
			return
		}
	}
	out, err := c.requestPowerState(bootPowerAction(action))
	if err != nil {
		c.fail(err, exc)
		return
	}
	c.json(out)
}

// appendTLV appends one UEFI boot parameter: u16le vendor 0x8086, u16le
// type, u32le length, value.
func appendTLV(b []byte, typ uint16, val []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x8086)
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
	return append(b, val...)
}

// findBootSource picks the CIM_BootSourceSetting for a PBA (107/108) or
// WinRE (109/110) boot.
func findBootSource(list []any, action int, bootPath string) string {
	if bootPath != "" {
		for _, it := range list {
			if xmljs.Text(xmljs.Path(it, "BootString")) == bootPath {
				return xmljs.Text(xmljs.Path(it, "InstanceID"))
			}
		}
	}
	if action == 109 || action == 110 {
		for _, it := range list {
			id := xmljs.Text(xmljs.Path(it, "InstanceID"))
			if strings.HasPrefix(id, sourceOCRPrefix) && strings.Contains(xmljs.Text(xmljs.Path(it, "BIOSBootString")), "WinRe") {
				return id
			}
		}
	}
	return ""
}
