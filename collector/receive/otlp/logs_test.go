package otlp

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/storage/logs"
)

type logsEnv struct {
	sink *receivetest.LogsRecorder
	reg  *prometheus.Registry
	logs *Logs
	r    *Receiver
	grpc plogotlp.GRPCClient
	url  string
}

// newLogsEnv starts a Receiver with the logs signal registered, on real
// loopback listeners, pushing into a recorder, with a gRPC client.
func newLogsEnv(t *testing.T, adjust func(*receive.Config, *receive.LogsConfig)) *logsEnv {
	t.Helper()
	cfg, rc, lim := defaults()
	fs := flag.NewFlagSet("logs", flag.PanicOnError)
	var lc receive.LogsConfig
	lc.RegisterFlags(fs)
	if adjust != nil {
		adjust(&rc, &lc)
	}
	e := &logsEnv{sink: &receivetest.LogsRecorder{}, reg: prometheus.NewRegistry()}
	logger := slog.New(slog.DiscardHandler)
	in, err := receive.New(rc, lim, &receivetest.Recorder{}, logger, e.reg)
	require.NoError(t, err)
	li, err := receive.NewLogsIntake(lc, in, e.sink, logger, e.reg)
	require.NoError(t, err)
	e.r, err = New(cfg, in, logger)
	require.NoError(t, err)
	e.logs = NewLogs(li, logger)
	e.logs.now = func() time.Time { return testNow }
	require.NoError(t, e.r.Register(e.logs))
	e.grpc = plogotlp.NewGRPCClient(run(t, e.r))
	e.url = "http://" + e.r.HTTPAddr()
	return e
}

var testNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func (e *logsEnv) post(t *testing.T, body []byte, hdr ...string) response {
	t.Helper()
	return postTo(t, e.url+LogsPath, body, hdr...)
}

func (e *logsEnv) export(ctx context.Context, ld plog.Logs, tenant string) (plogotlp.ExportResponse, error) {
	if tenant != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, tenantMetadataKey, tenant)
	}
	return e.grpc.Export(ctx, plogotlp.NewExportRequestFromLogs(ld))
}

func logsProto(t *testing.T, ld plog.Logs) []byte {
	return protoOf(t, plogotlp.NewExportRequestFromLogs(ld))
}

func logsJSON(t *testing.T, ld plog.Logs) []byte {
	return jsonOf(t, plogotlp.NewExportRequestFromLogs(ld))
}

// decodeLogsResponse decodes a 200 answer to a logs export.
func decodeLogsResponse(t *testing.T, r response, contentType string) plogotlp.ExportResponse {
	t.Helper()
	return decodeInto(t, r, contentType, plogotlp.NewExportResponse())
}

var (
	t1       = time.Date(2026, 5, 1, 11, 59, 0, 123456789, time.UTC)
	t2       = t1.Add(time.Second)
	traceID  = pcommon.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c}
	spanID   = pcommon.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x10}
	checkout = labels.FromStrings("cloud_region", "eu-west-1", "deployment_environment", "prod",
		"k8s_namespace_name", "shop", "k8s_pod_name", "checkout-1", "service_name", "checkout")
)

// testLogs covers the mapping: three resources (the third with the
// first's stream labels), scopes, every record field, attribute types
// and names, body types.
func testLogs() plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	ra := rl.Resource().Attributes()
	ra.PutStr("service.name", "checkout")
	ra.PutStr("k8s.namespace.name", "shop")
	ra.PutStr("k8s.pod.name", "checkout-1")
	ra.PutStr("deployment.environment", "prod")
	ra.PutStr("cloud.region", "eu-west-1")
	ra.PutStr("host.name", "h1")
	ra.PutStr("cloud.availability_zone", "") // empty: not a label
	ra.PutInt("process.pid", 42)
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("io.opentelemetry.slf4j")
	sl.Scope().SetVersion("1.2.3")
	sl.Scope().SetDroppedAttributesCount(2)
	sl.Scope().Attributes().PutStr("scope.attr", "s")
	sl.Scope().Attributes().PutStr("host.name", "from-scope") // overrides the resource's

	lr := sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t1))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(t2))
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	lr.SetSeverityText("INFO")
	lr.Body().SetStr("GET /cart 200")
	lr.Attributes().PutStr("http.method", "GET")
	lr.Attributes().PutInt("http.status_code", 200)
	lr.Attributes().PutBool("cached", true)
	lr.Attributes().PutDouble("ratio", 0.5)
	lr.Attributes().PutStr("severity_text", "overridden by the field")
	lr.Attributes().PutEmptySlice("tags").FromRaw([]any{"a", int64(1)})
	nested := lr.Attributes().PutEmptyMap("user")
	nested.PutStr("id", "u1")
	nested.PutEmptyMap("geo").PutStr("country.code", "FR")
	lr.SetTraceID(traceID)
	lr.SetSpanID(spanID)
	lr.SetFlags(plog.DefaultLogRecordFlags.WithIsSampled(true))

	lr = sl.LogRecords().AppendEmpty()
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(t2)) // no timestamp: the observed time
	lr.SetSeverityNumber(plog.SeverityNumberError)
	lr.Body().SetEmptyMap().FromRaw(map[string]any{"msg": "boom", "code": int64(7)})
	lr.Attributes().PutStr("123abc", "digit")
	lr.Attributes().PutStr("__", "dropped")
	lr.Attributes().PutStr("", "dropped")
	lr.Attributes().PutStr("empty", "")
	lr.Attributes().PutStr("http.request.header.x-id", "r1")

	// A resource without service.name.
	rl = ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("k8s.namespace.name", "batch")
	rl.Resource().Attributes().PutStr("service.namespace", "jobs")
	rl.ScopeLogs().AppendEmpty() // no records: no stream
	lr = rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.Body().SetInt(7) // no times at all: receipt time

	// The first resource's stream labels again, other metadata.
	rl = ld.ResourceLogs().AppendEmpty()
	ra = rl.Resource().Attributes()
	for _, k := range []string{"service.name", "k8s.namespace.name", "k8s.pod.name", "deployment.environment", "cloud.region"} {
		v, _ := ld.ResourceLogs().At(0).Resource().Attributes().Get(k)
		ra.PutStr(k, v.Str())
	}
	lr = rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t2))
	lr.Body().SetEmptyBytes().FromRaw([]byte{1, 2, 3})
	return ld
}

// wantLogs is testLogs mapped.
func wantLogs() []logs.Stream {
	return []logs.Stream{
		{Labels: checkout, Entries: []logs.Entry{
			{Timestamp: t1.UnixNano(), Line: "GET /cart 200", Metadata: labels.FromStrings(
				"cached", "true",
				"flags", "1",
				"host_name", "from-scope",
				"http_method", "GET",
				"http_status_code", "200",
				"observed_timestamp", strconv.FormatInt(t2.UnixNano(), 10),
				"process_pid", "42",
				"ratio", "0.5",
				"scope_attr", "s",
				"scope_dropped_attributes_count", "2",
				"scope_name", "io.opentelemetry.slf4j",
				"scope_version", "1.2.3",
				"severity_number", "9",
				"severity_text", "INFO",
				"span_id", "b7ad6b7169203310",
				"tags", `["a",1]`,
				"trace_id", "0af7651916cd43dd8448eb211c80319c",
				"user_geo_country_code", "FR",
				"user_id", "u1",
			)},
			{Timestamp: t2.UnixNano(), Line: `{"code":7,"msg":"boom"}`, Metadata: labels.FromStrings(
				"host_name", "from-scope",
				"http_request_header_x_id", "r1",
				"key_123abc", "digit",
				"process_pid", "42",
				"scope_attr", "s",
				"scope_dropped_attributes_count", "2",
				"scope_name", "io.opentelemetry.slf4j",
				"scope_version", "1.2.3",
				"severity_number", "17",
			)},
			{Timestamp: t2.UnixNano(), Line: "AQID", Metadata: labels.EmptyLabels()},
		}},
		{Labels: labels.FromStrings("k8s_namespace_name", "batch", "service_name", "unknown_service", "service_namespace", "jobs"), Entries: []logs.Entry{
			{Timestamp: testNow.UnixNano(), Line: "7", Metadata: labels.EmptyLabels()},
		}},
	}
}

func TestLogsGRPC(t *testing.T) {
	e := newLogsEnv(t, nil)
	resp, err := e.export(context.Background(), testLogs(), "team-a")
	require.NoError(t, err)
	require.Zero(t, resp.PartialSuccess().RejectedLogRecords())
	require.Empty(t, resp.PartialSuccess().ErrorMessage())
	p := e.sink.Pushes()
	require.Len(t, p, 1)
	require.Equal(t, "team-a", p[0].Tenant)
	receivetest.RequireStreams(t, wantLogs(), p[0].Streams)
	require.InDelta(t, 4, receivetest.Metric(t, e.reg, "pharos_agent_received_log_entries_total", "protocol", "otlp_grpc"), 0)
	require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_receive_requests_total", "protocol", "otlp_grpc", "status", "OK"), 0)

	// No tenant: the default one.
	_, err = e.export(context.Background(), testLogs(), "")
	require.NoError(t, err)
	require.Empty(t, e.sink.Pushes()[1].Tenant)
}

func TestLogsHTTP(t *testing.T) {
	for _, c := range []struct {
		name, ct, enc string
	}{
		{"protobuf", contentTypeProtobuf, ""},
		{"json", contentTypeJSON, ""},
		{"protobuf gzip", contentTypeProtobuf, "gzip"},
		{"json zstd", contentTypeJSON, "zstd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newLogsEnv(t, nil)
			body := logsProto(t, testLogs())
			if c.ct == contentTypeJSON {
				body = logsJSON(t, testLogs())
			}
			switch c.enc {
			case "gzip":
				body = receivetest.Gzip(t, body)
			case "zstd":
				body = receivetest.Zstd(t, body)
			}
			hdr := []string{"Content-Type", c.ct, receive.TenantHeader, "team-b"}
			if c.enc != "" {
				hdr = append(hdr, "Content-Encoding", c.enc)
			}
			resp := decodeLogsResponse(t, e.post(t, body, hdr...), c.ct)
			require.Zero(t, resp.PartialSuccess().RejectedLogRecords())
			p := e.sink.Pushes()
			require.Len(t, p, 1)
			require.Equal(t, "team-b", p[0].Tenant)
			receivetest.RequireStreams(t, wantLogs(), p[0].Streams)
			require.InDelta(t, 4, receivetest.Metric(t, e.reg, "pharos_agent_received_log_entries_total", "protocol", "otlp_http"), 0)
		})
	}
}

// A hand-written OTLP/JSON body, as curl sends it.
func TestLogsHTTPJSONHandWritten(t *testing.T) {
	e := newLogsEnv(t, nil)
	body := `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"curl"}}]},
	  "scopeLogs":[{"logRecords":[{"timeUnixNano":"1777636800000000000","severityText":"WARN","body":{"stringValue":"disk almost full"},
	    "traceId":"0af7651916cd43dd8448eb211c80319c","attributes":[{"key":"disk","value":{"stringValue":"/dev/sda"}}]}]}]}]}`
	decodeLogsResponse(t, e.post(t, []byte(body), "Content-Type", contentTypeJSON), contentTypeJSON)
	receivetest.RequireStreams(t, []logs.Stream{{Labels: labels.FromStrings("service_name", "curl"), Entries: []logs.Entry{
		{Timestamp: 1777636800000000000, Line: "disk almost full", Metadata: labels.FromStrings("disk", "/dev/sda", "severity_text", "WARN", "trace_id", "0af7651916cd43dd8448eb211c80319c")},
	}}}, e.sink.Pushes()[0].Streams)
}

// oneLog is a resource with the given records' bodies.
func oneLog(bodies ...string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("service.name", "svc")
	sl := rl.ScopeLogs().AppendEmpty()
	for _, b := range bodies {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(t1))
		lr.Body().SetStr(b)
	}
	return ld
}

func TestLogsPartialSuccess(t *testing.T) {
	build := func() plog.Logs {
		ld := oneLog("fine", strings.Repeat("x", 101))
		lr := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.Timestamp(math.MaxInt64 + 1))
		lr.Body().SetStr("from the far future")
		return ld
	}
	want := []string{
		"2 of 3 log entries rejected",
		`stream {service_name="svc"}: a line of 101 bytes is over the limit of 100 (agent.receive.logs.max_line_size)`,
		`stream {service_name="svc"}: a log record's time 9223372036854775808 ns is beyond what int64 Unix nanoseconds hold (year 2262) (invalid_timestamp)`,
	}
	adjust := func(_ *receive.Config, lc *receive.LogsConfig) { lc.MaxLineSize = 100 }
	check := func(t *testing.T, e *logsEnv, ps plogotlp.ExportPartialSuccess) {
		t.Helper()
		require.EqualValues(t, 2, ps.RejectedLogRecords())
		for _, w := range want {
			require.Contains(t, ps.ErrorMessage(), w)
		}
		p := e.sink.Pushes()
		require.Len(t, p, 1)
		receivetest.RequireStreams(t, []logs.Stream{{Labels: labels.FromStrings("service_name", "svc"), Entries: []logs.Entry{{Timestamp: t1.UnixNano(), Line: "fine", Metadata: labels.EmptyLabels()}}}}, p[0].Streams)
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_rejected_log_entries_total", "reason", receive.ReasonLogsLineTooLong), 0)
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_rejected_log_entries_total", "reason", receive.ReasonLogsInvalidTimestamp), 0)
	}
	t.Run("http", func(t *testing.T) {
		e := newLogsEnv(t, adjust)
		resp := decodeLogsResponse(t, e.post(t, logsProto(t, build()), "Content-Type", contentTypeProtobuf), contentTypeProtobuf)
		check(t, e, resp.PartialSuccess())
	})
	t.Run("http json", func(t *testing.T) {
		e := newLogsEnv(t, adjust)
		resp := decodeLogsResponse(t, e.post(t, logsJSON(t, build()), "Content-Type", contentTypeJSON), contentTypeJSON)
		check(t, e, resp.PartialSuccess())
	})
	t.Run("grpc", func(t *testing.T) {
		e := newLogsEnv(t, adjust)
		resp, err := e.export(context.Background(), build(), "")
		require.NoError(t, err)
		check(t, e, resp.PartialSuccess())
	})
}

func TestLogsAllRejected(t *testing.T) {
	adjust := func(_ *receive.Config, lc *receive.LogsConfig) { lc.MaxLabelValueLength = 2 }
	t.Run("http", func(t *testing.T) {
		e := newLogsEnv(t, adjust)
		r := e.post(t, logsProto(t, oneLog("a", "b")), "Content-Type", contentTypeProtobuf)
		require.Equal(t, http.StatusBadRequest, r.code)
		st := decodeStatus(t, r, contentTypeProtobuf)
		require.Equal(t, int32(codes.InvalidArgument), st.GetCode())
		require.Contains(t, st.GetMessage(), `2 of 2 log entries rejected: stream {service_name="svc"}: value of label "service_name" is 3 bytes long, over the limit of 2 (agent.receive.logs.max_label_value_length)`)
		require.Empty(t, e.sink.Pushes())
	})
	t.Run("grpc", func(t *testing.T) {
		e := newLogsEnv(t, adjust)
		_, err := e.export(context.Background(), oneLog("a"), "")
		require.Equal(t, codes.InvalidArgument, status.Code(err), err)
		require.Contains(t, err.Error(), "agent.receive.logs.max_label_value_length")
		require.Empty(t, e.sink.Pushes())
	})
}

func TestLogsSinkErrors(t *testing.T) {
	t.Run("transient", func(t *testing.T) {
		e := newLogsEnv(t, nil)
		e.sink.Err = errors.New("bus unavailable")
		r := e.post(t, logsProto(t, oneLog("a")), "Content-Type", contentTypeProtobuf)
		require.Equal(t, http.StatusServiceUnavailable, r.code)
		require.Equal(t, "2", r.header.Get("Retry-After"))
		st := decodeStatus(t, r, contentTypeProtobuf)
		require.Equal(t, int32(codes.Unavailable), st.GetCode())
		require.Contains(t, st.GetMessage(), "bus unavailable")

		_, err := e.export(context.Background(), oneLog("a"), "")
		require.Equal(t, codes.Unavailable, status.Code(err))
		require.NotNil(t, retryInfo(err))
	})
	t.Run("permanent", func(t *testing.T) {
		e := newLogsEnv(t, nil)
		e.sink.Err = fmt.Errorf("batch too large for the bus: %w", receive.ErrLogsRejected)
		r := e.post(t, logsJSON(t, oneLog("a")), "Content-Type", contentTypeJSON)
		require.Equal(t, http.StatusBadRequest, r.code)
		require.Empty(t, r.header.Get("Retry-After"))
		st := decodeStatus(t, r, contentTypeJSON)
		require.Equal(t, int32(codes.InvalidArgument), st.GetCode())
		require.Contains(t, st.GetMessage(), "batch too large for the bus")

		_, err := e.export(context.Background(), oneLog("a"), "")
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.InDelta(t, 2, receivetest.Metric(t, e.reg, "pharos_agent_rejected_log_entries_total", "reason", receive.ReasonLogsSinkRejected), 0)
	})
	t.Run("sender gone", func(t *testing.T) {
		e := newLogsEnv(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		e.sink.Before = func(c context.Context) error {
			cancel()
			<-c.Done()
			return c.Err()
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, LogsPath, bytes.NewReader(logsProto(t, oneLog("a"))))
		req.Header.Set("Content-Type", contentTypeProtobuf)
		w := httptest.NewRecorder()
		e.logs.ServeHTTP(w, req)
		require.Equal(t, statusClientClosed, w.Code)
		require.InDelta(t, 1, receivetest.Metric(t, e.reg, "pharos_agent_receive_requests_total", "protocol", "otlp_http", "status", "499"), 0)
	})
}

func TestLogsErrors(t *testing.T) {
	e := newLogsEnv(t, nil)
	r := e.post(t, []byte("\xff\xff\xff\xff garbage"), "Content-Type", contentTypeProtobuf)
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, decodeStatus(t, r, contentTypeProtobuf).GetMessage(), "decode OTLP logs")

	r = e.post(t, []byte(`{"resourceLogs": [`), "Content-Type", contentTypeJSON)
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, decodeStatus(t, r, contentTypeJSON).GetMessage(), "decode OTLP logs")

	r = e.post(t, logsProto(t, oneLog("a")), "Content-Type", contentTypeProtobuf, receive.TenantHeader, "../etc")
	require.Equal(t, http.StatusBadRequest, r.code)
	require.Contains(t, decodeStatus(t, r, contentTypeProtobuf).GetMessage(), `X-Scope-OrgID: invalid tenant ID "../etc": byte 2 (0x2f) is not one of`)

	_, err := e.export(context.Background(), oneLog("a"), "..")
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	require.Contains(t, err.Error(), "x-scope-orgid: invalid tenant ID")

	r = e.post(t, []byte("{}"), "Content-Type", "text/plain")
	require.Equal(t, http.StatusUnsupportedMediaType, r.code)
	r = e.post(t, logsProto(t, oneLog("a")), "Content-Type", contentTypeProtobuf, "Content-Encoding", "snappy")
	require.Equal(t, http.StatusUnsupportedMediaType, r.code)
	resp, err := http.Get(e.url + LogsPath)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
	require.Empty(t, e.sink.Pushes())

	// An empty request is fine and pushes nothing.
	decodeLogsResponse(t, e.post(t, logsProto(t, plog.NewLogs()), "Content-Type", contentTypeProtobuf), contentTypeProtobuf)
	_, err = e.export(context.Background(), plog.NewLogs(), "")
	require.NoError(t, err)
	require.Empty(t, e.sink.Pushes())
}

func TestLogsTooLarge(t *testing.T) {
	e := newLogsEnv(t, func(rc *receive.Config, _ *receive.LogsConfig) { rc.MaxDecompressedBytes = 4096 })
	big := oneLog(strings.Repeat("x", 8000))
	r := e.post(t, receivetest.Gzip(t, logsProto(t, big)), "Content-Type", contentTypeProtobuf, "Content-Encoding", "gzip")
	require.Equal(t, http.StatusRequestEntityTooLarge, r.code)
	require.Contains(t, decodeStatus(t, r, contentTypeProtobuf).GetMessage(), "agent.receive.max_decompressed_bytes")
	_, err := e.export(context.Background(), big, "")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	require.Empty(t, e.sink.Pushes())
}

func TestLogsOverload(t *testing.T) {
	e := newLogsEnv(t, func(rc *receive.Config, _ *receive.LogsConfig) { rc.MaxInflightRequests = 1 })
	gate := receivetest.NewGate(t)
	e.sink.Before = func(context.Context) error {
		gate.Hold()
		return nil
	}
	body := logsProto(t, oneLog("a"))
	first := make(chan response, 1)
	go func() { first <- e.post(t, body, "Content-Type", contentTypeProtobuf) }()
	gate.AwaitHeld(t)
	r := e.post(t, body, "Content-Type", contentTypeProtobuf)
	require.Equal(t, http.StatusTooManyRequests, r.code)
	require.Equal(t, "2", r.header.Get("Retry-After"))
	require.Equal(t, int32(codes.ResourceExhausted), decodeStatus(t, r, contentTypeProtobuf).GetCode())

	_, err := e.export(context.Background(), oneLog("a"), "")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), err)
	require.NotNil(t, retryInfo(err))

	gate.Release()
	decodeLogsResponse(t, <-first, contentTypeProtobuf)
	_, err = e.export(context.Background(), oneLog("a"), "")
	require.NoError(t, err, "a slot is free again")
	require.Len(t, e.sink.Pushes(), 2)
}

// Metrics and logs share the listeners.
func TestLogsAndMetricsTogether(t *testing.T) {
	e := newLogsEnv(t, nil)
	md := oneResource()
	gauge(md, "g", time.Now(), nil)
	decodeResponse(t, post(t, e.url, marshalProto(t, md), contentTypeProtobuf, ""), contentTypeProtobuf)
	decodeLogsResponse(t, e.post(t, logsProto(t, oneLog("a")), "Content-Type", contentTypeProtobuf), contentTypeProtobuf)
	require.Len(t, e.sink.Pushes(), 1)
}

// The converter is reused: a second request through it maps the same.
func TestLogsConverterReuse(t *testing.T) {
	c := newLogsConverter()
	for range 3 {
		receivetest.RequireStreams(t, wantLogs(), receivetest.CloneStreams(c.convert(testLogs(), testNow)))
		require.Equal(t, 4, c.records)
		c.reset()
	}
}

func logsSeeds(t testing.TB) (proto, json [][]byte) {
	ld := oneLog("a", strings.Repeat("x", 300))
	return seedsOf(t, plogotlp.NewExportRequestFromLogs(testLogs()), plogotlp.NewExportRequestFromLogs(ld), plogotlp.NewExportRequest())
}

// TestLogsFuzzSeeds checks testdata/fuzz/FuzzHTTPLogs against logsSeeds;
// PHAROS_WRITE_FUZZ_SEEDS=1 rewrites it.
func TestLogsFuzzSeeds(t *testing.T) {
	pb, js := logsSeeds(t)
	corpus := receivetest.NewSeedCorpus(t, "FuzzHTTPLogs")
	for _, b := range pb {
		corpus.Add(b, false)
	}
	for _, b := range js {
		corpus.Add(b, true)
	}
}

// FuzzHTTPLogs sends any body, as protobuf or JSON, through the OTLP/HTTP
// logs handler (decoding, mapping, checks): it must answer 200, 400 or
// 413, never panic.
func FuzzHTTPLogs(f *testing.F) {
	pb, js := logsSeeds(f)
	for _, b := range pb {
		f.Add(b, false)
	}
	for _, b := range js {
		f.Add(b, true)
	}
	_, rc, lim := defaults()
	rc.MaxRequestBytes = 1 << 20
	fs := flag.NewFlagSet("logs", flag.PanicOnError)
	var lc receive.LogsConfig
	lc.RegisterFlags(fs)
	lc.MaxLineSize = 256
	logger := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	in, err := receive.New(rc, lim, &receivetest.Recorder{}, logger, reg)
	require.NoError(f, err)
	li, err := receive.NewLogsIntake(lc, in, receive.LogsSinkFunc(func(context.Context, string, []logs.Stream) error { return nil }), logger, reg)
	require.NoError(f, err)
	l := NewLogs(li, logger)
	f.Fuzz(func(t *testing.T, data []byte, json bool) {
		ct := contentTypeProtobuf
		if json {
			ct = contentTypeJSON
		}
		req := httptest.NewRequest(http.MethodPost, LogsPath, bytes.NewReader(data))
		req.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		l.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
	})
}
