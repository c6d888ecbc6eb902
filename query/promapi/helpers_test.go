package promapi

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// t0 is the newest sample time of the fixture, in milliseconds: 2023-11-14T22:13:20Z.
const t0 = int64(1_700_000_000_000)

// step is the fixture's sample spacing.
const stepMs = int64(15_000)

var testBuild = BuildInfo{
	Version:   "1.2.3",
	Revision:  "abc123",
	Branch:    "main",
	BuildUser: "ci@pharos",
	BuildDate: "20260101-00:00:00",
	GoVersion: "go1.26.8",
}

// fixture is an API over a real TSDB and PromQL engine, served by httptest.
type fixture struct {
	api     *API
	store   *teststorage.TestStorage
	srv     *httptest.Server
	client  *http.Client
	reg     *prometheus.Registry
	baseURL string
}

type fixtureOpts struct {
	cfg       func(*Config)
	queryable storage.Queryable // replaces the TSDB as the API's Queryable when set
	// wrap wraps the API's Queryable (the TSDB or queryable) when set.
	wrap     func(storage.Queryable) storage.Queryable
	engine   promql.QueryEngine
	metadata MetadataSource
	noExemp  bool
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:           50_000_000,
		Timeout:              time.Minute,
		LookbackDelta:        5 * time.Minute,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		EnablePerStepStats:   true,
	})
}

func newFixture(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	store := teststorage.New(t)
	loadFixtureData(t, store)

	cfg := Config{Timeout: time.Minute, LookbackDelta: 5 * time.Minute}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	var q storage.Queryable = store
	if o.queryable != nil {
		q = o.queryable
	}
	if o.wrap != nil {
		q = o.wrap(q)
	}
	var eng promql.QueryEngine = newEngine()
	if o.engine != nil {
		eng = o.engine
	}
	var ex storage.ExemplarQueryable = store
	if o.noExemp {
		ex = nil
	}
	md := o.metadata
	if md == nil {
		md = staticMetadata{
			"up":                  {{Type: model.MetricTypeGauge, Help: "Whether the target is up.", Unit: ""}},
			"http_requests_total": {{Type: model.MetricTypeCounter, Help: "Requests served.", Unit: ""}, {Type: model.MetricTypeCounter, Help: "Requests.", Unit: ""}},
			"rpc_latency_seconds": {{Type: model.MetricTypeHistogram, Help: "RPC latency.", Unit: "seconds"}},
		}
	}
	reg := prometheus.NewRegistry()
	api, err := New(cfg, q, ex, eng, md, testBuild, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	api.now = func() time.Time { return time.UnixMilli(t0) }

	srv := httptest.NewServer(api.Handler())
	transport := &http.Transport{}
	t.Cleanup(func() {
		transport.CloseIdleConnections()
		srv.Close()
	})
	return &fixture{api: api, store: store, srv: srv, client: &http.Client{Transport: transport}, reg: reg, baseURL: srv.URL + "/api/v1"}
}

// loadFixtureData writes five samples, 15s apart and ending at t0, for each series.
func loadFixtureData(t testing.TB, store *teststorage.TestStorage) {
	t.Helper()
	app := store.Appender(context.Background())
	floats := []struct {
		ls labels.Labels
		v  func(i int) float64
	}{
		{labels.FromStrings("__name__", "up", "job", "api", "instance", "a"), func(int) float64 { return 1 }},
		{labels.FromStrings("__name__", "up", "job", "api", "instance", "b"), func(int) float64 { return 0 }},
		{labels.FromStrings("__name__", "up", "job", "db", "instance", "c"), func(int) float64 { return 1 }},
		{labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "200"), func(i int) float64 { return float64(10 * i) }},
		{labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "500"), func(i int) float64 { return 0.5 * float64(i) }},
		{labels.FromStrings("__name__", "weird", "path", "a\"b<c>&\u2028/é", "k8s.io/app", "shop"), func(int) float64 { return 1e-7 }},
	}
	for _, s := range floats {
		var ref storage.SeriesRef
		for i := range 5 {
			ts := t0 - int64(4-i)*stepMs
			var err error
			ref, err = app.Append(ref, s.ls, ts, s.v(i))
			require.NoError(t, err)
		}
		if s.ls.Get("code") == "200" {
			_, err := app.AppendExemplar(ref, s.ls, exemplar.Exemplar{
				Labels: labels.FromStrings("trace_id", "4bf92f3577b34da6"),
				Value:  42,
				Ts:     t0 - 500,
				HasTs:  true,
			})
			require.NoError(t, err)
		}
	}
	hls := labels.FromStrings("__name__", "rpc_latency_seconds", "job", "api")
	var ref storage.SeriesRef
	for i := range 5 {
		ts := t0 - int64(4-i)*stepMs
		var err error
		ref, err = app.AppendHistogram(ref, hls, ts, testHistogram(i), nil)
		require.NoError(t, err)
	}
	require.NoError(t, app.Commit())
}

// testHistogram is a small exponential histogram: one zero-bucket observation plus i+2 in
// each of (0.5,1] and (1,2].
func testHistogram(i int) *histogram.Histogram {
	n := uint64(i + 2)
	return &histogram.Histogram{
		CounterResetHint: histogram.NotCounterReset,
		Schema:           0,
		ZeroThreshold:    0.001,
		ZeroCount:        1,
		Count:            1 + 2*n,
		Sum:              float64(n) * 2.25,
		PositiveSpans:    []histogram.Span{{Offset: 0, Length: 2}},
		PositiveBuckets:  []int64{int64(n), 0}, // Delta-encoded: n, n.
	}
}

// staticMetadata is a MetadataSource over a fixed map.
type staticMetadata map[string][]metadata.Metadata

func (s staticMetadata) Metadata(_ context.Context, metric string, _, _ int) (map[string][]metadata.Metadata, error) {
	out := map[string][]metadata.Metadata{}
	for name, ms := range s {
		if metric == "" || metric == name {
			out[name] = append([]metadata.Metadata(nil), ms...)
		}
	}
	return out, nil
}

// response is a Prometheus API response as the tests inspect it.
type response struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
	Infos     []string        `json:"infos"`
}

// do sends a GET (params in the URL) or a POST (params in a form body) and returns the
// status code, the raw body and the decoded envelope.
func (f *fixture) do(t testing.TB, method, path string, params url.Values) (int, string, response) {
	t.Helper()
	var req *http.Request
	var err error
	switch method {
	case http.MethodGet:
		u := f.baseURL + path
		if len(params) > 0 {
			u += "?" + params.Encode()
		}
		req, err = http.NewRequest(http.MethodGet, u, nil)
	case http.MethodPost:
		req, err = http.NewRequest(http.MethodPost, f.baseURL+path, strings.NewReader(params.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	default:
		req, err = http.NewRequest(method, f.baseURL+path, nil)
	}
	require.NoError(t, err)
	resp, err := f.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var r response
	if len(body) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(body, &r), "body: %s", body)
	}
	return resp.StatusCode, string(body), r
}

// sec formats a millisecond timestamp as the seconds the API parameters take.
func sec(ms int64) string { return string(appendTimestamp(nil, ms)) }
