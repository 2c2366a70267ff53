package cira

import (
	"io"
	"log/slog"
	"os"
	"testing"
)

// testLogger logs to stderr with -v and CIRA_TEST_LOG=1, else nowhere.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("CIRA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
