// Package cli gives amtd's subcommands their flags: every flag --name has an
// environment equivalent AMTD_NAME (upper case, '-' → '_'); a flag given on the
// command line wins over the environment, which wins over the default.
package cli

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// FlagSet is a flag.FlagSet whose flags also read AMTD_* environment variables.
type FlagSet struct {
	*flag.FlagSet
	summary string
	noEnv   map[string]bool
	lookup  func(string) (string, bool)
}

// New returns a flag set for the subcommand name, e.g. "serve". summary is
// printed at the top of --help.
func New(name, summary string) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet("amtd "+name, flag.ContinueOnError), summary: summary,
		noEnv: map[string]bool{}, lookup: os.LookupEnv}
	fs.Usage = func() { fs.PrintUsage(fs.Output()) }
	return fs
}

// SetLookupEnv replaces os.LookupEnv (tests).
func (fs *FlagSet) SetLookupEnv(f func(string) (string, bool)) { fs.lookup = f }

// NoEnv marks flags that have no environment equivalent (e.g. repeatable
// positional-like flags).
func (fs *FlagSet) NoEnv(names ...string) {
	for _, n := range names {
		fs.noEnv[n] = true
	}
}

// EnvName is the environment variable for a flag name.
func EnvName(flagName string) string {
	return "AMTD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, then fills every flag not given on the command line from
// its environment variable.
func (fs *FlagSet) Parse(args []string) error {
	if err := fs.FlagSet.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] || fs.noEnv[f.Name] {
			return
		}
		if v, ok := fs.lookup(EnvName(f.Name)); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", EnvName(f.Name), e)
			}
		}
	})
	return err
}

// PrintUsage writes the summary and one entry per flag with its environment
// variable and default.
func (fs *FlagSet) PrintUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n\n%s\n\nFlags (each also read from the environment variable shown):\n", fs.Name(), fs.summary)
	var all []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { all = append(all, f) })
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	for _, f := range all {
		name, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if name != "" {
			line += " " + name
		}
		env := ""
		if !fs.noEnv[f.Name] {
			env = " [$" + EnvName(f.Name) + "]"
		}
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && f.DefValue != "0s" {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		fmt.Fprintf(w, "%s%s\n      %s%s\n", line, env, strings.ReplaceAll(usage, "\n", "\n      "), def)
	}
}

// StringList is a repeatable string flag; from the environment it takes a
// comma-separated list.
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set appends one value (or several, comma-separated).
func (l *StringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// Duration is a convenience for flags holding durations.
func (fs *FlagSet) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	fs.DurationVar(p, name, def, usage)
}
