package aggregator_test

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/storage/metrics"
)

func testOverrides(t *testing.T, yaml string) *overrides.Overrides {
	t.Helper()
	var c overrides.Config
	fs := flag.NewFlagSet("t", flag.PanicOnError)
	c.RegisterFlags(fs)
	c.OverridesFile = filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(c.OverridesFile, []byte(yaml), 0o600))
	o, err := overrides.New(c, overrides.Limits{})
	require.NoError(t, err)
	return o
}

// The aggregator holds a tenant to its share of max_series: series beyond
// are dropped and counted, the messages acked, other tenants untouched.
func TestTenantSeriesLimitAtTheAggregator(t *testing.T) {
	f := newFixture(t, 2)
	o := testOverrides(t, "overrides:\n  small:\n    max_series: 10\n  shared:\n    max_series: 100\n")
	agg, err := aggregator.New(aggregator.Config{MaxDecodedBytes: 1 << 20, SeriesCacheSize: 1000}, 2, f.conn.ConsumePartition, f.conn.DeadLetter, f.store, slog.New(slog.DiscardHandler), f.reg)
	require.NoError(t, err)
	agg.WithTenantLimits(o, overrides.NewDiscards(f.reg, "aggregator"))
	f.store.SetSeriesLimit(agg.SeriesLimit)

	// Owning one partition of two: about half of the limit, with slack.
	agg.SetOwned([]aggregator.PartitionReplica{{Partition: 1}})
	require.Equal(t, 82, agg.SeriesLimit("shared"))
	require.Equal(t, 0, agg.SeriesLimit("anyone"))
	agg.SetOwned([]aggregator.PartitionReplica{{Partition: 0}, {Partition: 1}})
	require.Equal(t, 100, agg.SeriesLimit("shared"))
	require.Equal(t, 10, agg.SeriesLimit("small"))

	require.NoError(t, services.StartAndAwaitRunning(context.Background(), agg))
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), agg) })
	for _, id := range []string{"small", "other"} {
		enc := codec.NewMetricsEncoder(codec.CompressionZstd)
		ss := samples("m", 30, 1000)
		for i := range ss {
			enc.Append(&ss[i])
		}
		data, err := enc.Encode(nil)
		require.NoError(t, err)
		require.NoError(t, f.conn.Publish(context.Background(), &bus.OutMsg{
			Signal: bus.SignalMetrics, Partition: 0, Encoding: enc.Encoding(), ID: "b-" + id, Data: data, Tenant: id,
		}))
	}
	require.Eventually(t, func() bool { return f.store.TenantSeries("other") == 30 }, 30*time.Second, 20*time.Millisecond)
	require.Eventually(t, func() bool {
		lag, err := f.conn.ConsumerLag(context.Background(), bus.SignalMetrics, bus.DurableName(bus.SignalMetrics, 0, 0))
		return err == nil && lag == 0
	}, 30*time.Second, 20*time.Millisecond, "the message with refused series is acked, not redelivered")
	require.Equal(t, 10, f.store.TenantSeries("small"))
	require.Equal(t, 20.0, value(t, f.reg, "pharos_aggregator_tenant_limited_total"))
}

var _ metrics.SeriesLimit = (*aggregator.Aggregator)(nil).SeriesLimit
