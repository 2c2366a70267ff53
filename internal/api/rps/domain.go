package rps

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/store"
)

// domainJSON is a domain on the wire (admin-api.md §4). The certificate and
// its password are write-only.
//
// CertificateCheck is amtd's addition, present only in the answers of a
// create or update that supplied a certificate: the certificate doctor's
// warnings and whether the root is one of AMT's default trusted roots.
type domainJSON struct {
	ProfileName      string         `json:"profileName"`
	DomainSuffix     string         `json:"domainSuffix"`
	StorageFormat    string         `json:"provisioningCertStorageFormat"`
	ExpirationDate   string         `json:"expirationDate"`
	TenantID         string         `json:"tenantId"`
	Version          string         `json:"version"`
	CertificateCheck *certCheckJSON `json:"certificateCheck,omitempty"`
}

// certCheckJSON summarises a certs.Report for the client.
type certCheckJSON struct {
	// RootSHA256 is the hex SHA-256 of the chain's root certificate.
	RootSHA256 string `json:"rootCertificateSha256"`
	// AMTDefaultRoot is the AMT default trusted-root entry the root
	// matches, or null: then the root's hash must be added to each device
	// (MEBx or USB setup) before ACM activation.
	AMTDefaultRoot *defaultRootJSON `json:"amtDefaultRoot"`
	// Warnings are the doctor's non-fatal findings.
	Warnings []certs.Finding `json:"warnings"`
}

type defaultRootJSON struct {
	Name  string `json:"name"`
	Index int    `json:"index,omitempty"`
}

func domainOut(d *store.Domain) domainJSON {
	exp := ""
	if !d.ExpirationDate.IsZero() {
		exp = isoTime(d.ExpirationDate)
	}
	return domainJSON{ProfileName: d.Name, DomainSuffix: d.DomainSuffix, StorageFormat: d.StorageFormat,
		ExpirationDate: exp, TenantID: d.TenantID, Version: versionString(d.Version)}
}

func certCheckOut(rep *certs.Report) *certCheckJSON {
	out := &certCheckJSON{RootSHA256: rep.RootFingerprints.SHA256, Warnings: rep.Warnings}
	if out.Warnings == nil {
		out.Warnings = []certs.Finding{}
	}
	if e := rep.DefaultHash; e != nil {
		out.AMTDefaultRoot = &defaultRootJSON{Name: e.Name, Index: e.Index}
	}
	return out
}

var reDomainName = reConfigName

// decodePFX decodes the base64 PFX of a request (standard or URL alphabet,
// line breaks allowed). Undecodable text yields nil, which the doctor
// reports as not PKCS#12.
func decodePFX(s string) []byte {
	clean := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(clean); err == nil {
			return b
		}
	}
	return nil
}

// checkCert runs the doctor; msg is the first error's message ("" when the
// certificate is usable).
func (h *handlers) checkCert(pfxB64, password, suffix string) (rep *certs.Report, msg string) {
	pfx := decodePFX(pfxB64)
	if pfx == nil {
		return nil, certs.MsgDecrypt
	}
	rep = h.opts.CheckPFX(pfx, password, suffix, h.now())
	if f, bad := rep.FirstError(); bad {
		return rep, f.Message
	}
	return rep, ""
}

// certError is the validation answer for a rejected certificate (the value
// is redacted: a PFX is a secret).
func certError(msg string) valid.Errors {
	return valid.Errors{{Value: valid.Redacted, HasValue: true, Msg: msg, Path: "provisioningCert", Location: valid.LocBody}}
}

var domainFields = []string{"profileName", "domainSuffix", "provisioningCert", "provisioningCertStorageFormat", "provisioningCertPassword"}

func (h *handlers) listDomains(w http.ResponseWriter, r *http.Request) {
	listObjects(w, r, h.st.ListDomains, h.st.CountDomains, domainOut)
}

func (h *handlers) getDomain(w http.ResponseWriter, r *http.Request) {
	getObject(w, r, "domainName", typeDomain, h.st.GetDomain, domainOut)
}

func (h *handlers) createDomain(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	var rep *certs.Report
	v := valid.New()
	v.Body(body, "profileName").NotEmpty("AMT Domain profile name is required").
		Matches(reDomainName.MatchString, "AMT Domain profile name accepts letters, numbers, hyphens (-), and underscores (_)")
	v.Body(body, "provisioningCertPassword").Redact().NotEmpty("Provisioning Cert Password is required").
		IsLength(0, 64, "Password should not exceed 64 characters in length")
	v.Body(body, "domainSuffix").NotEmpty("Domain suffix name is required")
	v.Body(body, "provisioningCert").Redact().NotEmpty("Provisioning certificate is required").
		Custom(func(val any) string {
			cert, pw := valid.String(val), str(body, "provisioningCertPassword")
			if cert == "" || pw == "" {
				return ""
			}
			var msg string
			rep, msg = h.checkCert(cert, pw, str(body, "domainSuffix"))
			return msg
		})
	v.Body(body, "provisioningCertStorageFormat").NotEmpty("Provisioning Cert Storage Format is required").
		IsIn([]any{"raw", "string"}, "Provisioning Cert Storage Format should be either 'raw' or 'string'")
	scalarCheck(v, body, domainFields...)
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	d := &store.Domain{
		TenantID:       tenant,
		Name:           str(body, "profileName"),
		DomainSuffix:   str(body, "domainSuffix"),
		StorageFormat:  str(body, "provisioningCertStorageFormat"),
		ExpirationDate: rep.ExpirationDate,
	}
	data := map[string]string{fieldCert: str(body, "provisioningCert"), fieldCertPassword: str(body, "provisioningCertPassword")}
	err := h.createWithSecret(ctx, tenant, kindDomain, data, func(id string) error {
		d.SecretID = id
		return h.st.CreateDomain(ctx, d)
	})
	switch {
	case errors.Is(err, store.ErrDuplicate):
		badRequest(w, r, "Unique key violation", "Domain "+d.Name+" ID or Suffix already exists")
	case err != nil:
		opFailed(w, r, d.Name, err)
	default:
		logChange(r, "created domain", kindDomain, d.Name)
		out := domainOut(d)
		out.CertificateCheck = certCheckOut(rep)
		api.WriteJSON(w, r, http.StatusCreated, out)
	}
}

func (h *handlers) updateDomain(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	v.Body(body, "profileName").NotEmpty("AMT Domain profile name is required").
		Matches(reDomainName.MatchString, "AMT Domain profile name accepts letters, numbers, hyphens (-), and underscores (_)")
	v.Body(body, "provisioningCertStorageFormat").
		IsIn([]any{"raw", "string"}, `Provisioning Cert Storage Format is either "raw" or "string"`)
	v.Body(body, "provisioningCertPassword").Redact().IsLength(0, 64, "Password should not exceed 64 characters in length")
	scalarCheck(v, body, domainFields...)
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := str(body, "profileName")
	cur, err := h.st.GetDomain(ctx, tenant, name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeDomain, name)
		return
	case err != nil:
		opFailed(w, r, name, err)
		return
	}
	claimed, ifMatch := requestVersion(r, body)
	if !versionMatches(claimed, cur.Version) {
		conflict(w, r, ifMatch, cur.Version, domainOut(cur))
		return
	}
	next := *cur
	if has(body, "domainSuffix") && str(body, "domainSuffix") != "" {
		next.DomainSuffix = str(body, "domainSuffix")
	}
	next.StorageFormat = str(body, "provisioningCertStorageFormat")

	// A new certificate or a new password: check the resulting pair with
	// the doctor (RPS does not check on update; amtd does).
	newCert, newPw := str(body, "provisioningCert"), str(body, "provisioningCertPassword")
	var rep *certs.Report
	var data map[string]string
	changed := newCert != "" || newPw != ""
	if changed {
		old, err := h.readSecret(ctx, tenant, kindDomain, cur.SecretID)
		if err != nil {
			opFailed(w, r, name, err)
			return
		}
		cert, pw := newCert, newPw
		if cert == "" {
			cert = old[fieldCert]
		}
		if pw == "" {
			pw = old[fieldCertPassword]
		}
		var msg string
		rep, msg = h.checkCert(cert, pw, next.DomainSuffix)
		if msg != "" {
			validationFailed(w, r, certError(msg))
			return
		}
		next.ExpirationDate = rep.ExpirationDate
		data = map[string]string{fieldCert: cert, fieldCertPassword: pw}
		changed = !sameSecret(data, old)
	}
	err = h.updateWithSecret(ctx, tenant, kindDomain, cur.SecretID, changed, data, func(id string) error {
		next.SecretID = id
		return h.st.UpdateDomain(ctx, &next)
	})
	if errors.Is(err, store.ErrDuplicate) {
		badRequest(w, r, "Unique key violation", "Domain "+name+" ID or Suffix already exists")
		return
	}
	if h.updateFailed(w, r, err, ifMatch, typeDomain, name, func() (any, int64, error) {
		d, err := h.st.GetDomain(ctx, tenant, name)
		if err != nil {
			return nil, 0, err
		}
		return domainOut(d), d.Version, nil
	}) {
		return
	}
	logChange(r, "updated domain", kindDomain, next.Name)
	out := domainOut(&next)
	if rep != nil {
		out.CertificateCheck = certCheckOut(rep)
	}
	api.WriteJSON(w, r, http.StatusOK, out)
}

func (h *handlers) deleteDomain(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tenant := api.Tenant(ctx)
	name := r.PathValue("domainName")
	cur, err := h.st.GetDomain(ctx, tenant, name)
	if err == nil {
		err = h.st.DeleteDomain(ctx, tenant, name)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		notFound(w, r, typeDomain, name)
	case err != nil:
		opFailed(w, r, name, err)
	default:
		h.dropSecret(ctx, tenant, kindDomain, cur.SecretID)
		logChange(r, "deleted domain", kindDomain, cur.Name)
		api.NoContent(w)
	}
}
