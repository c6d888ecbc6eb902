package vtraces

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// A slim record and the row's columns give back the span as it came, with
// its resource and scope; ends before the start, and absent ones, too.
func TestSlimRecordRoundTrip(t *testing.T) {
	const start = 1_700_000_000_000_000_000
	for _, tc := range []struct {
		name string
		end  uint64
	}{
		{"end after start", start + 1500},
		{"end at start", start},
		{"end before start", start - 7},
		{"no end", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := ptrace.NewTraces()
			rs := td.ResourceSpans().AppendEmpty()
			rs.SetSchemaUrl("https://schema/r")
			rs.Resource().Attributes().PutStr("service.name", "svc")
			rs.Resource().Attributes().PutStr("k8s.pod.name", "pod-1")
			ss := rs.ScopeSpans().AppendEmpty()
			ss.SetSchemaUrl("https://schema/s")
			ss.Scope().SetName("lib")
			sp := ss.Spans().AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
			sp.SetSpanID(pcommon.SpanID{8, 7, 6, 5, 4, 3, 2, 1})
			sp.SetParentSpanID(pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, 1})
			sp.SetName("op")
			sp.SetStartTimestamp(start)
			sp.SetEndTimestamp(pcommon.Timestamp(tc.end))
			sp.Attributes().PutInt("n", 3)
			sp.Events().AppendEmpty().SetName("ev")
			sp.Status().SetCode(ptrace.StatusCodeError)
			wire, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
			require.NoError(t, err)
			var w otlpwire.Traces
			require.NoError(t, w.Read(wire))

			// What spanFields stores.
			r, sc, s := &w.Resources[0], &w.Scopes[0], &w.Spans[0]
			rec := spanRecord{resource: r.Resource, resourceSchema: r.SchemaURL, scope: sc.Scope, scopeSchema: sc.SchemaURL, span: s.Field}
			slim, err := appendSlimSpan(nil, s.Field, int64(s.Start), int64(s.End))
			require.NoError(t, err)
			require.Less(t, len(slim), len(s.Field)-25, "IDs and times left to the columns")
			text := appendSpanText(nil, slimMarker, slim)
			env := appendSpanText(nil, slimMarker, appendEnvelope(nil, rec))
			dur := max(int64(s.End)-int64(s.Start), 0)
			var wt otlpwire.Traces
			back, err := storedRecord(&wt, string(text), slimColumns{
				envelope: string(env), traceID: "0102030405060708090a0b0c0d0e0f10", spanID: "0807060504030201",
				start: "1700000000000000000", duration: strconv.FormatInt(dur, 10),
			})
			require.NoError(t, err)
			got := appendSpanRecord(nil, back)
			if tc.end >= start {
				require.Len(t, got, spanRecordSize(rec), "the same fields, in another order")
			}
			decoded, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(got)
			require.NoError(t, err)
			require.Equal(t, td, decoded)
		})
	}
}

// A slim record's columns must be there and well-formed; older records
// read as they are.
func TestStoredRecordErrors(t *testing.T) {
	env := string(appendSpanText(nil, slimMarker, appendEnvelope(nil, spanRecord{resource: []byte{0x0A, 0x00}})))
	slim := string(appendSpanText(nil, slimMarker, []byte{0x2A, 0x01, 0x41})) // name "A"
	good := slimColumns{envelope: env, traceID: "0102030405060708090a0b0c0d0e0f10", spanID: "0807060504030201", start: "5", duration: "1"}
	var wt otlpwire.Traces
	_, err := storedRecord(&wt, slim, good)
	require.NoError(t, err)
	for name, c := range map[string]slimColumns{
		"no envelope":    {traceID: good.traceID, spanID: good.spanID, start: "5", duration: "1"},
		"short trace ID": {envelope: env, traceID: "0102", spanID: good.spanID, start: "5", duration: "1"},
		"bad span ID":    {envelope: env, traceID: good.traceID, spanID: "zz07060504030201", start: "5", duration: "1"},
		"bad start":      {envelope: env, traceID: good.traceID, spanID: good.spanID, start: "x", duration: "1"},
		"bad envelope":   {envelope: string(appendSpanText(nil, slimMarker, []byte{0x05})), traceID: good.traceID, spanID: good.spanID, start: "5", duration: "1"},
	} {
		_, err := storedRecord(&wt, slim, c)
		require.ErrorIs(t, err, errWire, name)
	}
	// A record stored whole (the text form before slim records) needs no
	// column.
	full := appendSpanRecord(nil, spanRecord{resource: []byte{0x0A, 0x00}, span: []byte{0x12, 0x03, 0x2A, 0x01, 0x41}})
	rec, err := storedRecord(&wt, string(appendSpanText(nil, spanTextMarker, full)), slimColumns{})
	require.NoError(t, err)
	require.Equal(t, full, appendSpanRecord(nil, rec))
	// A record that is not OTLP is refused, not passed on.
	_, err = storedRecord(&wt, string(appendSpanText(nil, spanTextMarker, []byte{0x0A, 0x05})), slimColumns{})
	require.ErrorIs(t, err, errWire)
}
