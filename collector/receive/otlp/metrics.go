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
}

// NewMetrics returns the OTLP metrics signal, naming per cfg's
// translation options and appending through in.
func NewMetrics(cfg Config, in *receive.Intake, logger *slog.Logger) (*Metrics, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Metrics{in: in, logger: logger, settings: translatorSettings(cfg)}, nil
}

// RegisterHTTP serves ServeHTTP at MetricsPath on mux.
func (m *Metrics) RegisterHTTP(mux *http.ServeMux) { mux.Handle(MetricsPath, m) }

// RegisterGRPC registers the OTLP MetricsService on s.
func (m *Metrics) RegisterGRPC(s *grpc.Server) {
	pmetricotlp.RegisterGRPCServer(s, &grpcMetrics{m: m})
}

// ServeHTTP implements http.Handler for POST /v1/metrics, protobuf or
// JSON, uncompressed, gzip or zstd.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, ok := readHTTP(m.in, w, r)
	if !ok {
		return
	}
	defer req.done()
	proto, mt, start := receive.ProtocolOTLPHTTP, req.mt, req.start
	id, err := tenant.Resolve(r)
	if err != nil {
		m.fail(w, mt, http.StatusBadRequest, err.Error(), start)
		return
	}
	er := pmetricotlp.NewExportRequest()
	if mt == contentTypeJSON {
		err = er.UnmarshalJSON(req.body.Bytes())
	} else {
		err = er.UnmarshalProto(req.body.Bytes())
	}
	if err != nil {
		m.fail(w, mt, http.StatusBadRequest, "decode OTLP metrics: "+err.Error(), start)
		return
	}
	out, err := m.consume(tenant.WithContext(r.Context(), id), er.Metrics(), proto)
	if err != nil && limitHTTP(m.in, w, mt, err, start) {
		return
	}
	if err != nil {
		m.logger.Warn("OTLP metrics not stored; the sender will retry", "protocol", proto, "err", err)
		w.Header().Set("Retry-After", m.in.RetryAfterHeader())
		m.fail(w, mt, http.StatusServiceUnavailable, err.Error(), start)
		return
	}
	if out.allRejected() {
		m.fail(w, mt, http.StatusBadRequest, out.message(), start)
		return
	}
	if out.nErrs > 0 {
		m.logger.Debug("OTLP metrics partly rejected", "protocol", proto, "rejected_data_points", out.rejectedDataPoints, "data_points", out.dataPoints)
	}
	resp := exportResponse(out)
	var b []byte
	if mt == contentTypeJSON {
		b, err = resp.MarshalJSON()
	} else {
		b, err = resp.MarshalProto()
	}
	if err != nil {
		// The data is stored; only the answer failed. A 500 is not retried.
		m.fail(w, mt, http.StatusInternalServerError, "encode response: "+err.Error(), start)
		return
	}
	writeOK(m.in, w, mt, b, start)
}

func exportResponse(out outcome) pmetricotlp.ExportResponse {
	resp := pmetricotlp.NewExportResponse()
	if out.nErrs > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedDataPoints(int64(out.rejectedDataPoints))
		ps.SetErrorMessage(out.message())
	}
	return resp
}

// fail answers an OTLP/HTTP error (see writeStatus).
func (m *Metrics) fail(w http.ResponseWriter, mt string, code int, msg string, start time.Time) {
	writeStatus(m.in, w, mt, code, msg, start)
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
	id, err := tenant.ResolveGRPC(ctx)
	if err != nil {
		return pmetricotlp.ExportResponse{}, status.Error(codes.InvalidArgument, err.Error())
	}
	out, err := g.m.consume(tenant.WithContext(ctx, id), req.Metrics(), receive.ProtocolOTLPGRPC)
	if st := limitGRPC(err); st != nil {
		return pmetricotlp.ExportResponse{}, st
	}
	if err != nil {
		g.m.logger.Warn("OTLP metrics not stored; the sender will retry", "protocol", receive.ProtocolOTLPGRPC, "err", err)
		return pmetricotlp.ExportResponse{}, retryableStatus(codes.Unavailable, err.Error(), g.m.in.RetryAfter())
	}
	if out.allRejected() {
		return pmetricotlp.ExportResponse{}, status.Error(codes.InvalidArgument, out.message())
	}
	return exportResponse(out), nil
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

// limitHTTP answers err when it is a per-tenant limit's refusal (429 with
// Retry-After, or 400), and reports whether it was one.
func limitHTTP(in *receive.Intake, w http.ResponseWriter, mt string, err error, start time.Time) bool {
	code, retryAfter, ok := receive.LimitResponse(err)
	if !ok {
		return false
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	writeStatus(in, w, mt, code, err.Error(), start)
	return true
}

// limitGRPC is the status of err when it is a per-tenant limit's refusal
// (RESOURCE_EXHAUSTED with RetryInfo, or INVALID_ARGUMENT), nil when it
// is not one.
func limitGRPC(err error) error {
	var le *overrides.LimitError
	if !errors.As(err, &le) {
		return nil
	}
	if !le.Retryable() {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	return retryableStatus(codes.ResourceExhausted, err.Error(), le.RetryAfter)
}

// statusString names a gRPC outcome for the request metrics.
func statusString(err error) string { return status.Code(err).String() }
