package device

import (
	"context"
	"fmt"
	"net"
	"syscall"
)

// listenLoopback binds the wildcard address on port but attaches the socket
// to the loopback interface (SO_BINDTODEVICE "lo"), so that one listener
// serves every 127.0.0.0/8 device address of a fleet while nothing arriving
// on another interface reaches it.
func listenLoopback(ctx context.Context, port string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, "lo")
		}); err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("binding the fleet listener to the loopback interface (SO_BINDTODEVICE, needs CAP_NET_RAW): %w", serr)
		}
		return nil
	}}
	return lc.Listen(ctx, "tcp4", net.JoinHostPort("0.0.0.0", port))
}
