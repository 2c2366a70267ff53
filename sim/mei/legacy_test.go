package mei

import (
	"bytes"
	"crypto/rsa"
	"encoding/binary"
	"testing"

	"github.com/amtd-project/amtd/internal/testutil/testpki"
	"github.com/amtd-project/amtd/sim/firmware"
)

func ansi(s string) []byte {
	return append(binary.LittleEndian.AppendUint16(nil, uint16(len(s))), s...)
}

// TestPTHILegacySetup drives a host agent's preparation of PKI remote
// configuration over PTHI (legacy.md §6 stage 1) against the simulator's
// firmware, byte by byte.
func TestPTHILegacySetup(t *testing.T) {
	fw, err := firmware.Open(firmware.Config{UUID: "4c4c4544-0038-4b10-8052-b4c04f564433",
		GenerateKey: func(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 300), nil }})
	if err != nil {
		t.Fatal(err)
	}
	path, _ := startServer(t, fw, Options{})
	call := func(cmd uint32, body []byte) []byte {
		t.Helper()
		return pthiRoundTrip(t, path, EncodePTHIRequest(cmd, body))
	}
	status := func(cmd uint32, body []byte) uint32 {
		t.Helper()
		resp := call(cmd, body)
		h, err := ParsePTHIHeader(resp)
		if err != nil || h.Command != cmd|ResponseBit || int(h.Length) != len(resp)-12 {
			t.Fatalf("response % x", resp)
		}
		return binary.LittleEndian.Uint32(resp[12:])
	}

	if got, want := call(CmdGetZeroTouchEnabled, nil), hx(t, "01 01 00 00 30 00 80 04 08 00 00 00 00 00 00 00 01 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("GetZeroTouchEnabled % x, want % x", got, want)
	}
	if got, want := call(CmdSetZeroTouchEnabled, le32(0)), hx(t, "01 01 00 00 3a 00 80 04 04 00 00 00 00 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("SetZeroTouchEnabled % x, want % x", got, want)
	}
	// nothing to configure with: remote configuration off, no PID/PPS
	if st := status(CmdStartConfigurationEx, le32(0)); st != 16 {
		t.Fatalf("StartConfigurationEx without credentials: %d", st)
	}
	if st := status(CmdSetZeroTouchEnabled, []byte{1}); st != 0 || !fw.ZeroTouchEnabled() {
		t.Fatalf("SetZeroTouchEnabled(1 byte): %d", st)
	}
	if st := status(CmdSetPKIFQDNSuffix, ansi("corp.example.com")); st != 0 {
		t.Fatal(st)
	}
	if got := call(CmdGetPKIFQDNSuffix, nil); !bytes.Equal(got[16:], ansi("corp.example.com")) {
		t.Fatalf("GetPKIFQDNSuffix % x", got)
	}
	if st := status(CmdSetPKIFQDNSuffix, cat(ansi("corp.example.com"), []byte{0})); st != 4 {
		t.Fatalf("string length mismatch: %d", st)
	}
	hash := seq(32, 0x50)
	add := cat([]byte{2}, padded(string(hash), 64), ansi("amtd root"))
	resp := call(CmdAddCustomizedCertificateHashEntry, add)
	if want := hx(t, "01 01 00 00 38 00 80 04 08 00 00 00 00 00 00 00 14 00 00 00"); !bytes.Equal(resp, want) {
		t.Fatalf("AddCustomizedCertificateHashEntry % x, want % x", resp, want)
	}
	entry := call(CmdGetCertHashEntry, le32(20))
	if want := cat(hx(t, "01 01 00 00 2d 00 80 04"), le32(4+4+4+64+1+2+9), le32(0), le32(0), le32(1), padded(string(hash), 64), []byte{2, 9, 0}, []byte("amtd root")); !bytes.Equal(entry, want) {
		t.Fatalf("GetCertHashEntry 20\n got % x\nwant % x", entry, want)
	}
	if st := status(CmdAddCustomizedCertificateHashEntry, add); st != 2058 {
		t.Fatalf("duplicate hash: %d", st)
	}
	if st := status(CmdSetProvisioningServerOTP, ansi("short")); st != 36 {
		t.Fatalf("short OTP: %d", st)
	}
	if st := status(CmdSetProvisioningServerOTP, ansi("0123456789abcdef")); st != 0 {
		t.Fatal(st)
	}
	if got, want := call(CmdStartConfigurationEx, le32(0)), hx(t, "01 01 00 00 62 00 80 04 04 00 00 00 00 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("StartConfigurationEx % x, want % x", got, want)
	}
	if got := call(CmdGetProvisioningState, nil); got[16] != 1 {
		t.Fatalf("provisioning state %d after StartConfigurationEx", got[16])
	}
	if st := fw.LegacyStatus(); st.Mode != firmware.SetupPKI || !st.Active {
		t.Fatalf("legacy status %+v", st)
	}
	if otp, ok := fw.ProvisioningServerOTP(); !ok || string(otp) != "0123456789abcdef" {
		t.Fatal("OTP not set")
	}
	if st := status(CmdStartConfigurationEx, []byte{0}); st != 4 {
		t.Fatalf("short StartConfigurationEx: %d", st)
	}
	if st := status(CmdStopConfiguration, nil); st != 0 {
		t.Fatal(st)
	}
	if got := call(CmdGetProvisioningState, nil); got[16] != 0 {
		t.Fatalf("provisioning state %d after StopConfiguration", got[16])
	}
}

// TestPTHILegacyUnsupported: firmware without legacy setup answers the
// commands like any unknown command.
func TestPTHILegacyUnsupported(t *testing.T) {
	path, _ := startServer(t, newFakeFirmware(), Options{})
	if got, want := pthiRoundTrip(t, path, EncodePTHIRequest(CmdStartConfigurationEx, le32(0))), hx(t, "01 01 00 00 62 00 80 04 04 00 00 00 24 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("% x, want % x", got, want)
	}
}

// FuzzPTHILegacyRequest feeds arbitrary legacy setup requests to the
// simulator's firmware: every answer is a well-formed PTHI response.
func FuzzPTHILegacyRequest(f *testing.F) {
	for _, s := range [][]byte{
		EncodePTHIRequest(CmdSetPKIFQDNSuffix, ansi("corp.example.com")),
		EncodePTHIRequest(CmdSetProvisioningServerOTP, ansi("0123456789abcdef")),
		EncodePTHIRequest(CmdSetZeroTouchEnabled, le32(1)),
		EncodePTHIRequest(CmdGetZeroTouchEnabled, nil),
		EncodePTHIRequest(CmdAddCustomizedCertificateHashEntry, cat([]byte{2}, make([]byte, 64), ansi("x"))),
		EncodePTHIRequest(CmdStartConfigurationEx, le32(0)),
		EncodePTHIRequest(CmdStopConfiguration, nil),
	} {
		f.Add(s)
	}
	fw, err := firmware.Open(firmware.Config{GenerateKey: func(bits int) (*rsa.PrivateKey, error) { return testpki.Key(bits, 300), nil }})
	if err != nil {
		f.Fatal(err)
	}
	s := NewServer(fw, Options{Logger: quietLogger()})
	f.Fuzz(func(t *testing.T, req []byte) {
		resp, ok := s.handlePTHI(req)
		if len(req) < 12 {
			if ok {
				t.Fatal("answered a message shorter than the header")
			}
			return
		}
		if !ok {
			t.Fatal("refused a message with a header")
		}
		checkPTHIResponse(t, req, resp, 4096)
	})
}
