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

// Secret-store fields the engine reads from configuration objects. A row's
// SecretID is the full secret-store key of its entry (store.Profile.SecretID
// etc.); these are the field names inside the entry, RPS's Vault field names.
const (
	// FieldAMTPassword: profile entry, the static AMT admin password.
	FieldAMTPassword = "AMT_PASSWORD"
	// FieldMEBxPassword: profile entry, the static MEBx password.
	FieldMEBxPassword = "MEBX_PASSWORD"
	// FieldMPSPassword: CIRA config entry, the MPS password given to every
	// device (absent: a random one per device).
	FieldMPSPassword = "MPS_PASSWORD"
	// FieldPSKPassphrase: wireless config entry, the WPA/WPA2 passphrase.
	FieldPSKPassphrase = "PSK_PASSPHRASE"
	// FieldPFX: domain entry, the provisioning certificate as base64 PKCS#12.
	FieldPFX = "CERT"
	// FieldPFXPassword: domain entry, the PKCS#12 password.
	FieldPFXPassword = "CERT_PASSWORD"
)

// secretEntry reads the entry a configuration row points at; an empty
// SecretID or a missing entry yields an empty map.
func (e *Engine) secretEntry(ctx context.Context, secretID string) (map[string]string, error) {
	if secretID == "" {
		return map[string]string{}, nil
	}
	m, err := e.cfg.Secrets.Get(ctx, secretID)
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
	m, err := e.secretEntry(ctx, p.SecretID)
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
	m, err := e.secretEntry(ctx, p.SecretID)
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
