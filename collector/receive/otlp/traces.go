package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// TracesPath is where OTLP/HTTP traces are served.
const TracesPath = "/v1/traces"

// Traces receives OTLP traces over HTTP (ServeHTTP) and gRPC (the
// TraceService registered by RegisterGRPC), checks them through the
// TracesIntake and pushes them, in their OTLP form, to its sink. It is a
// Signal of the Receiver (register it with Receiver.Register before the
// receiver starts) and, as an http.Handler, can also be mounted on
// another mux. It is safe for concurrent use.
//
// The tenant is X-Scope-OrgID (HTTP) or x-scope-orgid (gRPC metadata).
//
// Answers follow the OTLP specification, as for logs: all spans stored is
// 200 / OK; some refused by the ingestion rules is 200 / OK with
// partial_success (rejected_spans, and an error_message naming spans and
// rules), the rest being stored; all refused, or refused by the sink for
// good, is 400 / INVALID_ARGUMENT (not retryable), as is a malformed
// body or tenant. Overload is 429 / RESOURCE_EXHAUSTED, a sink that
// cannot store the spans now 503 / UNAVAILABLE, both with Retry-After /
// RetryInfo: retryable, and nothing of the request was kept.
type Traces struct {
	ti     *receive.TracesIntake
	in     *receive.Intake
	logger *slog.Logger
	sig    exportSignal[ptraceotlp.ExportRequest, ptraceotlp.ExportResponse]
}

// NewTraces returns the OTLP traces signal, pushing through ti.
func NewTraces(ti *receive.TracesIntake, logger *slog.Logger) *Traces {
	t := &Traces{ti: ti, in: ti.Intake(), logger: logger}
	t.sig = exportSignal[ptraceotlp.ExportRequest, ptraceotlp.ExportResponse]{
		in: t.in, name: "traces", rejected: receive.ErrTracesRejected, newReq: ptraceotlp.NewExportRequest,
		consume: func(ctx context.Context, proto receive.Protocol, id string, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
			out, err := t.consume(ctx, proto, tenant.Key(id), req.Traces())
			if err != nil {
				return ptraceotlp.ExportResponse{}, err
			}
			return tracesResponse(out), nil
		},
	}
	return t
}

// RegisterHTTP serves ServeHTTP at TracesPath on mux.
func (t *Traces) RegisterHTTP(mux *http.ServeMux) { mux.Handle(TracesPath, t) }

// RegisterGRPC registers the OTLP TraceService on s.
func (t *Traces) RegisterGRPC(s *grpc.Server) {
	ptraceotlp.RegisterGRPCServer(s, &grpcTraces{t: t})
}

// ServeHTTP implements http.Handler for POST /v1/traces (see
// exportSignal.serveHTTP).
func (t *Traces) ServeHTTP(w http.ResponseWriter, r *http.Request) { t.sig.serveHTTP(w, r) }

// tracesOutcome is what a request did.
type tracesOutcome struct {
	spans int // in the request
	rej   receive.TracesRejection
}

// consume checks and pushes td. Its error is a sink error, or one
// wrapping ErrTracesRejected when every span was refused.
func (t *Traces) consume(ctx context.Context, proto receive.Protocol, tenant string, td ptrace.Traces) (tracesOutcome, error) {
	out := tracesOutcome{spans: td.SpanCount()}
	out.rej = t.ti.CheckTraces(td)
	if out.rej.Spans > 0 && out.rej.Spans >= out.spans {
		t.logger.Debug("OTLP traces rejected", "protocol", proto, "tenant", tenant, "rejected_spans", out.rej.Spans)
		return out, fmt.Errorf("%w: %s", receive.ErrTracesRejected, out.rej.Message(out.spans))
	}
	if err := t.ti.Push(ctx, proto, tenant, td); err != nil {
		if ctx.Err() == nil && !errors.Is(err, receive.ErrTracesRejected) && !errors.Is(err, overrides.ErrLimited) {
			t.logger.Warn("OTLP traces not stored; the sender will retry", "protocol", proto, "tenant", tenant, "err", err)
		}
		return out, err
	}
	if out.rej.Spans > 0 {
		t.logger.Debug("OTLP traces partly rejected", "protocol", proto, "tenant", tenant, "rejected_spans", out.rej.Spans, "spans", out.spans)
	}
	return out, nil
}

func tracesResponse(out tracesOutcome) ptraceotlp.ExportResponse {
	resp := ptraceotlp.NewExportResponse()
	if out.rej.Spans > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(int64(out.rej.Spans))
		ps.SetErrorMessage(out.rej.Message(out.spans))
	}
	return resp
}

// grpcTraces is the TraceService; admission and request metrics are the
// Receiver's interceptor's.
type grpcTraces struct {
	ptraceotlp.UnimplementedGRPCServer
	t *Traces
}

// Export implements the OTLP TraceService.
func (g *grpcTraces) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	return g.t.sig.export(ctx, req)
}
