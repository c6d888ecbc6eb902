package spool

import (
	"errors"
	"flag"
	"fmt"
)

// Limits on the configuration. A segment below minSegmentBytes would rotate
// on every batch; one above maxSegmentBytes makes the bound coarse and the
// open-time scan (which holds one segment in memory) expensive.
const (
	minSegmentBytes = 4 << 10
	maxSegmentBytes = 1 << 30
)

// Config bounds a spool on disk. Each spool (one per signal) is bounded on
// its own.
type Config struct {
	// MaxBytes caps the segment files of the spool. When a write would pass
	// it, the oldest whole segments are deleted first, and what they held
	// is reported as dropped.
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which the spool starts a new segment file.
	// The bound drops data a segment at a time, so this is also how much is
	// lost at once when the spool is full.
	SegmentBytes int64 `yaml:"segment_bytes"`
}

// DefaultConfig returns a Config holding every flag default.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("", flag.ContinueOnError))
	return c
}

// RegisterFlags registers the options under -agent.spool.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Int64Var(&c.MaxBytes, "agent.spool.max-bytes", 1<<30, "Disk space for batches waiting while NATS is unreachable, per signal; when full, the oldest are dropped (and counted).")
	f.Int64Var(&c.SegmentBytes, "agent.spool.segment-bytes", 16<<20, "Size of one spool segment file; the spool drops whole segments when full.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	segOK := c.SegmentBytes >= minSegmentBytes && c.SegmentBytes <= maxSegmentBytes
	if !segOK {
		errs = append(errs, fmt.Errorf("agent.spool.segment_bytes: must be between %d and %d, got %d", minSegmentBytes, maxSegmentBytes, c.SegmentBytes))
	}
	switch {
	case c.MaxBytes <= 0:
		errs = append(errs, fmt.Errorf("agent.spool.max_bytes: must be positive, got %d", c.MaxBytes))
	case segOK && c.MaxBytes < 2*c.SegmentBytes:
		// Two segments at least, so that dropping the oldest one always
		// leaves room for the next record without touching the one being
		// written.
		errs = append(errs, fmt.Errorf("agent.spool.max_bytes: must be at least twice agent.spool.segment_bytes (%d), got %d", 2*c.SegmentBytes, c.MaxBytes))
	}
	return errors.Join(errs...)
}

// maxRecordFrame is the largest frame a spool with this config accepts: half
// the bound, so that a record always fits once older segments are dropped.
func (c *Config) maxRecordFrame() int64 { return c.MaxBytes / 2 }

// MaxRecordBytes is the largest record Write and Append take (larger ones
// fail with ErrTooLarge, whatever the spool holds).
func (c *Config) MaxRecordBytes() int64 {
	return min(c.maxRecordFrame(), maxFrameLen+headerSize) - frameExtra
}
