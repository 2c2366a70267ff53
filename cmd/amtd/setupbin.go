package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/legacy/setuppw"
	"github.com/amtd-project/amtd/internal/provision"
	"github.com/amtd-project/amtd/internal/secrets"
	"github.com/amtd-project/amtd/internal/store"
)

func init() {
	register(&command{name: "setupbin", summary: "USB one-touch setup files: setupbin create -o setup.bin …, setupbin show FILE",
		run: runSetupBin})
}

const setupbinUsage = `Usage: amtd setupbin <subcommand> [flags]

setup.bin is the file the MEBx applies from a USB key (legacy.md §11).

Subcommands:
  create -o FILE   write a setup.bin: MEBx password change, PKI DNS suffix,
                   user-defined root hashes (e.g. amtd's provisioning root:
                   --domain NAME), provisioning server address/port or FQDN,
                   PID/PPS records (--psk), start of remote configuration
  show FILE        decode any setup.bin, used records included; secrets are
                   masked unless --show-secrets
`

func runSetupBin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, setupbinUsage)
		return nil
	}
	switch args[0] {
	case "create":
		return runSetupBinCreate(ctx, args[1:], stdout, stderr)
	case "show":
		return runSetupBinShow(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, setupbinUsage)
	return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q", args[0])}
}

// readSecretFlag returns a value given directly or as the first line of a
// file.
func readSecretFlag(value, file, name string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("give --%s or --%s-file, not both", name, name)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--%s-file: %w", name, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}

type setupbinCreate struct {
	out, version                               string
	records                                    int
	noConsume, scramble, force                 bool
	curMEBx, curMEBxFile, newMEBx, newMEBxFile string
	randomMEBx, remember                       bool
	usePSK, newPSK                             bool
	server, serverFQDN                         string
	port                                       int
	suffix                                     string
	domains, hashes                            cli.StringList
	hashName                                   string
	zeroTouch, start, enableAMT                bool
	dataFlags                                  *dataFlags
	st                                         store.Store
	sec                                        secrets.Store
	closeData                                  func()
}

func runSetupBinCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("setupbin create", "Write a setup.bin for USB one-touch setup (legacy.md §11). Every record gets the MEBx\n"+
		"password change (1.1 current, 1.2 new), AMT enabled (1.3), and what the flags ask for: PKI DNS\n"+
		"suffix (2.3), user-defined root hashes (2.8), remote configuration on (2.5), provisioning\n"+
		"server address/port (2.17/2.18) or FQDN (2.4), PID/PPS (2.1/2.2), start of configuration (2.28).\n"+
		"Entries are written sorted by (module, variable), the order every MEBx accepts.", stderr)
	c := &setupbinCreate{dataFlags: d}
	fs.StringVar(&c.out, "o", "", "output file (required)")
	fs.StringVar(&c.version, "version", "4", "file format version: 1, 2, 2.1, 3 or 4 (SHA-256 root hashes need 3 or later)")
	fs.IntVar(&c.records, "records", 1, "number of data records (one per machine when records are consumed)")
	fs.BoolVar(&c.noConsume, "no-consume", false, "FileFlags bit 0: the BIOS does not consume records, one record serves every machine (version 2+)")
	fs.BoolVar(&c.scramble, "scramble", false, "scramble the records (+17 on every byte)")
	fs.BoolVar(&c.force, "force", false, "overwrite an existing output file")
	fs.StringVar(&c.curMEBx, "mebx-password", "admin", "the machines' current MEBx password (1.1)")
	fs.StringVar(&c.curMEBxFile, "mebx-password-file", "", "read the current MEBx password from this file")
	fs.StringVar(&c.newMEBx, "new-mebx-password", "", "the new MEBx password (1.2); prefer --new-mebx-password-file or the environment")
	fs.StringVar(&c.newMEBxFile, "new-mebx-password-file", "", "read the new MEBx password from this file")
	fs.BoolVar(&c.randomMEBx, "random-mebx-password", false, "generate the new MEBx password (printed once on stderr)")
	fs.BoolVar(&c.remember, "remember", false, "keep the new MEBx password among amtd's setup passwords (tried as the\nsetup-mode digest password, legacy.md §7.2)")
	fs.BoolVar(&c.usePSK, "psk", false, "one PID/PPS pair per record, taken from amtd's generated pairs (amtd psk generate)")
	fs.BoolVar(&c.newPSK, "psk-generate", false, "one PID/PPS pair per record, generated now and kept by amtd")
	fs.StringVar(&c.server, "server", "", "provisioning server IP address (2.17)")
	fs.IntVar(&c.port, "port", 0, "provisioning server port (2.18; default 9971 with --server or --server-fqdn)")
	fs.StringVar(&c.serverFQDN, "server-fqdn", "", "provisioning server FQDN (2.4)")
	fs.StringVar(&c.suffix, "pki-dns-suffix", "", "PKI DNS suffix of the machines (2.3): must fit the provisioning certificate's CN")
	fs.Var(&c.domains, "domain", "add the root hash of this amtd domain's provisioning certificate (2.8; repeatable)")
	fs.Var(&c.hashes, "cert-hash", "add a user-defined root hash, hex SHA-1/SHA-256/SHA-384 (2.8; repeatable)")
	fs.StringVar(&c.hashName, "hash-name", "", "name of the hashes given with --cert-hash (default \"amtd provisioning root\")")
	fs.BoolVar(&c.zeroTouch, "remote-config", true, "enable remote configuration (2.5=1) when a PKI DNS suffix or a root hash is given")
	fs.BoolVar(&c.start, "start", true, "start remote configuration after applying (2.28=1): the machine sends hellos")
	fs.BoolVar(&c.enableAMT, "enable-amt", true, "manageability feature selection Intel AMT (1.3=1)")
	fs.NoEnv("o", "records", "domain", "cert-hash", "hash-name", "pki-dns-suffix", "server", "server-fqdn", "port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected arguments: "+strings.Join(fs.Args(), " "))
	}
	if c.out == "" {
		return usageError(fs, stderr, "-o FILE is required")
	}
	f, err := c.build(ctx, stderr)
	if c.closeData != nil {
		defer c.closeData()
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	img, err := setupbin.Encode(f)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if c.force {
		flag = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	out, err := os.OpenFile(c.out, flag, 0o600)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if _, err := out.Write(img); err != nil {
		out.Close()
		return &exitError{code: 1, err: err}
	}
	if err := out.Close(); err != nil {
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintf(stdout, "wrote %s: setup.bin version %d.%d, %d record(s), %d bytes\n", c.out, f.Version, f.Minor, len(f.Records), len(img))
	printSetupBin(stdout, f, false)
	return nil
}

func (c *setupbinCreate) openData(ctx context.Context) error {
	if c.st != nil {
		return nil
	}
	st, sec, closeFn, err := c.dataFlags.open(ctx)
	if err != nil {
		return err
	}
	c.st, c.sec, c.closeData = st, sec, closeFn
	return nil
}

func (c *setupbinCreate) build(ctx context.Context, stderr io.Writer) (*setupbin.File, error) {
	major, minor, err := parseVersion(c.version)
	if err != nil {
		return nil, err
	}
	if c.records < 1 || c.records > 10000 {
		return nil, errors.New("--records must be 1 to 10000")
	}
	if c.usePSK && c.newPSK {
		return nil, errors.New("give --psk or --psk-generate, not both")
	}
	if (c.usePSK || c.newPSK) && c.noConsume {
		return nil, errors.New("--no-consume would give every machine the same PID/PPS pair")
	}
	if c.noConsume && major < 2 {
		return nil, errors.New("--no-consume needs version 2 or later")
	}
	cur, err := readSecretFlag(c.curMEBx, c.curMEBxFile, "mebx-password")
	if err != nil {
		return nil, err
	}
	if cur == "" || len(cur) > 32 {
		return nil, errors.New("the current MEBx password must be 1 to 32 characters")
	}
	newPW, err := readSecretFlag(c.newMEBx, c.newMEBxFile, "new-mebx-password")
	if err != nil {
		return nil, err
	}
	switch {
	case c.randomMEBx && newPW != "":
		return nil, errors.New("give a new MEBx password or --random-mebx-password, not both")
	case c.randomMEBx:
		if newPW, err = provision.RandomPassword(nil); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "generated MEBx password (shown once, store it now): %s\n", newPW)
	case newPW == "":
		return nil, errors.New("give the new MEBx password (--new-mebx-password-file, --new-mebx-password or --random-mebx-password): version 2+ requires a new password after the default one")
	}
	if !provision.ValidAMTPassword(newPW) {
		return nil, errors.New(`the new MEBx password must be 8 to 32 characters with an upper-case and a lower-case letter, a digit and a symbol other than : " ,`)
	}
	common := []setupbin.Var{
		setupbin.StringVar(setupbin.CurrentMEBxPassword, cur),
		setupbin.StringVar(setupbin.NewMEBxPassword, newPW),
	}
	if c.enableAMT {
		common = append(common, setupbin.U8Var(setupbin.ManageabilitySelection, 1))
	}
	pki := false
	if c.suffix != "" {
		s := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(c.suffix)), ".")
		v := setupbin.StringVar(setupbin.PKIDNSSuffix, s)
		if err := setupbin.CheckVar(v); err != nil || len(s) > 223 {
			return nil, fmt.Errorf("--pki-dns-suffix: %q is not usable (1 to 223 characters)", c.suffix)
		}
		common = append(common, v)
		pki = true
	}
	hashVars, err := c.rootHashes(ctx, major)
	if err != nil {
		return nil, err
	}
	if len(hashVars) > 3 {
		return nil, fmt.Errorf("%d root hashes: AMT keeps at most 3 user-defined hashes (and skips the whole record's start of configuration beyond)", len(hashVars))
	}
	if len(hashVars) > 0 {
		common = append(common, hashVars...)
		pki = true
	}
	if pki && c.zeroTouch {
		common = append(common, setupbin.U8Var(setupbin.RemoteConfigEnabled, 1))
	}
	if c.server != "" {
		a, err := netip.ParseAddr(c.server)
		if err != nil {
			return nil, fmt.Errorf("--server: %q is not an IP address", c.server)
		}
		common = append(common, setupbin.ServerAddressVar(a))
	}
	if c.serverFQDN != "" {
		v := setupbin.StringVar(setupbin.ConfigServerFQDN, c.serverFQDN)
		if err := setupbin.CheckVar(v); err != nil {
			return nil, fmt.Errorf("--server-fqdn: %w", err)
		}
		common = append(common, v)
	}
	if c.port != 0 || c.server != "" || c.serverFQDN != "" {
		p := c.port
		if p == 0 {
			p = 9971
		}
		if p < 1 || p > 65535 {
			return nil, errors.New("--port must be 1 to 65535")
		}
		common = append(common, setupbin.U16Var(setupbin.ProvisioningServerPort, uint16(p)))
	}
	if c.start {
		common = append(common, setupbin.U8Var(setupbin.ProvisionHaltActive, 1))
	}

	var pairs []psk.Pair
	if c.usePSK || c.newPSK {
		if err := c.openData(ctx); err != nil {
			return nil, err
		}
		k := &psk.Keeper{Store: c.st, Secrets: c.sec}
		if c.newPSK {
			if _, err := k.Generate(ctx, c.dataFlags.Tenant, c.records); err != nil {
				return nil, err
			}
		}
		pairs, err = k.Take(ctx, c.dataFlags.Tenant, c.records, filepath.Base(c.out))
		if err != nil {
			return nil, err
		}
		if len(pairs) < c.records {
			return nil, fmt.Errorf("only %d unused PID/PPS pair(s) for %d records: amtd psk generate -n %d (the %d taken stay marked as handed out to %s)",
				len(pairs), c.records, c.records-len(pairs), len(pairs), filepath.Base(c.out))
		}
		if major >= 4 {
			fmt.Fprintln(stderr, "note: PID/PPS records are accepted only by MEBx versions of AMT before 11.0; such machines usually want --version 2 or 3")
		}
	}
	if c.remember {
		if err := c.openData(ctx); err != nil {
			return nil, err
		}
		if _, err := setuppw.Add(ctx, c.sec, newPW); err != nil {
			return nil, err
		}
	}
	var flags uint16
	if c.noConsume {
		flags = setupbin.FileFlagDoNotConsume
	}
	f := setupbin.NewFile(major, flags)
	f.Minor = minor
	for i := range c.records {
		vars := append([]setupbin.Var(nil), common...)
		if pairs != nil {
			vars = append(vars, setupbin.StringVar(setupbin.PID, pairs[i].PID), setupbin.StringVar(setupbin.PPS, pairs[i].PPS))
		}
		f.AddRecord(c.scramble, vars...)
	}
	return f, nil
}

func parseVersion(s string) (major int, minor uint8, err error) {
	switch strings.TrimSpace(s) {
	case "1", "1.0":
		return 1, 0, nil
	case "2", "2.0":
		return 2, 0, nil
	case "2.1":
		return 2, 1, nil
	case "3", "3.0":
		return 3, 0, nil
	case "4", "4.0":
		return 4, 0, nil
	}
	return 0, 0, fmt.Errorf("--version %q: want 1, 2, 2.1, 3 or 4", s)
}

// rootHashes builds the 2.8 entries of --domain and --cert-hash.
func (c *setupbinCreate) rootHashes(ctx context.Context, major int) ([]setupbin.Var, error) {
	var out []setupbin.Var
	add := func(alg uint8, h []byte, name string) error {
		if alg != 1 && major < 3 {
			return fmt.Errorf("SHA-256/SHA-384 root hashes need --version 3 or later")
		}
		if len(name) > 32 {
			name = name[:32]
		}
		v, err := setupbin.CertHashVar(alg, h, name)
		if err != nil {
			return err
		}
		out = append(out, v)
		return nil
	}
	for _, name := range c.domains {
		if err := c.openData(ctx); err != nil {
			return nil, err
		}
		root, err := domainRoot(ctx, c.st, c.sec, c.dataFlags.Tenant, name)
		if err != nil {
			return nil, err
		}
		fp, _ := hex.DecodeString(certs.FingerprintsOf(root).SHA256)
		if err := add(2, fp, "amtd "+name); err != nil {
			return nil, err
		}
	}
	for _, hx := range c.hashes {
		h, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(hx), ":", ""))
		if err != nil {
			return nil, fmt.Errorf("--cert-hash %q is not hex", hx)
		}
		alg := map[int]uint8{20: 1, 32: 2, 48: 3}[len(h)]
		if alg == 0 {
			return nil, fmt.Errorf("--cert-hash %q: want 20, 32 or 48 bytes (SHA-1, SHA-256, SHA-384)", hx)
		}
		name := c.hashName
		if name == "" {
			name = "amtd provisioning root"
		}
		if err := add(alg, h, name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// domainRoot returns the root certificate (DER) of an amtd domain's
// provisioning certificate, read as the admin API stored it.
func domainRoot(ctx context.Context, st store.Store, sec secrets.Store, tenant, name string) ([]byte, error) {
	d, err := st.GetDomain(ctx, tenant, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no domain %q", name)
	}
	if err != nil {
		return nil, err
	}
	rep, err := domainReport(ctx, sec, d)
	if err != nil {
		return nil, err
	}
	root := rep.Root()
	if root == nil {
		return nil, fmt.Errorf("domain %s: the certificate chain does not reach a root", name)
	}
	return root.Raw, nil
}

// domainReport reads and checks a domain's PFX (no domain check).
func domainReport(ctx context.Context, sec secrets.Store, d *store.Domain) (*certs.Report, error) {
	m, err := sec.Get(ctx, provision.DefaultSecretKey(d.TenantID, provision.KindDomain, d.SecretID))
	if err != nil {
		return nil, fmt.Errorf("domain %s: reading its certificate: %w", d.Name, err)
	}
	pfx, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(m[provision.FieldPFX]), ""))
	if err != nil {
		pfx = []byte(m[provision.FieldPFX])
	}
	return certs.CheckPFX(pfx, m[provision.FieldPFXPassword], "", time.Now()), nil
}

func runSetupBinShow(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.New("setupbin show", "Decode a setup.bin: amtd setupbin show FILE. Shows the header, every record (used ones\n"+
		"included) and every variable, known or not; passwords, PPS and passcodes are masked unless\n"+
		"--show-secrets.")
	fs.SetOutput(stderr)
	showSecrets := fs.Bool("show-secrets", false, "print passwords, PPS and passcodes")
	fs.NoEnv("show-secrets")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usageError(fs, stderr, "want exactly one file")
	}
	b, err := os.ReadFile(positional[0])
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	f, err := setupbin.Decode(b)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("%s: %w", positional[0], err)}
	}
	fmt.Fprintf(stdout, "File: %s (%d bytes)\n", positional[0], len(b))
	printSetupBin(stdout, f, *showSecrets)
	return nil
}

func printSetupBin(w io.Writer, f *setupbin.File, showSecrets bool) {
	flags := fmt.Sprintf("0x%04x", f.Flags)
	if f.DoNotConsume() {
		flags += " (records are not consumed)"
	} else if f.Flags&setupbin.FileFlagDoNotConsume != 0 {
		flags += " (bit 0 ignored before version 2)"
	}
	fmt.Fprintf(w, "Version: %d.%d\nFlags: %s\n", f.Version, f.Minor, flags)
	mods := make([]string, len(f.Modules))
	for i, m := range f.Modules {
		mods[i] = strconv.Itoa(int(m))
	}
	fmt.Fprintf(w, "Modules: %s\n", strings.Join(mods, ", "))
	next, ok := f.Next()
	nextText := "none (all consumed)"
	if ok {
		nextText = fmt.Sprintf("record %d", next+1)
	} else if next < len(f.Records) {
		nextText = fmt.Sprintf("record %d, which is not valid", next+1)
	}
	fmt.Fprintf(w, "Records: %d, consumed: %d, next: %s\n", len(f.Records), f.RecordsConsumed, nextText)
	for i, r := range f.Records {
		var state []string
		if r.Used {
			state = append(state, "used")
		} else {
			state = append(state, "valid")
		}
		if r.Scrambled {
			state = append(state, "scrambled")
		}
		if r.Type != setupbin.RecordTypeData {
			state = append(state, fmt.Sprintf("type %d", r.Type))
		}
		if r.OtherFlags != 0 {
			state = append(state, fmt.Sprintf("other flags 0x%x", r.OtherFlags))
		}
		fmt.Fprintf(w, "Record %d (number %d): %s\n", i+1, r.Number, strings.Join(state, ", "))
		if len(r.Vars) == 0 {
			fmt.Fprintln(w, "  (no variables)")
		}
		for _, v := range r.Vars {
			line := setupbin.Format(v)
			if info, known := setupbin.Lookup(v.ID); showSecrets && known && info.Secret {
				line = fmt.Sprintf("%s %s = %q", v.ID, info.Name, v.Text())
			}
			if err := setupbin.CheckVar(v); err != nil {
				line += "   [invalid: " + err.Error() + "]"
			}
			fmt.Fprintln(w, "  "+line)
		}
	}
}
