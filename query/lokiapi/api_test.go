package lokiapi

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// t0 is 2024-01-01T00:00:00Z, Unix 1704067200.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func ns(sec int) string {
	return strconv.FormatInt(t0.Add(time.Duration(sec)*time.Second).UnixNano(), 10)
}

func unix(sec int) string { return strconv.FormatInt(t0.Unix()+int64(sec), 10) }

type fixture struct {
	api *API
	q   *logqltest.Querier
	srv *httptest.Server
	reg *prometheus.Registry
}

// newFixture serves an API over tenant t1's data, with the clock at 60s:
//
//	{app="api", env="prod"}: 10s "level=info msg=a", 20s "level=error msg=b", 30s "level=info msg=c"
//	{app="api", env="dev"}:  15s "level=error msg=d"
//	{app="web"}:             25s "GET /" with metadata trace_id="abc"
func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	q := logqltest.New()
	at := func(sec int) int64 { return t0.Add(time.Duration(sec) * time.Second).UnixNano() }
	require.NoError(t, q.Append("t1", []logs.Stream{
		{Labels: labels.FromStrings("app", "api", "env", "prod"), Entries: []logs.Entry{
			{Timestamp: at(10), Line: "level=info msg=a"},
			{Timestamp: at(20), Line: "level=error msg=b"},
			{Timestamp: at(30), Line: "level=info msg=c"},
		}},
		{Labels: labels.FromStrings("app", "api", "env", "dev"), Entries: []logs.Entry{
			{Timestamp: at(15), Line: "level=error msg=d"},
		}},
		{Labels: labels.FromStrings("app", "web"), Entries: []logs.Entry{
			{Timestamp: at(25), Line: "GET /", Metadata: labels.FromStrings("trace_id", "abc")},
		}},
	}))
	require.NoError(t, q.Append("t2", []logs.Stream{
		{Labels: labels.FromStrings("app", "other"), Entries: []logs.Entry{{Timestamp: at(10), Line: "x"}}},
	}))
	if cfg == (Config{}) {
		cfg = Config{Timeout: time.Minute, TailPollInterval: 10 * time.Millisecond, TailLateness: time.Second, TailMaxDuration: time.Minute}
	}
	reg := prometheus.NewRegistry()
	api, err := New(cfg, q, logql.NewEngine(logql.EngineOpts{}), BuildInfo{Version: "3.4.0", Revision: "abc", GoVersion: "go1.26"}, nil, reg)
	require.NoError(t, err)
	api.now = func() time.Time { return t0.Add(time.Minute) }
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		api.Stop()
	})
	return &fixture{api: api, q: q, srv: srv, reg: reg}
}

// get requests path with params as tenant t1 and returns the status and body.
func (f *fixture) get(t *testing.T, path string, params url.Values, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.srv.URL+path+"?"+params.Encode(), nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", "t1")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

type queryResponse struct {
	Status string `json:"status"`
	Data   struct {
		ResultType    string          `json:"resultType"`
		EncodingFlags []string        `json:"encodingFlags"`
		Result        json.RawMessage `json:"result"`
		Stats         struct {
			Summary map[string]float64 `json:"summary"`
		} `json:"stats"`
	} `json:"data"`
}

// query gets a query endpoint and decodes its success response.
func (f *fixture) query(t *testing.T, path string, params url.Values, header ...string) queryResponse {
	t.Helper()
	code, body := f.get(t, path, params, header...)
	require.Equal(t, http.StatusOK, code, body)
	var r queryResponse
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	require.Equal(t, "success", r.Status)
	return r
}

func TestQueryRangeStreams(t *testing.T) {
	f := newFixture(t, Config{})
	// As Grafana's Loki data source asks: ns bounds, float seconds step.
	r := f.query(t, "/loki/api/v1/query_range", url.Values{
		"query": {`{app="api"}`}, "start": {ns(0)}, "end": {ns(60)}, "step": {"0.5"},
		"direction": {"backward"}, "limit": {"1000"},
	})
	require.Equal(t, "streams", r.Data.ResultType)
	require.Nil(t, r.Data.EncodingFlags)
	require.JSONEq(t, `[
		{"stream":{"app":"api","env":"dev"},"values":[["`+ns(15)+`","level=error msg=d"]]},
		{"stream":{"app":"api","env":"prod"},"values":[
			["`+ns(30)+`","level=info msg=c"],["`+ns(20)+`","level=error msg=b"],["`+ns(10)+`","level=info msg=a"]]}
	]`, string(r.Data.Result))
	s := r.Data.Stats.Summary
	require.Equal(t, 4., s["totalLinesProcessed"])
	require.Equal(t, float64(16+17+16+17), s["totalBytesProcessed"])
	require.Equal(t, 4., s["totalEntriesReturned"])
	require.Contains(t, s, "execTime")

	// Limit and direction, parsed labels, defaults (limit 100, last hour).
	r = f.query(t, "/loki/api/v1/query_range", url.Values{
		"query": {`{app="api"} | logfmt | level="error"`}, "limit": {"1"}, "direction": {"FORWARD"},
	})
	require.JSONEq(t, `[{"stream":{"app":"api","env":"dev","level":"error","msg":"d"},"values":[["`+ns(15)+`","level=error msg=d"]]}]`, string(r.Data.Result))

	// Metadata joins the stream labels unless the client categorizes.
	params := url.Values{"query": {`{app="web"} | regexp "(?P<method>\\w+)"`}, "start": {ns(0)}, "end": {ns(60)}}
	r = f.query(t, "/loki/api/v1/query_range", params)
	require.JSONEq(t, `[{"stream":{"app":"web","method":"GET","trace_id":"abc"},"values":[["`+ns(25)+`","GET /"]]}]`, string(r.Data.Result))
	r = f.query(t, "/loki/api/v1/query_range", params, "X-Loki-Response-Encoding-Flags", "categorize-labels")
	require.Equal(t, []string{"categorize-labels"}, r.Data.EncodingFlags)
	require.JSONEq(t, `[{"stream":{"app":"web"},"values":[["`+ns(25)+`","GET /",{"structuredMetadata":{"trace_id":"abc"},"parsed":{"method":"GET"}}]]}]`, string(r.Data.Result))

	// Nothing found is an empty list, and tenants are isolated.
	r = f.query(t, "/loki/api/v1/query_range", url.Values{"query": {`{app="other"}`}})
	require.JSONEq(t, `[]`, string(r.Data.Result))
}

func TestQueryRangeMatrix(t *testing.T) {
	f := newFixture(t, Config{})
	// Steps at 30 and 60s; both windows hold prod's 3 and dev's 1 entry.
	r := f.query(t, "/loki/api/v1/query_range", url.Values{
		"query": {`sum by (env) (count_over_time({app="api"}[1m]))`}, "start": {unix(30)}, "end": {unix(60)}, "step": {"30s"},
	})
	require.Equal(t, "matrix", r.Data.ResultType)
	require.JSONEq(t, fmt.Sprintf(`[
		{"metric":{"env":"dev"},"values":[[%[1]s,"1"],[%[2]s,"1"]]},
		{"metric":{"env":"prod"},"values":[[%[1]s,"3"],[%[2]s,"3"]]}
	]`, unix(30), unix(60)), string(r.Data.Result))

	// POST with a form body works the same; rate is per second.
	resp, err := f.srv.Client().PostForm(f.srv.URL+"/loki/api/v1/query_range", url.Values{
		"query": {`rate({app="api", env="dev"}[1m])`}, "start": {unix(30) + ".0"}, "end": {unix(30) + ".000"}, "step": {"1"},
	})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Contains(t, string(body), "[]") // tenant "": no data
}

func TestInstantQuery(t *testing.T) {
	f := newFixture(t, Config{})
	r := f.query(t, "/loki/api/v1/query", url.Values{
		"query": {`sum(count_over_time({app="api"}[1m]))`}, "time": {t0.Add(time.Minute).Format(time.RFC3339Nano)},
	})
	require.Equal(t, "vector", r.Data.ResultType)
	require.JSONEq(t, `[{"metric":{},"value":[`+unix(60)+`,"4"]}]`, string(r.Data.Result))

	// time defaults to now (60s); the alert-rule shape.
	r = f.query(t, "/loki/api/v1/query", url.Values{"query": {`sum by (app) (rate({app="api"} |= "error" [1m])) > 0.03`}})
	require.JSONEq(t, `[{"metric":{"app":"api"},"value":[`+unix(60)+`,"0.03333333333333333"]}]`, string(r.Data.Result))

	r = f.query(t, "/loki/api/v1/query", url.Values{"query": {`1 + 1`}, "time": {unix(60)}})
	require.Equal(t, "scalar", r.Data.ResultType)
	require.JSONEq(t, `[`+unix(60)+`,"2"]`, string(r.Data.Result))

	code, body := f.get(t, "/loki/api/v1/query", url.Values{"query": {`{app="api"}`}})
	require.Equal(t, http.StatusBadRequest, code)
	require.Equal(t, logql.ErrInstantLogQuery.Error()+"\n", body)
}

func TestQueryErrors(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		path   string
		params url.Values
		code   int
		msg    string
	}{
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"`}}, 400, "parse error at line 1, col 11"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"} | pattern "<_>"`}}, 400, "unsupported LogQL feature: pattern parser"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "start": {"yesterday"}}, 400, "could not parse 'start' parameter"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "limit": {"0"}}, 400, "limit must be a positive value"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "limit": {"5001"}}, 400, "max entries limit per query exceeded"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "direction": {"sideways"}}, 400, "invalid direction 'sideways'"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "step": {"0"}}, 400, "zero or negative query resolution step"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "step": {"soon"}}, 400, `cannot parse "soon" to a valid duration`},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "start": {ns(60)}, "end": {ns(0)}}, 400, "end timestamp must not be before or equal to start time"},
		{"/loki/api/v1/query_range", url.Values{"query": {`{app="api"}`}, "start": {ns(0)}, "end": {ns(20000)}, "step": {"1"}}, 400, "exceeded maximum resolution of 11,000 points"},
		{"/loki/api/v1/query_range", url.Values{"query": {`sum(count_over_time({app="api"} | json [1m]))`}}, 400, "pipeline error: 'JSONParserErr'"},
		{"/loki/api/v1/query", url.Values{"query": {`{app="api"}`}, "time": {"x"}}, 400, "could not parse 'time' parameter"},
		{"/loki/api/v1/series", url.Values{"match[]": {`{app=~".*"}`}}, 400, "at least one regexp or equality matcher"},
		{"/loki/api/v1/labels", url.Values{"since": {"forever"}}, 400, "could not parse 'since' parameter"},
		{"/loki/api/v1/index/stats", url.Values{}, 400, "query is required"},
	} {
		code, body := f.get(t, tc.path, tc.params)
		require.Equal(t, tc.code, code, "%s %v: %s", tc.path, tc.params, body)
		require.Contains(t, body, tc.msg, "%s %v", tc.path, tc.params)
	}
}

// unavailableErr is how a store can say "unavailable" without importing
// this package.
type unavailableErr struct{}

func (unavailableErr) Error() string     { return "all replicas down" }
func (unavailableErr) Unavailable() bool { return true }

func TestStoreErrors(t *testing.T) {
	f := newFixture(t, Config{})
	params := url.Values{"query": {`{app="api"}`}}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("select: %w", ErrUnavailable), http.StatusServiceUnavailable},
		{fmt.Errorf("select: %w", unavailableErr{}), http.StatusServiceUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		f.q.SetErr(tc.err)
		for _, path := range []string{"/loki/api/v1/query_range", "/loki/api/v1/labels", "/loki/api/v1/label/app/values", "/loki/api/v1/series", "/loki/api/v1/index/stats"} {
			code, body := f.get(t, path, params)
			require.Equal(t, tc.code, code, "%s: %s", path, body)
			require.Contains(t, body, tc.err.Error())
		}
	}
	f.q.SetErr(nil)
	require.Equal(t, 2., testutil.ToFloat64(f.api.metrics.requests.Total.WithLabelValues("/loki/api/v1/query_range", "503")))
	require.Equal(t, 1., testutil.ToFloat64(f.api.metrics.requests.Total.WithLabelValues("/loki/api/v1/query_range", "500")))
}

func TestLabelsAndSeries(t *testing.T) {
	f := newFixture(t, Config{})
	span := url.Values{"start": {ns(0)}, "end": {ns(60)}}
	f.q.ResetSelects()
	code, body := f.get(t, "/loki/api/v1/labels", span)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"success","data":["app","env"]}`, body)
	code, body = f.get(t, "/loki/api/v1/labels", url.Values{"start": {ns(0)}, "end": {ns(60)}, "query": {`{app="web"}`}})
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"success","data":["app"]}`, body)
	// The range bounds which streams count: only prod has entries after 26s.
	code, body = f.get(t, "/loki/api/v1/label/env/values", url.Values{"start": {ns(26)}, "end": {ns(60)}})
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"success","data":["prod"]}`, body)
	code, body = f.get(t, "/loki/api/v1/label/app/values", span)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"success","data":["api","web"]}`, body)
	code, body = f.get(t, "/loki/api/v1/label/nope/values", span)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"success","data":[]}`, body)

	code, body = f.get(t, "/loki/api/v1/series", url.Values{"start": {ns(0)}, "end": {ns(60)}, "match[]": {`{app="web"}`, `{env="dev"}`, `{app="web"}`}})
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"success","data":[{"app":"api","env":"dev"},{"app":"web"}]}`, body)
	code, body = f.get(t, "/loki/api/v1/series", span)
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"status":"success","data":[{"app":"api","env":"dev"},{"app":"api","env":"prod"},{"app":"web"}]}`, body)

	code, body = f.get(t, "/loki/api/v1/index/stats", url.Values{"start": {ns(0)}, "end": {ns(60)}, "query": {`sum(rate({app="api"} |= "x" [1m]))`}})
	require.Equal(t, http.StatusOK, code)
	require.JSONEq(t, `{"streams":2,"chunks":0,"bytes":0,"entries":0}`, body)
}

func TestAuxiliaryEndpoints(t *testing.T) {
	f := newFixture(t, Config{})
	for _, tc := range []struct {
		path   string
		params url.Values
		want   string
	}{
		{"/loki/api/v1/status/buildinfo", nil, `{"version":"3.4.0","revision":"abc","branch":"","buildUser":"","buildDate":"","goVersion":"go1.26"}`},
		{"/loki/api/v1/index/volume", url.Values{"query": {`{app="api"}`}}, `{"status":"success","data":{"resultType":"vector","result":[]}}`},
		{"/loki/api/v1/index/volume_range", url.Values{"query": {`{app="api"}`}}, `{"status":"success","data":{"resultType":"matrix","result":[]}}`},
		{"/loki/api/v1/detected_labels", url.Values{"query": {`{app="api"}`}}, `{"detectedLabels":[]}`},
		{"/loki/api/v1/detected_fields", url.Values{"query": {`{app="api"}`}, "limit": {"10"}}, `{"fields":[],"limit":10}`},
		{"/loki/api/v1/patterns", url.Values{"query": {`{app="api"}`}}, `{"status":"success","data":[]}`},
		{"/loki/api/v1/format_query", url.Values{"query": {`sum(rate({app="api"}|="x"[1m]))by(env)`}}, `{"status":"success","data":"sum by (env) (rate({app=\"api\"} |= \"x\" [1m]))"}`},
	} {
		code, body := f.get(t, tc.path, tc.params)
		require.Equal(t, http.StatusOK, code, tc.path)
		require.JSONEq(t, tc.want, body, tc.path)
	}
	resp, err := f.srv.Client().Post(f.srv.URL+"/loki/api/v1/status/buildinfo", "text/plain", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestParams(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1704067200":                     t0,
		"1704067200.5":                   t0.Add(500 * time.Millisecond),
		"1704067200000000001":            t0.Add(1),
		"2024-01-01T00:00:00.25Z":        t0.Add(250 * time.Millisecond),
		"2024-01-01T01:00:00.000+01:00":  t0,
		"":                               t0.Add(time.Hour),
		"1704067200123456789":            t0.Add(123456789),
		strconv.Itoa(int(t0.Unix()) - 1): t0.Add(-time.Second),
	} {
		got, err := parseTimestamp(in, t0.Add(time.Hour))
		require.NoError(t, err, in)
		require.True(t, want.Equal(got), "%s: %s", in, got)
	}
	_, err := parseTimestamp("1e400.0", t0)
	require.Error(t, err)

	for _, tc := range []struct {
		in    string
		start time.Duration
		want  time.Duration
	}{
		{"", time.Hour, 14 * time.Second}, // 3600/250 = 14.4 → 14
		{"", time.Minute, time.Second},    // at least 1s
		{"0.5", time.Hour, 500 * time.Millisecond},
		{"15s", time.Hour, 15 * time.Second},
		{"1m30s", time.Hour, 90 * time.Second},
	} {
		got, err := parseStep(tc.in, t0, t0.Add(tc.start))
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}

	r := httptest.NewRequest(http.MethodGet, "/?since=10m&end="+unix(60), nil)
	require.NoError(t, r.ParseForm())
	start, end, err := bounds(r, t0)
	require.NoError(t, err)
	require.True(t, end.Equal(t0.Add(time.Minute)))
	// end is in the future of now (t0): since counts back from now.
	require.True(t, start.Equal(t0.Add(-10*time.Minute)), start)
}

func TestConfig(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, c.Validate())
	require.Equal(t, DefaultTailPollInterval, c.TailPollInterval)
	err := (&Config{TailLateness: -1}).Validate()
	for _, field := range []string{"query.loki.timeout", "query.loki.tail_poll_interval", "query.loki.tail_max_duration", "query.loki.tail_lateness"} {
		require.ErrorContains(t, err, field)
	}
	_, err = New(Config{}, logqltest.New(), logql.NewEngine(logql.EngineOpts{}), BuildInfo{}, nil, nil)
	require.ErrorContains(t, err, "lokiapi config")
}

func TestEncodeString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           `"plain"`,
		"q\"b\\s/":        `"q\"b\\s/"`,
		"\n\r\t\x01":      `"\n\r\t\u0001"`,
		"bad\xffutf8":     `"bad\ufffdutf8"`,
		"é😀":              `"é😀"`,
		"line\u2028break": `"line\u2028break"`,
		"<a&b>":           `"<a&b>"`,
	} {
		got := string(appendString(nil, in))
		require.Equal(t, want, got)
		var back string
		require.NoError(t, json.Unmarshal([]byte(got), &back))
		require.Equal(t, strings.ToValidUTF8(in, "\ufffd"), back)
	}
}

// TestAppendPoint pins the bytes of [<seconds>, "<value>"]: the time as model.Time prints
// it, the value in plain notation.
func TestAppendPoint(t *testing.T) {
	for _, ts := range []int64{0, 1, 1100, -1500, 1704067200123, math.MaxInt64, math.MinInt64} {
		for v, want := range map[float64]string{1: "1", -0.5: "-0.5", 1e21: "1000000000000000000000", 1e-7: "0.0000001",
			math.Inf(1): "+Inf", math.Inf(-1): "-Inf", math.NaN(): "NaN"} {
			require.Equal(t, `[`+model.Time(ts).String()+`,"`+want+`"]`, string(appendPoint(nil, ts, v)))
		}
	}
}
