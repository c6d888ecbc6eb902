// Package vtraces implements the trace store of storage/traces on
// VictoriaLogs' lib/logstorage, storing spans as VictoriaTraces does: one
// row per span, with the trace ID as a field; the rest of Pharos sees only
// the interfaces of storage/traces.
//
// Data model (see fields.go): a row's _time is the span's start; its only
// stream field is the resource attribute service.name
// ("resource.service.name"), so a service's spans are stored together in
// time order; intrinsics are fields (trace_id, span_id, name, kind,
// status_code, status_message, start, duration, is_root);
// string, int, double and bool attributes are fields "resource.<key>" and
// "span.<key>", their values as text; the field "otlp" holds the span as
// OTLP protobuf, byte for byte as received but for the IDs and times the
// row has as columns, and "otlp_scope" its resource and scope, one value
// for the scope's spans (see slim.go; both written as text without tokens,
// see spantext.go), from which Trace rebuilds the trace exactly.
//
// A trace is found by the exact filter trace_id:="<hex>", which the
// per-block bloom filters of the trace_id column make cheap. Searches push
// their conditions down to LogsQL only to prune, then evaluate every
// condition again in Go on all the spans of each candidate trace, so
// results are exact (see Search).
//
// Opening and closing the storage, tenants, durability and the storage's
// own metrics are storage/vlengine's, shared with the log store.
package vtraces

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/storage/traces"
	"github.com/pharos-obs/pharos/storage/vlengine"
)

var (
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("trace store closed")
	// ErrReadOnly is returned by Append while the disk holding the store
	// has less free space than Config.MinFreeDiskSpaceBytes. It is
	// temporary: retry later.
	ErrReadOnly = errors.New("trace store is read-only: disk space is low")
)

var (
	_ traces.Appender = (*Store)(nil)
	_ traces.Querier  = (*Store)(nil)
)

// Store is an open trace store. Its methods are safe for concurrent use;
// Close must be called when nothing else uses it.
type Store struct {
	cfg     Config
	logger  *slog.Logger
	reg     prometheus.Registerer
	metrics *storeMetrics
	eng     *vlengine.Engine
	names   attrNames

	closeOnce sync.Once
}

// Open opens (or creates) the store in cfg.Path. Its pharos_traces_*
// metrics are registered on reg (which may be nil); Close unregisters
// them.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Path == "" {
		return nil, errors.New("traces: no path given for the trace store")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	eng, err := vlengine.Open(cfg.engineConfig(), vlengine.Options{
		Name:         "trace store",
		MetricPrefix: "pharos_traces",
		Rows:         "spans",
		Row:          "span",
		RowsHelp:     "spans",
		ErrClosed:    ErrClosed,
	}, logger, reg)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, logger: logger, reg: reg, metrics: newStoreMetrics(), eng: eng,
		names: attrNames{limit: cfg.MaxAttributeFields, logger: logger}}
	if err := vlengine.Register(reg, s.metrics.collectors()...); err != nil {
		eng.Close()
		return nil, fmt.Errorf("register trace store metrics: %w", err)
	}
	logger.Info("trace store open", "path", cfg.Path, "retention", cfg.Retention)
	return s, nil
}

// Close closes the storage, which writes every buffered span to files:
// WaitDurable calls still waiting then return nil. Later calls return
// ErrClosed; a second Close does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.eng.Close()
		vlengine.Unregister(s.reg, s.metrics.collectors()...)
		s.logger.Info("trace store closed", "path", s.cfg.Path)
	})
	return nil
}

// WaitDurable returns once every span whose Append returned before the
// call is on disk (see vlengine.Engine.WaitDurable for how, and what is
// guaranteed exactly), or with ctx's error.
func (s *Store) WaitDurable(ctx context.Context) error { return s.eng.WaitDurable(ctx) }
