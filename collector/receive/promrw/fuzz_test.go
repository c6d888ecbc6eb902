package promrw

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>; they were
// written by TestWriteFuzzSeeds (PHAROS_WRITE_FUZZ_SEEDS=1).

func seedV1() [][]byte {
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:    v1Labels("__name__", "up", "job", "a"),
				Samples:   []prompb.Sample{{Value: 1, Timestamp: now}, {Value: math.NaN(), Timestamp: now + 1}},
				Exemplars: []prompb.Exemplar{{Labels: v1Labels("trace_id", "x"), Value: 1, Timestamp: now}},
			},
			{
				Labels:     v1Labels("__name__", "h"),
				Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, testHistogram(1)), prompb.FromFloatHistogram(now, testHistogram(2).ToFloat(nil))},
			},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "up", Help: "h", Unit: "u"}},
	}
	b, _ := req.Marshal()
	return [][]byte{b, nil, {0x0a, 0x00}, {0x0a, 0x02, 0x0a, 0x00}, {0x1b, 0x08, 0x01, 0x1c}}
}

func seedV2() [][]byte {
	now := time.Now().UnixMilli()
	bld := newV2()
	ts := bld.series(labels.FromStrings("__name__", "up", "job", "a"), bld.meta(writev2.Metadata_METRIC_TYPE_GAUGE, "help", "unit"),
		writev2.Sample{Value: 1, Timestamp: now, StartTimestamp: now - 10})
	ts.Exemplars = []writev2.Exemplar{bld.exemplar(labels.FromStrings("trace_id", "x"), 1, now)}
	h := bld.series(labels.FromStrings("__name__", "h"), writev2.Metadata{})
	h.Histograms = []writev2.Histogram{writev2.FromIntHistogram(now-5, now, testHistogram(1)), writev2.FromFloatHistogram(0, now, testHistogram(2).ToFloat(nil))}
	b, _ := bld.build().Marshal()
	return [][]byte{b, nil, {0x22, 0x00, 0x2a, 0x04, 0x0a, 0x02, 0x00, 0x00}}
}

// FuzzDecodeV1 checks the 1.0 decoder against prompb's generated one:
// both accept the same inputs, and decode them to the same values.
func FuzzDecodeV1(f *testing.F) {
	for _, s := range seedV1() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r request
		err := r.decodeV1(data)
		var want prompb.WriteRequest
		wantErr := want.Unmarshal(data)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decoder disagrees with prompb: ours %v, prompb %v", err, wantErr)
		}
		if err != nil {
			return
		}
		// Twice into the same request: reuse must not change the result.
		r.reset()
		require.NoError(t, r.decodeV1(data))
		require.Len(t, r.series, len(want.Timeseries))
		for i, ws := range want.Timeseries {
			s := r.series[i]
			require.Len(t, r.labels[s.lo:s.hi], len(ws.Labels))
			for j, l := range ws.Labels {
				require.Equal(t, l.Name, r.labels[int(s.lo)+j].Name)
				require.Equal(t, l.Value, r.labels[int(s.lo)+j].Value)
			}
			require.Len(t, r.samples[s.sLo:s.sHi], len(ws.Samples))
			for j, smp := range ws.Samples {
				got := r.samples[int(s.sLo)+j]
				require.Equal(t, smp.Timestamp, got.t)
				require.Equal(t, math.Float64bits(smp.Value), math.Float64bits(got.v))
			}
			require.Len(t, r.exemplars[s.eLo:s.eHi], len(ws.Exemplars))
			for j, e := range ws.Exemplars {
				got := r.exemplars[int(s.eLo)+j]
				require.Equal(t, e.Timestamp, got.t)
				require.Equal(t, math.Float64bits(e.Value), math.Float64bits(got.v))
				require.Len(t, r.exLabels[got.lo:got.hi], len(e.Labels))
				for k, l := range e.Labels {
					require.Equal(t, l.Name, r.exLabels[int(got.lo)+k].Name)
					require.Equal(t, l.Value, r.exLabels[int(got.lo)+k].Value)
				}
			}
			require.Equal(t, len(ws.Histograms), int(s.hHi-s.hLo))
			for j, h := range ws.Histograms {
				require.Equal(t, h.String(), r.histsV1[int(s.hLo)+j].String())
			}
		}
		require.Len(t, r.metadata, len(want.Metadata))
		for i, m := range want.Metadata {
			got := r.metadata[i]
			require.Equal(t, m.MetricFamilyName, got.family)
			require.Equal(t, m.Help, got.meta.help)
			require.Equal(t, m.Unit, got.meta.unit)
			require.Equal(t, metricType(int32(m.Type)), got.meta.typ)
		}
	})
}

// FuzzDecodeV2 checks the 2.0 decoder against the generated one.
func FuzzDecodeV2(f *testing.F) {
	for _, s := range seedV2() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r request
		err := r.decodeV2(data)
		var want writev2.Request
		wantErr := want.Unmarshal(data)
		if err != nil && wantErr == nil && truncatedPackedRefs(data) {
			// gogo's generated code reads a packed varint past the end of its
			// field (into the next one) and so accepts this; ours refuses it.
			return
		}
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("decoder disagrees with writev2: ours %v, writev2 %v", err, wantErr)
		}
		if err != nil {
			return
		}
		r.reset()
		require.NoError(t, r.decodeV2(data))
		require.Equal(t, len(want.Symbols), len(r.symbols))
		for i, s := range want.Symbols {
			require.Equal(t, s, r.symbols[i])
		}
		require.Len(t, r.series, len(want.Timeseries))
		for i, ws := range want.Timeseries {
			s := r.series[i]
			require.Equal(t, fmt.Sprint(ws.LabelsRefs), fmt.Sprint(r.refs[s.lo:s.hi]))
			require.Len(t, r.samples[s.sLo:s.sHi], len(ws.Samples))
			for j, smp := range ws.Samples {
				got := r.samples[int(s.sLo)+j]
				require.Equal(t, smp.Timestamp, got.t)
				require.Equal(t, smp.StartTimestamp, got.st)
				require.Equal(t, math.Float64bits(smp.Value), math.Float64bits(got.v))
			}
			require.Len(t, r.exemplars[s.eLo:s.eHi], len(ws.Exemplars))
			for j, e := range ws.Exemplars {
				got := r.exemplars[int(s.eLo)+j]
				require.Equal(t, e.Timestamp, got.t)
				require.Equal(t, math.Float64bits(e.Value), math.Float64bits(got.v))
				require.Equal(t, fmt.Sprint(e.LabelsRefs), fmt.Sprint(r.exRefs[got.lo:got.hi]))
			}
			require.Equal(t, len(ws.Histograms), int(s.hHi-s.hLo))
			for j, h := range ws.Histograms {
				got := r.histsV2[int(s.hLo)+j]
				h.XXX_unrecognized, got.XXX_unrecognized = nil, nil
				require.Equal(t, h.String(), got.String())
			}
			if s.meta.set {
				require.Equal(t, metricType(int32(ws.Metadata.Type)), s.meta.typ)
			} else {
				require.Zero(t, ws.Metadata.Type)
			}
			require.Equal(t, ws.Metadata.HelpRef, s.meta.helpRef)
			require.Equal(t, ws.Metadata.UnitRef, s.meta.unitRef)
		}
	})
}

// FuzzHandler sends any body through the whole handler: it must answer
// with a status the spec allows for the sender's data, never panic, and
// keep only what it says it wrote.
func FuzzHandler(f *testing.F) {
	for _, s := range seedV1() {
		f.Add(s, false, false)
	}
	for _, s := range seedV2() {
		f.Add(s, true, false)
		f.Add(snappy.Encode(nil, s), true, true)
	}
	cfg, lim := defaults()
	cfg.MaxDecompressedBytes = 1 << 20
	rec := &receivetest.Recorder{}
	in, err := receive.New(cfg, lim, rec, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(f, err)
	h := NewHandler(in, slog.New(slog.DiscardHandler))
	f.Fuzz(func(t *testing.T, data []byte, v2, raw bool) {
		body := data
		if !raw {
			body = snappy.Encode(nil, data)
		}
		req := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctV1)
		if v2 {
			req.Header.Set("Content-Type", ctV2)
		}
		req.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if v2 {
			_, err := strconv.Atoi(w.Header().Get(headerSamplesWritten))
			require.NoError(t, err)
		}
	})
}

// truncatedPackedRefs reports whether a request holds a packed labels_refs
// field (TimeSeries 1, or Exemplar 1 within TimeSeries 3) whose bytes do not
// end on a whole varint: malformed, though writev2's generated decoder
// accepts it.
func truncatedPackedRefs(req []byte) bool {
	return anyField(req, 5, func(ts []byte) bool {
		return !wholeVarints(ts, 1) || anyField(ts, 3, func(ex []byte) bool { return !wholeVarints(ex, 1) })
	})
}

// anyField applies fn to the content of every length-delimited field num of
// msg (as far as msg parses) and reports whether fn held for one.
func anyField(msg []byte, num protowire.Number, fn func([]byte) bool) bool {
	for len(msg) > 0 {
		n, typ, l := protowire.ConsumeTag(msg)
		if l < 0 {
			return false
		}
		msg = msg[l:]
		if typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(msg)
			if l < 0 {
				return false
			}
			if n == num && fn(v) {
				return true
			}
			msg = msg[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, msg)
		if l < 0 {
			return false
		}
		msg = msg[l:]
	}
	return false
}

// wholeVarints reports whether every packed field num of msg is a sequence
// of complete varints.
func wholeVarints(msg []byte, num protowire.Number) bool {
	return !anyField(msg, num, func(packed []byte) bool {
		for len(packed) > 0 {
			_, l := protowire.ConsumeVarint(packed)
			if l < 0 {
				return true
			}
			packed = packed[l:]
		}
		return false
	})
}
