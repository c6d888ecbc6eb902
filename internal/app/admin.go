package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/grafana/dskit/services"

	"github.com/pharos-obs/pharos/internal/auth"
)

// newAdminServer serves the admin endpoints — POST /-/reload (reload) and
// Go's profiling endpoints — on their own listener, so they are never
// exposed by the public port; it only runs when configured. It is served
// with tlsCfg (nil: plain HTTP) and behind l, as the HTTP listener is.
func newAdminServer(addr string, tlsCfg *tls.Config, l *auth.Listener, reload http.HandlerFunc, logger *slog.Logger) services.Service {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /-/reload", reload)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: l.Wrap(operatorGate(mux)), ReadHeaderTimeout: 10 * time.Second}
	var ln net.Listener
	start := func(context.Context) error {
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("http.admin_listen_address: %w", err)
		}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		logger.Info("admin listening", "address", ln.Addr().String(), "tls", tlsCfg != nil)
		return nil
	}
	run := func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- srv.Serve(ln) }()
		select {
		case err := <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-ctx.Done():
			return nil
		}
	}
	stop := func(error) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		return nil
	}
	return services.NewBasicService(start, run, stop)
}
