package overrides

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func defaultConfig(t *testing.T) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("t", flag.PanicOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	return c
}

var labelDefaults = Limits{MaxLabelNamesPerSeries: 30, MaxLabelNameLength: 1024, MaxLabelValueLength: 2048, MaxLabelNamesPerStream: 15}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "overrides.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"negative series", func(c *Config) { c.MaxSeries = -1 }, "limits.max_series: must not be negative"},
		{"rate without burst", func(c *Config) { c.IngestionRate = 10 }, "limits.ingestion_burst_size: must be positive when ingestion_rate is set"},
		{"log rate without burst", func(c *Config) { c.LogsIngestionRateBytes = 10 }, "limits.logs_ingestion_burst_bytes"},
		{"trace rate without burst", func(c *Config) { c.TracesIngestionRateBytes = 10 }, "limits.traces_ingestion_burst_bytes"},
		{"short window", func(c *Config) { c.ActiveWindow = time.Second }, "limits.active_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig(t)
			tc.edit(&c)
			err := c.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestOverridesFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		wantErr string
		check   func(*testing.T, *Overrides)
	}{
		{
			name: "a tenant's unset limits are the defaults",
			content: `overrides:
  team-a:
    max_series: 100
    ingestion_rate: 50
    ingestion_burst_size: 500
  team-b:
    max_label_names_per_series: 5
  team-c:
`,
			check: func(t *testing.T, o *Overrides) {
				a := o.For("team-a")
				require.Equal(t, 100, a.MaxSeries)
				require.Equal(t, 50.0, a.IngestionRate)
				require.Equal(t, 30, a.MaxLabelNamesPerSeries, "inherited")
				require.Equal(t, 7, a.MaxStreams, "inherited from the section's default")
				require.Equal(t, 5, o.For("team-b").MaxLabelNamesPerSeries)
				require.Equal(t, 0, o.For("team-b").MaxSeries)
				require.Equal(t, o.Defaults(), *o.For("team-c"))
				require.Equal(t, o.Defaults(), *o.For("someone-else"))
				require.Equal(t, []string{"team-a", "team-b", "team-c"}, o.Tenants())
			},
		},
		{name: "empty file", content: "", check: func(t *testing.T, o *Overrides) { require.Empty(t, o.Tenants()) }},
		{name: "unknown limit", content: "overrides:\n  a:\n    max_serie: 1\n", wantErr: "overrides.a: yaml: unmarshal errors:\n  line 1: field max_serie not found"},
		{name: "unknown top-level field", content: "override:\n  a: {}\n", wantErr: "field override not found"},
		{name: "negative", content: "overrides:\n  a:\n    max_streams: -3\n", wantErr: "overrides.a.max_streams: must not be negative"},
		{name: "rate without burst", content: "overrides:\n  a:\n    logs_ingestion_rate_bytes: 100\n", wantErr: "overrides.a.logs_ingestion_burst_bytes: must be positive"},
		{name: "invalid tenant", content: "overrides:\n  \"..\":\n    max_series: 1\n", wantErr: `invalid tenant ID ".."`},
		{name: "not yaml", content: "overrides: [1, 2", wantErr: "limits.overrides_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig(t)
			c.MaxStreams = 7
			c.OverridesFile = writeFile(t, tc.content)
			o, err := New(c, labelDefaults)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				require.ErrorContains(t, err, "limits.overrides_file")
				return
			}
			require.NoError(t, err)
			tc.check(t, o)
		})
	}
}

func TestOverridesReload(t *testing.T) {
	c := defaultConfig(t)
	c.OverridesFile = writeFile(t, "overrides:\n  a:\n    max_series: 10\n")
	o, err := New(c, labelDefaults)
	require.NoError(t, err)
	require.Equal(t, 10, o.For("a").MaxSeries)

	require.NoError(t, os.WriteFile(c.OverridesFile, []byte("overrides:\n  a:\n    max_series: 20\n  b:\n    max_streams: 3\n"), 0o600))
	require.NoError(t, o.Reload())
	require.Equal(t, 20, o.For("a").MaxSeries)
	require.Equal(t, 3, o.For("b").MaxStreams)

	// A bad file leaves the limits in force.
	require.NoError(t, os.WriteFile(c.OverridesFile, []byte("overrides:\n  a:\n    max_series: -1\n"), 0o600))
	require.ErrorContains(t, o.Reload(), "overrides.a.max_series")
	require.Equal(t, 20, o.For("a").MaxSeries)

	require.NoError(t, os.Remove(c.OverridesFile))
	require.ErrorContains(t, o.Reload(), "limits.overrides_file")
	require.Equal(t, 20, o.For("a").MaxSeries)

	dir := t.TempDir()
	c.OverridesFile = dir
	_, err = New(c, labelDefaults)
	require.ErrorContains(t, err, "not a regular file")
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestRates(t *testing.T) {
	c := defaultConfig(t)
	c.IngestionRate, c.IngestionBurstSize = 100, 200
	c.OverridesFile = writeFile(t, "overrides:\n  big:\n    ingestion_rate: 1000\n    ingestion_burst_size: 1000\n  logs:\n    logs_ingestion_rate_bytes: 10\n    logs_ingestion_burst_bytes: 10\n")
	o, err := New(c, labelDefaults)
	require.NoError(t, err)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	r := NewRates(o)
	r.now = clk.now

	require.NoError(t, r.Allow("a", SignalMetrics, 150))
	err = r.Allow("a", SignalMetrics, 100)
	var le *LimitError
	require.ErrorAs(t, err, &le)
	require.True(t, errors.Is(err, ErrLimited))
	require.Equal(t, LimitIngestionRate, le.Limit)
	require.True(t, le.Retryable())
	// 50 tokens left, 100 wanted: half a second at 100/s.
	require.Equal(t, 500*time.Millisecond, le.RetryAfter)
	require.Equal(t, 1, RetryAfterSeconds(le.RetryAfter))

	// The refusal took nothing: 50 still pass, and the bucket refills.
	require.NoError(t, r.Allow("a", SignalMetrics, 50))
	clk.t = clk.t.Add(time.Second)
	require.NoError(t, r.Allow("a", SignalMetrics, 100))

	// Another tenant has its own bucket, and its own override.
	require.NoError(t, r.Allow("b", SignalMetrics, 200))
	require.NoError(t, r.Allow("big", SignalMetrics, 1000))

	// More than the burst can never pass: not retryable.
	err = r.Allow("a", SignalMetrics, 201)
	require.ErrorAs(t, err, &le)
	require.False(t, le.Retryable())
	require.Contains(t, le.Error(), "more than the burst of 200")

	// Signals are apart; no rate set means no limit.
	require.NoError(t, r.Allow("a", SignalTraces, 1<<30))
	require.NoError(t, r.Allow("logs", SignalLogs, 10))
	require.ErrorAs(t, r.Allow("logs", SignalLogs, 1), &le)
	require.Equal(t, LimitLogsIngestionRate, le.Limit)

	// A reload re-rates the bucket.
	require.NoError(t, os.WriteFile(c.OverridesFile, []byte("overrides:\n  a:\n    ingestion_rate: 1\n    ingestion_burst_size: 1\n"), 0o600))
	require.NoError(t, o.Reload())
	require.ErrorAs(t, r.Allow("a", SignalMetrics, 2), &le)
	require.False(t, le.Retryable())
}

func TestActiveSet(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	s := NewActiveSet(10 * time.Minute)
	s.now = clk.now

	for k := uint64(1); k <= 3; k++ {
		require.True(t, s.Admit("a", k, 3))
	}
	require.False(t, s.Admit("a", 4, 3), "a fourth key is over the limit")
	require.True(t, s.Admit("a", 2, 3), "a known key is always admitted")
	require.True(t, s.Admit("b", 4, 3), "other tenants are apart")
	require.True(t, s.Admit("a", 99, 0), "no limit: admitted")
	require.Equal(t, 3, s.Len("a"))

	// Keys 1 and 3 expire; 2 was refreshed later.
	clk.t = clk.t.Add(6 * time.Minute)
	require.True(t, s.Admit("a", 2, 3))
	clk.t = clk.t.Add(5 * time.Minute)
	require.True(t, s.Admit("a", 4, 3))
	require.True(t, s.Admit("a", 5, 3))
	require.False(t, s.Admit("a", 6, 3))
	require.Equal(t, 3, s.Len("a"))

	// AdmitAll is all or nothing.
	fresh, ok := s.AdmitAll("c", []uint64{1, 2, 2, 3}, 3)
	require.True(t, ok)
	require.Equal(t, 3, fresh)
	fresh, ok = s.AdmitAll("c", []uint64{3, 4}, 3)
	require.False(t, ok)
	require.Equal(t, 1, fresh)
	require.Equal(t, 3, s.Len("c"))
	fresh, ok = s.AdmitAll("c", []uint64{1, 2, 3}, 3)
	require.True(t, ok)
	require.Zero(t, fresh)

	// Quiet tenants are dropped.
	clk.t = clk.t.Add(time.Hour)
	require.True(t, s.Admit("d", 1, 1))
	require.Zero(t, s.Len("a"))
	require.Zero(t, s.Len("c"))
}

func TestDiscards(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	d := NewDiscards(reg, "agent")
	d.Add("a", SignalMetrics, LimitMaxSeries, 3)
	d.Add("a", SignalMetrics, LimitMaxSeries, 0)
	var nilD *Discards
	nilD.Add("a", SignalMetrics, LimitMaxSeries, 1)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP pharos_agent_tenant_limited_total Data refused by a per-tenant limit (samples, log entries or spans), by tenant, signal and limit.
# TYPE pharos_agent_tenant_limited_total counter
pharos_agent_tenant_limited_total{limit="max_series",signal="metrics",tenant="a"} 3
`)))
}

func TestLocalLimit(t *testing.T) {
	for _, tc := range []struct {
		limit int
		share float64
		want  int
	}{
		{0, 0.5, 0},
		{100, 1, 100},
		{100, 0.5, 82},     // 50·1.2 + 3·√50 = 81.2
		{10, 0.25, 8},      // 2.5·1.2 + 3·√2.5 = 7.7
		{1000, 0.125, 184}, // 125·1.2 + 3·√125 = 183.5
		{5, 0.9, 5},        // never above the limit
		{10, 0, 1},         // owns nothing yet: at least one
	} {
		got := LocalLimit(tc.limit, tc.share)
		require.Equal(t, tc.want, got, "LocalLimit(%d, %g)", tc.limit, tc.share)
	}
}
