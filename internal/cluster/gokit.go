package cluster

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kit/log"
)

// gokitLogger adapts slog to the go-kit logger dskit and memberlist log
// through, keeping their level and structured keys.
type gokitLogger struct{ l *slog.Logger }

var _ log.Logger = gokitLogger{}

func (g gokitLogger) Log(keyvals ...any) error {
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
