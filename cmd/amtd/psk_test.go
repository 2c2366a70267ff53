package main

import (
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/legacy/setupbin"
)

func TestPSKCLI(t *testing.T) {
	dir := t.TempDir()
	out := mustRun(t, "psk", "generate", "-n", "100", "--data", dir)
	pids := strings.Fields(out)
	if len(pids) != 100 {
		t.Fatalf("%d PIDs printed", len(pids))
	}
	for _, p := range pids {
		if len(p) != 9 || p[4] != '-' || !setupbin.ValidPID(setupbin.NormalizePIDPPS(p)) {
			t.Fatalf("PID %q", p)
		}
	}
	st, sec := openDataDir(t, dir)
	k := &psk.Keeper{Store: st, Secrets: sec}
	pair, err := k.Lookup(t.Context(), pids[7])
	if err != nil || !setupbin.ValidPPS(pair.PPS) {
		t.Fatalf("lookup: %v", err)
	}
	list := mustRun(t, "psk", "list", "--data", dir)
	if !strings.Contains(list, "100 pair(s)") || !strings.Contains(list, pids[7]) || strings.Contains(list, pair.PPS) ||
		strings.Contains(list, setupbin.Dashed(pair.PPS)) {
		t.Fatalf("list:\n%s", list)
	}
	// OEM pairs: all or nothing.
	bad := writeFile(t, "oem.csv", []byte("abcd-1234,ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01-2345\nshort,XYZ\n"))
	if code, _, errOut := runAmtd(t, "psk", "import", bad, "--data", dir); code != 1 || !strings.Contains(errOut, "nothing imported") {
		t.Fatalf("bad import: %d %s", code, errOut)
	}
	good := writeFile(t, "oem.csv", []byte("# from the OEM\nabcd-1234,ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ01-2345\n"))
	mustRun(t, "psk", "import", good, "--data", dir)
	if p, err := k.Lookup(t.Context(), "ABCD1234"); err != nil || p.PPS != "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345" {
		t.Fatalf("imported pair: %v", err)
	}
	mustRun(t, "psk", "delete", "ABCD-1234", "--data", dir)
	if code, _, _ := runAmtd(t, "psk", "delete", "ABCD-1234", "--data", dir); code != 1 {
		t.Fatal("deleted twice")
	}
	if code, _, _ := runAmtd(t, "psk", "generate", "--data", dir); code != 2 {
		t.Fatal("generate without -n")
	}
}
