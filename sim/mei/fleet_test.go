package mei

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func fleetUUID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1) }

// startFleet serves n devices of a fleet; device i has UUID fleetUUID(i).
func startFleet(t testing.TB, dir string, n int) (*Fleet, context.CancelFunc, chan error) {
	t.Helper()
	f, err := NewFleet(quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		addFleetDevice(t, f, dir, i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx) }()
	return f, cancel, done
}

func addFleetDevice(t testing.TB, f *Fleet, dir string, i int) {
	t.Helper()
	fw := newFakeFirmware()
	u, err := ParseGUID(fleetUUID(i))
	if err != nil {
		t.Fatal(err)
	}
	fw.uuid = u
	if err := f.Add(FleetSocketPath(dir, fleetUUID(i)), NewServer(fw, Options{Logger: quietLogger()})); err != nil {
		t.Fatal(err)
	}
}

func TestFleet(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	base := runtime.NumGoroutine()
	f, cancel, done := startFleet(t, dir, n)
	defer cancel()
	ctx := context.Background()

	check := func(i int) error {
		u, err := (Host{Path: FleetSocketPath(dir, fleetUUID(i))}).GetUUID(ctx)
		if err != nil {
			return err
		}
		if got := FormatGUID(u); got != fleetUUID(i) {
			return fmt.Errorf("device %d answered UUID %s", i, got)
		}
		return nil
	}
	for i := range n {
		if err := check(i); err != nil {
			t.Fatal(err)
		}
	}
	if f.Len() != n {
		t.Fatalf("Len = %d", f.Len())
	}
	// Idle devices cost no goroutine: the whole fleet runs on Serve's (a
	// few connection goroutines may still be finishing).
	if g := runtime.NumGoroutine() - base; g > n/10 {
		t.Fatalf("%d goroutines for %d idle sockets", g, n)
	}

	// Remove one device; the others keep working; add one while serving.
	if err := f.Remove(FleetSocketPath(dir, fleetUUID(7))); err != nil {
		t.Fatal(err)
	}
	if err := check(7); err == nil {
		t.Fatal("removed device still answers")
	}
	if _, err := os.Lstat(FleetSocketPath(dir, fleetUUID(7))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("removed socket file: %v", err)
	}
	if err := check(8); err != nil {
		t.Fatal(err)
	}
	addFleetDevice(t, f, dir, n)
	if err := check(n); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(FleetSocketPath(dir, fleetUUID(3)), NewServer(newFakeFirmware(), Options{})); err == nil {
		t.Fatal("duplicate Add accepted")
	}
	if err := f.Add(filepath.Join(dir, strings.Repeat("x", 120), "mei.sock"), NewServer(newFakeFirmware(), Options{})); err == nil {
		t.Fatal("Add accepted a path longer than a Unix socket address")
	}

	// An open connection is closed when the fleet stops.
	c, err := Dial(ctx, FleetSocketPath(dir, fleetUUID(1)), GUIDIAMTHIF)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := c.Recv(ctx); err == nil {
		t.Fatal("connection open after the fleet stopped")
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "mei.sock"))
	if len(matches) != 0 {
		t.Fatalf("sockets left after shutdown: %v", matches)
	}
	if err := f.Add(FleetSocketPath(dir, "late"), NewServer(newFakeFirmware(), Options{})); err == nil {
		t.Fatal("Add after shutdown accepted")
	}
}

func TestFleetCloseWhileServing(t *testing.T) {
	dir := t.TempDir()
	f, cancel, done := startFleet(t, dir, 3)
	defer cancel()
	if _, err := (Host{Path: FleetSocketPath(dir, fleetUUID(0))}).GetControlMode(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if f.Len() != 0 {
		t.Fatalf("Len after Close = %d", f.Len())
	}
	if err := f.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestFleetCloseWithoutServe(t *testing.T) {
	dir := t.TempDir()
	f, err := NewFleet(quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	addFleetDevice(t, f, dir, 0)
	if _, err := os.Lstat(FleetSocketPath(dir, fleetUUID(0))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := os.Lstat(FleetSocketPath(dir, fleetUUID(0))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket after Close: %v", err)
	}
	if err := f.Serve(context.Background()); err == nil {
		t.Fatal("Serve after Close succeeded")
	}
}
