package aggregator

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
	"github.com/pharos-obs/pharos/storage/logs"
)

// LogsStore is where decoded log streams go. Append makes entries
// searchable; they are on disk once a WaitDurable called after the Append
// returns. The aggregator acknowledges a log message only then.
type LogsStore interface {
	logs.Appender
	WaitDurable(ctx context.Context) error
}

// WithLogs makes the aggregator consume the logs signal of the partitions
// it owns into store. Call it before the service starts.
func (a *Aggregator) WithLogs(store LogsStore, reg prometheus.Registerer) {
	f := promauto.With(reg)
	a.logs = &logsSignal{
		store: store,
		acker: newDurableAcker("log", store.WaitDurable, a.logger, reg),
		entries: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_aggregator_log_entries_appended_total", Help: "Log entries written to the log store."}),
	}
}

// logsSignal is the logs consumers' shared state.
type logsSignal struct {
	store   LogsStore
	acker   *durableAcker
	entries prometheus.Counter
}

// logsWriter owns the decode state of one partition's logs consumer.
type logsWriter struct {
	a         *Aggregator
	partition int
	dec       *codec.LogsDecoder
	good      []*bus.Delivery
}

// handle stores a fetched batch and hands its messages to the acker. A
// message that cannot be decoded goes to the dead-letter stream; a failed
// append naks the message for redelivery.
func (w *logsWriter) handle(ctx context.Context, batch []*bus.Delivery) {
	a := w.a
	start := time.Now()
	w.good = w.good[:0]
	for _, d := range batch {
		streams, err := w.dec.Decode(d.Encoding, d.Data)
		if err != nil {
			a.m.invalidMessages.Inc()
			if dlErr := a.deadLetter(ctx, d, bus.SignalLogs, err.Error()); dlErr != nil {
				a.logger.Error("could not dead-letter undecodable log message, will retry", "partition", w.partition, "stream_seq", d.StreamSeq, "err", dlErr)
				_ = d.Nak(5 * time.Second)
				continue
			}
			a.logger.Warn("undecodable log message moved to the dead-letter stream", "partition", w.partition, "stream_seq", d.StreamSeq, "msg_id", d.MsgID, "err", err)
			continue
		}
		if a.tl != nil {
			streams = a.tl.limitStreams(d.Tenant, streams)
		}
		tenant := d.Tenant
		if tenant == bus.DefaultTenant {
			tenant = ""
		}
		if err := a.logs.store.Append(tenant, streams); err != nil {
			if !errors.Is(err, logs.ErrInvalid) {
				// The store cannot write now (low on disk): try again later.
				a.m.batches.WithLabelValues("storage_error").Inc()
				a.logger.Error("log append failed, message will be redelivered", "partition", w.partition, "stream_seq", d.StreamSeq, "err", err)
				_ = d.Nak(5 * time.Second)
				continue
			}
			// The store refuses what it can never take (a reserved label
			// name); it would fail the same way on every redelivery.
			a.m.invalidMessages.Inc()
			if dlErr := a.deadLetter(ctx, d, bus.SignalLogs, err.Error()); dlErr != nil {
				a.logger.Error("could not dead-letter refused log message, will retry", "partition", w.partition, "stream_seq", d.StreamSeq, "err", dlErr)
				_ = d.Nak(5 * time.Second)
				continue
			}
			a.logger.Warn("log message refused by the store moved to the dead-letter stream", "partition", w.partition, "stream_seq", d.StreamSeq, "msg_id", d.MsgID, "err", err)
			continue
		}
		n := 0
		for i := range streams {
			n += len(streams[i].Entries)
		}
		a.logs.entries.Add(float64(n))
		w.good = append(w.good, d)
	}
	a.logs.acker.add(w.good)
	a.m.batches.WithLabelValues("ok").Inc()
	a.m.commitDuration.Observe(time.Since(start).Seconds())
}
