package promrw

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

func TestRoundTripV1(t *testing.T) {
	e := newEnv(t, nil)
	now := nowMs()
	h := testHistogram(1)
	fh := testHistogram(2).ToFloat(nil)

	// Prometheus sends 1.0 metadata in requests of its own.
	r := e.sendV1(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served.", Unit: ""},
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "latency_seconds", Help: "Latency.", Unit: "seconds"},
	}})
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	require.Empty(t, r.header.Get(headerSamplesWritten), "1.0 answers carry no written headers")

	r = e.sendV1(t, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			{
				Labels:  v1Labels("__name__", "http_requests_total", "code", "200", "job", "app"),
				Samples: []prompb.Sample{{Value: 1, Timestamp: now - 1000}, {Value: 2, Timestamp: now}},
				Exemplars: []prompb.Exemplar{
					{Labels: v1Labels("trace_id", "abc"), Value: 1, Timestamp: now - 1000},
				},
			},
			{
				Labels:     v1Labels("__name__", "latency_seconds", "job", "app"),
				Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, h)},
			},
			{
				Labels:     v1Labels("__name__", "latency_seconds_float", "job", "app"),
				Histograms: []prompb.Histogram{prompb.FromFloatHistogram(now, fh)},
			},
			{
				// Unsorted labels are sorted, not refused.
				Labels:  v1Labels("job", "app", "__name__", "latency_seconds_count"),
				Samples: []prompb.Sample{{Value: 7, Timestamp: now}},
			},
		},
	})
	require.Equal(t, http.StatusNoContent, r.code, r.body)

	reqs := e.rec.Series("http_requests_total")
	require.Len(t, reqs, 2)
	require.Equal(t, labels.FromStrings("__name__", "http_requests_total", "code", "200", "job", "app"), reqs[0].Labels)
	require.Equal(t, []float64{1, 2}, []float64{reqs[0].V, reqs[1].V})
	require.Equal(t, now-1000, reqs[0].T)
	require.Equal(t, model.MetricTypeCounter, reqs[0].Meta.Type)
	require.Equal(t, "Requests served.", reqs[0].Meta.Help)
	require.Len(t, reqs[0].Exemplars, 1, "exemplars ride on the series' first sample")
	require.Equal(t, labels.FromStrings("trace_id", "abc"), reqs[0].Exemplars[0].Labels)
	require.Empty(t, reqs[1].Exemplars)

	hs := e.rec.Series("latency_seconds")
	require.Len(t, hs, 1)
	require.Equal(t, h, hs[0].H)
	require.Equal(t, model.MetricTypeHistogram, hs[0].Meta.Type)
	require.Equal(t, "seconds", hs[0].Meta.Unit)
	fhs := e.rec.Series("latency_seconds_float")
	require.Len(t, fhs, 1)
	require.Equal(t, fh, fhs[0].FH)

	cnt := e.rec.Series("latency_seconds_count")
	require.Len(t, cnt, 1)
	require.Equal(t, labels.FromStrings("__name__", "latency_seconds_count", "job", "app"), cnt[0].Labels)
	require.Equal(t, model.MetricTypeHistogram, cnt[0].Meta.Type, "a _count series finds its histogram family")

	require.InDelta(t, 3, e.metric(t, "pharos_agent_received_samples_total", "protocol", "prw1", "type", "float"), 0)
	require.InDelta(t, 2, e.metric(t, "pharos_agent_received_samples_total", "protocol", "prw1", "type", "histogram"), 0)
}

func TestRoundTripV2(t *testing.T) {
	e := newEnv(t, nil)
	now := nowMs()
	b := newV2()
	ts := b.series(labels.FromStrings("__name__", "http_requests_total", "code", "200", "job", "app"),
		b.meta(writev2.Metadata_METRIC_TYPE_COUNTER, "Requests served.", ""),
		writev2.Sample{Value: 1, Timestamp: now - 1000, StartTimestamp: now - 60_000},
		writev2.Sample{Value: 2, Timestamp: now, StartTimestamp: now - 60_000})
	ts.Exemplars = []writev2.Exemplar{
		b.exemplar(labels.FromStrings("trace_id", "def"), 2, now),
		b.exemplar(labels.FromStrings("trace_id", "abc"), 1, now-1000),
	}
	h := testHistogram(3)
	fh := testHistogram(4).ToFloat(nil)
	hts := b.series(labels.FromStrings("__name__", "latency_seconds", "job", "app"),
		b.meta(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Latency.", "seconds"))
	hts.Histograms = []writev2.Histogram{writev2.FromIntHistogram(now-60_000, now-1000, h), writev2.FromFloatHistogram(0, now, fh)}

	r := e.sendV2(t, b.build())
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	require.Equal(t, "2", r.header.Get(headerSamplesWritten))
	require.Equal(t, "2", r.header.Get(headerHistogramsWritten))
	require.Equal(t, "2", r.header.Get(headerExemplarsWritten))

	reqs := e.rec.Series("http_requests_total")
	require.Len(t, reqs, 2)
	require.Equal(t, now-60_000, reqs[0].ST)
	require.Equal(t, "Requests served.", reqs[0].Meta.Help)
	require.Equal(t, model.MetricTypeCounter, reqs[0].Meta.Type)
	require.Len(t, reqs[0].Exemplars, 2)
	require.Equal(t, now-1000, reqs[0].Exemplars[0].Ts, "exemplars are sorted by time")
	hs := e.rec.Series("latency_seconds")
	require.Len(t, hs, 2)
	require.Equal(t, h, hs[0].H)
	require.Equal(t, now-60_000, hs[0].ST)
	require.Equal(t, fh, hs[1].FH)
	require.Equal(t, "seconds", hs[1].Meta.Unit)
}

// The same pooled writer decodes request after request: nothing of one
// request may leak into the next.
func TestDecodeReuse(t *testing.T) {
	e := newEnv(t, nil)
	now := nowMs()
	for i := range 5 {
		b := newV2()
		for j := range 3 + i {
			b.series(labels.FromStrings("__name__", fmt.Sprintf("m%d", j), "req", fmt.Sprint(i)),
				b.meta(writev2.Metadata_METRIC_TYPE_GAUGE, fmt.Sprintf("help %d", i), ""),
				writev2.Sample{Value: float64(i), Timestamp: now})
		}
		r := e.sendV2(t, b.build())
		require.Equal(t, http.StatusNoContent, r.code, r.body)
	}
	ss := e.rec.Samples()
	require.Len(t, ss, 3+4+5+6+7)
	for _, s := range ss {
		req := s.Labels.Get("req")
		require.Equal(t, req, fmt.Sprint(s.V))
		require.Equal(t, "help "+req, s.Meta.Help)
	}
}

func TestOfficialClient(t *testing.T) {
	e := newEnv(t, nil)
	now := nowMs()
	api, err := remoteapi.NewAPI(e.srv.URL, remoteapi.WithAPIHTTPClient(e.srv.Client()),
		remoteapi.WithAPIBackoff(remoteapi.BackoffConfig{Min: time.Millisecond, Max: time.Millisecond, MaxRetries: 2}))
	require.NoError(t, err)
	ctx := context.Background()

	_, err = api.Write(ctx, remoteapi.WriteV1MessageType, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: v1Labels("__name__", "from_v1", "job", "client"), Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
	}}})
	require.NoError(t, err)

	b := newV2()
	b.series(labels.FromStrings("__name__", "from_v2", "job", "client"), writev2.Metadata{}, writev2.Sample{Value: 2, Timestamp: now})
	st, err := api.Write(ctx, remoteapi.WriteV2MessageType, b.build())
	require.NoError(t, err)
	require.Equal(t, 1, st.Samples)
	require.Equal(t, []string{"from_v1", "from_v2"}, e.rec.Names())

	// Malformed data is a 400, which the client must not retry.
	retries := 0
	_, err = api.Write(ctx, remoteapi.WriteV2MessageType, &writev2.Request{Symbols: []string{""}, Timeseries: []writev2.TimeSeries{{LabelsRefs: []uint32{0, 9}}}},
		remoteapi.WithWriteRetryCallback(func(error) { retries++ }))
	require.ErrorContains(t, err, "400")
	require.Zero(t, retries)
}

func TestMalformed(t *testing.T) {
	e := newEnv(t, nil)
	for name, c := range map[string]struct {
		body []byte
		ct   string
	}{
		"garbage v1":       {snappy.Encode(nil, []byte("\xff\xff\xff\xff not protobuf")), ctV1},
		"garbage v2":       {snappy.Encode(nil, []byte("\x2a\xff\xff\xff\xff\x0f")), ctV2},
		"truncated v1":     {snappy.Encode(nil, []byte{0x0a, 0x10, 0x0a}), ctV1},
		"wrong wire type":  {snappy.Encode(nil, []byte{0x08, 0x01}), ctV1},
		"not snappy":       {[]byte("\x05not snappy at all"), ctV1},
		"snappy truncated": {snappy.Encode(nil, bytes.Repeat([]byte("abcdefgh"), 100))[:20], ctV2},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.post(t, c.body, c.ct, "snappy")
			require.Equal(t, http.StatusBadRequest, r.code, r.body)
		})
	}
	require.Empty(t, e.rec.Samples())
}

func TestNegotiation(t *testing.T) {
	e := newEnv(t, nil)
	body := snappy.Encode(nil, nil)
	for name, c := range map[string]struct {
		ct, enc string
		code    int
	}{
		"json":                 {"application/json", "snappy", http.StatusUnsupportedMediaType},
		"unknown proto":        {"application/x-protobuf;proto=io.prometheus.write.v3.Request", "snappy", http.StatusUnsupportedMediaType},
		"gzip":                 {ctV1, "gzip", http.StatusUnsupportedMediaType},
		"v2 with spaces":       {"application/x-protobuf; proto=io.prometheus.write.v2.Request", "snappy", http.StatusNoContent},
		"v1 explicit":          {"application/x-protobuf;proto=prometheus.WriteRequest", "snappy", http.StatusNoContent},
		"no content type (v1)": {"", "", http.StatusNoContent},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.post(t, body, c.ct, c.enc)
			require.Equal(t, c.code, r.code, r.body)
		})
	}
	resp, err := e.srv.Client().Get(e.srv.URL + Path)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Equal(t, http.MethodPost, resp.Header.Get("Allow"))
}

// snappyBomb is a tiny block whose header declares n decoded bytes.
func snappyBomb(n uint64) []byte {
	b := binary.AppendUvarint(nil, n)
	return append(b, 0x00, 'x') // a 1-byte literal; the rest is never there
}

func TestSnappyBomb(t *testing.T) {
	e := newEnv(t, nil)
	bomb := snappyBomb(4_000_000_000)
	require.Less(t, len(bomb), 16)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := e.post(t, bomb, ctV2, "snappy")
	runtime.ReadMemStats(&after)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
	require.Contains(t, r.body, "agent.receive.max_decompressed_bytes")
	require.Equal(t, "0", r.header.Get(headerSamplesWritten), "2.0 answers carry the written headers, errors included")
	// Whatever the server allocated for this request (the client and the
	// test included) stays far below the declared size.
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20))

	// Just over the decompressed limit is refused too, not only absurd sizes.
	r = e.post(t, snappyBomb(64<<20+1), ctV1, "snappy")
	require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
}

func TestRequestTooLarge(t *testing.T) {
	e := newEnv(t, func(c *receive.Config, _ *receive.Limits) { c.MaxRequestBytes = 4096 })
	big := snappy.Encode(nil, bytes.Repeat([]byte{0x0a, 0x00}, 1<<14)) // compresses well: not too large
	require.Less(t, len(big), 4096)
	r := e.post(t, big, ctV1, "snappy")
	require.Equal(t, http.StatusNoContent, r.code, r.body)

	huge := make([]byte, 8192)
	r = e.post(t, huge, ctV1, "snappy")
	require.Equal(t, http.StatusRequestEntityTooLarge, r.code, r.body)
	require.Contains(t, r.body, "agent.receive.max_request_bytes")

	// Without a Content-Length the cap holds while reading.
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+Path, struct{ *bytes.Reader }{bytes.NewReader(huge)})
	require.NoError(t, err)
	req.ContentLength = -1
	req.Header.Set("Content-Type", ctV1)
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
}

func TestCommitFailureIsRetryable(t *testing.T) {
	e := newEnv(t, nil)
	e.rec.CommitErr = errors.New("publisher is stopping")
	r := e.sendV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: v1Labels("__name__", "x"), Samples: []prompb.Sample{{Value: 1, Timestamp: nowMs()}},
	}}})
	require.Equal(t, http.StatusServiceUnavailable, r.code, r.body)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Empty(t, e.rec.Samples())
}

func TestOverload(t *testing.T) {
	e := newEnv(t, func(c *receive.Config, _ *receive.Limits) { c.MaxInflightRequests = 1 })
	gate := receivetest.NewGate(t)
	e.rec.BeforeCommit = gate.Hold
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels: v1Labels("__name__", "x"), Samples: []prompb.Sample{{Value: 1, Timestamp: nowMs()}},
	}}}
	first := make(chan response, 1)
	go func() { first <- e.sendV1(t, req) }()
	gate.AwaitHeld(t)

	r := e.sendV1(t, req)
	require.Equal(t, http.StatusTooManyRequests, r.code, r.body)
	require.Equal(t, "2", r.header.Get("Retry-After"))

	// Refused before its body is read: a body that records reads stays untouched.
	body := &readTracker{r: strings.NewReader("never read")}
	hr := httptest.NewRequest(http.MethodPost, Path, body)
	hr.Header.Set("Content-Type", ctV1)
	rw := httptest.NewRecorder()
	e.h.ServeHTTP(rw, hr)
	require.Equal(t, http.StatusTooManyRequests, rw.Code)
	require.False(t, body.read)

	gate.Release()
	require.Equal(t, http.StatusNoContent, (<-first).code)
	require.Len(t, e.rec.Samples(), 1)
	r = e.sendV1(t, req)
	require.Equal(t, http.StatusNoContent, r.code, "a slot is free again")
}

type readTracker struct {
	r    *strings.Reader
	read bool
}

func (b *readTracker) Read(p []byte) (int, error) { b.read = true; return b.r.Read(p) }

func TestValidationRules(t *testing.T) {
	now := time.Now()
	long := strings.Repeat("a", 1025)
	many := []string{"__name__", "too_many"}
	for i := range 30 {
		many = append(many, fmt.Sprintf("l%02d", i), "v")
	}
	cases := []struct {
		name   string
		ls     []string
		ts     time.Time
		h      *histogram.Histogram
		reason string
		want   []string // fragments of the message
	}{
		{"label names", many, now, nil, receive.ReasonMaxLabelNames,
			[]string{`series {__name__="too_many", l00="v"`, "31 label names exceed the limit of 30 (agent.limits.max_label_names_per_series)"}},
		{"label name length", []string{"__name__", "long_name", long, "v"}, now, nil, receive.ReasonLabelNameTooLong,
			[]string{`__name__="long_name"`, "1025 bytes long, over the limit of 1024 (agent.limits.max_label_name_length)"}},
		{"label value length", []string{"__name__", "long_value", "l", strings.Repeat("v", 2049)}, now, nil, receive.ReasonLabelValueTooLong,
			[]string{`__name__="long_value"`, `value of label "l" is 2049 bytes long, over the limit of 2048 (agent.limits.max_label_value_length)`}},
		{"too old", []string{"__name__", "too_old"}, now.Add(-2 * time.Hour), nil, receive.ReasonSampleTooOld,
			[]string{`{__name__="too_old"}`, "older than the limit of 1h0m0s (agent.limits.max_sample_age)"}},
		{"future", []string{"__name__", "future"}, now.Add(time.Hour), nil, receive.ReasonSampleTooNew,
			[]string{`{__name__="future"}`, "more than 10m0s in the future (agent.limits.max_future_skew)"}},
		{"invalid value", []string{"__name__", "bad_value", "l", "\xff\xfe"}, now, nil, receive.ReasonInvalidLabelValue,
			[]string{`__name__="bad_value"`, `value of label "l" is not valid UTF-8 (invalid_label_value)`}},
		{"invalid name", []string{"__name__", "bad_name", "\xff", "v"}, now, nil, receive.ReasonInvalidLabelName,
			[]string{`__name__="bad_name"`, "(invalid_label_name)"}},
		{"duplicate", []string{"__name__", "dup", "a", "1", "a", "2"}, now, nil, receive.ReasonDuplicateLabelName,
			[]string{`__name__="dup"`, `label name "a" appears more than once (duplicate_label_name)`}},
		{"no name", []string{"job", "nameless"}, now, nil, receive.ReasonMissingMetricName,
			[]string{`{job="nameless"}`, "(missing_metric_name)"}},
		{"bad histogram", []string{"__name__", "bad_histogram"}, now, &histogram.Histogram{Count: 1, Schema: 0, PositiveSpans: []histogram.Span{{Length: 1}}, PositiveBuckets: []int64{5}}, receive.ReasonInvalidNativeHisto,
			[]string{`{__name__="bad_histogram"}`, "(invalid_native_histogram)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			good := labels.FromStrings("__name__", "good", "job", "app")
			check := func(r response, e *env) {
				t.Helper()
				require.Equal(t, http.StatusBadRequest, r.code, r.body)
				for _, w := range c.want {
					require.Contains(t, r.body, w)
				}
				// The valid series of the same request is stored.
				require.Len(t, e.rec.Series("good"), 1)
				require.InDelta(t, 1, e.metric(t, "pharos_agent_rejected_samples_total", "reason", c.reason), 0)
			}

			t.Run("v2", func(t *testing.T) {
				e := newEnv(t, nil)
				b := newV2()
				b.series(good, writev2.Metadata{}, writev2.Sample{Value: 1, Timestamp: now.UnixMilli()})
				// Built by hand: labels.FromStrings would sort and dedupe.
				ts := writev2.TimeSeries{}
				for i := 0; i < len(c.ls); i += 2 {
					ts.LabelsRefs = append(ts.LabelsRefs, b.st.Symbolize(c.ls[i]), b.st.Symbolize(c.ls[i+1]))
				}
				if c.h != nil {
					ts.Histograms = []writev2.Histogram{writev2.FromIntHistogram(0, c.ts.UnixMilli(), c.h)}
				} else {
					ts.Samples = []writev2.Sample{{Value: 1, Timestamp: c.ts.UnixMilli()}}
				}
				b.req.Timeseries = append(b.req.Timeseries, ts)
				r := e.sendV2(t, b.build())
				check(r, e)
				require.Equal(t, "1", r.header.Get(headerSamplesWritten), "the partial write is reported")
				require.Equal(t, "0", r.header.Get(headerHistogramsWritten))
			})
			t.Run("v1", func(t *testing.T) {
				e := newEnv(t, nil)
				bad := prompb.TimeSeries{Labels: v1Labels(c.ls...)}
				if c.h != nil {
					bad.Histograms = []prompb.Histogram{prompb.FromIntHistogram(c.ts.UnixMilli(), c.h)}
				} else {
					bad.Samples = []prompb.Sample{{Value: 1, Timestamp: c.ts.UnixMilli()}}
				}
				r := e.sendV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
					{Labels: v1Labels("__name__", "good", "job", "app"), Samples: []prompb.Sample{{Value: 1, Timestamp: now.UnixMilli()}}},
					bad,
				}})
				check(r, e)
			})
		})
	}
}

// A 2.0 series whose label references point outside the symbols table
// spoils that series only.
func TestV2BadReferences(t *testing.T) {
	e := newEnv(t, nil)
	b := newV2()
	b.series(labels.FromStrings("__name__", "good"), writev2.Metadata{}, writev2.Sample{Value: 1, Timestamp: nowMs()})
	b.req.Timeseries = append(b.req.Timeseries,
		writev2.TimeSeries{LabelsRefs: []uint32{1, 99}, Samples: []writev2.Sample{{Value: 1, Timestamp: nowMs()}}},
		writev2.TimeSeries{LabelsRefs: []uint32{1}, Samples: []writev2.Sample{{Value: 1, Timestamp: nowMs()}}},
		writev2.TimeSeries{LabelsRefs: b.st.SymbolizeLabels(labels.FromStrings("__name__", "empty"), nil)},
		writev2.TimeSeries{LabelsRefs: b.st.SymbolizeLabels(labels.FromStrings("__name__", "bad_help"), nil),
			Metadata: writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: 99},
			Samples:  []writev2.Sample{{Value: 1, Timestamp: nowMs()}}},
	)
	r := e.sendV2(t, b.build())
	require.Equal(t, http.StatusBadRequest, r.code, r.body)
	require.Contains(t, r.body, "rejected 4 series or samples; written 1 samples")
	require.Contains(t, r.body, `series {__name__="bad_help"}: metadata reference 99 or 0 is out of the symbols table`)
	require.Contains(t, r.body, "out of the symbols table")
	require.Contains(t, r.body, "odd number (1) of label references")
	require.Contains(t, r.body, `series {__name__="empty"}: the series has no samples or histograms`)
	require.Equal(t, "1", r.header.Get(headerSamplesWritten))
	require.Equal(t, []string{"good"}, e.rec.Names())
	require.InDelta(t, 3, e.metric(t, "pharos_agent_rejected_samples_total", "reason", receive.ReasonInvalidSeries), 0)
}

// Many rejections make a bounded message.
func TestRejectionMessageBounded(t *testing.T) {
	e := newEnv(t, nil)
	req := &prompb.WriteRequest{}
	for i := range 500 {
		req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
			Labels:  v1Labels("__name__", "old", "i", fmt.Sprint(i), "pad", strings.Repeat("p", 2000)),
			Samples: []prompb.Sample{{Value: 1, Timestamp: 1}},
		})
	}
	r := e.sendV1(t, req)
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, r.body, "rejected 500 series or samples")
	require.Contains(t, r.body, "… and 490 more")
	require.Less(t, len(r.body), 8<<10)
}

func TestExemplarsDroppedNotSamples(t *testing.T) {
	e := newEnv(t, nil)
	now := nowMs()
	r := e.sendV1(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  v1Labels("__name__", "x"),
		Samples: []prompb.Sample{{Value: 1, Timestamp: now}},
		Exemplars: []prompb.Exemplar{
			{Labels: v1Labels("trace_id", strings.Repeat("t", 200)), Value: 1, Timestamp: now},
			{Labels: v1Labels("trace_id", "ok"), Value: 1, Timestamp: now},
		},
	}}})
	require.Equal(t, http.StatusNoContent, r.code, r.body)
	ss := e.rec.Series("x")
	require.Len(t, ss, 1)
	require.Len(t, ss[0].Exemplars, 1)
	require.Equal(t, "ok", ss[0].Exemplars[0].Labels.Get("trace_id"))
	require.InDelta(t, 1, e.metric(t, "pharos_agent_rejected_exemplars_total", "reason", receive.ReasonExemplarLabelsTooLong), 0)
}

// A 2.0 request of tiny series that all reference the same large symbols
// expands far beyond its size; it is cut off at the decompressed-size
// budget without building (or keeping) the rest.
func TestV2ExpansionBounded(t *testing.T) {
	e := newEnv(t, nil)
	now := nowMs()
	b := newV2()
	var kv []string
	for i := range 29 {
		kv = append(kv, fmt.Sprintf("l%02d", i), strings.Repeat(fmt.Sprint(i%10), 2000))
	}
	ls := labels.FromStrings(append(kv, "__name__", "amplified")...)
	refs := b.st.SymbolizeLabels(ls, nil) // ~58 KB of labels per series
	for range 20_000 {                    // ~1.1 GB expanded, from ~0.5 MB decompressed
		b.req.Timeseries = append(b.req.Timeseries, writev2.TimeSeries{LabelsRefs: refs, Samples: []writev2.Sample{{Value: 1, Timestamp: now}}})
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := e.sendV2(t, b.build())
	runtime.ReadMemStats(&after)
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, r.body, "the request expands to more than 67108864 bytes of labels (agent.receive.max_decompressed_bytes)")
	written, err := strconv.Atoi(r.header.Get(headerSamplesWritten))
	require.NoError(t, err)
	require.Positive(t, written)
	require.Less(t, written, 2000)
	require.Len(t, e.rec.Samples(), written)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(400<<20))
}

// A sender that stops sending its body loses its slot after
// agent.receive.body_read_timeout.
func TestSlowBody(t *testing.T) {
	e := newEnv(t, func(c *receive.Config, _ *receive.Limits) { c.BodyReadTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", e.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	// Headers announce 1000 bytes; one arrives, then nothing.
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: 1000\r\n\r\n\x0a", Path, ctV1)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	require.Zero(t, e.metric(t, "pharos_agent_receive_inflight_requests"))
}
