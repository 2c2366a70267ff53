// Package allowlist is the list of machines expected to be provisioned by
// legacy remote configuration (spec/legacy.md §5 step 4): like the "import
// computer information" wizard of Configuration Manager, an operator imports
// UUID, host name, domain and profile of each machine beforehand, one by one
// or as a CSV file, and a hello from a UUID that is not on the list is
// refused.
//
// An import is all or nothing: every line is checked (UUID, names, profile,
// duplicates) and every problem reported with its line number before
// anything is stored; a file with one bad line stores nothing.
package allowlist

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/amtd-project/amtd/internal/legacy/hello"
	"github.com/amtd-project/amtd/internal/store"
)

// Limits.
const (
	// MaxEntries is the largest import amtd accepts at once.
	MaxEntries = 100000
	// MaxHostname is AMT's host name limit (setup.bin 2.11, a DNS label).
	MaxHostname = 63
	// MaxDomain keeps the domain within AMT's PKI DNS suffix field
	// (setup.bin 2.3: 224 bytes including the terminator).
	MaxDomain = 223
)

// Entry is one expected machine.
type Entry struct {
	Line     int    // 1-based line of a CSV import; 0 for other sources
	GUID     string // canonical lower-case 8-4-4-4-12
	Hostname string // "" keeps the device's host name
	Domain   string // lower-case DNS suffix; "" keeps the device's domain
	Profile  string // AMT profile name
}

// LineError is one problem of an import.
type LineError struct {
	Line  int    // 1-based CSV line, or the 1-based position in a list
	Field string // "uuid", "hostname", "domain", "profile" or "" for the line
	Msg   string
}

func (e LineError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
}

// Errors are all the problems of an import; nothing was stored.
type Errors []LineError

func (e Errors) Error() string {
	switch len(e) {
	case 0:
		return "no error"
	case 1:
		return e[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors: ", len(e))
	for i, le := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		if i == 10 {
			fmt.Fprintf(&b, "… and %d more", len(e)-10)
			break
		}
		b.WriteString(le.Error())
	}
	return b.String()
}

// Columns of a CSV file without a header line, in order.
var Columns = []string{"uuid", "hostname", "domain", "profile"}

// header names accepted for each column (lower case, spaces and '_'
// removed), so files exported from other tools import as they are.
var aliases = map[string]string{
	"uuid": "uuid", "guid": "uuid", "smbiosguid": "uuid", "smbiosuuid": "uuid", "deviceuuid": "uuid",
	"hostname": "hostname", "host": "hostname", "computername": "hostname", "name": "hostname", "netbiosname": "hostname",
	"domain": "domain", "domainname": "domain", "dnssuffix": "domain", "dnsdomain": "domain",
	"profile": "profile", "profilename": "profile", "amtprofile": "profile",
}

// ParseCSV reads an allow-list file. Lines are "uuid,hostname,domain,profile"
// (RFC 4180 quoting); a first line whose first field is a column name is a
// header and may order and name the columns differently (e.g. "SMBIOS
// GUID,Computer Name,Domain,Profile"), extra columns are ignored. Empty lines
// and lines starting with '#' are skipped. An empty profile takes
// defaultProfile. The result's error, when not nil, is Errors listing every
// bad line (or a read error); the entries are then not to be stored.
func ParseCSV(r io.Reader, defaultProfile string) ([]Entry, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'
	cr.ReuseRecord = false
	cols := map[string]int{"uuid": 0, "hostname": 1, "domain": 2, "profile": 3}
	var out []Entry
	var errs Errors
	first := true
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				errs = append(errs, LineError{Line: pe.Line, Msg: "malformed CSV: " + pe.Err.Error()})
				if errors.Is(pe.Err, csv.ErrBareQuote) || errors.Is(pe.Err, csv.ErrQuote) {
					// The reader cannot resynchronise reliably after a quote error.
					return nil, errs
				}
				continue
			}
			return nil, fmt.Errorf("reading the CSV file: %w", err)
		}
		if len(rec) == 0 || len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if h, ok, herr := parseHeader(rec); ok {
				if herr != "" {
					errs = append(errs, LineError{Line: line, Msg: herr})
					return nil, errs
				}
				cols = h
				continue
			}
		}
		if len(out)+len(errs) >= MaxEntries {
			errs = append(errs, LineError{Line: line, Msg: fmt.Sprintf("more than %d entries in one import", MaxEntries)})
			return nil, errs
		}
		field := func(name string) string {
			i, ok := cols[name]
			if !ok || i >= len(rec) {
				return ""
			}
			return strings.TrimSpace(rec[i])
		}
		if i := cols["uuid"]; i >= len(rec) {
			errs = append(errs, LineError{Line: line, Msg: "missing UUID column"})
			continue
		}
		e := Entry{Line: line, GUID: field("uuid"), Hostname: field("hostname"), Domain: field("domain"), Profile: field("profile")}
		if e.Profile == "" {
			e.Profile = defaultProfile
		}
		lineErrs := Normalize(&e, line)
		if len(lineErrs) == 0 {
			if prev, dup := seen[e.GUID]; dup {
				lineErrs = append(lineErrs, LineError{Line: line, Field: "uuid", Msg: fmt.Sprintf("%s is already on line %d", e.GUID, prev)})
			} else {
				seen[e.GUID] = line
			}
		}
		if len(lineErrs) > 0 {
			errs = append(errs, lineErrs...)
			continue
		}
		out = append(out, e)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(out) == 0 {
		return nil, Errors{{Line: 0, Msg: "the file lists no machine"}}
	}
	return out, nil
}

// parseHeader recognises a header line; ok is false for a data line. A
// header without a UUID column or with a column twice is an error.
func parseHeader(rec []string) (cols map[string]int, ok bool, errMsg string) {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(s, "\ufeff")))
		return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)
	}
	if len(rec) == 0 {
		return nil, false, ""
	}
	if _, isName := aliases[norm(rec[0])]; !isName {
		return nil, false, ""
	}
	cols = map[string]int{}
	for i, f := range rec {
		c, known := aliases[norm(f)]
		if !known {
			continue
		}
		if _, dup := cols[c]; dup {
			return nil, true, fmt.Sprintf("header names the %s column twice", c)
		}
		cols[c] = i
	}
	if _, has := cols["uuid"]; !has {
		return nil, true, "header has no UUID column"
	}
	return cols, true, ""
}

// Normalize checks one entry and puts it in canonical form (UUID lower case
// with dashes, domain lower case without a trailing dot). line is reported in
// the errors.
func Normalize(e *Entry, line int) []LineError {
	var errs []LineError
	bad := func(field, msg string) { errs = append(errs, LineError{Line: line, Field: field, Msg: msg}) }
	if e.GUID == "" {
		bad("uuid", "required")
	} else if u, err := hello.ParseUUID(e.GUID); err != nil {
		bad("uuid", fmt.Sprintf("%q is not a UUID (32 hex digits, dashes optional)", truncate(e.GUID)))
	} else {
		e.GUID = strings.ToLower(u.String())
	}
	if e.Hostname != "" && !validLabel(e.Hostname) {
		bad("hostname", fmt.Sprintf("%q is not a host name (1–%d letters, digits and '-', not starting or ending with '-')", truncate(e.Hostname), MaxHostname))
	}
	if e.Domain != "" {
		d := strings.ToLower(strings.TrimSuffix(e.Domain, "."))
		if !validDomain(d) {
			bad("domain", fmt.Sprintf("%q is not a DNS domain (labels of letters, digits and '-', at most %d characters)", truncate(e.Domain), MaxDomain))
		} else {
			e.Domain = d
		}
	}
	if e.Profile == "" {
		bad("profile", "required (or give a default profile)")
	} else if len(e.Profile) > 100 {
		bad("profile", "longer than 100 characters")
	}
	return errs
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func validLabel(s string) bool {
	if len(s) == 0 || len(s) > MaxHostname || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func validDomain(s string) bool {
	if len(s) == 0 || len(s) > MaxDomain {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

// ProfileLookup reports whether a profile exists in the tenant.
type ProfileLookup func(ctx context.Context, tenant, name string) (bool, error)

// StoreProfiles is a ProfileLookup over the store's AMT profiles.
func StoreProfiles(st store.Store) ProfileLookup {
	return func(ctx context.Context, tenant, name string) (bool, error) {
		_, err := st.GetProfile(ctx, tenant, name)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}

// Import checks entries (already normalised) — every profile must exist in
// the tenant, no UUID twice — and stores them all, or nothing. Problems are
// returned as Errors; store failures (including store.ErrDuplicate for a
// UUID on another tenant's list) as they are. Entries without a Line are
// numbered by position.
func Import(ctx context.Context, st store.Store, tenant string, entries []Entry, profiles ProfileLookup) error {
	if profiles == nil {
		profiles = StoreProfiles(st)
	}
	if len(entries) == 0 {
		return Errors{{Msg: "no machine to import"}}
	}
	if len(entries) > MaxEntries {
		return Errors{{Msg: fmt.Sprintf("more than %d entries in one import", MaxEntries)}}
	}
	var errs Errors
	known := map[string]bool{}
	seen := map[string]int{}
	devs := make([]store.LegacyDevice, 0, len(entries))
	for i, e := range entries {
		line := e.Line
		if line == 0 {
			line = i + 1
		}
		if le := Normalize(&e, line); len(le) > 0 {
			errs = append(errs, le...)
			continue
		}
		if prev, dup := seen[e.GUID]; dup {
			errs = append(errs, LineError{Line: line, Field: "uuid", Msg: fmt.Sprintf("%s is already on line %d", e.GUID, prev)})
			continue
		}
		seen[e.GUID] = line
		key := strings.ToLower(e.Profile)
		ok, checked := known[key]
		if !checked {
			var err error
			if ok, err = profiles(ctx, tenant, e.Profile); err != nil {
				return fmt.Errorf("looking up profile %s: %w", e.Profile, err)
			}
			known[key] = ok
		}
		if !ok {
			errs = append(errs, LineError{Line: line, Field: "profile", Msg: fmt.Sprintf("profile %q does not exist", e.Profile)})
			continue
		}
		devs = append(devs, store.LegacyDevice{GUID: e.GUID, TenantID: tenant, Hostname: e.Hostname, DNSSuffix: e.Domain, ProfileName: e.Profile})
	}
	if len(errs) > 0 {
		return errs
	}
	return st.PutLegacyDevices(ctx, devs)
}
