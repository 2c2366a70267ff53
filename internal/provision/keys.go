package provision

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman"
	"github.com/device-management-toolkit/go-wsman-messages/v2/pkg/wsman/amt/publickey"
)

// rvDuplicate is AMT's DUPLICATE return value (PT_STATUS 2058).
const rvDuplicate = 2058

func publicKeySelector(sels []publickey.SelectorResponse, name string) string {
	for _, s := range sels {
		if s.Name == name {
			return strings.TrimSpace(s.Text)
		}
	}
	return ""
}

// findCertificate returns the InstanceID of the device's certificate whose
// DER equals der ("" when absent).
func (c *configRun) findCertificate(ctx context.Context, der []byte) (string, error) {
	list, err := c.certificates(ctx)
	if err != nil {
		return "", err
	}
	for _, pc := range list {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(pc.X509Certificate))
		if err == nil && bytes.Equal(b, der) {
			return pc.InstanceID, nil
		}
	}
	return "", nil
}

// addTrustedRoot installs der as a trusted root certificate and returns its
// InstanceID; a root already present is reused.
func (c *configRun) addTrustedRoot(ctx context.Context, der []byte) (string, error) {
	if id, err := c.findCertificate(ctx, der); err != nil || id != "" {
		return id, err
	}
	rv, id := -1, ""
	err := c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.PublicKeyManagementService.AddTrustedRootCertificate(base64.StdEncoding.EncodeToString(der))
		out := r.Body.AddTrustedRootCertificate_OUTPUT
		if out.XMLName.Local != "" {
			rv = int(out.ReturnValue)
			id = publicKeySelector(out.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors, "InstanceID")
			return nil
		}
		return err
	})
	if err != nil {
		return "", err
	}
	if rv == rvDuplicate {
		return c.findCertificate(ctx, der)
	}
	if err := checkRV("AddTrustedRootCertificate", rv); err != nil {
		return "", err
	}
	if id == "" {
		return c.findCertificate(ctx, der)
	}
	return id, nil
}

// deviceCertificate has the device generate an RSA-2048 key pair, reads its
// public key, has sign issue a certificate for it, and adds the certificate
// to the device (which pairs it with the key). beforeAdd, when set, runs
// with the certificate before AddCertificate (to make it durable first).
// It returns the certificate's and the key's InstanceIDs.
func (c *configRun) deviceCertificate(ctx context.Context, sign func(pub crypto.PublicKey) ([]byte, error), beforeAdd func(der []byte) error) (certID, keyID string, err error) {
	rv := -1
	err = c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.PublicKeyManagementService.GenerateKeyPair(publickey.RSA, publickey.KeyLength2048)
		out := r.Body.GenerateKeyPair_OUTPUT
		if out.XMLName.Local != "" {
			rv = int(out.ReturnValue)
			keyID = publicKeySelector(out.KeyPair.ReferenceParameters.SelectorSet.Selectors, "InstanceID")
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("GenerateKeyPair", rv)
	}
	if err != nil {
		return "", "", fmt.Errorf("generating a key pair: %w", err)
	}
	keys, err := c.keyPairs(ctx)
	if err != nil {
		return "", keyID, fmt.Errorf("reading key pairs: %w", err)
	}
	derKey := ""
	for _, k := range keys {
		if k.InstanceID == keyID || (keyID == "" && derKey == "") {
			derKey = k.DERKey
		}
	}
	if derKey == "" {
		return "", keyID, fmt.Errorf("the generated key %q is not listed by the device", keyID)
	}
	pub, err := parseDeviceKey(derKey)
	if err != nil {
		return "", keyID, err
	}
	der, err := sign(pub)
	if err != nil {
		return "", keyID, fmt.Errorf("issuing the certificate: %w", err)
	}
	if beforeAdd != nil {
		if err := beforeAdd(der); err != nil {
			return "", keyID, err
		}
	}
	rv = -1
	err = c.do(ctx, func(m wsman.Messages) error {
		r, err := m.AMT.PublicKeyManagementService.AddCertificate(base64.StdEncoding.EncodeToString(der))
		out := r.Body.AddCertificate_OUTPUT
		if out.XMLName.Local != "" {
			rv = int(out.ReturnValue)
			certID = publicKeySelector(out.CreatedCertificate.ReferenceParameters.SelectorSet.Selectors, "InstanceID")
			return nil
		}
		return err
	})
	if err == nil {
		err = checkRV("AddCertificate", rv)
	}
	if err != nil {
		return "", keyID, fmt.Errorf("adding the certificate: %w", err)
	}
	if certID == "" {
		if certID, err = c.findCertificate(ctx, der); err != nil || certID == "" {
			return "", keyID, fmt.Errorf("the added certificate is not listed by the device")
		}
	}
	return certID, keyID, nil
}

// deviceName is the name certificates carry for the device.
func (t *Target) deviceName() string {
	if t.Hostname != "" {
		return t.Hostname
	}
	return t.GUID
}
