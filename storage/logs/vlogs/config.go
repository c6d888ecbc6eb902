package vlogs

import (
	"flag"
	"time"

	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Config holds the log store options Pharos exposes.
type Config struct {
	// Path is the store's directory. The caller sets it (under -data.dir);
	// it is neither a flag nor a YAML field.
	Path string `yaml:"-"`
	// Retention is how long entries are kept. VictoriaLogs stores one
	// partition per UTC day and drops whole days, so an entry may stay up
	// to a day longer.
	Retention time.Duration `yaml:"retention"`
	// FutureRetention is how far ahead of the clock an entry's timestamp may
	// be; later entries are rejected (and counted).
	FutureRetention time.Duration `yaml:"future_retention"`
	// MaxBackfillAge is how far behind the clock an entry's timestamp may be;
	// 0 means Retention. Older entries are rejected (and counted).
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
}

// DefaultConfig returns a Config holding every flag default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// RegisterFlags registers the options under -storage.logs.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.DurationVar(&c.Retention, "storage.logs.retention", 7*24*time.Hour, "How long log entries are kept (whole UTC days; at least 24h).")
	f.DurationVar(&c.FutureRetention, "storage.logs.future-retention", 48*time.Hour, "How far in the future a log entry's timestamp may be; later entries are rejected and counted (at least 24h).")
	f.DurationVar(&c.MaxBackfillAge, "storage.logs.max-backfill-age", 0, "How old a log entry's timestamp may be; older entries are rejected and counted (0: the retention).")
	f.DurationVar(&c.FlushInterval, "storage.logs.flush-interval", time.Second, "How often the log store writes in-memory data to files on its own (at least 1s).")
	f.DurationVar(&c.DurableBatchInterval, "storage.logs.durable-batch-interval", time.Second, "Least time between two forced flushes of the log store for callers waiting for durability; callers within it share one flush. Each flush writes a small part the store merges later: shorter means quicker acks but more merging CPU.")
	f.Int64Var(&c.MaxDiskSpaceUsageBytes, "storage.logs.max-disk-space-usage-bytes", 0, "When positive, the oldest days of logs are dropped once the log store is larger (the last two days are kept).")
	f.Int64Var(&c.MinFreeDiskSpaceBytes, "storage.logs.min-free-disk-space-bytes", 10<<20, "Free disk space below which the log store turns read-only and rejects appends.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	ec := c.engineConfig()
	return ec.Validate("storage.logs")
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
