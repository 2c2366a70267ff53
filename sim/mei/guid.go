package mei

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MEI client GUIDs in binary form, exactly as written to the Linux
// IOCTL_MEI_CONNECT_CLIENT ioctl and sent as the first frame of a socket
// connection (spec/heci.md §2: Microsoft layout, first three fields
// little-endian, last eight bytes as written).
var (
	// GUIDIAMTHIF is MEI_IAMTHIF, the PTHI (AMTHI) client:
	// 12f80028-b4b7-4b2d-aca8-46e0ff65814c.
	GUIDIAMTHIF = mustGUID("12f80028-b4b7-4b2d-aca8-46e0ff65814c")
	// GUIDLMEIF is MEI_LMEIF, APF port forwarding (not served by this package):
	// 6733a4db-0476-4e7b-b3af-bcfc29bee7a7.
	GUIDLMEIF = mustGUID("6733a4db-0476-4e7b-b3af-bcfc29bee7a7")
	// GUIDWDIF is MEI_WDIF, the "watchdog"/manageability client:
	// 05b79a6f-4628-4d7f-899d-a91514cb32ab.
	GUIDWDIF = mustGUID("05b79a6f-4628-4d7f-899d-a91514cb32ab")
	// GUIDUPID is MEI_UPID (not served): 92136c79-5fea-4cfd-980e-23be07fa5e9f.
	GUIDUPID = mustGUID("92136c79-5fea-4cfd-980e-23be07fa5e9f")
	// GUIDHOTHAM is MEI_HOTHAM (not served): 082ee5a7-7c25-470a-9643-0c06f0466ea1.
	GUIDHOTHAM = mustGUID("082ee5a7-7c25-470a-9643-0c06f0466ea1")
)

// ParseGUID converts the textual form "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
// to the binary (Microsoft) layout.
func ParseGUID(s string) ([16]byte, error) {
	var g [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, errors.New("mei: GUID must have the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx")
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 {
		return g, fmt.Errorf("mei: invalid GUID %q", s)
	}
	binary.LittleEndian.PutUint32(g[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(g[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(g[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(g[8:], raw[8:])
	return g, nil
}

// FormatGUID renders a binary GUID (or an SMBIOS UUID, which uses the same
// byte order) the way rpc-go prints UUIDs: lower-case 8-4-4-4-12 with the
// first three fields little-endian.
func FormatGUID(g [16]byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]),
		g[8:10], g[10:16])
}

func mustGUID(s string) [16]byte {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}
