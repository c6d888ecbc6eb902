// Package otlpwire reads OTLP trace data (opentelemetry-proto's
// TracesData, what the bus carries) in its protobuf wire form, without
// decoding it into pdata. The aggregator reads each trace message once
// with it: the trace store takes the spans' fields and cuts each span's
// record from the bytes as they came, and the span metrics read the same
// fields, where decoding into pdata cost a copy of every string and an
// object per span, attribute and value, all garbage a moment later.
//
// Read checks the whole message, down to the attribute values of events
// and links, and accepts nothing pdata's ProtoUnmarshaler would refuse: a
// span stored from it must read back. It refuses a little that pdata
// takes (protobuf groups, which no OTLP encoder writes).
package otlpwire

import (
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// ErrMalformed is wrapped by every error of Read.
var ErrMalformed = errors.New("malformed OTLP traces")

// recursionLimit is pdata's bound on nested attribute values
// (KeyValue, AnyValue, ArrayValue and KeyValueList each count a level).
const recursionLimit = 100

// Traces is a TracesData read in place. Its strings and byte slices alias
// the bytes it was read from, and are valid while those are unchanged.
// Read reuses a Traces' slices; keep one per goroutine.
type Traces struct {
	Resources []Resource
	Scopes    []Scope
	Spans     []Span
	// Attrs holds the attributes of the resources and spans, each's a
	// Range of it.
	Attrs []KeyValue

	// Measure makes Read fill Strings.
	Measure bool
	// Strings measures what the agent's ingestion rules check, when
	// Measure is set.
	Strings StringStats
}

// StringStats measures the span names and the string and bytes attribute
// values, at any depth, of resources, scopes, spans, events and links.
type StringStats struct {
	// MaxLen is the length of the longest.
	MaxLen int
	// InvalidUTF8 reports a span name or string value that is not valid
	// UTF-8.
	InvalidUTF8 bool
}

// add measures s.
func (st *StringStats) add(s []byte, text bool) {
	if st == nil {
		return
	}
	st.MaxLen = max(st.MaxLen, len(s))
	if text && !st.InvalidUTF8 && !utf8.Valid(s) {
		st.InvalidUTF8 = true
	}
}

// Range is the half-open range [Start, End) of a slice of Traces.
type Range struct{ Start, End int }

// Len is the number of items in the range.
func (r Range) Len() int { return r.End - r.Start }

// Resource is one ResourceSpans.
type Resource struct {
	// Resource and SchemaURL are the ResourceSpans' last resource and
	// schema_url fields whole (tag, length and payload), nil when absent:
	// a span's stored record is made of them.
	Resource, SchemaURL []byte
	// Attrs are the resource's attributes, Scopes its ScopeSpans.
	Attrs, Scopes Range
}

// Scope is one ScopeSpans.
type Scope struct {
	// Scope and SchemaURL are the last scope and schema_url fields whole,
	// nil when absent.
	Scope, SchemaURL []byte
	Spans            Range
	// Resource is the index of its Resource in Traces.Resources.
	Resource int
}

// Span is one span: the fields the aggregator reads, and the span's
// whole field.
type Span struct {
	// Field is the ScopeSpans' spans field that holds the span, whole.
	Field         []byte
	TraceID       [16]byte
	SpanID        [8]byte
	ParentSpanID  [8]byte
	Name          string
	Kind          ptrace.SpanKind
	Start, End    uint64 // Unix ns
	StatusCode    ptrace.StatusCode
	StatusMessage string
	Attrs         Range
	// Scope is the index of its Scope in Traces.Scopes.
	Scope int
}

// HasParent reports whether the span has a parent (is not a root).
func (s *Span) HasParent() bool { return s.ParentSpanID != [8]byte{} }

// KeyValue is one attribute.
type KeyValue struct {
	Key   string
	Value Value
}

// ValueType is the type of a Value, as pcommon.ValueType.
type ValueType uint8

// The value types, as pdata reports them.
const (
	ValueEmpty ValueType = iota
	ValueStr
	ValueInt
	ValueDouble
	ValueBool
	ValueMap
	ValueSlice
	ValueBytes
)

// Value is an attribute's value. Only strings, ints, doubles and bools
// are read; a map, slice or bytes value has only its type.
type Value struct {
	typ ValueType
	str string
	num uint64
}

// Type returns the value's type.
func (v Value) Type() ValueType { return v.typ }

// Str returns a string value ("" for another type).
func (v Value) Str() string { return v.str }

// Int returns an int value.
func (v Value) Int() int64 { return int64(v.num) }

// Double returns a double value.
func (v Value) Double() float64 { return math.Float64frombits(v.num) }

// Bool returns a bool value.
func (v Value) Bool() bool { return v.num != 0 }

// Attr returns the value of the first attribute in r named key.
func (t *Traces) Attr(r Range, key string) (Value, bool) {
	for _, kv := range t.Attrs[r.Start:r.End] {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return Value{}, false
}

// AppendProto appends every span of t to dst as a TracesData (see
// AppendSpans).
func (t *Traces) AppendProto(dst []byte) []byte {
	all := make([]int, len(t.Spans))
	for k := range all {
		all[k] = k
	}
	return t.AppendSpans(dst, all)
}

// AppendSpans appends the spans of t with the indexes spans (in the order
// they were read) to dst as a TracesData, each under its resource and
// scope: every resource, scope and span field as it was read (a resource
// or scope given in several fields has its last one). Resources and
// scopes without any of the spans are left out.
func (t *Traces) AppendSpans(dst []byte, spans []int) []byte {
	for len(spans) > 0 {
		r := t.Scopes[t.Spans[spans[0]].Scope].Resource
		n := 1
		for n < len(spans) && t.Scopes[t.Spans[spans[n]].Scope].Resource == r {
			n++
		}
		dst = t.appendResource(dst, &t.Resources[r], spans[:n])
		spans = spans[n:]
	}
	return dst
}

// appendResource appends a ResourceSpans of r holding spans, which are
// r's.
func (t *Traces) appendResource(dst []byte, r *Resource, spans []int) []byte {
	size := len(r.Resource) + len(r.SchemaURL)
	for sel := spans; len(sel) > 0; {
		n, ss := t.scopeRun(sel)
		size += protowire.SizeTag(2) + protowire.SizeBytes(ss)
		sel = sel[n:]
	}
	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	dst = append(dst, r.Resource...)
	for sel := spans; len(sel) > 0; {
		n, ss := t.scopeRun(sel)
		sc := &t.Scopes[t.Spans[sel[0]].Scope]
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(ss))
		dst = append(dst, sc.Scope...)
		for _, k := range sel[:n] {
			dst = append(dst, t.Spans[k].Field...)
		}
		dst = append(dst, sc.SchemaURL...)
		sel = sel[n:]
	}
	return append(dst, r.SchemaURL...)
}

// scopeRun returns how many of the spans sel, from the first, are of one
// scope, and the size of a ScopeSpans payload holding them.
func (t *Traces) scopeRun(sel []int) (n, size int) {
	sc := &t.Scopes[t.Spans[sel[0]].Scope]
	size = len(sc.Scope) + len(sc.SchemaURL)
	for n < len(sel) && t.Spans[sel[n]].Scope == t.Spans[sel[0]].Scope {
		size += len(t.Spans[sel[n]].Field)
		n++
	}
	return n, size
}

// ReadPdata reads td, marshalled, into t (see Read): for callers that
// hold spans as pdata.
func (t *Traces) ReadPdata(td ptrace.Traces) error {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return fmt.Errorf("marshal spans: %w", err)
	}
	return t.Read(b)
}

// Reset empties t, keeping its slices' capacity (and dropping what they
// referenced).
func (t *Traces) Reset() {
	clear(t.Resources)
	clear(t.Scopes)
	clear(t.Spans)
	clear(t.Attrs)
	t.Resources, t.Scopes, t.Spans, t.Attrs = t.Resources[:0], t.Scopes[:0], t.Spans[:0], t.Attrs[:0]
}

// Read reads b, an encoded TracesData, into t (Reset first). On error t
// holds part of b and is not to be used.
func (t *Traces) Read(b []byte) error {
	t.Reset()
	t.Strings = StringStats{}
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		if f.num == 1 { // resource_spans
			if f.typ != protowire.BytesType {
				return wrongType("TracesData.resource_spans")
			}
			if err := t.readResourceSpans(f.b); err != nil {
				return err
			}
		}
	}
	return nil
}

// stats is where Read measures strings: nil unless t.Measure.
func (t *Traces) stats() *StringStats {
	if t.Measure {
		return &t.Strings
	}
	return nil
}

// readResourceSpans reads a ResourceSpans payload: its resource and
// schema first, so that the resource's attributes are one range whatever
// the order of the fields, then its scopes.
func (t *Traces) readResourceSpans(b []byte) error {
	r := Resource{Attrs: Range{len(t.Attrs), len(t.Attrs)}}
	var f field
	for rest := b; len(rest) > 0; {
		if err := f.next(&rest); err != nil {
			return err
		}
		switch f.num {
		case 1: // resource
			if f.typ != protowire.BytesType {
				return wrongType("ResourceSpans.resource")
			}
			r.Resource = f.all
			if err := t.readResource(f.b); err != nil {
				return err
			}
		case 2, 1000: // scope_spans, and the deprecated instrumentation_library_spans
			if f.typ != protowire.BytesType {
				return wrongType("ResourceSpans.scope_spans")
			}
		case 3:
			if f.typ != protowire.BytesType {
				return wrongType("ResourceSpans.schema_url")
			}
			r.SchemaURL = f.all
		}
	}
	r.Attrs.End = len(t.Attrs)
	r.Scopes = Range{len(t.Scopes), len(t.Scopes)}
	for rest := b; len(rest) > 0; {
		_ = f.next(&rest) // read above
		switch f.num {
		case 2:
			if err := t.readScopeSpans(f.b, len(t.Resources), true); err != nil {
				return err
			}
		case 1000:
			// pdata's ProtoUnmarshaler reads them but keeps them apart,
			// where ptrace.Traces does not show them: checked, not kept.
			if err := t.readScopeSpans(f.b, len(t.Resources), false); err != nil {
				return err
			}
		}
	}
	r.Scopes.End = len(t.Scopes)
	t.Resources = append(t.Resources, r)
	return nil
}

// readResource reads a Resource, adding its attributes to t.Attrs.
func (t *Traces) readResource(b []byte) error {
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		switch f.num {
		case 1: // attributes
			if f.typ != protowire.BytesType {
				return wrongType("Resource.attributes")
			}
			kv, err := readKeyValue(f.b, 0, t.stats())
			if err != nil {
				return err
			}
			t.Attrs = append(t.Attrs, kv)
		case 2: // dropped_attributes_count
			if f.typ != protowire.VarintType {
				return wrongType("Resource.dropped_attributes_count")
			}
		case 3: // entity_refs
			if f.typ != protowire.BytesType {
				return wrongType("Resource.entity_refs")
			}
			if err := checkMessage(f.b, &entitySchema, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// readScopeSpans reads a ScopeSpans of the resource with index resource,
// keeping it and its spans in t if keep.
func (t *Traces) readScopeSpans(b []byte, resource int, keep bool) error {
	s := Scope{Spans: Range{len(t.Spans), len(t.Spans)}, Resource: resource}
	spans, attrs := len(t.Spans), len(t.Attrs)
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		switch f.num {
		case 1: // scope
			if f.typ != protowire.BytesType {
				return wrongType("ScopeSpans.scope")
			}
			s.Scope = f.all
			if err := checkMessage(f.b, &scopeSchema, t.stats()); err != nil {
				return err
			}
		case 2: // spans
			if f.typ != protowire.BytesType {
				return wrongType("ScopeSpans.spans")
			}
			if err := t.readSpan(f.b, f.all, len(t.Scopes)); err != nil {
				return err
			}
		case 3:
			if f.typ != protowire.BytesType {
				return wrongType("ScopeSpans.schema_url")
			}
			s.SchemaURL = f.all
		}
	}
	if !keep {
		clear(t.Spans[spans:])
		clear(t.Attrs[attrs:])
		t.Spans, t.Attrs = t.Spans[:spans], t.Attrs[:attrs]
		return nil
	}
	s.Spans.End = len(t.Spans)
	t.Scopes = append(t.Scopes, s)
	return nil
}

// readSpan reads a Span payload (whole is its whole field) of scope into
// t.
func (t *Traces) readSpan(b, whole []byte, scope int) error {
	// Read in place: a Span is large to copy.
	t.Spans = append(t.Spans, Span{Field: whole, Attrs: Range{len(t.Attrs), len(t.Attrs)}, Scope: scope})
	s := &t.Spans[len(t.Spans)-1]
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		var err error
		switch f.num {
		case 1:
			err = readID(s.TraceID[:], &f, "Span.trace_id")
		case 2:
			err = readID(s.SpanID[:], &f, "Span.span_id")
		case 3:
			err = f.want(protowire.BytesType, "Span.trace_state")
		case 4:
			err = readID(s.ParentSpanID[:], &f, "Span.parent_span_id")
		case 5:
			err = f.want(protowire.BytesType, "Span.name")
			s.Name = f.str()
			t.stats().add(f.b, true)
		case 6:
			err = f.want(protowire.VarintType, "Span.kind")
			s.Kind = ptrace.SpanKind(int32(f.v))
		case 7:
			err = f.want(protowire.Fixed64Type, "Span.start_time_unix_nano")
			s.Start = f.v
		case 8:
			err = f.want(protowire.Fixed64Type, "Span.end_time_unix_nano")
			s.End = f.v
		case 9:
			if err = f.want(protowire.BytesType, "Span.attributes"); err == nil {
				var kv KeyValue
				if kv, err = readKeyValue(f.b, 0, t.stats()); err == nil {
					// A span's attributes are one range: nothing else
					// adds to t.Attrs while its fields are read.
					t.Attrs = append(t.Attrs, kv)
				}
			}
		case 10, 12, 14: // dropped attributes, events and links counts
			err = f.want(protowire.VarintType, "Span.dropped_*_count")
		case 11:
			if err = f.want(protowire.BytesType, "Span.events"); err == nil {
				err = checkMessage(f.b, &eventSchema, t.stats())
			}
		case 13:
			if err = f.want(protowire.BytesType, "Span.links"); err == nil {
				err = checkMessage(f.b, &linkSchema, t.stats())
			}
		case 15:
			if err = f.want(protowire.BytesType, "Span.status"); err == nil {
				err = readStatus(s, f.b)
			}
		case 16:
			err = f.want(protowire.Fixed32Type, "Span.flags")
		}
		if err != nil {
			return err
		}
	}
	s.Attrs.End = len(t.Attrs)
	return nil
}

// readStatus reads a Status into s, as a merge: a field absent here
// leaves what an earlier status field of the span set.
func readStatus(s *Span, b []byte) error {
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		switch f.num {
		case 2:
			if err := f.want(protowire.BytesType, "Status.message"); err != nil {
				return err
			}
			s.StatusMessage = f.str()
		case 3:
			if err := f.want(protowire.VarintType, "Status.code"); err != nil {
				return err
			}
			s.StatusCode = ptrace.StatusCode(int32(f.v))
		}
	}
	return nil
}

// readID copies an ID field of len(dst) bytes (or none: all zeros) into
// dst.
func readID(dst []byte, f *field, name string) error {
	if err := f.want(protowire.BytesType, name); err != nil {
		return err
	}
	switch len(f.b) {
	case 0:
		clear(dst)
	case len(dst):
		copy(dst, f.b)
	default:
		return fmt.Errorf("%w: %s is %d bytes long, want %d", ErrMalformed, name, len(f.b), len(dst))
	}
	return nil
}

// kind is what a field of a checked message must hold.
type kind uint8

const (
	kindNone    kind = iota // an unknown field: any wire type but groups
	kindBytes               // a string or bytes
	kindVarint              // an integer, bool or enum
	kindFixed32             // fixed32
	kindFixed64             // fixed64
	kindAttr                // a KeyValue
	kindTraceID             // 16 bytes, or none
	kindSpanID              // 8 bytes, or none
)

// schema is a message checkMessage checks: its name, and the kind of each
// of its fields by number.
type schema struct {
	name   string
	fields []kind
}

// The messages in a span that Read checks but does not keep apart.
var (
	scopeSchema  = schema{"InstrumentationScope", []kind{1: kindBytes, 2: kindBytes, 3: kindAttr, 4: kindVarint}}
	eventSchema  = schema{"Span.Event", []kind{1: kindFixed64, 2: kindBytes, 3: kindAttr, 4: kindVarint}}
	linkSchema   = schema{"Span.Link", []kind{1: kindTraceID, 2: kindSpanID, 3: kindBytes, 4: kindAttr, 5: kindVarint, 6: kindFixed32}}
	entitySchema = schema{"EntityRef", []kind{1: kindBytes, 2: kindBytes, 3: kindBytes, 4: kindBytes}}
)

// wireTypes is the wire type of each kind of field.
var wireTypes = [...]protowire.Type{
	kindBytes: protowire.BytesType, kindVarint: protowire.VarintType, kindFixed32: protowire.Fixed32Type,
	kindFixed64: protowire.Fixed64Type, kindAttr: protowire.BytesType, kindTraceID: protowire.BytesType,
	kindSpanID: protowire.BytesType,
}

// checkMessage checks b, a message of schema sc, measuring its attributes'
// strings into st (if not nil).
func checkMessage(b []byte, sc *schema, st *StringStats) error {
	var (
		f  field
		id [16]byte
	)
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		k := kindNone
		if int(f.num) < len(sc.fields) {
			k = sc.fields[f.num]
		}
		if k == kindNone {
			continue
		}
		if f.typ != wireTypes[k] {
			return wrongType(fmt.Sprintf("%s field %d", sc.name, f.num))
		}
		var err error
		switch k {
		case kindAttr:
			_, err = readKeyValue(f.b, 0, st)
		case kindTraceID:
			err = readID(id[:16], &f, sc.name+".trace_id")
		case kindSpanID:
			err = readID(id[:8], &f, sc.name+".span_id")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readKeyValue reads a KeyValue at nesting depth, measuring its value's
// strings into st (if not nil).
func readKeyValue(b []byte, depth int, st *StringStats) (KeyValue, error) {
	var kv KeyValue
	if depth >= recursionLimit {
		return kv, errDepth
	}
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return kv, err
		}
		var err error
		switch f.num {
		case 1:
			err = f.want(protowire.BytesType, "KeyValue.key")
			kv.Key = f.str()
		case 2:
			if err = f.want(protowire.BytesType, "KeyValue.value"); err == nil {
				err = readAnyValue(&kv.Value, f.b, depth+1, st)
			}
		case 3:
			err = f.want(protowire.VarintType, "KeyValue.key_strindex")
		}
		if err != nil {
			return kv, err
		}
	}
	return kv, nil
}

// readAnyValue reads an AnyValue into v, as a merge (pdata's): the last
// field of the oneof wins, and an AnyValue field without one leaves v as
// it was.
func readAnyValue(v *Value, b []byte, depth int, st *StringStats) error {
	if depth >= recursionLimit {
		return errDepth
	}
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		var err error
		switch f.num {
		case 1:
			err = f.want(protowire.BytesType, "AnyValue.string_value")
			*v = Value{typ: ValueStr, str: f.str()}
			st.add(f.b, true)
		case 2:
			err = f.want(protowire.VarintType, "AnyValue.bool_value")
			*v = Value{typ: ValueBool}
			if f.v != 0 {
				v.num = 1
			}
		case 3:
			err = f.want(protowire.VarintType, "AnyValue.int_value")
			*v = Value{typ: ValueInt, num: f.v}
		case 4:
			err = f.want(protowire.Fixed64Type, "AnyValue.double_value")
			*v = Value{typ: ValueDouble, num: f.v}
		case 5:
			if err = f.want(protowire.BytesType, "AnyValue.array_value"); err == nil {
				err = checkValues(f.b, depth+1, false, st)
			}
			*v = Value{typ: ValueSlice}
		case 6:
			if err = f.want(protowire.BytesType, "AnyValue.kvlist_value"); err == nil {
				err = checkValues(f.b, depth+1, true, st)
			}
			*v = Value{typ: ValueMap}
		case 7:
			err = f.want(protowire.BytesType, "AnyValue.bytes_value")
			*v = Value{typ: ValueBytes}
			st.add(f.b, false)
		case 8: // string_value_strindex (profiles): no type pdata shows
			err = f.want(protowire.VarintType, "AnyValue.string_value_strindex")
			*v = Value{}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkValues checks an ArrayValue (its AnyValues) or, if kv, a
// KeyValueList (its KeyValues).
func checkValues(b []byte, depth int, kv bool, st *StringStats) error {
	if depth >= recursionLimit {
		return errDepth
	}
	var f field
	for len(b) > 0 {
		if err := f.next(&b); err != nil {
			return err
		}
		if f.num != 1 {
			continue
		}
		if err := f.want(protowire.BytesType, "ArrayValue/KeyValueList.values"); err != nil {
			return err
		}
		var err error
		if kv {
			_, err = readKeyValue(f.b, depth+1, st)
		} else {
			var v Value
			err = readAnyValue(&v, f.b, depth+1, st)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var errDepth = fmt.Errorf("%w: attribute values nested deeper than %d", ErrMalformed, recursionLimit)

func wrongType(name string) error {
	return fmt.Errorf("%w: wrong wire type for %s", ErrMalformed, name)
}

// field is one field of a message, as next read it.
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // a varint's or fixed value
	b   []byte // a length-delimited field's payload
	all []byte // the whole field
}

// next reads the field at the start of *b into f and moves *b past it.
// Groups are refused. A length-delimited field with a one-byte tag and
// length, most of OTLP's, is read here, inlined; others by nextSlow.
func (f *field) next(b *[]byte) error {
	buf := *b
	// The tag: wire type 2, a field number from 1 to 15; the length: one
	// byte, within buf.
	if len(buf) >= 2 && buf[0]&0x87 == 0x02 && buf[0] > 0x07 && buf[1] < 0x80 && int(buf[1]) <= len(buf)-2 {
		l := int(buf[1])
		f.num, f.typ, f.b, f.all = protowire.Number(buf[0]>>3), protowire.BytesType, buf[2:2+l], buf[:2+l]
		*b = buf[2+l:]
		return nil
	}
	return f.nextSlow(b)
}

// nextSlow is next for any field.
func (f *field) nextSlow(b *[]byte) error {
	buf := *b
	var (
		tag uint64
		n   int
	)
	if len(buf) > 0 && buf[0] < 0x80 {
		tag, n = uint64(buf[0]), 1
	} else if tag, n = protowire.ConsumeVarint(buf); n < 0 {
		return fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
	}
	num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return fmt.Errorf("%w: invalid field number %d", ErrMalformed, tag>>3)
	}
	rest := buf[n:]
	var m int
	switch typ {
	case protowire.BytesType:
		var l uint64
		if len(rest) > 0 && rest[0] < 0x80 {
			l, m = uint64(rest[0]), 1
		} else if l, m = protowire.ConsumeVarint(rest); m < 0 {
			break
		}
		if l > uint64(len(rest)-m) {
			m = -1 // truncated
			break
		}
		f.b = rest[m : m+int(l)]
		m += int(l)
	case protowire.VarintType:
		f.v, m = protowire.ConsumeVarint(rest)
	case protowire.Fixed64Type:
		f.v, m = protowire.ConsumeFixed64(rest)
	case protowire.Fixed32Type:
		var v uint32
		v, m = protowire.ConsumeFixed32(rest)
		f.v = uint64(v)
	default:
		return fmt.Errorf("%w: field %d has wire type %d (groups are not OTLP)", ErrMalformed, num, typ)
	}
	if m < 0 {
		return fmt.Errorf("%w: field %d: %v", ErrMalformed, num, protowire.ParseError(m))
	}
	f.num, f.typ, f.all = num, typ, buf[:n+m]
	*b = rest[m:]
	return nil
}

// want checks that f has wire type typ.
func (f *field) want(typ protowire.Type, name string) error {
	if f.typ != typ {
		return wrongType(name)
	}
	return nil
}

// str returns a length-delimited field's payload as a string aliasing it.
func (f *field) str() string {
	if len(f.b) == 0 {
		return ""
	}
	return unsafe.String(&f.b[0], len(f.b))
}
