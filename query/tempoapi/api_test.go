package tempoapi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

// failing is a querier whose every call fails with err, or panics when
// err is nil.
type failing struct {
	traces.Querier
	err error
}

func (f failing) fail() error {
	if f.err == nil {
		panic("querier bug")
	}
	return f.err
}

func (f failing) Trace(context.Context, string, traces.TraceID, time.Time, time.Time) (ptrace.Traces, error) {
	return ptrace.NewTraces(), f.fail()
}

func (f failing) Search(context.Context, traces.SearchParams) ([]traces.TraceSummary, error) {
	return nil, f.fail()
}

func (f failing) TagNames(context.Context, traces.TagParams) (map[string][]string, error) {
	return nil, f.fail()
}

func (f failing) TagValues(context.Context, string, traces.TagParams) ([]string, error) {
	return nil, f.fail()
}

func (f failing) Services(context.Context, string, time.Time, time.Time) ([]string, error) {
	return nil, f.fail()
}

func (f failing) Operations(context.Context, string, string, time.Time, time.Time) ([]traces.Operation, error) {
	return nil, f.fail()
}

// unavailable says so through a method, as a store that does not import
// this package would.
type unavailable struct{}

func (unavailable) Error() string     { return "no aggregator answered" }
func (unavailable) Unavailable() bool { return true }

func TestErrors(t *testing.T) {
	paths := []string{
		"/api/traces/" + traceA, "/api/v2/traces/" + traceA, "/api/search", "/api/search/tags", "/api/v2/search/tags",
		"/api/search/tag/x/values", "/api/v2/search/tag/name/values",
		"/jaeger/api/services", "/jaeger/api/services/a/operations", "/jaeger/api/operations?service=a",
		"/jaeger/api/traces?service=a", "/jaeger/api/traces?traceID=" + traceA, "/jaeger/api/traces/" + traceA,
	}
	for _, tc := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"ErrUnavailable", fmt.Errorf("read: %w", ErrUnavailable), http.StatusServiceUnavailable, "trace store unavailable"},
		{"Unavailable method", fmt.Errorf("read: %w", unavailable{}), http.StatusServiceUnavailable, "no aggregator answered"},
		{"other", errors.New("disk on fire"), http.StatusInternalServerError, "disk on fire"},
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout, "request timed out"},
		{"panic", nil, http.StatusInternalServerError, "internal server error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, defaultConfig(), func(q traces.Querier) traces.Querier { return failing{q, tc.err} })
			for _, p := range paths {
				r := f.get(t, p)
				require.Equal(t, tc.code, r.code, p)
				require.Contains(t, string(r.body), tc.msg, p)
				if strings.HasPrefix(p, "/jaeger/") {
					require.True(t, strings.HasPrefix(string(r.body), `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":`), p)
				}
			}
			// Only failures that are the store's own show in the log.
			logged := strings.Contains(f.logs.String(), "level=ERROR")
			require.Equal(t, tc.code == http.StatusInternalServerError, logged, f.logs.String())
		})
	}
}

func TestLogs(t *testing.T) {
	// Without a log store the endpoint says so.
	f := newFixture(t, defaultConfig(), nil)
	r := f.get(t, "/api/traces/"+traceA+"/logs")
	require.Equal(t, http.StatusNotImplemented, r.code)
	require.Equal(t, "logs of traces are not configured: the trace API has no log store\n", string(r.body))

	type call struct {
		tenant     string
		id         traces.TraceID
		start, end time.Time
	}
	utc := func(c call) call {
		c.start, c.end = c.start.UTC(), c.end.UTC()
		return c
	}
	var calls []call
	logs := func(_ context.Context, tenant string, id traces.TraceID, start, end time.Time) ([]LogLine, error) {
		calls = append(calls, utc(call{tenant, id, start, end}))
		if tenant == "broken" {
			return nil, errors.New("log store down")
		}
		return []LogLine{
			{Timestamp: t0.Add(time.Second), Labels: map[string]string{"service": "frontend", "app": "<web>"}, Line: "GET /checkout 200"},
			{Timestamp: t0.Add(1100 * time.Millisecond), Line: "charge \"declined\""},
		}, nil
	}
	f = newFixture(t, defaultConfig(), nil, WithLogsByTrace(logs))
	r = f.get(t, "/api/traces/"+traceA+"/logs")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, `{"logs":[`+
		`{"timestamp":"1704067201000000000","labels":{"app":"\u003cweb\u003e","service":"frontend"},"line":"GET /checkout 200"},`+
		`{"timestamp":"1704067201100000000","labels":{},"line":"charge \"declined\""}]}`, string(r.body))
	// Without bounds: the trace's own, widened by a minute.
	require.Equal(t, call{"t1", traces.TraceID(mustTraceID(traceA)), t0.Add(time.Second - time.Minute), t0.Add(1250*time.Millisecond + time.Minute)}, calls[0])

	r = f.get(t, "/api/traces/"+traceA+"/logs?start="+unix(0)+"&end="+unix(time.Hour))
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, call{"t1", traces.TraceID(mustTraceID(traceA)), t0, t0.Add(time.Hour)}, calls[1])
	// One bound given: the other is the trace's.
	r = f.get(t, "/api/traces/"+traceA+"/logs?start="+unix(0))
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, call{"t1", traces.TraceID(mustTraceID(traceA)), t0, t0.Add(1250*time.Millisecond + time.Minute)}, calls[2])

	// Logs of a trace that is not stored need bounds.
	r = f.get(t, "/api/traces/"+traceD+"/logs")
	require.Equal(t, http.StatusNotFound, r.code)
	r = f.get(t, "/api/traces/"+traceD+"/logs?start="+unix(0)+"&end="+unix(time.Hour))
	require.Equal(t, http.StatusOK, r.code)

	r = f.get(t, "/api/traces/"+traceD+"/logs?start="+unix(0)+"&end="+unix(time.Hour), "X-Scope-OrgID", "broken")
	require.Equal(t, http.StatusInternalServerError, r.code)
	require.Contains(t, string(r.body), "log store down")
	r = f.get(t, "/api/traces/nothex/logs")
	require.Equal(t, http.StatusBadRequest, r.code)
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)
	f.get(t, "/api/search")
	f.get(t, "/api/search")
	f.get(t, "/api/search?limit=0")
	f.get(t, "/api/traces/"+traceD)
	f.get(t, "/jaeger/api/services")
	count := func(endpoint, code string) float64 {
		mfs, err := f.reg.Gather()
		require.NoError(t, err)
		for _, mf := range mfs {
			if mf.GetName() != "pharos_tempoapi_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["endpoint"] == endpoint && labels["code"] == code {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	require.Equal(t, 2.0, count("/api/search", "200"))
	require.Equal(t, 1.0, count("/api/search", "400"))
	require.Equal(t, 1.0, count("/api/traces/{traceID}", "404"))
	require.Equal(t, 1.0, count("/jaeger/api/services", "200"))
	n, err := testutil.GatherAndCount(f.reg, "pharos_tempoapi_requests_total", "pharos_tempoapi_request_duration_seconds")
	require.NoError(t, err)
	require.Equal(t, 4+3, n) // four counter series, three histogram series

	// A second API on the same registry is refused.
	_, err = New(defaultConfig(), f.q, BuildInfo{}, nil, f.reg)
	require.Error(t, err)
	// A nil registry is fine.
	_, err = New(defaultConfig(), f.q, BuildInfo{}, nil, nil)
	require.NoError(t, err)
	_, err = New(defaultConfig(), nil, BuildInfo{}, nil, prometheus.NewRegistry())
	require.Error(t, err)
}

func TestConfig(t *testing.T) {
	cfg := defaultConfig()
	require.NoError(t, cfg.Validate())
	require.Equal(t, Config{
		Timeout: time.Minute, DefaultResultLimit: 20, DefaultSpansPerSpanSet: 3, MaxSpansPerSpanSet: 100,
		JaegerPrefix: "/jaeger", JaegerFetchConcurrency: 8, MaxConcurrent: 20, MaxQueueWait: 30 * time.Second,
	}, cfg)

	fs := flag.NewFlagSet("", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	require.NoError(t, fs.Parse([]string{"-query.tempo.max-result-limit=100", "-query.tempo.jaeger-prefix="}))
	require.Equal(t, 100, cfg.MaxResultLimit)
	require.Empty(t, cfg.JaegerPrefix)
	require.NoError(t, cfg.Validate())

	bad := Config{Timeout: -1, DefaultResultLimit: 0, MaxResultLimit: -1, DefaultSpansPerSpanSet: 5, MaxSpansPerSpanSet: 4,
		JaegerPrefix: "jaeger/", JaegerFetchConcurrency: 0}
	err := bad.Validate()
	require.Error(t, err)
	for _, field := range []string{"timeout", "default_result_limit", "max_result_limit", "max_spans_per_span_set", "jaeger_prefix", "jaeger_fetch_concurrency"} {
		require.Contains(t, err.Error(), "query.tempo."+field+":")
	}
	_, err = New(bad, nil, BuildInfo{}, nil, nil)
	require.ErrorContains(t, err, "tempoapi config")
}
