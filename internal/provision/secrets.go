package provision

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// Secret entries of configuration objects: the admin API keeps each object's
// secrets in one entry at secrets.ObjectKey(tenant, kind, row.SecretID).
const (
	KindProfile  = secrets.KindProfile
	KindDomain   = secrets.KindDomain
	KindCIRA     = secrets.KindCIRA
	KindWireless = secrets.KindWireless

	FieldAMTPassword   = secrets.FieldAMTPassword
	FieldMEBxPassword  = secrets.FieldMEBxPassword
	FieldMPSPassword   = secrets.FieldMPSPassword
	FieldPSKPassphrase = secrets.FieldPSKPassphrase
	FieldPFX           = secrets.FieldPFX
	FieldPFXPassword   = secrets.FieldPFXPassword
)

// DefaultSecretKey is the shared key scheme, secrets.ObjectKey.
func DefaultSecretKey(tenant, kind, id string) string { return secrets.ObjectKey(tenant, kind, id) }

// secretEntry reads the entry a configuration row points at; an empty
// SecretID or a missing entry yields an empty map.
func (e *Engine) secretEntry(ctx context.Context, tenant, kind, secretID string) (map[string]string, error) {
	if secretID == "" {
		return map[string]string{}, nil
	}
	m, err := e.cfg.Secrets.Get(ctx, e.cfg.SecretKey(tenant, kind, secretID))
	if errors.Is(err, secrets.ErrNotFound) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the secret store: %w", err)
	}
	if m == nil {
		m = map[string]string{}
	}
	return m, nil
}

// profilePasswords returns the AMT and (ACM) MEBx passwords a profile gives a
// device: its static passwords, or new random ones.
func (e *Engine) profileAMTPassword(ctx context.Context, p *store.Profile) (string, error) {
	if p.GenerateRandomPassword {
		return RandomPassword(e.cfg.Rand)
	}
	m, err := e.secretEntry(ctx, p.TenantID, KindProfile, p.SecretID)
	if err != nil {
		return "", err
	}
	if m[FieldAMTPassword] == "" {
		return "", fmt.Errorf("profile %s has no AMT password in the secret store", p.Name)
	}
	return m[FieldAMTPassword], nil
}

func (e *Engine) profileMEBxPassword(ctx context.Context, p *store.Profile) (string, error) {
	if p.GenerateRandomMEBxPassword {
		return RandomPassword(e.cfg.Rand)
	}
	m, err := e.secretEntry(ctx, p.TenantID, KindProfile, p.SecretID)
	if err != nil {
		return "", err
	}
	if m[FieldMEBxPassword] == "" {
		return "", fmt.Errorf("profile %s has no MEBx password in the secret store", p.Name)
	}
	return m[FieldMEBxPassword], nil
}

// decodeBlob decodes a binary value kept base64 in the secret store; a
// value that is not base64 is taken as is.
func decodeBlob(s string) []byte {
	t := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	if b, err := base64.StdEncoding.DecodeString(t); err == nil {
		return b
	}
	if b, err := base64.RawStdEncoding.DecodeString(t); err == nil {
		return b
	}
	return []byte(s)
}
