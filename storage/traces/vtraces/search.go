package vtraces

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"

	"github.com/pharos-obs/pharos/storage/traces"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Defaults for SearchParams fields left zero, Tempo's.
const (
	defaultSearchLimit     = 20
	defaultSpansPerSpanSet = 3
)

// Search windows and batches: see Search.
const (
	firstWindow   = int64(20e6) // ns
	clockSlack    = int64(1e9)  // ns
	windowGrowth  = 4
	maxProbes     = 4
	minBatch      = 16
	maxBatchTerms = 1000
)

// Fields every summary reads, at these indexes of search.fields.names.
const (
	idxTraceID = iota
	idxSpanID
	idxIsRoot
	idxName
	idxService
	idxStart
	idxDuration
	nBaseFields
)

// Search returns the traces that match p, most recent (by trace start)
// first (see traces.Querier). Zero p.Limit means 20 and zero
// p.SpansPerSpanSet 3, as in Tempo; the time range bounds span start
// times, inclusive, and a zero bound is unbounded.
//
// Every result is exact: a trace matches when, for one group of p.Any,
// one of its spans that started in the time range meets every span
// condition of the group and the trace meets the group's trace conditions
// (rootName, rootServiceName, traceDuration) and p's duration bounds; see
// cond for each operator's semantics. The trace's start, duration and
// root are those of all its stored spans, whatever the time range, and a
// span stored twice counts once.
//
// How: the conditions are pushed down to LogsQL as a filter that keeps a
// superset of the matching spans, which is read in time windows from the
// end of the range backwards (what is after the clock first, then 20 ms,
// then four times as long each time), collecting each candidate trace
// with the earliest start k of its candidate spans seen. After a window
// without any candidate span, the engine is asked for the newest one
// before it, and the windows start again from there at 20 ms (at most
// maxProbes times): otherwise the first window to reach spans after a
// quiet spell, four times the spell, could hold every span of a burst,
// each of which would be read and collected. The first window is short
// because a burst can be dense (an SDK flushing its queue: a million
// spans starting within seconds), and reading is what costs; a day takes
// twelve windows from 20 ms, four more than from five seconds, each of
// which the engine prunes to the blocks of its time range. Candidates
// are then summarised in batches, most recent k first, by one query that
// reads the few fields needed of every span of the batch's traces
// (trace_id:in(...), over the whole retention), on which Go evaluates the
// conditions exactly. A trace's start is never later than k, and a trace
// not yet seen starts before the window, so the search stops once Limit
// matches start later than every candidate left: a search for frequent
// spans reads little.
func (s *Store) Search(ctx context.Context, p traces.SearchParams) ([]traces.TraceSummary, error) {
	sr, err := s.newSearch(p)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if sr.to < sr.from {
		return nil, nil
	}
	res, err := sr.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return res, nil
}

// search is one Search call.
type search struct {
	s        *Store
	tenant   string
	from, to int64 // span start range, inclusive
	limit    int
	spss     int
	minDur   int64
	maxDur   int64
	groups   []group
	fields   fieldIndex
	// attrs are the attribute conditions, whose values matched spans show.
	attrs    []*cond
	pushdown string

	results []traces.TraceSummary
	done    map[traces.TraceID]struct{}
	// spansRead counts the candidate spans the windows read.
	spansRead int
}

// group is one conjunction of SearchParams.Any.
type group struct {
	span, trace []*cond
}

func (s *Store) newSearch(p traces.SearchParams) (*search, error) {
	sr := &search{s: s, tenant: p.Tenant, done: make(map[traces.TraceID]struct{})}
	sr.from, sr.to = s.timeRange(p.Start, p.End)
	return sr, sr.compile(p)
}

// compile compiles p's conditions and bounds into sr.
func (sr *search) compile(p traces.SearchParams) error {
	sr.limit, sr.spss = p.Limit, p.SpansPerSpanSet
	sr.minDur, sr.maxDur = int64(p.MinDuration), int64(p.MaxDuration)
	if sr.limit <= 0 {
		sr.limit = defaultSearchLimit
	}
	if sr.spss <= 0 {
		sr.spss = defaultSpansPerSpanSet
	}
	for _, n := range [nBaseFields]string{fieldTraceID, fieldSpanID, fieldIsRoot, fieldName, fieldService, fieldStart, fieldDuration} {
		sr.fields.get(n)
	}
	anyGroups := p.Any
	if len(anyGroups) == 0 {
		anyGroups = [][]traces.Condition{nil}
	}
	seenAttr := map[string]bool{}
	for _, conds := range anyGroups {
		var g group
		for _, c := range conds {
			cc, err := compileCond(c, &sr.fields)
			if err != nil {
				return err
			}
			if cc.subject == subjectSpan {
				g.span = append(g.span, cc)
			} else {
				g.trace = append(g.trace, cc)
			}
			if cc.isAttr() && !seenAttr[cc.attr] {
				seenAttr[cc.attr] = true
				sr.attrs = append(sr.attrs, cc)
			}
		}
		sr.groups = append(sr.groups, g)
	}
	sr.pushdown = sr.buildPushdown()
	return nil
}

// buildPushdown returns the LogsQL filter that keeps at least every span
// that can make its trace match: the groups' filters or'ed.
func (sr *search) buildPushdown() string {
	var parts []string
	for _, g := range sr.groups {
		var b []byte
		add := func(c *cond) {
			if len(b) > 0 {
				b = append(b, ' ')
			}
			b = c.appendPushdown(b)
		}
		for _, c := range g.span {
			add(c)
		}
		if len(g.span) == 0 {
			// Only trace conditions: a root-span condition selects root
			// spans, which every trace it holds for has.
			for _, c := range g.trace {
				var field string
				switch c.subject {
				case subjectRootName:
					field = fieldName
				case subjectRootService:
					field = fieldService
				default:
					continue
				}
				rc := *c
				rc.names = []string{field}
				if len(b) == 0 {
					b = append(b, fieldIsRoot+`:="true"`...)
				}
				add(&rc)
			}
		}
		if len(b) == 0 {
			return "*"
		}
		parts = append(parts, "("+string(b)+")")
	}
	return strings.Join(parts, " or ")
}

func (sr *search) run(ctx context.Context) ([]traces.TraceSummary, error) {
	// The windows grow back from the clock: what lies after it (spans
	// from clocks ahead, up to the future retention) is read first, at
	// once.
	wTo := sr.to
	if now := nowNano() + clockSlack; wTo > now {
		if done, _, err := sr.window(ctx, max(now+1, sr.from), wTo); done || err != nil {
			return sr.finish(), err
		}
		wTo = now
	}
	probes := 0
	for w := firstWindow; wTo >= sr.from; w *= windowGrowth {
		wFrom := max(sr.from, wTo-w+1)
		if wTo-w+1 > wTo { // overflow
			wFrom = sr.from
		}
		done, empty, err := sr.window(ctx, wFrom, wTo)
		if done || err != nil {
			return sr.finish(), err
		}
		wTo = wFrom - 1
		if empty && probes < maxProbes {
			probes++
			newest, ok, err := sr.newestStart(ctx, sr.from, wTo)
			if err != nil || !ok {
				// No candidate span is left in the range.
				return sr.finish(), err
			}
			wTo, w = newest, firstWindow/windowGrowth
		}
	}
	return sr.finish(), nil
}

// window reads the candidates of [from, to] and summarises them; done
// reports that the search has its results, empty that the window held no
// candidate span at all.
func (sr *search) window(ctx context.Context, from, to int64) (done, empty bool, err error) {
	cands, spans, err := sr.candidates(ctx, from, to)
	if err != nil {
		return false, false, err
	}
	sr.spansRead += spans
	stop, err := sr.summarise(ctx, cands)
	if err != nil {
		return false, false, err
	}
	// A trace not seen yet has every candidate span, and so its start,
	// before from.
	return stop || sr.countFrom(from) >= sr.limit || from <= sr.from, spans == 0, nil
}

// newestStart returns the start of the newest span the pushed-down filter
// keeps in [from, to]; ok is false when there is none. The engine reads
// only the start column of the spans the filter keeps.
func (sr *search) newestStart(ctx context.Context, from, to int64) (newest int64, ok bool, err error) {
	if to < from {
		return 0, false, nil
	}
	q, err := vlengine.ParseQuery(sr.pushdown+" | stats max("+fieldStart+") as newest", from, to+1)
	if err != nil {
		return 0, false, err
	}
	var mu sync.Mutex
	err = sr.s.eng.Query(ctx, sr.tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, func(_ uint, db *logstorage.DataBlock) {
			for _, v := range column(db, "newest") {
				n, perr := strconv.ParseInt(v, 10, 64)
				if perr != nil {
					continue // "" when no span matched
				}
				mu.Lock()
				if !ok || n > newest {
					newest, ok = n, true
				}
				mu.Unlock()
			}
		})
	})
	if err != nil {
		return 0, false, err
	}
	// The start is the row's time, so it is in range; clamp anyway, so a
	// wrong value cannot move the windows outside it.
	return min(max(newest, from), to), ok, nil
}

// finish orders the results and cuts them to the limit.
func (sr *search) finish() []traces.TraceSummary {
	slices.SortFunc(sr.results, func(a, b traces.TraceSummary) int {
		return cmp.Or(cmp.Compare(b.StartTimeUnixNano, a.StartTimeUnixNano), slices.Compare(a.TraceID[:], b.TraceID[:]))
	})
	if len(sr.results) > sr.limit {
		sr.results = sr.results[:sr.limit]
	}
	return sr.results
}

// countFrom counts the results that start at or after ts.
func (sr *search) countFrom(ts int64) int {
	n := 0
	for i := range sr.results {
		if int64(sr.results[i].StartTimeUnixNano) >= ts {
			n++
		}
	}
	return n
}

// candidate is a trace with spans the pushdown keeps, and the earliest
// start of those in the windows read.
type candidate struct {
	id traces.TraceID
	k  int64
}

// candidates reads the pushed-down filter's spans that started in
// [from, to] and returns their traces not summarised yet, most recent k
// first, and how many spans it read.
func (sr *search) candidates(ctx context.Context, from, to int64) ([]candidate, int, error) {
	qs := sr.pushdown + " | fields " + fieldTraceID + ", " + fieldStart
	q, err := vlengine.ParseQuery(qs, from, to+1)
	if err != nil {
		return nil, 0, err
	}
	var (
		mu    sync.Mutex
		seen  = map[traces.TraceID]int64{}
		spans int
	)
	err = sr.s.eng.Query(ctx, sr.tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, func(_ uint, db *logstorage.DataBlock) {
			ids, starts := column(db, fieldTraceID), column(db, fieldStart)
			if ids == nil || starts == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			spans += len(ids)
			var id traces.TraceID
			for i := range ids {
				if !parseTraceID(&id, ids[i]) {
					continue
				}
				if _, done := sr.done[id]; done {
					continue
				}
				ts, err := strconv.ParseInt(starts[i], 10, 64)
				if err != nil {
					continue
				}
				if k, ok := seen[id]; !ok || ts < k {
					seen[id] = ts
				}
			}
		})
	})
	if err != nil {
		return nil, 0, err
	}
	cands := make([]candidate, 0, len(seen))
	for id, k := range seen {
		cands = append(cands, candidate{id: id, k: k})
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(b.k, a.k), slices.Compare(a.id[:], b.id[:]))
	})
	return cands, spans, nil
}

func parseTraceID(id *traces.TraceID, s string) bool {
	if len(s) != 2*len(id) {
		return false
	}
	_, err := hex.Decode(id[:], []byte(s))
	return err == nil
}

// summarise summarises cands in batches, most recent first, until Limit
// results start later than every candidate left; stop reports that.
func (sr *search) summarise(ctx context.Context, cands []candidate) (stop bool, err error) {
	batch := max(minBatch, 2*sr.limit)
	for len(cands) > 0 {
		// Every candidate left starts at or before cands[0].k.
		if sr.countAfter(cands[0].k) >= sr.limit {
			return true, nil
		}
		n := min(batch, len(cands), maxBatchTerms)
		if err := sr.summariseBatch(ctx, cands[:n]); err != nil {
			return false, err
		}
		cands = cands[n:]
		batch *= 2
	}
	return false, nil
}

// countAfter counts the results that start after ts.
func (sr *search) countAfter(ts int64) int {
	n := 0
	for i := range sr.results {
		if int64(sr.results[i].StartTimeUnixNano) > ts {
			n++
		}
	}
	return n
}

// summariseBatch reads every span of the batch's traces and keeps the
// traces that match.
func (sr *search) summariseBatch(ctx context.Context, batch []candidate) error {
	b := make([]byte, 0, 64+len(batch)*40)
	b = append(b, fieldTraceID+":in("...)
	for i, c := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = hex.AppendEncode(b, c.id[:])
		b = append(b, '"')
		sr.done[c.id] = struct{}{}
	}
	b = append(b, ") | fields "...)
	for i, n := range sr.fields.names {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendQuote(b, n)
	}
	from, to := sr.s.eng.SearchWindow(nowNano())
	q, err := vlengine.ParseQuery(string(b), from, to)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		spans = map[traces.TraceID][]spanRow{}
	)
	nf := len(sr.fields.names)
	err = sr.s.eng.Query(ctx, sr.tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, func(_ uint, db *logstorage.DataBlock) {
			cols := make([][]string, nf)
			for i, n := range sr.fields.names {
				cols[i] = column(db, n)
			}
			if cols[idxTraceID] == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			var id traces.TraceID
			for r := range db.RowsCount() {
				if !parseTraceID(&id, cols[idxTraceID][r]) {
					continue
				}
				vals := make([]string, nf)
				for i, c := range cols {
					if c != nil && c[r] != "" {
						vals[i] = strings.Clone(c[r])
					}
				}
				spans[id] = append(spans[id], newSpanRow(vals))
			}
		})
	})
	if err != nil {
		return err
	}
	for _, c := range batch {
		if sum, ok := sr.evaluate(c.id, spans[c.id]); ok {
			sr.results = append(sr.results, sum)
		}
	}
	return nil
}

// spanRow is a span as a summary reads it.
type spanRow struct {
	vals       []string // by search.fields
	start, end int64
}

func newSpanRow(vals []string) spanRow {
	r := spanRow{vals: vals}
	r.start, _ = strconv.ParseInt(vals[idxStart], 10, 64)
	dur, _ := strconv.ParseInt(vals[idxDuration], 10, 64)
	r.end = r.start + max(dur, 0)
	return r
}

// evaluate decides whether the trace of spans matches, and summarises it.
func (sr *search) evaluate(id traces.TraceID, spans []spanRow) (traces.TraceSummary, bool) {
	if len(spans) == 0 {
		return traces.TraceSummary{}, false
	}
	// One copy of each span ID.
	slices.SortFunc(spans, func(a, b spanRow) int {
		return cmp.Or(cmp.Compare(a.start, b.start), strings.Compare(a.vals[idxSpanID], b.vals[idxSpanID]))
	})
	seen := make(map[string]struct{}, len(spans))
	spans = slices.DeleteFunc(spans, func(r spanRow) bool {
		if _, dup := seen[r.vals[idxSpanID]]; dup {
			return true
		}
		seen[r.vals[idxSpanID]] = struct{}{}
		return false
	})

	start, end := spans[0].start, spans[0].end
	var root *spanRow
	for i := range spans {
		r := &spans[i]
		end = max(end, r.end)
		if root == nil && r.vals[idxIsRoot] == "true" {
			root = r // the earliest, if several
		}
	}
	dur := max(end-start, 0)
	if sr.minDur > 0 && dur < sr.minDur || sr.maxDur > 0 && dur > sr.maxDur {
		return traces.TraceSummary{}, false
	}
	traceDur := strconv.FormatInt(dur, 10)
	groupOK := make([]bool, len(sr.groups))
	anyGroup := false
	for gi, g := range sr.groups {
		groupOK[gi] = true
		for _, c := range g.trace {
			var ok bool
			switch c.subject {
			case subjectRootName:
				ok = root != nil && c.holds(root.vals[idxName], true)
			case subjectRootService:
				ok = root != nil && c.holds(root.vals[idxService], true)
			case subjectTraceDuration:
				ok = c.holds(traceDur, true)
			}
			if !ok {
				groupOK[gi] = false
				break
			}
		}
		anyGroup = anyGroup || groupOK[gi]
	}
	if !anyGroup {
		return traces.TraceSummary{}, false
	}

	sum := traces.TraceSummary{TraceID: id, StartTimeUnixNano: uint64(max(start, 0)), DurationMs: uint64(dur / 1e6)}
	if root != nil {
		sum.RootServiceName, sum.RootTraceName = root.vals[idxService], root.vals[idxName]
	}
	for i := range spans {
		r := &spans[i]
		if r.start < sr.from || r.start > sr.to || !sr.spanMatches(r, groupOK) {
			continue
		}
		sum.MatchedAll++
		if len(sum.Matched) < sr.spss {
			sum.Matched = append(sum.Matched, sr.spanSummary(r))
		}
	}
	return sum, sum.MatchedAll > 0
}

func (sr *search) spanMatches(r *spanRow, groupOK []bool) bool {
next:
	for gi, g := range sr.groups {
		if !groupOK[gi] {
			continue
		}
		for _, c := range g.span {
			if !c.holdsOnSpan(r.vals) {
				continue next
			}
		}
		return true
	}
	return false
}

func (sr *search) spanSummary(r *spanRow) traces.SpanSummary {
	ss := traces.SpanSummary{
		Name:              r.vals[idxName],
		StartTimeUnixNano: uint64(max(r.start, 0)),
		DurationNanos:     uint64(max(r.end-r.start, 0)),
	}
	_, _ = hex.Decode(ss.SpanID[:], []byte(r.vals[idxSpanID]))
	for _, c := range sr.attrs {
		for _, i := range c.fields {
			if v := r.vals[i]; v != "" {
				if ss.Attributes == nil {
					ss.Attributes = make(map[string]string, len(sr.attrs))
				}
				ss.Attributes[c.attr] = v
				break
			}
		}
	}
	return ss
}
