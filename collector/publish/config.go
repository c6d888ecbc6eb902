// Package publish batches what the agent collects, partitions it, encodes it
// and publishes it to the bus, waiting for the bus to acknowledge each batch.
// Batches the bus does not take wait in a disk spool (collector/spool) and
// are replayed in order once it does, after a restart too.
package publish

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// Config tunes batching and publishing.
type Config struct {
	MaxBatchSamples int           `yaml:"max_batch_samples"`
	FlushInterval   time.Duration `yaml:"flush_interval"`
	Compression     string        `yaml:"compression"`
	Concurrency     int           `yaml:"concurrency"`
	QueueSize       int           `yaml:"queue_size"`
	DrainTimeout    time.Duration `yaml:"drain_timeout"`
	// HandoffMaxBytes bounds the in-process hand-off of metrics batches to
	// an aggregator in the same process (bus.Handoff); 0 turns it off.
	HandoffMaxBytes int `yaml:"handoff_max_bytes"`
	// TracesBatchWait is how long pushed spans wait in the spool for
	// others to be published with (see Traces).
	TracesBatchWait time.Duration `yaml:"traces_batch_wait"`
}

// RegisterFlags registers the options under -agent.publish.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.IntVar(&c.MaxBatchSamples, "agent.publish.max-batch-samples", 5000, "Samples per partition batch before it is flushed.")
	f.DurationVar(&c.FlushInterval, "agent.publish.flush-interval", 5*time.Second, "Longest time a partial batch waits before it is flushed. Each batch costs a JetStream write, fsync and ack, so fewer, larger batches cost less CPU per sample; data becomes queryable up to this much later (as with remote write's batch_send_deadline).")
	f.StringVar(&c.Compression, "agent.publish.compression", "snappy", "Batch compression: snappy or zstd.")
	f.IntVar(&c.Concurrency, "agent.publish.concurrency", 4, "Batches published at once (each waits for its JetStream PubAck), also when replaying the spool.")
	f.IntVar(&c.QueueSize, "agent.publish.queue-size", 64, "Encoded batches waiting to be published; when full, appends block (backpressure to scrapes and receivers).")
	f.DurationVar(&c.DrainTimeout, "agent.publish.drain-timeout", 5*time.Second, "On shutdown, how long to keep publishing what is queued; what is left then goes to the spool for the next start.")
	f.DurationVar(&c.TracesBatchWait, "agent.publish.traces-batch-wait", time.Second, "How long pushed spans, once spooled (and acknowledged to the sender), wait for other pushes to be published with: one message per partition carries every push of the wait, instead of one per push, and each message costs JetStream a write, an fsync and an ack. A batch goes sooner once it holds 8 MiB. Spans become queryable up to this much later.")
	f.IntVar(&c.HandoffMaxBytes, "agent.publish.handoff-max-bytes", 64<<20, "When the agent and an aggregator run in one process: bytes of metrics batches handed to the aggregator in memory besides publishing them, so that it need not decode what this process just encoded (the batches still go through JetStream). 0 turns the hand-off off.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxBatchSamples < 1 || c.MaxBatchSamples > 1_000_000 {
		errs = append(errs, fmt.Errorf("agent.publish.max_batch_samples: must be between 1 and 1000000, got %d", c.MaxBatchSamples))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("agent.publish.flush_interval: must be positive, got %s", c.FlushInterval))
	}
	if _, err := codec.ParseCompression(c.Compression); err != nil {
		errs = append(errs, fmt.Errorf("agent.publish.compression: %w", err))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("agent.publish.concurrency: must be between 1 and 256, got %d", c.Concurrency))
	}
	if c.QueueSize < 1 {
		errs = append(errs, fmt.Errorf("agent.publish.queue_size: must be at least 1, got %d", c.QueueSize))
	}
	if c.HandoffMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("agent.publish.handoff_max_bytes: must not be negative, got %d", c.HandoffMaxBytes))
	}
	if c.TracesBatchWait <= 0 || c.TracesBatchWait > time.Minute {
		errs = append(errs, fmt.Errorf("agent.publish.traces_batch_wait: must be positive and at most 1m, got %s", c.TracesBatchWait))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("agent.publish.drain_timeout: must not be negative, got %s", c.DrainTimeout))
	}
	return errors.Join(errs...)
}
