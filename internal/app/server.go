package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pharos-obs/pharos/internal/auth"
)

// server is the process's one HTTP listener. Modules add their routes to
// mux before the server starts; the listener is bound in starting, so its
// address (port 0 resolved) is known to modules that start after it.
type server struct {
	services.Service

	addr     string
	mux      *http.ServeMux
	srv      *http.Server
	tls      *tls.Config // nil: plain HTTP
	ln       net.Listener
	logger   *slog.Logger
	mu       sync.Mutex
	checks   []readyCheck
	draining chan struct{}
}

type readyCheck struct {
	name  string
	check func() error
}

func newServer(addr string, gatherer prometheus.Gatherer, logger *slog.Logger) *server {
	s := &server{addr: addr, mux: http.NewServeMux(), logger: logger, draining: make(chan struct{})}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	s.mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("Pharos is Healthy.\n"))
	})
	s.mux.HandleFunc("GET /ready", s.ready)
	s.mux.HandleFunc("GET /-/ready", s.ready)
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	s.Service = services.NewBasicService(s.starting, s.running, s.stop)
	return s
}

// secure serves the listener with tlsCfg (nil: plain HTTP) and puts every
// route but the probes behind l (see auth.ExemptPaths), and the operator
// routes out of tenants' reach (operatorGate). Routes added to mux later
// are covered too. It must come before the service starts.
func (s *server) secure(tlsCfg *tls.Config, l *auth.Listener) {
	s.tls = tlsCfg
	s.srv.Handler = l.Wrap(operatorGate(s.mux))
}

// addReadyCheck adds a condition /ready requires.
func (s *server) addReadyCheck(name string, check func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, readyCheck{name, check})
}

func (s *server) ready(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-s.draining:
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	default:
	}
	s.mu.Lock()
	checks := append([]readyCheck(nil), s.checks...)
	s.mu.Unlock()
	for _, c := range checks {
		if err := c.check(); err != nil {
			http.Error(w, fmt.Sprintf("not ready: %s: %v", c.name, err), http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = w.Write([]byte("ready\n"))
}

// Addr is the bound address; valid once the service has started.
func (s *server) Addr() string {
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

func (s *server) starting(context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("http.listen_address: %w", err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	s.logger.Info("http server listening", "address", ln.Addr().String(), "tls", s.tls != nil)
	return nil
}

func (s *server) running(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// beginShutdown makes /ready fail while the other modules drain.
func (s *server) beginShutdown() {
	select {
	case <-s.draining:
	default:
		close(s.draining)
	}
}

func (s *server) stop(error) error {
	s.beginShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
