//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cira

import (
	"net"
	"syscall"
)

// waitReadable blocks until the socket has bytes to read, has reached EOF
// or failed, or its read deadline passes, without reading anything. It
// parks the goroutine in the poller directly, a few hundred bytes of stack
// below the caller, where a blocked tls.Conn.Read sits about 2 KiB deep:
// that difference lets the runtime shrink an idle connection's stack from
// 8 KiB to 4 KiB.
func waitReadable(raw net.Conn) (bool, error) {
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return false, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, nil
	}
	// RawConn.Read calls the function, waits for readiness while it returns
	// false, and calls it again. Peeking (rather than assuming readiness)
	// is what makes this correct with the edge-triggered poller.
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR
	})
	return true, err
}
