package vtraces

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Config holds the trace store options Pharos exposes.
type Config struct {
	// Path is the store's directory. The caller sets it (under -data.dir);
	// it is neither a flag nor a YAML field.
	Path string `yaml:"-"`
	// Retention is how long spans are kept. VictoriaLogs stores one
	// partition per UTC day and drops whole days, so a span may stay up to
	// a day longer.
	Retention time.Duration `yaml:"retention"`
	// FutureRetention is how far ahead of the clock a span's start may be;
	// later spans are rejected (and counted).
	FutureRetention time.Duration `yaml:"future_retention"`
	// MaxBackfillAge is how far behind the clock a span's start may be; 0
	// means Retention. Older spans are rejected (and counted).
	MaxBackfillAge time.Duration `yaml:"max_backfill_age"`
	// FlushInterval is how often VictoriaLogs writes in-memory parts to
	// files on its own; it bounds how long WaitDurable waits when it cannot
	// prove durability sooner.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// DurableBatchInterval is the least time between two forced flushes
	// started by WaitDurable. Callers within it share one flush: each flush
	// writes a new small part, so a shorter interval means more parts for
	// VictoriaLogs to merge.
	DurableBatchInterval time.Duration `yaml:"durable_batch_interval"`
	// MaxDiskSpaceUsageBytes, when positive, makes VictoriaLogs drop the
	// oldest days once the store is larger (the last two days are kept).
	MaxDiskSpaceUsageBytes int64 `yaml:"max_disk_space_usage_bytes"`
	// MinFreeDiskSpaceBytes is the free space below which the store turns
	// read-only and Append fails with ErrReadOnly.
	MinFreeDiskSpaceBytes int64 `yaml:"min_free_disk_space_bytes"`
	// MaxAttributeFields is how many distinct attribute names (resource
	// and span together) a service's spans of one day may have as
	// searchable fields; the attributes beyond are kept with their span
	// but not searchable. VictoriaLogs drops rows from a block whose rows
	// have more than 2000 distinct field names between them, and a block
	// holds one service's spans of one day.
	MaxAttributeFields int `yaml:"max_attribute_fields"`
}

// DefaultConfig returns a Config holding every flag default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// RegisterFlags registers the options under -storage.traces.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Retention, "storage.traces.retention", 7*24*time.Hour, "How long spans are kept (whole UTC days; at least 24h).")
	f.DurationVar(&c.FutureRetention, "storage.traces.future-retention", 48*time.Hour, "How far in the future a span's start time may be; later spans are rejected and counted (at least 24h).")
	f.DurationVar(&c.MaxBackfillAge, "storage.traces.max-backfill-age", 0, "How old a span's start time may be; older spans are rejected and counted (0: the retention).")
	f.DurationVar(&c.FlushInterval, "storage.traces.flush-interval", time.Second, "How often the trace store writes in-memory data to files on its own (at least 1s).")
	f.DurationVar(&c.DurableBatchInterval, "storage.traces.durable-batch-interval", time.Second, "Least time between two forced flushes of the trace store for callers waiting for durability; callers within it share one flush. Each flush writes a small part the store merges later: shorter means quicker acks but more merging CPU.")
	f.Int64Var(&c.MaxDiskSpaceUsageBytes, "storage.traces.max-disk-space-usage-bytes", 0, "When positive, the oldest days of spans are dropped once the trace store is larger (the last two days are kept).")
	f.Int64Var(&c.MinFreeDiskSpaceBytes, "storage.traces.min-free-disk-space-bytes", 10<<20, "Free disk space below which the trace store turns read-only and rejects appends.")
	f.IntVar(&c.MaxAttributeFields, "storage.traces.max-attribute-fields", 1000, fmt.Sprintf("Distinct attribute names a service's spans of one day may have as searchable fields; further attributes are kept with their span but not searchable (1 to %d).", maxAttributeFields))
}

// maxAttributeFields is the most Config.MaxAttributeFields may be: with
// the intrinsic fields, a block stays within VictoriaLogs' 2000 columns.
const maxAttributeFields = maxBlockColumns - intrinsicFields

// Validate reports every invalid field.
func (c *Config) Validate() error {
	ec := c.engineConfig()
	err := ec.Validate("storage.traces")
	if c.MaxAttributeFields < 1 || c.MaxAttributeFields > maxAttributeFields {
		err = errors.Join(err, fmt.Errorf("storage.traces.max_attribute_fields: must be from 1 to %d, got %d", maxAttributeFields, c.MaxAttributeFields))
	}
	return err
}

// engineConfig is the part of c the storage engine takes.
func (c *Config) engineConfig() vlengine.Config {
	return vlengine.Config{
		Path:                   c.Path,
		Retention:              c.Retention,
		FutureRetention:        c.FutureRetention,
		MaxBackfillAge:         c.MaxBackfillAge,
		FlushInterval:          c.FlushInterval,
		DurableBatchInterval:   c.DurableBatchInterval,
		MaxDiskSpaceUsageBytes: c.MaxDiskSpaceUsageBytes,
		MinFreeDiskSpaceBytes:  c.MinFreeDiskSpaceBytes,
	}
}
