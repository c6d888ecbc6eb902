package spanmetrics

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.uber.org/goleak"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sample is one committed append.
type sample struct {
	ls        labels.Labels
	st, t     int64
	v         float64
	exemplars []exemplar.Exemplar
	meta      string
}

// recorder is a storage.AppendableV2 keeping what is committed.
type recorder struct {
	mu      sync.Mutex
	commits [][]sample
	tenants []string // of each commit
	fail    error
}

func (r *recorder) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &recApp{r: r, tenant: tenant.FromContext(ctx)}
}

type recApp struct {
	r      *recorder
	buf    []sample
	tenant string
}

func (a *recApp) Append(_ storage.SeriesRef, ls labels.Labels, st, t int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, opts storage.AppendV2Options) (storage.SeriesRef, error) {
	a.buf = append(a.buf, sample{ls: ls, st: st, t: t, v: v, exemplars: append([]exemplar.Exemplar(nil), opts.Exemplars...), meta: string(opts.Metadata.Type)})
	return 0, nil
}

func (a *recApp) Commit() error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	if a.r.fail != nil {
		return a.r.fail
	}
	a.r.commits = append(a.r.commits, a.buf)
	a.r.tenants = append(a.r.tenants, a.tenant)
	return nil
}

func (a *recApp) Rollback() error { return nil }

// last returns the last commit's samples by series.
func (r *recorder) last(t *testing.T) map[string]sample {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.commits, "nothing written")
	out := map[string]sample{}
	for _, s := range r.commits[len(r.commits)-1] {
		_, dup := out[s.ls.String()]
		require.False(t, dup, "series written twice in one flush: %s", s.ls)
		out[s.ls.String()] = s
	}
	return out
}

func testConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("test", flag.PanicOnError))
	return c
}

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestGenerator(t testing.TB, adjust func(*Config)) (*Generator, *recorder, *clock, *prometheus.Registry) {
	t.Helper()
	cfg := testConfig()
	if adjust != nil {
		adjust(&cfg)
	}
	rec := &recorder{}
	reg := prometheus.NewRegistry()
	g, err := New(cfg, "agg-1", rec, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	clk := &clock{t: t0}
	g.now = clk.now
	return g, rec, clk, reg
}

func traceID(n int) pcommon.TraceID { return pcommon.TraceID{0: byte(n >> 8), 1: byte(n), 15: 1} }
func spanID(n int) pcommon.SpanID   { return pcommon.SpanID{0: byte(n >> 8), 1: byte(n), 7: 1} }

// span describes one span for build.
type span struct {
	service string
	name    string
	kind    ptrace.SpanKind
	status  ptrace.StatusCode
	dur     time.Duration
	trace   int
	id      int
	parent  int // 0: none
}

// build makes a request, one resource per span (services may repeat).
func build(spans ...span) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range spans {
		rs := td.ResourceSpans().AppendEmpty()
		if s.service != "" {
			rs.Resource().Attributes().PutStr("service.name", s.service)
		}
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(traceID(s.trace))
		sp.SetSpanID(spanID(s.id))
		if s.parent != 0 {
			sp.SetParentSpanID(spanID(s.parent))
		}
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		sp.Status().SetCode(s.status)
		start := pcommon.NewTimestampFromTime(t0.Add(-time.Minute))
		sp.SetStartTimestamp(start)
		sp.SetEndTimestamp(start + pcommon.Timestamp(s.dur))
	}
	return td
}

// series formats a derived series' labels as the tests expect them.
func series(name string, kv ...string) string {
	return labels.FromStrings(append([]string{"__name__", name, LabelAggregator, "agg-1"}, kv...)...).String()
}

// Observe is ObserveWire for spans held as pdata, as the tests build them.
func (g *Generator) Observe(tenant string, td ptrace.Traces) {
	var t otlpwire.Traces
	if err := t.ReadPdata(td); err != nil {
		panic(err) // pdata marshals what it holds, and reads it back
	}
	g.ObserveWire(tenant, &t)
}
func TestConfig(t *testing.T) {
	c := testConfig()
	require.NoError(t, c.Validate())
	require.Equal(t, 15*time.Second, c.FlushInterval)
	require.Equal(t, 10000, c.MaxSeries)
	require.Equal(t, 5*time.Minute, c.StaleAfter)
	require.Equal(t, 10*time.Second, c.ServiceGraph.Wait)
	require.Equal(t, 10000, c.ServiceGraph.MaxPendingEdges)
	c.FlushInterval = 0
	c.MaxSeries = 0
	c.ServiceGraph.Wait = 0
	err := c.Validate()
	require.ErrorContains(t, err, "aggregator.spanmetrics.flush_interval")
	require.ErrorContains(t, err, "aggregator.spanmetrics.max_series")
	require.ErrorContains(t, err, "aggregator.spanmetrics.service_graph.wait")
	_, err = New(c, "x", &recorder{}, slog.New(slog.DiscardHandler), nil)
	require.Error(t, err)
	_, err = New(testConfig(), "", &recorder{}, slog.New(slog.DiscardHandler), nil)
	require.ErrorContains(t, err, "instance ID")
}

func TestSpanMetricsCounts(t *testing.T) {
	g, rec, clk, reg := newTestGenerator(t, nil)
	// Two requests: counts add up across them.
	g.Observe("", build(
		span{service: "cart", name: "GET /cart", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 1, id: 1},
		span{service: "cart", name: "GET /cart", kind: ptrace.SpanKindServer, dur: 3 * time.Millisecond, trace: 1, id: 2},
		span{service: "cart", name: "GET /cart", kind: ptrace.SpanKindServer, status: ptrace.StatusCodeError, dur: time.Second, trace: 2, id: 3},
		span{service: "", name: "work", kind: ptrace.SpanKindInternal, status: ptrace.StatusCodeOk, dur: 20 * time.Second, trace: 3, id: 4},
	))
	clk.add(time.Second)
	g.Observe("", build(span{service: "cart", name: "GET /cart", kind: ptrace.SpanKindServer, dur: 2 * time.Millisecond, trace: 4, id: 5}))
	clk.add(time.Second)
	g.flush(context.Background(), clk.now())

	got := rec.last(t)
	ok := []string{"service", "cart", "span_kind", "SPAN_KIND_SERVER", "span_name", "GET /cart", "status_code", "STATUS_CODE_UNSET"}
	calls := got[series(MetricCalls, ok...)]
	require.InDelta(t, 3, calls.v, 0)
	require.Equal(t, t0.UnixMilli(), calls.st, "start: when the series appeared")
	require.Equal(t, t0.Add(2*time.Second).UnixMilli(), calls.t)
	require.Equal(t, "counter", calls.meta)
	require.InDelta(t, 1, got[series(MetricCalls, "service", "cart", "span_kind", "SPAN_KIND_SERVER", "span_name", "GET /cart", "status_code", "STATUS_CODE_ERROR")].v, 0)
	require.InDelta(t, 1, got[series(MetricCalls, "service", UnknownService, "span_kind", "SPAN_KIND_INTERNAL", "span_name", "work", "status_code", "STATUS_CODE_OK")].v, 0)

	// Buckets are cumulative: 1 ms and 2 ms in le=0.002, 3 ms in 0.004.
	bucket := func(le string, kv ...string) float64 {
		s, ok := got[series(MetricLatency+"_bucket", append(kv, "le", le)...)]
		require.True(t, ok, "bucket %s", le)
		require.Equal(t, "histogram", s.meta)
		return s.v
	}
	require.InDelta(t, 2, bucket("0.002", ok...), 0)
	require.InDelta(t, 3, bucket("0.004", ok...), 0)
	require.InDelta(t, 3, bucket("16.384", ok...), 0)
	require.InDelta(t, 3, bucket("+Inf", ok...), 0)
	require.InDelta(t, 0.006, got[series(MetricLatency+"_sum", ok...)].v, 1e-9)
	require.InDelta(t, 3, got[series(MetricLatency+"_count", ok...)].v, 0)
	internal := []string{"service", UnknownService, "span_kind", "SPAN_KIND_INTERNAL", "span_name", "work", "status_code", "STATUS_CODE_OK"}
	require.InDelta(t, 0, bucket("16.384", internal...), 0, "20 s is over the last bound")
	require.InDelta(t, 1, bucket("+Inf", internal...), 0)
	// 3 combinations × (calls + 15 buckets + sum + count).
	require.Len(t, got, 3*18)
	require.InDelta(t, 5, testutil.ToFloat64(g.m.spans), 0)

	// Cumulative: the next flush adds to the totals.
	g.Observe("", build(span{service: "cart", name: "GET /cart", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 5, id: 6}))
	g.flush(context.Background(), clk.now())
	got = rec.last(t)
	require.InDelta(t, 4, got[series(MetricCalls, ok...)].v, 0)
	require.InDelta(t, 3, bucket("0.002", ok...), 0)
	_ = reg
}

func TestSpanMetricsBuckets(t *testing.T) {
	require.Len(t, LatencyBuckets, 14)
	for i := 1; i < len(LatencyBuckets); i++ {
		require.InDelta(t, 2*LatencyBuckets[i-1], LatencyBuckets[i], 1e-12)
	}
	h := newHistogram(LatencyBuckets)
	for _, c := range []struct {
		v      float64
		bucket int
	}{{0, 0}, {0.002, 0}, {0.0021, 1}, {16.384, 13}, {16.385, 14}, {math.Inf(1), 14}} {
		require.Equal(t, c.bucket, h.observe(c.v), "%v", c.v)
	}
}

func TestSpanMetricsExemplars(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, nil)
	g.Observe("", build(
		span{service: "cart", name: "op", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 1, id: 1},
		span{service: "cart", name: "op", kind: ptrace.SpanKindServer, dur: 300 * time.Millisecond, trace: 7, id: 9},
	))
	g.flush(context.Background(), clk.now())
	got := rec.last(t)
	kv := []string{"service", "cart", "span_kind", "SPAN_KIND_SERVER", "span_name", "op", "status_code", "STATUS_CODE_UNSET"}
	want := labels.FromStrings("span_id", spanID(9).String(), "trace_id", traceID(7).String())
	calls := got[series(MetricCalls, kv...)]
	require.Len(t, calls.exemplars, 1, "the last span")
	require.Equal(t, want, calls.exemplars[0].Labels)
	require.InDelta(t, 1, calls.exemplars[0].Value, 0)
	require.True(t, calls.exemplars[0].HasTs)
	require.Equal(t, t0.UnixMilli(), calls.exemplars[0].Ts)
	// On the histogram, in the 300 ms span's bucket (le=0.512) only.
	for name, s := range got {
		if s.ls.Get(labels.MetricName) != MetricLatency+"_bucket" {
			continue
		}
		if s.ls.Get("le") == "0.512" {
			require.Len(t, s.exemplars, 1)
			require.Equal(t, want, s.exemplars[0].Labels)
			require.InDelta(t, 0.3, s.exemplars[0].Value, 1e-9)
			continue
		}
		require.Empty(t, s.exemplars, name)
	}
	// Nothing new: no exemplar the next time.
	clk.add(15 * time.Second)
	g.flush(context.Background(), clk.now())
	for _, s := range rec.last(t) {
		require.Empty(t, s.exemplars)
	}
}

// Tenants other than the default one are a label, so their services
// never merge.
func TestSpanMetricsTenants(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, nil)
	s := span{service: "cart", name: "op", kind: ptrace.SpanKindClient, dur: time.Millisecond, trace: 1, id: 1}
	g.Observe("", build(s))
	g.Observe("team-a", build(s, s))
	g.flush(context.Background(), clk.now())
	// One transaction per tenant, written as that tenant's.
	byTenant := rec.byTenant()
	require.Len(t, byTenant, 2)
	kv := []string{"service", "cart", "span_kind", "SPAN_KIND_CLIENT", "span_name", "op", "status_code", "STATUS_CODE_UNSET"}
	require.InDelta(t, 1, byTenant[tenant.Default][series(MetricCalls, kv...)].v, 0)
	require.NotContains(t, byTenant[tenant.Default], series(MetricCalls, append(kv, LabelTenant, "team-a")...))
	require.InDelta(t, 2, byTenant["team-a"][series(MetricCalls, append(kv, LabelTenant, "team-a")...)].v, 0)
	require.NotContains(t, byTenant["team-a"], series(MetricCalls, kv...))
}

func TestSpanMetricsOverflow(t *testing.T) {
	g, rec, clk, reg := newTestGenerator(t, func(c *Config) { c.MaxSeries = 2 })
	for i := range 5 {
		g.Observe("", build(span{service: "svc", name: fmt.Sprintf("op-%d", i), kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: i, id: i}))
	}
	// A known combination still counts in its own series.
	g.Observe("", build(span{service: "svc", name: "op-0", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 9, id: 9}))
	g.flush(context.Background(), clk.now())
	got := rec.last(t)
	kv := func(name string) []string {
		return []string{"service", "svc", "span_kind", "SPAN_KIND_SERVER", "span_name", name, "status_code", "STATUS_CODE_UNSET"}
	}
	require.InDelta(t, 2, got[series(MetricCalls, kv("op-0")...)].v, 0)
	require.InDelta(t, 1, got[series(MetricCalls, kv("op-1")...)].v, 0)
	require.NotContains(t, got, series(MetricCalls, kv("op-2")...))
	over := got[series(MetricCalls, LabelOverflow, "true")]
	require.InDelta(t, 3, over.v, 0)
	require.InDelta(t, 3, got[series(MetricLatency+"_count", LabelOverflow, "true")].v, 0)
	require.Len(t, got, 3*18)
	require.InDelta(t, 3, testutil.ToFloat64(g.m.overflowSpans), 0)
	require.InDelta(t, 2, gauge(t, reg, "pharos_spanmetrics_active_series", "spanmetrics"), 0)
}

// A tenant's max_span_metrics_series sends its new combinations to its
// own overflow series; other tenants keep theirs.
func TestSpanMetricsTenantLimit(t *testing.T) {
	g, rec, clk, reg := newTestGenerator(t, nil)
	d := overrides.NewDiscards(reg, "aggregator")
	g.SetTenantLimit(func(id string) int {
		if id == "small" {
			return 2
		}
		return 0
	}, d)
	for i := range 4 {
		sp := span{service: "svc", name: fmt.Sprintf("op-%d", i), kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: i, id: i}
		g.Observe("small", build(sp))
		g.Observe("", build(sp))
	}
	g.flush(context.Background(), clk.now())
	byTenant := rec.byTenant()
	kv := func(name string, extra ...string) []string {
		return append([]string{"service", "svc", "span_kind", "SPAN_KIND_SERVER", "span_name", name, "status_code", "STATUS_CODE_UNSET"}, extra...)
	}
	small := byTenant["small"]
	require.Contains(t, small, series(MetricCalls, kv("op-1", LabelTenant, "small")...))
	require.NotContains(t, small, series(MetricCalls, kv("op-2", LabelTenant, "small")...))
	require.InDelta(t, 2, small[series(MetricCalls, LabelOverflow, "true", LabelTenant, "small")].v, 0)
	def := byTenant[tenant.Default]
	require.Contains(t, def, series(MetricCalls, kv("op-3")...), "the default tenant has no limit")
	require.NotContains(t, def, series(MetricCalls, LabelOverflow, "true"))
	require.InDelta(t, 2, testutil.ToFloat64(g.m.overflowSpans), 0)
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var limited float64
	for _, mf := range mfs {
		if mf.GetName() == "pharos_aggregator_tenant_limited_total" {
			limited = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	require.InDelta(t, 2, limited, 0)

	// Once the tenant's series go stale, new ones fit again.
	clk.t = clk.t.Add(testConfig().StaleAfter + time.Minute)
	g.flush(context.Background(), clk.now())
	g.Observe("small", build(span{service: "svc", name: "op-9", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 9, id: 9}))
	g.mu.Lock()
	require.Equal(t, 1, g.perTenant["small"])
	g.mu.Unlock()
}

// byTenant returns the samples of every commit by tenant, keyed by their
// labels.
func (r *recorder) byTenant() map[string]map[string]sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[string]sample{}
	for i, c := range r.commits {
		m := map[string]sample{}
		for _, smp := range c {
			m[smp.ls.String()] = smp
		}
		out[r.tenants[i]] = m
	}
	return out
}

func gauge(t *testing.T, reg *prometheus.Registry, name, processor string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == processor {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{%s} not found", name, processor)
	return 0
}

// Series idle for StaleAfter are marked stale once and dropped; a span
// afterwards starts the series again from zero.
func TestSpanMetricsStaleness(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, nil)
	old := span{service: "svc", name: "old", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 1, id: 1}
	live := span{service: "svc", name: "live", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 2, id: 2}
	g.Observe("", build(old, live))
	g.flush(context.Background(), clk.now())
	for range 20 { // 5 minutes of flushes, "live" kept busy
		clk.add(15 * time.Second)
		g.Observe("", build(live))
		g.flush(context.Background(), clk.now())
	}
	clk.add(15 * time.Second)
	g.flush(context.Background(), clk.now())
	got := rec.last(t)
	oldKV := []string{"service", "svc", "span_kind", "SPAN_KIND_SERVER", "span_name", "old", "status_code", "STATUS_CODE_UNSET"}
	stale := 0
	for _, s := range got {
		if s.ls.Get("span_name") == "old" {
			require.True(t, value.IsStaleNaN(s.v), s.ls.String())
			stale++
		}
	}
	require.Equal(t, 18, stale, "every series of the combination")
	require.InDelta(t, 21, got[series(MetricCalls, "service", "svc", "span_kind", "SPAN_KIND_SERVER", "span_name", "live", "status_code", "STATUS_CODE_UNSET")].v, 0)
	require.InDelta(t, 1, testutil.ToFloat64(g.m.staleSeries.WithLabelValues("spanmetrics")), 0)

	clk.add(15 * time.Second)
	g.flush(context.Background(), clk.now())
	require.NotContains(t, rec.last(t), series(MetricCalls, oldKV...), "dropped")
	g.Observe("", build(old))
	g.flush(context.Background(), clk.now())
	again := rec.last(t)[series(MetricCalls, oldKV...)]
	require.InDelta(t, 1, again.v, 0)
	require.Equal(t, clk.now().UnixMilli(), again.st, "a new start time")
}

// edge returns the service graph samples of client → server.
func edge(got map[string]sample, name, client, server string, kv ...string) (float64, bool) {
	s, ok := got[series(name, append([]string{"client", client, "server", server}, kv...)...)]
	return s.v, ok
}

func TestServiceGraphPairs(t *testing.T) {
	clientSpan := func(trace, id int, status ptrace.StatusCode) span {
		return span{service: "frontend", name: "GET", kind: ptrace.SpanKindClient, status: status, dur: 300 * time.Millisecond, trace: trace, id: id}
	}
	serverSpan := func(trace, id, parent int, status ptrace.StatusCode) span {
		return span{service: "cart", name: "GET", kind: ptrace.SpanKindServer, status: status, dur: 150 * time.Millisecond, trace: trace, id: id, parent: parent}
	}
	g, rec, clk, reg := newTestGenerator(t, nil)
	// Client first, server in a later call.
	g.Observe("", build(clientSpan(1, 1, ptrace.StatusCodeUnset)))
	clk.add(time.Second)
	g.Observe("", build(serverSpan(1, 2, 1, ptrace.StatusCodeUnset)))
	// Server first (and failed), client later.
	g.Observe("", build(serverSpan(2, 4, 3, ptrace.StatusCodeError)))
	clk.add(time.Second)
	g.Observe("", build(clientSpan(2, 3, ptrace.StatusCodeUnset)))
	// Both in one call.
	g.Observe("", build(clientSpan(3, 5, ptrace.StatusCodeError), serverSpan(3, 6, 5, ptrace.StatusCodeUnset)))
	// A server span of the same trace whose parent is another span: not paired.
	g.Observe("", build(serverSpan(3, 7, 99, ptrace.StatusCodeUnset)))
	// A root server span: nothing to pair.
	g.Observe("", build(serverSpan(4, 8, 0, ptrace.StatusCodeUnset)))
	// Producer → consumer.
	g.Observe("", build(span{service: "orders", name: "publish", kind: ptrace.SpanKindProducer, dur: time.Millisecond, trace: 5, id: 9}))
	g.Observe("", build(span{service: "billing", name: "process", kind: ptrace.SpanKindConsumer, dur: 2 * time.Second, trace: 5, id: 10, parent: 9}))
	g.flush(context.Background(), clk.now())

	got := rec.last(t)
	v, ok := edge(got, MetricGraphRequests, "frontend", "cart")
	require.True(t, ok)
	require.InDelta(t, 3, v, 0)
	v, _ = edge(got, MetricGraphFailed, "frontend", "cart")
	require.InDelta(t, 2, v, 0, "failed on either side")
	v, _ = edge(got, MetricGraphServerSeconds+"_bucket", "frontend", "cart", "le", "0.1")
	require.InDelta(t, 0, v, 0)
	v, _ = edge(got, MetricGraphServerSeconds+"_bucket", "frontend", "cart", "le", "0.2")
	require.InDelta(t, 3, v, 0)
	v, _ = edge(got, MetricGraphClientSeconds+"_bucket", "frontend", "cart", "le", "0.2")
	require.InDelta(t, 0, v, 0)
	v, _ = edge(got, MetricGraphClientSeconds+"_bucket", "frontend", "cart", "le", "0.4")
	require.InDelta(t, 3, v, 0)
	v, _ = edge(got, MetricGraphClientSeconds+"_sum", "frontend", "cart")
	require.InDelta(t, 0.9, v, 1e-9)
	total := got[series(MetricGraphRequests, "client", "frontend", "server", "cart")]
	require.Len(t, total.exemplars, 1)
	require.Equal(t, traceID(3).String(), total.exemplars[0].Labels.Get("trace_id"))

	v, ok = edge(got, MetricGraphRequests, "orders", "billing", "connection_type", "messaging_system")
	require.True(t, ok)
	require.InDelta(t, 1, v, 0)
	v, _ = edge(got, MetricGraphServerSeconds+"_bucket", "orders", "billing", "connection_type", "messaging_system", "le", "1.6")
	require.InDelta(t, 0, v, 0)
	v, _ = edge(got, MetricGraphServerSeconds+"_count", "orders", "billing", "connection_type", "messaging_system")
	require.InDelta(t, 1, v, 0)

	// 2 edges × (2 counters + 2 × (8 buckets + +Inf + sum + count)).
	edges := 0
	for _, s := range got {
		if s.ls.Get("client") != "" {
			edges++
		}
	}
	require.Equal(t, 2*(2+2*11), edges)
	require.InDelta(t, 4, testutil.ToFloat64(g.m.pairedEdges), 0)
	// The unparented server span waits.
	require.InDelta(t, 1, testutil.ToFloat64(g.m.pending), 0)
	_ = reg
}

func TestServiceGraphExpiry(t *testing.T) {
	g, rec, clk, reg := newTestGenerator(t, nil)
	g.Observe("", build(span{service: "frontend", kind: ptrace.SpanKindClient, trace: 1, id: 1}))
	g.Observe("", build(span{service: "cart", kind: ptrace.SpanKindServer, trace: 2, id: 3, parent: 2}))
	clk.add(9 * time.Second)
	g.Observe("", build(span{service: "frontend", kind: ptrace.SpanKindClient, trace: 3, id: 4}))
	clk.add(2 * time.Second) // the first two waited 11 s, the third 2 s
	g.flush(context.Background(), clk.now())
	require.InDelta(t, 2, testutil.ToFloat64(g.m.expiredEdges), 0)
	require.InDelta(t, 1, testutil.ToFloat64(g.m.pending), 0)

	// The other half of an expired edge does not pair; that of the
	// waiting one does.
	g.Observe("", build(span{service: "cart", kind: ptrace.SpanKindServer, trace: 1, id: 5, parent: 1}))
	g.Observe("", build(span{service: "cart", kind: ptrace.SpanKindServer, trace: 3, id: 6, parent: 4}))
	g.flush(context.Background(), clk.now())
	v, ok := edge(rec.last(t), MetricGraphRequests, "frontend", "cart")
	require.True(t, ok)
	require.InDelta(t, 1, v, 0)
	require.InDelta(t, 1, testutil.ToFloat64(g.m.pending), 0, "trace 1's server half waits now")

	// Observe sweeps too, at most once a second.
	clk.add(11 * time.Second)
	g.Observe("", build(span{service: "x", kind: ptrace.SpanKindInternal, trace: 9, id: 9}))
	require.InDelta(t, 3, testutil.ToFloat64(g.m.expiredEdges), 0)
	_ = reg
}

func TestServiceGraphLimits(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, func(c *Config) {
		c.ServiceGraph.MaxPendingEdges = 2
		c.ServiceGraph.MaxSeries = 1
	})
	for i := range 3 {
		g.Observe("", build(span{service: "a", kind: ptrace.SpanKindClient, trace: i, id: i + 1}))
	}
	require.InDelta(t, 1, testutil.ToFloat64(g.m.droppedEdges), 0)
	// Two edges of different services: the second overflows.
	g.Observe("", build(span{service: "b", kind: ptrace.SpanKindServer, trace: 0, id: 10, parent: 1}))
	g.Observe("", build(span{service: "c", kind: ptrace.SpanKindServer, trace: 1, id: 11, parent: 2}))
	g.flush(context.Background(), clk.now())
	got := rec.last(t)
	v, ok := edge(got, MetricGraphRequests, "a", "b")
	require.True(t, ok)
	require.InDelta(t, 1, v, 0)
	over, ok := got[series(MetricGraphRequests, LabelOverflow, "true")]
	require.True(t, ok)
	require.InDelta(t, 1, over.v, 0)
	require.InDelta(t, 1, testutil.ToFloat64(g.m.overflowEdges), 0)
}

// Turning a processor off leaves its series out.
func TestProcessorsSwitch(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, func(c *Config) { c.Enabled = false })
	g.Observe("", build(
		span{service: "a", kind: ptrace.SpanKindClient, trace: 1, id: 1},
		span{service: "b", kind: ptrace.SpanKindServer, trace: 1, id: 2, parent: 1},
	))
	g.flush(context.Background(), clk.now())
	for _, s := range rec.last(t) {
		require.NotContains(t, s.ls.Get(labels.MetricName), "spanmetrics")
	}
	g, rec, clk, _ = newTestGenerator(t, func(c *Config) { c.ServiceGraph.Enabled = false })
	g.Observe("", build(
		span{service: "a", kind: ptrace.SpanKindClient, trace: 1, id: 1},
		span{service: "b", kind: ptrace.SpanKindServer, trace: 1, id: 2, parent: 1},
	))
	g.flush(context.Background(), clk.now())
	for _, s := range rec.last(t) {
		require.NotContains(t, s.ls.Get(labels.MetricName), "service_graph")
	}
}

// A failed commit is counted; the next flush writes the totals again.
func TestFlushFailure(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, nil)
	g.Observe("", build(span{service: "a", name: "op", kind: ptrace.SpanKindServer, trace: 1, id: 1}))
	rec.fail = errors.New("bus down")
	g.flush(context.Background(), clk.now())
	require.InDelta(t, 1, testutil.ToFloat64(g.m.flushFailures), 0)
	rec.mu.Lock()
	rec.fail = nil
	rec.mu.Unlock()
	clk.add(15 * time.Second)
	g.flush(context.Background(), clk.now())
	require.InDelta(t, 1, rec.last(t)[series(MetricCalls, "service", "a", "span_kind", "SPAN_KIND_SERVER", "span_name", "op", "status_code", "STATUS_CODE_UNSET")].v, 0)
}

// The service writes what it counted when it stops.
func TestServiceFlushesOnStop(t *testing.T) {
	g, rec, _, _ := newTestGenerator(t, nil)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), g))
	g.Observe("", build(span{service: "a", name: "op", kind: ptrace.SpanKindServer, trace: 1, id: 1}))
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), g))
	require.InDelta(t, 1, rec.last(t)[series(MetricCalls, "service", "a", "span_kind", "SPAN_KIND_SERVER", "span_name", "op", "status_code", "STATUS_CODE_UNSET")].v, 0)
}

// Observe and flush run concurrently (the consumers and the service).
func TestConcurrentObserve(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, nil)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 250 {
				g.Observe("", build(
					span{service: "a", name: "op", kind: ptrace.SpanKindClient, trace: w*1000 + i, id: 1},
					span{service: "b", name: "op", kind: ptrace.SpanKindServer, trace: w*1000 + i, id: 2, parent: 1},
				))
			}
		})
	}
	for range 10 {
		g.flush(context.Background(), clk.now())
	}
	wg.Wait()
	g.flush(context.Background(), clk.now())
	got := rec.last(t)
	require.InDelta(t, 1000, got[series(MetricCalls, "service", "a", "span_kind", "SPAN_KIND_CLIENT", "span_name", "op", "status_code", "STATUS_CODE_UNSET")].v, 0)
	v, _ := edge(got, MetricGraphRequests, "a", "b")
	require.InDelta(t, 1000, v, 0)
}

// BenchmarkObserve feeds 1000-span requests (20 services × 10 span names,
// client/server pairs) through both processors.
func BenchmarkObserve(b *testing.B) {
	g, _, _, _ := newTestGenerator(b, nil)
	reqs := make([]ptrace.Traces, 16)
	for r := range reqs {
		var spans []span
		for i := range 500 {
			tr := r*1000 + i
			spans = append(spans,
				span{service: fmt.Sprintf("svc-%d", i%20), name: fmt.Sprintf("op-%d", i%10), kind: ptrace.SpanKindClient, dur: time.Duration(i) * time.Millisecond, trace: tr, id: 1},
				span{service: fmt.Sprintf("svc-%d", (i+1)%20), name: fmt.Sprintf("op-%d", i%10), kind: ptrace.SpanKindServer, dur: time.Duration(i) * time.Millisecond, trace: tr, id: 2, parent: 1})
		}
		reqs[r] = build(spans...)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		g.Observe("", reqs[i%len(reqs)])
		i++
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkFlush writes 1000 span-metrics combinations and 400 edges.
func BenchmarkFlush(b *testing.B) {
	g, _, clk, _ := newTestGenerator(b, nil)
	g.app = discard{}
	var spans []span
	for i := range 1000 {
		spans = append(spans,
			span{service: fmt.Sprintf("svc-%d", i%20), name: fmt.Sprintf("op-%d", i%50), kind: ptrace.SpanKindClient, trace: i, id: 1},
			span{service: fmt.Sprintf("svc-%d", i%20), name: fmt.Sprintf("op-%d", i%50), kind: ptrace.SpanKindServer, trace: i, id: 2, parent: 1})
	}
	g.Observe("", build(spans...))
	b.ReportAllocs()
	for b.Loop() {
		g.flush(context.Background(), clk.now())
	}
}

type discard struct{}

func (discard) AppenderV2(context.Context) storage.AppenderV2 { return discardApp{} }

type discardApp struct{}

func (discardApp) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AppendV2Options) (storage.SeriesRef, error) {
	return 0, nil
}
func (discardApp) Commit() error   { return nil }
func (discardApp) Rollback() error { return nil }

// ObserveWire keeps no string of the message: the aggregator reuses its
// buffer for the next one while series and half edges live on.
func TestObserveWireCopies(t *testing.T) {
	g, rec, clk, _ := newTestGenerator(t, nil)
	observe := func(spans ...span) {
		wire, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(build(spans...))
		require.NoError(t, err)
		var tr otlpwire.Traces
		require.NoError(t, tr.Read(wire))
		g.ObserveWire("", &tr)
		for i := range wire {
			wire[i] = 'X'
		}
	}
	observe(span{service: "frontend", name: "GET /a", kind: ptrace.SpanKindClient, dur: time.Millisecond, trace: 1, id: 1})
	clk.add(time.Second)
	observe(span{service: "cart", name: "GET /b", kind: ptrace.SpanKindServer, dur: time.Millisecond, trace: 1, id: 2, parent: 1})
	g.flush(context.Background(), clk.now())
	got := rec.last(t)
	require.InDelta(t, 1, got[series(MetricCalls, "service", "frontend", "span_kind", "SPAN_KIND_CLIENT", "span_name", "GET /a", "status_code", "STATUS_CODE_UNSET")].v, 0)
	require.InDelta(t, 1, got[series(MetricCalls, "service", "cart", "span_kind", "SPAN_KIND_SERVER", "span_name", "GET /b", "status_code", "STATUS_CODE_UNSET")].v, 0)
	v, ok := edge(got, MetricGraphRequests, "frontend", "cart")
	require.True(t, ok, "the edge, with both services' names intact")
	require.InDelta(t, 1, v, 0)
}

func TestIntern(t *testing.T) {
	g, _, _, _ := newTestGenerator(t, nil)
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.intern(string([]byte("svc")))
	require.Equal(t, "svc", a)
	require.Equal(t, unsafe.StringData(a), unsafe.StringData(g.intern(string([]byte("svc")))), "the same copy")
	for i := range maxInterned + 1 {
		g.intern(fmt.Sprint(i))
	}
	require.LessOrEqual(t, len(g.serviceNames), maxInterned, "bounded")
}
