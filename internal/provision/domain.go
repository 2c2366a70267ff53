package provision

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/store"
)

// suffixCandidates lists a DNS suffix and its parents down to two labels:
// "a.b.corp.com" → a.b.corp.com, b.corp.com, corp.com (activation.md §2.8).
// A single-label suffix yields itself.
func suffixCandidates(suffix string) []string {
	s := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(suffix)), ".")
	if s == "" {
		return nil
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return []string{s}
	}
	var out []string
	for i := 0; i+2 <= len(labels); i++ {
		out = append(out, strings.Join(labels[i:], "."))
	}
	return out
}

// findDomain returns the tenant's domain for the device's DNS suffix or its
// closest parent (nil when none).
func (e *Engine) findDomain(ctx context.Context, tenant, suffix string) (*store.Domain, error) {
	for _, s := range suffixCandidates(suffix) {
		d, err := e.cfg.Store.GetDomainBySuffix(ctx, tenant, s)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return d, nil
	}
	return nil, nil
}

// provisioningCert is a domain's provisioning certificate ready for
// AddNextCertInChain and the AdminSetup signature.
type provisioningCert struct {
	chain [][]byte // DER, leaf → root
	key   crypto.Signer
	root  []byte
}

// loadProvisioningCert reads and checks a domain's PFX. It fails only when
// the certificate cannot be used at all (no key, no RSA leaf, no chain to a
// root); other findings are returned as warnings for the log, and the device
// has the last word.
func (e *Engine) loadProvisioningCert(ctx context.Context, d *store.Domain, deviceSuffix string) (*provisioningCert, []string, error) {
	m, err := e.secretEntry(ctx, d.TenantID, KindDomain, d.SecretID)
	if err != nil {
		return nil, nil, err
	}
	if m[FieldPFX] == "" {
		return nil, nil, fmt.Errorf("domain %s has no provisioning certificate in the secret store", d.Name)
	}
	rep := certs.CheckPFX(decodeBlob(m[FieldPFX]), m[FieldPFXPassword], deviceSuffix, e.now())
	var warnings []string
	for _, f := range rep.Errors {
		warnings = append(warnings, f.Message)
	}
	leaf, root := rep.Leaf(), rep.Root()
	switch {
	case rep.PrivateKey == nil || leaf == nil:
		return nil, warnings, errors.New("the provisioning certificate has no usable leaf and key")
	case root == nil:
		return nil, warnings, errors.New("the provisioning certificate chain does not reach a root")
	case rep.HasError(certs.CodeKeyMismatch):
		return nil, warnings, errors.New("the provisioning certificate's key does not match its leaf")
	}
	if _, ok := rep.PrivateKey.Public().(*rsa.PublicKey); !ok {
		return nil, warnings, errors.New("the provisioning certificate's key is not RSA")
	}
	return &provisioningCert{chain: certs.ChainDER(rep), key: rep.PrivateKey, root: root.Raw}, warnings, nil
}

// signNonces signs fwNonce ‖ mcNonce with SHA-256 and RSA PKCS#1 v1.5 using
// the provisioning leaf key (activation.md §5.6) and returns mcNonce and the
// signature, both base64.
func signNonces(rnd io.Reader, key crypto.Signer, fwNonce []byte) (mcNonceB64, sigB64 string, err error) {
	mc := make([]byte, 20)
	if _, err := io.ReadFull(rnd, mc); err != nil {
		return "", "", fmt.Errorf("generating a nonce: %w", err)
	}
	h := sha256.Sum256(append(append([]byte{}, fwNonce...), mc...))
	sig, err := key.Sign(rnd, h[:], crypto.SHA256)
	if err != nil {
		return "", "", fmt.Errorf("signing the nonce: %w", err)
	}
	return base64.StdEncoding.EncodeToString(mc), base64.StdEncoding.EncodeToString(sig), nil
}
