package wsman

import (
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/amtd-project/amtd/sim/firmware"
)

// ---- AMT_PublicKeyManagementService ----

func decodeBlob(v string) ([]byte, bool) {
	v = strings.Join(strings.Fields(v), "")
	b, err := base64.StdEncoding.DecodeString(v)
	return b, err == nil && len(b) > 0
}

func certRef(h int) *EPR {
	return Ref("AMT_PublicKeyCertificate", "InstanceID", firmware.CertInstanceID(h))
}

func keyRef(h int) *EPR {
	return Ref("AMT_PublicPrivateKeyPair", "InstanceID", firmware.KeyInstanceID(h))
}

func publicKeyManagement() *Class {
	addCert := func(trusted bool) Method {
		return func(c *Call) (*Output, error) {
			blob, _ := c.Param("CertificateBlob")
			der, ok := decodeBlob(blob)
			if !ok {
				return RV(firmware.PTInvalidCert), nil
			}
			h, rv := c.FW.AddCertificate(der, trusted)
			if rv != firmware.PTSuccess {
				return RV(rv), nil
			}
			return (&Output{}).WithRef("CreatedCertificate", certRef(h)), nil
		}
	}
	return &Class{
		Name: "AMT_PublicKeyManagementService",
		Instances: func(c *Call) ([]*Instance, error) {
			in := service(NewInstance("AMT_PublicKeyManagementService"), "Intel(r) AMT Public Key Management Service").
				S("ElementName", "Intel(r) AMT Certificate Store Service").I("EnabledDefault", 5).I("EnabledState", 5).I("RequestedState", 12)
			return []*Instance{in}, nil
		},
		Methods: map[string]Method{
			"AddTrustedRootCertificate": addCert(true),
			"AddCertificate":            addCert(false),
			"AddKey": func(c *Call) (*Output, error) {
				blob, _ := c.Param("KeyBlob")
				der, ok := decodeBlob(blob)
				if !ok {
					return RV(firmware.PTInvalidKey), nil
				}
				h, rv := c.FW.AddKey(der)
				if rv != firmware.PTSuccess {
					return RV(rv), nil
				}
				return (&Output{}).WithRef("CreatedKey", keyRef(h)), nil
			},
			"GenerateKeyPair": func(c *Call) (*Output, error) {
				alg, ok1 := c.IntParam("KeyAlgorithm")
				bits, ok2 := c.IntParam("KeyLength")
				if !ok1 || !ok2 {
					return RV(firmware.PTInvalidParameter), nil
				}
				h, rv := c.FW.GenerateKeyPair(int(alg), int(bits))
				if rv != firmware.PTSuccess {
					return RV(rv), nil
				}
				return (&Output{}).WithRef("KeyPair", keyRef(h)), nil
			},
			"GeneratePKCS10RequestEx": func(c *Call) (*Output, error) {
				id, _ := c.RefParam("KeyPair").Selector("InstanceID")
				h, ok := firmware.ParseKeyInstanceID(id)
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				alg, ok := c.IntParam("SigningAlgorithm")
				if !ok {
					return RV(firmware.PTInvalidParameter), nil
				}
				var null []byte
				if v, _ := c.Param("NullSignedCertificateRequest"); strings.TrimSpace(v) != "" {
					if null, ok = decodeBlob(v); !ok {
						return RV(firmware.PTInvalidParameter), nil
					}
				}
				csr, rv := c.FW.GeneratePKCS10(h, int(alg), null)
				if rv != firmware.PTSuccess {
					return RV(rv), nil
				}
				return (&Output{}).With("SignedCertificateRequest", base64.StdEncoding.EncodeToString(csr)), nil
			},
		},
	}
}

// ---- AMT_PublicKeyCertificate ----

// dnString renders a name in certificate order: "C=unknown,O=unknown,CN=MPSRoot-0af1d5".
func dnString(raw []byte) string {
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return ""
	}
	short := map[string]string{"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.5": "SERIALNUMBER", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "1.2.840.113549.1.9.1": "E"}
	var parts []string
	for _, rdn := range seq {
		for _, atv := range rdn {
			k := short[atv.Type.String()]
			if k == "" {
				k = atv.Type.String()
			}
			parts = append(parts, k+"="+fmt.Sprint(atv.Value))
		}
	}
	return strings.Join(parts, ",")
}

func certInstance(sc firmware.StoredCert) *Instance {
	in := NewInstance("AMT_PublicKeyCertificate").S("ElementName", "Intel(r) AMT Certificate").S("InstanceID", firmware.CertInstanceID(sc.Handle))
	if c, err := x509.ParseCertificate(sc.DER); err == nil {
		in.S("Issuer", dnString(c.RawIssuer)).S("Subject", dnString(c.RawSubject))
	}
	return in.B("ReadOnlyCertificate", sc.ReadOnly).B("TrustedRootCertficate", sc.TrustedRoot).
		S("X509Certificate", base64.StdEncoding.EncodeToString(sc.DER))
}

func storeError(err error) error {
	switch {
	case errors.Is(err, firmware.ErrNotFound):
		return FaultInvalidSelectors()
	case errors.Is(err, firmware.ErrInUse):
		f := FaultAccessDenied()
		f.Reason = "The object is in use and cannot be deleted."
		return f
	}
	return err
}

func publicKeyCertificate() *Class {
	return &Class{
		Name: "AMT_PublicKeyCertificate",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			c.FW.View(func(s *S) {
				for _, sc := range s.Certs {
					out = append(out, certInstance(sc))
				}
			})
			return out, nil
		},
		Delete: func(c *Call, target *Instance) error {
			id, _ := target.Get("InstanceID")
			h, _ := firmware.ParseCertInstanceID(id)
			return storeError(c.FW.DeleteCertificate(h))
		},
		LSA: []string{OpGet, OpEnumerate},
	}
}

// ---- AMT_PublicPrivateKeyPair ----

func publicPrivateKeyPair() *Class {
	return &Class{
		Name: "AMT_PublicPrivateKeyPair",
		Instances: func(c *Call) ([]*Instance, error) {
			var handles []int
			c.FW.View(func(s *S) {
				for _, k := range s.Keys {
					handles = append(handles, k.Handle)
				}
			})
			var out []*Instance
			for _, h := range handles {
				der, ok := c.FW.PublicKeyDER(h)
				if !ok {
					continue
				}
				out = append(out, NewInstance("AMT_PublicPrivateKeyPair").S("DERKey", base64.StdEncoding.EncodeToString(der)).
					S("ElementName", "Intel(r) AMT Key").S("InstanceID", firmware.KeyInstanceID(h)))
			}
			return out, nil
		},
		Delete: func(c *Call, target *Instance) error {
			id, _ := target.Get("InstanceID")
			h, _ := firmware.ParseKeyInstanceID(id)
			return storeError(c.FW.DeleteKey(h))
		},
	}
}

// ---- AMT_TLSSettingData ----

const (
	tlsRemoteID = "Intel(r) AMT 802.3 TLS Settings"
	tlsLocalID  = "Intel(r) AMT LMS TLS Settings"
)

type T = firmware.TLSSetting

var tlsFields = []field[*T]{
	fBool("AcceptNonSecureConnections", func(t *T) *bool { return &t.AcceptNonSecureConnections }),
	fBool("Enabled", func(t *T) *bool { return &t.Enabled }),
	fBool("MutualAuthentication", func(t *T) *bool { return &t.MutualAuthentication }),
	fList("TrustedCN", func(t *T) *[]string { return &t.TrustedCN }),
}

func tlsInstance(id string, t *T) *Instance {
	return render(NewInstance("AMT_TLSSettingData").S("ElementName", id).S("InstanceID", id), tlsFields, t)
}

func tlsSettingData() *Class {
	return &Class{
		Name: "AMT_TLSSettingData",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			c.FW.View(func(s *S) {
				out = append(out, tlsInstance(tlsRemoteID, &s.TLS.Remote), tlsInstance(tlsLocalID, &s.TLS.Local))
			})
			return out, nil
		},
		Put: func(c *Call, target *Instance) (*Instance, error) {
			id, _ := target.Get("InstanceID")
			var out *Instance
			err := c.FW.Update(func(s *S) error {
				t := &s.TLS.Remote
				if id == tlsLocalID {
					t = &s.TLS.Local
				}
				tmp := *t
				if err := apply(c.Req.Body, tlsFields, &tmp); err != nil {
					return err
				}
				if id == tlsLocalID {
					// read-only on the local interface
					tmp.AcceptNonSecureConnections = t.AcceptNonSecureConnections
				}
				if id == tlsLocalID && tmp.MutualAuthentication { // LMS TLS is server authentication only
					return FaultInvalidRepresentation()
				}
				if s.TLSEnforced && id == tlsLocalID && !tmp.Enabled {
					return FaultInvalidRepresentation()
				}
				for _, cn := range tmp.TrustedCN {
					if len(cn) > 255 {
						return FaultInvalidRepresentation()
					}
				}
				*t = tmp
				out = tlsInstance(id, t)
				return nil
			})
			return out, err
		},
	}
}

// ---- AMT_TLSCredentialContext ----

const tlsCollectionName = "TLSProtocolEndpoint Instances Collection"

func tlsCredentialContext() *Class {
	readCert := func(c *Call) (int, error) {
		body := c.Req.Body
		ref := ParseEPR(body.Child("ElementInContext"))
		id, _ := ref.Selector("InstanceID")
		h, ok := firmware.ParseCertInstanceID(id)
		if !ok {
			return 0, FaultInvalidRepresentation()
		}
		return h, nil
	}
	setCert := func(c *Call, h int, create bool) error {
		return c.FW.Update(func(s *S) error {
			if create && s.TLS.CredentialCert >= 0 {
				return FaultAlreadyExists()
			}
			if !create && s.TLS.CredentialCert < 0 {
				return FaultInvalidSelectors()
			}
			i := slices.IndexFunc(s.Certs, func(sc firmware.StoredCert) bool { return sc.Handle == h })
			if i < 0 || s.Certs[i].TrustedRoot {
				return FaultInvalidRepresentation()
			}
			if !keyMatches(s, s.Certs[i].DER) {
				return FaultInvalidRepresentation()
			}
			s.TLS.CredentialCert = h
			return nil
		})
	}
	return &Class{
		Name: "AMT_TLSCredentialContext",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			c.FW.View(func(s *S) {
				if s.TLS.CredentialCert >= 0 {
					out = append(out, tlsContextInstance(s.TLS.CredentialCert))
				}
			})
			return out, nil
		},
		Create: func(c *Call) (*EPR, error) {
			h, err := readCert(c)
			if err != nil {
				return nil, err
			}
			if err := setCert(c, h, true); err != nil {
				return nil, err
			}
			return &EPR{Address: Anonymous, ResourceURI: ResourceURI("AMT_TLSCredentialContext"), Selectors: []Selector{
				{Name: "ElementInContext", EPR: certRef(h)},
				{Name: "ElementProvidingContext", EPR: Ref("AMT_TLSProtocolEndpointCollection", "ElementName", tlsCollectionName)},
			}}, nil
		},
		Put: func(c *Call, _ *Instance) (*Instance, error) {
			h, err := readCert(c)
			if err != nil {
				return nil, err
			}
			if err := setCert(c, h, false); err != nil {
				return nil, err
			}
			return tlsContextInstance(h), nil
		},
		Delete: func(c *Call, target *Instance) error {
			return c.FW.Update(func(s *S) error {
				s.TLS.CredentialCert = -1
				return nil
			})
		},
		// AMT has at most one context; go-wsman-messages deletes it with a
		// "Name" selector, RPS with the association's references.
		Select: func(c *Call, items []*Instance) (*Instance, error) {
			if len(items) == 0 {
				return nil, FaultInvalidSelectors()
			}
			in := items[0]
			if len(c.Req.Selectors) == 0 {
				return in, nil
			}
			certID, _ := in.Ref("ElementInContext").Selector("InstanceID")
			for _, s := range c.Req.Selectors {
				if s.EPR != nil {
					if v, ok := s.EPR.Selector("InstanceID"); ok && v == certID {
						return in, nil
					}
					if s.Name == "ElementProvidingContext" {
						continue
					}
				} else if s.Value == certID || s.Value == "" {
					return in, nil
				}
			}
			return nil, FaultInvalidSelectors()
		},
	}
}

func keyMatches(s *S, der []byte) bool {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return false
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return false
	}
	for _, k := range s.Keys {
		if kk, err := x509.ParsePKCS8PrivateKey(k.PrivatePK8); err == nil {
			if rk, ok := kk.(*rsa.PrivateKey); ok && rk.PublicKey.Equal(pub) {
				return true
			}
		}
	}
	return false
}

func tlsContextInstance(h int) *Instance {
	return NewInstance("AMT_TLSCredentialContext").
		R("ElementInContext", certRef(h)).
		R("ElementProvidingContext", Ref("AMT_TLSProtocolEndpointCollection", "ElementName", tlsCollectionName))
}

func tlsProtocolEndpointCollection() *Class {
	return &Class{
		Name: "AMT_TLSProtocolEndpointCollection",
		Instances: func(c *Call) ([]*Instance, error) {
			return []*Instance{NewInstance("AMT_TLSProtocolEndpointCollection").S("ElementName", tlsCollectionName)}, nil
		},
	}
}

// ---- associations ----

// CIM_ConcreteDependency: certificate ↔ key pair.
func concreteDependency() *Class {
	return &Class{
		Name: "CIM_ConcreteDependency",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			c.FW.View(func(s *S) {
				for _, sc := range s.Certs {
					cert, err := x509.ParseCertificate(sc.DER)
					if err != nil {
						continue
					}
					pub, ok := cert.PublicKey.(*rsa.PublicKey)
					if !ok {
						continue
					}
					for _, k := range s.Keys {
						kk, err := x509.ParsePKCS8PrivateKey(k.PrivatePK8)
						if rk, ok := kk.(*rsa.PrivateKey); err == nil && ok && rk.PublicKey.Equal(pub) {
							out = append(out, NewInstance("CIM_ConcreteDependency").R("Antecedent", certRef(sc.Handle)).R("Dependent", keyRef(k.Handle)))
						}
					}
				}
			})
			return out, nil
		},
	}
}

// CIM_CredentialContext: certificates used by 802.1x settings.
func credentialContext() *Class {
	return &Class{
		Name: "CIM_CredentialContext",
		Instances: func(c *Call) ([]*Instance, error) {
			var out []*Instance
			add := func(certID string, provider *EPR) {
				if h, ok := firmware.ParseCertInstanceID(certID); ok {
					out = append(out, NewInstance("CIM_CredentialContext").R("ElementInContext", certRef(h)).R("ElementProvidingContext", provider))
				}
			}
			c.FW.View(func(s *S) {
				for _, p := range s.WiFi.Profiles {
					if p.IEEE8021x == "" {
						continue
					}
					provider := Ref("CIM_IEEE8021xSettings", "InstanceID", p.IEEE8021x)
					add(p.ClientCredential, provider)
					add(p.CACredential, provider)
				}
				w := s.IEEE8021x.Wired
				provider := Ref("IPS_IEEE8021xSettings", "InstanceID", "Intel(r) AMT: 8021X Settings")
				add(w.ClientCertificate, provider)
				add(w.ServerCertificateIssuer, provider)
			})
			return out, nil
		},
	}
}
