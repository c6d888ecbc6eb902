package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
)

// testLogger shows warnings and errors on stderr, which go test prints for
// failing or verbose runs.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testSpoolConfig() spool.Config { return spool.Config{MaxBytes: 64 << 20, SegmentBytes: 1 << 20} }

// appendRound commits one sample for each of n series at timestamp round,
// as one scrape would.
func appendRound(t *testing.T, b *Metrics, round, n int) {
	t.Helper()
	app := b.AppenderV2(context.Background())
	for i := range n {
		_, err := app.Append(0, series(i), 0, int64(round), float64(round), nil, nil, storage.AOptions{})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// metricValue reads a counter or gauge from reg (0 when absent), summed
// over label values that contain every want pair.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, want ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(want); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == want[i] && lp.GetValue() == want[i+1] {
						found = true
					}
				}
				if !found {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func dropped(b *Metrics, reason string) float64 {
	return testutil.ToFloat64(b.m.dropped.WithLabelValues(reason))
}

// requireNoDrops checks that no sample was given up on, for any reason.
func requireNoDrops(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	require.Zero(t, metricValue(t, reg, "pharos_agent_dropped_samples_total"))
}

// spoolContents opens a stopped publisher's spool and returns its batches,
// oldest first.
func spoolContents(t *testing.T, dir string) []spooled {
	t.Helper()
	sp, err := spool.Open(testSpoolConfig(), dir, nil, nil, nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, sp.Close()) }()
	var out []spooled
	for {
		rec, err := sp.Read(nil)
		if errors.Is(err, spool.ErrEmpty) {
			return out
		}
		require.NoError(t, err)
		var s spooled
		require.NoError(t, parseRecord(rec.Data, &s))
		require.Equal(t, rec.Samples, s.samples)
		out = append(out, s)
	}
}

func samplesIn(batches []spooled) int {
	n := 0
	for _, b := range batches {
		n += b.samples
	}
	return n
}

func TestFailedPublishGoesToSpoolAndIsReplayed(t *testing.T) {
	r := &recorder{samples: map[int][]string{}, err: fmt.Errorf("publish: %w", bus.ErrNotConnected)}
	cfg := testConfig()
	cfg.Concurrency = 1
	cfg.FlushInterval = 20 * time.Millisecond
	dir := t.TempDir()
	b, reg := start(t, cfg, 2, r, WithSpool(testSpoolConfig(), dir))
	for round := 1; round <= 10; round++ {
		appendRound(t, b, round, 30)
	}
	require.Eventually(t, func() bool {
		return metricValue(t, reg, "pharos_agent_spool_records", "signal", "metrics") > 0 &&
			testutil.ToFloat64(b.m.spooling) == 1
	}, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, r.count())

	r.mu.Lock()
	r.err = nil
	r.mu.Unlock()
	require.Eventually(t, func() bool { return r.count() == 300 }, 20*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(b.m.spooling) == 0 && metricValue(t, reg, "pharos_agent_spool_records") == 0
	}, 10*time.Second, 5*time.Millisecond)
	// Direct publishing again.
	appendRound(t, b, 11, 30)
	require.Eventually(t, func() bool { return r.count() == 330 }, 10*time.Second, 5*time.Millisecond)

	// Every series got every round once, in order.
	r.mu.Lock()
	for p, ss := range r.samples {
		last := map[string]int{}
		for _, s := range ss {
			name, ts, _ := strings.Cut(s, "@")
			var round int
			_, err := fmt.Sscanf(ts, "%d=", &round)
			require.NoError(t, err)
			require.Equal(t, last[name]+1, round, "partition %d series %s", p, name)
			last[name] = round
		}
	}
	r.mu.Unlock()
	require.Equal(t, 330.0, testutil.ToFloat64(b.m.published))
	require.Positive(t, testutil.ToFloat64(b.m.retries))
	requireNoDrops(t, reg)
}

// A bus that hangs rather than failing: the drain timeout bounds shutdown,
// and what could not be published is spooled, not dropped.
func TestShutdownWithHangingBusSpoolsTheRest(t *testing.T) {
	r := &recorder{samples: map[int][]string{}, hang: true}
	cfg := testConfig()
	cfg.DrainTimeout = 200 * time.Millisecond
	dir := t.TempDir()
	b, reg := start(t, cfg, 4, r, WithSpool(testSpoolConfig(), dir))
	for round := 1; round <= 5; round++ {
		appendRound(t, b, round, 100) // full batches and partial ones
	}
	began := time.Now()
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	require.Less(t, time.Since(began), 5*time.Second)
	requireNoDrops(t, reg)

	batches := spoolContents(t, dir)
	require.Equal(t, 500, samplesIn(batches))
	for _, s := range batches {
		require.True(t, strings.HasPrefix(s.msg.ID, b.idPrefix), "message IDs are kept: %s", s.msg.ID)
		require.Equal(t, bus.SignalMetrics, s.msg.Signal)
	}
}

func TestTooLargeBatchIsDroppedAndCounted(t *testing.T) {
	r := &recorder{samples: map[int][]string{}, err: fmt.Errorf("publish: %w", bus.ErrMessageTooLarge)}
	b, reg := start(t, testConfig(), 1, r, WithSpool(testSpoolConfig(), t.TempDir()))
	appendRound(t, b, 1, 100)
	require.Eventually(t, func() bool { return dropped(b, reasonTooLarge) == 100 }, 10*time.Second, 5*time.Millisecond)
	require.Zero(t, metricValue(t, reg, "pharos_agent_spool_appended_records_total"))
}

// Without a spool, batches wait in memory, bounded: the oldest is dropped
// past the bound, and what is left at shutdown too; all of it counted.
func TestMemoryBacklogIsBoundedAndCounted(t *testing.T) {
	r := &recorder{samples: map[int][]string{}, err: errors.New("nats: timeout")}
	cfg := testConfig()
	cfg.QueueSize = 2
	cfg.MaxBatchSamples = 10
	b, _ := start(t, cfg, 1, r)
	for round := 1; round <= 10; round++ {
		appendRound(t, b, round, 10) // a full batch each
	}
	require.Eventually(t, func() bool { return dropped(b, reasonQueueFull) > 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	require.Equal(t, 100.0, dropped(b, reasonQueueFull)+dropped(b, reasonShutdown))
	require.Equal(t, 20.0, dropped(b, reasonShutdown), "the last QueueSize batches were held")
}

func TestSpoolConfigIsValidated(t *testing.T) {
	_, err := NewMetrics(testConfig(), 1, "a", nil, testLogger(), nil, WithSpool(spool.Config{MaxBytes: 1, SegmentBytes: 1 << 20}, t.TempDir()))
	require.ErrorContains(t, err, "agent.spool.max_bytes")
}

// A spool that cannot be opened fails the service at start.
func TestSpoolOpenFailureFailsStart(t *testing.T) {
	file := t.TempDir() + "/file"
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	b, err := NewMetrics(testConfig(), 1, "a", (&recorder{}).publish, testLogger(), nil, WithSpool(testSpoolConfig(), file+"/spool"))
	require.NoError(t, err)
	require.Error(t, services.StartAndAwaitRunning(context.Background(), b))
}
