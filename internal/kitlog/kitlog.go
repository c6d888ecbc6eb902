// Package kitlog adapts log/slog to the go-kit logger that dskit and
// memberlist log through, so their events join the process's JSON log with
// their level and structured keys.
package kitlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kit/log"
)

// New returns a go-kit logger writing to l.
func New(l *slog.Logger) log.Logger { return logger{l} }

type logger struct{ l *slog.Logger }

func (g logger) Log(keyvals ...any) error {
	level := slog.LevelInfo
	msg := ""
	attrs := make([]any, 0, len(keyvals))
	for i := 0; i+1 < len(keyvals); i += 2 {
		k := fmt.Sprint(keyvals[i])
		switch k {
		case "level":
			switch fmt.Sprint(keyvals[i+1]) {
			case "debug":
				level = slog.LevelDebug
			case "warn":
				level = slog.LevelWarn
			case "error":
				level = slog.LevelError
			}
		case "msg":
			msg = fmt.Sprint(keyvals[i+1])
		default:
			attrs = append(attrs, k, keyvals[i+1])
		}
	}
	if !g.l.Enabled(context.Background(), level) {
		return nil
	}
	g.l.Log(context.Background(), level, msg, attrs...)
	return nil
}
