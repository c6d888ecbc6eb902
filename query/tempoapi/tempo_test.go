package tempoapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

func unix(d time.Duration) string { return strconv.FormatInt(t0.Add(d).Unix(), 10) }

// traceJSON is a trace in OTLP/JSON, to compare traces.
func traceJSON(t *testing.T, td ptrace.Traces) string {
	t.Helper()
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	return string(b)
}

// storedTrace is trace id as the querier holds it.
func (f *fixture) storedTrace(t *testing.T, id string) ptrace.Traces {
	t.Helper()
	td, err := f.q.Trace(t.Context(), "t1", [16]byte(mustTraceID(id)), time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Positive(t, td.SpanCount())
	return td
}

func TestTraceByID(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)

	// JSON: v1 names the resource spans "batches", v2 wraps the trace.
	r := f.get(t, "/api/traces/"+traceA)
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	golden(t, "trace_v1.json", r.body)
	r2 := f.get(t, "/api/v2/traces/"+traceA)
	require.Equal(t, http.StatusOK, r2.code)
	golden(t, "trace_v2.json", r2.body)

	// The JSON decodes back to the stored trace as OTLP/JSON.
	var v1 struct {
		Batches json.RawMessage `json:"batches"`
	}
	require.NoError(t, json.Unmarshal(r.body, &v1))
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(`{"resourceSpans":` + string(v1.Batches) + `}`))
	require.NoError(t, err)
	want := traceJSON(t, f.storedTrace(t, traceA))
	require.JSONEq(t, want, traceJSON(t, td))
	var v2 struct {
		Trace json.RawMessage `json:"trace"`
	}
	require.NoError(t, json.Unmarshal(r2.body, &v2))
	td, err = (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(v2.Trace)
	require.NoError(t, err)
	require.JSONEq(t, want, traceJSON(t, td))

	// Protobuf, as Grafana's Tempo data source asks: v1 is tempopb.Trace,
	// the bytes of OTLP's TracesData.
	r = f.get(t, "/api/traces/"+traceA+"?start="+unix(0)+"&end="+unix(time.Hour), "Accept", "application/protobuf")
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "application/protobuf", r.header.Get("Content-Type"))
	td, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(r.body)
	require.NoError(t, err)
	require.JSONEq(t, want, traceJSON(t, td))

	// v2 is tempopb.TraceByIDResponse: the trace is field 1.
	r = f.get(t, "/api/v2/traces/"+traceA+"?start="+unix(0)+"&end="+unix(time.Hour), "Accept", "application/protobuf")
	require.Equal(t, http.StatusOK, r.code)
	num, typ, n := protowire.ConsumeTag(r.body)
	require.Equal(t, protowire.Number(1), num)
	require.Equal(t, protowire.BytesType, typ)
	inner, m := protowire.ConsumeBytes(r.body[n:])
	require.Equal(t, len(r.body), n+m, "nothing after the trace")
	td, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(inner)
	require.NoError(t, err)
	require.JSONEq(t, want, traceJSON(t, td))

	// A 64-bit ID, as Tempo's search prints B's, with and without padding.
	for _, id := range []string{traceB, "0000000000000000" + traceB} {
		r = f.get(t, "/api/traces/"+id)
		require.Equal(t, http.StatusOK, r.code, id)
		require.Contains(t, string(r.body), `"name":"GET /health"`)
	}

	for _, tc := range []struct {
		path, header string
		code         int
		body         string
	}{
		{path: "/api/traces/" + traceC + "?start=" + unix(time.Minute), code: http.StatusNotFound, body: "trace not found\n"},
		{path: "/api/v2/traces/" + traceC + "?end=" + unix(time.Second), code: http.StatusNotFound, body: "trace not found\n"},
		{path: "/api/traces/" + traceD, code: http.StatusNotFound, body: "trace not found\n"}, // another tenant's
		{path: "/api/traces/" + traceD, header: "t2", code: http.StatusOK},
		{path: "/api/traces/xyz", code: http.StatusBadRequest, body: "invalid trace ID: trace ID \"0xyz\": not hex\n"},
		{path: "/api/traces/" + traceA + "0", code: http.StatusBadRequest, body: "invalid trace ID: trace ID \"" + traceA + "0\": want 1 to 32 hex digits\n"},
		{path: "/api/traces/0", code: http.StatusBadRequest, body: "invalid trace ID: trace ID is all zeros\n"},
		{path: "/api/traces/" + traceA + "?start=" + unix(time.Hour) + "&end=" + unix(0), code: http.StatusBadRequest,
			body: "http parameter start must be before end. received start=1704070800 end=1704067200\n"},
		{path: "/api/traces/" + traceA + "?start=yesterday", code: http.StatusBadRequest, body: "invalid start: want Unix seconds, got \"yesterday\"\n"},
	} {
		tenant := "t1"
		if tc.header != "" {
			tenant = tc.header
		}
		r := f.get(t, tc.path, "X-Scope-OrgID", tenant)
		require.Equal(t, tc.code, r.code, tc.path)
		if tc.body != "" {
			require.Equal(t, tc.body, string(r.body), tc.path)
			require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))
		}
	}
}

func TestSearch(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)

	// Grafana's TraceQL search: q, limit, spss, start, end.
	r := f.get(t, "/api/search?q="+url.QueryEscape(`{ resource.service.name = "checkout" && status = error } || { name = "GET /health" }`)+
		"&limit=20&spss=3&start="+unix(0)+"&end="+unix(time.Hour), "Accept", "application/json")
	require.Equal(t, http.StatusOK, r.code, "%s", r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	golden(t, "search_traceql.json", r.body)

	// {} is every trace, most recent first; C has no root span.
	r = f.get(t, "/api/search?q="+url.QueryEscape("{}")+"&spss=1")
	require.Equal(t, http.StatusOK, r.code)
	golden(t, "search_all.json", r.body)

	hits := func(path string) []string {
		t.Helper()
		r := f.get(t, path)
		require.Equal(t, http.StatusOK, r.code, "%s: %s", path, r.body)
		var resp struct {
			Traces []struct {
				TraceID string `json:"traceID"`
			} `json:"traces"`
		}
		require.NoError(t, json.Unmarshal(r.body, &resp))
		ids := []string{}
		for _, tr := range resp.Traces {
			ids = append(ids, tr.TraceID)
		}
		return ids
	}
	// Tempo prints trace IDs without leading zeros.
	a, b, c := traceA[1:], traceB, traceC
	for _, tc := range []struct {
		params string
		want   []string
	}{
		{"", []string{c, b, a}},
		{"limit=2", []string{c, b}},
		{"minDuration=100ms", []string{c, a}},
		{"maxDuration=1s&minDuration=1ms", []string{b, a}},
		{"start=" + unix(2*time.Second) + "&end=" + unix(time.Minute), []string{c, b}},
		{"q=" + url.QueryEscape(`{ span.http.status_code >= 200 && kind = server }`), []string{a}},
		{"q=" + url.QueryEscape(`{ .queue =~ "jo.*" } | { duration > 1s }`), []string{c}},
		{"q=" + url.QueryEscape(`{ rootServiceName = "frontend" && duration < 50ms }`), []string{b}},
		// Tempo's legacy tags, as Grafana's old search sends them.
		{"tags=" + url.QueryEscape(`service.name=frontend`), []string{b, a}},
		{"tags=" + url.QueryEscape(`service.name=frontend http.status_code=200`), []string{a}},
		{"tags=" + url.QueryEscape(`name="GET /health"`), []string{b}},
		{"tags=" + url.QueryEscape(`root.service.name=frontend error=true`), []string{a}},
		{"tags=" + url.QueryEscape(`status.code=error`), []string{a}},
		{"tags=" + url.QueryEscape(`root.name="GET /checkout" queue=x`), []string{}},
		{"tags=" + url.QueryEscape(`service.name=frontend`) + "&minDuration=100ms&maxDuration=1s", []string{a}},
	} {
		require.Equal(t, tc.want, hits("/api/search?"+tc.params), tc.params)
	}

	// Tenants see their own traces only.
	r = f.get(t, "/api/search", "X-Scope-OrgID", "t2")
	require.Contains(t, string(r.body), traceD)
	require.NotContains(t, string(r.body), traceA)

	// Nothing found.
	r = f.get(t, "/api/search?q="+url.QueryEscape(`{ name = "nope" }`))
	require.Equal(t, `{"traces":[],"metrics":{}}`, string(r.body))

	for _, tc := range []struct{ params, body string }{
		{"q=" + url.QueryEscape(`{ } | count() > 2`), "unsupported TraceQL feature: aggregate count() in a pipeline"},
		{"q=" + url.QueryEscape(`{ .a = 1 } >> { .b = 1 }`), "unsupported TraceQL feature: structural operator >>"},
		{"q=" + url.QueryEscape(`{ name = }`), "parse error at line 1, col 10: syntax error: unexpected \"}\", expected a field or a value"},
		{"q=" + url.QueryEscape(`{}`) + "&tags=a%3Db", "invalid request: can't specify tags and q in the same query"},
		{"tags=" + url.QueryEscape(`a=1 a=2`), "invalid tags: tag a has been set twice"},
		{"tags=" + url.QueryEscape(`a="unterminated`), "invalid tags: unterminated quoted value of a"},
		{"tags=" + url.QueryEscape(`status.code=bad`), `invalid tags: status.code must be error, ok or unset, got "bad"`},
		{"limit=0", "invalid limit: must be a positive number"},
		{"limit=x", `invalid limit: "x" is not a number`},
		{"spss=-1", "invalid spss: must be a positive number"},
		{"spss=101", "invalid spss: 101 exceeds the maximum of 100"},
		{"minDuration=1x", `invalid minDuration: "1x" is not a duration such as 100ms`},
		{"minDuration=2s&maxDuration=1s", "invalid maxDuration: must be greater than minDuration"},
		{"start=" + unix(time.Hour) + "&end=" + unix(time.Hour), "http parameter start must be before end. received start=1704070800 end=1704070800"},
		{"q=%zz", `invalid query parameters: invalid URL escape "%zz"`},
	} {
		r := f.get(t, "/api/search?"+tc.params)
		require.Equal(t, http.StatusBadRequest, r.code, tc.params)
		require.Equal(t, tc.body+"\n", string(r.body), tc.params)
	}

	cfg := defaultConfig()
	cfg.MaxResultLimit = 50
	f = newFixture(t, cfg, nil)
	r = f.get(t, "/api/search?limit=51")
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Equal(t, "invalid limit: 51 exceeds the maximum of 50 traces per search (limit -query.tempo.max-result-limit=50)\n", string(r.body))
}

func TestTags(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)
	for _, tc := range []struct{ path, want string }{
		{"/api/search/tags", `{"tagNames":["amount","host.name","http.method","http.status_code","payload","queue","ratio","retry","service.name","tags"]}`},
		{"/api/search/tags?scope=resource", `{"tagNames":["host.name","ratio","service.name"]}`},
		{"/api/search/tags?scope=intrinsic", `{"tagNames":["duration","kind","name","rootName","rootServiceName","status","traceDuration"]}`},
		{"/api/v2/search/tags?start=" + unix(0) + "&end=" + unix(2*time.Second), `{"scopes":[` +
			`{"name":"resource","tags":["host.name","ratio","service.name"]},` +
			`{"name":"span","tags":["amount","http.method","http.status_code","payload","retry","tags"]},` +
			`{"name":"intrinsic","tags":["duration","kind","name","rootName","rootServiceName","status","traceDuration"]}]}`},
		{"/api/v2/search/tags?scope=span&limit=2", `{"scopes":[{"name":"span","tags":["amount","http.method"]}]}`},
		{"/api/v2/search/tags?scope=all", `{"scopes":[` +
			`{"name":"resource","tags":["host.name","ratio","service.name"]},` +
			`{"name":"span","tags":["amount","http.method","http.status_code","payload","queue","retry","tags"]},` +
			`{"name":"intrinsic","tags":["duration","kind","name","rootName","rootServiceName","status","traceDuration"]}]}`},

		// v1 values: Tempo's legacy tag names.
		{"/api/search/tag/service.name/values", `{"tagValues":["checkout","frontend","worker"]}`},
		{"/api/search/tag/name/values", `{"tagValues":["GET /checkout","GET /health","charge","process"]}`},
		{"/api/search/tag/root.service.name/values", `{"tagValues":["frontend"]}`},
		{"/api/search/tag/status.code/values", `{"tagValues":["error","ok","unset"]}`},
		{"/api/search/tag/http.method/values", `{"tagValues":["GET"]}`},
		{"/api/search/tag/nope/values", `{"tagValues":[]}`},

		// v2 values: TraceQL names, typed.
		{"/api/v2/search/tag/resource.service.name/values?q=" + url.QueryEscape("{}"),
			`{"tagValues":[{"type":"string","value":"checkout"},{"type":"string","value":"frontend"},{"type":"string","value":"worker"}]}`},
		{"/api/v2/search/tag/span.http.status_code/values", `{"tagValues":[{"type":"string","value":"200"}]}`},
		{"/api/v2/search/tag/.host.name/values", `{"tagValues":[{"type":"string","value":"web-1"}]}`},
		{"/api/v2/search/tag/status/values", `{"tagValues":[{"type":"keyword","value":"error"},{"type":"keyword","value":"ok"},{"type":"keyword","value":"unset"}]}`},
		{"/api/v2/search/tag/span:kind/values?start=" + unix(0) + "&end=" + unix(2*time.Second),
			`{"tagValues":[{"type":"keyword","value":"client"},{"type":"keyword","value":"server"}]}`},
		{"/api/v2/search/tag/rootServiceName/values", `{"tagValues":[{"type":"string","value":"frontend"}]}`},
		{"/api/v2/search/tag/duration/values", `{"tagValues":[]}`},
	} {
		r := f.get(t, tc.path)
		require.Equal(t, http.StatusOK, r.code, "%s: %s", tc.path, r.body)
		require.Equal(t, tc.want, string(r.body), tc.path)
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
	}

	for _, tc := range []struct{ path, body string }{
		{"/api/search/tags?scope=event", "invalid scope: event (want resource, span, intrinsic or all)"},
		{"/api/v2/search/tag/service.name/values", "tag name is not valid intrinsic or scoped attribute: service.name"},
		{"/api/v2/search/tag/event.name/values", "unsupported TraceQL feature: event. attributes"},
		{"/api/v2/search/tags?limit=-1", "invalid limit: must be a positive number"},
	} {
		r := f.get(t, tc.path)
		require.Equal(t, http.StatusBadRequest, r.code, tc.path)
		require.Equal(t, tc.body+"\n", string(r.body), tc.path)
	}
}

func TestEchoAndBuildInfo(t *testing.T) {
	f := newFixture(t, defaultConfig(), nil)
	r := f.get(t, "/api/echo")
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, "echo", string(r.body))
	r = f.get(t, "/api/status/buildinfo")
	require.Equal(t, http.StatusOK, r.code)
	require.Equal(t, `{"version":"2.7.0","revision":"abc","branch":"","buildUser":"","buildDate":"","goVersion":"go1.26"}`, string(r.body))
}
