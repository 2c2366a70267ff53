package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amtd-project/amtd/internal/legacy/psk"
	"github.com/amtd-project/amtd/internal/legacy/setupbin"
	"github.com/amtd-project/amtd/internal/store"
)

func init() {
	register(&command{name: "psk", summary: "PID/PPS pairs for legacy PSK provisioning: psk generate -n 100, psk list",
		run: runPSK})
}

const pskUsage = `Usage: amtd psk <subcommand> [flags]

PID/PPS pairs for legacy PSK remote configuration (AMT before 11.0). The PPS of
every pair is sealed in amtd's secret store; lists never show it. Pairs reach
devices through setup.bin files (amtd setupbin create --psk) or the MEBx.

Subcommands:
  generate -n N     generate N pairs
  list              list the pairs (--available: never handed out nor used)
  import FILE       add pairs set by an OEM (lines PID,PPS; dashes allowed)
  delete PID        delete a pair and its sealed PPS
`

func runPSK(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, pskUsage)
		return nil
	}
	switch args[0] {
	case "generate":
		return runPSKGenerate(ctx, args[1:], stdout, stderr)
	case "list":
		return runPSKList(ctx, args[1:], stdout, stderr)
	case "import":
		return runPSKImport(ctx, args[1:], stdout, stderr)
	case "delete":
		return runPSKDelete(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, pskUsage)
	return &exitError{code: 2, err: fmt.Errorf("unknown subcommand %q", args[0])}
}

func runPSKGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("psk generate", "Generate PID/PPS pairs (PID 8, PPS 32 characters A-Z/0-9), sealed in the secret store.", stderr)
	n := fs.Int("n", 0, "number of pairs to generate (1 to 10000)")
	fs.NoEnv("n")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || *n < 1 || *n > psk.MaxGenerate {
		return usageError(fs, stderr, fmt.Sprintf("give -n from 1 to %d", psk.MaxGenerate))
	}
	st, sec, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	rows, err := (&psk.Keeper{Store: st, Secrets: sec}).Generate(ctx, d.Tenant, *n)
	if err != nil {
		return err
	}
	for _, r := range rows {
		fmt.Fprintln(stdout, setupbin.Dashed(r.PID))
	}
	fmt.Fprintf(stderr, "%d pair(s) generated; their PPS are sealed in the secret store\n", len(rows))
	return nil
}

func runPSKList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("psk list", "List PID/PPS pairs (without the PPS).", stderr)
	avail := fs.Bool("available", false, "only pairs never handed out nor used")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, _, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	f := store.PSKFilter{Available: *avail}
	var all []store.PSKPair
	for p := (store.Page{Top: 1000}); ; p.Skip += p.Top {
		l, err := st.ListPSKPairs(ctx, d.Tenant, f, p)
		if err != nil {
			return err
		}
		all = append(all, l...)
		if len(l) < p.Top {
			break
		}
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PID\tCREATED\tHANDED OUT\tUSED BY")
	for _, p := range all {
		out, used := "-", "-"
		if p.ExportedAt != nil {
			out = p.ExportedAt.Local().Format(time.DateTime) + " " + p.ExportedTo
		}
		if p.UsedBy != "" {
			used = p.UsedBy
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", setupbin.Dashed(p.PID), p.CreatedAt.Local().Format(time.DateTime), out, used)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d pair(s)\n", len(all))
	return nil
}

func runPSKImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("psk import", "Add PID/PPS pairs set in the factory: amtd psk import FILE (\"-\" reads stdin),\n"+
		"one pair per line as PID,PPS (dashes and spaces allowed). All or nothing.", stderr)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usageError(fs, stderr, "want exactly one file")
	}
	r, err := openInput(positional[0])
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer r.Close()
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	var pairs []psk.Pair
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return &exitError{code: 1, err: fmt.Errorf("nothing imported: %w", err)}
		}
		if len(rec) != 2 {
			line, _ := cr.FieldPos(0)
			return &exitError{code: 1, err: fmt.Errorf("nothing imported: line %d: want PID,PPS", line)}
		}
		pairs = append(pairs, psk.Pair{PSKPair: store.PSKPair{PID: strings.TrimSpace(rec[0])}, PPS: strings.TrimSpace(rec[1])})
	}
	st, sec, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	rows, err := (&psk.Keeper{Store: st, Secrets: sec}).Add(ctx, d.Tenant, pairs)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("nothing imported: %w", err)}
	}
	fmt.Fprintf(stdout, "imported %d pair(s)\n", len(rows))
	return nil
}

func runPSKDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, d := newLegacyFlags("psk delete", "Delete a PID/PPS pair and its sealed PPS: amtd psk delete PID.", stderr)
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) != 1 {
		return usageError(fs, stderr, "want exactly one PID")
	}
	st, sec, closeFn, err := d.open(ctx)
	if err != nil {
		return err
	}
	defer closeFn()
	pid := setupbin.NormalizePIDPPS(positional[0])
	if err := (&psk.Keeper{Store: st, Secrets: sec}).Delete(ctx, d.Tenant, pid); errors.Is(err, store.ErrNotFound) {
		return &exitError{code: 1, err: fmt.Errorf("no pair %s", positional[0])}
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted %s\n", setupbin.Dashed(pid))
	return nil
}
