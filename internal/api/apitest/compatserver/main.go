// Command compatserver runs the API (admin routes) on a data folder, for
// running Intel's Postman suites with newman before `amtd serve` exists:
//
//	go run ./internal/api/apitest/compatserver --data DIR --http 127.0.0.1:8181 --auth=none
//
// scripts/compat-rps.sh uses `amtd serve` when available and this otherwise.
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
	"github.com/amtd-project/amtd/internal/api/rps"
	"github.com/amtd-project/amtd/internal/buildinfo"
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
	addr := flag.String("http", "127.0.0.1:8181", "listen address")
	auth := flag.String("auth", api.AuthJWT, "jwt or none")
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
	srv, err := api.New(ctx, api.Config{Store: st, Secrets: sec, Logger: log, Auth: api.AuthConfig{Mode: *auth}, Version: buildinfo.Version})
	if err != nil {
		return err
	}
	if u, p, ok := srv.GeneratedCredentials(); ok {
		fmt.Fprintf(os.Stderr, "generated admin credentials: %s / %s\n", u, p)
	}
	rps.Register(srv, rps.Options{})
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
