package publish

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// Message size bounds for traces. NATS refuses payloads over its
// max_payload, 1 MiB by default; a message's uncompressed spans are kept
// under maxTracesMessageBytes, and its compressed payload (what NATS
// counts, with the headers) under maxTracesPayloadBytes, a part over it
// being split again. Span IDs and trace IDs are random bytes, so traces
// compress less than logs and a part may need the second split.
const (
	maxTracesMessageBytes = 1 << 20
	maxTracesPayloadBytes = 1<<20 - 8<<10
)

// Traces publishes pushed spans (OTLP traces), partitioned by trace ID
// (codec.TracePartition), so that every span of a trace, from any agent,
// lands on one partition and reaches one aggregator. Like logs, traces
// are not batched further or spooled here: the pushing client holds its
// request until the bus takes it (it retries on 503), so each call
// splits its spans by partition, publishes one message per partition
// (more when large) at once, and returns once JetStream has acknowledged
// every one. It is a receive.TracesSink, safe for concurrent use.
type Traces struct {
	*signalPublisher

	splitters sync.Pool // *tracesSplitter
	sizer     ptrace.ProtoMarshaler

	groupsMu sync.Mutex
	groups   map[string]*tenantGroups // by tenant, while it has pushes

	spans    prometheus.Counter
	messages prometheus.Counter
	bytes    prometheus.Counter
	dropped  *prometheus.CounterVec
	latency  prometheus.Histogram

	pushGroups    prometheus.Counter
	groupedPushes prometheus.Counter
}

// NewTraces returns the trace publisher: partitions is the bus's
// partition count, agentID this agent's ID (message IDs start with it).
func NewTraces(cfg Config, partitions int, agentID string, publish PublishFunc, logger *slog.Logger, reg prometheus.Registerer) (*Traces, error) {
	sp, err := newSignalPublisher(cfg, bus.SignalTraces, partitions, agentID, publish, logger)
	if err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	t := &Traces{
		signalPublisher: sp,
		groups:          map[string]*tenantGroups{},
		pushGroups: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_push_groups_total", Help: "Groups of pushes published together (pushes of a tenant that arrived while its previous group was being published)."}),
		groupedPushes: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_grouped_pushes_total", Help: "Pushes published as part of a group; divided by pharos_agent_trace_push_groups_total, the pushes per group."}),
		spans: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_spans_published_total", Help: "Spans acknowledged by JetStream."}),
		messages: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_messages_published_total", Help: "Trace messages (one partition's share of a push) acknowledged by JetStream."}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_bytes_published_total", Help: "Encoded, compressed trace message bytes acknowledged by JetStream."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_dropped_spans_total", Help: "Spans the agent gave up on, by reason (too_large: the bus refuses a message for its size; encode: they could not be encoded)."}, []string{"reason"}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_agent_trace_publish_duration_seconds", Help: "Time to publish a push's spans, until every part is acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	t.dropped.WithLabelValues(reasonTooLarge)
	t.dropped.WithLabelValues(reasonEncode)
	t.splitters.New = func() any { return &tracesSplitter{parts: make([]partBuilder, partitions)} }
	return t, nil
}

// tracesPart is one message's spans, then its payload.
type tracesPart struct {
	partition int
	td        ptrace.Traces
	spans     int
	data      []byte
}

// partBuilder collects one partition's spans under copies of their
// resource and scope, tracking the encoded size.
type partBuilder struct {
	td         ptrace.Traces
	rs         ptrace.ResourceSpans
	ss         ptrace.ScopeSpans
	rsIn, ssIn int // the input resource and scope rs and ss copy; -1: none
	size       int
	spans      int
}

// tracesSplitter is one call's partitioning state.
type tracesSplitter struct {
	m     ptrace.ProtoMarshaler
	parts []partBuilder
	out   []tracesPart
}

// Per-level framing of the OTLP messages around a span (tag and length
// varint), an upper bound.
const tracesFraming = 6

// split moves td's spans into parts of at most budget encoded bytes (a
// single larger span makes a part of its own), grouped by partition and,
// within one, under their resource and scope. td is left without spans.
// When every span goes to one partition and td fits, td itself is the
// part, with nothing moved.
func (s *tracesSplitter) split(td ptrace.Traces, partitions, budget int) {
	rss := td.ResourceSpans()
	first, single, n := -1, true, 0
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				p := codec.TracePartition(spans.At(k).TraceID(), partitions)
				if first < 0 {
					first = p
				} else if p != first {
					single = false
				}
				n++
			}
		}
	}
	if n == 0 {
		return
	}
	if single && s.m.TracesSize(td) <= budget {
		s.out = append(s.out, tracesPart{partition: first, td: td, spans: n})
		return
	}
	for p := range s.parts {
		s.parts[p] = partBuilder{rsIn: -1, ssIn: -1}
	}
	for i := range rss.Len() {
		rs := rss.At(i)
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			ss := sss.At(j)
			spans := ss.Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				p := codec.TracePartition(sp.TraceID(), partitions)
				b := &s.parts[p]
				size := s.m.SpanSize(sp) + tracesFraming
				if b.spans > 0 && b.size+size > budget {
					s.finish(p)
				}
				if b.spans == 0 {
					b.td = ptrace.NewTraces()
					b.rsIn, b.ssIn = -1, -1
				}
				if b.rsIn != i {
					b.rs = b.td.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(b.rs.Resource())
					b.rs.SetSchemaUrl(rs.SchemaUrl())
					b.rsIn, b.ssIn = i, -1
					b.size += s.m.ResourceSpansSize(b.rs) + tracesFraming
				}
				if b.ssIn != j {
					b.ss = b.rs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(b.ss.Scope())
					b.ss.SetSchemaUrl(ss.SchemaUrl())
					b.ssIn = j
					b.size += s.m.ScopeSpansSize(b.ss) + tracesFraming
				}
				// A move, not a copy: td is the publisher's (see
				// receive.TracesSink), and its spans are not read again.
				sp.MoveTo(b.ss.Spans().AppendEmpty())
				b.size += size
				b.spans++
			}
		}
	}
	for p := range s.parts {
		s.finish(p)
	}
}

// finish closes partition p's part, if it has spans.
func (s *tracesSplitter) finish(p int) {
	b := &s.parts[p]
	if b.spans > 0 {
		s.out = append(s.out, tracesPart{partition: p, td: b.td, spans: b.spans})
	}
	*b = partBuilder{rsIn: -1, ssIn: -1}
}

func (s *tracesSplitter) reset() {
	for i := range s.out {
		s.out[i] = tracesPart{}
	}
	s.out = s.out[:0]
	for p := range s.parts {
		s.parts[p] = partBuilder{}
	}
}

// PushTraces publishes td's spans for tenant and returns once all of them
// are acknowledged. An error wrapping receive.ErrTracesRejected means the
// bus refuses them for what they are; any other may pass on a retry. It
// moves the spans out of td (see receive.TracesSink). Pushes that arrive
// while another of the tenant is being published go out together (see
// pushGrouped).
func (t *Traces) PushTraces(ctx context.Context, tenant string, td ptrace.Traces) error {
	if td.SpanCount() == 0 {
		return nil
	}
	if size := t.sizer.TracesSize(td); size <= maxGroupedPushBytes {
		return t.pushGrouped(ctx, tenant, td, size)
	}
	return t.publishTraces(ctx, tenant, td, true)
}

// publishTraces publishes td's spans as one call: split by partition,
// encoded, published at once. With refuse, spans that can never be taken
// (not encodable, or over the bus's message limit) are counted as dropped
// and refused (receive.ErrTracesRejected); without it, as for the spans of
// several pushes, whose owner is not known, the error is retryable.
func (t *Traces) publishTraces(ctx context.Context, tenant string, td ptrace.Traces, refuse bool) error {
	s := t.splitters.Get().(*tracesSplitter)
	defer func() {
		s.reset()
		t.splitters.Put(s)
	}()
	s.split(td, t.partitions, maxTracesMessageBytes)
	if len(s.out) == 0 {
		return nil
	}
	if err := t.encodeAll(s, refuse); err != nil {
		return err
	}
	return t.publishAll(ctx, s.out, tenant, t.nextSeq(), refuse)
}

// encodeAll encodes every part, splitting again those whose payload is
// over maxTracesPayloadBytes (halving the budget each time).
func (t *Traces) encodeAll(s *tracesSplitter, refuse bool) error {
	enc := codec.NewTracesEncoder(t.comp)
	for i := 0; i < len(s.out); i++ {
		budget := maxTracesMessageBytes
		for {
			p := &s.out[i]
			data, err := enc.Encode(nil, p.td)
			if err != nil {
				if !refuse {
					return fmt.Errorf("encode %d spans: %w", p.spans, err)
				}
				t.dropped.WithLabelValues(reasonEncode).Add(float64(p.spans))
				return fmt.Errorf("%w: %w", receive.ErrTracesRejected, err)
			}
			if len(data) <= maxTracesPayloadBytes || p.spans == 1 {
				// A single span over the limit goes as it is: the bus
				// decides (its max_payload may be larger than the default).
				p.data = data
				p.td = ptrace.Traces{}
				break
			}
			// Too large once compressed: split this part in place, its
			// pieces going last (message IDs follow the final order, which
			// is the same for the same input).
			budget /= 2
			big := *p
			s.out = append(s.out[:i], s.out[i+1:]...)
			before := len(s.out)
			s.split(big.td, 1, budget)
			for j := before; j < len(s.out); j++ {
				s.out[j].partition = big.partition
			}
			// The first piece takes the part's place.
			piece := s.out[before]
			copy(s.out[i+1:before+1], s.out[i:before])
			s.out[i] = piece
		}
	}
	return nil
}

// publishAll publishes the parts, up to t.concurrency at once, waiting for
// all. Part i of call seq has the ID <prefix><seq>.<i>.
func (t *Traces) publishAll(ctx context.Context, parts []tracesPart, tenant string, seq uint64, refuse bool) error {
	start := time.Now()
	encoding := codec.TracesEncoding(t.comp)
	err := t.publishParts(ctx, tenant, seq, len(parts),
		func(i int) bus.OutMsg {
			return bus.OutMsg{Partition: parts[i].partition, Encoding: encoding, Data: parts[i].data}
		},
		func(i int) {
			m := &parts[i]
			t.spans.Add(float64(m.spans))
			t.messages.Inc()
			t.bytes.Add(float64(len(m.data)))
		},
		func(i int, err error) error {
			m := &parts[i]
			if !refuse {
				return fmt.Errorf("%d spans refused by the bus for their size (is its max_payload below 1 MiB?): %w", m.spans, err)
			}
			t.dropped.WithLabelValues(reasonTooLarge).Add(float64(m.spans))
			return fmt.Errorf("%w: %d spans refused by the bus for their size: %w", receive.ErrTracesRejected, m.spans, err)
		})
	t.latency.Observe(time.Since(start).Seconds())
	return err
}
