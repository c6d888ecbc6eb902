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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
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

func newTestTraces(t testing.TB, partitions int, agent string, publish PublishFunc, compression string) (*Traces, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{Compression: compression, Concurrency: 4}
	tp, err := NewTraces(cfg, partitions, agent, publish, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	return tp, reg
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

func TestTracesPartitions(t *testing.T) {
	for _, comp := range []string{"snappy", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			rec := &msgRecorder{}
			tp, reg := newTestTraces(t, 8, "agent-1", rec.publish, comp)
			td := manyTraces(3, 40, 3)
			want := ptrace.NewTraces()
			td.CopyTo(want)
			require.NoError(t, tp.PushTraces(context.Background(), "team-a", td))

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
			// Every span kept its resource and scope, and every span of
			// a trace is on one partition.
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
			require.InDelta(t, float64(want.SpanCount()), testutil.ToFloat64(tp.spans), 0)
			require.InDelta(t, float64(len(msgs)), testutil.ToFloat64(tp.messages), 0)
			require.Positive(t, testutil.ToFloat64(tp.bytes))
			_ = reg
		})
	}
}

// Spans of one trace pushed in two requests, to two agents, go to the same
// partition; a request whose spans are all on one partition is sent as it
// is, in one message.
func TestTracesSameTraceSamePartition(t *testing.T) {
	rec1, rec2 := &msgRecorder{}, &msgRecorder{}
	a1, _ := newTestTraces(t, 16, "agent-1", rec1.publish, "snappy")
	a2, _ := newTestTraces(t, 16, "agent-2", rec2.publish, "snappy")
	for i := range 50 {
		client := manyTraces(1, 1, 2)
		server := manyTraces(1, 1, 1)
		setTrace(client, traceID(1000+i))
		setTrace(server, traceID(1000+i))
		require.NoError(t, a1.PushTraces(context.Background(), "", client))
		require.NoError(t, a2.PushTraces(context.Background(), "", server))
	}
	m1, m2 := rec1.messages(), rec2.messages()
	require.Len(t, m1, 50)
	require.Len(t, m2, 50)
	spread := map[int]bool{}
	for i := range m1 {
		require.Equal(t, m1[i].Partition, m2[i].Partition)
		require.Equal(t, codec.TracePartition(traceID(1000+i), 16), m1[i].Partition)
		spread[m1[i].Partition] = true
	}
	require.Greater(t, len(spread), 4, "traces spread over partitions")
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

// A request over the message size is split, each part under the bus
// limit once compressed, even when the spans do not compress.
func TestTracesSplitsLargeRequests(t *testing.T) {
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
			require.NoError(t, tp.PushTraces(context.Background(), "", td))
			msgs := rec.messages()
			require.Greater(t, len(msgs), 4)
			for _, m := range msgs {
				require.LessOrEqual(t, len(m.Data), maxTracesPayloadBytes, m.ID)
			}
			require.Len(t, decodeAll(t, msgs, c.partitions), n)
			// IDs are numbered without gaps.
			seen := map[string]bool{}
			for _, m := range msgs {
				seen[m.ID[len(tp.idPrefix):]] = true
			}
			for i := range msgs {
				require.True(t, seen[fmt.Sprintf("1.%d", i)], "part %d", i)
			}
		})
	}
}

func TestTracesPublishErrors(t *testing.T) {
	t.Run("too large is permanent", func(t *testing.T) {
		rec := &msgRecorder{fail: func(*bus.OutMsg) error { return fmt.Errorf("publish: %w", bus.ErrMessageTooLarge) }}
		tp, reg := newTestTraces(t, 2, "a", rec.publish, "snappy")
		err := tp.PushTraces(context.Background(), "", manyTraces(1, 1, 3))
		require.ErrorIs(t, err, receive.ErrTracesRejected)
		require.ErrorIs(t, err, bus.ErrMessageTooLarge)
		require.InDelta(t, 6, testutil.ToFloat64(tp.dropped.WithLabelValues(reasonTooLarge)), 0)
		_ = reg
	})
	t.Run("transient", func(t *testing.T) {
		boom := errors.New("no responders")
		rec := &msgRecorder{fail: func(m *bus.OutMsg) error {
			if m.Partition == codec.TracePartition(traceID(0), 8) {
				return boom
			}
			return nil
		}}
		tp, _ := newTestTraces(t, 8, "a", rec.publish, "zstd")
		err := tp.PushTraces(context.Background(), "", manyTraces(1, 20, 1))
		require.ErrorIs(t, err, boom)
		require.NotErrorIs(t, err, receive.ErrTracesRejected)
		require.NotEmpty(t, rec.messages(), "the other partitions went out")
		require.Less(t, testutil.ToFloat64(tp.spans), 40.0)
	})
	t.Run("nothing to publish", func(t *testing.T) {
		rec := &msgRecorder{}
		tp, _ := newTestTraces(t, 2, "a", rec.publish, "zstd")
		require.NoError(t, tp.PushTraces(context.Background(), "", ptrace.NewTraces()))
		require.Empty(t, rec.messages())
	})
	t.Run("config", func(t *testing.T) {
		_, err := NewTraces(Config{Compression: "lz4"}, 2, "a", nil, slog.New(slog.DiscardHandler), nil)
		require.Error(t, err)
		_, err = NewTraces(Config{Compression: "zstd"}, 0, "a", nil, slog.New(slog.DiscardHandler), nil)
		require.Error(t, err)
	})
}

// Successive pushes get successive sequence numbers.
func TestTracesMessageIDs(t *testing.T) {
	rec := &msgRecorder{}
	tp, _ := newTestTraces(t, 1, "a", rec.publish, "snappy")
	for range 3 {
		require.NoError(t, tp.PushTraces(context.Background(), "", manyTraces(1, 1, 1)))
	}
	msgs := rec.messages()
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		require.Equal(t, fmt.Sprintf("%s%d.0", tp.idPrefix, i+1), m.ID)
	}
}

func BenchmarkTracesPush(b *testing.B) {
	for _, partitions := range []int{1, 8} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			tp, _ := newTestTraces(b, partitions, "a", func(context.Context, *bus.OutMsg) error { return nil }, "snappy")
			src := manyTraces(4, 50, 5) // 2000 spans
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

// gate is a PublishFunc whose calls wait until it is opened, then go to
// rec (or fail with err).
type gate struct {
	open chan struct{}
	rec  *msgRecorder
	err  error
}

func (g *gate) publish(ctx context.Context, m *bus.OutMsg) error {
	select {
	case <-g.open:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.err != nil {
		return g.err
	}
	return g.rec.publish(ctx, m)
}

// waiting is how many pushes of tenant wait for the group being
// published.
func (t *Traces) waiting(tenant string) int {
	t.groupsMu.Lock()
	defer t.groupsMu.Unlock()
	if tg := t.groups[tenant]; tg != nil && tg.next != nil {
		return tg.next.pushes
	}
	return 0
}

// pushWhileBlocked pushes one batch, which blocks in the gate, then n more
// that queue behind it, opens the gate and returns every push's error and
// how many spans were pushed.
func pushWhileBlocked(t *testing.T, tp *Traces, g *gate, n int) ([]error, int) {
	t.Helper()
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	first := manyTraces(1, 20, 1)
	setTrace(first, traceID(1000))
	pushed := first.SpanCount()
	wg.Go(func() { errs[0] = tp.PushTraces(context.Background(), "", first) })
	require.Eventually(t, func() bool {
		tp.groupsMu.Lock()
		defer tp.groupsMu.Unlock()
		tg := tp.groups[""]
		return tg != nil && tg.running && tg.next == nil
	}, 10*time.Second, time.Millisecond, "the first push is being published")
	for i := range n {
		td := manyTraces(2, 20, 2)
		// Distinct span IDs per push.
		rss := td.ResourceSpans()
		for r := range rss.Len() {
			for s := range rss.At(r).ScopeSpans().Len() {
				spans := rss.At(r).ScopeSpans().At(s).Spans()
				for k := range spans.Len() {
					var id pcommon.SpanID
					binary.BigEndian.PutUint64(id[:], uint64(i+1)<<32|uint64(r<<16|s<<8|k))
					spans.At(k).SetSpanID(id)
				}
			}
		}
		pushed += td.SpanCount()
		wg.Go(func() { errs[i+1] = tp.PushTraces(context.Background(), "", td) })
	}
	require.Eventually(t, func() bool { return tp.waiting("") == n }, 10*time.Second, time.Millisecond)
	close(g.open)
	wg.Wait()
	return errs, pushed
}

func TestTracesGroupCommit(t *testing.T) {
	const partitions, pushes = 8, 10
	g := &gate{open: make(chan struct{}), rec: &msgRecorder{}}
	tp, _ := newTestTraces(t, partitions, "a", g.publish, "snappy")
	errs, pushed := pushWhileBlocked(t, tp, g, pushes)
	for i, err := range errs {
		require.NoError(t, err, "push %d", i)
	}
	msgs := g.rec.messages()
	// The first push's messages, then one per partition for the ten that
	// waited (each of them spreads over every partition).
	first := 0
	for _, m := range msgs {
		if strings.HasPrefix(m.ID, tp.idPrefix+"1.") {
			first++
		}
	}
	require.Equal(t, partitions, len(msgs)-first, "the waiting pushes share one message per partition")
	spans := decodeAll(t, msgs, partitions)
	require.Equal(t, pushed, len(spans), "every span once")
	require.Equal(t, 2.0, testutil.ToFloat64(tp.pushGroups))
	require.Equal(t, float64(pushes+1), testutil.ToFloat64(tp.groupedPushes))
	require.Equal(t, float64(pushed), testutil.ToFloat64(tp.spans))
	tp.groupsMu.Lock()
	require.Empty(t, tp.groups, "nothing is kept once the pushes are done")
	tp.groupsMu.Unlock()
}

func TestTracesGroupErrors(t *testing.T) {
	t.Run("a failed group fails every push in it", func(t *testing.T) {
		boom := errors.New("no responders")
		g := &gate{open: make(chan struct{}), rec: &msgRecorder{}, err: boom}
		tp, _ := newTestTraces(t, 4, "a", g.publish, "zstd")
		errs, _ := pushWhileBlocked(t, tp, g, 3)
		for _, err := range errs {
			require.ErrorIs(t, err, boom)
		}
	})
	t.Run("a size refusal in a group is retryable", func(t *testing.T) {
		g := &gate{open: make(chan struct{}), rec: &msgRecorder{}, err: fmt.Errorf("publish: %w", bus.ErrMessageTooLarge)}
		tp, _ := newTestTraces(t, 4, "a", g.publish, "zstd")
		errs, _ := pushWhileBlocked(t, tp, g, 3)
		require.ErrorIs(t, errs[0], receive.ErrTracesRejected, "a push alone in its group is refused as before")
		for _, err := range errs[1:] {
			require.Error(t, err)
			require.ErrorIs(t, err, bus.ErrMessageTooLarge)
			require.NotErrorIs(t, err, receive.ErrTracesRejected)
		}
		lone := manyTraces(1, 20, 1)
		require.Equal(t, float64(lone.SpanCount()), testutil.ToFloat64(tp.dropped.WithLabelValues(reasonTooLarge)),
			"only the lone push's spans are counted as dropped; the group's are retried")
	})
	t.Run("a push that gives up leaves its group to go out", func(t *testing.T) {
		g := &gate{open: make(chan struct{}), rec: &msgRecorder{}}
		tp, _ := newTestTraces(t, 2, "a", g.publish, "snappy")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		td := manyTraces(1, 4, 1)
		n := float64(td.SpanCount())
		go func() { done <- tp.PushTraces(ctx, "", td) }()
		require.Eventually(t, func() bool {
			tp.groupsMu.Lock()
			defer tp.groupsMu.Unlock()
			return tp.groups[""] != nil
		}, 10*time.Second, time.Millisecond)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		close(g.open)
		require.Eventually(t, func() bool { return testutil.ToFloat64(tp.spans) == n }, 10*time.Second, time.Millisecond)
	})
}

// A push too large to join a group goes out on its own at once, even while
// the tenant's group is being published.
func TestTracesLargePushBypassesGroups(t *testing.T) {
	g := &gate{open: make(chan struct{}), rec: &msgRecorder{}}
	var entered atomic.Int64
	tp, _ := newTestTraces(t, 2, "a", func(ctx context.Context, m *bus.OutMsg) error {
		entered.Add(1)
		return g.publish(ctx, m)
	}, "snappy")
	var wg sync.WaitGroup
	small := manyTraces(1, 1, 1)
	want := float64(small.SpanCount())
	wg.Go(func() { require.NoError(t, tp.PushTraces(context.Background(), "", small)) })
	require.Eventually(t, func() bool { return entered.Load() == 1 }, 10*time.Second, time.Millisecond)

	large := manyTraces(1, 2, 1)
	want += float64(large.SpanCount())
	spans := large.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	for k := range spans.Len() {
		spans.At(k).Attributes().PutStr("payload", strings.Repeat("x", maxGroupedPushBytes))
	}
	wg.Go(func() { require.NoError(t, tp.PushTraces(context.Background(), "", large)) })
	require.Eventually(t, func() bool { return entered.Load() > 1 }, 10*time.Second, time.Millisecond,
		"the large push is published while the group is")
	require.Zero(t, tp.waiting(""))
	close(g.open)
	wg.Wait()
	require.Equal(t, 1.0, testutil.ToFloat64(tp.groupedPushes))
	require.Equal(t, want, testutil.ToFloat64(tp.spans))
}
