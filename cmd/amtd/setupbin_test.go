package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/legacy/legacytest"
	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/legacy/setuppw"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
	"github.com/amtd-project/amtd/internal/testutil/testpki"
)

// openDataDir opens a data folder the way amtd's commands do (SQLite and
// the master key file in it); closed by t.Cleanup.
func openDataDir(t *testing.T, dir string) (store.Store, secrets.Store) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, filepath.Join(dir, "amtd.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sec, err := apitest.OpenSecrets(ctx, dir, st)
	if err != nil {
		t.Fatal(err)
	}
	return st, sec
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runAmtd(t, args...)
	if code != 0 {
		t.Fatalf("amtd %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestSetupBinCreatePKI(t *testing.T) {
	dir := t.TempDir()
	st, sec := openDataDir(t, dir)
	chain := testpki.NewChain(testpki.ChainOptions{LeafCN: "amt.corp.example.com"})
	legacytest.AddDomain(t, st, sec, "", "corp", "corp.example.com", chain)
	pwFile := writeFile(t, "pw", []byte("N3w-Mebx!pass\n"))
	out := filepath.Join(t.TempDir(), "setup.bin")
	stdout := mustRun(t, "setupbin", "create", "-o", out, "--data", dir, "--domain", "corp", "--pki-dns-suffix", "Corp.Example.com.",
		"--server", "192.168.1.10", "--new-mebx-password-file", pwFile, "--records", "2", "--scramble", "--remember")
	if strings.Contains(stdout, "N3w-Mebx!pass") || !strings.Contains(stdout, "wrote "+out) {
		t.Fatalf("stdout:\n%s", stdout)
	}
	img, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := setupbin.Decode(img)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 4 || len(f.Records) != 2 || f.DoNotConsume() || len(img) != 3*512 {
		t.Fatalf("file %+v", f)
	}
	r := f.Records[1]
	if !r.Scrambled || r.Used || r.Number != 2 {
		t.Fatalf("record %+v", r)
	}
	var ids []string
	for _, v := range r.Vars {
		ids = append(ids, v.ID.String())
		if err := setupbin.CheckVar(v); err != nil {
			t.Error(err)
		}
	}
	if want := []string{"1.1", "1.2", "1.3", "2.3", "2.5", "2.8", "2.17", "2.18", "2.28"}; !slices.Equal(ids, want) {
		t.Fatalf("variables %v, want %v", ids, want)
	}
	get := func(id setupbin.VarID) setupbin.Var { v, _ := r.Get(id); return v }
	if get(setupbin.CurrentMEBxPassword).Text() != "admin" || get(setupbin.NewMEBxPassword).Text() != "N3w-Mebx!pass" ||
		get(setupbin.PKIDNSSuffix).Text() != "corp.example.com" {
		t.Fatal("passwords or suffix")
	}
	alg, h, name, err := get(setupbin.UserDefinedCertAdd).CertHash()
	if err != nil || alg != 2 || hex.EncodeToString(h) != legacytest.RootSHA256(chain) || name != "amtd corp" {
		t.Fatalf("root hash %d %x %q %v", alg, h, name, err)
	}
	if a, ok := get(setupbin.ProvisioningServerAddr).ServerAddress(); !ok || a.String() != "192.168.1.10" {
		t.Fatalf("server %v", a)
	}
	if p, _ := get(setupbin.ProvisioningServerPort).Uint(); p != 9971 {
		t.Fatalf("port %d", p)
	}
	if l, _ := setuppw.Load(t.Context(), sec); !slices.Equal(l, []string{"N3w-Mebx!pass"}) {
		t.Fatal("the new MEBx password was not kept as a setup password")
	}

	// show masks secrets unless asked.
	shown := mustRun(t, "setupbin", "show", out)
	for _, want := range []string{"Version: 4.0", "Records: 2, consumed: 0, next: record 1", "Record 2 (number 2): valid, scrambled",
		"1.2 New MEBx password = (13 characters, hidden)", `2.3 PKI DNS suffix = "corp.example.com"`,
		"2.17 Provisioning server address = 192.168.1.10", "2.18 Provisioning server port = 9971",
		"2.8 User-defined certificate addition = algorithm 2 " + legacytest.RootSHA256(chain)} {
		if !strings.Contains(shown, want) {
			t.Errorf("show lacks %q:\n%s", want, shown)
		}
	}
	if strings.Contains(shown, "N3w-Mebx!pass") {
		t.Fatal("show printed a secret")
	}
	if s := mustRun(t, "setupbin", "show", "--show-secrets", out); !strings.Contains(s, `1.2 New MEBx password = "N3w-Mebx!pass"`) {
		t.Fatalf("--show-secrets:\n%s", s)
	}
	// No overwrite without --force.
	if code, _, _ := runAmtd(t, "setupbin", "create", "-o", out, "--new-mebx-password-file", pwFile); code == 0 {
		t.Fatal("overwrote an existing file")
	}
}

func TestSetupBinCreatePSKAndConsume(t *testing.T) {
	dir := t.TempDir()
	gen := mustRun(t, "psk", "generate", "-n", "3", "--data", dir)
	if n := len(strings.Fields(gen)); n != 3 {
		t.Fatalf("generate printed %q", gen)
	}
	out := filepath.Join(t.TempDir(), "psk.bin")
	_, _, errOut := func() (int, string, string) {
		return runAmtd(t, "setupbin", "create", "-o", out, "--data", dir, "--psk", "--records", "2", "--version", "3",
			"--random-mebx-password", "--no-consume")
	}()
	if !strings.Contains(errOut, "same PID/PPS pair") {
		t.Fatalf("--no-consume with --psk: %s", errOut)
	}
	code, stdout, errOut := runAmtd(t, "setupbin", "create", "-o", out, "--data", dir, "--psk", "--records", "2", "--version", "3", "--random-mebx-password")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout, errOut)
	}
	if !strings.Contains(errOut, "generated MEBx password (shown once") {
		t.Fatalf("stderr %s", errOut)
	}
	img, _ := os.ReadFile(out)
	f, err := setupbin.Decode(img)
	if err != nil {
		t.Fatal(err)
	}
	st, sec := openDataDir(t, dir)
	k := &psk.Keeper{Store: st, Secrets: sec}
	seen := map[string]bool{}
	for i, r := range f.Records {
		pid, _ := r.Get(setupbin.PID)
		pps, _ := r.Get(setupbin.PPS)
		p, err := k.Lookup(t.Context(), pid.Text())
		if err != nil || p.PPS != pps.Text() || p.ExportedTo != "psk.bin" || seen[p.PID] {
			t.Fatalf("record %d pair %s: %v", i, pid.Text(), err)
		}
		seen[p.PID] = true
	}
	if list := mustRun(t, "psk", "list", "--available", "--data", dir); !strings.Contains(list, "1 pair(s)") {
		t.Fatalf("available after create:\n%s", list)
	}
	if s := mustRun(t, "psk", "list", "--data", dir); strings.Count(s, "psk.bin") != 2 {
		t.Fatalf("list:\n%s", s)
	}
	// Not enough pairs left.
	if code, _, errOut := runAmtd(t, "setupbin", "create", "-o", out+"2", "--data", dir, "--psk", "--records", "2", "--random-mebx-password"); code == 0 ||
		!strings.Contains(errOut, "only 1 unused PID/PPS pair") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// The BIOS consumed the first record: show says so.
	if _, err := setupbin.MarkUsed(img, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, img, 0o600); err != nil {
		t.Fatal(err)
	}
	shown := mustRun(t, "setupbin", "show", out)
	for _, want := range []string{"Records: 2, consumed: 1, next: record 2", "Record 1 (number 1): used\n  (no variables)",
		"Record 2 (number 2): valid", "2.1 PID = \"", "2.2 PPS = (32 characters, hidden)"} {
		if !strings.Contains(shown, want) {
			t.Errorf("show lacks %q:\n%s", want, shown)
		}
	}
}

// The worked example of legacy.md §11.5 and the layout of rgl/amt-setupbin's
// generator (version 4, do-not-consume, a scrambled record with 1.3, 1.6,
// 2.10, 2.13, 2.23, 2.25–2.27, 2.6, 2.8) decode.
func TestSetupBinShowPublishedLayouts(t *testing.T) {
	rows := map[int]string{
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
	img := make([]byte, 1024)
	for off, h := range rows {
		b, err := hex.DecodeString(strings.ReplaceAll(h, " ", ""))
		if err != nil || len(b) != 16 {
			t.Fatalf("row %#x", off)
		}
		copy(img[off:], b)
	}
	file := writeFile(t, "example.bin", img)
	shown := mustRun(t, "setupbin", "show", "--show-secrets", file)
	for _, want := range []string{"Version: 3.0", "Flags: 0x0001 (records are not consumed)", "Modules: 1, 2",
		`1.1 Current MEBx password = "admin"`, `1.2 New MEBx password = "P@ssw0rd!"`, `2.3 PKI DNS suffix = "example.com"`,
		"2.28 ME provision halt/active = 1"} {
		if !strings.Contains(shown, want) {
			t.Errorf("worked example lacks %q:\n%s", want, shown)
		}
	}

	f := setupbin.NewFile(4, setupbin.FileFlagDoNotConsume)
	power, err := setupbin.GUIDVar(setupbin.PowerPackage, "46732273-DC23-2F43-A98A-13D37982D855")
	if err != nil {
		t.Fatal(err)
	}
	hash, err := setupbin.CertHashVar(2, bytes.Repeat([]byte{0xab}, 32), "MyRoot")
	if err != nil {
		t.Fatal(err)
	}
	f.AddRecord(true, setupbin.StringVar(setupbin.CurrentMEBxPassword, "admin"), setupbin.StringVar(setupbin.NewMEBxPassword, "HeyH0!xx"),
		setupbin.U8Var(setupbin.ManageabilitySelection, 1), power, setupbin.U8Var(setupbin.Redirection, 7), setupbin.U8Var(setupbin.DHCP, 2),
		setupbin.U8Var(setupbin.SharedFQDN, 1), setupbin.U8Var(setupbin.KVMState, 1), setupbin.U8Var(setupbin.UserConsent, 0),
		setupbin.U8Var(setupbin.RemoteITConsentPolicy, 1), hash, setupbin.U8Var(setupbin.PreInstalledCertsEnabled, 0),
		setupbin.Var{ID: setupbin.MakeVarID(2, 99), Value: []byte{1, 2, 3}})
	enc, err := setupbin.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	shown = mustRun(t, "setupbin", "show", writeFile(t, "rgl.bin", enc))
	for _, want := range []string{"Version: 4.0", "Record 1 (number 1): valid, scrambled", "1.6 Power package = 46732273-DC23-2F43-A98A-13D37982D855",
		"2.10 SOL / storage redirection = 7", "2.13 DHCP = 2", "2.6 Pre-installed certificates enabled = 0",
		`2.8 User-defined certificate addition = algorithm 2 ` + strings.Repeat("ab", 32) + ` "MyRoot"`, "2.99 (unknown) = 010203"} {
		if !strings.Contains(shown, want) {
			t.Errorf("rgl layout lacks %q:\n%s", want, shown)
		}
	}
	// A damaged file is reported, not shown.
	if code, _, errOut := runAmtd(t, "setupbin", "show", writeFile(t, "bad.bin", enc[:700])); code != 1 || !strings.Contains(errOut, "512-byte chunks") {
		t.Fatalf("damaged file: %d %s", code, errOut)
	}
}
