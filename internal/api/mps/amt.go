package mps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"runtime/debug"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/client"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/devaccess"
)

// devCall is one request's use of a device.
type devCall struct {
	h       *handlers
	w       http.ResponseWriter
	r       *http.Request
	guid    string
	hd      *devaccess.Handle
	ctx     context.Context
	cancel  context.CancelFunc
	timeout time.Duration // per WS-MAN call
}

// connect lends the device to the request, or answers: 404 (MPS's "not
// connected" body) when it cannot be reached, 401 when it belongs to another
// tenant, 500 with the route's exception text on other failures. The caller
// must call close.
func (h *handlers) connect(w http.ResponseWriter, r *http.Request, exc string) (*devCall, bool) {
	guid := r.PathValue("guid")
	if h.opts.Access == nil {
		notConnected(w, r, guid)
		return nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.RequestTimeout)
	hd, err := h.opts.Access.Open(ctx, guid)
	if err != nil {
		cancel()
		if errors.Is(err, devaccess.ErrNotConnected) {
			if errors.Is(err, devaccess.ErrNoCredentials) {
				logErr(r, "device reachable but amtd holds no AMT password", err)
			}
			notConnected(w, r, guid)
			return nil, false
		}
		logErr(r, "opening the device", err)
		internalError(w, r, exc)
		return nil, false
	}
	if hd.Tenant != api.Tenant(r.Context()) {
		hd.Release()
		cancel()
		writeErr(w, r, http.StatusUnauthorized, msgUnauthorized, msgUnauthorized)
		return nil, false
	}
	return &devCall{h: h, w: w, r: r, guid: guid, hd: hd, ctx: ctx, cancel: cancel, timeout: h.opts.CallTimeout}, true
}

func (c *devCall) close() {
	c.hd.Release()
	c.cancel()
}

// errPanic wraps a panic raised while handling a device's answer (the
// library's decoders index device data without bounds checks).
type errPanic struct{ v any }

func (e errPanic) Error() string {
	return fmt.Sprintf("panic while handling the device's answer: %v", e.v)
}

// do runs fn (one or more WS-MAN calls) under the per-call deadline.
func (c *devCall) do(fn func(m wsman.Messages) error) (err error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	defer cancel()
	return c.hd.Client.Do(ctx, func(m wsman.Messages) (err error) {
		defer func() {
			if p := recover(); p != nil {
				api.LoggerFrom(c.r.Context()).Error("mps: panic in a device call", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				err = errPanic{p}
			}
		}()
		return fn(m)
	})
}

// messageOf returns the raw exchange embedded in a go-wsman-messages
// response (every Response type embeds *client.Message).
func messageOf(resp any) *client.Message {
	v := reflect.ValueOf(resp)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	f := v.FieldByName("Message")
	if !f.IsValid() || !f.CanInterface() {
		return nil
	}
	m, _ := f.Interface().(*client.Message)
	return m
}

// errNoAnswer: the call returned no XML to parse.
var errNoAnswer = errors.New("mps: the device returned no WS-MAN answer")

// envelope runs one call and returns its answer parsed as xml2js would
// (the Envelope object: Header, Body).
func (c *devCall) envelope(call func(m wsman.Messages) (any, error)) (*xmljs.Object, error) {
	var out *xmljs.Object
	err := c.do(func(m wsman.Messages) error {
		resp, err := call(m)
		if err != nil {
			// Some methods report a non-zero ReturnValue as an error, and the
			// library's typed decoding may fail on an answer that is fine:
			// when the device did answer with an envelope (not a fault),
			// hand it over; callers check ReturnValue themselves.
			if env, perr := parseAnswer(resp); perr == nil && xmljs.Path(env, "Body", "Fault") == nil {
				out = env
				return nil
			}
			return err
		}
		out, err = parseAnswer(resp)
		return err
	})
	return out, err
}

func parseAnswer(resp any) (*xmljs.Object, error) {
	msg := messageOf(resp)
	if msg == nil || msg.XMLOutput == "" {
		return nil, errNoAnswer
	}
	o, err := xmljs.Parse([]byte(msg.XMLOutput))
	if err != nil {
		return nil, err
	}
	env := xmljs.Obj(o.Get("Envelope"))
	if env == nil {
		return nil, errNoAnswer
	}
	return env, nil
}

// enumPull enumerates a class and pulls its instances; it returns the Pull
// answer's envelope.
func (c *devCall) enumPull(enum func(m wsman.Messages) (any, error), pull func(m wsman.Messages, ec string) (any, error)) (*xmljs.Object, error) {
	var out *xmljs.Object
	err := c.do(func(m wsman.Messages) error {
		resp, err := enum(m)
		if err != nil {
			return err
		}
		env, err := parseAnswer(resp)
		if err != nil {
			return err
		}
		ec := xmljs.Text(xmljs.Path(env, "Body", "EnumerateResponse", "EnumerationContext"))
		if ec == "" {
			return errors.New("mps: enumeration returned no context")
		}
		resp, err = pull(m, ec)
		if err != nil {
			return err
		}
		out, err = parseAnswer(resp)
		return err
	})
	return out, err
}

// items returns the instances of a Pull answer: every child of
// Body.PullResponse.Items, whatever its element name, in order.
func items(pullEnv *xmljs.Object) []any {
	it := xmljs.Obj(xmljs.Path(pullEnv, "Body", "PullResponse", "Items"))
	var out []any
	for _, k := range it.Keys() {
		out = append(out, xmljs.List(it.Get(k))...)
	}
	return out
}

// itemsOf returns the instances of one element name.
func itemsOf(pullEnv *xmljs.Object, class string) []any {
	return xmljs.List(xmljs.Path(pullEnv, "Body", "PullResponse", "Items", class))
}

// fail answers a device failure with MPS's 500 and the route's text.
func (c *devCall) fail(err error, exc string) {
	logErr(c.r, exc, err)
	if errors.Is(err, devaccess.ErrUnreachable) {
		notConnected(c.w, c.r, c.r.PathValue("guid"))
		return
	}
	internalError(c.w, c.r, exc)
}

// json answers 200 with v.
func (c *devCall) json(v any) { api.WriteJSON(c.w, c.r, http.StatusOK, v) }

// ---- information ----

func (h *handlers) generalSettings(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during AMT General Settings request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.GeneralSettings.Get() })
	if err != nil {
		c.fail(err, exc)
		return
	}
	c.json(env)
}

func (h *handlers) amtVersion(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during AMT Version request"
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
	sc, err := c.envelope(func(m wsman.Messages) (any, error) { return m.AMT.SetupAndConfigurationService.Get() })
	if err != nil {
		c.fail(err, exc)
		return
	}
	ids := itemsOf(sw, "CIM_SoftwareIdentity")
	if ids == nil {
		ids = []any{}
	}
	c.json(xmljs.NewObject().
		Set("CIM_SoftwareIdentity", xmljs.NewObject().Set("responses", ids).Set("status", 200)).
		Set("AMT_SetupAndConfigurationService", xmljs.NewObject().
			Set("response", xmljs.Path(sc, "Body", "AMT_SetupAndConfigurationService")).
			Set("responses", sc).
			Set("status", 200)))
}

// hardwareInfo is GET /amt/hardwareInfo: one entry per inventory class.
func (h *handlers) hardwareInfo(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during AMT Hardware Information request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	out := xmljs.NewObject()
	entry := func(list []any) *xmljs.Object {
		var first any
		if len(list) > 0 {
			first = list[0]
		} else {
			list = []any{}
		}
		return xmljs.NewObject().Set("response", first).Set("responses", list).Set("status", 200)
	}
	get := func(class string, call func(m wsman.Messages) (any, error)) error {
		env, err := c.envelope(call)
		if err != nil {
			return fmt.Errorf("%s: %w", class, err)
		}
		out.Set(class, entry(xmljs.List(xmljs.Path(env, "Body", class))))
		return nil
	}
	list := func(class string, enum func(m wsman.Messages) (any, error), pull func(m wsman.Messages, ec string) (any, error)) error {
		env, err := c.enumPull(enum, pull)
		if err != nil {
			return fmt.Errorf("%s: %w", class, err)
		}
		out.Set(class, entry(items(env)))
		return nil
	}
	steps := []func() error{
		func() error {
			return get("CIM_ComputerSystemPackage", func(m wsman.Messages) (any, error) { return m.CIM.ComputerSystemPackage.Get() })
		},
		func() error {
			return list("CIM_SystemPackaging",
				func(m wsman.Messages) (any, error) { return m.CIM.SystemPackaging.Enumerate() },
				func(m wsman.Messages, ec string) (any, error) { return m.CIM.SystemPackaging.Pull(ec) })
		},
		func() error {
			return get("CIM_Chassis", func(m wsman.Messages) (any, error) { return m.CIM.Chassis.Get() })
		},
		func() error {
			return list("CIM_Chip",
				func(m wsman.Messages) (any, error) { return m.CIM.Chip.Enumerate() },
				func(m wsman.Messages, ec string) (any, error) { return m.CIM.Chip.Pull(ec) })
		},
		func() error {
			return get("CIM_Card", func(m wsman.Messages) (any, error) { return m.CIM.Card.Get() })
		},
		func() error {
			return get("CIM_BIOSElement", func(m wsman.Messages) (any, error) { return m.CIM.BIOSElement.Get() })
		},
		func() error {
			return list("CIM_Processor",
				func(m wsman.Messages) (any, error) { return m.CIM.Processor.Enumerate() },
				func(m wsman.Messages, ec string) (any, error) { return m.CIM.Processor.Pull(ec) })
		},
		func() error {
			return list("CIM_PhysicalMemory",
				func(m wsman.Messages) (any, error) { return m.CIM.PhysicalMemory.Enumerate() },
				func(m wsman.Messages, ec string) (any, error) { return m.CIM.PhysicalMemory.Pull(ec) })
		},
		func() error {
			return list("CIM_MediaAccessDevice",
				func(m wsman.Messages) (any, error) { return m.CIM.MediaAccessDevice.Enumerate() },
				func(m wsman.Messages, ec string) (any, error) { return m.CIM.MediaAccessDevice.Pull(ec) })
		},
		func() error {
			return list("CIM_PhysicalPackage",
				func(m wsman.Messages) (any, error) { return m.CIM.PhysicalPackage.Enumerate() },
				func(m wsman.Messages, ec string) (any, error) { return m.CIM.PhysicalPackage.Pull(ec) })
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			c.fail(err, exc)
			return
		}
	}
	c.json(out)
}
