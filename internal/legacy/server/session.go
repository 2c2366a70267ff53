package server

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/general"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/legacy/hello"
	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/rpcproto"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/tlspsk"

	"crypto/x509"
)

// dispatch applies the allow-list, de-duplication, cool-down and capacity
// rules to a valid hello, records it, and starts its configuration
// (legacy.md §5 steps 4–7).
func (s *Server) dispatch(ctx context.Context, r readOutcome, ip string) {
	h := r.hello
	guid := strings.ToLower(h.UUID.String())
	ev := store.HelloEvent{GUID: guid, SourceIP: ip, Version: h.Version, RetryCount: int64(h.RetryCount),
		AdminCredentialsSet: h.AdminCredentialsSet, PID: h.PID, ReceivedAt: s.now().UTC(), Hashes: []store.HelloHash{}}
	for _, e := range h.Hashes {
		ev.Hashes = append(ev.Hashes, store.HelloHash{Type: int(e.Type), Hash: e.Hex()})
	}
	log := s.log.With("uuid", guid, "ip", ip, "version", h.Version, "retry", h.RetryCount)

	entry, err := s.cfg.Store.GetLegacyDevice(ctx, guid)
	switch {
	case errors.Is(err, store.ErrNotFound) && !s.cfg.AcceptUnknown:
		s.stats.unknown.Add(1)
		log.Warn("hello from an unknown UUID discarded (not on the allow-list)")
		ev.Outcome, ev.Detail = OutcomeUnknownUUID, "not on the allow-list: discarded"
		s.finishNow(ctx, &ev)
		return
	case errors.Is(err, store.ErrNotFound):
		entry = &store.LegacyDevice{GUID: guid, TenantID: s.cfg.DefaultTenant, ProfileName: s.cfg.DefaultProfile}
		ev.Detail = "not on the allow-list; accepted by the accept-unknown policy with profile " + s.cfg.DefaultProfile
		log.Info("hello from an unknown UUID accepted by policy", "profile", s.cfg.DefaultProfile)
	case err != nil:
		log.Error("reading the allow-list", "err", err)
		ev.Outcome, ev.Detail = OutcomeFailed, "reading the allow-list failed"
		s.stats.failed.Add(1)
		s.finishNow(ctx, &ev)
		return
	}
	ev.TenantID = entry.TenantID

	now := s.now()
	s.mu.Lock()
	switch {
	case s.active[guid]:
		ev.Outcome, ev.Detail = OutcomeBusy, "a configuration of this device is in progress"
	case s.activeIP[ip]:
		ev.Outcome, ev.Detail = OutcomeBusy, "a configuration from this source address is in progress"
	case now.Before(s.cooldown[guid]):
		ev.Outcome = OutcomeCooldown
		ev.Detail = fmt.Sprintf("a recent attempt failed; cooling down for %s more", s.cooldown[guid].Sub(now).Round(time.Second))
	case s.sessions >= s.cfg.MaxSessions:
		ev.Outcome, ev.Detail = OutcomeOverloaded, fmt.Sprintf("%d configurations in progress", s.sessions)
	default:
		delete(s.cooldown, guid)
		s.active[guid], s.activeIP[ip] = true, true
		s.sessions++
		s.wg.Add(1)
		ev.Outcome = OutcomeAccepted
	}
	s.mu.Unlock()
	if ev.Outcome != OutcomeAccepted {
		s.stats.ignored.Add(1)
		log.Info("hello ignored", "outcome", ev.Outcome, "detail", ev.Detail)
		s.finishNow(ctx, &ev)
		return
	}
	s.stats.accepted.Add(1)
	log.Info("hello accepted", "profile", entry.ProfileName, "tenant", entry.TenantID)
	s.record(ctx, &ev)
	go func() {
		defer s.wg.Done()
		s.session(ctx, entry, h, ip, ev, log)
	}()
}

// record appends a hello event (failures are logged: the record is for
// people, the configuration goes on).
func (s *Server) record(ctx context.Context, ev *store.HelloEvent) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.cfg.Store.AppendHelloEvent(wctx, ev, s.cfg.KeepHelloEvents); err != nil {
		s.log.Error("recording a hello", "uuid", ev.GUID, "err", err)
	}
}

// finishNow records a hello that starts nothing and reports it.
func (s *Server) finishNow(ctx context.Context, ev *store.HelloEvent) {
	s.record(ctx, ev)
	s.report(*ev)
}

// refusal is a hello amtd does not act on for a reason of its own
// configuration (no certificate, unknown PID, missing profile).
type refusal struct{ msg string }

func (e *refusal) Error() string { return e.msg }

func refuse(format string, a ...any) error { return &refusal{fmt.Sprintf(format, a...)} }

// run is one device's configuration.
type run struct {
	s     *Server
	entry *store.LegacyDevice
	h     *hello.Hello
	ip    string
	guid  string
	flow  string // "PKI" or "PSK"
	j     *provision.Journal
	log   *slog.Logger
	prof  *store.Profile

	addr   string
	rt     http.RoundTripper // the setup-stage transport
	client *amt.Client
	// device facts
	general             general.GeneralSettingsResponse
	fwVersion, fwBuild  string
	fwSKU               string
	hostname, domain    string
	newAMT, newMEBx     string
	tlsCert             string // base64 DER issued in the setup stage
	deviceCertSHA256    string
	pskPID              string
	committed           bool
	profileSecretsCache map[string]string
}

// session runs one device's configuration, frees the device and its source
// address for the next hello, and records and reports the outcome (in that
// order: a hello that follows the report is not turned away as busy).
func (s *Server) session(ctx context.Context, entry *store.LegacyDevice, h *hello.Hello, ip string, ev store.HelloEvent, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, s.timing.SessionTimeout)
	defer cancel()
	r := &run{s: s, entry: entry, h: h, ip: ip, guid: ev.GUID, log: log,
		addr: net.JoinHostPort(ip, strconv.Itoa(s.cfg.DevicePort))}
	r.j = s.cfg.Engine.NewJournal(r.guid, entry.TenantID, "")
	outcome, detail := r.execute(ctx)
	switch outcome {
	case OutcomeProvisioned:
		s.stats.provisioned.Add(1)
		log.Info("device provisioned", "detail", detail)
	case OutcomeConfigFailed:
		s.stats.configFail.Add(1)
		log.Warn("device set up, configuration failed", "detail", detail)
	case OutcomeRefused:
		s.stats.refused.Add(1)
		log.Warn("hello refused", "reason", detail)
	default:
		s.stats.failed.Add(1)
		log.Warn("legacy configuration failed", "reason", detail)
	}
	s.mu.Lock()
	if outcome == OutcomeRefused || outcome == OutcomeFailed {
		s.cooldown[r.guid] = s.now().Add(s.timing.Cooldown)
	}
	delete(s.active, r.guid)
	delete(s.activeIP, ip)
	s.sessions--
	s.mu.Unlock()
	ev.Outcome, ev.Detail = outcome, detail
	if ev.ID != 0 {
		wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := s.cfg.Store.SetHelloOutcome(wctx, ev.ID, outcome, detail); err != nil && !errors.Is(err, store.ErrNotFound) {
			log.Error("recording a hello's outcome", "err", err)
		}
		wcancel()
	}
	s.report(ev)
}

// execute runs the stages; it returns the outcome and a secret-free detail.
func (r *run) execute(ctx context.Context) (string, string) {
	h := r.h
	switch h.Version {
	case hello.VersionPKI:
		r.flow = "PKI"
		r.j.Info(ctx, "legacy.hello", fmt.Sprintf("PKI hello from %s (retry %d, %d trusted root hashes, admin credentials set: %v)",
			r.ip, h.RetryCount, len(h.Hashes), h.AdminCredentialsSet))
	default:
		r.flow = "PSK"
		r.j.Info(ctx, "legacy.hello", fmt.Sprintf("PSK hello from %s (retry %d, PID %s, admin credentials set: %v)",
			r.ip, h.RetryCount, h.PID, h.AdminCredentialsSet))
	}
	if r.s.cfg.ReverseLookup {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		names, err := r.s.cfg.Resolver.LookupAddr(lctx, r.ip)
		cancel()
		if err == nil && len(names) > 0 {
			r.j.Info(ctx, "legacy.hello", "source address resolves to "+strings.TrimSuffix(names[0], "."))
			if r.entry.Hostname == "" {
				label, _, _ := strings.Cut(strings.TrimSuffix(names[0], "."), ".")
				r.entry.Hostname = label
			}
		}
	}
	if err := r.prepare(ctx); err != nil {
		var rf *refusal
		if errors.As(err, &rf) {
			r.j.FailText(ctx, "legacy.refused", rf.msg)
			return OutcomeRefused, rf.msg
		}
		r.j.Fail(ctx, "legacy.prepare", err)
		return OutcomeFailed, err.Error()
	}
	if err := r.setup(ctx); err != nil {
		if r.committed {
			return OutcomeConfigFailed, err.Error()
		}
		r.j.FailText(ctx, "legacy.setup", "the device stays in setup mode and will send another hello")
		return OutcomeFailed, err.Error()
	}
	res, out := r.configure(ctx)
	if err := r.register(ctx, res, out.MPSUsername); err != nil {
		return OutcomeConfigFailed, "device record: " + err.Error()
	}
	if out.Err != nil {
		return OutcomeConfigFailed, "configuration per profile " + r.prof.Name + " failed: " + out.Err.Error()
	}
	return OutcomeProvisioned, fmt.Sprintf("admin control mode, configured per profile %s", r.prof.Name)
}

// prepare loads the profile and the credentials to present (certificate or
// PSK) and builds the setup-stage transport.
func (r *run) prepare(ctx context.Context) error {
	p, err := r.s.cfg.Store.GetProfile(ctx, r.entry.TenantID, r.entry.ProfileName)
	if errors.Is(err, store.ErrNotFound) {
		return refuse("profile %q does not exist", r.entry.ProfileName)
	}
	if err != nil {
		return fmt.Errorf("reading profile %s: %w", r.entry.ProfileName, err)
	}
	r.prof = p
	if p.Activation != "" && p.Activation != "acmactivate" {
		r.j.Info(ctx, "legacy.profile", "profile "+p.Name+" asks for "+p.Activation+"; legacy remote configuration always yields admin control mode")
	}
	d := &dialer{dial: r.s.cfg.Dial, dialTimeout: r.s.timing.DialTimeout, handshakeTimeout: r.s.timing.HandshakeTimeout}
	switch r.h.Version {
	case hello.VersionPKI:
		pc, err := r.s.selectCertificate(ctx, r.entry.TenantID, r.entry.DNSSuffix, r.h.Hashes)
		if errors.Is(err, ErrNoCertificate) {
			return refuse("%v", err)
		}
		if err != nil {
			return err
		}
		r.j.OK(ctx, "legacy.certificate", fmt.Sprintf("provisioning certificate of domain %s (CN %s), root matches the device's %s hash %s",
			pc.domain, pc.leafCN, pc.matched.Type, pc.matched.Hex()))
		cfg := setupTLSConfig(pc.chain, pc.key, func(sum string) { r.deviceCertSHA256 = sum })
		r.rt = &amt.DirectTransport{Name: r.addr, Dial: func(ctx context.Context) (net.Conn, error) { return d.tlsConn(ctx, r.addr, cfg) }}
	default:
		pair, err := r.s.psk.Lookup(ctx, r.h.PID)
		if errors.Is(err, psk.ErrUnknownPID) {
			return refuse("PID %s is not one of amtd's PID/PPS pairs", r.h.PID)
		}
		if err != nil {
			return err
		}
		if pair.TenantID != r.entry.TenantID {
			return refuse("PID %s belongs to another tenant", r.h.PID)
		}
		cfg, err := tlspsk.PIDPPSConfig(pair.PID, pair.PPS)
		if err != nil {
			return err
		}
		r.pskPID = pair.PID
		r.j.OK(ctx, "legacy.psk", "PID "+pair.PID+" is one of amtd's pairs")
		r.rt = &amt.DirectTransport{Name: r.addr, Dial: func(ctx context.Context) (net.Conn, error) { return d.pskConn(ctx, r.addr, cfg) }}
	}
	if r.newAMT, err = r.profilePassword(ctx, p.GenerateRandomPassword, provision.FieldAMTPassword); err != nil {
		return err
	}
	if r.newMEBx, err = r.profilePassword(ctx, p.GenerateRandomMEBxPassword, provision.FieldMEBxPassword); err != nil {
		return err
	}
	return nil
}

// profileSecrets reads the profile's secret entry (static passwords).
func (r *run) profileSecrets(ctx context.Context) (map[string]string, error) {
	if r.profileSecretsCache != nil {
		return r.profileSecretsCache, nil
	}
	m := map[string]string{}
	if r.prof.SecretID != "" {
		got, err := r.s.cfg.Secrets.Get(ctx, provision.DefaultSecretKey(r.prof.TenantID, provision.KindProfile, r.prof.SecretID))
		switch {
		case errors.Is(err, secrets.ErrNotFound):
		case err != nil:
			return nil, fmt.Errorf("reading profile %s from the secret store: %w", r.prof.Name, err)
		default:
			m = got
		}
	}
	r.profileSecretsCache = m
	return m, nil
}

// profilePassword is a new random password, or the profile's static one.
func (r *run) profilePassword(ctx context.Context, random bool, field string) (string, error) {
	if random {
		return provision.RandomPassword(r.s.cfg.Rand)
	}
	m, err := r.profileSecrets(ctx)
	if err != nil {
		return "", err
	}
	if m[field] == "" {
		return "", refuse("profile %s has no %s and does not generate one", r.prof.Name, field)
	}
	return m[field], nil
}

// setup is the setup stage: connect back, authenticate, the §7.3 sequence,
// commit, credentials made current, device record.
func (r *run) setup(ctx context.Context) error {
	r.j.Info(ctx, "legacy.connect", fmt.Sprintf("connecting to %s (%s)", r.addr, map[string]string{"PKI": "TLS with the provisioning certificate", "PSK": "TLS-PSK"}[r.flow]))
	if err := r.authenticate(ctx); err != nil {
		return err
	}
	if r.deviceCertSHA256 != "" {
		r.j.Info(ctx, "legacy.connect", "device TLS certificate SHA-256 "+r.deviceCertSHA256+" (self-signed in setup mode; not verified)")
	}
	if r.pskPID != "" {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		if err := r.s.cfg.Store.MarkPSKPairUsed(wctx, r.pskPID, r.guid, r.s.now()); err != nil {
			r.log.Warn("marking the PSK pair used", "err", err)
		}
		cancel()
	}
	steps := []func(context.Context) error{r.readState, r.setMEBx, r.setAdmin, r.syncClock, r.setNames, r.installTLS, r.commit}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	r.committed = true
	// The device confirmed: the staged values are now the current ones.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, c := range []struct{ kind, value string }{{devcreds.MEBx, r.newMEBx}, {devcreds.AMT, r.newAMT}, {devcreds.TLSCert, r.tlsCert}} {
		if _, err := devcreds.Commit(wctx, r.s.cfg.Secrets, r.guid, c.kind, c.value); err != nil {
			return r.j.Fail(ctx, "legacy.credentials", err)
		}
	}
	if err := r.register(ctx, nil, ""); err != nil {
		return err
	}
	if d := r.s.timing.CommitDelay; d > 0 {
		r.j.Info(ctx, "legacy.commit", fmt.Sprintf("waiting %v for the device to restart its web server", d))
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	return nil
}

// configure is the configuration stage: the profile's settings, over TLS
// pinned to the certificate installed in the setup stage, as admin with the
// new password (legacy.md §6 step 9).
func (r *run) configure(ctx context.Context) (*provision.Result, provision.ConfigureOutcome) {
	d := &dialer{dial: r.s.cfg.Dial, dialTimeout: r.s.timing.DialTimeout, handshakeTimeout: r.s.timing.HandshakeTimeout}
	cfg := pinnedTLSConfig(r.s.cfg.Secrets, r.guid)
	rt := &amt.DirectTransport{Name: r.addr, Dial: func(ctx context.Context) (net.Conn, error) { return d.tlsConn(ctx, r.addr, cfg) }}
	cl := amt.NewClient(rt, amt.Params{Target: r.ip, Username: "admin", Password: r.newAMT, UseTLS: true, Timeout: r.s.timing.CallTimeout})
	r.j.Info(ctx, "legacy.configure", "configuring per profile "+r.prof.Name+" over TLS (pinned to the installed certificate)")
	// KeepTLS: the session runs on the device's TLS port, so the engine's
	// unconfiguration must not switch TLS off under it. A certificate the
	// profile's TLS step installs is staged in the device's credentials
	// before the device gets it, so the pinned transport accepts it.
	return r.s.cfg.Engine.Configure(ctx, &provision.Target{
		Client: cl, GUID: r.guid, TenantID: r.entry.TenantID, Hostname: r.hostname, DNSSuffix: r.domain,
		ControlMode: 2, KeepTLS: true, Journal: r.j,
	}, r.prof)
}

// register writes the device record: after the setup stage (res nil) and
// again with the configuration's result.
func (r *run) register(ctx context.Context, res *provision.Result, mpsUser string) error {
	const step = "device.record"
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	st := r.s.cfg.Store
	d, err := st.GetDevice(wctx, r.guid)
	if errors.Is(err, store.ErrNotFound) {
		d, err = &store.Device{GUID: r.guid}, nil
	}
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	now := r.s.now().UTC()
	d.TenantID = r.entry.TenantID
	d.Hostname = r.hostname
	d.DNSSuffix = r.domain
	d.Tags = slices.Clone(r.prof.Tags)
	d.ProfileName = r.prof.Name
	if res != nil {
		d.MPSUsername = mpsUser
	}
	info := d.DeviceInfo
	if info == nil {
		info = &store.DeviceInfo{}
	}
	info.FWVersion, info.FWBuild, info.FWSku = r.fwVersion, r.fwBuild, r.fwSKU
	info.CurrentMode = "2"
	info.IPAddress = r.ip
	info.LastUpdated = &now
	if res == nil {
		info.ActivatedAt = &now
	} else {
		info.LastProvisionedAt = &now
		info.Status = statusMap(res.Components)
	}
	d.DeviceInfo = info
	if _, err := st.PutDevice(wctx, d); err != nil {
		return r.j.Fail(ctx, step, err)
	}
	r.j.OK(ctx, step, "device record saved")
	return nil
}

// statusMap is the device record's deviceInfo.status (RPS's Components).
func statusMap(c rpcproto.Components) map[string]any {
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
	c.Activation = rpcproto.ComponentResult{Result: provision.Success, Details: "legacy remote configuration (admin control mode)"}
	return map[string]any{
		"Activation": comp(c.Activation), "WiredNetwork": comp(c.WiredNetwork), "WirelessNetwork": comp(c.WirelessNetwork),
		"TLS": comp(c.TLS), "CIRAProxy": comp(c.CIRAProxy), "CIRAConnection": comp(c.CIRAConnection),
	}
}

// parseDeviceKey parses AMT_PublicPrivateKeyPair.DERKey: base64 of an RSA
// public key, PKCS#1 (what AMT reports) or SubjectPublicKeyInfo.
func parseDeviceKey(derKeyB64 string) (crypto.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(derKeyB64))
	if err != nil {
		return nil, errors.New("the device's public key is not base64")
	}
	if k, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("the device's public key cannot be parsed")
}
