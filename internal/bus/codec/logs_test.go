package codec

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/pharos-obs/pharos/storage/logs"
)

func sampleStreams() []logs.Stream {
	return []logs.Stream{
		{
			Labels: labels.FromStrings("app", "api", "namespace", "prod"),
			Entries: []logs.Entry{
				{Timestamp: 1_700_000_000_000_000_001, Line: "GET /users 200"},
				{Timestamp: 1_700_000_000_000_000_002, Line: "", Metadata: labels.FromStrings("trace_id", "0af7651916cd43dd8448eb211c80319c")},
				{Timestamp: 1_700_000_000_000_000_003, Line: strings.Repeat("é", 300), Metadata: labels.FromStrings("a", "1", "b", "")},
			},
		},
		{
			Labels:  labels.FromStrings("app", "db"),
			Entries: []logs.Entry{{Timestamp: 5, Line: "checkpoint"}},
		},
	}
}

func encodeStreams(t testing.TB, c Compression, streams []logs.Stream) ([]byte, string) {
	t.Helper()
	enc := NewLogsEncoder(c)
	for _, st := range streams {
		enc.StartStream(st.Labels)
		for i := range st.Entries {
			enc.AddEntry(&st.Entries[i])
		}
	}
	out, err := enc.Finish()
	require.NoError(t, err)
	return append([]byte(nil), out...), enc.Encoding()
}

func TestLogsRoundTrip(t *testing.T) {
	for _, c := range []Compression{CompressionSnappy, CompressionZstd} {
		t.Run(string(c), func(t *testing.T) {
			want := sampleStreams()
			data, encoding := encodeStreams(t, c, want)
			got, err := NewLogsDecoder(1<<20).Decode(encoding, data)
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// The payload is OTLP: the collector's own decoder reads it the same way.
func TestLogsAreOTLP(t *testing.T) {
	data, _ := encodeStreams(t, CompressionSnappy, sampleStreams())
	raw, err := decompress(CompressionSnappy, nil, data, 1<<20)
	require.NoError(t, err)
	req := plogotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(raw))
	rls := req.Logs().ResourceLogs()
	require.Equal(t, 2, rls.Len())
	app, ok := rls.At(0).Resource().Attributes().Get("app")
	require.True(t, ok)
	require.Equal(t, "api", app.Str())
	recs := rls.At(0).ScopeLogs().At(0).LogRecords()
	require.Equal(t, 3, recs.Len())
	require.Equal(t, "GET /users 200", recs.At(0).Body().Str())
	require.EqualValues(t, 1_700_000_000_000_000_001, recs.At(0).Timestamp())
	tid, ok := recs.At(1).Attributes().Get("trace_id")
	require.True(t, ok)
	require.Equal(t, "0af7651916cd43dd8448eb211c80319c", tid.Str())

	// And the other way: a request pdata wrote decodes here, with
	// non-string values rendered as text.
	req = plogotlp.NewExportRequest()
	rl := req.Logs().ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service_name", "checkout")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(42)
	lr.Body().SetStr("paid")
	lr.Attributes().PutInt("status", 200)
	lr.Attributes().PutBool("ok", true)
	lr.Attributes().PutDouble("ratio", 0.5)
	raw, err = req.MarshalProto()
	require.NoError(t, err)
	got, err := NewLogsDecoder(1 << 20).parse(string(raw))
	require.NoError(t, err)
	require.Equal(t, []logs.Stream{{
		Labels: labels.FromStrings("service_name", "checkout"),
		Entries: []logs.Entry{{Timestamp: 42, Line: "paid",
			Metadata: labels.FromStrings("ok", "true", "ratio", "0.5", "status", "200")}},
	}}, got)
}

func TestLogsDecodeErrors(t *testing.T) {
	good, encoding := encodeStreams(t, CompressionSnappy, sampleStreams())
	raw, err := decompress(CompressionSnappy, nil, good, 1<<20)
	require.NoError(t, err)
	for _, tc := range []struct {
		name     string
		encoding string
		data     []byte
		want     string
	}{
		{"unknown encoding", "prw2+snappy", good, "unknown encoding"},
		{"over the size limit", encoding, good, "exceeds size limit"},
		{"not snappy", encoding, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "snappy"},
		{"truncated", encoding, mustSnappy(t, raw[:len(raw)-3]), "malformed"},
		{"bad wire type", encoding, mustSnappy(t, []byte{0x0f, 0x00}), "malformed"},
		{"invalid UTF-8 body", encoding, mustSnappy(t, invalidUTF8Request()), "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := 1 << 20
			if tc.name == "over the size limit" {
				limit = len(raw) - 1
			}
			_, err := NewLogsDecoder(limit).Decode(tc.encoding, tc.data)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func mustSnappy(t testing.TB, raw []byte) []byte {
	out, err := compress(CompressionSnappy, nil, raw)
	require.NoError(t, err)
	return out
}

func invalidUTF8Request() []byte {
	req := plogotlp.NewExportRequest()
	rl := req.Logs().ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("a", "b")
	rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty().Body().SetEmptyBytes().FromRaw([]byte{0xff, 0xfe})
	raw, _ := req.MarshalProto()
	return raw
}

func FuzzLogsDecode(f *testing.F) {
	good, _ := encodeStreams(f, CompressionSnappy, sampleStreams())
	raw, _ := decompress(CompressionSnappy, nil, good, 1<<20)
	f.Add(raw)
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		streams, err := NewLogsDecoder(1 << 20).parse(string(b))
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same streams.
		data, encoding := encodeStreams(t, CompressionSnappy, streams)
		again, err := NewLogsDecoder(1<<24).Decode(encoding, data)
		require.NoError(t, err)
		require.Equal(t, normalise(streams), normalise(again))
	})
}

// normalise drops entry-less streams and nil-vs-empty metadata
// differences, which an encode-decode round trip does not keep.
func normalise(streams []logs.Stream) []string {
	var out []string
	for _, st := range streams {
		for _, e := range st.Entries {
			out = append(out, fmt.Sprintf("%s %d %q %s", st.Labels, e.Timestamp, e.Line, e.Metadata))
		}
	}
	return out
}

func benchStreams(lines int) []logs.Stream {
	st := make([]logs.Stream, 10)
	for i := range st {
		st[i].Labels = labels.FromStrings("namespace", "prod", "pod", fmt.Sprintf("api-%d", i), "container", "api")
		for j := range lines / len(st) {
			st[i].Entries = append(st[i].Entries, logs.Entry{
				Timestamp: int64(1_700_000_000_000_000_000 + j),
				Line:      fmt.Sprintf(`level=info ts=2026-11-27T10:00:00Z caller=handler.go:%d msg="request served" path=/api/v1/users/%d status=200 duration=%dms`, j%400, j, j%97),
			})
		}
	}
	return st
}

func BenchmarkLogsEncode(b *testing.B) {
	streams := benchStreams(1000)
	enc := NewLogsEncoder(CompressionSnappy)
	var size int
	for _, st := range streams {
		for _, e := range st.Entries {
			size += len(e.Line)
		}
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		enc.Reset()
		for _, st := range streams {
			enc.StartStream(st.Labels)
			for i := range st.Entries {
				enc.AddEntry(&st.Entries[i])
			}
		}
		if _, err := enc.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLogsDecode(b *testing.B) {
	streams := benchStreams(1000)
	data, encoding := encodeStreams(b, CompressionSnappy, streams)
	var size int
	for _, st := range streams {
		for _, e := range st.Entries {
			size += len(e.Line)
		}
	}
	dec := NewLogsDecoder(64 << 20)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := dec.Decode(encoding, data); err != nil {
			b.Fatal(err)
		}
	}
}
