package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/internal/legacy/allowlist"
	"github.com/amtd-project/amtd/internal/legacy/setuppw"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

func init() {
	register(&command{name: "legacy", summary: "legacy provisioning: allow-list of expected machines, hello records, setup passwords",
		run: runLegacy})
}

const legacyUsage = `Usage: amtd legacy <subcommand> [flags]

The allow-list of machines expected to be provisioned by legacy remote
configuration (hello on port 9971): a hello from a UUID not on the list is
refused. These commands work on amtd's data folder (or --db), like amtd serve.

Subcommands:
  list                      list the allow-list
  add --uuid U --profile P  add or replace one machine (--hostname, --domain)
  import FILE.csv           import machines from CSV ("-" reads stdin): lines
                            uuid,hostname,domain,profile, or any order with a
                            header line; all or nothing, every bad line reported
  remove UUID               remove a machine from the list
  hellos                    hello messages received, newest first
  setup-password add|count|clear
                            the operator's setup-mode passwords, tried as
                            "admin" on devices in setup mode (e.g. the MEBx
                            password a setup.bin set)
`

func runLegacy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, legacyUsage)
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "list":
		return runLegacyList(ctx, rest, stdout, stderr)
	case "add":
		return runLegacyAdd(ctx, rest, stdout, stderr)
	case "import":
		return runLegacyImport(ctx, rest, stdout, stderr)
	case "remove":
		return runLegacyRemove(ctx, rest, stdout, stderr)
	case "hellos":
		return runLegacyHellos(ctx, rest, stdout, stderr)
	case "setup-password":
		return runSetupPassword(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, legacyUsage)
	return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q", sub)}
}

// dataFlags locate amtd's database and secret store, as amtd serve does.
type dataFlags struct {
	DataDir, DB, MasterKey                         string
	VaultAddr, VaultToken, VaultMount, VaultPrefix string
	Tenant                                         string
}

func (d *dataFlags) register(fs *cli.FlagSet) {
	fs.StringVar(&d.DataDir, "data", "./amtd-data", "data folder: embedded database and master key (as amtd serve)")
	fs.StringVar(&d.DB, "db", "", "database: empty for SQLite in the data folder, or postgres://user:pass@host/db")
	fs.StringVar(&d.MasterKey, "master-key", "", "master key sealing local secrets (prefer the environment variable)")
	fs.StringVar(&d.VaultAddr, "vault-addr", "", "HashiCorp Vault address, when amtd serve uses Vault")
	fs.StringVar(&d.VaultToken, "vault-token", "", "Vault token (prefer the environment variable)")
	fs.StringVar(&d.VaultMount, "vault-mount", "secret", "Vault KV v2 mount path")
	fs.StringVar(&d.VaultPrefix, "vault-prefix", "amtd/", "path prefix for amtd's entries inside the Vault mount")
	fs.StringVar(&d.Tenant, "tenant", "", "tenant id (default: the default tenant)")
}

// open opens the database and the secret store; close releases them.
func (d *dataFlags) open(ctx context.Context) (st store.Store, sec secrets.Store, closeFn func(), err error) {
	dsn := d.DB
	if dsn == "" {
		if err := os.MkdirAll(d.DataDir, 0o700); err != nil {
			return nil, nil, nil, fmt.Errorf("data folder: %w", err)
		}
		dsn = filepath.Join(d.DataDir, "amtd.db")
	}
	s, err := sqlstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("opening the database: %w", err)
	}
	sec, err = openSecrets(ctx, serveConfig{DataDir: d.DataDir, MasterKey: d.MasterKey, VaultAddr: d.VaultAddr,
		VaultToken: d.VaultToken, VaultMount: d.VaultMount, VaultPrefix: d.VaultPrefix}, s)
	if err != nil {
		s.Close()
		return nil, nil, nil, fmt.Errorf("secret store: %w", err)
	}
	return s, sec, func() { s.Close() }, nil
}

func newLegacyFlags(name, summary string, stderr io.Writer) (*cli.FlagSet, *dataFlags) {
	fs := cli.New(name, summary)
	fs.SetOutput(stderr)
	d := &dataFlags{}
	d.register(fs)
	return fs, d
}

func usageError(fs *cli.FlagSet, stderr io.Writer, msg string) error {
	fs.PrintUsage(stderr)
	return &exitError{code: 2, err: errors.New(msg)}
}

func runLegacyList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("legacy list", "List the machines expected to be provisioned by legacy remote configuration.", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected arguments")
	}
	st, _, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	var all []store.LegacyDevice
	for p := (store.Page{Top: 1000}); ; p.Skip += p.Top {
		l, err := st.ListLegacyDevices(ctx, d.Tenant, p)
		if err != nil {
			return err
		}
		all = append(all, l...)
		if len(l) < p.Top {
			break
		}
	}
	if *asJSON {
		type row struct {
			UUID     string `json:"uuid"`
			Hostname string `json:"hostname"`
			Domain   string `json:"domain"`
			Profile  string `json:"profile"`
		}
		out := make([]row, len(all))
		for i, e := range all {
			out[i] = row{e.GUID, e.Hostname, e.DNSSuffix, e.ProfileName}
		}
		return writeJSON(stdout, out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UUID\tHOSTNAME\tDOMAIN\tPROFILE")
	for _, e := range all {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.GUID, dash(e.Hostname), dash(e.DNSSuffix), e.ProfileName)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d machine(s)\n", len(all))
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// reportImport prints an import's line errors.
func reportImport(err error, stderr io.Writer) error {
	var errs allowlist.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintln(stderr, e.Error())
		}
		return &exitError{code: 1, err: fmt.Errorf("nothing imported: %d problem(s)", len(errs))}
	}
	if errors.Is(err, store.ErrDuplicate) {
		return &exitError{code: 1, err: errors.New("nothing imported: a UUID is on another tenant's list")}
	}
	return err
}

func runLegacyAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("legacy add", "Add (or replace) one machine on the legacy allow-list.", stderr)
	var e allowlist.Entry
	fs.StringVar(&e.GUID, "uuid", "", "the machine's SMBIOS UUID (as the hello carries it)")
	fs.StringVar(&e.Hostname, "hostname", "", "AMT host name to set (empty keeps the device's)")
	fs.StringVar(&e.Domain, "domain", "", "AMT domain name to set; selects the provisioning certificate")
	fs.StringVar(&e.Profile, "profile", "", "AMT profile to configure the machine with")
	fs.NoEnv("uuid", "hostname", "domain", "profile")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected arguments")
	}
	st, _, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if err := allowlist.Import(ctx, st, d.Tenant, []allowlist.Entry{e}, nil); err != nil {
		return reportImport(err, stderr)
	}
	allowlist.Normalize(&e, 0)
	fmt.Fprintf(stdout, "added %s (profile %s)\n", e.GUID, e.Profile)
	return nil
}

func runLegacyImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("legacy import", "Import machines from a CSV file: amtd legacy import FILE.csv (\"-\" reads stdin).\n"+
		"Lines are uuid,hostname,domain,profile; a header line may name and order the columns\n"+
		"(e.g. \"SMBIOS GUID,Computer Name,Domain,Profile\"). Nothing is stored unless every line is good.", stderr)
	def := fs.String("default-profile", "", "profile for lines without one")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usageError(fs, stderr, "want exactly one CSV file")
	}
	r, err := openInput(positional[0])
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer r.Close()
	entries, err := allowlist.ParseCSV(r, *def)
	if err != nil {
		return reportImport(err, stderr)
	}
	st, _, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if err := allowlist.Import(ctx, st, d.Tenant, entries, nil); err != nil {
		return reportImport(err, stderr)
	}
	fmt.Fprintf(stdout, "imported %d machine(s)\n", len(entries))
	return nil
}

func runLegacyRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("legacy remove", "Remove a machine from the legacy allow-list: amtd legacy remove UUID.", stderr)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usageError(fs, stderr, "want exactly one UUID")
	}
	e := allowlist.Entry{GUID: positional[0], Profile: "-"}
	if errs := allowlist.Normalize(&e, 0); len(errs) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("%s: %s", positional[0], errs[0].Msg)}
	}
	st, _, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	if err := st.DeleteLegacyDevice(ctx, d.Tenant, e.GUID); errors.Is(err, store.ErrNotFound) {
		return &exitError{code: 1, err: fmt.Errorf("%s is not on the allow-list", e.GUID)}
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %s\n", e.GUID)
	return nil
}

func runLegacyHellos(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("legacy hellos", "List the hello messages received on the hello port, newest first.", stderr)
	uuid := fs.String("uuid", "", "only this device")
	top := fs.Int("top", 50, "at most this many")
	asJSON := fs.Bool("json", false, "print JSON")
	fs.NoEnv("uuid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, _, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	f := store.HelloFilter{}
	if *uuid != "" {
		e := allowlist.Entry{GUID: *uuid, Profile: "-"}
		if errs := allowlist.Normalize(&e, 0); len(errs) > 0 {
			return &exitError{code: 2, err: fmt.Errorf("--uuid: %s", errs[0].Msg)}
		}
		f.GUID = e.GUID
	}
	l, err := st.ListHelloEvents(ctx, d.Tenant, f, store.Page{Top: *top})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, l)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tUUID\tSOURCE\tVERSION\tRETRY\tHASHES/PID\tOUTCOME\tDETAIL")
	for _, e := range l {
		what := fmt.Sprintf("%d hashes", len(e.Hashes))
		if e.Version == 2 {
			what = "PID " + e.PID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", e.ReceivedAt.Local().Format(time.DateTime), e.GUID, e.SourceIP,
			e.Version, e.RetryCount, what, e.Outcome, e.Detail)
	}
	return tw.Flush()
}

func runSetupPassword(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, legacyUsage)
		return &exitError{code: 2, err: errors.New("want add, count or clear")}
	}
	op := args[0]
	fs, d := newLegacyFlags("legacy setup-password "+op, "Manage the operator's setup-mode passwords (legacy.md §7.2). add reads the\n"+
		"password from --password-file or the first line of stdin, never from the command line.", stderr)
	file := fs.String("password-file", "", "read the password from this file (its first line)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	st, sec, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	_ = st
	defer closeFn()
	switch op {
	case "add":
		var r io.Reader = os.Stdin
		if *file != "" {
			f, err := os.Open(*file)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer f.Close()
			r = f
		}
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		pw := strings.TrimRight(line, "\r\n")
		n, err := setuppw.Add(ctx, sec, pw)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d setup password(s) kept\n", n)
	case "count":
		l, err := setuppw.Load(ctx, sec)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d setup password(s) kept\n", len(l))
	case "clear":
		if err := setuppw.Clear(ctx, sec); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "setup passwords cleared")
	default:
		return &exitError{code: 2, err: fmt.Errorf("unknown operation %q: want add, count or clear", op)}
	}
	return nil
}

// openInput opens a file named on the command line, "-" being stdin.
func openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(path)
}
