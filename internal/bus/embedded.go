package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedReadyTimeout bounds how long StartEmbedded waits for the server to
// accept clients.
const embeddedReadyTimeout = 10 * time.Second

// EmbeddedServer is an in-process NATS server with JetStream, the zero-setup
// transport of the all-in-one target.
type EmbeddedServer struct {
	srv    *server.Server
	logger *slog.Logger
	url    string
}

// StartEmbedded starts an in-process nats-server with JetStream storing under
// storeDir and waits until it accepts clients.
//
// Every JetStream write is fsynced before it is acknowledged (SyncAlways):
// with a single node there is no replica to recover from, so an acked batch
// must survive a power loss on its own. The server installs no signal
// handlers (the process owns SIGTERM) and logs through logger, without its
// debug and trace output.
func StartEmbedded(cfg EmbeddedConfig, storeDir string, logger *slog.Logger) (*EmbeddedServer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if storeDir == "" {
		return nil, errors.New("start embedded nats: store directory is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, portStr, _ := net.SplitHostPort(cfg.ListenAddress) // validated above
	port, _ := parsePort(portStr)
	if port == 0 {
		// nats-server reads 0 as "its default port 4222"; -1 asks for any free one.
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "pharos-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		SyncAlways: true,
		NoSigs:     true,
		// The server's own logger would write to stderr in its own format;
		// ours is installed below instead.
		NoLog: true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	// The caller names the component (app passes component=nats-server).
	sl := newServerLogger(logger)
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()

	if err := waitReady(srv, sl, embeddedReadyTimeout); err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats on %s: %w", cfg.ListenAddress, err)
	}
	e := &EmbeddedServer{srv: srv, logger: logger, url: clientURL(srv)}
	logger.Info("embedded nats started", "url", e.url, "store_dir", storeDir)
	return e, nil
}

// waitReady polls readiness in short steps so that a fatal start-up error
// (port in use, unusable store) fails at once instead of after the timeout:
// nats-server reports those only through its logger.
func waitReady(srv *server.Server, sl *serverLogger, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if msg, ok := sl.fatal(); ok {
			return errors.New(msg)
		}
		if srv.ReadyForConnections(50 * time.Millisecond) {
			if msg, ok := sl.fatal(); ok {
				return errors.New(msg)
			}
			if !srv.JetStreamEnabled() {
				return errors.New("jetstream did not start")
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready for connections after %s", timeout)
		}
	}
}

// clientURL returns a URL other processes can dial: a server bound to every
// interface is reached on loopback.
func clientURL(srv *server.Server) string {
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		return srv.ClientURL()
	}
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "nats://" + net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// ClientURL returns the nats:// URL of the server's client listener, with
// the real port when it was started on port 0.
func (e *EmbeddedServer) ClientURL() string { return e.url }

// Shutdown stops the server gracefully and waits until it has finished, so
// that the JetStream store is closed cleanly before the process exits.
func (e *EmbeddedServer) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.logger.Info("embedded nats stopped")
}

// serverLogger implements nats-server's Logger on top of slog. It also
// remembers the first fatal message, because nats-server reports failures
// to start only by logging them.
type serverLogger struct {
	logger *slog.Logger

	mu       sync.Mutex
	fatalMsg string
	hasFatal bool
}

var _ server.Logger = (*serverLogger)(nil)

func newServerLogger(logger *slog.Logger) *serverLogger {
	return &serverLogger{logger: logger}
}

func (l *serverLogger) log(level slog.Level, format string, v []any) string {
	// Formatting is skipped when the level is off: the server logs often.
	if !l.logger.Enabled(context.Background(), level) {
		return ""
	}
	msg := fmt.Sprintf(format, v...)
	l.logger.Log(context.Background(), level, msg)
	return msg
}

// Noticef logs at info level.
func (l *serverLogger) Noticef(format string, v ...any) { l.log(slog.LevelInfo, format, v) }

// Warnf logs at warn level.
func (l *serverLogger) Warnf(format string, v ...any) { l.log(slog.LevelWarn, format, v) }

// Errorf logs at error level.
func (l *serverLogger) Errorf(format string, v ...any) { l.log(slog.LevelError, format, v) }

// Debugf logs at debug level; the server calls it only when debug is on.
func (l *serverLogger) Debugf(format string, v ...any) { l.log(slog.LevelDebug, format, v) }

// Tracef logs at debug level; the server calls it only when tracing is on.
func (l *serverLogger) Tracef(format string, v ...any) { l.log(slog.LevelDebug-4, format, v) }

// Fatalf logs at error level and records the message for StartEmbedded. It
// does not exit: only main may end the process.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.logger.Error(msg, "fatal", true)
	l.mu.Lock()
	if !l.hasFatal {
		l.fatalMsg, l.hasFatal = msg, true
	}
	l.mu.Unlock()
}

func (l *serverLogger) fatal() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg, l.hasFatal
}
