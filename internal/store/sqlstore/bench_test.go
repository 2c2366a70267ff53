package sqlstore_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/internal/testutil/pgtest"
)

// Benchmarks of the hot paths, on both dialects:
//
//	go test -run XXX -bench . -benchmem ./internal/store/sqlstore/

func benchStores(b *testing.B, fn func(b *testing.B, s store.Store)) {
	b.Run("SQLite", func(b *testing.B) {
		s, err := sqlstore.Open(b.Context(), filepath.Join(b.TempDir(), "amtd.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		fn(b, s)
	})
	b.Run("Postgres", func(b *testing.B) {
		s, err := sqlstore.Open(b.Context(), pgtest.DSN(b), nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		fn(b, s)
	})
}

// 25 profiles (the API's default page), each with 3 wifi and 2 proxy links.
func BenchmarkListProfiles(b *testing.B) {
	benchStores(b, func(b *testing.B, s store.Store) {
		ctx := b.Context()
		for i := range 3 {
			if err := s.CreateWirelessConfig(ctx, &store.WirelessConfig{Name: fmt.Sprint("w", i), AuthenticationMethod: 6, EncryptionMethod: 4, SSID: "s"}); err != nil {
				b.Fatal(err)
			}
		}
		for i := range 2 {
			if err := s.CreateProxyConfig(ctx, &store.ProxyConfig{Name: fmt.Sprint("x", i), Address: fmt.Sprint("p", i, ".example.com"), Port: 80, InfoFormat: 201}); err != nil {
				b.Fatal(err)
			}
		}
		for i := range 25 {
			p := &store.Profile{Name: fmt.Sprintf("profile%02d", i), Activation: "ccmactivate", DHCPEnabled: true, UserConsent: "All",
				WifiConfigs:  []store.ProfileWifi{{Name: "w0", Priority: 1}, {Name: "w1", Priority: 2}, {Name: "w2", Priority: 3}},
				ProxyConfigs: []store.ProfileProxy{{Name: "x0", Priority: 1}, {Name: "x1", Priority: 2}}}
			if err := s.CreateProfile(ctx, p); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		for b.Loop() {
			l, err := s.ListProfiles(ctx, "", store.Page{Top: 25})
			if err != nil || len(l) != 25 {
				b.Fatal(len(l), err)
			}
		}
	})
}

func BenchmarkGetDevice(b *testing.B) {
	benchStores(b, func(b *testing.B, s store.Store) {
		ctx := b.Context()
		guid := "143e4567-e89b-12d3-a456-426614174000"
		if _, err := s.PutDevice(ctx, &store.Device{GUID: guid, Hostname: "h", Tags: []string{"a", "b"},
			DeviceInfo: &store.DeviceInfo{FWVersion: "16.1.25"}}); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetDevice(ctx, guid); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPutDevice(b *testing.B) {
	benchStores(b, func(b *testing.B, s store.Store) {
		ctx := b.Context()
		d := &store.Device{GUID: "143e4567-e89b-12d3-a456-426614174000", Hostname: "h", Tags: []string{"a"}}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.PutDevice(ctx, d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
