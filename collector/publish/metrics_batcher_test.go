package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder stands in for the bus: it decodes what it is given, so the tests
// check the batches' real wire form.
type recorder struct {
	mu      sync.Mutex
	fail    int   // fail this many publishes first
	err     error // fail every publish with err while set
	hang    bool  // block every publish until its context ends
	msgs    []bus.OutMsg
	samples map[int][]string // partition → "labels@t=v"
	metas   []string         // family metadata: "tenant family type help"
}

func (r *recorder) publish(ctx context.Context, m *bus.OutMsg) error {
	r.mu.Lock()
	hang := r.hang
	r.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.fail > 0 {
		r.fail--
		return errors.New("nats: timeout")
	}
	var dec codec.MetricsDecoder
	req, err := dec.Decode(m.Encoding, m.Data)
	if err != nil {
		return err
	}
	var b labels.ScratchBuilder
	for _, ts := range req.Timeseries {
		l, err := ts.ToLabels(&b, req.Symbols)
		if err != nil {
			return err
		}
		for _, s := range ts.Samples {
			r.samples[m.Partition] = append(r.samples[m.Partition], fmt.Sprintf("%s@%d=%g", l, s.Timestamp, s.Value))
		}
		if len(ts.Samples) == 0 && len(ts.Histograms) == 0 {
			md, err := ts.ToMetadata(req.Symbols)
			if err != nil {
				return err
			}
			r.metas = append(r.metas, fmt.Sprintf("%s %s %s %s", m.Tenant, l.Get(labels.MetricName), md.Type, md.Help))
		}
	}
	cp := *m
	cp.Data = nil
	r.msgs = append(r.msgs, cp)
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.samples {
		n += len(s)
	}
	return n
}

func testConfig() Config {
	return Config{MaxBatchSamples: 100, FlushInterval: time.Hour, Compression: "snappy", Concurrency: 2, QueueSize: 4, DrainTimeout: 5 * time.Second, TracesBatchWait: 20 * time.Millisecond}
}

func start(t *testing.T, cfg Config, partitions int, r *recorder, opts ...Option) (*Metrics, *prometheus.Registry) {
	t.Helper()
	return startWith(t, cfg, partitions, r.publish, opts...)
}

// startWith starts a publisher on a fresh registry and stops it at cleanup
// if the test has not.
func startWith(t *testing.T, cfg Config, partitions int, publish PublishFunc, opts ...Option) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	b, err := NewMetrics(cfg, partitions, "agent-1", publish, testLogger(), reg, opts...)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), b))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), b) })
	return b, reg
}

func series(i int) labels.Labels {
	return labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
}

func TestPartitionIsStable(t *testing.T) {
	a := labels.FromStrings("__name__", "up", "job", "x", "instance", "h:1")
	b := labels.FromStrings("instance", "h:1", "job", "x", "__name__", "up") // same set, other order
	for _, p := range []int{1, 2, 16, 1024} {
		require.Equal(t, Partition(a, p), Partition(b, p))
		require.Less(t, Partition(a, p), p)
	}
	// Spread: 10k series over 16 partitions land within ±30% of even.
	counts := make([]int, 16)
	for i := range 10000 {
		counts[Partition(series(i), 16)]++
	}
	for p, c := range counts {
		require.InDelta(t, 10000/16, c, 10000/16*0.3, "partition %d", p)
	}
}

func TestCommitPartitionsAndFlushesFullBatches(t *testing.T) {
	r := &recorder{samples: map[int][]string{}}
	b, reg := start(t, testConfig(), 4, r)

	app := b.AppenderV2(context.Background())
	for i := range 1000 {
		ref, err := app.Append(0, series(i), 0, int64(i), float64(i), nil, nil, storage.AOptions{})
		require.NoError(t, err)
		require.NotZero(t, ref)
	}
	require.NoError(t, app.Commit())
	// Full batches go out at once; the partial rest waits for the flush
	// interval (an hour here) or shutdown.
	require.Eventually(t, func() bool { return r.count() >= 1000-4*100 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	require.Equal(t, 1000, r.count())

	for p, ss := range r.samples {
		for _, s := range ss {
			var i int
			_, err := fmt.Sscanf(s[len(`{__name__="m", i="`):], "%d", &i)
			require.NoError(t, err)
			require.Equal(t, p, Partition(series(i), 4), "sample %s in partition %d", s, p)
		}
	}
	seen := map[string]bool{}
	for _, m := range r.msgs {
		require.Equal(t, bus.SignalMetrics, m.Signal)
		require.Equal(t, bus.DefaultTenant, m.Tenant)
		require.Equal(t, codec.EncodingPRW2Snappy, m.Encoding)
		require.False(t, seen[m.ID], "message IDs are unique")
		seen[m.ID] = true
	}
	require.Equal(t, 1000.0, testutil.ToFloat64(b.m.appended))
	require.Equal(t, 1000.0, testutil.ToFloat64(b.m.published))
	_ = reg
}

func TestFlushIntervalSendsPartialBatches(t *testing.T) {
	r := &recorder{samples: map[int][]string{}}
	cfg := testConfig()
	cfg.FlushInterval = 20 * time.Millisecond
	b, _ := start(t, cfg, 2, r)
	app := b.AppenderV2(context.Background())
	_, err := app.Append(0, series(1), 0, 5, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Commit())
	require.Eventually(t, func() bool { return r.count() == 1 }, 10*time.Second, 5*time.Millisecond)
}

// Family metadata from many targets goes out once per tenant, and again
// when it changes.
func TestFamilyMetadataSentOncePerTenant(t *testing.T) {
	r := &recorder{samples: map[int][]string{}}
	cfg := testConfig()
	cfg.FlushInterval = 20 * time.Millisecond
	b, _ := start(t, cfg, 2, r)
	send := func(ctx context.Context, family string, m metadata.Metadata) {
		app := b.AppenderV2(ctx)
		app.(interface {
			AppendFamilyMetadata(string, metadata.Metadata)
		}).AppendFamilyMetadata(family, m)
		require.NoError(t, app.Commit())
	}
	ctx := context.Background()
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests."}
	send(ctx, "req_total", counter)
	send(ctx, "req_total", counter) // another target of the same job
	send(tenant.WithContext(ctx, "team-a"), "req_total", counter)
	send(ctx, "temp", metadata.Metadata{Type: model.MetricTypeGauge, Help: "Temperature."})
	changed := counter
	changed.Help = "Requests served."
	send(ctx, "req_total", changed)
	require.NoError(t, services.StopAndAwaitTerminated(ctx, b))

	r.mu.Lock()
	defer r.mu.Unlock()
	require.ElementsMatch(t, []string{
		bus.DefaultTenant + " req_total counter Requests.",
		"team-a req_total counter Requests.",
		bus.DefaultTenant + " temp gauge Temperature.",
		bus.DefaultTenant + " req_total counter Requests served.",
	}, r.metas)
	require.Zero(t, func() int {
		n := 0
		for _, s := range r.samples {
			n += len(s)
		}
		return n
	}(), "metadata entries are not samples")
}

func TestRollbackDropsTheTransaction(t *testing.T) {
	r := &recorder{samples: map[int][]string{}}
	b, _ := start(t, testConfig(), 2, r)
	app := b.AppenderV2(context.Background())
	_, err := app.Append(0, series(1), 0, 5, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.NoError(t, app.Rollback())
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	require.Zero(t, r.count())
	require.Equal(t, 1.0, testutil.ToFloat64(b.m.rolledBack))
}

func TestPublishRetriesUntilAcked(t *testing.T) {
	r := &recorder{samples: map[int][]string{}, fail: 3}
	b, _ := start(t, testConfig(), 1, r)
	app := b.AppenderV2(context.Background())
	for i := range 100 {
		_, err := app.Append(0, series(i), 0, 1, 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.Eventually(t, func() bool { return r.count() == 100 }, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 3.0, testutil.ToFloat64(b.m.retries))
	require.Len(t, r.msgs, 1)
}

func TestShutdownDropsWhatCannotBePublishedAndCountsIt(t *testing.T) {
	r := &recorder{samples: map[int][]string{}, fail: 1 << 30}
	cfg := testConfig()
	cfg.DrainTimeout = 100 * time.Millisecond
	b, _ := start(t, cfg, 1, r)
	app := b.AppenderV2(context.Background())
	for i := range 10 {
		_, err := app.Append(0, series(i), 0, 1, 1, nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	require.Equal(t, 10.0, testutil.ToFloat64(b.m.dropped.WithLabelValues("shutdown")))

	app = b.AppenderV2(context.Background())
	_, err := app.Append(0, series(1), 0, 1, 1, nil, nil, storage.AOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, app.Commit(), ErrStopped)
}

func BenchmarkAppendCommit(b *testing.B) {
	const n = 10000
	ls := make([]labels.Labels, n)
	for i := range ls {
		ls[i] = labels.FromStrings("__name__", "bench_metric", "job", "bench", "instance", "host:9100", "i", fmt.Sprint(i))
	}
	bt, err := NewMetrics(Config{MaxBatchSamples: 5000, FlushInterval: time.Second, Compression: "snappy", Concurrency: 2, QueueSize: 64, DrainTimeout: time.Second, TracesBatchWait: time.Second},
		16, "bench", func(context.Context, *bus.OutMsg) error { return nil }, slog.New(slog.DiscardHandler), nil)
	require.NoError(b, err)
	require.NoError(b, services.StartAndAwaitRunning(context.Background(), bt))
	defer func() { _ = services.StopAndAwaitTerminated(context.Background(), bt) }()
	refs := make([]storage.SeriesRef, n)
	b.ReportAllocs()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		app := bt.AppenderV2(context.Background())
		for i := range ls {
			refs[i], _ = app.Append(refs[i], ls[i], 0, int64(it), float64(i), nil, nil, storage.AOptions{})
		}
		_ = app.Commit()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
}

// With a hand-off, each published batch of a wanted partition is also
// handed off under its message ID, holding the batch's samples; batches of
// other partitions are not.
func TestHandoffGetsEveryWantedBatch(t *testing.T) {
	r := &recorder{samples: map[int][]string{}}
	h := bus.NewHandoff(64<<20, prometheus.NewRegistry())
	h.SetWanted([]int{0, 2}, 4)
	b, _ := start(t, testConfig(), 4, r, WithHandoff(h))
	app := b.AppenderV2(context.Background())
	for i := range 1000 {
		_, err := app.Append(0, series(i), 0, int64(i), float64(i), nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))

	perPartition := map[int]int{}
	for _, m := range r.msgs {
		local, ok := h.Take(m.ID)
		if m.Partition != 0 && m.Partition != 2 {
			require.False(t, ok, "partition %d is consumed elsewhere", m.Partition)
			continue
		}
		require.True(t, ok, "message %s of partition %d", m.ID, m.Partition)
		for _, s := range local {
			require.Equal(t, m.Partition, Partition(s.Labels, 4))
			require.Equal(t, s.Labels.Hash()|1, s.Ref|1)
			require.Equal(t, float64(s.T), s.V)
		}
		perPartition[m.Partition] += len(local)
	}
	require.Equal(t, len(r.samples[0]), perPartition[0])
	require.Equal(t, len(r.samples[2]), perPartition[2])
	require.NotZero(t, perPartition[0])
}
