package app

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/query/tempoapi"
	"github.com/pharos-obs/pharos/storage/logs"
	"github.com/pharos-obs/pharos/storage/traces"
)

// maxTraceLogLines bounds the log lines returned with a trace.
const maxTraceLogLines = 1000

// logsByTrace finds a trace's log lines: OTLP logs carry the trace ID as
// structured metadata (trace_id), which every OTLP stream has a
// service_name label to select by; tailed and pushed lines that write the
// ID into the line itself (a JSON or logfmt field) are found by substring.
// Both are LogQL queries over the same log store the Loki API reads.
func logsByTrace(engine *logql.Engine, q logs.Querier) tempoapi.LogsByTrace {
	return func(ctx context.Context, tenant string, id traces.TraceID, start, end time.Time) ([]tempoapi.LogLine, error) {
		hexID := id.String()
		queries := []string{
			fmt.Sprintf(`{service_name=~".+"} | trace_id=%q`, hexID),
			fmt.Sprintf(`{service_name=~".+"} |= %q`, hexID),
			fmt.Sprintf(`{filename=~".+"} |= %q`, hexID),
		}
		seen := map[string]bool{}
		var out []tempoapi.LogLine
		for _, query := range queries {
			res, err := engine.Query(ctx, q, tenant, logql.Params{
				Query: query, Start: start, End: end.Add(time.Nanosecond), Limit: maxTraceLogLines, Direction: logs.Forward,
			})
			if err != nil {
				return nil, err
			}
			streams, ok := res.Data.(logql.Streams)
			if !ok {
				return nil, fmt.Errorf("trace logs: unexpected result %T", res.Data)
			}
			for _, st := range streams {
				for _, e := range st.Entries {
					key := st.Labels.String() + "\x00" + fmt.Sprint(e.Timestamp) + "\x00" + e.Line
					if seen[key] {
						continue
					}
					seen[key] = true
					out = append(out, tempoapi.LogLine{Timestamp: time.Unix(0, e.Timestamp), Labels: st.Labels.Map(), Line: e.Line})
				}
			}
		}
		slices.SortStableFunc(out, func(a, b tempoapi.LogLine) int { return cmp.Compare(a.Timestamp.UnixNano(), b.Timestamp.UnixNano()) })
		if len(out) > maxTraceLogLines {
			out = out[:maxTraceLogLines]
		}
		return out, nil
	}
}
