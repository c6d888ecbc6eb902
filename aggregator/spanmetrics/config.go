package spanmetrics

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config tunes the generator: span metrics, the service graph, and how
// their series are written.
type Config struct {
	// Enabled turns the span metrics (calls and latency) on.
	Enabled bool `yaml:"enabled"`
	// FlushInterval is how often the series are written.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxSeries caps the span metrics' label combinations (service, span
	// name, kind, status, tenant). Each makes a calls counter and a
	// latency histogram; spans of combinations beyond it are counted in
	// one overflow combination labelled metric_overflow="true".
	MaxSeries int `yaml:"max_series"`
	// StaleAfter drops the series of a combination (or edge) not seen
	// for that long, writing staleness markers for them.
	StaleAfter time.Duration `yaml:"stale_after"`
	// ServiceGraph configures the service graph.
	ServiceGraph ServiceGraphConfig `yaml:"service_graph"`
}

// ServiceGraphConfig tunes the service graph.
type ServiceGraphConfig struct {
	// Enabled turns the service graph on.
	Enabled bool `yaml:"enabled"`
	// Wait is how long half an edge (a client span without its server
	// span, or the reverse) waits for its other half.
	Wait time.Duration `yaml:"wait"`
	// MaxPendingEdges caps the half edges waiting; spans that would open
	// more are not paired (counted as dropped).
	MaxPendingEdges int `yaml:"max_pending_edges"`
	// MaxSeries caps the edges (client, server, connection type,
	// tenant); edges beyond it are counted in one overflow edge labelled
	// metric_overflow="true".
	MaxSeries int `yaml:"max_series"`
}

// RegisterFlags registers the options under -aggregator.spanmetrics.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.BoolVar(&c.Enabled, "aggregator.spanmetrics.enabled", true, "Compute span metrics (traces_spanmetrics_calls_total, traces_spanmetrics_latency) from the spans this aggregator stores.")
	f.DurationVar(&c.FlushInterval, "aggregator.spanmetrics.flush-interval", 15*time.Second, "How often span metrics and service-graph series are written.")
	f.IntVar(&c.MaxSeries, "aggregator.spanmetrics.max-series", 10000, "Most span-metrics label combinations (service, span name, kind, status) kept; spans beyond go to one series labelled metric_overflow=\"true\".")
	f.DurationVar(&c.StaleAfter, "aggregator.spanmetrics.stale-after", 5*time.Minute, "Span-metrics and service-graph series not updated for this long are dropped (and marked stale).")
	f.BoolVar(&c.ServiceGraph.Enabled, "aggregator.spanmetrics.service-graph.enabled", true, "Compute the service graph (traces_service_graph_*) from client/server and producer/consumer span pairs.")
	f.DurationVar(&c.ServiceGraph.Wait, "aggregator.spanmetrics.service-graph.wait", 10*time.Second, "How long half an edge (client span without its server span, or the reverse) waits for its other half.")
	f.IntVar(&c.ServiceGraph.MaxPendingEdges, "aggregator.spanmetrics.service-graph.max-pending-edges", 10000, "Most half edges waiting for their other half; spans beyond are not paired.")
	f.IntVar(&c.ServiceGraph.MaxSeries, "aggregator.spanmetrics.service-graph.max-series", 10000, "Most service-graph edges (client, server) kept; edges beyond go to one series labelled metric_overflow=\"true\".")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.FlushInterval < time.Second {
		errs = append(errs, fmt.Errorf("aggregator.spanmetrics.flush_interval: must be at least 1s, got %s", c.FlushInterval))
	}
	if c.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("aggregator.spanmetrics.max_series: must be at least 1, got %d", c.MaxSeries))
	}
	if c.StaleAfter < c.FlushInterval {
		errs = append(errs, fmt.Errorf("aggregator.spanmetrics.stale_after: must be at least the flush interval (%s), got %s", c.FlushInterval, c.StaleAfter))
	}
	if c.ServiceGraph.Wait <= 0 {
		errs = append(errs, fmt.Errorf("aggregator.spanmetrics.service_graph.wait: must be positive, got %s", c.ServiceGraph.Wait))
	}
	if c.ServiceGraph.MaxPendingEdges < 1 {
		errs = append(errs, fmt.Errorf("aggregator.spanmetrics.service_graph.max_pending_edges: must be at least 1, got %d", c.ServiceGraph.MaxPendingEdges))
	}
	if c.ServiceGraph.MaxSeries < 1 {
		errs = append(errs, fmt.Errorf("aggregator.spanmetrics.service_graph.max_series: must be at least 1, got %d", c.ServiceGraph.MaxSeries))
	}
	return errors.Join(errs...)
}
