package receive

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/storage/logs"
)

// limitedIntake is an Intake with per-tenant limits: the defaults of
// -limits.* adjusted by adjust, and overridesYAML as the overrides file.
func limitedIntake(t *testing.T, next storage.AppendableV2, adjust func(*overrides.Config), overridesYAML string) (*Intake, *prometheus.Registry) {
	t.Helper()
	in, reg := newIntake(t, next, nil)
	var oc overrides.Config
	fs := flag.NewFlagSet("t", flag.PanicOnError)
	oc.RegisterFlags(fs)
	if adjust != nil {
		adjust(&oc)
	}
	if overridesYAML != "" {
		oc.OverridesFile = filepath.Join(t.TempDir(), "overrides.yaml")
		require.NoError(t, os.WriteFile(oc.OverridesFile, []byte(overridesYAML), 0o600))
	}
	_, l := defaults()
	o, err := overrides.New(oc, overrides.Limits{
		MaxLabelNamesPerSeries: l.MaxLabelNamesPerSeries, MaxLabelNameLength: l.MaxLabelNameLength,
		MaxLabelValueLength: l.MaxLabelValueLength, MaxLabelNamesPerStream: 15,
	})
	require.NoError(t, err)
	in.SetOverrides(o, reg)
	return in, reg
}

// push appends one sample per series in one transaction of tenant id.
func push(in *Intake, id string, series ...labels.Labels) (rejected []error, commit error) {
	app := in.AppenderV2(tenant.WithContext(context.Background(), id))
	for _, ls := range series {
		if _, err := app.Append(0, ls, 0, testNow.UnixMilli(), 1, nil, nil, storage.AppendV2Options{}); err != nil {
			rejected = append(rejected, err)
		}
	}
	return rejected, app.Commit()
}

func seriesN(prefix string, n int) []labels.Labels {
	out := make([]labels.Labels, n)
	for i := range out {
		out[i] = labels.FromStrings("__name__", "m", "id", fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

func TestTenantSeriesLimit(t *testing.T) {
	rec := &receivetest.Recorder{}
	in, reg := limitedIntake(t, rec, nil, "overrides:\n  small:\n    max_series: 3\n")

	rej, err := push(in, "small", seriesN("a", 5)...)
	require.NoError(t, err)
	require.Len(t, rej, 2)
	var e *Error
	require.ErrorAs(t, rej[0], &e)
	require.Equal(t, ReasonTenantMaxSeries, e.Reason)
	require.Equal(t, "overrides.small.max_series", e.Rule)
	require.ErrorIs(t, rej[0], ErrRejected, "400: not to be retried as sent")

	// Known series keep flowing; the tenant without an override has no
	// series limit.
	rej, err = push(in, "small", seriesN("a", 3)...)
	require.NoError(t, err)
	require.Empty(t, rej)
	rej, err = push(in, "other", seriesN("b", 50)...)
	require.NoError(t, err)
	require.Empty(t, rej)

	require.Equal(t, 2.0, receivetest.Metric(t, reg, "pharos_agent_tenant_limited_total", "tenant", "small", "signal", "metrics", "limit", "max_series"))
	require.Equal(t, 2.0, receivetest.Metric(t, reg, "pharos_agent_rejected_samples_total", "reason", ReasonTenantMaxSeries))
	require.Len(t, rec.Samples(), 3+3+50)
}

// A tenant held by the default limit is told the default's option.
func TestTenantSeriesLimitDefault(t *testing.T) {
	in, _ := limitedIntake(t, &receivetest.Recorder{}, func(c *overrides.Config) { c.MaxSeries = 2 }, "")
	rej, err := push(in, "any", seriesN("a", 3)...)
	require.NoError(t, err)
	require.Len(t, rej, 1)
	var e *Error
	require.ErrorAs(t, rej[0], &e)
	require.Equal(t, "limits.max_series", e.Rule)
}

func TestTenantLabelLimits(t *testing.T) {
	in, reg := limitedIntake(t, &receivetest.Recorder{}, nil, "overrides:\n  strict:\n    max_label_names_per_series: 2\n    max_label_value_length: 4\n")
	long := labels.FromStrings("__name__", "m", "v", "12345")
	three := labels.FromStrings("__name__", "m", "a", "1", "b", "2")

	rej, err := push(in, "strict", long, three)
	require.NoError(t, err)
	require.Len(t, rej, 2)
	var e *Error
	require.ErrorAs(t, rej[0], &e)
	require.Equal(t, "overrides.strict.max_label_value_length", e.Rule)
	require.ErrorAs(t, rej[1], &e)
	require.Equal(t, "overrides.strict.max_label_names_per_series", e.Rule)
	require.Equal(t, 1.0, receivetest.Metric(t, reg, "pharos_agent_tenant_limited_total", "tenant", "strict", "signal", "metrics", "limit", "max_label_value_length"))

	// Other tenants keep the defaults.
	rej, err = push(in, "relaxed", long, three)
	require.NoError(t, err)
	require.Empty(t, rej)
}

func TestTenantIngestionRate(t *testing.T) {
	rec := &receivetest.Recorder{}
	in, reg := limitedIntake(t, rec, func(c *overrides.Config) { c.IngestionRate, c.IngestionBurstSize = 0.001, 10 }, "")

	_, err := push(in, "a", seriesN("a", 8)...)
	require.NoError(t, err)
	_, err = push(in, "a", seriesN("a", 5)...)
	code, retryAfter, ok := LimitResponse(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.NotEmpty(t, retryAfter)
	require.ErrorIs(t, err, overrides.ErrLimited)

	// Larger than the burst: can never pass.
	_, err = push(in, "b", seriesN("b", 11)...)
	code, retryAfter, ok = LimitResponse(err)
	require.True(t, ok)
	require.Equal(t, http.StatusBadRequest, code)
	require.Empty(t, retryAfter)

	// Refused transactions were rolled back; another tenant was not held.
	_, err = push(in, "c", seriesN("c", 10)...)
	require.NoError(t, err)
	require.Len(t, rec.Samples(), 18)
	_, rollbacks := rec.Transactions()
	require.Equal(t, 2, rollbacks)
	require.Equal(t, 5.0, receivetest.Metric(t, reg, "pharos_agent_tenant_limited_total", "tenant", "a", "signal", "metrics", "limit", "ingestion_rate"))

	_, _, ok = LimitResponse(errors.New("other"))
	require.False(t, ok)
}

func stream(kv ...string) logs.Stream {
	return logs.Stream{Labels: labels.FromStrings(kv...), Entries: []logs.Entry{{Timestamp: testNow.UnixNano(), Line: "0123456789"}}}
}

func TestTenantLogLimits(t *testing.T) {
	sink := &receivetest.LogsRecorder{}
	in, reg := limitedIntake(t, receivetest.Discard{}, nil,
		"overrides:\n  streams:\n    max_streams: 2\n    max_label_names_per_stream: 2\n  bytes:\n    logs_ingestion_rate_bytes: 0.001\n    logs_ingestion_burst_bytes: 25\n")
	li, err := NewLogsIntake(logsDefaults(), in, sink, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	ctx := context.Background()

	require.NoError(t, li.Push(ctx, ProtocolLokiJSON, "streams", []logs.Stream{stream("app", "1"), stream("app", "2")}))
	err = li.Push(ctx, ProtocolLokiJSON, "streams", []logs.Stream{stream("app", "1"), stream("app", "3")})
	code, retryAfter, ok := LimitResponse(err)
	require.True(t, ok)
	require.Equal(t, http.StatusTooManyRequests, code, "as Loki: the stream limit is retryable")
	require.NotEmpty(t, retryAfter)
	require.Contains(t, err.Error(), "1 new log streams would take the tenant over its limit of 2")
	require.Len(t, sink.Pushes(), 1, "nothing of the refused push was stored")
	require.Equal(t, 2.0, receivetest.Metric(t, reg, "pharos_agent_tenant_limited_total", "tenant", "streams", "signal", "logs", "limit", "max_streams"))

	// The default tenant (store key "") has no stream limit.
	require.NoError(t, li.Push(ctx, ProtocolLokiJSON, "", []logs.Stream{stream("app", "1"), stream("app", "2"), stream("app", "3")}))

	// Label names per stream, per tenant.
	kept, rej := li.CheckStreams("streams", []logs.Stream{stream("a", "1", "b", "2", "c", "3")})
	require.Empty(t, kept)
	require.Equal(t, 1, rej.Errors)
	require.Contains(t, rej.Message(1), "overrides.streams.max_label_names_per_stream")
	kept, _ = li.CheckStreams("", []logs.Stream{stream("a", "1", "b", "2", "c", "3")})
	require.Len(t, kept, 1)

	// Bytes: 20 of 25 pass, 10 more wait, 30 can never pass.
	require.NoError(t, li.Push(ctx, ProtocolLokiJSON, "bytes", []logs.Stream{stream("a", "1"), stream("a", "2")}))
	code, _, _ = LimitResponse(li.Push(ctx, ProtocolLokiJSON, "bytes", []logs.Stream{stream("a", "1")}))
	require.Equal(t, http.StatusTooManyRequests, code)
	code, _, _ = LimitResponse(li.Push(ctx, ProtocolLokiJSON, "bytes", []logs.Stream{stream("a", "1"), stream("a", "2"), stream("a", "3")}))
	require.Equal(t, http.StatusBadRequest, code)
}

func TestTenantTraceRate(t *testing.T) {
	in, reg := limitedIntake(t, receivetest.Discard{}, nil, "overrides:\n  spans:\n    traces_ingestion_rate_bytes: 0.001\n    traces_ingestion_burst_bytes: 400\n")
	sink := &receivetest.TracesRecorder{}
	c, _ := defaults()
	ti, err := NewTracesIntake(c.Traces, in, sink, slog.New(slog.DiscardHandler), reg)
	require.NoError(t, err)
	td := func(n int) ptrace.Traces {
		td := ptrace.NewTraces()
		ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
		for i := range n {
			s := ss.Spans().AppendEmpty()
			s.SetName(fmt.Sprintf("span-%d", i))
			s.SetTraceID([16]byte{1})
			s.SetSpanID([8]byte{byte(i + 1)})
			s.SetStartTimestamp(1)
			s.SetEndTimestamp(2)
		}
		return td
	}
	ctx := context.Background()
	require.NoError(t, ti.Push(ctx, ProtocolOTLPHTTP, "spans", td(5)))
	err = ti.Push(ctx, ProtocolOTLPHTTP, "spans", td(5))
	code, _, ok := LimitResponse(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, 5.0, receivetest.Metric(t, reg, "pharos_agent_tenant_limited_total", "tenant", "spans", "signal", "traces", "limit", "traces_ingestion_rate_bytes"))
	require.NoError(t, ti.Push(ctx, ProtocolOTLPHTTP, "", td(50)), "the default tenant has no rate")
	require.Len(t, sink.Pushes(), 2)

	// Requests pushed undecoded count their bytes against the same rate.
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td(5))
	require.NoError(t, err)
	w := &otlpwire.Traces{Measure: true}
	require.NoError(t, w.Read(b))
	require.True(t, ti.WireReady(w))
	err = ti.PushWire(ctx, ProtocolOTLPGRPC, "spans", len(b), w)
	code, _, ok = LimitResponse(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, 10.0, receivetest.Metric(t, reg, "pharos_agent_tenant_limited_total", "tenant", "spans", "signal", "traces", "limit", "traces_ingestion_rate_bytes"))
	require.NoError(t, ti.PushWire(ctx, ProtocolOTLPGRPC, "", len(b), w))
	require.Len(t, sink.Pushes(), 3)
}
