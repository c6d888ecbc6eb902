package promapi

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/storage/metrics"
)

// TestLimits runs each limit of the Prometheus API against the TSDB fixture: a request
// over it fails with Prometheus's 422 "execution" (503 "timeout") naming the flag and is
// counted; the same request shape under it answers as before.
func TestLimits(t *testing.T) {
	rangeParams := func(q string) url.Values {
		return url.Values{"query": {q}, "start": {sec(t0 - 60_000)}, "end": {sec(t0)}, "step": {"15s"}}
	}
	for _, tc := range []struct {
		name      string
		limits    Limits
		engine    promql.QueryEngine
		timeout   time.Duration
		path      string
		params    url.Values
		code      int
		errorType ErrorType
		want      string // in the error
		limit     string // counted, when the request fails
	}{
		{
			name: "series: under", limits: Limits{MaxFetchedSeries: 3},
			path: "/query_range", params: rangeParams("up"), code: http.StatusOK,
		},
		{
			name: "series: over", limits: Limits{MaxFetchedSeries: 2},
			path: "/query_range", params: rangeParams("up"),
			code: http.StatusUnprocessableEntity, errorType: ErrorExec, want: "(limit -query.max-fetched-series-per-query=2)", limit: limits.Series,
		},
		{
			name: "series: summed over selectors", limits: Limits{MaxFetchedSeries: 4},
			path: "/query", params: url.Values{"query": {"up + on() group_left http_requests_total{code=\"200\"} + on() group_left http_requests_total{code=\"500\"}"}, "time": {sec(t0)}},
			code: http.StatusUnprocessableEntity, errorType: ErrorExec, want: "maximum number of series fetched", limit: limits.Series,
		},
		{
			name: "series endpoint: over", limits: Limits{MaxFetchedSeries: 2},
			path: "/series", params: url.Values{"match[]": {"up"}},
			code: http.StatusUnprocessableEntity, errorType: ErrorExec, want: "-query.max-fetched-series-per-query", limit: limits.Series,
		},
		{
			name: "series endpoint: a smaller limit truncates", limits: Limits{MaxFetchedSeries: 2},
			path: "/series", params: url.Values{"match[]": {"up"}, "limit": {"1"}}, code: http.StatusOK,
		},
		{
			name: "label values: over", limits: Limits{MaxFetchedSeries: 2},
			path: "/label/__name__/values", code: http.StatusUnprocessableEntity, errorType: ErrorExec, want: "-query.max-fetched-series-per-query", limit: limits.Series,
		},
		{
			name: "label values: under", limits: Limits{MaxFetchedSeries: 10},
			path: "/label/__name__/values", code: http.StatusOK,
		},
		{
			// Samples are charged 32 at a time ahead of reading: 512 bytes a series.
			name: "bytes: under", limits: Limits{MaxFetchedBytes: 600},
			path: "/query_range", params: rangeParams(`up{instance="a"}`), code: http.StatusOK,
		},
		{
			name: "bytes: over", limits: Limits{MaxFetchedBytes: 600},
			path: "/query_range", params: rangeParams("up"),
			code: http.StatusUnprocessableEntity, errorType: ErrorExec, want: "(limit -query.max-fetched-chunk-bytes-per-query=600)", limit: limits.Bytes,
		},
		{
			name: "samples: over", limits: Limits{MaxSamples: 2}, engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 2, Timeout: time.Minute}),
			path: "/query_range", params: rangeParams("up"),
			code: http.StatusUnprocessableEntity, errorType: ErrorExec, want: "query processing would load too many samples into memory in query execution (limit -query.max-samples=2)", limit: limits.Samples,
		},
		{
			name: "timeout", timeout: time.Nanosecond,
			path: "/query_range", params: rangeParams("up"),
			code: http.StatusServiceUnavailable, errorType: ErrorTimeout, want: "(limit -query.promapi.timeout=1ns)", limit: limits.Timeout,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureOpts{
				cfg: func(c *Config) {
					c.Limits = tc.limits
					if tc.timeout > 0 {
						c.Timeout = tc.timeout
					}
				},
				engine: tc.engine,
				wrap: func(q storage.Queryable) storage.Queryable {
					return limits.Queryable(q, metrics.CountSamples)
				},
			})
			code, body, r := f.do(t, http.MethodGet, tc.path, tc.params)
			require.Equal(t, tc.code, code, body)
			if tc.code == http.StatusOK {
				require.Equal(t, "success", r.Status)
				return
			}
			require.Equal(t, tc.errorType, ErrorType(r.ErrorType), body)
			require.Contains(t, r.Error, tc.want)
			n, err := testutil.GatherAndCount(f.reg, "pharos_query_limited_total")
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Contains(t, gatherText(t, f), `"`+tc.limit+`"`)
		})
	}
}

func gatherText(t *testing.T, f *fixture) string {
	t.Helper()
	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "pharos_query_limited_total" {
			return mf.String()
		}
	}
	return ""
}
