// Package buildinfo holds amtd's version strings.
package buildinfo

// Version is amtd's service version; set at build time with
// -ldflags "-X github.com/amtd-project/amtd/internal/buildinfo.Version=…".
var Version = "0.1.0-dev"

// ProtocolVersion is the rpc-go protocol version amtd speaks (RPS 2.x: 4.0.0).
const ProtocolVersion = "4.0.0"
