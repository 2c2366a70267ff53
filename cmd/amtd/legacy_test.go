package main

import (
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/legacy/setuppw"
	"github.com/amtd-project/amtd/internal/store"
)

func TestLegacyAllowListCLI(t *testing.T) {
	dir := t.TempDir()
	st, sec := openDataDir(t, dir)
	if err := st.CreateProfile(t.Context(), &store.Profile{Name: "acm", Activation: "acmactivate", Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "legacy", "add", "--data", dir, "--uuid", "939B524B13D41D18E4871C697A6B7A2B", "--profile", "acm", "--hostname", "pc-1")
	// A bad CSV stores nothing and names each bad line.
	bad := writeFile(t, "bad.csv", []byte("uuid,hostname,domain,profile\n"+
		"d2ffc23e-9dd1-412d-860a-54b2039b72ff,pc-2,corp.example.com,acm\n"+
		"xyz,pc-3,corp.example.com,acm\n"+
		"11111111-2222-3333-4444-555555555555,pc-4,corp.example.com,nope\n"))
	code, _, errOut := runAmtd(t, "legacy", "import", bad, "--data", dir)
	if code != 1 || !strings.Contains(errOut, "line 3: uuid:") || !strings.Contains(errOut, "nothing imported") {
		t.Fatalf("bad import: %d\n%s", code, errOut)
	}
	// The profile check needs the store: fix line 3, line 4 still fails.
	fixed := "uuid,hostname,domain,profile\n" +
		"d2ffc23e-9dd1-412d-860a-54b2039b72ff,pc-2,corp.example.com,acm\n" +
		"11111111-2222-3333-4444-555555555555,pc-4,corp.example.com,nope\n"
	code, _, errOut = runAmtd(t, "legacy", "import", writeFile(t, "b2.csv", []byte(fixed)), "--data", dir)
	if code != 1 || !strings.Contains(errOut, `line 3: profile: profile "nope" does not exist`) {
		t.Fatalf("profile check: %d\n%s", code, errOut)
	}
	if n, _ := st.CountLegacyDevices(t.Context(), ""); n != 1 {
		t.Fatalf("%d entries after failed imports", n)
	}
	good := writeFile(t, "good.csv", []byte(strings.Replace(fixed, ",nope", ",", 1)))
	if out := mustRun(t, "legacy", "import", good, "--default-profile", "acm", "--data", dir); !strings.Contains(out, "imported 2 machine(s)") {
		t.Fatalf("import: %s", out)
	}
	list := mustRun(t, "legacy", "list", "--data", dir)
	for _, want := range []string{"939b524b-13d4-1d18-e487-1c697a6b7a2b  pc-1", "d2ffc23e-9dd1-412d-860a-54b2039b72ff  pc-2", "3 machine(s)"} {
		if !strings.Contains(list, want) {
			t.Errorf("list lacks %q:\n%s", want, list)
		}
	}
	mustRun(t, "legacy", "remove", "d2ffc23e9dd1412d860a54b2039b72ff", "--data", dir)
	if code, _, _ := runAmtd(t, "legacy", "remove", "d2ffc23e9dd1412d860a54b2039b72ff", "--data", dir); code != 1 {
		t.Fatal("removing a missing entry succeeded")
	}
	if js := mustRun(t, "legacy", "list", "--json", "--data", dir); strings.Count(js, `"uuid"`) != 2 {
		t.Fatalf("json list:\n%s", js)
	}

	if err := st.AppendHelloEvent(t.Context(), &store.HelloEvent{GUID: "939b524b-13d4-1d18-e487-1c697a6b7a2b", SourceIP: "192.0.2.5",
		Version: 2, PID: "ABCD1234", Outcome: "unknown-uuid", Detail: "not on the allow-list: discarded"}, 0); err != nil {
		t.Fatal(err)
	}
	h := mustRun(t, "legacy", "hellos", "--data", dir)
	if !strings.Contains(h, "192.0.2.5") || !strings.Contains(h, "PID ABCD1234") || !strings.Contains(h, "unknown-uuid") {
		t.Fatalf("hellos:\n%s", h)
	}

	// Setup passwords from a file, never the command line.
	pw := writeFile(t, "pw", []byte("Op3rator-pw!\n"))
	if out := mustRun(t, "legacy", "setup-password", "add", "--password-file", pw, "--data", dir); !strings.Contains(out, "1 setup password(s)") {
		t.Fatalf("add: %s", out)
	}
	if l, _ := setuppw.Load(t.Context(), sec); len(l) != 1 || l[0] != "Op3rator-pw!" {
		t.Fatalf("kept %q", l)
	}
	mustRun(t, "legacy", "setup-password", "clear", "--data", dir)
	if out := mustRun(t, "legacy", "setup-password", "count", "--data", dir); !strings.Contains(out, "0 setup password(s)") {
		t.Fatalf("count: %s", out)
	}
}
