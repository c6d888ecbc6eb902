package metrics

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// TenantLabel marks the series of a tenant other than the default one.
// The aggregator sets it on every series of such a tenant (overwriting
// any value the series came with) and removes it from the default
// tenant's; readers never see it: the tenant-enforcing queriers select
// on it and strip it from what they return. Label-based tenancy, as
// prom-label-proxy and Thanos's tenancy do it, keeps one TSDB per
// aggregator.
const TenantLabel = tenant.Label

// ErrTenantLabel refuses a query that matches on TenantLabel itself.
var ErrTenantLabel = errors.New("the label " + TenantLabel + " is reserved for tenant isolation and cannot be queried")

// TenantValue is TenantLabel's value for the series of tenant id: empty
// (no label) for the default tenant.
func TenantValue(id string) string {
	if id == tenant.Default {
		return ""
	}
	return id
}

// tenantMatchers checks ms for TenantLabel and returns them with the
// tenant's matcher added.
func tenantMatchers(ctx context.Context, ms []*labels.Matcher) ([]*labels.Matcher, error) {
	for _, m := range ms {
		if m.Name == TenantLabel {
			return nil, ErrTenantLabel
		}
	}
	out := make([]*labels.Matcher, 0, len(ms)+1)
	out = append(out, labels.MustNewMatcher(labels.MatchEqual, TenantLabel, TenantValue(tenant.FromContext(ctx))))
	return append(out, ms...), nil
}

// TenantQueryable scopes q to the tenant of each call's context
// (tenant.FromContext: the default tenant when none), see TenantQuerier.
func TenantQueryable(q storage.Queryable) storage.Queryable { return tenantQueryable{q} }

type tenantQueryable struct{ q storage.Queryable }

func (t tenantQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := t.q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return TenantQuerier(q), nil
}

// TenantQuerier scopes q to the tenant of each call's context: Select,
// LabelNames and LabelValues add the matcher TenantLabel="<tenant>" (=""
// for the default tenant), refuse matchers on TenantLabel (ErrTenantLabel),
// and strip TenantLabel from returned series and label names.
func TenantQuerier(q storage.Querier) storage.Querier { return &tenantQuerier{q: q} }

type tenantQuerier struct{ q storage.Querier }

func (t *tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	tms, err := tenantMatchers(ctx, ms)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	set := t.q.Select(ctx, sortSeries, hints, tms...)
	if TenantValue(tenant.FromContext(ctx)) == "" {
		return set // the default tenant's series have no TenantLabel
	}
	return newStrippedSet(set, sortSeries)
}

func (t *tenantQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if name == TenantLabel {
		return nil, nil, ErrTenantLabel
	}
	tms, err := tenantMatchers(ctx, ms)
	if err != nil {
		return nil, nil, err
	}
	return t.q.LabelValues(ctx, name, hints, tms...)
}

func (t *tenantQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	tms, err := tenantMatchers(ctx, ms)
	if err != nil {
		return nil, nil, err
	}
	names, ws, err := t.q.LabelNames(ctx, hints, tms...)
	if i := slices.Index(names, TenantLabel); i >= 0 {
		names = slices.Delete(names, i, i+1)
	}
	return names, ws, err
}

func (t *tenantQuerier) Close() error { return t.q.Close() }

// strip returns ls without TenantLabel.
func strip(ls labels.Labels) labels.Labels {
	if !ls.Has(TenantLabel) {
		return ls
	}
	return labels.NewBuilder(ls).Del(TenantLabel).Labels()
}

type strippedSeries struct {
	storage.Series
	ls labels.Labels
}

func (s strippedSeries) Labels() labels.Labels { return s.ls }

// newStrippedSet strips TenantLabel from set's series. Removing a label
// that every series carries can change their order (a set whose other
// labels are a prefix of another's moves ahead of it), so a sorted set is
// read whole and sorted again; series stay lazy (the TSDB's At may be
// kept), only their labels are held.
func newStrippedSet(set storage.SeriesSet, sorted bool) storage.SeriesSet {
	if !sorted {
		return &strippedSet{SeriesSet: set}
	}
	var all []storage.Series
	for set.Next() {
		s := set.At()
		all = append(all, strippedSeries{Series: s, ls: strip(s.Labels())})
	}
	if err := set.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	slices.SortFunc(all, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &listSet{series: all, warnings: set.Warnings()}
}

type strippedSet struct {
	storage.SeriesSet
	cur strippedSeries
}

func (s *strippedSet) Next() bool {
	if !s.SeriesSet.Next() {
		return false
	}
	at := s.SeriesSet.At()
	s.cur = strippedSeries{Series: at, ls: strip(at.Labels())}
	return true
}

func (s *strippedSet) At() storage.Series { return s.cur }

type listSet struct {
	series   []storage.Series
	i        int
	warnings annotations.Annotations
}

func (l *listSet) Next() bool {
	if l.i >= len(l.series) {
		return false
	}
	l.i++
	return true
}
func (l *listSet) At() storage.Series                { return l.series[l.i-1] }
func (l *listSet) Err() error                        { return nil }
func (l *listSet) Warnings() annotations.Annotations { return l.warnings }

// TenantChunkQueryable is TenantQueryable for chunk queriers (remote read).
func TenantChunkQueryable(q storage.ChunkQueryable) storage.ChunkQueryable {
	return tenantChunkQueryable{q}
}

type tenantChunkQueryable struct{ q storage.ChunkQueryable }

func (t tenantChunkQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := t.q.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return &tenantChunkQuerier{q: q, lq: tenantQuerier{q: labelQuerier{q}}}, nil
}

// labelQuerier lends a ChunkQuerier's label look-ups to tenantQuerier.
type labelQuerier struct{ storage.ChunkQuerier }

func (labelQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return storage.ErrSeriesSet(errors.New("not a sample querier"))
}

type tenantChunkQuerier struct {
	q  storage.ChunkQuerier
	lq tenantQuerier
}

func (t *tenantChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	tms, err := tenantMatchers(ctx, ms)
	if err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	set := t.q.Select(ctx, sortSeries, hints, tms...)
	if TenantValue(tenant.FromContext(ctx)) == "" {
		return set
	}
	var all []storage.ChunkSeries
	for set.Next() {
		s := set.At()
		all = append(all, strippedChunkSeries{ChunkSeries: s, ls: strip(s.Labels())})
	}
	if err := set.Err(); err != nil {
		return storage.ErrChunkSeriesSet(err)
	}
	if sortSeries {
		slices.SortFunc(all, func(a, b storage.ChunkSeries) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &chunkListSet{series: all, warnings: set.Warnings()}
}

func (t *tenantChunkQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return t.lq.LabelValues(ctx, name, hints, ms...)
}

func (t *tenantChunkQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return t.lq.LabelNames(ctx, hints, ms...)
}

func (t *tenantChunkQuerier) Close() error { return t.q.Close() }

type strippedChunkSeries struct {
	storage.ChunkSeries
	ls labels.Labels
}

func (s strippedChunkSeries) Labels() labels.Labels { return s.ls }

type chunkListSet struct {
	series   []storage.ChunkSeries
	i        int
	warnings annotations.Annotations
}

func (l *chunkListSet) Next() bool {
	if l.i >= len(l.series) {
		return false
	}
	l.i++
	return true
}
func (l *chunkListSet) At() storage.ChunkSeries           { return l.series[l.i-1] }
func (l *chunkListSet) Err() error                        { return nil }
func (l *chunkListSet) Warnings() annotations.Annotations { return l.warnings }

// TenantExemplarQueryable scopes exemplar look-ups to the tenant of the
// context ExemplarQuerier is called with, like TenantQuerier.
func TenantExemplarQueryable(q storage.ExemplarQueryable) storage.ExemplarQueryable {
	return tenantExemplarQueryable{q}
}

type tenantExemplarQueryable struct{ q storage.ExemplarQueryable }

func (t tenantExemplarQueryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	eq, err := t.q.ExemplarQuerier(ctx)
	if err != nil {
		return nil, err
	}
	return tenantExemplarQuerier{q: eq, ctx: ctx}, nil
}

type tenantExemplarQuerier struct {
	q   storage.ExemplarQuerier
	ctx context.Context
}

func (t tenantExemplarQuerier) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	sets := make([][]*labels.Matcher, 0, len(matchers))
	for _, ms := range matchers {
		tms, err := tenantMatchers(t.ctx, ms)
		if err != nil {
			return nil, err
		}
		sets = append(sets, tms)
	}
	if len(sets) == 0 {
		// No selector selects nothing, whatever the tenant.
		return nil, nil
	}
	res, err := t.q.Select(start, end, sets...)
	if err != nil {
		return nil, fmt.Errorf("exemplars: %w", err)
	}
	for i := range res {
		res[i].SeriesLabels = strip(res[i].SeriesLabels)
	}
	return res, nil
}
