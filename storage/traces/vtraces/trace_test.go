package vtraces

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// richTraces is a batch using every OTLP field: two resources (one with
// two scopes), schema URLs, attributes of every type, dropped counts,
// trace state, flags, events, links and status; trace 1 has four spans,
// trace 2 one.
func richTraces(t testing.TB, base time.Time) ptrace.Traces {
	t.Helper()
	td := ptrace.NewTraces()
	ts := func(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(base.Add(d)) }
	addSpan := func(ss ptrace.ScopeSpans, trace, id, parent uint64, name string, start, dur time.Duration) ptrace.Span {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID(traceID(trace)))
		sp.SetSpanID(spanID(trace, id))
		if parent != 0 {
			sp.SetParentSpanID(spanID(trace, parent))
		}
		sp.SetName(name)
		sp.SetStartTimestamp(ts(start))
		sp.SetEndTimestamp(ts(start + dur))
		return sp
	}

	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.21.0")
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", "frontend")
	ra.PutInt("pid", 4242)
	ra.PutDouble("load", 0.75)
	ra.PutBool("canary", true)
	ra.PutEmptyBytes("blob").FromRaw([]byte{0, 1, 2, 0xff})
	ra.PutEmptySlice("tags").FromRaw([]any{"a", int64(1)})
	ra.PutEmptyMap("k8s").FromRaw(map[string]any{"pod": "frontend-1"})
	rs.Resource().SetDroppedAttributesCount(2)

	ss := rs.ScopeSpans().AppendEmpty()
	ss.SetSchemaUrl("https://opentelemetry.io/schemas/1.20.0")
	ss.Scope().SetName("net/http")
	ss.Scope().SetVersion("1.2.3")
	ss.Scope().Attributes().PutStr("lib", "x")
	ss.Scope().SetDroppedAttributesCount(1)
	root := addSpan(ss, 1, 1, 0, "GET /checkout", 0, 250*time.Millisecond)
	root.SetKind(ptrace.SpanKindServer)
	root.TraceState().FromRaw("vendor=abc")
	root.SetFlags(1)
	root.Status().SetCode(ptrace.StatusCodeError)
	root.Status().SetMessage("boom \x00 with a NUL")
	root.Attributes().PutStr("http.method", "GET")
	root.Attributes().PutInt("http.status_code", 500)
	root.Attributes().PutEmptyBytes("raw").FromRaw([]byte("\xff\xfe"))
	root.SetDroppedAttributesCount(3)
	ev := root.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(ts(10 * time.Millisecond))
	ev.Attributes().PutStr("exception.message", "nil pointer")
	ev.SetDroppedAttributesCount(1)
	root.SetDroppedEventsCount(4)
	ln := root.Links().AppendEmpty()
	ln.SetTraceID(pcommon.TraceID(traceID(9)))
	ln.SetSpanID(spanID(9, 9))
	ln.TraceState().FromRaw("k=v")
	ln.Attributes().PutBool("sampled", false)
	ln.SetFlags(1)
	root.SetDroppedLinksCount(5)

	ss2 := rs.ScopeSpans().AppendEmpty()
	ss2.Scope().SetName("db")
	child := addSpan(ss2, 1, 2, 1, "SELECT", 20*time.Millisecond, 30*time.Millisecond)
	child.SetKind(ptrace.SpanKindClient)
	child.Attributes().PutDouble("db.rows", 12.5)
	other := addSpan(ss2, 2, 1, 0, "other trace", 0, time.Millisecond)
	other.SetKind(ptrace.SpanKindInternal)

	rs2 := td.ResourceSpans().AppendEmpty()
	rs2.Resource().Attributes().PutStr("service.name", "payments")
	ss3 := rs2.ScopeSpans().AppendEmpty()
	p1 := addSpan(ss3, 1, 3, 1, "charge", 60*time.Millisecond, 100*time.Millisecond)
	p1.SetKind(ptrace.SpanKindServer)
	p1.Status().SetCode(ptrace.StatusCodeOk)
	addSpan(ss3, 1, 4, 3, "", 70*time.Millisecond, 0) // no name, zero duration
	return td
}

// onlyTrace keeps td's spans of trace id.
func onlyTrace(td ptrace.Traces, id traces.TraceID) ptrace.Traces {
	out := ptrace.NewTraces()
	td.CopyTo(out)
	out.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			ss.Spans().RemoveIf(func(s ptrace.Span) bool { return traces.TraceID(s.TraceID()) != id })
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	return out
}

func TestTraceRoundTrip(t *testing.T) {
	s, reg := openTestStore(t)
	base := baseTime()
	td := richTraces(t, base)
	require.NoError(t, s.Append("", td))
	searchable(s)
	ctx := context.Background()

	got, err := s.Trace(ctx, "", traceID(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	want := onlyTrace(td, traceID(1))
	require.Equal(t, 4, got.SpanCount())
	require.Equal(t, normalise(t, want), normalise(t, got), "every OTLP field comes back")
	// Grouped: frontend's resource with its two scopes, then payments'.
	require.Equal(t, 2, got.ResourceSpans().Len())
	require.Equal(t, 2, got.ResourceSpans().At(0).ScopeSpans().Len())
	require.Equal(t, "https://opentelemetry.io/schemas/1.21.0", got.ResourceSpans().At(0).SchemaUrl())
	// In start order.
	require.Equal(t, "GET /checkout", got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name())

	got2, err := s.Trace(ctx, "", traceID(2), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, normalise(t, onlyTrace(td, traceID(2))), normalise(t, got2))

	none, err := s.Trace(ctx, "", traceID(3), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Zero(t, none.SpanCount())
	none, err = s.Trace(ctx, "", traces.TraceID{}, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Zero(t, none.SpanCount())

	// Time bounds select spans by start, inclusive.
	for name, tc := range map[string]struct {
		start, end time.Time
		spans      int
	}{
		"whole":          {base, base.Add(time.Second), 4},
		"from the child": {base.Add(20 * time.Millisecond), time.Time{}, 3},
		"up to charge":   {time.Time{}, base.Add(60 * time.Millisecond), 3},
		"empty":          {base.Add(time.Second), base, 0},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.Trace(ctx, "", traceID(1), tc.start, tc.end)
			require.NoError(t, err)
			require.Equal(t, tc.spans, got.SpanCount())
		})
	}

	n, _ := metricValue(t, reg, "pharos_traces_appended_spans_total", nil)
	require.Equal(t, 5.0, n)
	bytes, _ := metricValue(t, reg, "pharos_traces_appended_bytes_total", nil)
	require.Greater(t, bytes, float64((&ptrace.ProtoMarshaler{}).TracesSize(td)), "each span carries its resource and scope")
}

// Traces answers for several IDs what Trace answers for each, in one
// query per maxTracesPerQuery IDs: unknown, zero and repeated IDs too.
func TestTracesMany(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	td := richTraces(t, base)
	var specs []spec
	const extra = maxTracesPerQuery + 20
	for i := range extra {
		specs = append(specs, spec{trace: uint64(100 + i), id: 1, service: "many", name: "op", start: time.Duration(i) * time.Millisecond})
	}
	require.NoError(t, s.Append("", td))
	require.NoError(t, s.Append("", build(t, base, specs...)))
	searchable(s)
	ctx := context.Background()

	ids := []traces.TraceID{traceID(2), traceID(3), traceID(1), {}, traceID(2)}
	for i := range extra {
		ids = append(ids, traceID(uint64(100+i)))
	}
	got, err := s.Traces(ctx, "", ids, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Len(t, got, len(ids))
	for i, id := range ids {
		one, err := s.Trace(ctx, "", id, time.Time{}, time.Time{})
		require.NoError(t, err)
		require.Equal(t, normalise(t, one), normalise(t, got[i]), "trace %d (%s)", i, id)
	}
	require.Equal(t, 4, got[2].SpanCount())
	require.Zero(t, got[1].SpanCount(), "unknown")
	require.Zero(t, got[3].SpanCount(), "zero ID")
	require.Equal(t, got[0].SpanCount(), got[4].SpanCount(), "asked twice")
	require.Positive(t, got[0].SpanCount())
	require.Equal(t, 1, got[len(got)-1].SpanCount(), "past the first query's IDs")

	// Bounds apply to every trace.
	got, err = s.Traces(ctx, "", []traces.TraceID{traceID(1), traceID(100)}, base.Add(20*time.Millisecond), time.Time{})
	require.NoError(t, err)
	require.Equal(t, 3, got[0].SpanCount())
	require.Zero(t, got[1].SpanCount())
}

func TestTraceDuplicatesCollapse(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	td := richTraces(t, base)
	// A redelivery, and the same span IDs again under another resource.
	require.NoError(t, s.Append("", td))
	require.NoError(t, s.Append("", td))
	again := build(t, base, spec{trace: 1, id: 2, parent: 1, service: "elsewhere", name: "SELECT again", start: 20 * time.Millisecond})
	require.NoError(t, s.Append("", again))
	searchable(s)

	got, err := s.Trace(context.Background(), "", traceID(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, 4, got.SpanCount(), "each span ID once")
	// The same copy every time.
	for range 3 {
		again, err := s.Trace(context.Background(), "", traceID(1), time.Time{}, time.Time{})
		require.NoError(t, err)
		require.Equal(t, normalise(t, got), normalise(t, again))
	}
}

func TestTenantsAreIsolated(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	ctx := context.Background()
	for i, tenant := range []string{"", "team-a", "team-b"} {
		require.NoError(t, s.Append(tenant, build(t, base, spec{trace: 7, id: uint64(i + 1), service: "svc-" + tenant, name: "op " + tenant})))
	}
	searchable(s)
	for i, tenant := range []string{"", "team-a", "team-b", "nobody"} {
		got, err := s.Trace(ctx, tenant, traceID(7), time.Time{}, time.Time{})
		require.NoError(t, err)
		hits, err := s.Search(ctx, traces.SearchParams{Tenant: tenant})
		require.NoError(t, err)
		services, err := s.Services(ctx, tenant, time.Time{}, time.Time{})
		require.NoError(t, err)
		if tenant == "nobody" {
			require.Zero(t, got.SpanCount())
			require.Empty(t, hits)
			require.Empty(t, services)
			continue
		}
		require.Equal(t, 1, got.SpanCount(), tenant)
		require.Equal(t, spanID(7, uint64(i+1)), got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SpanID())
		require.Len(t, hits, 1)
		require.Equal(t, "op "+tenant, hits[0].RootTraceName)
		require.Equal(t, []string{"svc-" + tenant}, services)
	}
}
