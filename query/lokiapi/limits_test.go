package lokiapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// blockingQuerier holds every Select until release is closed, telling
// entered when one has started.
type blockingQuerier struct {
	logs.Querier
	entered chan struct{}
	release chan struct{}
}

func (q *blockingQuerier) Select(ctx context.Context, p logs.SelectParams) ([]logs.Stream, error) {
	select {
	case q.entered <- struct{}{}:
	default:
	}
	select {
	case <-q.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return q.Querier.Select(ctx, p)
}

// TestLimits runs each limit of the Loki API over 40 lines of 100 bytes in
// 4 streams: a request over it gets Loki's plain-text error naming the
// flag, and is counted.
func TestLimits(t *testing.T) {
	store := logqltest.New()
	line := strings.Repeat("x", 100)
	var streams []logs.Stream
	for s := range 4 {
		st := logs.Stream{Labels: labels.FromStrings("app", "api", "pod", string(rune('a'+s)))}
		for i := range 10 {
			st.Entries = append(st.Entries, logs.Entry{Timestamp: t0.Add(time.Duration(i) * time.Second).UnixNano(), Line: line})
		}
		streams = append(streams, st)
	}
	require.NoError(t, store.Append("t1", streams))
	rangeParams := func(q string, extra ...string) url.Values {
		v := url.Values{"query": {q}, "start": {unix(0)}, "end": {unix(60)}, "step": {"1s"}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		opts   logql.EngineOpts
		cfg    Config
		block  bool // a query holds the only slot
		path   string
		params url.Values
		code   int
		want   string
		limit  string
	}{
		{name: "log lines: under", opts: logql.EngineOpts{MaxEntries: 40}, path: "/loki/api/v1/query_range", params: rangeParams(`{app="api"}`, "limit", "40"), code: http.StatusOK},
		{name: "log lines: over", opts: logql.EngineOpts{MaxEntries: 39}, path: "/loki/api/v1/query_range", params: rangeParams(`{app="api"}`, "limit", "40"),
			code: http.StatusBadRequest, want: "max entries limit per query exceeded, limit > max_entries_limit_per_query (40 > 39) (limit -query.logql.max-entries-limit-per-query=39)", limit: "max_log_lines"},
		{name: "tail lines: over", opts: logql.EngineOpts{MaxEntries: 39}, path: "/loki/api/v1/tail", params: url.Values{"query": {`{app="api"}`}, "limit": {"40"}},
			code: http.StatusBadRequest, want: "-query.logql.max-entries-limit-per-query=39", limit: "max_log_lines"},
		{name: "series: under", opts: logql.EngineOpts{MaxSeries: 4}, path: "/loki/api/v1/query_range", params: rangeParams(`count_over_time({app="api"}[1m])`), code: http.StatusOK},
		{name: "series: over", opts: logql.EngineOpts{MaxSeries: 3}, path: "/loki/api/v1/query_range", params: rangeParams(`count_over_time({app="api"}[1m])`),
			code: http.StatusBadRequest, want: "maximum number of series (3) reached for a single query", limit: "max_series"},
		{name: "bytes: under", opts: logql.EngineOpts{MaxBytesRead: 4000}, path: "/loki/api/v1/query_range", params: rangeParams(`sum(count_over_time({app="api"}[1m]))`), code: http.StatusOK},
		{name: "bytes: over, metric query", opts: logql.EngineOpts{MaxBytesRead: 3999}, path: "/loki/api/v1/query_range", params: rangeParams(`sum(count_over_time({app="api"}[1m]))`),
			code: http.StatusBadRequest, want: "(limit -query.logql.max-fetched-bytes-per-query=3999)", limit: "max_bytes"},
		{name: "bytes: over, log query", opts: logql.EngineOpts{MaxBytesRead: 1000}, path: "/loki/api/v1/query_range", params: rangeParams(`{app="api"}`, "limit", "40"),
			code: http.StatusBadRequest, want: "the query would read too many bytes", limit: "max_bytes"},
		{name: "timeout", opts: logql.EngineOpts{Timeout: time.Nanosecond}, path: "/loki/api/v1/query_range", params: rangeParams(`{app="api"}`),
			code: http.StatusGatewayTimeout, want: "Request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed. (limit -query.logql.timeout=1ns)", limit: "timeout"},
		{name: "concurrency", cfg: Config{MaxConcurrent: 1, MaxQueueWait: 10 * time.Millisecond}, block: true, path: "/loki/api/v1/query_range", params: rangeParams(`{app="api"}`),
			code: http.StatusTooManyRequests, want: "too many queries in flight", limit: "concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Timeout: time.Minute, TailPollInterval: 10 * time.Millisecond, TailMaxDuration: time.Minute,
				MaxConcurrent: tc.cfg.MaxConcurrent, MaxQueueWait: tc.cfg.MaxQueueWait}
			var q logs.Querier = store
			bq := &blockingQuerier{Querier: store, entered: make(chan struct{}, 1), release: make(chan struct{})}
			if tc.block {
				q = bq
			}
			reg := prometheus.NewRegistry()
			api, err := New(cfg, q, logql.NewEngine(tc.opts), BuildInfo{}, nil, reg)
			require.NoError(t, err)
			api.now = func() time.Time { return t0.Add(time.Minute) }
			mux := http.NewServeMux()
			api.Register(mux)
			srv := httptest.NewServer(mux)
			t.Cleanup(func() { srv.Close(); api.Stop() })
			f := &fixture{api: api, srv: srv, reg: reg}

			held := make(chan int, 1)
			if tc.block {
				go func() {
					resp, err := srv.Client().Get(srv.URL + tc.path + "?" + tc.params.Encode())
					if err == nil {
						resp.Body.Close()
						held <- resp.StatusCode
						return
					}
					held <- 0
				}()
				<-bq.entered
			}
			code, body := f.get(t, tc.path, tc.params)
			if tc.block {
				close(bq.release)
				require.Equal(t, http.StatusOK, <-held, "the query holding the slot")
			}
			require.Equal(t, tc.code, code, body)
			if tc.code == http.StatusOK {
				return
			}
			require.Contains(t, body, tc.want)
			if tc.block {
				n, err := testutil.GatherAndCount(reg, "pharos_query_limited_total")
				require.NoError(t, err)
				require.Equal(t, 1, n)
			}
			require.Contains(t, limitedText(t, reg), `"`+tc.limit+`"`)
		})
	}
}

func limitedText(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "pharos_query_limited_total" {
			return mf.String()
		}
	}
	return ""
}
