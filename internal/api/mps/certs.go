package mps

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/setupandconfiguration"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/api/valid"
	"github.com/amtd-project/amtd/internal/devcreds"
	"github.com/amtd-project/amtd/internal/store"
)

const certsExc = "Exception during AMT Certificates request"

// securitySettings is the GET /amt/certificates answer under construction.
type securitySettings struct {
	certs        []*xmljs.Object // publicKeyCertificateItems
	keys         []*xmljs.Object // publicPrivateKeyPairItems
	associations []*xmljs.Object // profileAssociation
}

var cnRe = regexp.MustCompile(`CN=([^,]+)`)

// readSecuritySettings reads certificates, keys and their profile
// associations (four enumerations) and builds MPS's view of them.
func (c *devCall) readSecuritySettings() (*securitySettings, error) {
	deps, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.ConcreteDependency.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.ConcreteDependency.Pull(ec) })
	if err != nil {
		return nil, err
	}
	certs, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.AMT.PublicKeyCertificate.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.AMT.PublicKeyCertificate.Pull(ec) })
	if err != nil {
		return nil, err
	}
	keys, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.AMT.PublicPrivateKeyPair.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.AMT.PublicPrivateKeyPair.Pull(ec) })
	if err != nil {
		return nil, err
	}
	ctxs, err := c.enumPull(
		func(m wsman.Messages) (any, error) { return m.CIM.CredentialContext.Enumerate() },
		func(m wsman.Messages, ec string) (any, error) { return m.CIM.CredentialContext.Pull(ec) })
	if err != nil {
		return nil, err
	}
	s := &securitySettings{}
	for _, it := range itemsOf(certs, "AMT_PublicKeyCertificate") {
		subject := xmljs.Text(xmljs.Path(it, "Subject"))
		display := xmljs.Path(it, "InstanceID")
		if m := cnRe.FindStringSubmatch(subject); m != nil && m[1] != "" {
			display = m[1]
		}
		s.certs = append(s.certs, xmljs.NewObject().
			Set("elementName", xmljs.Path(it, "ElementName")).
			Set("instanceID", xmljs.Path(it, "InstanceID")).
			Set("x509Certificate", xmljs.Path(it, "X509Certificate")).
			Set("trustedRootCertificate", xmljs.Path(it, "TrustedRootCertficate")). // sic, AMT's spelling
			Set("issuer", xmljs.Path(it, "Issuer")).
			Set("subject", xmljs.Path(it, "Subject")).
			Set("readOnlyCertificate", xmljs.Path(it, "ReadOnlyCertificate")).
			Set("publicKeyHandle", xmljs.Path(it, "PublicKeyHandle")).
			Set("associatedProfiles", []any{}).
			Set("displayName", display))
	}
	for _, it := range itemsOf(keys, "AMT_PublicPrivateKeyPair") {
		s.keys = append(s.keys, xmljs.NewObject().
			Set("elementName", xmljs.Path(it, "ElementName")).
			Set("instanceID", xmljs.Path(it, "InstanceID")).
			Set("derKey", xmljs.Path(it, "DERKey")))
	}
	depItems := itemsOf(deps, "CIM_ConcreteDependency")
	for _, kind := range []struct{ element, typ string }{
		{"AMT_TLSCredentialContext", "TLS"},
		{"AMT_8021XCredentialContext", "Wireless"},
		{"AMT_8021XWiredCredentialContext", "Wired"},
	} {
		for _, it := range itemsOf(ctxs, kind.element) {
			s.associate(it, kind.typ, depItems)
		}
	}
	return s, nil
}

func selectorOf(ref any) any {
	return xmljs.Path(ref, "ReferenceParameters", "SelectorSet", "Selector")
}

func (s *securitySettings) cert(id string) *xmljs.Object {
	for _, c := range s.certs {
		if xmljs.Text(c.Get("instanceID")) == id {
			return c
		}
	}
	return nil
}

func (s *securitySettings) key(id string) *xmljs.Object {
	for _, k := range s.keys {
		if xmljs.Text(k.Get("instanceID")) == id {
			return k
		}
	}
	return nil
}

// associate records one credential context: the certificate in context,
// the profile providing it, and (for a client certificate) its key pair.
func (s *securitySettings) associate(ctx any, typ string, deps []any) {
	profile := strings.TrimPrefix(xmljs.Text(selectorOf(xmljs.Path(ctx, "ElementProvidingContext"))), "Intel(r) AMT:IEEE 802.1x Settings ")
	handle := xmljs.Text(selectorOf(xmljs.Path(ctx, "ElementInContext")))
	if handle == "" {
		return
	}
	var assoc *xmljs.Object
	for _, a := range s.associations {
		if xmljs.Text(a.Get("profileID")) == profile {
			assoc = a
		}
	}
	if assoc == nil {
		assoc = xmljs.NewObject().Set("type", typ).Set("profileID", profile)
		s.associations = append(s.associations, assoc)
	}
	cert := s.cert(handle)
	if cert == nil {
		return
	}
	if xmljs.Bool(cert.Get("trustedRootCertificate")) {
		assoc.Set("rootCertificate", cert)
	} else {
		assoc.Set("clientCertificate", cert)
		for _, d := range deps {
			if xmljs.Text(selectorOf(xmljs.Path(d, "Antecedent"))) != handle {
				continue
			}
			for _, sel := range xmljs.List(selectorOf(xmljs.Path(d, "Dependent"))) {
				if k := s.key(xmljs.Text(sel)); k != nil {
					assoc.Set("publicKey", k)
					k.Set("certificateHandle", handle)
					cert.Set("publicKeyHandle", k.Get("instanceID"))
				}
			}
		}
	}
	text := typ
	if typ == "Wireless" {
		text = typ + " - " + profile
	}
	cert.Set("associatedProfiles", append(cert.Get("associatedProfiles").([]any), text))
}

func (s *securitySettings) json() *xmljs.Object {
	certs := make([]any, len(s.certs))
	for i, c := range s.certs {
		certs[i] = c
	}
	keys := make([]any, len(s.keys))
	for i, k := range s.keys {
		keys[i] = k
	}
	assocs := make([]any, len(s.associations))
	for i, a := range s.associations {
		assocs[i] = a
	}
	return xmljs.NewObject().
		Set("certificates", xmljs.NewObject().Set("keyManagementItems", []any{}).Set("publicKeyCertificateItems", certs)).
		Set("publicKeys", xmljs.NewObject().Set("publicPrivateKeyPairItems", keys)).
		Set("profileAssociation", assocs)
}

func (h *handlers) getCertificates(w http.ResponseWriter, r *http.Request) {
	c, ok := h.connect(w, r, certsExc)
	if !ok {
		return
	}
	defer c.close()
	s, err := c.readSecuritySettings()
	if err != nil {
		c.fail(err, certsExc)
		return
	}
	c.json(s.json())
}

// parseCertInput is MPS's certificate check: base64 of DER, or base64 of a
// PEM text. It returns the DER bytes or the validation message.
func parseCertInput(in string, now time.Time) ([]byte, string) {
	data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(in))
	if err != nil {
		return nil, "Invalid certificate format (not valid DER or PEM)"
	}
	cert, err := x509.ParseCertificate(data)
	if err != nil {
		if !bytes.Contains(data, []byte("-----BEGIN CERTIFICATE-----")) {
			return nil, "Invalid certificate format (not valid DER or PEM)"
		}
		blk, _ := pem.Decode(data)
		if blk == nil {
			return nil, "Invalid certificate format (not valid DER or PEM)"
		}
		if cert, err = x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, "Invalid certificate format (not valid DER or PEM)"
		}
	}
	if cert.NotAfter.Before(now) {
		return nil, "Certificate has expired"
	}
	return cert.Raw, ""
}

func (h *handlers) addCertificate(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	v := valid.New()
	var der []byte
	v.Body(body, "cert").NotEmpty("Certificate is required").Custom(func(x any) string {
		d, msg := parseCertInput(valid.String(x), h.srv.Now())
		der = d
		return msg
	})
	v.Body(body, "isTrusted").IsBoolean("isTrusted must be a boolean value")
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	trusted := toBoolean(body["isTrusted"])
	c, ok := h.connect(w, r, certsExc)
	if !ok {
		return
	}
	defer c.close()
	blob := base64.StdEncoding.EncodeToString(der)
	var env *xmljs.Object
	var err error
	output := "AddCertificate_OUTPUT"
	if trusted {
		output = "AddTrustedRootCertificate_OUTPUT"
		env, err = c.envelope(func(m wsman.Messages) (any, error) {
			return m.AMT.PublicKeyManagementService.AddTrustedRootCertificate(blob)
		})
	} else {
		env, err = c.envelope(func(m wsman.Messages) (any, error) {
			return m.AMT.PublicKeyManagementService.AddCertificate(blob)
		})
	}
	if err != nil {
		c.fail(err, certsExc)
		return
	}
	out := xmljs.Path(env, "Body", output)
	if rv, _ := xmljs.Int(xmljs.Path(out, "ReturnValue")); rv != 0 {
		badRequest(w, r, "Failed to add certificate: "+statusName(rv))
		return
	}
	c.json(xmljs.NewObject().Set("handle", selectorOf(xmljs.Path(out, "CreatedCertificate"))))
}

func (h *handlers) deleteCertificate(w http.ResponseWriter, r *http.Request) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	instanceID := r.PathValue("instanceId")
	v := valid.New()
	v.Field(valid.LocParams, "instanceId", instanceID, instanceID != "").Optional().Custom(mustString("instanceId must be a string"))
	v.Body(body, "handle").Optional().Custom(mustString("handle must be a string"))
	handle, _ := body["handle"].(string)
	if instanceID == "" && handle == "" {
		v.Add(valid.FieldError{Value: nil, HasValue: false, Msg: "At least one of instanceId or handle must be provided", Path: "instanceId", Location: valid.LocParams})
	}
	if v.Failed() {
		validationFailed(w, r, v.Errors())
		return
	}
	if instanceID != "" {
		handle = instanceID
	}
	c, ok := h.connect(w, r, certsExc)
	if !ok {
		return
	}
	defer c.close()
	s, err := c.readSecuritySettings()
	if err != nil {
		c.fail(err, certsExc)
		return
	}
	cert := s.cert(handle)
	switch {
	case cert == nil:
		writeErr(w, r, http.StatusNotFound, msgNotFound, "Certificate with handle '"+handle+"' not found")
		return
	case xmljs.Bool(cert.Get("readOnlyCertificate")):
		badRequest(w, r, "Cannot delete certificate: Certificate is read-only and cannot be removed")
		return
	case len(xmljs.List(cert.Get("associatedProfiles"))) > 0:
		api.WriteJSON(w, r, http.StatusConflict, map[string]string{
			"errorDescription": "Cannot delete certificate: Certificate is currently referenced by AMT profiles/configurations"})
		return
	}
	if _, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.AMT.PublicKeyCertificate.Delete(xmlText(handle))
	}); err != nil {
		c.fail(err, certsExc)
		return
	}
	c.json(xmljs.NewObject().Set("message", "Certificate deleted successfully").Set("handle", handle))
}

// ---- deactivation ----

func (h *handlers) deactivate(w http.ResponseWriter, r *http.Request) {
	const exc = "Exception during unprovision request"
	c, ok := h.connect(w, r, exc)
	if !ok {
		return
	}
	defer c.close()
	env, err := c.envelope(func(m wsman.Messages) (any, error) {
		return m.AMT.SetupAndConfigurationService.Unprovision(setupandconfiguration.ProvisioningModeValue(1))
	})
	if err != nil {
		c.fail(err, exc)
		return
	}
	out := xmljs.Path(env, "Body", "Unprovision_OUTPUT")
	if rv, ok := xmljs.Int(xmljs.Path(out, "ReturnValue")); !ok || rv != 0 {
		c.json(out)
		return
	}
	// The device forgot its configuration: forget the device (the record
	// and its credentials), whatever the request's own fate.
	ctx := context.WithoutCancel(r.Context())
	guid := c.hd.GUID
	if err := h.st.DeleteDevice(ctx, guid); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.fail(err, exc)
		return
	}
	if err := devcreds.Delete(ctx, h.sec, guid); err != nil {
		c.fail(err, exc)
		return
	}
	h.opts.Access.Invalidate(guid)
	if h.opts.OnDeviceDeleted != nil {
		h.opts.OnDeviceDeleted(guid)
	}
	c.json(map[string]string{"status": "SUCCESS"})
}
