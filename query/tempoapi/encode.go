package tempoapi

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/internal/jsonappend"
	"github.com/pharos-obs/pharos/storage/traces"
)

// The encoders append JSON to a byte slice, byte for byte as Tempo's
// gogo/jsonpb and Jaeger's encoding/json write it: fields in declaration
// order, empty fields left out where jsonpb leaves them out, 64-bit
// integers of Tempo's protobuf messages as strings.

// stringEscape is how Tempo (jsonpb, over encoding/json) and Jaeger
// (encoding/json) escape strings: '<', '>', '&', U+2028 and U+2029 too.
const stringEscape = jsonappend.EscapeHTML | jsonappend.EscapeLineSeparators

func appendString(dst []byte, s string) []byte { return jsonappend.String(dst, s, stringEscape) }

func appendStrings(dst []byte, ss []string) []byte { return jsonappend.Strings(dst, ss, stringEscape) }

// appendUintString appends n as a JSON string, as jsonpb writes uint64.
func appendUintString(dst []byte, n uint64) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, '"')
}

// rootSpanNotYetReceived is Tempo's root service name of a trace whose
// root span is missing.
const rootSpanNotYetReceived = "<root span not yet received>"

// appendTraceID appends a search hit's trace ID as Tempo prints it: hex
// without leading zeros (so 64-bit IDs print as 16 digits).
func appendTraceID(dst []byte, id traces.TraceID) []byte {
	var buf [32]byte
	hex.Encode(buf[:], id[:])
	s := bytes.TrimLeft(buf[:], "0")
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

func appendHex(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	dst = hex.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendSearch appends a tempopb.SearchResponse. Unlike jsonpb, it writes
// "traces":[] when nothing matched, which clients read the same and older
// Grafana front ends need.
func appendSearch(dst []byte, hits []traces.TraceSummary) []byte {
	dst = append(dst, `{"traces":[`...)
	for i := range hits {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendTraceSummary(dst, &hits[i])
	}
	return append(dst, `],"metrics":{}}`...)
}

// appendTraceSummary appends a tempopb.TraceSearchMetadata. The matched
// spans go in spanSets and, as Tempo also writes them for older clients,
// in the deprecated spanSet.
func appendTraceSummary(dst []byte, h *traces.TraceSummary) []byte {
	dst = append(dst, `{"traceID":`...)
	dst = appendTraceID(dst, h.TraceID)
	root := h.RootServiceName
	if root == "" {
		root = rootSpanNotYetReceived
	}
	dst = append(dst, `,"rootServiceName":`...)
	dst = appendString(dst, root)
	if h.RootTraceName != "" {
		dst = append(dst, `,"rootTraceName":`...)
		dst = appendString(dst, h.RootTraceName)
	}
	if h.StartTimeUnixNano != 0 {
		dst = append(dst, `,"startTimeUnixNano":`...)
		dst = appendUintString(dst, h.StartTimeUnixNano)
	}
	if h.DurationMs != 0 {
		dst = append(dst, `,"durationMs":`...)
		dst = strconv.AppendUint(dst, h.DurationMs, 10)
	}
	if len(h.Matched) > 0 || h.MatchedAll > 0 {
		dst = append(dst, `,"spanSet":`...)
		mark := len(dst)
		dst = appendSpanSet(dst, h)
		set := dst[mark:]
		dst = append(dst, `,"spanSets":[`...)
		// The same bytes again; if dst moves as it grows, set still holds
		// them in the old array.
		dst = append(dst, set...)
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

func appendSpanSet(dst []byte, h *traces.TraceSummary) []byte {
	dst = append(dst, `{"spans":[`...)
	for i := range h.Matched {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendSpanSummary(dst, &h.Matched[i])
	}
	dst = append(dst, ']')
	if h.MatchedAll > 0 {
		dst = append(dst, `,"matched":`...)
		dst = strconv.AppendInt(dst, int64(h.MatchedAll), 10)
	}
	return append(dst, '}')
}

// appendSpanSummary appends a tempopb.Span; attributes are sorted by key
// and typed as strings, the only type the summary keeps.
func appendSpanSummary(dst []byte, s *traces.SpanSummary) []byte {
	dst = append(dst, `{"spanID":`...)
	dst = appendHex(dst, s.SpanID[:])
	if s.Name != "" {
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, s.Name)
	}
	if s.StartTimeUnixNano != 0 {
		dst = append(dst, `,"startTimeUnixNano":`...)
		dst = appendUintString(dst, s.StartTimeUnixNano)
	}
	if s.DurationNanos != 0 {
		dst = append(dst, `,"durationNanos":`...)
		dst = appendUintString(dst, s.DurationNanos)
	}
	if len(s.Attributes) > 0 {
		var keysBuf [16]string
		keys := keysBuf[:0]
		for k := range s.Attributes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, `,"attributes":[`...)
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"key":`...)
			dst = appendString(dst, k)
			dst = append(dst, `,"value":{"stringValue":`...)
			dst = appendString(dst, s.Attributes[k])
			dst = append(dst, "}}"...)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

var (
	otlpJSONPrefix = []byte(`{"resourceSpans":`)
	v1JSONPrefix   = []byte(`{"batches":`)
)

// marshalTraceJSON writes a trace in OTLP/JSON (hex IDs, enums as
// numbers, as Grafana imports traces): v1 as tempopb.Trace, whose resource
// spans Tempo still calls "batches" in JSON; v2 as
// tempopb.TraceByIDResponse, {"trace":{"resourceSpans":[...]}}.
func marshalTraceJSON(td ptrace.Traces, v2 bool) ([]byte, error) {
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		return nil, fmt.Errorf("encode trace: %w", err)
	}
	if !bytes.HasPrefix(b, otlpJSONPrefix) {
		return nil, fmt.Errorf("encode trace: unexpected OTLP/JSON %.20q", b)
	}
	if !v2 {
		// Rename in place: the new prefix is shorter.
		off := len(otlpJSONPrefix) - len(v1JSONPrefix)
		copy(b[off:], v1JSONPrefix)
		return b[off:], nil
	}
	out := make([]byte, 0, len(`{"trace":}`)+len(b))
	out = append(out, `{"trace":`...)
	out = append(out, b...)
	return append(out, '}'), nil
}

// marshalTraceProto writes a trace in protobuf: v1 as tempopb.Trace, whose
// field 1 (batches) is OTLP's TracesData field 1 (resource_spans), so the
// bytes are the same; v2 as tempopb.TraceByIDResponse, the trace in field
// 1.
func marshalTraceProto(td ptrace.Traces, v2 bool) ([]byte, error) {
	m := &ptrace.ProtoMarshaler{}
	if !v2 {
		b, err := m.MarshalTraces(td)
		if err != nil {
			return nil, fmt.Errorf("encode trace: %w", err)
		}
		return b, nil
	}
	b, err := m.MarshalTraces(td)
	if err != nil {
		return nil, fmt.Errorf("encode trace: %w", err)
	}
	out := make([]byte, 0, 1+protowire.SizeVarint(uint64(len(b)))+len(b))
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	out = protowire.AppendBytes(out, b)
	return out, nil
}
