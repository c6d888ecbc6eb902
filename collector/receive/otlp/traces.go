package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
}

// NewTraces returns the OTLP traces signal, pushing through ti.
func NewTraces(ti *receive.TracesIntake, logger *slog.Logger) *Traces {
	return &Traces{ti: ti, in: ti.Intake(), logger: logger}
}

// RegisterHTTP serves ServeHTTP at TracesPath on mux.
func (t *Traces) RegisterHTTP(mux *http.ServeMux) { mux.Handle(TracesPath, t) }

// RegisterGRPC registers the OTLP TraceService on s.
func (t *Traces) RegisterGRPC(s *grpc.Server) {
	ptraceotlp.RegisterGRPCServer(s, &grpcTraces{t: t})
}

// ServeHTTP implements http.Handler for POST /v1/traces, protobuf or
// JSON, uncompressed, gzip or zstd; the body is capped before and after
// decompression by the shared readHTTP.
func (t *Traces) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, ok := readHTTP(t.in, w, r)
	if !ok {
		return
	}
	defer req.done()
	mt, start := req.mt, req.start
	id, err := tenant.Resolve(r)
	if err != nil {
		writeStatus(t.in, w, mt, http.StatusBadRequest, err.Error(), start)
		return
	}
	er := ptraceotlp.NewExportRequest()
	if mt == contentTypeJSON {
		err = er.UnmarshalJSON(req.body.Bytes())
	} else {
		err = er.UnmarshalProto(req.body.Bytes())
	}
	if err != nil {
		writeStatus(t.in, w, mt, http.StatusBadRequest, "decode OTLP traces: "+err.Error(), start)
		return
	}
	out, err := t.consume(r.Context(), receive.ProtocolOTLPHTTP, tenant.Key(id), er.Traces())
	switch {
	case err != nil && r.Context().Err() != nil:
		t.in.ObserveRequest(receive.ProtocolOTLPHTTP, strconv.Itoa(statusClientClosed), start)
		w.WriteHeader(statusClientClosed)
		return
	case errors.Is(err, receive.ErrTracesRejected):
		writeStatus(t.in, w, mt, http.StatusBadRequest, err.Error(), start)
		return
	case err != nil && limitHTTP(t.in, w, mt, err, start):
		return
	case err != nil:
		w.Header().Set("Retry-After", t.in.RetryAfterHeader())
		writeStatus(t.in, w, mt, http.StatusServiceUnavailable, err.Error(), start)
		return
	}
	resp := tracesResponse(out)
	var b []byte
	if mt == contentTypeJSON {
		b, err = resp.MarshalJSON()
	} else {
		b, err = resp.MarshalProto()
	}
	if err != nil {
		// The spans are stored; only the answer failed. A 500 is not retried.
		writeStatus(t.in, w, mt, http.StatusInternalServerError, "encode response: "+err.Error(), start)
		return
	}
	writeOK(t.in, w, mt, b, start)
}

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
	id, err := tenant.ResolveGRPC(ctx)
	if err != nil {
		return ptraceotlp.ExportResponse{}, status.Error(codes.InvalidArgument, err.Error())
	}
	out, err := g.t.consume(ctx, receive.ProtocolOTLPGRPC, tenant.Key(id), req.Traces())
	switch {
	case err != nil && ctx.Err() != nil:
		return ptraceotlp.ExportResponse{}, status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, receive.ErrTracesRejected):
		return ptraceotlp.ExportResponse{}, status.Error(codes.InvalidArgument, err.Error())
	case limitGRPC(err) != nil:
		return ptraceotlp.ExportResponse{}, limitGRPC(err)
	case err != nil:
		return ptraceotlp.ExportResponse{}, retryableStatus(codes.Unavailable, err.Error(), g.t.in.RetryAfter())
	}
	return tracesResponse(out), nil
}
