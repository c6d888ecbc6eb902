package vtraces

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/storage/traces"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

// fieldNames returns the names of row's fields.
func fieldNames(row []logstorage.Field) []string {
	out := make([]string, len(row))
	for i, f := range row {
		out[i] = strings.Clone(f.Name) // attribute names alias the buffer the next span reuses
	}
	return out
}

// A span's row is the stream field, then the rest sorted by name, with
// the same names for a root and a child whose attributes have the same
// keys (in any order).
func TestRowLayout(t *testing.T) {
	base := baseTime()
	td := build(t, base,
		spec{trace: 1, id: 1, service: "svc", res: map[string]any{"zone": "b", "host": "h1"}, name: "root", kind: ptrace.SpanKindServer,
			dur: time.Millisecond, attrs: map[string]any{"z": "1", "a": 2, "m": true}},
		spec{trace: 1, id: 2, parent: 1, service: "svc", res: map[string]any{"zone": "b", "host": "h1"}, name: "child", kind: ptrace.SpanKindClient,
			start: time.Microsecond, dur: time.Microsecond, attrs: map[string]any{"m": false, "z": "2", "a": 3}},
	)
	wire, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	var tr otlpwire.Traces
	require.NoError(t, tr.Read(wire))
	b := &appendBuf{}
	r, sc := &tr.Resources[0], &tr.Scopes[0]
	b.startResource(&tr, r)
	b.set = &nameSet{names: map[string]struct{}{}}
	var c appendCounts
	b.resourceFields(&tr, r, 100, &c)

	var rows [][]string
	values := map[string][]string{}
	for k := sc.Spans.Start; k < sc.Spans.End; k++ {
		b.spanFields(&tr, r, sc, &tr.Spans[k], 100, &c)
		names := fieldNames(b.row)
		require.Equal(t, fieldService, names[0], "the stream field first")
		require.True(t, slices.IsSorted(names[1:]), "%v", names)
		rows = append(rows, names)
		for _, f := range b.row {
			name := strings.Clone(f.Name)
			values[name] = append(values[name], strings.Clone(f.Value))
		}
	}
	require.Equal(t, rows[0], rows[1], "a root and a child have the same fields")
	require.Equal(t, []string{fieldService, fieldDuration, fieldIsRoot, fieldKind, fieldName, fieldOTLP, fieldEnvelope,
		"resource.host", "resource.zone", "span.a", "span.m", "span.z",
		fieldSpanID, fieldStart, fieldStatusCode, fieldStatusMessage, fieldTraceID}, rows[0])
	// The resource and scope are one value for the scope's spans; the
	// records are slim.
	require.Equal(t, values[fieldEnvelope][0], values[fieldEnvelope][1])
	for _, v := range values[fieldOTLP] {
		require.Equal(t, byte(slimMarker), v[0])
	}
	require.Equal(t, []string{"true", "false"}, values[fieldIsRoot])
	require.Equal(t, []string{"1000000", "1000"}, values[fieldDuration])
	require.Equal(t, []string{"2", "3"}, values["span.a"])
}

// Every stored row has is_root, and none has the columns rows had before
// (end, parent_span_id); search still finds roots and trace durations.
func TestStoredColumns(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", build(t, base,
		spec{trace: 1, id: 1, service: "fe", name: "GET /", dur: 30 * time.Millisecond},
		spec{trace: 1, id: 2, parent: 1, service: "be", name: "query", start: 5 * time.Millisecond, dur: 40 * time.Millisecond},
	)))
	searchable(s)
	from, to := s.timeRange(time.Time{}, time.Time{})
	q, err := vlengine.ParseQuery("*", from, to+1)
	require.NoError(t, err)
	hits := map[string]uint64{}
	require.NoError(t, s.eng.Query(context.Background(), "", q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		names, err := st.GetFieldNames(qctx, "")
		for _, n := range names {
			hits[n.Value] = n.Hits
		}
		return err
	}))
	require.EqualValues(t, 2, hits[fieldIsRoot])
	require.NotContains(t, hits, "end")
	require.NotContains(t, hits, "parent_span_id")
	res, err := s.Search(context.Background(), traces.SearchParams{})
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, "fe", res[0].RootServiceName)
	require.Equal(t, "GET /", res[0].RootTraceName)
	require.EqualValues(t, 45, res[0].DurationMs, "from the root's start to the child's end")
}
