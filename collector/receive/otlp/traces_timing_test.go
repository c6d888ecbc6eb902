package otlp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// benchTraces is a collector-like export: 10 resources of 500 spans, each
// with a few attributes.
func benchTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	for i := range 10 {
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", "checkout")
		ra.PutStr("k8s.pod.name", fmt.Sprintf("checkout-7d9f8b6c5-%d", i))
		ra.PutStr("host.name", "node-1")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("otelhttp")
		for j := range 500 {
			sp := ss.Spans().AppendEmpty()
			tid := trTraceA
			tid[0], tid[1] = byte(i), byte(j)
			sp.SetTraceID(tid)
			sid := trSpanA
			sid[0], sid[1] = byte(i), byte(j)
			sp.SetSpanID(sid)
			sp.SetName("GET /api/v1/items/{id}")
			sp.SetKind(ptrace.SpanKindServer)
			sp.SetStartTimestamp(pcommon.NewTimestampFromTime(trStart.Add(time.Duration(j) * time.Millisecond)))
			sp.SetEndTimestamp(pcommon.NewTimestampFromTime(trStart.Add(time.Duration(j+5) * time.Millisecond)))
			sp.Attributes().PutStr("http.method", "GET")
			sp.Attributes().PutInt("http.status_code", 200)
			sp.Attributes().PutStr("http.target", fmt.Sprintf("/api/v1/items/%d", j))
		}
	}
	return td
}

// BenchmarkTracesHTTP is an OTLP/HTTP protobuf request through the
// handler: admission, body read, pdata decoding, checks, and a sink that
// takes the spans.
func BenchmarkTracesHTTP(b *testing.B) {
	body := tracesProto(b, benchTraces())
	_, rc, lim := trConfigs()
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	in, err := receive.New(rc, lim, &receivetest.Recorder{}, logger, reg)
	require.NoError(b, err)
	sink := receive.TracesSinkFunc(func(context.Context, string, ptrace.Traces) error { return nil })
	ti, err := receive.NewTracesIntake(rc.Traces, in, sink, logger, reg)
	require.NoError(b, err)
	tr := NewTraces(ti, logger)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentTypeProtobuf)
		w := httptest.NewRecorder()
		tr.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code, w.Body.String())
		}
	}
	b.ReportMetric(float64(5000*b.N)/b.Elapsed().Seconds(), "spans/s")
}
