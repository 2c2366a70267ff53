package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/store"
)

// Profile activation values.
const (
	ActivationCCM = "ccmactivate"
	ActivationACM = "acmactivate"
)

// parseFloatPrefix mimics JavaScript's parseFloat on a version string:
// "16.1.25" → 16.1, "11.6" → 11.6; ok false when no number starts s.
func parseFloatPrefix(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	end, dot := 0, false
	for end < len(s) {
		c := s[end]
		if c >= '0' && c <= '9' {
			end++
			continue
		}
		if c == '.' && !dot {
			dot = true
			end++
			continue
		}
		break
	}
	f, err := strconv.ParseFloat(strings.TrimSuffix(s[:end], "."), 64)
	return f, err == nil
}

// checkAMTVersion applies RPS's firmware rule (Validator.verifyAMTVersion):
// versions below 7 cannot be configured remotely; 7.0–11.6 need build 3000.
func checkAMTVersion(p *rpcproto.Payload, action string) string {
	v, _ := parseFloatPrefix(p.Ver)
	if slices.Contains([]float64{7.0, 7.1, 8.0, 8.1, 9.0, 9.1, 9.5, 10.0, 11.0, 11.5, 11.6}, v) {
		if b, err := strconv.Atoi(strings.TrimSpace(p.Build)); err == nil && b < 3000 {
			return fmt.Sprintf("Device %s %s failed. Please check with your OEM for a firmware update.", p.UUID, action)
		}
	} else if v < 7 {
		return fmt.Sprintf("Device %s %s failed. AMT version: %s. Version less than 7 cannot be remotely configured ", p.UUID, action, p.Ver)
	}
	return ""
}

func amtMajor(p *rpcproto.Payload) float64 {
	v, _ := parseFloatPrefix(p.Ver)
	return v
}

// plan is a validated activation request.
type plan struct {
	profile *store.Profile
	acm     bool // the action is ACM (activation or upgrade)
	mode    int  // device's current control mode
	status  string
	// passwords to try, in order, as the admin password of an activated
	// device (modes 1 and 2).
	passwords []string
	resume    bool // an unfinished activation is being completed
	creds     devcreds.Creds
	// tlsACM: ACM is reached by RPS's AMT 19 flow (activation.md §7):
	// CCM, amtd's TLS certificate, then UpgradeClientToAdmin over TLS.
	tlsACM bool
}

func (e *Engine) loadCreds(ctx context.Context, guid string) (devcreds.Creds, error) {
	return devcreds.Load(ctx, e.cfg.Secrets, guid)
}

// validateActivation checks an activation request in RPS's order
// (Validator.validateActivationMsg, rpc-protocol.md §12). A nil plan comes
// with the plain-text message for the client.
func (e *Engine) validateActivation(ctx context.Context, req rpcproto.Request) (*plan, string) {
	p := req.Payload
	if msg := checkAMTVersion(p, "activation"); msg != "" {
		return nil, msg
	}
	if p.Password == "" {
		return nil, fmt.Sprintf("Device %s activation failed. Missing password.", p.UUID)
	}
	prof, err := e.cfg.Store.GetProfile(ctx, req.TenantID, req.Command.Profile)
	if errors.Is(err, store.ErrNotFound) || (err == nil && prof == nil) {
		return nil, fmt.Sprintf("Device %s activation failed. %s does not match list of available AMT profiles.", p.UUID, req.Command.Profile)
	}
	if err != nil {
		e.log.Error("provision: reading profile", "err", err)
		return nil, "Failed to get amt profile from database"
	}
	pl := &plan{profile: prof, mode: p.CurrentMode}
	var action string
	switch prof.Activation {
	case ActivationACM:
		action = ActivationACM
		// RPS switches AMT 19+ to CCM and reaches ACM through the TLS flow
		// (activation.md §7); so does a --tls-tunnel client (§8).
		pl.tlsACM = amtMajor(p) >= 19 || p.TLSTunnel
	case ActivationCCM:
		action = ActivationCCM
	}

	switch p.CurrentMode {
	case 0:
		if e.cfg.PreventOrphanedDevices {
			if d, err := e.cfg.Store.GetDevice(ctx, p.UUID); err == nil && d != nil {
				return nil, fmt.Sprintf("Device %s already has a record in MPS and cannot be re-provisioned from pre-provisioning mode. Remove the device (rpc-go deactivation or the REST API) before re-adding it.", p.UUID)
			}
		}
	case 1, 2:
		if p.CurrentMode == 2 && prof.Activation != ActivationACM {
			return nil, fmt.Sprintf("Device %s already enabled in admin control mode.", p.UUID)
		}
		switch {
		case p.CurrentMode == 2:
			pl.status = "already enabled in admin mode."
		case prof.Activation == ActivationACM:
			pl.status = "Upgraded to admin control mode."
		default:
			pl.status = "already enabled in client mode."
		}
		if msg := e.checkStoredPassword(ctx, req, pl); msg != "" {
			return nil, msg
		}
	default:
		return nil, fmt.Sprintf("Device %s activation failed. It is in unknown mode.", p.UUID)
	}
	if action == "" {
		return nil, fmt.Sprintf("Device %s activation failed. Failed to get activation mode for the profile :%s", p.UUID, req.Command.Profile)
	}
	pl.acm = action == ActivationACM
	if pl.acm {
		if len(p.CertHashes) == 0 {
			return nil, fmt.Sprintf("Device %s activation failed. Missing certificate hashes from the device.", p.UUID)
		}
		if strings.TrimSpace(p.FQDN) == "" && p.CurrentMode != 2 {
			return nil, fmt.Sprintf("Device %s activation failed. Missing DNS Suffix.", p.UUID)
		}
		if p.CurrentMode != 2 {
			d, err := e.findDomain(ctx, req.TenantID, p.FQDN)
			if err != nil {
				e.log.Error("provision: reading domains", "err", err)
				return nil, "Failed to get amt domain certificate from database"
			}
			if d == nil {
				return nil, fmt.Sprintf("Device %s activation failed. Specified AMT domain suffix: %s does not match list of available AMT domain suffixes.", p.UUID, p.FQDN)
			}
		}
	}
	return pl, ""
}

// checkStoredPassword applies RPS's rule for activated devices: when amtd
// holds the device's AMT password, the operator's password must match it.
// amtd compares with every value the device may hold (current and pending).
// The exception is an unfinished activation of the same tenant (see
// resume.go): then the stored passwords are tried and the operator's is not
// needed. It fills pl.passwords with what to try, in order.
func (e *Engine) checkStoredPassword(ctx context.Context, req rpcproto.Request, pl *plan) string {
	p := req.Payload
	creds, err := e.loadCreds(ctx, p.UUID)
	if err != nil {
		e.log.Error("provision: reading device credentials", "uuid", p.UUID, "err", err)
		return "AMT device secret provider exception"
	}
	pl.creds = creds
	cands := creds.Candidates(devcreds.AMT)
	if len(cands) == 0 {
		pl.passwords = []string{p.Password}
		return ""
	}
	if slices.Contains(cands, p.Password) {
		pl.passwords = append([]string{p.Password}, slices.DeleteFunc(slices.Clone(cands), func(s string) bool { return s == p.Password })...)
		return ""
	}
	if m := readMarker(creds); m != nil && m.Tenant == req.TenantID {
		pl.passwords = cands
		pl.resume = true
		return ""
	}
	return fmt.Sprintf("AMT password DOES NOT match stored version for Device %s", p.UUID)
}

// checkOperatorPassword is the deactivation/maintenance rule
// (Validator.verifyDevicePassword): the stored password must exist and
// equal the operator's. It returns the passwords to try with the device.
func (e *Engine) checkOperatorPassword(ctx context.Context, p *rpcproto.Payload, force bool) ([]string, devcreds.Creds, string) {
	creds, err := e.loadCreds(ctx, p.UUID)
	if err != nil {
		e.log.Error("provision: reading device credentials", "uuid", p.UUID, "err", err)
		return nil, nil, "AMT device secret provider exception"
	}
	if force {
		return []string{p.Password}, creds, ""
	}
	cands := creds.Candidates(devcreds.AMT)
	if p.Password == "" || !slices.Contains(cands, p.Password) {
		return nil, creds, fmt.Sprintf("AMT password DOES NOT match stored version for Device %s", p.UUID)
	}
	// The operator knows a stored value; the device holds one of them.
	return append([]string{p.Password}, slices.DeleteFunc(slices.Clone(cands), func(s string) bool { return s == p.Password })...), creds, ""
}
