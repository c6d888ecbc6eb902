package tempoapi

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/query/tempoapi/tracestest"
	"github.com/pharos-obs/pharos/storage/traces"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// t0 is 2024-01-01T00:00:00Z, Unix 1704067200.
var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func ts(d time.Duration) pcommon.Timestamp { return pcommon.NewTimestampFromTime(t0.Add(d)) }

func mustTraceID(s string) pcommon.TraceID {
	id, err := traces.ParseTraceID(s)
	if err != nil {
		panic(err)
	}
	return pcommon.TraceID(id)
}

func mustSpanID(s string) pcommon.SpanID {
	var id pcommon.SpanID
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		panic(err)
	}
	return id
}

// Trace IDs of the test data.
const (
	traceA = "0af7651916cd43dd8448eb211c80319c"
	traceB = "4bf92f3577b34da6" // a 64-bit (Jaeger) ID
	traceC = "5b8efff798038103d269b633813fc60c"
	traceD = "dddddddddddddddddddddddddddddddd"
)

// testTraces is tenant t1's data:
//
//	A at 1s, 250ms: frontend "GET /checkout" (server, root, http.method=GET,
//	  http.status_code=200, an event, trace state) → checkout "charge"
//	  (client, error "card declined", 100ms, typed attributes, a link to B)
//	B at 5s, 2ms:   frontend "GET /health" (server, ok, root)
//	C at 10s, 3s:   worker "process" (consumer, parent missing: no root)
func testTraces() ptrace.Traces {
	td := ptrace.NewTraces()

	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "frontend")
	rs.Resource().Attributes().PutStr("host.name", "web-1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("io.opentelemetry.http")
	ss.Scope().SetVersion("1.2")
	s := ss.Spans().AppendEmpty()
	s.SetTraceID(mustTraceID(traceA))
	s.SetSpanID(mustSpanID("b7ad6b7169203331"))
	s.SetName("GET /checkout")
	s.SetKind(ptrace.SpanKindServer)
	s.SetStartTimestamp(ts(time.Second))
	s.SetEndTimestamp(ts(1250 * time.Millisecond))
	s.TraceState().FromRaw("vendor=a<b")
	s.Attributes().PutStr("http.method", "GET")
	s.Attributes().PutInt("http.status_code", 200)
	ev := s.Events().AppendEmpty()
	ev.SetName("request received")
	ev.SetTimestamp(ts(1001 * time.Millisecond))
	ev.Attributes().PutInt("size", 12)
	s = ss.Spans().AppendEmpty()
	s.SetTraceID(mustTraceID(traceB))
	s.SetSpanID(mustSpanID("1111111111111111"))
	s.SetName("GET /health")
	s.SetKind(ptrace.SpanKindServer)
	s.Status().SetCode(ptrace.StatusCodeOk)
	s.SetStartTimestamp(ts(5 * time.Second))
	s.SetEndTimestamp(ts(5*time.Second + 2*time.Millisecond))

	rs = td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "checkout")
	rs.Resource().Attributes().PutDouble("ratio", 0.5)
	s = rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(mustTraceID(traceA))
	s.SetSpanID(mustSpanID("00f067aa0ba902b7"))
	s.SetParentSpanID(mustSpanID("b7ad6b7169203331"))
	s.SetName("charge")
	s.SetKind(ptrace.SpanKindClient)
	s.Status().SetCode(ptrace.StatusCodeError)
	s.Status().SetMessage("card declined")
	s.SetStartTimestamp(ts(1050 * time.Millisecond))
	s.SetEndTimestamp(ts(1150 * time.Millisecond))
	s.Attributes().PutBool("retry", true)
	s.Attributes().PutEmptyBytes("payload").FromRaw([]byte{1, 2, 3})
	s.Attributes().PutEmptySlice("tags").FromRaw([]any{"a", "b"})
	s.Attributes().PutDouble("amount", 1e-7)
	ev = s.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(ts(1149 * time.Millisecond))
	ev.Attributes().PutStr("event", "declined")
	ev.Attributes().PutStr("exception.message", "card declined")
	l := s.Links().AppendEmpty()
	l.SetTraceID(mustTraceID(traceB))
	l.SetSpanID(mustSpanID("1111111111111111"))

	rs = td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "worker")
	s = rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(mustTraceID(traceC))
	s.SetSpanID(mustSpanID("2222222222222222"))
	s.SetParentSpanID(mustSpanID("9999999999999999"))
	s.SetName("process")
	s.SetKind(ptrace.SpanKindConsumer)
	s.SetStartTimestamp(ts(10 * time.Second))
	s.SetEndTimestamp(ts(13 * time.Second))
	s.Attributes().PutStr("queue", "jobs")
	return td
}

// otherTenant is tenant t2's trace D.
func otherTenant() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "other")
	s := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID(mustTraceID(traceD))
	s.SetSpanID(mustSpanID("3333333333333333"))
	s.SetName("secret")
	s.SetStartTimestamp(ts(time.Second))
	s.SetEndTimestamp(ts(2 * time.Second))
	return td
}

type fixture struct {
	api  *API
	q    *tracestest.Querier
	srv  *httptest.Server
	reg  *prometheus.Registry
	logs *bytes.Buffer
}

func defaultConfig() Config {
	var cfg Config
	cfg.RegisterFlags(flag.NewFlagSet("", flag.PanicOnError))
	return cfg
}

// newFixture serves an API over testTraces (tenant t1) and otherTenant
// (t2), wrapping the querier with wrap when it is not nil.
func newFixture(t *testing.T, cfg Config, wrap func(traces.Querier) traces.Querier, opts ...Option) *fixture {
	t.Helper()
	q := tracestest.New()
	require.NoError(t, q.Append("t1", testTraces()))
	require.NoError(t, q.Append("t2", otherTenant()))
	var querier traces.Querier = q
	if wrap != nil {
		querier = wrap(q)
	}
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	api, err := New(cfg, querier, BuildInfo{Revision: "abc", GoVersion: "go1.26"}, logger, reg, opts...)
	require.NoError(t, err)
	api.now = func() time.Time { return t0.Add(time.Hour) }
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &fixture{api: api, q: q, srv: srv, reg: reg, logs: logs}
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// get requests path as tenant t1 unless a header says otherwise; headers
// are name, value pairs.
func (f *fixture) get(t *testing.T, path string, headers ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, f.srv.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("X-Scope-OrgID", "t1")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{code: resp.StatusCode, header: resp.Header, body: body}
}

// golden compares body with testdata/name, or rewrites it with -update.
// JSON is compared byte for byte; the file holds it indented for review,
// and compacting it gives the exact bytes back.
func golden(t *testing.T, name string, body []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		var pretty bytes.Buffer
		require.NoError(t, json.Indent(&pretty, body, "", "  "))
		pretty.WriteByte('\n')
		require.NoError(t, os.WriteFile(path, pretty.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	var compact bytes.Buffer
	require.NoError(t, json.Compact(&compact, want))
	require.Equal(t, compact.String(), string(body), "golden file %s (go test -update rewrites it)", path)
}
