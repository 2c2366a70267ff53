package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// migrationLockKey is the PostgreSQL advisory lock held while migrating
// ("amtd" in ASCII, as a bigint).
const migrationLockKey int64 = 0x616d7464

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/<dialect>/NNNN_name.sql in version order.
func loadMigrations(dialect string) ([]migration, error) {
	dir := "migrations/" + dialect
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	seen := map[int]bool{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("sqlstore: bad migration file name %s", name)
		}
		if seen[v] {
			return nil, fmt.Errorf("sqlstore: duplicate migration version %d", v)
		}
		seen[v] = true
		b, err := fs.ReadFile(migrationFS, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the migrations not yet recorded in schema_migrations, each
// in its own transaction together with its record. On PostgreSQL it holds an
// advisory lock for the whole run, so instances starting together migrate once.
func (s *Store) migrate(ctx context.Context) (err error) {
	dialect := "sqlite"
	if s.pg {
		dialect = "postgres"
	}
	ms, err := loadMigrations(dialect)
	if err != nil {
		return err
	}
	conn, err := s.w.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer conn.Close()

	if s.pg {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("sqlstore: migrate: take lock: %w", err)
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, uerr := conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey); uerr != nil {
				// Never hand a session still holding the lock back to the pool.
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}

	createTable := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`
	if _, err := conn.ExecContext(ctx, createTable); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	applied := map[int]bool{}
	maxApplied := 0
	rows, err := conn.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("sqlstore: migrate: %w", err)
		}
		applied[v] = true
		maxApplied = max(maxApplied, v)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	if n := len(ms); n > 0 && maxApplied > ms[n-1].version {
		return fmt.Errorf("sqlstore: database schema version %d is newer than this amtd (%d): upgrade amtd",
			maxApplied, ms[n-1].version)
	}
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		start := time.Now()
		if err := applyMigration(ctx, conn, s.pg, m); err != nil {
			return fmt.Errorf("sqlstore: migration %s: %w", m.name, err)
		}
		s.log.Info("schema migration applied", "dialect", s.Dialect(), "migration", m.name,
			"duration", time.Since(start))
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, pg bool, m migration) error {
	t, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer t.Rollback()
	if _, err := t.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := t.ExecContext(ctx, rebind(pg, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"),
		m.version, m.name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return err
	}
	return t.Commit()
}
