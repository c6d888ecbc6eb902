package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/otlpwire"
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
		consumeRaw: func(ctx context.Context, proto receive.Protocol, id string, body []byte) (ptraceotlp.ExportResponse, bool, error) {
			out, handled, err := t.consumeWire(ctx, proto, tenant.Key(id), body)
			if !handled || err != nil {
				return ptraceotlp.ExportResponse{}, handled, err
			}
			return tracesResponse(out), true, nil
		},
	}
	return t
}

// RegisterHTTP serves ServeHTTP at TracesPath on mux.
func (t *Traces) RegisterHTTP(mux *http.ServeMux) { mux.Handle(TracesPath, t) }

// RegisterGRPC registers the OTLP TraceService on s. Its requests reach
// the handler undecoded (rawMessage), for consumeWire.
func (t *Traces) RegisterGRPC(s *grpc.Server) {
	s.RegisterService(&rawTraceService, t)
}

// rawTraceService is the OTLP TraceService (opentelemetry-proto's
// trace_service.proto) with an undecoded request.
var rawTraceService = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			// The request's buffer is reused once the call is done: nothing
			// keeps it (the spool has a copy, pdata its own).
			in := rawMessages.Get().(*rawMessage)
			defer in.free()
			if err := dec(in); err != nil {
				return nil, err
			}
			handle := func(ctx context.Context, req any) (any, error) {
				resp, err := srv.(*Traces).sig.exportRaw(ctx, req.(*rawMessage).b)
				if err != nil {
					return nil, err
				}
				b, err := resp.MarshalProto()
				if err != nil {
					return nil, status.Error(codes.Internal, "encode response: "+err.Error())
				}
				return &rawMessage{b: b}, nil
			}
			if interceptor == nil {
				return handle(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/opentelemetry.proto.collector.trace.v1.TraceService/Export"}, handle)
		},
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// rawMessage is a gRPC message kept encoded. The "proto" codec pdata
// registers (its otelgrpc package, linked in by ptraceotlp) hands such a
// message the bytes through UnmarshalProto and writes it with SizeProto
// and MarshalProto.
type rawMessage struct{ b []byte }

var rawMessages = sync.Pool{New: func() any { return new(rawMessage) }}

// maxPooledRequest bounds the request buffers kept for reuse.
const maxPooledRequest = 4 << 20

// free returns m to rawMessages.
func (m *rawMessage) free() {
	if cap(m.b) > maxPooledRequest {
		return
	}
	m.b = m.b[:0]
	rawMessages.Put(m)
}

// UnmarshalProto keeps a copy of b: the codec reuses its buffer.
func (m *rawMessage) UnmarshalProto(b []byte) error {
	m.b = append(m.b[:0], b...)
	return nil
}

// SizeProto is the encoded size.
func (m *rawMessage) SizeProto() int { return len(m.b) }

// MarshalProto writes the message into buf, SizeProto bytes long.
func (m *rawMessage) MarshalProto(buf []byte) int { return copy(buf, m.b) }

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
		t.notStored(ctx, proto, tenant, err)
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

// consumeWire pushes a protobuf request as it came, read in place, when
// no ingestion rule would refuse or change its spans
// (TracesIntake.WireReady): nothing is decoded into pdata, and the
// publisher cuts its parts from body. handled is false otherwise, or when
// body does not read, and the request is then decoded and consumed.
func (t *Traces) consumeWire(ctx context.Context, proto receive.Protocol, tenant string, body []byte) (out tracesOutcome, handled bool, err error) {
	w := wireTraces.Get().(*otlpwire.Traces)
	defer func() {
		w.Reset()
		wireTraces.Put(w)
	}()
	w.Measure = true
	if w.Read(body) != nil || !t.ti.WireReady(w) {
		return out, false, nil
	}
	out.spans = len(w.Spans)
	if err := t.ti.PushWire(ctx, proto, tenant, len(body), w); err != nil {
		t.notStored(ctx, proto, tenant, err)
		return out, true, err
	}
	return out, true, nil
}

// notStored logs a push the sender will retry: not one refused for good,
// limited, or given up by the sender.
func (t *Traces) notStored(ctx context.Context, proto receive.Protocol, tenant string, err error) {
	if ctx.Err() == nil && !errors.Is(err, receive.ErrTracesRejected) && !errors.Is(err, overrides.ErrLimited) {
		t.logger.Warn("OTLP traces not stored; the sender will retry", "protocol", proto, "tenant", tenant, "err", err)
	}
}

var wireTraces = sync.Pool{New: func() any { return new(otlpwire.Traces) }}
