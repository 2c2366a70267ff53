package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/setupandconfiguration"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/store"
)

// deactivate runs "rpc deactivate" (activation.md §11): Unprovision(1) for
// CCM and ACM alike, then the device's secrets and record are deleted.
func (e *Engine) deactivate(ctx context.Context, req rpcproto.Request, conn Conn) rpcproto.Outcome {
	p := req.Payload
	switch p.CurrentMode {
	case 0:
		return e.reject(ctx, req, "deactivate.validate", fmt.Sprintf("Device %s is in pre-provisioning mode.", p.UUID))
	case 1, 2:
	default:
		return e.reject(ctx, req, "deactivate.validate", fmt.Sprintf("Device %s deactivation failed. It is in unknown mode: %d.", p.UUID, p.CurrentMode))
	}
	if msg := checkAMTVersion(p, "deactivation"); msg != "" {
		return e.reject(ctx, req, "deactivate.validate", msg)
	}
	unlock, err := e.lockDevice(ctx, p.UUID)
	if err != nil {
		return rpcproto.Outcome{Message: busyMessage(p.UUID)}
	}
	defer unlock()
	passwords, creds, msg := e.checkOperatorPassword(ctx, p, req.Command.Force)
	if msg != "" {
		return e.reject(ctx, req, "deactivate.validate", msg)
	}
	s := e.newSession(req, conn)
	s.j.Info(ctx, "deactivate.start", fmt.Sprintf("device mode %d, forced %v", p.CurrentMode, req.Command.Force))
	status := func(st string) string { return rpcproto.StatusMessage{Status: st}.String() }
	if err := s.startPath(ctx, creds); err != nil {
		return rpcproto.Outcome{Message: status(statusText(err))}
	}
	if err := s.authenticate(ctx, passwords, creds); err != nil {
		return rpcproto.Outcome{Message: status(statusText(err))}
	}
	if err := e.unprovision(ctx, s.client); err != nil {
		// The device may or may not have acted: keep its credentials.
		s.j.Fail(ctx, "deactivate.unprovision", err)
		return rpcproto.Outcome{Message: status("Failed to deactivate device: " + statusText(err))}
	}
	s.j.OK(ctx, "deactivate.unprovision", "Unprovision(1) succeeded")
	wctx := context.WithoutCancel(ctx)
	if err := devcreds.Delete(wctx, e.cfg.Secrets, s.guid); err != nil {
		s.j.Fail(ctx, "deactivate.secrets", err)
		return rpcproto.Outcome{Message: status("Failed to remove device from secret provider")}
	}
	s.j.OK(ctx, "deactivate.secrets", "device credentials deleted")
	final := "Deactivated"
	if err := e.cfg.Store.DeleteDevice(wctx, s.guid); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.j.Fail(ctx, "deactivate.record", err)
		final = "Deactivated. MPS Unavailable."
	} else {
		s.j.OK(ctx, "deactivate.record", "device record deleted")
	}
	s.j.OK(ctx, "deactivate.done", final)
	return rpcproto.Outcome{Success: true, Message: status(final)}
}

// reject answers a validation failure (plain text) and logs it.
func (e *Engine) reject(ctx context.Context, req rpcproto.Request, step, msg string) rpcproto.Outcome {
	e.NewJournal(req.Payload.UUID, req.TenantID, req.ConnID).FailText(ctx, step, msg)
	return rpcproto.Outcome{Message: msg}
}

// unprovision is AMT_SetupAndConfigurationService.Unprovision(1): back to
// pre-provisioning, for CCM and ACM alike (activation.md §11).
func (e *Engine) unprovision(ctx context.Context, cl *amt.Client) error {
	rv := -1
	err := e.do(ctx, cl, func(m wsman.Messages) error {
		r, err := m.AMT.SetupAndConfigurationService.Unprovision(setupandconfiguration.AdminControlMode)
		if r.Body.Unprovision_OUTPUT.XMLName.Local != "" {
			rv = int(r.Body.Unprovision_OUTPUT.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("Unprovision", rv)
	}
	return err
}
