package provision

import (
	"context"
	"encoding/json"
	"time"

	"github.com/amtd-project/amtd/internal/devcreds"
)

// Resuming an interrupted activation
//
// An activation may stop at any instant: the server killed, the client's
// connection cut. Credentials are staged before every call that sets them,
// so the device always holds a value amtd has (current or pending). What
// the operator may lack is the password: with generateRandomPassword only
// amtd knows it, and rpc-go insists on a password for an activated device.
//
// The rule: from the moment an activation first stages a credential until a
// run of activation for the device completes successfully, the device's
// credential entry carries an activation marker (kind MarkerKind) naming the
// tenant. While the marker is present, "rpc activate" for that device by the
// same tenant is accepted whatever password the operator gives: the engine
// tries the stored values (current, then pending) against the device and
// continues with the one the device accepts — promoting it to current
// before anything else is staged, so no value the device may hold is ever
// overwritten. The run then proceeds like any re-activation (reconfigure,
// or upgrade to ACM) and clears the marker when it succeeds.
//
// Why this is safe: the exception only ever reaches a device amtd itself
// started to activate and never finished, within the tenant that started
// it; the device is then configured from that tenant's profiles, and the
// credentials stay in amtd's hands. Someone able to run rpc-go on the host
// could equally have interrupted the activation. Once an activation has
// completed, the RPS rule applies again: the operator's password must match
// a stored one.

// MarkerKind is the devcreds kind holding the activation marker.
const MarkerKind = "AMTD_ACTIVATION"

type marker struct {
	Tenant  string    `json:"tenant"`
	Profile string    `json:"profile"`
	Session string    `json:"session"`
	Started time.Time `json:"started"`
}

func readMarker(c devcreds.Creds) *marker {
	s := c.Current(MarkerKind)
	if s == "" {
		return nil
	}
	var m marker
	if json.Unmarshal([]byte(s), &m) != nil {
		return nil
	}
	return &m
}

// setMarker records that an activation is under way (before the first
// credential is staged).
func (e *Engine) setMarker(ctx context.Context, guid string, m marker) error {
	b, _ := json.Marshal(m)
	return devcreds.Set(ctx, e.cfg.Secrets, guid, MarkerKind, string(b))
}

// clearMarker records that the activation completed.
func (e *Engine) clearMarker(ctx context.Context, guid string) error {
	return devcreds.Set(ctx, e.cfg.Secrets, guid, MarkerKind, "")
}
