package codec

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// sampleTraces is two resources with spans of every shape the store sees.
func sampleTraces(spans int) ptrace.Traces {
	td := ptrace.NewTraces()
	for r := range 2 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", fmt.Sprintf("svc-%d", r))
		rs.Resource().Attributes().PutStr("k8s.pod.name", fmt.Sprintf("pod-%d", r))
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("io.opentelemetry.http")
		for i := range spans / 2 {
			sp := ss.Spans().AppendEmpty()
			var tid pcommon.TraceID
			binary.BigEndian.PutUint64(tid[8:], uint64(i/4+1))
			sp.SetTraceID(tid)
			var sid pcommon.SpanID
			binary.BigEndian.PutUint64(sid[:], uint64(r*spans+i+1))
			sp.SetSpanID(sid)
			sp.SetName(fmt.Sprintf("GET /api/v1/items/{id} %d", i%10))
			sp.SetKind(ptrace.SpanKindServer)
			sp.SetStartTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i))
			sp.SetEndTimestamp(pcommon.Timestamp(1_700_000_000_000_000_000 + i + 1_500_000))
			sp.Attributes().PutStr("http.method", "GET")
			sp.Attributes().PutInt("http.status_code", 200)
			sp.Attributes().PutStr("http.url", fmt.Sprintf("https://shop.example.com/api/v1/items/%d", i))
			ev := sp.Events().AppendEmpty()
			ev.SetName("cache miss")
			ev.Attributes().PutEmptyBytes("raw").FromRaw([]byte{0, 1, 2})
		}
	}
	return td
}

func TestTracesRoundTrip(t *testing.T) {
	for _, c := range []Compression{CompressionSnappy, CompressionZstd} {
		t.Run(string(c), func(t *testing.T) {
			want := sampleTraces(20)
			enc := NewTracesEncoder(c)
			data, err := enc.Encode(nil, want)
			require.NoError(t, err)
			require.Equal(t, TracesEncoding(c), enc.Encoding())
			dec := NewTracesDecoder(1 << 20)
			got, err := dec.Decode(enc.Encoding(), data)
			require.NoError(t, err)
			requireSameTraces(t, want, got)

			// The decoder's buffer is reused: what it returned before
			// stays intact.
			_, err = dec.Decode(enc.Encoding(), mustEncodeTraces(t, c, sampleTraces(4)))
			require.NoError(t, err)
			requireSameTraces(t, want, got)
		})
	}
}

// Encodings joined end to end decode as one request holding the resource
// spans of each, in order.
func TestTracesEncodeRawJoins(t *testing.T) {
	for _, c := range []Compression{CompressionSnappy, CompressionZstd} {
		t.Run(string(c), func(t *testing.T) {
			a, b := sampleTraces(6), sampleTraces(10)
			var m ptrace.ProtoMarshaler
			rawA, err := m.MarshalTraces(a)
			require.NoError(t, err)
			rawB, err := m.MarshalTraces(b)
			require.NoError(t, err)
			enc := NewTracesEncoder(c)
			data, err := enc.EncodeRaw(nil, append(rawA, rawB...))
			require.NoError(t, err)
			got, err := NewTracesDecoder(1<<20).Decode(enc.Encoding(), data)
			require.NoError(t, err)
			want := ptrace.NewTraces()
			a.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
			b.ResourceSpans().MoveAndAppendTo(want.ResourceSpans())
			require.Equal(t, 4, got.ResourceSpans().Len())
			requireSameTraces(t, want, got)
		})
	}
}

// The payload is a plain OTLP ExportTraceServiceRequest.
func TestTracesAreOTLP(t *testing.T) {
	data := mustEncodeTraces(t, CompressionZstd, sampleTraces(4))
	raw, err := decompress(CompressionZstd, nil, data, 1<<20)
	require.NoError(t, err)
	req := ptraceotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(raw))
	requireSameTraces(t, sampleTraces(4), req.Traces())
}

func TestTracesDecodeErrors(t *testing.T) {
	td := sampleTraces(10)
	good := mustEncodeTraces(t, CompressionSnappy, td)
	raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	for _, tc := range []struct {
		name     string
		encoding string
		data     []byte
		limit    int
		want     string
	}{
		{"unknown encoding", EncodingOTLPLogsSnappy, good, 1 << 20, "unknown encoding"},
		{"over the size limit", EncodingOTLPTracesSnappy, good, len(raw) - 1, "exceeds size limit"},
		{"zstd over the size limit", EncodingOTLPTracesZstd, mustEncodeTraces(t, CompressionZstd, td), len(raw) - 1, "exceeds size limit"},
		{"not snappy", EncodingOTLPTracesSnappy, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1 << 20, "snappy"},
		{"not zstd", EncodingOTLPTracesZstd, []byte("nope"), 1 << 20, "zstd"},
		{"truncated", EncodingOTLPTracesSnappy, mustSnappy(t, raw[:len(raw)-3]), 1 << 20, "malformed OTLP traces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTracesDecoder(tc.limit).Decode(tc.encoding, tc.data)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TracePartition is a wire contract: these values must never change, or
// agents of different versions would split traces across partitions.
func TestTracePartitionContract(t *testing.T) {
	for _, c := range []struct {
		id        pcommon.TraceID
		p8, p16   int
		p7, p1    int
		signature string
	}{
		{pcommon.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c}, 2, 10, 6, 0, "w3c example"},
		{pcommon.TraceID{15: 1}, 7, 7, 2, 0, "64-bit id, left-padded"},
		{pcommon.TraceID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 4, 4, 3, 0, "all ones"},
	} {
		require.Equal(t, c.p8, TracePartition(c.id, 8), c.signature)
		require.Equal(t, c.p16, TracePartition(c.id, 16), c.signature)
		require.Equal(t, c.p7, TracePartition(c.id, 7), c.signature)
		require.Equal(t, c.p1, TracePartition(c.id, 1), c.signature)
	}
	require.Zero(t, TracePartition(pcommon.TraceID{1}, 0))
}

// IDs that differ only in their first bytes (X-Ray's timestamp) or last
// (W3C random) spread over the partitions.
func TestTracePartitionSpreads(t *testing.T) {
	const partitions, n = 8, 8000
	for _, where := range []struct {
		name string
		at   int
	}{{"high bytes vary", 0}, {"low bytes vary", 8}} {
		counts := make([]int, partitions)
		for i := range n {
			var id pcommon.TraceID
			binary.BigEndian.PutUint64(id[where.at:], uint64(i))
			counts[TracePartition(id, partitions)]++
		}
		for p, c := range counts {
			require.InDelta(t, n/partitions, c, n/partitions/5, "%s: partition %d has %d", where.name, p, c)
		}
	}
}

func mustEncodeTraces(t testing.TB, c Compression, td ptrace.Traces) []byte {
	t.Helper()
	data, err := NewTracesEncoder(c).Encode(nil, td)
	require.NoError(t, err)
	return data
}

func requireSameTraces(t *testing.T, want, got ptrace.Traces) {
	t.Helper()
	var m ptrace.JSONMarshaler
	w, err := m.MarshalTraces(want)
	require.NoError(t, err)
	g, err := m.MarshalTraces(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g))
}

// FuzzTracesDecode feeds any payload to the decoder (both compressions):
// it must not panic, and what decodes re-encodes to the same spans.
func FuzzTracesDecode(f *testing.F) {
	raw, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(sampleTraces(4))
	require.NoError(f, err)
	f.Add(raw, false)
	f.Add([]byte{0x0a, 0x02, 0x12, 0x00}, true)
	f.Fuzz(func(t *testing.T, b []byte, zstd bool) {
		c := CompressionSnappy
		if zstd {
			c = CompressionZstd
		}
		data, err := compress(c, nil, b)
		require.NoError(t, err)
		td, err := NewTracesDecoder(1<<20).Decode(TracesEncoding(c), data)
		if err != nil {
			return
		}
		again, err := NewTracesDecoder(1<<24).Decode(TracesEncoding(c), mustEncodeTraces(t, c, td))
		require.NoError(t, err)
		require.Equal(t, td.SpanCount(), again.SpanCount())
	})
}

func BenchmarkTracesEncode(b *testing.B) {
	td := sampleTraces(1000)
	enc := NewTracesEncoder(CompressionSnappy)
	size := enc.Size(td)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var out []byte
	for b.Loop() {
		var err error
		if out, err = enc.Encode(out, td); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTracesDecode(b *testing.B) {
	td := sampleTraces(1000)
	data := mustEncodeTraces(b, CompressionSnappy, td)
	dec := NewTracesDecoder(64 << 20)
	b.SetBytes(int64(NewTracesEncoder(CompressionSnappy).Size(td)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(EncodingOTLPTracesSnappy, data); err != nil {
			b.Fatal(err)
		}
	}
}
