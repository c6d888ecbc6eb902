package otlp

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/status"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

func checkTestMetrics(t *testing.T, rec *receivetest.Recorder, now time.Time) {
	t.Helper()
	require.Equal(t, expectedNames, rec.Names())

	buckets := rec.Series("http_server_duration_milliseconds_bucket")
	require.Len(t, buckets, 3)
	for _, b := range buckets {
		require.Equal(t, "checkout", b.Labels.Get("job"))
		require.Equal(t, "i-1", b.Labels.Get("instance"))
		require.Equal(t, "GET", b.Labels.Get("http_method"))
		require.Equal(t, now.UnixMilli(), b.T)
		require.Equal(t, now.Add(-time.Minute).UnixMilli(), b.ST)
		require.Equal(t, model.MetricTypeHistogram, b.Meta.Type)
		require.Equal(t, "Duration of HTTP server requests.", b.Meta.Help)
	}
	require.Equal(t, []string{"5", "10", "+Inf"}, []string{buckets[0].Labels.Get("le"), buckets[1].Labels.Get("le"), buckets[2].Labels.Get("le")})
	require.Equal(t, []float64{1, 3, 6}, []float64{buckets[0].V, buckets[1].V, buckets[2].V})
	var exemplars int
	for _, b := range buckets {
		exemplars += len(b.Exemplars)
	}
	require.Equal(t, 1, exemplars, "the exemplar rides on its bucket")

	cnt := rec.Series("requests_total")
	require.Len(t, cnt, 1)
	require.InDelta(t, 17, cnt[0].V, 0)
	require.Equal(t, model.MetricTypeCounter, cnt[0].Meta.Type)

	eh := rec.Series("rpc_latency_seconds")
	require.Len(t, eh, 1)
	require.NotNil(t, eh[0].H, "exponential histograms become native histograms")
	require.EqualValues(t, 5, eh[0].H.Count)

	ti := rec.Series("target_info")
	require.NotEmpty(t, ti)
	require.Equal(t, labels.FromStrings("__name__", "target_info", "host_name", "h1", "instance", "i-1", "job", "checkout"), ti[0].Labels)
}

func TestHTTPProtobufAndJSON(t *testing.T) {
	for _, ct := range []string{contentTypeProtobuf, contentTypeJSON} {
		t.Run(ct, func(t *testing.T) {
			e := newEnv(t, nil)
			now := time.Now().Truncate(time.Millisecond)
			md := testMetrics(now)
			body := marshalProto(t, md)
			if ct == contentTypeJSON {
				body = marshalJSON(t, md)
			}
			resp := decodeResponse(t, post(t, e.url, body, ct, ""), ct)
			require.Zero(t, resp.PartialSuccess().RejectedDataPoints())
			require.Empty(t, resp.PartialSuccess().ErrorMessage())
			checkTestMetrics(t, e.rec, now)
		})
	}
}

// A hand-written OTLP/JSON body, as a non-Go exporter or curl sends it.
func TestHTTPJSONHandWritten(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().UnixNano()
	body := `{"resourceMetrics":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"curl"}}]},
	  "scopeMetrics":[{"metrics":[{"name":"queue.depth","unit":"{item}","gauge":{"dataPoints":[
	    {"timeUnixNano":"` + strconv.FormatInt(now, 10) + `","asInt":"3","attributes":[{"key":"queue","value":{"stringValue":"a"}}]}]}}]}]}]}`
	resp := decodeResponse(t, post(t, e.url, []byte(body), "application/json; charset=utf-8", ""), contentTypeJSON)
	require.Zero(t, resp.PartialSuccess().RejectedDataPoints())
	s := e.rec.Series("queue_depth")
	require.Len(t, s, 1)
	require.Equal(t, labels.FromStrings("__name__", "queue_depth", "job", "curl", "queue", "a"), s[0].Labels)
}

func TestGRPC(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().Truncate(time.Millisecond)
	ctx := context.Background()
	resp, err := e.grpc.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(testMetrics(now)))
	require.NoError(t, err)
	require.Zero(t, resp.PartialSuccess().RejectedDataPoints())
	checkTestMetrics(t, e.rec, now)

	// gzip-compressed messages are taken too.
	md := oneResource()
	gauge(md, "compressed.gauge", now, nil)
	_, err = e.grpc.Export(ctx, pmetricotlp.NewExportRequestFromMetrics(md), grpc.UseCompressor(grpcgzip.Name))
	require.NoError(t, err)
	require.Len(t, e.rec.Series("compressed_gauge"), 1)
}

func TestGRPCMessageTooLarge(t *testing.T) {
	e := newEnv(t, func(_ *Config, rc *receive.Config, _ *receive.Limits) { rc.MaxDecompressedBytes = 4096 })
	md := oneResource()
	gauge(md, "big", time.Now(), map[string]string{"pad": strings.Repeat("p", 8000)})
	_, err := e.grpc.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	require.Empty(t, e.rec.Samples())

	// Compressed small but inflating past the limit: refused as well.
	_, err = e.grpc.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md), grpc.UseCompressor(grpcgzip.Name))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	require.Empty(t, e.rec.Samples())
}

func TestHTTPCompression(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now().Truncate(time.Millisecond)
	body := marshalProto(t, testMetrics(now))
	decodeResponse(t, post(t, e.url, receivetest.Gzip(t, body), contentTypeProtobuf, "gzip"), contentTypeProtobuf)
	decodeResponse(t, post(t, e.url, receivetest.Zstd(t, body), contentTypeProtobuf, "zstd"), contentTypeProtobuf)
	require.Len(t, e.rec.Series("requests_total"), 2)

	r := post(t, e.url, body, contentTypeProtobuf, "snappy")
	require.Equal(t, http.StatusUnsupportedMediaType, r.code)
	r = post(t, e.url, body, contentTypeProtobuf, "br")
	require.Equal(t, http.StatusUnsupportedMediaType, r.code)
	require.Equal(t, int32(codes.InvalidArgument), decodeStatus(t, r, contentTypeProtobuf).GetCode())
}

// Decompression bombs: a few hundred KiB that inflate to a GiB are cut off
// at the limit (64 MiB), with 413, and the memory taken stays far below
// what they inflate to.
func TestHTTPBombs(t *testing.T) {
	e := newEnv(t, nil)
	const inflated = 1 << 30
	zeros := make([]byte, 1<<20)

	// gzip: 1024 members of 1 MiB of zeros each (a reader must read them
	// all as one stream).
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(zeros)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	gz := bytes.Repeat(member.Bytes(), inflated/len(zeros))

	// zstd: one frame that does not declare its size, streamed.
	var zs bytes.Buffer
	enc, err := zstd.NewWriter(&zs, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	require.NoError(t, err)
	for range inflated / len(zeros) {
		_, err = enc.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, enc.Close())
	// zstd: frames that do declare their size, concatenated.
	frame := receivetest.Zstd(t, zeros)
	zsFrames := bytes.Repeat(frame, inflated/len(zeros))

	for name, c := range map[string]struct {
		body []byte
		enc  string
	}{"gzip members": {gz, "gzip"}, "zstd stream": {zs.Bytes(), "zstd"}, "zstd frames": {zsFrames, "zstd"}} {
		t.Run(name, func(t *testing.T) {
			require.Less(t, len(c.body), 10<<20, "the bomb fits the wire limit")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r := post(t, e.url, c.body, contentTypeProtobuf, c.enc)
			runtime.ReadMemStats(&after)
			require.Equal(t, http.StatusRequestEntityTooLarge, r.code)
			st := decodeStatus(t, r, contentTypeProtobuf)
			require.Contains(t, st.GetMessage(), "agent.receive.max_decompressed_bytes")
			// All allocations of the request, client and server (the
			// output buffer doubles up to the limit): far below the GiB.
			t.Logf("%d bytes on the wire, %d allocated", len(c.body), after.TotalAlloc-before.TotalAlloc)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(200<<20))
		})
	}
	require.Empty(t, e.rec.Samples())
}

func TestHTTPErrors(t *testing.T) {
	e := newEnv(t, nil)
	r := post(t, e.url, []byte("{}"), "text/plain", "")
	require.Equal(t, http.StatusUnsupportedMediaType, r.code)

	r = post(t, e.url, []byte("\xff\xff\xff\xff garbage"), contentTypeProtobuf, "")
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Equal(t, int32(codes.InvalidArgument), decodeStatus(t, r, contentTypeProtobuf).GetCode())

	r = post(t, e.url, []byte(`{"resourceMetrics": [`), contentTypeJSON, "")
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, decodeStatus(t, r, contentTypeJSON).GetMessage(), "decode OTLP metrics")

	r = post(t, e.url, []byte("\x1f\x8b not gzip"), contentTypeProtobuf, "gzip")
	require.Equal(t, http.StatusBadRequest, r.code)

	resp, err := http.Get(e.url + MetricsPath)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Empty(t, e.rec.Samples())
}

func TestPartialSuccess(t *testing.T) {
	now := time.Now()
	build := func() pmetric.Metrics {
		md := oneResource()
		gauge(md, "good", now, map[string]string{"a": "b"})
		gauge(md, "long.value", now, map[string]string{"a": strings.Repeat("x", 3000)})
		gauge(md, "too.old", now.Add(-3*time.Hour), nil)
		return md
	}
	wantMsg := []string{
		"2 of 3 data points rejected",
		`series {__name__="long_value"`, "(agent.limits.max_label_value_length)",
		`series {__name__="too_old", job="svc"}`, "(agent.limits.max_sample_age)",
	}
	check := func(t *testing.T, rec *receivetest.Recorder, ps pmetricotlp.ExportPartialSuccess) {
		t.Helper()
		require.EqualValues(t, 2, ps.RejectedDataPoints())
		require.True(t, has(ps.ErrorMessage(), wantMsg...), ps.ErrorMessage())
		require.Equal(t, []string{"good"}, rec.Names())
	}
	t.Run("http", func(t *testing.T) {
		e := newEnv(t, nil)
		resp := decodeResponse(t, post(t, e.url, marshalProto(t, build()), contentTypeProtobuf, ""), contentTypeProtobuf)
		check(t, e.rec, resp.PartialSuccess())
	})
	t.Run("http json", func(t *testing.T) {
		e := newEnv(t, nil)
		resp := decodeResponse(t, post(t, e.url, marshalJSON(t, build()), contentTypeJSON, ""), contentTypeJSON)
		check(t, e.rec, resp.PartialSuccess())
	})
	t.Run("grpc", func(t *testing.T) {
		e := newEnv(t, nil)
		resp, err := e.grpc.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(build()))
		require.NoError(t, err)
		check(t, e.rec, resp.PartialSuccess())
	})
}

// A histogram data point is one data point however many series it makes.
func TestPartialSuccessCountsDataPoints(t *testing.T) {
	e := newEnv(t, func(_ *Config, _ *receive.Config, l *receive.Limits) { l.MaxLabelNamesPerSeries = 3 })
	now := time.Now()
	md := oneResource()
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	m.SetName("h")
	h := m.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	for _, attrs := range []int{0, 1} { // 0: __name__, job (+le) fits; 1: one more label does not, for buckets
		p := h.DataPoints().AppendEmpty()
		p.SetTimestamp(ts(now))
		p.ExplicitBounds().FromRaw([]float64{1})
		p.BucketCounts().FromRaw([]uint64{1, 1})
		p.SetCount(2)
		p.SetSum(1)
		if attrs == 1 {
			p.Attributes().PutStr("extra", "x")
		}
	}
	resp := decodeResponse(t, post(t, e.url, marshalProto(t, md), contentTypeProtobuf, ""), contentTypeProtobuf)
	require.EqualValues(t, 1, resp.PartialSuccess().RejectedDataPoints(), resp.PartialSuccess().ErrorMessage())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), "(agent.limits.max_label_names_per_series)")
}

func TestAllRejected(t *testing.T) {
	md := oneResource()
	gauge(md, "too.old", time.Now().Add(-3*time.Hour), nil)
	gauge(md, "too.new", time.Now().Add(time.Hour), nil)
	t.Run("http", func(t *testing.T) {
		e := newEnv(t, nil)
		r := post(t, e.url, marshalProto(t, md), contentTypeProtobuf, "")
		require.Equal(t, http.StatusBadRequest, r.code)
		st := decodeStatus(t, r, contentTypeProtobuf)
		require.Equal(t, int32(codes.InvalidArgument), st.GetCode())
		require.True(t, has(st.GetMessage(), "2 of 2 data points rejected", "(agent.limits.max_sample_age)", "(agent.limits.max_future_skew)"), st.GetMessage())
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_rejected_samples_total", "reason", receive.ReasonSampleTooOld), 0)
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_rejected_samples_total", "reason", receive.ReasonSampleTooNew), 0)
	})
	t.Run("grpc", func(t *testing.T) {
		e := newEnv(t, nil)
		_, err := e.grpc.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.Contains(t, err.Error(), "(agent.limits.max_sample_age)")
	})
}

// Delta sums are refused by Prometheus's translator (as by Prometheus):
// they are rejected data points, the rest of the request is written.
func TestDeltaRefused(t *testing.T) {
	e := newEnv(t, nil)
	now := time.Now()
	md := oneResource()
	gauge(md, "kept", now, nil)
	m := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
	m.SetName("delta.requests")
	s := m.SetEmptySum()
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	s.SetIsMonotonic(true)
	for range 3 {
		p := s.DataPoints().AppendEmpty()
		p.SetTimestamp(ts(now))
		p.SetIntValue(1)
	}
	resp := decodeResponse(t, post(t, e.url, marshalProto(t, md), contentTypeProtobuf, ""), contentTypeProtobuf)
	require.EqualValues(t, 3, resp.PartialSuccess().RejectedDataPoints())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), `translate: invalid temporality and type combination for metric "delta.requests"`)
	require.Equal(t, []string{"kept"}, e.rec.Names())
	require.InDelta(t, 3, receivetest.Metric(t, e.reg, "pharos_agent_rejected_samples_total", "reason", receive.ReasonTranslation), 0)
}

// target_info alone refused (too many resource attributes) is a warning:
// every data point was written.
func TestTargetInfoRejectionIsAWarning(t *testing.T) {
	e := newEnv(t, func(_ *Config, _ *receive.Config, l *receive.Limits) { l.MaxLabelNamesPerSeries = 4 })
	md := oneResource()
	ra := md.ResourceMetrics().At(0).Resource().Attributes()
	for _, k := range []string{"a", "b", "c", "d"} {
		ra.PutStr(k, "v")
	}
	gauge(md, "fine", time.Now(), nil)
	resp := decodeResponse(t, post(t, e.url, marshalProto(t, md), contentTypeProtobuf, ""), contentTypeProtobuf)
	require.Zero(t, resp.PartialSuccess().RejectedDataPoints())
	require.Contains(t, resp.PartialSuccess().ErrorMessage(), `series {__name__="target_info"`)
	require.Equal(t, []string{"fine"}, e.rec.Names())
}

func TestUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.CommitErr = errors.New("publisher is stopping")
	md := oneResource()
	gauge(md, "g", time.Now(), nil)
	r := post(t, e.url, marshalProto(t, md), contentTypeProtobuf, "")
	require.Equal(t, http.StatusServiceUnavailable, r.code)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Equal(t, int32(codes.Unavailable), decodeStatus(t, r, contentTypeProtobuf).GetCode())

	_, err := e.grpc.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.NotNil(t, retryInfo(err))
	require.Empty(t, e.rec.Samples())
}

func retryInfo(err error) *errdetails.RetryInfo {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri
		}
	}
	return nil
}

func TestOverload(t *testing.T) {
	e := newEnv(t, func(_ *Config, rc *receive.Config, _ *receive.Limits) { rc.MaxInflightRequests = 1 })
	gate := receivetest.NewGate(t)
	e.rec.BeforeCommit = gate.Hold
	md := oneResource()
	gauge(md, "g", time.Now(), nil)
	body := marshalProto(t, md)
	first := make(chan response, 1)
	go func() { first <- post(t, e.url, body, contentTypeProtobuf, "") }()
	gate.AwaitHeld(t)

	r := post(t, e.url, body, contentTypeProtobuf, "")
	require.Equal(t, http.StatusTooManyRequests, r.code)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Equal(t, int32(codes.ResourceExhausted), decodeStatus(t, r, contentTypeProtobuf).GetCode())

	_, err := e.grpc.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	ri := retryInfo(err)
	require.NotNil(t, ri, "RESOURCE_EXHAUSTED is retryable in OTLP only with RetryInfo")
	require.Equal(t, 2*time.Second, ri.GetRetryDelay().AsDuration())

	gate.Release()
	decodeResponse(t, <-first, contentTypeProtobuf)
	_, err = e.grpc.Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
	require.NoError(t, err, "a slot is free again")
	require.GreaterOrEqual(t, receivetest.Metric(t, e.reg, "pharos_agent_receive_requests_total", "protocol", "otlp_grpc", "status", "ResourceExhausted"), 1.0)
}

// The same handler is mounted on the process's main HTTP mux.
func TestMountOnMainMux(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *receive.Config, _ *receive.Limits) {
		c.GRPC.ListenAddress, c.HTTP.ListenAddress = "", ""
	})
	require.Empty(t, e.r.GRPCAddr())
	require.Empty(t, e.r.HTTPAddr())
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, e.r.MetricsHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	now := time.Now().Truncate(time.Millisecond)
	decodeResponse(t, post(t, srv.URL, marshalProto(t, testMetrics(now)), contentTypeProtobuf, ""), contentTypeProtobuf)
	checkTestMetrics(t, e.rec, now)
}

func TestTranslationStrategy(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *receive.Config, _ *receive.Limits) {
		c.TranslationStrategy = "NoUTF8EscapingWithSuffixes"
	})
	md := oneResource()
	gauge(md, "http.server.active", time.Now(), map[string]string{"http.method": "GET"})
	decodeResponse(t, post(t, e.url, marshalProto(t, md), contentTypeProtobuf, ""), contentTypeProtobuf)
	s := e.rec.Series("http.server.active")
	require.Len(t, s, 1)
	require.Equal(t, "GET", s[0].Labels.Get("http.method"))
}

func TestRegisterAfterStart(t *testing.T) {
	e := newEnv(t, nil)
	require.Error(t, e.r.Register(e.r.metrics))
}

func TestListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	cfg, rc, lim := defaults()
	cfg.HTTP.ListenAddress = ln.Addr().String()
	in, err := receive.New(rc, lim, &receivetest.Recorder{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	r, err := New(cfg, in, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	err = services.StartAndAwaitRunning(context.Background(), r)
	require.ErrorContains(t, err, "otlp.http.listen_address")
}

func TestConfigValidate(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.PanicOnError)
	var c Config
	c.RegisterFlags(fs)
	require.NoError(t, c.Validate())
	require.Equal(t, "127.0.0.1:4317", c.GRPC.ListenAddress)
	require.Equal(t, "127.0.0.1:4318", c.HTTP.ListenAddress)

	c.GRPC.ListenAddress = "nonsense"
	c.HTTP.ListenAddress = ":4318"
	c.TranslationStrategy = "Whatever"
	err := c.Validate()
	require.ErrorContains(t, err, "otlp.grpc.listen_address")
	require.ErrorContains(t, err, "otlp.translation_strategy")
	require.NotContains(t, err.Error(), "otlp.http.listen_address")
}

// One data point at the epoch and one now would make the translator fill
// 56 years with target_info samples; the span is capped instead.
func TestTargetInfoSpanBounded(t *testing.T) {
	e := newEnv(t, nil)
	md := oneResource()
	md.ResourceMetrics().At(0).Resource().Attributes().PutStr("host.name", "h")
	gauge(md, "ancient", time.Unix(0, 1), nil)
	gauge(md, "now", time.Now(), nil)
	start := time.Now()
	resp := decodeResponse(t, post(t, e.url, marshalProto(t, md), contentTypeProtobuf, ""), contentTypeProtobuf)
	require.Less(t, time.Since(start), 5*time.Second)
	require.EqualValues(t, 1, resp.PartialSuccess().RejectedDataPoints())
	require.True(t, has(resp.PartialSuccess().ErrorMessage(), "target_info not written", `series {__name__="ancient"`), resp.PartialSuccess().ErrorMessage())
	require.Equal(t, []string{"now"}, e.rec.Names())
}
