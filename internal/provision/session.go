package provision

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/general"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/ips/hostbasedsetup"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/rpcproto"
)

// session is one run of a flow on one device.
type session struct {
	e      *Engine
	req    rpcproto.Request
	p      *rpcproto.Payload
	conn   Conn
	j      *Journal
	res    *Result
	guid   string
	tenant string

	profile   string // the activation's profile (for the activation marker)
	markerSet bool
	activated int // control mode the device was activated to in this session (0: not)

	client   *amt.Client
	password string // the admin password the client uses ("" before activation)
	realm    string
	general  general.GeneralSettingsResponse

	// The TLS path (tunnel.go).
	pins     *pinSet
	tlsRT    http.RoundTripper // through the TLS tunnel, once opened
	onTLS    bool              // the device is reached on 16993
	tlsNoted bool
	tlsDone  bool // the TLS step ran (and committed) in this session
}

func (e *Engine) newSession(req rpcproto.Request, conn Conn) *session {
	p := req.Payload
	return &session{e: e, req: req, p: p, conn: conn, res: newResult(), guid: p.UUID, tenant: req.TenantID,
		j: e.NewJournal(p.UUID, req.TenantID, req.ConnID)}
}

// lockDevice serialises sessions on one device.
func (e *Engine) lockDevice(ctx context.Context, guid string) (func(), error) {
	lctx, cancel := context.WithTimeout(ctx, e.timing.LockTimeout)
	defer cancel()
	return e.locks.lock(lctx, guid)
}

// busyMessage is the answer when another session holds the device too long.
func busyMessage(guid string) string {
	return fmt.Sprintf("Device %s is being provisioned by another session; try again later.", guid)
}

func (s *session) newClient(user, password string) *amt.Client {
	return s.e.clientFor(s.transport(), s.guid, user, password, s.onTLS)
}

func (e *Engine) clientFor(rt http.RoundTripper, guid, user, password string, useTLS bool) *amt.Client {
	return amt.NewClient(rt, amt.Params{Target: guid, Username: user, Password: password, UseTLS: useTLS,
		Timeout: e.timing.CallTimeout})
}

// do runs one WS-MAN exchange (or a few that belong together) with the
// engine's per-call timeout.
func (e *Engine) do(ctx context.Context, c *amt.Client, fn func(m wsman.Messages) error) error {
	return e.doTimeout(ctx, c, e.timing.CallTimeout, fn)
}

func (e *Engine) doTLS(ctx context.Context, c *amt.Client, fn func(m wsman.Messages) error) error {
	return e.doTimeout(ctx, c, e.timing.TLSCallTimeout, fn)
}

func (e *Engine) doTimeout(ctx context.Context, c *amt.Client, d time.Duration, fn func(m wsman.Messages) error) error {
	if d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	return c.Do(ctx, fn)
}

// getGeneral reads AMT_GeneralSettings.
func (e *Engine) getGeneral(ctx context.Context, c *amt.Client) (general.GeneralSettingsResponse, error) {
	var g general.GeneralSettingsResponse
	err := e.do(ctx, c, func(m wsman.Messages) error {
		r, err := m.AMT.GeneralSettings.Get()
		g = r.Body.GetResponse
		return err
	})
	return g, err
}

// getHBS reads IPS_HostBasedSetupService.
func (e *Engine) getHBS(ctx context.Context, c *amt.Client) (hostbasedsetup.HostBasedSetupService, error) {
	var h hostbasedsetup.HostBasedSetupService
	err := e.do(ctx, c, func(m wsman.Messages) error {
		r, err := m.IPS.HostBasedSetupService.Get()
		h = r.Body.GetResponse
		return err
	})
	return h, err
}

// prelude reads AMT_GeneralSettings with the session's client and checks the
// digest realm (activation.md §3).
func (s *session) prelude(ctx context.Context) error {
	g, err := s.e.getGeneral(ctx, s.client)
	if err != nil {
		s.j.Fail(ctx, "device.generalsettings", err)
		if isPinError(err) {
			return errStatus("Failed to establish TLS tunnel connection")
		}
		return err
	}
	s.noteTLS(ctx)
	if !validRealm(g.DigestRealm) {
		s.j.FailText(ctx, "device.generalsettings", "invalid digest realm")
		return errStatus("Not a valid digest realm.")
	}
	s.general, s.realm = g, g.DigestRealm
	s.j.OK(ctx, "device.generalsettings", "realm "+g.DigestRealm)
	return nil
}

// authenticate connects as admin with the first of passwords the device
// accepts (modes 1 and 2), and makes that value the current stored one when
// amtd holds it, so that no value the device may hold is lost when a new one
// is staged. It leaves s.client, s.password, s.general and s.realm set.
func (s *session) authenticate(ctx context.Context, passwords []string, creds devcreds.Creds) error {
	var lastErr error
	for i, pw := range passwords {
		s.client = s.newClient("admin", pw)
		s.password = pw
		err := s.prelude(ctx)
		if err == nil {
			if i > 0 {
				s.j.Info(ctx, "device.authenticate", fmt.Sprintf("authenticated with stored credential %d of %d", i+1, len(passwords)))
			}
			if creds != nil && creds.Current(devcreds.AMT) != pw && creds.Pending(devcreds.AMT) == pw {
				if _, err := devcreds.Commit(context.WithoutCancel(ctx), s.e.cfg.Secrets, s.guid, devcreds.AMT, pw); err != nil {
					return s.j.Fail(ctx, "credentials.commit", err)
				}
				s.j.OK(ctx, "credentials.commit", "the device holds the pending AMT password; made current")
			}
			return nil
		}
		lastErr = err
		if !isUnauthorized(err) {
			return err
		}
	}
	if lastErr == nil {
		lastErr = errors.New("no password to try")
	}
	return lastErr
}

// statusError is a failure whose text is RPS's Status for it.
type statusError struct{ msg string }

func (e *statusError) Error() string { return e.msg }

func errStatus(msg string) error { return &statusError{msg: msg} }

// statusText is the Status for an error: RPS's text when the step defined
// one, otherwise a description of the device's answer.
func statusText(err error) string {
	var se *statusError
	if errors.As(err, &se) {
		return se.msg
	}
	if errors.Is(err, rpcproto.ErrClientGone) {
		return "rpc client disconnected"
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "Timed out waiting for the device"
	}
	return errorText(err)
}

// wait pauses for a firmware delay, watching the connection.
func (s *session) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	return s.conn.Wait(ctx, d)
}

// commit promotes a staged credential once the device confirmed it. It
// must happen even if the session's context just ended.
func (s *session) commit(ctx context.Context, kind, value string) error {
	if _, err := devcreds.Commit(context.WithoutCancel(ctx), s.e.cfg.Secrets, s.guid, kind, value); err != nil {
		return s.j.Fail(ctx, "credentials.commit", fmt.Errorf("saving %s: %w", kind, err))
	}
	s.j.OK(ctx, "credentials.commit", kind+" confirmed by the device, now current")
	return nil
}

// stage durably records a credential before the call that sets it.
// An activation also records, before its first credential, that it is
// under way (resume.go).
func (s *session) stage(ctx context.Context, kind, value string) error {
	if s.profile != "" && !s.markerSet {
		m := marker{Tenant: s.tenant, Profile: s.profile, Session: s.j.Session, Started: s.e.now().UTC()}
		if err := s.e.setMarker(ctx, s.guid, m); err != nil {
			s.j.Fail(ctx, "credentials.marker", err)
			return errStatus("Failed to save device information to Secret Provider")
		}
		s.markerSet = true
	}
	if _, err := devcreds.Stage(ctx, s.e.cfg.Secrets, s.guid, kind, value); err != nil {
		s.j.Fail(ctx, "credentials.stage", fmt.Errorf("staging %s: %w", kind, err))
		return errStatus("Failed to save device information to Secret Provider")
	}
	s.j.OK(ctx, "credentials.stage", kind+" saved as pending before the device call")
	return nil
}
