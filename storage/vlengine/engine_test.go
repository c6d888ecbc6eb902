package vlengine

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	vmlogger "github.com/VictoriaMetrics/VictoriaMetrics/lib/logger"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

var errTestClosed = errors.New("test store closed")

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func testConfig(t testing.TB) Config {
	return Config{
		Path:                 filepath.Join(t.TempDir(), "store"),
		Retention:            7 * 24 * time.Hour,
		FutureRetention:      48 * time.Hour,
		FlushInterval:        time.Second,
		DurableBatchInterval: 200 * time.Millisecond,
	}
}

var testOptions = Options{Name: "test store", MetricPrefix: "pharos_test", Rows: "rows", Row: "row", RowsHelp: "test rows", ErrClosed: errTestClosed}

func TestConfigValidate(t *testing.T) {
	good := testConfig(t)
	require.NoError(t, good.Validate("storage.x"))
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"short retention":         {func(c *Config) { c.Retention = time.Hour }, "storage.x.retention: must be at least 24h"},
		"short future retention":  {func(c *Config) { c.FutureRetention = 0 }, "storage.x.future_retention"},
		"negative backfill":       {func(c *Config) { c.MaxBackfillAge = -1 }, "storage.x.max_backfill_age"},
		"backfill over retention": {func(c *Config) { c.MaxBackfillAge = c.Retention + 1 }, "must not exceed storage.x.retention"},
		"short flush interval":    {func(c *Config) { c.FlushInterval = time.Millisecond }, "storage.x.flush_interval"},
		"negative batch interval": {func(c *Config) { c.DurableBatchInterval = -1 }, "storage.x.durable_batch_interval"},
		"batch over flush":        {func(c *Config) { c.DurableBatchInterval = 2 * time.Second }, "must not exceed storage.x.flush_interval"},
		"negative max disk space": {func(c *Config) { c.MaxDiskSpaceUsageBytes = -1 }, "storage.x.max_disk_space_usage_bytes"},
		"negative min free space": {func(c *Config) { c.MinFreeDiskSpaceBytes = -1 }, "storage.x.min_free_disk_space_bytes"},
	} {
		t.Run(name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			require.ErrorContains(t, c.Validate("storage.x"), tc.want)
		})
	}
	c := good
	require.Equal(t, c.Retention, c.BackfillAge())
	c.MaxBackfillAge = time.Hour
	require.Equal(t, time.Hour, c.BackfillAge())
}

func TestTenantID(t *testing.T) {
	require.Equal(t, logstorage.TenantID{}, TenantID(""))
	require.NotEqual(t, TenantID("team-a"), TenantID("team-b"))
	require.NotEqual(t, TenantID("team-a"), TenantID(""))
	require.Equal(t, TenantID("team-a"), TenantID("team-a"))
}

func TestAddDay(t *testing.T) {
	var days []int64
	for _, ts := range []int64{1, 2, NsPerDay, 3, 2*NsPerDay + 5, NsPerDay + 1} {
		days = AddDay(days, ts)
	}
	require.Equal(t, []int64{0, 1, 2}, days)
}

func TestEngineLifecycle(t *testing.T) {
	cfg := testConfig(t)
	reg := prometheus.NewRegistry()
	e, err := Open(cfg, testOptions, testLogger(), reg)
	require.NoError(t, err)

	now := time.Now().UnixNano()
	minTS, maxTS := e.TimeWindow(now)
	require.Equal(t, now-int64(cfg.Retention)+int64(time.Minute), minTS)
	require.Equal(t, now+int64(cfg.FutureRetention), maxTS)
	start, end := e.SearchWindow(now)
	require.LessOrEqual(t, start, minTS-int64(time.Minute))
	require.Zero(t, start%NsPerDay)
	require.Greater(t, end, maxTS)

	_, err = Open(cfg, testOptions, testLogger(), prometheus.NewRegistry())
	require.Error(t, err, "the directory is locked by the open engine")
	_, err = Open(Config{}, testOptions, nil, nil)
	require.ErrorContains(t, err, "no path given for the test store")

	// One row, searchable and then durable.
	st, err := e.Acquire()
	require.NoError(t, err)
	require.False(t, e.ReadOnly(now))
	lr := logstorage.GetLogRows(nil, nil, nil, nil, "")
	ts := now - int64(time.Hour)
	tid, err := e.AppendTenantID("t")
	require.NoError(t, err)
	lr.MustAdd(tid, ts, []logstorage.Field{{Name: "app", Value: "a"}, {Name: "_msg", Value: "hello"}}, 1)
	st.MustAddRows(lr)
	logstorage.PutLogRows(lr)
	e.Release()
	e.MarkDirty(AddDay(nil, ts))
	e.DebugFlush()

	count := func(tenant string) int { return countRows(t, e, tenant, `_msg:="hello"`, ts, ts+1) }
	require.Equal(t, 1, count("t"))
	require.Zero(t, count("other"))
	require.NoError(t, e.WaitDurable(context.Background()))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q, err := ParseQuery("*", ts, ts+1)
	require.NoError(t, err)
	err = e.Query(ctx, "t", q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, func(uint, *logstorage.DataBlock) {})
	})
	require.ErrorIs(t, err, context.Canceled)

	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"pharos_test_compression_ratio", "pharos_test_stored_rows", "pharos_test_oldest_row_timestamp_seconds", "pharos_test_durable_rounds_total", "pharos_test_storage_dropped_rows_total"} {
		require.True(t, names[n], n)
	}

	e.Close()
	e.Close()
	_, err = e.Acquire()
	require.ErrorIs(t, err, errTestClosed)
	require.ErrorIs(t, e.WaitDurable(context.Background()), errTestClosed)
	require.ErrorIs(t, e.Query(context.Background(), "t", q, nil), errTestClosed)
	e.DebugFlush() // harmless
	mfs, err = reg.Gather()
	require.NoError(t, err)
	require.Empty(t, mfs, "Close unregisters the metrics")
}

func TestParseQueryBadInput(t *testing.T) {
	_, err := ParseQuery(`foo:(`, 0, 1)
	require.Error(t, err)
}

func TestVictoriaLogsLogRouted(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	RouteLogger(slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})))
	t.Cleanup(func() { RouteLogger(testLogger()) })
	vmlogger.Infof("housekeeping %d", 1)
	vmlogger.Warnf("something odd: %s", "tab\there")
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 1, "info is debug to Pharos: %s", out)
	var rec map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &rec))
	require.Equal(t, "WARN", rec["level"])
	require.Equal(t, "something odd: tab\there", rec["msg"])
	require.Equal(t, "victorialogs", rec["component"])
	require.Contains(t, rec["caller"], ".go:")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
