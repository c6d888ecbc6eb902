package otlpwire

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// richTraces has two resources, one with two scopes, spans with every
// attribute type, events, links, statuses and duplicate keys.
func richTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	for r := range 2 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl(fmt.Sprintf("https://schema/%d", r))
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", fmt.Sprintf("svc-%d", r))
		ra.PutInt("pid", int64(100+r))
		ra.PutDouble("load", 0.25)
		ra.PutEmptySlice("tags").AppendEmpty().SetStr("x")
		for s := range r + 1 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(fmt.Sprintf("lib-%d", s))
			ss.Scope().SetVersion("1.0")
			ss.Scope().Attributes().PutBool("scoped", true)
			ss.SetSchemaUrl("https://scope")
			for k := range 3 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{byte(r + 1), byte(s), byte(k), 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
				sp.SetSpanID(pcommon.SpanID{byte(k + 1), 2, 3, 4, 5, 6, 7, 8})
				if k > 0 {
					sp.SetParentSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8})
				}
				sp.SetName(fmt.Sprintf("op-%d-%d-%d", r, s, k))
				sp.SetKind(ptrace.SpanKind(k + 1))
				sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + k))
				sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_500_000_000 + k))
				sp.TraceState().FromRaw("k=v")
				sp.SetFlags(1)
				a := sp.Attributes()
				a.PutStr("http.method", "GET")
				a.PutInt("http.status_code", int64(200+k))
				a.PutDouble("ratio", math.Pi)
				a.PutBool("ok", k%2 == 0)
				a.PutEmptyBytes("blob").FromRaw([]byte{0, 1, 2})
				a.PutEmptyMap("nested").PutEmptyMap("deeper").PutStr("leaf", "v")
				a.PutEmpty("nothing")
				if k == 2 {
					sp.Status().SetCode(ptrace.StatusCodeError)
					sp.Status().SetMessage("boom")
				}
				ev := sp.Events().AppendEmpty()
				ev.SetName("event")
				ev.SetTimestamp(pcommon.Timestamp(1_700_000_000_100_000_000))
				ev.Attributes().PutStr("exception.message", "bad")
				ln := sp.Links().AppendEmpty()
				ln.SetTraceID(pcommon.TraceID{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9})
				ln.SetSpanID(pcommon.SpanID{8, 8, 8, 8, 8, 8, 8, 8})
				ln.Attributes().PutInt("link.n", 1)
			}
		}
	}
	// A duplicate key, as some SDKs send: both are kept, in order.
	td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes().PutStr("dup", "first")
	return td
}

func marshal(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	return b
}

// requireSame checks that tr reads what pdata decodes from the same bytes.
func requireSame(t testing.TB, td ptrace.Traces, tr *Traces) {
	t.Helper()
	rss := td.ResourceSpans()
	require.Len(t, tr.Resources, rss.Len(), "resources")
	for i := range rss.Len() {
		rs, r := rss.At(i), tr.Resources[i]
		requireSameAttrs(t, rs.Resource().Attributes(), tr, r.Attrs, "resource %d", i)
		sss := rs.ScopeSpans()
		require.Equal(t, sss.Len(), r.Scopes.Len(), "scopes of resource %d", i)
		for j := range sss.Len() {
			spans, sc := sss.At(j).Spans(), tr.Scopes[r.Scopes.Start+j]
			require.Equal(t, spans.Len(), sc.Spans.Len(), "spans of scope %d/%d", i, j)
			require.Equal(t, i, sc.Resource, "resource of scope %d/%d", i, j)
			for k := range spans.Len() {
				want, got := spans.At(k), &tr.Spans[sc.Spans.Start+k]
				where := fmt.Sprintf("span %d/%d/%d", i, j, k)
				require.Equal(t, r.Scopes.Start+j, got.Scope, where)
				require.Equal(t, [16]byte(want.TraceID()), got.TraceID, where)
				require.Equal(t, [8]byte(want.SpanID()), got.SpanID, where)
				require.Equal(t, [8]byte(want.ParentSpanID()), got.ParentSpanID, where)
				require.Equal(t, !want.ParentSpanID().IsEmpty(), got.HasParent(), where)
				require.Equal(t, want.Name(), got.Name, where)
				require.Equal(t, want.Kind(), got.Kind, where)
				require.Equal(t, uint64(want.StartTimestamp()), got.Start, where)
				require.Equal(t, uint64(want.EndTimestamp()), got.End, where)
				require.Equal(t, want.Status().Code(), got.StatusCode, where)
				require.Equal(t, want.Status().Message(), got.StatusMessage, where)
				requireSameAttrs(t, want.Attributes(), tr, got.Attrs, "%s", where)
				// The span's field is the span, whole.
				num, typ, n := protowire.ConsumeTag(got.Field)
				require.Equal(t, protowire.Number(2), num, where)
				require.Equal(t, protowire.BytesType, typ, where)
				_, m := protowire.ConsumeBytes(got.Field[n:])
				require.Equal(t, len(got.Field)-n, m, where)
				rsPayload := protowire.AppendBytes(protowire.AppendTag(nil, 2, protowire.BytesType), got.Field)
				wrapped := protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), rsPayload)
				back, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(wrapped)
				require.NoError(t, err, where)
				require.Equal(t, 1, back.SpanCount(), where)
				require.Equal(t, want.Name(), back.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name(), where)
			}
		}
	}
	require.Len(t, tr.Spans, td.SpanCount(), "spans")
}

func requireSameAttrs(t testing.TB, want pcommon.Map, tr *Traces, r Range, format string, args ...any) {
	t.Helper()
	where := fmt.Sprintf(format, args...)
	require.Equal(t, want.Len(), r.Len(), "attributes of %s", where)
	i := r.Start
	for k, v := range want.All() {
		got := tr.Attrs[i]
		i++
		require.Equal(t, k, got.Key, where)
		require.Equal(t, ValueType(v.Type()), got.Value.Type(), "type of %s of %s", k, where)
		switch v.Type() {
		case pcommon.ValueTypeStr:
			require.Equal(t, v.Str(), got.Value.Str(), where)
		case pcommon.ValueTypeInt:
			require.Equal(t, v.Int(), got.Value.Int(), where)
		case pcommon.ValueTypeDouble:
			require.Equal(t, math.Float64bits(v.Double()), math.Float64bits(got.Value.Double()), where)
		case pcommon.ValueTypeBool:
			require.Equal(t, v.Bool(), got.Value.Bool(), where)
		}
	}
}

func TestReadMatchesPdata(t *testing.T) {
	td := richTraces()
	b := marshal(t, td)
	var tr Traces
	require.NoError(t, tr.Read(b))
	requireSame(t, td, &tr)
	require.Equal(t, "svc-1", func() string { v, _ := tr.Attr(tr.Resources[1].Attrs, "service.name"); return v.Str() }())
	require.Contains(t, string(tr.Resources[0].SchemaURL), "https://schema/0")
	require.Contains(t, string(tr.Scopes[0].Scope), "lib-0")

	// Written back, it reads the same.
	var again Traces
	require.NoError(t, again.Read(tr.AppendProto(nil)))
	requireSame(t, td, &again)

	// Read again into the same Traces: nothing of the first read is left.
	small := ptrace.NewTraces()
	small.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("only")
	require.NoError(t, tr.Read(marshal(t, small)))
	requireSame(t, small, &tr)

	require.NoError(t, tr.Read(nil))
	require.Empty(t, tr.Resources)
	require.Empty(t, tr.Spans)
}

// AppendSpans writes the chosen spans under their resources and scopes,
// leaving out the resources and scopes without any.
func TestAppendSpans(t *testing.T) {
	td := richTraces()
	var tr Traces
	require.NoError(t, tr.Read(marshal(t, td)))
	// Every span of resource 1's second scope, and the first of resource 0.
	sc := tr.Scopes[tr.Resources[1].Scopes.Start+1]
	sel := []int{0}
	for k := sc.Spans.Start; k < sc.Spans.End; k++ {
		sel = append(sel, k)
	}
	want := ptrace.NewTraces()
	td.ResourceSpans().CopyTo(want.ResourceSpans())
	want.ResourceSpans().At(0).ScopeSpans().At(0).Spans().RemoveIf(func(sp ptrace.Span) bool { return sp.Name() != "op-0-0-0" })
	want.ResourceSpans().At(1).ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool { return ss.Scope().Name() != "lib-1" })
	got, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(tr.AppendSpans(nil, sel))
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Only resource 1's spans: resource 0 is left out.
	got, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(tr.AppendSpans(nil, sel[1:]))
	require.NoError(t, err)
	require.Equal(t, 1, got.ResourceSpans().Len())
	require.Equal(t, 1, got.ResourceSpans().At(0).ScopeSpans().Len())
	require.Equal(t, sc.Spans.Len(), got.SpanCount())

	// Nothing chosen: nothing written.
	require.Empty(t, tr.AppendSpans(nil, []int{}))
}

// Read measures the strings the agent's ingestion rules check.
func TestReadMeasure(t *testing.T) {
	td := richTraces()
	tr := Traces{Measure: true}
	require.NoError(t, tr.Read(marshal(t, td)))
	require.False(t, tr.Strings.InvalidUTF8)
	require.Equal(t, len("op-0-0-0"), tr.Strings.MaxLen, "the span names are the longest (schema URLs and keys are not measured)")

	for _, tc := range []struct {
		name string
		edit func(td ptrace.Traces)
		max  int
		bad  bool
	}{
		{"span name", func(td ptrace.Traces) { span0(td).SetName(string(make([]byte, 500))) }, 500, false},
		{"event attribute", func(td ptrace.Traces) { span0(td).Events().At(0).Attributes().PutStr("e", string(make([]byte, 600))) }, 600, false},
		{"link attribute", func(td ptrace.Traces) { span0(td).Links().At(0).Attributes().PutStr("l", "\xff") }, 0, true},
		{"scope attribute", func(td ptrace.Traces) {
			td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutEmptyBytes("b").FromRaw(make([]byte, 700))
		}, 700, false},
		{"nested resource value", func(td ptrace.Traces) {
			td.ResourceSpans().At(1).Resource().Attributes().PutEmptyMap("m").PutEmptySlice("s").AppendEmpty().SetStr("ok\xc3")
		}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			td := richTraces()
			tc.edit(td)
			tr := Traces{Measure: true}
			require.NoError(t, tr.Read(marshal(t, td)))
			require.Equal(t, tc.bad, tr.Strings.InvalidUTF8)
			if tc.max > 0 {
				require.Equal(t, tc.max, tr.Strings.MaxLen)
			}
			// Without Measure, nothing is measured.
			tr.Measure = false
			require.NoError(t, tr.Read(marshal(t, td)))
			require.Equal(t, StringStats{}, tr.Strings)
		})
	}
}

func span0(td ptrace.Traces) ptrace.Span {
	return td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
}

// Hand-made encodings no marshaller writes but protobuf allows: fields out
// of order, a message field given twice (merged), a oneof set twice (the
// last wins), unknown fields, the deprecated scope spans (not shown).
func TestReadProtobufRules(t *testing.T) {
	bytesField := func(num protowire.Number, payload []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), payload)
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	kv := func(key string, value []byte) []byte {
		return cat(bytesField(1, []byte(key)), bytesField(2, value))
	}
	str := func(s string) []byte { return bytesField(1, []byte(s)) }
	intVal := protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 7)
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	fixed := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendFixed64(protowire.AppendTag(nil, num, protowire.Fixed64Type), v)
	}
	span := cat(
		bytesField(15, cat(protowire.AppendVarint(protowire.AppendTag(nil, 3, protowire.VarintType), 2))), // status code
		bytesField(5, []byte("first")),
		bytesField(9, kv("a", cat(str("s"), intVal))), // string then int: int
		unknown,
		bytesField(1, make([]byte, 16)),
		bytesField(2, []byte{1, 2, 3, 4, 5, 6, 7, 8}),
		bytesField(5, []byte("last")),                   // the last name wins
		bytesField(15, bytesField(2, []byte("merged"))), // message only: the code stays
		fixed(7, 10), fixed(8, 20),
		bytesField(9, kv("b", nil)), // no value: empty
	)
	scope := cat(bytesField(2, span), bytesField(1, str("lib")))
	deprecated := bytesField(1000, cat(bytesField(2, cat(bytesField(2, []byte{9, 9, 9, 9, 9, 9, 9, 9}), bytesField(5, []byte("old"))))))
	rs := cat(bytesField(2, scope), deprecated, bytesField(1, bytesField(1, kv("service.name", str("late")))), bytesField(1, bytesField(1, kv("more", intVal))))
	b := cat(unknown, bytesField(1, rs))

	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
	require.NoError(t, err)
	var tr Traces
	require.NoError(t, tr.Read(b))
	requireSame(t, td, &tr)
	sp := tr.Spans[0]
	require.Equal(t, "last", sp.Name)
	require.Equal(t, ptrace.StatusCodeError, sp.StatusCode)
	require.Equal(t, "merged", sp.StatusMessage)
	require.Equal(t, ValueInt, tr.Attrs[sp.Attrs.Start].Value.Type())
	require.Equal(t, ValueEmpty, tr.Attrs[sp.Attrs.Start+1].Value.Type())
	require.Equal(t, 2, tr.Resources[0].Attrs.Len(), "both resource fields' attributes")
}

func TestReadErrors(t *testing.T) {
	good := marshal(t, richTraces())
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	bytesField := func(num protowire.Number, payload []byte) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), payload)
	}
	inSpan := func(field []byte) []byte {
		return bytesField(1, bytesField(2, bytesField(2, field)))
	}
	nested := bytesField(2, bytesField(1, []byte("x"))) // KeyValue.value = "x"
	for range 60 {
		// KeyValue{value: AnyValue{kvlist: {values: [KeyValue…]}}}: 3 levels each
		nested = bytesField(2, bytesField(6, bytesField(1, nested)))
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"truncated", good[:len(good)-3]},
		{"bad tag", []byte{0x80}},
		{"resource spans as varint", protowire.AppendVarint(tag(1, protowire.VarintType), 1)},
		{"trace id of 5 bytes", inSpan(bytesField(1, []byte{1, 2, 3, 4, 5}))},
		{"span id as fixed64", inSpan(protowire.AppendFixed64(tag(2, protowire.Fixed64Type), 1))},
		{"start as varint", inSpan(protowire.AppendVarint(tag(7, protowire.VarintType), 1))},
		{"name as varint", inSpan(protowire.AppendVarint(tag(5, protowire.VarintType), 1))},
		{"bad event attribute", inSpan(bytesField(11, bytesField(3, protowire.AppendVarint(tag(1, protowire.VarintType), 1))))},
		{"bad link span id", inSpan(bytesField(13, bytesField(2, []byte{1})))},
		{"bad status code type", inSpan(bytesField(15, bytesField(3, []byte("x"))))},
		{"bad double", inSpan(bytesField(9, bytesField(2, protowire.AppendVarint(tag(4, protowire.VarintType), 1))))},
		{"bad scope attribute", bytesField(1, bytesField(2, bytesField(1, bytesField(3, []byte{0xff}))))},
		{"bad deprecated scope", bytesField(1, bytesField(1000, bytesField(2, bytesField(1, []byte{1}))))},
		{"too deep", inSpan(bytesField(9, nested))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, pErr := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(tc.b)
			require.Error(t, pErr, "pdata refuses it too")
			var tr Traces
			err := tr.Read(tc.b)
			require.ErrorIs(t, err, ErrMalformed)
		})
	}
	// A group is valid protobuf that pdata skips; no OTLP encoder writes one.
	group := protowire.AppendTag(protowire.AppendTag(nil, 50, protowire.StartGroupType), 50, protowire.EndGroupType)
	var tr Traces
	require.ErrorIs(t, tr.Read(group), ErrMalformed)
	require.True(t, errors.Is(tr.Read(group), ErrMalformed))
}

// FuzzRead: what Read accepts, pdata accepts and reads the same.
func FuzzRead(f *testing.F) {
	f.Add(marshal(f, richTraces()))
	small := ptrace.NewTraces()
	small.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("x")
	f.Add(marshal(f, small))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var tr Traces
		if err := tr.Read(b); err != nil {
			require.ErrorIs(t, err, ErrMalformed)
			return
		}
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
		require.NoError(t, err, "Read accepted what pdata refuses")
		requireSame(t, td, &tr)
		var again Traces
		require.NoError(t, again.Read(tr.AppendProto(nil)))
		require.Len(t, again.Spans, len(tr.Spans))
		var odd []int
		for k := 1; k < len(tr.Spans); k += 2 {
			odd = append(odd, k)
		}
		require.NoError(t, again.Read(tr.AppendSpans(nil, odd)))
		require.Len(t, again.Spans, len(odd))
		for i, k := range odd {
			require.Equal(t, tr.Spans[k].Field, again.Spans[i].Field)
		}
	})
}

func BenchmarkRead(b *testing.B) {
	data := marshal(b, benchTraces())
	b.Run("otlpwire", func(b *testing.B) {
		var tr Traces
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := tr.Read(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pdata", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchTraces is 512 spans of one resource, as an SDK exports them.
func benchTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "bench")
	rs.Resource().Attributes().PutStr("host.name", "node-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("bench")
	for i := range 512 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(pcommon.TraceID{byte(i), byte(i >> 8), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
		sp.SetSpanID(pcommon.SpanID{byte(i), byte(i >> 8), 1, 2, 3, 4, 5, 6})
		sp.SetParentSpanID(pcommon.SpanID{9, 9, 9, 9, 9, 9, 9, 9})
		sp.SetName("lets-go")
		sp.SetKind(ptrace.SpanKindClient)
		sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i))
		sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_001_000_000 + i))
		sp.Attributes().PutStr("net.peer.ip", "1.2.3.4")
		sp.Attributes().PutStr("peer.service", "telemetrygen-server")
	}
	return td
}
