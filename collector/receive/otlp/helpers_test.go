package otlp

import (
	"context"
	"flag"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// defaults returns the configurations as their flags default them, with
// the listeners on free loopback ports.
func defaults() (Config, receive.Config, receive.Limits) {
	fs := flag.NewFlagSet("test", flag.PanicOnError)
	var c Config
	var rc receive.Config
	var l receive.Limits
	c.RegisterFlags(fs)
	rc.RegisterFlags(fs)
	l.RegisterFlags(fs)
	c.GRPC.ListenAddress = "127.0.0.1:0"
	c.HTTP.ListenAddress = "127.0.0.1:0"
	return c, rc, l
}

type env struct {
	rec  *receivetest.Recorder
	reg  *prometheus.Registry
	in   *receive.Intake
	r    *Receiver
	grpc pmetricotlp.GRPCClient
	url  string // OTLP/HTTP base URL
}

// newEnv starts a Receiver on real loopback listeners writing into a
// Recorder, and connects a gRPC client to it.
func newEnv(t *testing.T, adjust func(*Config, *receive.Config, *receive.Limits)) *env {
	t.Helper()
	cfg, rc, lim := defaults()
	if adjust != nil {
		adjust(&cfg, &rc, &lim)
	}
	e := &env{rec: &receivetest.Recorder{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.DiscardHandler)
	in, err := receive.New(rc, lim, e.rec, logger, e.reg)
	require.NoError(t, err)
	e.in = in
	e.r, err = New(cfg, in, logger)
	require.NoError(t, err)
	if cc := run(t, e.r); cc != nil {
		e.grpc = pmetricotlp.NewGRPCClient(cc)
	}
	e.url = "http://" + e.r.HTTPAddr()
	return e
}

// run starts r, stops it when the test ends, and returns a client
// connection to its gRPC listener (nil when it has none).
func run(t *testing.T, r *Receiver) *grpc.ClientConn {
	t.Helper()
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), r))
	t.Cleanup(func() {
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), r))
	})
	a := r.GRPCAddr()
	if a == "" {
		return nil
	}
	cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

type response struct {
	code   int
	body   []byte
	header http.Header
}

// post sends an OTLP/HTTP metrics body to the receiver at url.
func post(t *testing.T, url string, body []byte, contentType, encoding string) response {
	t.Helper()
	return postTo(t, url+MetricsPath, body, "Content-Type", contentType, "Content-Encoding", encoding)
}

// postTo sends body with the headers in hdr, name, value pairs; an empty
// value leaves its header out.
func postTo(t *testing.T, url string, body []byte, hdr ...string) response {
	t.Helper()
	code, b, h := receivetest.Post(t, http.DefaultClient, url, body, hdr...)
	return response{code: code, body: b, header: h}
}

// otlpRequest is an OTLP export request of any signal.
type otlpRequest interface {
	MarshalProto() ([]byte, error)
	MarshalJSON() ([]byte, error)
}

func protoOf(t testing.TB, r otlpRequest) []byte {
	t.Helper()
	b, err := r.MarshalProto()
	require.NoError(t, err)
	return b
}

func jsonOf(t testing.TB, r otlpRequest) []byte {
	t.Helper()
	b, err := r.MarshalJSON()
	require.NoError(t, err)
	return b
}

// seedsOf returns the requests in protobuf and in JSON, as fuzz seeds.
func seedsOf(t testing.TB, reqs ...otlpRequest) (proto, json [][]byte) {
	t.Helper()
	for _, r := range reqs {
		proto = append(proto, protoOf(t, r))
		json = append(json, jsonOf(t, r))
	}
	return proto, json
}

func marshalProto(t *testing.T, md pmetric.Metrics) []byte {
	return protoOf(t, pmetricotlp.NewExportRequestFromMetrics(md))
}

func marshalJSON(t *testing.T, md pmetric.Metrics) []byte {
	return jsonOf(t, pmetricotlp.NewExportRequestFromMetrics(md))
}

// otlpResponse is an OTLP export response of any signal.
type otlpResponse interface {
	UnmarshalProto([]byte) error
	UnmarshalJSON([]byte) error
}

// decodeInto checks a 200 answer in contentType and decodes it into resp.
func decodeInto[R otlpResponse](t *testing.T, r response, contentType string, resp R) R {
	t.Helper()
	require.Equal(t, http.StatusOK, r.code, string(r.body))
	require.Equal(t, contentType, r.header.Get("Content-Type"))
	if contentType == contentTypeJSON {
		require.NoError(t, resp.UnmarshalJSON(r.body))
	} else {
		require.NoError(t, resp.UnmarshalProto(r.body))
	}
	return resp
}

// decodeResponse decodes a 200 answer to a metrics export.
func decodeResponse(t *testing.T, r response, contentType string) pmetricotlp.ExportResponse {
	t.Helper()
	return decodeInto(t, r, contentType, pmetricotlp.NewExportResponse())
}

// decodeStatus decodes an error answer's google.rpc.Status.
func decodeStatus(t *testing.T, r response, contentType string) *spb.Status {
	t.Helper()
	require.Equal(t, contentType, r.header.Get("Content-Type"))
	st := &spb.Status{}
	if contentType == contentTypeJSON {
		require.NoError(t, protojson.Unmarshal(r.body, st))
	} else {
		require.NoError(t, proto.Unmarshal(r.body, st))
	}
	return st
}

func ts(t time.Time) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t) }

// testMetrics is one resource (service "checkout", instance "i-1", host
// "h1") with a histogram, a counter, a gauge, an exponential histogram and
// a summary, each with one data point at now.
func testMetrics(now time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	ra := rm.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutStr("service.instance.id", "i-1")
	ra.PutStr("host.name", "h1")
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("test")
	start := now.Add(-time.Minute)

	m := sm.Metrics().AppendEmpty()
	m.SetName("http.server.duration")
	m.SetUnit("ms")
	m.SetDescription("Duration of HTTP server requests.")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := h.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(ts(start))
	hp.SetTimestamp(ts(now))
	hp.Attributes().PutStr("http.method", "GET")
	hp.ExplicitBounds().FromRaw([]float64{5, 10})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 3})
	hp.SetCount(6)
	hp.SetSum(42)
	ex := hp.Exemplars().AppendEmpty()
	ex.SetTimestamp(ts(now))
	ex.SetDoubleValue(7)
	ex.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})

	m = sm.Metrics().AppendEmpty()
	m.SetName("requests")
	m.SetUnit("1")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	sp := s.DataPoints().AppendEmpty()
	sp.SetStartTimestamp(ts(start))
	sp.SetTimestamp(ts(now))
	sp.SetIntValue(17)

	m = sm.Metrics().AppendEmpty()
	m.SetName("memory.usage")
	m.SetUnit("By")
	gp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	gp.SetTimestamp(ts(now))
	gp.SetDoubleValue(1024)

	m = sm.Metrics().AppendEmpty()
	m.SetName("rpc.latency")
	m.SetUnit("s")
	eh := m.SetEmptyExponentialHistogram()
	eh.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	ep := eh.DataPoints().AppendEmpty()
	ep.SetStartTimestamp(ts(start))
	ep.SetTimestamp(ts(now))
	ep.SetScale(2)
	ep.SetCount(5)
	ep.SetSum(3.5)
	ep.SetZeroCount(1)
	ep.Positive().SetOffset(0)
	ep.Positive().BucketCounts().FromRaw([]uint64{2, 2})

	m = sm.Metrics().AppendEmpty()
	m.SetName("db.query.time")
	m.SetUnit("s")
	sum := m.SetEmptySummary().DataPoints().AppendEmpty()
	sum.SetTimestamp(ts(now))
	sum.SetCount(4)
	sum.SetSum(2)
	q := sum.QuantileValues().AppendEmpty()
	q.SetQuantile(0.5)
	q.SetValue(0.4)
	return md
}

// expectedNames are testMetrics' series names under the default
// translation strategy (UnderscoreEscapingWithSuffixes).
var expectedNames = []string{
	"db_query_time_seconds", "db_query_time_seconds_count", "db_query_time_seconds_sum",
	"http_server_duration_milliseconds_bucket", "http_server_duration_milliseconds_count", "http_server_duration_milliseconds_sum",
	"memory_usage_bytes", "requests_total", "rpc_latency_seconds", "target_info",
}

// gauge adds a gauge with one data point and the given attributes.
func gauge(md pmetric.Metrics, name string, t time.Time, attrs map[string]string) {
	sm := md.ResourceMetrics().At(0).ScopeMetrics().At(0)
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	p := m.SetEmptyGauge().DataPoints().AppendEmpty()
	p.SetTimestamp(ts(t))
	p.SetDoubleValue(1)
	for k, v := range attrs {
		p.Attributes().PutStr(k, v)
	}
}

func oneResource() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "svc")
	rm.ScopeMetrics().AppendEmpty()
	return md
}

func has(msg string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			return false
		}
	}
	return true
}
