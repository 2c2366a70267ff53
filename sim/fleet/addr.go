package fleet

import (
	"fmt"
	"net/netip"
)

// AddrAt is device i's address in a fleet whose first device has base:
// the i-th address at or after base whose last byte is 1–254 (so .0 and
// .255 are never used), within 127.0.0.0/8.
func AddrAt(base netip.Addr, i int) (netip.Addr, error) {
	if !base.Is4() {
		return netip.Addr{}, fmt.Errorf("fleet: address base %s is not an IPv4 address", base)
	}
	b := base.As4()
	if b[0] != 127 {
		return netip.Addr{}, fmt.Errorf("fleet: address base %s is outside 127.0.0.0/8 (loopback addresses only)", base)
	}
	if b[3] == 0 || b[3] == 255 {
		return netip.Addr{}, fmt.Errorf("fleet: address base %s ends in .%d; use .1–.254", base, b[3])
	}
	if i < 0 {
		return netip.Addr{}, fmt.Errorf("fleet: device index %d", i)
	}
	// position among usable addresses: 254 per /24
	p := (int(b[1])<<8|int(b[2]))*254 + int(b[3]) - 1 + i
	hi, lo := p/254, p%254+1
	if hi > 0xFFFF {
		return netip.Addr{}, fmt.Errorf("fleet: %d devices from %s do not fit in 127.0.0.0/8", i+1, base)
	}
	return netip.AddrFrom4([4]byte{127, byte(hi >> 8), byte(hi), byte(lo)}), nil
}
