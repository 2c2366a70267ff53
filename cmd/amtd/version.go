package main

import (
	"context"
	"fmt"
	"io"

	"github.com/amtd-project/amtd/internal/buildinfo"
)

func init() {
	register(&command{name: "version", summary: "print amtd's version",
		run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			fmt.Fprintf(stdout, "amtd %s (protocol %s)\n", buildinfo.Version, buildinfo.ProtocolVersion)
			return nil
		}})
}
