//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package cira

import "net"

// waitReadable is not available here: idle connections wait inside
// tls.Conn.Read.
func waitReadable(net.Conn) (bool, error) { return false, nil }
