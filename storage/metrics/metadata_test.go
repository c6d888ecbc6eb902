package metrics

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/tenant"
)

func TestFamilyName(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  model.MetricType
		want string
	}{
		{"http_requests_total", model.MetricTypeCounter, "http_requests_total"},
		{"latency_seconds_bucket", model.MetricTypeHistogram, "latency_seconds"},
		{"latency_seconds_count", model.MetricTypeHistogram, "latency_seconds"},
		{"rpc_seconds_sum", model.MetricTypeSummary, "rpc_seconds"},
		{"rpc_seconds_bucket", model.MetricTypeSummary, "rpc_seconds_bucket"},
		{"temperature_sum", model.MetricTypeGauge, "temperature_sum"},
	} {
		require.Equal(t, tc.want, familyName(tc.name, tc.typ), tc.name)
	}
}

func TestMetadataStore(t *testing.T) {
	var cfg Config
	cfg.Retention = model.Duration(time.Hour)
	cfg.MaxMetadata = 2
	s, err := Open(cfg, t.TempDir(), slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })

	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests."}
	s.SetMetadata(tenant.Default, "a_total", counter)
	s.SetMetadata(tenant.Default, "b_seconds_bucket", metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"})
	s.SetMetadata(tenant.Default, "c", metadata.Metadata{Type: model.MetricTypeGauge}) // over the bound: ignored
	s.SetMetadata(tenant.Default, "d", metadata.Metadata{})                            // nothing known: ignored
	s.SetMetadata(tenant.Default, "a_total", metadata.Metadata{Type: model.MetricTypeCounter, Help: "Changed."})

	all, err := s.Metadata(context.Background(), "", 0, 0)
	require.NoError(t, err)
	require.Equal(t, map[string][]metadata.Metadata{
		"a_total":   {{Type: model.MetricTypeCounter, Help: "Changed."}},
		"b_seconds": {{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}},
	}, all)
	one, err := s.Metadata(context.Background(), "b_seconds", 0, 0)
	require.NoError(t, err)
	require.Len(t, one, 1)
	limited, err := s.Metadata(context.Background(), "", 1, 0)
	require.NoError(t, err)
	require.Len(t, limited, 1)

	// Another tenant sees only its own metadata; the bound counts every
	// tenant's entries.
	cfg.MaxMetadata = 3
	s2, err := Open(cfg, t.TempDir(), slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s2.Close()) })
	s2.SetMetadata(tenant.Default, "a_total", counter)
	s2.SetMetadata("team-a", "b_total", counter)
	s2.SetMetadata("team-b", "c_total", counter)
	s2.SetMetadata("team-b", "d_total", counter) // over the bound
	for id, want := range map[string][]string{tenant.Default: {"a_total"}, "team-a": {"b_total"}, "team-b": {"c_total"}, "team-c": nil} {
		got, err := s2.Metadata(tenant.WithContext(context.Background(), id), "", 0, 0)
		require.NoError(t, err)
		var names []string
		for n := range got {
			names = append(names, n)
		}
		require.Equal(t, want, names, id)
	}
	got, err := s2.Metadata(tenant.WithContext(context.Background(), "team-a"), "a_total", 0, 0)
	require.NoError(t, err)
	require.Empty(t, got)
}
