package server

import (
	"context"
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/legacy/hello"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

// provCert is a domain's provisioning certificate usable for PKI remote
// configuration of one device.
type provCert struct {
	domain  string   // domain (profile) name
	suffix  string   // the domain's DNS suffix
	chain   [][]byte // DER, leaf → root
	key     crypto.Signer
	leafCN  string
	matched hello.HashEntry // the device's hash entry the root matched
}

// ErrNoCertificate: no provisioning certificate of amtd fits the hello.
var ErrNoCertificate = errors.New("no matching provisioning certificate")

// rootMatches reports whether the root certificate's fingerprint of the
// entry's algorithm equals the entry (legacy.md §5 step 6).
func rootMatches(rootDER []byte, e hello.HashEntry) bool {
	fp := certs.FingerprintsOf(rootDER)
	var want string
	switch e.Type {
	case hello.HashSHA1:
		want = fp.SHA1
	case hello.HashSHA256:
		want = fp.SHA256
	case hello.HashSHA384:
		want = fp.SHA384
	default:
		return false
	}
	return strings.EqualFold(want, e.Hex())
}

// selectCertificate finds the tenant's provisioning certificate for a PKI
// hello: its root's hash must be among the hello's hashes, its key must be an
// RSA key matching the leaf, and, when the device's domain is known (the
// allow-list entry), the leaf's CN must fit it (certs.DomainMatches, the
// device's own rule, legacy.md §10 item 4). A domain whose suffix equals the
// device's domain is preferred; otherwise domains are tried by name. The
// error explains a refusal (wrapping ErrNoCertificate).
func (s *Server) selectCertificate(ctx context.Context, tenant, deviceDomain string, hashes []hello.HashEntry) (*provCert, error) {
	var domains []store.Domain
	for p := (store.Page{Top: 100}); ; p.Skip += p.Top {
		page, err := s.cfg.Store.ListDomains(ctx, tenant, p)
		if err != nil {
			return nil, fmt.Errorf("listing domains: %w", err)
		}
		domains = append(domains, page...)
		if len(page) < p.Top {
			break
		}
	}
	if len(domains) == 0 {
		return nil, fmt.Errorf("%w: amtd has no domain (provisioning certificate) for this tenant", ErrNoCertificate)
	}
	if deviceDomain != "" {
		slices.SortStableFunc(domains, func(a, b store.Domain) int {
			ea, eb := strings.EqualFold(a.DomainSuffix, deviceDomain), strings.EqualFold(b.DomainSuffix, deviceDomain)
			switch {
			case ea && !eb:
				return -1
			case eb && !ea:
				return 1
			}
			return 0
		})
	}
	var rootOK []string // CNs of certificates whose root matched but whose CN does not fit
	var unusable []string
	for i := range domains {
		d := &domains[i]
		pc, why, err := s.loadCert(ctx, d)
		if err != nil {
			return nil, err
		}
		if pc == nil {
			unusable = append(unusable, fmt.Sprintf("%s (%s)", d.Name, why))
			continue
		}
		root := pc.chain[len(pc.chain)-1]
		idx := slices.IndexFunc(hashes, func(e hello.HashEntry) bool { return rootMatches(root, e) })
		if idx < 0 {
			continue
		}
		pc.matched = hashes[idx]
		if deviceDomain != "" && !certs.DomainMatches(pc.leafCN, deviceDomain) {
			rootOK = append(rootOK, fmt.Sprintf("%s (CN %s)", d.Name, pc.leafCN))
			continue
		}
		return pc, nil
	}
	switch {
	case len(rootOK) > 0:
		return nil, fmt.Errorf("%w: the device trusts the root of %s, but its CN does not fit the device's domain %s",
			ErrNoCertificate, strings.Join(rootOK, ", "), deviceDomain)
	case len(unusable) == len(domains):
		return nil, fmt.Errorf("%w: no domain certificate is usable: %s", ErrNoCertificate, strings.Join(unusable, "; "))
	}
	return nil, fmt.Errorf("%w: the device's %d trusted root hashes match none of amtd's %d domain certificates (add the root hash to the device: MEBx or setup.bin)",
		ErrNoCertificate, len(hashes), len(domains)-len(unusable))
}

// loadCert reads and checks a domain's PFX. A certificate that cannot be
// used at all yields nil and the reason; the store failing yields an error.
func (s *Server) loadCert(ctx context.Context, d *store.Domain) (*provCert, string, error) {
	if d.SecretID == "" {
		return nil, "no certificate stored", nil
	}
	m, err := s.cfg.Secrets.Get(ctx, provision.DefaultSecretKey(d.TenantID, provision.KindDomain, d.SecretID))
	if errors.Is(err, secrets.ErrNotFound) {
		return nil, "its certificate is missing from the secret store", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("reading domain %s from the secret store: %w", d.Name, err)
	}
	pfx := decodeBlob(m[provision.FieldPFX])
	if len(pfx) == 0 {
		return nil, "no certificate stored", nil
	}
	rep := certs.CheckPFX(pfx, m[provision.FieldPFXPassword], "", s.now())
	leaf, root := rep.Leaf(), rep.Root()
	switch {
	case rep.PrivateKey == nil || leaf == nil:
		return nil, "no usable leaf and key", nil
	case root == nil:
		return nil, "the chain does not reach a root", nil
	case rep.HasError(certs.CodeKeyMismatch):
		return nil, "the key does not match the leaf", nil
	case rep.HasError(certs.CodeExpired) || rep.HasError(certs.CodeNotYetValid):
		return nil, "outside its validity period", nil
	}
	if _, ok := rep.PrivateKey.Public().(*rsa.PublicKey); !ok {
		return nil, "the key is not RSA", nil
	}
	return &provCert{domain: d.Name, suffix: d.DomainSuffix, chain: certs.ChainDER(rep), key: rep.PrivateKey,
		leafCN: leaf.Subject.CommonName}, "", nil
}

// decodeBlob decodes a value kept base64 in the secret store (line breaks
// allowed); a value that is not base64 is taken as is.
func decodeBlob(s string) []byte {
	t := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(t); err == nil {
			return b
		}
	}
	return []byte(s)
}
