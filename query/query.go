// Package query is the stateless read path: a PromQL engine over a
// storage.Queryable (local storage in the all-in-one, the aggregators'
// internal read API otherwise) behind Prometheus-compatible HTTP APIs.
package query

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/grafana/dskit/flagext"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/query/promapi"
)

// Config holds the query options.
type Config struct {
	PromAPI       promapi.Config `yaml:"promapi"`
	MaxSamples    int            `yaml:"max_samples"`
	LookbackDelta time.Duration  `yaml:"lookback_delta"`
	MaxConcurrent int            `yaml:"max_concurrent"`
	// MaxQueueWait is how long a request waits for one of the MaxConcurrent slots before
	// it is refused with 429 and Retry-After (0: DefaultMaxQueueWait).
	MaxQueueWait time.Duration `yaml:"max_queue_wait"`
	// MaxFetchedSeries and MaxFetchedBytes bound what one request reads (0: unbounded),
	// as Mimir's -querier.max-fetched-series-per-query and
	// -querier.max-fetched-chunk-bytes-per-query do.
	MaxFetchedSeries int                    `yaml:"max_fetched_series_per_query"`
	MaxFetchedBytes  int64                  `yaml:"max_fetched_chunk_bytes_per_query"`
	Aggregators      flagext.StringSliceCSV `yaml:"aggregator_addresses"`
	ReadTimeout      time.Duration          `yaml:"read_timeout"`
	// PartialResponse answers with what the reachable aggregators hold, and
	// a warning naming what is missing, when some are down.
	PartialResponse bool `yaml:"partial_response"`
}

// RegisterFlags registers the options under -query.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.PromAPI.RegisterFlags(f)
	f.IntVar(&c.MaxSamples, "query.max-samples", 50_000_000, "Most samples one query may hold in memory.")
	f.DurationVar(&c.LookbackDelta, "query.lookback-delta", promapi.DefaultLookbackDelta, "How far back PromQL looks for the latest sample of a series.")
	f.IntVar(&c.MaxConcurrent, "query.max-concurrent", 20, "Requests of the Prometheus API served at once; more wait up to -query.max-queue-wait, then get 429.")
	f.DurationVar(&c.MaxQueueWait, "query.max-queue-wait", DefaultMaxQueueWait, "Longest time a Prometheus API request waits for a free slot (-query.max-concurrent) before it is refused with 429 and Retry-After.")
	f.IntVar(&c.MaxFetchedSeries, "query.max-fetched-series-per-query", 0, "Most series one Prometheus API request may fetch from storage (summed over its selectors), and the most results of /series and label look-ups; 0 is unbounded. Past it the request fails with 422.")
	f.Int64Var(&c.MaxFetchedBytes, "query.max-fetched-chunk-bytes-per-query", 0, "Most bytes one Prometheus API request may read: response bytes received from aggregators, or 16 bytes per sample read from the local TSDB (an estimate); 0 is unbounded. Past it the request fails with 422.")
	f.Var(&c.Aggregators, "query.aggregator.addresses", "Comma-separated host:port HTTP addresses of the aggregators a split query role reads from, instead of finding them in the ring (the all-in-one reads its local storage).")
	f.BoolVar(&c.PartialResponse, "query.partial-response", true, "When aggregators that hold data for a query are down, answer with the rest and a warning naming what is missing; false fails the query instead.")
	f.DurationVar(&c.ReadTimeout, "query.read-timeout", time.Minute, "Timeout of one read from one aggregator.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	errs := []error{c.PromAPI.Validate()}
	if c.MaxSamples < 1 {
		errs = append(errs, fmt.Errorf("query.max_samples: must be positive, got %d", c.MaxSamples))
	}
	if c.LookbackDelta <= 0 {
		errs = append(errs, fmt.Errorf("query.lookback_delta: must be positive, got %s", c.LookbackDelta))
	}
	if c.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("query.max_concurrent: must be positive, got %d", c.MaxConcurrent))
	}
	if c.MaxQueueWait < 0 {
		errs = append(errs, fmt.Errorf("query.max_queue_wait: must not be negative, got %s", c.MaxQueueWait))
	}
	if c.MaxFetchedSeries < 0 {
		errs = append(errs, fmt.Errorf("query.max_fetched_series_per_query: must not be negative, got %d", c.MaxFetchedSeries))
	}
	if c.MaxFetchedBytes < 0 {
		errs = append(errs, fmt.Errorf("query.max_fetched_chunk_bytes_per_query: must not be negative, got %d", c.MaxFetchedBytes))
	}
	if c.ReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("query.read_timeout: must be positive, got %s", c.ReadTimeout))
	}
	return errors.Join(errs...)
}

// DefaultMaxQueueWait is how long a query waits for a slot by default, in every API.
const DefaultMaxQueueWait = 30 * time.Second

// Source is what the query path reads: samples and series, and optionally
// exemplars and metadata (nil when the source has none).
type Source struct {
	Queryable storage.Queryable
	Exemplars storage.ExemplarQueryable
	Metadata  promapi.MetadataSource
	// CountSamples, for a local TSDB, charges the samples a query reads against
	// -query.max-fetched-chunk-bytes-per-query (storage/metrics.CountSamples). The
	// fan-out counts the bytes it receives instead and leaves it nil.
	CountSamples limits.SampleCounter
}

// API serves the read APIs.
type API struct {
	prom    *promapi.API
	engine  *promql.Engine
	gate    *limits.Gate
	limited *limits.Metrics
	logger  *slog.Logger
}

// New builds the PromQL engine and the HTTP APIs over src.
func New(cfg Config, src Source, build promapi.BuildInfo, logger *slog.Logger, reg prometheus.Registerer) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// gin's debug mode prints its route table to stdout, which would break
	// the one-JSON-event-per-line log contract. The mode is a gin global.
	gin.SetMode(gin.ReleaseMode)
	engine := promql.NewEngine(promql.EngineOpts{
		Logger:                   logger.With("component", "promql"),
		Reg:                      reg,
		MaxSamples:               cfg.MaxSamples,
		Timeout:                  cfg.PromAPI.Timeout,
		LookbackDelta:            cfg.LookbackDelta,
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		EnablePerStepStats:       true,
		EnableDelayedNameRemoval: true,
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
		ActiveQueryTracker:       nil,
		Parser:                   parser.NewParser(parser.Options{}),
	})
	cfg.PromAPI.LookbackDelta = cfg.LookbackDelta
	cfg.PromAPI.Limits = promapi.Limits{MaxSamples: cfg.MaxSamples, MaxFetchedSeries: cfg.MaxFetchedSeries, MaxFetchedBytes: cfg.MaxFetchedBytes}
	queryable := src.Queryable
	if cfg.MaxFetchedSeries > 0 || cfg.MaxFetchedBytes > 0 {
		queryable = limits.Queryable(queryable, src.CountSamples)
	}
	prom, err := promapi.New(cfg.PromAPI, queryable, src.Exemplars, engine, src.Metadata, build, logger, reg)
	if err != nil {
		return nil, err
	}
	lm, err := limits.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if cfg.MaxQueueWait == 0 {
		cfg.MaxQueueWait = DefaultMaxQueueWait
	}
	return &API{
		prom: prom, engine: engine, limited: lm, logger: logger,
		gate: limits.NewGate(cfg.MaxConcurrent, cfg.MaxQueueWait, "-query.max-concurrent", "-query.max-queue-wait"),
	}, nil
}

// PrometheusHandler serves the Prometheus API under /api/v1/. At most
// MaxConcurrent requests run at once, so a burst of heavy queries cannot
// exhaust memory; the rest wait for a slot up to MaxQueueWait, then get 429
// with Retry-After, or stop when their client gives up.
//
// Every request is scoped to its tenant (WithTenant).
func (a *API) PrometheusHandler() http.Handler {
	h := a.prom.Handler()
	return WithTenant(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		release, err := a.gate.Acquire(r.Context())
		if err != nil {
			if le := a.limited.Observe(limits.APIPrometheus, err); le != nil {
				promapi.WriteLimited(w, le, a.logger)
			}
			return
		}
		defer release()
		h.ServeHTTP(w, r)
	}))
}
