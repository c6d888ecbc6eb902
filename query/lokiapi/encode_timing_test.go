package lokiapi

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/pharos-obs/pharos/query/logql"
)

// benchStreams is a log query result: nStreams streams of nLines lines, a third of them
// JSON (quotes to escape), the rest logfmt.
func benchStreams(nStreams, nLines int) logql.Streams {
	streams := make(logql.Streams, nStreams)
	for i := range streams {
		streams[i].Labels = labels.FromStrings(
			"app", "api",
			"instance", fmt.Sprintf("node-%03d.example.com", i),
			"level", []string{"info", "warn", "error"}[i%3],
		)
		streams[i].Entries = make([]logql.Entry, nLines)
		for j := range streams[i].Entries {
			line := fmt.Sprintf("level=info ts=2024-01-01T00:00:%02d.%03dZ caller=handler.go:88 msg=\"request done\" path=/api/v1/items/%d status=200 duration=%dms", j%60, j%1000, j, j%250)
			if j%3 == 0 {
				line = fmt.Sprintf(`{"level":"info","ts":"2024-01-01T00:00:%02dZ","msg":"request done","path":"/api/v1/items/%d","status":200}`, j%60, j)
			}
			streams[i].Entries[j] = logql.Entry{Timestamp: 1704067200_000_000_000 + int64(j)*1_000_000, Line: line}
		}
	}
	return streams
}

// BenchmarkEncodeStreams encodes a 100-stream × 1,000-line log query result.
func BenchmarkEncodeStreams(b *testing.B) {
	s := benchStreams(100, 1000)
	buf := appendResult(nil, s, false)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendResult(buf[:0], s, false)
	}
}

// BenchmarkEncodeMatrix encodes a 100-series × 1,000-point metric query result.
func BenchmarkEncodeMatrix(b *testing.B) {
	m := make(promql.Matrix, 100)
	for i := range m {
		m[i].Metric = labels.FromStrings("app", "api", "instance", fmt.Sprintf("node-%03d.example.com", i), "level", strconv.Itoa(i%3))
		m[i].Floats = make([]promql.FPoint, 1000)
		for j := range m[i].Floats {
			m[i].Floats[j] = promql.FPoint{T: 1704067200_000 + int64(j)*15_000, F: float64(i*1000+j) / 3}
		}
	}
	buf := appendResult(nil, m, false)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = appendResult(buf[:0], m, false)
	}
}
