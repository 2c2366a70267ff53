package provision

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/tls"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/devcreds"
)

// tls configures AMT's TLS server with a certificate issued by amtd's CA for
// a key the device generates (activation.md §10.7). tlsMode: 1 server auth,
// 2 server auth + non-TLS allowed, 3 mutual, 4 mutual + non-TLS.
func (c *configRun) tls(ctx context.Context) error {
	return c.tlsWithMode(ctx, *c.p.TLSMode)
}

// tlsWithMode is the TLS step for a given tlsMode (the AMT 19 ACM flow runs
// it with a default when the profile has none).
func (c *configRun) tlsWithMode(ctx context.Context, mode int) error {
	step := "tls"
	fail := func(msg string, err error) error {
		if err != nil {
			c.j.Fail(ctx, step, fmt.Errorf("%s: %w", msg, err))
		} else {
			c.j.FailText(ctx, step, msg)
		}
		c.res.TLS = msg
		c.res.Components.TLS = failed(msg)
		c.t.Progress("TLS configuration failed: " + msg)
		return errStatus(msg)
	}
	if mode < 1 || mode > 4 {
		return fail(fmt.Sprintf("invalid tlsMode %d", mode), nil)
	}
	if c.p.TLSSigningAuthority != nil && strings.EqualFold(*c.p.TLSSigningAuthority, "MicrosoftCA") {
		return fail("TLS signing authority MicrosoftCA needs an Enterprise Assistant, which amtd does not use", nil)
	}
	if c.e.cfg.CA == nil {
		return fail("no CA configured for TLS certificates", nil)
	}
	if _, err := c.addTrustedRoot(ctx, c.e.cfg.CA.RootDER()); err != nil {
		return fail("Failed to add trusted root certificate", err)
	}
	subject := amtTLSSubject(c.t.deviceName())
	cn := subject.CommonName
	var issued []byte
	certID, _, err := c.deviceCertificate(ctx, func(pub crypto.PublicKey) ([]byte, error) {
		return c.e.cfg.CA.SignPublicKey(pub, subject, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, 0)
	}, func(der []byte) error {
		// Durable before the device: the certificate amtd will pin.
		if _, err := devcreds.Stage(ctx, c.e.cfg.Secrets, c.t.GUID, devcreds.TLSCert, base64.StdEncoding.EncodeToString(der)); err != nil {
			return err
		}
		issued = der
		if c.t.TLSIssued != nil {
			c.t.TLSIssued(der)
		}
		return nil
	})
	if err != nil {
		return fail("Failed to create the TLS certificate", err)
	}
	contexts, err := c.tlsContexts(ctx)
	if err != nil {
		return fail("Failed to read TLS credential context", err)
	}
	if len(contexts) > 0 {
		err = c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.TLSCredentialContext.Put(certID)
			return err
		})
	} else {
		err = c.do(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.TLSCredentialContext.Create(certID)
			return err
		})
	}
	if err != nil {
		return fail("Failed to create TLS credential context", err)
	}
	if err := c.syncTime(ctx); err != nil {
		return fail("Failed to synchronize time", err)
	}
	settings, err := c.tlsSettings(ctx)
	if err != nil {
		return fail("Failed to read TLS setting data", err)
	}
	var remote, local *tls.SettingDataResponse
	for i := range settings {
		switch settings[i].InstanceID {
		case tlsRemoteInstance:
			remote = &settings[i]
		case tlsLocalInstance:
			local = &settings[i]
		}
	}
	if remote == nil {
		return fail("Failed to read TLS setting data", errors.New("no remote TLS setting instance"))
	}
	// Durable before the device: whether it may accept TLS only (tunnel.go).
	if err := c.e.stageTLSMode(ctx, c.t.GUID, mode); err != nil {
		return fail("Failed to save device information to Secret Provider", err)
	}
	req := tls.SettingDataRequest{ElementName: remote.ElementName, InstanceID: remote.InstanceID, Enabled: true,
		MutualAuthentication: mode == 3 || mode == 4, NonSecureConnectionsSupported: remote.NonSecureConnectionsSupported}
	if remote.NonSecureConnectionsSupported == nil || *remote.NonSecureConnectionsSupported {
		req.AcceptNonSecureConnections = mode == 2 || mode == 4
	}
	if err := c.doTLS(ctx, func(m wsman.Messages) error {
		_, err := m.AMT.TLSSettingData.Put(remote.InstanceID, req)
		return err
	}); err != nil {
		return fail("Failed to put remote TLS setting data", err)
	}
	if err := c.wait(ctx, c.e.timing.TLSPutDelay); err != nil {
		return err
	}
	if local != nil {
		lreq := tls.SettingDataRequest{ElementName: local.ElementName, InstanceID: local.InstanceID, Enabled: true,
			NonSecureConnectionsSupported: local.NonSecureConnectionsSupported}
		if err := c.doTLS(ctx, func(m wsman.Messages) error {
			_, err := m.AMT.TLSSettingData.Put(local.InstanceID, lreq)
			return err
		}); err != nil {
			return fail("Failed to put local TLS setting data", err)
		}
	}
	if err := c.commitChanges(ctx); err != nil {
		return fail("Failed to commit TLS changes", err)
	}
	if v := c.stagedTLSCert(ctx); v != "" {
		if _, err := devcreds.Commit(context.WithoutCancel(ctx), c.e.cfg.Secrets, c.t.GUID, devcreds.TLSCert, v); err != nil {
			return fail("Failed to save device information to Secret Provider", err)
		}
	}
	if err := c.e.commitTLSMode(ctx, c.t.GUID, mode); err != nil {
		return fail("Failed to save device information to Secret Provider", err)
	}
	c.j.OK(ctx, step, fmt.Sprintf("TLS mode %d with certificate %s (%s) from amtd's CA", mode, cn, certID))
	if c.t.TLSCommitted != nil {
		cl, err := c.t.TLSCommitted(ctx, issued, mode)
		if err != nil {
			msg := "Failed to establish TLS tunnel connection"
			var se *statusError
			if errors.As(err, &se) {
				msg = se.msg
			}
			return fail(msg, err)
		}
		if cl != nil {
			c.t.Client = cl
		}
	}
	c.res.TLS = "Configured"
	c.res.Components.TLS = ok("Configured")
	c.t.Progress("TLS configuration completed")
	return nil
}

func (c *configRun) stagedTLSCert(ctx context.Context) string {
	cr, err := devcreds.Load(ctx, c.e.cfg.Secrets, c.t.GUID)
	if err != nil {
		return ""
	}
	return cr.Pending(devcreds.TLSCert)
}

// syncTime sets AMT's clock to the server's (TLS needs a correct clock):
// GetLowAccuracyTimeSynch, then SetHighAccuracyTimeSynch(Ta0, Tm1, Tm2).
func (c *configRun) syncTime(ctx context.Context) error {
	return c.e.syncTime(ctx, c.t.Client)
}

func (e *Engine) syncTime(ctx context.Context, cl *amt.Client) error {
	var ta0 int64
	rv := -1
	err := e.do(ctx, cl, func(m wsman.Messages) error {
		r, err := m.AMT.TimeSynchronizationService.GetLowAccuracyTimeSynch()
		if r.Body.GetLowAccuracyTimeSynchResponse.XMLName.Local != "" {
			rv = int(r.Body.GetLowAccuracyTimeSynchResponse.ReturnValue)
			ta0 = r.Body.GetLowAccuracyTimeSynchResponse.Ta0
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("GetLowAccuracyTimeSynch", rv)
	}
	if err != nil {
		return err
	}
	tm1 := e.now().Unix()
	rv = -1
	err = e.do(ctx, cl, func(m wsman.Messages) error {
		tm2 := e.now().Unix()
		r, err := m.AMT.TimeSynchronizationService.SetHighAccuracyTimeSynch(ta0, tm1, tm2)
		if r.Body.SetHighAccuracyTimeSynchResponse.XMLName.Local != "" {
			rv = int(r.Body.SetHighAccuracyTimeSynchResponse.ReturnValue)
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("SetHighAccuracyTimeSynch", rv)
	}
	return err
}
