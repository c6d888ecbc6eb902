package aggregator

import (
	"context"
	"errors"
	"sync"
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

// drainTimeout bounds the last wait for durability at shutdown, so that
// what was stored is acknowledged rather than redelivered after a restart.
const drainTimeout = 5 * time.Second

// WithLogs makes the aggregator consume the logs signal of the partitions
// it owns into store. Call it before the service starts.
func (a *Aggregator) WithLogs(store LogsStore, reg prometheus.Registerer) {
	f := promauto.With(reg)
	a.logs = &logsAcker{
		store:  store,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		logger: a.logger,
		entries: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_aggregator_log_entries_appended_total", Help: "Log entries written to the log store."}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_aggregator_log_messages_awaiting_durability", Help: "Log messages stored but not acknowledged yet: the log store has not put them on disk."}),
		ackDelay: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_aggregator_log_ack_delay_seconds", Help: "Time from storing log messages to acknowledging them once they are on disk.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}),
	}
}

// logsAcker acknowledges stored log messages once the store says they are
// durable. The log store has no write-ahead log, so unlike the TSDB it
// cannot make a batch durable before the consumer moves on; instead the
// consumers keep going and one goroutine settles what they stored in
// groups: take everything pending, wait for durability once, ack it all.
type logsAcker struct {
	store  LogsStore
	logger interface {
		Warn(msg string, args ...any)
		Error(msg string, args ...any)
	}

	mu      sync.Mutex
	queue   []*bus.Delivery
	oldest  time.Time
	wake    chan struct{}
	done    chan struct{}
	entries prometheus.Counter

	pending  prometheus.Gauge
	ackDelay prometheus.Histogram
}

func (l *logsAcker) add(ds []*bus.Delivery) {
	l.mu.Lock()
	if len(l.queue) == 0 {
		l.oldest = time.Now()
	}
	l.queue = append(l.queue, ds...)
	l.pending.Set(float64(len(l.queue)))
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run settles stored messages until ctx ends, then once more, bounded by
// drainTimeout, so that what was stored before shutdown is acknowledged.
func (l *logsAcker) run(ctx context.Context) {
	defer close(l.done)
	for {
		select {
		case <-l.wake:
			l.settle(ctx)
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			l.settle(dctx)
			cancel()
			return
		}
	}
}

func (l *logsAcker) settle(ctx context.Context) {
	l.mu.Lock()
	ds, oldest := l.queue, l.oldest
	l.queue = nil
	l.mu.Unlock()
	if len(ds) == 0 {
		return
	}
	if err := l.store.WaitDurable(ctx); err != nil {
		// Kept for the next round (at shutdown, the last one); messages
		// never acked come back after the ack wait and are stored again: a
		// duplicate, which queries drop, rather than a loss.
		l.mu.Lock()
		l.queue = append(ds, l.queue...)
		l.oldest = oldest
		l.pending.Set(float64(len(l.queue)))
		l.mu.Unlock()
		if ctx.Err() == nil {
			l.logger.Warn("log store durability wait failed; will retry", "messages", len(ds), "err", err)
		}
		return
	}
	for _, d := range ds {
		_ = d.Ack()
	}
	l.ackDelay.Observe(time.Since(oldest).Seconds())
	l.mu.Lock()
	l.pending.Set(float64(len(l.queue)))
	l.mu.Unlock()
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
	a.logs.add(w.good)
	a.m.batches.WithLabelValues("ok").Inc()
	a.m.commitDuration.Observe(time.Since(start).Seconds())
}
