// Package sqlstore implements store.Store over database/sql for two dialects:
// embedded SQLite (modernc.org/sqlite, pure Go) and PostgreSQL (pgx).
//
// Open picks the dialect from the DSN, applies the embedded migrations of that
// dialect, and returns a Store safe for concurrent use.
//
// SQLite runs in WAL mode with foreign keys on. Writes go through a pool of one
// connection whose transactions begin IMMEDIATE, so writes of one process are
// serialised in Go (waiting honours the context) and never fail with
// SQLITE_BUSY; reads use a separate read-only pool and run concurrently.
// Several processes on one file rely on busy_timeout.
//
// PostgreSQL may be shared by several amtd instances: migrations run under an
// advisory lock, and references are guarded with row locks so that a delete
// racing with a create that refers to the same object yields a clean
// ErrInUse / ErrMissingReference.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/amtd-project/amtd/internal/store"
)

// Store is the database/sql implementation of store.Store.
type Store struct {
	pg  bool
	r   *pool // reads
	w   *pool // writes (SQLite: a single connection)
	log *slog.Logger
}

var _ store.Store = (*Store)(nil)

// SQLite busy timeout: only waits on other processes sharing the file; writes
// of this process are serialised before they reach SQLite.
const sqliteBusyTimeout = 10 * time.Second

// Open opens the database named by dsn and migrates it to the current schema.
//
// A dsn starting with "postgres://" or "postgresql://" selects PostgreSQL (any
// pgx connection string). Anything else is the path of an SQLite database file,
// optionally prefixed with "sqlite:" (or "sqlite://"); the file is created with
// mode 0600, its folder with mode 0700.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return openPostgres(ctx, dsn, log)
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if strings.HasPrefix(path, "//") {
		path = path[2:]
	}
	return openSQLite(ctx, path, log)
}

func openSQLite(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlstore: SQLite needs a database file path, got %q", path)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("sqlstore: SQLite database path must not contain '?': %q", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sqlstore: create database folder: %w", err)
	}
	// Create the file ourselves so that it (and the -wal/-shm files SQLite
	// derives from it) are private to the owner.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open database file: %w", err)
	}
	f.Close()

	common := "_pragma=" + url.QueryEscape(fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds())) +
		"&_pragma=foreign_keys(1)"
	wdb, err := sql.Open("sqlite", path+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open SQLite: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	if err := wdb.PingContext(ctx); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlstore: open SQLite %s: %w", path, err)
	}
	rdb, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlstore: open SQLite: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	rdb.SetConnMaxIdleTime(5 * time.Minute)

	s := &Store{pg: false, w: newPool(wdb, false), r: newPool(rdb, false), log: log}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	log.Info("store opened", "dialect", "SQLITE", "path", path)
	return s, nil
}

func openPostgres(ctx context.Context, dsn string, log *slog.Logger) (*Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open PostgreSQL: %w", redactErr(err, dsn))
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: connect to PostgreSQL %s: %w", redactDSN(dsn), redactErr(err, dsn))
	}
	p := newPool(db, true)
	s := &Store{pg: true, w: p, r: p, log: log}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	log.Info("store opened", "dialect", "POSTGRES", "dsn", redactDSN(dsn))
	return s, nil
}

// redactDSN returns dsn without its password, for logs and errors.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "postgres://…"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// redactErr makes sure an error does not carry the DSN's password.
func redactErr(err error, dsn string) error {
	u, perr := url.Parse(dsn)
	if perr != nil {
		return errors.New("invalid PostgreSQL connection string")
	}
	pw, ok := u.User.Password()
	if !ok || pw == "" {
		if pw = u.Query().Get("password"); pw == "" {
			return err
		}
	}
	if msg := err.Error(); strings.Contains(msg, pw) {
		return errors.New(strings.ReplaceAll(msg, pw, "xxxxx"))
	}
	return err
}

// Dialect is "SQLITE" or "POSTGRES".
func (s *Store) Dialect() string {
	if s.pg {
		return "POSTGRES"
	}
	return "SQLITE"
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}

// Close releases the connections.
func (s *Store) Close() error {
	err := s.r.close()
	if s.w != s.r {
		err = errors.Join(err, s.w.close())
	}
	return err
}

// pool is a *sql.DB with a cache of prepared statements for queries that run
// outside transactions.
type pool struct {
	db    *sql.DB
	pg    bool
	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

func newPool(db *sql.DB, pg bool) *pool {
	return &pool{db: db, pg: pg, stmts: make(map[string]*sql.Stmt)}
}

func (p *pool) close() error {
	p.mu.Lock()
	for _, st := range p.stmts {
		st.Close()
	}
	p.stmts = nil
	p.mu.Unlock()
	return p.db.Close()
}

// stmt returns the prepared statement for query (written with '?' placeholders).
// Never call it while holding a transaction of the same pool: preparing may
// need a connection of its own.
func (p *pool) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	p.mu.RLock()
	st, ok := p.stmts[query]
	p.mu.RUnlock()
	if ok {
		return st, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st, ok := p.stmts[query]; ok {
		return st, nil
	}
	if p.stmts == nil {
		return nil, errors.New("sqlstore: store is closed")
	}
	st, err := p.db.PrepareContext(ctx, rebind(p.pg, query))
	if err != nil {
		return nil, err
	}
	p.stmts[query] = st
	return st, nil
}

func (p *pool) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (p *pool) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// queryRow runs a one-row query; errors surface from Scan.
func (p *pool) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// tx wraps a transaction and rebinds placeholders for PostgreSQL.
type tx struct {
	tx *sql.Tx
	pg bool
}

func (t tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, rebind(t.pg, query), args...)
}

func (t tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, rebind(t.pg, query), args...)
}

func (t tx) queryRow(ctx context.Context, query string, args ...any) rowScanner {
	return t.tx.QueryRowContext(ctx, rebind(t.pg, query), args...)
}

type rowScanner interface{ Scan(dest ...any) error }

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// inWrite runs fn in a write transaction.
func (s *Store) inWrite(ctx context.Context, fn func(t tx) error) error {
	return s.inTx(ctx, s.w, nil, fn)
}

// inRead runs fn in a read-only transaction that sees one snapshot.
func (s *Store) inRead(ctx context.Context, fn func(t tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if s.pg {
		opts.Isolation = sql.LevelRepeatableRead
	}
	return s.inTx(ctx, s.r, opts, fn)
}

func (s *Store) inTx(ctx context.Context, p *pool, opts *sql.TxOptions, fn func(t tx) error) error {
	sqltx, err := p.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqlstore: begin: %w", err)
	}
	if err := fn(tx{tx: sqltx, pg: s.pg}); err != nil {
		sqltx.Rollback()
		return err
	}
	if err := sqltx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: commit: %w", err)
	}
	return nil
}

// rebind turns '?' placeholders into PostgreSQL's $n. Queries in this package
// never contain '?' inside literals.
func rebind(pg bool, query string) string {
	if !pg || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// isUnique reports a unique or primary-key violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return false
}

// isForeignKey reports a foreign-key violation.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503"
	}
	return false
}

// lockShare / lockUpdate: row-lock clauses for PostgreSQL (SQLite serialises
// writers, so it needs none).
func (s *Store) lockShare() string {
	if s.pg {
		return " FOR SHARE"
	}
	return ""
}

func (s *Store) lockUpdate() string {
	if s.pg {
		return " FOR UPDATE"
	}
	return ""
}

// key is the case-insensitive form of a name.
func key(name string) string { return strings.ToLower(name) }

// limits turns a Page into LIMIT/OFFSET arguments; ok is false when the page
// is empty (Top 0).
func limits(p store.Page) (limit, offset int64, ok bool) {
	if p.Top <= 0 {
		return 0, 0, false
	}
	return int64(p.Top), int64(max(p.Skip, 0)), true
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}
