package provision

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/hostbasedsetup"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/store"
)

// activate runs "rpc activate": validation, then activation (CCM, ACM,
// upgrade) or re-activation of an activated device, then configuration.
func (e *Engine) activate(ctx context.Context, req rpcproto.Request, conn Conn) rpcproto.Outcome {
	unlock, err := e.lockDevice(ctx, req.Payload.UUID)
	if err != nil {
		return rpcproto.Outcome{Message: busyMessage(req.Payload.UUID)}
	}
	defer unlock()
	pl, msg := e.validateActivation(ctx, req)
	if pl == nil {
		e.NewJournal(req.Payload.UUID, req.TenantID, req.ConnID).FailText(ctx, "activate.validate", msg)
		return rpcproto.Outcome{Message: msg}
	}
	s := e.newSession(req, conn)
	return s.runActivation(ctx, pl)
}

func (s *session) fail(err error) rpcproto.Outcome {
	return rpcproto.Outcome{Message: s.res.status(statusText(err)).String()}
}

func (s *session) runActivation(ctx context.Context, pl *plan) rpcproto.Outcome {
	p, prof := s.p, pl.profile
	s.j.Info(ctx, "activate.start", fmt.Sprintf("profile %s (%s), device mode %d, AMT %s build %s, DNS suffix %q",
		prof.Name, prof.Activation, p.CurrentMode, p.Ver, p.Build, p.FQDN))
	if pl.resume {
		s.j.Info(ctx, "activate.resume", "completing an unfinished activation with the credentials amtd holds")
	}
	mode := "CCM"
	if pl.acm {
		mode = "ACM"
	}
	s.res.Components.Activation = rpcproto.ComponentResult{Result: Failure, Mode: mode}

	// Tenant check (activation.md §6.1). RPS checks activated devices only;
	// amtd also refuses a pre-provisioning device another tenant still
	// has a record of, before touching it (the record could not be written
	// after activation).
	if d, err := s.e.cfg.Store.GetDevice(ctx, s.guid); err == nil && d != nil && d.TenantID != s.tenant {
		s.j.FailText(ctx, "activate.tenant", "the device record belongs to another tenant")
		return s.fail(errStatus("Device belongs to another tenant. Please unprovision and re-activate device."))
	}
	s.conn.Progress("Starting provisioning")
	if err := s.startPath(ctx, pl.creds); err != nil {
		s.res.Components.Activation.Details = statusText(err)
		return s.fail(err)
	}

	s.profile = prof.Name
	var (
		status string
		err    error
	)
	switch {
	case p.CurrentMode == 0 && !pl.acm:
		status, err = s.activateCCM(ctx, prof)
	case p.CurrentMode == 0 && pl.tlsACM:
		status, err = s.activateTLSACM(ctx, pl)
	case p.CurrentMode == 0:
		status, err = s.activateACM(ctx, prof)
	case p.CurrentMode == 1 && pl.acm:
		status, err = s.upgrade(ctx, pl)
	default:
		status, err = s.reconfigure(ctx, pl)
	}
	controlMode := 1
	if pl.acm {
		controlMode = 2
	}
	if err != nil {
		s.res.Components.Activation.Details = statusText(err)
		if s.activated > 0 {
			// Activated in this session (a later step failed): the device
			// is recorded all the same, it holds credentials amtd has.
			_ = s.register(ctx, prof, s.activated, "", nil)
		}
		return s.fail(err)
	}
	s.res.Components.Activation = rpcproto.ComponentResult{Result: Success, Mode: mode, Details: status}
	s.conn.Progress("Activation completed")

	// The device is activated with credentials amtd holds: record it.
	if err := s.register(ctx, prof, controlMode, "", nil); err != nil {
		return s.fail(err)
	}

	out := s.e.configure(ctx, s.target(controlMode), prof, s.res)
	if err := s.register(ctx, prof, controlMode, out.MPSUsername, s.res); err != nil {
		return s.fail(err)
	}
	if out.Err != nil {
		s.j.FailText(ctx, "activate.done", "configuration failed: "+statusText(out.Err))
		return s.fail(errStatus(status + " Configuration failed: " + statusText(out.Err)))
	}
	if err := s.e.clearMarker(context.WithoutCancel(ctx), s.guid); err != nil {
		s.j.Fail(ctx, "credentials.marker", err)
	}
	s.j.OK(ctx, "activate.done", status)
	return rpcproto.Outcome{Success: true, Message: s.res.status(status).String()}
}

// target describes the device to the configuration steps, with the
// session's TLS path hooks (tunnel.go).
func (s *session) target(controlMode int) *Target {
	return &Target{Client: s.client, GUID: s.guid, TenantID: s.tenant, Hostname: s.p.Hostname,
		DNSSuffix: s.p.FQDN, ControlMode: controlMode, TLSEnforced: s.p.TLSEnforced,
		KeepTLS: s.onTLS, TLSConfigured: s.tlsDone, TLSIssued: s.tlsIssued, TLSCommitted: s.tlsCommitted,
		General: &s.general, Wait: s.conn.Wait, Progress: s.conn.Progress, Journal: s.j}
}

// activateCCM: Setup with the profile's password (activation.md §4).
func (s *session) activateCCM(ctx context.Context, prof *store.Profile) (string, error) {
	s.client = s.newClient(s.p.Username, s.p.Password)
	if err := s.prelude(ctx); err != nil {
		return "", err
	}
	pw, err := s.e.profileAMTPassword(ctx, prof)
	if err != nil {
		s.j.Fail(ctx, "activate.password", err)
		return "", errStatus("Failed to get amt profile from database")
	}
	if err := s.stage(ctx, devcreds.AMT, pw); err != nil {
		return "", err
	}
	var rv hostbasedsetup.SetupReturnValue = -1
	err = s.e.do(ctx, s.client, func(m wsman.Messages) error {
		r, err := m.IPS.HostBasedSetupService.Setup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1, s.realm, pw)
		if r.Body.Setup_OUTPUT.XMLName.Local != "" {
			rv = r.Body.Setup_OUTPUT.ReturnValue
			return nil
		}
		return err
	})
	switch {
	case err == nil && rv == 0:
		s.j.OK(ctx, "activate.setup", "Setup succeeded")
	default:
		if err != nil {
			s.j.Fail(ctx, "activate.setup", err)
		} else {
			s.j.FailText(ctx, "activate.setup", fmt.Sprintf("Setup returned %d (%s)", rv, rv))
		}
		if !s.verifyActivated(ctx, 1, pw) {
			return "", errStatus("Failed to activate in client control mode.")
		}
	}
	if err := s.commit(ctx, devcreds.AMT, pw); err != nil {
		return "", err
	}
	s.activated = 1
	s.j.OK(ctx, "activate.ccm", "Client control mode.")
	if err := s.switchToAdmin(ctx, pw); err != nil {
		return "", err
	}
	if s.p.TLSEnforced {
		// CCM over TLS needs an explicit commit (activation.md §4.4); a
		// device that does not take it goes back to pre-provisioning, as
		// rpc-go's local activation does.
		if err := s.e.commitChanges(ctx, s.client); err != nil {
			s.j.Fail(ctx, "activate.commit", err)
			return "", s.rollBack(ctx, err, func(string) string { return "Failed to activate in client control mode." })
		}
		s.j.OK(ctx, "activate.commit", "CommitChanges after Setup over TLS")
		if err := s.tlsRollover(ctx); err != nil {
			return "", err
		}
	}
	return "Client control mode.", nil
}

// tlsRollover waits for AMT to restart its TLS stack (delay_tls_timer) and
// drops the tunnel's idle connection, so the next call starts a new TLS
// session.
func (s *session) tlsRollover(ctx context.Context) error {
	if err := s.wait(ctx, s.e.timing.TLSDelay); err != nil {
		return err
	}
	if c, ok := s.tlsRT.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	return nil
}

// activateTLSACM is RPS's ACM activation for AMT 19+ and --tls-tunnel
// clients (activation.md §7, §8): CCM with Setup, amtd's TLS certificate,
// then UpgradeClientToAdmin over TLS pinned to that certificate,
// CommitChanges and the MEBx password. A failure once the device is in CCM
// returns it to pre-provisioning (Unprovision(1)) and reports
// "<error>.ACM activation failed.".
func (s *session) activateTLSACM(ctx context.Context, pl *plan) (string, error) {
	pc, err := s.domainCert(ctx)
	if err != nil {
		return "", err
	}
	if _, err := s.activateCCM(ctx, pl.profile); err != nil {
		return "", err
	}
	s.j.Info(ctx, "acm.tls", "Client control mode (TLS activation Phase 1).")
	if err := s.acmOverTLS(ctx, pl.profile, pc, false); err != nil {
		return "", s.rollBack(ctx, err, func(st string) string { return st + ".ACM activation failed." })
	}
	return "Activated to admin control mode.", nil
}

// acmOverTLS is the second phase of the AMT 19 ACM flow on a device in CCM
// with the admin client: amtd's TLS certificate unless the device has one
// (haveCert), the TLS rollover, then the upgrade, CommitChanges and the
// MEBx password over the new TLS session (activation.md §7.4–7.7).
func (s *session) acmOverTLS(ctx context.Context, prof *store.Profile, pc *provisioningCert, haveCert bool) error {
	if !haveCert {
		if err := s.tlsSubflow(ctx, prof); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return errStatus(fmt.Sprintf("TLS ACM setup failed for device %s", s.guid))
		}
	}
	if err := s.upgradeCall(ctx, pc); err != nil {
		return err
	}
	if err := s.e.commitChanges(ctx, s.client); err != nil {
		s.j.Fail(ctx, "acm.commit", err)
		return errStatus("Failed to upgrade to admin control mode.")
	}
	s.j.OK(ctx, "acm.commit", "CommitChanges after UpgradeClientToAdmin")
	return s.setMEBx(ctx, prof)
}

// tlsSubflow installs amtd's TLS certificate with the profile's tlsMode, or
// server authentication with non-TLS connections still allowed when the
// profile configures no TLS (mode 2: the least change to the device's
// network interface); the session's path follows the rollover.
func (s *session) tlsSubflow(ctx context.Context, prof *store.Profile) error {
	mode := 2
	if prof.TLSMode != nil && *prof.TLSMode >= 1 && *prof.TLSMode <= 4 {
		mode = *prof.TLSMode
	}
	t := s.target(1)
	c := &configRun{e: s.e, t: t, p: prof, res: s.res, j: s.j}
	if err := c.tlsWithMode(ctx, mode); err != nil {
		return err
	}
	s.tlsDone = true
	s.client = t.Client
	return nil
}

// rollBack returns a device activated in this session to pre-provisioning
// after a later step failed (Unprovision(1)) and forgets its credentials.
// msg builds the Status from the failure's; when the device cannot be
// unprovisioned it stays activated with the credentials amtd holds.
func (s *session) rollBack(ctx context.Context, cause error, msg func(status string) string) error {
	st := statusText(cause)
	if ctx.Err() != nil {
		// The device cannot be reached any more; it keeps credentials
		// amtd holds, and activation again completes it (resume.go).
		return cause
	}
	if err := s.e.unprovision(ctx, s.client); err != nil {
		s.j.Fail(ctx, "activate.rollback", fmt.Errorf("Unprovision(1) after %q: %w", st, err))
		return errStatus("Failed to deactivate device after ACM failure: " + statusText(err))
	}
	s.activated = 0
	s.j.OK(ctx, "activate.rollback", "Unprovision(1): the device is back in pre-provisioning after: "+st)
	if err := devcreds.Delete(context.WithoutCancel(ctx), s.e.cfg.Secrets, s.guid); err != nil {
		s.j.Fail(ctx, "activate.rollback", err)
	}
	return errStatus(msg(st))
}

// switchToAdmin waits for the firmware to settle after activation and
// continues as admin with the new password.
func (s *session) switchToAdmin(ctx context.Context, pw string) error {
	if err := s.wait(ctx, s.e.timing.ActivationDelay); err != nil {
		return err
	}
	s.client = s.newClient("admin", pw)
	s.password = pw
	return nil
}

// verifyActivated checks, after an activation call that failed or whose
// answer was lost, whether the device reached mode anyway (activation.md
// §4.3, §5.7) and accepts password: only then did our call take effect.
func (s *session) verifyActivated(ctx context.Context, mode int, password string) bool {
	if ctx.Err() != nil {
		return false
	}
	h, err := s.e.getHBS(ctx, s.client)
	if isUnauthorized(err) {
		// The credentials of the call (the LSA) are no longer accepted:
		// the device has likely been activated. Ask as admin.
		if err := s.wait(ctx, s.e.timing.ActivationDelay); err != nil {
			return false
		}
		h, err = s.e.getHBS(ctx, s.newClient("admin", password))
		if err != nil {
			s.j.Fail(ctx, "activate.verify", err)
			return false
		}
		if int(h.CurrentControlMode) != mode {
			s.j.Info(ctx, "activate.verify", fmt.Sprintf("device control mode is %d", h.CurrentControlMode))
			return false
		}
		s.j.OK(ctx, "activate.verify", fmt.Sprintf("device is in control mode %d with the new password", mode))
		return true
	}
	if err != nil {
		s.j.Fail(ctx, "activate.verify", err)
		return false
	}
	if int(h.CurrentControlMode) != mode {
		s.j.Info(ctx, "activate.verify", fmt.Sprintf("device control mode is %d", h.CurrentControlMode))
		return false
	}
	if err := s.wait(ctx, s.e.timing.ActivationDelay); err != nil {
		return false
	}
	if _, err := s.e.getGeneral(ctx, s.newClient("admin", password)); err != nil {
		s.j.Fail(ctx, "activate.verify", fmt.Errorf("the device is activated but refuses the new password: %w", err))
		return false
	}
	s.j.OK(ctx, "activate.verify", fmt.Sprintf("device is in control mode %d with the new password", mode))
	return true
}

// domainCert finds the device's domain, loads its provisioning certificate
// and matches its root with the device's trusted hashes (activation.md
// §5.1–5.2).
func (s *session) domainCert(ctx context.Context) (*provisioningCert, error) {
	d, err := s.e.findDomain(ctx, s.tenant, s.p.FQDN)
	if err != nil || d == nil {
		if err == nil {
			err = fmt.Errorf("no domain for DNS suffix %q", s.p.FQDN)
		}
		s.j.Fail(ctx, "acm.domain", err)
		return nil, errStatus("Failed to get amt domain certificate from database")
	}
	pc, warnings, err := s.e.loadProvisioningCert(ctx, d, s.p.FQDN)
	for _, w := range warnings {
		s.j.Info(ctx, "acm.certificate", "certificate check: "+w)
	}
	if err != nil {
		s.j.Fail(ctx, "acm.certificate", err)
		return nil, errStatus("Failed to extract domain certificate")
	}
	s.j.OK(ctx, "acm.certificate", fmt.Sprintf("domain %s (%s), chain of %d certificates", d.Name, d.DomainSuffix, len(pc.chain)))
	if _, ok := certs.MatchRootHash(pc.root, s.p.CertHashes); !ok {
		s.j.FailText(ctx, "acm.roothash", "root "+certs.FingerprintsOf(pc.root).SHA256+" is not trusted by the device")
		return nil, errStatus("Invalid domain certificate, hash does not exists in list of trusted root certificates on AMT")
	}
	s.j.OK(ctx, "acm.roothash", "root trusted by the device")
	return pc, nil
}

// injectChain reads the configuration nonce and adds the chain leaf → root
// (activation.md §5.4–5.5). It returns the firmware nonce and mode.
// The chain is only injected when the device is in wantMode.
func (s *session) injectChain(ctx context.Context, pc *provisioningCert, wantMode int) ([]byte, int, error) {
	h, err := s.e.getHBS(ctx, s.client)
	if err != nil {
		return nil, 0, s.j.Fail(ctx, "acm.hostbasedsetup", err)
	}
	if int(h.CurrentControlMode) != wantMode {
		return nil, int(h.CurrentControlMode), nil
	}
	fwNonce, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h.ConfigurationNonce))
	if err != nil || len(fwNonce) == 0 {
		s.j.FailText(ctx, "acm.hostbasedsetup", "no valid configuration nonce")
		return nil, 0, errStatus("Failed to activate in admin control mode.")
	}
	s.j.OK(ctx, "acm.hostbasedsetup", fmt.Sprintf("control mode %d, allowed modes %v", h.CurrentControlMode, h.AllowedControlModes))
	n := len(pc.chain)
	for i, der := range pc.chain {
		isLeaf, isRoot := i == 0, i == n-1 && n > 1
		var rv hostbasedsetup.SetupReturnValue = -1
		err := s.e.do(ctx, s.client, func(m wsman.Messages) error {
			r, err := m.IPS.HostBasedSetupService.AddNextCertInChain(base64.StdEncoding.EncodeToString(der), isLeaf, isRoot)
			if r.Body.AddNextCertInChain_OUTPUT.XMLName.Local != "" {
				rv = r.Body.AddNextCertInChain_OUTPUT.ReturnValue
				return nil
			}
			return err
		})
		if err != nil {
			return nil, 0, s.j.Fail(ctx, "acm.addcert", err)
		}
		if rv != 0 {
			s.j.FailText(ctx, "acm.addcert", fmt.Sprintf("certificate %d of %d: AddNextCertInChain returned %d", i+1, n, rv))
			return nil, 0, errStatus(fmt.Sprintf("Device %s activation failed. Error while adding the certificates to AMT.", s.guid))
		}
	}
	s.j.OK(ctx, "acm.addcert", fmt.Sprintf("%d certificates added leaf to root", n))
	return fwNonce, int(h.CurrentControlMode), nil
}

// activateACM: AdminSetup with the domain's provisioning certificate
// (activation.md §5).
func (s *session) activateACM(ctx context.Context, prof *store.Profile) (string, error) {
	pc, err := s.domainCert(ctx)
	if err != nil {
		return "", err
	}
	s.client = s.newClient(s.p.Username, s.p.Password)
	if err := s.prelude(ctx); err != nil {
		return "", err
	}
	fwNonce, mode, err := s.injectChain(ctx, pc, 0)
	if err != nil {
		return "", err
	}
	if mode != 0 {
		// Activated since rpc-go read the mode (e.g. a run interrupted after
		// AdminSetup): a new run resumes from the device's mode.
		s.j.FailText(ctx, "acm.adminsetup", fmt.Sprintf("the device is already in control mode %d", mode))
		return "", errStatus("Failed to activate in admin control mode.")
	}
	pw, err := s.e.profileAMTPassword(ctx, prof)
	if err != nil {
		s.j.Fail(ctx, "activate.password", err)
		return "", errStatus("Failed to get amt profile from database")
	}
	mcNonce, sig, err := signNonces(s.e.cfg.Rand, pc.key, fwNonce)
	if err != nil {
		s.j.Fail(ctx, "acm.sign", err)
		return "", errStatus("Failed to activate in admin control mode.")
	}
	if err := s.stage(ctx, devcreds.AMT, pw); err != nil {
		return "", err
	}
	var rv hostbasedsetup.SetupReturnValue = -1
	err = s.e.do(amt.NoRetry(ctx), s.client, func(m wsman.Messages) error {
		r, err := m.IPS.HostBasedSetupService.AdminSetup(hostbasedsetup.AdminPassEncryptionTypeHTTPDigestMD5A1,
			s.realm, pw, mcNonce, hostbasedsetup.SigningAlgorithmRSASHA2256, sig)
		if r.Body.AdminSetup_OUTPUT.XMLName.Local != "" {
			rv = r.Body.AdminSetup_OUTPUT.ReturnValue
			return nil
		}
		return err
	})
	if err == nil && rv == 0 {
		s.j.OK(ctx, "acm.adminsetup", "AdminSetup succeeded")
	} else {
		if err != nil {
			s.j.Fail(ctx, "acm.adminsetup", err)
		} else {
			s.j.FailText(ctx, "acm.adminsetup", fmt.Sprintf("AdminSetup returned %d (%s)", rv, rv))
		}
		if !s.verifyActivated(ctx, 2, pw) {
			return "", errStatus("Failed to activate in admin control mode.")
		}
	}
	if err := s.commit(ctx, devcreds.AMT, pw); err != nil {
		return "", err
	}
	s.activated = 2
	status := "Activated to admin control mode."
	s.j.OK(ctx, "activate.acm", status)
	if err := s.switchToAdmin(ctx, pw); err != nil {
		return "", err
	}
	if err := s.setMEBx(ctx, prof); err != nil {
		return "", err
	}
	return status, nil
}

// upgrade: CCM → ACM with UpgradeClientToAdmin (activation.md §6.2), then
// the MEBx password and the password rotation. On AMT 19+ (and for a
// --tls-tunnel client) the device first gets amtd's TLS certificate if it
// has none, and the upgrade is committed (§7).
func (s *session) upgrade(ctx context.Context, pl *plan) (string, error) {
	pc, err := s.domainCert(ctx)
	if err != nil {
		return "", err
	}
	if err := s.authenticate(ctx, pl.passwords, pl.creds); err != nil {
		return "", err
	}
	if pl.tlsACM {
		haveCert := pl.creds != nil && pl.creds.Current(devcreds.TLSCert) != ""
		if err := s.acmOverTLS(ctx, pl.profile, pc, haveCert); err != nil {
			return "", err
		}
	} else {
		if err := s.upgradeCall(ctx, pc); err != nil {
			return "", err
		}
		if err := s.setMEBx(ctx, pl.profile); err != nil {
			return "", err
		}
	}
	if err := s.rotatePassword(ctx, pl.profile); err != nil {
		return "", err
	}
	return "Upgraded to admin control mode.", nil
}

// upgradeCall injects the provisioning chain and moves a CCM device to
// ACM with UpgradeClientToAdmin (a device already in ACM is left as is),
// then continues as admin once the firmware settled.
func (s *session) upgradeCall(ctx context.Context, pc *provisioningCert) error {
	fwNonce, mode, err := s.injectChain(ctx, pc, 1)
	if err != nil {
		return err
	}
	if mode != 1 && mode != 2 {
		s.j.FailText(ctx, "acm.upgrade", fmt.Sprintf("the device is in control mode %d", mode))
		return errStatus("Failed to upgrade to admin control mode.")
	}
	if mode == 2 {
		s.j.Skipped(ctx, "acm.upgrade", "the device is already in admin control mode")
		return nil
	}
	mcNonce, sig, err := signNonces(s.e.cfg.Rand, pc.key, fwNonce)
	if err != nil {
		s.j.Fail(ctx, "acm.sign", err)
		return errStatus("Failed to upgrade to admin control mode.")
	}
	var rv hostbasedsetup.SetupReturnValue = -1
	err = s.e.do(amt.NoRetry(ctx), s.client, func(m wsman.Messages) error {
		r, err := m.IPS.HostBasedSetupService.UpgradeClientToAdmin(mcNonce, hostbasedsetup.SigningAlgorithmRSASHA2256, sig)
		if r.Body.UpgradeClientToAdmin_OUTPUT.XMLName.Local != "" {
			rv = r.Body.UpgradeClientToAdmin_OUTPUT.ReturnValue
			return nil
		}
		return err
	})
	if err == nil && rv == 0 {
		s.j.OK(ctx, "acm.upgrade", "UpgradeClientToAdmin succeeded")
	} else {
		if err != nil {
			s.j.Fail(ctx, "acm.upgrade", err)
		} else {
			s.j.FailText(ctx, "acm.upgrade", fmt.Sprintf("UpgradeClientToAdmin returned %d (%s)", rv, rv))
		}
		if !s.verifyActivated(ctx, 2, s.password) {
			return errStatus("Failed to upgrade to admin control mode.")
		}
	}
	s.activated = 2
	return s.switchToAdmin(ctx, s.password)
}

// reconfigure: an activated device with a matching profile (activation.md
// §6.3–6.4): new admin password, MEBx password for ACM, then configuration.
func (s *session) reconfigure(ctx context.Context, pl *plan) (string, error) {
	if err := s.authenticate(ctx, pl.passwords, pl.creds); err != nil {
		return "", err
	}
	if pl.resume && s.p.TLSEnforced {
		// The interrupted activation may have stopped between Setup and
		// its CommitChanges (activation.md §4.4); committing again is
		// harmless.
		if err := s.e.commitChanges(ctx, s.client); err != nil {
			s.j.Fail(ctx, "activate.commit", err)
			return "", errStatus("Failed to activate in client control mode.")
		}
		s.j.OK(ctx, "activate.commit", "CommitChanges completing the interrupted activation over TLS")
	}
	if err := s.rotatePassword(ctx, pl.profile); err != nil {
		return "", err
	}
	if pl.profile.Activation == ActivationACM {
		if err := s.setMEBx(ctx, pl.profile); err != nil {
			return "", err
		}
	}
	return pl.status, nil
}

// rotatePassword sets the profile's (or a new random) admin password with
// SetAdminAclEntryEx (activation.md §6.3).
func (s *session) rotatePassword(ctx context.Context, prof *store.Profile) error {
	pw, err := s.e.profileAMTPassword(ctx, prof)
	if err != nil {
		s.j.Fail(ctx, "activate.password", err)
		return errStatus("Failed to get amt profile from database")
	}
	return s.setAdminPassword(ctx, pw, "activate.password")
}

// setAdminPassword stages pw, sets it on the device and commits it; when
// the device's answer is lost, it finds out which password the device holds.
func (s *session) setAdminPassword(ctx context.Context, pw, step string) error {
	g, err := s.e.getGeneral(ctx, s.client)
	if err != nil {
		return s.j.Fail(ctx, step, err)
	}
	s.realm = g.DigestRealm
	if err := s.stage(ctx, devcreds.AMT, pw); err != nil {
		return err
	}
	rv := -1
	err = s.e.do(ctx, s.client, func(m wsman.Messages) error {
		r, err := m.AMT.AuthorizationService.SetAdminAclEntryEx("admin", aclDigestPassword("admin", s.realm, pw))
		if r.Message != nil && strings.Contains(r.XMLOutput, "SetAdminAclEntryEx_OUTPUT") {
			rv = int(r.Body.SetAdminResponse.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil && rv == 0 {
		if err := s.commit(ctx, devcreds.AMT, pw); err != nil {
			return err
		}
		s.client, s.password = s.newClient("admin", pw), pw
		s.j.OK(ctx, step, "AMT admin password set")
		return nil
	}
	if err == nil {
		err = checkRV("SetAdminAclEntryEx", rv)
		s.j.Fail(ctx, step, err)
		return errStatus("Failed to change the AMT password: " + errorText(err))
	}
	s.j.Fail(ctx, step, err)
	if ctx.Err() != nil {
		return err
	}
	// The answer was lost: the device holds the old or the new password.
	nc := s.newClient("admin", pw)
	if _, err2 := s.e.getGeneral(ctx, nc); err2 == nil {
		if err := s.commit(ctx, devcreds.AMT, pw); err != nil {
			return err
		}
		s.client, s.password = nc, pw
		s.j.OK(ctx, step, "the device holds the new password")
		return nil
	}
	return errStatus("Failed to change the AMT password: " + errorText(err))
}

// setMEBx sets the profile's (or a random) MEBx password (ACM).
func (s *session) setMEBx(ctx context.Context, prof *store.Profile) error {
	pw, err := s.e.profileMEBxPassword(ctx, prof)
	if err != nil {
		s.j.Fail(ctx, "acm.mebx", err)
		return errStatus("Failed to get amt profile from database")
	}
	if err := s.stage(ctx, devcreds.MEBx, pw); err != nil {
		return err
	}
	rv := -1
	err = s.e.do(ctx, s.client, func(m wsman.Messages) error {
		r, err := m.AMT.SetupAndConfigurationService.SetMEBXPassword(pw)
		if r.Body.SetMEBxPassword_OUTPUT.XMLName.Local != "" {
			rv = int(r.Body.SetMEBxPassword_OUTPUT.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("SetMEBxPassword", rv)
	}
	if err != nil {
		s.j.Fail(ctx, "acm.mebx", err)
		return errStatus("Failed to set MEBx password: " + errorText(err))
	}
	if err := s.commit(ctx, devcreds.MEBx, pw); err != nil {
		return err
	}
	s.j.OK(ctx, "acm.mebx", "MEBx password set")
	return nil
}

// register writes the device record (activation.md §9): after activation,
// and again after configuration with the components' status.
func (s *session) register(ctx context.Context, prof *store.Profile, controlMode int, mpsUser string, res *Result) error {
	wctx := context.WithoutCancel(ctx)
	d, err := s.e.cfg.Store.GetDevice(wctx, s.guid)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.j.Fail(ctx, "device.record", err)
		return errStatus("Failed to save device information to MPS")
	}
	if d == nil || errors.Is(err, store.ErrNotFound) {
		d = &store.Device{GUID: s.guid}
	}
	now := s.e.now().UTC()
	d.TenantID = s.tenant
	d.Hostname = s.p.Hostname
	if s.p.FriendlyName != "" {
		d.FriendlyName = s.p.FriendlyName
	}
	d.DNSSuffix = s.p.FQDN
	d.Tags = slices.Clone(prof.Tags)
	d.ProfileName = prof.Name
	if mpsUser != "" || res != nil {
		d.MPSUsername = mpsUser
	}
	info := d.DeviceInfo
	if info == nil {
		info = &store.DeviceInfo{}
	}
	info.FWVersion, info.FWBuild, info.FWSku = s.p.Ver, s.p.Build, s.p.SKU
	info.CurrentMode = fmt.Sprint(controlMode)
	info.Features = s.p.Features
	if s.p.IPConfiguration != nil && s.p.IPConfiguration.IPAddress != "" {
		info.IPAddress = s.p.IPConfiguration.IPAddress
	}
	info.LastUpdated = &now
	if res == nil {
		if s.p.CurrentMode == 0 || info.ActivatedAt == nil {
			info.ActivatedAt = &now
		}
	} else {
		info.LastProvisionedAt = &now
		info.Status = res.statusMap()
	}
	d.DeviceInfo = info
	if _, err := s.e.cfg.Store.PutDevice(wctx, d); err != nil {
		s.j.Fail(ctx, "device.record", err)
		return errStatus("Failed to save device information to MPS")
	}
	s.j.OK(ctx, "device.record", "device record saved")
	return nil
}
