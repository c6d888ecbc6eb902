package tempoapi

import (
	"encoding/base64"
	"encoding/hex"
	"math"
	"slices"
	"strconv"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Traces become Jaeger's UI model (jaeger's model/json) as Jaeger's query
// service shows OTLP spans: the OpenTelemetry Collector's OTLP→Jaeger
// translator (pkg/translator/jaeger), then Jaeger's domain→JSON converter.
// The mapping:
//
//   - A resource is a process: serviceName from service.name
//     ("OTLPResourceNoServiceName" when the resource has no attributes),
//     tags the other resource attributes. Equal processes share an ID;
//     IDs are p1, p2, ... in order of first use.
//   - A span's tags are, in order: otel.scope.name and otel.scope.version
//     (when set), the span's attributes, span.kind (unless unspecified),
//     otel.status_code ("OK" or "ERROR", unless unset), error=true (when
//     the status is an error), otel.status_description (when set), and
//     w3c.tracestate (when set).
//   - Attribute values keep their type (string, bool, int64, float64,
//     binary as base64); maps and slices become their JSON as strings.
//   - The parent is a CHILD_OF reference, first; each link is a
//     FOLLOWS_FROM reference, or CHILD_OF when its opentracing.ref_type
//     attribute is child_of (a link to the parent only retypes that
//     reference).
//   - Events are logs: an "event" field with the event's name (unless an
//     attribute is named event), then the attributes.
//   - Times are microseconds since the epoch, durations microseconds
//     (negative ones, where Jaeger would wrap around, are 0).
//   - IDs are lower-case hex; a trace ID whose high half is zero prints as
//     16 digits, as Jaeger's TraceID.String does.
//
// Jaeger's query-time adjusters (clock skew, sorting tags) do not run,
// and a float that is NaN or infinite, which encoding/json cannot write,
// is written as a string.

const noServiceName = "OTLPResourceNoServiceName"

// jaegerEncoder appends traces in Jaeger's JSON; reuse it to reuse its
// buffers.
type jaegerEncoder struct {
	procs  []jaegerProcess
	procID map[string]int // service name, NUL, tags JSON → index in procs
	key    []byte
	tags   []byte
	order  []int
}

type jaegerProcess struct {
	serviceName string
	tags        string // the JSON array
}

func (e *jaegerEncoder) reset() {
	e.procs = e.procs[:0]
	if e.procID == nil {
		e.procID = map[string]int{}
	}
	clear(e.procID)
}

// process returns the index of rs's process, adding it when new.
func (e *jaegerEncoder) process(res pcommon.Resource) int {
	attrs := res.Attributes()
	name := noServiceName
	if attrs.Len() > 0 {
		name = ""
		if v, ok := attrs.Get("service.name"); ok {
			name = v.Str()
		}
	}
	e.tags = append(e.tags[:0], '[')
	first := true
	for k, v := range attrs.All() {
		if k == "service.name" {
			continue
		}
		if !first {
			e.tags = append(e.tags, ',')
		}
		first = false
		e.tags = appendJaegerTag(e.tags, k, v)
	}
	e.tags = append(e.tags, ']')
	e.key = append(append(append(e.key[:0], name...), 0), e.tags...)
	if i, ok := e.procID[string(e.key)]; ok {
		return i
	}
	e.procs = append(e.procs, jaegerProcess{serviceName: name, tags: string(e.tags)})
	e.procID[string(e.key)] = len(e.procs) - 1
	return len(e.procs) - 1
}

// appendTrace appends td, which holds spans of one trace, as a Jaeger
// trace.
func (e *jaegerEncoder) appendTrace(dst []byte, td ptrace.Traces) []byte {
	e.reset()
	dst = append(dst, `{"traceID":`...)
	if id, ok := firstTraceID(td); ok {
		dst = appendJaegerTraceID(dst, id)
	} else {
		dst = append(dst, `""`...)
	}
	dst = append(dst, `,"spans":[`...)
	first := true
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		pid := -1 // a resource without spans is no process
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			for k := range ss.Spans().Len() {
				span := ss.Spans().At(k)
				if !first {
					dst = append(dst, ',')
				}
				first = false
				if pid < 0 {
					pid = e.process(rs.Resource())
				}
				dst = appendJaegerSpan(dst, span, ss.Scope(), pid)
			}
		}
	}
	dst = append(dst, `],"processes":{`...)
	// encoding/json writes map keys sorted: p1, p10, p11, ..., p2.
	e.order = e.order[:0]
	for i := range e.procs {
		e.order = append(e.order, i)
	}
	slices.SortFunc(e.order, func(a, b int) int {
		var ka, kb [24]byte
		return slices.Compare(appendProcessID(ka[:0], a), appendProcessID(kb[:0], b))
	})
	for n, i := range e.order {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = appendProcessID(dst, i)
		dst = append(dst, `":{"serviceName":`...)
		dst = appendString(dst, e.procs[i].serviceName)
		dst = append(dst, `,"tags":`...)
		dst = append(dst, e.procs[i].tags...)
		dst = append(dst, '}')
	}
	return append(dst, `},"warnings":null}`...)
}

// firstTraceID is the trace ID of td's first span, which Jaeger takes as
// the trace's.
func firstTraceID(td ptrace.Traces) (pcommon.TraceID, bool) {
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			if spans := sss.At(j).Spans(); spans.Len() > 0 {
				return spans.At(0).TraceID(), true
			}
		}
	}
	return pcommon.TraceID{}, false
}

func appendProcessID(dst []byte, i int) []byte {
	return strconv.AppendInt(append(dst, 'p'), int64(i+1), 10)
}

// appendJaegerTraceID appends id as Jaeger's TraceID.String prints it.
func appendJaegerTraceID(dst []byte, id pcommon.TraceID) []byte {
	dst = append(dst, '"')
	if [8]byte(id[:8]) == ([8]byte{}) {
		dst = hex.AppendEncode(dst, id[8:])
	} else {
		dst = hex.AppendEncode(dst, id[:])
	}
	return append(dst, '"')
}

func micros(t pcommon.Timestamp) int64 { return t.AsTime().UnixNano() / 1000 }

func appendJaegerSpan(dst []byte, span ptrace.Span, scope pcommon.InstrumentationScope, pid int) []byte {
	dst = append(dst, `{"traceID":`...)
	dst = appendJaegerTraceID(dst, span.TraceID())
	dst = append(dst, `,"spanID":`...)
	sid := span.SpanID()
	dst = appendHex(dst, sid[:])
	dst = append(dst, `,"operationName":`...)
	dst = appendString(dst, span.Name())
	dst = append(dst, `,"references":`...)
	dst = appendReferences(dst, span)
	start := micros(span.StartTimestamp())
	dst = append(dst, `,"startTime":`...)
	dst = strconv.AppendUint(dst, uint64(start), 10)
	dst = append(dst, `,"duration":`...)
	dst = strconv.AppendInt(dst, max(micros(span.EndTimestamp())-start, 0), 10)
	dst = append(dst, `,"tags":`...)
	dst = appendSpanTags(dst, span, scope)
	dst = append(dst, `,"logs":[`...)
	for i := range span.Events().Len() {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendLog(dst, span.Events().At(i))
	}
	dst = append(dst, `],"processID":"`...)
	dst = appendProcessID(dst, pid)
	return append(dst, `","warnings":null}`...)
}

func appendReference(dst []byte, refType string, traceID pcommon.TraceID, spanID pcommon.SpanID) []byte {
	dst = append(dst, `{"refType":"`...)
	dst = append(dst, refType...)
	dst = append(dst, `","traceID":`...)
	dst = appendJaegerTraceID(dst, traceID)
	dst = append(dst, `,"spanID":`...)
	dst = appendHex(dst, spanID[:])
	return append(dst, '}')
}

func linkRefType(l ptrace.SpanLink) string {
	if v, ok := l.Attributes().Get("opentracing.ref_type"); ok && v.Str() == "child_of" {
		return "CHILD_OF"
	}
	return "FOLLOWS_FROM"
}

func appendReferences(dst []byte, span ptrace.Span) []byte {
	dst = append(dst, '[')
	parent := span.ParentSpanID()
	hasParent := !parent.IsEmpty()
	links := span.Links()
	if hasParent {
		refType := "CHILD_OF"
		// A link to the parent sets the parent reference's type.
		for i := range links.Len() {
			if l := links.At(i); l.TraceID() == span.TraceID() && l.SpanID() == parent {
				refType = linkRefType(l)
			}
		}
		dst = appendReference(dst, refType, span.TraceID(), parent)
	}
	first := !hasParent
	for i := range links.Len() {
		l := links.At(i)
		if hasParent && l.TraceID() == span.TraceID() && l.SpanID() == parent {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendReference(dst, linkRefType(l), l.TraceID(), l.SpanID())
	}
	return append(dst, ']')
}

func appendSpanTags(dst []byte, span ptrace.Span, scope pcommon.InstrumentationScope) []byte {
	dst = append(dst, '[')
	n := 0
	str := func(k, v string) {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendStringTag(dst, k, v)
	}
	if v := scope.Name(); v != "" {
		str("otel.scope.name", v)
	}
	if v := scope.Version(); v != "" {
		str("otel.scope.version", v)
	}
	for k, v := range span.Attributes().All() {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = appendJaegerTag(dst, k, v)
	}
	if kind := jaegerSpanKind(span.Kind()); kind != "" {
		str("span.kind", kind)
	}
	switch span.Status().Code() {
	case ptrace.StatusCodeOk:
		str("otel.status_code", "OK")
	case ptrace.StatusCodeError:
		str("otel.status_code", "ERROR")
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = append(dst, `{"key":"error","type":"bool","value":true}`...)
	}
	if v := span.Status().Message(); v != "" {
		str("otel.status_description", v)
	}
	if v := span.TraceState().AsRaw(); v != "" {
		str("w3c.tracestate", v)
	}
	return append(dst, ']')
}

// jaegerSpanKind is the span.kind tag's value, "" for unspecified.
func jaegerSpanKind(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return ""
}

func appendLog(dst []byte, ev ptrace.SpanEvent) []byte {
	dst = append(dst, `{"timestamp":`...)
	dst = strconv.AppendInt(dst, micros(ev.Timestamp()), 10)
	dst = append(dst, `,"fields":[`...)
	first := true
	if _, named := ev.Attributes().Get("event"); ev.Name() != "" && !named {
		dst = appendStringTag(dst, "event", ev.Name())
		first = false
	}
	for k, v := range ev.Attributes().All() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJaegerTag(dst, k, v)
	}
	return append(dst, "]}"...)
}

func appendStringTag(dst []byte, k, v string) []byte {
	dst = append(dst, `{"key":`...)
	dst = appendString(dst, k)
	dst = append(dst, `,"type":"string","value":`...)
	dst = appendString(dst, v)
	return append(dst, '}')
}

// appendJaegerTag appends an attribute as a Jaeger key-value.
func appendJaegerTag(dst []byte, k string, v pcommon.Value) []byte {
	dst = append(dst, `{"key":`...)
	dst = appendString(dst, k)
	switch v.Type() {
	case pcommon.ValueTypeBool:
		dst = append(dst, `,"type":"bool","value":`...)
		dst = strconv.AppendBool(dst, v.Bool())
	case pcommon.ValueTypeInt:
		dst = append(dst, `,"type":"int64","value":`...)
		dst = strconv.AppendInt(dst, v.Int(), 10)
	case pcommon.ValueTypeDouble:
		dst = append(dst, `,"type":"float64","value":`...)
		dst = appendFloat(dst, v.Double())
	case pcommon.ValueTypeBytes:
		dst = append(dst, `,"type":"binary","value":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes().AsRaw())
		dst = append(dst, '"')
	case pcommon.ValueTypeStr:
		dst = append(dst, `,"type":"string","value":`...)
		dst = appendString(dst, v.Str())
	default:
		dst = append(dst, `,"type":"string","value":`...)
		dst = appendString(dst, v.AsString())
	}
	return append(dst, '}')
}

// appendFloat writes f as encoding/json does: the shortest decimal, in
// exponent form below 1e-6 and from 1e21 on.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendString(dst, strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}
