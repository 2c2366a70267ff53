package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// Results of provisioning log entries.
const (
	ResultOK      = "ok"
	ResultError   = "error"
	ResultSkipped = "skipped"
	ResultInfo    = "info"
)

// Journal writes one session's steps to a device's provisioning log (store
// events) and to the logger. Entries never contain secrets: details are
// written by the engine, and error texts are reduced by errorText.
type Journal struct {
	st      store.Store
	log     *slog.Logger
	now     func() time.Time
	GUID    string
	Tenant  string
	Session string
}

// NewJournal returns a journal for one session on one device. session may be
// empty (a random id is chosen).
func (e *Engine) NewJournal(guid, tenant, session string) *Journal {
	if session == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		session = hex.EncodeToString(b[:])
	}
	return &Journal{st: e.cfg.Store, log: e.log.With("uuid", guid, "session", session),
		now: e.now, GUID: guid, Tenant: tenant, Session: session}
}

func (j *Journal) add(ctx context.Context, step, result, detail string) {
	if j == nil {
		return
	}
	lvl := slog.LevelInfo
	if result == ResultError {
		lvl = slog.LevelWarn
	}
	j.log.Log(ctx, lvl, "provision: "+step, "result", result, "detail", detail)
	// The log must be written even when the session's context ended (a
	// dropped client is itself worth recording).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := j.st.AppendEvent(wctx, &store.ProvisioningEvent{
		GUID: j.GUID, TenantID: j.Tenant, Time: j.now().UTC(), Session: j.Session,
		Step: step, Result: result, Detail: detail,
	})
	if err != nil {
		j.log.Error("provision: writing the provisioning log", "err", err)
	}
}

// OK records a successful step.
func (j *Journal) OK(ctx context.Context, step, detail string) { j.add(ctx, step, ResultOK, detail) }

// Info records a fact.
func (j *Journal) Info(ctx context.Context, step, detail string) {
	j.add(ctx, step, ResultInfo, detail)
}

// Skipped records a step not needed.
func (j *Journal) Skipped(ctx context.Context, step, detail string) {
	j.add(ctx, step, ResultSkipped, detail)
}

// Fail records a failed step with the error's text and returns err.
func (j *Journal) Fail(ctx context.Context, step string, err error) error {
	j.add(ctx, step, ResultError, errorText(err))
	return err
}

// FailText records a failed step with a message.
func (j *Journal) FailText(ctx context.Context, step, msg string) { j.add(ctx, step, ResultError, msg) }

// errorText is a short, secret-free description of an error for logs and
// client messages. Library errors for HTTP statuses carry the device's HTML
// page; only the status line is kept.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	const lib = "wsman.Client post received: "
	if i := strings.Index(s, lib); i >= 0 {
		rest := s[i+len(lib):]
		if j := strings.IndexByte(rest, '\n'); j >= 0 {
			rest = rest[:j] // the device's HTML page is dropped
		}
		if strings.HasPrefix(rest, "401") {
			rest = "Unable to authenticate with AMT"
		} else {
			rest = "device answered HTTP " + rest
		}
		s = s[:i] + rest
	}
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// isUnauthorized reports whether err is the device refusing the credentials.
func isUnauthorized(err error) bool {
	return err != nil && strings.Contains(err.Error(), "wsman.Client post received: 401")
}
