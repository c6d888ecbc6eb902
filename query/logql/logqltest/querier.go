// Package logqltest provides an in-memory logs.Querier for tests of the
// LogQL engine and the Loki API. It implements the documented semantics of
// logs.Querier directly and simply (no shared code with the engine), so
// that tests check the engine against an independent reference.
package logqltest

import (
	"context"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/storage/logs"
)

// Querier is an in-memory log store. It is safe for concurrent use.
type Querier struct {
	mu      sync.Mutex
	tenants map[string]map[string]*logs.Stream // tenant → labels string → stream
	err     error
	selects []logs.SelectParams
}

var (
	_ logs.Querier  = (*Querier)(nil)
	_ logs.Appender = (*Querier)(nil)
)

// New returns an empty store.
func New() *Querier {
	return &Querier{tenants: map[string]map[string]*logs.Stream{}}
}

// Append adds entries, keeping each stream sorted by time. The querier
// keeps copies, so callers may reuse streams.
func (q *Querier) Append(tenant string, streams []logs.Stream) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	t := q.tenants[tenant]
	if t == nil {
		t = map[string]*logs.Stream{}
		q.tenants[tenant] = t
	}
	for _, s := range streams {
		key := s.Labels.String()
		st := t[key]
		if st == nil {
			st = &logs.Stream{Labels: s.Labels.Copy()}
			t[key] = st
		}
		st.Entries = append(st.Entries, s.Entries...)
		sort.SliceStable(st.Entries, func(i, j int) bool { return st.Entries[i].Timestamp < st.Entries[j].Timestamp })
	}
	return nil
}

// SetErr makes every later call fail with err (nil restores service).
func (q *Querier) SetErr(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.err = err
}

// Selects returns the parameters of every Select so far.
func (q *Querier) Selects() []logs.SelectParams {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.selects)
}

// ResetSelects forgets the recorded Select calls.
func (q *Querier) ResetSelects() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.selects = nil
}

func matches(ms []*labels.Matcher, ls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(ls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// lineMatches applies a line filter as logs.LineFilter documents it.
func lineMatches(f logs.LineFilter, line string) (bool, error) {
	any := false
	for _, v := range f.Values {
		switch f.Op {
		case logs.LineContains, logs.LineNotContains:
			any = any || strings.Contains(line, v)
		default:
			re, err := regexp.Compile(v)
			if err != nil {
				return false, err
			}
			any = any || re.MatchString(line)
		}
	}
	if f.Op == logs.LineNotContains || f.Op == logs.LineNotMatches {
		return !any, nil
	}
	return any, nil
}

type hit struct {
	stream int
	entry  logs.Entry
}

// Select implements logs.Querier.
func (q *Querier) Select(ctx context.Context, p logs.SelectParams) ([]logs.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.selects = append(q.selects, p)
	if q.err != nil {
		return nil, q.err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	streams := q.sortedStreams(p.Tenant)
	var hits []hit
	for si, s := range streams {
		if !matches(p.Matchers, s.Labels) {
			continue
		}
		for _, e := range s.Entries {
			if e.Timestamp < p.Start || e.Timestamp >= p.End {
				continue
			}
			keep := true
			for _, f := range p.LineFilters {
				ok, err := lineMatches(f, e.Line)
				if err != nil {
					return nil, err
				}
				keep = keep && ok
			}
			if keep {
				hits = append(hits, hit{si, e})
			}
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		if p.Direction == logs.Forward {
			return hits[i].entry.Timestamp < hits[j].entry.Timestamp
		}
		return hits[i].entry.Timestamp > hits[j].entry.Timestamp
	})
	if p.Limit > 0 && len(hits) > p.Limit {
		hits = hits[:p.Limit]
	}
	byStream := map[int][]logs.Entry{}
	for _, h := range hits {
		byStream[h.stream] = append(byStream[h.stream], h.entry)
	}
	var out []logs.Stream
	for si, s := range streams {
		if es := byStream[si]; len(es) > 0 {
			out = append(out, logs.Stream{Labels: s.Labels, Entries: es})
		}
	}
	return out, nil
}

// sortedStreams returns the tenant's streams in label order.
func (q *Querier) sortedStreams(tenant string) []*logs.Stream {
	var out []*logs.Stream
	for _, s := range q.tenants[tenant] {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i].Labels, out[j].Labels) < 0 })
	return out
}

// series returns the label sets of streams with entries in [Start, End)
// that the matchers select. It fails as Select does, without recording the
// call.
func (q *Querier) series(ctx context.Context, p logs.LabelParams) ([]labels.Labels, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return nil, q.err
	}
	var out []labels.Labels
	for _, s := range q.sortedStreams(p.Tenant) {
		if !matches(p.Matchers, s.Labels) {
			continue
		}
		if slices.ContainsFunc(s.Entries, func(e logs.Entry) bool { return e.Timestamp >= p.Start && e.Timestamp < p.End }) {
			out = append(out, s.Labels)
		}
	}
	return out, nil
}

// LabelNames implements logs.Querier.
func (q *Querier) LabelNames(ctx context.Context, p logs.LabelParams) ([]string, error) {
	series, err := q.series(ctx, p)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, ls := range series {
		ls.Range(func(l labels.Label) { set[l.Name] = true })
	}
	return sortedKeys(set), nil
}

// LabelValues implements logs.Querier.
func (q *Querier) LabelValues(ctx context.Context, name string, p logs.LabelParams) ([]string, error) {
	series, err := q.series(ctx, p)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, ls := range series {
		if v := ls.Get(name); v != "" {
			set[v] = true
		}
	}
	return sortedKeys(set), nil
}

// Series implements logs.Querier.
func (q *Querier) Series(ctx context.Context, p logs.LabelParams) ([]labels.Labels, error) {
	return q.series(ctx, p)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
