package publish

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// msgRecorder is a PublishFunc that keeps a copy of every message, or
// fails as told.
type msgRecorder struct {
	mu   sync.Mutex
	msgs []bus.OutMsg
	fail func(m *bus.OutMsg) error
}

func (r *msgRecorder) publish(_ context.Context, m *bus.OutMsg) error {
	if r.fail != nil {
		if err := r.fail(m); err != nil {
			return err
		}
	}
	c := *m
	c.Data = append([]byte(nil), m.Data...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, c)
	return nil
}

func (r *msgRecorder) messages() []bus.OutMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.OutMsg(nil), r.msgs...)
}

// tracesOpts adjust a test publisher.
type tracesOpts struct {
	wait     time.Duration
	spool    spool.Config
	dir      string
	drain    time.Duration
	noCancel bool // do not stop it at the end of the test
}

// newTestTraces starts a trace publisher spooling to a new directory
// (opts.dir when set) and stops it when the test ends.
func newTestTraces(t testing.TB, partitions int, agent string, publish PublishFunc, compression string, opts ...func(*tracesOpts)) (*Traces, *prometheus.Registry) {
	t.Helper()
	o := tracesOpts{wait: 5 * time.Millisecond, spool: testSpoolConfig(), drain: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Compression, cfg.Concurrency, cfg.TracesBatchWait, cfg.DrainTimeout = compression, 4, o.wait, o.drain
	tp, err := NewTraces(cfg, o.spool, o.dir, partitions, agent, publish, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), tp))
	if !o.noCancel {
		t.Cleanup(func() {
			if tp.State() == services.Running {
				require.NoError(t, services.StopAndAwaitTerminated(context.Background(), tp))
			}
		})
	}
	return tp, reg
}

// waitSpans waits until tp has published n spans.
func waitSpans(t *testing.T, tp *Traces, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return testutil.ToFloat64(tp.spans) >= float64(n) }, 20*time.Second, time.Millisecond,
		"published %v of %d spans", testutil.ToFloat64(tp.spans), n)
	require.InDelta(t, float64(n), testutil.ToFloat64(tp.spans), 0, "no span published twice")
}

// stop stops tp, which publishes what it holds.
func stop(t *testing.T, tp *Traces) {
	t.Helper()
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), tp))
}

// distinctSpans gives every span of td a span ID made from base.
func distinctSpans(td ptrace.Traces, base uint64) {
	n := base << 32
	rss := td.ResourceSpans()
	for r := range rss.Len() {
		for s := range rss.At(r).ScopeSpans().Len() {
			spans := rss.At(r).ScopeSpans().At(s).Spans()
			for k := range spans.Len() {
				n++
				var id pcommon.SpanID
				binary.BigEndian.PutUint64(id[:], n)
				spans.At(k).SetSpanID(id)
			}
		}
	}
}

func traceID(n int) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[8:], uint64(n)*0x9e3779b97f4a7c15) // spread like random IDs
	id[0] = byte(n)
	return id
}

// manyTraces is services × scopes, each with spans of traces 0..traces-1
// (span k of a trace has kind and name from k).
func manyTraces(services, traces, spansPerTrace int) ptrace.Traces {
	td := ptrace.NewTraces()
	sid := uint64(0)
	for s := range services {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", s))
		rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
		for sc := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fmt.Sprintf("scope-%d", sc))
			for tr := range traces {
				for k := range spansPerTrace {
					sp := ss.Spans().AppendEmpty()
					sp.SetTraceID(traceID(tr))
					sid++
					var id pcommon.SpanID
					binary.BigEndian.PutUint64(id[:], sid)
					sp.SetSpanID(id)
					sp.SetName(fmt.Sprintf("op-%d", k))
					sp.SetStartTimestamp(1)
					sp.SetEndTimestamp(2)
				}
			}
		}
	}
	return td
}

// spanPlace is where a published span was found.
type spanPlace struct {
	partition       int
	service, scope  string
	schema, traceID string
}

// decodeAll decodes every message, checking its headers, and returns each
// span (by span ID) with where it was.
func decodeAll(t *testing.T, msgs []bus.OutMsg, partitions int) map[pcommon.SpanID]spanPlace {
	t.Helper()
	out := map[pcommon.SpanID]spanPlace{}
	dec := codec.NewTracesDecoder(64 << 20)
	for _, m := range msgs {
		require.Equal(t, bus.SignalTraces, m.Signal)
		td, err := dec.Decode(m.Encoding, m.Data)
		require.NoError(t, err)
		require.NotZero(t, td.SpanCount())
		rss := td.ResourceSpans()
		for i := range rss.Len() {
			rs := rss.At(i)
			svc, _ := rs.Resource().Attributes().Get("service.name")
			for j := range rs.ScopeSpans().Len() {
				ss := rs.ScopeSpans().At(j)
				require.NotZero(t, ss.Spans().Len(), "no empty scopes")
				for k := range ss.Spans().Len() {
					sp := ss.Spans().At(k)
					require.Equal(t, codec.TracePartition(sp.TraceID(), partitions), m.Partition)
					_, dup := out[sp.SpanID()]
					require.False(t, dup, "span published twice")
					out[sp.SpanID()] = spanPlace{partition: m.Partition, service: svc.Str(), scope: ss.Scope().Name(), schema: rs.SchemaUrl(), traceID: sp.TraceID().String()}
				}
			}
		}
	}
	return out
}

// pushPaths are the publisher's two ways in: pdata (PushTraces), and the
// wire form (PushTracesWire) the receivers use for clean requests.
var pushPaths = []struct {
	name string
	push func(t testing.TB, tp *Traces, tenant string, td ptrace.Traces) error
}{
	{"pdata", func(_ testing.TB, tp *Traces, tenant string, td ptrace.Traces) error {
		return tp.PushTraces(context.Background(), tenant, td)
	}},
	{"wire", func(t testing.TB, tp *Traces, tenant string, td ptrace.Traces) error {
		var w otlpwire.Traces
		require.NoError(t, w.ReadPdata(td))
		return tp.PushTracesWire(context.Background(), tenant, &w)
	}},
}

// Every span reaches the partition of its trace, under its own resource
// and scope, in messages with unique IDs.
func TestTracesPartitions(t *testing.T) {
	for _, path := range pushPaths {
		for _, comp := range []string{"snappy", "zstd"} {
			t.Run(path.name+"/"+comp, func(t *testing.T) {
				testTracesPartitions(t, comp, path.push)
			})
		}
	}
}

func testTracesPartitions(t *testing.T, comp string, push func(t testing.TB, tp *Traces, tenant string, td ptrace.Traces) error) {
	rec := &msgRecorder{}
	tp, _ := newTestTraces(t, 8, "agent-1", rec.publish, comp)
	td := manyTraces(3, 40, 3)
	want := ptrace.NewTraces()
	td.CopyTo(want)
	require.NoError(t, push(t, tp, "team-a", td))
	waitSpans(t, tp, want.SpanCount())

	msgs := rec.messages()
	require.LessOrEqual(t, len(msgs), 8, "one message per partition")
	require.Greater(t, len(msgs), 1)
	idRE := regexp.MustCompile(`^agent-1-traces-[0-9a-z]+-1\.[0-9]+$`)
	ids := map[string]bool{}
	for _, m := range msgs {
		require.Equal(t, "team-a", m.Tenant)
		require.Equal(t, codec.TracesEncoding(codec.Compression(comp)), m.Encoding)
		require.Regexp(t, idRE, m.ID)
		ids[m.ID] = true
	}
	require.Len(t, ids, len(msgs), "message IDs are unique")

	got := decodeAll(t, msgs, 8)
	require.Len(t, got, want.SpanCount())
	tracePart := map[string]int{}
	rss := want.ResourceSpans()
	for i := range rss.Len() {
		svc, _ := rss.At(i).Resource().Attributes().Get("service.name")
		for j := range rss.At(i).ScopeSpans().Len() {
			ss := rss.At(i).ScopeSpans().At(j)
			for k := range ss.Spans().Len() {
				sp := ss.Spans().At(k)
				p, ok := got[sp.SpanID()]
				require.True(t, ok)
				require.Equal(t, svc.Str(), p.service)
				require.Equal(t, ss.Scope().Name(), p.scope)
				require.Equal(t, rss.At(i).SchemaUrl(), p.schema)
				if q, seen := tracePart[p.traceID]; seen {
					require.Equal(t, q, p.partition)
				}
				tracePart[p.traceID] = p.partition
			}
		}
	}
	require.InDelta(t, float64(len(msgs)), testutil.ToFloat64(tp.messages), 0)
	require.Positive(t, testutil.ToFloat64(tp.bytes))
}

// The pushes spooled during one wait go out as one message per partition
// and tenant, however many pushes there were.
func TestTracesBatchesPushes(t *testing.T) {
	const partitions, pushes = 4, 30
	rec := &msgRecorder{}
	// A wait longer than the test: the batch goes out when the publisher
	// stops, which publishes what it has read.
	tp, _ := newTestTraces(t, partitions, "a", rec.publish, "snappy", func(o *tracesOpts) { o.wait = time.Minute })
	spans := 0
	for i := range pushes {
		td := manyTraces(2, 20, 2)
		distinctSpans(td, uint64(i))
		spans += td.SpanCount()
		tenant := "team-a"
		if i%3 == 0 {
			tenant = "team-b"
		}
		require.NoError(t, tp.PushTraces(context.Background(), tenant, td))
	}
	stop(t, tp)
	require.InDelta(t, float64(spans), testutil.ToFloat64(tp.spans), 0)
	msgs := rec.messages()
	require.Len(t, msgs, 2*partitions, "one message per tenant and partition")
	require.Len(t, decodeAll(t, msgs, partitions), spans)
	byKey := map[string]bool{}
	for _, m := range msgs {
		byKey[fmt.Sprint(m.Tenant, "/", m.Partition)] = true
	}
	require.Len(t, byKey, 2*partitions)
}

// A batch is published once the wait has passed, while the publisher runs.
func TestTracesBatchWaitPublishes(t *testing.T) {
	rec := &msgRecorder{}
	tp, reg := newTestTraces(t, 2, "a", rec.publish, "zstd", func(o *tracesOpts) { o.wait = 20 * time.Millisecond })
	for i := range 3 {
		td := manyTraces(1, 4, 2)
		distinctSpans(td, uint64(i))
		require.NoError(t, tp.PushTraces(context.Background(), "", td))
		waitSpans(t, tp, (i+1)*16)
	}
	require.Len(t, decodeAll(t, rec.messages(), 2), 48)
	require.InDelta(t, 3, metricValue(t, reg, "pharos_agent_spool_appended_records_total", "signal", "traces")/2, 1,
		"a record per partition per push")
}

// Spans of one trace pushed to two agents go to the same partition.
func TestTracesSameTraceSamePartition(t *testing.T) {
	rec1, rec2 := &msgRecorder{}, &msgRecorder{}
	a1, _ := newTestTraces(t, 16, "agent-1", rec1.publish, "snappy")
	a2, _ := newTestTraces(t, 16, "agent-2", rec2.publish, "snappy")
	for i := range 50 {
		client := manyTraces(1, 1, 2)
		server := manyTraces(1, 1, 1)
		setTrace(client, traceID(1000+i))
		setTrace(server, traceID(1000+i))
		distinctSpans(client, uint64(2*i))
		distinctSpans(server, uint64(2*i+1))
		require.NoError(t, a1.PushTraces(context.Background(), "", client))
		require.NoError(t, a2.PushTraces(context.Background(), "", server))
	}
	waitSpans(t, a1, 50*4)
	waitSpans(t, a2, 50*2)
	// decodeAll checks each span's partition against its trace ID.
	got1, got2 := decodeAll(t, rec1.messages(), 16), decodeAll(t, rec2.messages(), 16)
	spread := map[int]bool{}
	parts := map[string]int{}
	for _, p := range got1 {
		parts[p.traceID] = p.partition
		spread[p.partition] = true
	}
	for _, p := range got2 {
		require.Equal(t, parts[p.traceID], p.partition, "trace %s", p.traceID)
	}
	require.Greater(t, len(spread), 4, "traces spread over partitions")
}

// Messages stay under the bus limit once compressed, even when the spans
// do not compress.
func TestTracesSplitsLargeRequests(t *testing.T) {
	for _, path := range pushPaths {
		t.Run(path.name, func(t *testing.T) { testTracesSplitsLargeRequests(t, path.push) })
	}
}

func testTracesSplitsLargeRequests(t *testing.T, push func(t testing.TB, tp *Traces, tenant string, td ptrace.Traces) error) {
	for _, c := range []struct {
		name       string
		partitions int
		random     bool
	}{
		{"compressible, one partition", 1, false},
		{"incompressible, one partition", 1, true},
		{"incompressible, four partitions", 4, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &msgRecorder{}
			tp, _ := newTestTraces(t, c.partitions, "a", rec.publish, "snappy")
			td := manyTraces(2, 10, 40) // 1600 spans
			rng := rand.New(rand.NewPCG(1, 2))
			rss := td.ResourceSpans()
			for i := range rss.Len() {
				for j := range rss.At(i).ScopeSpans().Len() {
					spans := rss.At(i).ScopeSpans().At(j).Spans()
					for k := range spans.Len() {
						v := make([]byte, 3000)
						if c.random {
							for x := range v {
								v[x] = byte(rng.UintN(256))
							}
						}
						spans.At(k).Attributes().PutEmptyBytes("payload").FromRaw(v)
					}
				}
			}
			n := td.SpanCount()
			require.NoError(t, push(t, tp, "", td))
			waitSpans(t, tp, n)
			msgs := rec.messages()
			require.Greater(t, len(msgs), 4)
			for _, m := range msgs {
				require.LessOrEqual(t, len(m.Data), maxTracesPayloadBytes, m.ID)
			}
			require.Len(t, decodeAll(t, msgs, c.partitions), n)
		})
	}
}

func TestTracesPublishErrors(t *testing.T) {
	t.Run("a span too large for the bus is refused at the push", func(t *testing.T) {
		rec := &msgRecorder{}
		tp, _ := newTestTraces(t, 2, "a", rec.publish, "snappy")
		td := manyTraces(1, 1, 2)
		v := make([]byte, 2<<20)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range v {
			v[i] = byte(rng.UintN(256))
		}
		td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutEmptyBytes("blob").FromRaw(v)
		err := tp.PushTraces(context.Background(), "", td)
		require.ErrorIs(t, err, receive.ErrTracesRejected)
		require.ErrorIs(t, err, bus.ErrMessageTooLarge)
		require.InDelta(t, 1, testutil.ToFloat64(tp.dropped.WithLabelValues(reasonTooLarge)), 0)
		require.Zero(t, tp.sp.Load().Len(), "nothing of the push was spooled")
	})
	t.Run("a part over half the spool is refused", func(t *testing.T) {
		rec := &msgRecorder{}
		tp, _ := newTestTraces(t, 1, "a", rec.publish, "snappy", func(o *tracesOpts) {
			o.spool = spool.Config{MaxBytes: 64 << 10, SegmentBytes: 32 << 10}
		})
		td := manyTraces(1, 1, 1)
		td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("blob", strings.Repeat("x", 40<<10))
		err := tp.PushTraces(context.Background(), "", td)
		require.ErrorIs(t, err, receive.ErrTracesRejected)
		require.ErrorIs(t, err, spool.ErrTooLarge)
		require.InDelta(t, 2, testutil.ToFloat64(tp.dropped.WithLabelValues(reasonTooLarge)), 0, "both spans of its one part")
		require.Zero(t, testutil.ToFloat64(tp.refused), "not refused as retryable")
	})
	t.Run("refused by the bus for its size: dropped and counted", func(t *testing.T) {
		rec := &msgRecorder{fail: func(*bus.OutMsg) error { return fmt.Errorf("publish: %w", bus.ErrMessageTooLarge) }}
		tp, _ := newTestTraces(t, 2, "a", rec.publish, "snappy")
		require.NoError(t, tp.PushTraces(context.Background(), "", manyTraces(1, 1, 3)))
		require.Eventually(t, func() bool { return testutil.ToFloat64(tp.dropped.WithLabelValues(reasonTooLarge)) == 6 }, 10*time.Second, time.Millisecond)
		require.Eventually(t, func() bool { return tp.sp.Load().Len() == 0 }, 10*time.Second, time.Millisecond, "confirmed")
	})
	t.Run("transient: retried under the same IDs until taken", func(t *testing.T) {
		var failures atomic.Int32
		var mu sync.Mutex
		failedIDs := map[string]bool{}
		rec := &msgRecorder{}
		rec.fail = func(m *bus.OutMsg) error {
			if m.Partition == codec.TracePartition(traceID(0), 8) && failures.Add(1) <= 3 {
				mu.Lock()
				failedIDs[m.ID] = true
				mu.Unlock()
				return errors.New("no responders")
			}
			return nil
		}
		tp, _ := newTestTraces(t, 8, "a", rec.publish, "zstd")
		require.NoError(t, tp.PushTraces(context.Background(), "", manyTraces(1, 20, 1)))
		waitSpans(t, tp, 40)
		require.InDelta(t, 3, testutil.ToFloat64(tp.retries), 0)
		require.Len(t, failedIDs, 1, "one message, retried under its ID")
		found := false
		for _, m := range rec.messages() {
			found = found || failedIDs[m.ID]
		}
		require.True(t, found, "the retried message went out under the same ID")
		require.Len(t, decodeAll(t, rec.messages(), 8), 40)
	})
	t.Run("nothing to publish", func(t *testing.T) {
		rec := &msgRecorder{}
		tp, _ := newTestTraces(t, 2, "a", rec.publish, "zstd")
		require.NoError(t, tp.PushTraces(context.Background(), "", ptrace.NewTraces()))
		stop(t, tp)
		require.Empty(t, rec.messages())
	})
	t.Run("not running", func(t *testing.T) {
		tp, err := NewTraces(testConfig(), testSpoolConfig(), t.TempDir(), 2, "a", nil, slog.New(slog.DiscardHandler), nil)
		require.NoError(t, err)
		err = tp.PushTraces(context.Background(), "", manyTraces(1, 1, 1))
		require.ErrorIs(t, err, errTracesNotRunning)
		require.NotErrorIs(t, err, receive.ErrTracesRejected)
	})
	t.Run("config", func(t *testing.T) {
		for _, c := range []struct {
			adjust     func(*Config, *spool.Config)
			partitions int
			field      string
		}{
			{func(c *Config, _ *spool.Config) { c.Compression = "lz4" }, 2, "agent.publish.compression"},
			{func(c *Config, _ *spool.Config) { c.TracesBatchWait = 0 }, 2, "agent.publish.traces_batch_wait"},
			{func(_ *Config, s *spool.Config) { s.MaxBytes = 1 }, 2, "agent.spool.max_bytes"},
			{func(*Config, *spool.Config) {}, 0, "partitions"},
		} {
			cfg, sc := testConfig(), testSpoolConfig()
			c.adjust(&cfg, &sc)
			_, err := NewTraces(cfg, sc, t.TempDir(), c.partitions, "a", nil, slog.New(slog.DiscardHandler), nil)
			require.ErrorContains(t, err, c.field)
		}
	})
}

// While the bus takes nothing, pushes are spooled until the spool is
// full, then refused with a retryable error: nothing acknowledged is
// dropped. Once the bus is back, everything spooled is published.
func TestTracesSpoolFullRefusesPushes(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	rec := &msgRecorder{fail: func(*bus.OutMsg) error {
		if down.Load() {
			return errors.New("no responders")
		}
		return nil
	}}
	tp, reg := newTestTraces(t, 2, "a", rec.publish, "snappy", func(o *tracesOpts) {
		o.spool = spool.Config{MaxBytes: 256 << 10, SegmentBytes: 32 << 10}
	})
	accepted := 0
	var refused error
	for i := range 1000 {
		td := manyTraces(1, 10, 3)
		distinctSpans(td, uint64(i))
		n := td.SpanCount()
		if err := tp.PushTraces(context.Background(), "", td); err != nil {
			refused = err
			break
		}
		accepted += n
	}
	require.ErrorIs(t, refused, errTracesSpoolFull)
	require.NotErrorIs(t, refused, receive.ErrTracesRejected)
	require.InDelta(t, 1, testutil.ToFloat64(tp.refused), 0)
	require.Positive(t, accepted)
	require.Zero(t, metricValue(t, reg, "pharos_agent_dropped_spans_total"), "nothing dropped")

	down.Store(false)
	waitSpans(t, tp, accepted)
	require.Len(t, decodeAll(t, rec.messages(), 2), accepted)
}

// What the bus did not take before a stop is published after the next
// start, from the spool; a new partition count splits it again.
func TestTracesSpoolSurvivesRestart(t *testing.T) {
	for _, c := range []struct {
		name   string
		before int
		after  int
	}{
		{"same partitions", 4, 4},
		{"new partition count", 4, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			down := &msgRecorder{fail: func(*bus.OutMsg) error { return errors.New("no responders") }}
			tp, _ := newTestTraces(t, c.before, "a", down.publish, "snappy", func(o *tracesOpts) {
				o.dir, o.drain = dir, 50*time.Millisecond
			})
			spans := 0
			for i := range 5 {
				td := manyTraces(2, 8, 2)
				distinctSpans(td, uint64(i))
				spans += td.SpanCount()
				require.NoError(t, tp.PushTraces(context.Background(), "team-a", td))
			}
			stop(t, tp)
			require.Empty(t, down.messages())

			rec := &msgRecorder{}
			tp2, _ := newTestTraces(t, c.after, "a", rec.publish, "snappy", func(o *tracesOpts) { o.dir = dir })
			waitSpans(t, tp2, spans)
			require.Len(t, decodeAll(t, rec.messages(), c.after), spans)
			for _, m := range rec.messages() {
				require.Equal(t, "team-a", m.Tenant)
			}
			require.Eventually(t, func() bool { return tp2.sp.Load().Len() == 0 }, 10*time.Second, time.Millisecond)
		})
	}
}

// One sync serves the callers that finished writing before it started,
// and its error reaches each of them.
func TestGroupSync(t *testing.T) {
	var g groupSync
	var syncs atomic.Int32
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := func() error {
		syncs.Add(1)
		entered <- struct{}{}
		<-release
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { require.NoError(t, g.wait(slow)) })
	<-entered // the first sync runs; these callers wait for the next
	errs := make([]error, 10)
	for i := range errs {
		wg.Go(func() { errs[i] = g.wait(func() error { syncs.Add(1); return errors.New("disk gone") }) })
	}
	require.Eventually(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.written == 11
	}, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.EqualValues(t, 2, syncs.Load(), "one sync for the ten that waited")
	for _, err := range errs {
		require.ErrorContains(t, err, "disk gone")
	}
	require.NoError(t, g.wait(func() error { return nil }), "a later sync succeeds")
}

func TestTracesRecord(t *testing.T) {
	b := appendTracesRecord(nil, "team-a", 3, 16, []byte("spans"))
	r, err := parseTracesRecord(b)
	require.NoError(t, err)
	require.Equal(t, tracesRecord{tenant: "team-a", partition: 3, partitions: 16, spans: []byte("spans")}, r)
	for _, bad := range [][]byte{
		nil,
		{2},
		{tracesRecordVersion},
		appendTracesRecord(nil, "t", 16, 16, nil),
		appendTracesRecord(nil, "t", 0, 0, nil),
		appendTracesRecord(nil, "team-a", 0, 1, nil)[:4],
	} {
		_, err := parseTracesRecord(bad)
		require.ErrorIs(t, err, errTracesRecord, "%x", bad)
	}
}

func FuzzTracesRecord(f *testing.F) {
	f.Add(appendTracesRecord(nil, "team-a", 3, 16, []byte{0x0a, 0}))
	f.Add([]byte{tracesRecordVersion, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseTracesRecord(b)
		if err != nil {
			return
		}
		require.Less(t, r.partition, r.partitions)
		again, err := parseTracesRecord(appendTracesRecord(nil, r.tenant, r.partition, r.partitions, r.spans))
		require.NoError(t, err)
		require.Equal(t, r, again)
	})
}

// BenchmarkTracesPush measures a push until it is durable in the spool
// (its share of the fsync included), publishing in the background.
func BenchmarkTracesPush(b *testing.B) {
	for _, partitions := range []int{1, 16} {
		b.Run(fmt.Sprintf("partitions=%d/wire", partitions), func(b *testing.B) {
			tp, _ := newTestTraces(b, partitions, "a", func(context.Context, *bus.OutMsg) error { return nil }, "snappy",
				func(o *tracesOpts) { o.spool = spool.Config{MaxBytes: 4 << 30, SegmentBytes: 64 << 20} })
			src := manyTraces(4, 128, 1)
			raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(src)
			require.NoError(b, err)
			var w otlpwire.Traces
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				// As the receiver does: read the request, then push it.
				w.Measure = true
				if err := w.Read(raw); err != nil {
					b.Fatal(err)
				}
				if err := tp.PushTracesWire(context.Background(), "", &w); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(src.SpanCount())*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
		})
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			tp, _ := newTestTraces(b, partitions, "a", func(context.Context, *bus.OutMsg) error { return nil }, "snappy",
				func(o *tracesOpts) { o.spool = spool.Config{MaxBytes: 4 << 30, SegmentBytes: 64 << 20} })
			src := manyTraces(4, 128, 1) // 1024 spans, like two SDK exports
			td := ptrace.NewTraces()
			b.ReportAllocs()
			b.SetBytes(int64((&ptrace.ProtoMarshaler{}).TracesSize(src)))
			for b.Loop() {
				b.StopTimer()
				src.CopyTo(td)
				b.StartTimer()
				if err := tp.PushTraces(context.Background(), "", td); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(src.SpanCount())*float64(b.N)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}

func setTrace(td ptrace.Traces, id pcommon.TraceID) {
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		for j := range rss.At(i).ScopeSpans().Len() {
			spans := rss.At(i).ScopeSpans().At(j).Spans()
			for k := range spans.Len() {
				spans.At(k).SetTraceID(id)
			}
		}
	}
}

// bufList hands back what it was given, newest first, and keeps no more
// than maxFreeBytes.
func TestBufList(t *testing.T) {
	var l bufList
	require.Nil(t, l.get())
	a, b := make([]byte, 5, 1<<20), make([]byte, 0, 2<<20)
	l.put(a)
	l.put(b)
	l.put(nil)
	require.Equal(t, 3<<20, l.bytes)
	got := l.get()
	require.Equal(t, 2<<20, cap(got))
	got = l.get()
	require.Equal(t, 1<<20, cap(got))
	require.Empty(t, got, "handed back empty")
	require.Zero(t, l.bytes)
	for range 20 {
		l.put(make([]byte, 0, 1<<20))
	}
	require.Equal(t, maxFreeBytes, l.bytes)
	require.Len(t, l.free, maxFreeBytes>>20)
}

// tracesRecordSize is what appendTracesRecord writes.
func TestTracesRecordSize(t *testing.T) {
	for _, c := range []struct {
		tenant                string
		partition, partitions int
		spans                 int
	}{{"", 0, 1, 0}, {"team-a", 3, 16, 100}, {strings.Repeat("t", 200), 300, 1000, 1 << 16}} {
		spans := make([]byte, c.spans)
		require.Len(t, appendTracesRecord(nil, c.tenant, c.partition, c.partitions, spans), tracesRecordSize(c.tenant, c.partition, c.partitions, spans))
	}
}
