package bench

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/amtd-project/amtd/internal/pgbin"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// postgres is a PostgreSQL server the harness started from the machine's
// binaries (as internal/testutil/pgtest does for tests) on a folder of its
// own, listening on 127.0.0.1 only. Unlike the tests' server it keeps
// PostgreSQL's durability defaults (fsync, synchronous_commit and
// full_page_writes on), as a deployment would.
type postgres struct {
	dir   string
	port  int
	proc  *proc
	admin *sql.DB
}

// pgSettings are the server settings that differ from PostgreSQL's
// defaults: loopback only, room for five amtd instances' pools (32
// connections each), and pg_stat_statements to count the statements the
// servers run.
var pgSettings = []string{"listen_addresses=127.0.0.1", "max_connections=300", "lc_messages=C",
	"shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"}

// PostgresAvailable reports whether PostgreSQL's binaries were found (the
// cira and cluster scenarios need them).
func PostgresAvailable() error {
	_, err := pgbin.Dir()
	return err
}

// startPostgres creates a cluster in a new temporary folder (directly in
// the system's, so that the postgres user can reach it) and starts it.
func startPostgres(ctx context.Context) (*postgres, error) {
	bin, err := pgbin.Dir()
	if err != nil {
		return nil, err
	}
	cred, err := pgbin.Credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "amtd-bench-pg-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	port, err := pgbin.FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir}
	for _, s := range pgSettings {
		args = append(args, "-c", s)
	}
	p, err := startProc("postgres", dir, []string{"LC_ALL=C", "LANG=C"}, cred, filepath.Join(bin, "postgres"), args...)
	if err != nil {
		return nil, err
	}
	pg := &postgres{dir: dir, port: port, proc: p}
	// ready when it accepts connections
	db, err := sql.Open("pgx", pg.dsn("postgres"))
	if err != nil {
		p.stop(30 * time.Second)
		return nil, err
	}
	db.SetMaxOpenConns(2)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err = db.PingContext(ctx); err == nil {
			break
		}
		if p.exited() || time.Now().After(deadline) || ctx.Err() != nil {
			db.Close()
			p.stop(30 * time.Second)
			return nil, fmt.Errorf("postgres did not start: %v\n%s", err, p.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	pg.admin = db
	if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		db.Close()
		p.stop(30 * time.Second)
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	ok = true
	return pg, nil
}

func (pg *postgres) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.port, db)
}

// createDB creates an empty database and returns its connection string.
func (pg *postgres) createDB(ctx context.Context, name string) (string, error) {
	if _, err := pg.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return pg.dsn(name), nil
}

// pgStats are cumulative counters of one database (pg_stat_database).
type pgStats struct {
	Commits, Rollbacks                  int64
	Inserted, Updated, Deleted, Fetched int64
	WALBytes                            int64         // WAL written by the whole server
	CPU                                 time.Duration // the whole server: postmaster, backends, background processes
}

func (pg *postgres) stats(ctx context.Context, db string) (pgStats, error) {
	var s pgStats
	// Backends report their counters when they go idle, at most once a
	// second: ask for a snapshot that includes what is pending.
	row := pg.admin.QueryRowContext(ctx, `SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_fetched
		FROM pg_stat_database WHERE datname = $1`, db)
	if err := row.Scan(&s.Commits, &s.Rollbacks, &s.Inserted, &s.Updated, &s.Deleted, &s.Fetched); err != nil {
		return s, fmt.Errorf("pg_stat_database: %w", err)
	}
	if err := pg.admin.QueryRowContext(ctx, "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").Scan(&s.WALBytes); err != nil {
		return s, fmt.Errorf("WAL position: %w", err)
	}
	s.CPU = treeCPU(pg.proc.pid())
	return s, nil
}

func (a pgStats) sub(b pgStats) pgStats {
	return pgStats{Commits: a.Commits - b.Commits, Rollbacks: a.Rollbacks - b.Rollbacks, Inserted: a.Inserted - b.Inserted,
		Updated: a.Updated - b.Updated, Deleted: a.Deleted - b.Deleted, Fetched: a.Fetched - b.Fetched, WALBytes: a.WALBytes - b.WALBytes,
		CPU: a.CPU - b.CPU}
}

// statement is a pg_stat_statements entry.
type statement struct {
	Calls int64
	Query string
}

// resetStatements clears pg_stat_statements.
func (pg *postgres) resetStatements(ctx context.Context) error {
	_, err := pg.admin.ExecContext(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// statements lists what ran in database db since the last reset, most
// called first (the harness's own queries excluded).
func (pg *postgres) statements(ctx context.Context, db string) ([]statement, error) {
	rows, err := pg.admin.QueryContext(ctx, `SELECT calls, query FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY calls DESC`, db)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []statement
	for rows.Next() {
		var s statement
		if err := rows.Scan(&s.Calls, &s.Query); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// summarizeStatements is "N statements: 12× UPDATE instances …, …".
func summarizeStatements(st []statement) string {
	var total int64
	var parts []string
	for _, s := range st {
		total += s.Calls
		q := strings.Join(strings.Fields(s.Query), " ")
		if len(q) > 60 {
			q = q[:60] + "…"
		}
		parts = append(parts, fmt.Sprintf("%d× %s", s.Calls, q))
	}
	if total == 0 {
		return "no statements"
	}
	return fmt.Sprintf("%d statements: %s", total, strings.Join(parts, "; "))
}

// stop shuts the server down (fast shutdown) and removes its folder.
func (pg *postgres) stop() error {
	if pg.admin != nil {
		pg.admin.Close()
	}
	err := pg.proc.stop(time.Minute)
	if e := os.RemoveAll(pg.dir); e != nil && err == nil {
		err = e
	}
	return err
}

// version is the server's version string.
func (pg *postgres) version(ctx context.Context) string {
	var v string
	_ = pg.admin.QueryRowContext(ctx, "SHOW server_version").Scan(&v)
	return v
}

// firstLine is the first line of s.
func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	if sc.Scan() {
		return sc.Text()
	}
	return ""
}
