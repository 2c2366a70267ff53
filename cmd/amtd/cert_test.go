package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

const certTestPassword = "Sekr1t-pfx-pass"

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func runAmtd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCertCheckGood(t *testing.T) {
	c := testpki.NewChain(testpki.ChainOptions{LeafCN: "intel.vprodemo.com", Intermediate: true})
	file := writeFile(t, "good.pfx", c.PFX(certTestPassword, true))
	fp := certs.FingerprintsOf(c.Root.Raw)

	// Flags after the file, as documented.
	code, out, errOut := runAmtd(t, "cert", "check", file, "--password", certTestPassword, "--domain", "vprodemo.com")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"Result: OK",
		"[0] leaf", "CN=intel.vprodemo.com", "[1] intermediate", "[2] root", "CN=amtd test root",
		"SHA-1    " + fp.SHA1, "SHA-256  " + fp.SHA256, "SHA-384  " + fp.SHA384,
		"AMT default root: no",
		"[root-not-default]",
		"EKU 2.16.840.1.113741.1.2.3: yes",
		"Domain suffix:            vprodemo.com",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
	if strings.Contains(out+errOut, certTestPassword) {
		t.Fatal("password printed")
	}
}

func TestCertCheckErrors(t *testing.T) {
	c := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.example.com", NoAMTOID: true})
	file := writeFile(t, "bad.pfx", c.PFX(certTestPassword, false))

	// Flags first; the domain from the environment is overridden by the flag.
	t.Setenv("AMTD_DOMAIN", "example.com")
	code, out, errOut := runAmtd(t, "cert", "check", "--password", certTestPassword, "--domain", "vprodemo.com", file)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{
		"Errors (2):",
		"ERROR [cn-domain-mismatch] FQDN not associated with provisioning certificate",
		"ERROR [no-amt-oid-or-ou] Leaf certificate is missing the Intel AMT Activation EKU OID (2.16.840.1.113741.1.2.3)",
		"Result: FAILED (2 error(s))",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "2 error(s)") {
		t.Errorf("stderr %q", errOut)
	}

	// Wrong password, password from the environment.
	t.Setenv("AMTD_PASSWORD", "not-it")
	code, out, errOut = runAmtd(t, "cert", "check", file)
	if code != 1 || !strings.Contains(out, "[wrong-password] "+certs.MsgDecrypt) {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if strings.Contains(out+errOut, "not-it") {
		t.Fatal("password printed")
	}
}

func TestCertCheckPasswordFileAndBase64(t *testing.T) {
	c := testpki.NewChain(testpki.ChainOptions{})
	b64 := base64.StdEncoding.EncodeToString(c.PFX(certTestPassword, false))
	file := writeFile(t, "cert.b64", []byte(b64[:40]+"\n"+b64[40:]+"\n"))
	pwFile := writeFile(t, "pw.txt", []byte(certTestPassword+"\r\nignored\n"))
	code, out, errOut := runAmtd(t, "cert", "check", file, "--password-file", pwFile)
	if code != 0 || !strings.Contains(out, "(base64 text, decoded)") || !strings.Contains(out, "[no-domain]") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(out+errOut, certTestPassword) {
		t.Fatal("password printed")
	}
}

func TestCertCheckUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"cert"}, 0},
		{[]string{"cert", "check", "--help"}, 0},
		{[]string{"cert", "frobnicate"}, 2},
		{[]string{"cert", "check"}, 2},
		{[]string{"cert", "check", "a.pfx", "b.pfx"}, 2},
		{[]string{"cert", "check", "/nonexistent/x.pfx", "--password", "x"}, 2},
		{[]string{"cert", "check", "--password", "x", "--password-file", "y", "z.pfx"}, 2},
	} {
		if code, out, errOut := runAmtd(t, tc.args...); code != tc.code {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, code, tc.code, out, errOut)
		}
	}
	if code, out, _ := runAmtd(t, "help"); code != 0 || !strings.Contains(out, "cert") {
		t.Fatalf("cert not listed in help:\n%s", out)
	}
}
