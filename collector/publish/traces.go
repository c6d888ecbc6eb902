package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// Message size bounds for traces. NATS refuses payloads over its
// max_payload, 1 MiB by default. A message's uncompressed spans are kept
// under maxTracesMessageBytes, so that even spans that do not compress
// (span and trace IDs are random bytes) stay under maxTracesPayloadBytes
// once compressed, with the headers: snappy and zstd grow incompressible
// input by well under 1 %. A single span over maxTracesMessageBytes is a
// message of its own, refused at the push when its payload is over
// maxTracesPayloadBytes.
const (
	maxTracesMessageBytes = 768 << 10
	maxTracesPayloadBytes = 1<<20 - 8<<10
)

// Traces publishes pushed spans (OTLP traces), partitioned by trace ID
// (codec.TracePartition), so that every span of a trace, from any agent,
// lands on one partition and reaches one aggregator.
//
// A push is split by partition, each share written to a disk spool as one
// record, and the spool synced (one fsync for the pushes that arrive
// together) before PushTraces returns: an acknowledged push survives a
// crash of the agent, as it would in JetStream. A publisher goroutine
// reads the spool and publishes what it holds in batches, one message per
// partition joining the shares of many pushes, every Config.TracesBatchWait
// (see traces_spool.go). Publishing each push's shares as they came made a
// message per partition per push: an OpenTelemetry SDK exports 512 spans
// at a time, one export after the other, so 16 partitions got messages of
// ~32 spans, and each message costs JetStream a write, an fsync, a
// delivery, an ack and consumer state writes whatever its size. That was
// half of the all-in-one's CPU under telemetrygen.
//
// When the spool holds more than its bound less a segment (the bus is
// down, or slower than the pushes), pushes are refused with a retryable
// error, so that senders keep their spans rather than the spool dropping
// acknowledged ones.
//
// It is a receive.TracesSink and a service: pushes are taken while it
// runs, and on shutdown it publishes what is spooled until
// Config.DrainTimeout; the rest waits in the spool for the next start.
type Traces struct {
	services.Service
	*signalPublisher

	cfg      Config
	spoolCfg spool.Config
	spoolDir string
	reg      prometheus.Registerer
	sp       atomic.Pointer[spool.Spool]
	commit   groupSync
	pending  *traceBatch // a batch running did not finish delivering
	readBuf  []byte      // the spool reader's (running, then stopping)
	bufs     bufList     // the spool reader's

	splitters sync.Pool // *tracesSplitter
	records   sync.Pool // *[]byte

	spans     prometheus.Counter
	messages  prometheus.Counter
	bytes     prometheus.Counter
	dropped   *prometheus.CounterVec
	refused   prometheus.Counter
	retries   prometheus.Counter
	latency   prometheus.Histogram
	batchWait prometheus.Histogram
}

// errTracesSpoolFull refuses a push while the spool is full; the sender
// retries.
var errTracesSpoolFull = errors.New("trace spool full: the bus is not taking spans as fast as they arrive")

// errTracesNotRunning refuses a push outside the service's running state.
var errTracesNotRunning = errors.New("trace publisher not running")

// NewTraces returns the trace publisher: partitions is the bus's
// partition count, agentID this agent's ID (message IDs start with it),
// spoolDir the directory of its spool, opened when the service starts.
func NewTraces(cfg Config, spoolCfg spool.Config, spoolDir string, partitions int, agentID string, publish PublishFunc, logger *slog.Logger, reg prometheus.Registerer) (*Traces, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := spoolCfg.Validate(); err != nil {
		return nil, err
	}
	sp, err := newSignalPublisher(cfg, bus.SignalTraces, partitions, agentID, publish, logger)
	if err != nil {
		return nil, err
	}
	f := promauto.With(reg)
	t := &Traces{
		signalPublisher: sp,
		cfg:             cfg,
		spoolCfg:        spoolCfg,
		spoolDir:        spoolDir,
		reg:             reg,
		spans: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_spans_published_total", Help: "Spans acknowledged by JetStream."}),
		messages: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_messages_published_total", Help: "Trace messages (one partition's share of a batch of pushes) acknowledged by JetStream."}),
		bytes: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_bytes_published_total", Help: "Encoded, compressed trace message bytes acknowledged by JetStream."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_dropped_spans_total", Help: "Spans the agent gave up on, by reason (too_large: the bus refuses a message for its size; encode: they could not be encoded; spool_full: the spool dropped its oldest records to stay within its bound; spool_error: the spool gave back a record that cannot be read)."}, []string{"reason"}),
		refused: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_pushes_refused_total", Help: "Pushes refused (retryable) because the trace spool was full."}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_trace_publish_retries_total", Help: "Times a batch of spooled spans was published again after the bus failed some of its messages."}),
		latency: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_agent_trace_publish_duration_seconds", Help: "Time to publish one batch of spooled spans, until every message is acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
		batchWait: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_agent_trace_batch_age_seconds", Help: "Time from reading a batch's first spooled push to publishing the batch (agent.publish.traces_batch_wait bounds it, unless the bus is slow).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	for _, r := range []string{reasonTooLarge, reasonEncode, reasonSpoolFull, reasonSpoolError} {
		t.dropped.WithLabelValues(r)
	}
	t.splitters.New = func() any { return &tracesSplitter{parts: make([]partBuilder, partitions)} }
	t.records.New = func() any { return new([]byte) }
	t.Service = services.NewBasicService(t.starting, t.running, t.stopping)
	return t, nil
}

func (t *Traces) starting(context.Context) error {
	sp, err := spool.Open(t.spoolCfg, t.spoolDir, func(_, spans int) {
		t.dropped.WithLabelValues(reasonSpoolFull).Add(float64(spans))
	}, t.logger, wrapSignal(t.reg, bus.SignalTraces))
	if err != nil {
		return err
	}
	if n := sp.Len(); n > 0 {
		t.logger.Info("publishing spans spooled before the restart", "records", n, "spool", t.spoolDir)
	}
	t.sp.Store(sp)
	return nil
}

// SpoolStats reports the spool once the service has opened it; ok is false
// before. It may be called from any goroutine.
func (t *Traces) SpoolStats() (st spool.Stats, ok bool) {
	sp := t.sp.Load()
	if sp == nil {
		return spool.Stats{}, false
	}
	return sp.Stats(), true
}

// PushTraces makes td's spans durable in the spool, to be published for
// tenant, and returns once they are. An error wrapping
// receive.ErrTracesRejected means they can never be published (a single
// span too large for the bus, or not encodable); any other is retryable.
// It moves the spans out of td (see receive.TracesSink).
func (t *Traces) PushTraces(ctx context.Context, tenant string, td ptrace.Traces) error {
	return t.push(ctx, tenant, td.SpanCount(), func(s *tracesSplitter) {
		s.split(td, t.partitions, maxTracesMessageBytes)
	})
}

// PushTracesWire is PushTraces for spans read in their wire form (see
// receive.TracesWireSink): each part is cut from the bytes w was read
// from, with nothing decoded or encoded. It keeps nothing of w.
func (t *Traces) PushTracesWire(ctx context.Context, tenant string, w *otlpwire.Traces) error {
	return t.push(ctx, tenant, len(w.Spans), func(s *tracesSplitter) {
		s.splitWire(w, t.partitions, maxTracesMessageBytes)
	})
}

// push spools n spans that split cuts into parts.
func (t *Traces) push(ctx context.Context, tenant string, n int, split func(s *tracesSplitter)) error {
	if n == 0 {
		return nil
	}
	if t.State() != services.Running {
		return errTracesNotRunning
	}
	sp := t.sp.Load()
	if err := ctx.Err(); err != nil {
		return err
	}
	s := t.splitters.Get().(*tracesSplitter)
	defer func() {
		s.reset()
		t.splitters.Put(s)
	}()
	split(s)
	return t.spoolParts(sp, tenant, s)
}

// spoolParts writes s's parts to the spool as records for tenant and
// returns once they are synced.
func (t *Traces) spoolParts(sp *spool.Spool, tenant string, s *tracesSplitter) error {
	recp := t.records.Get().(*[]byte)
	defer t.records.Put(recp)

	// Every part is encoded before any is written, so that a push refused
	// for one part leaves nothing behind.
	size := 0
	for i := range s.out {
		p := &s.out[i]
		raw := p.data
		if raw == nil {
			var err error
			if raw, err = s.m.MarshalTraces(p.td); err != nil {
				t.dropped.WithLabelValues(reasonEncode).Add(float64(s.spans()))
				return fmt.Errorf("%w: encode %d spans: %w", receive.ErrTracesRejected, p.spans, err)
			}
		}
		if len(raw) > maxTracesMessageBytes {
			// A single span (split gives larger parts only for one): it
			// goes alone, and must fit the bus once compressed.
			data, err := codec.NewTracesEncoder(t.comp).EncodeRaw(nil, raw)
			if err == nil && len(data) > maxTracesPayloadBytes {
				err = fmt.Errorf("%d bytes encoded, over the bus's %d: %w", len(data), maxTracesPayloadBytes, bus.ErrMessageTooLarge)
			}
			if err != nil {
				t.dropped.WithLabelValues(reasonTooLarge).Add(float64(p.spans))
				return fmt.Errorf("%w: a span too large for the bus: %w", receive.ErrTracesRejected, err)
			}
		}
		p.data = raw
		recSize := tracesRecordSize(tenant, p.partition, t.partitions, raw)
		if int64(recSize) > t.spoolCfg.MaxRecordBytes() {
			// Over what the spool takes in one record: a retry cannot pass.
			t.dropped.WithLabelValues(reasonTooLarge).Add(float64(p.spans))
			return fmt.Errorf("%w: %d spans make a %d-byte record, over the spool's %d (half of agent.spool.max_bytes): %w",
				receive.ErrTracesRejected, p.spans, recSize, t.spoolCfg.MaxRecordBytes(), spool.ErrTooLarge)
		}
		size += recSize
	}
	if sp.Bytes()+int64(size) > t.spoolCfg.MaxBytes-t.spoolCfg.SegmentBytes {
		t.refused.Inc()
		return errTracesSpoolFull
	}
	for i := range s.out {
		p := &s.out[i]
		*recp = appendTracesRecord((*recp)[:0], tenant, p.partition, t.partitions, p.data)
		if err := sp.Write(*recp, p.spans); err != nil {
			// What was written is published all the same; the sender's
			// retry may store those spans twice.
			return fmt.Errorf("trace spool: %w", err)
		}
	}
	if err := t.commit.wait(sp.Sync); err != nil {
		return fmt.Errorf("trace spool: %w", err)
	}
	return nil
}

// groupSync is a group commit: each caller's writes are durable once a
// sync that started after them has returned, and one sync serves every
// caller waiting when it starts.
type groupSync struct {
	mu      sync.Mutex
	cond    *sync.Cond
	written uint64 // callers that finished writing
	synced  uint64 // callers covered by the last finished sync
	syncing bool
	// The last failed sync covered callers failFrom+1..failTo.
	failFrom, failTo uint64
	failErr          error
}

// wait records that the caller's writes are done and returns once a sync
// covering them has run, with its error.
func (g *groupSync) wait(syncFn func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	g.written++
	ticket := g.written
	for g.synced < ticket {
		if g.syncing {
			g.cond.Wait()
			continue
		}
		g.syncing = true
		from, to := g.synced, g.written
		g.mu.Unlock()
		err := syncFn()
		g.mu.Lock()
		g.syncing, g.synced = false, to
		if err != nil {
			g.failFrom, g.failTo, g.failErr = from, to, err
		}
		g.cond.Broadcast()
	}
	if g.failErr != nil && ticket > g.failFrom && ticket <= g.failTo {
		return g.failErr
	}
	return nil
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

	// splitWire's: the spans of each partition, the parts planned, and
	// their payloads.
	byPart [][]int
	plans  []wirePart
	arena  []byte
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

// spans is the number of spans in the parts.
func (s *tracesSplitter) spans() int {
	n := 0
	for i := range s.out {
		n += s.out[i].spans
	}
	return n
}

// splitWire cuts w's spans into parts as split does, each part's payload
// written from w's bytes.
func (s *tracesSplitter) splitWire(w *otlpwire.Traces, partitions, budget int) {
	if cap(s.byPart) < partitions {
		s.byPart = make([][]int, partitions)
	}
	s.byPart = s.byPart[:partitions]
	for k := range w.Spans {
		p := codec.TracePartition(w.Spans[k].TraceID, partitions)
		s.byPart[p] = append(s.byPart[p], k)
	}
	// The parts are planned first, to write them all into one buffer of
	// the size they add up to (fit's sizes are upper bounds).
	s.plans = s.plans[:0]
	total := 0
	for p, sel := range s.byPart {
		for len(sel) > 0 {
			n, size := fit(w, sel, budget)
			s.plans = append(s.plans, wirePart{partition: p, spans: sel[:n]})
			total += size
			sel = sel[n:]
		}
	}
	s.arena = slices.Grow(s.arena[:0], total)
	for _, pl := range s.plans {
		start := len(s.arena)
		s.arena = w.AppendSpans(s.arena, pl.spans)
		end := len(s.arena)
		s.out = append(s.out, tracesPart{partition: pl.partition, spans: len(pl.spans), data: s.arena[start:end:end]})
	}
}

// wirePart is a part splitWire plans: w's spans of one partition.
type wirePart struct {
	partition int
	spans     []int
}

// maxArenaBytes bounds the part buffer a splitter keeps between pushes.
const maxArenaBytes = 16 << 20

// fit returns how many of the spans sel (at least one) make a part within
// budget bytes, and the part's size (an upper bound).
func fit(w *otlpwire.Traces, sel []int, budget int) (n, size int) {
	scope, res := -1, -1
	for i, k := range sel {
		add := len(w.Spans[k].Field)
		if j := w.Spans[k].Scope; j != scope {
			sc := &w.Scopes[j]
			add += len(sc.Scope) + len(sc.SchemaURL) + tracesFraming
			if ri := sc.Resource; ri != res {
				r := &w.Resources[ri]
				add += len(r.Resource) + len(r.SchemaURL) + tracesFraming
				res = ri
			}
			scope = j
		}
		if i > 0 && size+add > budget {
			return i, size
		}
		size += add
	}
	return len(sel), size
}

func (s *tracesSplitter) reset() {
	for p := range s.byPart {
		s.byPart[p] = s.byPart[p][:0]
	}
	clear(s.plans)
	s.plans = s.plans[:0]
	if cap(s.arena) > maxArenaBytes {
		s.arena = nil
	}
	for i := range s.out {
		s.out[i] = tracesPart{}
	}
	s.out = s.out[:0]
	for p := range s.parts {
		s.parts[p] = partBuilder{}
	}
}
