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

	"github.com/pharos-obs/pharos/query/promapi"
)

// Config holds the query options.
type Config struct {
	PromAPI       promapi.Config         `yaml:"promapi"`
	MaxSamples    int                    `yaml:"max_samples"`
	LookbackDelta time.Duration          `yaml:"lookback_delta"`
	MaxConcurrent int                    `yaml:"max_concurrent"`
	Aggregators   flagext.StringSliceCSV `yaml:"aggregator_addresses"`
	ReadTimeout   time.Duration          `yaml:"read_timeout"`
	// PartialResponse answers with what the reachable aggregators hold, and
	// a warning naming what is missing, when some are down.
	PartialResponse bool `yaml:"partial_response"`
}

// RegisterFlags registers the options under -query.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.PromAPI.RegisterFlags(f)
	f.IntVar(&c.MaxSamples, "query.max-samples", 50_000_000, "Most samples one query may hold in memory.")
	f.DurationVar(&c.LookbackDelta, "query.lookback-delta", promapi.DefaultLookbackDelta, "How far back PromQL looks for the latest sample of a series.")
	f.IntVar(&c.MaxConcurrent, "query.max-concurrent", 20, "Queries evaluated at once; more wait.")
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
	if c.ReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("query.read_timeout: must be positive, got %s", c.ReadTimeout))
	}
	return errors.Join(errs...)
}

// Source is what the query path reads: samples and series, and optionally
// exemplars and metadata (nil when the source has none).
type Source struct {
	Queryable storage.Queryable
	Exemplars storage.ExemplarQueryable
	Metadata  promapi.MetadataSource
}

// API serves the read APIs.
type API struct {
	prom   *promapi.API
	engine *promql.Engine
	slots  chan struct{}
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
	prom, err := promapi.New(cfg.PromAPI, src.Queryable, src.Exemplars, engine, src.Metadata, build, logger, reg)
	if err != nil {
		return nil, err
	}
	return &API{prom: prom, engine: engine, slots: make(chan struct{}, cfg.MaxConcurrent)}, nil
}

// PrometheusHandler serves the Prometheus API under /api/v1/. At most
// MaxConcurrent requests run at once; the rest wait for a slot or for their
// client to give up, so a burst of heavy queries cannot exhaust memory.
func (a *API) PrometheusHandler() http.Handler {
	h := a.prom.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case a.slots <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		defer func() { <-a.slots }()
		h.ServeHTTP(w, r)
	})
}
