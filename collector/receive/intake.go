// Package receive is the agent's front door for pushed metrics: what the
// push receivers (remote write in promrw, OTLP in otlp) share. An Intake
// admits a bounded number of requests at once, reads bodies with size caps
// that hold while decompressing, validates every series and sample
// against the ingestion limits, and counts what it refuses.
//
// Data flow: receiver → Intake.AppenderV2 (validation) → the agent's
// batcher (any storage.AppendableV2) → NATS.
package receive

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/internal/tenant"
)

// Intake is shared by every push receiver of the process. It is a
// storage.AppendableV2 whose appenders validate before they append to
// the next one. It is safe for concurrent use.
type Intake struct {
	cfg    Config
	limits Limits
	next   storage.AppendableV2
	logger *slog.Logger
	m      *metrics
	now    func() time.Time

	inflight atomic.Int64
	gate     MemoryGate    // nil: no memory limit
	tl       *tenantLimits // nil: no per-tenant limits

	bufs      sync.Pool // *[]byte
	gzips     sync.Pool // *gzip.Reader
	appenders sync.Pool // *appender
	zstds     sync.Pool // *zstd.Decoder
}

// New returns an Intake that validates against limits and appends what
// passes to next (the agent's batcher).
func New(cfg Config, limits Limits, next storage.AppendableV2, logger *slog.Logger, reg prometheus.Registerer) (*Intake, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := limits.Validate(); err != nil {
		return nil, err
	}
	return &Intake{
		cfg:    cfg,
		limits: limits,
		next:   next,
		logger: logger,
		m:      newMetrics(reg),
		now:    time.Now,
	}, nil
}

// Config returns the configuration the Intake was built with.
func (in *Intake) Config() Config { return in.cfg }

// Logger returns the Intake's logger, for receivers built on it.
func (in *Intake) Logger() *slog.Logger { return in.logger }

// AppenderV2 implements storage.AppendableV2. The appender refuses samples
// that break the limits with an *Error (and counts them), drops invalid
// exemplars (reporting a storage.AppendPartialError) and implements
// storage.ExemplarAppenderV2 whether or not the next appender does.
func (in *Intake) AppenderV2(ctx context.Context) storage.AppenderV2 {
	a, _ := in.appenders.Get().(*appender)
	if a == nil {
		a = &appender{}
	}
	a.reset(in, in.next.AppenderV2(ctx), in.now(), tenant.FromContext(ctx))
	return a
}

// TryAcquire takes an in-flight slot without waiting; it reports false
// when agent.receive.max_inflight_requests are already being handled.
// Every true must be paired with Release.
func (in *Intake) TryAcquire() bool {
	if in.inflight.Add(1) > int64(in.cfg.MaxInflightRequests) {
		in.inflight.Add(-1)
		return false
	}
	in.m.inflight.Inc()
	return true
}

// Release returns a slot taken by TryAcquire.
func (in *Intake) Release() {
	in.inflight.Add(-1)
	in.m.inflight.Dec()
}

// Saturated reports whether no slot is free now. It is a hint for
// refusing work early (e.g. a gRPC tap handle); TryAcquire decides.
func (in *Intake) Saturated() bool {
	return in.inflight.Load() >= int64(in.cfg.MaxInflightRequests)
}

// RetryAfter is the delay suggested to senders refused for overload.
func (in *Intake) RetryAfter() time.Duration { return in.cfg.RetryAfter }

// RetryAfterHeader is RetryAfter as a Retry-After value: whole seconds,
// at least 1.
func (in *Intake) RetryAfterHeader() string {
	s := int64((in.cfg.RetryAfter + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}

// StartBodyDeadline bounds the time left to read the request's body to
// agent.receive.body_read_timeout; call the returned func once the body
// is read, so that the deadline does not cut the connection (and cancel
// the request's context) while the request is being stored. Servers that
// cannot set deadlines are left as they are.
func (in *Intake) StartBodyDeadline(w http.ResponseWriter) (done func()) {
	if in.cfg.BodyReadTimeout <= 0 {
		return func() {}
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(in.cfg.BodyReadTimeout)) != nil {
		return func() {}
	}
	return func() { _ = rc.SetReadDeadline(time.Time{}) }
}

// ObserveRequest counts an answered request; start, when not zero, is
// when it was admitted.
func (in *Intake) ObserveRequest(p Protocol, status string, start time.Time) {
	in.m.requests.WithLabelValues(string(p), status).Inc()
	if !start.IsZero() {
		in.m.duration.WithLabelValues(string(p)).Observe(time.Since(start).Seconds())
	}
}

// CountAccepted counts committed samples, histograms and exemplars.
func (in *Intake) CountAccepted(p Protocol, floats, histograms, exemplars int) {
	if floats > 0 {
		in.m.samples.WithLabelValues(string(p), "float").Add(float64(floats))
	}
	if histograms > 0 {
		in.m.samples.WithLabelValues(string(p), "histogram").Add(float64(histograms))
	}
	if exemplars > 0 {
		in.m.exemplars.WithLabelValues(string(p)).Add(float64(exemplars))
	}
}

// CountRejected counts n samples refused by a receiver's own rules (the
// validator counts its own refusals).
func (in *Intake) CountRejected(reason string, n int) { in.m.rejectSamples(reason, n) }

// CountRejectedExemplars counts n exemplars dropped by a receiver.
func (in *Intake) CountRejectedExemplars(reason string, n int) { in.m.rejectExemplars(reason, n) }
