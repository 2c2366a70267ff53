package sqlstore_test

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/internal/store/storetest"
	"github.com/amtd-project/amtd/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlstore.Open(t.Context(), pgtest.DSN(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

// Several instances starting together on one database migrate it once.
func TestPostgresConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 6
	stores := make([]*sqlstore.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = sqlstore.Open(t.Context(), dsn, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	if stores[0].Dialect() != "POSTGRES" {
		t.Fatalf("dialect %q", stores[0].Dialect())
	}
	// All instances see one database.
	if err := stores[1].PutSetting(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	if v, err := stores[n-1].GetSetting(t.Context(), "k"); err != nil || v != "v" {
		t.Fatalf("GetSetting = %q, %v", v, err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows, versions int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*), count(DISTINCT version) FROM schema_migrations").Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows == 0 || rows != versions {
		t.Fatalf("schema_migrations has %d rows for %d versions", rows, versions)
	}
	// A schema newer than this binary is refused.
	if _, err := db.ExecContext(t.Context(), "INSERT INTO schema_migrations VALUES (9999, '9999_future', 'now')"); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlstore.Open(t.Context(), dsn, nil); err == nil {
		s.Close()
		t.Fatal("Open accepted a database with a newer schema")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("unexpected error: %v", err)
	}
}

// Connection errors never show the password of the DSN.
func TestPostgresErrorHidesPassword(t *testing.T) {
	const pw = "s3cr3t-Pa55word"
	dsn := pgtest.DSN(t)
	// Point at a port nobody listens on, with a password.
	bad := strings.Replace(dsn, "postgres@127.0.0.1:", fmt.Sprintf("postgres:%s@127.0.0.1:", pw), 1)
	bad = bad[:strings.LastIndex(bad, ":")] + ":1/x?sslmode=disable&password=" + pw
	_, err := sqlstore.Open(t.Context(), bad, nil)
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("error shows the password: %v", err)
	}
	if errors.Is(err, store.ErrNotFound) {
		t.Fatal("wrong error")
	}
}
