package codec

import (
	"bytes"
	"math"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

func testSamples() []Sample {
	h := &histogram.Histogram{
		Count: 5, Sum: 12.5, Schema: 1, ZeroThreshold: 0.001, ZeroCount: 1,
		PositiveSpans:   []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets: []int64{2, 0},
	}
	return []Sample{
		{Labels: labels.FromStrings("__name__", "up", "job", "a", "instance", "x:1"), T: 1000, V: 1,
			Meta: metadata.Metadata{Type: model.MetricTypeGauge, Help: "Target up."}},
		{Labels: labels.FromStrings("__name__", "up", "job", "a", "instance", "x:2"), T: 1000, V: 0},
		{Labels: labels.FromStrings("__name__", "weird", "v", "ünïcødé"), T: -5, V: math.Inf(-1), ST: 7},
		{Labels: labels.FromStrings("__name__", "lat", "job", "a"), T: 2000, H: h,
			Exemplars: []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "abc"), Value: 0.3, Ts: 1999, HasTs: true}}},
		{Labels: labels.FromStrings("__name__", "flat"), T: 3000, FH: h.ToFloat(nil)},
	}
}

func decodeAll(t *testing.T, req *writev2.Request) []Sample {
	t.Helper()
	var b labels.ScratchBuilder
	var out []Sample
	for _, ts := range req.Timeseries {
		l, err := ts.ToLabels(&b, req.Symbols)
		require.NoError(t, err)
		md, err := ts.ToMetadata(req.Symbols)
		require.NoError(t, err)
		s := Sample{Labels: l}
		if md.Type != model.MetricTypeUnknown || md.Help != "" {
			s.Meta = md
		}
		for _, smp := range ts.Samples {
			s.T, s.V, s.ST = smp.Timestamp, smp.Value, smp.StartTimestamp
		}
		for _, hp := range ts.Histograms {
			s.T, s.ST = hp.Timestamp, hp.StartTimestamp
			if hp.IsFloatHistogram() {
				s.FH = hp.ToFloatHistogram()
			} else {
				s.H = hp.ToIntHistogram()
			}
		}
		for _, e := range ts.Exemplars {
			ex, err := e.ToExemplar(&b, req.Symbols)
			require.NoError(t, err)
			s.Exemplars = append(s.Exemplars, ex)
		}
		out = append(out, s)
	}
	return out
}

func TestMetricsRoundTrip(t *testing.T) {
	for _, comp := range []Compression{CompressionSnappy, CompressionZstd} {
		t.Run(string(comp), func(t *testing.T) {
			enc := NewMetricsEncoder(comp)
			var dec MetricsDecoder
			var buf []byte
			// Twice through the same encoder and decoder: reused buffers must
			// not leak one batch into the next.
			for round := 0; round < 2; round++ {
				in := testSamples()
				if round == 1 {
					in = in[1:3]
				}
				for i := range in {
					enc.Append(&in[i])
				}
				require.Equal(t, len(in), enc.Samples())
				var err error
				buf, err = enc.Encode(buf)
				require.NoError(t, err)
				enc.Reset()
				req, err := dec.Decode(enc.Encoding(), buf)
				require.NoError(t, err)
				got := decodeAll(t, req)
				require.Len(t, got, len(in))
				for i := range in {
					require.Equal(t, in[i].Labels, got[i].Labels)
					require.Equal(t, in[i].T, got[i].T)
					require.Equal(t, in[i].ST, got[i].ST)
					require.Equal(t, in[i].Meta, got[i].Meta)
					if in[i].H == nil && in[i].FH == nil {
						require.Equal(t, in[i].V, got[i].V)
					}
					if in[i].H != nil {
						require.Equal(t, in[i].H.Count, got[i].H.Count)
						require.Equal(t, in[i].H.PositiveBuckets, got[i].H.PositiveBuckets)
					}
					if in[i].FH != nil {
						require.True(t, in[i].FH.Equals(got[i].FH))
					}
					require.Len(t, got[i].Exemplars, len(in[i].Exemplars))
					for j := range in[i].Exemplars {
						require.Equal(t, in[i].Exemplars[j].Labels, got[i].Exemplars[j].Labels)
						require.Equal(t, in[i].Exemplars[j].Value, got[i].Exemplars[j].Value)
					}
				}
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	enc := NewMetricsEncoder(CompressionSnappy)
	s := testSamples()[0]
	enc.Append(&s)
	good, err := enc.Encode(nil)
	require.NoError(t, err)

	big := NewMetricsEncoder(CompressionZstd)
	long := labels.FromStrings("__name__", "x", "v", string(bytes.Repeat([]byte("a"), 4096)))
	for i := 0; i < 64; i++ {
		big.Append(&Sample{Labels: long, T: int64(i)})
	}
	bigBuf, err := big.Encode(nil)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		enc  string
		data []byte
		max  int
	}{
		"unknown encoding": {enc: "json", data: good},
		"garbage snappy":   {enc: EncodingPRW2Snappy, data: []byte("\xff\xff\xff\xff\x0fnot snappy")},
		"garbage zstd":     {enc: EncodingPRW2Zstd, data: []byte("nope")},
		"truncated":        {enc: EncodingPRW2Snappy, data: good[:len(good)/2]},
		"over the cap":     {enc: EncodingPRW2Zstd, data: bigBuf, max: 1024},
	} {
		t.Run(name, func(t *testing.T) {
			dec := MetricsDecoder{MaxDecodedBytes: tc.max}
			_, err := dec.Decode(tc.enc, tc.data)
			require.Error(t, err)
		})
	}
}

func FuzzMetricsDecode(f *testing.F) {
	for _, comp := range []Compression{CompressionSnappy, CompressionZstd} {
		enc := NewMetricsEncoder(comp)
		in := testSamples()
		for i := range in {
			enc.Append(&in[i])
		}
		buf, err := enc.Encode(nil)
		require.NoError(f, err)
		f.Add(enc.Encoding(), buf)
	}
	f.Add(EncodingPRW2Snappy, []byte{})
	f.Fuzz(func(t *testing.T, encoding string, data []byte) {
		dec := MetricsDecoder{MaxDecodedBytes: 1 << 20}
		req, err := dec.Decode(encoding, data)
		if err != nil {
			return
		}
		var b labels.ScratchBuilder
		for _, ts := range req.Timeseries {
			_, _ = ts.ToLabels(&b, req.Symbols)
			_, _ = ts.ToMetadata(req.Symbols)
		}
	})
}

func BenchmarkMetricsEncode(b *testing.B) {
	const n = 10000
	in := make([]Sample, n)
	for i := range in {
		in[i] = Sample{Labels: labels.FromStrings("__name__", "bench_metric", "job", "bench", "instance", "host:9100", "series", string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676%26))), T: int64(i), V: float64(i)}
	}
	enc := NewMetricsEncoder(CompressionSnappy)
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range in {
			enc.Append(&in[j])
		}
		buf, _ = enc.Encode(buf)
		enc.Reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
	b.SetBytes(int64(len(buf)))
}
