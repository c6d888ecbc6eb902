package aggregator_test

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/aggregator/spanmetrics"
	"github.com/pharos-obs/pharos/collector/publish"
	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/internal/testutil"
	"github.com/pharos-obs/pharos/storage/logs"
)

// fakeTraces is a TracesStore in memory. WaitDurable blocks while hold is
// set; Append fails while failAppends > 0.
type fakeTraces struct {
	mu          sync.Mutex
	appends     []tracesAppend
	failAppends int
	waits       int
	hold        chan struct{}
}

type tracesAppend struct {
	tenant string
	spans  map[pcommon.SpanID]pcommon.TraceID
}

func (f *fakeTraces) Append(tenant string, td ptrace.Traces) error {
	var t otlpwire.Traces
	if err := t.ReadPdata(td); err != nil {
		return err
	}
	return f.AppendWire(tenant, &t)
}

// AppendWire records t's spans; the aggregator stores through it.
func (f *fakeTraces) AppendWire(tenant string, t *otlpwire.Traces) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAppends > 0 {
		f.failAppends--
		return errors.New("disk full")
	}
	a := tracesAppend{tenant: tenant, spans: map[pcommon.SpanID]pcommon.TraceID{}}
	for _, sp := range t.Spans {
		a.spans[sp.SpanID] = sp.TraceID
	}
	f.appends = append(f.appends, a)
	return nil
}

func (f *fakeTraces) WaitDurable(ctx context.Context) error {
	f.mu.Lock()
	hold := f.hold
	f.waits++
	f.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// spans returns the span IDs stored, by tenant.
func (f *fakeTraces) spans() map[string]map[pcommon.SpanID]pcommon.TraceID {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]map[pcommon.SpanID]pcommon.TraceID{}
	for _, a := range f.appends {
		if out[a.tenant] == nil {
			out[a.tenant] = map[pcommon.SpanID]pcommon.TraceID{}
		}
		for s, tr := range a.spans {
			out[a.tenant][s] = tr
		}
	}
	return out
}

func eachSpan(td ptrace.Traces, fn func(service string, sp ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
		for j := range rss.At(i).ScopeSpans().Len() {
			spans := rss.At(i).ScopeSpans().At(j).Spans()
			for k := range spans.Len() {
				fn(svc.Str(), spans.At(k))
			}
		}
	}
}

// nopMetrics is a MetricsStore that keeps nothing: these tests are about
// traces.
type nopMetrics struct{}

func (nopMetrics) AppenderV2(context.Context) storage.AppenderV2 { return nopAppender{} }
func (nopMetrics) SetMetadata(string, string, metadata.Metadata) {}

type nopAppender struct{}

func (nopAppender) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AppendV2Options) (storage.SeriesRef, error) {
	return 0, nil
}
func (nopAppender) Commit() error   { return nil }
func (nopAppender) Rollback() error { return nil }

type tracesFixture struct {
	conn       *bus.Conn
	partitions int
	store      *fakeTraces
	reg        *prometheus.Registry
}

func newTracesFixture(t *testing.T, partitions, replicas int) *tracesFixture {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	srv := testutil.StartNATS(t)
	cfg := bus.DefaultConfig()
	cfg.Partitions = partitions
	cfg.Consumer.AckWait = 2 * time.Second
	cfg.Consumer.Replicas = replicas
	cfg.Stream.MaxBytes = 64 << 20
	conn, err := bus.Connect(cfg, srv, "test", logger, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, conn.EnsureStreams(ctx, bus.Signals...))
	return &tracesFixture{conn: conn, partitions: partitions, store: &fakeTraces{}, reg: prometheus.NewRegistry()}
}

// start runs an aggregator consuming traces into the fake store, owning
// owned (nil: replica 0 of every partition).
func (f *tracesFixture) start(t *testing.T, owned []aggregator.PartitionReplica, observers ...aggregator.TracesObserver) *aggregator.Aggregator {
	t.Helper()
	agg, err := aggregator.New(aggregator.Config{MaxDecodedBytes: 8 << 20, SeriesCacheSize: 1000}, f.partitions,
		f.conn.ConsumePartition, f.conn.DeadLetter, nopMetrics{}, slog.New(slog.DiscardHandler), f.reg)
	require.NoError(t, err)
	agg.WithTraces(f.store, f.reg, observers...)
	if owned != nil {
		agg.SetOwned(owned)
	}
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), agg))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), agg)) })
	return agg
}

func (f *tracesFixture) publisher(t *testing.T, agent string) *publish.Traces {
	t.Helper()
	cfg := publish.Config{Compression: "zstd", Concurrency: 4, MaxBatchSamples: 1, FlushInterval: time.Second, QueueSize: 1,
		DrainTimeout: 10 * time.Second, TracesBatchWait: 5 * time.Millisecond}
	tp, err := publish.NewTraces(cfg, spool.Config{MaxBytes: 64 << 20, SegmentBytes: 1 << 20}, t.TempDir(), f.partitions, agent, f.conn.Publish, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), tp))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), tp)) })
	return tp
}

func tid(n int) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], uint64(n)*0x9e3779b97f4a7c15)
	binary.BigEndian.PutUint64(id[8:], uint64(n)+1)
	return id
}

func sid(n int) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], uint64(n)+1)
	return id
}

// spansOf builds a request of service svc with one span per (trace, span
// ID) pair.
func spansOf(svc string, kind ptrace.SpanKind, pairs ...[2]int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	ss := rs.ScopeSpans().AppendEmpty()
	for _, p := range pairs {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(tid(p[0]))
		sp.SetSpanID(sid(p[1]))
		sp.SetKind(kind)
		sp.SetName("op")
		sp.SetStartTimestamp(1_000_000_000)
		sp.SetEndTimestamp(1_050_000_000)
	}
	return td
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Poll(t, 30*time.Second, 10*time.Millisecond, func() (bool, string) { return cond(), what })
}

func counter(t *testing.T, reg *prometheus.Registry, name string, kv ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(kv); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == kv[i] && lp.GetValue() == kv[i+1])
				}
				if !found {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// Publisher → NATS → aggregator: the spans of one trace, sent by two
// agents in two requests, all reach the aggregator that owns the trace's
// one partition, and are acknowledged once durable; spans of traces on
// other partitions do not.
func TestTracesPipelineOneTraceOnePartition(t *testing.T) {
	const partitions = 4
	f := newTracesFixture(t, partitions, 1)
	mine := codec.TracePartition(tid(1), partitions)
	other := 2
	for codec.TracePartition(tid(other), partitions) == mine {
		other++
	}
	var (
		obsMu    sync.Mutex
		observed int
	)
	f.start(t, []aggregator.PartitionReplica{{Partition: mine}}, func(_ string, t *otlpwire.Traces) {
		obsMu.Lock()
		observed += len(t.Spans)
		obsMu.Unlock()
	})
	ctx := context.Background()
	// Agent 1 has the client spans of trace 1 and a span of another trace;
	// agent 2 the server span of trace 1, later.
	client := spansOf("frontend", ptrace.SpanKindClient, [2]int{1, 10}, [2]int{1, 11}, [2]int{other, 12})
	require.NoError(t, f.publisher(t, "agent-1").PushTraces(ctx, "team-a", client))
	server := spansOf("cart", ptrace.SpanKindServer, [2]int{1, 20})
	require.NoError(t, f.publisher(t, "agent-2").PushTraces(ctx, "team-a", server))

	poll(t, "the three spans of trace 1 stored", func() bool { return len(f.store.spans()["team-a"]) == 3 })
	got := f.store.spans()["team-a"]
	for _, s := range []int{10, 11, 20} {
		require.Equal(t, tid(1), got[sid(s)], "span %d", s)
	}
	require.NotContains(t, got, sid(12), "another partition's span")
	// Acknowledged: nothing left pending on the owned partition.
	poll(t, "acked", func() bool {
		lag, err := f.conn.ConsumerLag(ctx, bus.SignalTraces, bus.DurableName(bus.SignalTraces, mine, 0))
		return err == nil && lag == 0
	})
	require.InDelta(t, 3, counter(t, f.reg, "pharos_aggregator_spans_appended_total"), 0)
	obsMu.Lock()
	require.Equal(t, 3, observed, "observers see what was stored")
	obsMu.Unlock()
	// The other trace waits on its own partition.
	lag, err := f.conn.ConsumerLag(ctx, bus.SignalTraces, bus.DurableName(bus.SignalTraces, codec.TracePartition(tid(other), partitions), 0))
	require.NoError(t, err)
	require.EqualValues(t, 1, lag)
}

// Messages are acknowledged only after WaitDurable returns.
func TestTracesAckAfterDurable(t *testing.T) {
	f := newTracesFixture(t, 1, 1)
	hold := make(chan struct{})
	f.store.hold = hold
	f.start(t, nil)
	ctx := context.Background()
	tp := f.publisher(t, "a")
	for i := range 3 {
		require.NoError(t, tp.PushTraces(ctx, "", spansOf("svc", ptrace.SpanKindInternal, [2]int{i, i})))
	}
	poll(t, "stored, with the default tenant as \"\"", func() bool { return len(f.store.spans()[""]) == 3 })
	poll(t, "waiting for durability", func() bool {
		return counter(t, f.reg, "pharos_aggregator_trace_messages_awaiting_durability") > 0
	})
	lag, err := f.conn.ConsumerLag(ctx, bus.SignalTraces, bus.DurableName(bus.SignalTraces, 0, 0))
	require.NoError(t, err)
	require.NotZero(t, lag, "not acked before the store is durable")
	close(hold)
	poll(t, "acked once durable", func() bool {
		lag, err := f.conn.ConsumerLag(ctx, bus.SignalTraces, bus.DurableName(bus.SignalTraces, 0, 0))
		return err == nil && lag == 0
	})
	poll(t, "nothing awaiting", func() bool {
		return counter(t, f.reg, "pharos_aggregator_trace_messages_awaiting_durability") == 0
	})
}

// An undecodable message goes to the dead-letter stream; a failed append
// is redelivered and stored.
func TestTracesDeadLetterAndRedelivery(t *testing.T) {
	f := newTracesFixture(t, 1, 1)
	f.store.failAppends = 1
	f.start(t, nil)
	ctx := context.Background()
	require.NoError(t, f.conn.Publish(ctx, &bus.OutMsg{Signal: bus.SignalTraces, Encoding: codec.EncodingOTLPTracesSnappy, ID: "garbage", Data: []byte("not snappy")}))
	require.NoError(t, f.conn.Publish(ctx, &bus.OutMsg{Signal: bus.SignalTraces, Encoding: "otlp-traces+lz4", ID: "unknown", Data: []byte("x")}))
	require.NoError(t, f.publisher(t, "a").PushTraces(ctx, "", spansOf("svc", ptrace.SpanKindServer, [2]int{1, 1}, [2]int{1, 2})))

	poll(t, "dead-lettered", func() bool {
		msgs, _, err := f.conn.StreamState(ctx, bus.DeadLetterStream)
		return err == nil && msgs == 2
	})
	require.InDelta(t, 2, counter(t, f.reg, "pharos_aggregator_invalid_messages_total"), 0)
	poll(t, "stored after redelivery", func() bool { return len(f.store.spans()[""]) == 2 })
	require.InDelta(t, 1, counter(t, f.reg, "pharos_aggregator_batches_total", "result", "storage_error"), 0)
	poll(t, "all settled", func() bool {
		lag, err := f.conn.ConsumerLag(ctx, bus.SignalTraces, bus.DurableName(bus.SignalTraces, 0, 0))
		return err == nil && lag == 0
	})
}

// Observers see replica 0's spans only: with RF 2 the spans are stored by
// both replicas, but counted once.
func TestTracesObserversReplicaZeroOnly(t *testing.T) {
	f := newTracesFixture(t, 1, 2)
	var (
		mu       sync.Mutex
		observed int
	)
	obs := func(_ string, t *otlpwire.Traces) {
		mu.Lock()
		observed += len(t.Spans)
		mu.Unlock()
	}
	f.start(t, []aggregator.PartitionReplica{{Partition: 0, Replica: 1}}, obs)
	require.NoError(t, f.publisher(t, "a").PushTraces(context.Background(), "", spansOf("svc", ptrace.SpanKindServer, [2]int{1, 1})))
	poll(t, "stored by replica 1", func() bool { return len(f.store.spans()[""]) == 1 })
	mu.Lock()
	require.Zero(t, observed)
	mu.Unlock()
}

// fakeLogs is a LogsStore whose WaitDurable blocks while hold is open:
// logs and traces share the acker.
type fakeLogs struct {
	mu      sync.Mutex
	entries int
	hold    chan struct{}
}

func (f *fakeLogs) Append(_ string, streams []logs.Stream) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range streams {
		f.entries += len(s.Entries)
	}
	return nil
}

func (f *fakeLogs) WaitDurable(ctx context.Context) error {
	select {
	case <-f.hold:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeLogs) stored() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entries
}

// Logs and traces consumed side by side, each acknowledged after its own
// store's WaitDurable.
func TestLogsAndTracesShareTheAcker(t *testing.T) {
	f := newTracesFixture(t, 1, 1)
	lstore := &fakeLogs{hold: make(chan struct{})}
	agg, err := aggregator.New(aggregator.Config{MaxDecodedBytes: 8 << 20, SeriesCacheSize: 1000}, 1,
		f.conn.ConsumePartition, f.conn.DeadLetter, nopMetrics{}, slog.New(slog.DiscardHandler), f.reg)
	require.NoError(t, err)
	agg.WithLogs(lstore, f.reg)
	agg.WithTraces(f.store, f.reg)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), agg))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), agg)) })

	ctx := context.Background()
	enc := codec.NewLogsEncoder(codec.CompressionSnappy)
	enc.StartStream(labels.FromStrings("app", "a"))
	enc.AddEntry(&logs.Entry{Timestamp: 1, Line: "hello"})
	data, err := enc.Finish()
	require.NoError(t, err)
	require.NoError(t, f.conn.Publish(ctx, &bus.OutMsg{Signal: bus.SignalLogs, Encoding: enc.Encoding(), ID: "l1", Data: data}))
	require.NoError(t, f.publisher(t, "a").PushTraces(ctx, "", spansOf("svc", ptrace.SpanKindServer, [2]int{1, 1})))

	lag := func(s bus.Signal) uint64 {
		n, err := f.conn.ConsumerLag(ctx, s, bus.DurableName(s, 0, 0))
		require.NoError(t, err)
		return n
	}
	// (An unacked log message comes back after the ack wait and is
	// stored again: hence "at least".)
	poll(t, "both stored", func() bool { return lstore.stored() >= 1 && len(f.store.spans()[""]) == 1 })
	poll(t, "logs awaiting durability", func() bool {
		return counter(t, f.reg, "pharos_aggregator_log_messages_awaiting_durability") >= 1
	})
	poll(t, "traces acked", func() bool { return lag(bus.SignalTraces) == 0 })
	require.NotZero(t, lag(bus.SignalLogs), "logs wait for their store")
	close(lstore.hold)
	poll(t, "logs acked", func() bool { return lag(bus.SignalLogs) == 0 })
	require.GreaterOrEqual(t, counter(t, f.reg, "pharos_aggregator_log_entries_appended_total"), 1.0)
}

// metricsRecorder is a storage.AppendableV2 keeping committed float
// samples by series, the latest value winning.
type metricsRecorder struct {
	mu sync.Mutex
	v  map[string]float64
}

func (r *metricsRecorder) AppenderV2(context.Context) storage.AppenderV2 {
	return &recAppender{r: r}
}

func (r *metricsRecorder) get(series string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.v[series]
	return v, ok
}

type recAppender struct {
	r   *metricsRecorder
	buf map[string]float64
}

func (a *recAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, _ int64, v float64, _ *histogram.Histogram, _ *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if a.buf == nil {
		a.buf = map[string]float64{}
	}
	a.buf[ls.String()] = v
	return 0, nil
}

func (a *recAppender) Commit() error {
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	if a.r.v == nil {
		a.r.v = map[string]float64{}
	}
	for k, v := range a.buf {
		a.r.v[k] = v
	}
	return nil
}

func (a *recAppender) Rollback() error { return nil }

// The span metrics generator as the app wires it: the aggregator's traces
// observer. A client span and its server span, sent by two agents, meet
// at the partition's owner and make one service-graph edge.
func TestTracesFeedSpanMetrics(t *testing.T) {
	f := newTracesFixture(t, 4, 1)
	var cfg spanmetrics.Config
	cfg.RegisterFlags(flag.NewFlagSet("spanmetrics", flag.PanicOnError))
	rec := &metricsRecorder{}
	gen, err := spanmetrics.New(cfg, "agg-0", rec, slog.New(slog.DiscardHandler), f.reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), gen))
	f.start(t, nil, gen.ObserveWire)

	ctx := context.Background()
	client := spansOf("frontend", ptrace.SpanKindClient, [2]int{1, 10})
	require.NoError(t, f.publisher(t, "agent-1").PushTraces(ctx, "", client))
	server := spansOf("cart", ptrace.SpanKindServer, [2]int{1, 20})
	server.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetParentSpanID(sid(10))
	require.NoError(t, f.publisher(t, "agent-2").PushTraces(ctx, "", server))
	poll(t, "both stored", func() bool { return len(f.store.spans()[""]) == 2 })
	poll(t, "paired", func() bool { return counter(t, f.reg, "pharos_servicegraph_paired_edges_total") == 1 })

	// Stopping the generator writes what it counted.
	require.NoError(t, services.StopAndAwaitTerminated(ctx, gen))
	edge := labels.FromStrings("__name__", spanmetrics.MetricGraphRequests, "client", "frontend", "server", "cart", spanmetrics.LabelAggregator, "agg-0").String()
	v, ok := rec.get(edge)
	require.True(t, ok, "edge written")
	require.InDelta(t, 1, v, 0)
	calls := labels.FromStrings("__name__", spanmetrics.MetricCalls, spanmetrics.LabelAggregator, "agg-0",
		"service", "cart", "span_kind", "SPAN_KIND_SERVER", "span_name", "op", "status_code", "STATUS_CODE_UNSET").String()
	v, ok = rec.get(calls)
	require.True(t, ok, "span metrics written")
	require.InDelta(t, 1, v, 0)
}
