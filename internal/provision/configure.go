package provision

import (
	"context"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/general"

	"github.com/amtd-project/amtd/internal/amt"
	"github.com/amtd-project/amtd/internal/store"
)

// Target is an activated device to configure: a client authenticated as
// admin, and what the configuration needs to know about the device. Any
// path to the device will do (the rpc-go relay, a direct connection, legacy
// PKI provisioning).
type Target struct {
	Client      *amt.Client
	GUID        string
	TenantID    string
	Hostname    string // the device's host name (TLS certificate name)
	DNSSuffix   string
	ControlMode int  // 1 CCM, 2 ACM
	TLSEnforced bool // AMT 19+ TLS-enforced: Ethernet Puts are skipped
	// KeepTLS: the unconfiguration leaves the device's TLS settings and
	// TLS credential context in place (the client reaches the device over
	// TLS, whose configuration the session must not cut under itself).
	// TLS-enforced devices always keep theirs.
	KeepTLS bool
	// TLSConfigured: TLS was configured earlier in the session; the TLS
	// step is not repeated (and the unconfiguration keeps it).
	TLSConfigured bool
	// TLSIssued, when set, learns the certificate the TLS step issued,
	// once it is durable and before the device gets it.
	TLSIssued func(der []byte)
	// TLSCommitted, when set, runs after the TLS step committed a new TLS
	// configuration with that certificate and tlsMode: the path to the
	// device may change with it (a port switch to 16993, a new pinned TLS
	// session). It returns the client to continue with (nil: Client).
	TLSCommitted func(ctx context.Context, cert []byte, mode int) (*amt.Client, error)
	// General is AMT_GeneralSettings if already read (nil: read it).
	General *general.GeneralSettingsResponse
	// Wait pauses for firmware delays (nil: a plain timer).
	Wait func(ctx context.Context, d time.Duration) error
	// Progress reports a step to the operator (nil: none).
	Progress func(label string)
	// Journal records the steps (nil: a new journal for the device).
	Journal *Journal
}

// ConfigureOutcome is the end of a configuration run.
type ConfigureOutcome struct {
	// MPSUsername is the CIRA user name given to the device ("" without CIRA).
	MPSUsername string
	// Err is the first failure that fails the run (nil on success).
	// Features (redirection, user consent) failures are only logged.
	Err error
}

// Configure brings an activated device to the state a profile describes
// (activation.md §10): unconfiguration to a known state, general network
// settings, wired, wireless, proxies, features, the power package and the
// additional AMT users (amtd extensions, useracl.go), then TLS or CIRA. Every step
// is recorded in t.Journal and summarised in the returned Result.
func (e *Engine) Configure(ctx context.Context, t *Target, p *store.Profile) (*Result, ConfigureOutcome) {
	res := newResult()
	res.Components.Activation = ok("")
	out := e.configure(ctx, t, p, res)
	return res, out
}

func (e *Engine) configure(ctx context.Context, t *Target, p *store.Profile, res *Result) ConfigureOutcome {
	if t.Journal == nil {
		t.Journal = e.NewJournal(t.GUID, t.TenantID, "")
	}
	if t.Wait == nil {
		t.Wait = timerWait
	}
	if t.Progress == nil {
		t.Progress = func(string) {}
	}
	c := &configRun{e: e, t: t, p: p, res: res, j: t.Journal}
	return c.run(ctx)
}

func timerWait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// configRun is one configuration run.
type configRun struct {
	e   *Engine
	t   *Target
	p   *store.Profile
	res *Result
	j   *Journal

	wired    *ethernetSettings
	wireless *ethernetSettings
	mpsUser  string
	err      error // first failure
}

func (c *configRun) do(ctx context.Context, fn func(m wsman.Messages) error) error {
	return c.e.do(ctx, c.t.Client, fn)
}

func (c *configRun) doTLS(ctx context.Context, fn func(m wsman.Messages) error) error {
	return c.e.doTLS(ctx, c.t.Client, fn)
}

func (c *configRun) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	return c.t.Wait(ctx, d)
}

// failStep records a failure that fails the run (the first one is reported).
func (c *configRun) failStep(err error) {
	if c.err == nil {
		c.err = err
	}
	c.res.Failed = true
}

func (c *configRun) run(ctx context.Context) ConfigureOutcome {
	if c.t.General == nil {
		g, err := c.e.getGeneral(ctx, c.t.Client)
		if err != nil {
			c.j.Fail(ctx, "configure.start", err)
			return ConfigureOutcome{Err: err}
		}
		c.t.General = &g
	}
	if err := c.unconfigure(ctx); err != nil {
		c.res.addNetwork("Unconfiguration failed: " + statusText(err))
		return ConfigureOutcome{Err: err}
	}
	c.t.Progress("Configuring network settings")
	if err := c.network(ctx); err != nil {
		c.failStep(err)
	}
	if ctx.Err() == nil {
		if err := c.proxies(ctx); err != nil {
			c.failStep(err)
		}
	}
	if ctx.Err() == nil {
		c.features(ctx) // failures are logged only (activation.md §10)
	}
	if ctx.Err() == nil {
		if err := c.powerPolicy(ctx); err != nil {
			c.failStep(err)
		}
	}
	if ctx.Err() == nil {
		if err := c.userACLs(ctx); err != nil {
			c.failStep(err)
		}
	}
	switch {
	case ctx.Err() != nil:
	case c.t.TLSConfigured:
		c.j.Skipped(ctx, "tls", "TLS was configured earlier in this session")
	case c.p.TLSMode != nil:
		if err := c.tls(ctx); err != nil {
			c.failStep(err)
		}
	}
	if ctx.Err() == nil && c.p.CIRAConfigName != nil && *c.p.CIRAConfigName != "" {
		if err := c.cira(ctx); err != nil {
			c.failStep(err)
		}
	}
	if c.err == nil && ctx.Err() != nil {
		c.err = ctx.Err()
	}
	return ConfigureOutcome{MPSUsername: c.mpsUser, Err: c.err}
}
