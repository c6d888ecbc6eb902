package otlp

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
)

// benchLogs is a collector-like export: 10 resources (k8s pods) of 500
// records, each with a few attributes, a trace context and severity.
func benchLogs() plog.Logs {
	ld := plog.NewLogs()
	for i := range 10 {
		rl := ld.ResourceLogs().AppendEmpty()
		ra := rl.Resource().Attributes()
		ra.PutStr("service.name", "checkout")
		ra.PutStr("k8s.namespace.name", "shop")
		ra.PutStr("k8s.pod.name", fmt.Sprintf("checkout-7d9f8b6c5-%d", i))
		ra.PutStr("host.name", "node-1")
		ra.PutStr("telemetry.sdk.language", "go")
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName("otelslog")
		for j := range 500 {
			lr := sl.LogRecords().AppendEmpty()
			lr.SetTimestamp(pcommon.NewTimestampFromTime(t1.Add(time.Duration(j) * time.Millisecond)))
			lr.SetSeverityNumber(plog.SeverityNumberInfo)
			lr.SetSeverityText("INFO")
			lr.Body().SetStr(fmt.Sprintf("request served method=GET path=/api/v1/items/%d status=200 duration=%dms", j, j%97))
			lr.Attributes().PutStr("http.method", "GET")
			lr.Attributes().PutInt("http.status_code", 200)
			lr.SetTraceID(traceID)
			lr.SetSpanID(spanID)
		}
	}
	return ld
}

// BenchmarkLogsDecodeConvert is an OTLP/HTTP protobuf body decoded by
// pdata and mapped to streams (no checks, no sink).
func BenchmarkLogsDecodeConvert(b *testing.B) {
	body, err := plogotlp.NewExportRequestFromLogs(benchLogs()).MarshalProto()
	require.NoError(b, err)
	c := newLogsConverter()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			b.Fatal(err)
		}
		c.convert(req.Logs(), testNow)
		c.reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5000, "ns/record")
}

// BenchmarkLogsConvert is the mapping alone.
func BenchmarkLogsConvert(b *testing.B) {
	ld := benchLogs()
	c := newLogsConverter()
	b.ReportAllocs()
	for b.Loop() {
		c.convert(ld, testNow)
		c.reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/5000, "ns/record")
}
