package promrw

import (
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// defaults returns the configurations as their flags default them.
func defaults() (receive.Config, receive.Limits) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	var c receive.Config
	var l receive.Limits
	c.RegisterFlags(fs)
	l.RegisterFlags(fs)
	return c, l
}

type env struct {
	srv *httptest.Server
	rec *receivetest.Recorder
	reg *prometheus.Registry
	in  *receive.Intake
	h   *Handler
}

// newEnv serves a Handler over real HTTP into a Recorder; adjust, when
// given, changes the defaults first.
func newEnv(t *testing.T, adjust func(*receive.Config, *receive.Limits)) *env {
	t.Helper()
	cfg, lim := defaults()
	if adjust != nil {
		adjust(&cfg, &lim)
	}
	e := &env{rec: &receivetest.Recorder{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.DiscardHandler)
	in, err := receive.New(cfg, lim, e.rec, logger, e.reg)
	require.NoError(t, err)
	e.in = in
	e.h = NewHandler(in, logger)
	mux := http.NewServeMux()
	e.h.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

type response struct {
	code   int
	body   string
	header http.Header
}

// post sends a raw body with the given headers; an empty one is left out.
func (e *env) post(t *testing.T, body []byte, contentType, encoding string) response {
	t.Helper()
	code, b, h := receivetest.Post(t, e.srv.Client(), e.srv.URL+Path, body, "Content-Type", contentType, "Content-Encoding", encoding)
	return response{code: code, body: string(b), header: h}
}

const (
	ctV1 = "application/x-protobuf"
	ctV2 = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
)

func (e *env) sendV1(t *testing.T, req *prompb.WriteRequest) response {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return e.post(t, snappy.Encode(nil, b), ctV1, "snappy")
}

func (e *env) sendV2(t *testing.T, req *writev2.Request) response {
	t.Helper()
	b, err := req.Marshal()
	require.NoError(t, err)
	return e.post(t, snappy.Encode(nil, b), ctV2, "snappy")
}

// metric returns the value of the counter or gauge name whose labels
// include the given pairs (0 when there is none).
func (e *env) metric(t *testing.T, name string, kv ...string) float64 {
	t.Helper()
	return receivetest.Metric(t, e.reg, name, kv...)
}

func nowMs() int64 { return time.Now().UnixMilli() }

func v1Labels(kv ...string) []prompb.Label {
	var out []prompb.Label
	for i := 0; i < len(kv); i += 2 {
		out = append(out, prompb.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// v2Builder builds 2.0 requests with a symbols table.
type v2Builder struct {
	st  writev2.SymbolsTable
	req writev2.Request
}

func newV2() *v2Builder { return &v2Builder{st: writev2.NewSymbolTable()} }

func (b *v2Builder) series(ls labels.Labels, meta writev2.Metadata, samples ...writev2.Sample) *writev2.TimeSeries {
	b.req.Timeseries = append(b.req.Timeseries, writev2.TimeSeries{
		LabelsRefs: b.st.SymbolizeLabels(ls, nil),
		Samples:    samples,
		Metadata:   meta,
	})
	return &b.req.Timeseries[len(b.req.Timeseries)-1]
}

func (b *v2Builder) meta(typ writev2.Metadata_MetricType, help, unit string) writev2.Metadata {
	return writev2.Metadata{Type: typ, HelpRef: b.st.Symbolize(help), UnitRef: b.st.Symbolize(unit)}
}

func (b *v2Builder) exemplar(ls labels.Labels, v float64, ts int64) writev2.Exemplar {
	return writev2.Exemplar{LabelsRefs: b.st.SymbolizeLabels(ls, nil), Value: v, Timestamp: ts}
}

func (b *v2Builder) build() *writev2.Request {
	b.req.Symbols = b.st.Symbols()
	return &b.req
}

func testHistogram(i int) *histogram.Histogram {
	return &histogram.Histogram{
		Count:         uint64(8*i + 12), // the buckets plus the zero bucket
		ZeroCount:     2,
		ZeroThreshold: 0.001,
		Sum:           18.4 * float64(i+1),
		Schema:        1,
		PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		PositiveBuckets: []int64{
			int64(i + 1), 1, -1, 0,
		},
		NegativeSpans:   []histogram.Span{{Offset: 0, Length: 2}, {Offset: 1, Length: 2}},
		NegativeBuckets: []int64{int64(i + 1), 1, -1, 0},
	}
}
