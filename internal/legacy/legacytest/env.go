// Package legacytest gives legacy-provisioning tests real components: an
// SQLite store and a sealed local secret store in a temporary folder.
package legacytest

import (
	"crypto/rand"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/secrets/local"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

// Open returns a fresh SQLite store and a sealed local secret store on it,
// closed by t.Cleanup.
func Open(t testing.TB) (store.Store, secrets.Store) {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "amtd.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	sec, err := local.New(st, key)
	if err != nil {
		t.Fatal(err)
	}
	return st, sec
}
