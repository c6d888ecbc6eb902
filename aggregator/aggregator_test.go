package aggregator_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/storage/metrics"
)

type fixture struct {
	conn  *bus.Conn
	store *metrics.Store
	reg   *prometheus.Registry
}

func newFixture(t *testing.T, partitions int) *fixture {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	srv, err := bus.StartEmbedded(bus.EmbeddedConfig{ListenAddress: "127.0.0.1:0"}, t.TempDir(), logger)
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	cfg := bus.DefaultConfig()
	cfg.Partitions = partitions
	cfg.Consumer.AckWait = 2 * time.Second
	conn, err := bus.Connect(cfg, srv, "test", logger, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, conn.EnsureStreams(ctx, bus.SignalMetrics))

	var mcfg metrics.Config
	mcfg.Retention = model.Duration(24 * time.Hour)
	mcfg.OutOfOrderWindow = model.Duration(time.Hour)
	mcfg.MaxMetadata = 100
	mcfg.MaxExemplars = 100
	store, err := metrics.Open(mcfg, t.TempDir(), logger, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	return &fixture{conn: conn, store: store, reg: prometheus.NewRegistry()}
}

func (f *fixture) start(t *testing.T, partitions int) *aggregator.Aggregator {
	t.Helper()
	agg, err := aggregator.New(aggregator.Config{MaxDecodedBytes: 1 << 20, SeriesCacheSize: 1000}, partitions, f.conn.ConsumePartition, f.conn.DeadLetter, f.store, slog.New(slog.DiscardHandler), f.reg)
	require.NoError(t, err)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), agg))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), agg) })
	return agg
}

func (f *fixture) publish(t *testing.T, partition int, id string, samples []codec.Sample) {
	t.Helper()
	enc := codec.NewMetricsEncoder(codec.CompressionZstd)
	for i := range samples {
		enc.Append(&samples[i])
	}
	data, err := enc.Encode(nil)
	require.NoError(t, err)
	require.NoError(t, f.conn.Publish(context.Background(), &bus.OutMsg{
		Signal: bus.SignalMetrics, Partition: partition, Encoding: enc.Encoding(), ID: id, Data: data,
	}))
}

// count returns the samples stored for series matching name.
func (f *fixture) count(t *testing.T, name string) int {
	t.Helper()
	q, err := f.store.Querier(0, 1<<62)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	n := 0
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			n++
		}
	}
	require.NoError(t, ss.Err())
	return n
}

func samples(name string, n int, t0 int64) []codec.Sample {
	out := make([]codec.Sample, n)
	for i := range out {
		out[i] = codec.Sample{Labels: labels.FromStrings("__name__", name, "i", fmt.Sprint(i)), T: t0, V: float64(i)}
	}
	return out
}

func TestConsumesEveryPartitionAndAcks(t *testing.T) {
	f := newFixture(t, 4)
	// Published before any aggregator runs: the partition consumers exist
	// from stream creation on, so interest retention keeps the messages.
	for p := range 4 {
		f.publish(t, p, fmt.Sprintf("b-%d", p), samples("m", 50, 1000+int64(p)))
	}
	msgs, _, err := f.conn.StreamState(context.Background(), bus.StreamName(bus.SignalMetrics))
	require.NoError(t, err)
	require.Equal(t, uint64(4), msgs)
	f.start(t, 4)
	require.Eventually(t, func() bool { return f.count(t, "m") == 200 }, 30*time.Second, 20*time.Millisecond)
	// Everything acknowledged: nothing pending on any partition's consumer.
	require.Eventually(t, func() bool {
		for p := range 4 {
			lag, err := f.conn.ConsumerLag(context.Background(), bus.SignalMetrics, bus.DurableName(bus.SignalMetrics, p, 0))
			if err != nil || lag != 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond)
	// Acknowledged messages leave the stream: it holds the backlog only.
	require.Eventually(t, func() bool {
		msgs, _, err := f.conn.StreamState(context.Background(), bus.StreamName(bus.SignalMetrics))
		return err == nil && msgs == 0
	}, 30*time.Second, 20*time.Millisecond)
}

func TestRedeliveryIsIdempotent(t *testing.T) {
	f := newFixture(t, 1)
	f.start(t, 1)
	s := samples("dup", 10, 5000)
	f.publish(t, 0, "first", s)
	// The same samples again under another message ID, as after an agent
	// restart that replays what it could not confirm.
	f.publish(t, 0, "second", s)
	require.Eventually(t, func() bool {
		return value(t, f.reg, "pharos_aggregator_samples_appended_total") == 20
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 10, f.count(t, "dup"))
}

// A batch redelivered after newer samples of its series were stored lands in
// the out-of-order window; identical samples must still count once.
func TestLateRedeliveryStoresOnce(t *testing.T) {
	f := newFixture(t, 1)
	f.start(t, 1)
	old := samples("late", 10, 100_000)
	f.publish(t, 0, "old", old)
	f.publish(t, 0, "new", samples("late", 10, 200_000))
	require.Eventually(t, func() bool { return f.count(t, "late") == 20 }, 30*time.Second, 20*time.Millisecond)
	f.publish(t, 0, "old-again", old)
	require.Eventually(t, func() bool {
		return value(t, f.reg, "pharos_aggregator_samples_appended_total") == 30
	}, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 20, f.count(t, "late"))
}

func TestUndecodableMessageDoesNotBlockItsPartition(t *testing.T) {
	f := newFixture(t, 1)
	f.start(t, 1)
	require.NoError(t, f.conn.Publish(context.Background(), &bus.OutMsg{
		Signal: bus.SignalMetrics, Partition: 0, Encoding: codec.EncodingPRW2Snappy, ID: "garbage", Data: []byte("\x05not a snappy block"),
	}))
	f.publish(t, 0, "good", samples("after", 5, 100))
	require.Eventually(t, func() bool { return f.count(t, "after") == 5 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 1.0, value(t, f.reg, "pharos_aggregator_invalid_messages_total"))
	msgs, _, err := f.conn.StreamState(context.Background(), bus.DeadLetterStream)
	require.NoError(t, err)
	require.Equal(t, uint64(1), msgs, "the undecodable message is kept in the dead-letter stream")
}

func TestResumesFromDurablePosition(t *testing.T) {
	f := newFixture(t, 1)
	agg := f.start(t, 1)
	f.publish(t, 0, "a", samples("r", 5, 100))
	require.Eventually(t, func() bool { return f.count(t, "r") == 5 }, 30*time.Second, 20*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), agg))

	f.publish(t, 0, "b", samples("r", 5, 200))
	f.reg = prometheus.NewRegistry()
	f.start(t, 1)
	require.Eventually(t, func() bool { return f.count(t, "r") == 10 }, 30*time.Second, 20*time.Millisecond)
	// Only the new message was delivered to the new consumer.
	require.Equal(t, 5.0, value(t, f.reg, "pharos_aggregator_samples_appended_total"))
}

// value reads a counter from a registry by name.
func value(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

var _ storage.AppendableV2 = (*metrics.Store)(nil)

// Ownership moves between aggregators with SetOwned: a partition-replica
// is consumed only while owned, a released one is picked up by its new
// owner from the durable position, and nothing is lost or stored twice.
func TestSetOwnedHandsPartitionsOver(t *testing.T) {
	f := newFixture(t, 2)
	a := f.start(t, 2)
	a.SetOwned([]aggregator.PartitionReplica{{Partition: 0}})
	require.Eventually(t, func() bool { return len(a.Owned()) == 1 }, 5*time.Second, 10*time.Millisecond)

	f.publish(t, 0, "p0-a", samples("owned", 10, 1000))
	f.publish(t, 1, "p1-a", samples("unowned", 10, 1000))
	require.Eventually(t, func() bool { return f.count(t, "owned") == 10 }, 30*time.Second, 20*time.Millisecond)
	lag, err := f.conn.ConsumerLag(context.Background(), bus.SignalMetrics, bus.DurableName(bus.SignalMetrics, 1, 0))
	require.NoError(t, err)
	require.EqualValues(t, 1, lag, "partition 1 is not owned: its message waits in the stream")
	require.Zero(t, f.count(t, "unowned"))

	// Partition 1 moves here and partition 0 away.
	a.SetOwned([]aggregator.PartitionReplica{{Partition: 1}})
	require.Eventually(t, func() bool { return f.count(t, "unowned") == 10 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, []aggregator.PartitionReplica{{Partition: 1}}, a.Owned())
	f.publish(t, 0, "p0-b", samples("owned", 10, 2000))
	f.publish(t, 1, "p1-b", samples("unowned", 10, 2000))
	require.Eventually(t, func() bool { return f.count(t, "unowned") == 20 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, 10, f.count(t, "owned"), "partition 0 was released")

	// Out-of-range partition-replicas are ignored, not fatal.
	a.SetOwned([]aggregator.PartitionReplica{{Partition: 0}, {Partition: 7}})
	require.Eventually(t, func() bool { return f.count(t, "owned") == 20 }, 30*time.Second, 20*time.Millisecond)
	require.Equal(t, []aggregator.PartitionReplica{{Partition: 0}}, a.Owned())
}
