package vlogs

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
)

// testLogger shows warnings and errors of the store (and of VictoriaLogs).
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// openTestStore opens a store in a temporary directory, closed at cleanup.
func openTestStore(t testing.TB, edit ...func(*Config)) (*Store, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "logs")
	for _, e := range edit {
		e(&cfg)
	}
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s, reg
}

// searchable makes appended entries visible to queries at once.
func searchable(s *Store) { s.eng.DebugFlush() }

// baseTime is an hour ago, well inside the default retention.
func baseTime() int64 { return time.Now().Add(-time.Hour).Truncate(time.Second).UnixNano() }

func entry(ts int64, line string, md ...string) logs.Entry {
	return logs.Entry{Timestamp: ts, Line: line, Metadata: labels.FromStrings(md...)}
}

func mustMatcher(t testing.TB, typ labels.MatchType, name, value string) *labels.Matcher {
	t.Helper()
	m, err := labels.NewMatcher(typ, name, value)
	require.NoError(t, err)
	return m
}

// metricValue returns the value of the metric family name whose labels include
// want, from reg.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

func selectAll(t testing.TB, s *Store, p logs.SelectParams) []logs.Stream {
	t.Helper()
	got, err := s.Select(context.Background(), p)
	require.NoError(t, err)
	return got
}
