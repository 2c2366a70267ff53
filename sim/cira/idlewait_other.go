//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cira

import "net"

func waitReadable(net.Conn) bool { return false }
