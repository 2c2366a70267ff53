package legacytest

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sync/atomic"
	"testing"

	"github.com/amtd-project/amtd/internal/amthashes"
	"github.com/amtd-project/amtd/internal/legacy/hello"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/firmware"
)

var keySlot atomic.Int32

// Keys gives firmware and CAs cached RSA keys (testpki), a different one on
// each call among 16 (a device never gets the same key twice in a row).
func Keys(bits int) (*rsa.PrivateKey, error) {
	return testpki.Key(2048, 100+int(keySlot.Add(1)%16)), nil
}

// FirmwareOptions describe a device in setup mode.
type FirmwareOptions struct {
	UUID         string
	Version      string   // default firmware.DefaultVersion
	PKIDNSSuffix string   // the MEBx/setup.bin PKI DNS suffix
	DHCPDomain   string   // DHCP option 15
	TrustHashes  []string // user-defined root hashes (hex)
	NotInSetup   bool     // leave the device in pre-provisioning
}

// NewFirmware creates an in-memory simulated firmware in setup mode ("IN",
// as after setup.bin or MEBx configuration with remote configuration on).
func NewFirmware(t testing.TB, o FirmwareOptions) *firmware.Firmware {
	t.Helper()
	off := false
	fw, err := firmware.Open(firmware.Config{UUID: o.UUID, Version: o.Version, PKIDNSSuffix: o.PKIDNSSuffix,
		DNSSuffix: o.DHCPDomain, TrustHashes: o.TrustHashes, TLSEnforced: &off, GenerateKey: Keys})
	if err != nil {
		t.Fatal(err)
	}
	if !o.NotInSetup {
		// The simulator has no legacy setup entry yet; host-based TLS setup's
		// StartConfigurationHBased moves the state to IN the same way.
		if rv, _, _ := fw.StartConfigurationHBased(2, make([]byte, 32)); rv != 0 {
			t.Fatalf("StartConfigurationHBased = %d", rv)
		}
	}
	return fw
}

// RootSHA256 is the hex SHA-256 of a chain's root.
func RootSHA256(c *testpki.Chain) string {
	s := sha256.Sum256(c.Root.Raw)
	return hex.EncodeToString(s[:])
}

// AddDomain stores a domain with the chain's PFX as the admin API does.
func AddDomain(t testing.TB, st store.Store, sec secrets.Store, tenant, name, suffix string, c *testpki.Chain) {
	t.Helper()
	ctx := t.Context()
	id := name + "-secret"
	pfx := c.PFX("pfx-pass", false)
	if err := sec.Put(ctx, provision.DefaultSecretKey(tenant, provision.KindDomain, id), map[string]string{
		provision.FieldPFX: base64.StdEncoding.EncodeToString(pfx), provision.FieldPFXPassword: "pfx-pass"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDomain(ctx, &store.Domain{TenantID: tenant, Name: name, DomainSuffix: suffix, StorageFormat: "string",
		ExpirationDate: c.Leaf.NotAfter, SecretID: id}); err != nil {
		t.Fatal(err)
	}
}

// DefaultHashes is the hello of AMT 16-era firmware: the 23 active default
// SHA-256 root hashes (legacy.md §12.1 without entry 20).
func DefaultHashes() []hello.HashEntry {
	var out []hello.HashEntry
	for _, e := range amthashes.Defaults() {
		if e.Index == 20 {
			continue
		}
		b, _ := hex.DecodeString(e.SHA256)
		out = append(out, hello.HashEntry{Type: hello.HashSHA256, Hash: b})
	}
	return out
}

// PKIHello encodes a version 3 hello with the default hashes plus extra
// (hex SHA-256) hashes.
func PKIHello(t testing.TB, uuid string, retry uint32, extra ...string) []byte {
	t.Helper()
	u, err := hello.ParseUUID(uuid)
	if err != nil {
		t.Fatal(err)
	}
	h := &hello.Hello{AdminCredentialsSet: true, Version: hello.VersionPKI, RetryCount: retry, UUID: u, Hashes: DefaultHashes()}
	for _, x := range extra {
		b, err := hex.DecodeString(x)
		if err != nil {
			t.Fatal(err)
		}
		h.Hashes = append(h.Hashes, hello.HashEntry{Type: hello.HashSHA256, Hash: b})
	}
	b, err := h.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PSKHello encodes a version 2 hello.
func PSKHello(t testing.TB, uuid, pid string, retry uint32) []byte {
	t.Helper()
	u, err := hello.ParseUUID(uuid)
	if err != nil {
		t.Fatal(err)
	}
	b, err := (&hello.Hello{AdminCredentialsSet: true, Version: hello.VersionPSK, RetryCount: retry, UUID: u, PID: pid}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
