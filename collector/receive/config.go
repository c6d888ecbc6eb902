package receive

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config bounds what one push request may cost the agent: its size on the
// wire and decompressed, how many are handled at once, and how long a
// sender may take to deliver a body.
type Config struct {
	// MaxRequestBytes caps a request body as sent (compressed, or plain
	// when the sender did not compress it).
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MaxDecompressedBytes caps a body after decompression; a body that
	// declares or inflates to more is refused (413) before it is held in
	// memory. It is also the gRPC receive message limit.
	MaxDecompressedBytes int `yaml:"max_decompressed_bytes"`
	// MaxInflightRequests bounds the push requests (remote write and
	// OTLP, HTTP and gRPC together) handled at once; the next one is
	// refused at once with 429 / RESOURCE_EXHAUSTED, before its body is
	// read. Worst-case memory is about MaxInflightRequests ×
	// (MaxRequestBytes + MaxDecompressedBytes) plus the decoded samples.
	MaxInflightRequests int `yaml:"max_inflight_requests"`
	// RetryAfter is the delay suggested to refused senders (Retry-After
	// header, gRPC RetryInfo).
	RetryAfter time.Duration `yaml:"retry_after"`
	// BodyReadTimeout bounds the time to receive a request body once the
	// request holds an in-flight slot, so slow senders cannot hold slots.
	BodyReadTimeout time.Duration `yaml:"body_read_timeout"`
	// Logs holds the rules for pushed log entries.
	Logs LogsConfig `yaml:"logs"`
	// Traces holds the rules for pushed spans.
	Traces TracesConfig `yaml:"traces"`
}

// RegisterFlags registers the options under -agent.receive.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxRequestBytes, "agent.receive.max-request-bytes", 10<<20, "Largest push request body accepted as sent (compressed, or plain); larger ones get 413.")
	f.IntVar(&c.MaxDecompressedBytes, "agent.receive.max-decompressed-bytes", 64<<20, "Largest push request body accepted after decompression (also the gRPC message limit); larger ones get 413 without being held in memory.")
	f.IntVar(&c.MaxInflightRequests, "agent.receive.max-inflight-requests", 32, "Push requests (remote write and OTLP, HTTP and gRPC) handled at once; more are refused at once with 429 / RESOURCE_EXHAUSTED.")
	f.DurationVar(&c.RetryAfter, "agent.receive.retry-after", 2*time.Second, "Delay suggested to senders refused for overload (Retry-After, gRPC RetryInfo).")
	f.DurationVar(&c.BodyReadTimeout, "agent.receive.body-read-timeout", 30*time.Second, "Longest time to receive a push request body once admitted; 0 means no limit.")
	c.Logs.RegisterFlags(f)
	c.Traces.RegisterFlags(f)
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxRequestBytes < 1024 || c.MaxRequestBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("agent.receive.max_request_bytes: must be between 1024 and %d, got %d", 1<<30, c.MaxRequestBytes))
	}
	if c.MaxDecompressedBytes < 1024 || c.MaxDecompressedBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("agent.receive.max_decompressed_bytes: must be between 1024 and %d, got %d", 1<<30, c.MaxDecompressedBytes))
	}
	if c.MaxInflightRequests < 1 {
		errs = append(errs, fmt.Errorf("agent.receive.max_inflight_requests: must be at least 1, got %d", c.MaxInflightRequests))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("agent.receive.retry_after: must not be negative, got %s", c.RetryAfter))
	}
	if c.BodyReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("agent.receive.body_read_timeout: must not be negative, got %s", c.BodyReadTimeout))
	}
	errs = append(errs, c.Logs.Validate(), c.Traces.Validate())
	return errors.Join(errs...)
}

// Limits are the rules every pushed series and sample must pass. A zero
// limit turns its rule off.
type Limits struct {
	MaxLabelNamesPerSeries int           `yaml:"max_label_names_per_series"`
	MaxLabelNameLength     int           `yaml:"max_label_name_length"`
	MaxLabelValueLength    int           `yaml:"max_label_value_length"`
	MaxSampleAge           time.Duration `yaml:"max_sample_age"`
	MaxFutureSkew          time.Duration `yaml:"max_future_skew"`
}

// RegisterFlags registers the options under -agent.limits.
func (l *Limits) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&l.MaxLabelNamesPerSeries, "agent.limits.max-label-names-per-series", 30, "Most label names (the metric name included) a pushed series may have; 0 disables the check.")
	f.IntVar(&l.MaxLabelNameLength, "agent.limits.max-label-name-length", 1024, "Longest label name of a pushed series, in bytes; 0 disables the check.")
	f.IntVar(&l.MaxLabelValueLength, "agent.limits.max-label-value-length", 2048, "Longest label value of a pushed series, in bytes; 0 disables the check.")
	// An hour leaves another hour of the aggregators' 2h out-of-order
	// window (storage.metrics.out-of-order-window) for queueing, spooling
	// and redelivery, so a sample accepted here is not refused there.
	f.DurationVar(&l.MaxSampleAge, "agent.limits.max-sample-age", time.Hour, "Oldest pushed sample accepted, relative to now; keep it well inside the aggregators' out-of-order window; 0 disables the check.")
	f.DurationVar(&l.MaxFutureSkew, "agent.limits.max-future-skew", 10*time.Minute, "How far ahead of now a pushed sample's timestamp may be; 0 disables the check.")
}

// Validate reports every invalid field.
func (l *Limits) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"max_label_names_per_series", l.MaxLabelNamesPerSeries},
		{"max_label_name_length", l.MaxLabelNameLength},
		{"max_label_value_length", l.MaxLabelValueLength},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("agent.limits.%s: must not be negative (0 disables it), got %d", f.name, f.v))
		}
	}
	if l.MaxSampleAge < 0 {
		errs = append(errs, fmt.Errorf("agent.limits.max_sample_age: must not be negative (0 disables it), got %s", l.MaxSampleAge))
	}
	if l.MaxFutureSkew < 0 {
		errs = append(errs, fmt.Errorf("agent.limits.max_future_skew: must not be negative (0 disables it), got %s", l.MaxFutureSkew))
	}
	return errors.Join(errs...)
}
