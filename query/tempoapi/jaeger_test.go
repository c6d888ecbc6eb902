package tempoapi

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/storage/traces"
)

func micro(d time.Duration) string { return strconv.FormatInt(t0.Add(d).UnixMicro(), 10) }

func TestJaegerMetadata(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)
	for _, tc := range []struct{ path, want string }{
		{"/jaeger/api/services", `{"data":["checkout","frontend","worker"],"total":3,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/services/frontend/operations", `{"data":["GET /checkout","GET /health"],"total":2,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/services/nope/operations", `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/operations?service=frontend", `{"data":[{"name":"GET /checkout","spanKind":"server"},{"name":"GET /health","spanKind":"server"}],"total":2,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/operations?service=checkout&spanKind=server", `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/operations?service=checkout&spanKind=client", `{"data":[{"name":"charge","spanKind":"client"}],"total":1,"limit":0,"offset":0,"errors":null}`},
		{"/jaeger/api/dependencies?endTs=" + micro(time.Hour) + "&lookback=3600000", `{"data":[],"total":0,"limit":0,"offset":0,"errors":null}`},
	} {
		r := f.get(t, tc.path)
		require.Equal(t, http.StatusOK, r.code, "%s: %s", tc.path, r.body)
		require.Equal(t, tc.want, string(r.body), tc.path)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
	}
	r := f.get(t, "/jaeger/api/services", "X-Scope-OrgID", "t2")
	require.Equal(t, `{"data":["other"],"total":1,"limit":0,"offset":0,"errors":null}`, string(r.body))
}

func TestJaegerTrace(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)
	r := f.get(t, "/jaeger/api/traces/"+traceA)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	golden(t, "jaeger_trace.json", r.body)

	// The 64-bit ID prints as Jaeger prints it, 16 digits.
	r = f.get(t, "/jaeger/api/traces/"+traceB+"?start="+micro(0)+"&end="+micro(time.Hour))
	require.Equal(t, http.StatusOK, r.code)
	var resp struct {
		Data []struct {
			TraceID string `json:"traceID"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.Equal(t, traceB, resp.Data[0].TraceID)

	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/jaeger/api/traces/" + traceD, http.StatusNotFound,
			`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`},
		{"/jaeger/api/traces/" + traceA + "?start=" + micro(time.Minute), http.StatusNotFound,
			`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}`},
		{"/jaeger/api/traces/xyz", http.StatusBadRequest,
			`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"unable to parse param 'traceID': trace ID \"0xyz\": not hex"}]}`},
		{"/jaeger/api/traces/" + traceA + "?start=x", http.StatusBadRequest,
			`{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"unable to parse param 'start': strconv.ParseInt: parsing \"x\": invalid syntax"}]}`},
	} {
		r := f.get(t, tc.path)
		require.Equal(t, tc.code, r.code, tc.path)
		require.Equal(t, tc.body+"\n", string(r.body), tc.path)
	}
}

func TestJaegerSearch(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)

	// Grafana's Jaeger data source: service, operation, tags as JSON,
	// durations, limit, start and end in microseconds, lookback=custom.
	r := f.get(t, "/jaeger/api/traces?service=checkout&operation=charge&tags="+url.QueryEscape(`{"error":"true","retry":"true"}`)+
		"&minDuration=50ms&maxDuration=1s&limit=20&start="+micro(0)+"&end="+micro(time.Hour)+"&lookback=custom")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	golden(t, "jaeger_search.json", r.body)

	found := func(path string) []string {
		t.Helper()
		r := f.get(t, path)
		require.Equal(t, http.StatusOK, r.code, "%s: %s", path, r.body)
		var resp struct {
			Data []struct {
				TraceID string `json:"traceID"`
				Spans   []struct {
					SpanID string `json:"spanID"`
				} `json:"spans"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(r.body, &resp))
		ids := []string{}
		for _, tr := range resp.Data {
			ids = append(ids, tr.TraceID)
		}
		return ids
	}
	window := "&start=" + micro(0) + "&end=" + micro(time.Hour)
	for _, tc := range []struct {
		params string
		want   []string
	}{
		{"service=frontend" + window, []string{traceB, traceA}},
		{"service=frontend&limit=1" + window, []string{traceB}},
		{"service=frontend&operation=GET+%2Fcheckout" + window, []string{traceA}},
		{"service=frontend&tag=http.status_code:200" + window, []string{traceA}},
		{"service=frontend&tags=" + url.QueryEscape(`{"span.kind":"server","otel.status_code":"OK"}`) + window, []string{traceB}},
		{"service=checkout&tags=" + url.QueryEscape(`{"error":"false"}`) + window, []string{}},
		{"service=frontend&tags=" + url.QueryEscape(`{"host.name":"web-1"}`) + window, []string{traceB, traceA}},
		{"service=frontend&minDuration=100ms" + window, []string{traceA}},
		{"service=frontend&maxDuration=100ms" + window, []string{traceB}},
		{"service=worker" + window, []string{traceC}},
		// The clock is at 1h: end defaults to now, start to end - lookback.
		{"service=worker&lookback=1h", []string{traceC}},
		{"service=worker&lookback=2m&end=" + micro(time.Minute), []string{traceC}},
		{"service=worker&lookback=1m&end=" + micro(time.Minute+11*time.Second), []string{}},
		{"service=worker&start=" + micro(11*time.Second), []string{}},
		// By ID, the search's own parameters aside.
		{"traceID=" + traceC + "&traceID=" + traceB, []string{traceC, traceB}},
	} {
		require.Equal(t, tc.want, found("/jaeger/api/traces?"+tc.params), tc.params)
	}

	// An ID that is not there is an error of its own, not a failure.
	r = f.get(t, "/jaeger/api/traces?traceID="+traceD+"&traceID="+traceB)
	require.Equal(t, http.StatusOK, r.code)
	var resp struct {
		Data   []json.RawMessage `json:"data"`
		Errors []struct {
			Code    int    `json:"code"`
			Msg     string `json:"msg"`
			TraceID string `json:"traceID"`
		} `json:"errors"`
	}
	require.NoError(t, json.Unmarshal(r.body, &resp))
	require.Len(t, resp.Data, 1)
	require.Len(t, resp.Errors, 1)
	require.Equal(t, 404, resp.Errors[0].Code)
	require.Equal(t, "trace not found", resp.Errors[0].Msg)
	require.Equal(t, traceD, resp.Errors[0].TraceID)

	for _, tc := range []struct{ params, msg string }{
		{"", "parameter 'service' is required"},
		{"operation=x", "parameter 'service' is required"},
		{"service=a&minDuration=1x", `unable to parse param 'minDuration': time: unknown unit \"x\" in duration \"1x\"`},
		{"service=a&minDuration=2s&maxDuration=1s", "'maxDuration' should be greater than 'minDuration'"},
		{"service=a&limit=x", `unable to parse param 'limit': strconv.ParseInt: parsing \"x\": invalid syntax`},
		{"service=a&start=x", `unable to parse param 'start': strconv.ParseInt: parsing \"x\": invalid syntax`},
		{"service=a&end=x", `unable to parse param 'end': strconv.ParseInt: parsing \"x\": invalid syntax`},
		{"service=a&lookback=x", `unable to parse param 'lookback': not a valid duration string: \"x\"`},
		{"service=a&tags=x", "malformed 'tags' parameter, cannot unmarshal JSON: invalid character 'x' looking for beginning of value"},
		{"service=a&tag=x", "malformed 'tag' parameter, expecting key:value, received: x"},
		{"traceID=zz", `unable to parse param 'traceID': trace ID \"zz\": not hex`},
	} {
		r := f.get(t, "/jaeger/api/traces?"+tc.params)
		require.Equal(t, http.StatusBadRequest, r.code, tc.params)
		require.Equal(t, `{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"`+tc.msg+`"}]}`+"\n", string(r.body), tc.params)
	}

	r = f.get(t, "/jaeger/api/operations")
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, string(r.body), "parameter 'service' is required")
}

func TestJaegerPrefix(t *testing.T) {
	cfg := defaultConfig()
	cfg.JaegerPrefix = "/j/query"
	f := newFixture(t, cfg, nil)
	require.Equal(t, http.StatusOK, f.get(t, "/j/query/api/services").code)
	require.Equal(t, http.StatusNotFound, f.get(t, "/jaeger/api/services").code)

	cfg.JaegerPrefix = ""
	f = newFixture(t, cfg, nil)
	require.Equal(t, http.StatusNotFound, f.get(t, "/jaeger/api/services").code)
	require.Equal(t, http.StatusOK, f.get(t, "/api/echo").code)
}

// TestJaegerProcesses checks that equal resources share a process and
// that process IDs are sorted as encoding/json sorts map keys.
func TestJaegerProcesses(t *testing.T) {
	td := ptrace.NewTraces()
	for i := range 12 {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "svc")
		rs.Resource().Attributes().PutInt("i", int64(i%11)) // the 12th equals the 1st
		s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{1})
		s.SetSpanID(pcommon.SpanID{byte(i + 1)})
	}
	// Empty resources and resources without spans are no processes.
	td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(pcommon.TraceID{1})
	s.SetSpanID(pcommon.SpanID{99})

	var e jaegerEncoder
	b := e.appendTrace(nil, td)
	var got struct {
		TraceID string `json:"traceID"`
		Spans   []struct {
			ProcessID string `json:"processID"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
			Tags        []struct {
				Key   string `json:"key"`
				Type  string `json:"type"`
				Value any    `json:"value"`
			} `json:"tags"`
		} `json:"processes"`
	}
	require.NoError(t, json.Unmarshal(b, &got), "%s", b)
	require.Equal(t, "01000000000000000000000000000000", got.TraceID)
	require.Len(t, got.Processes, 12)
	require.Equal(t, "p1", got.Spans[11].ProcessID)
	require.Equal(t, "p12", got.Spans[12].ProcessID)
	require.Equal(t, noServiceName, got.Processes["p12"].ServiceName)
	require.Empty(t, got.Processes["p12"].Tags)
	require.Equal(t, "svc", got.Processes["p11"].ServiceName)
	require.Equal(t, float64(10), got.Processes["p11"].Tags[0].Value)
	require.Regexp(t, `"processes":\{"p1":.*"p10":.*"p11":.*"p12":.*"p2":`, string(b))

	// Reuse gives the same bytes.
	require.Equal(t, string(b), string(e.appendTrace(nil, td)))
}

// TestAppendFloat checks the float encoding against encoding/json.
func TestAppendFloat(t *testing.T) {
	for _, f := range []float64{0, -0.0, 1, -1.5, 0.1, 1e-6, 1e-7, 9.999e-7, 123456789, 1e20, 1e21, 1.5e300, -2e-300, math.MaxFloat64, math.SmallestNonzeroFloat64, 3.14159} {
		want, err := json.Marshal(f)
		require.NoError(t, err)
		require.Equal(t, string(want), string(appendFloat(nil, f)), "%v", f)
	}
	require.Equal(t, `"NaN"`, string(appendFloat(nil, math.NaN())))
	require.Equal(t, `"+Inf"`, string(appendFloat(nil, math.Inf(1))))
}

// TestJaegerReferences checks links: FOLLOWS_FROM unless typed child_of,
// and a link to the parent only retypes the parent reference.
func TestJaegerReferences(t *testing.T) {
	s := ptrace.NewSpan()
	s.SetTraceID(pcommon.TraceID{1})
	s.SetParentSpanID(pcommon.SpanID{2})
	l := s.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{1})
	l.SetSpanID(pcommon.SpanID{2})
	l = s.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{3})
	l.SetSpanID(pcommon.SpanID{4})
	l.Attributes().PutStr("opentracing.ref_type", "child_of")
	l = s.Links().AppendEmpty()
	l.SetTraceID(pcommon.TraceID{7: 0, 15: 5})
	l.SetSpanID(pcommon.SpanID{6})
	require.Equal(t, `[`+
		`{"refType":"FOLLOWS_FROM","traceID":"01000000000000000000000000000000","spanID":"0200000000000000"},`+
		`{"refType":"CHILD_OF","traceID":"03000000000000000000000000000000","spanID":"0400000000000000"},`+
		`{"refType":"FOLLOWS_FROM","traceID":"0000000000000005","spanID":"0600000000000000"}]`,
		string(appendReferences(nil, s)))
	require.Equal(t, `[]`, string(appendReferences(nil, ptrace.NewSpan())))
}

// oneQuery is a querier that reads several traces in one call
// (traces.TracesQuerier), counting the calls of each kind.
type oneQuery struct {
	traces.Querier
	many, single atomic.Int32
}

func (q *oneQuery) Trace(ctx context.Context, tenant string, id traces.TraceID, start, end time.Time) (ptrace.Traces, error) {
	q.single.Add(1)
	return q.Querier.Trace(ctx, tenant, id, start, end)
}

func (q *oneQuery) Traces(ctx context.Context, tenant string, ids []traces.TraceID, start, end time.Time) ([]ptrace.Traces, error) {
	q.many.Add(1)
	out := make([]ptrace.Traces, len(ids))
	for i, id := range ids {
		td, err := q.Querier.Trace(ctx, tenant, id, start, end)
		if err != nil {
			return nil, err
		}
		out[i] = td
	}
	return out, nil
}

// A querier that reads several traces at once answers a Jaeger search,
// and a lookup of several IDs, in one call, with the same answer.
func TestJaegerSearchFetchesInOnePass(t *testing.T) {
	plain := newFixture(t, defaultConfig(), nil)
	var oq *oneQuery
	batched := newFixture(t, defaultConfig(), func(q traces.Querier) traces.Querier {
		oq = &oneQuery{Querier: q}
		return oq
	})
	ids := testTraces().ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID()
	for i, path := range []string{
		"/jaeger/api/traces?service=checkout&limit=20&start=" + micro(0) + "&end=" + micro(time.Hour),
		"/jaeger/api/traces?traceID=" + hex.EncodeToString(ids[:]) + "&traceID=0123456789abcdef0123456789abcdef",
	} {
		want, got := plain.get(t, path), batched.get(t, path)
		require.Equal(t, http.StatusOK, got.code, "%s", got.body)
		require.Equal(t, want.code, got.code)
		require.JSONEq(t, string(want.body), string(got.body), path)
		require.EqualValues(t, i+1, oq.many.Load(), "one call per request")
		require.Zero(t, oq.single.Load())
	}
}
