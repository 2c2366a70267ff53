package server

import (
	"context"
	"crypto/md5"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/general"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/publickey"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/publicprivate"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/setupandconfiguration"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/tls"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/cim/software"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/ca"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/provision"
)

// The setup stage's WS-MAN sequence (legacy.md §7.3) on an authenticated
// client. Each step writes one provisioning-log line.

const tlsLocalInstance = "Intel(r) AMT LMS TLS Settings"

// do runs one WS-MAN exchange with the per-call timeout.
func (r *run) do(ctx context.Context, fn func(m wsman.Messages) error) error {
	return r.doTimeout(ctx, r.s.timing.CallTimeout, fn)
}

func (r *run) doTimeout(ctx context.Context, d time.Duration, fn func(m wsman.Messages) error) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return r.client.Do(ctx, fn)
}

func getGeneral(ctx context.Context, c *amt.Client, timeout time.Duration) (general.GeneralSettingsResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var g general.GeneralSettingsResponse
	err := c.Do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.GeneralSettings.Get()
		g = r.Body.GetResponse
		return err
	})
	return g, err
}

// isUnauthorized reports the device refusing the digest credentials.
func isUnauthorized(err error) bool {
	return err != nil && strings.Contains(err.Error(), "wsman.Client post received: 401")
}

// checkRV turns a missing ReturnValue (-1) or a non-zero one into an error.
func checkRV(call string, rv int) error {
	if rv == -1 {
		return fmt.Errorf("%s: no ReturnValue in the answer", call)
	}
	return amt.Check(call, rv)
}

// credential is one entry of the setup-mode credential list.
type credential struct {
	label    string // for the log; never the value
	password string
}

// credentials builds the list of legacy.md §7.2: the device's stored AMT
// password(s), the empty password, the profile's MEBx password, the
// operator's setup passwords; duplicates removed.
func (r *run) credentials(ctx context.Context) ([]credential, error) {
	var out []credential
	seen := map[string]bool{}
	add := func(label, pw string) {
		if !seen[pw] {
			seen[pw] = true
			out = append(out, credential{label, pw})
		}
	}
	creds, err := devcreds.Load(ctx, r.s.cfg.Secrets, r.guid)
	if err != nil {
		return nil, err
	}
	for _, pw := range creds.Candidates(devcreds.AMT) {
		add("the device's stored AMT password", pw)
	}
	add("the empty password", "")
	if !r.prof.GenerateRandomMEBxPassword {
		if m, err := r.profileSecrets(ctx); err != nil {
			return nil, err
		} else if pw := m[provision.FieldMEBxPassword]; pw != "" {
			add("the profile's MEBx password", pw)
		}
	}
	for _, pw := range creds.Candidates(devcreds.MEBx) {
		add("the device's stored MEBx password", pw)
	}
	if r.s.cfg.SetupPasswords != nil {
		extra, err := r.s.cfg.SetupPasswords(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading the operator's setup passwords: %w", err)
		}
		for i, pw := range extra {
			add(fmt.Sprintf("operator setup password %d", i+1), pw)
		}
	}
	return out, nil
}

// authenticate tries each credential in turn as "admin" (legacy.md §7.2):
// the next one only after a 401; at most MaxAuthFailures refusals; any other
// failure (TLS, connection) stops at once.
func (r *run) authenticate(ctx context.Context) error {
	const step = "legacy.auth"
	list, err := r.credentials(ctx)
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	failures := 0
	for _, c := range list {
		cl := amt.NewClient(r.rt, amt.Params{Target: r.ip, Username: "admin", Password: c.password, UseTLS: true,
			Timeout: r.s.timing.CallTimeout})
		g, err := getGeneral(ctx, cl, r.s.timing.CallTimeout)
		if err == nil {
			r.client, r.general = cl, g
			r.j.OK(ctx, step, "authenticated as admin with "+c.label)
			return nil
		}
		if !isUnauthorized(err) {
			return r.j.Fail(ctx, step, connectError(err, r.flow))
		}
		failures++
		r.j.Info(ctx, step, c.label+" refused")
		if failures >= r.s.cfg.MaxAuthFailures {
			break
		}
	}
	return r.j.Fail(ctx, step, fmt.Errorf("the device refused %d credentials; add its setup-mode password to amtd's setup passwords", failures))
}

// connectError explains a failure to reach the device.
func connectError(err error, flow string) error {
	var he *HandshakeError
	switch {
	case errors.As(err, &he) && he.PSK:
		return fmt.Errorf("the device refused the TLS-PSK session (wrong PPS for this PID, or PSK not supported): %w", err)
	case errors.As(err, &he):
		return fmt.Errorf("the device refused the TLS session: it accepts a provisioning certificate only when its root hash is active in the device and its CN fits the device's PKI DNS suffix: %w", err)
	case strings.Contains(err.Error(), "remote error: tls:"):
		return fmt.Errorf("the device ended the TLS session (%s provisioning certificate or PSK refused): %w", flow, err)
	}
	return err
}

// readState reads firmware version and provisioning state (legacy.md §7.3
// step 1); the device must be in setup mode.
func (r *run) readState(ctx context.Context) error {
	const step = "legacy.state"
	if strings.TrimSpace(r.general.DigestRealm) == "" {
		return r.j.Fail(ctx, step, errors.New("the device reports no digest realm"))
	}
	var ids []software.SoftwareIdentity
	var ec string
	err := r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.CIM.SoftwareIdentity.Enumerate()
		ec = resp.Body.EnumerateResponse.EnumerationContext
		return err
	})
	if err == nil {
		err = r.do(ctx, func(m wsman.Messages) error {
			resp, err := m.CIM.SoftwareIdentity.Pull(ec)
			ids = resp.Body.PullResponse.SoftwareIdentityItems
			return err
		})
	}
	if err != nil {
		// Not fatal: the version is only recorded.
		r.j.Info(ctx, step, "firmware version not read: "+err.Error())
	}
	for _, id := range ids {
		switch id.InstanceID {
		case "AMT":
			r.fwVersion = id.VersionString
		case "Build Number":
			r.fwBuild = id.VersionString
		case "Sku":
			r.fwSKU = id.VersionString
		}
	}
	var svc setupandconfiguration.SetupAndConfigurationServiceResponse
	if err := r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.SetupAndConfigurationService.Get()
		svc = resp.Body.GetResponse
		return err
	}); err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("reading the setup and configuration service: %w", err))
	}
	if svc.ProvisioningState != setupandconfiguration.InProvisioning {
		return r.j.Fail(ctx, step, fmt.Errorf("the device is not in setup mode (provisioning state %d, want 1)", svc.ProvisioningState))
	}
	r.j.OK(ctx, step, fmt.Sprintf("AMT %s, in setup mode, realm %s", orUnknown(r.fwVersion), r.general.DigestRealm))
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

// setMEBx stages and sets the new MEBx password (legacy.md §7.3 step 3).
func (r *run) setMEBx(ctx context.Context) error {
	const step = "legacy.mebx"
	if _, err := devcreds.Stage(ctx, r.s.cfg.Secrets, r.guid, devcreds.MEBx, r.newMEBx); err != nil {
		return r.j.Fail(ctx, step, err)
	}
	rv := -1
	err := r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.SetupAndConfigurationService.SetMEBXPassword(r.newMEBx)
		if resp.Body.SetMEBxPassword_OUTPUT.XMLName.Local != "" {
			rv = int(resp.Body.SetMEBxPassword_OUTPUT.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("SetMEBxPassword", rv)
	}
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	r.j.OK(ctx, step, "MEBx password set (stored before the call)")
	return nil
}

// aclDigest is the DigestPassword of SetAdminAclEntryEx: base64 of
// MD5("admin:" + realm + ":" + password), as RPS and rpc-go send it.
func aclDigest(realm, password string) string {
	h := md5.Sum([]byte("admin:" + realm + ":" + password))
	return base64.StdEncoding.EncodeToString(h[:])
}

// setAdmin stages and sets the new AMT admin password (step 4).
func (r *run) setAdmin(ctx context.Context) error {
	const step = "legacy.password"
	if _, err := devcreds.Stage(ctx, r.s.cfg.Secrets, r.guid, devcreds.AMT, r.newAMT); err != nil {
		return r.j.Fail(ctx, step, err)
	}
	rv := -1
	err := r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.AuthorizationService.SetAdminAclEntryEx("admin", aclDigest(r.general.DigestRealm, r.newAMT))
		if resp.Message != nil && strings.Contains(resp.XMLOutput, "SetAdminAclEntryEx_OUTPUT") {
			rv = int(resp.Body.SetAdminResponse.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("SetAdminAclEntryEx", rv)
	}
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	r.j.OK(ctx, step, "AMT admin password set (stored before the call)")
	return nil
}

// syncClock sets AMT's clock when it is more than 10 s off (step 5).
func (r *run) syncClock(ctx context.Context) error {
	const step = "legacy.clock"
	var ta0 int64
	rv := -1
	err := r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.TimeSynchronizationService.GetLowAccuracyTimeSynch()
		if resp.Body.GetLowAccuracyTimeSynchResponse.XMLName.Local != "" {
			rv = int(resp.Body.GetLowAccuracyTimeSynchResponse.ReturnValue)
			ta0 = resp.Body.GetLowAccuracyTimeSynchResponse.Ta0
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("GetLowAccuracyTimeSynch", rv)
	}
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	tm1 := r.s.now().Unix()
	if d := tm1 - ta0; d >= -10 && d <= 10 {
		r.j.Skipped(ctx, step, "the device's clock is within 10 s")
		return nil
	}
	rv = -1
	err = r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.TimeSynchronizationService.SetHighAccuracyTimeSynch(ta0, tm1, r.s.now().Unix())
		if resp.Body.SetHighAccuracyTimeSynchResponse.XMLName.Local != "" {
			rv = int(resp.Body.SetHighAccuracyTimeSynchResponse.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("SetHighAccuracyTimeSynch", rv)
	}
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	r.j.OK(ctx, step, fmt.Sprintf("clock set (it was %d s off)", tm1-ta0))
	return nil
}

// setNames sets AMT's host and domain name from the allow-list (legacy.md §6
// stage 2 step 6: easier before commit).
func (r *run) setNames(ctx context.Context) error {
	const step = "legacy.hostname"
	g := r.general
	host, domain := g.HostName, g.DomainName
	if r.entry.Hostname != "" {
		host = r.entry.Hostname
	}
	if r.entry.DNSSuffix != "" {
		domain = r.entry.DNSSuffix
	}
	r.hostname, r.domain = host, domain
	if host == g.HostName && domain == g.DomainName {
		r.j.Skipped(ctx, step, fmt.Sprintf("host name %q and domain %q already set", host, domain))
		return nil
	}
	req := general.GeneralSettingsRequest{
		ElementName: g.ElementName, InstanceID: g.InstanceID, IdleWakeTimeout: g.IdleWakeTimeout,
		HostName: host, DomainName: domain, PingResponseEnabled: g.PingResponseEnabled,
		WsmanOnlyMode: g.WsmanOnlyMode, PreferredAddressFamily: g.PreferredAddressFamily,
		DHCPv6ConfigurationTimeout: g.DHCPv6ConfigurationTimeout, DDNSUpdateEnabled: g.DDNSUpdateEnabled,
		DDNSUpdateByDHCPServerEnabled: g.DDNSUpdateByDHCPServerEnabled, SharedFQDN: g.SharedFQDN,
		HostOSFQDN: g.HostOSFQDN, DDNSTTL: g.DDNSTTL, AMTNetworkEnabled: g.AMTNetworkEnabled,
		RmcpPingResponseEnabled: g.RmcpPingResponseEnabled, DDNSPeriodicUpdateInterval: g.DDNSPeriodicUpdateInterval,
		PresenceNotificationInterval: g.PresenceNotificationInterval, ThunderboltDockEnabled: g.ThunderboltDockEnabled,
		OemID: g.OemID, DHCPSyncRequiresHostname: int(g.DHCPSyncRequiresHostname),
	}
	if err := r.do(ctx, func(m wsman.Messages) error {
		_, err := m.AMT.GeneralSettings.Put(req)
		return err
	}); err != nil {
		return r.j.Fail(ctx, step, err)
	}
	r.general.HostName, r.general.DomainName = host, domain
	r.j.OK(ctx, step, fmt.Sprintf("host name %q, domain %q", host, domain))
	return nil
}

// installTLS has the device generate a key, certifies it with amtd's CA and
// makes it the TLS server certificate of the network interface, non-TLS
// connections still accepted (legacy.md §7.3 step 6). The certificate is
// staged in the device's credentials before AddCertificate: it is what amtd
// pins afterwards.
func (r *run) installTLS(ctx context.Context) error {
	const step = "legacy.tls"
	rv := -1
	var keyID string
	err := r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.PublicKeyManagementService.GenerateKeyPair(publickey.RSA, publickey.KeyLength2048)
		out := resp.Body.GenerateKeyPair_OUTPUT
		if out.XMLName.Local != "" {
			rv = int(out.ReturnValue)
			keyID = selector(out.KeyPair.ReferenceParameters.SelectorSet.Selectors, "InstanceID")
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("GenerateKeyPair", rv)
	}
	if err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("generating a key pair: %w", err))
	}
	var keys []publicprivate.PublicPrivateKeyPair
	var ec string
	err = r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.PublicPrivateKeyPair.Enumerate()
		ec = resp.Body.EnumerateResponse.EnumerationContext
		return err
	})
	if err == nil {
		err = r.do(ctx, func(m wsman.Messages) error {
			resp, err := m.AMT.PublicPrivateKeyPair.Pull(ec)
			keys = resp.Body.PullResponse.PublicPrivateKeyPairItems
			return err
		})
	}
	if err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("reading key pairs: %w", err))
	}
	derKey := ""
	for _, k := range keys {
		if k.InstanceID == keyID {
			derKey = k.DERKey
		}
	}
	if derKey == "" {
		return r.j.Fail(ctx, step, fmt.Errorf("the generated key %q is not listed by the device", keyID))
	}
	pub, err := parseDeviceKey(derKey)
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	subject := ca.AMTTLSSubject(r.certName())
	der, err := r.s.cfg.CA.SignPublicKey(pub, subject, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, 0)
	if err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("issuing the TLS certificate: %w", err))
	}
	r.tlsCert = base64.StdEncoding.EncodeToString(der)
	if _, err := devcreds.Stage(ctx, r.s.cfg.Secrets, r.guid, devcreds.TLSCert, r.tlsCert); err != nil {
		return r.j.Fail(ctx, step, err)
	}
	rv = -1
	var certID string
	err = r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.PublicKeyManagementService.AddCertificate(r.tlsCert)
		out := resp.Body.AddCertificate_OUTPUT
		if out.XMLName.Local != "" {
			rv = int(out.ReturnValue)
			certID = selector(out.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors, "InstanceID")
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("AddCertificate", rv)
	}
	if err == nil && certID == "" {
		err = errors.New("AddCertificate: no certificate reference in the answer")
	}
	if err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("adding the certificate: %w", err))
	}
	var contexts []tls.CredentialContextResponse
	err = r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.TLSCredentialContext.Enumerate()
		ec = resp.Body.EnumerateResponse.EnumerationContext
		return err
	})
	if err == nil {
		err = r.do(ctx, func(m wsman.Messages) error {
			resp, err := m.AMT.TLSCredentialContext.Pull(ec)
			contexts = resp.Body.PullResponse.CredentialContextItems
			return err
		})
	}
	if err == nil {
		err = r.do(ctx, func(m wsman.Messages) error {
			var err error
			if len(contexts) > 0 {
				_, err = m.AMT.TLSCredentialContext.Put(certID)
			} else {
				_, err = m.AMT.TLSCredentialContext.Create(certID)
			}
			return err
		})
	}
	if err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("setting the TLS credential context: %w", err))
	}
	var settings []tls.SettingDataResponse
	err = r.do(ctx, func(m wsman.Messages) error {
		resp, err := m.AMT.TLSSettingData.Enumerate()
		ec = resp.Body.EnumerateResponse.EnumerationContext
		return err
	})
	if err == nil {
		err = r.do(ctx, func(m wsman.Messages) error {
			resp, err := m.AMT.TLSSettingData.Pull(ec)
			settings = resp.Body.PullResponse.SettingDataItems
			return err
		})
	}
	if err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("reading TLS settings: %w", err))
	}
	var remote *tls.SettingDataResponse
	for i := range settings {
		if settings[i].InstanceID != tlsLocalInstance {
			remote = &settings[i]
			break
		}
	}
	if remote == nil {
		return r.j.Fail(ctx, step, errors.New("the device has no remote TLS setting instance"))
	}
	req := tls.SettingDataRequest{ElementName: remote.ElementName, InstanceID: remote.InstanceID, Enabled: true,
		AcceptNonSecureConnections: true, MutualAuthentication: false,
		NonSecureConnectionsSupported: remote.NonSecureConnectionsSupported}
	if err := r.doTimeout(ctx, r.s.timing.CommitTimeout, func(m wsman.Messages) error {
		_, err := m.AMT.TLSSettingData.Put(remote.InstanceID, req)
		return err
	}); err != nil {
		return r.j.Fail(ctx, step, fmt.Errorf("enabling TLS: %w", err))
	}
	r.j.OK(ctx, step, fmt.Sprintf("TLS certificate %s from amtd's CA installed (%s), TLS enabled on the network interface", subject.CommonName, certID))
	return nil
}

func selector(sels []publickey.SelectorResponse, name string) string {
	for _, s := range sels {
		if s.Name == name {
			return strings.TrimSpace(s.Text)
		}
	}
	return ""
}

func (r *run) certName() string {
	if r.hostname != "" {
		return r.hostname
	}
	return r.guid
}

// commit completes the setup (CommitChanges, step 7): the device leaves
// setup mode in admin control mode.
func (r *run) commit(ctx context.Context) error {
	const step = "legacy.commit"
	rv := -1
	err := r.doTimeout(ctx, r.s.timing.CommitTimeout, func(m wsman.Messages) error {
		resp, err := m.AMT.SetupAndConfigurationService.CommitChanges()
		if resp.Body.CommitChanges_OUTPUT.XMLName.Local != "" {
			rv = int(resp.Body.CommitChanges_OUTPUT.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("CommitChanges", rv)
	}
	if err != nil {
		return r.j.Fail(ctx, step, err)
	}
	r.j.OK(ctx, step, "setup committed: the device is in admin control mode")
	return nil
}
