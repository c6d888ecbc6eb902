package promrw

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// benchSeries is a typical scrape's worth of series: 2,000, each with a
// name, job, instance and five more labels, one sample each, metadata.
func benchSeries(i int) labels.Labels {
	return labels.FromStrings(
		"__name__", fmt.Sprintf("http_requests_total_%d", i%50),
		"job", "checkout",
		"instance", "10.0.0.12:8080",
		"method", []string{"GET", "POST", "PUT"}[i%3],
		"code", []string{"200", "404", "500"}[i%3],
		"handler", fmt.Sprintf("/api/v1/items/%d", i),
		"region", "eu-west-1",
		"pod", "checkout-7d9f8b6c5-x2x4z",
	)
}

const benchN = 2000

func benchBodyV1(b testing.TB) []byte {
	now := time.Now().UnixMilli()
	req := &prompb.WriteRequest{}
	for i := range benchN {
		ls := benchSeries(i)
		var pl []prompb.Label
		ls.Range(func(l labels.Label) { pl = append(pl, prompb.Label{Name: l.Name, Value: l.Value}) })
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: pl, Samples: []prompb.Sample{{Value: float64(i), Timestamp: now}}})
	}
	raw, err := req.Marshal()
	require.NoError(b, err)
	return snappy.Encode(nil, raw)
}

func benchBodyV2(b testing.TB) []byte {
	now := time.Now().UnixMilli()
	bld := newV2()
	for i := range benchN {
		bld.series(benchSeries(i), bld.meta(writev2.Metadata_METRIC_TYPE_COUNTER, "Requests served.", ""),
			writev2.Sample{Value: float64(i), Timestamp: now, StartTimestamp: now - 3_600_000})
	}
	raw, err := bld.build().Marshal()
	require.NoError(b, err)
	return snappy.Encode(nil, raw)
}

func benchHandler(b *testing.B, body []byte, contentType string) {
	b.Helper()
	cfg, lim := defaults()
	in, err := receive.New(cfg, lim, receivetest.Discard{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(b, err)
	h := NewHandler(in, slog.New(slog.DiscardHandler))
	rd := bytes.NewReader(body)
	req, err := http.NewRequest(http.MethodPost, Path, rd)
	require.NoError(b, err)
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Content-Encoding", "snappy")
	w := &receivetest.DiscardWriter{}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rd.Reset(body)
		req.Body = io.NopCloser(rd)
		clear(w.H)
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			b.Fatalf("status %d", w.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchN, "ns/series")
}

// BenchmarkHandlerV1 is a 2,000-series remote write 1.0 request through
// the handler (snappy, decode, validation) into a no-op appendable.
func BenchmarkHandlerV1(b *testing.B) { benchHandler(b, benchBodyV1(b), ctV1) }

// BenchmarkHandlerV2 is the same request in remote write 2.0.
func BenchmarkHandlerV2(b *testing.B) { benchHandler(b, benchBodyV2(b), ctV2) }

// BenchmarkDecodeV1 is the decoder alone, for comparison with the
// generated gogo decoder (BenchmarkDecodeV1Gogo).
func BenchmarkDecodeV1(b *testing.B) {
	raw, err := snappy.Decode(nil, benchBodyV1(b))
	require.NoError(b, err)
	var r request
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		r.reset()
		if err := r.decodeV1(raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeV1Gogo is prompb's generated decoder on the same body.
func BenchmarkDecodeV1Gogo(b *testing.B) {
	raw, err := snappy.Decode(nil, benchBodyV1(b))
	require.NoError(b, err)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeV2(b *testing.B) {
	raw, err := snappy.Decode(nil, benchBodyV2(b))
	require.NoError(b, err)
	var r request
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		r.reset()
		if err := r.decodeV2(raw); err != nil {
			b.Fatal(err)
		}
	}
}
