package tempoapi

import (
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// benchTrace is a trace of n spans over 5 services, each span with six
// attributes, and every tenth with an event.
func benchTrace(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	for svc := range 5 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "service-"+strconv.Itoa(svc))
		rs.Resource().Attributes().PutStr("host.name", "host-1")
		rs.Resource().Attributes().PutStr("telemetry.sdk.language", "go")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("io.opentelemetry.http")
		for i := svc; i < n; i += 5 {
			s := ss.Spans().AppendEmpty()
			s.SetTraceID(pcommon.TraceID{1, 2, 3})
			s.SetSpanID(pcommon.SpanID{byte(i), byte(i >> 8), 1})
			if i > 0 {
				s.SetParentSpanID(pcommon.SpanID{byte(i - 1), byte((i - 1) >> 8), 1})
			}
			s.SetName("GET /api/v1/items/{id}")
			s.SetKind(ptrace.SpanKindServer)
			s.SetStartTimestamp(ts(time.Duration(i) * time.Millisecond))
			s.SetEndTimestamp(ts(time.Duration(i+3) * time.Millisecond))
			s.Attributes().PutStr("http.method", "GET")
			s.Attributes().PutStr("http.route", "/api/v1/items/{id}")
			s.Attributes().PutInt("http.status_code", 200)
			s.Attributes().PutStr("net.peer.name", "10.0.0.1")
			s.Attributes().PutDouble("sampling.ratio", 0.25)
			s.Attributes().PutBool("cache.hit", i%2 == 0)
			if i%10 == 0 {
				ev := s.Events().AppendEmpty()
				ev.SetName("retry")
				ev.SetTimestamp(ts(time.Duration(i+1) * time.Millisecond))
				ev.Attributes().PutInt("attempt", 2)
			}
		}
	}
	return td
}

func BenchmarkTraceByID(b *testing.B) {
	td := benchTrace(200)
	run := func(name string, encode func() ([]byte, error)) {
		b.Run(name, func(b *testing.B) {
			out, err := encode()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(out)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("json-v1", func() ([]byte, error) { return marshalTraceJSON(td, false) })
	run("json-v2", func() ([]byte, error) { return marshalTraceJSON(td, true) })
	run("proto-v1", func() ([]byte, error) { return marshalTraceProto(td, false) })
	run("proto-v2", func() ([]byte, error) { return marshalTraceProto(td, true) })
	var (
		e   jaegerEncoder
		buf []byte
	)
	run("jaeger", func() ([]byte, error) {
		buf = e.appendTrace(buf[:0], td)
		return buf, nil
	})
}

func BenchmarkSearchEncode(b *testing.B) {
	hits := make([]traces.TraceSummary, 20)
	for i := range hits {
		h := &hits[i]
		h.TraceID = traces.TraceID{byte(i), 1, 2, 3}
		h.RootServiceName, h.RootTraceName = "frontend", "GET /checkout"
		h.StartTimeUnixNano, h.DurationMs = uint64(t0.UnixNano())+uint64(i), 250
		h.MatchedAll = 5
		for j := range 3 {
			h.Matched = append(h.Matched, traces.SpanSummary{
				SpanID: [8]byte{byte(j)}, Name: "charge", StartTimeUnixNano: uint64(t0.UnixNano()), DurationNanos: 1e8,
				Attributes: map[string]string{"service.name": "checkout", "status": "error"},
			})
		}
	}
	buf := appendSearch(nil, hits)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendSearch(buf[:0], hits)
	}
}
