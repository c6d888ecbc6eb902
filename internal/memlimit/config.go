package memlimit

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// Config is the memory limiter's configuration (memory.* flags).
type Config struct {
	// LimitBytes is the hard limit of the Go heap. 0 derives it from the
	// process's cgroup memory limit (80% of it), leaving the limiter off
	// when there is none; -1 turns the limiter off.
	LimitBytes int64 `yaml:"limit_bytes"`
	// SpikeLimitBytes is the headroom kept under the hard limit for what
	// arrives between two checks: new data is refused above LimitBytes −
	// SpikeLimitBytes (the soft limit). 0 means 20% of the hard limit.
	SpikeLimitBytes int64 `yaml:"spike_limit_bytes"`
	// CheckInterval is how often the heap is sampled.
	CheckInterval time.Duration `yaml:"check_interval"`
	// MinGCInterval is the shortest time between two garbage collections
	// the limiter forces when the heap is over the soft limit (to tell
	// garbage from live data before refusing, and to see memory come back
	// while refusing).
	MinGCInterval time.Duration `yaml:"min_gc_interval"`
}

// RegisterFlags registers the options under -memory.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	f.Int64Var(&c.LimitBytes, "memory.limit-bytes", 0, "Go heap limit of the agent and aggregator: above it minus -memory.spike-limit-bytes, pushes are refused (429 / RESOURCE_EXHAUSTED) and the aggregator stops fetching from the bus until memory is back under; also the Go runtime's soft memory limit (GOMEMLIMIT, unless set). 0: 80% of the cgroup memory limit, off without one; -1: off.")
	f.Int64Var(&c.SpikeLimitBytes, "memory.spike-limit-bytes", 0, "Headroom under -memory.limit-bytes for what arrives between two checks; data is refused above limit − spike. 0: 20% of the limit.")
	f.DurationVar(&c.CheckInterval, "memory.check-interval", 250*time.Millisecond, "How often the memory limiter samples the Go heap.")
	f.DurationVar(&c.MinGCInterval, "memory.min-gc-interval", 2*time.Second, "Shortest time between garbage collections forced by the memory limiter while over the soft limit.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.LimitBytes < -1 {
		errs = append(errs, fmt.Errorf("memory.limit_bytes: must be -1 (off), 0 (from the cgroup) or a size in bytes, got %d", c.LimitBytes))
	}
	if c.LimitBytes > 0 && c.LimitBytes < minLimit {
		errs = append(errs, fmt.Errorf("memory.limit_bytes: must be at least %d, got %d", minLimit, c.LimitBytes))
	}
	if c.SpikeLimitBytes < 0 {
		errs = append(errs, fmt.Errorf("memory.spike_limit_bytes: must not be negative, got %d", c.SpikeLimitBytes))
	}
	if c.LimitBytes > 0 && c.SpikeLimitBytes >= c.LimitBytes {
		errs = append(errs, fmt.Errorf("memory.spike_limit_bytes: must be less than memory.limit_bytes (%d), got %d", c.LimitBytes, c.SpikeLimitBytes))
	}
	if c.CheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("memory.check_interval: must be positive, got %s", c.CheckInterval))
	}
	if c.MinGCInterval < 0 {
		errs = append(errs, fmt.Errorf("memory.min_gc_interval: must not be negative, got %s", c.MinGCInterval))
	}
	return errors.Join(errs...)
}

// minLimit keeps a typo (a limit in MiB given as bytes) from refusing
// everything.
const minLimit = 16 << 20

// cgroupShare is the part of a cgroup memory limit the heap may use when
// the limit is derived: the rest is for stacks, the runtime's own
// overhead, mapped files and the C allocations of the storage engines.
const cgroupShare = 0.8

// limits resolves the hard and soft limits; hard is 0 when the limiter is
// off. cgroup reports the process's cgroup memory limit, if any.
func (c *Config) limits(cgroup func() (int64, bool)) (hard, soft int64, source string) {
	switch {
	case c.LimitBytes < 0:
		return 0, 0, "off"
	case c.LimitBytes > 0:
		hard, source = c.LimitBytes, "flag"
	default:
		cg, ok := cgroup()
		if !ok {
			return 0, 0, "off"
		}
		hard, source = int64(float64(cg)*cgroupShare), "cgroup"
		if hard < minLimit {
			return 0, 0, "off"
		}
	}
	spike := c.SpikeLimitBytes
	if spike == 0 || spike >= hard {
		spike = hard / 5
	}
	return hard, hard - spike, source
}
