// Package overrides holds the per-tenant ingestion limits: defaults that
// apply to every tenant, overridden per tenant by a file that is reloaded
// at run time (what Mimir and Loki call runtime-config overrides), the
// token buckets that enforce ingestion rates, and the sets that count a
// tenant's active series and streams.
//
// Where each limit is enforced (see docs/limits.md):
//   - the agent, on pushed data, answers the sender: rates (429 with
//     Retry-After, or 400 for a request larger than the burst, which can
//     never pass), label limits (400), active series (400, as Mimir) and
//     active log streams (429, as Loki), each over what this agent sees;
//   - the aggregator, which sees every agent's data of the partitions it
//     owns, enforces active series and log streams over its share of the
//     tenant's limit, and the span-metric series; what it refuses was
//     already acknowledged to the sender, so it is dropped and counted.
package overrides

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Limits are one tenant's ingestion limits. Zero turns a limit off.
type Limits struct {
	// IngestionRate is the pushed samples (float and histogram) per
	// second a tenant may send to one agent; IngestionBurstSize the most
	// at once (and in one request).
	IngestionRate      float64 `yaml:"ingestion_rate"`
	IngestionBurstSize int     `yaml:"ingestion_burst_size"`
	// MaxSeries is the tenant's active series: at an agent, the pushed
	// series seen within the active window; at the aggregators, the
	// series in the TSDB head, each aggregator holding its share.
	MaxSeries              int `yaml:"max_series"`
	MaxLabelNamesPerSeries int `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int `yaml:"max_label_name_length"`
	MaxLabelValueLength    int `yaml:"max_label_value_length"`

	// LogsIngestionRateBytes is the pushed log bytes (lines and
	// structured metadata) per second a tenant may send to one agent.
	LogsIngestionRateBytes  float64 `yaml:"logs_ingestion_rate_bytes"`
	LogsIngestionBurstBytes int     `yaml:"logs_ingestion_burst_bytes"`
	// MaxStreams is the tenant's active log streams (label sets).
	MaxStreams             int `yaml:"max_streams"`
	MaxLabelNamesPerStream int `yaml:"max_label_names_per_stream"`

	// TracesIngestionRateBytes is the pushed span bytes (OTLP protobuf
	// size) per second a tenant may send to one agent.
	TracesIngestionRateBytes  float64 `yaml:"traces_ingestion_rate_bytes"`
	TracesIngestionBurstBytes int     `yaml:"traces_ingestion_burst_bytes"`
	// MaxSpanMetricsSeries bounds the series the span-metrics generator
	// keeps for the tenant (the combinations of service, span name, kind,
	// status and the configured dimensions); spans beyond it are counted
	// in one overflow series per metric, as the OpenTelemetry Collector's
	// spanmetrics connector does.
	MaxSpanMetricsSeries int `yaml:"max_span_metrics_series"`
}

// The names of the limits, as errors and the limit label of the
// pharos_*_tenant_limited_total counters give them.
const (
	LimitIngestionRate          = "ingestion_rate"
	LimitMaxSeries              = "max_series"
	LimitLogsIngestionRate      = "logs_ingestion_rate_bytes"
	LimitMaxStreams             = "max_streams"
	LimitTracesIngestionRate    = "traces_ingestion_rate_bytes"
	LimitMaxSpanMetricsSeries   = "max_span_metrics_series"
	LimitMaxLabelNamesPerSeries = "max_label_names_per_series"
	LimitMaxLabelNameLength     = "max_label_name_length"
	LimitMaxLabelValueLength    = "max_label_value_length"
	LimitMaxLabelNamesPerStream = "max_label_names_per_stream"
)

// Validate reports every invalid field, each named with prefix (the
// path of the Limits in the configuration).
func (l *Limits) Validate(prefix string) error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{
		{LimitIngestionRate, l.IngestionRate},
		{"ingestion_burst_size", float64(l.IngestionBurstSize)},
		{LimitMaxSeries, float64(l.MaxSeries)},
		{LimitMaxLabelNamesPerSeries, float64(l.MaxLabelNamesPerSeries)},
		{LimitMaxLabelNameLength, float64(l.MaxLabelNameLength)},
		{LimitMaxLabelValueLength, float64(l.MaxLabelValueLength)},
		{LimitLogsIngestionRate, l.LogsIngestionRateBytes},
		{"logs_ingestion_burst_bytes", float64(l.LogsIngestionBurstBytes)},
		{LimitMaxStreams, float64(l.MaxStreams)},
		{LimitMaxLabelNamesPerStream, float64(l.MaxLabelNamesPerStream)},
		{LimitTracesIngestionRate, l.TracesIngestionRateBytes},
		{"traces_ingestion_burst_bytes", float64(l.TracesIngestionBurstBytes)},
		{LimitMaxSpanMetricsSeries, float64(l.MaxSpanMetricsSeries)},
	} {
		if f.v < 0 || f.v != f.v {
			errs = append(errs, fmt.Errorf("%s%s: must not be negative (0 disables it), got %v", prefix, f.name, f.v))
		}
	}
	for _, r := range []struct {
		rate, burst string
		r           float64
		b           int
	}{
		{LimitIngestionRate, "ingestion_burst_size", l.IngestionRate, l.IngestionBurstSize},
		{LimitLogsIngestionRate, "logs_ingestion_burst_bytes", l.LogsIngestionRateBytes, l.LogsIngestionBurstBytes},
		{LimitTracesIngestionRate, "traces_ingestion_burst_bytes", l.TracesIngestionRateBytes, l.TracesIngestionBurstBytes},
	} {
		if r.r > 0 && r.b <= 0 {
			errs = append(errs, fmt.Errorf("%s%s: must be positive when %s is set (the most a tenant may send at once)", prefix, r.burst, r.rate))
		}
	}
	return errors.Join(errs...)
}

// Config is the configuration section `limits`: the defaults of the
// limits that have no older home (the label limits keep theirs, under
// agent.limits and agent.receive.logs), the overrides file, and the
// active window of the agents' series and stream counts.
type Config struct {
	IngestionRate             float64       `yaml:"ingestion_rate"`
	IngestionBurstSize        int           `yaml:"ingestion_burst_size"`
	MaxSeries                 int           `yaml:"max_series"`
	LogsIngestionRateBytes    float64       `yaml:"logs_ingestion_rate_bytes"`
	LogsIngestionBurstBytes   int           `yaml:"logs_ingestion_burst_bytes"`
	MaxStreams                int           `yaml:"max_streams"`
	TracesIngestionRateBytes  float64       `yaml:"traces_ingestion_rate_bytes"`
	TracesIngestionBurstBytes int           `yaml:"traces_ingestion_burst_bytes"`
	MaxSpanMetricsSeries      int           `yaml:"max_span_metrics_series"`
	OverridesFile             string        `yaml:"overrides_file"`
	ActiveWindow              time.Duration `yaml:"active_window"`
}

// RegisterFlags registers the options under -limits.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Float64Var(&c.IngestionRate, "limits.ingestion-rate", 0, "Default per-tenant rate of pushed samples per second, at each agent (429 beyond it); 0 is unlimited.")
	f.IntVar(&c.IngestionBurstSize, "limits.ingestion-burst-size", 0, "Default per-tenant burst of pushed samples, at each agent; a larger request gets 400. Required with -limits.ingestion-rate.")
	f.IntVar(&c.MaxSeries, "limits.max-series", 0, "Default per-tenant active series: at each agent (pushed series seen within -limits.active-window; 400 beyond), and over the aggregators (series in the TSDB head, each aggregator its share; beyond is dropped and counted). 0 is unlimited.")
	f.Float64Var(&c.LogsIngestionRateBytes, "limits.logs-ingestion-rate-bytes", 0, "Default per-tenant rate of pushed log bytes per second, at each agent (429 beyond it); 0 is unlimited.")
	f.IntVar(&c.LogsIngestionBurstBytes, "limits.logs-ingestion-burst-bytes", 0, "Default per-tenant burst of pushed log bytes, at each agent. Required with -limits.logs-ingestion-rate-bytes.")
	f.IntVar(&c.MaxStreams, "limits.max-streams", 0, "Default per-tenant active log streams, at each agent (429 beyond) and over the aggregators (their share; beyond is dropped and counted). 0 is unlimited.")
	f.Float64Var(&c.TracesIngestionRateBytes, "limits.traces-ingestion-rate-bytes", 0, "Default per-tenant rate of pushed span bytes per second, at each agent (429 beyond it); 0 is unlimited.")
	f.IntVar(&c.TracesIngestionBurstBytes, "limits.traces-ingestion-burst-bytes", 0, "Default per-tenant burst of pushed span bytes, at each agent. Required with -limits.traces-ingestion-rate-bytes.")
	f.IntVar(&c.MaxSpanMetricsSeries, "limits.max-span-metrics-series", 0, "Default per-tenant series of the span-metrics generator; spans beyond go to one overflow series per metric. 0 is unlimited.")
	f.StringVar(&c.OverridesFile, "limits.overrides-file", "", "YAML file of per-tenant limits (overrides: {<tenant>: {<limit>: <value>}}); a tenant's unset limits are the defaults. Reloaded on SIGHUP and POST /-/reload.")
	f.DurationVar(&c.ActiveWindow, "limits.active-window", time.Hour, "How long a series or log stream an agent has not seen stays counted among a tenant's active ones.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	l := c.defaults(Limits{})
	errs := []error{l.Validate("limits.")}
	if c.ActiveWindow < time.Minute {
		errs = append(errs, fmt.Errorf("limits.active_window: must be at least 1m, got %s", c.ActiveWindow))
	}
	return errors.Join(errs...)
}

// defaults returns labels (which carries the label limits) with the
// section's limits set.
func (c *Config) defaults(labels Limits) Limits {
	l := labels
	l.IngestionRate, l.IngestionBurstSize, l.MaxSeries = c.IngestionRate, c.IngestionBurstSize, c.MaxSeries
	l.LogsIngestionRateBytes, l.LogsIngestionBurstBytes, l.MaxStreams = c.LogsIngestionRateBytes, c.LogsIngestionBurstBytes, c.MaxStreams
	l.TracesIngestionRateBytes, l.TracesIngestionBurstBytes = c.TracesIngestionRateBytes, c.TracesIngestionBurstBytes
	l.MaxSpanMetricsSeries = c.MaxSpanMetricsSeries
	return l
}
