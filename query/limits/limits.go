// Package limits holds what the Prometheus, Loki and Tempo read APIs share
// to bound one query: a per-query Budget of series and bytes read, carried
// in the context down to the storage adapters and the fan-out's HTTP
// transport; a Gate bounding the queries in flight; the *Error every
// rejection is, naming the limit and its flag; and the counter
// pharos_query_limited_total{api,limit}.
//
// The package knows nothing of the APIs' error formats: each API maps an
// *Error to its own (Prometheus JSON 422, Loki and Tempo plain text 400) and
// a concurrency rejection to 429 with Retry-After.
package limits

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Names of the limits, the values of the counter's "limit" label.
const (
	Timeout     = "timeout"
	Samples     = "max_samples"
	Series      = "max_series"
	Bytes       = "max_bytes"
	LogLines    = "max_log_lines"
	Traces      = "max_traces"
	Concurrency = "concurrency"
)

// Names of the API families, the values of the counter's "api" label.
const (
	APIPrometheus = "prometheus"
	APILoki       = "loki"
	APITempo      = "tempo"
)

// Error is a query stopped by a limit. Its message says what was exceeded
// and ends with the flag that sets the limit and its value, so a user knows
// what to change or whom to ask.
type Error struct {
	// Limit is one of the limit names above.
	Limit string
	// Flag is the command-line flag setting the limit, with its dash.
	Flag string
	// Value is the limit's value as the flag takes it.
	Value string
	// Msg says what happened, without the flag.
	Msg string
	// RetryAfter is set for a concurrency rejection: when to try again.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (limit %s=%s)", e.Msg, e.Flag, e.Value)
}

// As returns the *Error in err's chain, or nil.
func As(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return nil
}

// Budget counts what one query reads against its limits. It is safe for
// concurrent use (a fan-out reads aggregators in parallel). A nil *Budget
// counts nothing and never refuses, so adapters need not check.
type Budget struct {
	maxSeries, maxBytes   int64
	seriesFlag, bytesFlag string
	series, bytes         atomic.Int64
	err                   atomic.Pointer[Error]
}

// BudgetLimits are the bounds of a Budget; 0 means unbounded.
type BudgetLimits struct {
	MaxSeries  int64
	SeriesFlag string
	MaxBytes   int64
	BytesFlag  string
}

// NewBudget returns a budget with the given bounds, or nil when there are
// none (nil counts nothing, for free).
func NewBudget(l BudgetLimits) *Budget {
	if l.MaxSeries <= 0 && l.MaxBytes <= 0 {
		return nil
	}
	return &Budget{maxSeries: l.MaxSeries, maxBytes: l.MaxBytes, seriesFlag: l.SeriesFlag, bytesFlag: l.BytesFlag}
}

type budgetKey struct{}

// WithBudget returns ctx carrying b.
func WithBudget(ctx context.Context, b *Budget) context.Context {
	if b == nil {
		return ctx
	}
	return context.WithValue(ctx, budgetKey{}, b)
}

// FromContext returns the budget ctx carries, or nil.
func FromContext(ctx context.Context) *Budget {
	b, _ := ctx.Value(budgetKey{}).(*Budget)
	return b
}

// AddSeries counts n series fetched from storage and returns an *Error once
// the query has fetched more than its limit.
func (b *Budget) AddSeries(n int) error {
	if b == nil || b.maxSeries <= 0 {
		return nil
	}
	if got := b.series.Add(int64(n)); got > b.maxSeries {
		return b.fail(&Error{
			Limit: Series, Flag: b.seriesFlag, Value: strconv.FormatInt(b.maxSeries, 10),
			Msg: fmt.Sprintf("the query exceeded the maximum number of series fetched from storage (limit: %d series); add more specific label matchers or shorten the time range", b.maxSeries),
		})
	}
	return nil
}

// AddBytes counts n bytes read from storage or received from aggregators
// and returns an *Error once the query has read more than its limit.
func (b *Budget) AddBytes(n int64) error {
	if b == nil || b.maxBytes <= 0 {
		return nil
	}
	if got := b.bytes.Add(n); got > b.maxBytes {
		return b.fail(&Error{
			Limit: Bytes, Flag: b.bytesFlag, Value: strconv.FormatInt(b.maxBytes, 10),
			Msg: fmt.Sprintf("the query exceeded the maximum number of bytes read from storage (limit: %d bytes); add more specific selectors or shorten the time range", b.maxBytes),
		})
	}
	return nil
}

// fail records the first error, so that Err reports it even where a layer
// in between (an iterator the engine does not check) dropped it.
func (b *Budget) fail(e *Error) error {
	b.err.CompareAndSwap(nil, e)
	return b.err.Load()
}

// Err returns the first limit the query exceeded, or nil.
func (b *Budget) Err() error {
	if b == nil {
		return nil
	}
	if e := b.err.Load(); e != nil {
		return e
	}
	return nil
}

// Gate bounds the queries of one API in flight. A query beyond the bound
// waits for a slot up to the gate's wait, then is refused with an *Error
// carrying RetryAfter (the APIs answer 429 with a Retry-After header).
type Gate struct {
	slots   chan struct{}
	wait    time.Duration
	flag    string
	waitErr string
}

// NewGate lets max queries run at once; others wait up to wait. flag and
// waitFlag name the options setting max and wait, for the error.
func NewGate(maxInFlight int, wait time.Duration, flag, waitFlag string) *Gate {
	return &Gate{
		slots:   make(chan struct{}, maxInFlight),
		wait:    wait,
		flag:    flag,
		waitErr: fmt.Sprintf("too many queries in flight: waited %s (%s) for one of the %d slots; retry later", wait, waitFlag, maxInFlight),
	}
}

// Acquire takes a slot, waiting up to the gate's wait. It returns the
// function releasing the slot, or an *Error (Concurrency) when none freed in
// time, or ctx's error when the client went away first.
func (g *Gate) Acquire(ctx context.Context) (release func(), err error) {
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	default:
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return g.release, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		return nil, &Error{
			Limit: Concurrency, Flag: g.flag, Value: strconv.Itoa(cap(g.slots)),
			Msg: g.waitErr, RetryAfter: g.RetryAfter(),
		}
	}
}

func (g *Gate) release() { <-g.slots }

// RetryAfter is what a refused client is told to wait: the gate's wait, at
// least a second, since the queue was full that long.
func (g *Gate) RetryAfter() time.Duration { return max(g.wait.Round(time.Second), time.Second) }

// RetryAfterSeconds renders d as a Retry-After header value.
func RetryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64(max(d, time.Second)+time.Second-1)/int64(time.Second), 10)
}

// TimeoutError is a query stopped by its time limit.
func TimeoutError(flag string, d time.Duration, msg string) *Error {
	return &Error{Limit: Timeout, Flag: flag, Value: d.String(), Msg: msg}
}

// Metrics counts rejections. The counter is shared by the three APIs: each
// registers it, and the second and third registrations reuse the first.
type Metrics struct {
	limited *prometheus.CounterVec
}

// NewMetrics registers pharos_query_limited_total on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_query_limited_total",
		Help: "Queries stopped by a query limit, by API family and limit.",
	}, []string{"api", "limit"})
	if reg != nil {
		if err := reg.Register(c); err != nil {
			are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
			if !ok {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, err
			}
			c = existing
		}
	}
	return &Metrics{limited: c}, nil
}

// Observe counts err when it is a limit: it returns the *Error, or nil.
func (m *Metrics) Observe(api string, err error) *Error {
	e := As(err)
	if e != nil && m != nil {
		m.limited.WithLabelValues(api, e.Limit).Inc()
	}
	return e
}

// Inc counts a rejection by limit.
func (m *Metrics) Inc(api, limit string) {
	if m != nil {
		m.limited.WithLabelValues(api, limit).Inc()
	}
}
