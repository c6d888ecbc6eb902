package vlogs

import (
	"context"
	"fmt"
	"slices"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/storage/logs"
)

// LabelNames returns the sorted stream label names of the streams with
// entries in [p.Start, p.End) that p.Matchers select (all without
// matchers). Metadata names and VictoriaLogs' own fields are not labels.
func (s *Store) LabelNames(ctx context.Context, p logs.LabelParams) ([]string, error) {
	series, err := s.series(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("label names: %w", err)
	}
	var names []string
	for _, ls := range series {
		ls.Range(func(l labels.Label) { names = append(names, l.Name) })
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// LabelValues returns the sorted values of the stream label name, as
// LabelNames scopes them.
func (s *Store) LabelValues(ctx context.Context, name string, p logs.LabelParams) ([]string, error) {
	series, err := s.series(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("label values of %q: %w", name, err)
	}
	var values []string
	for _, ls := range series {
		if v := ls.Get(name); v != "" {
			values = append(values, v)
		}
	}
	slices.Sort(values)
	return slices.Compact(values), nil
}

// Series returns the sorted label sets of the streams, as LabelNames
// scopes them.
func (s *Store) Series(ctx context.Context, p logs.LabelParams) ([]labels.Labels, error) {
	series, err := s.series(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("series: %w", err)
	}
	return series, nil
}

// series lists the streams p selects: the matchers are pushed down as a
// stream filter and applied again in Go.
func (s *Store) series(ctx context.Context, p logs.LabelParams) ([]labels.Labels, error) {
	if p.End < p.Start {
		return nil, fmt.Errorf("end %d is before start %d", p.End, p.Start)
	}
	if p.End == p.Start {
		return nil, nil
	}
	qs := string(streamFilter(nil, p.Matchers))
	q, err := parseQuery(qs, p.Start, p.End)
	if err != nil {
		return nil, err
	}

	var streams []logstorage.ValueWithHits
	err = s.eng.Query(ctx, p.Tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		var err error
		streams, err = st.GetStreams(qctx, 0)
		return err
	})
	if err != nil {
		return nil, err
	}

	var sb labels.ScratchBuilder
	out := make([]labels.Labels, 0, len(streams))
next:
	for _, st := range streams {
		ls, err := parseStream(st.Value, &sb)
		if err != nil {
			return nil, err
		}
		for _, m := range p.Matchers {
			if !m.Matches(ls.Get(m.Name)) {
				continue next
			}
		}
		out = append(out, ls)
	}
	slices.SortFunc(out, labels.Compare)
	return out, nil
}
