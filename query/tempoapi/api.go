// Package tempoapi serves the trace read APIs: Tempo's HTTP API (/api/...),
// with Tempo's JSON shapes, protobuf trace bodies and plain-text errors, so
// that Grafana's Tempo data source works against Pharos unchanged; and
// Jaeger's query API under a prefix (/jaeger/api/...), with Jaeger's JSON
// model, for Grafana's Jaeger data source and the Jaeger UI. Searches are
// TraceQL (the subset query/traceql parses), Tempo's legacy tags, or
// Jaeger's service, operation and tags, all run on a traces.Querier; the
// tenant is the request's (internal/tenant.Resolve: the identity's, else
// X-Scope-OrgID), a malformed one answered 400.
//
// Where it differs from Tempo 2.x:
//
//   - Trace JSON is OTLP/JSON as the OpenTelemetry Collector writes it (hex
//     IDs, enums as numbers), where Tempo's gogo/jsonpb writes base64 IDs
//     and enum names; Grafana reads traces as protobuf (Accept:
//     application/protobuf), which is byte for byte Tempo's.
//   - A search that finds nothing answers "traces":[] where jsonpb leaves
//     the field out, and "metrics" is always {}: nothing is sharded.
//   - There is no gRPC streaming search: turn streaming off in Grafana's
//     Tempo data source. TraceQL metrics (/api/metrics/...), the q filter
//     of tag values, and multi-tenant queries (X-Scope-OrgID a|b) are not
//     served: a "|" list is refused with 400.
//   - GET /api/traces/{traceID}/logs (with WithLogsByTrace) returns a
//     trace's log lines; Tempo has no such endpoint.
package tempoapi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/internal/tenant"
	"github.com/pharos-obs/pharos/query/apimetrics"
	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/query/traceql"
	"github.com/pharos-obs/pharos/storage/traces"
)

// ErrUnavailable marks a store error meaning "no backend can answer now,
// try again": wrap it, or return an error with an `Unavailable() bool`
// method that says true (so a store need not import this package), and the
// API answers 503 instead of 500.
var ErrUnavailable = errors.New("trace store unavailable")

// isUnavailable reports whether err means the store cannot be reached.
func isUnavailable(err error) bool {
	if errors.Is(err, ErrUnavailable) {
		return true
	}
	var u interface{ Unavailable() bool }
	return errors.As(err, &u) && u.Unavailable()
}

// errTraceNotFound answers 404.
var errTraceNotFound = errors.New("trace not found")

// Config tunes the API. The result limits are Tempo's query-frontend
// options of the same names.
type Config struct {
	// Timeout bounds every request.
	Timeout time.Duration `yaml:"timeout"`
	// DefaultResultLimit is the traces a search returns without a limit.
	DefaultResultLimit int `yaml:"default_result_limit"`
	// MaxResultLimit refuses searches asking for more traces (0: no
	// bound).
	MaxResultLimit int `yaml:"max_result_limit"`
	// DefaultSpansPerSpanSet is the matching spans listed per trace
	// without spss.
	DefaultSpansPerSpanSet int `yaml:"default_spans_per_span_set"`
	// MaxSpansPerSpanSet refuses searches asking for more (0: no bound).
	MaxSpansPerSpanSet int `yaml:"max_spans_per_span_set"`
	// JaegerPrefix is where Jaeger's query API is served ("" turns it
	// off): Grafana's Jaeger data source points at http://host:port/jaeger.
	JaegerPrefix string `yaml:"jaeger_prefix"`
	// JaegerFetchConcurrency is how many traces a Jaeger search fetches at
	// once: Jaeger's search returns whole traces, Tempo's only summaries.
	JaegerFetchConcurrency int `yaml:"jaeger_fetch_concurrency"`
	// MaxConcurrent is how many requests are served at once; more wait up
	// to MaxQueueWait, then get 429 with Retry-After.
	// Zero values take the defaults.
	MaxConcurrent int           `yaml:"max_concurrent"`
	MaxQueueWait  time.Duration `yaml:"max_queue_wait"`
	// MaxFetchedBytes bounds the bytes one request reads: traces fetched
	// by ID (their protobuf size) and what aggregators send (0: unbounded).
	MaxFetchedBytes int64 `yaml:"max_fetched_bytes_per_query"`
}

// Defaults of Config.
const (
	DefaultTimeout                = time.Minute
	DefaultLimit                  = 20
	DefaultSpansPerSpanSet        = 3
	DefaultMaxSpansPerSpanSet     = 100
	DefaultJaegerPrefix           = "/jaeger"
	DefaultJaegerFetchConcurrency = 8
	DefaultMaxConcurrent          = 20
	DefaultMaxQueueWait           = 30 * time.Second
)

// The flags of the limits, named in their errors.
const (
	FlagTimeout         = "-query.tempo.timeout"
	FlagMaxResultLimit  = "-query.tempo.max-result-limit"
	FlagMaxFetchedBytes = "-query.tempo.max-fetched-bytes-per-query"
)

// RegisterFlags registers the options under -query.tempo.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "query.tempo.timeout", DefaultTimeout, "Longest time a request to the Tempo or Jaeger API may take.")
	f.IntVar(&c.DefaultResultLimit, "query.tempo.default-result-limit", DefaultLimit, "Traces a search returns when it sets no limit.")
	f.IntVar(&c.MaxResultLimit, "query.tempo.max-result-limit", 0, "Most traces a search may ask for; 0 is no bound.")
	f.IntVar(&c.DefaultSpansPerSpanSet, "query.tempo.default-spans-per-span-set", DefaultSpansPerSpanSet, "Matching spans a search lists per trace when it sets no spss.")
	f.IntVar(&c.MaxSpansPerSpanSet, "query.tempo.max-spans-per-span-set", DefaultMaxSpansPerSpanSet, "Most matching spans per trace a search may ask for; 0 is no bound.")
	f.StringVar(&c.JaegerPrefix, "query.tempo.jaeger-prefix", DefaultJaegerPrefix, "Path prefix of the Jaeger query API (point Grafana's Jaeger data source at it); empty turns it off.")
	f.IntVar(&c.JaegerFetchConcurrency, "query.tempo.jaeger-fetch-concurrency", DefaultJaegerFetchConcurrency, "Traces a Jaeger search fetches from the store at once.")
	f.IntVar(&c.MaxConcurrent, "query.tempo.max-concurrent", DefaultMaxConcurrent, "Requests of the Tempo and Jaeger APIs served at once; more wait up to -query.tempo.max-queue-wait, then get 429.")
	f.DurationVar(&c.MaxQueueWait, "query.tempo.max-queue-wait", DefaultMaxQueueWait, "Longest time a Tempo or Jaeger API request waits for a free slot (-query.tempo.max-concurrent) before it is refused with 429 and Retry-After.")
	f.Int64Var(&c.MaxFetchedBytes, "query.tempo.max-fetched-bytes-per-query", 0, "Most bytes one Tempo or Jaeger API request may read: traces fetched by ID (protobuf size) and responses received from aggregators; 0 is unbounded. Past it the request fails with 400.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("query.tempo.timeout: must be positive, got %s", c.Timeout))
	}
	if c.DefaultResultLimit < 1 {
		errs = append(errs, fmt.Errorf("query.tempo.default_result_limit: must be positive, got %d", c.DefaultResultLimit))
	}
	if c.MaxResultLimit < 0 || (c.MaxResultLimit > 0 && c.MaxResultLimit < c.DefaultResultLimit) {
		errs = append(errs, fmt.Errorf("query.tempo.max_result_limit: must be 0 or at least default_result_limit (%d), got %d", c.DefaultResultLimit, c.MaxResultLimit))
	}
	if c.DefaultSpansPerSpanSet < 1 {
		errs = append(errs, fmt.Errorf("query.tempo.default_spans_per_span_set: must be positive, got %d", c.DefaultSpansPerSpanSet))
	}
	if c.MaxSpansPerSpanSet < 0 || (c.MaxSpansPerSpanSet > 0 && c.MaxSpansPerSpanSet < c.DefaultSpansPerSpanSet) {
		errs = append(errs, fmt.Errorf("query.tempo.max_spans_per_span_set: must be 0 or at least default_spans_per_span_set (%d), got %d", c.DefaultSpansPerSpanSet, c.MaxSpansPerSpanSet))
	}
	if p := c.JaegerPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsAny(p, " {}\t\n")) {
		errs = append(errs, fmt.Errorf("query.tempo.jaeger_prefix: must be empty or a path such as /jaeger, without a trailing slash, got %q", p))
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("query.tempo.max_concurrent: must not be negative, got %d", c.MaxConcurrent))
	}
	if c.MaxQueueWait < 0 {
		errs = append(errs, fmt.Errorf("query.tempo.max_queue_wait: must not be negative, got %s", c.MaxQueueWait))
	}
	if c.MaxFetchedBytes < 0 {
		errs = append(errs, fmt.Errorf("query.tempo.max_fetched_bytes_per_query: must not be negative, got %d", c.MaxFetchedBytes))
	}
	if c.JaegerFetchConcurrency < 1 {
		errs = append(errs, fmt.Errorf("query.tempo.jaeger_fetch_concurrency: must be positive, got %d", c.JaegerFetchConcurrency))
	}
	return errors.Join(errs...)
}

// BuildInfo is what /api/status/buildinfo reports. Grafana reads Version to
// enable features, so report a Tempo-compatible version there; empty means
// "2.7.0".
type BuildInfo struct {
	Version   string
	Revision  string
	Branch    string
	BuildUser string
	BuildDate string
	GoVersion string
}

// LogLine is one log line of a trace, as /api/traces/{traceID}/logs
// returns it.
type LogLine struct {
	Timestamp time.Time
	Labels    map[string]string
	Line      string
}

// LogsByTrace returns the log lines of the trace id for tenant with
// timestamps in [start, end], in the order to show them. It is how the
// trace API reaches the log store without importing it; it may block and
// must be safe for concurrent use. The API owns the returned slice.
type LogsByTrace func(ctx context.Context, tenant string, id traces.TraceID, start, end time.Time) ([]LogLine, error)

// Option sets an optional dependency of the API.
type Option func(*API)

// WithLogsByTrace serves a trace's log lines at /api/traces/{traceID}/logs
// through f; without it the endpoint answers 501.
func WithLogsByTrace(f LogsByTrace) Option { return func(a *API) { a.logs = f } }

// API serves the Tempo and Jaeger read APIs. It is safe for concurrent use.
type API struct {
	cfg     Config
	q       traces.Querier
	build   BuildInfo
	logger  *slog.Logger
	metrics *apimetrics.Requests
	limited *limits.Metrics
	gate    *limits.Gate
	logs    LogsByTrace
	now     func() time.Time
}

// New returns an API reading through q. Metrics go to reg when it is not
// nil.
func New(cfg Config, q traces.Querier, build BuildInfo, logger *slog.Logger, reg prometheus.Registerer, opts ...Option) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tempoapi config: %w", err)
	}
	if q == nil {
		return nil, errors.New("tempoapi: a querier is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if build.Version == "" {
		build.Version = "2.7.0"
	}
	m, err := apimetrics.NewRequests("pharos_tempoapi", "Tempo and Jaeger", reg)
	if err != nil {
		return nil, fmt.Errorf("tempoapi metrics: %w", err)
	}
	lm, err := limits.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("tempoapi metrics: %w", err)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.MaxQueueWait == 0 {
		cfg.MaxQueueWait = DefaultMaxQueueWait
	}
	a := &API{
		cfg: cfg, q: q, build: build, logger: logger, metrics: m, limited: lm, now: time.Now,
		gate: limits.NewGate(cfg.MaxConcurrent, cfg.MaxQueueWait, "-query.tempo.max-concurrent", "-query.tempo.max-queue-wait"),
	}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Register adds the routes to mux: Tempo's under /api, Jaeger's under
// Config.JaegerPrefix.
func (a *API) Register(mux *http.ServeMux) {
	for _, ep := range []struct {
		path string
		h    handlerFunc
	}{
		{"/api/traces/{traceID}", a.traceByID(false)},
		{"/api/v2/traces/{traceID}", a.traceByID(true)},
		{"/api/traces/{traceID}/logs", a.traceLogs},
		{"/api/search", a.search},
		{"/api/search/tags", a.tagNames},
		{"/api/v2/search/tags", a.tagNamesV2},
		{"/api/search/tag/{tag}/values", a.tagValues},
		{"/api/v2/search/tag/{tag}/values", a.tagValuesV2},
		{"/api/echo", a.echo},
		{"/api/status/buildinfo", a.buildInfo},
	} {
		mux.Handle("GET "+ep.path, a.wrap(ep.path, ep.h, writeTempoError))
	}
	if p := a.cfg.JaegerPrefix; p != "" {
		for _, ep := range []struct {
			path string
			h    handlerFunc
		}{
			{"/api/services", a.jaegerServices},
			{"/api/services/{service}/operations", a.jaegerServiceOperations},
			{"/api/operations", a.jaegerOperations},
			{"/api/traces", a.jaegerSearch},
			{"/api/traces/{traceID}", a.jaegerTrace},
			{"/api/dependencies", a.jaegerDependencies},
		} {
			mux.Handle("GET "+p+ep.path, a.wrap(p+ep.path, ep.h, writeJaegerError))
		}
	}
}

// handlerFunc is an endpoint: it writes a success response itself and
// returns errors for wrap to answer.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// errorWriter answers an error in an API's format.
type errorWriter func(w http.ResponseWriter, code int, msg string)

const statusClientClosedRequest = 499

// wrap bounds the request, runs the endpoint, answers its error and counts.
func (a *API) wrap(endpoint string, h handlerFunc, writeError errorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way.
					panic(p)
				}
				a.logger.Error("panic in trace API endpoint", "endpoint", endpoint, "panic", p)
				rec.code = http.StatusInternalServerError
				writeError(rec, rec.code, "internal server error")
			}
			a.metrics.Observe(endpoint, rec.code, time.Since(start))
		}()
		release, err := a.gate.Acquire(r.Context())
		if err != nil {
			if le := a.limited.Observe(limits.APITempo, err); le != nil {
				rec.Header().Set("Retry-After", limits.RetryAfterSeconds(le.RetryAfter))
				writeError(rec, http.StatusTooManyRequests, le.Error())
			}
			return
		}
		defer release()
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
		defer cancel()
		budget := limits.NewBudget(limits.BudgetLimits{MaxBytes: a.cfg.MaxFetchedBytes, BytesFlag: FlagMaxFetchedBytes})
		ctx = limits.WithBudget(ctx, budget)
		if err = r.ParseForm(); err != nil {
			err = badParam("invalid query parameters: %v", err)
		} else if id, terr := tenant.Resolve(r); terr != nil {
			err = badParam("%v", terr)
		} else {
			err = h(rec, r.WithContext(tenant.WithContext(ctx, id)))
		}
		if err != nil {
			// A limit beats what it caused (a failed or timed-out read).
			if lerr := budget.Err(); lerr != nil {
				err = lerr
			}
			if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil && limits.As(err) == nil {
				_, msg := classify(err)
				err = limits.TimeoutError(FlagTimeout, a.cfg.Timeout, msg)
			}
			a.limited.Observe(limits.APITempo, err)
			code, msg := classify(err)
			if code >= 500 && code != http.StatusServiceUnavailable && code != http.StatusGatewayTimeout {
				a.logger.Error("trace API request failed", "endpoint", endpoint, "err", err)
			}
			writeError(rec, code, msg)
		}
	})
}

// paramError is a bad request parameter: 400 with the message as body.
type paramError struct{ msg string }

func (e *paramError) Error() string { return e.msg }

func badParam(format string, args ...any) error {
	return &paramError{msg: fmt.Sprintf(format, args...)}
}

// classify maps an error to a status code and message.
func classify(err error) (int, string) {
	var pe *paramError
	if le := limits.As(err); le != nil {
		switch le.Limit {
		case limits.Concurrency:
			return http.StatusTooManyRequests, le.Error()
		case limits.Timeout:
			return http.StatusGatewayTimeout, le.Error()
		}
		return http.StatusBadRequest, le.Error()
	}
	switch {
	case errors.As(err, &pe), traceql.IsUserError(err):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, errTraceNotFound):
		return http.StatusNotFound, errTraceNotFound.Error()
	case errors.Is(err, errLogsNotConfigured):
		return http.StatusNotImplemented, err.Error()
	case isUnavailable(err):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, context.Canceled):
		return statusClientClosedRequest, "the request was cancelled by the client"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "request timed out, narrow the time range or the query"
	}
	return http.StatusInternalServerError, err.Error()
}

// writeTempoError answers as Tempo does: the message as plain text.
func writeTempoError(w http.ResponseWriter, code int, msg string) { http.Error(w, msg, code) }

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

func writeBody(w http.ResponseWriter, contentType string, body []byte) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	// A write error means the client went away: nothing left to tell it.
	_, _ = w.Write(body)
	return nil
}

func writeJSON(w http.ResponseWriter, body []byte) error {
	return writeBody(w, "application/json", body)
}
