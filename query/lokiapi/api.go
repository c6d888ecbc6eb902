// Package lokiapi serves Loki's read HTTP API (/loki/api/v1/...) with
// Loki's JSON shapes, status codes and plain-text errors, so that Grafana's
// Loki data source and logcli work against Pharos unchanged. Queries run
// on a logql.Engine over a logs.Querier; the tenant is the request's
// (internal/tenant.Resolve: the identity's, else X-Scope-OrgID), a
// malformed one answered 400.
package lokiapi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/storage/logs"
)

// ErrUnavailable marks a store error meaning "no backend can answer now,
// try again": wrap it, or return an error with an `Unavailable() bool`
// method that says true (so a store need not import this package), and the
// API answers 503 instead of 500.
var ErrUnavailable = errors.New("log store unavailable")

// isUnavailable reports whether err means the store cannot be reached.
func isUnavailable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}

// Config tunes the API.
type Config struct {
	// Timeout bounds the label, series and stats endpoints; queries are
	// bounded by the engine's own timeout.
	Timeout time.Duration `yaml:"timeout"`
	// TailPollInterval is how often a tail asks the store for new entries.
	TailPollInterval time.Duration `yaml:"tail_poll_interval"`
	// TailLateness is how far back each poll looks again, for entries that
	// became searchable after newer ones were sent; it bounds how late an
	// entry may arrive and still be tailed.
	TailLateness time.Duration `yaml:"tail_lateness"`
	// TailMaxDuration ends a tail after this long, as Loki's
	// tail_max_duration does.
	TailMaxDuration time.Duration `yaml:"tail_max_duration"`
	// MaxConcurrent is how many requests (tails aside) are served at once;
	// more wait up to MaxQueueWait, then get 429 with Retry-After.
	// Zero values take the defaults.
	MaxConcurrent int           `yaml:"max_concurrent"`
	MaxQueueWait  time.Duration `yaml:"max_queue_wait"`
}

// Defaults of Config.
const (
	DefaultTimeout          = time.Minute
	DefaultTailPollInterval = time.Second
	DefaultTailLateness     = 10 * time.Second
	DefaultTailMaxDuration  = time.Hour
	DefaultMaxConcurrent    = 20
	DefaultMaxQueueWait     = 30 * time.Second
)

// RegisterFlags registers the options under -query.loki.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "query.loki.timeout", DefaultTimeout, "Longest time a label, series or stats request of the Loki API may take.")
	f.DurationVar(&c.TailPollInterval, "query.loki.tail-poll-interval", DefaultTailPollInterval, "How often a Loki tail polls the log store for new entries.")
	f.DurationVar(&c.TailLateness, "query.loki.tail-lateness", DefaultTailLateness, "How late an entry may become searchable and still reach a Loki tail.")
	f.DurationVar(&c.TailMaxDuration, "query.loki.tail-max-duration", DefaultTailMaxDuration, "Longest time a Loki tail stays open.")
	f.IntVar(&c.MaxConcurrent, "query.loki.max-concurrent", DefaultMaxConcurrent, "Requests of the Loki API (tails aside) served at once; more wait up to -query.loki.max-queue-wait, then get 429.")
	f.DurationVar(&c.MaxQueueWait, "query.loki.max-queue-wait", DefaultMaxQueueWait, "Longest time a Loki API request waits for a free slot (-query.loki.max-concurrent) before it is refused with 429 and Retry-After.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"query.loki.timeout", c.Timeout},
		{"query.loki.tail_poll_interval", c.TailPollInterval},
		{"query.loki.tail_max_duration", c.TailMaxDuration},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be positive, got %s", d.name, d.v))
		}
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("query.loki.max_concurrent: must not be negative, got %d", c.MaxConcurrent))
	}
	if c.MaxQueueWait < 0 {
		errs = append(errs, fmt.Errorf("query.loki.max_queue_wait: must not be negative, got %s", c.MaxQueueWait))
	}
	if c.TailLateness < 0 {
		errs = append(errs, fmt.Errorf("query.loki.tail_lateness: must not be negative, got %s", c.TailLateness))
	}
	return errors.Join(errs...)
}

// BuildInfo is what /status/buildinfo reports. Grafana reads Version to
// enable features, so report a Loki-compatible version there (such as
// "3.4.0"); empty means "3.0.0".
type BuildInfo struct {
	Version   string
	Revision  string
	Branch    string
	BuildUser string
	BuildDate string
	GoVersion string
}

// API serves the Loki read API. It is safe for concurrent use.
type API struct {
	cfg     Config
	q       logs.Querier
	engine  *logql.Engine
	build   BuildInfo
	logger  *slog.Logger
	metrics *metrics
	limited *limits.Metrics
	gate    *limits.Gate
	now     func() time.Time

	// stop ends running tails, whose hijacked connections http.Server's
	// Shutdown does not wait for; tails counts them. mu orders tails.Add
	// before Stop's Wait.
	stop     context.Context
	stopFunc context.CancelFunc
	mu       sync.Mutex
	stopped  bool
	tails    sync.WaitGroup
}

// New returns an API reading through q and engine. Metrics go to reg when
// it is not nil.
func New(cfg Config, q logs.Querier, engine *logql.Engine, build BuildInfo, logger *slog.Logger, reg prometheus.Registerer) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("lokiapi config: %w", err)
	}
	if q == nil || engine == nil {
		return nil, errors.New("lokiapi: querier and engine are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if build.Version == "" {
		build.Version = "3.0.0"
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("lokiapi metrics: %w", err)
	}
	lm, err := limits.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("lokiapi metrics: %w", err)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxQueueWait == 0 {
		cfg.MaxQueueWait = DefaultMaxQueueWait
	}
	stop, stopFunc := context.WithCancel(context.Background())
	return &API{
		cfg: cfg, q: q, engine: engine, build: build, logger: logger, metrics: m, limited: lm, now: time.Now, stop: stop, stopFunc: stopFunc,
		gate: limits.NewGate(cfg.MaxConcurrent, cfg.MaxQueueWait, "-query.loki.max-concurrent", "-query.loki.max-queue-wait"),
	}, nil
}

// Stop ends the running tails and waits for them. Call it after the HTTP
// server has stopped accepting requests.
func (a *API) Stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.stopFunc()
	a.tails.Wait()
}

// startTail registers a tail unless the API is stopping.
func (a *API) startTail() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return false
	}
	a.tails.Add(1)
	return true
}

// Register adds the routes to mux. Query endpoints answer GET and POST
// (form-encoded), as Loki's do.
func (a *API) Register(mux *http.ServeMux) {
	for _, ep := range []struct {
		path string
		h    handlerFunc
		post bool
	}{
		{"/loki/api/v1/query_range", a.queryRange, true},
		{"/loki/api/v1/query", a.query, true},
		// The rest are bounded by -query.loki.timeout, the queries by the engine's.
		{"/loki/api/v1/labels", a.labelNames, true},
		{"/loki/api/v1/label", a.labelNames, true}, // Loki's older alias
		{"/loki/api/v1/label/{name}/values", a.labelValues, true},
		{"/loki/api/v1/series", a.series, true},
		{"/loki/api/v1/index/stats", a.indexStats, true},
		{"/loki/api/v1/index/volume", a.volume("vector"), true},
		{"/loki/api/v1/index/volume_range", a.volume("matrix"), true},
		{"/loki/api/v1/detected_labels", a.detectedLabels, false},
		{"/loki/api/v1/detected_fields", a.detectedFields, false},
		{"/loki/api/v1/patterns", a.patterns, false},
		{"/loki/api/v1/format_query", a.formatQuery, true},
		{"/loki/api/v1/status/buildinfo", a.buildInfo, false},
	} {
		h := a.wrap(ep.path, ep.h)
		mux.Handle("GET "+ep.path, h)
		if ep.post {
			mux.Handle("POST "+ep.path, h)
		}
	}
	mux.HandleFunc("GET /loki/api/v1/tail", a.tail)
}

// handlerFunc is an endpoint: it writes a success response itself and
// returns errors for wrap to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

const statusClientClosedRequest = 499

// wrap parses the form, runs the endpoint, answers its error and counts.
func (a *API) wrap(endpoint string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way.
					panic(p)
				}
				a.logger.Error("panic in Loki API endpoint", "endpoint", endpoint, "panic", p)
				rec.code = http.StatusInternalServerError
				http.Error(rec, "internal server error", rec.code)
			}
			a.metrics.requests.Observe(endpoint, rec.code, time.Since(start))
		}()
		release, err := a.gate.Acquire(r.Context())
		if err != nil {
			a.reject(rec, err)
			return
		}
		defer release()
		if err = r.ParseForm(); err != nil {
			err = badParam("error parsing form values: %v", err)
		} else if id, terr := tenant.Resolve(r); terr != nil {
			err = badParam("%v", terr)
		} else {
			err = h(rec, r.WithContext(tenant.WithContext(r.Context(), id)))
		}
		if err != nil {
			err = a.timeoutLimit(endpoint, r, err)
			a.limited.Observe(limits.APILoki, err)
			code, msg := classify(err)
			if code >= 500 && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
				a.logger.Error("Loki API request failed", "endpoint", endpoint, "err", err)
			}
			http.Error(rec, msg, code)
		}
	})
}

// reject answers a request the concurrency gate refused: 429 with
// Retry-After, or nothing when the client went away while waiting.
func (a *API) reject(w http.ResponseWriter, err error) {
	le := a.limited.Observe(limits.APILoki, err)
	if le == nil {
		return
	}
	w.Header().Set("Retry-After", limits.RetryAfterSeconds(le.RetryAfter))
	http.Error(w, le.Error(), http.StatusTooManyRequests)
}

// timeoutLimit names the time limit a request ran out of: the engine's for
// the query endpoints, -query.loki.timeout for the others. A client that
// went away is no limit.
func (a *API) timeoutLimit(endpoint string, r *http.Request, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) || r.Context().Err() != nil || limits.As(err) != nil {
		return err
	}
	flag, d := "-query.loki.timeout", a.cfg.Timeout
	if endpoint == "/loki/api/v1/query_range" || endpoint == "/loki/api/v1/query" {
		flag, d = logql.FlagTimeout, a.engine.Opts().Timeout
	}
	_, msg := classify(err)
	return limits.TimeoutError(flag, d, msg)
}

// classify maps an error to Loki's status code and plain-text message.
func classify(err error) (int, string) {
	var pe *paramError
	if le := limits.As(err); le != nil {
		switch le.Limit {
		case limits.Concurrency:
			return http.StatusTooManyRequests, le.Error()
		case limits.Timeout:
			return http.StatusGatewayTimeout, le.Error()
		}
		// Loki answers its query limits (entries, series, bytes read) with 400.
		return http.StatusBadRequest, le.Error()
	}
	switch {
	case errors.As(err, &pe), logql.IsUserError(err):
		return http.StatusBadRequest, err.Error()
	case isUnavailable(err):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest, "The request was cancelled by the client."
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "Request timed out, decrease the duration of the request or add more label matchers (prefer exact match over regex match) to reduce the amount of data processed."
	}
	return http.StatusInternalServerError, err.Error()
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// tenantOf is the storage key (tenant.Key) of the request's tenant, which
// wrap resolved (tenant.Resolve) and put in its context.
func tenantOf(r *http.Request) string { return tenant.Key(tenant.FromContext(r.Context())) }

func writeJSON(w http.ResponseWriter, body []byte) error {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	// A write error means the client went away: nothing left to tell it.
	_, _ = w.Write(body)
	return nil
}

func (a *API) buildInfo(w http.ResponseWriter, _ *http.Request) error {
	b := []byte(`{"version":`)
	b = appendString(b, a.build.Version)
	b = append(b, `,"revision":`...)
	b = appendString(b, a.build.Revision)
	b = append(b, `,"branch":`...)
	b = appendString(b, a.build.Branch)
	b = append(b, `,"buildUser":`...)
	b = appendString(b, a.build.BuildUser)
	b = append(b, `,"buildDate":`...)
	b = appendString(b, a.build.BuildDate)
	b = append(b, `,"goVersion":`...)
	b = appendString(b, a.build.GoVersion)
	b = append(b, '}')
	return writeJSON(w, b)
}
