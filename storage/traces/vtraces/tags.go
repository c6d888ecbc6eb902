package vtraces

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"

	"github.com/pharos-obs/pharos/storage/traces"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

// TagNames returns the attribute names of the spans that started in
// [p.Start, p.End] (a zero bound is unbounded) by scope, "resource" and
// "span", and the intrinsics under "intrinsic"; p.Scope "" is every
// scope, else only that one. Each list is sorted and, with p.Limit > 0,
// cut to p.Limit names. Attributes that are not fields (see Append) are
// not listed.
//
// The names are exact for the stored blocks (a service's spans of a few
// seconds to minutes) holding a span of the time range: VictoriaLogs
// lists a block's columns without reading its values, so a name only
// spans of the same service and block outside the range have may be
// listed too.
func (s *Store) TagNames(ctx context.Context, p traces.TagParams) (map[string][]string, error) {
	want := func(scope string) bool { return p.Scope == "" || p.Scope == scope }
	if p.Scope != "" && !want("resource") && !want("span") && !want("intrinsic") {
		return nil, fmt.Errorf("tag names: %w: unknown scope %q", ErrBadCondition, p.Scope)
	}
	out := map[string][]string{}
	if want("intrinsic") {
		out["intrinsic"] = limitStrings(slices.Clone(intrinsicNames), p.Limit)
	}
	if !want("resource") && !want("span") {
		return out, nil
	}
	from, to := s.timeRange(p.Start, p.End)
	if to < from {
		return out, nil
	}
	q, err := vlengine.ParseQuery("*", from, to+1)
	if err != nil {
		return nil, fmt.Errorf("tag names: %w", err)
	}
	var names []logstorage.ValueWithHits
	err = s.eng.Query(ctx, p.Tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		var err error
		names, err = st.GetFieldNames(qctx, "")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("tag names: %w", err)
	}
	for _, scope := range []string{"resource", "span"} {
		if !want(scope) {
			continue
		}
		prefix := scope + "."
		list := []string{}
		for _, n := range names {
			if name, ok := strings.CutPrefix(n.Value, prefix); ok && name != "" {
				list = append(list, name)
			}
		}
		slices.Sort(list)
		out[scope] = limitStrings(slices.Compact(list), p.Limit)
	}
	return out, nil
}

// TagValues returns the sorted values of tag among the spans that started
// in [p.Start, p.End] (a zero bound is unbounded), cut to p.Limit values
// when positive: an attribute ("resource.x", "span.x", or ".x" for both)
// or an intrinsic (name, status, kind, statusMessage, rootName,
// rootServiceName). Values are text, as Search compares them. With a
// limit, which values are returned among more is not specified.
func (s *Store) TagValues(ctx context.Context, tag string, p traces.TagParams) ([]string, error) {
	var (
		fields []string
		filter = "*"
	)
	switch {
	case strings.HasPrefix(tag, resourcePrefix), strings.HasPrefix(tag, spanPrefix):
		fields = []string{tag}
	case strings.HasPrefix(tag, ".") && len(tag) > 1:
		fields = []string{spanPrefix + tag[1:], resourcePrefix + tag[1:]}
	default:
		in, ok := lookupIntrinsic(tag)
		if !ok || in.duration {
			return nil, fmt.Errorf("tag values: %w: no values for tag %q", ErrBadCondition, tag)
		}
		fields = []string{in.field}
		if in.subject != subjectSpan {
			filter = fieldIsRoot + `:="true"`
		}
	}
	from, to := s.timeRange(p.Start, p.End)
	if to < from {
		return nil, nil
	}
	q, err := vlengine.ParseQuery(filter, from, to+1)
	if err != nil {
		return nil, fmt.Errorf("tag values: %w", err)
	}
	limit := uint64(max(p.Limit, 0))
	var values []string
	err = s.eng.Query(ctx, p.Tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		for _, f := range fields {
			var (
				vs  []logstorage.ValueWithHits
				err error
			)
			if f == fieldService && filter == "*" {
				// A stream field: read from the stream index.
				vs, err = st.GetStreamFieldValues(qctx, f, "", limit)
			} else {
				vs, err = st.GetFieldValues(qctx, f, "", limit)
			}
			if err != nil {
				return err
			}
			for _, v := range vs {
				if v.Value != "" {
					values = append(values, strings.Clone(v.Value))
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tag values of %q: %w", tag, err)
	}
	slices.Sort(values)
	return limitStrings(slices.Compact(values), int(limit)), nil
}

func limitStrings(list []string, limit int) []string {
	if limit > 0 && len(list) > limit {
		return list[:limit]
	}
	return list
}

// Services returns the sorted service names of the spans that started in
// [start, end] (see traces.Querier), read from the stream index.
func (s *Store) Services(ctx context.Context, tenant string, start, end time.Time) ([]string, error) {
	from, to := s.timeRange(start, end)
	if to < from {
		return nil, nil
	}
	q, err := vlengine.ParseQuery("*", from, to+1)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	var out []string
	err = s.eng.Query(ctx, tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		vs, err := st.GetStreamFieldValues(qctx, fieldService, "", 0)
		for _, v := range vs {
			out = append(out, strings.Clone(v.Value))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Operations returns the distinct names and kinds of service's spans that
// started in [start, end] (see traces.Querier).
func (s *Store) Operations(ctx context.Context, tenant, service string, start, end time.Time) ([]traces.Operation, error) {
	from, to := s.timeRange(start, end)
	if to < from {
		return nil, nil
	}
	// The stream filter is exact: = on a stream field, and "" selects the
	// streams without one.
	qs := "_stream:{" + strconv.Quote(fieldService) + "=" + strconv.Quote(service) + "} | uniq by (" + fieldName + ", " + fieldKind + ")"
	q, err := vlengine.ParseQuery(qs, from, to+1)
	if err != nil {
		return nil, fmt.Errorf("operations: %w", err)
	}
	var (
		mu  sync.Mutex
		out []traces.Operation
	)
	err = s.eng.Query(ctx, tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, func(_ uint, db *logstorage.DataBlock) {
			names, kinds := column(db, fieldName), column(db, fieldKind)
			mu.Lock()
			defer mu.Unlock()
			for i := range db.RowsCount() {
				var op traces.Operation
				if names != nil {
					op.Name = strings.Clone(names[i])
				}
				if kinds != nil {
					op.Kind = strings.Clone(kinds[i])
				}
				out = append(out, op)
			}
		})
	})
	if err != nil {
		return nil, fmt.Errorf("operations: %w", err)
	}
	slices.SortFunc(out, func(a, b traces.Operation) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.Kind, b.Kind))
	})
	return slices.Compact(out), nil
}
