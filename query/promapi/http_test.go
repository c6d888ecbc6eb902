package promapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"
)

// vals builds url.Values from key, value pairs; a key may repeat.
func vals(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// TestSuccessShapes pins the exact bytes of each endpoint's success response: clients parse
// these, so a change in shape is a compatibility break.
func TestSuccessShapes(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	now := sec(t0)
	tests := []struct {
		name   string
		path   string
		params url.Values
		want   string
	}{
		{
			name:   "instant vector",
			path:   "/query",
			params: vals("query", "up", "time", now),
			want: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1700000000,"1"]},` +
				`{"metric":{"__name__":"up","instance":"b","job":"api"},"value":[1700000000,"0"]},` +
				`{"metric":{"__name__":"up","instance":"c","job":"db"},"value":[1700000000,"1"]}]}}`,
		},
		{
			name:   "instant vector at a fractional time defaults lookback",
			path:   "/query",
			params: vals("query", `http_requests_total{code="500"}`, "time", "1700000000.25"),
			want: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"http_requests_total","code":"500","job":"api"},"value":[1700000000.250,"2"]}]}}`,
		},
		{
			name:   "time defaults to now",
			path:   "/query",
			params: vals("query", `up{instance="c"}`),
			want: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"up","instance":"c","job":"db"},"value":[1700000000,"1"]}]}}`,
		},
		{
			name:   "scalar",
			path:   "/query",
			params: vals("query", "1/3", "time", "1700000000.781"),
			want:   `{"status":"success","data":{"resultType":"scalar","result":[1700000000.781,"0.3333333333333333"]}}`,
		},
		{
			name:   "scalar infinity",
			path:   "/query",
			params: vals("query", "-1/0", "time", now),
			want:   `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"-Inf"]}}`,
		},
		{
			name:   "string",
			path:   "/query",
			params: vals("query", `"a \"quoted\" <string>"`, "time", now),
			want:   `{"status":"success","data":{"resultType":"string","result":[1700000000,"a \"quoted\" \u003cstring\u003e"]}}`,
		},
		{
			name:   "escaped labels and exponent values",
			path:   "/query",
			params: vals("query", "weird", "time", now),
			want: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"weird","k8s.io/app":"shop","path":"a\"b<c>&` + "\u2028" + `/é"},"value":[1700000000,"1e-07"]}]}}`,
		},
		{
			name:   "native histogram",
			path:   "/query",
			params: vals("query", "rpc_latency_seconds", "time", now),
			want: `{"status":"success","data":{"resultType":"vector","result":[` +
				`{"metric":{"__name__":"rpc_latency_seconds","job":"api"},"histogram":[1700000000,` +
				`{"count":"13","sum":"13.5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","6"],[0,"1","2","6"]]}]}]}}`,
		},
		{
			name:   "range matrix",
			path:   "/query_range",
			params: vals("query", `up{job="db"}`, "start", sec(t0-30_000), "end", now, "step", "15"),
			want: `{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"__name__":"up","instance":"c","job":"db"},"values":[[1699999970,"1"],[1699999985,"1"],[1700000000,"1"]]}]}}`,
		},
		{
			name:   "range matrix of native histograms",
			path:   "/query_range",
			params: vals("query", "rpc_latency_seconds", "start", sec(t0-15_000), "end", now, "step", "15s"),
			want: `{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"__name__":"rpc_latency_seconds","job":"api"},"histograms":[` +
				`[1699999985,{"count":"11","sum":"11.25","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","5"],[0,"1","2","5"]]}],` +
				`[1700000000,{"count":"13","sum":"13.5","buckets":[[3,"-0.001","0.001","1"],[0,"0.5","1","6"],[0,"1","2","6"]]}]]}]}}`,
		},
		{
			name:   "range with an RFC 3339 start",
			path:   "/query_range",
			params: vals("query", `http_requests_total{code="200"}`, "start", "2023-11-14T22:13:05Z", "end", "2023-11-14T22:13:20.000Z", "step", "15"),
			want: `{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"__name__":"http_requests_total","code":"200","job":"api"},"values":[[1699999985,"30"],[1700000000,"40"]]}]}}`,
		},
		{
			name:   "empty matrix",
			path:   "/query_range",
			params: vals("query", "nothing_here", "start", now, "end", now, "step", "1"),
			want:   `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		},
		{
			name:   "series",
			path:   "/series",
			params: vals("match[]", "up"),
			want: `{"status":"success","data":[` +
				`{"__name__":"up","instance":"a","job":"api"},` +
				`{"__name__":"up","instance":"b","job":"api"},` +
				`{"__name__":"up","instance":"c","job":"db"}]}`,
		},
		{
			name:   "series union of several match[]",
			path:   "/series",
			params: vals("match[]", `up{job="db"}`, "match[]", `{code="500"}`, "match[]", `up{instance="c"}`),
			want: `{"status":"success","data":[` +
				`{"__name__":"http_requests_total","code":"500","job":"api"},` +
				`{"__name__":"up","instance":"c","job":"db"}]}`,
		},
		{
			name:   "series none",
			path:   "/series",
			params: vals("match[]", "nothing_here", "start", now, "end", now),
			want:   `{"status":"success","data":[]}`,
		},
		{
			name:   "labels",
			path:   "/labels",
			params: nil,
			want:   `{"status":"success","data":["__name__","code","instance","job","k8s.io/app","path"]}`,
		},
		{
			name:   "labels of a selection",
			path:   "/labels",
			params: vals("match[]", "up", "match[]", "weird"),
			want:   `{"status":"success","data":["__name__","instance","job","k8s.io/app","path"]}`,
		},
		{
			name:   "label values",
			path:   "/label/job/values",
			params: nil,
			want:   `{"status":"success","data":["api","db"]}`,
		},
		{
			name:   "metric names",
			path:   "/label/__name__/values",
			params: nil,
			want:   `{"status":"success","data":["http_requests_total","rpc_latency_seconds","up","weird"]}`,
		},
		{
			name:   "label values of a selection",
			path:   "/label/instance/values",
			params: vals("match[]", `up{job="api"}`),
			want:   `{"status":"success","data":["a","b"]}`,
		},
		{
			name:   "label values of a UTF-8 name escaped as U__",
			path:   "/label/U__k8s_2e_io_2f_app/values",
			params: nil,
			want:   `{"status":"success","data":["shop"]}`,
		},
		{
			name:   "label values of a name with a percent-encoded slash",
			path:   "/label/k8s.io%2Fapp/values",
			params: nil,
			want:   `{"status":"success","data":["shop"]}`,
		},
		{
			name:   "label values unknown is an empty list",
			path:   "/label/nope/values",
			params: nil,
			want:   `{"status":"success","data":[]}`,
		},
		{
			name:   "metadata",
			path:   "/metadata",
			params: nil,
			want: `{"status":"success","data":{` +
				`"http_requests_total":[{"type":"counter","unit":"","help":"Requests served."},{"type":"counter","unit":"","help":"Requests."}],` +
				`"rpc_latency_seconds":[{"type":"histogram","unit":"seconds","help":"RPC latency."}],` +
				`"up":[{"type":"gauge","unit":"","help":"Whether the target is up."}]}}`,
		},
		{
			name:   "metadata of one metric",
			path:   "/metadata",
			params: vals("metric", "up"),
			want:   `{"status":"success","data":{"up":[{"type":"gauge","unit":"","help":"Whether the target is up."}]}}`,
		},
		{
			name:   "metadata limits",
			path:   "/metadata",
			params: vals("limit", "1", "limit_per_metric", "1"),
			want:   `{"status":"success","data":{"http_requests_total":[{"type":"counter","unit":"","help":"Requests served."}]}}`,
		},
		{
			name:   "exemplars",
			path:   "/query_exemplars",
			params: vals("query", `sum(rate(http_requests_total[5m]))`, "start", sec(t0-60_000), "end", now),
			want: `{"status":"success","data":[{"seriesLabels":{"__name__":"http_requests_total","code":"200","job":"api"},` +
				`"exemplars":[{"labels":{"trace_id":"4bf92f3577b34da6"},"value":"42","timestamp":1699999999.500}]}]}`,
		},
		{
			name:   "exemplars without selectors",
			path:   "/query_exemplars",
			params: vals("query", "1+1"),
			want:   `{"status":"success","data":[]}`,
		},
		{
			name:   "buildinfo",
			path:   "/status/buildinfo",
			params: nil,
			want: `{"status":"success","data":{"version":"1.2.3","revision":"abc123","branch":"main",` +
				`"buildUser":"ci@pharos","buildDate":"20260101-00:00:00","goVersion":"go1.26.8"}}`,
		},
		{
			name:   "format_query",
			path:   "/format_query",
			params: vals("query", "sum(rate(up[5m]))by(job)"),
			want:   `{"status":"success","data":"sum by (job) (rate(up[5m]))"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				code, body, _ := f.do(t, method, tt.path, tt.params)
				require.Equal(t, http.StatusOK, code, "%s: %s", method, body)
				require.Equal(t, tt.want, body, method)
			}
		})
	}
}

// TestWarnings checks that PromQL annotations and truncation land in "warnings" and
// "infos", and that both are left out when empty.
func TestWarnings(t *testing.T) {
	f := newFixture(t, fixtureOpts{cfg: func(c *Config) { c.MaxSeriesLimit = 3 }})
	now := sec(t0)
	tests := []struct {
		name      string
		path      string
		params    url.Values
		data      string
		warnings  []string
		wantInfos []string
	}{
		{
			name:     "promql warning",
			path:     "/query",
			params:   vals("query", `quantile(2, up{job="db"})`, "time", now),
			data:     `{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"+Inf"]}]}`,
			warnings: []string{"PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"},
		},
		{
			name:      "promql info",
			path:      "/query",
			params:    vals("query", `rate(up{job="db"}[1m])`, "time", now),
			data:      `{"resultType":"vector","result":[{"metric":{"instance":"c","job":"db"},"value":[1700000000,"0"]}]}`,
			wantInfos: []string{`PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "up" (1:6)`},
		},
		{
			name:     "query limit",
			path:     "/query",
			params:   vals("query", "up", "time", now, "limit", "1"),
			data:     `{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"value":[1700000000,"1"]}]}`,
			warnings: []string{"results truncated due to limit"},
		},
		{
			name:     "query_range limit",
			path:     "/query_range",
			params:   vals("query", "up", "start", now, "end", now, "step", "1", "limit", "1"),
			data:     `{"resultType":"matrix","result":[{"metric":{"__name__":"up","instance":"a","job":"api"},"values":[[1700000000,"1"]]}]}`,
			warnings: []string{"results truncated due to limit"},
		},
		{
			name:     "deprecated stats value",
			path:     "/query",
			params:   vals("query", `up{job="db"}`, "time", now, "stats", "yes"),
			data:     "", // Carries statistics; TestQueryStats looks at those.
			warnings: []string{`value "yes" for parameter "stats" is deprecated and will be rejected in the next major release, use "true" or "all"`},
		},
		{
			name:   "query limit not reached",
			path:   "/query",
			params: vals("query", `up{job="db"}`, "time", now, "limit", "1"),
			data:   `{"resultType":"vector","result":[{"metric":{"__name__":"up","instance":"c","job":"db"},"value":[1700000000,"1"]}]}`,
		},
		{
			name:     "series limit",
			path:     "/series",
			params:   vals("match[]", "up", "limit", "2"),
			data:     `[{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"}]`,
			warnings: []string{"results truncated due to limit"},
		},
		{
			name:   "series exactly at the limit",
			path:   "/series",
			params: vals("match[]", "up", "limit", "3"),
			data:   `[{"__name__":"up","instance":"a","job":"api"},{"__name__":"up","instance":"b","job":"api"},{"__name__":"up","instance":"c","job":"db"}]`,
		},
		{
			name:     "labels capped by MaxSeriesLimit",
			path:     "/labels",
			params:   nil,
			data:     `["__name__","code","instance"]`,
			warnings: []string{"results truncated due to limit"},
		},
		{
			name:     "limit above MaxSeriesLimit is capped",
			path:     "/label/__name__/values",
			params:   vals("limit", "100"),
			data:     `["http_requests_total","rpc_latency_seconds","up"]`,
			warnings: []string{"results truncated due to limit"},
		},
		{
			name:     "label values limit",
			path:     "/label/job/values",
			params:   vals("limit", "1"),
			data:     `["api"]`,
			warnings: []string{"results truncated due to limit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, method := range []string{http.MethodGet, http.MethodPost} {
				code, body, r := f.do(t, method, tt.path, tt.params)
				require.Equal(t, http.StatusOK, code, body)
				require.Equal(t, "success", r.Status)
				if tt.data != "" {
					require.JSONEq(t, tt.data, string(r.Data), body)
				}
				require.Equal(t, tt.warnings, r.Warnings)
				require.Equal(t, tt.wantInfos, r.Infos)
				require.Equal(t, len(tt.warnings) > 0, strings.Contains(body, `"warnings":`), body)
				require.Equal(t, len(tt.wantInfos) > 0, strings.Contains(body, `"infos":`), body)
			}
		})
	}
}

// TestErrors checks each error type with its status code and Prometheus's wording.
func TestErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	now := sec(t0)
	tests := []struct {
		name    string
		method  string // empty: both GET and POST
		path    string
		params  url.Values
		code    int
		errType ErrorType
		errMsg  string // the whole message, or a prefix ending in "…"
	}{
		{"bad time", "", "/query", vals("query", "up", "time", "yesterday"), 400, ErrorBadData,
			`invalid parameter "time": invalid time value for 'time': cannot parse "yesterday" to a valid timestamp`},
		{"time out of range", "", "/query", vals("query", "up", "time", "1e300"), 400, ErrorBadData,
			`invalid parameter "time": invalid time value for 'time': cannot parse "1e300" to a valid timestamp`},
		{"NaN time", "", "/query", vals("query", "up", "time", "NaN"), 400, ErrorBadData,
			`invalid parameter "time": invalid time value for 'time': cannot parse "NaN" to a valid timestamp`},
		{"missing start", "", "/query_range", vals("query", "up", "end", now, "step", "15"), 400, ErrorBadData,
			`invalid parameter "start": cannot parse "" to a valid timestamp`},
		{"bad end", "", "/query_range", vals("query", "up", "start", now, "end", "x", "step", "15"), 400, ErrorBadData,
			`invalid parameter "end": cannot parse "x" to a valid timestamp`},
		{"end before start", "", "/query_range", vals("query", "up", "start", now, "end", sec(t0-1), "step", "15"), 400, ErrorBadData,
			`invalid parameter "end": end timestamp must not be before start time`},
		{"bad step", "", "/query_range", vals("query", "up", "start", now, "end", now, "step", "fast"), 400, ErrorBadData,
			`invalid parameter "step": cannot parse "fast" to a valid duration`},
		{"zero step", "", "/query_range", vals("query", "up", "start", now, "end", now, "step", "0"), 400, ErrorBadData,
			`invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer`},
		{"negative step", "", "/query_range", vals("query", "up", "start", now, "end", now, "step", "-1m"), 400, ErrorBadData,
			`invalid parameter "step": cannot parse "-1m" to a valid duration`},
		{"too many points", "", "/query_range", vals("query", "up", "start", "0", "end", "11001", "step", "1"), 400, ErrorBadData,
			`exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)`},
		{"parse error", "", "/query", vals("query", "up{", "time", now), 400, ErrorBadData,
			`invalid parameter "query": 1:4: parse error: unexpected end of input inside braces`},
		{"empty query", "", "/query", vals("time", now), 400, ErrorBadData,
			`invalid parameter "query": unknown position: parse error: no expression found in input`},
		{"range vector in range query", "", "/query_range", vals("query", "up[5m]", "start", now, "end", now, "step", "1"), 400, ErrorBadData,
			`invalid parameter "query": invalid expression type "range vector" for range query, must be Scalar or instant Vector`},
		{"bad limit", "", "/query", vals("query", "up", "limit", "-1"), 400, ErrorBadData,
			`invalid parameter "limit": limit must be non-negative`},
		{"bad timeout", "", "/query", vals("query", "up", "timeout", "soon"), 400, ErrorBadData,
			`invalid parameter "timeout": cannot parse "soon" to a valid duration`},
		{"non-positive timeout", "", "/query", vals("query", "up", "timeout", "0"), 400, ErrorBadData,
			`invalid parameter "timeout": timeout must be positive, got 0s`},
		{"bad lookback_delta", "", "/query", vals("query", "up", "lookback_delta", "x"), 400, ErrorBadData,
			`error parsing lookback delta duration: cannot parse "x" to a valid duration`},
		{"execution error", "", "/query", vals("query", `label_replace(up, "instance", "x", "", "")`, "time", now), 422, ErrorExec,
			`vector cannot contain metrics with the same labelset`},
		{"timeout", "", "/query", vals("query", "up", "time", now, "timeout", "0.000000001"), 503, ErrorTimeout,
			`query timed out in …`},
		{"missing match[]", "", "/series", nil, 400, ErrorBadData, `no match[] parameter provided`},
		{"bad match[]", "", "/series", vals("match[]", "up{"), 400, ErrorBadData,
			`invalid parameter "match[]": 1:4: parse error: unexpected end of input inside braces`},
		{"match[] matching everything", "", "/series", vals("match[]", `{job=~".*"}`), 400, ErrorBadData,
			`invalid parameter "match[]": match[] must contain at least one non-empty matcher`},
		{"labels bad match[]", "", "/labels", vals("match[]", `{job=""}`), 400, ErrorBadData,
			`match[] must contain at least one non-empty matcher`},
		{"labels bad start", "", "/labels", vals("start", "x"), 400, ErrorBadData,
			`invalid parameter "start": invalid time value for 'start': cannot parse "x" to a valid timestamp`},
		{"invalid label name", "", "/label/%ff/values", nil, 400, ErrorBadData, `invalid label name: "\xff"`},
		{"metadata bad limit", "", "/metadata", vals("limit", "x"), 400, ErrorBadData, `limit must be a number`},
		{"metadata bad limit_per_metric", "", "/metadata", vals("limit_per_metric", "x"), 400, ErrorBadData, `limit_per_metric must be a number`},
		{"exemplars end before start", "", "/query_exemplars", vals("query", "up", "start", now, "end", "0"), 400, ErrorBadData,
			`end timestamp must not be before start timestamp`},
		{"exemplars parse error", "", "/query_exemplars", vals("query", "up{"), 400, ErrorBadData,
			`1:4: parse error: unexpected end of input inside braces`},
		{"format_query parse error", "", "/format_query", vals("query", "sum("), 400, ErrorBadData,
			`invalid parameter "query": 1:5: parse error: unclosed left parenthesis`},
		{"unknown endpoint", http.MethodGet, "/nope", nil, 404, ErrorNotFound, `unknown API endpoint /api/v1/nope`},
		{"method not allowed", http.MethodDelete, "/query", nil, 405, ErrorBadData, `method DELETE not allowed`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			methods := []string{http.MethodGet, http.MethodPost}
			if tt.method != "" {
				methods = []string{tt.method}
			}
			for _, method := range methods {
				code, body, r := f.do(t, method, tt.path, tt.params)
				require.Equal(t, tt.code, code, "%s: %s", method, body)
				require.Equal(t, "error", r.Status, body)
				require.Equal(t, string(tt.errType), r.ErrorType, body)
				if prefix, ok := strings.CutSuffix(tt.errMsg, "…"); ok {
					require.True(t, strings.HasPrefix(r.Error, prefix), "%q does not start with %q", r.Error, prefix)
				} else {
					require.Equal(t, tt.errMsg, r.Error)
				}
				// The envelope has exactly Prometheus's fields.
				require.NotContains(t, body, `"data"`)
				require.True(t, strings.HasPrefix(body, `{"status":"error","errorType":`), body)
			}
		})
	}
}

// TestPostEqualsGet checks that a POST form, a GET query string and a mix of the two (URL
// and body merged, as Prometheus does) give identical answers.
func TestPostEqualsGet(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	now := sec(t0)
	requests := []struct {
		path   string
		params url.Values
	}{
		{"/query", vals("query", "sum by (job) (up)", "time", now)},
		{"/query_range", vals("query", "rate(http_requests_total[1m])", "start", sec(t0-60_000), "end", now, "step", "15")},
		{"/series", vals("match[]", "up", "match[]", "http_requests_total")},
		{"/labels", vals("match[]", "http_requests_total")},
		{"/label/code/values", vals("match[]", "http_requests_total")},
		{"/metadata", vals("metric", "up")},
		{"/query_exemplars", vals("query", "http_requests_total")},
		{"/format_query", vals("query", "up+1")},
	}
	for _, rq := range requests {
		t.Run(rq.path, func(t *testing.T) {
			codeGet, get, _ := f.do(t, http.MethodGet, rq.path, rq.params)
			codePost, post, _ := f.do(t, http.MethodPost, rq.path, rq.params)
			require.Equal(t, http.StatusOK, codeGet, get)
			require.Equal(t, codeGet, codePost)
			require.Equal(t, get, post)

			// Split the parameters between the URL and the body.
			inURL, inBody := url.Values{}, url.Values{}
			i := 0
			for k, vs := range rq.params {
				for _, v := range vs {
					if i%2 == 0 {
						inURL.Add(k, v)
					} else {
						inBody.Add(k, v)
					}
					i++
				}
			}
			req, err := http.NewRequest(http.MethodPost, f.baseURL+rq.path+"?"+inURL.Encode(), strings.NewReader(inBody.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := f.client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			mixed, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, get, string(mixed))
		})
	}
}

// TestBodyParamWinsOverURL follows net/http (and so Prometheus): for POST the body's value
// of a parameter comes before the URL's.
func TestBodyParamWinsOverURL(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	req, err := http.NewRequest(http.MethodPost, f.baseURL+"/query?query=1&time="+sec(t0), strings.NewReader("query=2"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := f.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, `{"status":"success","data":{"resultType":"scalar","result":[1700000000,"2"]}}`, string(body))
}

// TestCanceledByClient checks that a request whose client went away cancels the query and
// reports "canceled" with 499.
func TestCanceledByClient(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, path := range []string{"/query?query=up", "/query_range?query=up&start=0&end=100&step=1"} {
		req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/api/v1"+path, nil)
		rec := httptest.NewRecorder()
		f.api.Handler().ServeHTTP(rec, req)
		require.Equal(t, 499, rec.Code, rec.Body.String())
		require.Contains(t, rec.Body.String(), `"errorType":"canceled"`)
	}
}

// failingQueryable fails every read with err.
type failingQueryable struct{ err error }

func (q failingQueryable) Querier(int64, int64) (storage.Querier, error) {
	return failingQuerier(q), nil
}

type failingQuerier struct{ err error }

func (q failingQuerier) Select(context.Context, bool, *storage.SelectHints, ...*labels.Matcher) storage.SeriesSet {
	return storage.ErrSeriesSet(q.err)
}

func (q failingQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, q.err
}

func (q failingQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, q.err
}

func (failingQuerier) Close() error { return nil }

// TestStorageErrors checks how storage failures are reported: an unavailable store is a 503
// "unavailable", anything else an "execution" error (as Prometheus reports storage errors).
func TestStorageErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		err     error
		code    int
		errType ErrorType
	}{
		{"unavailable", errors.Join(ErrUnavailable, errors.New("aggregator replaying WAL")), 503, ErrorUnavailable},
		{"other", errors.New("disk on fire"), 422, ErrorExec},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{queryable: failingQueryable{tt.err}})
			for _, rq := range []struct {
				path   string
				params url.Values
			}{
				{"/query", vals("query", "up")},
				{"/query_range", vals("query", "up", "start", "0", "end", "60", "step", "15")},
				{"/series", vals("match[]", "up")},
				{"/series", vals("match[]", "up", "match[]", "down")},
				{"/labels", nil},
				{"/labels", vals("match[]", "up", "match[]", "down")},
				{"/label/job/values", nil},
			} {
				code, body, r := f.do(t, http.MethodGet, rq.path, rq.params)
				require.Equal(t, tt.code, code, "%s: %s", rq.path, body)
				require.Equal(t, string(tt.errType), r.ErrorType, body)
				require.Contains(t, r.Error, tt.err.Error())
			}
		})
	}
}

// panickingMetadata panics, standing in for any bug below the API.
type panickingMetadata struct{}

func (panickingMetadata) Metadata(context.Context, string, int, int) (map[string][]metadata.Metadata, error) {
	panic("boom")
}

// TestPanicIsInternalError checks that a panic is answered with an internal error and
// counted, not a dropped connection.
func TestPanicIsInternalError(t *testing.T) {
	f := newFixture(t, fixtureOpts{metadata: panickingMetadata{}})
	code, body, r := f.do(t, http.MethodGet, "/metadata", nil)
	require.Equal(t, http.StatusInternalServerError, code, body)
	require.Equal(t, string(ErrorInternal), r.ErrorType)
	require.Equal(t, "internal server error", r.Error)
	require.Equal(t, 1.0, testutil.ToFloat64(f.api.metrics.Total.WithLabelValues("/metadata", "500")))
}

// TestNilSources checks the answers without exemplar and metadata sources.
func TestNilSources(t *testing.T) {
	store := newFixture(t, fixtureOpts{}).store
	api, err := New(Config{Timeout: time.Minute}, store, nil, newEngine(), nil, BuildInfo{}, nil, nil)
	require.NoError(t, err)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}
	for path, want := range map[string]string{
		"/api/v1/query_exemplars?query=up": `{"status":"success","data":[]}`,
		"/api/v1/metadata":                 `{"status":"success","data":{}}`,
		"/api/v1/status/buildinfo":         `{"status":"success","data":{"version":"","revision":"","branch":"","buildUser":"","buildDate":"","goVersion":""}}`,
	} {
		resp, err := client.Get(srv.URL + path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, want, string(body), path)
	}
}

// TestGzip checks that large responses are compressed for clients that ask, small ones are
// not, and both decode to the same JSON.
func TestGzip(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	params := vals("query", `{__name__=~".+"}`, "start", sec(t0-60_000), "end", sec(t0), "step", "1")
	_, plain, _ := f.do(t, http.MethodGet, "/query_range", params)
	require.Greater(t, len(plain), minGzipSize)

	get := func(path string, params url.Values) *http.Response {
		req, err := http.NewRequest(http.MethodGet, f.baseURL+path+"?"+params.Encode(), nil)
		require.NoError(t, err)
		// Setting the header ourselves turns off the transport's transparent decompression.
		req.Header.Set("Accept-Encoding", "gzip, deflate")
		resp, err := f.client.Do(req)
		require.NoError(t, err)
		return resp
	}
	resp := get("/query_range", params)
	defer resp.Body.Close()
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))
	zr, err := gzip.NewReader(resp.Body)
	require.NoError(t, err)
	unzipped, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Equal(t, plain, string(unzipped))

	small := get("/labels", nil)
	defer small.Body.Close()
	require.Empty(t, small.Header.Get("Content-Encoding"))
	b, err := io.ReadAll(small.Body)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(b, []byte(`{"status":"success"`)))
}

// TestAcceptsGzip covers the Accept-Encoding parser.
func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                      false,
		"gzip":                  true,
		"GZIP":                  true,
		"deflate, gzip;q=0.5":   true,
		"gzip;q=0":              false,
		"gzip; q=0.0":           false,
		"br, zstd":              false,
		"identity, gzip ; q=1 ": true,
	} {
		require.Equal(t, want, acceptsGzip(header), header)
	}
}

// TestRequestMetrics checks pharos_query_requests_total and the duration histogram.
func TestRequestMetrics(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.do(t, http.MethodGet, "/query", vals("query", "up"))
	f.do(t, http.MethodPost, "/query", vals("query", "up"))
	f.do(t, http.MethodGet, "/query", vals("query", "up{"))
	f.do(t, http.MethodGet, "/label/job/values", nil)
	f.do(t, http.MethodGet, "/nope", nil)

	require.Equal(t, 2.0, testutil.ToFloat64(f.api.metrics.Total.WithLabelValues("/query", "200")))
	require.Equal(t, 1.0, testutil.ToFloat64(f.api.metrics.Total.WithLabelValues("/query", "400")))
	require.Equal(t, 1.0, testutil.ToFloat64(f.api.metrics.Total.WithLabelValues("/label/:name/values", "200")))
	require.Equal(t, 1.0, testutil.ToFloat64(f.api.metrics.Total.WithLabelValues("other", "404")))

	n, err := testutil.GatherAndCount(f.reg, "pharos_query_request_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 3, n) // One histogram per endpoint label value.

	// A second API on the same registry is a configuration error, reported, not a panic.
	_, err = New(Config{Timeout: time.Second}, f.store, nil, newEngine(), nil, BuildInfo{}, nil, f.reg)
	require.Error(t, err)
}

// TestRegisterOnCallerRouter checks that Register works on a group the caller mounts.
func TestRegisterOnCallerRouter(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	e := gin.New()
	f.api.Register(e.Group("/prometheus/api/v1"))
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/prometheus/api/v1/label/job/values", nil))
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, `{"status":"success","data":["api","db"]}`, rec.Body.String())
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
}

// TestConfigValidate checks that every invalid field is reported with its path.
func TestConfigValidate(t *testing.T) {
	err := (&Config{Timeout: 0, LookbackDelta: -1, MaxSeriesLimit: -1}).Validate()
	require.ErrorContains(t, err, "query.promapi.timeout")
	require.ErrorContains(t, err, "query.promapi.lookback_delta")
	require.ErrorContains(t, err, "query.promapi.max_series_limit")

	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-query.promapi.timeout=30s"}))
	require.NoError(t, c.Validate())
	require.Equal(t, 30*time.Second, c.Timeout)
	require.Equal(t, DefaultLookbackDelta, c.LookbackDelta)

	_, err = New(Config{}, nil, nil, nil, nil, BuildInfo{}, nil, nil)
	require.ErrorContains(t, err, "query.promapi.timeout")
}

// TestQueryStats checks that `stats` adds Prometheus's statistics object to the data.
func TestQueryStats(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	for _, rq := range []struct {
		path   string
		params url.Values
	}{
		{"/query", vals("query", "up", "stats", "true")},
		{"/query_range", vals("query", "up", "start", sec(t0-60_000), "end", sec(t0), "step", "15", "stats", "all")},
	} {
		code, body, r := f.do(t, http.MethodGet, rq.path, rq.params)
		require.Equal(t, http.StatusOK, code, body)
		var data struct {
			ResultType string `json:"resultType"`
			Stats      struct {
				Timings map[string]float64 `json:"timings"`
				Samples map[string]any     `json:"samples"`
			} `json:"stats"`
		}
		require.NoError(t, json.Unmarshal(r.Data, &data))
		require.Contains(t, data.Stats.Timings, "evalTotalTime", body)
		require.Contains(t, data.Stats.Samples, "totalQueryableSamples", body)
	}
	_, body, _ := f.do(t, http.MethodGet, "/query", vals("query", "up"))
	require.NotContains(t, body, `"stats"`)
}

// countingQueryable counts queriers that are open.
type countingQueryable struct {
	storage.Queryable
	open, total atomic.Int64
}

func (c *countingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := c.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	c.total.Add(1)
	return &countingQuerier{Querier: q, parent: c}, nil
}

type countingQuerier struct {
	storage.Querier
	parent *countingQueryable
	closed atomic.Bool
}

func (c *countingQuerier) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.parent.open.Add(-1)
	}
	return c.Querier.Close()
}

// TestQueriersClosed checks that every querier opened for a request, by the API or by the
// engine, is closed again, whether the request succeeded, failed or was truncated.
func TestQueriersClosed(t *testing.T) {
	cq := &countingQueryable{}
	f := newFixture(t, fixtureOpts{queryable: cq})
	cq.Queryable = f.store
	now := sec(t0)
	for _, rq := range []struct {
		path   string
		params url.Values
	}{
		{"/query", vals("query", "up", "time", now)},
		{"/query", vals("query", "up", "time", now, "limit", "1")},
		{"/query", vals("query", `label_replace(up, "instance", "x", "", "")`, "time", now)},
		{"/query_range", vals("query", "rate(http_requests_total[1m])", "start", sec(t0-60_000), "end", now, "step", "15")},
		{"/series", vals("match[]", "up", "limit", "1")},
		{"/series", vals("match[]", "up", "match[]", "weird")},
		{"/labels", vals("match[]", "up", "match[]", "weird")},
		{"/label/job/values", vals("limit", "1")},
	} {
		f.do(t, http.MethodGet, rq.path, rq.params)
	}
	// Finalizers run just after the response is written, so the client may see the answer
	// a moment before the querier is closed.
	require.GreaterOrEqual(t, cq.total.Load(), int64(8))
	require.Eventually(t, func() bool { return cq.open.Load() == 0 }, 5*time.Second, time.Millisecond, "open queriers: %d", cq.open.Load())
}
