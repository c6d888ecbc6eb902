package aggregator

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/storage/traces"
)

// TracesStore is where decoded spans go: traces.Appender. Append makes
// spans searchable; they are on disk once a WaitDurable called after the
// Append returns. The aggregator acknowledges a trace message only then.
type TracesStore interface {
	traces.Appender
}

// TracesObserver sees the spans of every trace message once they are
// appended to the store, with their tenant ("" is the default), read in
// their wire form: the span metrics and service graph generator
// (spanmetrics.Generator.ObserveWire) fits. It is called from the
// partitions' consumer goroutines at once, must be safe for that, must
// not block for long (it holds up its partition) and must not retain t or
// any of its strings (they alias the message).
//
// It is called for replica 0 of each partition only: with a replication
// factor above 1 every replica stores every span, and metrics computed
// by each would count each span once per replica.
type TracesObserver func(tenant string, t *otlpwire.Traces)

// WithTraces makes the aggregator consume the traces signal of the
// partitions it owns into store, handing what it stored to observers.
// Call it before the service starts.
func (a *Aggregator) WithTraces(store TracesStore, reg prometheus.Registerer, observers ...TracesObserver) {
	f := promauto.With(reg)
	a.traces = &tracesSignal{
		store:     store,
		observers: observers,
		acker:     newDurableAcker("trace", store.WaitDurable, a.logger, reg),
		spans: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_aggregator_spans_appended_total", Help: "Spans written to the trace store."}),
	}
}

// tracesSignal is the traces consumers' shared state.
type tracesSignal struct {
	store     TracesStore
	observers []TracesObserver
	acker     *durableAcker
	spans     prometheus.Counter
}

// tracesWriter owns the decode state of one partition-replica's traces
// consumer. A message is read in its wire form (wire), never decoded
// into pdata: the store and the observers read the spans from its bytes.
type tracesWriter struct {
	a    *Aggregator
	pr   PartitionReplica
	dec  *codec.TracesDecoder
	wire otlpwire.Traces
	good []*bus.Delivery
}

// handle stores a fetched batch and hands its messages to the acker. A
// message that cannot be decoded goes to the dead-letter stream; a failed
// append naks the message for redelivery. The trace store defines no
// error for input it can never take, so every append error is taken as
// transient (the store low on disk, closing).
func (w *tracesWriter) handle(ctx context.Context, batch []*bus.Delivery) {
	a := w.a
	start := time.Now()
	w.good = w.good[:0]
	defer w.wire.Reset() // drop the references into the last message
	for _, d := range batch {
		if err := w.dec.DecodeWire(d.Encoding, d.Data, &w.wire); err != nil {
			a.m.invalidMessages.Inc()
			if dlErr := a.deadLetter(ctx, d, bus.SignalTraces, err.Error()); dlErr != nil {
				a.logger.Error("could not dead-letter undecodable trace message, will retry", "partition", w.pr.Partition, "stream_seq", d.StreamSeq, "err", dlErr)
				_ = d.Nak(5 * time.Second)
				continue
			}
			a.logger.Warn("undecodable trace message moved to the dead-letter stream", "partition", w.pr.Partition, "stream_seq", d.StreamSeq, "msg_id", d.MsgID, "err", err)
			continue
		}
		tenant := d.Tenant
		if tenant == bus.DefaultTenant {
			tenant = ""
		}
		n := len(w.wire.Spans)
		if err := a.traces.store.AppendWire(tenant, &w.wire); err != nil {
			a.m.batches.WithLabelValues("storage_error").Inc()
			a.logger.Error("trace append failed, message will be redelivered", "partition", w.pr.Partition, "stream_seq", d.StreamSeq, "err", err)
			_ = d.Nak(5 * time.Second)
			continue
		}
		a.traces.spans.Add(float64(n))
		if w.pr.Replica == 0 {
			for _, obs := range a.traces.observers {
				obs(tenant, &w.wire)
			}
		}
		w.good = append(w.good, d)
	}
	a.traces.acker.add(w.good)
	a.m.batches.WithLabelValues("ok").Inc()
	a.m.commitDuration.Observe(time.Since(start).Seconds())
}
