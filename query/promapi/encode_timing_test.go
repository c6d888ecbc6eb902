package promapi

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// benchMatrix is a realistic range-query result: nSeries node_exporter-like series of
// nPoints 15s-spaced samples with non-trivial values.
func benchMatrix(nSeries, nPoints int) promql.Matrix {
	m := make(promql.Matrix, nSeries)
	for i := range m {
		m[i].Metric = labels.FromStrings(
			"__name__", "node_cpu_seconds_total",
			"cpu", strconv.Itoa(i%64),
			"instance", fmt.Sprintf("node-%03d.example.com:9100", i/8),
			"job", "node",
			"mode", []string{"idle", "user", "system", "iowait"}[i%4],
		)
		m[i].Floats = make([]promql.FPoint, nPoints)
		for j := range m[i].Floats {
			m[i].Floats[j] = promql.FPoint{T: t0 + int64(j)*15_000 + int64(j%7), F: float64(i*nPoints+j) * 1.37}
		}
	}
	return m
}

// discardResponse is an http.ResponseWriter that throws the body away.
type discardResponse struct{ h http.Header }

func (d *discardResponse) Header() http.Header         { return d.h }
func (d *discardResponse) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardResponse) WriteHeader(int)             {}

// BenchmarkEncodeMatrix encodes a 100-series × 1,000-point /query_range response the way
// the handler does (pooled buffer, streamed in chunks).
func BenchmarkEncodeMatrix(b *testing.B) {
	m := benchMatrix(100, 1000)
	a := &API{logger: slog.New(slog.DiscardHandler)}
	res := result{data: &queryData{value: m}}
	w := &discardResponse{h: http.Header{}}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range", nil)

	size := len(encodeData(b, res.data))
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h) // A real server hands each response fresh headers.
		a.writeSuccess(w, req, res)
	}
}

// BenchmarkEncodeMatrixValues compares value shapes: whole numbers (counters, byte
// gauges such as up), few decimals (load averages, temperatures) and arbitrary floats
// (rate() results), which only strconv formats.
func BenchmarkEncodeMatrixValues(b *testing.B) {
	for _, shape := range []struct {
		name  string
		value func(i, j int) float64
	}{
		{"integers", func(i, j int) float64 { return float64(i*1000 + j) }},
		{"decimals", func(i, j int) float64 { return float64(i*1000+j) / 100 }},
		{"arbitrary", func(i, j int) float64 { return float64(i*1000+j) / 3 }},
	} {
		b.Run(shape.name, func(b *testing.B) {
			m := benchMatrix(100, 1000)
			for i := range m {
				for j := range m[i].Floats {
					m[i].Floats[j].F = shape.value(i, j)
				}
			}
			a := &API{logger: slog.New(slog.DiscardHandler)}
			res := result{data: &queryData{value: m}}
			w := &discardResponse{h: http.Header{}}
			req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range", nil)

			b.SetBytes(int64(len(encodeData(b, res.data))))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(w.h)
				a.writeSuccess(w, req, res)
			}
		})
	}
}

// BenchmarkEncodeMatrixGzip is the same response for a client that accepts gzip.
func BenchmarkEncodeMatrixGzip(b *testing.B) {
	m := benchMatrix(100, 1000)
	a := &API{logger: slog.New(slog.DiscardHandler)}
	res := result{data: &queryData{value: m}}
	w := &discardResponse{h: http.Header{}}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query_range", nil)
	req.Header.Set("Accept-Encoding", "gzip")

	b.SetBytes(int64(len(encodeData(b, res.data))))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h) // A real server hands each response fresh headers.
		a.writeSuccess(w, req, res)
	}
}

// BenchmarkEncodeMatrixPrometheusCodec is the baseline: the same matrix through
// Prometheus's encoding primitives (jsoniter + util/jsonutil), into one buffer.
func BenchmarkEncodeMatrixPrometheusCodec(b *testing.B) {
	m := benchMatrix(100, 1000)
	b.SetBytes(int64(len(refMatrix(m))))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		s := refJSON.BorrowStream(io.Discard)
		s.WriteArrayStart()
		for i, ser := range m {
			if i > 0 {
				s.WriteMore()
			}
			refSeries(ser, s)
		}
		s.WriteArrayEnd()
		_ = s.Flush()
		refJSON.ReturnStream(s)
	}
}

// BenchmarkEncodeVector encodes a 10,000-sample instant-query result.
func BenchmarkEncodeVector(b *testing.B) {
	m := benchMatrix(10_000, 1)
	v := make(promql.Vector, len(m))
	for i, s := range m {
		v[i] = promql.Sample{Metric: s.Metric, T: s.Floats[0].T, F: s.Floats[0].F}
	}
	a := &API{logger: slog.New(slog.DiscardHandler)}
	res := result{data: &queryData{value: v}}
	w := &discardResponse{h: http.Header{}}
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)

	b.SetBytes(int64(len(encodeData(b, res.data))))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h) // A real server hands each response fresh headers.
		a.writeSuccess(w, req, res)
	}
}

// benchServer serves an API over a TSDB holding nSeries series of nPoints samples.
func benchServer(b *testing.B, nSeries, nPoints int) (*httptest.Server, *http.Client) {
	b.Helper()
	store := teststorage.New(b)
	m := benchMatrix(nSeries, nPoints)
	app := store.Appender(context.Background())
	for _, s := range m {
		for _, p := range s.Floats {
			_, err := app.Append(0, s.Metric, p.T, p.F)
			require.NoError(b, err)
		}
	}
	require.NoError(b, app.Commit())
	api, err := New(Config{Timeout: time.Minute}, store, store, newEngine(), nil, BuildInfo{}, slog.New(slog.DiscardHandler), nil)
	require.NoError(b, err)
	srv := httptest.NewServer(api.Handler())
	transport := &http.Transport{}
	b.Cleanup(func() {
		transport.CloseIdleConnections()
		srv.Close()
	})
	return srv, &http.Client{Transport: transport}
}

func benchGet(b *testing.B, client *http.Client, u string) {
	resp, err := client.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkInstantQuery is an instant query end to end: HTTP request, form parsing, PromQL
// over the TSDB, encoding, HTTP response.
func BenchmarkInstantQuery(b *testing.B) {
	srv, client := benchServer(b, 1000, 20)
	for _, q := range []string{`node_cpu_seconds_total{cpu="1"}`, `node_cpu_seconds_total`, `sum by (mode) (rate(node_cpu_seconds_total[5m]))`} {
		u := srv.URL + "/api/v1/query?" + url.Values{"query": {q}, "time": {sec(t0 + 19*15_000)}}.Encode()
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchGet(b, client, u)
			}
		})
	}
}

// BenchmarkRangeQuery is a 100-series × 240-point range query end to end.
func BenchmarkRangeQuery(b *testing.B) {
	srv, client := benchServer(b, 100, 240)
	u := srv.URL + "/api/v1/query_range?" + url.Values{
		"query": {"node_cpu_seconds_total"},
		"start": {sec(t0)},
		"end":   {sec(t0 + 239*15_000)},
		"step":  {"15"},
	}.Encode()
	b.ReportAllocs()
	for b.Loop() {
		benchGet(b, client, u)
	}
}
