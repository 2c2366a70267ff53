package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/amtd-project/amtd/internal/cli"
	"github.com/amtd-project/amtd/internal/store"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

func init() {
	register(&command{name: "provisioning-log", summary: "print what was done to a device, step by step", run: runProvisioningLog})
}

// runProvisioningLog prints a device's provisioning log from the database
// (the same one `amtd serve` uses; it may be running). Also served as
// GET /api/v1/devices/{guid}/provisioning-log.
func runProvisioningLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.New("provisioning-log", "Usage: amtd provisioning-log [flags] GUID\n\n"+
		"Prints a device's provisioning log, oldest first: every activation, configuration,\n"+
		"maintenance, deactivation and legacy provisioning step with its result and error text.")
	fs.SetOutput(stderr)
	data := fs.String("data", "./amtd-data", "data folder of the embedded database")
	db := fs.String("db", "", "database (postgres://…); empty for SQLite in --data")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return &exitError{code: 2, err: fmt.Errorf("give one device GUID (amtd provisioning-log --help)")}
	}
	guid := strings.ToLower(fs.Arg(0))
	dsn := *db
	if dsn == "" {
		dsn = filepath.Join(*data, "amtd.db")
	}
	st, err := sqlstore.Open(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	var events []store.ProvisioningEvent
	const page = 1000
	for skip := 0; ; skip += page {
		batch, err := st.ListEvents(ctx, guid, store.Page{Top: page, Skip: skip})
		if err != nil {
			return err
		}
		events = append(events, batch...)
		if len(batch) < page {
			break
		}
	}
	if len(events) == 0 {
		return &exitError{code: 1, err: fmt.Errorf("no provisioning log for device %s", guid)}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, e := range events {
			enc.Encode(map[string]any{"seq": e.Seq, "time": e.Time.UTC(), "tenantId": e.TenantID,
				"session": e.Session, "step": e.Step, "result": e.Result, "detail": e.Detail})
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSESSION\tSTEP\tRESULT\tDETAIL")
	for _, e := range events {
		session := e.Session
		if len(session) > 8 {
			session = session[:8]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), session, e.Step, e.Result, e.Detail)
	}
	return tw.Flush()
}
