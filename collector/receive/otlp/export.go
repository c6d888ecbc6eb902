package otlp

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// wireRequest and wireResponse are what pdata's OTLP export request and
// response types (plogotlp, ptraceotlp) have in common.
type wireRequest interface {
	UnmarshalJSON([]byte) error
	UnmarshalProto([]byte) error
}

type wireResponse interface {
	MarshalJSON() ([]byte, error)
	MarshalProto() ([]byte, error)
}

// exportSignal is how one signal (metrics, logs, traces) handles an
// export: its name in messages, the error wrapped when the data can never
// be accepted (answered 400 / INVALID_ARGUMENT), and consume, which checks
// and stores a decoded request for a tenant and returns the response
// (partial success included).
type exportSignal[Req wireRequest, Resp wireResponse] struct {
	in       *receive.Intake
	name     string // "logs", "traces"
	rejected error
	newReq   func() Req
	consume  func(ctx context.Context, proto receive.Protocol, tenantID string, req Req) (Resp, error)
	// consumeRaw, if set, is tried first on a protobuf request, undecoded;
	// when it does not handle it (handled false), the request is decoded
	// and consumed.
	consumeRaw func(ctx context.Context, proto receive.Protocol, tenantID string, body []byte) (resp Resp, handled bool, err error)
}

// serveHTTP answers one OTLP/HTTP export: protobuf or JSON, uncompressed,
// gzip or zstd, the body capped before and after decompression by
// readHTTP. A malformed tenant or body, or data refused for good, gets
// 400; a per-tenant limit 429 (or 400); a sink that cannot store now 503
// with Retry-After; a sender gone away 499.
func (s *exportSignal[Req, Resp]) serveHTTP(w http.ResponseWriter, r *http.Request) {
	in := s.in
	req, ok := readHTTP(in, w, r)
	if !ok {
		return
	}
	defer req.done()
	mt, start := req.mt, req.start
	id, err := tenant.Resolve(r)
	if err != nil {
		writeStatus(in, w, mt, http.StatusBadRequest, err.Error(), start)
		return
	}
	var (
		resp    Resp
		handled bool
	)
	if mt != contentTypeJSON && s.consumeRaw != nil {
		resp, handled, err = s.consumeRaw(r.Context(), receive.ProtocolOTLPHTTP, id, req.body.Bytes())
	}
	if !handled {
		er := s.newReq()
		if mt == contentTypeJSON {
			err = er.UnmarshalJSON(req.body.Bytes())
		} else {
			err = er.UnmarshalProto(req.body.Bytes())
		}
		if err != nil {
			writeStatus(in, w, mt, http.StatusBadRequest, "decode OTLP "+s.name+": "+err.Error(), start)
			return
		}
		resp, err = s.consume(r.Context(), receive.ProtocolOTLPHTTP, id, er)
	}
	switch {
	case err != nil && r.Context().Err() != nil:
		in.ObserveRequest(receive.ProtocolOTLPHTTP, strconv.Itoa(statusClientClosed), start)
		w.WriteHeader(statusClientClosed)
		return
	case errors.Is(err, s.rejected):
		writeStatus(in, w, mt, http.StatusBadRequest, err.Error(), start)
		return
	case err != nil && limitHTTP(in, w, mt, err, start):
		return
	case err != nil:
		w.Header().Set("Retry-After", in.RetryAfterHeader())
		writeStatus(in, w, mt, http.StatusServiceUnavailable, err.Error(), start)
		return
	}
	var b []byte
	if mt == contentTypeJSON {
		b, err = resp.MarshalJSON()
	} else {
		b, err = resp.MarshalProto()
	}
	if err != nil {
		// The data is stored; only the answer failed. A 500 is not retried.
		writeStatus(in, w, mt, http.StatusInternalServerError, "encode response: "+err.Error(), start)
		return
	}
	writeOK(in, w, mt, b, start)
}

// export answers one OTLP/gRPC export with the same mapping as serveHTTP:
// INVALID_ARGUMENT, RESOURCE_EXHAUSTED or UNAVAILABLE with RetryInfo, or
// the context's own status.
func (s *exportSignal[Req, Resp]) export(ctx context.Context, req Req) (Resp, error) {
	var zero Resp
	id, err := tenant.ResolveGRPC(ctx)
	if err != nil {
		return zero, status.Error(codes.InvalidArgument, err.Error())
	}
	resp, err := s.consume(ctx, receive.ProtocolOTLPGRPC, id, req)
	if err != nil {
		return zero, s.grpcError(ctx, err)
	}
	return resp, nil
}

// exportRaw is export for a request not yet decoded: consumeRaw's if it
// handles it, else decoded and consumed.
func (s *exportSignal[Req, Resp]) exportRaw(ctx context.Context, body []byte) (Resp, error) {
	var zero Resp
	id, err := tenant.ResolveGRPC(ctx)
	if err != nil {
		return zero, status.Error(codes.InvalidArgument, err.Error())
	}
	resp, handled, err := s.consumeRaw(ctx, receive.ProtocolOTLPGRPC, id, body)
	if !handled {
		req := s.newReq()
		if err := req.UnmarshalProto(body); err != nil {
			return zero, status.Error(codes.InvalidArgument, "decode OTLP "+s.name+": "+err.Error())
		}
		resp, err = s.consume(ctx, receive.ProtocolOTLPGRPC, id, req)
	}
	if err != nil {
		return zero, s.grpcError(ctx, err)
	}
	return resp, nil
}

// grpcError maps a consume error to its gRPC status (nil stays nil).
func (s *exportSignal[Req, Resp]) grpcError(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case errors.Is(err, s.rejected):
		return status.Error(codes.InvalidArgument, err.Error())
	case limitGRPC(err) != nil:
		return limitGRPC(err)
	}
	return retryableStatus(codes.Unavailable, err.Error(), s.in.RetryAfter())
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
