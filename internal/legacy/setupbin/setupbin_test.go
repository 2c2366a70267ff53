package setupbin

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// workedExample returns the 1024-byte file of spec/legacy.md §11.5, written
// out line by line from the spec's dump.
func workedExample(t testing.TB) []byte {
	t.Helper()
	lines := map[int]string{
		0x000: "a7 f7 f6 c6 89 c4 f6 47 93 ed e2 e5 02 0d a5 1d",
		0x010: "01 00 2e 00 00 00 00 00 03 00 01 00 01 00 00 00",
		0x020: "00 00 00 00 01 00 00 00 01 00 02 00 00 00 00 00",
		0x200: "01 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00",
		0x210: "01 00 18 00 01 00 00 00 01 00 01 00 05 00 00 00",
		0x220: "61 64 6d 69 6e 00 00 00 01 00 02 00 09 00 00 00",
		0x230: "50 40 73 73 77 30 72 64 21 00 00 00 02 00 03 00",
		0x240: "0b 00 00 00 65 78 61 6d 70 6c 65 2e 63 6f 6d 00",
		0x250: "02 00 1c 00 01 00 00 00 01 00 00 00 00 00 00 00",
	}
	b := make([]byte, 1024)
	for off, l := range lines {
		row, err := hex.DecodeString(strings.ReplaceAll(l, " ", ""))
		if err != nil || len(row) != 16 {
			t.Fatalf("bad row %#x", off)
		}
		copy(b[off:], row)
	}
	return b
}

func exampleModel() *File {
	f := NewFile(3, FileFlagDoNotConsume)
	f.AddRecord(false,
		StringVar(CurrentMEBxPassword, "admin"),
		StringVar(NewMEBxPassword, "P@ssw0rd!"),
		StringVar(PKIDNSSuffix, "example.com"),
		U8Var(ProvisionHaltActive, 1),
	)
	return f
}

func TestWorkedExampleDecode(t *testing.T) {
	b := workedExample(t)
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Minor != 0 || f.Flags != 1 || !f.DoNotConsume() || f.RecordsConsumed != 0 || f.HeaderChunks != 1 || f.RecordChunks != 1 {
		t.Fatalf("header %+v", f)
	}
	if len(f.Records) != 1 {
		t.Fatalf("%d records", len(f.Records))
	}
	r := f.Records[0]
	if r.Type != 1 || r.Number != 1 || r.Used || r.Scrambled || r.OtherFlags != 0 {
		t.Fatalf("record %+v", r)
	}
	want := []struct {
		id   VarID
		text string
	}{{CurrentMEBxPassword, "admin"}, {NewMEBxPassword, "P@ssw0rd!"}, {PKIDNSSuffix, "example.com"}, {ProvisionHaltActive, "\x01"}}
	if len(r.Vars) != len(want) {
		t.Fatalf("%d vars", len(r.Vars))
	}
	for i, w := range want {
		if r.Vars[i].ID != w.id || r.Vars[i].Text() != w.text {
			t.Errorf("var %d = %s %q", i, r.Vars[i].ID, r.Vars[i].Value)
		}
		if err := CheckVar(r.Vars[i]); err != nil {
			t.Error(err)
		}
	}
	if i, ok := f.Next(); i != 0 || !ok {
		t.Fatal("next record")
	}
	// Encoding the model built from scratch gives the same bytes.
	enc, err := Encode(exampleModel())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(enc, b) {
		t.Fatalf("encoded example differs at byte %#x", firstDiff(enc, b))
	}
	// And so does re-encoding the decoded model.
	if enc2, err := Encode(f); err != nil || !bytes.Equal(enc2, b) {
		t.Fatalf("round trip: %v", err)
	}
}

func TestWorkedExampleScrambled(t *testing.T) {
	plain := workedExample(t)
	want := bytes.Clone(plain)
	want[0x204] = 3
	for i := 0x218; i < 0x400; i++ {
		want[i] += 17
	}
	// The first entry as printed in the spec.
	first, _ := hex.DecodeString("1211121116111111" + "72757e7a7f111111")
	if !bytes.Equal(want[0x218:0x228], first) {
		t.Fatalf("spec's scrambled first entry: % x", want[0x218:0x228])
	}
	if want[0x3ff] != 0x11 {
		t.Fatal("padding not scrambled")
	}
	m := exampleModel()
	m.Records[0].Scrambled = true
	enc, err := Encode(m)
	if err != nil || !bytes.Equal(enc, want) {
		t.Fatalf("scrambled encode differs at %#x (%v)", firstDiff(enc, want), err)
	}
	f, err := Decode(want)
	if err != nil {
		t.Fatal(err)
	}
	if !f.Records[0].Scrambled || len(f.Records[0].Vars) != 4 || f.Records[0].Vars[1].Text() != "P@ssw0rd!" {
		t.Fatalf("decoded %+v", f.Records[0])
	}
	// The 24-byte header is never scrambled.
	if !bytes.Equal(want[0x208:0x218], plain[0x208:0x218]) {
		t.Fatal("header bytes changed")
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRoundTripVersions writes a file for every (version, minor) of §11.2
// with several records (scrambled and not, used and not, unknown variables
// and flags) and reads it back unchanged.
func TestRoundTripVersions(t *testing.T) {
	guid, _ := GUIDVar(PowerPackage, "46732273-DC23-2F43-A98A-13D37982D855")
	hash := bytes.Repeat([]byte{0xab}, 32)
	cert, err := CertHashVar(2, hash, "amtd root")
	if err != nil {
		t.Fatal(err)
	}
	sha1cert, _ := CertHashVar(1, bytes.Repeat([]byte{0x01}, 20), "")
	for _, vm := range []struct {
		v     int
		minor uint8
	}{{1, 0}, {2, 0}, {2, 1}, {3, 0}, {4, 0}} {
		f := &File{Version: vm.v, Minor: vm.minor, Flags: 0x8000, RecordChunks: 2}
		vars := []Var{
			StringVar(CurrentMEBxPassword, "admin"),
			StringVar(NewMEBxPassword, "N3w-Passw0rd!"),
			U8Var(ManageabilitySelection, 1),
			guid,
			StringVar(PID, "ABCD1234"),
			StringVar(PPS, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"),
			sha1cert,
			ServerAddressVar(netip.MustParseAddr("192.168.1.10")),
			U16Var(ProvisioningServerPort, 9971),
			U32Var(IdleTimeout, 65535),
			{ID: MakeVarID(2, 99), Value: []byte{1, 2, 3, 4, 5}}, // unknown: kept
			{ID: MakeVarID(7, 1), Value: nil},                    // unknown module, empty value
			StringVar(Hostname, strings.Repeat("h", 64)),
			{ID: VLAN, Value: make([]byte, 600)}, // spans the second chunk
		}
		if vm.v >= 3 {
			vars = append(vars, cert)
		}
		f.AddRecord(false, vars...)
		f.AddRecord(true, vars...)
		f.AddRecord(true, U8Var(ProvisionHaltActive, 0))
		f.Records[2].Used = true
		f.Records[2].OtherFlags = 0x100
		f.Records[1].Type = 7
		f.RecordsConsumed = 1
		b, err := Encode(f)
		if err != nil {
			t.Fatalf("v%d.%d: %v", vm.v, vm.minor, err)
		}
		if len(b) != (1+3*2)*ChunkSize {
			t.Fatalf("size %d", len(b))
		}
		if vg := versions()[vm.v-1].guid; !bytes.Equal(b[:16], vg[:]) || b[24] != byte(vm.v) || b[25] != vm.minor {
			t.Fatalf("v%d header % x", vm.v, b[:32])
		}
		g, err := Decode(b)
		if err != nil {
			t.Fatalf("v%d.%d decode: %v", vm.v, vm.minor, err)
		}
		if g.Version != vm.v || g.Minor != vm.minor || g.Flags != 0x8000 || g.RecordsConsumed != 1 || g.RecordChunks != 2 || len(g.Records) != 3 {
			t.Fatalf("v%d header %+v", vm.v, g)
		}
		for i := range f.Records {
			a, c := f.Records[i], g.Records[i]
			if a.Type != c.Type || a.Number != c.Number || a.Used != c.Used || a.Scrambled != c.Scrambled || a.OtherFlags != c.OtherFlags || len(a.Vars) != len(c.Vars) {
				t.Fatalf("v%d record %d: %+v vs %+v", vm.v, i, a, c)
			}
			// Encode sorts by (module, variable), stable for repeated ids.
			sorted := slices.Clone(a.Vars)
			slices.SortStableFunc(sorted, func(x, y Var) int { return cmp.Compare(x.ID, y.ID) })
			for j, v := range sorted {
				if c.Vars[j].ID != v.ID || !bytes.Equal(c.Vars[j].Value, v.Value) {
					t.Errorf("v%d record %d: %s lost or changed", vm.v, i, v.ID)
				}
			}
		}
		if b2, err := Encode(g); err != nil || !bytes.Equal(b2, b) {
			t.Fatalf("v%d: second round trip differs (%v)", vm.v, err)
		}
	}
}

func TestEncodeSortsAndModuleList(t *testing.T) {
	f := NewFile(4, 1)
	f.AddRecord(false, U8Var(ProvisionHaltActive, 1), StringVar(PKIDNSSuffix, "x.example"), StringVar(NewMEBxPassword, "Pa$$w0rd"), StringVar(CurrentMEBxPassword, "admin"))
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := Decode(b)
	var ids []VarID
	for _, v := range g.Records[0].Vars {
		ids = append(ids, v.ID)
	}
	want := []VarID{CurrentMEBxPassword, NewMEBxPassword, PKIDNSSuffix, ProvisionHaltActive}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("order %v", ids)
		}
	}
	if binary.LittleEndian.Uint16(b[18:]) != 46 || !bytes.Equal(b[40:46], []byte{1, 0, 2, 0, 0, 0}) {
		t.Fatalf("module list % x", b[16:48])
	}
	// Only module 2: 44 bytes.
	f2 := NewFile(4, 1)
	f2.AddRecord(false, U8Var(ProvisionHaltActive, 1))
	b2, _ := Encode(f2)
	if binary.LittleEndian.Uint16(b2[18:]) != 44 || b2[40] != 2 || b2[42] != 0 {
		t.Fatalf("module list % x", b2[16:48])
	}
}

func TestEncodeErrors(t *testing.T) {
	sha256cert, _ := CertHashVar(2, make([]byte, 32), "root")
	for _, c := range []struct {
		name string
		f    *File
		want error
	}{
		{"version 0", &File{Version: 0}, ErrVersion},
		{"version 5", &File{Version: 5}, ErrVersion},
		{"minor 1 on v3", &File{Version: 3, Minor: 1}, ErrVersion},
		{"consumed > count", &File{Version: 4, RecordsConsumed: 1}, ErrConsumed},
		{"too big", func() *File {
			f := NewFile(4, 0)
			f.AddRecord(false, Var{ID: VLAN, Value: make([]byte, 481)})
			return f
		}(), ErrRecordFull},
		{"sha256 hash in v2", func() *File { f := NewFile(2, 0); f.AddRecord(false, sha256cert); return f }(), ErrVersionTooOld},
		{"module 0", func() *File { f := NewFile(4, 0); f.AddRecord(false, Var{ID: MakeVarID(0, 3)}); return f }(), ErrEntry},
		{"value > 64K", func() *File {
			f := &File{Version: 4, RecordChunks: 200}
			f.AddRecord(false, Var{ID: VLAN, Value: make([]byte, 70000)})
			return f
		}(), ErrVariable},
	} {
		if _, err := Encode(c.f); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Exactly fills the record: 488 bytes free after the header, entry 8 + 480.
	f := NewFile(4, 0)
	f.AddRecord(false, Var{ID: VLAN, Value: make([]byte, 480)})
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if g, err := Decode(b); err != nil || len(g.Records[0].Vars[0].Value) != 480 {
		t.Fatalf("full record: %v", err)
	}
}

// TestDecodeRejects corrupts the worked example in every way §11 makes
// checkable and expects the specific reason.
func TestDecodeRejects(t *testing.T) {
	base := workedExample(t)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(base)) }
	put16 := func(b []byte, off int, v uint16) []byte { binary.LittleEndian.PutUint16(b[off:], v); return b }
	put32 := func(b []byte, off int, v uint32) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrSize},
		{"511 bytes", base[:511], ErrSize},
		{"1000 bytes", base[:1000], ErrSize},
		{"unknown GUID", mod(func(b []byte) []byte { b[0] ^= 1; return b }), ErrUnknownGUID},
		{"major 4 with v3 GUID", mod(func(b []byte) []byte { b[24] = 4; return b }), ErrVersion},
		{"minor 1 with v3 GUID", mod(func(b []byte) []byte { b[25] = 1; return b }), ErrVersion},
		{"header chunks 0", mod(func(b []byte) []byte { return put16(b, 16, 0) }), ErrHeader},
		{"header record number", mod(func(b []byte) []byte { return put32(b, 20, 5) }), ErrHeader},
		{"record chunks 0", mod(func(b []byte) []byte { return put16(b, 36, 0) }), ErrHeader},
		{"count 2", mod(func(b []byte) []byte { return put32(b, 28, 2) }), ErrRecordCount},
		{"count 0", mod(func(b []byte) []byte { return put32(b, 28, 0) }), ErrRecordCount},
		{"count huge", mod(func(b []byte) []byte { return put32(b, 28, 0xffffffff) }), ErrRecordCount},
		{"record chunks 2", mod(func(b []byte) []byte { return put16(b, 36, 2) }), ErrRecordCount},
		{"header only", base[:512], ErrRecordCount},
		{"consumed 2", mod(func(b []byte) []byte { return put32(b, 32, 2) }), ErrConsumed},
		{"record chunk count", mod(func(b []byte) []byte { return put16(b, 0x210, 2) }), ErrRecordHeader},
		{"record header bytes", mod(func(b []byte) []byte { return put16(b, 0x212, 16) }), ErrRecordHeader},
		{"entry past end", mod(func(b []byte) []byte { return put16(b, 0x250+4, 500) }), ErrEntryOverflow},
		{"first entry past end", mod(func(b []byte) []byte { return put16(b, 0x218+4, 0xffff) }), ErrEntryOverflow},
		{"module 0 var 3", mod(func(b []byte) []byte { return put16(b, 0x218, 0) }), ErrEntry},
		{"var 0", mod(func(b []byte) []byte { return put16(b, 0x218+2, 0) }), ErrEntry},
		{"trailing half entry", mod(func(b []byte) []byte {
			// Fill the record with one entry leaving 4 non-zero bytes.
			clear(b[0x218:0x400])
			put16(b, 0x218, 2)
			put16(b, 0x218+2, 20)
			put16(b, 0x218+4, 476)
			b[0x3fc] = 2
			return b
		}), ErrEntryOverflow},
		{"scrambled flag on plain data", mod(func(b []byte) []byte { b[0x204] = 3; return b }), ErrEntryOverflow},
	} {
		f, err := Decode(c.b)
		if !errors.Is(err, c.want) || f != nil {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestMarkUsed(t *testing.T) {
	// Consuming file: version 4, flags 0, two records, the second scrambled.
	f := NewFile(4, 0)
	f.AddRecord(false, StringVar(CurrentMEBxPassword, "admin"), StringVar(NewMEBxPassword, "Secr3t!pw"))
	f.AddRecord(true, StringVar(CurrentMEBxPassword, "admin"), U8Var(ProvisionHaltActive, 1))
	b, err := Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(b)
	if _, err := MarkUsed(b, 1); !errors.Is(err, ErrNotNext) {
		t.Fatalf("record 1 before 0: %v", err)
	}
	if _, err := MarkUsed(b, 2); !errors.Is(err, ErrIndex) {
		t.Fatalf("index 2: %v", err)
	}
	changed, err := MarkUsed(b, 0)
	if err != nil || !changed {
		t.Fatalf("MarkUsed(0) = %v, %v", changed, err)
	}
	// Only consumed count, the valid flag and the record body changed.
	for i := range b {
		inBody := i >= 512+24 && i < 1024
		if b[i] != orig[i] && i != 32 && i != 512+4 && !inBody {
			t.Fatalf("byte %#x changed", i)
		}
	}
	if b[32] != 1 || b[512+4] != 0 || !allZero(b[512+24:1024]) || !bytes.Equal(b[1024:], orig[1024:]) {
		t.Fatal("write-back wrong")
	}
	g, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !g.Records[0].Used || len(g.Records[0].Vars) != 0 || g.Records[1].Used || g.RecordsConsumed != 1 {
		t.Fatalf("after first: %+v", g)
	}
	if i, ok := g.Next(); i != 1 || !ok {
		t.Fatal("next should be 1")
	}
	if _, err := MarkUsed(b, 1); err != nil {
		t.Fatal(err)
	}
	g, err = Decode(b)
	if err != nil {
		t.Fatalf("consumed scrambled record must still decode: %v", err)
	}
	if !g.Records[1].Used || !g.Records[1].Scrambled || len(g.Records[1].Vars) != 0 || g.RecordsConsumed != 2 {
		t.Fatalf("after second: %+v", g.Records[1])
	}
	if _, ok := g.Next(); ok {
		t.Fatal("no record left")
	}
	if _, err := MarkUsed(b, 2); !errors.Is(err, ErrIndex) {
		t.Fatal(err)
	}

	// Do-not-consume file (the worked example): nothing is written.
	ex := workedExample(t)
	changed, err = MarkUsed(ex, 0)
	if err != nil || changed || !bytes.Equal(ex, workedExample(t)) {
		t.Fatalf("do-not-consume: %v %v", changed, err)
	}
	// Version 1 ignores the do-not-consume flag.
	v1 := NewFile(1, FileFlagDoNotConsume)
	v1.AddRecord(false, StringVar(CurrentMEBxPassword, "admin"))
	b1, _ := Encode(v1)
	if changed, err := MarkUsed(b1, 0); err != nil || !changed {
		t.Fatalf("v1: %v %v", changed, err)
	}
	// Corrupt input is reported, not modified.
	if _, err := MarkUsed(b1[:100], 0); !errors.Is(err, ErrSize) {
		t.Fatal(err)
	}
}

// TestMarkUsedModelMatchesImage checks that File.MarkUsed and MarkUsed on
// the bytes agree.
func TestMarkUsedModelMatchesImage(t *testing.T) {
	f := NewFile(3, 0)
	f.AddRecord(false, StringVar(CurrentMEBxPassword, "admin"), U8Var(ProvisionHaltActive, 1))
	f.AddRecord(false, StringVar(CurrentMEBxPassword, "admin"))
	b, _ := Encode(f)
	f, err := Decode(b) // as the simulator would hold it
	if err != nil || !slices.Equal(f.Modules, []uint16{1, 2}) {
		t.Fatalf("modules %v %v", f.Modules, err)
	}
	for i := range 2 {
		if _, err := f.MarkUsed(i + 1); !errors.Is(err, ErrNotNext) && i == 0 {
			t.Fatal("model accepted a record that is not next")
		}
		c1, err1 := f.MarkUsed(i)
		c2, err2 := MarkUsed(b, i)
		if err1 != nil || err2 != nil || !c1 || !c2 {
			t.Fatal(err1, err2)
		}
		enc, _ := Encode(f)
		if !bytes.Equal(enc, b) {
			t.Fatalf("after record %d: model and image differ at %#x", i, firstDiff(enc, b))
		}
	}
	if _, err := f.MarkUsed(2); !errors.Is(err, ErrIndex) {
		t.Fatal(err)
	}
	dnc := exampleModel()
	if changed, err := dnc.MarkUsed(0); changed || err != nil || dnc.Records[0].Used {
		t.Fatal("do-not-consume model changed")
	}
}

func TestVariables(t *testing.T) {
	a := ServerAddressVar(netip.MustParseAddr("192.168.1.10"))
	if !bytes.Equal(a.Value, []byte{0x0a, 0x01, 0xa8, 0xc0}) {
		t.Fatalf("2.17 = % x", a.Value)
	}
	if ip, ok := a.ServerAddress(); !ok || ip.String() != "192.168.1.10" {
		t.Fatal(ip)
	}
	a6 := ServerAddressVar(netip.MustParseAddr("2001:db8::1"))
	if len(a6.Value) != 16 || a6.Value[0] != 1 || a6.Value[15] != 0x20 {
		t.Fatalf("v6 % x", a6.Value)
	}
	if ip, _ := a6.ServerAddress(); ip.String() != "2001:db8::1" {
		t.Fatal(ip)
	}
	if p := U16Var(ProvisioningServerPort, 9971); !bytes.Equal(p.Value, []byte{0xf3, 0x26}) {
		t.Fatalf("2.18 = % x", p.Value)
	}
	g, err := GUIDVar(PowerPackage, "46732273-DC23-2F43-A98A-13D37982D855")
	if err != nil || !bytes.Equal(g.Value[:8], []byte{0x73, 0x22, 0x73, 0x46, 0x23, 0xdc, 0x43, 0x2f}) {
		t.Fatalf("guid % x %v", g.Value, err)
	}
	if s, _ := g.GUID(); s != "46732273-DC23-2F43-A98A-13D37982D855" {
		t.Fatal(s)
	}
	if _, err := GUIDVar(PowerPackage, "nope"); !errors.Is(err, ErrVariable) {
		t.Fatal(err)
	}
	h := bytes.Repeat([]byte{7}, 48)
	c, err := CertHashVar(3, h, strings.Repeat("n", 32))
	if err != nil || len(c.Value) != 82 {
		t.Fatalf("2.8: %d %v", len(c.Value), err)
	}
	alg, hh, name, err := c.CertHash()
	if err != nil || alg != 3 || !bytes.Equal(hh, h) || len(name) != 32 {
		t.Fatal("2.8 decode")
	}
	for _, bad := range []struct {
		alg  uint8
		n    int
		name string
	}{{4, 32, "x"}, {2, 20, "x"}, {1, 20, strings.Repeat("n", 33)}, {1, 20, "caf\xc3\xa9"}} {
		if _, err := CertHashVar(bad.alg, make([]byte, bad.n), bad.name); !errors.Is(err, ErrVariable) {
			t.Errorf("CertHashVar(%d,%d,%q) = %v", bad.alg, bad.n, bad.name, err)
		}
	}
	for _, c := range []struct {
		v  Var
		ok bool
	}{
		{U8Var(DHCP, 2), true},
		{U16Var(DHCP, 2), false},
		{U32Var(IdleTimeout, 1), true},
		{U8Var(IdleTimeout, 1), false},
		{StringVar(CurrentMEBxPassword, strings.Repeat("a", 33)), false},
		{StringVar(CurrentMEBxPassword, ""), false},
		{StringVar(PID, "ABCD1234"), true},
		{StringVar(PID, "abcd1234"), false},
		{StringVar(PPS, strings.Repeat("Z9", 16)), true},
		{StringVar(PPS, strings.Repeat("Z9", 15)), false},
		{Var{ID: ProvisioningServerAddr, Value: make([]byte, 6)}, false},
		{Var{ID: IPv6, Value: make([]byte, 84)}, true},
		{Var{ID: IPv6, Value: make([]byte, 100)}, false},
		{Var{ID: MakeVarID(9, 9), Value: make([]byte, 3)}, true},
	} {
		if err := CheckVar(c.v); (err == nil) != c.ok {
			t.Errorf("CheckVar(%s % x) = %v", c.v.ID, c.v.Value, err)
		}
	}
	// Format never shows secrets.
	for _, v := range []Var{StringVar(CurrentMEBxPassword, "admin"), StringVar(NewMEBxPassword, "P@ssw0rd!"), StringVar(PPS, "SECRETSECRETSECRETSECRETSECRET12"), StringVar(EnrollmentPasscode, "hunter2")} {
		if s := Format(v); strings.Contains(s, v.Text()) || !strings.Contains(s, "hidden") {
			t.Errorf("Format leaks: %s", s)
		}
	}
	for v, want := range map[*Var]string{
		ptr(U8Var(ProvisionHaltActive, 1)):  "2.28 ME provision halt/active = 1",
		ptr(StringVar(PKIDNSSuffix, "a.b")): `2.3 PKI DNS suffix = "a.b"`,
		&a:                                  "2.17 Provisioning server address = 192.168.1.10",
		&g:                                  "1.6 Power package = 46732273-DC23-2F43-A98A-13D37982D855",
		ptr(U16Var(ProvisioningServerPort, 9971)):                "2.18 Provisioning server port = 9971",
		ptr(Var{ID: MakeVarID(3, 4), Value: []byte{0xde, 0xad}}): "3.4 (unknown) = dead",
	} {
		if got := Format(*v); got != want {
			t.Errorf("Format = %q, want %q", got, want)
		}
	}
	if !strings.HasPrefix(Format(c), "2.8 User-defined certificate addition = algorithm 3 0707") {
		t.Error(Format(c))
	}
}

func ptr(v Var) *Var { return &v }

func TestPIDPPS(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		pid, pps, err := GeneratePIDPPS(nil)
		if err != nil || !ValidPID(pid) || !ValidPPS(pps) {
			t.Fatalf("%q %q %v", pid, pps, err)
		}
		if seen[pid+pps] {
			t.Fatal("repeated pair")
		}
		seen[pid+pps] = true
	}
	// Rejection sampling: bytes ≥ 252 are skipped, others map mod 36.
	src := bytes.NewReader(append([]byte{252, 253, 254, 255, 0, 35, 36, 251}, make([]byte, 100)...))
	pid, pps, err := GeneratePIDPPS(src)
	if err != nil || !strings.HasPrefix(pid, "A9A9") || len(pps) != 32 {
		t.Fatalf("%q %q %v", pid, pps, err)
	}
	if _, _, err := GeneratePIDPPS(bytes.NewReader([]byte{1, 2})); err == nil {
		t.Fatal("short random source must fail")
	}
	if Dashed("ABCD1234") != "ABCD-1234" {
		t.Fatal(Dashed("ABCD1234"))
	}
	if d := Dashed(strings.Repeat("A", 32)); len(d) != 39 || strings.Count(d, "-") != 7 {
		t.Fatalf("PPS display %q", d)
	}
	pid, pps, err = ParsePIDPPS(" abcd-1234 ", "ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01-2345")
	if err != nil || pid != "ABCD1234" || pps != "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345" {
		t.Fatalf("%q %q %v", pid, pps, err)
	}
	if _, _, err := ParsePIDPPS("ABCD123", pps); !errors.Is(err, ErrPIDPPS) {
		t.Fatal(err)
	}
	if _, _, err := ParsePIDPPS("ABCD1234", pps+"!"); !errors.Is(err, ErrPIDPPS) {
		t.Fatal(err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(workedExample(f))
	m := exampleModel()
	m.Records[0].Scrambled = true
	b, _ := Encode(m)
	f.Add(b)
	f.Add(b[:512])
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Decode(b)
		if err != nil {
			if file != nil {
				t.Fatal("file with error")
			}
			return
		}
		enc, err := Encode(file)
		if err != nil {
			// Decode accepts what Encode refuses only for SHA-256/384
			// user-defined hashes in old versions and for module lists
			// longer than the header chunk; sorting never changes sizes.
			if !errors.Is(err, ErrVersionTooOld) && !errors.Is(err, ErrHeader) {
				t.Fatalf("re-encode: %v", err)
			}
			return
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("decode of re-encoded file: %v", err)
		}
		if len(again.Records) != len(file.Records) {
			t.Fatal("record count changed")
		}
		for i := range file.Records {
			if len(again.Records[i].Vars) != len(file.Records[i].Vars) {
				t.Fatalf("record %d: vars %d → %d", i, len(file.Records[i].Vars), len(again.Records[i].Vars))
			}
		}
		// MarkUsed never panics and keeps the file decodable.
		c := bytes.Clone(b)
		if i, ok := file.Next(); ok {
			if _, err := MarkUsed(c, i); err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(c); err != nil {
				t.Fatalf("after MarkUsed: %v", err)
			}
		}
	})
}
