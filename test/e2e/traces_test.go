package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// telemetrygenBin finds the telemetrygen that scripts/install-test-deps.sh
// installs (make test runs it first).
func telemetrygenBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("telemetrygen"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	require.NoError(t, err)
	p := filepath.Join(string(trimNewline(out)), "bin", "telemetrygen")
	_, err = os.Stat(p)
	require.NoError(t, err, "telemetrygen not installed: run scripts/install-test-deps.sh (make test does)")
	return p
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// otlpAddrs reads the OTLP listeners' bound addresses from the log.
func (p *pharosProc) otlpAddrs() (grpcAddr, httpAddr string) {
	p.t.Helper()
	f, err := os.Open(p.logPath)
	require.NoError(p.t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var ev struct {
			Msg  string `json:"msg"`
			GRPC string `json:"grpc"`
			HTTP string `json:"http"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Msg == "OTLP receiver listening" {
			return ev.GRPC, ev.HTTP
		}
	}
	p.t.Fatalf("pharos %s did not log its OTLP addresses", p.name)
	return "", ""
}

type tempoSearch struct {
	Traces []struct {
		TraceID         string `json:"traceID"`
		RootServiceName string `json:"rootServiceName"`
		DurationMs      int    `json:"durationMs"`
	} `json:"traces"`
}

func tempoGet(addr, path string, params url.Values, out any) error {
	u := url.URL{Scheme: "http", Host: addr, Path: path, RawQuery: params.Encode()}
	resp, err := httpClient.Get(u.String())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u.String(), resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// traceSpans fetches a trace through the Tempo API (OTLP protobuf, as
// Grafana asks for it) and returns its spans' names by span ID.
func traceSpans(addr, id string) (map[string]string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/api/traces/"+id, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/protobuf")
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("trace %s: %s", id, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(body)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				out[spans.At(k).SpanID().String()] = spans.At(k).Name()
			}
		}
	}
	return out, nil
}

// TestTracesTelemetrygen sends traces with OpenTelemetry's telemetrygen to
// the all-in-one and finds every one complete by ID, by service and
// duration through the Tempo API (TraceQL and tags), by service through
// the Jaeger API, and counts them in the span metrics.
func TestTracesTelemetrygen(t *testing.T) {
	t.Parallel()
	tg := telemetrygenBin(t)
	p := startPharos(t, "all", []string{
		"-data.dir", t.TempDir(), "-nats.partitions", "4",
		"-aggregator.spanmetrics.flush-interval", "1s",
	})
	grpcAddr, _ := p.otlpAddrs()

	const traces, children = 20, 4
	const spans = traces * (children + 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tg, "traces", "--otlp-endpoint", grpcAddr, "--otlp-insecure",
		"--traces", strconv.Itoa(traces), "--child-spans", strconv.Itoa(children), "--rate", "0",
		"--workers", "1", "--batch-size", "10", "--service", "e2e-tg", "--span-duration", "50ms")
	// The SDK's batch processor drops spans silently when its queue is
	// full; a queue larger than the whole load keeps every span.
	cmd.Env = append(os.Environ(), "OTEL_BSP_MAX_QUEUE_SIZE="+strconv.Itoa(10*spans))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "telemetrygen: %s", out)
	// Every span telemetrygen sent was taken by the agent (a shortfall here
	// is the client's, not the pipeline's).
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		v, err := metricValue(t, p.addr, "pharos_agent_received_spans_total")
		if err != nil {
			return false, err.Error()
		}
		return v == spans, fmt.Sprintf("agent received %v spans of %d; telemetrygen said: %s", v, spans, out)
	})

	var found tempoSearch
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		found = tempoSearch{}
		err := tempoGet(p.addr, "/api/search", url.Values{"q": {`{ resource.service.name = "e2e-tg" && duration > 40ms }`}, "limit": {"100"}}, &found)
		if err != nil {
			return false, err.Error()
		}
		return len(found.Traces) == traces, fmt.Sprintf("TraceQL search found %d traces, want %d", len(found.Traces), traces)
	})
	total := 0
	for _, tr := range found.Traces {
		require.Equal(t, "e2e-tg", tr.RootServiceName)
		var spansOf map[string]string
		testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
			spansOf, err = traceSpans(p.addr, tr.TraceID)
			if err != nil {
				return false, err.Error()
			}
			return len(spansOf) == children+1, fmt.Sprintf("trace %s has %d spans, want %d", tr.TraceID, len(spansOf), children+1)
		})
		total += len(spansOf)
	}
	require.Equal(t, spans, total)

	// Legacy tag search with a duration window, as Grafana's search form sends it.
	var none tempoSearch
	require.NoError(t, tempoGet(p.addr, "/api/search", url.Values{"tags": {"service.name=e2e-tg"}, "maxDuration": {"10ms"}, "limit": {"100"}}, &none))
	require.Empty(t, none.Traces, "no trace is shorter than its 50 ms spans")
	var all tempoSearch
	require.NoError(t, tempoGet(p.addr, "/api/search", url.Values{"tags": {"service.name=e2e-tg"}, "minDuration": {"40ms"}, "limit": {"100"}}, &all))
	require.Len(t, all.Traces, traces)

	var services struct {
		Data []string `json:"data"`
	}
	require.NoError(t, tempoGet(p.addr, "/jaeger/api/services", nil, &services))
	require.Contains(t, services.Data, "e2e-tg")
	// The Jaeger search returns every trace whole.
	got, err := jaegerSearch(p.addr, "e2e-tg", 100)
	require.NoError(t, err)
	require.Len(t, got, traces)
	for id, n := range got {
		require.Equal(t, children+1, n, "trace %s", id)
	}

	// Span metrics count every span.
	testutil.Poll(t, dataTimeout, 500*time.Millisecond, func() (bool, string) {
		s, err := promtoolQueryValue(p.addr, `sum(traces_spanmetrics_calls_total{service="e2e-tg"})`)
		if err != nil {
			return false, err.Error()
		}
		return s == spans, fmt.Sprintf("traces_spanmetrics_calls_total = %v, want %d", s, spans)
	})
	p.Stop()
}

// promtoolQueryValue runs an instant PromQL query and returns its single
// value (0 when the result is empty).
func promtoolQueryValue(addr, q string) (float64, error) {
	var res struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := getAPI(addr, "/api/v1/query", url.Values{"query": {q}}, &res); err != nil {
		return 0, err
	}
	if len(res.Result) == 0 {
		return 0, nil
	}
	return strconv.ParseFloat(res.Result[0].Value[1].(string), 64)
}

// TestTracesTwoAgents sends the spans of one trace through two agents:
// partitioned by trace ID, they meet at one aggregator and come back as
// one trace through a query process.
func TestTracesTwoAgents(t *testing.T) {
	t.Parallel()
	nats := testutil.StartNATS(t)
	common := []string{"-nats.url", nats.ClientURL(), "-nats.partitions", "8"}
	agg := startPharos(t, "aggregator", append([]string{"-target=aggregator", "-data.dir", t.TempDir()}, common...))
	agents := []*pharosProc{
		startPharos(t, "agent-a", append([]string{"-target=agent", "-data.dir", t.TempDir()}, common...)),
		startPharos(t, "agent-b", append([]string{"-target=agent", "-data.dir", t.TempDir()}, common...)),
	}
	query := startPharos(t, "query", []string{"-target=query", "-query.aggregator.addresses", agg.addr})

	traceID := pcommon.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	now := time.Now()
	root := pcommon.SpanID{1, 1, 1, 1, 1, 1, 1, 1}
	for i, agent := range agents {
		// Agent a's first span is the root (its span ID is root); every
		// other span is its child.
		pushTrace(t, agent.addr, fmt.Sprintf("svc-%d", i), traceID, 3, now, func(j int) (id, parent pcommon.SpanID) {
			id = pcommon.SpanID{byte(i + 1), byte(j + 1), 1, 1, 1, 1, 1, 1}
			if i > 0 || j > 0 {
				parent = root
			}
			return id, parent
		})
	}
	testutil.Poll(t, dataTimeout, 250*time.Millisecond, func() (bool, string) {
		spans, err := traceSpans(query.addr, traceID.String())
		if err != nil {
			return false, err.Error()
		}
		return len(spans) == 6, fmt.Sprintf("trace has %d spans, want 6: %v", len(spans), spans)
	})
	// Through the Jaeger search too, whose hits the querier fetches from
	// the aggregator in one request.
	got, err := jaegerSearch(query.addr, "svc-1", 20)
	require.NoError(t, err)
	require.Equal(t, map[string]int{traceID.String(): 6}, got)
	for _, a := range agents {
		a.Stop()
	}
	query.Stop()
	agg.Stop()
}

// TestTracesAcknowledgedSurviveKill9 SIGKILLs the all-in-one right after
// the agent acknowledged pushes that it had only spooled (a batch wait
// longer than the test keeps them from the bus): the restarted process
// publishes them from the spool and every trace is complete.
func TestTracesAcknowledgedSurviveKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := []string{"-data.dir", dir, "-nats.partitions", "4"}
	p := startPharos(t, "all", append([]string{"-agent.publish.traces-batch-wait=1m"}, args...))
	const traces, spansPerTrace = 20, 5
	ids := make([]pcommon.TraceID, traces)
	now := time.Now()
	for i := range traces {
		ids[i] = pcommon.TraceID{0x7a, byte(i), 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, byte(i + 1)}
		pushTrace(t, p.addr, "kill9", ids[i], spansPerTrace, now, func(j int) (id, parent pcommon.SpanID) {
			return pcommon.SpanID{byte(i), byte(j + 1), 2, 2, 2, 2, 2, 2}, pcommon.SpanID{}
		})
	}
	published, err := metricValue(t, p.addr, "pharos_agent_spans_published_total")
	require.NoError(t, err)
	require.Zero(t, published, "the spans are only in the agent's spool")
	p.Kill()

	p = startPharos(t, "all-restarted", args)
	for _, id := range ids {
		testutil.Poll(t, dataTimeout, 100*time.Millisecond, func() (bool, string) {
			spans, err := traceSpans(p.addr, id.String())
			if err != nil {
				return false, err.Error()
			}
			return len(spans) == spansPerTrace, fmt.Sprintf("trace %s has %d spans, want %d", id, len(spans), spansPerTrace)
		})
	}
	p.Stop()
}

// pushTrace sends n spans of trace id for service to the agent at addr
// over OTLP/HTTP: span j starts j ms after now, lasts 5 ms, is named
// op-<j> and takes its IDs from ids (an empty parent: none).
func pushTrace(t *testing.T, addr, service string, id pcommon.TraceID, n int, now time.Time, ids func(j int) (id, parent pcommon.SpanID)) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	for j := range n {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(id)
		sid, parent := ids(j)
		s.SetSpanID(sid)
		s.SetParentSpanID(parent)
		s.SetName(fmt.Sprintf("op-%d", j))
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(j) * time.Millisecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(j+5) * time.Millisecond)))
	}
	body, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	require.NoError(t, err)
	code, resp := post(t, "http://"+addr+"/v1/traces", "application/x-protobuf", body)
	require.Equal(t, http.StatusOK, code, resp)
}

// jaegerSearch searches the Jaeger API for service's traces and returns
// each one's span count by trace ID.
func jaegerSearch(addr, service string, limit int) (map[string]int, error) {
	var resp struct {
		Data []struct {
			TraceID string `json:"traceID"`
			Spans   []struct {
				SpanID string `json:"spanID"`
			} `json:"spans"`
		} `json:"data"`
	}
	if err := tempoGet(addr, "/jaeger/api/traces", url.Values{"service": {service}, "limit": {strconv.Itoa(limit)}}, &resp); err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, tr := range resp.Data {
		out[tr.TraceID] = len(tr.Spans)
	}
	return out, nil
}
