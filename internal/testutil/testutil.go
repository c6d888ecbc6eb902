// Package testutil holds helpers shared by tests: an in-process NATS server
// on a random port and a poll-until-deadline helper, so that no test sleeps
// to synchronise.
package testutil

import (
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus"
)

// StartNATS starts an embedded NATS JetStream server on a random loopback
// port, storing under a temporary directory, and shuts it down at cleanup.
// Its warnings go to stderr, which go test shows for failing or verbose
// runs; they are not logged through t because nats-server may still log
// from its own goroutines while a test finishes.
func StartNATS(t testing.TB) *bus.EmbeddedServer {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := bus.StartEmbedded(bus.EmbeddedConfig{ListenAddress: "127.0.0.1:0"}, t.TempDir(), logger)
	require.NoError(t, err, "start embedded NATS")
	t.Cleanup(srv.Shutdown)
	return srv
}

// Poll calls cond every interval until it reports true, and fails the test
// with cond's last message if that has not happened within timeout. cond
// is called at least once, and once more after the deadline has passed, so
// a slow machine gets the whole timeout. Poll must be called from the
// test's goroutine: it may call t.FailNow.
func Poll(t testing.TB, timeout, interval time.Duration, cond func() (ok bool, msg string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, msg)
		}
		<-ticker.C
	}
}

// StartNATSAt starts an embedded NATS JetStream server on a given address
// and store directory, so a test can stop a server and bring it back where
// clients expect it, with its data. The caller shuts it down; cleanup does
// too (Shutdown is idempotent).
func StartNATSAt(t testing.TB, addr, storeDir string) *bus.EmbeddedServer {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := bus.StartEmbedded(bus.EmbeddedConfig{ListenAddress: addr}, storeDir, logger)
	require.NoError(t, err, "start embedded NATS at %s", addr)
	t.Cleanup(srv.Shutdown)
	return srv
}
