// Package vlogs implements the log store of storage/logs on VictoriaLogs'
// lib/logstorage; the rest of Pharos sees only the interfaces of
// storage/logs.
//
// Data model: a stream's labels are VictoriaLogs stream fields (so
// `_stream` is the label set), the line is `_msg`, the timestamp `_time`,
// and structured metadata are ordinary fields named "_meta.<name>", so that
// they can never collide with a label or a VictoriaLogs field. Queries are
// pushed down to LogsQL only to prune; every matcher and line filter is
// applied again, exactly, in Go, so results have LogQL's semantics.
//
// Opening and closing the storage, tenants, durability and the storage's
// own metrics are storage/vlengine's, shared with the trace store.
package vlogs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/storage/logs"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

var (
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("log store closed")
	// ErrReadOnly is returned by Append while the disk holding the store
	// has less free space than Config.MinFreeDiskSpaceBytes. It is
	// temporary: retry later.
	ErrReadOnly = errors.New("log store is read-only: disk space is low")
)

var (
	_ logs.Appender      = (*Store)(nil)
	_ logs.Querier       = (*Store)(nil)
	_ logs.DurableWaiter = (*Store)(nil)
)

// Store is an open VictoriaLogs storage. Its methods are safe for
// concurrent use; Close must be called once, when nothing else uses it.
type Store struct {
	cfg     Config
	logger  *slog.Logger
	reg     prometheus.Registerer
	metrics *storeMetrics
	eng     *vlengine.Engine

	closeOnce sync.Once
}

// Open opens (or creates) the store in cfg.Path. Its pharos_logs_* metrics
// are registered on reg (which may be nil); Close unregisters them.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Path == "" {
		return nil, errors.New("logs: no path given for the log store")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	eng, err := vlengine.Open(cfg.engineConfig(), vlengine.Options{
		Name:         "log store",
		MetricPrefix: "pharos_logs",
		Rows:         "entries",
		Row:          "entry",
		RowsHelp:     "log entries",
		ErrClosed:    ErrClosed,
	}, logger, reg)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, logger: logger, reg: reg, metrics: newStoreMetrics(), eng: eng}
	if err := vlengine.Register(reg, s.metrics.collectors()...); err != nil {
		eng.Close()
		return nil, fmt.Errorf("register log store metrics: %w", err)
	}
	logger.Info("log store open", "path", cfg.Path, "retention", cfg.Retention)
	return s, nil
}

// Close closes the storage, which writes every buffered entry to files:
// WaitDurable calls still waiting then return nil. Later calls return
// ErrClosed; a second Close does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.eng.Close()
		vlengine.Unregister(s.reg, s.metrics.collectors()...)
		s.logger.Info("log store closed", "path", s.cfg.Path)
	})
	return nil
}

// WaitDurable returns once every entry whose Append returned before the
// call is on disk (see vlengine.Engine.WaitDurable for how, and what is
// guaranteed exactly), or with ctx's error.
func (s *Store) WaitDurable(ctx context.Context) error { return s.eng.WaitDurable(ctx) }
