package otlp

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// MetricsPath is where OTLP/HTTP metrics are served.
const MetricsPath = "/v1/metrics"

// Metrics receives OTLP metrics over HTTP (ServeHTTP) and gRPC (the
// MetricsService registered by RegisterGRPC), names them with Prometheus's
// OTLP translator and appends them through the Intake. It is a Signal of
// the Receiver and, as an http.Handler, can also be mounted on another
// mux (the process's main HTTP port). It is safe for concurrent use.
//
// Answers follow the OTLP specification: a request whose data points were
// all written gets 200 / OK; one where some were refused by the ingestion
// rules or the translator gets 200 / OK with partial_success
// (rejected_data_points and an error_message naming series and rules),
// the rest being written; one where all were refused gets 400 /
// INVALID_ARGUMENT (not retryable). Overload is 429 / RESOURCE_EXHAUSTED
// with Retry-After / RetryInfo, a batcher that cannot take the data 503 /
// UNAVAILABLE: both retryable, and nothing of the request was kept.
type Metrics struct {
	in         *receive.Intake
	logger     *slog.Logger
	settings   prometheusremotewrite.Settings
	converters sync.Pool // *prometheusremotewrite.PrometheusConverter
	sig        exportSignal[pmetricotlp.ExportRequest, pmetricotlp.ExportResponse]
}

// NewMetrics returns the OTLP metrics signal, naming per cfg's
// translation options and appending through in.
func NewMetrics(cfg Config, in *receive.Intake, logger *slog.Logger) (*Metrics, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Metrics{in: in, logger: logger, settings: translatorSettings(cfg)}
	m.sig = exportSignal[pmetricotlp.ExportRequest, pmetricotlp.ExportResponse]{
		in: in, name: "metrics", rejected: errAllRejected, newReq: pmetricotlp.NewExportRequest, consume: m.export,
	}
	return m, nil
}

// errAllRejected is wrapped when the rules or the translator refused every
// data point of a request.
var errAllRejected = errors.New("every data point was refused")

// allRejectedError is a request whose data points were all refused; its
// message is the outcome's, which names the series and rules.
type allRejectedError struct{ msg string }

func (e allRejectedError) Error() string { return e.msg }
func (allRejectedError) Unwrap() error   { return errAllRejected }

// export consumes one decoded request for tenant id (exportSignal.consume).
func (m *Metrics) export(ctx context.Context, proto receive.Protocol, id string, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	out, err := m.consume(tenant.WithContext(ctx, id), req.Metrics(), proto)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, overrides.ErrLimited) {
			m.logger.Warn("OTLP metrics not stored; the sender will retry", "protocol", proto, "err", err)
		}
		return pmetricotlp.ExportResponse{}, err
	}
	if out.allRejected() {
		return pmetricotlp.ExportResponse{}, allRejectedError{out.message()}
	}
	if out.nErrs > 0 {
		m.logger.Debug("OTLP metrics partly rejected", "protocol", proto, "rejected_data_points", out.rejectedDataPoints, "data_points", out.dataPoints)
	}
	return exportResponse(out), nil
}

// RegisterHTTP serves ServeHTTP at MetricsPath on mux.
func (m *Metrics) RegisterHTTP(mux *http.ServeMux) { mux.Handle(MetricsPath, m) }

// RegisterGRPC registers the OTLP MetricsService on s.
func (m *Metrics) RegisterGRPC(s *grpc.Server) {
	pmetricotlp.RegisterGRPCServer(s, &grpcMetrics{m: m})
}

// ServeHTTP implements http.Handler for POST /v1/metrics (see
// exportSignal.serveHTTP).
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.sig.serveHTTP(w, r) }

func exportResponse(out outcome) pmetricotlp.ExportResponse {
	resp := pmetricotlp.NewExportResponse()
	if out.nErrs > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(int64(out.rejectedDataPoints))
		ps.SetErrorMessage(out.message())
	}
	return resp
}

// grpcCode is the gRPC code matching an HTTP status in OTLP's sense:
// retryable ones stay retryable, the rest are the sender's fault.
func grpcCode(httpCode int) codes.Code {
	switch httpCode {
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return codes.Unavailable
	case http.StatusInternalServerError:
		return codes.Internal
	default:
		return codes.InvalidArgument
	}
}

// grpcMetrics is the MetricsService; admission and request metrics are
// the Receiver's interceptor's.
type grpcMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	m *Metrics
}

// Export implements the OTLP MetricsService.
func (g *grpcMetrics) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	return g.m.sig.export(ctx, req)
}

// retryableStatus is a gRPC error with RetryInfo, which OTLP clients
// need to retry RESOURCE_EXHAUSTED and use to pace any retry.
func retryableStatus(c codes.Code, msg string, delay time.Duration) error {
	st := status.New(c, msg)
	if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); err == nil {
		st = d
	}
	return st.Err()
}

// statusString names a gRPC outcome for the request metrics.
func statusString(err error) string { return status.Code(err).String() }
