// Command compatserver runs the admin (RPS) and management (MPS) APIs on a
// data folder, for running Intel's MPS Postman suites with newman before
// `amtd serve` registers the MPS routes:
//
//	go run ./internal/api/mps/internal/compatserver --data DIR --http 127.0.0.1:8182 \
//	    --auth=none --user standalone --password 'G@ppm0ym'
//
// Devices are reached over the LAN only (no CIRA listener here).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/amtd-project/amtd/internal/api"
	"github.com/amtd-project/amtd/internal/api/apitest"
	"github.com/amtd-project/amtd/internal/api/mps"
	"github.com/amtd-project/amtd/internal/api/rps"
	"github.com/amtd-project/amtd/internal/buildinfo"
	"github.com/amtd-project/amtd/internal/ca"
	"github.com/amtd-project/amtd/internal/devaccess"
	"github.com/amtd-project/amtd/internal/store/sqlstore"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compatserver:", err)
		os.Exit(1)
	}
}

func run() error {
	data := flag.String("data", "", "data folder (required)")
	addr := flag.String("http", "127.0.0.1:8182", "listen address")
	auth := flag.String("auth", api.AuthJWT, "jwt or none")
	user := flag.String("user", "", "administrator user name")
	password := flag.String("password", "", "administrator password")
	flag.Parse()
	if *data == "" {
		return errors.New("--data is required")
	}
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	st, err := sqlstore.Open(ctx, apitest.DBPath(*data), log)
	if err != nil {
		return err
	}
	defer st.Close()
	sec, err := apitest.OpenSecrets(ctx, *data, st)
	if err != nil {
		return err
	}
	srv, err := api.New(ctx, api.Config{Store: st, Secrets: sec, Logger: log, Version: buildinfo.Version,
		Auth: api.AuthConfig{Mode: *auth, Username: *user, Password: *password}})
	if err != nil {
		return err
	}
	if u, p, ok := srv.GeneratedCredentials(); ok {
		fmt.Fprintf(os.Stderr, "generated admin credentials: %s / %s\n", u, p)
	}
	authority, err := ca.LoadOrCreate(ctx, sec, "system/ca", "amtd CA")
	if err != nil {
		return err
	}
	access, err := devaccess.New(devaccess.Options{Store: st, Secrets: sec, Logger: log})
	if err != nil {
		return err
	}
	rps.Register(srv, rps.Options{})
	mps.Register(srv, mps.Options{
		Access:       access,
		CIRARootCert: func(context.Context) ([]byte, error) { return authority.RootPEM(), nil },
	})
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Info("listening", "addr", l.Addr().String())
	if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
