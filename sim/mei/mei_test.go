package mei

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/amtd-project/amtd/sim/hostif"
)

// hx parses space-separated hex bytes.
func hx(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// readRawFrame reads one complete frame (header included).
func readRawFrame(t testing.TB, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("read frame header: %v", err)
	}
	p := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatalf("read frame payload: %v", err)
	}
	return append(hdr[:], p...)
}

func write(t testing.TB, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// expectEOF asserts that the server closed the connection.
func expectEOF(t testing.TB, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("want EOF, got n=%d err=%v", n, err)
	}
}

func frame(p []byte) []byte { return appendFrame(nil, p) }

func TestGUIDBinaryForms(t *testing.T) {
	for _, tc := range []struct {
		g    [16]byte
		text string
		bin  string
	}{
		{GUIDIAMTHIF, "12f80028-b4b7-4b2d-aca8-46e0ff65814c", "28 00 f8 12 b7 b4 2d 4b ac a8 46 e0 ff 65 81 4c"},
		{GUIDLMEIF, "6733a4db-0476-4e7b-b3af-bcfc29bee7a7", "db a4 33 67 76 04 7b 4e b3 af bc fc 29 be e7 a7"},
		{GUIDWDIF, "05b79a6f-4628-4d7f-899d-a91514cb32ab", "6f 9a b7 05 28 46 7f 4d 89 9d a9 15 14 cb 32 ab"},
		{GUIDUPID, "92136c79-5fea-4cfd-980e-23be07fa5e9f", "79 6c 13 92 ea 5f fd 4c 98 0e 23 be 07 fa 5e 9f"},
		{GUIDHOTHAM, "082ee5a7-7c25-470a-9643-0c06f0466ea1", "a7 e5 2e 08 25 7c 0a 47 96 43 0c 06 f0 46 6e a1"},
	} {
		if !bytes.Equal(tc.g[:], hx(t, tc.bin)) {
			t.Errorf("%s: binary % x, want %s", tc.text, tc.g, tc.bin)
		}
		if got := FormatGUID(tc.g); got != tc.text {
			t.Errorf("FormatGUID = %s, want %s", got, tc.text)
		}
	}
	if _, err := ParseGUID("12f80028b4b74b2daca846e0ff65814c"); err == nil {
		t.Error("ParseGUID accepted a GUID without dashes")
	}
}

// TestExampleGetControlMode replays spec/heci.md §8.5 byte for byte.
func TestExampleGetControlMode(t *testing.T) {
	path, _ := startServer(t, newFakeFirmware(), Options{})
	c := dialRaw(t, path)
	write(t, c, hx(t, "10 00 00 00  28 00 f8 12 b7 b4 2d 4b ac a8 46 e0 ff 65 81 4c"))
	if got, want := readRawFrame(t, c), hx(t, "09 00 00 00  00 00 00 00  00 10 00 00  01"); !bytes.Equal(got, want) {
		t.Fatalf("connect reply % x, want % x", got, want)
	}
	write(t, c, hx(t, "0c 00 00 00  01 01 00 00 6b 00 00 04 00 00 00 00"))
	want := hx(t, "14 00 00 00  01 01 00 00 6b 00 80 04 08 00 00 00 00 00 00 00 01 00 00 00")
	if got := readRawFrame(t, c); !bytes.Equal(got, want) {
		t.Fatalf("GetControlMode % x, want % x", got, want)
	}
}

// TestExampleUnknownClient replays the unknown-client example of §8.5, and
// checks the other clients a simulator need not serve.
func TestExampleUnknownClient(t *testing.T) {
	path, _ := startServer(t, newFakeFirmware(), Options{})
	for _, g := range [][16]byte{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, GUIDLMEIF, GUIDUPID, GUIDHOTHAM} {
		c := dialRaw(t, path)
		write(t, c, frame(g[:]))
		if got, want := readRawFrame(t, c), hx(t, "09 00 00 00  19 00 00 00 00 00 00 00 00"); !bytes.Equal(got, want) {
			t.Fatalf("reply % x, want % x", got, want)
		}
		expectEOF(t, c)
	}
}

func TestDisabledDeviceENODEV(t *testing.T) {
	fw := newFakeFirmware()
	fw.available.Store(false)
	path, _ := startServer(t, fw, Options{})
	_, err := Dial(context.Background(), path, GUIDIAMTHIF)
	var ce *ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, syscall.ENODEV) || ce.Errno != 19 {
		t.Fatalf("Dial on disabled device: %v", err)
	}
	fw.available.Store(true)
	if _, err := (Host{Path: path}).GetControlMode(context.Background()); err != nil {
		t.Fatalf("after re-enable: %v", err)
	}
}

func TestDialUnknownClientENOTTY(t *testing.T) {
	path, _ := startServer(t, newFakeFirmware(), Options{})
	_, err := Dial(context.Background(), path, GUIDLMEIF)
	if !errors.Is(err, syscall.ENOTTY) {
		t.Fatalf("Dial LMEIF: %v, want ENOTTY", err)
	}
}

// pthiRoundTrip connects IAMTHIF on a raw socket and exchanges one message;
// it returns the response payload (without frame header).
func pthiRoundTrip(t *testing.T, path string, req []byte) []byte {
	t.Helper()
	c := dialRaw(t, path)
	write(t, c, frame(GUIDIAMTHIF[:]))
	if rep := readRawFrame(t, c); !bytes.Equal(rep, hx(t, "09000000 00000000 00100000 01")) {
		t.Fatalf("connect reply % x", rep)
	}
	write(t, c, frame(req))
	return readRawFrame(t, c)[4:]
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func padded(s string, n int) []byte {
	b := make([]byte, n)
	copy(b, s)
	return b
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestPTHIByteLayouts checks every PTHI command of spec/heci.md §4.1–4.13
// against hand-assembled responses.
func TestPTHIByteLayouts(t *testing.T) {
	fw := newFakeFirmware()
	path, _ := startServer(t, fw, Options{})

	codeVersions := func() []byte {
		var b []byte
		for _, e := range fw.versions {
			b = cat(b, []byte{byte(len(e.Description)), 0}, padded(e.Description, 20), []byte{byte(len(e.Version)), 0}, padded(e.Version, 20))
		}
		return b
	}()
	hashEntry0 := cat(le32(1), le32(1), padded(string(seq(32, 0x10)), 64), []byte{2, 23, 0}, []byte("DigiCert Global Root G2"))
	hashEntry1 := cat(le32(1), le32(0), padded(string(seq(20, 0x80)), 64), []byte{1, 8, 0}, []byte("Old Root"))

	for _, tc := range []struct {
		name string
		req  string
		body []byte // request body appended to req
		want []byte
	}{
		{"GetControlMode", "01 01 00 00 6b 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 6b 00 80 04 08 00 00 00 00 00 00 00 01 00 00 00")},
		{"GetProvisioningState", "01 01 00 00 11 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 11 00 80 04 08 00 00 00 00 00 00 00 02 00 00 00")},
		{"GetUUID", "01 01 00 00 5c 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 5c 00 80 04 14 00 00 00 00 00 00 00 44 45 4c 4c 38 00 10 4b 80 52 b4 c0 4f 56 44 33")},
		{"GetCodeVersions", "01 01 00 00 1a 00 00 04 00 00 00 00", nil,
			cat(hx(t, "01 01 00 00 1a 00 80 04"), le32(4+65+4+44*10), le32(0), padded(fw.bios, 65), le32(10), codeVersions)},
		{"GetLocalSystemAccount", "01 01 00 00 67 00 00 04 28 00 00 00", make([]byte, 40),
			cat(hx(t, "01 01 00 00 67 00 80 04 46 00 00 00 00 00 00 00"), padded("$$OsAdmin", 33), padded(fw.lsaPass, 33))},
		{"GetLANInterfaceSettings wired", "01 01 00 00 48 00 00 04 04 00 00 00 00 00 00 00", nil,
			hx(t, "01 01 00 00 48 00 80 04 18 00 00 00 00 00 00 00 01 00 00 00 64 01 a8 c0 01 00 00 00 01 01 00 1b 21 aa bb cc")},
		{"GetLANInterfaceSettings no wireless", "01 01 00 00 48 00 00 04 04 00 00 00 01 00 00 00", nil,
			hx(t, "01 01 00 00 48 00 80 04 04 00 00 00 24 00 00 00")},
		{"EnumerateHashHandles", "01 01 00 00 2c 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 2c 00 80 04 14 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 01 00 00 00 17 00 00 00")},
		{"GetCertHashEntry 0", "01 01 00 00 2d 00 00 04 04 00 00 00 00 00 00 00", nil,
			cat(hx(t, "01 01 00 00 2d 00 80 04"), le32(4+4+4+64+1+2+23), le32(0), hashEntry0)},
		{"GetCertHashEntry 1", "01 01 00 00 2d 00 00 04 04 00 00 00 01 00 00 00", nil,
			cat(hx(t, "01 01 00 00 2d 00 80 04"), le32(4+4+4+64+1+2+8), le32(0), hashEntry1)},
		{"GetCertHashEntry unknown handle", "01 01 00 00 2d 00 00 04 04 00 00 00 05 00 00 00", nil,
			hx(t, "01 01 00 00 2d 00 80 04 04 00 00 00 05 08 00 00")},
		{"GetPKIFQDNSuffix", "01 01 00 00 36 00 00 04 00 00 00 00", nil,
			cat(hx(t, "01 01 00 00 36 00 80 04 11 00 00 00 00 00 00 00 0b 00"), []byte("example.com"))},
		{"GetRemoteAccessConnectionStatus", "01 01 00 00 46 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 46 00 80 04 12 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")},
		{"StopConfiguration", "01 01 00 00 5e 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 5e 00 80 04 04 00 00 00 00 00 00 00")},
		{"StartConfigurationHBased when activated", "01 01 00 00 8b 00 00 04 86 01 00 00", cat([]byte{2}, make([]byte, 389)),
			hx(t, "01 01 00 00 8b 00 80 04 04 00 00 00 03 00 00 00")},
		{"unknown command", "01 01 00 00 99 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 99 00 80 04 04 00 00 00 24 00 00 00")},
		{"GetAMTState (unimplemented)", "01 01 00 00 01 00 00 01 00 00 00 00", nil,
			hx(t, "01 01 00 00 01 00 80 01 04 00 00 00 24 00 00 00")},
		{"header length mismatch", "01 01 00 00 6b 00 00 04 04 00 00 00", nil,
			hx(t, "01 01 00 00 6b 00 80 04 04 00 00 00 04 00 00 00")},
		{"GetLocalSystemAccount without reserved bytes", "01 01 00 00 67 00 00 04 00 00 00 00", nil,
			hx(t, "01 01 00 00 67 00 80 04 04 00 00 00 04 00 00 00")},
		{"GetControlMode with a body", "01 01 00 00 6b 00 00 04 01 00 00 00 00", nil,
			hx(t, "01 01 00 00 6b 00 80 04 04 00 00 00 04 00 00 00")},
		{"StartConfigurationHBased bad algorithm", "01 01 00 00 8b 00 00 04 86 01 00 00", cat([]byte{1}, make([]byte, 389)),
			hx(t, "01 01 00 00 8b 00 80 04 04 00 00 00 24 00 00 00")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := cat(hx(t, tc.req), tc.body)
			got := pthiRoundTrip(t, path, req)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("response\n got % x\nwant % x", got, tc.want)
			}
			h, _ := ParsePTHIHeader(got)
			if int(h.Length) != len(got)-12 {
				t.Fatalf("Length %d for %d bytes", h.Length, len(got))
			}
		})
	}
}

func TestPTHIUnprovisionAndStartConfiguration(t *testing.T) {
	fw := newFakeFirmware()
	fw.mode = 2 // ACM: PTHI Unprovision is refused
	path, _ := startServer(t, fw, Options{})
	unprov := hx(t, "01 01 00 00 10 00 00 04 04 00 00 00 00 00 00 00")
	if got, want := pthiRoundTrip(t, path, unprov), hx(t, "01 01 00 00 10 00 80 04 04 00 00 00 03 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("Unprovision in ACM % x, want % x", got, want)
	}
	fw.mu.Lock()
	fw.mode = 1
	fw.mu.Unlock()
	if got, want := pthiRoundTrip(t, path, unprov), hx(t, "01 01 00 00 10 00 80 04 04 00 00 00 00 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("Unprovision in CCM % x, want % x", got, want)
	}
	if got := pthiRoundTrip(t, path, hx(t, "01 01 00 00 6b 00 00 04 00 00 00 00")); got[16] != 0 {
		t.Fatalf("control mode after Unprovision = %d", got[16])
	}

	// StartConfigurationHBased in pre-provisioning (402-byte request).
	req := make([]byte, 402)
	copy(req, hx(t, "01 01 00 00 8b 00 00 04 86 01 00 00"))
	req[12] = 3
	copy(req[13:], seq(48, 0x40))
	got := pthiRoundTrip(t, path, req)
	want := cat(hx(t, "01 01 00 00 8b 00 80 04 45 00 00 00 00 00 00 00 02"), padded(string(fw.amtHash), 64))
	if !bytes.Equal(got, want) {
		t.Fatalf("StartConfigurationHBased\n got % x\nwant % x", got, want)
	}
	if fw.gotAlg != 3 || !bytes.Equal(fw.gotHash, seq(48, 0x40)) {
		t.Fatalf("firmware got alg %d hash % x", fw.gotAlg, fw.gotHash)
	}
}

func TestWDIF(t *testing.T) {
	fw := newFakeFirmware()
	path, _ := startServer(t, fw, Options{})
	c := dialRaw(t, path)
	write(t, c, frame(GUIDWDIF[:]))
	if got, want := readRawFrame(t, c), hx(t, "09 00 00 00 00 00 00 00 00 02 00 00 01"); !bytes.Equal(got, want) {
		t.Fatalf("WDIF connect reply % x, want % x", got, want)
	}
	for _, tc := range []struct{ req, want string }{
		{"05 02 51 10", "01 00 00 00 82"},
		{"05 03 53 10 01", "08 00 00 00 05 03 53 10 00 00 00 00"}, // already enabled
		{"05 03 53 10 00", "08 00 00 00 05 03 53 10 10 00 00 00"}, // NOT_PERMITTED
		{"05 04 99 10", "08 00 00 00 05 04 99 10 24 00 00 00"},    // unknown
	} {
		write(t, c, frame(hx(t, tc.req)))
		if got, want := readRawFrame(t, c), hx(t, tc.want); !bytes.Equal(got, want) {
			t.Errorf("WDIF %s: % x, want % x", tc.req, got, want)
		}
	}
	// A WDIF frame larger than its 512-byte maximum closes the connection.
	write(t, c, frame(make([]byte, 513)))
	expectEOF(t, c)
}

// TestFrameErrorsCloseOneConnection: malformed frames close the offending
// connection only; a connection opened before keeps working.
func TestFrameErrorsCloseOneConnection(t *testing.T) {
	path, _ := startServer(t, newFakeFirmware(), Options{})
	ctx := context.Background()
	keeper, err := Dial(ctx, path, GUIDIAMTHIF)
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.Close()

	for _, tc := range []struct {
		name      string
		handshake bool
		send      []byte
	}{
		{"first frame 15 bytes", false, frame(make([]byte, 15))},
		{"first frame 17 bytes", false, frame(make([]byte, 17))},
		{"first frame huge", false, hx(t, "ff ff ff ff")},
		{"zero-length frame", true, hx(t, "00 00 00 00")},
		{"frame over MaxMessageLength", true, frame(make([]byte, 4097))},
		{"length over MaxMessageLength without payload", true, hx(t, "01 10 00 00")},
		{"PTHI message shorter than its header", true, frame(hx(t, "01 01 00 00 6b 00 00 04"))},
		{"truncated frame then EOF", true, hx(t, "0c 00 00 00 01 01")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, path)
			if tc.handshake {
				write(t, c, frame(GUIDIAMTHIF[:]))
				readRawFrame(t, c)
			}
			write(t, c, tc.send)
			if strings.HasPrefix(tc.name, "truncated") {
				c.(*net.UnixConn).CloseWrite()
			}
			expectEOF(t, c)
			if m, err := keeper.GetControlMode(ctx); err != nil || m != 1 {
				t.Fatalf("other connection broken: mode %d err %v", m, err)
			}
		})
	}
	// Exactly MaxMessageLength is accepted (and answered: unknown command).
	c := dialRaw(t, path)
	write(t, c, frame(GUIDIAMTHIF[:]))
	readRawFrame(t, c)
	big := make([]byte, 4096)
	copy(big, EncodePTHIRequest(0x04000077, make([]byte, 4096-12)))
	write(t, c, frame(big))
	if got, want := readRawFrame(t, c), hx(t, "10 00 00 00 01 01 00 00 77 00 80 04 04 00 00 00 24 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("4096-byte request: % x", got)
	}
}

func TestHostTypedCalls(t *testing.T) {
	fw := newFakeFirmware()
	w := hostif.LANSettings{Enabled: true, IPv4: [4]byte{10, 0, 0, 7}, LinkUp: false, MAC: [6]byte{1, 2, 3, 4, 5, 6}}
	fw.wireless = &w
	path, _ := startServer(t, fw, Options{})
	h := Host{Path: path}
	ctx := context.Background()

	if m, err := h.GetControlMode(ctx); err != nil || m != 1 {
		t.Fatalf("GetControlMode %d %v", m, err)
	}
	if s, err := h.GetProvisioningState(ctx); err != nil || s != 2 {
		t.Fatalf("GetProvisioningState %d %v", s, err)
	}
	u, err := h.GetUUID(ctx)
	if err != nil || FormatGUID(u) != "4c4c4544-0038-4b10-8052-b4c04f564433" {
		t.Fatalf("GetUUID %s %v", FormatGUID(u), err)
	}
	cv, err := h.GetCodeVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cv.BIOS != fw.bios || len(cv.Entries) != len(fw.versions) {
		t.Fatalf("code versions %+v", cv)
	}
	for _, k := range []struct{ d, v string }{{"AMT", "16.1.25"}, {"Build Number", "2050"}, {"Sku", "16392"}} {
		if got, ok := cv.Get(k.d); !ok || got != k.v {
			t.Errorf("%s = %q", k.d, got)
		}
	}
	user, pass, err := h.GetLocalSystemAccount(ctx)
	if err != nil || user != "$$OsAdmin" || pass != fw.lsaPass {
		t.Fatalf("LSA %q %v", user, err)
	}
	lan, err := h.GetLANInterfaceSettings(ctx, 0)
	if err != nil || lan != fw.wired {
		t.Fatalf("wired %+v %v", lan, err)
	}
	wl, err := h.GetLANInterfaceSettings(ctx, 1)
	if err != nil || wl != w {
		t.Fatalf("wireless %+v %v", wl, err)
	}
	var se *StatusError
	if _, err := h.GetLANInterfaceSettings(ctx, 2); !errors.As(err, &se) || se.Status != hostif.StatusInvalidParameter {
		t.Fatalf("interface 2: %v", err)
	}
	hashes, err := h.CertHashes(ctx)
	if err != nil || len(hashes) != 3 {
		t.Fatalf("hashes %v %v", hashes, err)
	}
	for i, e := range hashes {
		want := fw.hashes[i]
		if e.Handle != want.Handle || e.IsDefault != want.IsDefault || e.IsActive != want.IsActive ||
			e.Algorithm != want.Algorithm || !bytes.Equal(e.Hash, want.Hash) || e.Name != want.Name {
			t.Errorf("hash %d: %+v, want %+v", i, e, want)
		}
	}
	if s, err := h.GetPKIFQDNSuffix(ctx); err != nil || s != "example.com" {
		t.Fatalf("suffix %q %v", s, err)
	}
	if r, err := h.GetRemoteAccessConnectionStatus(ctx); err != nil || r != (RemoteAccessStatus{}) {
		t.Fatalf("RAC %+v %v", r, err)
	}
	if f, err := h.IsChangeToAMTEnabled(ctx); err != nil || f != 0x82 {
		t.Fatalf("flags %#x %v", f, err)
	}
	if st, err := h.SetAmtOperationalState(ctx, false); err != nil || st != hostif.StatusNotPermitted {
		t.Fatalf("SetAmtOperationalState %d %v", st, err)
	}
	if _, _, err := h.StartConfigurationHBased(ctx, 2, seq(32, 1)); !errors.As(err, &se) || se.Status != hostif.StatusInvalidAMTMode {
		t.Fatalf("StartConfigurationHBased in CCM: %v", err)
	}
	if err := h.Unprovision(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Unprovision(ctx, 0); !errors.As(err, &se) || se.Status != hostif.StatusInvalidAMTMode {
		t.Fatalf("second Unprovision: %v", err)
	}
	alg, amtHash, err := h.StartConfigurationHBased(ctx, 2, seq(32, 1))
	if err != nil || alg != 2 || !bytes.Equal(amtHash, fw.amtHash) {
		t.Fatalf("StartConfigurationHBased %d % x %v", alg, amtHash, err)
	}
	if s, _ := h.GetProvisioningState(ctx); s != 1 {
		t.Fatalf("provisioning state after StartConfigurationHBased = %d", s)
	}
	if err := h.StopConfiguration(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := h.GetProvisioningState(ctx); s != 0 {
		t.Fatalf("provisioning state after StopConfiguration = %d", s)
	}
}

func TestConnLimits(t *testing.T) {
	path, _ := startServer(t, newFakeFirmware(), Options{})
	ctx := context.Background()
	c, err := Dial(ctx, path, GUIDIAMTHIF)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.MaxMessageLength() != 4096 || c.ProtocolVersion() != 1 || c.GUID() != GUIDIAMTHIF {
		t.Fatalf("negotiated %d/%d", c.MaxMessageLength(), c.ProtocolVersion())
	}
	if err := c.Send(nil); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("Send(empty) = %v", err)
	}
	if err := c.Send(make([]byte, 4097)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("Send(4097) = %v", err)
	}
	// Recv honours ctx: nothing was sent, so it must time out.
	rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := c.Recv(rctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv = %v, want deadline exceeded", err)
	}
	// Cancellation of a Recv without deadline.
	cctx, ccancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := c.Recv(cctx); errc <- err }()
	ccancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Recv after cancel = %v", err)
	}
}

// TestCommandsSerialised: PTHI commands of one device run one at a time even
// when many connections send at once.
func TestCommandsSerialised(t *testing.T) {
	fw := newFakeFirmware()
	path, _ := startServer(t, fw, Options{Latency: time.Millisecond})
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(ctx, path, GUIDIAMTHIF)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for range 4 {
				if _, err := c.GetControlMode(ctx); err != nil {
					errs <- err
					return
				}
				if _, err := c.GetUUID(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m := fw.maxInFlight.Load(); m != 1 {
		t.Fatalf("max concurrent firmware calls = %d, want 1", m)
	}
}

// TestServeStopsOnCancel: cancelling ctx closes the listener and every open
// connection; Serve returns nil and removes the socket file.
func TestServeStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/mei.sock"
	srv := NewServer(newFakeFirmware(), Options{Logger: quietLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		l, err := listenUnix(path)
		if err != nil {
			done <- err
			return
		}
		close(ready)
		done <- srv.Serve(ctx, l)
	}()
	<-ready
	c, err := Dial(context.Background(), path, GUIDIAMTHIF)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := c.Recv(context.Background()); err == nil {
		t.Fatal("connection still open after shutdown")
	}
	if _, err := net.Dial("unix", path); err == nil {
		t.Fatal("socket still accepting after shutdown")
	}
}

func TestListenAndServeReplacesStaleSocketOnly(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/mei.sock"
	// A stale socket file (listener closed without unlinking).
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	srv := NewServer(newFakeFirmware(), Options{Logger: quietLogger()})
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(ctx, path) }()
	var m uint32
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err = (Host{Path: path}).GetControlMode(ctx)
		if err == nil || time.Now().After(deadline) {
			break
		}
		runtimeGosched()
	}
	if err != nil || m != 1 {
		t.Fatalf("GetControlMode via ListenAndServe: %d %v", m, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A regular file is never removed.
	file := dir + "/regular"
	if err := writeFile(file); err != nil {
		t.Fatal(err)
	}
	if err := srv.ListenAndServe(context.Background(), file); err == nil {
		t.Fatal("ListenAndServe replaced a regular file")
	}
}
