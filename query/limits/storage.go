package limits

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// BytesPerSample is what a sample read from the local TSDB is charged
// against the bytes limit: an estimate (a timestamp and a value, 16 bytes
// decoded; a compressed chunk holds ~1.3 bytes a sample), because the
// PromQL engine reads series through iterators, not chunks.
const BytesPerSample = 16

// SampleCounter wraps a series set so that iterating its series calls
// charge with the number of samples read (in batches; an error stops the
// iteration and becomes the iterator's Err). The local metric store
// provides it: the iterator types belong to the TSDB, which only storage/
// imports.
type SampleCounter func(set storage.SeriesSet, charge func(samples int) error) storage.SeriesSet

// Queryable charges the Budget in each Select's context for every series
// the Select returns, and, when count is not nil, BytesPerSample for every
// sample read. Without a budget in the context it adds nothing.
func Queryable(q storage.Queryable, count SampleCounter) storage.Queryable {
	return queryable{q: q, count: count}
}

type queryable struct {
	q     storage.Queryable
	count SampleCounter
}

func (q queryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return querier{Querier: inner, count: q.count}, nil
}

type querier struct {
	storage.Querier
	count SampleCounter
}

func (q querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	set := q.Querier.Select(ctx, sortSeries, hints, ms...)
	b := FromContext(ctx)
	if b == nil {
		return set
	}
	if q.count != nil && b.maxBytes > 0 && (hints == nil || hints.Func != "series") {
		set = q.count(set, func(n int) error { return b.AddBytes(int64(n) * BytesPerSample) })
	}
	if b.maxSeries > 0 {
		set = &seriesSet{SeriesSet: set, b: b}
	}
	return set
}

// seriesSet ends with the limit's error at the first series past it.
type seriesSet struct {
	storage.SeriesSet
	b   *Budget
	err error
}

func (s *seriesSet) Next() bool {
	if s.err != nil || !s.SeriesSet.Next() {
		return false
	}
	if err := s.b.AddSeries(1); err != nil {
		s.err = err
		return false
	}
	return true
}

func (s *seriesSet) Err() error {
	if s.err != nil {
		return s.err
	}
	return s.SeriesSet.Err()
}
