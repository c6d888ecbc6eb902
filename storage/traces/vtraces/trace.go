package vtraces

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/storage/traces"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Trace returns every stored span of the trace whose start time is in
// [start, end] (a zero bound is unbounded: the store's whole retention),
// as one ptrace.Traces grouped by resource and scope (see
// traces.Querier). Spans come in start time order, then span ID; the
// resources and scopes in the order their first span comes. A span ID
// stored more than once (a redelivery) comes back once: the copy whose
// record sorts first (compareRecords), so that every call returns the same.
//
// Only the rows with the exact trace ID are read, found through the bloom
// filters of the trace_id column, and of them only the three fields
// needed.
func (s *Store) Trace(ctx context.Context, tenant string, id traces.TraceID, start, end time.Time) (ptrace.Traces, error) {
	tds, err := s.Traces(ctx, tenant, []traces.TraceID{id}, start, end)
	if err != nil {
		return ptrace.Traces{}, err
	}
	return tds[0], nil
}

var _ traces.TracesQuerier = (*Store)(nil)

// maxTracesPerQuery bounds the IDs of one query of Traces; more are asked
// for in several.
const maxTracesPerQuery = 100

// Traces is Trace for several traces at once, in one pass over the
// storage (per maxTracesPerQuery IDs): the rows of all of them, found
// through the same bloom filters, instead of a query each. tds[i] is
// ids[i] (empty when unknown).
func (s *Store) Traces(ctx context.Context, tenant string, ids []traces.TraceID, start, end time.Time) ([]ptrace.Traces, error) {
	tds := make([]ptrace.Traces, len(ids))
	for i := range tds {
		tds[i] = ptrace.NewTraces()
	}
	from, to := s.timeRange(start, end)
	if to < from {
		return tds, nil
	}
	for i := 0; i < len(ids); i += maxTracesPerQuery {
		j := min(len(ids), i+maxTracesPerQuery)
		if err := s.readTraces(ctx, tenant, ids[i:j], tds[i:j], from, to); err != nil {
			return nil, err
		}
	}
	return tds, nil
}

// readTraces fills tds[i] with the spans of ids[i] that started in
// [from, to].
func (s *Store) readTraces(ctx context.Context, tenant string, ids []traces.TraceID, tds []ptrace.Traces, from, to int64) error {
	index := make(map[string]int, len(ids)) // by hex ID: its last place in ids
	var qb strings.Builder
	qb.WriteString(fieldTraceID + ":in(")
	for i, id := range ids {
		if id.IsZero() {
			continue
		}
		h := id.String()
		if _, dup := index[h]; !dup {
			if len(index) > 0 {
				qb.WriteByte(',')
			}
			qb.WriteString(strconv.Quote(h))
		}
		index[h] = i
	}
	if len(index) == 0 {
		return nil
	}
	qb.WriteString(") | fields " + fieldTraceID + ", " + fieldSpanID + ", " + fieldStart + ", " + fieldDuration + ", " + fieldOTLP + ", " + fieldEnvelope)
	q, err := vlengine.ParseQuery(qb.String(), from, to+1)
	if err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	var (
		mu   sync.Mutex
		rows = make([][]traceRow, len(ids)) // by place in ids
		rerr error
		wt   otlpwire.Traces // for records stored whole; under mu
	)
	err = s.eng.Query(ctx, tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, func(_ uint, db *logstorage.DataBlock) {
			traceIDs, spanIDs, starts, otlp := column(db, fieldTraceID), column(db, fieldSpanID), column(db, fieldStart), column(db, fieldOTLP)
			durations, envelopes := column(db, fieldDuration), column(db, fieldEnvelope)
			at := func(col []string, i int) string {
				if col == nil {
					return ""
				}
				return col[i]
			}
			mu.Lock()
			defer mu.Unlock()
			for i := range db.RowsCount() {
				var tid string
				if traceIDs != nil {
					tid = traceIDs[i]
				}
				j, ok := index[tid]
				if !ok {
					continue // cannot happen: the filter is exact
				}
				if otlp == nil || otlp[i] == "" {
					rerr = fmt.Errorf("a span of trace %s has no %s field", tid, fieldOTLP)
					return
				}
				rec, err := storedRecord(&wt, otlp[i], slimColumns{envelope: at(envelopes, i), traceID: tid,
					spanID: at(spanIDs, i), start: at(starts, i), duration: at(durations, i)})
				if err != nil {
					rerr = fmt.Errorf("a span of trace %s: %w", tid, err)
					return
				}
				r := traceRow{rec: rec}
				if spanIDs != nil {
					r.spanID = strings.Clone(spanIDs[i])
				}
				if starts != nil {
					r.start, _ = strconv.ParseInt(starts[i], 10, 64)
				}
				rows[j] = append(rows[j], r)
			}
		})
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("traces: %w", err)
	}
	for j, rs := range rows {
		if len(rs) == 0 {
			continue
		}
		td, err := buildTrace(rs)
		if err != nil {
			return fmt.Errorf("trace %s: %w", ids[j], err)
		}
		tds[j] = td
	}
	// An ID asked for twice gets the same trace twice.
	for i, id := range ids {
		if j := index[id.String()]; j != i && !id.IsZero() {
			tds[i] = ptrace.NewTraces()
			tds[j].CopyTo(tds[i])
		}
	}
	return nil
}

// traceRow is one stored span of a trace.
type traceRow struct {
	spanID string
	start  int64
	rec    spanRecord
}

// compareRecords orders the records of one span ID, for a choice among
// copies that is the same every time.
func compareRecords(a, b spanRecord) int {
	return cmp.Or(bytes.Compare(a.span, b.span), bytes.Compare(a.resource, b.resource), bytes.Compare(a.scope, b.scope),
		bytes.Compare(a.resourceSchema, b.resourceSchema), bytes.Compare(a.scopeSchema, b.scopeSchema))
}

// buildTrace merges rows into one ptrace.Traces (see Trace for the order
// and the choice among duplicates).
func buildTrace(rows []traceRow) (ptrace.Traces, error) {
	slices.SortFunc(rows, func(a, b traceRow) int {
		return cmp.Or(strings.Compare(a.spanID, b.spanID), compareRecords(a.rec, b.rec))
	})
	rows = slices.CompactFunc(rows, func(a, b traceRow) bool { return a.spanID == b.spanID })
	slices.SortFunc(rows, func(a, b traceRow) int {
		return cmp.Or(cmp.Compare(a.start, b.start), strings.Compare(a.spanID, b.spanID))
	})
	var tb traceBuilder
	for _, r := range rows {
		tb.add(r.rec)
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(tb.bytes())
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("decode stored spans: %w", err)
	}
	return td, nil
}

// timeRange turns a time range with optional bounds into Unix ns,
// inclusive; a zero bound is the edge of what the store can hold.
func (s *Store) timeRange(start, end time.Time) (from, to int64) {
	from, to = s.eng.SearchWindow(nowNano())
	if !start.IsZero() {
		from = max(from, start.UnixNano())
	}
	if !end.IsZero() {
		to = min(to, end.UnixNano())
	}
	return from, to
}

// column returns the values of db's column name, or nil.
func column(db *logstorage.DataBlock, name string) []string {
	if c := db.GetColumnByName(name); c != nil {
		return c.Values
	}
	return nil
}

func nowNano() int64 { return time.Now().UnixNano() }
