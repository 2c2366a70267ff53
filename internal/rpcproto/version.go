package rpcproto

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ProtocolVersion is the version amtd speaks (RPS 2.x).
const ProtocolVersion = "4.0.0"

// CheckProtocolVersion applies RPS's rule (rpc-protocol.md §9) to a client
// version against the server's: same major, and either the same minor with a
// server revision ≥ the client's, or a server minor ≥ the client's... which
// for 4.0.0 accepts 4.0.0 only.
func CheckProtocolVersion(client string) error {
	c, err := parseVersion(client)
	if err != nil {
		return err
	}
	s, _ := parseVersion(ProtocolVersion)
	if c[0] == s[0] && ((c[1] == s[1] && s[2] >= c[2]) || s[1] > c[1]) {
		return nil
	}
	return fmt.Errorf("protocol version NOT supported: %s", client)
}

func parseVersion(v string) ([3]int, error) {
	var out [3]int
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, errors.New("invalid version string length")
	}
	for i, name := range []string{"major", "minor", "revision"} {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return out, fmt.Errorf("failed to parse %s", name)
		}
		out[i] = n
	}
	return out, nil
}
