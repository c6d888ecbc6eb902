package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

func TestSeriesLimit(t *testing.T) {
	var cfg Config
	cfg.Retention = model.Duration(time.Hour)
	cfg.OutOfOrderWindow = model.Duration(time.Hour)
	dir := t.TempDir()
	s, err := Open(cfg, dir, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)

	s.SetSeriesLimit(func(id string) int {
		if id == "small" {
			return 3
		}
		return 0
	})
	ts := time.Now().UnixMilli()
	appendN := func(id string, n int) (stored int, errs []error) {
		app := s.AppenderV2(context.Background())
		for i := range n {
			ls := labels.FromStrings("__name__", "m", "i", fmt.Sprint(i))
			if id != tenant.Default {
				ls = labels.FromStrings("__name__", "m", "i", fmt.Sprint(i), TenantLabel, id)
			}
			if _, err := app.Append(0, ls, 0, ts, 1, nil, nil, storage.AppendV2Options{}); err != nil {
				errs = append(errs, err)
				continue
			}
			stored++
		}
		require.NoError(t, app.Commit())
		return stored, errs
	}

	stored, errs := appendN("small", 5)
	require.Equal(t, 3, stored)
	require.Len(t, errs, 2)
	require.ErrorIs(t, errs[0], overrides.ErrLimited)
	require.Equal(t, 3, s.TenantSeries("small"))

	// Existing series take samples; other tenants are not limited.
	ts++
	stored, errs = appendN("small", 3)
	require.Equal(t, 3, stored)
	require.Empty(t, errs)
	stored, _ = appendN(tenant.Default, 10)
	require.Equal(t, 10, stored)
	stored, _ = appendN("big", 10)
	require.Equal(t, 10, stored)
	require.Equal(t, 10, s.TenantSeries(tenant.Default))

	// The WAL's series come back on restart even under a lower limit,
	// and are counted.
	require.NoError(t, s.Close())
	s, err = Open(cfg, dir, slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	require.Equal(t, 3, s.TenantSeries("small"))
	require.Equal(t, 10, s.TenantSeries("big"))
	s.SetSeriesLimit(func(string) int { return 2 })
	ts++
	stored, errs = appendN("big", 11)
	require.Equal(t, 10, stored, "the series held before take samples")
	require.Len(t, errs, 1)
	s.SetSeriesLimit(nil)
	stored, _ = appendN("big", 11)
	require.Equal(t, 11, stored)
}
