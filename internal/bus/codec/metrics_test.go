package codec

import (
	"bytes"
	"fmt"
	"math"
	"strings"
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

// BenchmarkMetricsEncode encodes batches of remembered series, as a
// partition's encoder does scrape after scrape: 10k series fit in the CPU's
// caches, 100k (an agent's share of a large node) do not.
func BenchmarkMetricsEncode(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchmarkMetricsEncode(b, n) })
	}
}

func benchmarkMetricsEncode(b *testing.B, n int) {
	in := make([]Sample, n)
	for i := range in {
		in[i] = Sample{Labels: labels.FromStrings("__name__", "bench_metric", "job", "bench", "instance", "host:9100", "series", fmt.Sprint(i)), T: int64(i), V: float64(i)}
	}
	enc := NewMetricsEncoder(CompressionSnappy)
	enc.SetMaxKeptSeries(n)
	for j := range in {
		in[j].Ref = in[j].Labels.Hash()
	}
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

// The hand-written parser must read what the generated code writes,
// including fields it ignores and unpacked label refs.
func TestDecoderMatchesGeneratedCode(t *testing.T) {
	h := testSamples()[3].H
	req := writev2.Request{
		Symbols: []string{"", "__name__", "a", "job", "x", "trace_id", "abc", "help", "s"},
		Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 2, 3, 4}, Samples: []writev2.Sample{{Value: 1.5, Timestamp: -3, StartTimestamp: 9}, {Value: math.NaN(), Timestamp: 1 << 40}},
				Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_COUNTER, HelpRef: 7, UnitRef: 8}},
			{LabelsRefs: []uint32{1, 2}, Histograms: []writev2.Histogram{writev2.FromIntHistogram(0, 10, h)},
				Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{5, 6}, Value: 2, Timestamp: 11}, {Value: 3}}},
			{LabelsRefs: []uint32{1, 2}},
		},
	}
	raw, err := req.Marshal()
	require.NoError(t, err)
	raw = append(raw, 0x30, 0x01) // an unknown varint field 6, as a newer sender might add

	var got writev2.Request
	require.NoError(t, unmarshalRequest(&got, raw))
	var want writev2.Request
	require.NoError(t, want.Unmarshal(raw))
	require.Equal(t, want.Symbols, got.Symbols)
	require.Len(t, got.Timeseries, len(want.Timeseries))
	for i := range want.Timeseries {
		w, g := want.Timeseries[i], got.Timeseries[i]
		require.Equal(t, w.LabelsRefs, g.LabelsRefs, "series %d", i)
		require.Equal(t, len(w.Samples), len(g.Samples))
		for j := range w.Samples {
			require.Equal(t, w.Samples[j].Timestamp, g.Samples[j].Timestamp)
			require.Equal(t, w.Samples[j].StartTimestamp, g.Samples[j].StartTimestamp)
			require.Equal(t, math.Float64bits(w.Samples[j].Value), math.Float64bits(g.Samples[j].Value))
		}
		require.Equal(t, len(w.Histograms), len(g.Histograms))
		for j := range w.Histograms {
			require.True(t, w.Histograms[j].ToIntHistogram().Equals(g.Histograms[j].ToIntHistogram()))
		}
		require.Equal(t, len(w.Exemplars), len(g.Exemplars))
		for j := range w.Exemplars {
			require.Equal(t, len(w.Exemplars[j].LabelsRefs), len(g.Exemplars[j].LabelsRefs))
			require.Equal(t, w.Exemplars[j].Value, g.Exemplars[j].Value)
			require.Equal(t, w.Exemplars[j].Timestamp, g.Exemplars[j].Timestamp)
		}
		require.Equal(t, w.Metadata.Type, g.Metadata.Type)
		require.Equal(t, w.Metadata.HelpRef, g.Metadata.HelpRef)
		require.Equal(t, w.Metadata.UnitRef, g.Metadata.UnitRef)
	}

	// Truncated input fails cleanly at every cut.
	for cut := 1; cut < len(raw)-2; cut++ {
		var r writev2.Request
		if err := unmarshalRequest(&r, raw[:cut]); err == nil {
			// A cut on a field boundary is a valid, shorter message.
			require.LessOrEqual(t, len(r.Timeseries), len(want.Timeseries))
		}
	}
}

func BenchmarkMetricsDecode(b *testing.B) {
	const n = 10000
	enc := NewMetricsEncoder(CompressionSnappy)
	for i := 0; i < n; i++ {
		enc.Append(&Sample{Labels: labels.FromStrings("__name__", "bench_metric", "job", "bench", "instance", "host:9100", "series", string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676%26))), T: int64(i), V: float64(i)})
	}
	buf, err := enc.Encode(nil)
	require.NoError(b, err)
	var dec MetricsDecoder
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := dec.Decode(EncodingPRW2Snappy, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/sample")
}

// Samples that carry a series reference take the remembered-series path; it
// must give the same labels across batches, through a hash collision and
// through a rebuild of the remembered state.
func TestMetricsEncoderSeriesRefs(t *testing.T) {
	enc := NewMetricsEncoder(CompressionSnappy)
	enc.SetMaxKeptSeries(3)
	var dec MetricsDecoder
	series := []labels.Labels{
		labels.FromStrings("__name__", "a", "job", "x"),
		labels.FromStrings("__name__", "b", "job", "x"),
		labels.FromStrings("__name__", "c", "job", "y"),
		labels.FromStrings("__name__", "d", "job", "y", "extra", "z"),
	}
	for batch := 0; batch < 6; batch++ {
		var want []labels.Labels
		for i, ls := range series {
			if (i+batch)%3 == 0 {
				continue // vary which series each batch holds
			}
			ref := uint64(i%2 + 1) // collisions: series 0 and 2, 1 and 3 share refs
			enc.Append(&Sample{Labels: ls, Ref: ref, T: int64(batch), V: float64(i)})
			want = append(want, ls)
		}
		buf, err := enc.Encode(nil)
		require.NoError(t, err)
		enc.Reset()
		req, err := dec.Decode(enc.Encoding(), buf)
		require.NoError(t, err)
		require.Equal(t, "", req.Symbols[0])
		got := decodeAll(t, req)
		require.Len(t, got, len(want))
		for i := range want {
			require.Equal(t, want[i], got[i].Labels, "batch %d series %d", batch, i)
		}
		// The batch's table holds only what the batch uses.
		used := map[string]bool{"": true}
		for _, ls := range want {
			ls.Range(func(l labels.Label) { used[l.Name], used[l.Value] = true, true })
		}
		require.Len(t, req.Symbols, len(used), "batch %d symbols %v", batch, req.Symbols)
	}
}

// A remembered series sends its metadata once, then only when it changes.
func TestMetadataSentOncePerSeries(t *testing.T) {
	enc := NewMetricsEncoder(CompressionSnappy)
	var dec MetricsDecoder
	ls := labels.FromStrings("__name__", "m_total")
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "h"}
	batch := func(md metadata.Metadata) writev2.Metadata {
		enc.Append(&Sample{Labels: ls, Ref: 7, T: 1, V: 1, Meta: md})
		buf, err := enc.Encode(nil)
		require.NoError(t, err)
		enc.Reset()
		req, err := dec.Decode(enc.Encoding(), buf)
		require.NoError(t, err)
		return req.Timeseries[0].Metadata
	}
	require.Equal(t, writev2.Metadata_METRIC_TYPE_COUNTER, batch(counter).Type)
	require.Equal(t, writev2.Metadata{}, batch(counter), "unchanged metadata is not repeated")
	gauge := metadata.Metadata{Type: model.MetricTypeGauge, Help: "h"}
	require.Equal(t, writev2.Metadata_METRIC_TYPE_GAUGE, batch(gauge).Type, "changed metadata is sent")
}

// What the encoder writes by hand must be what the generated code reads:
// any remote-write 2.0 receiver, not only our decoder, must take a batch.
func TestEncoderOutputReadByGeneratedCode(t *testing.T) {
	staleNaN := math.Float64frombits(0x7ff0000000000002)
	in := []Sample{
		{Labels: labels.FromStrings("__name__", "a"), T: 0, V: 0},
		{Labels: labels.FromStrings("__name__", "a"), T: -1, V: math.Copysign(0, -1), ST: -7},
		{Labels: labels.FromStrings("__name__", "b", "x", strings.Repeat("v", 300)), T: math.MaxInt64, V: staleNaN, ST: math.MinInt64},
		{Labels: labels.FromStrings("__name__", "c"), Ref: 42, T: 5, V: 1e300,
			Meta: metadata.Metadata{Type: model.MetricTypeSummary, Help: "h", Unit: "seconds"}},
		{Labels: labels.EmptyLabels(), T: 9, V: -1},
		{Labels: labels.FromStrings("__name__", "d"), T: 10, V: 2,
			Exemplars: []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "t"), Value: 2, Ts: 10, HasTs: true}}},
	}
	enc := NewMetricsEncoder(CompressionSnappy)
	for i := range in {
		enc.Append(&in[i])
	}
	req := generatedDecode(t, enc)
	require.Len(t, req.Timeseries, len(in))
	var b labels.ScratchBuilder
	for i, ts := range req.Timeseries {
		ls, err := ts.ToLabels(&b, req.Symbols)
		require.NoError(t, err)
		require.Equal(t, in[i].Labels, ls, "series %d", i)
		require.Len(t, ts.Samples, 1, "series %d", i)
		require.Equal(t, math.Float64bits(in[i].V), math.Float64bits(ts.Samples[0].Value), "series %d", i)
		require.Equal(t, in[i].T, ts.Samples[0].Timestamp, "series %d", i)
		require.Equal(t, in[i].ST, ts.Samples[0].StartTimestamp, "series %d", i)
		md, err := ts.ToMetadata(req.Symbols)
		require.NoError(t, err)
		if in[i].Meta.Type != "" {
			require.Equal(t, in[i].Meta, md)
		}
		require.Len(t, ts.Exemplars, len(in[i].Exemplars))
	}
}

// Series that stop coming (churn) are forgotten once most remembered series
// are gone, long before the kept-series bound.
func TestEncoderForgetsGoneSeries(t *testing.T) {
	enc := NewMetricsEncoder(CompressionSnappy)
	batch := func(prefix string, n int) {
		for i := range n {
			ls := labels.FromStrings("__name__", "m", "s", fmt.Sprint(prefix, i))
			enc.Append(&Sample{Labels: ls, Ref: ls.Hash() | 1, T: 1, V: 1})
		}
		_, err := enc.Encode(nil)
		require.NoError(t, err)
		enc.Reset()
	}
	batch("old", 3000)
	require.Equal(t, 3000, len(enc.series))
	// The old series' targets went away; 1500 new ones are scraped from
	// then on. Within goneAfter batches nothing is forgotten; the check
	// every goneAfter batches finds the old ones gone at the latest after
	// twice that.
	for range goneAfter - 2 {
		batch("new", 1500)
	}
	require.Equal(t, 4500, len(enc.series))
	for range goneAfter + 4 {
		batch("new", 1500)
	}
	require.Equal(t, 1500, len(enc.series), "the 3000 gone series are forgotten")
	for _, ss := range enc.series {
		require.Contains(t, ss.ls.Get("s"), "new")
	}
	// The live series stay remembered.
	for range 2 * goneAfter {
		batch("new", 1500)
	}
	require.Equal(t, 1500, len(enc.series))
}

// generatedDecode encodes enc's batch and reads it back with the generated
// code.
func generatedDecode(t *testing.T, enc *MetricsEncoder) writev2.Request {
	t.Helper()
	buf, err := enc.Encode(nil)
	require.NoError(t, err)
	raw, err := decompress(CompressionSnappy, nil, buf, DefaultMaxDecodedBytes)
	require.NoError(t, err)
	var req writev2.Request
	require.NoError(t, req.Unmarshal(raw))
	return req
}

// A family's metadata entry is a series holding only the family's name and
// the metadata, read as such by the generated code, and is not a sample.
func TestFamilyMetadataEntry(t *testing.T) {
	enc := NewMetricsEncoder(CompressionSnappy)
	enc.KeepLocal()
	s := Sample{Labels: labels.FromStrings("__name__", "req_total"), Ref: 7, T: 5, V: 1}
	enc.Append(&s)
	m := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests.", Unit: "requests"}
	enc.AppendFamilyMetadata("req_total", m)
	enc.AppendFamilyMetadata("up", metadata.Metadata{Type: model.MetricTypeGauge})
	require.Equal(t, 1, enc.Samples())
	require.Equal(t, 3, enc.Series())
	req := generatedDecode(t, enc)
	require.Len(t, req.Timeseries, 3)
	var b labels.ScratchBuilder
	for i, want := range []metadata.Metadata{m, {Type: model.MetricTypeGauge}} {
		ts := req.Timeseries[i+1]
		require.Empty(t, ts.Samples)
		require.Empty(t, ts.Histograms)
		ls, err := ts.ToLabels(&b, req.Symbols)
		require.NoError(t, err)
		require.Equal(t, 1, ls.Len())
		md, err := ts.ToMetadata(req.Symbols)
		require.NoError(t, err)
		require.Equal(t, want, md)
	}
	local := enc.TakeLocal()
	require.Len(t, local, 3)
	require.Nil(t, local[0].Rare)
	require.True(t, local[1].Rare.MetaOnly)
	require.Equal(t, m, local[1].Rare.Meta)
	require.Equal(t, "up", local[2].Labels.Get("__name__"))
}

// What KeepLocal hands over must be what a consumer decodes from the same
// batch: the same samples in the same order, metadata only where the batch
// carries it, and a negative zero's sign (also beside exemplars, which go
// through the generated marshaller).
func TestKeepLocalMatchesDecoded(t *testing.T) {
	enc := NewMetricsEncoder(CompressionSnappy)
	enc.KeepLocal()
	var dec MetricsDecoder
	for round := range 2 {
		in := testSamples()
		in = append(in, Sample{Labels: labels.FromStrings("__name__", "negzero"), T: 4000, V: math.Copysign(0, -1),
			Exemplars: []exemplar.Exemplar{{Labels: labels.FromStrings("trace_id", "def"), Value: 1, Ts: 3999, HasTs: true}}})
		for i := range in {
			in[i].Ref = in[i].Labels.Hash() | 1 // remembered series: metadata is sent once
			enc.Append(&in[i])
		}
		buf, err := enc.Encode(nil)
		require.NoError(t, err)
		local := enc.TakeLocal()
		enc.Reset()
		req, err := dec.Decode(enc.Encoding(), buf)
		require.NoError(t, err)
		got := decodeAll(t, req)
		require.Len(t, local, len(got))
		for i, l := range local {
			d := got[i]
			require.Equal(t, d.Labels, l.Labels)
			require.Equal(t, in[i].Ref, l.Ref)
			require.Equal(t, d.T, l.T)
			require.Equal(t, d.ST, l.ST)
			require.Equal(t, math.Float64bits(d.V), math.Float64bits(l.V), "sample %d", i)
			var rare LocalRare
			if l.Rare != nil {
				rare = *l.Rare
			}
			require.Equal(t, d.Meta, rare.Meta, "round %d sample %d", round, i)
			if d.H != nil {
				require.True(t, d.H.Equals(rare.H))
			} else {
				require.Nil(t, rare.H)
			}
			if d.FH != nil {
				require.True(t, d.FH.Equals(rare.FH))
			} else {
				require.Nil(t, rare.FH)
			}
			require.Len(t, rare.Exemplars, len(d.Exemplars))
			for j := range d.Exemplars {
				require.Equal(t, d.Exemplars[j].Labels, rare.Exemplars[j].Labels)
				require.Equal(t, d.Exemplars[j].Value, rare.Exemplars[j].Value)
				require.Equal(t, d.Exemplars[j].Ts, rare.Exemplars[j].Ts)
			}
		}
		require.Nil(t, enc.TakeLocal(), "a batch is handed over once")
	}
	// Reset drops a batch nobody took.
	enc.Append(&Sample{Labels: labels.FromStrings("__name__", "x"), T: 1})
	enc.Reset()
	enc.Append(&Sample{Labels: labels.FromStrings("__name__", "y"), T: 2})
	local := enc.TakeLocal()
	require.Len(t, local, 1)
	require.Equal(t, "y", local[0].Labels.Get("__name__"))
	// Without KeepLocal nothing is kept.
	plain := NewMetricsEncoder(CompressionSnappy)
	plain.Append(&Sample{Labels: labels.FromStrings("__name__", "x"), T: 1})
	require.Nil(t, plain.TakeLocal())
}
