package vlogs

import (
	"context"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

func TestConfig(t *testing.T) {
	def := DefaultConfig()
	require.Equal(t, 7*24*time.Hour, def.Retention)
	require.Equal(t, time.Second, def.FlushInterval)
	require.NoError(t, def.Validate())

	var fromFlags Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fromFlags.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-storage.logs.retention=720h", "-storage.logs.flush-interval=5s", "-storage.logs.max-disk-space-usage-bytes=1000"}))
	require.Equal(t, 720*time.Hour, fromFlags.Retention)
	require.Equal(t, 5*time.Second, fromFlags.FlushInterval)
	require.Equal(t, int64(1000), fromFlags.MaxDiskSpaceUsageBytes)

	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"short retention":        {func(c *Config) { c.Retention = time.Hour }, "storage.logs.retention"},
		"short future retention": {func(c *Config) { c.FutureRetention = 0 }, "storage.logs.future_retention"},
		"negative backfill":      {func(c *Config) { c.MaxBackfillAge = -time.Second }, "storage.logs.max_backfill_age"},
		"backfill over retention": {func(c *Config) { c.MaxBackfillAge = c.Retention + time.Hour },
			"storage.logs.max_backfill_age"},
		"short flush interval":    {func(c *Config) { c.FlushInterval = time.Millisecond }, "storage.logs.flush_interval"},
		"negative batch interval": {func(c *Config) { c.DurableBatchInterval = -1 }, "storage.logs.durable_batch_interval"},
		"batch over flush":        {func(c *Config) { c.DurableBatchInterval = 2 * time.Second }, "storage.logs.durable_batch_interval"},
		"negative max disk space": {func(c *Config) { c.MaxDiskSpaceUsageBytes = -1 }, "storage.logs.max_disk_space_usage_bytes"},
		"negative min free space": {func(c *Config) { c.MinFreeDiskSpaceBytes = -1 }, "storage.logs.min_free_disk_space_bytes"},
		"every error is reported": {func(c *Config) { c.Retention = 0; c.FlushInterval = 0 }, "storage.logs.flush_interval"},
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			require.ErrorContains(t, err, tc.want)
			_, err = Open(c, nil, nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(DefaultConfig(), nil, nil)
	require.ErrorContains(t, err, "no path")

	s, reg := openTestStore(t)
	cfg := s.cfg
	_, err = Open(cfg, nil, prometheus.NewRegistry())
	require.Error(t, err, "the directory is locked by the open store")
	_ = reg
}

func TestAppendRejectsInvalid(t *testing.T) {
	s, reg := openTestStore(t)
	base := baseTime()
	good := logs.Stream{Labels: labels.FromStrings("app", "good"), Entries: []logs.Entry{entry(base, "kept?")}}
	for name, bad := range map[string]logs.Stream{
		"no labels":             {Labels: labels.EmptyLabels(), Entries: []logs.Entry{entry(base, "x")}},
		"only empty values":     {Labels: labels.FromStrings("app", ""), Entries: []logs.Entry{entry(base, "x")}},
		"empty name":            {Labels: labels.FromStrings("", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"_msg":                  {Labels: labels.FromStrings("_msg", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"_time":                 {Labels: labels.FromStrings("app", "a", "_time", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"_stream":               {Labels: labels.FromStrings("_stream", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"_stream_id":            {Labels: labels.FromStrings("_stream_id", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"metadata prefix":       {Labels: labels.FromStrings(metaPrefix+"x", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"equals sign":           {Labels: labels.FromStrings("a=b", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"closing brace":         {Labels: labels.FromStrings("a}", "x"), Entries: []logs.Entry{entry(base, "x")}},
		"long name":             {Labels: labels.FromStrings(strings.Repeat("n", 129), "x"), Entries: []logs.Entry{entry(base, "x")}},
		"empty metadata name":   {Labels: labels.FromStrings("app", "a"), Entries: []logs.Entry{entry(base, "x", "", "v")}},
		"long metadata name":    {Labels: labels.FromStrings("app", "a"), Entries: []logs.Entry{entry(base, "x", strings.Repeat("m", 123), "v")}},
		"duplicate label names": {Labels: labels.New(labels.Label{Name: "a", Value: "1"}, labels.Label{Name: "a", Value: "2"}), Entries: []logs.Entry{entry(base, "x")}},
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Append("", []logs.Stream{good, bad})
			require.ErrorIs(t, err, logs.ErrInvalid)
		})
	}
	searchable(s)
	got := selectAll(t, s, logs.SelectParams{
		Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchRegexp, "app", ".+")}, Start: base, End: base + 1,
	})
	require.Empty(t, got, "a rejected call stores nothing")
	n, ok := metricValue(t, reg, "pharos_logs_rejected_entries_total", map[string]string{"reason": "invalid"})
	require.True(t, ok)
	require.Equal(t, float64(2*14), n)

	// The longest names VictoriaLogs takes are fine.
	require.NoError(t, s.Append("", []logs.Stream{{
		Labels:  labels.FromStrings(strings.Repeat("n", 128), "x"),
		Entries: []logs.Entry{entry(base, "x", strings.Repeat("m", 128-len(metaPrefix)), "v")},
	}}))
}

func TestAppendTimeWindowAndSize(t *testing.T) {
	s, reg := openTestStore(t, func(c *Config) { c.Retention = 24 * time.Hour })
	now := time.Now()
	ls := labels.FromStrings("app", "a")
	require.NoError(t, s.Append("", []logs.Stream{{Labels: ls, Entries: []logs.Entry{
		entry(now.Add(-25*time.Hour).UnixNano(), "too old"),
		entry(now.Add(-24*time.Hour).UnixNano(), "too old: within the margin of the limit"),
		entry(now.Add(-23*time.Hour).UnixNano(), "old but kept"),
		entry(now.UnixNano(), "now"),
		entry(now.Add(47*time.Hour).UnixNano(), "ahead but kept"),
		entry(now.Add(72*time.Hour).UnixNano(), "too new"),
		entry(now.UnixNano()+1, strings.Repeat("x", 3<<20)),
	}}}))
	searchable(s)
	got := selectAll(t, s, logs.SelectParams{
		Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")},
		Start:    now.Add(-100 * time.Hour).UnixNano(), End: now.Add(100 * time.Hour).UnixNano(), Direction: logs.Forward,
	})
	require.Len(t, got, 1)
	var lines []string
	for _, e := range got[0].Entries {
		lines = append(lines, e.Line)
	}
	require.Equal(t, []string{"old but kept", "now", "ahead but kept"}, lines)
	for reason, want := range map[string]float64{"too_old": 2, "too_new": 1, "too_large": 1} {
		n, ok := metricValue(t, reg, "pharos_logs_rejected_entries_total", map[string]string{"reason": reason})
		require.True(t, ok)
		require.Equal(t, want, n, reason)
	}
	n, _ := metricValue(t, reg, "pharos_logs_appended_entries_total", nil)
	require.Equal(t, 3.0, n)
	n, _ = metricValue(t, reg, "pharos_logs_appended_bytes_total", nil)
	require.Equal(t, float64(len("old but kept")+len("now")+len("ahead but kept")), n)
	for _, reason := range []string{"too_old", "too_new"} {
		n, ok := metricValue(t, reg, "pharos_logs_storage_dropped_entries_total", map[string]string{"reason": reason})
		require.True(t, ok)
		require.Zero(t, n, "VictoriaLogs dropped nothing Append accepted")
	}
}

func TestLabels(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", testData(base)))
	// A stream with entries only outside the ranges below.
	require.NoError(t, s.Append("", []logs.Stream{{
		Labels: labels.FromStrings("app", "old", "zone", "eu"), Entries: []logs.Entry{entry(base-time.Hour.Nanoseconds(), "x")},
	}}))
	searchable(s)
	ctx := context.Background()
	all := logs.LabelParams{Start: base, End: base + 100}
	apiProd := logs.LabelParams{Start: base, End: base + 100, Matchers: []*labels.Matcher{
		mustMatcher(t, labels.MatchRegexp, "app", "api|web"), mustMatcher(t, labels.MatchNotEqual, "env", "dev"),
	}}
	onlyWorker := logs.LabelParams{Start: base + 12, End: base + 13}

	for name, tc := range map[string]struct {
		p          logs.LabelParams
		names      []string
		appValues  []string
		series     []labels.Labels
		envValues  []string
		emptyRange bool
	}{
		"all": {
			p:         all,
			names:     []string{"app", "env", "note", "team"},
			appValues: []string{"api", "web", "worker"},
			envValues: []string{"dev", "prod"},
			series: []labels.Labels{
				labels.FromStrings("app", "api", "env", "dev"),
				labels.FromStrings("app", "api", "env", "prod"),
				labels.FromStrings("app", "web", "env", "prod", "team", `x"y\z`),
				labels.FromStrings("app", "worker", "note", "a\nb"),
			},
		},
		"matchers": {
			p:         apiProd,
			names:     []string{"app", "env", "team"},
			appValues: []string{"api", "web"},
			envValues: []string{"prod"},
			series: []labels.Labels{
				labels.FromStrings("app", "api", "env", "prod"),
				labels.FromStrings("app", "web", "env", "prod", "team", `x"y\z`),
			},
		},
		"time range": {
			p:         onlyWorker,
			names:     []string{"app", "note"},
			appValues: []string{"worker"},
			series:    []labels.Labels{labels.FromStrings("app", "worker", "note", "a\nb")},
		},
		"empty range": {p: logs.LabelParams{Start: base, End: base}},
	} {
		t.Run(name, func(t *testing.T) {
			names, err := s.LabelNames(ctx, tc.p)
			require.NoError(t, err)
			require.Equal(t, tc.names, names)
			values, err := s.LabelValues(ctx, "app", tc.p)
			require.NoError(t, err)
			require.Equal(t, tc.appValues, values)
			values, err = s.LabelValues(ctx, "env", tc.p)
			require.NoError(t, err)
			require.Equal(t, tc.envValues, values)
			series, err := s.Series(ctx, tc.p)
			require.NoError(t, err)
			if len(tc.series) == 0 {
				require.Empty(t, series)
			} else {
				require.Equal(t, tc.series, series)
			}
		})
	}
	_, err := s.LabelNames(ctx, logs.LabelParams{Start: base, End: base - 1})
	require.Error(t, err)
}

func TestTenantsAreIsolated(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	ls := labels.FromStrings("app", "a")
	for _, tenant := range []string{"", "team-a", "team-b"} {
		require.NoError(t, s.Append(tenant, []logs.Stream{{Labels: ls, Entries: []logs.Entry{entry(base, "from "+tenant)}}}))
		require.NoError(t, s.Append(tenant, []logs.Stream{{Labels: labels.FromStrings("only", tenant+"x"), Entries: []logs.Entry{entry(base, "x")}}}))
	}
	searchable(s)
	ctx := context.Background()
	for _, tenant := range []string{"", "team-a", "team-b", "nobody"} {
		got := selectAll(t, s, logs.SelectParams{Tenant: tenant, Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}, Start: base, End: base + 1})
		values, err := s.LabelValues(ctx, "only", logs.LabelParams{Tenant: tenant, Start: base, End: base + 1})
		require.NoError(t, err)
		if tenant == "nobody" {
			require.Empty(t, got)
			require.Empty(t, values)
			continue
		}
		require.Equal(t, []logs.Stream{{Labels: ls, Entries: []logs.Entry{entry(base, "from "+tenant)}}}, got, tenant)
		require.Equal(t, []string{tenant + "x"}, values)
	}
	require.NotEqual(t, vlengine.TenantID("team-a"), vlengine.TenantID("team-b"))
	require.NotEqual(t, vlengine.TenantID("team-a"), vlengine.TenantID(""))
	require.Equal(t, vlengine.TenantID("team-a"), vlengine.TenantID("team-a"))
}

func TestReopenKeepsData(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "logs")
	base := baseTime()
	ls := labels.FromStrings("app", "a")
	p := logs.SelectParams{Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}, Start: base, End: base + 10, Direction: logs.Forward}

	reg := prometheus.NewRegistry()
	s, err := Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, s.Append("", []logs.Stream{{Labels: ls, Entries: []logs.Entry{entry(base, "closed", "k", "v")}}}))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close is harmless")
	require.ErrorIs(t, s.Append("", []logs.Stream{{Labels: ls, Entries: []logs.Entry{entry(base, "x")}}}), ErrClosed)
	_, err = s.Select(context.Background(), p)
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.LabelNames(context.Background(), logs.LabelParams{Start: base, End: base + 1})
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.WaitDurable(context.Background()), ErrClosed)

	// The metrics were unregistered, so the same registry takes them again.
	s, err = Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.Equal(t, []logs.Stream{{Labels: ls, Entries: []logs.Entry{entry(base, "closed", "k", "v")}}}, selectAll(t, s, p))
}

func TestCompressionRatio(t *testing.T) {
	s, reg := openTestStore(t)
	base := baseTime()
	var es []logs.Entry
	for i := range 20000 {
		es = append(es, entry(base+int64(i), "GET /api/v1/users?page=1 200 OK user=alice duration=12ms", "level", "info"))
	}
	require.NoError(t, s.Append("", []logs.Stream{{Labels: labels.FromStrings("app", "api"), Entries: es}}))
	searchable(s)
	ratio, ok := metricValue(t, reg, "pharos_logs_compression_ratio", nil)
	require.True(t, ok)
	require.Greater(t, ratio, 1.0)
	compressed, _ := metricValue(t, reg, "pharos_logs_stored_compressed_bytes", nil)
	uncompressed, _ := metricValue(t, reg, "pharos_logs_stored_uncompressed_bytes", nil)
	require.Positive(t, compressed)
	require.InDelta(t, uncompressed/compressed, ratio, 1e-9)
	rows, _ := metricValue(t, reg, "pharos_logs_stored_entries", map[string]string{"location": "memory"})
	filed, _ := metricValue(t, reg, "pharos_logs_stored_entries", map[string]string{"location": "file"})
	require.Equal(t, 20000.0, rows+filed)
}

func TestSelectHonoursCancellation(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", testData(base)))
	searchable(s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Select(ctx, logs.SelectParams{Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchRegexp, "app", ".+")}, Start: base, End: base + 100})
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	_, err = s.Series(ctx, logs.LabelParams{Start: base, End: base + 100})
	require.ErrorIs(t, err, context.Canceled)
}
