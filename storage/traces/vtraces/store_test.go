package vtraces

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/internal/testutil"
	"github.com/pharos-obs/pharos/storage/traces"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

func TestConfig(t *testing.T) {
	def := DefaultConfig()
	require.Equal(t, 168*time.Hour, def.Retention)
	require.Equal(t, time.Second, def.FlushInterval)
	require.Equal(t, time.Second, def.DurableBatchInterval)
	require.NoError(t, def.Validate())

	var fromFlags Config
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	fromFlags.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-storage.traces.retention=720h", "-storage.traces.flush-interval=5s", "-storage.traces.max-disk-space-usage-bytes=1000"}))
	require.Equal(t, 720*time.Hour, fromFlags.Retention)
	require.Equal(t, 5*time.Second, fromFlags.FlushInterval)
	require.Equal(t, int64(1000), fromFlags.MaxDiskSpaceUsageBytes)

	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"short retention":         {func(c *Config) { c.Retention = time.Hour }, "storage.traces.retention"},
		"short future retention":  {func(c *Config) { c.FutureRetention = 0 }, "storage.traces.future_retention"},
		"negative backfill":       {func(c *Config) { c.MaxBackfillAge = -time.Second }, "storage.traces.max_backfill_age"},
		"short flush interval":    {func(c *Config) { c.FlushInterval = time.Millisecond }, "storage.traces.flush_interval"},
		"batch over flush":        {func(c *Config) { c.DurableBatchInterval = 2 * time.Second }, "storage.traces.durable_batch_interval"},
		"negative min free space": {func(c *Config) { c.MinFreeDiskSpaceBytes = -1 }, "storage.traces.min_free_disk_space_bytes"},
		"no attribute fields":     {func(c *Config) { c.MaxAttributeFields = 0 }, "storage.traces.max_attribute_fields"},
		"too many attr fields":    {func(c *Config) { c.MaxAttributeFields = 1990 }, "storage.traces.max_attribute_fields"},
		"every error is reported": {func(c *Config) { c.Retention = 0; c.FlushInterval = 0 }, "storage.traces.flush_interval"},
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			require.ErrorContains(t, c.Validate(), tc.want)
			_, err := Open(c, nil, nil)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open(DefaultConfig(), nil, nil)
	require.ErrorContains(t, err, "no path")

	s, reg := openTestStore(t)
	_, err = Open(s.cfg, nil, prometheus.NewRegistry())
	require.Error(t, err, "the directory is locked by the open store")
	// The same registry does not take the metrics twice.
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "other")
	_, err = Open(cfg, nil, reg)
	require.ErrorContains(t, err, "register")
}

func TestAppendRejects(t *testing.T) {
	s, reg := openTestStore(t, func(c *Config) { c.Retention = 24 * time.Hour })
	now := time.Now()
	td := build(t, now,
		spec{trace: 1, id: 1, service: "a", name: "too old", start: -25 * time.Hour},
		spec{trace: 1, id: 2, service: "a", name: "too old: within the margin", start: -24 * time.Hour},
		spec{trace: 1, id: 3, service: "a", name: "old but kept", start: -23 * time.Hour},
		spec{trace: 1, id: 4, service: "a", name: "now"},
		spec{trace: 1, id: 5, service: "a", name: "ahead but kept", start: 47 * time.Hour},
		spec{trace: 1, id: 6, service: "a", name: "too new", start: 72 * time.Hour},
		spec{trace: 1, id: 7, service: "a", name: "too large", attrs: map[string]any{"big": strings.Repeat("x", 3<<20)}},
	)
	spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
	bad := spans.AppendEmpty()
	bad.SetName("no trace ID")
	bad.SetSpanID(spanID(1, 8))
	bad.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	bad = spans.AppendEmpty()
	bad.SetName("no span ID")
	bad.SetTraceID(pcommon.TraceID(traceID(1)))
	bad.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
	require.NoError(t, s.Append("", td))
	require.NoError(t, s.Append("", ptrace.NewTraces()), "nothing to append")
	searchable(s)

	got, err := s.Trace(context.Background(), "", traceID(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	var names []string
	for _, sp := range spansOf(got) {
		names = append(names, sp.Name())
	}
	require.Equal(t, []string{"old but kept", "now", "ahead but kept"}, names)
	for reason, want := range map[string]float64{"too_old": 2, "too_new": 1, "too_large": 1, "invalid": 2} {
		n, ok := metricValue(t, reg, "pharos_traces_rejected_spans_total", map[string]string{"reason": reason})
		require.True(t, ok)
		require.Equal(t, want, n, reason)
	}
	n, _ := metricValue(t, reg, "pharos_traces_appended_spans_total", nil)
	require.Equal(t, 3.0, n)
	for _, reason := range []string{"too_old", "too_new"} {
		n, ok := metricValue(t, reg, "pharos_traces_storage_dropped_spans_total", map[string]string{"reason": reason})
		require.True(t, ok)
		require.Zero(t, n, "VictoriaLogs dropped nothing Append accepted")
	}
}

func spansOf(td ptrace.Traces) []ptrace.Span {
	var out []ptrace.Span
	for i := range td.ResourceSpans().Len() {
		rs := td.ResourceSpans().At(i)
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			for k := range ss.Spans().Len() {
				out = append(out, ss.Spans().At(k))
			}
		}
	}
	return out
}

// TestAttributesThatAreNotFields checks attributes VictoriaLogs cannot
// hold as fields: they are not searchable, but Trace returns them.
func TestAttributesThatAreNotFields(t *testing.T) {
	s, reg := openTestStore(t)
	base := baseTime()
	long := strings.Repeat("k", maxFieldNameSize)
	attrs := map[string]any{
		"bytes": []byte("xy"), "list": []any{"a"}, "map": map[string]any{"a": "b"},
		long: "v", "": "empty key", "ok": "yes", "empty": "",
	}
	const nMany = 2010
	many := map[string]any{}
	for i := range nMany {
		many[fmt.Sprintf("a%04d", i)] = int64(i)
	}
	td := build(t, base,
		spec{trace: 1, id: 1, service: "s", name: "odd", attrs: attrs},
		spec{trace: 2, id: 1, service: "s", name: "many", start: time.Second, attrs: many},
	)
	// A duplicated key, which pdata keeps as received.
	sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	sp.Attributes().PutStr("dup", "first")
	require.NoError(t, s.Append("", td))
	searchable(s)
	ctx := context.Background()

	got, err := s.Trace(ctx, "", traceID(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, normalise(t, onlyTrace(td, traceID(1))), normalise(t, got))
	got, err = s.Trace(ctx, "", traceID(2), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, nMany, spansOf(got)[0].Attributes().Len(), "every attribute is kept")

	// span.ok, span.empty (no field: empty) and span.dup took three of the
	// 1000 names.
	limit := DefaultConfig().MaxAttributeFields
	names, err := s.TagNames(ctx, traces.TagParams{Scope: "span"})
	require.NoError(t, err)
	require.Len(t, names["span"], limit-1)
	require.Contains(t, names["span"], "ok")
	require.Contains(t, names["span"], "dup")
	indexed := map[string]bool{}
	for _, n := range names["span"] {
		indexed[n] = true
	}
	var spilled string
	for k := range many {
		if !indexed[k] {
			spilled = k
			break
		}
	}
	for reason, want := range map[string]float64{"type": 3, "name_too_long": 1, "too_many_names": float64(nMany - (limit - 3))} {
		n, _ := metricValue(t, reg, "pharos_traces_unindexed_attributes_total", map[string]string{"reason": reason})
		require.Equal(t, want, n, reason)
	}

	for c, want := range map[traces.Condition][]uint64{
		span("ok", "=", "yes"):                        {1},
		span("empty", "=", ""):                        {},
		span("bytes", "=~", ".*"):                     {},
		span(long, "=", "v"):                          {},
		span("dup", "=", "first"):                     {1},
		span(names["span"][5], "=~", ".+"):            {2},
		span(spilled, "=", fmt.Sprint(many[spilled])): {},
		in("name", "=~", "odd|many"):                  {2, 1},
	} {
		hits, err := s.Search(ctx, traces.SearchParams{Any: all(c)})
		require.NoError(t, err)
		require.Equal(t, want, ids(hits), "%+v", c)
	}
}

// TestManyAttributeNames stores spans of one service with more distinct
// attribute names between them than a VictoriaLogs block takes: none is
// lost, and the names over the limit are not fields.
func TestManyAttributeNames(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "traces")
	cfg.MaxAttributeFields = 5
	base := baseTime()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	var specs []spec
	for i := range uint64(300) {
		attrs := map[string]any{}
		for j := range 10 {
			attrs[fmt.Sprintf("key-%d-%d", i, j)] = "v"
		}
		if i < 2 {
			attrs = map[string]any{fmt.Sprintf("early-%d", i): "v"}
		}
		specs = append(specs, spec{trace: i + 1, id: 1, service: "svc", name: "x", start: time.Duration(i) * time.Millisecond, attrs: attrs})
	}
	// Each batch its own block of the stream.
	for i := 0; i < len(specs); i += 50 {
		require.NoError(t, s.Append("", build(t, base, specs[i:i+50]...)))
		searchable(s)
	}
	hits, err := s.Search(ctx, traces.SearchParams{Limit: 1000})
	require.NoError(t, err)
	require.Len(t, hits, 300, "no span was dropped")
	names, err := s.TagNames(ctx, traces.TagParams{Scope: "span"})
	require.NoError(t, err)
	require.Len(t, names["span"], 5)
	require.Contains(t, names["span"], "early-0")
	require.NoError(t, s.Close())

	// After a restart, the names the service's day has are known: no new
	// one is admitted, but the known ones still are fields.
	s, err = Open(cfg, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.NoError(t, s.Append("", build(t, base,
		spec{trace: 1000, id: 1, service: "svc", name: "late", start: time.Second, attrs: map[string]any{"new": "v", "early-0": "again"}},
		spec{trace: 1001, id: 1, service: "other", name: "late", start: time.Second, attrs: map[string]any{"new": "v"}},
	)))
	searchable(s)
	hits, err = s.Search(ctx, traces.SearchParams{Any: all(span("early-0", "=", "again"))})
	require.NoError(t, err)
	require.Equal(t, []uint64{1000}, ids(hits))
	hits, err = s.Search(ctx, traces.SearchParams{Any: all(span("new", "=", "v"))})
	require.NoError(t, err)
	require.Equal(t, []uint64{1001}, ids(hits), "another service has room")
}

func TestReopenKeepsData(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "traces")
	base := baseTime()
	td := richTraces(t, base)
	ctx := context.Background()

	reg := prometheus.NewRegistry()
	s, err := Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	require.NoError(t, s.Append("", td))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "a second Close is harmless")
	require.ErrorIs(t, s.Append("", td), ErrClosed)
	_, err = s.Trace(ctx, "", traceID(1), time.Time{}, time.Time{})
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Search(ctx, traces.SearchParams{})
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.TagNames(ctx, traces.TagParams{})
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.TagValues(ctx, "name", traces.TagParams{})
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Services(ctx, "", time.Time{}, time.Time{})
	require.ErrorIs(t, err, ErrClosed)
	_, err = s.Operations(ctx, "", "x", time.Time{}, time.Time{})
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, s.WaitDurable(ctx), ErrClosed)

	// The metrics were unregistered, so the same registry takes them again.
	s, err = Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	got, err := s.Trace(ctx, "", traceID(1), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Equal(t, normalise(t, onlyTrace(td, traceID(1))), normalise(t, got))
	hits, err := s.Search(ctx, traces.SearchParams{Any: all(in("status", "=", "error"))})
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, ids(hits))
}

func TestWaitDurable(t *testing.T) {
	s, reg := openTestStore(t)
	ctx := context.Background()
	base := baseTime()
	rounds := func(result string) float64 {
		n, ok := metricValue(t, reg, "pharos_traces_durable_rounds_total", map[string]string{"result": result})
		require.True(t, ok)
		return n
	}
	appendOne := func(i uint64) {
		require.NoError(t, s.Append("", build(t, base, spec{trace: i, id: 1, service: "svc", name: "x", start: time.Duration(i)})))
	}

	require.NoError(t, s.WaitDurable(ctx), "nothing appended: nothing to wait for")
	require.Zero(t, rounds(vlengine.ResultFlushed)+rounds(vlengine.ResultDeadline)+rounds(vlengine.ResultEmpty))

	appendOne(1)
	require.NoError(t, s.WaitDurable(ctx))
	require.Equal(t, 1.0, rounds(vlengine.ResultDeadline), "a new stream waits for the index flusher")
	appendOne(2)
	require.NoError(t, s.WaitDurable(ctx))
	require.Equal(t, 1.0, rounds(vlengine.ResultFlushed), "a known stream is proven by the forced flush")

	// Concurrent callers share rounds.
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range uint64(callers) {
		wg.Go(func() {
			if err := s.Append("", build(t, base, spec{trace: 100 + i, id: 1, service: "svc", name: "c"})); err != nil {
				errs <- err
				return
			}
			errs <- s.WaitDurable(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Zero(t, rounds(vlengine.ResultError))

	// The spans are on disk: a reopened store has them.
	cfg := s.cfg
	require.NoError(t, s.Close())
	s2, err := Open(cfg, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s2.Close()) })
	hits, err := s2.Search(ctx, traces.SearchParams{Limit: 100})
	require.NoError(t, err)
	require.Len(t, hits, 2+callers)
}

func TestCloseReleasesWaiters(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	// A new stream makes the round wait for the index flusher, so Close
	// comes first.
	require.NoError(t, s.Append("", build(t, base, spec{trace: 1, id: 1, service: "new", name: "x"})))
	done := make(chan error, 1)
	go func() { done <- s.WaitDurable(context.Background()) }()
	testutil.Poll(t, 10*time.Second, 5*time.Millisecond, func() (bool, string) {
		return s.eng.Busy(), "no round running"
	})
	require.NoError(t, s.Close())
	require.NoError(t, <-done, "Close wrote everything")
}

func TestCompressionRatio(t *testing.T) {
	s, reg := openTestStore(t)
	base := baseTime()
	td := benchTraces(2000, 10, base)
	require.NoError(t, s.Append("", td))
	searchable(s)
	ratio, ok := metricValue(t, reg, "pharos_traces_compression_ratio", nil)
	require.True(t, ok)
	require.Greater(t, ratio, 1.0)
	compressed, _ := metricValue(t, reg, "pharos_traces_stored_compressed_bytes", nil)
	uncompressed, _ := metricValue(t, reg, "pharos_traces_stored_uncompressed_bytes", nil)
	require.Positive(t, compressed)
	require.InDelta(t, uncompressed/compressed, ratio, 1e-9)
	rows, _ := metricValue(t, reg, "pharos_traces_stored_spans", map[string]string{"location": "memory"})
	filed, _ := metricValue(t, reg, "pharos_traces_stored_spans", map[string]string{"location": "file"})
	require.Equal(t, 20000.0, rows+filed)
	t.Logf("%d spans: %.0f bytes compressed (%.1f per span), ratio %.2f", 20000, compressed, compressed/20000, ratio)
}

func TestQueriesHonourCancellation(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	require.NoError(t, s.Append("", searchData(t, base)))
	searchable(s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Trace(ctx, "", traceID(1), time.Time{}, time.Time{})
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.Search(ctx, traces.SearchParams{})
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.TagValues(ctx, "name", traces.TagParams{})
	require.ErrorIs(t, err, context.Canceled)
}

// AppendWire keeps nothing of the bytes it read: the aggregator reuses
// its message buffer for the next message at once.
func TestAppendWireCopies(t *testing.T) {
	s, _ := openTestStore(t)
	td := richTraces(t, baseTime())
	wire, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	var tr otlpwire.Traces
	require.NoError(t, tr.Read(wire))
	require.NoError(t, s.AppendWire("", &tr))
	for i := range wire {
		wire[i] = 0x5A
	}
	searchable(s)
	ctx := context.Background()
	for _, id := range []uint64{1, 2} {
		got, err := s.Trace(ctx, "", traceID(id), time.Time{}, time.Time{})
		require.NoError(t, err)
		require.Equal(t, normalise(t, onlyTrace(td, traceID(id))), normalise(t, got), "trace %d", id)
	}
	hits, err := s.Search(ctx, traces.SearchParams{Any: all(in("status", "=", "error"))})
	require.NoError(t, err)
	require.Equal(t, []uint64{1}, ids(hits))
}
