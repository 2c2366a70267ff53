package mps

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/amtd-project/amtd/internal/api/mps/xmljs"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

func auditRecord(app, event uint16, initiator []byte, ts uint32, loc byte, net string, ex []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint16(b, app)
	b = binary.BigEndian.AppendUint16(b, event)
	b = append(b, initiator...)
	b = binary.BigEndian.AppendUint32(b, ts)
	b = append(b, loc, byte(len(net)))
	b = append(b, net...)
	b = append(b, byte(len(ex)))
	return append(b, ex...)
}

func encode(t *testing.T, v any) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b.Bytes()))
}

func TestDecodeAuditRecord(t *testing.T) {
	digest := append([]byte{0, 5}, "admin"...)
	rec := auditRecord(16, 7, digest, 1700000000, 2, "192.168.1.5", []byte{1, 2})
	got := encode(t, decodeAuditRecord(rec))
	want := `{"AuditAppID":16,"EventID":7,"InitiatorType":0,"AuditApp":"Security Admin","Event":"TLS State Changed",` +
		`"Initiator":"admin","Time":"2023-11-14T22:13:20.000Z","MCLocationType":2,"NetAddress":"192.168.1.5",` +
		`"Ex":"\u0001\u0002","ExStr":"Remote ServerAuth, Local MutualAuth"}`
	if got != want {
		t.Fatalf("digest record\n got: %s\nwant: %s", got, want)
	}
	// local initiator, unknown event, loopback address, no extended string
	rec = auditRecord(16, 99, []byte{2}, 1, 0, "0000:0000:0000:0000:0000:0000:0000:0001", nil)
	o := decodeAuditRecord(rec)
	if o.Get("Initiator") != "Local" || o.Get("Event") != "#99" || o.Get("NetAddress") != "::1" || o.Get("ExStr") != nil {
		t.Fatalf("local record: %s", encode(t, o))
	}
	// Kerberos SID S-1-5-21-1-2
	sid := []byte{1, 3, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0}
	kerb := append([]byte{1, 0, 0, 0, 0, byte(len(sid))}, sid...)
	o = decodeAuditRecord(auditRecord(16, 0, kerb, 1, 0, "", nil))
	if o.Get("Initiator") != "S-1-5-21-1-2" || o.Get("InitiatorType") != 1 {
		t.Fatalf("kerberos record: %s", encode(t, o))
	}
	// firmware update event data
	ex := []byte{0, 16, 0, 1, 0, 2, 0, 3, 0, 16, 0, 1, 0, 5, 0, 9}
	if s := decodeAuditRecord(auditRecord(19, 0, []byte{2}, 1, 0, "", ex)).Get("ExStr"); s != "From 16.1.2.3 to 16.1.5.9" {
		t.Fatalf("firmware update ExStr %v", s)
	}
	// truncated records decode without panicking
	for i := 0; i < len(rec); i++ {
		_ = decodeAuditRecord(rec[:i])
	}
}

func TestDecodeEventRecord(t *testing.T) {
	rec := make([]byte, 21)
	binary.LittleEndian.PutUint32(rec, 1700000000)
	copy(rec[4:], []byte{255, 15, 111, 2, 104, 8, 255, 34, 0})
	copy(rec[13:], []byte{64, 3, 0, 0, 0, 0, 0, 0})
	got := encode(t, decodeEventRecord(rec))
	want := `{"DeviceAddress":255,"EventSensorType":15,"EventType":111,"EventOffset":2,"EventSourceType":104,` +
		`"EventSeverity":8,"SensorNumber":255,"Entity":34,"EntityInstance":0,"EventData":[64,3,0,0,0,0,0,0],` +
		`"TimeStamp":"2023-11-14T22:13:20.000Z","EntityStr":"BIOS","Desc":"Secondary processor(s) initialization"}`
	if got != want {
		t.Fatalf("event\n got: %s\nwant: %s", got, want)
	}
	for _, ts := range []uint32{0, 0xFFFFFFFF} {
		binary.LittleEndian.PutUint32(rec, ts)
		if decodeEventRecord(rec) != nil {
			t.Fatalf("timestamp %#x not skipped", ts)
		}
	}
	if decodeEventRecord(rec[:20]) != nil {
		t.Fatal("short record decoded")
	}
	binary.LittleEndian.PutUint32(rec, 5)
	rec[5], rec[13], rec[14], rec[15] = 6, 0, 3, 1
	if d := decodeEventRecord(rec).Get("Desc"); d != "Authentication failed 259 times. The system may be under attack." {
		t.Fatalf("sensor 6: %v", d)
	}
	rec[5] = 200
	if d := decodeEventRecord(rec).Get("Desc"); d != "Unknown Sensor Type #200" {
		t.Fatalf("unknown sensor: %v", d)
	}
}

func TestParseCertInput(t *testing.T) {
	now := time.Now()
	ch := testpki.NewChain(testpki.ChainOptions{})
	der := base64.StdEncoding.EncodeToString(ch.Leaf.Raw)
	if d, msg := parseCertInput(der, now); msg != "" || !bytes.Equal(d, ch.Leaf.Raw) {
		t.Fatalf("DER: %q", msg)
	}
	pemText := "-----BEGIN CERTIFICATE-----\n" + der + "\n-----END CERTIFICATE-----\n"
	if d, msg := parseCertInput(base64.StdEncoding.EncodeToString([]byte(pemText)), now); msg != "" || !bytes.Equal(d, ch.Leaf.Raw) {
		t.Fatalf("PEM: %q", msg)
	}
	for in, want := range map[string]string{
		"":      "Invalid certificate format (not valid DER or PEM)",
		"dummy": "Invalid certificate format (not valid DER or PEM)",
		base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nnot\n-----END CERTIFICATE-----")): "Invalid certificate format (not valid DER or PEM)",
	} {
		if _, msg := parseCertInput(in, now); msg != want {
			t.Errorf("%q: %q, want %q", in, msg, want)
		}
	}
	if _, msg := parseCertInput(der, ch.Leaf.NotAfter.Add(time.Hour)); msg != "Certificate has expired" {
		t.Fatalf("expired: %q", msg)
	}
}

func TestBootHelpers(t *testing.T) {
	for a, want := range map[int]int{100: 2, 101: 10, 104: 2, 105: 10, 106: 2, 107: 10, 108: 2, 109: 10, 110: 2,
		200: 10, 201: 2, 202: 10, 203: 2, 300: 2, 301: 10, 400: 10, 401: 2} {
		if got := bootPowerAction(a); got != want {
			t.Errorf("bootPowerAction(%d) = %d, want %d", a, got, want)
		}
	}
	tlv := appendTLV(appendTLV(nil, 1, []byte("https://x/y")), 20, []byte{1})
	want := []byte{0x86, 0x80, 1, 0, 11, 0, 0, 0}
	want = append(want, "https://x/y"...)
	want = append(want, 0x86, 0x80, 20, 0, 1, 0, 0, 0, 1)
	if !bytes.Equal(tlv, want) {
		t.Fatalf("TLV % x", tlv)
	}
	src := func(id, bios, boot string) any {
		return xmljs.NewObject().Set("InstanceID", id).Set("BIOSBootString", bios).Set("BootString", boot)
	}
	list := []any{
		src("Intel(r) AMT: Force PXE Boot", "", ""),
		src("Intel(r) AMT: Force OCR UEFI Boot Option 1", "Vendor PBA", `\EFI\pba.efi`),
		src("Intel(r) AMT: Force OCR UEFI Boot Option 2", "Windows WinRe", `\EFI\winre.efi`),
	}
	if got := findBootSource(list, 107, `\EFI\pba.efi`); got != "Intel(r) AMT: Force OCR UEFI Boot Option 1" {
		t.Fatalf("PBA by path: %q", got)
	}
	if got := findBootSource(list, 110, ""); got != "Intel(r) AMT: Force OCR UEFI Boot Option 2" {
		t.Fatalf("WinRE by BIOS string: %q", got)
	}
	if got := findBootSource(list, 108, ""); got != "" {
		t.Fatalf("PBA without path: %q", got)
	}
	for s, want := range map[string]int64{"P1D": 1440, "PT1H30M": 90, "P0DT0H5M": 5, "P1DT2H3M": 1563, "": 0, "junk": 0} {
		if got := durationMinutes(s); got != want {
			t.Errorf("durationMinutes(%q) = %d, want %d", s, got, want)
		}
	}
	if xmlText(`a<b&"c"`) != "a&lt;b&amp;&#34;c&#34;" {
		t.Fatalf("xmlText: %s", xmlText(`a<b&"c"`))
	}
}

func FuzzDecodeAuditRecord(f *testing.F) {
	f.Add(auditRecord(16, 7, append([]byte{0, 5}, "admin"...), 1700000000, 2, "192.168.1.5", []byte{1, 2}))
	f.Add(auditRecord(16, 3, []byte{1, 0, 0, 0, 0, 3, 1, 2, 3}, 1, 0, "", []byte{0, 1}))
	f.Add([]byte{0, 19, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := json.Marshal(decodeAuditRecord(b)); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzDecodeEventRecord(f *testing.F) {
	f.Add(make([]byte, 21))
	f.Add(bytes.Repeat([]byte{0xAA}, 21))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := decodeEventRecord(b); o != nil {
			if _, err := json.Marshal(o); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func FuzzParseCertInput(f *testing.F) {
	f.Add("dummy")
	f.Add(base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----")))
	f.Fuzz(func(t *testing.T, s string) {
		der, msg := parseCertInput(s, time.Now())
		if (msg == "") == (der == nil) {
			t.Fatalf("der %v with message %q", der != nil, msg)
		}
	})
}
