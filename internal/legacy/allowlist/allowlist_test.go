package allowlist_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/amtd-project/amtd/internal/legacy/allowlist"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

func TestParseCSV(t *testing.T) {
	in := "# exported from the asset list\n" +
		"939B524B-13D4-1D18-E487-1C697A6B7A2B,pc-001,Corp.Example.COM.,acm\n" +
		"\n" +
		"d2ffc23e9dd1412d860a54b2039b72ff, pc-002 , corp.example.com\n" +
		"\"11111111-2222-3333-4444-555555555555\",\"\",\"\",\"other\"\n"
	got, err := allowlist.ParseCSV(strings.NewReader(in), "default")
	if err != nil {
		t.Fatal(err)
	}
	want := []allowlist.Entry{
		{Line: 2, GUID: "939b524b-13d4-1d18-e487-1c697a6b7a2b", Hostname: "pc-001", Domain: "corp.example.com", Profile: "acm"},
		{Line: 4, GUID: "d2ffc23e-9dd1-412d-860a-54b2039b72ff", Hostname: "pc-002", Domain: "corp.example.com", Profile: "default"},
		{Line: 5, GUID: "11111111-2222-3333-4444-555555555555", Profile: "other"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseCSVHeader(t *testing.T) {
	// ConfigMgr-style header with other names, other order and an extra column.
	in := "\ufeffComputer Name,SMBIOS GUID,MAC Address,Profile,DNS Suffix\r\n" +
		"pc-1,939b524b-13d4-1d18-e487-1c697a6b7a2b,00:11:22:33:44:55,acm,lab.example.com\r\n"
	got, err := allowlist.ParseCSV(strings.NewReader(in), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Hostname != "pc-1" || got[0].GUID != "939b524b-13d4-1d18-e487-1c697a6b7a2b" ||
		got[0].Profile != "acm" || got[0].Domain != "lab.example.com" || got[0].Line != 2 {
		t.Fatalf("got %+v", got)
	}
	if _, err := allowlist.ParseCSV(strings.NewReader("hostname,domain\npc,x.com\n"), "p"); err == nil ||
		!strings.Contains(err.Error(), "no UUID column") {
		t.Fatalf("header without uuid: %v", err)
	}
	if _, err := allowlist.ParseCSV(strings.NewReader("uuid,guid\n"), "p"); err == nil ||
		!strings.Contains(err.Error(), "twice") {
		t.Fatalf("header with uuid twice: %v", err)
	}
}

func TestParseCSVErrorsPerLine(t *testing.T) {
	in := "939b524b-13d4-1d18-e487-1c697a6b7a2b,pc-1,corp.example.com,acm\n" + // 1 ok
		"not-a-uuid,pc-2,corp.example.com,acm\n" + // 2 bad uuid
		"d2ffc23e-9dd1-412d-860a-54b2039b72ff,-bad-,corp..example.com,acm\n" + // 3 bad host and domain
		"939B524B13D41D18E4871C697A6B7A2B,pc-4,,acm\n" + // 4 duplicate of line 1
		"11111111-2222-3333-4444-555555555555,pc-5,,\n" // 5 no profile, no default
	_, err := allowlist.ParseCSV(strings.NewReader(in), "")
	var errs allowlist.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %v is not Errors", err)
	}
	type key struct {
		line  int
		field string
	}
	want := []key{{2, "uuid"}, {3, "hostname"}, {3, "domain"}, {4, "uuid"}, {5, "profile"}}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v", errs)
	}
	for i, w := range want {
		if errs[i].Line != w.line || errs[i].Field != w.field {
			t.Errorf("error %d = %+v, want line %d field %s", i, errs[i], w.line, w.field)
		}
	}
	if !strings.Contains(errs[3].Msg, "line 1") {
		t.Errorf("duplicate message %q does not name the first line", errs[3].Msg)
	}
	// Quoting errors stop the parse with the line.
	_, err = allowlist.ParseCSV(strings.NewReader("939b524b-13d4-1d18-e487-1c697a6b7a2b,pc,\"x,acm\n"), "")
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != 1 || !strings.Contains(errs[0].Msg, "malformed CSV") {
		t.Fatalf("bad quote: %v", err)
	}
	// An empty file is an error, not an empty import.
	if _, err := allowlist.ParseCSV(strings.NewReader("# nothing\n\n"), "p"); err == nil {
		t.Fatal("empty file accepted")
	}
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), filepath.Join(t.TempDir(), "amtd.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestImportAllOrNothing(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	if err := st.CreateProfile(ctx, &store.Profile{Name: "acm", Activation: "acmactivate", Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	entries := []allowlist.Entry{
		{GUID: "939b524b-13d4-1d18-e487-1c697a6b7a2b", Hostname: "pc-1", Profile: "ACM"},
		{GUID: "d2ffc23e-9dd1-412d-860a-54b2039b72ff", Profile: "missing"},
	}
	err := allowlist.Import(ctx, st, "", entries, nil)
	var errs allowlist.Errors
	if !errors.As(err, &errs) || len(errs) != 1 || errs[0].Line != 2 || errs[0].Field != "profile" {
		t.Fatalf("import = %v", err)
	}
	if n, _ := st.CountLegacyDevices(ctx, ""); n != 0 {
		t.Fatalf("%d entries stored by a failed import", n)
	}
	entries[1].Profile = "acm"
	if err := allowlist.Import(ctx, st, "", entries, nil); err != nil {
		t.Fatal(err)
	}
	d, err := st.GetLegacyDevice(ctx, "939B524B-13D4-1D18-E487-1C697A6B7A2B")
	if err != nil || d.Hostname != "pc-1" || d.ProfileName != "ACM" {
		t.Fatalf("stored %+v, %v", d, err)
	}
	// A UUID on another tenant's list fails the whole import.
	if err := st.CreateProfile(ctx, &store.Profile{TenantID: "t2", Name: "acm", Activation: "acmactivate", Tags: []string{}}); err != nil {
		t.Fatal(err)
	}
	err = allowlist.Import(ctx, st, "t2", []allowlist.Entry{
		{GUID: "aaaaaaaa-0000-0000-0000-000000000001", Profile: "acm"},
		{GUID: "939b524b-13d4-1d18-e487-1c697a6b7a2b", Profile: "acm"},
	}, nil)
	if !errors.Is(err, store.ErrDuplicate) {
		t.Fatalf("cross-tenant import = %v", err)
	}
	if _, err := st.GetLegacyDevice(ctx, "aaaaaaaa-0000-0000-0000-000000000001"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("partial import stored: %v", err)
	}
	// A failing lookup is reported as such, not as a line error.
	boom := errors.New("database down")
	err = allowlist.Import(ctx, st, "", entries, func(context.Context, string, string) (bool, error) { return false, boom })
	if !errors.Is(err, boom) {
		t.Fatalf("lookup failure = %v", err)
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add("939b524b-13d4-1d18-e487-1c697a6b7a2b,pc-1,corp.example.com,acm\n")
	f.Add("uuid,hostname\n939b524b13d41d18e4871c697a6b7a2b,x\n")
	f.Add("\"a\"\"b\",\n#c\n,,,\n")
	f.Add("SMBIOS GUID;Computer Name\n")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := allowlist.ParseCSV(strings.NewReader(in), "p")
		if err != nil {
			if got != nil {
				t.Fatalf("entries %v returned with error %v", got, err)
			}
			return
		}
		seen := map[string]bool{}
		for _, e := range got {
			if len(allowlist.Normalize(&e, e.Line)) != 0 {
				t.Fatalf("accepted entry %+v does not normalise", e)
			}
			if seen[e.GUID] {
				t.Fatalf("duplicate %s accepted", e.GUID)
			}
			seen[e.GUID] = true
		}
	})
}
