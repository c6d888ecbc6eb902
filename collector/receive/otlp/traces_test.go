package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
)

// The traces tests keep their own helpers (prefixed tr) rather than
// sharing the metrics and logs tests' ones.

// trConfigs returns the configurations as their flags default them, with
// the listeners on free loopback ports.
func trConfigs() (Config, receive.Config, receive.Limits) {
	fs := flag.NewFlagSet("traces", flag.PanicOnError)
	var (
		c   Config
		rc  receive.Config
		lim receive.Limits
	)
	c.RegisterFlags(fs)
	rc.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	c.GRPC.ListenAddress = "127.0.0.1:0"
	c.HTTP.ListenAddress = "127.0.0.1:0"
	return c, rc, lim
}

type tracesEnv struct {
	sink   *receivetest.TracesRecorder
	reg    *prometheus.Registry
	traces *Traces
	r      *Receiver
	grpc   ptraceotlp.GRPCClient
	url    string
}

// newTracesEnv starts a Receiver with the traces signal registered, on
// real loopback listeners, pushing into a recorder, with a gRPC client.
func newTracesEnv(t *testing.T, adjust func(*receive.Config)) *tracesEnv {
	t.Helper()
	cfg, rc, lim := trConfigs()
	if adjust != nil {
		adjust(&rc)
	}
	e := &tracesEnv{sink: &receivetest.TracesRecorder{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.DiscardHandler)
	in, err := receive.New(rc, lim, &receivetest.Recorder{}, logger, e.reg)
	require.NoError(t, err)
	ti, err := receive.NewTracesIntake(rc.Traces, in, e.sink, logger, e.reg)
	require.NoError(t, err)
	e.r, err = New(cfg, in, logger)
	require.NoError(t, err)
	e.traces = NewTraces(ti, logger)
	require.NoError(t, e.r.Register(e.traces))
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), e.r))
	t.Cleanup(func() {
		require.NoError(t, services.StopAndAwaitTerminated(context.Background(), e.r))
	})
	cc, err := grpc.NewClient(e.r.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	e.grpc = ptraceotlp.NewGRPCClient(cc)
	e.url = "http://" + e.r.HTTPAddr()
	return e
}

type trResponse struct {
	code   int
	body   []byte
	header http.Header
}

func (e *tracesEnv) post(t *testing.T, body []byte, hdr ...string) trResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+TracesPath, bytes.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return trResponse{code: resp.StatusCode, body: b, header: resp.Header}
}

func (e *tracesEnv) export(ctx context.Context, td ptrace.Traces, tenant string) (ptraceotlp.ExportResponse, error) {
	if tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, tenantMetadataKey, tenant)
	}
	return e.grpc.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
}

func tracesProto(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	require.NoError(t, err)
	return b
}

func tracesJSON(t testing.TB, td ptrace.Traces) []byte {
	t.Helper()
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalJSON()
	require.NoError(t, err)
	return b
}

func decodeTracesResponse(t *testing.T, r trResponse, contentType string) ptraceotlp.ExportResponse {
	t.Helper()
	require.Equal(t, http.StatusOK, r.code, string(r.body))
	require.Equal(t, contentType, r.header.Get("Content-Type"))
	resp := ptraceotlp.NewExportResponse()
	if contentType == contentTypeJSON {
		require.NoError(t, resp.UnmarshalJSON(r.body))
	} else {
		require.NoError(t, resp.UnmarshalProto(r.body))
	}
	return resp
}

func trStatus(t *testing.T, r trResponse, contentType string) *spb.Status {
	t.Helper()
	require.Equal(t, contentType, r.header.Get("Content-Type"))
	st := &spb.Status{}
	if contentType == contentTypeJSON {
		require.NoError(t, protojson.Unmarshal(r.body, st))
	} else {
		require.NoError(t, proto.Unmarshal(r.body, st))
	}
	return st
}

func trRetryInfo(err error) *errdetails.RetryInfo {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri
		}
	}
	return nil
}

func trGzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func trZstd(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	defer zw.Close()
	return zw.EncodeAll(b, nil)
}

// sameTraces compares spans through their canonical OTLP/JSON.
func sameTraces(t *testing.T, want, got ptrace.Traces) {
	t.Helper()
	var m ptrace.JSONMarshaler
	w, err := m.MarshalTraces(want)
	require.NoError(t, err)
	g, err := m.MarshalTraces(got)
	require.NoError(t, err)
	require.JSONEq(t, string(w), string(g))
}

var (
	trTraceA = pcommon.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c}
	trSpanA  = pcommon.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x10}
	trSpanB  = pcommon.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x11}
	trStart  = time.Date(2026, 5, 1, 11, 59, 0, 0, time.UTC)
)

// testTraces is two services of one trace: a client span with an event
// and a link calling a server span, every attribute type.
func testTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	rs.Resource().Attributes().PutStr("service.name", "frontend")
	rs.Resource().Attributes().PutStr("host.name", "h1")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("io.opentelemetry.http")
	ss.Scope().SetVersion("1.2.3")
	sp := ss.Spans().AppendEmpty()
	sp.SetTraceID(trTraceA)
	sp.SetSpanID(trSpanA)
	sp.SetName("GET /cart")
	sp.SetKind(ptrace.SpanKindClient)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(trStart))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(trStart.Add(120 * time.Millisecond)))
	sp.TraceState().FromRaw("vendor=x")
	sp.Attributes().PutStr("http.method", "GET")
	sp.Attributes().PutInt("http.status_code", 500)
	sp.Attributes().PutDouble("ratio", 0.5)
	sp.Attributes().PutBool("cached", false)
	sp.Attributes().PutEmptySlice("tags").FromRaw([]any{"a", int64(1)})
	sp.Attributes().PutEmptyMap("user").PutStr("id", "u1")
	sp.Status().SetCode(ptrace.StatusCodeError)
	sp.Status().SetMessage("boom")
	ev := sp.Events().AppendEmpty()
	ev.SetName("exception")
	ev.SetTimestamp(pcommon.NewTimestampFromTime(trStart.Add(time.Millisecond)))
	ev.Attributes().PutStr("exception.message", "boom")
	ln := sp.Links().AppendEmpty()
	ln.SetTraceID(pcommon.TraceID{1})
	ln.SetSpanID(pcommon.SpanID{2})

	rs = td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "cart")
	sp = rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(trTraceA)
	sp.SetSpanID(trSpanB)
	sp.SetParentSpanID(trSpanA)
	sp.SetName("GET /cart")
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(trStart.Add(10 * time.Millisecond)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(trStart.Add(100 * time.Millisecond)))
	return td
}

// oneSpan is a resource of service svc with valid spans named names.
func oneSpan(names ...string) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "svc")
	ss := rs.ScopeSpans().AppendEmpty()
	for i, n := range names {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(trTraceA)
		sid := trSpanA
		sid[0] = byte(i + 1)
		sp.SetSpanID(sid)
		sp.SetName(n)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(trStart))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(trStart.Add(time.Second)))
	}
	return td
}

func TestTracesGRPC(t *testing.T) {
	e := newTracesEnv(t, nil)
	resp, err := e.export(context.Background(), testTraces(), "team-a")
	require.NoError(t, err)
	require.Zero(t, resp.PartialSuccess().RejectedSpans())
	require.Empty(t, resp.PartialSuccess().ErrorMessage())
	p := e.sink.Pushes()
	require.Len(t, p, 1)
	require.Equal(t, "team-a", p[0].Tenant)
	require.True(t, p[0].Wire, "clean spans go through undecoded")
	sameTraces(t, testTraces(), p[0].Traces)
	require.InDelta(t, 2, receivetest.Metric(t, e.reg, "pharos_agent_received_spans_total", "protocol", "otlp_grpc"), 0)
	require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_receive_requests_total", "protocol", "otlp_grpc", "status", "OK"), 0)

	_, err = e.export(context.Background(), testTraces(), "")
	require.NoError(t, err)
	require.Empty(t, e.sink.Pushes()[1].Tenant, "no tenant: the default one")
}

func TestTracesHTTP(t *testing.T) {
	for _, c := range []struct {
		name, ct, enc string
	}{
		{"protobuf", contentTypeProtobuf, ""},
		{"json", contentTypeJSON, ""},
		{"protobuf gzip", contentTypeProtobuf, "gzip"},
		{"json zstd", contentTypeJSON, "zstd"},
		{"protobuf zstd", contentTypeProtobuf, "zstd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTracesEnv(t, nil)
			body := tracesProto(t, testTraces())
			if c.ct == contentTypeJSON {
				body = tracesJSON(t, testTraces())
			}
			switch c.enc {
			case "gzip":
				body = trGzip(t, body)
			case "zstd":
				body = trZstd(t, body)
			}
			hdr := []string{"Content-Type", c.ct, receive.TenantHeader, "team-b"}
			if c.enc != "" {
				hdr = append(hdr, "Content-Encoding", c.enc)
			}
			resp := decodeTracesResponse(t, e.post(t, body, hdr...), c.ct)
			require.Zero(t, resp.PartialSuccess().RejectedSpans())
			p := e.sink.Pushes()
			require.Len(t, p, 1)
			require.Equal(t, "team-b", p[0].Tenant)
			require.Equal(t, c.ct == contentTypeProtobuf, p[0].Wire, "protobuf goes through undecoded, JSON is decoded")
			sameTraces(t, testTraces(), p[0].Traces)
			require.InDelta(t, 2, receivetest.Metric(t, e.reg, "pharos_agent_received_spans_total", "protocol", "otlp_http"), 0)
		})
	}
}

// A hand-written OTLP/JSON body, as curl sends it (hex IDs, string times).
func TestTracesHTTPJSONHandWritten(t *testing.T) {
	e := newTracesEnv(t, nil)
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"curl"}}]},
	  "scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203310","name":"hello",
	    "kind":2,"startTimeUnixNano":"1777636800000000000","endTimeUnixNano":"1777636800500000000",
	    "attributes":[{"key":"k","value":{"intValue":"7"}}]}]}]}]}`
	decodeTracesResponse(t, e.post(t, []byte(body), "Content-Type", contentTypeJSON), contentTypeJSON)
	p := e.sink.Pushes()
	require.Len(t, p, 1)
	sp := p[0].Traces.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	require.Equal(t, trTraceA, sp.TraceID())
	require.Equal(t, trSpanA, sp.SpanID())
	require.Equal(t, "hello", sp.Name())
	require.Equal(t, ptrace.SpanKindServer, sp.Kind())
	require.EqualValues(t, 500*time.Millisecond, sp.EndTimestamp()-sp.StartTimestamp())
	v, _ := sp.Attributes().Get("k")
	require.EqualValues(t, 7, v.Int())
}

func TestTracesPartialSuccess(t *testing.T) {
	build := func() ptrace.Traces {
		td := oneSpan("fine", "backwards", "zero")
		spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		spans.At(1).SetEndTimestamp(spans.At(1).StartTimestamp() - 1)
		spans.At(2).SetSpanID(pcommon.SpanID{})
		return td
	}
	want := []string{
		"2 of 3 spans rejected",
		`of service "svc": the span ends`,
		"(end_time_unix_nano >= start_time_unix_nano)",
		`span 0af7651916cd43dd8448eb211c80319c/0000000000000000 of service "svc": the span ID is all zeros (span_id)`,
	}
	check := func(t *testing.T, e *tracesEnv, ps ptraceotlp.ExportPartialSuccess) {
		t.Helper()
		require.EqualValues(t, 2, ps.RejectedSpans())
		for _, w := range want {
			require.Contains(t, ps.ErrorMessage(), w)
		}
		p := e.sink.Pushes()
		require.Len(t, p, 1)
		require.False(t, p[0].Wire, "refused spans: decoded, for CheckTraces")
		require.Equal(t, 1, p[0].Traces.SpanCount())
		require.Equal(t, "fine", p[0].Traces.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name())
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_rejected_spans_total", "reason", receive.ReasonTracesInvalidTimestamps), 0)
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_rejected_spans_total", "reason", receive.ReasonTracesInvalidSpanID), 0)
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_received_spans_total"), 0)
	}
	t.Run("http", func(t *testing.T) {
		e := newTracesEnv(t, nil)
		check(t, e, decodeTracesResponse(t, e.post(t, tracesProto(t, build()), "Content-Type", contentTypeProtobuf), contentTypeProtobuf).PartialSuccess())
	})
	t.Run("http json", func(t *testing.T) {
		e := newTracesEnv(t, nil)
		check(t, e, decodeTracesResponse(t, e.post(t, tracesJSON(t, build()), "Content-Type", contentTypeJSON), contentTypeJSON).PartialSuccess())
	})
	t.Run("grpc", func(t *testing.T) {
		e := newTracesEnv(t, nil)
		resp, err := e.export(context.Background(), build(), "")
		require.NoError(t, err)
		check(t, e, resp.PartialSuccess())
	})
}

// A request goes through undecoded only when no ingestion rule would
// refuse or change a span: each rule's trigger sends it through pdata,
// where the rule is applied, and a request just within the limits does
// not.
func TestTracesWireOnlyWhenClean(t *testing.T) {
	long := string(make([]byte, 40)) // over the limit set below
	for _, c := range []struct {
		name  string
		edit  func(td ptrace.Traces)
		wire  bool
		check func(t *testing.T, got ptrace.Traces)
	}{
		{"clean", func(ptrace.Traces) {}, true, nil},
		{"at the limits", func(td ptrace.Traces) {
			sp := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
			sp.SetName(long[:32])
			sp.Attributes().Clear()
			for i := range 6 {
				sp.Attributes().PutStr(fmt.Sprint("k", i), long[:32])
			}
		}, true, nil},
		{"long span name truncated", func(td ptrace.Traces) {
			td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).SetName(long)
		}, false, func(t *testing.T, got ptrace.Traces) {
			require.Len(t, got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Name(), 32)
		}},
		{"long event value truncated", func(td ptrace.Traces) {
			ev := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Events().AppendEmpty()
			ev.Attributes().PutStr("e", long)
		}, false, func(t *testing.T, got ptrace.Traces) {
			evs := got.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Events()
			v, _ := evs.At(evs.Len() - 1).Attributes().Get("e")
			require.Len(t, v.Str(), 32)
		}},
		{"invalid UTF-8 repaired", func(td ptrace.Traces) {
			td.ResourceSpans().At(0).Resource().Attributes().PutStr("bad", "a\xffb")
		}, false, func(t *testing.T, got ptrace.Traces) {
			v, _ := got.ResourceSpans().At(0).Resource().Attributes().Get("bad")
			require.Equal(t, "a\uFFFDb", v.Str())
		}},
		{"too many span attributes", func(td ptrace.Traces) {
			for i := range 7 {
				td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).Attributes().PutInt(fmt.Sprint("n", i), 1)
			}
		}, false, func(t *testing.T, got ptrace.Traces) { require.Equal(t, 1, got.SpanCount()) }},
		{"too many resource attributes", func(td ptrace.Traces) {
			rs := td.ResourceSpans().AppendEmpty()
			for i := range 5 {
				rs.Resource().Attributes().PutInt(fmt.Sprint("n", i), 1)
			}
			sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
			sp.SetTraceID(pcommon.TraceID{1})
			sp.SetSpanID(pcommon.SpanID{1})
		}, false, func(t *testing.T, got ptrace.Traces) { require.Equal(t, 2, got.SpanCount()) }},
		{"zero trace ID", func(td ptrace.Traces) {
			td.ResourceSpans().At(1).ScopeSpans().At(0).Spans().At(0).SetTraceID(pcommon.TraceID{})
		}, false, func(t *testing.T, got ptrace.Traces) { require.Equal(t, 1, got.SpanCount()) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newTracesEnv(t, func(cfg *receive.Config) {
				cfg.Traces.MaxAttributeValueLength = 32
				cfg.Traces.MaxAttributesPerSpan = 6
				cfg.Traces.MaxAttributesPerResource = 4
			})
			td := testTraces()
			c.edit(td)
			want := ptrace.NewTraces()
			td.CopyTo(want)
			_, err := e.export(context.Background(), td, "")
			require.NoError(t, err)
			p := e.sink.Pushes()
			require.Len(t, p, 1)
			require.Equal(t, c.wire, p[0].Wire)
			if c.check != nil {
				c.check(t, p[0].Traces)
			} else {
				sameTraces(t, want, p[0].Traces)
			}
		})
	}
}

func TestTracesAllRejected(t *testing.T) {
	adjust := func(rc *receive.Config) { rc.Traces.MaxAttributesPerResource = 0; rc.Traces.MaxAttributesPerSpan = 1 }
	build := func() ptrace.Traces {
		td := oneSpan("a", "b")
		spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		for i := range spans.Len() {
			spans.At(i).Attributes().PutStr("x", "1")
			spans.At(i).Attributes().PutStr("y", "2")
		}
		return td
	}
	t.Run("http", func(t *testing.T) {
		e := newTracesEnv(t, adjust)
		r := e.post(t, tracesProto(t, build()), "Content-Type", contentTypeProtobuf)
		require.Equal(t, http.StatusBadRequest, r.code)
		st := trStatus(t, r, contentTypeProtobuf)
		require.Equal(t, int32(codes.InvalidArgument), st.GetCode())
		require.Contains(t, st.GetMessage(), "2 of 2 spans rejected")
		require.Contains(t, st.GetMessage(), "2 span attributes exceed the limit of 1 (agent.receive.traces.max_attributes_per_span)")
		require.Empty(t, r.header.Get("Retry-After"))
		require.Empty(t, e.sink.Pushes())
	})
	t.Run("grpc", func(t *testing.T) {
		e := newTracesEnv(t, adjust)
		_, err := e.export(context.Background(), build(), "")
		require.Equal(t, codes.InvalidArgument, status.Code(err), err)
		require.Contains(t, err.Error(), "agent.receive.traces.max_attributes_per_span")
		require.Empty(t, e.sink.Pushes())
	})
}

func TestTracesSinkErrors(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		e := newTracesEnv(t, nil)
		e.sink.Err = errors.New("bus unavailable")
		r := e.post(t, tracesProto(t, oneSpan("a")), "Content-Type", contentTypeProtobuf)
		require.Equal(t, http.StatusServiceUnavailable, r.code)
		require.Equal(t, "2", r.header.Get("Retry-After"))
		st := trStatus(t, r, contentTypeProtobuf)
		require.Equal(t, int32(codes.Unavailable), st.GetCode())
		require.Contains(t, st.GetMessage(), "bus unavailable")

		_, err := e.export(context.Background(), oneSpan("a"), "")
		require.Equal(t, codes.Unavailable, status.Code(err))
		require.NotNil(t, trRetryInfo(err))
	})
	t.Run("permanent", func(t *testing.T) {
		e := newTracesEnv(t, nil)
		e.sink.Err = fmt.Errorf("span too large for the bus: %w", receive.ErrTracesRejected)
		r := e.post(t, tracesJSON(t, oneSpan("a")), "Content-Type", contentTypeJSON)
		require.Equal(t, http.StatusBadRequest, r.code)
		require.Empty(t, r.header.Get("Retry-After"))
		st := trStatus(t, r, contentTypeJSON)
		require.Equal(t, int32(codes.InvalidArgument), st.GetCode())
		require.Contains(t, st.GetMessage(), "span too large for the bus")

		_, err := e.export(context.Background(), oneSpan("a"), "")
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.InDelta(t, 2, receivetest.Metric(t, e.reg, "pharos_agent_rejected_spans_total", "reason", receive.ReasonTracesSinkRejected), 0)
	})
	t.Run("sender gone", func(t *testing.T) {
		e := newTracesEnv(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		e.sink.Before = func(c context.Context) error {
			cancel()
			<-c.Done()
			return c.Err()
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, TracesPath, bytes.NewReader(tracesProto(t, oneSpan("a"))))
		req.Header.Set("Content-Type", contentTypeProtobuf)
		w := httptest.NewRecorder()
		e.traces.ServeHTTP(w, req)
		require.Equal(t, statusClientClosed, w.Code)
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_receive_requests_total", "protocol", "otlp_http", "status", "499"), 0)
	})
}

func TestTracesErrors(t *testing.T) {
	e := newTracesEnv(t, nil)
	r := e.post(t, []byte("\xff\xff\xff\xff garbage"), "Content-Type", contentTypeProtobuf)
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, trStatus(t, r, contentTypeProtobuf).GetMessage(), "decode OTLP traces")

	r = e.post(t, []byte(`{"resourceSpans": [`), "Content-Type", contentTypeJSON)
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, trStatus(t, r, contentTypeJSON).GetMessage(), "decode OTLP traces")

	// A trace ID of the wrong length is refused by the decoder.
	r = e.post(t, []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0af765","spanId":"b7ad6b7169203310"}]}]}]}`), "Content-Type", contentTypeJSON)
	require.Equal(t, http.StatusBadRequest, r.code)

	r = e.post(t, tracesProto(t, oneSpan("a")), "Content-Type", contentTypeProtobuf, receive.TenantHeader, "../etc")
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, trStatus(t, r, contentTypeProtobuf).GetMessage(), `X-Scope-OrgID: invalid tenant ID "../etc": byte 2 (0x2f) is not one of`)

	_, err := e.export(context.Background(), oneSpan("a"), "..")
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, err.Error(), "x-scope-orgid: invalid tenant ID")

	r = e.post(t, []byte("{}"), "Content-Type", "text/plain")
	require.Equal(t, http.StatusUnsupportedMediaType, r.code)
	r = e.post(t, tracesProto(t, oneSpan("a")), "Content-Type", contentTypeProtobuf, "Content-Encoding", "snappy")
	require.Equal(t, http.StatusUnsupportedMediaType, r.code)
	r = e.post(t, []byte("\x1f\x8b not gzip"), "Content-Type", contentTypeProtobuf, "Content-Encoding", "gzip")
	require.Equal(t, http.StatusBadRequest, r.code)
	resp, err := http.Get(e.url + TracesPath)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Empty(t, e.sink.Pushes())

	// An empty request is fine and pushes nothing.
	decodeTracesResponse(t, e.post(t, tracesProto(t, ptrace.NewTraces()), "Content-Type", contentTypeProtobuf), contentTypeProtobuf)
	_, err = e.export(context.Background(), ptrace.NewTraces(), "")
	require.NoError(t, err)
	require.Empty(t, e.sink.Pushes())
}

func TestTracesTooLarge(t *testing.T) {
	e := newTracesEnv(t, func(rc *receive.Config) { rc.MaxDecompressedBytes = 4096 })
	big := oneSpan(strings.Repeat("x", 8000))
	r := e.post(t, trGzip(t, tracesProto(t, big)), "Content-Type", contentTypeProtobuf, "Content-Encoding", "gzip")
	require.Equal(t, http.StatusRequestEntityTooLarge, r.code)
	require.Contains(t, trStatus(t, r, contentTypeProtobuf).GetMessage(), "agent.receive.max_decompressed_bytes")
	_, err := e.export(context.Background(), big, "")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	require.Empty(t, e.sink.Pushes())
}

// Decompression bombs sent to /v1/traces: a few hundred KiB that inflate
// to a GiB are cut off at the limit (64 MiB) with 413, and the memory
// taken stays far below what they inflate to.
func TestTracesHTTPBombs(t *testing.T) {
	e := newTracesEnv(t, nil)
	const inflated = 1 << 30
	zeros := make([]byte, 1<<20)

	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	require.NoError(t, err)
	_, err = zw.Write(zeros)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	gz := bytes.Repeat(member.Bytes(), inflated/len(zeros))

	var zs bytes.Buffer
	enc, err := zstd.NewWriter(&zs, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	require.NoError(t, err)
	for range inflated / len(zeros) {
		_, err = enc.Write(zeros)
		require.NoError(t, err)
	}
	require.NoError(t, enc.Close())
	zsFrames := bytes.Repeat(trZstd(t, zeros), inflated/len(zeros))

	for _, c := range []struct {
		name string
		body []byte
		enc  string
	}{{"gzip members", gz, "gzip"}, {"zstd stream", zs.Bytes(), "zstd"}, {"zstd frames", zsFrames, "zstd"}} {
		t.Run(c.name, func(t *testing.T) {
			require.Less(t, len(c.body), 10<<20, "the bomb fits the wire limit")
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			r := e.post(t, c.body, "Content-Type", contentTypeProtobuf, "Content-Encoding", c.enc)
			runtime.ReadMemStats(&after)
			require.Equal(t, http.StatusRequestEntityTooLarge, r.code)
			require.Contains(t, trStatus(t, r, contentTypeProtobuf).GetMessage(), "agent.receive.max_decompressed_bytes")
			t.Logf("%d bytes on the wire, %d allocated", len(c.body), after.TotalAlloc-before.TotalAlloc)
			require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(200<<20))
		})
	}
	require.Empty(t, e.sink.Pushes())
}

func TestTracesOverload(t *testing.T) {
	e := newTracesEnv(t, func(rc *receive.Config) { rc.MaxInflightRequests = 1 })
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	e.sink.Before = func(context.Context) error {
		once.Do(func() {
			close(entered)
			<-release
		})
		return nil
	}
	body := tracesProto(t, oneSpan("a"))
	first := make(chan trResponse, 1)
	go func() { first <- e.post(t, body, "Content-Type", contentTypeProtobuf) }()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first request never reached the sink")
	}
	r := e.post(t, body, "Content-Type", contentTypeProtobuf)
	require.Equal(t, http.StatusTooManyRequests, r.code)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	_, err := e.export(context.Background(), oneSpan("a"), "")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	require.NotNil(t, trRetryInfo(err))

	close(release)
	decodeTracesResponse(t, <-first, contentTypeProtobuf)
	_, err = e.export(context.Background(), oneSpan("a"), "")
	require.NoError(t, err, "a slot is free again")
	require.Len(t, e.sink.Pushes(), 2)
}

// The traces signal shares the listeners with metrics.
func TestTracesAndMetricsTogether(t *testing.T) {
	e := newTracesEnv(t, nil)
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("g")
	m.SetEmptyGauge().DataPoints().AppendEmpty().SetTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	b, err := pmetricotlp.NewExportRequestFromMetrics(md).MarshalProto()
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, e.url+MetricsPath, bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentTypeProtobuf)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	decodeTracesResponse(t, e.post(t, tracesProto(t, oneSpan("a")), "Content-Type", contentTypeProtobuf), contentTypeProtobuf)
	require.Len(t, e.sink.Pushes(), 1)
}

func tracesSeeds(t testing.TB) (pb, js [][]byte) {
	bad := oneSpan("ok", "bad")
	bad.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).SetTraceID(pcommon.TraceID{})
	for _, td := range []ptrace.Traces{testTraces(), bad, ptrace.NewTraces()} {
		pb = append(pb, tracesProto(t, td))
		js = append(js, tracesJSON(t, td))
	}
	return pb, js
}

// TestTracesFuzzSeeds checks testdata/fuzz/FuzzHTTPTraces against
// tracesSeeds; PHAROS_WRITE_FUZZ_SEEDS=1 rewrites it.
func TestTracesFuzzSeeds(t *testing.T) {
	pb, js := tracesSeeds(t)
	dir := filepath.Join("testdata", "fuzz", "FuzzHTTPTraces")
	for i, s := range append(pb, js...) {
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nbool(%t)\n", strconv.Quote(string(s)), i >= len(pb))
		path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		if os.Getenv("PHAROS_WRITE_FUZZ_SEEDS") == "1" {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "run with PHAROS_WRITE_FUZZ_SEEDS=1 to write the seed corpus")
		require.Equal(t, want, string(got), "%s is stale: run with PHAROS_WRITE_FUZZ_SEEDS=1", path)
	}
}

// FuzzHTTPTraces sends any body, as protobuf or JSON, through the
// OTLP/HTTP traces handler (decoding, checks, truncation): it must answer
// 200, 400 or 413, never panic.
func FuzzHTTPTraces(f *testing.F) {
	pb, js := tracesSeeds(f)
	for _, b := range pb {
		f.Add(b, false)
	}
	for _, b := range js {
		f.Add(b, true)
	}
	_, rc, lim := trConfigs()
	rc.MaxRequestBytes = 1 << 20
	rc.Traces.MaxAttributeValueLength = 64
	rc.Traces.MaxAttributesPerSpan = 8
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	in, err := receive.New(rc, lim, &receivetest.Recorder{}, logger, reg)
	require.NoError(f, err)
	// The sink reads every span, as the publisher does.
	sink := receive.TracesSinkFunc(func(_ context.Context, _ string, td ptrace.Traces) error {
		_, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
		return err
	})
	ti, err := receive.NewTracesIntake(rc.Traces, in, sink, logger, reg)
	require.NoError(f, err)
	tr := NewTraces(ti, logger)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		ct := contentTypeProtobuf
		if json {
			ct = contentTypeJSON
		}
		req := httptest.NewRequest(http.MethodPost, TracesPath, bytes.NewReader(data))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		tr.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
