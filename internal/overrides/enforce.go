package overrides

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"
)

// The signals, as the rates and the counters name them.
const (
	SignalMetrics = "metrics"
	SignalLogs    = "logs"
	SignalTraces  = "traces"
)

// ErrLimited is wrapped by every *LimitError.
var ErrLimited = errors.New("per-tenant limit reached")

// LimitError is a refusal by a tenant's limit. Retryable ones are
// answered 429 with Retry-After (RESOURCE_EXHAUSTED with RetryInfo),
// the others 400 (INVALID_ARGUMENT): they can never pass as sent.
type LimitError struct {
	Tenant string
	Limit  string // one of the Limit… names
	Detail string
	// RetryAfter is when a retry may pass; 0 for errors that are not
	// retryable.
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("tenant %q: %s (limit %s)", e.Tenant, e.Detail, e.Limit)
}

// Unwrap makes errors.Is(err, ErrLimited) hold.
func (e *LimitError) Unwrap() error { return ErrLimited }

// Retryable reports whether the sender should retry the same data.
func (e *LimitError) Retryable() bool { return e.RetryAfter > 0 }

// Rates holds the token buckets of the ingestion rates, one per tenant
// and signal. Buckets follow the limits in force: a reload that changes
// a tenant's rate applies to its next request.
type Rates struct {
	o   *Overrides
	now func() time.Time

	mu      sync.Mutex
	buckets map[rateKey]*bucket
	swept   time.Time
}

type rateKey struct{ tenant, signal string }

type bucket struct {
	lim      *rate.Limiter
	r        float64
	b        int
	lastUsed time.Time
}

// NewRates returns the buckets of o's rate limits.
func NewRates(o *Overrides) *Rates {
	return &Rates{o: o, now: time.Now, buckets: map[rateKey]*bucket{}}
}

// rateOf returns a signal's rate and burst in l, and the limit's name.
func rateOf(l *Limits, signal string) (float64, int, string, string) {
	switch signal {
	case SignalLogs:
		return l.LogsIngestionRateBytes, l.LogsIngestionBurstBytes, LimitLogsIngestionRate, "log bytes"
	case SignalTraces:
		return l.TracesIngestionRateBytes, l.TracesIngestionBurstBytes, LimitTracesIngestionRate, "span bytes"
	}
	return l.IngestionRate, l.IngestionBurstSize, LimitIngestionRate, "samples"
}

// Allow takes n units (samples or bytes) of signal from tenant's bucket,
// or returns a *LimitError: retryable when the bucket will hold n later,
// not when n is more than the burst.
func (r *Rates) Allow(tenant, signal string, n int) error {
	if n <= 0 {
		return nil
	}
	rt, burst, name, unit := rateOf(r.o.For(tenant), signal)
	if rt <= 0 {
		return nil
	}
	if n > burst {
		return &LimitError{Tenant: tenant, Limit: name,
			Detail: fmt.Sprintf("a request of %d %s is more than the burst of %d the tenant may send at once; send smaller requests", n, unit, burst)}
	}
	now := r.now()
	r.mu.Lock()
	b := r.bucketLocked(rateKey{tenant, signal}, rt, burst, now)
	res := b.lim.ReserveN(now, n)
	delay := res.DelayFrom(now)
	if delay > 0 {
		res.CancelAt(now)
	}
	r.mu.Unlock()
	if delay <= 0 {
		return nil
	}
	return &LimitError{Tenant: tenant, Limit: name, RetryAfter: delay,
		Detail: fmt.Sprintf("ingestion rate of %g %s/s reached (burst %d); retry in %s", rt, unit, burst, delay.Round(time.Millisecond))}
}

// bucketLocked returns the tenant's bucket, made or re-rated to rt and
// burst; idle buckets (full anyway) are dropped now and then, so the map
// holds the tenants that sent recently.
func (r *Rates) bucketLocked(k rateKey, rt float64, burst int, now time.Time) *bucket {
	if now.Sub(r.swept) > 10*time.Minute {
		for key, b := range r.buckets {
			if now.Sub(b.lastUsed) > 10*time.Minute {
				delete(r.buckets, key)
			}
		}
		r.swept = now
	}
	b := r.buckets[k]
	switch {
	case b == nil:
		b = &bucket{lim: rate.NewLimiter(rate.Limit(rt), burst), r: rt, b: burst}
		r.buckets[k] = b
	case b.r != rt || b.b != burst:
		b.lim.SetLimitAt(now, rate.Limit(rt))
		b.lim.SetBurstAt(now, burst)
		b.r, b.b = rt, burst
	}
	b.lastUsed = now
	return b
}

// RetryAfterSeconds is d as a Retry-After value: whole seconds, at least
// one.
func RetryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// Discards counts what the limits refused, per tenant, signal and limit,
// as pharos_<component>_tenant_limited_total.
type Discards struct {
	c *prometheus.CounterVec
}

// NewDiscards registers the counter of component ("agent",
// "aggregator").
func NewDiscards(reg prometheus.Registerer, component string) *Discards {
	return &Discards{c: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_" + component + "_tenant_limited_total",
		Help: "Data refused by a per-tenant limit (samples, log entries or spans), by tenant, signal and limit.",
	}, []string{"tenant", "signal", "limit"})}
}

// Add counts n items of signal refused by tenant's limit.
func (d *Discards) Add(tenant, signal, limit string, n int) {
	if d == nil || n <= 0 {
		return
	}
	d.c.WithLabelValues(tenant, signal, limit).Add(float64(n))
}

// LocalLimit is the part of a tenant's limit that one aggregator
// enforces when it holds share (0 to 1) of the partitions: the expected
// count, plus 20% and three standard deviations of hashing's unevenness
// (a tenant under its limit must not be cut on a busy partition), and
// never more than the limit itself. 0 means no limit.
func LocalLimit(limit int, share float64) int {
	if limit <= 0 {
		return 0
	}
	if share >= 1 {
		return limit
	}
	x := float64(limit) * max(share, 0)
	return max(1, min(limit, int(math.Ceil(x*1.2+3*math.Sqrt(x)))))
}

// Counter returns the counter of tenant, signal and limit (for tests and
// status pages).
func (d *Discards) Counter(tenant, signal, limit string) prometheus.Counter {
	return d.c.WithLabelValues(tenant, signal, limit)
}
