package xmljs

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func TestEnvelope(t *testing.T) {
	in := `<?xml version="1.0" encoding="UTF-8"?>
<a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope" xmlns:b="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:c="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd" xmlns:g="http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings">
<a:Header><b:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</b:To><b:RelatesTo>0</b:RelatesTo><b:Action a:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse</b:Action><b:MessageID>uuid:00000000-8086-8086-8086-000000000052</b:MessageID><c:ResourceURI>http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings</c:ResourceURI></a:Header>
<a:Body><g:AMT_GeneralSettings><g:AMTNetworkEnabled>1</g:AMTNetworkEnabled><g:DDNSTTL>900</g:DDNSTTL><g:DDNSUpdateByDHCPServerEnabled>true</g:DDNSUpdateByDHCPServerEnabled><g:DigestRealm>Digest:F3EB554784E729164447A89F60B641C5</g:DigestRealm><g:DomainName></g:DomainName><g:ElementName>Intel(r) AMT: General Settings</g:ElementName><g:HostName>Test Host Name</g:HostName><g:InstanceID>Intel(r) AMT: General Settings</g:InstanceID><g:ThunderboltDockEnabled>0</g:ThunderboltDockEnabled><g:WsmanOnlyMode>false</g:WsmanOnlyMode></g:AMT_GeneralSettings></a:Body></a:Envelope>`
	o, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Envelope":{"Header":{"To":"http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous","RelatesTo":0,"Action":"http://schemas.xmlsoap.org/ws/2004/09/transfer/GetResponse","MessageID":"uuid:00000000-8086-8086-8086-000000000052","ResourceURI":"http://intel.com/wbem/wscim/1/amt-schema/1/AMT_GeneralSettings"},"Body":{"AMT_GeneralSettings":{"AMTNetworkEnabled":1,"DDNSTTL":900,"DDNSUpdateByDHCPServerEnabled":true,"DigestRealm":"Digest:F3EB554784E729164447A89F60B641C5","DomainName":"","ElementName":"Intel(r) AMT: General Settings","HostName":"Test Host Name","InstanceID":"Intel(r) AMT: General Settings","ThunderboltDockEnabled":0,"WsmanOnlyMode":false}}}}`
	if got := mustJSON(t, o); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if Text(Path(o, "Envelope", "Body", "AMT_GeneralSettings", "HostName")) != "Test Host Name" {
		t.Fatal("Path")
	}
}

func TestArraysAndMixed(t *testing.T) {
	in := `<r><Items><X><A>1</A></X><X><A>2</A></X><Y>one</Y></Items><M>text<c>1</c>more</M><E/><S>  </S><Sel Name="InstanceID">Intel(r) AMT Certificate: Handle: 2</Sel></r>`
	o, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"r":{"Items":{"X":[{"A":1},{"A":2}],"Y":"one"},"M":{"_":"textmore","c":1},"E":"","S":"  ","Sel":"Intel(r) AMT Certificate: Handle: 2"}}`
	if got := mustJSON(t, o); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if n := len(List(Path(o, "r", "Items", "X"))); n != 2 {
		t.Fatalf("List of array = %d", n)
	}
	if n := len(List(Path(o, "r", "Items", "Y"))); n != 1 {
		t.Fatalf("List of single = %d", n)
	}
	if List(Path(o, "r", "Nope")) != nil {
		t.Fatal("List of missing")
	}
}

func TestValueProcessors(t *testing.T) {
	for _, c := range []struct {
		name, text, want string
	}{
		{"V", "42", `42`},
		{"V", "-17", `-17`},
		{"V", "1.5", `1.5`},
		{"V", "1.0", `1`},
		{"V", "007", `7`},
		{"V", " 12 ", `12`},
		{"V", "0x1A", `0`},      // Number() is 26, an integer, so parseInt("0x1A", 10) = 0
		{"V", "1e3", `1`},       // integer per Number(), parseInt stops at "e"
		{"V", "1.5e3", `1`},     // 1500 is an integer: parseInt
		{"V", "2.5e-1", `0.25`}, // not an integer: parseFloat
		{"V", ".0", `null`},     // parseInt(".0") is NaN
		{"V", "-0", `0`},
		{"V", "Infinity", `null`},
		{"V", "12345678901234567890", `12345678901234567000`},
		{"V", "0.1", `0.1`},
		{"V", "1e21", `1`},
		{"V", "abc", `"abc"`},
		{"V", "12abc", `"12abc"`},
		{"V", "1_000", `"1_000"`},
		{"V", "TRUE", `true`},
		{"V", "False", `false`},
		{"V", "uuid:00000000-8086", `"uuid:00000000-8086"`},
		{"InstanceID", "01", `"01"`},
		{"ElementName", "0012", `"0012"`},
		{"ElementName", "0", `0`},
		{"InstanceID", "10", `10`},
		{"V", "<&>", `"<&>"`},
	} {
		in := "<" + c.name + ">" + strings.NewReplacer("<", "&lt;", "&", "&amp;", ">", "&gt;").Replace(c.text) + "</" + c.name + ">"
		o, err := Parse([]byte(in))
		if err != nil {
			t.Fatalf("%q: %v", c.text, err)
		}
		if got := mustJSON(t, o.Get(c.name)); got != c.want {
			t.Errorf("%s %q → %s, want %s", c.name, c.text, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{"", "<a>", "<a></b>", "<a/><b/>", "text<a/>", strings.Repeat("<a>", MaxDepth+1) + strings.Repeat("</a>", MaxDepth+1)} {
		if _, err := Parse([]byte(in)); err == nil {
			t.Errorf("Parse(%.40q) succeeded", in)
		}
	}
}

// TestLibraryFixtures parses every response fixture shipped with
// go-wsman-messages (real-device captures) and checks the JSON is valid and
// that Header.Action survives.
func TestLibraryFixtures(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/device-management-toolkit/go-wsman-messages/v2").Output()
	if err != nil {
		t.Skipf("module directory unavailable: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "pkg", "wsman", "wsmantesting", "responses")
	n := 0
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".xml") {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		o, err := Parse(data)
		if err != nil {
			// a few fixtures are hand-edited fragments
			return nil
		}
		b, err := json.Marshal(o)
		if err != nil || !json.Valid(b) {
			t.Errorf("%s: %v", p, err)
		}
		if Path(o, "Envelope", "Header") != nil && Text(Path(o, "Envelope", "Header", "Action")) == "" {
			t.Errorf("%s: no Action", p)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 200 {
		t.Fatalf("parsed only %d fixtures", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(`<a:Envelope xmlns:a="x"><a:Body><g:X><g:A>1</g:A><g:A>0x2</g:A><g:InstanceID>01</g:InstanceID></g:X></a:Body></a:Envelope>`))
	f.Add([]byte(`<r>t<c/>u</r>`))
	f.Add([]byte(`<r><![CDATA[ 5 ]]></r>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := Parse(data)
		if err != nil {
			return
		}
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if !json.Valid(b) {
			t.Fatalf("invalid JSON %s", b)
		}
	})
}
