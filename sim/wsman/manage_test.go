package wsman

import (
	"encoding/binary"
	"testing"
	"time"
)

func TestIntervals(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"P1D", 24 * time.Hour}, {"PT1H", time.Hour}, {"PT90M", 90 * time.Minute}, {"P0DT0H0M", 0},
		{"P1DT2H3M", 26*time.Hour + 3*time.Minute}, {"PT30S", 30 * time.Second},
	} {
		if got, err := ParseInterval(c.in); err != nil || got != c.want {
			t.Errorf("ParseInterval(%q) = %v, %v", c.in, got, err)
		}
	}
	for _, bad := range []string{"", "P", "PT", "1D", "P1H", "PT1D", "P1DT", "PTT1H", "P-1D", "P1Y", "P9999999999D", "P999999999D", "PT1H1"} {
		if _, err := ParseInterval(bad); err == nil {
			t.Errorf("ParseInterval(%q) accepted", bad)
		}
	}
	for _, c := range []struct {
		d    time.Duration
		want string
	}{{24 * time.Hour, "P1D"}, {90 * time.Minute, "PT1H30M"}, {25*time.Hour + time.Minute, "P1DT1H1M"}, {0, "P0D"}} {
		if got := FormatInterval(c.d); got != c.want {
			t.Errorf("FormatInterval(%v) = %q", c.d, got)
		}
	}
}

func FuzzParseInterval(f *testing.F) {
	for _, s := range []string{"P1D", "P0DT1H30M", "PT5S", "P"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseInterval(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("%q: negative %v", s, d)
		}
		if d%time.Minute == 0 {
			if back, err := ParseInterval(FormatInterval(d)); err != nil || back != d {
				t.Fatalf("%q: %v does not round-trip (%v, %v)", s, d, back, err)
			}
		}
	})
}

func uefiParam(typ uint16, val []byte) []byte {
	b := binary.LittleEndian.AppendUint16(nil, 0x8086)
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(val)))
	return append(b, val...)
}

func TestCountUEFIBootParams(t *testing.T) {
	tlv := append(uefiParam(1, []byte("https://boot.example.com/img.iso")), uefiParam(20, []byte{1})...)
	if n, err := CountUEFIBootParams(tlv); err != nil || n != 2 {
		t.Fatalf("%d %v", n, err)
	}
	for _, bad := range [][]byte{tlv[:len(tlv)-1], {0x86, 0x80, 1, 0}, append(uefiParam(1, nil), 0), {0x00, 0x80, 1, 0, 0, 0, 0, 0}} {
		if _, err := CountUEFIBootParams(bad); err == nil {
			t.Fatalf("accepted % x", bad)
		}
	}
}

func FuzzCountUEFIBootParams(f *testing.F) {
	f.Add(append(uefiParam(2, []byte(`\EFI\x.efi`)), uefiParam(3, []byte{10, 0})...))
	f.Add([]byte{0x86, 0x80, 1, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := CountUEFIBootParams(b)
		if err == nil && n > len(b)/8 {
			t.Fatalf("%d entries in %d bytes", n, len(b))
		}
	})
}
