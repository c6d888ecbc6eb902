package vlengine

import (
	"context"
	"flag"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	vmlogger "github.com/VictoriaMetrics/VictoriaMetrics/lib/logger"
)

// vmLog routes the VictoriaMetrics logger (a package global that writes its
// own text format to stderr) through slog, so that Pharos' stderr stays one
// JSON event per line. The route is set once per process, whichever store
// opens first; the logger of the last Engine opened is used, since the
// messages do not say which storage they are about.
var vmLog struct {
	once   sync.Once
	logger atomic.Pointer[slog.Logger]
}

// RouteLogger sends the VictoriaMetrics libraries' log messages to logger
// (as component "victorialogs") from now on, and on its first call makes
// the library usable: see the comments inside. Open calls it; it is
// exported for tests and for callers that use the library without an
// Engine.
func RouteLogger(logger *slog.Logger) {
	vmLog.logger.Store(logger.With("component", "victorialogs"))
	vmLog.once.Do(func() {
		// SetOutputForTests is the library's only way to redirect its
		// output; it is a plain setter, called before any Storage of this
		// package exists (and so before this package makes it log).
		vmlogger.SetOutputForTests(vmLogWriter{})
		// The library reads its settings (memory limits among them) from
		// flags on the global flag set and refuses to run before that set
		// is parsed. Pharos parses its own flag set, so the global one is
		// parsed here, empty: the library's defaults apply.
		if !flag.Parsed() {
			_ = flag.CommandLine.Parse(nil)
		}
	})
}

// vmLogWriter receives one message per Write, in the library's default
// format: time, level, caller and message, separated by tabs. Its info
// messages (partitions and snapshots created and deleted, on every forced
// flush) are debug to Pharos.
type vmLogWriter struct{}

func (vmLogWriter) Write(p []byte) (int, error) {
	logger := vmLog.logger.Load()
	msg := strings.TrimRight(string(p), "\n")
	level, caller := slog.LevelError, ""
	if f := strings.SplitN(msg, "\t", 4); len(f) == 4 {
		caller, msg = f[2], f[3]
		switch f[1] {
		case "info":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		}
	}
	logger.Log(context.Background(), level, msg, "caller", caller)
	return len(p), nil
}
