//go:build linux

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
	"syscall"
	"time"
)

// Fleet serves the MEI sockets of many devices. On Linux every listening
// socket is a non-blocking descriptor registered with one epoll instance, and
// one goroutine (Serve) accepts for all of them: an idle device costs a
// kernel socket, a map entry and its Server, but no goroutine. Each accepted
// connection runs on its own goroutine while it is open.
type Fleet struct {
	log          *slog.Logger
	epfd         int
	wakeR, wakeW int

	mu      sync.Mutex
	byFD    map[int32]*fleetSocket
	byPath  map[string]*fleetSocket
	closed  bool
	serving bool
	done    chan struct{} // closed when a running Serve has torn down
}

type fleetSocket struct {
	fd   int
	path string
	srv  *Server
}

// NewFleet creates an empty fleet. Call Serve to accept connections and
// Close (or cancel Serve's context) to remove every socket.
func NewFleet(log *slog.Logger) (*Fleet, error) {
	if log == nil {
		log = slog.Default()
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("mei: epoll_create1: %w", err)
	}
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("mei: pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(p[0])}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, fmt.Errorf("mei: epoll_ctl: %w", err)
	}
	return &Fleet{
		log: log, epfd: epfd, wakeR: p[0], wakeW: p[1],
		byFD: map[int32]*fleetSocket{}, byPath: map[string]*fleetSocket{},
		done: make(chan struct{}),
	}, nil
}

// Add creates the listening socket at path (creating its parent folder and
// replacing a stale socket file) served by srv. It may be called before or
// while Serve runs.
func (f *Fleet) Add(path string, srv *Server) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("mei: fleet closed")
	}
	if _, dup := f.byPath[path]; dup {
		return fmt.Errorf("mei: fleet already serves %s", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := removeStaleSocket(path); err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mei: socket: %w", err)
	}
	fail := func(op string, err error) error {
		syscall.Close(fd)
		return &os.PathError{Op: op, Path: path, Err: err}
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		return fail("bind", err)
	}
	if err := syscall.Listen(fd, syscall.SOMAXCONN); err != nil {
		os.Remove(path)
		return fail("listen", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
	if err := syscall.EpollCtl(f.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		os.Remove(path)
		return fail("epoll_ctl", err)
	}
	s := &fleetSocket{fd: fd, path: path, srv: srv}
	f.byFD[int32(fd)] = s
	f.byPath[path] = s
	return nil
}

// Remove closes and unlinks the socket at path. Open connections of that
// device stay open until their client closes them or Serve's context ends.
func (f *Fleet) Remove(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byPath[path]
	if !ok {
		return fmt.Errorf("mei: fleet does not serve %s", path)
	}
	f.closeSocketLocked(s)
	return nil
}

func (f *Fleet) closeSocketLocked(s *fleetSocket) {
	_ = syscall.EpollCtl(f.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
	syscall.Close(s.fd)
	os.Remove(s.path)
	delete(f.byFD, int32(s.fd))
	delete(f.byPath, s.path)
}

// Len is the number of sockets served.
func (f *Fleet) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byPath)
}

// Serve accepts connections on every socket of the fleet until ctx ends or
// Close is called, then removes every socket, waits for open connections
// (closed when ctx ends) and returns nil. Only one Serve may run.
func (f *Fleet) Serve(ctx context.Context) error {
	f.mu.Lock()
	if f.closed || f.serving {
		f.mu.Unlock()
		return errors.New("mei: fleet closed or already serving")
	}
	f.serving = true
	f.mu.Unlock()

	var wg sync.WaitGroup
	connCtx, cancelConns := context.WithCancel(ctx)
	defer func() {
		f.teardown()
		cancelConns()
		wg.Wait()
		close(f.done)
	}()
	stop := context.AfterFunc(ctx, f.wake)
	defer stop()

	events := make([]syscall.EpollEvent, 128)
	var backoff time.Duration
	for {
		n, err := syscall.EpollWait(f.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return fmt.Errorf("mei: epoll_wait: %w", err)
		}
		exhausted := false
		for _, ev := range events[:n] {
			if int(ev.Fd) == f.wakeR {
				var b [64]byte
				for {
					if _, err := syscall.Read(f.wakeR, b[:]); err != nil {
						break
					}
				}
				continue
			}
			if f.acceptAll(connCtx, ev.Fd, &wg) {
				exhausted = true
			}
		}
		f.mu.Lock()
		closed := f.closed
		f.mu.Unlock()
		if closed || ctx.Err() != nil {
			return nil
		}
		if exhausted { // out of descriptors: the pending connection stays queued
			backoff = nextBackoff(backoff)
			f.log.Warn("mei: fleet accept: descriptors exhausted", "retry_in", backoff)
			if waitCtx(ctx, backoff) != nil {
				return nil
			}
		} else {
			backoff = 0
		}
	}
}

// acceptAll accepts every pending connection on the listening socket fd and
// starts serving them. It reports descriptor exhaustion.
func (f *Fleet) acceptAll(ctx context.Context, fd int32, wg *sync.WaitGroup) (exhausted bool) {
	f.mu.Lock()
	s, ok := f.byFD[fd]
	var conns []net.Conn
	for ok {
		nfd, _, err := syscall.Accept4(int(fd), syscall.SOCK_CLOEXEC)
		if err != nil {
			switch {
			case errors.Is(err, syscall.EAGAIN):
			case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.ECONNABORTED):
				continue
			case isTemporaryAcceptError(err):
				exhausted = true
			default:
				f.log.Error("mei: fleet accept", "path", s.path, "err", err)
			}
			break
		}
		file := os.NewFile(uintptr(nfd), "mei")
		c, err := net.FileConn(file)
		file.Close()
		if err != nil {
			f.log.Error("mei: fleet accept", "path", s.path, "err", err)
			if isTemporaryAcceptError(err) {
				exhausted = true
			}
			break
		}
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.srv.ServeConn(ctx, c)
		}()
	}
	return exhausted
}

func (f *Fleet) wake() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.wakeW >= 0 { // non-blocking pipe: never blocks under the lock
		_, _ = syscall.Write(f.wakeW, []byte{1})
	}
}

// teardown closes every listening socket and the epoll instance.
func (f *Fleet) teardown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for _, s := range f.byPath {
		f.closeSocketLocked(s)
	}
	if f.epfd >= 0 {
		syscall.Close(f.epfd)
		syscall.Close(f.wakeR)
		syscall.Close(f.wakeW)
		f.epfd, f.wakeR, f.wakeW = -1, -1, -1
	}
}

// Close removes every socket. When Serve is running it stops it and waits
// until it has returned.
func (f *Fleet) Close() error {
	f.mu.Lock()
	serving := f.serving
	already := f.closed
	f.closed = true
	f.mu.Unlock()
	if serving {
		if !already {
			f.wake()
		}
		<-f.done
		return nil
	}
	f.teardown()
	return nil
}
