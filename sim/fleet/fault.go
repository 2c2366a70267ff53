package fleet

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/amtd-project/amtd/sim/wsman"
)

// FaultSyntax documents ParseFault's format.
const FaultSyntax = `CLASS.METHOD=KIND[:VALUE]: CLASS and METHOD may be * (any); METHOD is Get, Put,
Enumerate, Pull, Create, Delete or a method name (Setup, AdminSetup…). KIND:
return:N[:COUNT] answers the method with ReturnValue N without executing it;
http400, http500, hang, reset, reset-after (the call runs, then the connection
is reset) take an optional :COUNT. COUNT limits how many calls misbehave
(default every call), e.g. IPS_HostBasedSetupService.Setup=return:1,
AMT_GeneralSettings.Get=http500:2, *.*=hang`

var faultKinds = map[string]wsman.FaultKind{
	"return":      wsman.FaultReturnValue,
	"http400":     wsman.FaultHTTP400,
	"http500":     wsman.FaultHTTP500,
	"hang":        wsman.FaultHang,
	"reset":       wsman.FaultReset,
	"reset-after": wsman.FaultResetAfter,
}

// ParseFault parses one fault rule (see FaultSyntax).
func ParseFault(s string) (wsman.FaultRule, error) {
	var r wsman.FaultRule
	bad := func(why string) (wsman.FaultRule, error) {
		return wsman.FaultRule{}, fmt.Errorf("fault %q: %s (want %s)", s, why, "CLASS.METHOD=KIND[:VALUE]")
	}
	target, spec, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return bad("no '='")
	}
	class, method, ok := strings.Cut(target, ".")
	if !ok {
		return bad("no '.' between class and method")
	}
	for _, p := range []*string{&class, &method} {
		*p = strings.TrimSpace(*p)
		if *p == "*" {
			*p = ""
		}
		if strings.ContainsAny(*p, " .=:\t") {
			return bad("invalid class or method name")
		}
	}
	r.Class, r.Op = class, method
	parts := strings.Split(spec, ":")
	kind, ok := faultKinds[strings.ToLower(strings.TrimSpace(parts[0]))]
	if !ok {
		return bad("unknown kind " + strconv.Quote(parts[0]) + " (return, http400, http500, hang, reset, reset-after)")
	}
	r.Kind = kind
	args := parts[1:]
	num := func(v string, bits int) (uint64, error) {
		return strconv.ParseUint(strings.TrimSpace(v), 10, bits)
	}
	if kind == wsman.FaultReturnValue {
		if len(args) == 0 {
			return bad("return needs a value, e.g. return:1")
		}
		v, err := num(args[0], 32)
		if err != nil {
			return bad("return value: " + err.Error())
		}
		r.ReturnValue = uint32(v)
		args = args[1:]
	}
	switch len(args) {
	case 0:
	case 1:
		c, err := num(args[0], 31)
		if err != nil || c == 0 {
			return bad("count must be a positive number")
		}
		r.Count = int(c)
	default:
		return bad("too many ':' values")
	}
	return r, nil
}
