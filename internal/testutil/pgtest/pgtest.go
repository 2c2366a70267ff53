// Package pgtest gives tests a real PostgreSQL server.
//
// The first call to DSN in a test binary creates a throw-away cluster with the
// machine's initdb in a temporary folder and starts postgres on a free
// 127.0.0.1 port (Unix sockets in the same folder), tuned for tests (fsync,
// synchronous_commit and full_page_writes off). Every DSN call creates a fresh
// empty database on it. Main stops the server and removes the folder when the
// tests are done:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) { dsn := pgtest.DSN(t); … }
//
// The binaries are looked up in PATH, then in /usr/lib/postgresql/*/bin. When
// they are missing the test is skipped, except in CI (CI=true), where it fails.
// PostgreSQL refuses to run as root: under uid 0 the server runs as the
// "postgres" system user (or "nobody" when there is none).
package pgtest

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/pgbin"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// startTimeout bounds initdb plus server start.
const startTimeout = 2 * time.Minute

// The one cluster of this test binary. Package state is unavoidable here:
// TestMain and the tests share the server through these two functions.
var shared cluster

type cluster struct {
	once    sync.Once
	mu      sync.Mutex // guards stopped
	stopped bool

	err     error  // start failure
	missing string // binaries not found: skip (or fail in CI) with this message

	bin    string // folder holding initdb, pg_ctl, postgres
	dir    string // temporary folder: data/, socket, log
	port   int
	cred   *syscall.Credential
	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process is gone
	admin  *sql.DB
	seq    atomic.Int64
}

// Main runs the tests, then stops the server if one was started, and exits.
func Main(m *testing.M) {
	code := m.Run()
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtest:", err)
	}
	os.Exit(code)
}

// DSN returns a connection string to a new, empty database owned by the
// superuser "postgres". The database is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	c := &shared
	c.once.Do(c.start)
	if c.missing != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Postgres is required in CI: %s", c.missing)
		}
		t.Skipf("pgtest: %s; install PostgreSQL (e.g. apt-get install postgresql) to run this test", c.missing)
	}
	if c.err != nil {
		t.Fatalf("pgtest: %v", c.err)
	}
	name := fmt.Sprintf("test_%d", c.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := c.admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

func (c *cluster) start() {
	bin, err := pgbin.Dir()
	if err != nil {
		c.missing = err.Error()
		return
	}
	c.bin = bin
	if err := c.startServer(); err != nil {
		c.err = err
		c.stop()
	}
}

func (c *cluster) startServer() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "amtd-pgtest-")
	if err != nil {
		return err
	}
	c.dir = dir
	cred, err := pgbin.Credential()
	if err != nil {
		return err
	}
	if cred != nil {
		c.cred = cred
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := c.command(ctx, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C", "--no-sync", "--no-instructions")
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}

	// A port picked now could be taken before postgres binds it; retry then.
	var lastErr error
	for range 3 {
		port, err := pgbin.FreePort()
		if err != nil {
			return err
		}
		if lastErr = c.run(ctx, data, port); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return lastErr
	}
	db, err := sql.Open("pgx", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(4)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("connect to test server: %w", err)
	}
	c.admin = db
	return nil
}

// run starts postgres in the foreground as a child of the test binary (it
// dies with it: Pdeathsig) and waits until it logs that it accepts
// connections.
func (c *cluster) run(ctx context.Context, data string, port int) error {
	logPath := filepath.Join(c.dir, fmt.Sprintf("postgres-%d.log", port))
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := c.command(context.Background(), "postgres", "-D", data, "-p", strconv.Itoa(port),
		"-k", c.dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "lc_messages=C")
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT // immediate shutdown if the test binary dies
	// Our own pipe, read to EOF (when the server and all its children are
	// gone), so that Wait never races with the log reader.
	pr, pw, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	ready := make(chan struct{})
	exited := make(chan struct{})
	go func() { // copies the server log; reports readiness
		defer logFile.Close()
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logFile, line)
			if !signalled && strings.Contains(line, "database system is ready to accept connections") {
				signalled = true
				close(ready)
			}
		}
		io.Copy(logFile, pr)
	}()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	select {
	case <-ready:
		c.cmd, c.port, c.exited = cmd, port, exited
		return nil
	case <-exited:
		return fmt.Errorf("postgres exited during start:\n%s", tail(logPath))
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGQUIT)
		<-exited
		return fmt.Errorf("postgres did not become ready in %v:\n%s", startTimeout, tail(logPath))
	}
}

// stop shuts the server down (pg_ctl stop -m immediate) and removes the folder.
func (c *cluster) stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true
	var errs []error
	if c.admin != nil {
		c.admin.Close()
	}
	if c.cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := c.command(ctx, "pg_ctl", "stop", "-D", filepath.Join(c.dir, "data"), "-m", "immediate", "-w").CombinedOutput()
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %v: %s", err, out))
			c.cmd.Process.Kill()
		}
		<-c.exited
	}
	if c.dir != "" {
		if err := os.RemoveAll(c.dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// command prepares a PostgreSQL tool, as the unprivileged user when we are root.
func (c *cluster) command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, tool), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c.cred != nil {
		cmd.SysProcAttr.Credential = c.cred
	}
	return cmd
}

// tail returns the end of a log file for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
