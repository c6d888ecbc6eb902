package aggregator

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pharos-obs/pharos/internal/bus"
)

// drainTimeout bounds the last wait for durability at shutdown, so that
// what was stored is acknowledged rather than redelivered after a restart.
const drainTimeout = 5 * time.Second

// durableAcker acknowledges stored messages once their store says they
// are durable; the log and trace stores share it. Those stores have no
// write-ahead log, so unlike the TSDB they cannot make a batch durable
// before the consumer moves on; instead the consumers keep going and one
// goroutine per store settles what they stored in groups: take
// everything pending, wait for durability once, ack it all.
type durableAcker struct {
	// kind names the signal in metric names and log lines ("log",
	// "trace").
	kind   string
	wait   func(ctx context.Context) error
	logger *slog.Logger

	mu     sync.Mutex
	queue  []*bus.Delivery
	oldest time.Time
	wake   chan struct{}
	done   chan struct{}

	pending  prometheus.Gauge
	ackDelay prometheus.Histogram
}

// newDurableAcker returns an acker waiting with wait (the store's
// WaitDurable), whose metrics are pharos_aggregator_<kind>_messages_awaiting_durability
// and pharos_aggregator_<kind>_ack_delay_seconds.
func newDurableAcker(kind string, wait func(ctx context.Context) error, logger *slog.Logger, reg prometheus.Registerer) *durableAcker {
	f := promauto.With(reg)
	return &durableAcker{
		kind:   kind,
		wait:   wait,
		logger: logger,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_aggregator_" + kind + "_messages_awaiting_durability",
			Help: strings.ToUpper(kind[:1]) + kind[1:] + " messages stored but not acknowledged yet: the " + kind + " store has not put them on disk."}),
		ackDelay: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "pharos_aggregator_" + kind + "_ack_delay_seconds",
			Help:    "Time from storing " + kind + " messages to acknowledging them once they are on disk.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}),
	}
}

// add queues stored messages for acknowledgement.
func (l *durableAcker) add(ds []*bus.Delivery) {
	if len(ds) == 0 {
		return
	}
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
func (l *durableAcker) run(ctx context.Context) {
	defer close(l.done)
	// retry wakes the loop again after a failed wait, so that stored
	// messages do not wait for the next one to arrive.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-l.wake:
			if !l.settle(ctx) {
				retry.Reset(ackRetryDelay)
			}
		case <-retry.C:
			if !l.settle(ctx) {
				retry.Reset(ackRetryDelay)
			}
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
			l.settle(dctx)
			cancel()
			return
		}
	}
}

// ackRetryDelay spaces the retries of a failed durability wait.
const ackRetryDelay = time.Second

// settle acks what is queued once it is durable, and reports false when
// the wait failed and the messages stay queued.
func (l *durableAcker) settle(ctx context.Context) bool {
	l.mu.Lock()
	ds, oldest := l.queue, l.oldest
	l.queue = nil
	l.mu.Unlock()
	if len(ds) == 0 {
		return true
	}
	if err := l.wait(ctx); err != nil {
		// Kept for the next round (at shutdown, the last one); messages
		// never acked come back after the ack wait and are stored again: a
		// duplicate, which queries drop, rather than a loss.
		l.mu.Lock()
		l.queue = append(ds, l.queue...)
		l.oldest = oldest
		l.pending.Set(float64(len(l.queue)))
		l.mu.Unlock()
		if ctx.Err() == nil {
			l.logger.Warn(l.kind+" store durability wait failed; will retry", "messages", len(ds), "err", err)
		}
		return false
	}
	for _, d := range ds {
		_ = d.Ack()
	}
	l.ackDelay.Observe(time.Since(oldest).Seconds())
	l.mu.Lock()
	l.pending.Set(float64(len(l.queue)))
	l.mu.Unlock()
	return true
}
