package metrics

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/stretchr/testify/require"
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
	s.SetMetadata("a_total", counter)
	s.SetMetadata("b_seconds_bucket", metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"})
	s.SetMetadata("c", metadata.Metadata{Type: model.MetricTypeGauge}) // over the bound: ignored
	s.SetMetadata("d", metadata.Metadata{})                            // nothing known: ignored
	s.SetMetadata("a_total", metadata.Metadata{Type: model.MetricTypeCounter, Help: "Changed."})

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
}
