package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Errors recorded for notifications that were not delivered.
var (
	// ErrCircuitOpen is returned for a notification refused by its
	// receiver's open circuit breaker.
	ErrCircuitOpen = errors.New("circuit breaker open")
	// ErrQueueFull is returned for a notification refused because its
	// receiver already has -notify.receiver-queue-size waiting.
	ErrQueueFull = errors.New("receiver queue full")
	// ErrStopped is returned for a notification still waiting when the
	// notifier stopped.
	ErrStopped = errors.New("notifier stopped")
)

// receiver delivers the notifications of one receiver, one at a time, from
// its own goroutine and bounded queue, so that a receiver that hangs or
// fails only ever delays itself.
type receiver struct {
	name     string
	hook     *webhook
	retry    RetryConfig
	breaker  *gobreaker.CircuitBreaker[struct{}]
	queue    chan *notification
	failures *failureLog
	logger   *slog.Logger

	queued   prometheus.Gauge
	duration prometheus.Observer
	results  map[string]prometheus.Counter

	// mu guards the outcomes Status reports.
	mu          sync.Mutex
	sent        uint64
	failed      uint64
	lastSuccess time.Time
	lastFailure time.Time
	lastError   string
}

func newReceiver(rc ReceiverConfig, cfg Config, client *http.Client, m *metrics, failures *failureLog, logger *slog.Logger) *receiver {
	m.initReceiver(rc.Name)
	logger = logger.With("receiver", rc.Name)
	r := &receiver{
		name:     rc.Name,
		retry:    cfg.Retry,
		queue:    make(chan *notification, cfg.ReceiverQueueSize),
		failures: failures,
		logger:   logger,
		queued:   m.queued.WithLabelValues(rc.Name),
		duration: m.duration.WithLabelValues(rc.Name),
		results:  map[string]prometheus.Counter{},
	}
	for _, res := range []string{resultSuccess, resultFailed, resultCircuitOpen, resultQueueFull, resultShutdown} {
		r.results[res] = m.notifications.WithLabelValues(rc.Name, res)
	}
	r.hook = newWebhook(rc, cfg.Timeout, client, func(code string) {
		m.requests.WithLabelValues(rc.Name, code).Inc()
	})
	state := m.breakerState.WithLabelValues(rc.Name)
	failuresToTrip := uint32(cfg.Breaker.Failures)
	r.breaker = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        rc.Name,
		MaxRequests: 1,
		Timeout:     cfg.Breaker.OpenTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failuresToTrip },
		// Called with the breaker's lock held: no calls back into it.
		OnStateChange: func(_ string, from, to gobreaker.State) {
			state.Set(float64(to))
			lvl := slog.LevelInfo
			if to == gobreaker.StateOpen {
				lvl = slog.LevelWarn
			}
			logger.Log(context.Background(), lvl, "receiver circuit breaker changed state", "from", from.String(), "to", to.String())
		},
		// A permanent error means the receiver answered, or that the
		// configuration is wrong: neither is an outage to shield it from.
		IsSuccessful: func(err error) bool { return err == nil || isPermanent(err) },
		// Shutdown says nothing about the receiver's health.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	})
	return r
}

// enqueue queues n without blocking. When the queue is full it counts and
// records the drop and returns false; it never calls n.done.
func (r *receiver) enqueue(n *notification) bool {
	r.queued.Inc() // before the send, or the worker's Dec could come first
	select {
	case r.queue <- n:
		return true
	default:
		r.queued.Dec()
		r.fail(n, 0, ErrQueueFull, resultQueueFull)
		return false
	}
}

// run delivers queued notifications until ctx ends, then gives up on the
// ones still queued.
func (r *receiver) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			r.drain()
			return
		case n := <-r.queue:
			r.queued.Dec()
			r.handle(ctx, n)
		}
	}
}

func (r *receiver) drain() {
	dropped := 0
	for {
		select {
		case n := <-r.queue:
			r.queued.Dec()
			r.record(n, 0, ErrStopped, resultShutdown)
			n.done(false)
			dropped++
		default:
			if dropped > 0 {
				r.logger.Warn("notifications dropped at shutdown", "notifications", dropped)
			}
			return
		}
	}
}

func (r *receiver) handle(ctx context.Context, n *notification) {
	start := time.Now()
	var buf bytes.Buffer
	// json.Encoder, as Alertmanager does: the body ends with a newline.
	if err := json.NewEncoder(&buf).Encode(n.msg); err != nil {
		r.fail(n, 0, fmt.Errorf("encode payload: %w", err), resultFailed)
		n.done(false)
		return
	}
	attempts, err := r.deliver(ctx, buf.Bytes())
	r.duration.Observe(time.Since(start).Seconds())
	switch {
	case err == nil:
		r.results[resultSuccess].Inc()
		r.mu.Lock()
		r.sent++
		r.lastSuccess = time.Now()
		r.mu.Unlock()
		r.logger.Debug("notification sent", "group_key", n.groupKey, "alerts", n.alerts, "attempts", attempts)
		n.done(true)
		return
	case ctx.Err() != nil:
		r.record(n, attempts, err, resultShutdown)
	case errors.Is(err, ErrCircuitOpen):
		r.fail(n, attempts, err, resultCircuitOpen)
	default:
		r.fail(n, attempts, err, resultFailed)
	}
	n.done(false)
}

// deliver posts body until it is accepted, a permanent error comes back,
// the attempts run out, the breaker opens, or ctx ends. It returns the
// number of requests made.
func (r *receiver) deliver(ctx context.Context, body []byte) (int, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		_, err := r.breaker.Execute(func() (struct{}, error) {
			return struct{}{}, r.hook.post(ctx, body)
		})
		if err == nil {
			return attempt, nil
		}
		if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
			if lastErr != nil {
				return attempt - 1, fmt.Errorf("%w after %w", ErrCircuitOpen, lastErr)
			}
			return attempt - 1, ErrCircuitOpen
		}
		lastErr = err
		if ctx.Err() != nil || isPermanent(err) || attempt >= r.retry.MaxAttempts {
			return attempt, err
		}
		wait := backoff(attempt, r.retry.MinBackoff, r.retry.MaxBackoff)
		var se *statusError
		if errors.As(err, &se) && se.retryAfter > wait {
			wait = min(se.retryAfter, r.retry.MaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempt, err
		case <-t.C:
		}
	}
}

// fail records, counts and logs a notification that was not delivered.
func (r *receiver) fail(n *notification, attempts int, err error, result string) {
	r.record(n, attempts, err, result)
	r.logger.Warn("notification failed", "group_key", n.groupKey, "alerts", n.alerts, "attempts", attempts, "result", result, "err", err)
}

// record counts a notification that was not delivered and keeps it in the
// failure log; at shutdown that happens without a log line each.
func (r *receiver) record(n *notification, attempts int, err error, result string) {
	r.results[result].Inc()
	now := time.Now()
	r.mu.Lock()
	r.failed++
	r.lastFailure, r.lastError = now, err.Error()
	r.mu.Unlock()
	r.failures.add(Failure{
		Receiver: r.name,
		GroupKey: n.groupKey,
		Time:     now,
		Error:    err.Error(),
		Attempts: attempts,
		Alerts:   n.alerts,
	})
}

// status reports the receiver's outcomes so far.
func (r *receiver) status() ReceiverStatus {
	r.mu.Lock()
	st := ReceiverStatus{
		Name: r.name, Sent: r.sent, Failed: r.failed,
		LastSuccess: r.lastSuccess, LastFailure: r.lastFailure, LastError: r.lastError,
	}
	r.mu.Unlock()
	// The breaker has its own lock; asking it may move an open breaker
	// whose timeout has passed to half-open, as a request would.
	st.Breaker = r.breaker.State().String()
	st.Queued = len(r.queue)
	return st
}
