package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// LogsPath is where OTLP/HTTP logs are served.
const LogsPath = "/v1/logs"

// tenantMetadataKey carries the tenant on gRPC, as Loki reads it.
const tenantMetadataKey = tenant.MetadataKey

// statusClientClosed is the code counted for an HTTP request whose
// sender went away while its logs were being stored (no one reads it).
const statusClientClosed = 499

// Logs receives OTLP logs over HTTP (ServeHTTP) and gRPC (the LogsService
// registered by RegisterGRPC), maps them to log streams as Loki 3 does
// (see convertLogs), checks them through the LogsIntake and pushes them
// to its sink. It is a Signal of the Receiver (register it with
// Receiver.Register before the receiver starts) and, as an http.Handler,
// can also be mounted on another mux. It is safe for concurrent use.
//
// The tenant is X-Scope-OrgID (HTTP) or x-scope-orgid (gRPC metadata).
//
// Answers follow the OTLP specification: a request whose records were all
// stored gets 200 / OK; one where some records were refused by the
// ingestion rules gets 200 / OK with partial_success
// (rejected_log_records, and an error_message naming streams and rules),
// the rest being stored; one where all were refused, or whose streams the
// sink refused for good, gets 400 / INVALID_ARGUMENT (not retryable), as
// does a malformed tenant. Overload is 429 / RESOURCE_EXHAUSTED with
// Retry-After / RetryInfo, a sink that cannot store the streams now 503 /
// UNAVAILABLE with Retry-After / RetryInfo: both retryable, and nothing of
// the request was kept.
type Logs struct {
	li         *receive.LogsIntake
	in         *receive.Intake
	logger     *slog.Logger
	now        func() time.Time
	converters sync.Pool // *logsConverter
	sig        exportSignal[plogotlp.ExportRequest, plogotlp.ExportResponse]
}

// NewLogs returns the OTLP logs signal, pushing through li.
func NewLogs(li *receive.LogsIntake, logger *slog.Logger) *Logs {
	l := &Logs{li: li, in: li.Intake(), logger: logger, now: time.Now}
	l.converters.New = func() any { return newLogsConverter() }
	l.sig = exportSignal[plogotlp.ExportRequest, plogotlp.ExportResponse]{
		in: l.in, name: "logs", rejected: receive.ErrLogsRejected, newReq: plogotlp.NewExportRequest,
		consume: func(ctx context.Context, proto receive.Protocol, id string, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
			out, err := l.consume(ctx, proto, tenant.Key(id), req.Logs())
			if err != nil {
				return plogotlp.ExportResponse{}, err
			}
			return logsResponse(out), nil
		},
	}
	return l
}

// RegisterHTTP serves ServeHTTP at LogsPath on mux.
func (l *Logs) RegisterHTTP(mux *http.ServeMux) { mux.Handle(LogsPath, l) }

// RegisterGRPC registers the OTLP LogsService on s.
func (l *Logs) RegisterGRPC(s *grpc.Server) {
	plogotlp.RegisterGRPCServer(s, &grpcLogs{l: l})
}

// ServeHTTP implements http.Handler for POST /v1/logs (see
// exportSignal.serveHTTP).
func (l *Logs) ServeHTTP(w http.ResponseWriter, r *http.Request) { l.sig.serveHTTP(w, r) }

// logsOutcome is what a request did.
type logsOutcome struct {
	records int // in the request
	rej     receive.LogsRejection
}

// consume converts, checks and pushes ld. Its error is a sink error, or
// one wrapping ErrLogsRejected when every record was refused.
func (l *Logs) consume(ctx context.Context, proto receive.Protocol, tenant string, ld plog.Logs) (logsOutcome, error) {
	c := l.converters.Get().(*logsConverter)
	defer func() {
		c.reset()
		l.converters.Put(c)
	}()
	streams := c.convert(ld, l.now())
	out := logsOutcome{records: c.records, rej: c.rej}
	l.li.CountRejected(receive.ReasonLogsInvalidTimestamp, c.badTimestamps)
	streams, rej := l.li.CheckStreams(tenant, streams)
	out.rej.Merge(rej)
	if out.rej.Entries > 0 && out.rej.Entries >= out.records {
		l.logger.Debug("OTLP logs rejected", "protocol", proto, "tenant", tenant, "rejected_log_records", out.rej.Entries)
		return out, fmt.Errorf("%w: %s", receive.ErrLogsRejected, out.rej.Message(out.records))
	}
	if err := l.li.Push(ctx, proto, tenant, streams); err != nil {
		if ctx.Err() == nil && !errors.Is(err, receive.ErrLogsRejected) && !errors.Is(err, overrides.ErrLimited) {
			l.logger.Warn("OTLP logs not stored; the sender will retry", "protocol", proto, "tenant", tenant, "err", err)
		}
		return out, err
	}
	if out.rej.Entries > 0 {
		l.logger.Debug("OTLP logs partly rejected", "protocol", proto, "tenant", tenant, "rejected_log_records", out.rej.Entries, "log_records", out.records)
	}
	return out, nil
}

func logsResponse(out logsOutcome) plogotlp.ExportResponse {
	resp := plogotlp.NewExportResponse()
	if out.rej.Entries > 0 {
		ps := resp.PartialSuccess()
		ps.SetRejectedLogRecords(int64(out.rej.Entries))
		ps.SetErrorMessage(out.rej.Message(out.records))
	}
	return resp
}

// grpcLogs is the LogsService; admission and request metrics are the
// Receiver's interceptor's.
type grpcLogs struct {
	plogotlp.UnimplementedGRPCServer
	l *Logs
}

// Export implements the OTLP LogsService.
func (g *grpcLogs) Export(ctx context.Context, req plogotlp.ExportRequest) (plogotlp.ExportResponse, error) {
	return g.l.sig.export(ctx, req)
}
