package logql

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
)

const benchJSONLine = `{"ts":"2024-01-01T00:00:00.123Z","level":"info","caller":"http/server.go:123","msg":"request served","http":{"method":"GET","path":"/api/v1/users","status":200,"duration_ms":12.5},"user":{"id":"u-123","roles":["admin","dev"]},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}`

func BenchmarkJSONParser(b *testing.B) {
	stream := streamLabels(labels.FromStrings("app", "api", "env", "prod"))
	for _, tc := range []struct {
		name  string
		stage Stage
	}{
		{"flatten", &JSONStage{}},
		{"params", &JSONStage{Params: []ExtractParam{{Label: "status", Path: "http.status"}, {Label: "user", Path: "user.id"}}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			pl, err := compilePipeline([]Stage{tc.stage})
			require.NoError(b, err)
			b.ReportAllocs()
			b.SetBytes(int64(len(benchJSONLine)))
			for b.Loop() {
				if _, ok := pl.process(stream, labels.EmptyLabels(), 0, benchJSONLine); !ok || pl.lb.err != "" {
					b.Fatal("parse failed")
				}
			}
		})
	}
}

func BenchmarkLineFilter(b *testing.B) {
	lines := []string{
		`level=info msg="request served" path=/api/v1/users status=200 duration=12ms`,
		`level=error msg="upstream timeout" path=/api/v1/orders status=504 duration=30s`,
		benchJSONLine,
	}
	for _, tc := range []struct {
		name string
		f    logs.LineFilter
	}{
		{"contains", logs.LineFilter{Op: logs.LineContains, Values: []string{"status=504"}}},
		{"contains_or", logs.LineFilter{Op: logs.LineContains, Values: []string{"timeout", "refused", "reset"}}},
		{"not_contains", logs.LineFilter{Op: logs.LineNotContains, Values: []string{"level=debug"}}},
		{"regexp", logs.LineFilter{Op: logs.LineMatches, Values: []string{`status=5\d\d`}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lf, err := compileLineFilter(tc.f)
			require.NoError(b, err)
			n := 0
			for _, l := range lines {
				n += len(l)
			}
			b.ReportAllocs()
			b.SetBytes(int64(n))
			for b.Loop() {
				for _, l := range lines {
					lf.match(l)
				}
			}
		})
	}
}

// sliceQuerier serves one pre-sorted stream with no overhead beyond
// slicing, so that benchmarks measure the engine.
type sliceQuerier struct {
	labels  labels.Labels
	entries []logs.Entry
}

func (q *sliceQuerier) Select(_ context.Context, p logs.SelectParams) ([]logs.Stream, error) {
	lo := sort.Search(len(q.entries), func(i int) bool { return q.entries[i].Timestamp >= p.Start })
	hi := sort.Search(len(q.entries), func(i int) bool { return q.entries[i].Timestamp >= p.End })
	es := q.entries[lo:hi]
	if p.Limit > 0 && len(es) > p.Limit {
		if p.Direction == logs.Forward {
			es = es[:p.Limit]
		} else {
			es = es[len(es)-p.Limit:]
		}
	}
	if p.Direction == logs.Backward {
		rev := make([]logs.Entry, len(es))
		for i, e := range es {
			rev[len(es)-1-i] = e
		}
		es = rev
	}
	if len(es) == 0 {
		return nil, nil
	}
	return []logs.Stream{{Labels: q.labels, Entries: es}}, nil
}

func (q *sliceQuerier) LabelNames(context.Context, logs.LabelParams) ([]string, error) {
	return nil, nil
}
func (q *sliceQuerier) LabelValues(context.Context, string, logs.LabelParams) ([]string, error) {
	return nil, nil
}
func (q *sliceQuerier) Series(context.Context, logs.LabelParams) ([]labels.Labels, error) {
	return nil, nil
}

// BenchmarkCountOverTime evaluates count_over_time over an hour of one
// entry per 100ms (36,000 entries) at 1m steps.
func BenchmarkCountOverTime(b *testing.B) {
	q := &sliceQuerier{labels: labels.FromStrings("app", "api", "env", "prod")}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 36000 {
		level := "info"
		if i%10 == 0 {
			level = "error"
		}
		q.entries = append(q.entries, logs.Entry{
			Timestamp: start.Add(time.Duration(i) * 100 * time.Millisecond).UnixNano(),
			Line:      fmt.Sprintf(`level=%s msg="request served" status=200 n=%d`, level, i),
		})
	}
	e := NewEngine(EngineOpts{})
	for _, query := range []string{
		`count_over_time({app="api"}[5m])`,
		`sum by (level) (count_over_time({app="api"} | logfmt [5m]))`,
	} {
		b.Run(query, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := e.Query(context.Background(), q, "", Params{Query: query, Start: start.Add(5 * time.Minute), End: start.Add(time.Hour), Step: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				_ = res
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/36000, "ns/entry")
		})
	}
}
