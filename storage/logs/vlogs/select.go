package vlogs

import (
	"container/heap"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/storage/logs"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Select returns the streams with entries matching p (see logs.Querier).
//
// The stream selector, time range and line filters are pushed down to
// LogsQL to prune, and applied again exactly in Go: matchers with
// Prometheus semantics (regexps fully anchored, a missing label is ""),
// |= and != as case-sensitive substrings, |~ and !~ as unanchored RE2
// (regexp.MatchString). Entries equal in stream, timestamp, line and
// metadata (a redelivered batch appended twice) are returned once. With a
// limit, only the first p.Limit entries in p.Direction order are kept while
// reading; ties in timestamp are ordered by stream, line and metadata.
func (s *Store) Select(ctx context.Context, p logs.SelectParams) ([]logs.Stream, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	filters, err := compileLineFilters(p.LineFilters)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	if p.End == p.Start {
		return nil, nil
	}
	q, err := parseQuery(selectQuery(p.Matchers, p.LineFilters), p.Start, p.End)
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}

	sel := &selection{p: &p, filters: filters}
	err = s.eng.Query(ctx, p.Tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, sel.writeBlock)
	})
	if err != nil {
		return nil, fmt.Errorf("select: %w", err)
	}
	return sel.result()
}

// SelectStream hands every entry matching p to fn (see logs.Streamer),
// with the pruning and exact Go checks of Select but without ordering,
// limiting or de-duplicating: an entry stored twice is handed over twice.
// Each block is read whole under one lock, so fn is never called
// concurrently; e's Line and Metadata point into the block (Metadata into
// a reused buffer) and are valid only during the call, ls until
// SelectStream returns.
func (s *Store) SelectStream(ctx context.Context, p logs.SelectParams, fn func(ls labels.Labels, e *logs.Entry) error) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("select stream: %w", err)
	}
	if p.Limit != 0 {
		return fmt.Errorf("select stream: limit %d: streaming takes no limit", p.Limit)
	}
	filters, err := compileLineFilters(p.LineFilters)
	if err != nil {
		return fmt.Errorf("select stream: %w", err)
	}
	if p.End == p.Start {
		return nil
	}
	q, err := parseQuery(selectQuery(p.Matchers, p.LineFilters), p.Start, p.End)
	if err != nil {
		return fmt.Errorf("select stream: %w", err)
	}
	// The library ends a cancelled query quietly: cancel to stop early on
	// fn's error, and report that error rather than the cancellation.
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sel := &selection{p: &p, filters: filters, emit: fn, cancel: cancel}
	err = s.eng.Query(qctx, p.Tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, sel.writeBlock)
	})
	if sel.emitErr != nil {
		return sel.emitErr
	}
	for _, r := range sel.readers {
		if r != nil && r.err != nil {
			return r.err
		}
	}
	if err != nil {
		return fmt.Errorf("select stream: %w", err)
	}
	return nil
}

// parseQuery parses a LogsQL query built by this package and limits it to
// [start, end), with end > start.
func parseQuery(qs string, start, end int64) (*logstorage.Query, error) {
	return vlengine.ParseQuery(qs, start, end)
}

// streamFilter appends the LogsQL filter that prunes to the streams
// matchers select ("*" without matchers). VictoriaLogs evaluates =~ and !~
// as Prometheus does (regexutil.PromRegex: anchored, `.` matches newlines,
// a missing label is ""), so the filter is exact; Go applies the matchers
// again all the same.
func streamFilter(b []byte, matchers []*labels.Matcher) []byte {
	if len(matchers) == 0 {
		return append(b, '*')
	}
	b = append(b, "_stream:{"...)
	for i, m := range matchers {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, m.Name)
		b = append(b, m.Type.String()...)
		b = strconv.AppendQuote(b, m.Value)
	}
	return append(b, '}')
}

// selectQuery builds the LogsQL query that prunes a selection. Every user
// string is a strconv.Quote'd literal, which LogsQL's lexer reads back with
// strconv.Unquote, so no value can change the query's structure.
func selectQuery(matchers []*labels.Matcher, filters []logs.LineFilter) string {
	b := streamFilter(make([]byte, 0, 256), matchers)
	for _, f := range filters {
		if len(f.Values) == 0 || slices.Contains(f.Values, "") {
			// An empty substring or regexp matches every line; Go handles it.
			continue
		}
		switch f.Op {
		case logs.LineContains:
			b = appendMsgFilters(append(b, " ("...), f.Values, "*", "*")
			b = append(b, ')')
		case logs.LineNotContains:
			b = appendMsgFilters(append(b, " !("...), f.Values, "*", "*")
			b = append(b, ')')
		case logs.LineMatches:
			// VictoriaLogs' regexps let `.` match a newline and Go's do
			// not: it keeps a superset, which Go narrows. !~ is not pushed
			// down for the same reason.
			b = appendMsgFilters(append(b, " ("...), f.Values, "~", "")
			b = append(b, ')')
		}
	}
	b = append(b, ` | fields _time, _stream, _msg, "`+metaPrefix+`"*`...)
	return string(b)
}

func appendMsgFilters(b []byte, values []string, before, after string) []byte {
	for i, v := range values {
		if i > 0 {
			b = append(b, " or "...)
		}
		b = append(b, "_msg:"...)
		b = append(b, before...)
		b = strconv.AppendQuote(b, v)
		b = append(b, after...)
	}
	return b
}

// lineFilter is a logs.LineFilter ready to run.
type lineFilter struct {
	op     logs.LineFilterOp
	values []string
	res    []*regexp.Regexp
}

func compileLineFilters(fs []logs.LineFilter) ([]lineFilter, error) {
	out := make([]lineFilter, len(fs))
	for i, f := range fs {
		out[i] = lineFilter{op: f.Op, values: f.Values}
		switch f.Op {
		case logs.LineContains, logs.LineNotContains:
		case logs.LineMatches, logs.LineNotMatches:
			for _, v := range f.Values {
				re, err := regexp.Compile(v)
				if err != nil {
					return nil, fmt.Errorf("line filter %s %q: %w", f.Op, v, err)
				}
				out[i].res = append(out[i].res, re)
			}
		default:
			return nil, fmt.Errorf("unknown line filter operator %s", f.Op)
		}
	}
	return out, nil
}

func (f *lineFilter) keep(line string) bool {
	switch f.op {
	case logs.LineContains, logs.LineNotContains:
		for _, v := range f.values {
			if strings.Contains(line, v) {
				return f.op == logs.LineContains
			}
		}
		return f.op == logs.LineNotContains
	default:
		for _, re := range f.res {
			if re.MatchString(line) {
				return f.op == logs.LineMatches
			}
		}
		return f.op == logs.LineNotMatches
	}
}

// selection collects the rows of one Select. RunQuery calls writeBlock from
// several workers at once; each has its own reader, merged at the end.
type selection struct {
	p       *logs.SelectParams
	filters []lineFilter

	mu      sync.Mutex
	readers []*reader

	// emit, when set, receives every kept row instead of the readers
	// (SelectStream); emitMu serialises it and guards emitErr, its first
	// error, after which cancel stops the query.
	emit    func(ls labels.Labels, e *logs.Entry) error
	emitMu  sync.Mutex
	emitErr error
	cancel  context.CancelFunc
}

func (sel *selection) reader(workerID uint) *reader {
	sel.mu.Lock()
	defer sel.mu.Unlock()
	for uint(len(sel.readers)) <= workerID {
		sel.readers = append(sel.readers, nil)
	}
	r := sel.readers[workerID]
	if r == nil {
		r = &reader{sel: sel, streams: make(map[string]*streamRef), names: make(map[string]string)}
		r.rows.forward = sel.p.Direction == logs.Forward
		if sel.p.Limit > 0 {
			r.seen = make(map[rowKey]struct{})
		}
		sel.readers[workerID] = r
	}
	return r
}

func (sel *selection) writeBlock(workerID uint, db *logstorage.DataBlock) {
	r := sel.reader(workerID)
	if sel.emit != nil {
		sel.emitMu.Lock()
		defer sel.emitMu.Unlock()
		if sel.emitErr != nil {
			return
		}
	}
	if r.err == nil {
		r.err = r.read(db)
		if r.err != nil && sel.cancel != nil {
			sel.cancel()
		}
	}
}

// streamRef is a stream as one reader saw it.
type streamRef struct {
	// key is the `_stream` value: the label set in VictoriaLogs' canonical
	// form, the same for every reader.
	key    string
	labels labels.Labels
	// ok is whether the matchers select the stream.
	ok bool
}

// row is an entry kept by a reader. Its strings are its own.
type row struct {
	st   *streamRef
	ts   int64
	line string
	meta labels.Labels
}

// rowKey identifies a row for de-duplication within a reader.
type rowKey struct {
	st   *streamRef
	ts   int64
	line string
	meta string
}

func (r *row) key() rowKey {
	k := rowKey{st: r.st, ts: r.ts, line: r.line}
	if !r.meta.IsEmpty() {
		k.meta = r.meta.String()
	}
	return k
}

// compareRows orders rows forward: by timestamp, then stream, line and
// metadata, so that the order (and a limit's cut) is deterministic.
func compareRows(a, b *row) int {
	if c := compareHead(a, b.ts, b.st.key, b.line); c != 0 {
		return c
	}
	return labels.Compare(a.meta, b.meta)
}

func compareHead(a *row, ts int64, key, line string) int {
	switch {
	case a.ts < ts:
		return -1
	case a.ts > ts:
		return 1
	}
	if c := strings.Compare(a.st.key, key); c != 0 {
		return c
	}
	return strings.Compare(a.line, line)
}

// rowHeap holds the best rows seen so far with the worst on top, so that a
// better row replaces it (a max-heap for forward, a min-heap for backward).
type rowHeap struct {
	rows    []row
	forward bool
}

func (h *rowHeap) Len() int { return len(h.rows) }
func (h *rowHeap) Less(i, j int) bool {
	c := compareRows(&h.rows[i], &h.rows[j])
	if h.forward {
		return c > 0
	}
	return c < 0
}
func (h *rowHeap) Swap(i, j int) { h.rows[i], h.rows[j] = h.rows[j], h.rows[i] }
func (h *rowHeap) Push(x any)    { h.rows = append(h.rows, x.(row)) }
func (h *rowHeap) Pop() any {
	n := len(h.rows) - 1
	x := h.rows[n]
	h.rows[n] = row{}
	h.rows = h.rows[:n]
	return x
}

// reader turns the blocks one worker receives into rows.
type reader struct {
	sel     *selection
	streams map[string]*streamRef
	last    *streamRef
	// names maps a metadata column to its cloned metadata name.
	names map[string]string
	// rows holds every kept row, or without a limit, or the best p.Limit
	// rows as a heap with a limit; seen holds their keys then.
	rows rowHeap
	seen map[rowKey]struct{}

	ts   []int64
	meta []logstorage.BlockColumn
	sb   labels.ScratchBuilder
	err  error

	// entry and md are reused by emit.
	entry logs.Entry
	md    labels.Labels
}

func (r *reader) read(db *logstorage.DataBlock) error {
	p := r.sel.p
	var times, streams, msgs []string
	r.meta = r.meta[:0]
	for _, c := range db.GetColumns(true) {
		switch {
		case c.Name == "_time":
			times = c.Values
		case c.Name == "_stream":
			streams = c.Values
		case c.Name == "_msg":
			msgs = c.Values
		case strings.HasPrefix(c.Name, metaPrefix):
			r.meta = append(r.meta, c)
		}
	}
	if times == nil || streams == nil {
		return fmt.Errorf("select: block without _time or _stream (columns %d)", len(db.GetColumns(false)))
	}
	var ok bool
	r.ts, ok = db.GetTimestamps(r.ts[:0])
	if !ok {
		return fmt.Errorf("select: cannot parse _time values such as %q", times[0])
	}
	for i, ts := range r.ts {
		if ts < p.Start || ts >= p.End {
			continue
		}
		st, err := r.stream(streams[i])
		if err != nil {
			return err
		}
		if !st.ok {
			continue
		}
		line := ""
		if msgs != nil {
			line = msgs[i]
		}
		if !r.keep(line) {
			continue
		}
		if r.sel.emit != nil {
			if !r.emit(st, ts, line, i) {
				return nil
			}
			continue
		}
		r.add(st, ts, line, i)
	}
	return nil
}

func (r *reader) keep(line string) bool {
	for i := range r.sel.filters {
		if !r.sel.filters[i].keep(line) {
			return false
		}
	}
	return true
}

// stream returns the streamRef of a `_stream` value, parsing it and
// running the matchers once per stream.
func (r *reader) stream(key string) (*streamRef, error) {
	if r.last != nil && r.last.key == key {
		return r.last, nil
	}
	st := r.streams[key]
	if st == nil {
		key = strings.Clone(key)
		ls, err := parseStream(key, &r.sb)
		if err != nil {
			return nil, err
		}
		st = &streamRef{key: key, labels: ls, ok: true}
		for _, m := range r.sel.p.Matchers {
			if !m.Matches(ls.Get(m.Name)) {
				st.ok = false
				break
			}
		}
		r.streams[key] = st
	}
	r.last = st
	return st, nil
}

// add keeps row i of the current block, cloning what it keeps.
func (r *reader) add(st *streamRef, ts int64, line string, i int) {
	limit := r.sel.p.Limit
	h := &r.rows
	if limit > 0 && h.Len() >= limit {
		// Most rows lose against the worst kept one without their metadata
		// being read.
		c := compareHead(&h.rows[0], ts, st.key, line)
		if h.forward && c < 0 || !h.forward && c > 0 {
			return
		}
	}
	rw := row{st: st, ts: ts, line: line, meta: r.metadata(i)}
	if limit <= 0 {
		rw.line = strings.Clone(line)
		h.rows = append(h.rows, rw)
		return
	}
	if h.Len() >= limit {
		c := compareRows(&rw, &h.rows[0])
		if h.forward && c >= 0 || !h.forward && c <= 0 {
			return
		}
	}
	k := rw.key()
	if _, dup := r.seen[k]; dup {
		return
	}
	rw.line = strings.Clone(line)
	k.line = rw.line
	r.seen[k] = struct{}{}
	heap.Push(h, rw)
	if h.Len() > limit {
		out := heap.Pop(h).(row)
		delete(r.seen, out.key())
	}
}

// emit hands row i of the current block to the selection's emit function
// without copying its strings, and reports whether to go on.
func (r *reader) emit(st *streamRef, ts int64, line string, i int) bool {
	r.entry = logs.Entry{Timestamp: ts, Line: line, Metadata: labels.EmptyLabels()}
	if len(r.meta) > 0 {
		r.sb.Reset()
		for _, c := range r.meta {
			if v := c.Values[i]; v != "" {
				name, ok := r.names[c.Name]
				if !ok {
					name = strings.Clone(c.Name[len(metaPrefix):])
					r.names[strings.Clone(c.Name)] = name
				}
				r.sb.Add(name, v)
			}
		}
		r.sb.Overwrite(&r.md)
		r.entry.Metadata = r.md
	}
	if err := r.sel.emit(st.labels, &r.entry); err != nil {
		r.sel.emitErr = err
		r.sel.cancel()
		return false
	}
	return true
}

// metadata returns row i's metadata, sorted, with cloned strings.
func (r *reader) metadata(i int) labels.Labels {
	if len(r.meta) == 0 {
		return labels.EmptyLabels()
	}
	r.sb.Reset()
	for _, c := range r.meta {
		v := c.Values[i]
		if v == "" {
			continue
		}
		name, ok := r.names[c.Name]
		if !ok {
			name = strings.Clone(c.Name[len(metaPrefix):])
			r.names[strings.Clone(c.Name)] = name
		}
		r.sb.Add(name, strings.Clone(v))
	}
	// Columns come sorted by name, and so their metadata names.
	return r.sb.Labels()
}

// result merges the readers into streams sorted by labels, each with its
// entries in p.Direction order, de-duplicated.
func (sel *selection) result() ([]logs.Stream, error) {
	p := sel.p
	var all []row
	for _, r := range sel.readers {
		if r == nil {
			continue
		}
		if r.err != nil {
			return nil, r.err
		}
		all = append(all, r.rows.rows...)
	}
	cmp := compareRows
	if p.Direction == logs.Backward {
		cmp = func(a, b *row) int { return compareRows(b, a) }
	}
	slices.SortFunc(all, func(a, b row) int { return cmp(&a, &b) })
	all = slices.CompactFunc(all, func(a, b row) bool { return compareRows(&a, &b) == 0 })
	if p.Limit > 0 && len(all) > p.Limit {
		all = all[:p.Limit]
	}

	byKey := make(map[string]int)
	var out []logs.Stream
	for i := range all {
		rw := &all[i]
		j, ok := byKey[rw.st.key]
		if !ok {
			j = len(out)
			byKey[rw.st.key] = j
			out = append(out, logs.Stream{Labels: rw.st.labels})
		}
		out[j].Entries = append(out[j].Entries, logs.Entry{Timestamp: rw.ts, Line: rw.line, Metadata: rw.meta})
	}
	slices.SortFunc(out, func(a, b logs.Stream) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// parseStream parses a `_stream` value, {name="quoted value",...}. Names
// cannot contain '=' (Append checks), so the first '=' ends a name.
func parseStream(s string, sb *labels.ScratchBuilder) (labels.Labels, error) {
	orig := s
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return labels.EmptyLabels(), fmt.Errorf("invalid _stream value %q", orig)
	}
	s = s[1 : len(s)-1]
	sb.Reset()
	for s != "" {
		n := strings.IndexByte(s, '=')
		if n < 0 {
			return labels.EmptyLabels(), fmt.Errorf("invalid _stream value %q: no '=' after a name", orig)
		}
		name := s[:n]
		s = s[n+1:]
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return labels.EmptyLabels(), fmt.Errorf("invalid _stream value %q: %w", orig, err)
		}
		value, err := strconv.Unquote(q)
		if err != nil {
			return labels.EmptyLabels(), fmt.Errorf("invalid _stream value %q: %w", orig, err)
		}
		sb.Add(name, value)
		s = s[len(q):]
		if s != "" {
			if s[0] != ',' {
				return labels.EmptyLabels(), fmt.Errorf("invalid _stream value %q: no ',' after a value", orig)
			}
			s = s[1:]
		}
	}
	sb.Sort()
	return sb.Labels(), nil
}
