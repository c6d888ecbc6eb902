package tempoapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// blockingTraces holds every Search until release is closed.
type blockingTraces struct {
	traces.Querier
	entered chan struct{}
	release chan struct{}
}

func (q *blockingTraces) Search(ctx context.Context, p traces.SearchParams) ([]traces.TraceSummary, error) {
	select {
	case q.entered <- struct{}{}:
	default:
	}
	select {
	case <-q.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return q.Querier.Search(ctx, p)
}

// slowTraces answers only when the request's context ends.
type slowTraces struct{ traces.Querier }

func (q slowTraces) Search(ctx context.Context, _ traces.SearchParams) ([]traces.TraceSummary, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestLimits runs each limit of the Tempo and Jaeger APIs: a request over
// it gets Tempo's plain-text error naming the flag, and is counted.
func TestLimits(t *testing.T) {
	var m ptrace.ProtoMarshaler
	traceBytes := int64(m.TracesSize(testTraces())) // an upper bound of one trace
	for _, tc := range []struct {
		name  string
		cfg   func(*Config)
		wrap  func(traces.Querier) traces.Querier
		block bool
		path  string
		code  int
		want  string
		limit string
	}{
		{name: "traces: under", cfg: func(c *Config) { c.MaxResultLimit = 50 }, path: "/api/search?limit=50", code: http.StatusOK},
		{name: "traces: over", cfg: func(c *Config) { c.MaxResultLimit = 50 }, path: "/api/search?limit=51",
			code: http.StatusBadRequest, want: "invalid limit: 51 exceeds the maximum of 50 traces per search (limit -query.tempo.max-result-limit=50)", limit: "max_traces"},
		{name: "bytes: under", cfg: func(c *Config) { c.MaxFetchedBytes = traceBytes }, path: "/api/traces/" + traceA, code: http.StatusOK},
		{name: "bytes: over", cfg: func(c *Config) { c.MaxFetchedBytes = 10 }, path: "/api/traces/" + traceA,
			code: http.StatusBadRequest, want: "(limit -query.tempo.max-fetched-bytes-per-query=10)", limit: "max_bytes"},
		{name: "bytes: over, jaeger", cfg: func(c *Config) { c.MaxFetchedBytes = 10 }, path: "/jaeger/api/traces/" + traceA,
			code: http.StatusBadRequest, want: "-query.tempo.max-fetched-bytes-per-query", limit: "max_bytes"},
		{name: "timeout", cfg: func(c *Config) { c.Timeout = time.Millisecond }, wrap: func(q traces.Querier) traces.Querier { return slowTraces{q} }, path: "/api/search",
			code: http.StatusGatewayTimeout, want: "request timed out, narrow the time range or the query (limit -query.tempo.timeout=1ms)", limit: "timeout"},
		{name: "concurrency", cfg: func(c *Config) { c.MaxConcurrent, c.MaxQueueWait = 1, 10*time.Millisecond }, block: true, path: "/api/search",
			code: http.StatusTooManyRequests, want: "too many queries in flight", limit: "concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultConfig()
			tc.cfg(&cfg)
			bq := &blockingTraces{entered: make(chan struct{}, 1), release: make(chan struct{})}
			wrap := tc.wrap
			if tc.block {
				wrap = func(q traces.Querier) traces.Querier { bq.Querier = q; return bq }
			}
			f := newFixture(t, cfg, wrap)
			held := make(chan int, 1)
			if tc.block {
				go func() {
					resp, err := f.srv.Client().Get(f.srv.URL + tc.path)
					if err != nil {
						held <- 0
						return
					}
					resp.Body.Close()
					held <- resp.StatusCode
				}()
				<-bq.entered
			}
			r := f.get(t, tc.path)
			if tc.block {
				close(bq.release)
				require.Equal(t, http.StatusOK, <-held, "the query holding the slot")
				require.Equal(t, "1", r.header.Get("Retry-After"))
			}
			require.Equal(t, tc.code, r.code, string(r.body))
			if tc.code == http.StatusOK {
				return
			}
			require.Contains(t, string(r.body), tc.want)
			n, err := testutil.GatherAndCount(f.reg, "pharos_query_limited_total")
			require.NoError(t, err)
			require.Equal(t, 1, n)
			mfs, err := f.reg.Gather()
			require.NoError(t, err)
			var text strings.Builder
			for _, mf := range mfs {
				if mf.GetName() == "pharos_query_limited_total" {
					text.WriteString(mf.String())
				}
			}
			require.Contains(t, text.String(), `"`+tc.limit+`"`)
		})
	}
}
