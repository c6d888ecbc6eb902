package tracestest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/query/traceql"
	"github.com/pharos-obs/pharos/storage/traces"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// sp describes a span of the test data.
type sp struct {
	trace, id, parent byte
	service, name     string
	kind              ptrace.SpanKind
	status            ptrace.StatusCode
	start, dur        time.Duration
	attrs             map[string]any
}

func tid(b byte) traces.TraceID { return traces.TraceID{15: b} }

func build(spans ...sp) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", s.service)
		span := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		span.SetTraceID(pcommon.TraceID(tid(s.trace)))
		span.SetSpanID(pcommon.SpanID{7: s.id})
		if s.parent != 0 {
			span.SetParentSpanID(pcommon.SpanID{7: s.parent})
		}
		span.SetName(s.name)
		span.SetKind(s.kind)
		span.Status().SetCode(s.status)
		span.SetStartTimestamp(pcommon.NewTimestampFromTime(t0.Add(s.start)))
		span.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(s.start + s.dur)))
		if err := span.Attributes().FromRaw(s.attrs); err != nil {
			panic(err)
		}
	}
	return td
}

// newQuerier holds three traces:
//
//	1 at 0s, 1s long: api GET / (server, root) → db SELECT (client, error, 900ms, db.rows=12)
//	2 at 10s, 50ms:   api POST / (server, root, http.status_code=500, error)
//	3 at 20s, 2s:     web render (internal, no root: its parent is missing)
func newQuerier(t *testing.T) *Querier {
	q := New()
	require.NoError(t, q.Append("t1", build(
		sp{trace: 1, id: 1, service: "api", name: "GET /", kind: ptrace.SpanKindServer, dur: time.Second,
			attrs: map[string]any{"http.method": "GET"}},
		sp{trace: 1, id: 2, parent: 1, service: "db", name: "SELECT", kind: ptrace.SpanKindClient,
			status: ptrace.StatusCodeError, start: 50 * time.Millisecond, dur: 900 * time.Millisecond,
			attrs: map[string]any{"db.rows": 12, "ok": true}},
		sp{trace: 2, id: 3, service: "api", name: "POST /", kind: ptrace.SpanKindServer, start: 10 * time.Second,
			status: ptrace.StatusCodeError, dur: 50 * time.Millisecond, attrs: map[string]any{"http.status_code": 500, "http.method": "POST"}},
		sp{trace: 3, id: 4, parent: 9, service: "web", name: "render", kind: ptrace.SpanKindInternal,
			start: 20 * time.Second, dur: 2 * time.Second},
	)))
	require.NoError(t, q.WaitDurable(context.Background()))
	return q
}

func search(t *testing.T, q *Querier, p traces.SearchParams) []byte {
	t.Helper()
	p.Tenant = "t1"
	hits, err := q.Search(context.Background(), p)
	require.NoError(t, err)
	var ids []byte
	for _, h := range hits {
		ids = append(ids, h.TraceID[15])
	}
	return ids
}

func TestSearch(t *testing.T) {
	q := newQuerier(t)
	parse := func(s string) [][]traces.Condition {
		d, err := traceql.Parse(s)
		require.NoError(t, err)
		return d
	}
	for _, tc := range []struct {
		query string
		p     traces.SearchParams
		want  []byte
	}{
		{query: `{}`, want: []byte{3, 2, 1}}, // most recent first
		{query: `{}`, p: traces.SearchParams{Limit: 2}, want: []byte{3, 2}},
		{query: `{ resource.service.name = "api" }`, want: []byte{2, 1}},
		{query: `{ .service.name = "db" }`, want: []byte{1}},
		{query: `{ span.service.name = "db" }`},
		// AND within a group is on one span: api's span is not the error.
		{query: `{ resource.service.name = "api" && status = error }`, want: []byte{2}},
		{query: `{ resource.service.name = "web" } || { status = error }`, want: []byte{3, 2, 1}},
		{query: `{ duration > 500ms && duration < 1s }`, want: []byte{1}},
		{query: `{ traceDuration >= 1s }`, want: []byte{3, 1}},
		{query: `{ rootServiceName = "api" && name = "SELECT" }`, want: []byte{1}},
		{query: `{ rootName =~ "GET.*" }`, want: []byte{1}},
		{query: `{ rootName =~ "GET" }`}, // anchored
		{query: `{ name !~ "GET.*|POST.*" }`, want: []byte{3, 1}},
		{query: `{ kind = internal }`, want: []byte{3}},
		{query: `{ kind != server && kind != client }`, want: []byte{3}},
		{query: `{ span.http.status_code >= 500 }`, want: []byte{2}},
		{query: `{ span.http.status_code = "500" }`, want: []byte{2}},
		{query: `{ span.http.status_code > 500.5 }`},
		{query: `{ .db.rows < 13 && .ok = true }`, want: []byte{1}},
		{query: `{ .ok != true }`},
		{query: `{ .http.method != "GET" }`, want: []byte{2}}, // missing attributes meet no condition
		{query: `{ .http.method > "GET" }`, want: []byte{2}},
		{query: `{}`, p: traces.SearchParams{MinDuration: time.Second}, want: []byte{3, 1}},
		{query: `{}`, p: traces.SearchParams{MaxDuration: time.Second}, want: []byte{2, 1}},
		{query: `{ status = error }`, p: traces.SearchParams{Start: t0.Add(time.Second), End: t0.Add(15 * time.Second)}, want: []byte{2}},
		{query: `{ status = error }`, p: traces.SearchParams{End: t0.Add(time.Second)}, want: []byte{1}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			tc.p.Any = parse(tc.query)
			require.Equal(t, tc.want, search(t, q, tc.p))
		})
	}

	// Matched spans: all that met a group, sorted by start, capped.
	hits, err := q.Search(context.Background(), traces.SearchParams{Tenant: "t1", Any: parse(`{ rootServiceName = "api" && .http.method != "x" } || { status = error }`), SpansPerSpanSet: 1})
	require.NoError(t, err)
	require.Len(t, hits, 2)
	require.Equal(t, traces.TraceSummary{
		TraceID: tid(1), RootServiceName: "api", RootTraceName: "GET /",
		StartTimeUnixNano: uint64(t0.UnixNano()), DurationMs: 1000,
		Matched: []traces.SpanSummary{{
			SpanID: [8]byte{7: 1}, Name: "GET /", StartTimeUnixNano: uint64(t0.UnixNano()), DurationNanos: 1e9,
			Attributes: map[string]string{"service.name": "api", "http.method": "GET", "status": "unset"},
		}},
		MatchedAll: 2,
	}, hits[1])
	// A trace without a root span has no root names.
	hits, err = q.Search(context.Background(), traces.SearchParams{Tenant: "t1", Any: parse(`{ kind = internal }`)})
	require.NoError(t, err)
	require.Equal(t, "", hits[0].RootServiceName)
	require.Equal(t, uint64(2000), hits[0].DurationMs)

	// Other tenants see nothing.
	hits, err = q.Search(context.Background(), traces.SearchParams{Tenant: "t2"})
	require.NoError(t, err)
	require.Empty(t, hits)
}

func TestTrace(t *testing.T) {
	q := newQuerier(t)
	ctx := context.Background()
	td, err := q.Trace(ctx, "t1", tid(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, 2, td.SpanCount())
	require.Equal(t, 2, td.ResourceSpans().Len())

	// Redelivery: a span stored twice comes back once; a new one is added
	// to the trace.
	require.NoError(t, q.Append("t1", build(
		sp{trace: 1, id: 1, service: "api", name: "GET /"},
		sp{trace: 1, id: 5, parent: 1, service: "api", name: "late", start: time.Second},
	)))
	td, err = q.Trace(ctx, "t1", tid(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, 3, td.SpanCount())

	// Bounds: the trace comes back whole when one span starts within them.
	td, err = q.Trace(ctx, "t1", tid(1), t0.Add(time.Second), t0.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, 3, td.SpanCount())
	td, err = q.Trace(ctx, "t1", tid(1), t0.Add(time.Minute), time.Time{})
	require.NoError(t, err)
	require.Equal(t, 0, td.SpanCount())

	td, err = q.Trace(ctx, "t2", tid(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, 0, td.SpanCount())
}

func TestTags(t *testing.T) {
	q := newQuerier(t)
	ctx := context.Background()
	names, err := q.TagNames(ctx, traces.TagParams{Tenant: "t1"})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{
		"resource":  {"service.name"},
		"span":      {"db.rows", "http.method", "http.status_code", "ok"},
		"intrinsic": {"duration", "kind", "name", "rootName", "rootServiceName", "status", "traceDuration"},
	}, names)
	names, err = q.TagNames(ctx, traces.TagParams{Tenant: "t1", Scope: "span", Limit: 2, End: t0.Add(time.Second)})
	require.NoError(t, err)
	require.Equal(t, map[string][]string{"span": {"db.rows", "http.method"}}, names)

	for tag, want := range map[string][]string{
		"resource.service.name": {"api", "db", "web"},
		".http.method":          {"GET", "POST"},
		"span.http.status_code": {"500"},
		"span.service.name":     {},
		"name":                  {"GET /", "POST /", "SELECT", "render"},
		"status":                {"error", "unset"},
		"kind":                  {"client", "internal", "server"},
		"rootServiceName":       {"api"},
		"rootName":              {"GET /", "POST /"},
	} {
		got, err := q.TagValues(ctx, tag, traces.TagParams{Tenant: "t1"})
		require.NoError(t, err, tag)
		require.Equal(t, want, got, tag)
	}
	_, err = q.TagValues(ctx, "foo", traces.TagParams{Tenant: "t1"})
	require.Error(t, err)

	services, err := q.Services(ctx, "t1", time.Time{}, t0.Add(15*time.Second))
	require.NoError(t, err)
	require.Equal(t, []string{"api", "db"}, services)
	ops, err := q.Operations(ctx, "t1", "api", time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, []traces.Operation{{Name: "GET /", Kind: "server"}, {Name: "POST /", Kind: "server"}}, ops)
}

func TestErr(t *testing.T) {
	q := newQuerier(t)
	ctx := context.Background()
	boom := errors.New("boom")
	q.SetErr(boom)
	_, err := q.Search(ctx, traces.SearchParams{})
	require.ErrorIs(t, err, boom)
	_, err = q.Trace(ctx, "t1", tid(1), time.Time{}, time.Time{})
	require.ErrorIs(t, err, boom)
	_, err = q.TagNames(ctx, traces.TagParams{})
	require.ErrorIs(t, err, boom)
	_, err = q.TagValues(ctx, "name", traces.TagParams{})
	require.ErrorIs(t, err, boom)
	_, err = q.Services(ctx, "t1", time.Time{}, time.Time{})
	require.ErrorIs(t, err, boom)
	_, err = q.Operations(ctx, "t1", "api", time.Time{}, time.Time{})
	require.ErrorIs(t, err, boom)
	require.ErrorIs(t, q.Append("t1", ptrace.NewTraces()), boom)
	q.SetErr(nil)
	_, err = q.Search(ctx, traces.SearchParams{})
	require.NoError(t, err)
}
