package mps

import (
	"net/http"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/kvmredirection"

	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/api/valid"
)

func (h *handlers) getDisplays(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during get KVM display setting data"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	screens, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.IPS.ScreenSettingData.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.IPS.ScreenSettingData.Pull(ec) })
	if err != nil || xmljs.Path(screens, "Body", "PullResponse") == nil {
		if err != nil {
			logErr(r, "reading IPS_ScreenSettingData", err)
		}
		writeErr(w, r, http.StatusNotFound, msgNotFound, "KVM Screen Setting Data not found")
		return
	}
	kvmEnv, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.KVMRedirectionSettingData.Get() })
	if err != nil || xmljs.Path(kvmEnv, "Body") == nil {
		if err != nil {
			logErr(r, "reading IPS_KVMRedirectionSettingData", err)
		}
		writeErr(w, r, http.StatusNotFound, msgNotFound, "KVM Redirection Setting Data not found")
		return
	}
	def, hasDef := xmljs.Int(xmljs.Path(kvmEnv, "Body", "IPS_KVMRedirectionSettingData", "DefaultScreen"))
	displays := []any{}
	for _, it := range itemsOf(screens, "IPS_ScreenSettingData") {
		role := map[int64]string{}
		for _, k := range []struct{ key, role string }{{"PrimaryIndex", "primary"}, {"SecondaryIndex", "secondary"}, {"TertiaryIndex", "tertiary"}, {"QuadraryIndex", "quaternary"}} {
			if n, ok := xmljs.Int(xmljs.Path(it, k.key)); ok {
				if _, taken := role[n]; !taken {
					role[n] = k.role
				}
			}
		}
		active := xmljs.List(xmljs.Path(it, "IsActive"))
		ulx := xmljs.List(xmljs.Path(it, "UpperLeftX"))
		uly := xmljs.List(xmljs.Path(it, "UpperLeftY"))
		rx := xmljs.List(xmljs.Path(it, "ResolutionX"))
		ry := xmljs.List(xmljs.Path(it, "ResolutionY"))
		n := max(len(active), len(ulx), len(uly), len(rx), len(ry))
		num := func(l []any, i int) int64 {
			if i < len(l) {
				v, _ := xmljs.Int(l[i])
				return v
			}
			return 0
		}
		for i := 0; i < n; i++ {
			d := xmljs.NewObject().Set("displayIndex", i).
				Set("isActive", i < len(active) && xmljs.Bool(active[i])).
				Set("upperLeftX", num(ulx, i)).Set("upperLeftY", num(uly, i)).
				Set("resolutionX", num(rx, i)).Set("resolutionY", num(ry, i)).
				Set("isDefault", hasDef && def == int64(i))
			if rl, ok := role[int64(i)]; ok {
				d.Set("role", rl)
			}
			displays = append(displays, d)
		}
	}
	c.json(xmljs.NewObject().Set("displays", displays))
}

func (h *handlers) setDisplay(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during set KVM display setting data"
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "displayIndex").Matches(isNumeric, "").IsInt(valid.Range(0, 255), "")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	index := actionOf(body["displayIndex"])
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	var cur kvmredirection.KVMRedirectionSettingsResponse
	if err := c.do(func(m wsman.Messages) error {
		resp, err := m.IPS.KVMRedirectionSettingData.Get()
		cur = resp.Body.KVMRedirectionSettingsResponse
		return err
	}); err != nil {
		c.fail(err, exc)
		return
	}
	req := kvmredirection.KVMRedirectionSettingsRequest{
		ElementName: cur.ElementName, InstanceID: cur.InstanceID, EnabledByMEBx: cur.EnabledByMEBx,
		BackToBackFbMode: cur.BackToBackFbMode, Is5900PortEnabled: cur.Is5900PortEnabled, OptInPolicy: cur.OptInPolicy,
		SessionTimeout: cur.SessionTimeout, DefaultScreen: uint8(index),
		InitialDecimationModeForLowRes: cur.InitialDecimationModeForLowRes,
		GreyscalePixelFormatSupported:  cur.GreyscalePixelFormatSupported, ZlibControlSupported: cur.ZlibControlSupported,
		DoubleBufferMode: cur.DoubleBufferMode, DoubleBufferState: cur.DoubleBufferState,
	}
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.IPS.KVMRedirectionSettingData.Put(&req) })
	if err != nil {
		c.fail(err, exc)
		return
	}
	c.json(env.Get("Body"))
}
