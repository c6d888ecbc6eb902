package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/pharos-obs/pharos/internal/auth"
)

const (
	// embeddedReadyTimeout bounds how long StartEmbedded waits for the
	// server to accept clients.
	embeddedReadyTimeout = 10 * time.Second
	// clusterReadyWait bounds how long StartEmbedded then waits for a
	// clustered JetStream to form; clusterPeerWait is how long it waits for
	// a first route before concluding that no peer is up yet.
	clusterReadyWait = 5 * time.Second
	clusterPeerWait  = time.Second
	// defaultServerName names a single node that was given no name.
	defaultServerName = "pharos-embedded"
)

// EmbeddedServer is an in-process NATS server with JetStream: the
// zero-setup transport of the all-in-one target, or one node of a NATS
// cluster.
type EmbeddedServer struct {
	srv         *server.Server
	logger      *slog.Logger
	url         string
	clusterAddr string        // empty when not clustered
	inProcess   []nats.Option // the in-process client's credential
}

// StartEmbedded starts an in-process nats-server with JetStream storing under
// storeDir and waits until it accepts clients.
//
// By default every JetStream write is fsynced before it is acknowledged
// (cfg.SyncInterval "always"): with a single node there is no replica to
// recover from, so an acked batch must survive a power loss on its own. The
// server installs no signal handlers (the process owns SIGTERM) and logs
// through logger, without its debug and trace output.
//
// With cfg.ClusterListenAddress set the server is one node of a NATS
// cluster: it listens for routes, dials cfg.Routes (and learns the other
// nodes from them) and runs clustered JetStream. StartEmbedded then also
// waits a few seconds for the JetStream meta group to form, but returns
// without it once the node accepts clients: its peers may not be up yet,
// or may be waiting for this node. JetStreamReady reports when it has
// formed.
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
	opts, err := serverOptions(cfg, storeDir)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	inProcess, err := applySecurity(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("start embedded nats: %w", err)
	}
	// The caller names the component (app passes component=nats-server).
	sl := newServerLogger(logger)
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()

	clustered := cfg.ClusterListenAddress != ""
	jsReady, err := waitReady(srv, sl, embeddedReadyTimeout, clustered)
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("start embedded nats on %s: %w", cfg.ListenAddress, err)
	}
	e := &EmbeddedServer{srv: srv, logger: logger, url: clientURL(srv), inProcess: inProcess}
	attrs := []any{"url", e.url, "store_dir", storeDir, "server_name", opts.ServerName,
		"tls", cfg.TLS.Enabled(), "client_auth", clientAuthMode(cfg)}
	if clustered {
		if addr := srv.ClusterAddr(); addr != nil {
			e.clusterAddr = dialAddr(addr)
		}
		attrs = append(attrs, "cluster", opts.Cluster.Name, "cluster_addr", e.clusterAddr, "cluster_tls", cfg.ClusterTLS.Enabled(), "jetstream_ready", jsReady)
	}
	logger.Info("embedded nats started", attrs...)
	if !auth.IsLoopback(cfg.ListenAddress) && clientAuthMode(cfg) == "none" {
		logger.Warn("embedded nats accepts unauthenticated clients from the network: set nats.embedded.auth (-nats.embedded.auth.token-file or -users-file) or verify client certificates (-nats.embedded.tls.client-ca-file)", "listen_address", cfg.ListenAddress)
	}
	if clustered && !cfg.ClusterTLS.Enabled() && !auth.IsLoopback(cfg.ClusterListenAddress) {
		logger.Warn("embedded nats accepts routes from the network without TLS: any host that reaches the cluster port can join; set -nats.embedded.cluster.tls.*", "cluster_listen_address", cfg.ClusterListenAddress)
	}
	if clustered && !jsReady {
		logger.Info("jetstream cluster not formed yet, waiting for peers in the background", "routes", len(opts.Routes), "reason", jetStreamNotReady(srv))
	}
	if !opts.SyncAlways && !clustered {
		logger.Warn("embedded nats fsyncs periodically on a single node: an acknowledged write can be lost on power loss", "sync_interval", opts.SyncInterval)
	}
	return e, nil
}

// serverOptions translates a validated cfg.
func serverOptions(cfg EmbeddedConfig, storeDir string) (*server.Options, error) {
	host, port, err := listenHostPort(cfg.ListenAddress)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded.listen_address: %w", err)
	}
	syncAlways, syncInterval, err := parseSyncInterval(cfg.SyncInterval)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded.sync_interval: %w", err)
	}
	name := cfg.ServerName
	if name == "" {
		name = defaultServerName
	}
	opts := &server.Options{
		ServerName:   name,
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     storeDir,
		SyncAlways:   syncAlways,
		SyncInterval: syncInterval, // 0 with SyncAlways: the server's default
		NoSigs:       true,
		// The server's own logger would write to stderr in its own format;
		// ours is installed by StartEmbedded instead.
		NoLog: true,
	}
	if cfg.ClusterListenAddress == "" {
		return opts, nil
	}
	chost, cport, err := listenHostPort(cfg.ClusterListenAddress)
	if err != nil {
		return nil, fmt.Errorf("nats.embedded.cluster_listen_address: %w", err)
	}
	opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: chost, Port: cport}
	// A route is retried every second; a peer down for a restart would
	// otherwise cost an error line per second. The first failure is logged,
	// then one a minute.
	opts.ReconnectErrorReports = 60
	for i, r := range cfg.Routes {
		u, err := parseRoute(r)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.routes[%d]: %w", i, err)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return opts, nil
}

// clientAuthMode names how clients authenticate, for logs.
func clientAuthMode(cfg EmbeddedConfig) string {
	switch {
	case cfg.Auth.TokenFile != "":
		return "token"
	case cfg.Auth.UsersFile != "":
		return "users"
	case cfg.TLS.VerifiesClients():
		return "client-certificate"
	}
	return "none"
}

// listenHostPort splits a validated listen address for server.Options.
func listenHostPort(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := parsePort(portStr)
	if err != nil {
		return "", 0, err
	}
	if port == 0 {
		// nats-server reads 0 as "the default port" (4222 for clients, no
		// listener for routes); -1 asks for any free one.
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// waitReady polls readiness in short steps so that a fatal start-up error
// (port in use, unusable store) fails at once instead of after the timeout:
// nats-server reports those only through its logger. For a clustered node
// it then waits for JetStream, see waitJetStream, and reports whether it
// is ready; a single node's JetStream is ready once it accepts clients.
func waitReady(srv *server.Server, sl *serverLogger, timeout time.Duration, clustered bool) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		if msg, ok := sl.fatal(); ok {
			return false, errors.New(msg)
		}
		if srv.ReadyForConnections(50 * time.Millisecond) {
			if msg, ok := sl.fatal(); ok {
				return false, errors.New(msg)
			}
			if !srv.JetStreamEnabled() {
				return false, errors.New("jetstream did not start")
			}
			if !clustered {
				return true, nil
			}
			return waitJetStream(srv, sl, clusterReadyWait, clusterPeerWait)
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("not ready for connections after %s", timeout)
		}
	}
}

// waitJetStream gives the JetStream meta group of a clustered node up to
// timeout to form, so that a node joining a running cluster comes up caught
// up. It stops waiting early when no route is up after peerWait: then no
// peer is reachable yet, and waiting longer would only delay the start of
// the node that they may be waiting for. Only a fatal error fails it.
func waitJetStream(srv *server.Server, sl *serverLogger, timeout, peerWait time.Duration) (bool, error) {
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if msg, ok := sl.fatal(); ok {
			return false, errors.New(msg)
		}
		if jetStreamNotReady(srv) == "" {
			return true, nil
		}
		waited := time.Since(start)
		if waited >= timeout || (waited >= peerWait && srv.NumRoutes() == 0) {
			return false, nil
		}
		<-tick.C
	}
}

// jetStreamNotReady returns why JetStream cannot serve requests through
// srv, or "" when it can. In a cluster that needs a meta leader this node
// is in contact with and caught up with; a single node needs its streams
// recovered.
func jetStreamNotReady(srv *server.Server) string {
	if !srv.JetStreamEnabled() {
		return "jetstream not enabled"
	}
	// JSMetaOnly skips the per-stream and per-consumer checks: a stream
	// that is catching up does not make the node unready.
	h := srv.Healthz(&server.HealthzOptions{JSMetaOnly: true})
	if h.StatusCode != http.StatusOK {
		if h.Error == "" {
			return h.Status
		}
		return h.Error
	}
	return ""
}

// clientURL returns a URL other processes can dial.
func clientURL(srv *server.Server) string {
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		return srv.ClientURL()
	}
	return "nats://" + dialAddr(addr)
}

// dialAddr returns the host:port of a listener that others can dial: a
// listener bound to every interface is reached on loopback.
func dialAddr(addr *net.TCPAddr) string {
	ip := addr.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(addr.Port))
}

// ClientURL returns the nats:// URL of the server's client listener, with
// the real port when it was started on port 0.
func (e *EmbeddedServer) ClientURL() string { return e.url }

// ClusterAddr returns the host:port of the route listener, with the real
// port when it was started on port 0, for the other nodes' routes; like
// ClientURL it names loopback when the listener is bound to every
// interface. It is empty when the server is not clustered.
func (e *EmbeddedServer) ClusterAddr() string { return e.clusterAddr }

// JetStreamReady reports whether JetStream can serve requests through this
// node now: on a single node once it has started, in a cluster while the
// node is in contact with a JetStream meta leader and caught up with it
// (which needs a quorum of the nodes). It is cheap enough for a readiness
// probe, and is false after Shutdown.
func (e *EmbeddedServer) JetStreamReady() bool { return jetStreamNotReady(e.srv) == "" }

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

// validateListenAddress checks a host:port to listen on; an empty host
// means every interface and port 0 any free port.
func validateListenAddress(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("must be host:port, got %q: %w", addr, err)
	}
	_, err = parsePort(port)
	return err
}

// validateNodeName rejects what nats-server refuses in server and cluster
// names.
func validateNodeName(name string) error {
	if strings.ContainsFunc(name, unicode.IsSpace) {
		return fmt.Errorf("must not contain whitespace, got %q", name)
	}
	return nil
}

// parseSyncInterval reads "always" (or empty, the zero value's meaning) as
// fsync before every acknowledgement, else a positive duration between
// fsyncs.
func parseSyncInterval(s string) (always bool, every time.Duration, err error) {
	if s == "" || strings.EqualFold(s, "always") {
		return true, 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return false, 0, fmt.Errorf(`must be "always" or a positive duration, got %q`, s)
	}
	return false, d, nil
}

// parseRoute reads one route the way nats-server dials it; a bare
// host:port means nats-route://host:port. Messages never echo credentials.
func parseRoute(raw string) (*url.URL, error) {
	s := strings.TrimSpace(raw)
	shown := redactURLs(s)
	if s == "" {
		return nil, errors.New("empty route")
	}
	if !strings.Contains(s, "://") {
		s = "nats-route://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the full error repeats the URL, credentials included
		}
		return nil, fmt.Errorf("invalid route %q: %w", shown, err)
	}
	if u.Scheme != "nats-route" && u.Scheme != "nats" {
		return nil, fmt.Errorf("route %q: unsupported scheme %q (want nats-route)", shown, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("route %q: missing host", shown)
	}
	// There is no default route port to fall back on.
	if p, err := parsePort(u.Port()); err != nil || p == 0 {
		return nil, fmt.Errorf("route %q: port must be between 1 and 65535, got %q", shown, u.Port())
	}
	return u, nil
}
