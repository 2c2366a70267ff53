//go:build !linux

package mei

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// Fleet serves the MEI sockets of many devices. Outside Linux each socket
// has its own accept goroutine; on Linux one epoll goroutine serves all.
type Fleet struct {
	log     *slog.Logger
	mu      sync.Mutex
	socks   map[string]*otherSocket
	ctx     context.Context
	wg      sync.WaitGroup
	closed  bool
	serving bool
	cancel  context.CancelFunc
	done    chan struct{}
}

type otherSocket struct {
	l   *net.UnixListener
	srv *Server
}

// NewFleet creates an empty fleet.
func NewFleet(log *slog.Logger) (*Fleet, error) {
	if log == nil {
		log = slog.Default()
	}
	return &Fleet{log: log, socks: map[string]*otherSocket{}, done: make(chan struct{})}, nil
}

// Add creates the listening socket at path served by srv.
func (f *Fleet) Add(path string, srv *Server) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("mei: fleet closed")
	}
	if _, dup := f.socks[path]; dup {
		return fmt.Errorf("mei: fleet already serves %s", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	l, err := listenUnix(path)
	if err != nil {
		return err
	}
	s := &otherSocket{l: l, srv: srv}
	f.socks[path] = s
	if f.serving {
		f.start(s)
	}
	return nil
}

func (f *Fleet) start(s *otherSocket) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = s.srv.Serve(f.ctx, s.l)
	}()
}

// Remove closes and unlinks the socket at path.
func (f *Fleet) Remove(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.socks[path]
	if !ok {
		return fmt.Errorf("mei: fleet does not serve %s", path)
	}
	delete(f.socks, path)
	return s.l.Close()
}

// Len is the number of sockets served.
func (f *Fleet) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.socks)
}

// Serve serves every socket until ctx ends or Close is called.
func (f *Fleet) Serve(ctx context.Context) error {
	f.mu.Lock()
	if f.closed || f.serving {
		f.mu.Unlock()
		return errors.New("mei: fleet closed or already serving")
	}
	f.serving = true
	f.ctx, f.cancel = context.WithCancel(ctx)
	for _, s := range f.socks {
		f.start(s)
	}
	f.mu.Unlock()
	<-f.ctx.Done()
	f.teardown()
	f.wg.Wait()
	close(f.done)
	return nil
}

func (f *Fleet) teardown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for p, s := range f.socks {
		s.l.Close()
		delete(f.socks, p)
	}
}

// Close removes every socket and stops Serve.
func (f *Fleet) Close() error {
	f.mu.Lock()
	serving := f.serving
	f.closed = true
	cancel := f.cancel
	f.mu.Unlock()
	if serving {
		cancel()
		<-f.done
		return nil
	}
	f.teardown()
	return nil
}
