package receive

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// tracesTestIntake returns a TracesIntake with the flag defaults, as
// adjusted, over an Intake of its own.
func tracesTestIntake(t testing.TB, sink TracesSink, adjust func(*TracesConfig)) (*TracesIntake, *prometheus.Registry) {
	t.Helper()
	fs := flag.NewFlagSet("traces", flag.PanicOnError)
	var (
		rc  Config
		lim Limits
	)
	rc.RegisterFlags(fs)
	lim.RegisterFlags(fs)
	if adjust != nil {
		adjust(&rc.Traces)
	}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.DiscardHandler)
	in, err := New(rc, lim, receivetest.Discard{}, logger, reg)
	require.NoError(t, err)
	ti, err := NewTracesIntake(rc.Traces, in, sink, logger, reg)
	require.NoError(t, err)
	return ti, reg
}

func TestTracesConfigValidate(t *testing.T) {
	fs := flag.NewFlagSet("traces", flag.PanicOnError)
	var c TracesConfig
	c.RegisterFlags(fs)
	require.NoError(t, c.Validate())
	require.Equal(t, 128, c.MaxAttributesPerSpan)
	require.Equal(t, 128, c.MaxAttributesPerResource)
	require.Equal(t, 16<<10, c.MaxAttributeValueLength)
	require.True(t, c.TruncateLongAttributeValues)

	c.MaxAttributesPerSpan = 0
	c.MaxAttributeValueLength = 0
	require.NoError(t, c.Validate(), "0 disables a limit")
	c.MaxAttributesPerResource = -1
	c.MaxAttributeValueLength = 8
	err := c.Validate()
	require.ErrorContains(t, err, "agent.receive.traces.max_attributes_per_resource: must not be negative")
	require.ErrorContains(t, err, "agent.receive.traces.max_attribute_value_length: must be at least 16 to truncate to")

	// Nested in the receive config, whose Validate reports it.
	var rc Config
	rc.RegisterFlags(flag.NewFlagSet("receive", flag.PanicOnError))
	require.NoError(t, rc.Validate())
	rc.Traces.MaxAttributesPerSpan = -3
	require.ErrorContains(t, rc.Validate(), "agent.receive.traces.max_attributes_per_span")
}

var (
	trTrace = pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	trSpan  = pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, 8}
)

// trSpans builds one resource of service svc with one scope holding n
// valid spans, which adjust may change.
func trSpans(svc string, n int, adjust func(i int, s ptrace.Span)) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	for i := range n {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(trTrace)
		sid := trSpan
		sid[7] = byte(i + 1)
		s.SetSpanID(sid)
		s.SetName(fmt.Sprintf("op-%d", i))
		s.SetStartTimestamp(1000)
		s.SetEndTimestamp(2000)
		s.Attributes().PutStr("k", "v")
		if adjust != nil {
			adjust(i, s)
		}
	}
	return td
}

func spanNames(td ptrace.Traces) []string {
	var out []string
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			for k := range sss.At(j).Spans().Len() {
				out = append(out, sss.At(j).Spans().At(k).Name())
			}
		}
	}
	return out
}

func TestCheckTraces(t *testing.T) {
	for _, c := range []struct {
		name   string
		adjust func(*TracesConfig)
		in     func() ptrace.Traces
		kept   []string
		msgs   []string
		reason string
		n      int // rejected spans
	}{
		{
			name: "valid; empty names allowed",
			in: func() ptrace.Traces {
				return trSpans("svc", 2, func(i int, s ptrace.Span) {
					if i == 1 {
						s.SetName("")
						s.SetEndTimestamp(s.StartTimestamp()) // zero duration is fine
					}
				})
			},
			kept: []string{"op-0", ""},
		},
		{
			name: "zero trace ID",
			in: func() ptrace.Traces {
				return trSpans("svc", 2, func(i int, s ptrace.Span) {
					if i == 0 {
						s.SetTraceID(pcommon.TraceID{})
					}
				})
			},
			kept:   []string{"op-1"},
			msgs:   []string{`1 of 2 spans rejected: span 00000000000000000000000000000000/0102030405060701 of service "svc": the trace ID is all zeros (trace_id)`},
			reason: ReasonTracesInvalidTraceID, n: 1,
		},
		{
			name: "zero span ID",
			in: func() ptrace.Traces {
				return trSpans("svc", 1, func(_ int, s ptrace.Span) { s.SetSpanID(pcommon.SpanID{}) })
			},
			msgs:   []string{"the span ID is all zeros (span_id)"},
			reason: ReasonTracesInvalidSpanID, n: 1,
		},
		{
			name:   "ends before it starts",
			in:     func() ptrace.Traces { return trSpans("svc", 1, func(_ int, s ptrace.Span) { s.SetEndTimestamp(999) }) },
			msgs:   []string{"the span ends (999) before it starts (1000) (end_time_unix_nano >= start_time_unix_nano)"},
			reason: ReasonTracesInvalidTimestamps, n: 1,
		},
		{
			name:   "too many span attributes",
			adjust: func(c *TracesConfig) { c.MaxAttributesPerSpan = 2 },
			in: func() ptrace.Traces {
				return trSpans("svc", 2, func(i int, s ptrace.Span) {
					if i == 1 {
						s.Attributes().PutInt("a", 1)
						s.Attributes().PutInt("b", 2)
					}
				})
			},
			kept:   []string{"op-0"},
			msgs:   []string{"3 span attributes exceed the limit of 2 (agent.receive.traces.max_attributes_per_span)"},
			reason: ReasonTracesMaxSpanAttributes, n: 1,
		},
		{
			name:   "too many resource attributes: all its spans",
			adjust: func(c *TracesConfig) { c.MaxAttributesPerResource = 1 },
			in: func() ptrace.Traces {
				td := trSpans("svc", 3, nil)
				td.ResourceSpans().At(0).Resource().Attributes().PutStr("host.name", "h")
				trSpans("other", 1, nil).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
				return td
			},
			kept:   []string{"op-0"},
			msgs:   []string{`3 of 4 spans rejected: resource of service "svc": 2 resource attributes exceed the limit of 1 (agent.receive.traces.max_attributes_per_resource)`},
			reason: ReasonTracesMaxResourceAttrs, n: 3,
		},
		{
			name:   "long span attribute refused without truncation",
			adjust: func(c *TracesConfig) { c.MaxAttributeValueLength, c.TruncateLongAttributeValues = 20, false },
			in: func() ptrace.Traces {
				return trSpans("svc", 2, func(i int, s ptrace.Span) {
					if i == 0 {
						s.Attributes().PutStr("sql", strings.Repeat("x", 21))
					}
				})
			},
			kept:   []string{"op-1"},
			msgs:   []string{`span attribute "sql" is 21 bytes long, over the limit of 20 (agent.receive.traces.max_attribute_value_length)`},
			reason: ReasonTracesAttributeTooLong, n: 1,
		},
		{
			name:   "long nested event attribute refused",
			adjust: func(c *TracesConfig) { c.MaxAttributeValueLength, c.TruncateLongAttributeValues = 20, false },
			in: func() ptrace.Traces {
				return trSpans("svc", 1, func(_ int, s ptrace.Span) {
					ev := s.Events().AppendEmpty()
					ev.Attributes().PutEmptySlice("frames").AppendEmpty().SetStr(strings.Repeat("f", 30))
				})
			},
			msgs:   []string{`event attribute "frames" is 30 bytes long`},
			reason: ReasonTracesAttributeTooLong, n: 1,
		},
		{
			name:   "long resource attribute refuses the resource",
			adjust: func(c *TracesConfig) { c.MaxAttributeValueLength, c.TruncateLongAttributeValues = 20, false },
			in: func() ptrace.Traces {
				td := trSpans("svc", 2, nil)
				td.ResourceSpans().At(0).Resource().Attributes().PutEmptyBytes("blob").FromRaw(make([]byte, 25))
				return td
			},
			msgs:   []string{`resource of service "svc": resource attribute "blob" is 25 bytes long`},
			reason: ReasonTracesAttributeTooLong, n: 2,
		},
		{
			name:   "long span name refused",
			adjust: func(c *TracesConfig) { c.MaxAttributeValueLength, c.TruncateLongAttributeValues = 20, false },
			in: func() ptrace.Traces {
				return trSpans("svc", 1, func(_ int, s ptrace.Span) { s.SetName(strings.Repeat("n", 21)) })
			},
			msgs:   []string{"the span name is 21 bytes long, over the limit of 20"},
			reason: ReasonTracesAttributeTooLong, n: 1,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			ti, reg := tracesTestIntake(t, discardTraces, c.adjust)
			td := c.in()
			total := td.SpanCount()
			rej := ti.CheckTraces(td)
			require.Equal(t, c.kept, spanNames(td))
			require.Equal(t, c.n, rej.Spans)
			require.Equal(t, total-c.n, td.SpanCount())
			msg := rej.Message(total)
			for _, m := range c.msgs {
				require.Contains(t, msg, m)
			}
			if c.reason != "" {
				require.InDelta(t, float64(c.n), receivetest.Metric(t, reg, "pharos_agent_rejected_spans_total", "reason", c.reason), 0)
			}
			// No empty scope or resource is left behind.
			for i := range td.ResourceSpans().Len() {
				rs := td.ResourceSpans().At(i)
				require.NotZero(t, rs.ScopeSpans().Len())
				for j := range rs.ScopeSpans().Len() {
					require.NotZero(t, rs.ScopeSpans().At(j).Spans().Len())
				}
			}
		})
	}
}

// Long values are truncated on a rune boundary, everywhere; invalid UTF-8
// is repaired.
func TestCheckTracesTruncatesAndRepairs(t *testing.T) {
	ti, reg := tracesTestIntake(t, discardTraces, func(c *TracesConfig) { c.MaxAttributeValueLength = 20 })
	long := strings.Repeat("é", 15) // 30 bytes
	td := trSpans("svc", 1, func(_ int, s ptrace.Span) {
		s.SetName(long)
		s.Attributes().PutStr("a", long)
		s.Attributes().PutStr("bad", "ok\xffok")
		s.Attributes().PutEmptyBytes("b").FromRaw(make([]byte, 30))
		s.Attributes().PutEmptyMap("m").PutStr("inner", long)
		s.Links().AppendEmpty().Attributes().PutStr("l", long)
	})
	td.ResourceSpans().At(0).Resource().Attributes().PutStr("r", long)
	td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes().PutStr("s", long)
	rej := ti.CheckTraces(td)
	require.Zero(t, rej.Spans)
	want := strings.Repeat("é", 10)
	s := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
	require.Equal(t, want, s.Name())
	get := func(m pcommon.Map, k string) pcommon.Value {
		v, ok := m.Get(k)
		require.True(t, ok, k)
		return v
	}
	require.Equal(t, want, get(s.Attributes(), "a").Str())
	require.Equal(t, "ok\uFFFDok", get(s.Attributes(), "bad").Str())
	require.Equal(t, 20, get(s.Attributes(), "b").Bytes().Len())
	require.Equal(t, want, get(get(s.Attributes(), "m").Map(), "inner").Str())
	require.Equal(t, want, get(s.Links().At(0).Attributes(), "l").Str())
	require.Equal(t, want, get(td.ResourceSpans().At(0).Resource().Attributes(), "r").Str())
	require.Equal(t, want, get(td.ResourceSpans().At(0).ScopeSpans().At(0).Scope().Attributes(), "s").Str())
	require.InDelta(t, 7, testutil.ToFloat64(ti.m.truncated), 0)
	require.InDelta(t, 1, receivetest.Metric(t, reg, "pharos_agent_span_values_invalid_utf8_total"), 0)
}

func TestTracesPush(t *testing.T) {
	t.Run("stored", func(t *testing.T) {
		rec := &receivetest.TracesRecorder{}
		ti, reg := tracesTestIntake(t, rec, nil)
		require.NoError(t, ti.Push(context.Background(), ProtocolOTLPGRPC, "team-a", trSpans("svc", 3, nil)))
		require.NoError(t, ti.Push(context.Background(), ProtocolOTLPGRPC, "", ptrace.NewTraces()), "nothing to push")
		p := rec.Pushes()
		require.Len(t, p, 1)
		require.Equal(t, "team-a", p[0].Tenant)
		require.Equal(t, 3, p[0].Traces.SpanCount())
		require.InDelta(t, 3, receivetest.Metric(t, reg, "pharos_agent_received_spans_total", "protocol", "otlp_grpc"), 0)
	})
	t.Run("sink rejects", func(t *testing.T) {
		rec := &receivetest.TracesRecorder{Err: fmt.Errorf("too large for the bus: %w", ErrTracesRejected)}
		ti, reg := tracesTestIntake(t, rec, nil)
		err := ti.Push(context.Background(), ProtocolOTLPHTTP, "", trSpans("svc", 2, nil))
		require.ErrorIs(t, err, ErrTracesRejected)
		require.InDelta(t, 2, receivetest.Metric(t, reg, "pharos_agent_rejected_spans_total", "reason", ReasonTracesSinkRejected), 0)
		require.Zero(t, receivetest.Metric(t, reg, "pharos_agent_received_spans_total", "protocol", "otlp_http"))
	})
	t.Run("sink unavailable", func(t *testing.T) {
		rec := &receivetest.TracesRecorder{Err: errors.New("bus down")}
		ti, reg := tracesTestIntake(t, rec, nil)
		err := ti.Push(context.Background(), ProtocolOTLPHTTP, "", trSpans("svc", 2, nil))
		require.EqualError(t, err, "bus down")
		require.Zero(t, receivetest.Metric(t, reg, "pharos_agent_rejected_spans_total", "reason", ReasonTracesSinkRejected))
	})
}

// PushWire has Push's outcomes; WireReady needs a sink that takes wire
// spans, and a read that measured its strings.
func TestTracesPushWire(t *testing.T) {
	read := func(td ptrace.Traces, measure bool) *otlpwire.Traces {
		w := &otlpwire.Traces{Measure: measure}
		require.NoError(t, w.ReadPdata(td))
		return w
	}
	t.Run("stored", func(t *testing.T) {
		rec := &receivetest.TracesRecorder{}
		ti, reg := tracesTestIntake(t, rec, nil)
		w := read(trSpans("svc", 3, nil), true)
		require.True(t, ti.WireReady(w))
		require.False(t, ti.WireReady(read(trSpans("svc", 3, nil), false)), "strings not measured")
		require.NoError(t, ti.PushWire(context.Background(), ProtocolOTLPGRPC, "team-a", 100, w))
		p := rec.Pushes()
		require.Len(t, p, 1)
		require.True(t, p[0].Wire)
		require.Equal(t, "team-a", p[0].Tenant)
		require.Equal(t, 3, p[0].Traces.SpanCount())
		require.InDelta(t, 3, receivetest.Metric(t, reg, "pharos_agent_received_spans_total", "protocol", "otlp_grpc"), 0)
		require.InDelta(t, 1, receivetest.Metric(t, reg, "pharos_agent_span_pushes_total", "form", "undecoded"), 0)
		require.NoError(t, ti.Push(context.Background(), ProtocolOTLPGRPC, "team-a", trSpans("svc", 1, nil)))
		require.InDelta(t, 1, receivetest.Metric(t, reg, "pharos_agent_span_pushes_total", "form", "decoded"), 0)
	})
	t.Run("sink rejects", func(t *testing.T) {
		rec := &receivetest.TracesRecorder{Err: fmt.Errorf("too large for the bus: %w", ErrTracesRejected)}
		ti, reg := tracesTestIntake(t, rec, nil)
		err := ti.PushWire(context.Background(), ProtocolOTLPHTTP, "", 100, read(trSpans("svc", 2, nil), true))
		require.ErrorIs(t, err, ErrTracesRejected)
		require.InDelta(t, 2, receivetest.Metric(t, reg, "pharos_agent_rejected_spans_total", "reason", ReasonTracesSinkRejected), 0)
	})
	t.Run("sink without wire spans", func(t *testing.T) {
		sink := TracesSinkFunc(func(context.Context, string, ptrace.Traces) error { return nil })
		ti, _ := tracesTestIntake(t, sink, nil)
		require.False(t, ti.WireReady(read(trSpans("svc", 2, nil), true)))
	})
}

// The error type's messages, for resources and spans.
func TestTracesError(t *testing.T) {
	e := &TracesError{Reason: ReasonTracesInvalidTimestamps, TraceID: trTrace, SpanID: trSpan, Detail: "d", Rule: "r"}
	require.Equal(t, "span 0102030405060708090a0b0c0d0e0f10/0102030405060708: d (r)", e.Error())
	require.ErrorIs(t, e, ErrTracesRejected)
	e = &TracesError{Resource: true, Service: "s", Detail: "d", Rule: "r"}
	require.Equal(t, `resource of service "s": d (r)`, e.Error())

	var r TracesRejection
	for i := range 12 {
		r.Add(fmt.Errorf("e%d", i), 1)
	}
	require.Equal(t, "12 of 20 spans rejected: e0; e1; e2; e3; e4; e5; e6; e7; e8; e9; and 2 more", r.Message(20))
}

var discardTraces = TracesSinkFunc(func(context.Context, string, ptrace.Traces) error { return nil })
