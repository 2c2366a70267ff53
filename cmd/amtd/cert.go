package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/amtd-project/amtd/internal/certs"
	"github.com/amtd-project/amtd/internal/cli"
)

func init() {
	register(&command{name: "cert", summary: "provisioning certificate tools: cert check FILE.pfx --password P --domain SUFFIX",
		run: runCert})
}

const certUsage = `Usage: amtd cert <subcommand> [flags]

Subcommands:
  check FILE.pfx   check a PKCS#12 provisioning certificate the way amtd checks
                   domain uploads (RPS's checks plus AMT's own requirements)
`

func runCert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, certUsage)
		return nil
	}
	switch args[0] {
	case "check":
		return runCertCheck(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, certUsage)
	return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q", args[0])}
}

func runCertCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.New("cert check", "Check a PKCS#12 (PFX) provisioning certificate: amtd cert check FILE.pfx [flags].\n"+
		"Prints every error and warning, the chain leaf → root and the root's fingerprints, and\n"+
		"whether the root is one of AMT's default trusted roots. Exit status 1 when there are errors.\n"+
		"The file may also hold the PFX as base64 text (the API's provisioningCert).")
	fs.SetOutput(stderr)
	var password, passwordFile, domain string
	fs.StringVar(&password, "password", "", "the PFX password (prefer --password-file or the environment: command lines are visible to other users)")
	fs.StringVar(&passwordFile, "password-file", "", "read the PFX password from this file (its first line)")
	fs.StringVar(&domain, "domain", "", "the DNS suffix of the devices (a domain's domainSuffix); empty skips the domain check")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		fs.PrintUsage(stderr)
		return &exitError{code: 2, err: errors.New("want exactly one PFX file")}
	}
	file := positional[0]
	if passwordFile != "" {
		if password != "" {
			return &exitError{code: 2, err: errors.New("give --password or --password-file, not both")}
		}
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("reading password file: %w", err)}
		}
		line, _, _ := strings.Cut(string(b), "\n")
		password = strings.TrimSuffix(line, "\r")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return &exitError{code: 2, err: err}
	}

	now := time.Now()
	r := certs.CheckPFX(data, password, domain, now)
	decodedBase64 := false
	if f, _ := r.FirstError(); f.Code == certs.CodeNotPKCS12 {
		text := strings.Join(strings.Fields(string(data)), "")
		if dec, err := base64.StdEncoding.DecodeString(text); err == nil && len(dec) > 0 {
			if r2 := certs.CheckPFX(dec, password, domain, now); !r2.HasError(certs.CodeNotPKCS12) {
				r, decodedBase64 = r2, true
			}
		}
	}
	printCertReport(stdout, file, domain, decodedBase64, r)
	if !r.OK() {
		return &exitError{code: 1, err: fmt.Errorf("%s: %d error(s)", file, len(r.Errors))}
	}
	return nil
}

// parseInterspersed parses flags placed before and after positional
// arguments ("FILE --password P" as well as "--password P FILE").
func parseInterspersed(fs *cli.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

func printCertReport(w io.Writer, file, domain string, decodedBase64 bool, r *certs.Report) {
	fmt.Fprintf(w, "Provisioning certificate: %s", file)
	if decodedBase64 {
		fmt.Fprint(w, " (base64 text, decoded)")
	}
	fmt.Fprintln(w)
	if domain == "" {
		domain = "(none given)"
	}
	fmt.Fprintf(w, "Domain suffix:            %s\n", domain)

	printFindings := func(title, tag string, fs []certs.Finding) {
		if len(fs) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s (%d):\n", title, len(fs))
		for _, f := range fs {
			fmt.Fprintf(w, "  %s [%s] %s\n", tag, f.Code, f.Message)
			if f.Subject != "" && !strings.Contains(f.Message, f.Subject) {
				fmt.Fprintf(w, "        certificate: %s\n", f.Subject)
			}
		}
	}
	printFindings("Errors", "ERROR", r.Errors)
	printFindings("Warnings", "WARN ", r.Warnings)

	if len(r.Chain) > 0 {
		fmt.Fprintln(w, "\nChain (leaf → root):")
		for i, c := range r.Chain {
			role := "intermediate"
			switch {
			case i == 0 && len(r.Chain) == 1 && r.Root() != nil:
				role = "leaf, root"
			case i == 0:
				role = "leaf"
			case i == len(r.Chain)-1 && r.Root() != nil:
				role = "root"
			}
			printCert(w, fmt.Sprintf("[%d] %s", i, role), c, i == 0)
		}
		if r.Root() == nil {
			fmt.Fprintln(w, "  (the chain ends without a self-signed root)")
		}
	}
	if len(r.Extra) > 0 {
		fmt.Fprintln(w, "\nOther certificates in the file (not on the leaf's chain):")
		for i, c := range r.Extra {
			printCert(w, fmt.Sprintf("[%d]", i), c, false)
		}
	}

	if root := r.Root(); root != nil {
		fp := r.RootFingerprints
		fmt.Fprintf(w, "\nRoot fingerprints (%s):\n  SHA-1    %s\n  SHA-256  %s\n  SHA-384  %s\n", root.Subject, fp.SHA1, fp.SHA256, fp.SHA384)
		switch e := r.DefaultHash; {
		case e == nil:
			fmt.Fprintln(w, "AMT default root: no: add the SHA-256 hash above to each device as a user-defined hash (MEBx or setup.bin) before ACM activation")
		case e.Index == 0:
			fmt.Fprintf(w, "AMT default root: only on older firmware: %s\n", e.Name)
		default:
			active := ""
			if !e.Active {
				active = " (present only on some firmware)"
			}
			fmt.Fprintf(w, "AMT default root: yes: #%d %s%s\n", e.Index, e.Name, active)
		}
	}
	if !r.ExpirationDate.IsZero() {
		fmt.Fprintf(w, "Expiration date: %s\n", r.ExpirationDate.UTC().Format(time.RFC3339))
	}
	if r.OK() {
		fmt.Fprintln(w, "\nResult: OK")
	} else {
		fmt.Fprintf(w, "\nResult: FAILED (%d error(s))\n", len(r.Errors))
	}
}

func printCert(w io.Writer, label string, c *x509.Certificate, leaf bool) {
	fmt.Fprintf(w, "  %-18s %s\n", label, c.Subject)
	fmt.Fprintf(w, "  %-18s %s\n", "  issuer", c.Issuer)
	fmt.Fprintf(w, "  %-18s %s → %s\n", "  valid", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  %-18s %s, signed %s\n", "  key", certs.KeyDescription(c), c.SignatureAlgorithm)
	if leaf {
		yes := func(b bool) string {
			if b {
				return "yes"
			}
			return "no"
		}
		oid := slices.ContainsFunc(c.UnknownExtKeyUsage, certs.AMTProvisioningOID.Equal)
		ou := slices.Contains(c.Subject.OrganizationalUnit, certs.AMTSetupOU)
		fmt.Fprintf(w, "  %-18s EKU %s: %s; OU %q: %s\n", "  AMT purpose", certs.AMTProvisioningOID, yes(oid), certs.AMTSetupOU, yes(ou))
	}
}
