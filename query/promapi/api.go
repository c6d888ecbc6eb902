// Package promapi serves the Prometheus HTTP API (v1) for reads: /query, /query_range,
// /series, /labels, /label/:name/values, /metadata, /query_exemplars, /format_query and
// /status/buildinfo, with Prometheus's JSON shapes, error types and status codes, so that
// promtool, the client_golang API client and Grafana's Prometheus data source work against
// Pharos unchanged.
//
// The package does not know where data lives: it is given a storage.Queryable, a
// storage.ExemplarQueryable, a promql.QueryEngine and a MetadataSource.
package promapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/pharos-obs/pharos/internal/jsonappend"
	"github.com/pharos-obs/pharos/query/apimetrics"
	"github.com/pharos-obs/pharos/query/limits"
)

// MetadataSource returns metric metadata like Prometheus's /api/v1/metadata: metric family
// name → list of distinct metadata.
//
// metric, when not empty, restricts the answer to that family. limit is the most families
// to return and limitPerMetric the most entries per family; a negative value (or, for
// limitPerMetric, zero) means no limit, as in Prometheus. The API enforces both limits again
// on what it gets, so a source may ignore them. The returned map belongs to the caller.
// Implementations must be safe for concurrent use and should honour ctx.
type MetadataSource interface {
	Metadata(ctx context.Context, metric string, limit, limitPerMetric int) (map[string][]metadata.Metadata, error)
}

// BuildInfo is what /status/buildinfo reports.
type BuildInfo struct {
	Version   string
	Revision  string
	Branch    string
	BuildUser string
	BuildDate string
	GoVersion string
}

// API serves the Prometheus HTTP API. It is safe for concurrent use.
type API struct {
	cfg       Config
	queryable storage.Queryable
	exemplars storage.ExemplarQueryable
	engine    promql.QueryEngine
	metadata  MetadataSource
	build     BuildInfo
	parser    parser.Parser
	logger    *slog.Logger
	metrics   *apimetrics.Requests
	limited   *limits.Metrics

	// now is the clock for a query's default evaluation time; tests replace it.
	now func() time.Time
}

// New returns an API that reads through queryable and engine. exemplars and md may be nil:
// /query_exemplars then returns [] and /metadata {}. Metrics are registered on reg when it
// is not nil.
func New(cfg Config, queryable storage.Queryable, exemplars storage.ExemplarQueryable, engine promql.QueryEngine, md MetadataSource, build BuildInfo, logger *slog.Logger, reg prometheus.Registerer) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("promapi config: %w", err)
	}
	if queryable == nil {
		return nil, errors.New("promapi: queryable is required")
	}
	if engine == nil {
		return nil, errors.New("promapi: query engine is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := apimetrics.NewRequests("pharos_query", "Prometheus", reg)
	if err != nil {
		return nil, fmt.Errorf("promapi metrics: %w", err)
	}
	lm, err := limits.NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("promapi metrics: %w", err)
	}
	p := cfg.Parser
	if p == nil {
		p = parser.NewParser(parser.Options{})
	}
	return &API{
		cfg:       cfg,
		queryable: queryable,
		exemplars: exemplars,
		engine:    engine,
		metadata:  md,
		build:     build,
		parser:    p,
		logger:    logger,
		metrics:   m,
		limited:   lm,
		now:       time.Now,
	}, nil
}

// result is what an endpoint hands to the response writer.
type result struct {
	data     any
	err      *apiError
	warnings annotations.Annotations
	// finalizer runs after the response is written: query results and series labels may
	// point into memory owned by the query or querier, so they are closed only then.
	finalizer func()
}

// handlerFunc is an endpoint. It reads parameters from r.Form, which the wrapper has parsed.
type handlerFunc func(c *gin.Context) result

// Register adds the routes to r; the caller mounts r at /api/v1. Every endpoint answers
// GET and POST (form-encoded), as Prometheus's query endpoints do.
func (a *API) Register(r gin.IRouter) {
	for _, ep := range []struct {
		path string
		h    handlerFunc
	}{
		{"/query", a.query},
		{"/query_range", a.queryRange},
		{"/query_exemplars", a.queryExemplars},
		{"/format_query", a.formatQuery},
		{"/series", a.series},
		{"/labels", a.labelNames},
		{"/label/:name/values", a.labelValues},
		{"/metadata", a.metricMetadata},
		{"/status/buildinfo", a.buildInfo},
	} {
		h := a.wrap(ep.path, ep.h)
		r.GET(ep.path, h)
		r.POST(ep.path, h)
	}
}

// Handler returns a ready handler serving the API under /api/v1. Unknown paths get a
// Prometheus-style not_found error, a wrong method 405, and a panic an internal error; all
// are logged through the API's logger rather than gin's.
func (a *API) Handler() http.Handler {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// Label names may contain '/' (Prometheus 3 allows any UTF-8); with the raw path an
	// escaped %2F stays inside the :name segment instead of splitting it.
	e.UseRawPath = true
	e.UnescapePathValues = true
	e.Use(a.recovery)
	a.Register(e.Group("/api/v1"))
	e.NoRoute(func(c *gin.Context) {
		start := time.Now()
		writeError(c.Writer, &apiError{ErrorNotFound, fmt.Errorf("unknown API endpoint %s", c.Request.URL.Path)}, a.logger)
		a.metrics.Observe("other", http.StatusNotFound, time.Since(start))
	})
	e.NoMethod(func(c *gin.Context) {
		start := time.Now()
		writeErrorStatus(c.Writer, http.StatusMethodNotAllowed, &apiError{ErrorBadData, fmt.Errorf("method %s not allowed", c.Request.Method)}, a.logger)
		a.metrics.Observe("other", http.StatusMethodNotAllowed, time.Since(start))
	})
	return e
}

// recovery turns a panic outside an endpoint (endpoints recover themselves) into a logged
// internal error instead of a dropped connection.
func (a *API) recovery(c *gin.Context) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way.
				panic(p)
			}
			a.logger.Error("panic serving Prometheus API request", "path", c.Request.URL.Path, "panic", p)
			if !c.Writer.Written() {
				writeError(c.Writer, &apiError{ErrorInternal, errors.New("internal server error")}, a.logger)
			}
			c.Abort()
		}
	}()
	c.Next()
}

// wrap turns an endpoint into a gin handler: parse the form, run, write, count.
func (a *API) wrap(endpoint string, h handlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		code := http.StatusInternalServerError
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // net/http compares it the same way.
					panic(p)
				}
				a.logger.Error("panic in Prometheus API endpoint", "endpoint", endpoint, "panic", p)
				if !c.Writer.Written() {
					writeError(c.Writer, &apiError{ErrorInternal, errors.New("internal server error")}, a.logger)
				}
				code = http.StatusInternalServerError
			}
			a.metrics.Observe(endpoint, code, time.Since(start))
		}()

		var res result
		if err := parseForm(c.Request); err != nil {
			res.err = badData(fmt.Errorf("error parsing form values: %w", err))
		} else {
			res = h(c)
		}
		if res.finalizer != nil {
			defer res.finalizer()
		}
		if res.err != nil {
			timeout, byParam := a.timeout(c.Request)
			if le := a.limitError(res.err, timeout, byParam); le != nil {
				a.limited.Inc(limits.APIPrometheus, le.Limit)
			}
			code = writeError(c.Writer, res.err, a.logger)
			if res.err.typ == ErrorInternal {
				a.logger.Error("Prometheus API request failed", "endpoint", endpoint, "err", res.err.err)
			}
			return
		}
		code = http.StatusOK
		a.writeSuccess(c.Writer, c.Request, res)
	}
}

// writeSuccess writes {"status":"success","data":…,"warnings":[…],"infos":[…]}.
func (a *API) writeSuccess(w http.ResponseWriter, r *http.Request, res result) {
	e := getEncoder(w, r)
	defer putEncoder(e)
	e.buf = append(e.buf, `{"status":"success","data":`...)
	a.appendData(e, res.data)
	if len(res.warnings) > 0 {
		warns, infos := annotationStrings(res.warnings, formValue(r, "query"))
		if len(warns) > 0 {
			e.buf = append(e.buf, `,"warnings":`...)
			e.buf = jsonappend.Strings(e.buf, warns, stringEscape)
		}
		if len(infos) > 0 {
			e.buf = append(e.buf, `,"infos":`...)
			e.buf = jsonappend.Strings(e.buf, infos, stringEscape)
		}
	}
	e.buf = append(e.buf, '}')
	e.flush(true)
	if e.err != nil {
		// The client went away mid-response; nothing to tell it, but worth a debug line.
		a.logger.Debug("error writing Prometheus API response", "path", r.URL.Path, "err", e.err)
	}
}

// maxAnnotations is how many warnings (and infos) a response lists, as in Prometheus; the
// rest are summarised in one line.
const maxAnnotations = 10

// annotationStrings splits annotations into warnings and infos. Annotations are a map, so
// each list is sorted to keep responses (and caches of them) stable.
func annotationStrings(annos annotations.Annotations, query string) (warns, infos []string) {
	warns, infos = annos.AsStrings(query, maxAnnotations, maxAnnotations)
	sortKeepingSummary := func(ss []string) {
		n := len(ss)
		if n > 0 && strings.HasSuffix(ss[n-1], "annotations omitted") {
			n--
		}
		slices.Sort(ss[:n])
	}
	sortKeepingSummary(warns)
	sortKeepingSummary(infos)
	return warns, infos
}

// writeError writes {"status":"error","errorType":…,"error":…} with the status code that
// goes with the type, and returns that code.
func writeError(w http.ResponseWriter, apiErr *apiError, logger *slog.Logger) int {
	code := apiErr.typ.StatusCode()
	writeErrorStatus(w, code, apiErr, logger)
	return code
}

func writeErrorStatus(w http.ResponseWriter, code int, apiErr *apiError, logger *slog.Logger) {
	e := getEncoder(w, nil)
	defer putEncoder(e)
	e.buf = append(e.buf, `{"status":"error","errorType":`...)
	e.buf = appendString(e.buf, string(apiErr.typ))
	e.buf = append(e.buf, `,"error":`...)
	e.buf = appendString(e.buf, apiErr.err.Error())
	e.buf = append(e.buf, '}')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Encoding")
	w.WriteHeader(code)
	if _, err := w.Write(e.buf); err != nil {
		logger.Debug("error writing Prometheus API error response", "err", err)
	}
}

// requestContext bounds a data-reading request by Config.Timeout, or by a shorter
// `timeout` parameter when allowParam is set. It stays tied to the request's context, so a
// client that goes away cancels the work.
//
// The context also carries the request's limits.Budget, which the storage adapters charge
// for the series and bytes they read.
func (a *API) requestContext(r *http.Request, allowParam bool) (context.Context, context.CancelFunc, *apiError) {
	timeout := a.cfg.Timeout
	if v := formValue(r, "timeout"); allowParam && v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, nil, invalidParam(err, "timeout")
		}
		if d <= 0 {
			return nil, nil, invalidParam(fmt.Errorf("timeout must be positive, got %s", d), "timeout")
		}
		timeout = min(timeout, d)
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	ctx = limits.WithBudget(ctx, limits.NewBudget(limits.BudgetLimits{
		MaxSeries: int64(a.cfg.Limits.MaxFetchedSeries), SeriesFlag: FlagMaxFetchedSeries,
		MaxBytes: a.cfg.Limits.MaxFetchedBytes, BytesFlag: FlagMaxFetchedBytes,
	}))
	return ctx, cancel, nil
}

// timeout returns the request's time limit, and whether its `timeout` parameter set it,
// for the error naming it.
func (a *API) timeout(r *http.Request) (time.Duration, bool) {
	if v := formValue(r, "timeout"); v != "" {
		if d, err := parseDuration(v); err == nil && d > 0 && d < a.cfg.Timeout {
			return d, true
		}
	}
	return a.cfg.Timeout, false
}

// WriteLimited answers a request refused by a concurrency limit: 429 with Retry-After and
// a Prometheus error body of type "unavailable", the type clients treat as "try again".
func WriteLimited(w http.ResponseWriter, err *limits.Error, logger *slog.Logger) {
	w.Header().Set("Retry-After", limits.RetryAfterSeconds(err.RetryAfter))
	writeErrorStatus(w, http.StatusTooManyRequests, &apiError{ErrorUnavailable, err}, logger)
}
