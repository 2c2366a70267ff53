package setupbin

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// VarID names a variable: module in the high 16 bits, variable id in the low
// 16 bits, so that sorting by VarID sorts by (module, variable).
type VarID uint32

// MakeVarID builds a VarID from its module and variable number.
func MakeVarID(module, id uint16) VarID { return VarID(module)<<16 | VarID(id) }

// Module returns the module id (1 ME kernel, 2 Intel AMT configuration manager).
func (v VarID) Module() uint16 { return uint16(v >> 16) }

// Var returns the variable id within its module.
func (v VarID) Var() uint16 { return uint16(v) }

// String returns the "module.variable" form used in the spec, e.g. "2.28".
func (v VarID) String() string { return fmt.Sprintf("%d.%d", v.Module(), v.Var()) }

// Variables of spec/legacy.md §11.4.
const (
	CurrentMEBxPassword      VarID = 1<<16 | 1
	NewMEBxPassword          VarID = 1<<16 | 2
	ManageabilitySelection   VarID = 1<<16 | 3
	FirmwareLocalUpdate      VarID = 1<<16 | 4
	FirmwareUpdateQualifier  VarID = 1<<16 | 5
	PowerPackage             VarID = 1<<16 | 6
	PID                      VarID = 2<<16 | 1
	PPS                      VarID = 2<<16 | 2
	PKIDNSSuffix             VarID = 2<<16 | 3
	ConfigServerFQDN         VarID = 2<<16 | 4
	RemoteConfigEnabled      VarID = 2<<16 | 5
	PreInstalledCertsEnabled VarID = 2<<16 | 6
	UserDefinedCertConfig    VarID = 2<<16 | 7
	UserDefinedCertAdd       VarID = 2<<16 | 8
	Redirection              VarID = 2<<16 | 10
	Hostname                 VarID = 2<<16 | 11
	DomainName               VarID = 2<<16 | 12
	DHCP                     VarID = 2<<16 | 13
	SecureFirmwareUpdate     VarID = 2<<16 | 14
	IdleTimeout              VarID = 2<<16 | 15
	ProvisioningMode         VarID = 2<<16 | 16
	ProvisioningServerAddr   VarID = 2<<16 | 17
	ProvisioningServerPort   VarID = 2<<16 | 18
	StaticIPv4               VarID = 2<<16 | 19
	VLAN                     VarID = 2<<16 | 20
	MEBxPasswordPolicy       VarID = 2<<16 | 21
	IPv6                     VarID = 2<<16 | 22
	SharedFQDN               VarID = 2<<16 | 23
	DynamicDNSUpdate         VarID = 2<<16 | 24
	KVMState                 VarID = 2<<16 | 25
	UserConsent              VarID = 2<<16 | 26
	RemoteITConsentPolicy    VarID = 2<<16 | 27
	ProvisionHaltActive      VarID = 2<<16 | 28
	ManualSetup              VarID = 2<<16 | 29
	SupportChannelID         VarID = 2<<16 | 30
	SupportChannelDesc       VarID = 2<<16 | 31
	ServiceAccountNumber     VarID = 2<<16 | 32
	EnrollmentPasscode       VarID = 2<<16 | 33
	ServiceType              VarID = 2<<16 | 34
	ServiceProviderID        VarID = 2<<16 | 35
)

// Kind is how a variable's value is interpreted.
type Kind int

// Variable kinds.
const (
	KindBytes Kind = iota
	KindString
	KindU8
	KindU16
	KindU32
	KindGUID
)

// VarInfo describes a known variable.
type VarInfo struct {
	Name   string
	Kind   Kind
	MinLen int  // for strings and bytes
	MaxLen int  // for strings and bytes; 0 = no limit
	Secret bool // never displayed (passwords, PPS, passcodes)
}

// Lookup returns what §11.4 says about id.
func Lookup(id VarID) (VarInfo, bool) {
	s := func(name string, minLen, maxLen int) VarInfo {
		return VarInfo{Name: name, Kind: KindString, MinLen: minLen, MaxLen: maxLen}
	}
	u8 := func(name string) VarInfo { return VarInfo{Name: name, Kind: KindU8} }
	switch id {
	case CurrentMEBxPassword:
		return VarInfo{Name: "Current MEBx password", Kind: KindString, MinLen: 1, MaxLen: 32, Secret: true}, true
	case NewMEBxPassword:
		return VarInfo{Name: "New MEBx password", Kind: KindString, MinLen: 1, MaxLen: 32, Secret: true}, true
	case ManageabilitySelection:
		return u8("Manageability feature selection"), true
	case FirmwareLocalUpdate:
		return u8("Firmware local update"), true
	case FirmwareUpdateQualifier:
		return u8("Firmware update qualifier"), true
	case PowerPackage:
		return VarInfo{Name: "Power package", Kind: KindGUID}, true
	case PID:
		return s("PID", 8, 8), true
	case PPS:
		return VarInfo{Name: "PPS", Kind: KindString, MinLen: 32, MaxLen: 32, Secret: true}, true
	case PKIDNSSuffix:
		return s("PKI DNS suffix", 1, 256), true
	case ConfigServerFQDN:
		return s("Configuration server FQDN", 1, 256), true
	case RemoteConfigEnabled:
		return u8("Remote configuration enabled"), true
	case PreInstalledCertsEnabled:
		return u8("Pre-installed certificates enabled"), true
	case UserDefinedCertConfig:
		return u8("User-defined certificate configuration"), true
	case UserDefinedCertAdd:
		return VarInfo{Name: "User-defined certificate addition", Kind: KindBytes, MinLen: 22, MaxLen: 82}, true
	case Redirection:
		return u8("SOL / storage redirection"), true
	case Hostname:
		return s("Hostname", 1, 64), true
	case DomainName:
		return s("Domain name", 1, 256), true
	case DHCP:
		return u8("DHCP"), true
	case SecureFirmwareUpdate:
		return u8("Secure firmware update"), true
	case IdleTimeout:
		return VarInfo{Name: "Idle timeout", Kind: KindU32}, true
	case ProvisioningMode:
		return u8("Provisioning mode"), true
	case ProvisioningServerAddr:
		return VarInfo{Name: "Provisioning server address", Kind: KindBytes, MinLen: 4, MaxLen: 16}, true
	case ProvisioningServerPort:
		return VarInfo{Name: "Provisioning server port", Kind: KindU16}, true
	case StaticIPv4:
		return VarInfo{Name: "Static IPv4 parameters", Kind: KindBytes, MinLen: 20, MaxLen: 20}, true
	case VLAN:
		return VarInfo{Name: "VLAN", Kind: KindBytes}, true
	case MEBxPasswordPolicy:
		return u8("MEBx password policy"), true
	case IPv6:
		return VarInfo{Name: "IPv6", Kind: KindBytes, MinLen: 84, MaxLen: 204}, true
	case SharedFQDN:
		return u8("Shared / dedicated FQDN"), true
	case DynamicDNSUpdate:
		return u8("Dynamic DNS update"), true
	case KVMState:
		return u8("Remote desktop (KVM) state"), true
	case UserConsent:
		return u8("Opt-in user consent"), true
	case RemoteITConsentPolicy:
		return u8("Opt-in remote IT consent policy"), true
	case ProvisionHaltActive:
		return u8("ME provision halt/active"), true
	case ManualSetup:
		return u8("Manual setup and configuration"), true
	case SupportChannelID:
		return VarInfo{Name: "Support channel identifier", Kind: KindU32}, true
	case SupportChannelDesc:
		return s("Support channel description", 0, 60), true
	case ServiceAccountNumber:
		return s("Service account number", 0, 32), true
	case EnrollmentPasscode:
		return VarInfo{Name: "Enrollment passcode", Kind: KindString, MaxLen: 32, Secret: true}, true
	case ServiceType:
		return VarInfo{Name: "Service type", Kind: KindU32}, true
	case ServiceProviderID:
		return VarInfo{Name: "Service provider identifier", Kind: KindGUID}, true
	}
	return VarInfo{}, false
}

// Var is one entry of a data record: the raw value, whatever the variable.
type Var struct {
	ID    VarID
	Value []byte
}

// StringVar makes a string-valued variable (no terminator is stored).
func StringVar(id VarID, s string) Var { return Var{ID: id, Value: []byte(s)} }

// U8Var makes a one-byte variable.
func U8Var(id VarID, v uint8) Var { return Var{ID: id, Value: []byte{v}} }

// U16Var makes a two-byte little-endian variable.
func U16Var(id VarID, v uint16) Var {
	return Var{ID: id, Value: binary.LittleEndian.AppendUint16(nil, v)}
}

// U32Var makes a four-byte little-endian variable.
func U32Var(id VarID, v uint32) Var {
	return Var{ID: id, Value: binary.LittleEndian.AppendUint32(nil, v)}
}

// GUIDVar makes a GUID variable from its textual form, stored in EFI byte
// order (first three fields little-endian), e.g. the power package
// 46732273-DC23-2F43-A98A-13D37982D855.
func GUIDVar(id VarID, guid string) (Var, error) {
	h := strings.ReplaceAll(strings.TrimSpace(guid), "-", "")
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 16 {
		return Var{}, fmt.Errorf("%w: %s: GUID %q", ErrVariable, id, guid)
	}
	v := []byte{raw[3], raw[2], raw[1], raw[0], raw[5], raw[4], raw[7], raw[6]}
	return Var{ID: id, Value: append(v, raw[8:]...)}, nil
}

// ServerAddressVar makes variable 2.17 from an IPv4 or IPv6 address; the
// address is stored byte-reversed (192.168.1.10 → 0a 01 a8 c0).
func ServerAddressVar(a netip.Addr) Var {
	b := a.Unmap().AsSlice()
	reverse(b)
	return Var{ID: ProvisioningServerAddr, Value: b}
}

// CertHashVar makes variable 2.8 (user-defined certificate addition):
// algorithm (1 SHA-1, 2 SHA-256, 3 SHA-384), the hash, and a name of at most
// 32 printable ASCII characters.
func CertHashVar(alg uint8, hash []byte, name string) (Var, error) {
	v := Var{ID: UserDefinedCertAdd, Value: append(append([]byte{alg}, hash...), byte(len(name)))}
	v.Value = append(v.Value, name...)
	if err := CheckVar(v); err != nil {
		return Var{}, err
	}
	return v, nil
}

// Text returns the value as a string (string variables).
func (v Var) Text() string { return string(v.Value) }

// Uint returns a numeric value: one, two or four little-endian bytes.
func (v Var) Uint() (uint32, bool) {
	switch len(v.Value) {
	case 1:
		return uint32(v.Value[0]), true
	case 2:
		return uint32(binary.LittleEndian.Uint16(v.Value)), true
	case 4:
		return binary.LittleEndian.Uint32(v.Value), true
	}
	return 0, false
}

// GUID returns the textual form of a 16-byte EFI-order value (upper case,
// as MEBx documentation prints them).
func (v Var) GUID() (string, bool) {
	if len(v.Value) != 16 {
		return "", false
	}
	b := v.Value
	s := hex.EncodeToString([]byte{b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]}) + hex.EncodeToString(b[8:])
	s = strings.ToUpper(s)
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:], true
}

// ServerAddress decodes variable 2.17 (byte-reversed IPv4 or IPv6).
func (v Var) ServerAddress() (netip.Addr, bool) {
	if len(v.Value) != 4 && len(v.Value) != 16 {
		return netip.Addr{}, false
	}
	b := append([]byte(nil), v.Value...)
	reverse(b)
	return netip.AddrFromSlice(b)
}

// CertHash decodes variable 2.8.
func (v Var) CertHash() (alg uint8, hash []byte, name string, err error) {
	b := v.Value
	if len(b) < 1 {
		return 0, nil, "", fmt.Errorf("%w: %s empty", ErrVariable, v.ID)
	}
	alg = b[0]
	size := map[uint8]int{1: 20, 2: 32, 3: 48}[alg]
	if size == 0 {
		return 0, nil, "", fmt.Errorf("%w: %s algorithm %d", ErrVariable, v.ID, alg)
	}
	if len(b) < 1+size+1 {
		return 0, nil, "", fmt.Errorf("%w: %s of %d bytes too short for algorithm %d", ErrVariable, v.ID, len(b), alg)
	}
	n := int(b[1+size])
	if len(b) != 2+size+n {
		return 0, nil, "", fmt.Errorf("%w: %s name length %d does not match %d bytes", ErrVariable, v.ID, n, len(b))
	}
	name = string(b[2+size:])
	if n > 32 || !printable(name) {
		return 0, nil, "", fmt.Errorf("%w: %s name must be at most 32 printable ASCII characters", ErrVariable, v.ID)
	}
	return alg, b[1 : 1+size], name, nil
}

// CheckVar checks a value against what §11.4 says about its variable: the
// length for its kind, string limits, PID/PPS alphabet, the 2.8 structure,
// the 4/16-byte address. Unknown variables pass (they are kept as they are).
func CheckVar(v Var) error {
	info, ok := Lookup(v.ID)
	if !ok {
		return nil
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s (%s): %s", ErrVariable, v.ID, info.Name, fmt.Sprintf(format, a...))
	}
	n := len(v.Value)
	switch info.Kind {
	case KindU8, KindU16, KindU32, KindGUID:
		want := map[Kind]int{KindU8: 1, KindU16: 2, KindU32: 4, KindGUID: 16}[info.Kind]
		if n != want {
			return bad("%d bytes, want %d", n, want)
		}
	case KindString, KindBytes:
		if n < info.MinLen || (info.MaxLen > 0 && n > info.MaxLen) {
			return bad("%d bytes, want %d to %d", n, info.MinLen, info.MaxLen)
		}
	}
	switch v.ID {
	case PID:
		if !ValidPID(v.Text()) {
			return bad("not 8 characters A-Z/0-9")
		}
	case PPS:
		if !ValidPPS(v.Text()) {
			return bad("not 32 characters A-Z/0-9")
		}
	case ProvisioningServerAddr:
		if n != 4 && n != 16 {
			return bad("%d bytes, want 4 (IPv4) or 16 (IPv6)", n)
		}
	case IPv6:
		if n != 84 && n != 204 {
			return bad("%d bytes, want 84 (or 204, old format)", n)
		}
	case UserDefinedCertAdd:
		if _, _, _, err := v.CertHash(); err != nil {
			return err
		}
	}
	return nil
}

// Format returns a one-line description for display, e.g.
// `2.28 ME provision halt/active = 1`. Secret values are masked.
func Format(v Var) string {
	info, ok := Lookup(v.ID)
	if !ok {
		return fmt.Sprintf("%s (unknown) = %x", v.ID, v.Value)
	}
	val := fmt.Sprintf("%x", v.Value)
	switch {
	case info.Secret:
		val = fmt.Sprintf("(%d characters, hidden)", len(v.Value))
	case v.ID == ProvisioningServerAddr:
		if a, ok := v.ServerAddress(); ok {
			val = a.String()
		}
	case v.ID == UserDefinedCertAdd:
		if alg, h, name, err := v.CertHash(); err == nil {
			val = fmt.Sprintf("algorithm %d %x %q", alg, h, name)
		}
	case info.Kind == KindString && printable(v.Text()):
		val = strconv.Quote(v.Text())
	case info.Kind == KindU8 || info.Kind == KindU16 || info.Kind == KindU32:
		if u, ok := v.Uint(); ok {
			val = strconv.FormatUint(uint64(u), 10)
		}
	case info.Kind == KindGUID:
		if g, ok := v.GUID(); ok {
			val = g
		}
	}
	return fmt.Sprintf("%s %s = %s", v.ID, info.Name, val)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// NewFile returns an empty file of the given version (1–4, minor 0).
func NewFile(version int, flags uint16) *File {
	return &File{Version: version, Flags: flags}
}

// AddRecord appends a valid data record numbered after the existing ones
// (numbering starts at 1) and returns its index.
func (f *File) AddRecord(scrambled bool, vars ...Var) int {
	f.Records = append(f.Records, Record{
		Type:      RecordTypeData,
		Number:    uint32(len(f.Records) + 1),
		Scrambled: scrambled,
		Vars:      append([]Var(nil), vars...),
	})
	return len(f.Records) - 1
}

// Get returns the first variable id of the record.
func (r *Record) Get(id VarID) (Var, bool) {
	for _, v := range r.Vars {
		if v.ID == id {
			return v, true
		}
	}
	return Var{}, false
}
