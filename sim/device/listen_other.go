//go:build !linux

package device

import (
	"context"
	"errors"
	"net"
)

func listenLoopback(ctx context.Context, port string) (net.Listener, error) {
	return nil, errors.New("device: a shared loopback-only fleet listener needs Linux (SO_BINDTODEVICE)")
}
