package mps

import (
	"errors"
	"net/http"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/redirection"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/kvm"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/optin"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/api/valid"
)

// userConsentValues are IPS_OptInService.OptInRequired values by name.
var userConsentValues = []struct {
	name  string
	value int64
}{{"none", 0}, {"kvm", 1}, {"all", 4294967295}}

// featureState is what GET and POST /amt/features read from the device.
type featureState struct {
	redir   *xmljs.Object // AMT_RedirectionService
	optIn   *xmljs.Object // IPS_OptInService
	kvmSAP  *xmljs.Object // CIM_KVMRedirectionSAP (nil when absent)
	listen  bool
	sol     bool
	ider    bool
	kvm     bool
	optInRq int64
}

func (c *devCall) readFeatures() (*featureState, error) {
	redir, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.RedirectionService.Get() })
	if err != nil {
		return nil, err
	}
	opt, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.OptInService.Get() })
	if err != nil {
		return nil, err
	}
	st := &featureState{
		redir: xmljs.Obj(xmljs.Path(redir, "Body", "AMT_RedirectionService")),
		optIn: xmljs.Obj(xmljs.Path(opt, "Body", "IPS_OptInService")),
	}
	kvmEnv, err := c.envelope(func(m wsman.Messages) (any, error) { return m.CIM.KVMRedirectionSAP.Get() })
	var fault *amt.FaultError
	switch {
	case err == nil:
		st.kvmSAP = xmljs.Obj(xmljs.Path(kvmEnv, "Body", "CIM_KVMRedirectionSAP"))
	case errors.As(err, &fault):
		// no KVM on this device
	default:
		return nil, err
	}
	st.listen = xmljs.Bool(st.redir.Get("ListenerEnabled"))
	es, _ := xmljs.Int(st.redir.Get("EnabledState"))
	st.sol, st.ider = es&2 != 0, es&1 != 0
	if st.kvmSAP != nil {
		k, _ := xmljs.Int(st.kvmSAP.Get("EnabledState"))
		st.kvm = k == 2 || k == 6
	}
	st.optInRq, _ = xmljs.Int(st.optIn.Get("OptInRequired"))
	return st, nil
}

// ocrState reads One-Click Recovery support; devices without the classes
// (a WS-MAN fault) report everything false.
type ocrState struct {
	ocr, https, winRE, pba bool
}

func (c *devCall) readOCR() (ocrState, error) {
	var st ocrState
	tolerate := func(err error) error {
		var fault *amt.FaultError
		if errors.As(err, &fault) {
			logErr(c.r, "OCR class not available", err)
			return nil
		}
		return err
	}
	bs, err := c.envelope(func(m wsman.Messages) (any, error) { return m.CIM.BootService.Get() })
	if err != nil {
		return st, tolerate(err)
	}
	es, _ := xmljs.Int(xmljs.Path(bs, "Body", "CIM_BootService", "EnabledState"))
	st.ocr = es == 32769 || es == 32771
	src, err := c.bootSourceSettings()
	if err != nil {
		return st, tolerate(err)
	}
	caps, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.BootCapabilities.Get() })
	if err != nil {
		return st, tolerate(err)
	}
	data, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.BootSettingData.Get() })
	if err != nil {
		return st, tolerate(err)
	}
	bc := xmljs.Obj(xmljs.Path(caps, "Body", "AMT_BootCapabilities"))
	bd := xmljs.Obj(xmljs.Path(data, "Body", "AMT_BootSettingData"))
	var hasHTTPS, hasWinRE, hasPBA bool
	for _, it := range itemsOf(src, "CIM_BootSourceSetting") {
		id := xmljs.Text(xmljs.Path(it, "InstanceID"))
		bios := xmljs.Text(xmljs.Path(it, "BIOSBootString"))
		switch {
		case strings.HasPrefix(id, sourceHTTPS):
			hasHTTPS = true
		case strings.HasPrefix(id, sourceOCRPrefix):
			hasWinRE = hasWinRE || strings.Contains(bios, "WinRe")
			hasPBA = hasPBA || strings.Contains(bios, "PBA")
		}
	}
	st.https = hasHTTPS && xmljs.Bool(bc.Get("ForceUEFIHTTPSBoot")) && xmljs.Bool(bd.Get("UEFIHTTPSBootEnabled"))
	st.winRE = hasWinRE && xmljs.Bool(bc.Get("ForceWinREBoot")) && xmljs.Bool(bd.Get("WinREBootEnabled"))
	st.pba = hasPBA && xmljs.Bool(bc.Get("ForceUEFIPBABoot")) && xmljs.Bool(bd.Get("UEFILocalPBABootEnabled"))
	return st, nil
}

func (h *handlers) getFeatures(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during AMT Features request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	st, err := c.readFeatures()
	if err != nil {
		c.fail(err, exc)
		return
	}
	ocr, err := c.readOCR()
	if err != nil {
		c.fail(err, exc)
		return
	}
	o := xmljs.NewObject()
	for _, uc := range userConsentValues {
		if uc.value == st.optInRq {
			o.Set("userConsent", uc.name)
		}
	}
	optInState := st.optIn.Get("OptInState")
	if optInState == nil {
		optInState = 0
	}
	o.Set("redirection", st.listen).Set("KVM", st.kvm).Set("SOL", st.sol).Set("IDER", st.ider).
		Set("optInState", optInState).Set("kvmAvailable", st.kvmSAP != nil).Set("ocr", ocr.ocr).
		Set("httpsBootSupported", ocr.https).Set("winREBootSupported", ocr.winRE).
		Set("localPBABootSupported", ocr.pba).Set("remoteErase", false)
	c.json(o)
}

// toBoolean is express-validator's toBoolean() (loose): everything but
// "0", "false" and "" is true.
func toBoolean(v any) bool {
	switch valid.String(v) {
	case "0", "false", "":
		return false
	}
	return true
}

func (h *handlers) setFeatures(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during AMT Features Set request"
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "userConsent").IsIn([]any{"kvm", "all", "none"}, "").Custom(mustString(""))
	v.Body(body, "enableSOL").IsBoolean("")
	v.Body(body, "enableIDER").IsBoolean("")
	v.Body(body, "enableKVM").IsBoolean("")
	v.Body(body, "ocr").Optional().IsBoolean("")
	v.Body(body, "enablePlatformErase").Optional().IsBoolean("")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	wantSOL, wantIDER, wantKVM := toBoolean(body["enableSOL"]), toBoolean(body["enableIDER"]), toBoolean(body["enableKVM"])
	var wantConsent int64
	for _, uc := range userConsentValues {
		if uc.name == body["userConsent"] {
			wantConsent = uc.value
		}
	}
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	st, err := c.readFeatures()
	if err != nil {
		c.fail(err, exc)
		return
	}
	if wantSOL != st.sol || wantIDER != st.ider || wantKVM != st.kvm || ((wantSOL || wantIDER) && !st.listen) {
		state := 32768
		if wantIDER {
			state++
		}
		if wantSOL {
			state += 2
		}
		listener := wantSOL || wantIDER || wantKVM
		if _, err := c.envelope(func(m wsman.Messages) (any, error) {
			return m.AMT.RedirectionService.RequestStateChange(redirection.RequestedState(state))
		}); err != nil {
			c.fail(err, exc)
			return
		}
		if st.kvmSAP != nil {
			k := 3
			if wantKVM {
				k = 2
			}
			if _, err := c.envelope(func(m wsman.Messages) (any, error) {
				return m.CIM.KVMRedirectionSAP.RequestStateChange(kvm.KVMRedirectionSAPRequestStateChangeInput(k))
			}); err != nil {
				c.fail(err, exc)
				return
			}
		}
		req := redirection.RedirectionRequest{
			CreationClassName:       xmljs.Text(st.redir.Get("CreationClassName")),
			ElementName:             xmljs.Text(st.redir.Get("ElementName")),
			EnabledState:            redirection.EnabledState(state),
			ListenerEnabled:         listener,
			Name:                    xmljs.Text(st.redir.Get("Name")),
			SystemCreationClassName: xmljs.Text(st.redir.Get("SystemCreationClassName")),
			SystemName:              xmljs.Text(st.redir.Get("SystemName")),
		}
		if _, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.RedirectionService.Put(&req) }); err != nil {
			c.fail(err, exc)
			return
		}
	}
	if wantConsent != st.optInRq {
		i := func(k string) int { n, _ := xmljs.Int(st.optIn.Get(k)); return int(n) }
		req := optin.OptInServiceRequest{
			CanModifyOptInPolicy:    i("CanModifyOptInPolicy"),
			CreationClassName:       xmljs.Text(st.optIn.Get("CreationClassName")),
			ElementName:             xmljs.Text(st.optIn.Get("ElementName")),
			Name:                    xmljs.Text(st.optIn.Get("Name")),
			OptInCodeTimeout:        i("OptInCodeTimeout"),
			OptInDisplayTimeout:     i("OptInDisplayTimeout"),
			OptInRequired:           int(wantConsent),
			OptInState:              i("OptInState"),
			SystemName:              xmljs.Text(st.optIn.Get("SystemName")),
			SystemCreationClassName: xmljs.Text(st.optIn.Get("SystemCreationClassName")),
		}
		if _, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.OptInService.Put(req) }); err != nil {
			c.fail(err, exc)
			return
		}
	}
	if o, present := body["ocr"]; present {
		state := 32768
		if toBoolean(o) {
			state = 32769
		}
		if _, err := c.envelope(func(m wsman.Messages) (any, error) { return m.CIM.BootService.RequestStateChange(state) }); err != nil {
			c.fail(err, exc)
			return
		}
	}
	c.json(map[string]string{"status": "AMT Features updated"})
}

// ---- user consent ----

// consentAnswer shapes an IPS_OptInService method answer as MPS:
// {"Header":…,"Body":{…_OUTPUT, "ReturnValueStr":…}}, 200 when
// ReturnValue is 0, else 400.
func (c *devCall) consentAnswer(env *xmljs.Object, output, failed string) {
	out := xmljs.Obj(xmljs.Path(env, "Body", output))
	if out == nil {
		badRequest(c.w, c.r, failed+" for guid : "+c.guid+".")
		return
	}
	rv, _ := xmljs.Int(out.Get("ReturnValue"))
	out.Set("ReturnValueStr", statusName(rv))
	status := http.StatusOK
	if rv != 0 {
		status = http.StatusBadRequest
	}
	api.WriteJSON(c.w, c.r, status, xmljs.NewObject().Set("Header", env.Get("Header")).Set("Body", out))
}

func (h *handlers) requestConsent(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during User Consent Request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.OptInService.StartOptIn() })
	if err != nil {
		c.fail(err, exc)
		return
	}
	c.consentAnswer(env, "StartOptIn_OUTPUT", "User Consent Request failed")
}

func (h *handlers) sendConsent(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during User Consent Sent"
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "consentCode").Matches(isNumeric, "")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	code := actionOf(body["consentCode"])
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.OptInService.SendOptInCode(code) })
	if err != nil {
		c.fail(err, exc)
		return
	}
	c.consentAnswer(env, "SendOptInCode_OUTPUT", "User Consent Sent failed")
}

func (h *handlers) cancelConsent(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during User Consent Cancel"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.OptInService.CancelOptIn() })
	if err != nil {
		c.fail(err, exc)
		return
	}
	c.consentAnswer(env, "CancelOptIn_OUTPUT", "User Consent Cancel failed")
}
