package vtraces

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Append stores every span of td for tenant (see traces.Appender), one row
// per span (see the package documentation for its fields). It does not
// keep references to td after it returns.
//
// Spans are rejected one by one, counted in
// pharos_traces_rejected_spans_total, while the rest of the call is
// stored: an all-zero trace or span ID (invalid), a start time outside the
// accepted window (older than the backfill limit less a minute, or
// further ahead than the future retention), or a row over VictoriaLogs'
// limits (2 MiB). Attributes that cannot be fields (bytes, arrays and
// maps; keys longer than VictoriaLogs' 128 bytes less the prefix; new
// names beyond Config.MaxAttributeFields for the service and day, see
// attrNames) are kept in the stored OTLP, so Trace returns them, but are
// not searchable; they are counted in
// pharos_traces_unindexed_attributes_total.
func (s *Store) Append(tenant string, td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil
	}
	t := wireTracesPool.Get().(*otlpwire.Traces)
	defer func() {
		t.Reset()
		wireTracesPool.Put(t)
	}()
	if err := t.ReadPdata(td); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	return s.AppendWire(tenant, t)
}

var wireTracesPool = sync.Pool{New: func() any { return new(otlpwire.Traces) }}

// AppendWire is Append for spans read in their wire form (see
// traces.Appender): each span's record is cut from the bytes t was read
// from, which it does not keep.
func (s *Store) AppendWire(tenant string, t *otlpwire.Traces) error {
	if len(t.Spans) == 0 {
		return nil
	}
	storage, err := s.eng.Acquire()
	if err != nil {
		return err
	}
	defer s.eng.Release()
	now := time.Now().UnixNano()
	if s.eng.ReadOnly(now) {
		return ErrReadOnly
	}
	minTS, maxTS := s.eng.TimeWindow(now)
	tid, err := s.eng.AppendTenantID(tenant)
	if err != nil {
		return err
	}

	b := appendBufPool.Get().(*appendBuf)
	defer b.put()
	// Also after an error: rows added so far must be made durable.
	defer func() { s.eng.MarkDirty(b.days) }()

	var c appendCounts
	for i := range t.Resources {
		r := &t.Resources[i]
		b.startResource(t, r)
		staged := s.eng.Stage(tid, xxhash.Sum64String(b.fields[0].Value))
		b.appendResource(s, storage, staged, tid, t, r, minTS, maxTS, &c)
		staged.Done()
	}
	c.record(s.metrics)
	return nil
}

// appendResource stages the rows of r's spans.
func (b *appendBuf) appendResource(s *Store, storage *logstorage.Storage, staged *vlengine.StagedRows, tid logstorage.TenantID, t *otlpwire.Traces, r *otlpwire.Resource, minTS, maxTS int64, c *appendCounts) {
	for j := r.Scopes.Start; j < r.Scopes.End; j++ {
		sc := &t.Scopes[j]
		for k := sc.Spans.Start; k < sc.Spans.End; k++ {
			sp := &t.Spans[k]
			ts := int64(sp.Start)
			switch {
			case sp.TraceID == [16]byte{} || sp.SpanID == [8]byte{}:
				c.invalid++
				continue
			case ts < minTS:
				c.tooOld++
				continue
			case ts > maxTS:
				c.tooNew++
				continue
			}
			if key := (nameSetKey{tenant: tid, service: b.fields[0].Value, day: ts / vlengine.NsPerDay}); b.set == nil || b.set.key != key || !b.resDone {
				b.set = s.names.get(storage, key, minTS/vlengine.NsPerDay)
				b.resourceFields(t, r, s.names.limit, c)
			}
			otlpLen := b.spanFields(t, r, sc, sp, s.names.limit, c)
			if logstorage.EstimatedJSONRowLen(b.row) > maxRowSize {
				c.tooLarge++
				continue
			}
			staged.Add(ts, b.row, 1)
			b.days = vlengine.AddDay(b.days, ts)
			c.accepted++
			c.bytes += otlpLen
		}
	}
}

// appendCounts are what one Append did.
type appendCounts struct {
	accepted, bytes, invalid, tooOld, tooNew, tooLarge int
	// unindexed counts the attributes that are not fields, by reason.
	unindexed [3]int
}

// Reasons an attribute is not a field, the values of the reason label of
// pharos_traces_unindexed_attributes_total, by index of
// appendCounts.unindexed.
var unindexedReasons = [...]string{"type", "name_too_long", "too_many_names"}

const (
	unindexedType = iota
	unindexedNameTooLong
	unindexedTooManyNames
)

func (c *appendCounts) record(m *storeMetrics) {
	m.appendedSpans.Add(float64(c.accepted))
	m.appendedBytes.Add(float64(c.bytes))
	for _, r := range [...]struct {
		n      int
		reason string
	}{{c.invalid, reasonInvalid}, {c.tooOld, reasonTooOld}, {c.tooNew, reasonTooNew}, {c.tooLarge, reasonTooLarge}} {
		if r.n > 0 {
			m.rejected.WithLabelValues(r.reason).Add(float64(r.n))
		}
	}
	for i, n := range c.unindexed {
		if n > 0 {
			m.unindexed.WithLabelValues(unindexedReasons[i]).Add(float64(n))
		}
	}
}

// appendBuf holds what Append reuses between calls and spans. Field
// strings made from its byte buffers alias them: LogRows.MustAdd copies
// every name and value before a buffer is overwritten. (A buffer that grows
// leaves the strings made so far on the old, unchanged array.)
type appendBuf struct {
	// fields is the current resource's: the stream field, then its
	// attribute fields, sorted by name (rendered into resBuf); nResource
	// counts both. row is the current span's (see spanFields), rendered
	// into spanBuf.
	fields    []logstorage.Field
	row       []logstorage.Field
	nResource int
	resBuf    []byte
	spanBuf   []byte
	recBuf    []byte
	// envText is the envelope field (see slim.go) of envScope's spans.
	envText  []byte
	envScope *otlpwire.Scope
	dedup    map[string]struct{}
	days     []int64
	// set is the name set of the current stream-day; resDone reports
	// whether the resource's attribute fields were made for it.
	set     *nameSet
	resDone bool
}

var appendBufPool = sync.Pool{New: func() any { return &appendBuf{} }}

func (b *appendBuf) put() {
	clear(b.fields) // drop references to the caller's strings
	b.fields = b.fields[:0]
	clear(b.row)
	b.row = b.row[:0]
	b.resBuf = b.resBuf[:0]
	b.spanBuf = b.spanBuf[:0]
	b.recBuf = b.recBuf[:0]
	b.envText, b.envScope = b.envText[:0], nil
	b.days = b.days[:0]
	b.set, b.resDone = nil, false
	clear(b.dedup)
	appendBufPool.Put(b)
}

// str returns buf[start:] as a string without copying.
func str(buf []byte, start int) string {
	if len(buf) == start {
		return ""
	}
	return unsafe.String(&buf[start], len(buf)-start)
}

// startResource starts b.fields with the stream field, the resource's
// service name; resourceFields adds its attribute fields once the
// stream-day's name set is known.
func (b *appendBuf) startResource(t *otlpwire.Traces, r *otlpwire.Resource) {
	b.resBuf = b.resBuf[:0]
	b.fields = append(b.fields[:0], logstorage.Field{Name: fieldService})
	if v, ok := t.Attr(r.Attrs, "service.name"); ok {
		b.resBuf, _ = appendValue(b.resBuf, v)
		b.fields[0].Value = str(b.resBuf, 0)
	}
	b.resDone = false
}

// resourceFields makes the resource's attribute fields for b.set.
func (b *appendBuf) resourceFields(t *otlpwire.Traces, r *otlpwire.Resource, limit int, c *appendCounts) {
	b.resBuf = b.resBuf[:len(b.fields[0].Value)]
	b.fields, b.resBuf = appendAttrFields(b.fields[:1], b.resBuf, t.Attrs[r.Attrs.Start:r.Attrs.End], resourcePrefix, "service.name", b.set, limit, &b.dedup, c)
	sortFields(b.fields[1:])
	b.nResource = len(b.fields)
	b.resDone = true
}

// spanFields makes b.row, sp's row: the stream field, then every other
// field in the order of their names, which is how lib/logstorage keeps
// them (it sorts each row's fields when it makes a part, and a sorted row
// costs it one pass), with the same names on every row of a stream where
// the attributes allow (it makes a block's columns without a map then).
// r and sc are sp's resource and scope. It returns the size of the OTLP
// record.
func (b *appendBuf) spanFields(t *otlpwire.Traces, r *otlpwire.Resource, sc *otlpwire.Scope, sp *otlpwire.Span, limit int, c *appendCounts) int {
	buf := b.spanBuf[:0]
	row := append(b.row[:0], b.fields[0])
	add := func(name string, start int) {
		row = append(row, logstorage.Field{Name: name, Value: str(buf, start)})
	}

	startNs, endNs := int64(sp.Start), int64(sp.End)
	start := len(buf)
	buf = strconv.AppendInt(buf, max(endNs-startNs, 0), 10)
	add(fieldDuration, start)
	isRoot := "false"
	if !sp.HasParent() {
		isRoot = "true"
	}
	row = append(row,
		logstorage.Field{Name: fieldIsRoot, Value: isRoot},
		logstorage.Field{Name: fieldKind, Value: kindName(sp.Kind)},
		logstorage.Field{Name: fieldName, Value: sp.Name},
	)
	// The slim record is made in recBuf, then stored as text (see slim.go
	// and spantext.go); the resource and scope once for the scope's spans.
	rec := spanRecord{resource: r.Resource, resourceSchema: r.SchemaURL, scope: sc.Scope, scopeSchema: sc.SchemaURL, span: sp.Field}
	otlpLen := spanRecordSize(rec)
	b.recBuf, _ = appendSlimSpan(b.recBuf[:0], sp.Field, startNs, endNs) // read by otlpwire: well-formed
	start = len(buf)
	buf = appendSpanText(buf, slimMarker, b.recBuf)
	add(fieldOTLP, start)
	if b.envScope != sc {
		b.recBuf = appendEnvelope(b.recBuf[:0], rec)
		b.envText = appendSpanText(b.envText[:0], slimMarker, b.recBuf)
		b.envScope = sc
	}
	row = append(row, logstorage.Field{Name: fieldEnvelope, Value: str(b.envText, 0)})

	row = append(row, b.fields[1:b.nResource]...)
	from := len(row)
	row, buf = appendAttrFields(row, buf, t.Attrs[sp.Attrs.Start:sp.Attrs.End], spanPrefix, "", b.set, limit, &b.dedup, c)
	sortFields(row[from:])

	start = len(buf)
	buf = hex.AppendEncode(buf, sp.SpanID[:])
	add(fieldSpanID, start)
	start = len(buf)
	buf = strconv.AppendInt(buf, startNs, 10)
	add(fieldStart, start)
	row = append(row,
		logstorage.Field{Name: fieldStatusCode, Value: statusName(sp.StatusCode)},
		logstorage.Field{Name: fieldStatusMessage, Value: sp.StatusMessage},
	)
	start = len(buf)
	buf = hex.AppendEncode(buf, sp.TraceID[:])
	add(fieldTraceID, start)

	b.row, b.spanBuf = row, buf
	return otlpLen
}

// sortFields sorts fields by name, if they are not sorted already.
func sortFields(fields []logstorage.Field) {
	cmpName := func(a, b logstorage.Field) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(fields, cmpName) {
		slices.SortFunc(fields, cmpName)
	}
}

// dedupLinear is the number of attributes up to which duplicates are
// looked for by scanning the fields; beyond it, a map is used.
const dedupLinear = 32

// appendAttrFields appends a field for each of attrs' searchable
// attributes, named prefix+key: not those of other types than string,
// int, double and bool, with names VictoriaLogs cannot take, or beyond
// set's limit (see attrNames), which are counted in c; nor the key skip,
// already stored (service.name, the stream field), nor a key seen before
// in attrs (which VictoriaLogs would store twice).
func appendAttrFields(fields []logstorage.Field, buf []byte, attrs []otlpwire.KeyValue, prefix, skip string, set *nameSet, limit int, dedup *map[string]struct{}, c *appendCounts) ([]logstorage.Field, []byte) {
	from := len(fields)
	useMap := len(attrs) > dedupLinear
	if useMap {
		if *dedup == nil {
			*dedup = make(map[string]struct{})
		}
		clear(*dedup)
	}
	for _, kv := range attrs {
		k, v := kv.Key, kv.Value
		switch {
		case k == skip || k == "":
			continue
		case len(prefix)+len(k) > maxFieldNameSize:
			c.unindexed[unindexedNameTooLong]++
			continue
		}
		nameStart := len(buf)
		buf = append(buf, prefix...)
		buf = append(buf, k...)
		valueStart := len(buf)
		var ok bool
		if buf, ok = appendValue(buf, v); !ok {
			c.unindexed[unindexedType]++
			buf = buf[:nameStart]
			continue
		}
		name := str(buf[:valueStart], nameStart)
		if useMap {
			if _, dup := (*dedup)[k]; dup {
				buf = buf[:nameStart]
				continue
			}
			(*dedup)[k] = struct{}{}
		} else if hasField(fields[from:], name) {
			buf = buf[:nameStart]
			continue
		}
		if !set.admit(name, limit) {
			c.unindexed[unindexedTooManyNames]++
			buf = buf[:nameStart]
			continue
		}
		fields = append(fields, logstorage.Field{Name: name, Value: str(buf, valueStart)})
	}
	return fields, buf
}

func hasField(fields []logstorage.Field, name string) bool {
	for i := range fields {
		if fields[i].Name == name {
			return true
		}
	}
	return false
}
