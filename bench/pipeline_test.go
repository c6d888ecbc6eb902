// Package bench holds whole-pipeline benchmarks and, as scripts, the
// side-by-side comparisons with peers.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/collector/publish"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/storage/metrics"
)

const batchSamples = 10_000

// BenchmarkPipeline measures the metrics path inside one process, as the
// all-in-one runs it: agent appender → batch → encode (PRW 2.0 + snappy) →
// JetStream publish with PubAck (file store, fsync always) → durable pull
// consumer → decode → TSDB append + commit → ack. One op is one 10k-sample
// batch of 10k distinct series; allocations count every goroutine.
//
// "handoff" is the all-in-one's default: the batch still goes through
// JetStream, but the aggregator takes its samples from the in-process
// hand-off (bus.Handoff) instead of decoding the message; "decode" is
// every other layout (agents and aggregators in separate processes).
func BenchmarkPipeline(b *testing.B) {
	b.Run("decode", func(b *testing.B) { benchmarkPipeline(b, false) })
	b.Run("handoff", func(b *testing.B) { benchmarkPipeline(b, true) })
}

func benchmarkPipeline(b *testing.B, handoff bool) {
	logger := slog.New(slog.DiscardHandler)
	srv, err := bus.StartEmbedded(bus.EmbeddedConfig{ListenAddress: "127.0.0.1:0"}, b.TempDir(), logger)
	require.NoError(b, err)
	defer srv.Shutdown()
	bcfg := bus.DefaultConfig()
	bcfg.Partitions = 1
	conn, err := bus.Connect(bcfg, srv, "bench", logger, nil)
	require.NoError(b, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(b, conn.EnsureStreams(ctx, bus.SignalMetrics))

	var mcfg metrics.Config
	mcfg.Retention = model.Duration(24 * time.Hour)
	mcfg.OutOfOrderWindow = model.Duration(time.Hour)
	mcfg.MaxMetadata = 1000
	store, err := metrics.Open(mcfg, b.TempDir(), logger, nil)
	require.NoError(b, err)
	defer store.Close()

	reg := prometheus.NewRegistry()
	agg, err := aggregator.New(aggregator.Config{MaxDecodedBytes: 64 << 20, SeriesCacheSize: 100_000}, 1, conn.ConsumePartition, conn.DeadLetter, store, logger, reg)
	require.NoError(b, err)
	var opts []publish.Option
	if handoff {
		h := bus.NewHandoff(64<<20, nil)
		agg.WithHandoff(h)
		opts = append(opts, publish.WithHandoff(h))
	}
	require.NoError(b, services.StartAndAwaitRunning(context.Background(), agg))
	defer services.StopAndAwaitTerminated(context.Background(), agg) //nolint:errcheck

	pub, err := publish.NewMetrics(publish.Config{
		MaxBatchSamples: batchSamples, FlushInterval: time.Hour, Compression: "snappy",
		Concurrency: 2, QueueSize: 8, DrainTimeout: 10 * time.Second,
	}, 1, "bench", conn.Publish, logger, nil, opts...)
	require.NoError(b, err)
	require.NoError(b, services.StartAndAwaitRunning(context.Background(), pub))
	defer services.StopAndAwaitTerminated(context.Background(), pub) //nolint:errcheck

	series := make([]labels.Labels, batchSamples)
	for i := range series {
		series[i] = labels.FromStrings("__name__", "pipeline_bench", "job", "bench", "instance", "node-1:9100", "series", fmt.Sprint(i))
	}
	refs := make([]storage.SeriesRef, batchSamples)
	appended := func() float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == "pharos_aggregator_samples_appended_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		return 0
	}
	t0 := time.Now().UnixMilli()
	poll := time.NewTicker(200 * time.Microsecond)
	defer poll.Stop()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		app := pub.AppenderV2(context.Background())
		for i := range series {
			refs[i], _ = app.Append(refs[i], series[i], 0, t0+int64(it)*1000, float64(i+it), nil, nil, storage.AOptions{})
		}
		require.NoError(b, app.Commit())
		// Wait for the batch to be committed to the TSDB before the next:
		// the figure is end-to-end cost, not how fast a queue fills.
		want := float64((it + 1) * batchSamples)
		deadline := time.Now().Add(time.Minute)
		for appended() < want {
			if time.Now().After(deadline) {
				b.Fatalf("batch %d not stored within a minute", it)
			}
			<-poll.C
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*batchSamples)/b.Elapsed().Seconds(), "samples/s")
	runtime.ReadMemStats(&after)
	n := float64(b.N * batchSamples)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/n, "allocs/sample")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/n, "B/sample")
}
