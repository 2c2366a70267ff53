package provision

import (
	"strings"

	"github.com/amtd-project/amtd/internal/rpcproto"
)

// Component results (RPS 2.40 status message Components).
const (
	Success       = "Success"
	Failure       = "Failure"
	NotApplicable = "NotApplicable"
)

// Result is what a configuration run did, component by component; it is
// turned into the status message sent to rpc-go and kept in the device
// record (deviceInfo.status).
type Result struct {
	Network    []string // parts of the Network status, joined by ". "
	TLS        string   // TLSConfiguration status
	CIRA       string   // CIRAConnection status
	Components rpcproto.Components
	// Failed is set when a step whose failure fails the session failed.
	Failed bool
}

func newResult() *Result {
	na := func(d string) rpcproto.ComponentResult {
		return rpcproto.ComponentResult{Result: NotApplicable, Details: d}
	}
	return &Result{Components: rpcproto.Components{
		Activation:      na("activation not part of this request"),
		WiredNetwork:    na("wired network not part of this configuration"),
		WirelessNetwork: na("wireless not part of this configuration"),
		TLS:             na("TLS not part of this configuration"),
		CIRAProxy:       na("proxy not part of this configuration"),
		CIRAConnection:  na("CIRA not part of this configuration"),
	}}
}

func (r *Result) addNetwork(s string) {
	if s != "" {
		r.Network = append(r.Network, s)
	}
}

// status builds the status message with the given overall Status text.
func (r *Result) status(status string) rpcproto.StatusMessage {
	c := r.Components
	return rpcproto.StatusMessage{
		Status:           status,
		Network:          strings.Join(r.Network, ". "),
		CIRAConnection:   r.CIRA,
		TLSConfiguration: r.TLS,
		Components:       &c,
	}
}

// statusMap is the device record's deviceInfo.status (the Components).
func (r *Result) statusMap() map[string]any {
	comp := func(c rpcproto.ComponentResult) map[string]any {
		m := map[string]any{"Result": c.Result}
		if c.Mode != "" {
			m["Mode"] = c.Mode
		}
		if c.Details != "" {
			m["Details"] = c.Details
		}
		return m
	}
	c := r.Components
	return map[string]any{
		"Activation":      comp(c.Activation),
		"WiredNetwork":    comp(c.WiredNetwork),
		"WirelessNetwork": comp(c.WirelessNetwork),
		"TLS":             comp(c.TLS),
		"CIRAProxy":       comp(c.CIRAProxy),
		"CIRAConnection":  comp(c.CIRAConnection),
	}
}

func ok(details string) rpcproto.ComponentResult {
	return rpcproto.ComponentResult{Result: Success, Details: details}
}

func failed(details string) rpcproto.ComponentResult {
	return rpcproto.ComponentResult{Result: Failure, Details: details}
}

func rpcResult(result, details string) rpcproto.ComponentResult {
	return rpcproto.ComponentResult{Result: result, Details: details}
}
