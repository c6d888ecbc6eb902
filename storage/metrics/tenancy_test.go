package metrics

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// tenancyStore holds, as the aggregator writes them, series of the
// default tenant (no TenantLabel) and of team-a and team-b.
func tenancyStore(t *testing.T) *Store {
	t.Helper()
	var cfg Config
	cfg.Retention = model.Duration(time.Hour)
	cfg.OutOfOrderWindow = model.Duration(time.Hour)
	cfg.MaxExemplars = 100
	s, err := Open(cfg, t.TempDir(), slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	app := s.AppenderV2(context.Background())
	ts := time.Now().UnixMilli()
	for _, ls := range []labels.Labels{
		labels.FromStrings("__name__", "up", "job", "default"),
		labels.FromStrings("__name__", "up", "job", "a", TenantLabel, "team-a"),
		labels.FromStrings("__name__", "up", "job", "a", "x", "1", TenantLabel, "team-a"),
		labels.FromStrings("__name__", "only_a", "job", "a", TenantLabel, "team-a"),
		labels.FromStrings("__name__", "up", "job", "b", TenantLabel, "team-b"),
	} {
		ex := []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", ls.Get("job")), Value: 1, Ts: ts, HasTs: true}}
		_, err := app.Append(0, ls, 0, ts, 1, nil, nil, storage.AppendV2Options{Exemplars: ex})
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
	return s
}

func TestTenantQuerier(t *testing.T) {
	s := tenancyStore(t)
	ctxOf := func(id string) context.Context { return tenant.WithContext(context.Background(), id) }
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close()) })
	up := labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")
	any := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")

	for _, c := range []struct {
		tenant string
		series []string
		names  []string
		jobs   []string
	}{
		{tenant: tenant.Default, series: []string{`{__name__="up", job="default"}`}, names: []string{"__name__", "job"}, jobs: []string{"default"}},
		{tenant: "team-a", series: []string{`{__name__="only_a", job="a"}`, `{__name__="up", job="a"}`, `{__name__="up", job="a", x="1"}`},
			names: []string{"__name__", "job", "x"}, jobs: []string{"a"}},
		{tenant: "team-b", series: []string{`{__name__="up", job="b"}`}, names: []string{"__name__", "job"}, jobs: []string{"b"}},
		{tenant: "team-c", names: []string{}, jobs: []string{}},
	} {
		t.Run(c.tenant, func(t *testing.T) {
			ctx := ctxOf(c.tenant)
			for _, sorted := range []bool{true, false} {
				var got []string
				set := q.Select(ctx, sorted, nil, any)
				for set.Next() {
					got = append(got, set.At().Labels().String())
				}
				require.NoError(t, set.Err())
				if !sorted {
					require.ElementsMatch(t, c.series, got)
				} else {
					require.Equal(t, c.series, got)
				}
			}
			names, _, err := q.LabelNames(ctx, nil)
			require.NoError(t, err)
			require.Equal(t, c.names, nonNil(names))
			jobs, _, err := q.LabelValues(ctx, "job", nil, up)
			require.NoError(t, err)
			require.Equal(t, c.jobs, nonNil(jobs))

			// Chunk queriers (the remote-read path) and exemplars alike.
			cq, err := s.ChunkQuerier(math.MinInt64, math.MaxInt64)
			require.NoError(t, err)
			defer cq.Close()
			var chunked []string
			cs := cq.Select(ctx, true, nil, any)
			for cs.Next() {
				chunked = append(chunked, cs.At().Labels().String())
			}
			require.NoError(t, cs.Err())
			require.Equal(t, c.series, chunked)

			eq, err := s.ExemplarQuerier(ctx)
			require.NoError(t, err)
			res, err := eq.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{up})
			require.NoError(t, err)
			var exJobs []string
			for _, r := range res {
				require.False(t, r.SeriesLabels.Has(TenantLabel))
				exJobs = append(exJobs, r.SeriesLabels.Get("job"))
			}
			for _, j := range exJobs {
				require.Contains(t, c.jobs, j)
			}
		})
	}

	// No tenant in the context is the default tenant.
	names, _, err := q.LabelNames(context.Background(), nil)
	require.NoError(t, err)
	require.Equal(t, []string{"__name__", "job"}, names)
}

func TestTenantQuerierRefusesTheReservedLabel(t *testing.T) {
	s := tenancyStore(t)
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, q.Close()) })
	for _, id := range []string{tenant.Default, "team-b"} {
		ctx := tenant.WithContext(context.Background(), id)
		for _, m := range []*labels.Matcher{
			labels.MustNewMatcher(labels.MatchEqual, TenantLabel, "team-a"),
			labels.MustNewMatcher(labels.MatchRegexp, TenantLabel, ".*"),
			labels.MustNewMatcher(labels.MatchNotEqual, TenantLabel, "x"),
		} {
			set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"), m)
			require.False(t, set.Next())
			require.ErrorIs(t, set.Err(), ErrTenantLabel)
			_, _, err := q.LabelNames(ctx, nil, m)
			require.ErrorIs(t, err, ErrTenantLabel)
			_, _, err = q.LabelValues(ctx, "job", nil, m)
			require.ErrorIs(t, err, ErrTenantLabel)
			eq, err := s.ExemplarQuerier(ctx)
			require.NoError(t, err)
			_, err = eq.Select(math.MinInt64, math.MaxInt64, []*labels.Matcher{m})
			require.ErrorIs(t, err, ErrTenantLabel)
		}
		_, _, err := q.LabelValues(ctx, TenantLabel, nil)
		require.ErrorIs(t, err, ErrTenantLabel)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
