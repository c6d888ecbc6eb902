package receive

// Pushed traces: what the trace receivers (OTLP traces in otlp) share.
// Admission and body reading are the Intake's, as for metrics and logs; a
// TracesIntake adds the span ingestion rules, the span counters and the
// hand-off to the TracesSink (the agent's trace publisher).

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// ErrTracesRejected is wrapped by errors for spans that can never be
// accepted (they break an ingestion rule, or the sink cannot take them in
// any form, e.g. a span too large for the bus). Receivers answer it with
// 400 / INVALID_ARGUMENT: the sender must not retry.
var ErrTracesRejected = errors.New("trace data rejected")

// TracesSink takes pushed spans: in the agent, the trace publisher.
//
// PushTraces returns nil only once the spans are durable (the agent's
// spool has synced them to disk, to be published). An error wrapping
// ErrTracesRejected means the data can never be accepted and is not
// retried (400 / INVALID_ARGUMENT); any other error (spool full or
// failing, timeout, ctx done) is retryable (503 / UNAVAILABLE with
// Retry-After), and the sender will send the whole request again, so a
// sink should not keep part of a failed push (what it keeps is stored
// twice: the trace store answers each span ID once).
//
// Ownership: td is handed over. The caller does not read it after the
// call, so the sink may modify it (the publisher moves spans out of it
// into per-partition messages), but must not retain any of it once
// PushTraces returns. td has been checked: non-zero trace and span IDs,
// end not before start, attributes within the limits.
//
// PushTraces may block up to ctx's deadline. It is called concurrently,
// once per request, and must be safe for that.
type TracesSink interface {
	PushTraces(ctx context.Context, tenant string, td ptrace.Traces) error
}

// TracesWireSink is a TracesSink that also takes spans read in their wire
// form (otlpwire), as the receivers read a protobuf request whose spans
// no ingestion rule would refuse or change (WireReady): the publisher
// then cuts its messages from the request's bytes, with nothing decoded
// or encoded. PushTracesWire has PushTraces' contract, except that w and
// the bytes it was read from stay the caller's: the sink keeps none of
// them once it returns.
type TracesWireSink interface {
	TracesSink
	PushTracesWire(ctx context.Context, tenant string, w *otlpwire.Traces) error
}

// TracesSinkFunc adapts a function to a TracesSink.
type TracesSinkFunc func(ctx context.Context, tenant string, td ptrace.Traces) error

// PushTraces implements TracesSink.
func (f TracesSinkFunc) PushTraces(ctx context.Context, tenant string, td ptrace.Traces) error {
	return f(ctx, tenant, td)
}

// TracesConfig is the ingestion rules for pushed spans. A zero limit turns
// its rule off. Defaults follow the OpenTelemetry SDKs' attribute count
// limit (128) and Tempo's handling of long attribute values (truncated,
// not refused).
type TracesConfig struct {
	MaxAttributesPerSpan     int `yaml:"max_attributes_per_span"`
	MaxAttributesPerResource int `yaml:"max_attributes_per_resource"`
	// MaxAttributeValueLength caps a string or bytes attribute value (of
	// the resource, scope, span, its events and links, nested values
	// included) and the span name, in bytes. A longer one rejects its
	// span unless TruncateLongAttributeValues.
	MaxAttributeValueLength     int  `yaml:"max_attribute_value_length"`
	TruncateLongAttributeValues bool `yaml:"truncate_long_attribute_values"`
}

// RegisterFlags registers the options under -agent.receive.traces.
func (c *TracesConfig) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxAttributesPerSpan, "agent.receive.traces.max-attributes-per-span", 128, "Most attributes a pushed span may have; a span with more is refused; 0 disables the check.")
	f.IntVar(&c.MaxAttributesPerResource, "agent.receive.traces.max-attributes-per-resource", 128, "Most attributes a pushed resource may have; its spans are refused when it has more; 0 disables the check.")
	f.IntVar(&c.MaxAttributeValueLength, "agent.receive.traces.max-attribute-value-length", 16<<10, "Longest string or bytes attribute value (resource, scope, span, event, link) and span name, in bytes; longer ones are truncated (see -agent.receive.traces.truncate-long-attribute-values) or refuse their span; 0 disables the check.")
	f.BoolVar(&c.TruncateLongAttributeValues, "agent.receive.traces.truncate-long-attribute-values", true, "Truncate attribute values and span names over -agent.receive.traces.max-attribute-value-length instead of refusing their span (Tempo truncates).")
}

// Validate reports every invalid field.
func (c *TracesConfig) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_attributes_per_span", c.MaxAttributesPerSpan},
		{"max_attributes_per_resource", c.MaxAttributesPerResource},
		{"max_attribute_value_length", c.MaxAttributeValueLength},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("agent.receive.traces.%s: must not be negative (0 disables it), got %d", f.name, f.v))
		}
	}
	if c.TruncateLongAttributeValues && c.MaxAttributeValueLength > 0 && c.MaxAttributeValueLength < 16 {
		errs = append(errs, fmt.Errorf("agent.receive.traces.max_attribute_value_length: must be at least 16 to truncate to, got %d", c.MaxAttributeValueLength))
	}
	return errors.Join(errs...)
}

// Reasons a span is rejected, as in TracesError.Reason and the reason
// label of pharos_agent_rejected_spans_total.
const (
	ReasonTracesInvalidTraceID    = "invalid_trace_id"
	ReasonTracesInvalidSpanID     = "invalid_span_id"
	ReasonTracesInvalidTimestamps = "invalid_timestamps"
	ReasonTracesMaxSpanAttributes = "max_attributes_per_span"
	ReasonTracesMaxResourceAttrs  = "max_attributes_per_resource"
	ReasonTracesAttributeTooLong  = "attribute_value_too_long"
	ReasonTracesSinkRejected      = "sink_rejected"
)

// The rules, as TracesError.Rule names them.
const (
	reasonTracesRuleTraceID        = "trace_id"
	reasonTracesRuleSpanID         = "span_id"
	reasonTracesRuleTimestamps     = "end_time_unix_nano >= start_time_unix_nano"
	reasonTracesRuleSpanAttrs      = "agent.receive.traces.max_attributes_per_span"
	reasonTracesRuleResourceAttrs  = "agent.receive.traces.max_attributes_per_resource"
	reasonTracesRuleAttributeValue = "agent.receive.traces.max_attribute_value_length"
)

// TracesReasons lists the reasons a span is rejected.
var TracesReasons = []string{
	ReasonTracesInvalidTraceID, ReasonTracesInvalidSpanID, ReasonTracesInvalidTimestamps,
	ReasonTracesMaxSpanAttributes, ReasonTracesMaxResourceAttrs, ReasonTracesAttributeTooLong,
	ReasonTracesSinkRejected,
}

// TracesError is a span (or a resource's spans) refused by an ingestion
// rule. Its message names the span and the rule, for the sender to act on.
type TracesError struct {
	Reason string
	// Service is the resource's service.name, if any.
	Service string
	// Resource is set for an error about a resource or scope, which
	// refused all of its spans; TraceID and SpanID are zero then.
	Resource bool
	// TraceID and SpanID name the span.
	TraceID pcommon.TraceID
	SpanID  pcommon.SpanID
	Detail  string
	// Rule names the configuration option behind the rule, or the rule.
	Rule string
}

// Error formats as `span <trace>/<span> of service "s": detail (rule)`,
// or `resource of service "s": …` for a resource's error.
func (e *TracesError) Error() string {
	var b strings.Builder
	if e.Resource {
		b.WriteString("resource")
	} else {
		b.WriteString("span ")
		b.WriteString(hex.EncodeToString(e.TraceID[:]))
		b.WriteByte('/')
		b.WriteString(hex.EncodeToString(e.SpanID[:]))
	}
	if e.Service != "" {
		b.WriteString(" of service ")
		b.WriteString(strconv.Quote(truncate(e.Service, maxFormattedValue)))
	}
	b.WriteString(": ")
	b.WriteString(e.Detail)
	b.WriteString(" (")
	b.WriteString(e.Rule)
	b.WriteByte(')')
	return b.String()
}

// Unwrap makes errors.Is(err, ErrTracesRejected) hold.
func (e *TracesError) Unwrap() error { return ErrTracesRejected }

// TracesRejection is what a request lost to the ingestion rules.
type TracesRejection struct {
	// Spans is the number of spans refused.
	Spans int
	// Errors is the number of rules broken (a resource whose attributes
	// break one counts once, however many spans it has).
	Errors int
	msgs   []string
}

// Add records err, which refused n spans.
func (r *TracesRejection) Add(err error, n int) {
	r.Spans += n
	r.Errors++
	if len(r.msgs) < maxReportedLogErrors {
		r.msgs = append(r.msgs, err.Error())
	}
}

// Message says what was refused, out of total spans, listing the first
// errors.
func (r *TracesRejection) Message(total int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d spans rejected: ", r.Spans, total)
	b.WriteString(strings.Join(r.msgs, "; "))
	if more := r.Errors - len(r.msgs); more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

// TracesIntake checks pushed spans against the TracesConfig, counts them
// and hands them to the sink. Admission, body reading and request metrics
// stay with the Intake it wraps. One TracesIntake serves every trace
// receiver of the process; it is safe for concurrent use.
type TracesIntake struct {
	cfg    TracesConfig
	in     *Intake
	sink   TracesSink
	logger *slog.Logger
	m      *tracesMetrics
}

// NewTracesIntake returns a TracesIntake checking against cfg and pushing
// to sink; in admits the requests and reads their bodies.
func NewTracesIntake(cfg TracesConfig, in *Intake, sink TracesSink, logger *slog.Logger, reg prometheus.Registerer) (*TracesIntake, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &TracesIntake{cfg: cfg, in: in, sink: sink, logger: logger, m: newTracesMetrics(reg)}, nil
}

// Intake returns the Intake the trace receivers are admitted by.
func (ti *TracesIntake) Intake() *Intake { return ti.in }

// Config returns the rules the TracesIntake checks.
func (ti *TracesIntake) Config() TracesConfig { return ti.cfg }

// Logger returns the TracesIntake's logger, for receivers built on it.
func (ti *TracesIntake) Logger() *slog.Logger { return ti.logger }

// CheckTraces applies the ingestion rules to td, in place: invalid UTF-8
// in span names and string values is repaired (U+FFFD), long values are
// truncated when so configured; spans that break a rule are removed (all
// of a resource's when its attributes do), and so are scopes and
// resources left without spans. It returns what was refused, which it
// has counted. Empty span names are allowed: OTLP asks for a name, but
// Tempo and the OpenTelemetry Collector accept an empty one.
func (ti *TracesIntake) CheckTraces(td ptrace.Traces) TracesRejection {
	var rej TracesRejection
	c := &ti.cfg
	ck := checker{cfg: c}
	td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool {
		service := ""
		if v, ok := rs.Resource().Attributes().Get("service.name"); ok && v.Type() == pcommon.ValueTypeStr {
			service = v.Str()
		}
		n := 0
		for j := range rs.ScopeSpans().Len() {
			n += rs.ScopeSpans().At(j).Spans().Len()
		}
		if n == 0 {
			return true
		}
		if l := rs.Resource().Attributes().Len(); c.MaxAttributesPerResource > 0 && l > c.MaxAttributesPerResource {
			ti.reject(&rej, &TracesError{Reason: ReasonTracesMaxResourceAttrs, Service: service, Resource: true,
				Detail: fmt.Sprintf("%d resource attributes exceed the limit of %d", l, c.MaxAttributesPerResource),
				Rule:   reasonTracesRuleResourceAttrs}, n)
			return true
		}
		if msg := ck.attrs(rs.Resource().Attributes(), "resource attribute"); msg != "" {
			ti.reject(&rej, &TracesError{Reason: ReasonTracesAttributeTooLong, Service: service, Resource: true,
				Detail: msg, Rule: reasonTracesRuleAttributeValue}, n)
			return true
		}
		rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool {
			if ss.Spans().Len() == 0 {
				return true
			}
			if msg := ck.attrs(ss.Scope().Attributes(), "scope attribute"); msg != "" {
				ti.reject(&rej, &TracesError{Reason: ReasonTracesAttributeTooLong, Service: service, Resource: true,
					Detail: msg, Rule: reasonTracesRuleAttributeValue}, ss.Spans().Len())
				return true
			}
			ss.Spans().RemoveIf(func(s ptrace.Span) bool {
				if err := ck.span(s, service); err != nil {
					ti.reject(&rej, err, 1)
					return true
				}
				return false
			})
			return ss.Spans().Len() == 0
		})
		return rs.ScopeSpans().Len() == 0
	})
	if ck.fixed > 0 {
		ti.m.invalidUTF8.Add(float64(ck.fixed))
	}
	if ck.truncated > 0 {
		ti.m.truncated.Add(float64(ck.truncated))
	}
	return rej
}

func (ti *TracesIntake) reject(rej *TracesRejection, err *TracesError, n int) {
	rej.Add(err, n)
	ti.CountRejected(err.Reason, n)
}

// CountRejected counts n spans refused by a receiver's own rules
// (CheckTraces counts its own refusals).
func (ti *TracesIntake) CountRejected(reason string, n int) {
	if n > 0 {
		ti.m.rejected.WithLabelValues(reason).Add(float64(n))
	}
}

// Push hands checked spans to the sink and, once they are stored, counts
// them as received over p. Errors are the sink's, unchanged. td is the
// sink's from here on (see TracesSink).
func (ti *TracesIntake) Push(ctx context.Context, p Protocol, tenant string, td ptrace.Traces) error {
	n := td.SpanCount()
	if n == 0 {
		return nil
	}
	if err := ti.limitTraces(tenantID(tenant), n, func() int { return (&ptrace.ProtoMarshaler{}).TracesSize(td) }); err != nil {
		return err
	}
	return ti.handOff(p, formDecoded, n, func() error { return ti.sink.PushTraces(ctx, tenant, td) })
}

// handOff pushes n spans to the sink with push, and counts them, in the
// given form, once stored.
func (ti *TracesIntake) handOff(p Protocol, form string, n int, push func() error) error {
	ti.m.pushes.WithLabelValues(form).Inc()
	if err := push(); err != nil {
		if errors.Is(err, ErrTracesRejected) {
			ti.CountRejected(ReasonTracesSinkRejected, n)
		}
		return err
	}
	ti.m.spans.WithLabelValues(string(p)).Add(float64(n))
	return nil
}

// WireReady reports whether w, read with Measure set, can be pushed as it
// is (PushWire): the sink takes wire spans, and no ingestion rule would
// refuse a span or change a value (CheckTraces would find nothing to do).
// Otherwise the receiver decodes the request into pdata, for CheckTraces.
func (ti *TracesIntake) WireReady(w *otlpwire.Traces) bool {
	if _, ok := ti.sink.(TracesWireSink); !ok || !w.Measure {
		return false
	}
	c := &ti.cfg
	if w.Strings.InvalidUTF8 || c.MaxAttributeValueLength > 0 && w.Strings.MaxLen > c.MaxAttributeValueLength {
		return false
	}
	if c.MaxAttributesPerResource > 0 {
		for i := range w.Resources {
			if w.Resources[i].Attrs.Len() > c.MaxAttributesPerResource {
				return false
			}
		}
	}
	for i := range w.Spans {
		sp := &w.Spans[i]
		if sp.TraceID == [16]byte{} || sp.SpanID == [8]byte{} || sp.End < sp.Start ||
			c.MaxAttributesPerSpan > 0 && sp.Attrs.Len() > c.MaxAttributesPerSpan {
			return false
		}
	}
	return true
}

// PushWire is Push for a request of size encoded bytes read into w, which
// WireReady accepted. w stays the caller's.
func (ti *TracesIntake) PushWire(ctx context.Context, p Protocol, tenant string, size int, w *otlpwire.Traces) error {
	n := len(w.Spans)
	if n == 0 {
		return nil
	}
	if err := ti.limitTraces(tenantID(tenant), n, func() int { return size }); err != nil {
		return err
	}
	return ti.handOff(p, formUndecoded, n, func() error { return ti.sink.(TracesWireSink).PushTracesWire(ctx, tenant, w) })
}

// The form label values of pharos_agent_span_pushes_total.
const (
	formUndecoded = "undecoded"
	formDecoded   = "decoded"
)

// checker applies the per-span rules; one per CheckTraces call.
type checker struct {
	cfg       *TracesConfig
	fixed     int // values repaired for invalid UTF-8
	truncated int
}

// span checks one span of service.
func (ck *checker) span(s ptrace.Span, service string) *TracesError {
	c := ck.cfg
	e := func(reason, rule, detail string) *TracesError {
		return &TracesError{Reason: reason, Service: service, TraceID: s.TraceID(), SpanID: s.SpanID(), Detail: detail, Rule: rule}
	}
	switch {
	case s.TraceID().IsEmpty():
		return e(ReasonTracesInvalidTraceID, reasonTracesRuleTraceID, "the trace ID is all zeros")
	case s.SpanID().IsEmpty():
		return e(ReasonTracesInvalidSpanID, reasonTracesRuleSpanID, "the span ID is all zeros")
	case s.EndTimestamp() < s.StartTimestamp():
		return e(ReasonTracesInvalidTimestamps, reasonTracesRuleTimestamps,
			fmt.Sprintf("the span ends (%d) before it starts (%d)", s.EndTimestamp(), s.StartTimestamp()))
	}
	if n := s.Attributes().Len(); c.MaxAttributesPerSpan > 0 && n > c.MaxAttributesPerSpan {
		return e(ReasonTracesMaxSpanAttributes, reasonTracesRuleSpanAttrs,
			fmt.Sprintf("%d span attributes exceed the limit of %d", n, c.MaxAttributesPerSpan))
	}
	if name, ok := ck.str(s.Name()); !ok {
		return e(ReasonTracesAttributeTooLong, reasonTracesRuleAttributeValue,
			fmt.Sprintf("the span name is %d bytes long, over the limit of %d", len(s.Name()), c.MaxAttributeValueLength))
	} else if name != s.Name() {
		s.SetName(name)
	}
	if msg := ck.attrs(s.Attributes(), "span attribute"); msg != "" {
		return e(ReasonTracesAttributeTooLong, reasonTracesRuleAttributeValue, msg)
	}
	for i := range s.Events().Len() {
		if msg := ck.attrs(s.Events().At(i).Attributes(), "event attribute"); msg != "" {
			return e(ReasonTracesAttributeTooLong, reasonTracesRuleAttributeValue, msg)
		}
	}
	for i := range s.Links().Len() {
		if msg := ck.attrs(s.Links().At(i).Attributes(), "link attribute"); msg != "" {
			return e(ReasonTracesAttributeTooLong, reasonTracesRuleAttributeValue, msg)
		}
	}
	return nil
}

// attrs repairs and truncates m's values in place and returns a message
// for the first value over the limit when values are not truncated.
func (ck *checker) attrs(m pcommon.Map, what string) string {
	var msg string
	m.Range(func(k string, v pcommon.Value) bool {
		if n, ok := ck.value(v); !ok {
			msg = fmt.Sprintf("%s %s is %d bytes long, over the limit of %d", what, strconv.Quote(truncate(k, maxFormattedValue)), n, ck.cfg.MaxAttributeValueLength)
			return false
		}
		return true
	})
	return msg
}

// value checks one value, recursing into maps and slices; on failure it
// returns the offending length.
func (ck *checker) value(v pcommon.Value) (int, bool) {
	lim := ck.cfg.MaxAttributeValueLength
	switch v.Type() {
	case pcommon.ValueTypeStr:
		s := v.Str()
		if out, ok := ck.str(s); !ok {
			return len(s), false
		} else if out != s {
			v.SetStr(out)
		}
	case pcommon.ValueTypeBytes:
		if b := v.Bytes(); lim > 0 && b.Len() > lim {
			if !ck.cfg.TruncateLongAttributeValues {
				return b.Len(), false
			}
			cut := append([]byte(nil), b.AsRaw()[:lim]...)
			v.SetEmptyBytes().FromRaw(cut)
			ck.truncated++
		}
	case pcommon.ValueTypeMap:
		bad, ok := 0, true
		v.Map().Range(func(_ string, v pcommon.Value) bool {
			bad, ok = ck.value(v)
			return ok
		})
		return bad, ok
	case pcommon.ValueTypeSlice:
		sl := v.Slice()
		for i := range sl.Len() {
			if bad, ok := ck.value(sl.At(i)); !ok {
				return bad, false
			}
		}
	}
	return 0, true
}

// str returns s repaired (valid UTF-8) and truncated as configured; ok is
// false when s is too long and not to be truncated.
func (ck *checker) str(s string) (string, bool) {
	lim := ck.cfg.MaxAttributeValueLength
	if lim > 0 && len(s) > lim {
		if !ck.cfg.TruncateLongAttributeValues {
			return s, false
		}
		cut := lim
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
		ck.truncated++
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		ck.fixed++
	}
	return s, true
}

type tracesMetrics struct {
	spans       *prometheus.CounterVec
	pushes      *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	truncated   prometheus.Counter
	invalidUTF8 prometheus.Counter
}

func newTracesMetrics(reg prometheus.Registerer) *tracesMetrics {
	f := promauto.With(reg)
	m := &tracesMetrics{
		spans: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_received_spans_total",
			Help: "Pushed spans accepted and stored by the trace publisher, by protocol (otlp_http, otlp_grpc).",
		}, []string{"protocol"}),
		pushes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_span_pushes_total",
			Help: "Trace pushes handed to the trace publisher, by form: undecoded (protobuf no ingestion rule changed, cut as it came) or decoded (JSON, or a rule applied).",
		}, []string{"form"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_rejected_spans_total",
			Help: "Pushed spans refused at ingestion, by reason.",
		}, []string{"reason"}),
		truncated: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_span_values_truncated_total",
			Help: "Span names and attribute values cut to agent.receive.traces.max_attribute_value_length (agent.receive.traces.truncate_long_attribute_values).",
		}),
		invalidUTF8: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_span_values_invalid_utf8_total",
			Help: "Span names and string attribute values with invalid UTF-8, replaced by U+FFFD.",
		}),
	}
	for _, r := range TracesReasons {
		m.rejected.WithLabelValues(r)
	}
	m.pushes.WithLabelValues(formUndecoded)
	m.pushes.WithLabelValues(formDecoded)
	return m
}
