// Package metrics stores samples in the Prometheus TSDB. It is the only
// package of Pharos that imports prometheus/tsdb; everything else sees the
// small interfaces of prometheus/storage (Appendable, Queryable).
package metrics

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/compression"
)

// Config holds the TSDB options Pharos exposes.
type Config struct {
	Retention        model.Duration `yaml:"retention"`
	OutOfOrderWindow model.Duration `yaml:"out_of_order_window"`
	MaxExemplars     int64          `yaml:"max_exemplars"`
	WALCompression   bool           `yaml:"wal_compression"`
	MaxMetadata      int            `yaml:"max_metadata"`
}

// RegisterFlags registers the options under -storage.metrics.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Retention = model.Duration(15 * 24 * time.Hour)
	c.OutOfOrderWindow = model.Duration(2 * time.Hour)
	f.Var(&c.Retention, "storage.metrics.retention", "How long samples are kept.")
	f.Var(&c.OutOfOrderWindow, "storage.metrics.out-of-order-window", "How far behind the newest sample of a series a late sample is still accepted (replayed spools and redeliveries arrive late).")
	f.Int64Var(&c.MaxExemplars, "storage.metrics.max-exemplars", 100000, "Exemplars kept in memory (0 disables exemplar storage).")
	f.BoolVar(&c.WALCompression, "storage.metrics.wal-compression", true, "Compress the TSDB write-ahead log with snappy.")
	f.IntVar(&c.MaxMetadata, "storage.metrics.max-metadata", 100000, "Metric families whose metadata (type, help, unit) is kept.")
}

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.Retention <= 0 {
		errs = append(errs, fmt.Errorf("storage.metrics.retention: must be positive, got %s", c.Retention))
	}
	if c.OutOfOrderWindow < 0 {
		errs = append(errs, fmt.Errorf("storage.metrics.out_of_order_window: must not be negative, got %s", c.OutOfOrderWindow))
	}
	if c.MaxExemplars < 0 {
		errs = append(errs, fmt.Errorf("storage.metrics.max_exemplars: must not be negative, got %d", c.MaxExemplars))
	}
	if c.MaxMetadata < 0 {
		errs = append(errs, fmt.Errorf("storage.metrics.max_metadata: must not be negative, got %d", c.MaxMetadata))
	}
	return errors.Join(errs...)
}

// Store is an open TSDB plus the metric metadata seen by this node.
type Store struct {
	db       *tsdb.DB
	metadata *metadataStore
	logger   *slog.Logger
	series   *seriesCounter
}

// Open opens (or creates) the TSDB in dir. Its own prometheus_tsdb_* metrics
// are registered on reg.
func Open(cfg Config, dir string, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = int64(time.Duration(cfg.Retention) / time.Millisecond)
	opts.OutOfOrderTimeWindow = int64(time.Duration(cfg.OutOfOrderWindow) / time.Millisecond)
	opts.EnableExemplarStorage = cfg.MaxExemplars > 0
	opts.MaxExemplars = cfg.MaxExemplars
	if cfg.WALCompression {
		opts.WALCompression = compression.Snappy
	}
	series := newSeriesCounter()
	opts.SeriesLifecycleCallback = series
	db, err := tsdb.Open(dir, logger.With("component", "tsdb"), reg, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb %s: %w", dir, err)
	}
	series.enforced.Store(true)
	return &Store{db: db, metadata: newMetadataStore(cfg.MaxMetadata), logger: logger, series: series}, nil
}

// AppenderV2 starts an append transaction. Commit writes the WAL before the
// samples become visible, so a committed batch survives a process crash.
func (s *Store) AppenderV2(ctx context.Context) storage.AppenderV2 { return s.db.AppenderV2(ctx) }

// Appender starts a v1 append transaction (used by the remote-read tests and
// by Prometheus packages that still speak v1).
func (s *Store) Appender(ctx context.Context) storage.Appender { return s.db.Appender(ctx) }

// Querier implements storage.Queryable. Every read is scoped to the
// tenant of its context (tenant.FromContext), see TenantQuerier: a read
// without one (rule evaluation, say) sees the default tenant's series.
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	return TenantQueryable(s.db).Querier(mint, maxt)
}

// ChunkQuerier implements storage.ChunkQueryable, scoped like Querier.
func (s *Store) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return TenantChunkQueryable(s.db).ChunkQuerier(mint, maxt)
}

// ExemplarQuerier implements storage.ExemplarQueryable, scoped to ctx's
// tenant like Querier.
func (s *Store) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	return TenantExemplarQueryable(s.db).ExemplarQuerier(ctx)
}

// StartTime is the oldest timestamp the store holds.
func (s *Store) StartTime() (int64, error) { return s.db.StartTime() }

// Close flushes and closes the TSDB. The head is not compacted here: the WAL
// is replayed on the next open, as Prometheus does.
func (s *Store) Close() error { return s.db.Close() }
