package vtraces

import (
	"math"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// The fields of a span's row. Attribute fields are resourcePrefix or
// spanPrefix followed by the attribute's key, so that no attribute can
// collide with another field or with VictoriaLogs' own ("_time", "_msg",
// "_stream"...).
const (
	fieldTraceID       = "trace_id" // 32 lower-case hex digits
	fieldSpanID        = "span_id"  // 16 lower-case hex digits
	fieldName          = "name"
	fieldKind          = "kind"        // kindNames
	fieldStatusCode    = "status_code" // "unset", "ok" or "error"
	fieldStatusMessage = "status_message"
	fieldStart         = "start"    // Unix ns
	fieldDuration      = "duration" // ns, end - start (0 if end < start)
	fieldIsRoot        = "is_root"  // "true" for a root span, "false" for others (absent on others before 0.1)
	// fieldOTLP holds the span as OTLP protobuf less its IDs and times
	// (slim.go); rows written before hold a TracesData with one
	// ResourceSpans with one ScopeSpans with the span (appendSpanRecord).
	// Both as text without tokens (spantext.go).
	fieldOTLP = "otlp"
	// fieldEnvelope holds the resource and scope of a span stored slim
	// (see slim.go), as text without tokens.
	fieldEnvelope = "otlp_scope"

	// Rows written before 0.1 also have "end" (Unix ns) and
	// "parent_span_id" (16 hex digits, absent on a root); nothing reads
	// them: the end is start + duration, a root is is_root, and the
	// parent is in the OTLP record. Two fewer columns, one of them 16
	// random hex digits a span, cost the engine less on every part and
	// merge; and with is_root on every row, root and child spans have
	// the same field names (the engine makes a block's columns without a
	// map then).

	resourcePrefix = "resource."
	spanPrefix     = "span."

	// fieldService is the resource attribute service.name, the row's only
	// stream field: a service's spans are stored together, in time order,
	// so a trace's spans from one service share blocks.
	fieldService = resourcePrefix + "service.name"
)

// Limits of lib/logstorage on one row (consts.go there); a row beyond them
// is dropped by the library with only a log line.
const (
	maxFieldNameSize = 128
	maxRowSize       = 2 << 20 // as estimated by EstimatedJSONRowLen
)

// kindNames are the values of the kind field, by ptrace.SpanKind.
var kindNames = [...]string{
	ptrace.SpanKindUnspecified: "unspecified",
	ptrace.SpanKindInternal:    "internal",
	ptrace.SpanKindServer:      "server",
	ptrace.SpanKindClient:      "client",
	ptrace.SpanKindProducer:    "producer",
	ptrace.SpanKindConsumer:    "consumer",
}

func kindName(k ptrace.SpanKind) string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return kindNames[ptrace.SpanKindUnspecified]
}

// statusNames are the values of the status_code field, by
// ptrace.StatusCode.
var statusNames = [...]string{
	ptrace.StatusCodeUnset: "unset",
	ptrace.StatusCodeOk:    "ok",
	ptrace.StatusCodeError: "error",
}

func statusName(c ptrace.StatusCode) string {
	if c >= 0 && int(c) < len(statusNames) {
		return statusNames[c]
	}
	return statusNames[ptrace.StatusCodeUnset]
}

// appendValue appends an attribute value as text: strings as they are,
// integers in decimal, doubles in the shortest decimal form that reads back
// the same (exponent form only when very large or small), booleans as
// "true" or "false". Other types (bytes, arrays, maps) are not searchable:
// ok is false.
func appendValue(dst []byte, v otlpwire.Value) (_ []byte, ok bool) {
	switch v.Type() {
	case otlpwire.ValueStr:
		return append(dst, v.Str()...), true
	case otlpwire.ValueInt:
		return strconv.AppendInt(dst, v.Int(), 10), true
	case otlpwire.ValueDouble:
		f := v.Double()
		if a := math.Abs(f); a == 0 || (a >= 1e-6 && a < 1e21) {
			return strconv.AppendFloat(dst, f, 'f', -1, 64), true
		}
		return strconv.AppendFloat(dst, f, 'g', -1, 64), true
	case otlpwire.ValueBool:
		return strconv.AppendBool(dst, v.Bool()), true
	}
	return dst, false
}
