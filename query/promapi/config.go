package promapi

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// Config tunes the Prometheus HTTP API.
type Config struct {
	// Timeout bounds every request that reads data. A query's `timeout` parameter may
	// lower it, never raise it.
	Timeout time.Duration `yaml:"timeout"`

	// LookbackDelta is kept for display only: the engine owns the value it applies, and no
	// endpoint of this package shows it yet.
	LookbackDelta time.Duration `yaml:"lookback_delta"`

	// MaxSeriesLimit caps the results of /series, /labels and /label/:name/values (0 means
	// no cap). A request's `limit` may ask for fewer, never for more; a capped result
	// carries the same "results truncated due to limit" warning an explicit limit gives.
	MaxSeriesLimit int `yaml:"max_series_limit"`

	// Limits bound one request's reads. The query package sets them from its own flags
	// (-query.max-samples, -query.max-fetched-*); zero values are unbounded.
	Limits Limits `yaml:"-"`

	// Parser parses match[] selectors, /query_exemplars and /format_query. Give it the
	// engine's parser so both accept the same language (experimental functions and so on);
	// nil means the default parser.
	Parser parser.Parser `yaml:"-"`
}

// Limits bound what one request may read; zero values are unbounded.
type Limits struct {
	// MaxSamples is the engine's limit, named in its error (the engine enforces it).
	MaxSamples int
	// MaxFetchedSeries bounds the series a request's selectors fetch from storage, and the
	// results of /series, /labels and /label/<name>/values.
	MaxFetchedSeries int
	// MaxFetchedBytes bounds the bytes a request reads from storage or receives from
	// aggregators.
	MaxFetchedBytes int64
}

// The flags of the limits, named in errors. They belong to the query package, which
// composes this one.
const (
	FlagTimeout          = "-query.promapi.timeout"
	FlagMaxSamples       = "-query.max-samples"
	FlagMaxFetchedSeries = "-query.max-fetched-series-per-query"
	FlagMaxFetchedBytes  = "-query.max-fetched-chunk-bytes-per-query"
)

// Default values, also used by RegisterFlags.
const (
	DefaultTimeout       = 2 * time.Minute
	DefaultLookbackDelta = 5 * time.Minute
)

// RegisterFlags registers the options under -query.promapi.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Timeout, "query.promapi.timeout", DefaultTimeout, "Longest time a request of the Prometheus API may read data; a query's timeout parameter may only lower it.")
	f.DurationVar(&c.LookbackDelta, "query.promapi.lookback-delta", DefaultLookbackDelta, "Lookback delta reported by the Prometheus API (the query engine applies its own).")
	f.IntVar(&c.MaxSeriesLimit, "query.promapi.max-series-limit", 0, "Most results /series, /labels and /label/<name>/values return (0 = unlimited); larger results are truncated with a warning.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("query.promapi.timeout: must be positive, got %s", c.Timeout))
	}
	if c.LookbackDelta < 0 {
		errs = append(errs, fmt.Errorf("query.promapi.lookback_delta: must not be negative, got %s", c.LookbackDelta))
	}
	if c.MaxSeriesLimit < 0 {
		errs = append(errs, fmt.Errorf("query.promapi.max_series_limit: must not be negative, got %d", c.MaxSeriesLimit))
	}
	return errors.Join(errs...)
}
