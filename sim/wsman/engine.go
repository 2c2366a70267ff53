// Package wsman is the WS-Management engine of a simulated AMT device: a
// tolerant request parser, a dispatcher by ResourceURI and Action over a
// table of class handlers, and a writer producing responses shaped like
// real firmware's (wsman.md §5–§7).
package wsman

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/amtd-project/amtd/sim/firmware"
)

// Op names used by access rules and fault injection.
const (
	OpGet       = "Get"
	OpPut       = "Put"
	OpCreate    = "Create"
	OpDelete    = "Delete"
	OpEnumerate = "Enumerate"
	OpPull      = "Pull"
	OpRelease   = "Release"
)

// Method implements one extrinsic method.
type Method func(c *Call) (*Output, error)

// Class is the handler table entry of one CIM class.
type Class struct {
	Name string
	// Common declares the DMTF common namespace (classes with datetimes).
	Common bool
	// Instances lists the instances (Enumerate/Pull; generic Get and Delete
	// by selectors).
	Instances func(c *Call) ([]*Instance, error)
	// Get overrides the generic selector lookup.
	Get func(c *Call) (*Instance, error)
	// Put applies the body to the selected instance and returns the result.
	Put func(c *Call, target *Instance) (*Instance, error)
	// Create makes a new instance and returns its reference.
	Create func(c *Call) (*EPR, error)
	// Delete removes the selected instance.
	Delete func(c *Call, target *Instance) error
	// Select overrides the generic selector matching for Put/Delete/Get.
	Select func(c *Call, items []*Instance) (*Instance, error)
	// Methods by name as AMT spells them (case-sensitive).
	Methods map[string]Method
	// LSA lists the operations allowed to the local system account before
	// activation ("*" = all).
	LSA []string
}

// Registry maps resource URIs to classes. It is immutable once built and
// shared by all devices.
type Registry struct{ byURI map[string]*Class }

// NewRegistry builds a registry from class table entries.
func NewRegistry(classes ...*Class) *Registry {
	r := &Registry{byURI: make(map[string]*Class, len(classes))}
	for _, c := range classes {
		r.byURI[ResourceURI(c.Name)] = c
	}
	return r
}

// Class returns a class by name.
func (r *Registry) Class(name string) *Class { return r.byURI[ResourceURI(name)] }

// Classes returns the class names, sorted.
func (r *Registry) Classes() []string {
	var out []string
	for _, c := range r.byURI {
		out = append(out, c.Name)
	}
	slices.Sort(out)
	return out
}

var defaultRegistry = sync.OnceValue(func() *Registry { return NewRegistry(allClasses()...) })

// DefaultRegistry is the table of every class the simulator implements.
func DefaultRegistry() *Registry { return defaultRegistry() }

// Session describes the authenticated caller.
type Session struct {
	User string
	// Setup: the mutual-TLS provisioning session of AMT 19+ (IN state).
	Setup bool
	// Addr is the caller's address (host:port) as the device sees it, for
	// audit records; "" when unknown.
	Addr string
}

// Call is the context of one request given to class handlers.
type Call struct {
	Ctx     context.Context
	FW      *firmware.Firmware
	Req     *Request
	Session Session
	Class   *Class
	Op      string
	engine  *Engine
}

// Param returns a method/Put body parameter by local name.
func (c *Call) Param(name string) (string, bool) { return c.Req.Body.Value(name) }

// Params returns all values of a repeated parameter.
func (c *Call) Params(name string) []string {
	var out []string
	for _, e := range c.Req.Body.All(name) {
		out = append(out, e.Text)
	}
	return out
}

// IntParam parses an integer parameter.
func (c *Call) IntParam(name string) (int64, bool) {
	v, ok := c.Param(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	return n, err == nil
}

// BoolParam parses a boolean parameter.
func (c *Call) BoolParam(name string) (bool, bool) {
	v, ok := c.Param(name)
	if !ok {
		return false, false
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	return b, err == nil
}

// RefParam parses an endpoint-reference parameter.
func (c *Call) RefParam(name string) *EPR { return ParseEPR(c.Req.Body.Child(name)) }

// Options configure an Engine.
type Options struct {
	// EnumerationLifetime: how long an unpulled enumeration context lives (default 2 min, at least 60 s).
	EnumerationLifetime time.Duration
	// MaxEnumerations per device (default 32); the oldest is dropped.
	MaxEnumerations int
	Logger          *slog.Logger
	Registry        *Registry
}

// Engine serves WS-MAN for one device. It keeps only small per-device state
// (message counter, open enumerations) and no goroutines.
type Engine struct {
	fw     *firmware.Firmware
	reg    *Registry
	log    *slog.Logger
	life   time.Duration
	maxEnu int

	msgID atomic.Uint64

	mu      sync.Mutex
	enums   map[string]*enumeration
	enumSeq uint32
	faults  []*FaultRule
}

type enumeration struct {
	class   *Class
	items   []*Instance
	expires time.Time
}

// NewEngine creates the engine of a device.
func NewEngine(fw *firmware.Firmware, opts Options) *Engine {
	e := &Engine{fw: fw, reg: opts.Registry, log: opts.Logger, life: opts.EnumerationLifetime, maxEnu: opts.MaxEnumerations}
	if e.reg == nil {
		e.reg = DefaultRegistry()
	}
	if e.log == nil {
		e.log = fw.Logger()
	}
	if e.life <= 0 {
		e.life = 2 * time.Minute
	}
	if e.life < time.Minute {
		e.life = time.Minute
	}
	if e.maxEnu <= 0 {
		e.maxEnu = 32
	}
	e.msgID.Store(0x2E0)
	return e
}

// Result is the outcome of serving one request.
type Result struct {
	Status int    // 200 or 400
	Body   []byte // SOAP envelope
	// Inject tells the transport to misbehave (fault injection).
	Inject FaultKind
	// Class and Op identify the call (for logs), when known.
	Class, Op string
}

func (e *Engine) nextMessageID() string {
	return fmt.Sprintf("uuid:00000000-8086-8086-8086-%012X", e.msgID.Add(1))
}

// Serve handles one authenticated request body.
func (e *Engine) Serve(ctx context.Context, body []byte, sess Session) (res Result) {
	req, err := Parse(body)
	if err != nil {
		return e.fault(nil, FaultSchemaValidation())
	}
	defer func() {
		if p := recover(); p != nil {
			e.log.Error("wsman: handler panic", "class", res.Class, "op", res.Op, "panic", p, "stack", string(debug.Stack()))
			res = e.fault(req, FaultInternalError(""))
		}
	}()
	cls := e.reg.byURI[req.ResourceURI]
	if cls == nil {
		return e.fault(req, FaultDestinationUnreachable())
	}
	op, method := opOf(req, cls)
	res.Class, res.Op = cls.Name, op
	if op == "" {
		r := e.fault(req, FaultActionNotSupported())
		r.Class = cls.Name
		return r
	}
	c := &Call{Ctx: ctx, FW: e.fw, Req: req, Session: sess, Class: cls, Op: op, engine: e}
	if !e.allowed(c) {
		r := e.fault(req, FaultAccessDenied())
		r.Class, r.Op = cls.Name, op
		return r
	}
	var out Result
	if rule := e.matchFault(cls.Name, op); rule != nil {
		switch rule.Kind {
		case FaultReturnValue:
			if method != nil {
				out = e.methodResult(req, op, RV(rule.ReturnValue))
			} else {
				out = e.fault(req, FaultInternalError(""))
			}
			out.Class, out.Op = cls.Name, op
			return out
		case FaultHTTP400:
			out = e.fault(req, FaultInternalError(""))
			out.Class, out.Op, out.Inject = cls.Name, op, FaultHTTP400
			return out
		case FaultResetAfter:
			out = e.dispatch(c, method)
			out.Inject = FaultResetAfter
			out.Class, out.Op = cls.Name, op
			return out
		default:
			return Result{Inject: rule.Kind, Class: cls.Name, Op: op}
		}
	}
	out = e.dispatch(c, method)
	out.Class, out.Op = cls.Name, op
	return out
}

func opOf(req *Request, cls *Class) (string, Method) {
	switch req.Action {
	case ActionGet:
		if cls.Get != nil || cls.Instances != nil {
			return OpGet, nil
		}
	case ActionPut:
		if cls.Put != nil {
			return OpPut, nil
		}
	case ActionCreate:
		if cls.Create != nil {
			return OpCreate, nil
		}
	case ActionDelete:
		if cls.Delete != nil {
			return OpDelete, nil
		}
	case ActionEnumerate:
		if cls.Instances != nil {
			return OpEnumerate, nil
		}
	case ActionPull:
		if cls.Instances != nil {
			return OpPull, nil
		}
	case ActionRelease:
		if cls.Instances != nil {
			return OpRelease, nil
		}
	default:
		if name, ok := strings.CutPrefix(req.Action, ResourceURI(cls.Name)+"/"); ok {
			if m := cls.Methods[name]; m != nil {
				return name, m
			}
		}
	}
	return "", nil
}

// allowed applies AMT's rule that the local system account only reaches the
// provisioning classes before activation.
func (e *Engine) allowed(c *Call) bool {
	if c.Session.Setup || c.Session.User != firmware.LSAUsername {
		return true
	}
	for _, op := range c.Class.LSA {
		if op == "*" || op == c.Op || (op == OpEnumerate && (c.Op == OpPull || c.Op == OpRelease)) {
			return true
		}
	}
	return false
}

func (e *Engine) dispatch(c *Call, method Method) Result {
	req := c.Req
	switch c.Op {
	case OpGet:
		in, err := e.get(c)
		if err != nil {
			return e.errResult(req, err)
		}
		return e.instanceResult(req, c.Class, in, NSTransfer+"/GetResponse")
	case OpPut:
		target, err := e.selectInstance(c)
		if err != nil {
			return e.errResult(req, err)
		}
		if req.Body == nil {
			return e.fault(req, FaultSchemaValidation())
		}
		in, err := c.Class.Put(c, target)
		if err != nil {
			return e.errResult(req, err)
		}
		return e.instanceResult(req, c.Class, in, NSTransfer+"/PutResponse")
	case OpCreate:
		if req.Body == nil {
			return e.fault(req, FaultSchemaValidation())
		}
		ref, err := c.Class.Create(c)
		if err != nil {
			return e.errResult(req, err)
		}
		body := envelope([]nsDecl{{"g", NSTransfer}}, req.MessageID, NSTransfer+"/CreateResponse", e.nextMessageID(), req.ResourceURI, func(w *writer) {
			w.WriteString("<g:ResourceCreated>")
			w.eprContent(ref, "b", "c")
			w.WriteString("</g:ResourceCreated>")
		})
		return Result{Status: 200, Body: body}
	case OpDelete:
		target, err := e.selectInstance(c)
		if err != nil {
			return e.errResult(req, err)
		}
		if err := c.Class.Delete(c, target); err != nil {
			return e.errResult(req, err)
		}
		return Result{Status: 200, Body: envelope(nil, req.MessageID, NSTransfer+"/DeleteResponse", e.nextMessageID(), req.ResourceURI, nil)}
	case OpEnumerate:
		items, err := c.Class.Instances(c)
		if err != nil {
			return e.errResult(req, err)
		}
		id := e.openEnumeration(c.Class, items)
		body := envelope([]nsDecl{{"g", NSEnumeration}}, req.MessageID, NSEnumeration+"/EnumerateResponse", e.nextMessageID(), req.ResourceURI, func(w *writer) {
			w.WriteString("<g:EnumerateResponse>")
			w.elem("g", "EnumerationContext", id)
			w.WriteString("</g:EnumerateResponse>")
		})
		return Result{Status: 200, Body: body}
	case OpPull:
		return e.pull(req, c.Class)
	case OpRelease:
		if req.Body == nil {
			return e.fault(req, FaultSchemaValidation())
		}
		id := req.Body.Text1("EnumerationContext")
		e.mu.Lock()
		_, ok := e.enums[id]
		delete(e.enums, id)
		e.mu.Unlock()
		if !ok {
			return e.fault(req, FaultInvalidEnumerationContext())
		}
		return Result{Status: 200, Body: envelope(nil, req.MessageID, NSEnumeration+"/ReleaseResponse", e.nextMessageID(), req.ResourceURI, nil)}
	default:
		// a method without parameters may come with an empty Body
		out, err := method(c)
		if err != nil {
			return e.errResult(req, err)
		}
		return e.methodResult(req, c.Op, out)
	}
}

func (e *Engine) get(c *Call) (*Instance, error) {
	if c.Class.Get != nil {
		return c.Class.Get(c)
	}
	return e.selectInstance(c)
}

// selectInstance finds the instance addressed by the header selectors.
func (e *Engine) selectInstance(c *Call) (*Instance, error) {
	if c.Class.Instances == nil {
		if c.Class.Get != nil {
			return c.Class.Get(c)
		}
		return nil, nil
	}
	items, err := c.Class.Instances(c)
	if err != nil {
		return nil, err
	}
	if c.Class.Select != nil {
		return c.Class.Select(c, items)
	}
	return selectFrom(items, c.Req.Selectors)
}

func selectFrom(items []*Instance, sels []Selector) (*Instance, error) {
	if len(sels) == 0 {
		if len(items) == 1 {
			return items[0], nil
		}
		return nil, FaultInvalidSelectors()
	}
	for _, in := range items {
		if matches(in, sels) {
			return in, nil
		}
	}
	return nil, FaultInvalidSelectors()
}

func matches(in *Instance, sels []Selector) bool {
	for _, s := range sels {
		found := false
		for _, p := range in.Props {
			if p.Name != s.Name || len(p.Values) == 0 {
				continue
			}
			v := p.Values[0]
			switch {
			case s.EPR != nil && v.Ref != nil:
				found = eprMatches(v.Ref, s.EPR)
			case s.EPR == nil && v.Ref == nil:
				found = v.Text == s.Value
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// eprMatches: same resource and every selector of want present in have.
func eprMatches(have, want *EPR) bool {
	if want.ResourceURI != "" && want.ResourceURI != have.ResourceURI {
		return false
	}
	for _, ws := range want.Selectors {
		v, ok := have.Selector(ws.Name)
		if !ok || v != ws.Value {
			return false
		}
	}
	return true
}

func (e *Engine) instanceResult(req *Request, cls *Class, in *Instance, action string) Result {
	ns := []nsDecl{{"g", in.URI}}
	if cls.Common || in.hasDatetime() {
		ns = append(ns, nsDecl{"h", NSCommon})
	}
	body := envelope(ns, req.MessageID, action, e.nextMessageID(), req.ResourceURI, func(w *writer) {
		w.instance(in, "g", "h")
	})
	return Result{Status: 200, Body: body}
}

func (e *Engine) methodResult(req *Request, name string, out *Output) Result {
	body := envelope([]nsDecl{{"g", req.ResourceURI}}, req.MessageID, req.ResourceURI+"/"+name+"Response", e.nextMessageID(), req.ResourceURI, func(w *writer) {
		w.WriteString("<g:" + name + "_OUTPUT>")
		for _, p := range out.Params {
			w.prop("g", "h", p)
		}
		w.elem("g", "ReturnValue", strconv.FormatUint(uint64(out.ReturnValue), 10))
		w.WriteString("</g:" + name + "_OUTPUT>")
	})
	return Result{Status: 200, Body: body}
}

func (e *Engine) errResult(req *Request, err error) Result {
	var f *Fault
	if errors.As(err, &f) {
		return e.fault(req, f)
	}
	e.log.Error("wsman: handler error", "resource", req.ResourceURI, "action", req.Action, "err", err)
	return e.fault(req, FaultInternalError(""))
}

func (e *Engine) fault(req *Request, f *Fault) Result {
	relates := ""
	if req != nil {
		relates = req.MessageID
	}
	return Result{Status: 400, Body: faultEnvelope(f, relates, e.nextMessageID())}
}

// ---- enumerations ----

func (e *Engine) openEnumeration(cls *Class, items []*Instance) string {
	now := e.fw.SystemNow()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.enums == nil {
		e.enums = make(map[string]*enumeration)
	}
	for id, en := range e.enums {
		if now.After(en.expires) {
			delete(e.enums, id)
		}
	}
	for len(e.enums) >= e.maxEnu {
		var oldest string
		var t time.Time
		for id, en := range e.enums {
			if oldest == "" || en.expires.Before(t) {
				oldest, t = id, en.expires
			}
		}
		delete(e.enums, oldest)
	}
	e.enumSeq++
	seq := e.enumSeq
	// AMT shows a small counter in the first bytes, little-endian
	id := fmt.Sprintf("%02X%02X%02X%02X-0000-0000-0000-000000000000", byte(seq), byte(seq>>8), byte(seq>>16), byte(seq>>24))
	e.enums[id] = &enumeration{class: cls, items: items, expires: now.Add(e.life)}
	return id
}

// OpenEnumerations is the number of live enumeration contexts (for tests).
func (e *Engine) OpenEnumerations() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.enums)
}

func (e *Engine) pull(req *Request, cls *Class) Result {
	if req.Body == nil {
		return e.fault(req, FaultSchemaValidation())
	}
	id, max := pullParams(req.Body)
	now := e.fw.SystemNow()
	e.mu.Lock()
	en := e.enums[id]
	if en != nil && (now.After(en.expires) || en.class != cls) {
		if now.After(en.expires) {
			delete(e.enums, id)
		}
		en = nil
	}
	var items []*Instance
	done := false
	if en != nil {
		n := min(max, len(en.items))
		items = en.items[:n]
		en.items = en.items[n:]
		if len(en.items) == 0 {
			delete(e.enums, id)
			done = true
		} else {
			en.expires = now.Add(e.life)
		}
	}
	e.mu.Unlock()
	if en == nil {
		return e.fault(req, FaultInvalidEnumerationContext())
	}
	// one prefix per item class (an association or a polymorphic
	// enumeration returns instances of other classes), then the common
	// namespace: h, i, … as real firmware numbers them
	ns := []nsDecl{{"g", NSEnumeration}}
	prefixes := map[string]string{}
	next := byte('h')
	addNS := func(uri string) {
		if _, ok := prefixes[uri]; !ok {
			prefixes[uri] = string(next)
			ns = append(ns, nsDecl{string(next), uri})
			next++
		}
	}
	common := cls.Common
	for _, in := range items {
		addNS(in.URI)
		common = common || in.hasDatetime()
	}
	if len(items) == 0 {
		addNS(ResourceURI(cls.Name))
	}
	commonPrefix := string(next)
	if common {
		ns = append(ns, nsDecl{commonPrefix, NSCommon})
	}
	body := envelope(ns, req.MessageID, NSEnumeration+"/PullResponse", e.nextMessageID(), req.ResourceURI, func(w *writer) {
		w.WriteString("<g:PullResponse>")
		if !done {
			w.elem("g", "EnumerationContext", id)
		}
		w.WriteString("<g:Items>")
		for _, in := range items {
			w.instance(in, prefixes[in.URI], commonPrefix)
		}
		w.WriteString("</g:Items>")
		if done {
			w.WriteString("<g:EndOfSequence></g:EndOfSequence>")
		}
		w.WriteString("</g:PullResponse>")
	})
	return Result{Status: 200, Body: body}
}

// ---- fault injection ----

// FaultKind is a kind of injected misbehaviour.
type FaultKind int

// Injected faults.
const (
	FaultNone FaultKind = iota
	// FaultReturnValue answers a method with the rule's ReturnValue without
	// executing it (other operations get an InternalError SOAP fault).
	FaultReturnValue
	// FaultHTTP400 answers with a SOAP InternalError fault (HTTP 400).
	FaultHTTP400
	// FaultHTTP500 answers HTTP 500.
	FaultHTTP500
	// FaultHang never answers (until the client gives up or the device stops).
	FaultHang
	// FaultReset resets the connection without answering.
	FaultReset
	// FaultResetAfter executes the call, then resets the connection instead
	// of answering (a device that activated but dropped the reply).
	FaultResetAfter
)

// FaultRule selects calls to misbehave on.
type FaultRule struct {
	Class string // class name, "" = any
	Op    string // Get, Put, Enumerate, Pull, Create, Delete or a method name; "" = any
	Kind  FaultKind
	// ReturnValue for FaultReturnValue.
	ReturnValue uint32
	// Count: how many calls to affect; 0 = every call.
	Count int
}

// AddFault installs a fault injection rule.
func (e *Engine) AddFault(r FaultRule) {
	e.mu.Lock()
	defer e.mu.Unlock()
	rr := r
	e.faults = append(e.faults, &rr)
}

// ClearFaults removes every rule.
func (e *Engine) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = nil
}

func (e *Engine) matchFault(class, op string) *FaultRule {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, r := range e.faults {
		if (r.Class == "" || r.Class == class) && (r.Op == "" || r.Op == op) {
			out := *r
			if r.Count > 0 {
				r.Count--
				if r.Count == 0 {
					e.faults = slices.Delete(e.faults, i, i+1)
				}
			}
			return &out
		}
	}
	return nil
}
