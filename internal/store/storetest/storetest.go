// Package storetest is the one behaviour suite for store.Store
// implementations. An implementation's tests call Run with a function that
// opens a fresh, empty store:
//
//	func TestSQLite(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { … })
//	}
//
// Subtests run in parallel; open must be safe to call concurrently and should
// register the store's Close with t.Cleanup.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/store"
)

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Basics", testBasics},
		{"NamedKinds", testNamedKinds},
		{"CIRAConfigFields", testCIRAFields},
		{"DomainFieldsAndSuffix", testDomains},
		{"IEEE8021xFields", testIEEE8021x},
		{"WirelessFieldsAndReference", testWireless},
		{"ProxyFieldsAndAddressPort", testProxies},
		{"ProfileFieldsAndLinks", testProfileFields},
		{"ProfileReferences", testProfileReferences},
		{"ProfileListLinks", testProfileListLinks},
		{"Devices", testDevices},
		{"DeviceFilters", testDeviceFilters},
		{"Events", testEvents},
		{"Sealed", testSealed},
		{"Settings", testSettings},
		{"ConcurrentWriters", testConcurrent},
		{"DeleteRacesReference", testDeleteRacesReference},
		{"CanceledContext", testCanceled},
		{"LegacyDevices", testLegacyDevices},
		{"HelloEvents", testHelloEvents},
		{"PSKPairs", testPSKPairs},
		{"InstanceLeases", testInstanceLeases},
		{"InstanceRelease", testInstanceRelease},
		{"InstanceReap", testInstanceReap},
		{"InstanceClaimRace", testInstanceClaimRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// ---- helpers ----

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

// wantRef checks err is a *store.RefError wrapping target with kind and name.
func wantRef(t *testing.T, err, target error, kind, name string) {
	t.Helper()
	wantErr(t, err, target)
	var re *store.RefError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *store.RefError", err)
	}
	if re.Kind != kind || re.Name != name {
		t.Fatalf("RefError = {Kind %q, Name %q}, want {%q, %q}", re.Kind, re.Name, kind, name)
	}
}

func ptr[T any](v T) *T { return &v }

func tm(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func all() store.Page { return store.Page{Top: 1000} }

// ---- basics ----

func testBasics(t *testing.T, s store.Store) {
	ctx := t.Context()
	if d := s.Dialect(); d != "SQLITE" && d != "POSTGRES" {
		t.Fatalf("Dialect() = %q", d)
	}
	must(t, s.Ping(ctx))
	// Empty lists are empty, non-nil slices; counts are zero.
	if l, err := s.ListProfiles(ctx, "", all()); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("ListProfiles on empty store = %v, %v", l, err)
	}
	if l, err := s.ListDevices(ctx, "", store.DeviceFilter{}, all()); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("ListDevices on empty store = %v, %v", l, err)
	}
	if n, err := s.CountDevices(ctx, "", store.DeviceFilter{}); err != nil || n != 0 {
		t.Fatalf("CountDevices = %d, %v", n, err)
	}
	if tags, err := s.DeviceTags(ctx, ""); err != nil || tags == nil || len(tags) != 0 {
		t.Fatalf("DeviceTags = %v, %v", tags, err)
	}
	if ev, err := s.ListEvents(ctx, "8c3b2a5e-0000-0000-0000-000000000001", all()); err != nil || ev == nil || len(ev) != 0 {
		t.Fatalf("ListEvents = %v, %v", ev, err)
	}
}

// ---- generic behaviour of every named kind ----

// kind adapts one named config kind to a common shape.
type kind struct {
	name    string
	create  func(ctx context.Context, s store.Store, tenant, name string, i int) error
	get     func(ctx context.Context, s store.Store, tenant, name string) (gotName string, version int64, err error)
	update  func(ctx context.Context, s store.Store, tenant, name string, version int64, i int) (int64, error)
	del     func(ctx context.Context, s store.Store, tenant, name string) error
	list    func(ctx context.Context, s store.Store, tenant string, p store.Page) ([]string, error)
	count   func(ctx context.Context, s store.Store, tenant string) (int, error)
	noCheck bool // Update ignores Version (proxy configs)
}

func cira(tenant, name string, i int) *store.CIRAConfig {
	return &store.CIRAConfig{TenantID: tenant, Name: name, MPSServerAddress: fmt.Sprintf("mps%d.example.com", i),
		MPSPort: 4433, Username: "admin", CommonName: "mps.example.com", ServerAddressFormat: 201, AuthMethod: 2,
		MPSRootCertificate: "MIIB", ProxyDetails: "", SecretID: fmt.Sprintf("cira-%d", i)}
}

func domain(tenant, name string, i int) *store.Domain {
	return &store.Domain{TenantID: tenant, Name: name, DomainSuffix: fmt.Sprintf("d%d-%s.example.com", i, strings.ToLower(name)),
		StorageFormat: "string", ExpirationDate: tm("2033-08-01T07:12:09Z"), SecretID: fmt.Sprintf("dom-%d", i)}
}

func ieee(tenant, name string, wired bool) *store.IEEE8021xConfig {
	return &store.IEEE8021xConfig{TenantID: tenant, Name: name, AuthenticationProtocol: 0, PXETimeout: ptr(120), WiredInterface: wired}
}

func wireless(tenant, name string, i int) *store.WirelessConfig {
	return &store.WirelessConfig{TenantID: tenant, Name: name, AuthenticationMethod: 6, EncryptionMethod: 4,
		SSID: fmt.Sprintf("ssid%d", i), LinkPolicy: []int{14, 16}, SecretID: fmt.Sprintf("wifi-%d", i)}
}

func proxy(tenant, name string, i int) *store.ProxyConfig {
	return &store.ProxyConfig{TenantID: tenant, Name: name, Address: fmt.Sprintf("proxy%d.example.com", i),
		InfoFormat: 201, Port: 900 + i, NetworkDNSSuffix: "example.com"}
}

func profile(tenant, name string) *store.Profile {
	return &store.Profile{TenantID: tenant, Name: name, Activation: "ccmactivate", GenerateRandomPassword: true,
		Tags: []string{}, DHCPEnabled: true, UserConsent: "All", KVMEnabled: true, SecretID: "p-" + name}
}

func names[T any](l []T, err error, name func(T) string) ([]string, error) {
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, v := range l {
		out = append(out, name(v))
	}
	return out, nil
}

var kinds = []kind{
	{
		name: "ciraconfig",
		create: func(ctx context.Context, s store.Store, tenant, name string, i int) error {
			return s.CreateCIRAConfig(ctx, cira(tenant, name, i))
		},
		get: func(ctx context.Context, s store.Store, tenant, name string) (string, int64, error) {
			c, err := s.GetCIRAConfig(ctx, tenant, name)
			if err != nil {
				return "", 0, err
			}
			return c.Name, c.Version, nil
		},
		update: func(ctx context.Context, s store.Store, tenant, name string, v int64, i int) (int64, error) {
			c := cira(tenant, name, i)
			c.Version = v
			err := s.UpdateCIRAConfig(ctx, c)
			return c.Version, err
		},
		del: func(ctx context.Context, s store.Store, tenant, name string) error {
			return s.DeleteCIRAConfig(ctx, tenant, name)
		},
		list: func(ctx context.Context, s store.Store, tenant string, p store.Page) ([]string, error) {
			l, err := s.ListCIRAConfigs(ctx, tenant, p)
			return names(l, err, func(c store.CIRAConfig) string { return c.Name })
		},
		count: func(ctx context.Context, s store.Store, tenant string) (int, error) {
			return s.CountCIRAConfigs(ctx, tenant)
		},
	},
	{
		name: "domain",
		create: func(ctx context.Context, s store.Store, tenant, name string, i int) error {
			return s.CreateDomain(ctx, domain(tenant, name, i))
		},
		get: func(ctx context.Context, s store.Store, tenant, name string) (string, int64, error) {
			d, err := s.GetDomain(ctx, tenant, name)
			if err != nil {
				return "", 0, err
			}
			return d.Name, d.Version, nil
		},
		update: func(ctx context.Context, s store.Store, tenant, name string, v int64, i int) (int64, error) {
			d := domain(tenant, name, i)
			d.Version = v
			err := s.UpdateDomain(ctx, d)
			return d.Version, err
		},
		del: func(ctx context.Context, s store.Store, tenant, name string) error {
			return s.DeleteDomain(ctx, tenant, name)
		},
		list: func(ctx context.Context, s store.Store, tenant string, p store.Page) ([]string, error) {
			l, err := s.ListDomains(ctx, tenant, p)
			return names(l, err, func(d store.Domain) string { return d.Name })
		},
		count: func(ctx context.Context, s store.Store, tenant string) (int, error) {
			return s.CountDomains(ctx, tenant)
		},
	},
	{
		name: "ieee8021x",
		create: func(ctx context.Context, s store.Store, tenant, name string, i int) error {
			return s.CreateIEEE8021xConfig(ctx, ieee(tenant, name, i%2 == 0))
		},
		get: func(ctx context.Context, s store.Store, tenant, name string) (string, int64, error) {
			c, err := s.GetIEEE8021xConfig(ctx, tenant, name)
			if err != nil {
				return "", 0, err
			}
			return c.Name, c.Version, nil
		},
		update: func(ctx context.Context, s store.Store, tenant, name string, v int64, i int) (int64, error) {
			c := ieee(tenant, name, i%2 == 0)
			c.Version = v
			err := s.UpdateIEEE8021xConfig(ctx, c)
			return c.Version, err
		},
		del: func(ctx context.Context, s store.Store, tenant, name string) error {
			return s.DeleteIEEE8021xConfig(ctx, tenant, name)
		},
		list: func(ctx context.Context, s store.Store, tenant string, p store.Page) ([]string, error) {
			l, err := s.ListIEEE8021xConfigs(ctx, tenant, p)
			return names(l, err, func(c store.IEEE8021xConfig) string { return c.Name })
		},
		count: func(ctx context.Context, s store.Store, tenant string) (int, error) {
			return s.CountIEEE8021xConfigs(ctx, tenant)
		},
	},
	{
		name: "wireless",
		create: func(ctx context.Context, s store.Store, tenant, name string, i int) error {
			return s.CreateWirelessConfig(ctx, wireless(tenant, name, i))
		},
		get: func(ctx context.Context, s store.Store, tenant, name string) (string, int64, error) {
			w, err := s.GetWirelessConfig(ctx, tenant, name)
			if err != nil {
				return "", 0, err
			}
			return w.Name, w.Version, nil
		},
		update: func(ctx context.Context, s store.Store, tenant, name string, v int64, i int) (int64, error) {
			w := wireless(tenant, name, i)
			w.Version = v
			err := s.UpdateWirelessConfig(ctx, w)
			return w.Version, err
		},
		del: func(ctx context.Context, s store.Store, tenant, name string) error {
			return s.DeleteWirelessConfig(ctx, tenant, name)
		},
		list: func(ctx context.Context, s store.Store, tenant string, p store.Page) ([]string, error) {
			l, err := s.ListWirelessConfigs(ctx, tenant, p)
			return names(l, err, func(w store.WirelessConfig) string { return w.Name })
		},
		count: func(ctx context.Context, s store.Store, tenant string) (int, error) {
			return s.CountWirelessConfigs(ctx, tenant)
		},
	},
	{
		name:    "proxy",
		noCheck: true,
		create: func(ctx context.Context, s store.Store, tenant, name string, i int) error {
			return s.CreateProxyConfig(ctx, proxy(tenant, name, i))
		},
		get: func(ctx context.Context, s store.Store, tenant, name string) (string, int64, error) {
			c, err := s.GetProxyConfig(ctx, tenant, name)
			if err != nil {
				return "", 0, err
			}
			return c.Name, c.Version, nil
		},
		update: func(ctx context.Context, s store.Store, tenant, name string, v int64, i int) (int64, error) {
			c := proxy(tenant, name, i+100)
			c.Version = v
			err := s.UpdateProxyConfig(ctx, c)
			return c.Version, err
		},
		del: func(ctx context.Context, s store.Store, tenant, name string) error {
			return s.DeleteProxyConfig(ctx, tenant, name)
		},
		list: func(ctx context.Context, s store.Store, tenant string, p store.Page) ([]string, error) {
			l, err := s.ListProxyConfigs(ctx, tenant, p)
			return names(l, err, func(c store.ProxyConfig) string { return c.Name })
		},
		count: func(ctx context.Context, s store.Store, tenant string) (int, error) {
			return s.CountProxyConfigs(ctx, tenant)
		},
	},
	{
		name: "profile",
		create: func(ctx context.Context, s store.Store, tenant, name string, i int) error {
			return s.CreateProfile(ctx, profile(tenant, name))
		},
		get: func(ctx context.Context, s store.Store, tenant, name string) (string, int64, error) {
			p, err := s.GetProfile(ctx, tenant, name)
			if err != nil {
				return "", 0, err
			}
			return p.Name, p.Version, nil
		},
		update: func(ctx context.Context, s store.Store, tenant, name string, v int64, i int) (int64, error) {
			p := profile(tenant, name)
			p.Tags = []string{fmt.Sprint(i)}
			p.Version = v
			err := s.UpdateProfile(ctx, p)
			return p.Version, err
		},
		del: func(ctx context.Context, s store.Store, tenant, name string) error {
			return s.DeleteProfile(ctx, tenant, name)
		},
		list: func(ctx context.Context, s store.Store, tenant string, p store.Page) ([]string, error) {
			l, err := s.ListProfiles(ctx, tenant, p)
			return names(l, err, func(p store.Profile) string { return p.Name })
		},
		count: func(ctx context.Context, s store.Store, tenant string) (int, error) {
			return s.CountProfiles(ctx, tenant)
		},
	},
}

func testNamedKinds(t *testing.T, s store.Store) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) { testKind(t, s, k) })
	}
}

func testKind(t *testing.T, s store.Store, k kind) {
	ctx := t.Context()
	const tenant, other = "", "tenant-b"

	// Create; names keep their case and are found case-insensitively.
	must(t, k.create(ctx, s, tenant, "NewName", 1))
	for _, lookup := range []string{"NewName", "newname", "NEWNAME"} {
		got, v, err := k.get(ctx, s, tenant, lookup)
		must(t, err)
		if got != "NewName" || v != 1 {
			t.Fatalf("get %q = (%q, version %d), want (\"NewName\", 1)", lookup, got, v)
		}
	}
	// A name differing only in case is a duplicate.
	wantErr(t, k.create(ctx, s, tenant, "NEWname", 2), store.ErrDuplicate)
	wantErr(t, k.create(ctx, s, tenant, "NewName", 3), store.ErrDuplicate)

	// Tenants are separate namespaces.
	_, _, err := k.get(ctx, s, other, "NewName")
	wantErr(t, err, store.ErrNotFound)
	must(t, k.create(ctx, s, other, "newname", 4))
	got, _, err := k.get(ctx, s, other, "NEWNAME")
	must(t, err)
	if got != "newname" {
		t.Fatalf("other tenant's object = %q", got)
	}

	// Updates increase the version; a stale version conflicts.
	v, err := k.update(ctx, s, tenant, "newNAME", 1, 5)
	must(t, err)
	if v != 2 {
		t.Fatalf("version after first update = %d, want 2", v)
	}
	v, err = k.update(ctx, s, tenant, "NewName", 2, 6)
	must(t, err)
	if v != 3 {
		t.Fatalf("version after second update = %d, want 3", v)
	}
	if k.noCheck {
		v, err = k.update(ctx, s, tenant, "NewName", 1, 7)
		must(t, err)
		if v != 4 {
			t.Fatalf("version after unchecked update = %d, want 4", v)
		}
	} else {
		_, err = k.update(ctx, s, tenant, "NewName", 2, 7)
		wantErr(t, err, store.ErrConflict)
		_, err = k.update(ctx, s, tenant, "NewName", 0, 7)
		wantErr(t, err, store.ErrConflict)
		if _, v, _ := k.get(ctx, s, tenant, "NewName"); v != 3 {
			t.Fatalf("version after conflict = %d, want 3", v)
		}
	}
	_, err = k.update(ctx, s, tenant, "missing", 1, 8)
	wantErr(t, err, store.ErrNotFound)
	// The other tenant's object is untouched by these updates.
	if _, v, _ := k.get(ctx, s, other, "newname"); v != 1 {
		t.Fatalf("other tenant's version = %d, want 1", v)
	}

	// Lists: ordered by name ignoring case, paged, per tenant.
	for i, n := range []string{"bravo", "Alpha", "charlie", "Delta", "echo"} {
		must(t, k.create(ctx, s, tenant, n, 10+i))
	}
	want := []string{"Alpha", "bravo", "charlie", "Delta", "echo", "NewName"}
	pages := []struct {
		p    store.Page
		want []string
	}{
		{store.Page{Top: 100}, want},
		{store.Page{Top: 2}, want[:2]},
		{store.Page{Top: 2, Skip: 2}, want[2:4]},
		{store.Page{Top: 10, Skip: 5}, want[5:]},
		{store.Page{Top: 10, Skip: 6}, []string{}},
		{store.Page{Top: 0}, []string{}},
		{store.Page{Top: 0, Skip: 1}, []string{}},
	}
	for _, pg := range pages {
		got, err := k.list(ctx, s, tenant, pg.p)
		must(t, err)
		if !reflect.DeepEqual(got, pg.want) {
			t.Fatalf("list %+v = %q, want %q", pg.p, got, pg.want)
		}
	}
	if n, err := k.count(ctx, s, tenant); err != nil || n != 6 {
		t.Fatalf("count = %d, %v; want 6", n, err)
	}
	if got, err := k.list(ctx, s, other, all()); err != nil || !reflect.DeepEqual(got, []string{"newname"}) {
		t.Fatalf("other tenant's list = %q, %v", got, err)
	}
	if n, err := k.count(ctx, s, "nobody"); err != nil || n != 0 {
		t.Fatalf("count of empty tenant = %d, %v", n, err)
	}

	// Delete, case-insensitively and per tenant.
	must(t, k.del(ctx, s, tenant, "NEWNAME"))
	_, _, err = k.get(ctx, s, tenant, "NewName")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, k.del(ctx, s, tenant, "NewName"), store.ErrNotFound)
	if _, _, err := k.get(ctx, s, other, "newname"); err != nil {
		t.Fatalf("other tenant's object deleted too: %v", err)
	}
	// The name is free again.
	must(t, k.create(ctx, s, tenant, "newNAME", 20))
	if _, v, _ := k.get(ctx, s, tenant, "newname"); v != 1 {
		t.Fatalf("recreated version = %d, want 1", v)
	}
}

// ---- per-kind fields ----

func testCIRAFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	c := &store.CIRAConfig{TenantID: "t1", Name: "CiraConfig", MPSServerAddress: "192.168.1.10", MPSPort: 4433,
		Username: "admin123", CommonName: "192.168.1.10", ServerAddressFormat: 3, AuthMethod: 2,
		MPSRootCertificate: "MIIBroot", ProxyDetails: "proxy:8080", SecretID: "sec-1", Version: 77}
	must(t, s.CreateCIRAConfig(ctx, c))
	if c.Version != 1 {
		t.Fatalf("Version after create = %d", c.Version)
	}
	got, err := s.GetCIRAConfig(ctx, "t1", "ciraconfig")
	must(t, err)
	if !reflect.DeepEqual(got, c) {
		t.Fatalf("got %+v\nwant %+v", got, c)
	}
	c.MPSServerAddress, c.MPSPort, c.Username, c.CommonName = "mps.example.com", 8443, "other", ""
	c.ServerAddressFormat, c.AuthMethod, c.MPSRootCertificate, c.ProxyDetails, c.SecretID = 201, 1, "MIIC", "", "sec-2"
	must(t, s.UpdateCIRAConfig(ctx, c))
	got, err = s.GetCIRAConfig(ctx, "t1", "CIRACONFIG")
	must(t, err)
	if !reflect.DeepEqual(got, c) || got.Version != 2 {
		t.Fatalf("after update got %+v\nwant %+v", got, c)
	}
	l, err := s.ListCIRAConfigs(ctx, "t1", all())
	must(t, err)
	if len(l) != 1 || !reflect.DeepEqual(&l[0], c) {
		t.Fatalf("list = %+v", l)
	}
}

func testDomains(t *testing.T, s store.Store) {
	ctx := t.Context()
	d := &store.Domain{TenantID: "", Name: "VproDemo", DomainSuffix: "VPRODemo.com", StorageFormat: "string",
		ExpirationDate: tm("2033-08-01T07:12:09.123456Z"), SecretID: "d1"}
	must(t, s.CreateDomain(ctx, d))
	got, err := s.GetDomain(ctx, "", "vprodemo")
	must(t, err)
	if !reflect.DeepEqual(got, d) || !got.ExpirationDate.Equal(tm("2033-08-01T07:12:09.123456Z")) {
		t.Fatalf("got %+v\nwant %+v", got, d)
	}
	for _, suffix := range []string{"vprodemo.com", "VPRODEMO.COM"} {
		got, err := s.GetDomainBySuffix(ctx, "", suffix)
		must(t, err)
		if got.Name != "VproDemo" || got.DomainSuffix != "VPRODemo.com" {
			t.Fatalf("by suffix %q = %+v", suffix, got)
		}
	}
	_, err = s.GetDomainBySuffix(ctx, "", "other.com")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetDomainBySuffix(ctx, "t2", "vprodemo.com")
	wantErr(t, err, store.ErrNotFound)

	// Suffix is unique per tenant, case-insensitively, whatever the name.
	dup := &store.Domain{Name: "another", DomainSuffix: "vprodemo.COM", StorageFormat: "raw"}
	wantErr(t, s.CreateDomain(ctx, dup), store.ErrDuplicate)
	dup.TenantID = "t2"
	must(t, s.CreateDomain(ctx, dup))

	// Zero expiration round-trips as zero.
	d2 := &store.Domain{Name: "second", DomainSuffix: "second.com", StorageFormat: "raw", SecretID: "d2"}
	must(t, s.CreateDomain(ctx, d2))
	got, err = s.GetDomain(ctx, "", "SECOND")
	must(t, err)
	if !got.ExpirationDate.IsZero() {
		t.Fatalf("zero expiration came back as %v", got.ExpirationDate)
	}
	// Updating to a suffix another domain has is a duplicate; the stored row is unchanged.
	d2.DomainSuffix = "vprodemo.com"
	wantErr(t, s.UpdateDomain(ctx, d2), store.ErrDuplicate)
	got, _ = s.GetDomain(ctx, "", "second")
	if got.DomainSuffix != "second.com" || got.Version != 1 {
		t.Fatalf("after failed update: %+v", got)
	}
	d2.DomainSuffix, d2.ExpirationDate, d2.StorageFormat = "Second.Example.com", tm("2030-01-02T03:04:05Z"), "string"
	must(t, s.UpdateDomain(ctx, d2))
	got, _ = s.GetDomainBySuffix(ctx, "", "second.example.com")
	if got == nil || !reflect.DeepEqual(got, d2) {
		t.Fatalf("after update: %+v, want %+v", got, d2)
	}
}

func testIEEE8021x(t *testing.T, s store.Store) {
	ctx := t.Context()
	wired := &store.IEEE8021xConfig{TenantID: "", Name: "Wired8021x", AuthenticationProtocol: 10, PXETimeout: ptr(0), WiredInterface: true}
	wless := &store.IEEE8021xConfig{TenantID: "", Name: "wireless8021x", AuthenticationProtocol: 2, PXETimeout: nil, WiredInterface: false}
	must(t, s.CreateIEEE8021xConfig(ctx, wired))
	must(t, s.CreateIEEE8021xConfig(ctx, wless))
	for _, want := range []*store.IEEE8021xConfig{wired, wless} {
		got, err := s.GetIEEE8021xConfig(ctx, "", strings.ToUpper(want.Name))
		must(t, err)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
	}
	wired.PXETimeout, wired.AuthenticationProtocol = nil, 5
	must(t, s.UpdateIEEE8021xConfig(ctx, wired))
	got, _ := s.GetIEEE8021xConfig(ctx, "", "wired8021x")
	if !reflect.DeepEqual(got, wired) || got.PXETimeout != nil {
		t.Fatalf("after update got %+v, want %+v", got, wired)
	}
}

func testWireless(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateIEEE8021xConfig(ctx, ieee("", "EAPwifi", false)))
	must(t, s.CreateIEEE8021xConfig(ctx, ieee("other", "onlyOther", false)))

	w := &store.WirelessConfig{Name: "Home", AuthenticationMethod: 7, EncryptionMethod: 4, SSID: "home-net",
		LinkPolicy: []int{1, 14, 16, 224}, IEEE8021xProfileName: ptr("eapWIFI"), SecretID: "w1"}
	must(t, s.CreateWirelessConfig(ctx, w))
	got, err := s.GetWirelessConfig(ctx, "", "home")
	must(t, err)
	want := *w
	want.IEEE8021xProfileName = ptr("EAPwifi") // the referenced object's stored name
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	// Missing references, also across tenants.
	bad := wireless("", "bad", 1)
	bad.IEEE8021xProfileName = ptr("nope")
	wantRef(t, s.CreateWirelessConfig(ctx, bad), store.ErrMissingReference, "ieee8021x", "nope")
	bad.IEEE8021xProfileName = ptr("onlyOther")
	wantRef(t, s.CreateWirelessConfig(ctx, bad), store.ErrMissingReference, "ieee8021x", "onlyOther")
	if _, err := s.GetWirelessConfig(ctx, "", "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed create left a row: %v", err)
	}
	w.IEEE8021xProfileName = ptr("missing")
	wantRef(t, s.UpdateWirelessConfig(ctx, w), store.ErrMissingReference, "ieee8021x", "missing")

	// The 802.1x config is in use by the wireless config.
	wantRef(t, s.DeleteIEEE8021xConfig(ctx, "", "eapwifi"), store.ErrInUse, "wireless", "Home")

	// Clear the reference (PSK, no link policy): the 802.1x config can go.
	w.IEEE8021xProfileName, w.AuthenticationMethod, w.LinkPolicy = nil, 6, nil
	must(t, s.UpdateWirelessConfig(ctx, w))
	got, _ = s.GetWirelessConfig(ctx, "", "HOME")
	if got.IEEE8021xProfileName != nil || got.LinkPolicy == nil || len(got.LinkPolicy) != 0 || got.Version != 2 {
		t.Fatalf("after update: %+v", got)
	}
	must(t, s.DeleteIEEE8021xConfig(ctx, "", "EAPWIFI"))
}

func testProxies(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := &store.ProxyConfig{Name: "Proxy1", Address: "WWW.vprodemo.com", InfoFormat: 201, Port: 900, NetworkDNSSuffix: "intel.com"}
	must(t, s.CreateProxyConfig(ctx, p))
	got, err := s.GetProxyConfig(ctx, "", "PROXY1")
	must(t, err)
	if !reflect.DeepEqual(got, p) || got.Version != 1 {
		t.Fatalf("got %+v, want %+v", got, p)
	}
	// (address, port) is unique per tenant, the address case-insensitively.
	dup := &store.ProxyConfig{Name: "proxy2", Address: "www.VPRODEMO.com", InfoFormat: 201, Port: 900, NetworkDNSSuffix: "x.com"}
	wantErr(t, s.CreateProxyConfig(ctx, dup), store.ErrDuplicate)
	dup.Port = 901
	must(t, s.CreateProxyConfig(ctx, dup))
	other := &store.ProxyConfig{TenantID: "t2", Name: "proxy1", Address: "www.vprodemo.com", InfoFormat: 201, Port: 900, NetworkDNSSuffix: "intel.com"}
	must(t, s.CreateProxyConfig(ctx, other))

	// Updating into another proxy's (address, port) is a duplicate.
	dup.Port = 900
	wantErr(t, s.UpdateProxyConfig(ctx, dup), store.ErrDuplicate)
	dup.Address, dup.InfoFormat, dup.NetworkDNSSuffix = "10.0.0.1", 3, "corp.example.com"
	must(t, s.UpdateProxyConfig(ctx, dup))
	got, _ = s.GetProxyConfig(ctx, "", "proxy2")
	if !reflect.DeepEqual(got, dup) {
		t.Fatalf("after update got %+v, want %+v", got, dup)
	}
}

// ---- profiles ----

func seedRefs(t *testing.T, s store.Store, tenant string) {
	ctx := t.Context()
	must(t, s.CreateCIRAConfig(ctx, cira(tenant, "CiraOne", 1)))
	must(t, s.CreateIEEE8021xConfig(ctx, ieee(tenant, "Wired1", true)))
	must(t, s.CreateIEEE8021xConfig(ctx, ieee(tenant, "Wless1", false)))
	for i, n := range []string{"Home", "office", "Lab"} {
		must(t, s.CreateWirelessConfig(ctx, wireless(tenant, n, i)))
	}
	for i, n := range []string{"ProxyA", "proxyB"} {
		must(t, s.CreateProxyConfig(ctx, proxy(tenant, n, i)))
	}
}

func testProfileFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRefs(t, s, "")
	p := &store.Profile{
		Name: "Profile1", Activation: "acmactivate", GenerateRandomPassword: false, GenerateRandomMEBxPassword: true,
		CIRAConfigName: ptr("ciraone"), Tags: []string{"tag1", "tag2"}, DHCPEnabled: true,
		IPSyncEnabled: ptr(false), LocalWifiSyncEnabled: ptr(true), UEFIWifiSyncEnabled: nil,
		TLSMode: nil, TLSSigningAuthority: nil, UserConsent: "None", IDEREnabled: true, KVMEnabled: false, SOLEnabled: true,
		IEEE8021xProfileName: ptr("WIRED1"),
		WifiConfigs:          []store.ProfileWifi{{Name: "office", Priority: 2}, {Name: "HOME", Priority: 1}, {Name: "lab", Priority: 3}},
		ProxyConfigs:         []store.ProfileProxy{{Name: "proxyb", Priority: 1}, {Name: "proxya", Priority: 2}},
		PowerPolicy:          "Desktop: ON in S0, ME Wake in S3, S4-5",
		UserACLs: []store.UserACL{
			{Username: "operator", Realms: []int{2, 3, 5}, AccessPermission: 2},
			{Username: "reader", Realms: []int{}, AccessPermission: 1},
		},
		SecretID: "sec-p1",
	}
	must(t, s.CreateProfile(ctx, p))
	if p.Version != 1 {
		t.Fatalf("version = %d", p.Version)
	}
	got, err := s.GetProfile(ctx, "", "PROFILE1")
	must(t, err)
	want := *p
	// References come back with the referenced objects' stored names, links by priority.
	want.CIRAConfigName, want.IEEE8021xProfileName = ptr("CiraOne"), ptr("Wired1")
	want.WifiConfigs = []store.ProfileWifi{{Name: "Home", Priority: 1}, {Name: "office", Priority: 2}, {Name: "Lab", Priority: 3}}
	want.ProxyConfigs = []store.ProfileProxy{{Name: "proxyB", Priority: 1}, {Name: "ProxyA", Priority: 2}}
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("got  %+v\nwant %+v", got, &want)
	}
	l, err := s.ListProfiles(ctx, "", all())
	must(t, err)
	if len(l) != 1 || l[0].PowerPolicy != p.PowerPolicy || !reflect.DeepEqual(l[0].UserACLs, p.UserACLs) {
		t.Fatalf("listed %+v", l)
	}

	// Update replaces everything, links included, and clears nullable fields.
	u := &store.Profile{
		Name: "profile1", Activation: "ccmactivate", GenerateRandomPassword: true, Tags: nil, DHCPEnabled: false,
		UEFIWifiSyncEnabled: ptr(true), TLSMode: ptr(4), TLSSigningAuthority: ptr("SelfSigned"), UserConsent: "All",
		KVMEnabled: true, WifiConfigs: []store.ProfileWifi{{Name: "lab", Priority: 7}}, SecretID: "sec-p1b", Version: 1,
		UserACLs: []store.UserACL{{Username: "reader", Realms: nil, AccessPermission: 0}},
	}
	must(t, s.UpdateProfile(ctx, u))
	if u.Version != 2 || u.Tags == nil || u.WifiConfigs == nil || u.ProxyConfigs == nil || u.PowerPolicy != "" ||
		len(u.UserACLs) != 1 || u.UserACLs[0].Realms == nil {
		t.Fatalf("after update: %+v", u)
	}
	got, err = s.GetProfile(ctx, "", "profile1")
	must(t, err)
	want2 := *u
	want2.Name = "Profile1" // the stored name keeps its case
	want2.WifiConfigs = []store.ProfileWifi{{Name: "Lab", Priority: 7}}
	if !reflect.DeepEqual(got, &want2) {
		t.Fatalf("got  %+v\nwant %+v", got, &want2)
	}
	// The links that were dropped no longer hold their configs.
	must(t, s.DeleteWirelessConfig(ctx, "", "home"))
	must(t, s.DeleteProxyConfig(ctx, "", "proxya"))
	must(t, s.DeleteCIRAConfig(ctx, "", "ciraone"))
	must(t, s.DeleteIEEE8021xConfig(ctx, "", "wired1"))

	// Stale version.
	u.Version = 1
	wantErr(t, s.UpdateProfile(ctx, u), store.ErrConflict)
	// Deleting the profile releases its links.
	wantRef(t, s.DeleteWirelessConfig(ctx, "", "LAB"), store.ErrInUse, "profile", "Profile1")
	must(t, s.DeleteProfile(ctx, "", "PROFILE1"))
	must(t, s.DeleteWirelessConfig(ctx, "", "LAB"))
}

func testProfileReferences(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRefs(t, s, "")
	seedRefs(t, s, "t2")
	must(t, s.CreateCIRAConfig(ctx, cira("t2", "onlyInT2", 9)))

	cases := []struct {
		name       string
		mod        func(p *store.Profile)
		kind, miss string
	}{
		{"cira", func(p *store.Profile) { p.CIRAConfigName = ptr("nocira") }, "ciraconfig", "nocira"},
		{"cira other tenant", func(p *store.Profile) { p.CIRAConfigName = ptr("onlyInT2") }, "ciraconfig", "onlyInT2"},
		{"ieee8021x", func(p *store.Profile) { p.IEEE8021xProfileName = ptr("no8021x") }, "ieee8021x", "no8021x"},
		{"wireless", func(p *store.Profile) {
			p.WifiConfigs = []store.ProfileWifi{{Name: "nowifi", Priority: 1}, {Name: "home", Priority: 2}, {Name: "gone", Priority: 3}}
		}, "wireless", "nowifi,gone"},
		{"proxy", func(p *store.Profile) { p.ProxyConfigs = []store.ProfileProxy{{Name: "noproxy", Priority: 1}} }, "proxy", "noproxy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := profile("", "refprofile")
			tc.mod(p)
			wantRef(t, s.CreateProfile(ctx, p), store.ErrMissingReference, tc.kind, tc.miss)
			if _, err := s.GetProfile(ctx, "", "refprofile"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("failed create left a profile: %v", err)
			}
			ok := profile("", "refprofile-"+strings.ReplaceAll(tc.name, " ", "-"))
			must(t, s.CreateProfile(ctx, ok))
			tc.mod(ok)
			wantRef(t, s.UpdateProfile(ctx, ok), store.ErrMissingReference, tc.kind, tc.miss)
			got, err := s.GetProfile(ctx, "", ok.Name)
			must(t, err)
			if got.Version != 1 || got.CIRAConfigName != nil || len(got.WifiConfigs) != 0 {
				t.Fatalf("failed update changed the profile: %+v", got)
			}
		})
	}

	// A wireless config listed twice is rejected.
	p := profile("", "twice")
	p.WifiConfigs = []store.ProfileWifi{{Name: "home", Priority: 1}, {Name: "HOME", Priority: 2}}
	wantErr(t, s.CreateProfile(ctx, p), store.ErrDuplicate)

	// In use: every referenced kind names the referring profile.
	user := profile("", "User1")
	user.CIRAConfigName, user.IEEE8021xProfileName = ptr("ciraone"), ptr("wired1")
	user.WifiConfigs = []store.ProfileWifi{{Name: "office", Priority: 1}}
	user.ProxyConfigs = []store.ProfileProxy{{Name: "proxyB", Priority: 1}}
	must(t, s.CreateProfile(ctx, user))
	wantRef(t, s.DeleteCIRAConfig(ctx, "", "CIRAONE"), store.ErrInUse, "profile", "User1")
	wantRef(t, s.DeleteIEEE8021xConfig(ctx, "", "WIRED1"), store.ErrInUse, "profile", "User1")
	wantRef(t, s.DeleteWirelessConfig(ctx, "", "OFFICE"), store.ErrInUse, "profile", "User1")
	wantRef(t, s.DeleteProxyConfig(ctx, "", "PROXYB"), store.ErrInUse, "profile", "User1")
	// The same names in another tenant are free.
	must(t, s.DeleteCIRAConfig(ctx, "t2", "ciraone"))
	must(t, s.DeleteWirelessConfig(ctx, "t2", "office"))
	must(t, s.DeleteProxyConfig(ctx, "t2", "proxyb"))
	must(t, s.DeleteIEEE8021xConfig(ctx, "t2", "wired1"))
	// Deleting missing objects.
	for _, err := range []error{
		s.DeleteCIRAConfig(ctx, "", "x"), s.DeleteIEEE8021xConfig(ctx, "", "x"), s.DeleteWirelessConfig(ctx, "", "x"),
		s.DeleteProxyConfig(ctx, "", "x"), s.DeleteProfile(ctx, "", "x"), s.DeleteDomain(ctx, "", "x"),
	} {
		wantErr(t, err, store.ErrNotFound)
	}
	// After the profile is gone, everything it used can be deleted.
	must(t, s.DeleteProfile(ctx, "", "user1"))
	must(t, s.DeleteCIRAConfig(ctx, "", "CIRAONE"))
	must(t, s.DeleteIEEE8021xConfig(ctx, "", "WIRED1"))
	must(t, s.DeleteWirelessConfig(ctx, "", "OFFICE"))
	must(t, s.DeleteProxyConfig(ctx, "", "PROXYB"))
}

func testProfileListLinks(t *testing.T, s store.Store) {
	ctx := t.Context()
	seedRefs(t, s, "")
	seedRefs(t, s, "t2")
	wifis := []string{"Home", "office", "Lab"}
	var want []store.Profile
	for i := range 12 {
		p := profile("", fmt.Sprintf("P%02d", i))
		if i%2 == 0 {
			p.Name = strings.ToLower(p.Name)
		}
		p.Tags = []string{fmt.Sprint(i)}
		for j := 0; j < i%4; j++ {
			p.WifiConfigs = append(p.WifiConfigs, store.ProfileWifi{Name: wifis[j], Priority: j + 1})
		}
		if i%3 == 0 {
			p.ProxyConfigs = []store.ProfileProxy{{Name: "proxyB", Priority: 1}, {Name: "ProxyA", Priority: 2}}
		}
		if i%5 == 0 {
			p.CIRAConfigName = ptr("CiraOne")
		}
		must(t, s.CreateProfile(ctx, p))
		want = append(want, *p)
		// Same names in another tenant, with other links.
		q := profile("t2", p.Name)
		q.WifiConfigs = []store.ProfileWifi{{Name: "Lab", Priority: 9}}
		must(t, s.CreateProfile(ctx, q))
	}
	got, err := s.ListProfiles(ctx, "", all())
	must(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("list:\n got %+v\nwant %+v", got, want)
	}
	got, err = s.ListProfiles(ctx, "", store.Page{Top: 5, Skip: 4})
	must(t, err)
	if !reflect.DeepEqual(got, want[4:9]) {
		t.Fatalf("page:\n got %+v\nwant %+v", got, want[4:9])
	}
	got, err = s.ListProfiles(ctx, "t2", store.Page{Top: 3})
	must(t, err)
	for _, p := range got {
		if len(p.WifiConfigs) != 1 || p.WifiConfigs[0] != (store.ProfileWifi{Name: "Lab", Priority: 9}) || len(p.ProxyConfigs) != 0 {
			t.Fatalf("t2 profile %s has links %+v %+v", p.Name, p.WifiConfigs, p.ProxyConfigs)
		}
	}
	if n, err := s.CountProfiles(ctx, ""); err != nil || n != 12 {
		t.Fatalf("count = %d, %v", n, err)
	}
}

// ---- devices ----

const (
	guid1 = "143e4567-e89b-12d3-a456-426614174001"
	guid2 = "143e4567-e89b-12d3-a456-426614174002"
	guid3 = "143e4567-e89b-12d3-a456-426614174003"
	guid4 = "143e4567-e89b-12d3-a456-426614174004"
)

func testDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	lu := tm("2026-01-02T03:04:05.123456Z")
	d := &store.Device{
		GUID: strings.ToUpper(guid1), TenantID: "", Hostname: "host1", FriendlyName: "Friendly", DNSSuffix: "test.com",
		MPSUsername: "admin", Tags: []string{"acm", "lab"}, ProfileName: "profile1", ConnectionStatus: true,
		MPSInstance: ptr("10.1.2.3"), LastConnected: ptr(tm("2026-01-02T03:04:05Z")), LastSeen: ptr(tm("2026-01-02T03:34:05.5Z")),
		DeviceInfo: &store.DeviceInfo{FWVersion: "16.1.25", FWBuild: "2128", FWSku: "16392", CurrentMode: "2",
			Features: "AMT Pro Corporate ", IPAddress: "10.0.0.5", LastUpdated: &lu,
			Status: map[string]any{"Status": "Admin control mode.", "Network": "Wired Network Configured"}},
	}
	before := time.Now().Add(-time.Second)
	created, err := s.PutDevice(ctx, d)
	must(t, err)
	if !created {
		t.Fatal("first PutDevice reported created=false")
	}
	if d.GUID != guid1 || d.CreatedAt.Before(before) || !d.UpdatedAt.Equal(d.CreatedAt) {
		t.Fatalf("after put: GUID %q CreatedAt %v UpdatedAt %v", d.GUID, d.CreatedAt, d.UpdatedAt)
	}
	got, err := s.GetDevice(ctx, strings.ToUpper(guid1))
	must(t, err)
	if !reflect.DeepEqual(got, d) {
		t.Fatalf("got  %+v\nwant %+v\ninfo %+v / %+v", got, d, got.DeviceInfo, d.DeviceInfo)
	}

	// Second put replaces the record and keeps CreatedAt; the connection
	// fields stay as stored (they belong to SetDeviceConnection).
	createdAt := d.CreatedAt
	d2 := &store.Device{GUID: guid1, TenantID: "", Hostname: "host1b", Tags: nil, ConnectionStatus: false,
		LastDisconnected: ptr(tm("2026-02-03T04:05:06Z"))}
	created, err = s.PutDevice(ctx, d2)
	must(t, err)
	if created {
		t.Fatal("second PutDevice reported created=true")
	}
	if !d2.CreatedAt.Equal(createdAt) || d2.UpdatedAt.Before(createdAt) {
		t.Fatalf("times after replace: created %v (want %v) updated %v", d2.CreatedAt, createdAt, d2.UpdatedAt)
	}
	got, err = s.GetDevice(ctx, guid1)
	must(t, err)
	if !reflect.DeepEqual(got, d2) || got.DeviceInfo != nil || got.Tags == nil || got.Hostname != "host1b" {
		t.Fatalf("after replace got %+v\nwant %+v", got, d2)
	}
	if !got.ConnectionStatus || got.MPSInstance == nil || *got.MPSInstance != "10.1.2.3" ||
		got.LastDisconnected != nil || !got.LastConnected.Equal(*d.LastConnected) {
		t.Fatalf("PutDevice overwrote the connection fields: %+v", got)
	}

	// Connection changes touch only the connection fields; a disconnect
	// applies only while the instance named owns the device.
	at := tm("2026-03-04T05:06:07Z")
	seen := tm("2026-03-04T05:06:00Z")
	wantErr(t, s.SetDeviceConnection(ctx, guid1, store.DeviceConnection{Connected: false, Instance: "other", At: at}), store.ErrNotFound)
	must(t, s.SetDeviceConnection(ctx, guid1, store.DeviceConnection{Connected: false, Instance: "10.1.2.3", At: at, LastSeen: &seen}))
	got, _ = s.GetDevice(ctx, guid1)
	if got.ConnectionStatus || got.MPSInstance != nil || got.LastDisconnected == nil || !got.LastDisconnected.Equal(at) ||
		!got.LastSeen.Equal(seen) || got.Hostname != "host1b" {
		t.Fatalf("after disconnect: %+v", got)
	}
	must(t, s.SetDeviceConnection(ctx, strings.ToUpper(guid1), store.DeviceConnection{Connected: true, Instance: "b", At: at.Add(time.Minute)}))
	got, _ = s.GetDevice(ctx, guid1)
	if !got.ConnectionStatus || got.MPSInstance == nil || *got.MPSInstance != "b" || !got.LastConnected.Equal(at.Add(time.Minute)) || !got.LastSeen.Equal(seen) {
		t.Fatalf("after connect: %+v", got)
	}
	wantErr(t, s.SetDeviceConnection(ctx, guid4, store.DeviceConnection{Connected: true, Instance: "b", At: at}), store.ErrNotFound)
	// A batch applies in order and skips what does not apply.
	must(t, s.SetDeviceConnections(ctx, []store.DeviceConnectionChange{
		{GUID: guid1, DeviceConnection: store.DeviceConnection{Connected: false, Instance: "b", At: at.Add(2 * time.Minute)}},
		{GUID: guid4, DeviceConnection: store.DeviceConnection{Connected: true, Instance: "b", At: at}}, // no such device
		{GUID: guid1, DeviceConnection: store.DeviceConnection{Connected: true, Instance: "c", At: at.Add(3 * time.Minute)}},
		{GUID: guid1, DeviceConnection: store.DeviceConnection{Connected: false, Instance: "b", At: at.Add(4 * time.Minute)}}, // not the owner
	}))
	got, _ = s.GetDevice(ctx, guid1)
	if !got.ConnectionStatus || *got.MPSInstance != "c" || !got.LastConnected.Equal(at.Add(3*time.Minute)) ||
		!got.LastDisconnected.Equal(at.Add(2*time.Minute)) {
		t.Fatalf("after batch: %+v", got)
	}

	// A GUID belongs to one tenant.
	_, err = s.PutDevice(ctx, &store.Device{GUID: guid1, TenantID: "other", Hostname: "evil"})
	wantErr(t, err, store.ErrDuplicate)
	got, _ = s.GetDevice(ctx, guid1)
	if got.Hostname != "host1b" || got.TenantID != "" {
		t.Fatalf("other tenant's put changed the device: %+v", got)
	}
	created, err = s.PutDevice(ctx, &store.Device{GUID: guid2, TenantID: "other", Hostname: "h2"})
	must(t, err)
	if !created {
		t.Fatal("created=false for a new device")
	}
	got, err = s.GetDevice(ctx, guid2) // any tenant
	must(t, err)
	if got.TenantID != "other" {
		t.Fatalf("tenant = %q", got.TenantID)
	}

	_, err = s.GetDevice(ctx, guid3)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteDevice(ctx, guid3), store.ErrNotFound)
	must(t, s.DeleteDevice(ctx, strings.ToUpper(guid1)))
	_, err = s.GetDevice(ctx, guid1)
	wantErr(t, err, store.ErrNotFound)
	created, err = s.PutDevice(ctx, &store.Device{GUID: guid1})
	must(t, err)
	if !created {
		t.Fatal("put after delete: created=false")
	}
}

func testDeviceFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	devs := []store.Device{
		{GUID: guid3, Hostname: "alpha", FriendlyName: "A", Tags: []string{"acm", "lab"}, ConnectionStatus: true},
		{GUID: guid1, Hostname: "bravo", FriendlyName: "B", Tags: []string{"ccm"}, ConnectionStatus: false},
		{GUID: guid4, Hostname: "alpha", FriendlyName: "C", Tags: []string{"lab"}, ConnectionStatus: true},
		{GUID: guid2, Hostname: "charlie", FriendlyName: "A", Tags: nil, ConnectionStatus: false},
		{GUID: "243e4567-e89b-12d3-a456-426614174000", TenantID: "t2", Hostname: "alpha", FriendlyName: "A",
			Tags: []string{"acm", "t2only"}, ConnectionStatus: true},
	}
	for i := range devs {
		if _, err := s.PutDevice(ctx, &devs[i]); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		f    store.DeviceFilter
		p    store.Page
		want []string
	}{
		{"all by guid", store.DeviceFilter{}, all(), []string{guid1, guid2, guid3, guid4}},
		{"page", store.DeviceFilter{}, store.Page{Top: 2, Skip: 1}, []string{guid2, guid3}},
		{"top 0", store.DeviceFilter{}, store.Page{}, []string{}},
		{"hostname", store.DeviceFilter{Hostname: "alpha"}, all(), []string{guid3, guid4}},
		{"hostname is exact", store.DeviceFilter{Hostname: "ALPHA"}, all(), []string{}},
		{"hostname wins over friendly name and tags", store.DeviceFilter{Hostname: "bravo", FriendlyName: "A", Tags: []string{"lab"}}, all(), []string{guid1}},
		{"friendly name", store.DeviceFilter{FriendlyName: "A"}, all(), []string{guid2, guid3}},
		{"friendly name wins over tags", store.DeviceFilter{FriendlyName: "C", Tags: []string{"ccm"}}, all(), []string{guid4}},
		{"tags OR", store.DeviceFilter{Tags: []string{"ccm", "acm"}}, all(), []string{guid1, guid3}},
		{"tags OR one", store.DeviceFilter{Tags: []string{"lab"}}, all(), []string{guid3, guid4}},
		{"tags AND", store.DeviceFilter{Tags: []string{"lab", "acm"}, TagsMatchAll: true}, all(), []string{guid3}},
		{"tags AND repeated", store.DeviceFilter{Tags: []string{"lab", "lab"}, TagsMatchAll: true}, all(), []string{guid3, guid4}},
		{"tags AND none", store.DeviceFilter{Tags: []string{"lab", "ccm"}, TagsMatchAll: true}, all(), []string{}},
		{"tags of another tenant", store.DeviceFilter{Tags: []string{"t2only"}}, all(), []string{}},
		{"tags paged", store.DeviceFilter{Tags: []string{"lab", "ccm"}}, store.Page{Top: 1, Skip: 1}, []string{guid3}},
		{"connected", store.DeviceFilter{Connected: ptr(true)}, all(), []string{guid3, guid4}},
		{"disconnected", store.DeviceFilter{Connected: ptr(false)}, all(), []string{guid1, guid2}},
		{"hostname and connected", store.DeviceFilter{Hostname: "alpha", Connected: ptr(false)}, all(), []string{}},
		{"tags and connected", store.DeviceFilter{Tags: []string{"lab", "ccm"}, Connected: ptr(true)}, all(), []string{guid3, guid4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := s.ListDevices(ctx, "", tc.f, tc.p)
			got, err := names(l, err, func(d store.Device) string { return d.GUID })
			must(t, err)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ListDevices(%+v, %+v) = %v, want %v", tc.f, tc.p, got, tc.want)
			}
			if tc.p == all() {
				n, err := s.CountDevices(ctx, "", tc.f)
				must(t, err)
				if n != len(tc.want) {
					t.Fatalf("CountDevices(%+v) = %d, want %d", tc.f, n, len(tc.want))
				}
			}
		})
	}
	tags, err := s.DeviceTags(ctx, "")
	must(t, err)
	if !reflect.DeepEqual(tags, []string{"acm", "ccm", "lab"}) {
		t.Fatalf("DeviceTags = %v", tags)
	}
	tags, err = s.DeviceTags(ctx, "t2")
	must(t, err)
	if !reflect.DeepEqual(tags, []string{"acm", "t2only"}) {
		t.Fatalf("DeviceTags(t2) = %v", tags)
	}
	l, err := s.ListDevices(ctx, "t2", store.DeviceFilter{}, all())
	must(t, err)
	if len(l) != 1 || l[0].TenantID != "t2" {
		t.Fatalf("t2 devices = %+v", l)
	}
}

// ---- events ----

func testEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	at := tm("2026-03-04T05:06:07.654321Z")
	for i := range 5 {
		e := &store.ProvisioningEvent{GUID: strings.ToUpper(guid1), TenantID: "", Session: "s1",
			Step: fmt.Sprintf("step%d", i), Result: "ok", Detail: fmt.Sprintf("detail %d", i)}
		if i == 2 {
			e.Time = at
		}
		before := time.Now().Add(-time.Second)
		must(t, s.AppendEvent(ctx, e))
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d: Seq = %d", i, e.Seq)
		}
		if i == 2 && !e.Time.Equal(at) {
			t.Fatalf("explicit time changed to %v", e.Time)
		}
		if i != 2 && e.Time.Before(before) {
			t.Fatalf("default time %v", e.Time)
		}
		// Events of another device have their own sequence.
		o := &store.ProvisioningEvent{GUID: guid2, TenantID: "t2", Step: "x", Result: "info"}
		must(t, s.AppendEvent(ctx, o))
		if o.Seq != int64(i+1) {
			t.Fatalf("other device's Seq = %d", o.Seq)
		}
	}
	l, err := s.ListEvents(ctx, guid1, all())
	must(t, err)
	if len(l) != 5 {
		t.Fatalf("%d events", len(l))
	}
	for i, e := range l {
		if e.Seq != int64(i+1) || e.Step != fmt.Sprintf("step%d", i) || e.GUID != guid1 || e.Session != "s1" ||
			e.Result != "ok" || e.Detail != fmt.Sprintf("detail %d", i) {
			t.Fatalf("event %d = %+v", i, e)
		}
	}
	if !l[2].Time.Equal(at) {
		t.Fatalf("stored time %v, want %v", l[2].Time, at)
	}
	l, err = s.ListEvents(ctx, strings.ToUpper(guid1), store.Page{Top: 2, Skip: 3})
	must(t, err)
	if len(l) != 2 || l[0].Seq != 4 || l[1].Seq != 5 {
		t.Fatalf("page = %+v", l)
	}
	l, err = s.ListEvents(ctx, guid2, all())
	must(t, err)
	if len(l) != 5 || l[4].TenantID != "t2" {
		t.Fatalf("other device events = %+v", l)
	}
}

// ---- sealed blobs and settings ----

func testSealed(t *testing.T, s store.Store) {
	ctx := t.Context()
	const k = "tenants//profiles/abc"
	_, err := s.GetSealed(ctx, k)
	wantErr(t, err, store.ErrNotFound)
	blob := []byte{0, 1, 2, 0xff, 0, 'x'}
	must(t, s.PutSealed(ctx, k, blob))
	got, err := s.GetSealed(ctx, k)
	must(t, err)
	if !slices.Equal(got, blob) {
		t.Fatalf("got %x", got)
	}
	must(t, s.PutSealed(ctx, k, []byte("second")))
	got, _ = s.GetSealed(ctx, k)
	if string(got) != "second" {
		t.Fatalf("after replace %q", got)
	}
	// Keys are exact (case-sensitive).
	_, err = s.GetSealed(ctx, strings.ToUpper(k))
	wantErr(t, err, store.ErrNotFound)
	must(t, s.PutSealed(ctx, "other", []byte{}))
	got, err = s.GetSealed(ctx, "other")
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("empty blob came back as %x", got)
	}
	// Create writes only where nothing is; concurrent creators: one wins.
	wantErr(t, s.CreateSealed(ctx, k, []byte("third")), store.ErrDuplicate)
	if got, _ = s.GetSealed(ctx, k); string(got) != "second" {
		t.Fatalf("after a refused create %q", got)
	}
	errs := make(chan error, 8)
	for i := range 8 {
		go func() { errs <- s.CreateSealed(ctx, "created", []byte{byte(i)}) }()
	}
	won := 0
	for range 8 {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrDuplicate):
			t.Fatalf("concurrent create: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 8 concurrent creates succeeded", won)
	}
	must(t, s.DeleteSealed(ctx, "created"))
	must(t, s.DeleteSealed(ctx, k))
	_, err = s.GetSealed(ctx, k)
	wantErr(t, err, store.ErrNotFound)
	must(t, s.DeleteSealed(ctx, k))                  // absent: no error
	must(t, s.CreateSealed(ctx, k, []byte("again"))) // deleted: creatable
	if _, err := s.GetSealed(ctx, "other"); err != nil {
		t.Fatalf("unrelated blob gone: %v", err)
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetSetting(ctx, "admin.passwordHash")
	wantErr(t, err, store.ErrNotFound)
	must(t, s.PutSetting(ctx, "admin.passwordHash", "$2a$10$abc"))
	must(t, s.PutSetting(ctx, "other", ""))
	v, err := s.GetSetting(ctx, "admin.passwordHash")
	must(t, err)
	if v != "$2a$10$abc" {
		t.Fatalf("got %q", v)
	}
	must(t, s.PutSetting(ctx, "admin.passwordHash", "new"))
	v, _ = s.GetSetting(ctx, "admin.passwordHash")
	if v != "new" {
		t.Fatalf("after replace %q", v)
	}
	if v, err := s.GetSetting(ctx, "other"); err != nil || v != "" {
		t.Fatalf("empty setting = %q, %v", v, err)
	}
}

// ---- concurrency ----

func testConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const workers, each = 8, 12
	seedRefs(t, s, "")
	must(t, s.CreateCIRAConfig(ctx, cira("", "contended", 0)))

	var wg sync.WaitGroup
	errs := make(chan error, workers*each*4)
	var mu sync.Mutex
	wins := 0
	created := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// Distinct creates with links and references.
				p := profile("", fmt.Sprintf("w%d-p%d", w, i))
				p.CIRAConfigName = ptr("ciraone")
				p.WifiConfigs = []store.ProfileWifi{{Name: "home", Priority: 1}}
				if err := s.CreateProfile(ctx, p); err != nil {
					errs <- fmt.Errorf("create profile: %w", err)
				}
				// Events for one device from everyone.
				if err := s.AppendEvent(ctx, &store.ProvisioningEvent{GUID: guid1, Step: fmt.Sprint(w, i), Result: "ok"}); err != nil {
					errs <- fmt.Errorf("append event: %w", err)
				}
				// Reads interleaved with writes.
				if _, err := s.ListProfiles(ctx, "", store.Page{Top: 5}); err != nil {
					errs <- fmt.Errorf("list profiles: %w", err)
				}
			}
			// Everybody updates the same object from the same version: one wins.
			c := cira("", "contended", w)
			c.Version = 1
			switch err := s.UpdateCIRAConfig(ctx, c); {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, store.ErrConflict):
				errs <- fmt.Errorf("contended update: %w", err)
			}
			// Everybody puts the same new device: one creates it.
			ok, err := s.PutDevice(ctx, &store.Device{GUID: guid2, Hostname: fmt.Sprint("h", w)})
			if err != nil {
				errs <- fmt.Errorf("put device: %w", err)
			}
			if ok {
				mu.Lock()
				created++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if wins != 1 {
		t.Errorf("%d concurrent updates from version 1 succeeded, want 1", wins)
	}
	if created != 1 {
		t.Errorf("%d concurrent puts of one new device reported created, want 1", created)
	}
	if n, err := s.CountProfiles(ctx, ""); err != nil || n != workers*each {
		t.Errorf("CountProfiles = %d, %v; want %d", n, err, workers*each)
	}
	ev, err := s.ListEvents(ctx, guid1, store.Page{Top: 10 * workers * each})
	must(t, err)
	if len(ev) != workers*each {
		t.Fatalf("%d events, want %d", len(ev), workers*each)
	}
	for i, e := range ev {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has Seq %d: sequence has gaps or duplicates", i, e.Seq)
		}
	}
	c, err := s.GetCIRAConfig(ctx, "", "contended")
	must(t, err)
	if c.Version != 2 {
		t.Fatalf("contended version = %d, want 2", c.Version)
	}
	wantRef(t, s.DeleteWirelessConfig(ctx, "", "home"), store.ErrInUse, "profile", "w0-p0")
}

// testDeleteRacesReference: a delete racing with a create that refers to the
// same object ends in exactly one consistent outcome, never a dangling link.
func testDeleteRacesReference(t *testing.T, s store.Store) {
	ctx := t.Context()
	const rounds = 15
	for i := range rounds {
		name := fmt.Sprintf("race%d", i)
		must(t, s.CreateWirelessConfig(ctx, wireless("", name, i)))
		p := profile("", "user-"+name)
		p.WifiConfigs = []store.ProfileWifi{{Name: name, Priority: 1}}
		var createErr, deleteErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); createErr = s.CreateProfile(ctx, p) }()
		go func() { defer wg.Done(); deleteErr = s.DeleteWirelessConfig(ctx, "", name) }()
		wg.Wait()
		switch {
		case createErr == nil && errors.Is(deleteErr, store.ErrInUse):
			got, err := s.GetProfile(ctx, "", p.Name)
			must(t, err)
			if len(got.WifiConfigs) != 1 || got.WifiConfigs[0].Name != name {
				t.Fatalf("round %d: profile links %+v", i, got.WifiConfigs)
			}
		case errors.Is(createErr, store.ErrMissingReference) && deleteErr == nil:
			if _, err := s.GetProfile(ctx, "", p.Name); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: profile exists after failed create: %v", i, err)
			}
		default:
			t.Fatalf("round %d: create = %v, delete = %v", i, createErr, deleteErr)
		}
	}
}

func testCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.GetProfile(ctx, "", "x"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetProfile with a canceled context = %v", err)
	}
	if err := s.CreateCIRAConfig(ctx, cira("", "x", 1)); err == nil {
		t.Fatal("CreateCIRAConfig with a canceled context succeeded")
	}
	if _, err := s.GetCIRAConfig(t.Context(), "", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("canceled create stored a row: %v", err)
	}
}
