// Package otlp receives OpenTelemetry (OTLP) metrics on the agent's own
// listeners, gRPC (:4317) and HTTP (:4318), names them as Prometheus does
// (github.com/prometheus/otlptranslator through Prometheus's translator)
// and appends them through the receive.Intake to the agent's batcher.
//
// The Receiver owns the listeners; signals (Metrics now, logs and traces
// later) add their routes to both through the Signal interface.
package otlp

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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP exporters may gzip their messages.
	"google.golang.org/grpc/tap"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/auth"
)

// Signal is one OTLP signal's receiver. The Receiver calls both methods
// once, before its listeners serve.
type Signal interface {
	// RegisterHTTP adds the signal's OTLP/HTTP route (/v1/<signal>).
	RegisterHTTP(mux *http.ServeMux)
	// RegisterGRPC registers the signal's OTLP gRPC service.
	RegisterGRPC(s *grpc.Server)
}

// stopTimeout bounds a graceful stop: requests in flight finish, then
// the listeners close.
const stopTimeout = 5 * time.Second

// Receiver is the OTLP listeners' service. Requests on both are admitted
// by the Intake (a bounded number in flight, the rest refused at once).
type Receiver struct {
	services.Service

	cfg     Config
	in      *receive.Intake
	logger  *slog.Logger
	metrics *Metrics

	mu      sync.Mutex
	started bool

	mux     *http.ServeMux
	httpTLS *tls.Config // nil: plain HTTP
	httpSrv *http.Server
	grpcSrv *grpc.Server
	httpLn  net.Listener
	grpcLn  net.Listener
}

// Option configures a Receiver.
type Option func(*options)

type options struct {
	authn *auth.Authenticator
}

// WithAuth puts both listeners behind authn (with their listener names
// otlp-http and otlp-grpc); without it they authenticate nothing.
func WithAuth(authn *auth.Authenticator) Option {
	return func(o *options) { o.authn = authn }
}

// Listener names of the failures metric.
const (
	listenerHTTP = "otlp-http"
	listenerGRPC = "otlp-grpc"
)

// New returns the OTLP receiver with the metrics signal registered.
// Nothing listens until the service starts. cfg.TLS, when enabled, serves
// both listeners over TLS.
func New(cfg Config, in *receive.Intake, logger *slog.Logger, opts ...Option) (*Receiver, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	metrics, err := NewMetrics(cfg, in, logger)
	if err != nil {
		return nil, err
	}
	httpTLS, err := auth.ServerTLS(cfg.TLS, "http/1.1")
	if err != nil {
		return nil, fmt.Errorf("otlp.tls: %w", err)
	}
	grpcTLS, err := auth.ServerTLS(cfg.TLS, "h2")
	if err != nil {
		return nil, fmt.Errorf("otlp.tls: %w", err)
	}
	r := &Receiver{cfg: cfg, in: in, logger: logger, metrics: metrics, mux: http.NewServeMux(), httpTLS: httpTLS}
	r.httpSrv = &http.Server{
		Handler:           o.authn.Listener(listenerHTTP, cfg.TLS).Wrap(r.mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Authentication comes first: an unauthenticated call takes no
	// in-flight slot.
	grpcOpts := o.authn.Listener(listenerGRPC, cfg.TLS).ServerOptions(grpcTLS)
	r.grpcSrv = grpc.NewServer(append(grpcOpts,
		// The limit holds for the message as sent and once decompressed.
		grpc.MaxRecvMsgSize(in.Config().MaxDecompressedBytes),
		grpc.InTapHandle(r.tap),
		grpc.ChainUnaryInterceptor(r.admit),
	)...)
	if err := r.Register(metrics); err != nil {
		return nil, err
	}
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping)
	return r, nil
}

// Register adds a signal to both listeners; it must come before the
// service starts.
func (r *Receiver) Register(s Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started {
		return errors.New("otlp: signals must be registered before the receiver starts")
	}
	s.RegisterHTTP(r.mux)
	s.RegisterGRPC(r.grpcSrv)
	return nil
}

// MetricsHandler is the /v1/metrics handler, to be mounted on the
// process's main HTTP mux as well (at MetricsPath).
func (r *Receiver) MetricsHandler() http.Handler { return r.metrics }

// GRPCAddr is the bound gRPC address (port 0 resolved), empty when the
// listener is off or not started.
func (r *Receiver) GRPCAddr() string { return addr(r.grpcLn) }

// HTTPAddr is the bound HTTP address, empty when off or not started.
func (r *Receiver) HTTPAddr() string { return addr(r.httpLn) }

func addr(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

func (r *Receiver) starting(context.Context) error {
	r.mu.Lock()
	r.started = true
	r.mu.Unlock()
	if a := r.cfg.GRPC.ListenAddress; a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("otlp.grpc.listen_address: %w", err)
		}
		r.grpcLn = ln
	}
	if a := r.cfg.HTTP.ListenAddress; a != "" {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			if r.grpcLn != nil {
				_ = r.grpcLn.Close()
			}
			return fmt.Errorf("otlp.http.listen_address: %w", err)
		}
		if r.httpTLS != nil {
			ln = tls.NewListener(ln, r.httpTLS)
		}
		r.httpLn = ln
	}
	r.logger.Info("OTLP receiver listening", "grpc", r.GRPCAddr(), "http", r.HTTPAddr(), "tls", r.httpTLS != nil)
	return nil
}

func (r *Receiver) running(ctx context.Context) error {
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	if r.grpcLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.grpcSrv.Serve(r.grpcLn); err != nil {
				errc <- fmt.Errorf("otlp gRPC server: %w", err)
			}
		}()
	}
	if r.httpLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.httpSrv.Serve(r.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("otlp HTTP server: %w", err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	r.shutdown()
	wg.Wait()
	return err
}

// stopping runs after running returned (which shut the servers down);
// listeners that never served are closed here.
func (r *Receiver) stopping(error) error {
	r.shutdown()
	return nil
}

// shutdown lets requests in flight finish within stopTimeout, then cuts
// the rest. It is idempotent.
func (r *Receiver) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if r.httpLn != nil {
		if err := r.httpSrv.Shutdown(ctx); err != nil {
			_ = r.httpSrv.Close()
		}
	}
	done := make(chan struct{})
	go func() {
		r.grpcSrv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.grpcSrv.Stop()
		<-done
	}
}

// tap refuses a new gRPC stream before its message is read when no
// in-flight slot is free; admit makes the binding decision.
func (r *Receiver) tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if busy := r.in.Busy(receive.SignalOfPath(info.FullMethodName)); busy != nil {
		err := retryableStatus(codes.ResourceExhausted, busy.Error(), r.in.RetryAfter())
		r.in.ObserveRequest(receive.ProtocolOTLPGRPC, statusString(err), time.Time{})
		return ctx, err
	}
	return ctx, nil
}

// admit holds an in-flight slot for the call and counts it.
func (r *Receiver) admit(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if refused := r.in.Admit(receive.SignalOfPath(info.FullMethod)); refused != nil {
		err := retryableStatus(codes.ResourceExhausted, refused.Error(), r.in.RetryAfter())
		r.in.ObserveRequest(receive.ProtocolOTLPGRPC, statusString(err), time.Time{})
		return nil, err
	}
	defer r.in.Release()
	start := time.Now()
	resp, err := handler(ctx, req)
	r.in.ObserveRequest(receive.ProtocolOTLPGRPC, statusString(err), start)
	return resp, err
}
