//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package cira

import (
	"net"
	"syscall"
)

// waitReadable parks the goroutine in the poller until the socket has
// bytes (or EOF, or an error), without reading: a goroutine waiting here
// instead of inside tls.Conn.Read lets the runtime shrink an idle
// connection's stack. It returns false when the connection is not a
// socket (a test pipe).
func waitReadable(raw net.Conn) bool {
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// Read calls the function until it returns true, waiting for readiness
	// in between; peeking is what makes this right with an edge-triggered
	// poller.
	_ = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR
	})
	return true
}
