// Package vlengine holds what Pharos' stores on VictoriaLogs'
// lib/logstorage share: opening and closing a Storage, the mapping of
// tenants to TenantIDs, the accepted time window, running queries while
// the storage is open, WaitDurable's forced-flush rounds, the storage's
// own metrics, and the process-wide set-up of the library (its logger and
// its global flags, see RouteLogger).
//
// The log store (storage/logs/vlogs) and the trace store
// (storage/traces/vtraces) each own an Engine; neither sees the other.
//
// Lock order: Engine.mu, then Engine.roundMu, then Engine.dirtyMu.
package vlengine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/prometheus/client_golang/prometheus"
)

// NsPerDay is the length of VictoriaLogs' partitions (one per UTC day) in
// nanoseconds.
const NsPerDay = int64(24 * time.Hour)

// Bounds VictoriaLogs puts on its settings: it silently raises smaller
// values to these, so Validate rejects them instead of letting the store
// behave differently from its configuration.
const (
	MinRetention       = 24 * time.Hour
	MinFutureRetention = 24 * time.Hour
	MinFlushInterval   = time.Second
)

// backfillMargin is how much earlier than the backfill limit TimeWindow
// already starts: VictoriaLogs checks rows again a little later against its
// own clock, and must never drop what a store counted as stored.
const backfillMargin = int64(time.Minute)

// Config holds the storage options both stores expose, each under its own
// flags and YAML keys.
type Config struct {
	// Path is the storage directory.
	Path string
	// Retention is how long rows are kept (whole UTC days).
	Retention time.Duration
	// FutureRetention is how far ahead of the clock a row's timestamp may be.
	FutureRetention time.Duration
	// MaxBackfillAge is how far behind the clock a row's timestamp may be;
	// 0 means Retention.
	MaxBackfillAge time.Duration
	// FlushInterval is how often VictoriaLogs writes in-memory parts to
	// files on its own.
	FlushInterval time.Duration
	// DurableBatchInterval is the least time between two forced flushes
	// started by WaitDurable.
	DurableBatchInterval time.Duration
	// MaxDiskSpaceUsageBytes, when positive, makes VictoriaLogs drop the
	// oldest days once the storage is larger.
	MaxDiskSpaceUsageBytes int64
	// MinFreeDiskSpaceBytes is the free space below which the storage turns
	// read-only.
	MinFreeDiskSpaceBytes int64
}

// Validate reports every invalid field, named with prefix and its YAML key
// ("storage.logs.retention").
func (c *Config) Validate(prefix string) error {
	var errs []error
	if c.Retention < MinRetention {
		errs = append(errs, fmt.Errorf("%s.retention: must be at least %s (VictoriaLogs keeps whole days), got %s", prefix, MinRetention, c.Retention))
	}
	if c.FutureRetention < MinFutureRetention {
		errs = append(errs, fmt.Errorf("%s.future_retention: must be at least %s, got %s", prefix, MinFutureRetention, c.FutureRetention))
	}
	if c.MaxBackfillAge < 0 {
		errs = append(errs, fmt.Errorf("%s.max_backfill_age: must not be negative, got %s", prefix, c.MaxBackfillAge))
	} else if c.MaxBackfillAge > c.Retention && c.Retention >= MinRetention {
		errs = append(errs, fmt.Errorf("%s.max_backfill_age: must not exceed %s.retention (%s), got %s", prefix, prefix, c.Retention, c.MaxBackfillAge))
	}
	if c.FlushInterval < MinFlushInterval {
		errs = append(errs, fmt.Errorf("%s.flush_interval: must be at least %s, got %s", prefix, MinFlushInterval, c.FlushInterval))
	}
	if c.DurableBatchInterval < 0 {
		errs = append(errs, fmt.Errorf("%s.durable_batch_interval: must not be negative, got %s", prefix, c.DurableBatchInterval))
	} else if c.DurableBatchInterval > c.FlushInterval && c.FlushInterval >= MinFlushInterval {
		errs = append(errs, fmt.Errorf("%s.durable_batch_interval: must not exceed %s.flush_interval (%s), got %s", prefix, prefix, c.FlushInterval, c.DurableBatchInterval))
	}
	if c.MaxDiskSpaceUsageBytes < 0 {
		errs = append(errs, fmt.Errorf("%s.max_disk_space_usage_bytes: must not be negative, got %d", prefix, c.MaxDiskSpaceUsageBytes))
	}
	if c.MinFreeDiskSpaceBytes < 0 {
		errs = append(errs, fmt.Errorf("%s.min_free_disk_space_bytes: must not be negative, got %d", prefix, c.MinFreeDiskSpaceBytes))
	}
	return errors.Join(errs...)
}

// BackfillAge is the effective MaxBackfillAge.
func (c *Config) BackfillAge() time.Duration {
	if c.MaxBackfillAge == 0 {
		return c.Retention
	}
	return c.MaxBackfillAge
}

// Options say how an Engine names its store and rows.
type Options struct {
	// Name names the store in messages: "log store".
	Name string
	// MetricPrefix starts every metric name: "pharos_logs".
	MetricPrefix string
	// Rows and Row name a row in metric names, plural and singular:
	// "entries" and "entry".
	Rows, Row string
	// RowsHelp names the rows in metric help: "log entries".
	RowsHelp string
	// ErrClosed is what calls on a closed Engine return.
	ErrClosed error
}

// Engine is an open lib/logstorage Storage with the machinery around it.
// Its methods are safe for concurrent use; Close must be called once, when
// nothing else uses it.
type Engine struct {
	cfg     Config
	opts    Options
	logger  *slog.Logger
	reg     prometheus.Registerer
	metrics *engineMetrics

	// mu is read-locked by every call that uses storage (see Acquire) and
	// write-locked by Close, so that MustClose never runs under a reader.
	mu      sync.RWMutex
	closed  bool
	storage *logstorage.Storage
	tenants *tenantRegistry

	// roCheckedAt and readOnly cache Storage.IsReadOnly (a statfs call) for
	// a second.
	roCheckedAt atomic.Int64
	readOnly    atomic.Bool

	durability
	stage     stage
	closeOnce sync.Once
}

// Open opens (or creates) the storage in cfg.Path, which the caller has
// validated. The engine's metrics (the storage's sizes, compression ratio,
// durability rounds) are registered on reg, which may be nil; Close
// unregisters them.
func Open(cfg Config, opts Options, logger *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if cfg.Path == "" {
		return nil, fmt.Errorf("no path given for the %s", opts.Name)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	RouteLogger(logger)
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s parent directory: %w", opts.Name, err)
	}
	tenants, err := openTenantRegistry(tenantRegistryPath(cfg.Path))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Name, err)
	}
	st, err := openStorage(cfg.Path, opts.Name, &logstorage.StorageConfig{
		Retention:              cfg.Retention,
		FutureRetention:        cfg.FutureRetention,
		MaxBackfillAge:         cfg.BackfillAge(),
		FlushInterval:          cfg.FlushInterval,
		MaxDiskSpaceUsageBytes: cfg.MaxDiskSpaceUsageBytes,
		MinFreeDiskSpaceBytes:  cfg.MinFreeDiskSpaceBytes,
	})
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		opts:    opts,
		logger:  logger,
		reg:     reg,
		storage: st,
		tenants: tenants,
	}
	e.durability.init()
	// Snapshots are only ever made by forceFlush, which deletes them at
	// once; one left behind was interrupted by a crash and would keep
	// merged-away parts on disk.
	for _, p := range st.PartitionSnapshotList() {
		if err := st.PartitionSnapshotDelete(p); err != nil {
			logger.Warn("delete leftover snapshot", "store", opts.Name, "path", p, "err", err)
		}
	}
	e.metrics = newEngineMetrics(e)
	if err := register(reg, e.metrics.collectors()); err != nil {
		st.MustClose()
		return nil, fmt.Errorf("register %s metrics: %w", opts.Name, err)
	}
	e.idbDurableStreams = e.streamsCreated()
	e.wg.Add(1)
	go e.runDurability()
	return e, nil
}

// openStorage turns the panics MustOpenStorage reports errors with (such as
// a directory locked by another process) into an error.
func openStorage(path, name string, sc *logstorage.StorageConfig) (st *logstorage.Storage, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open %s %s: %v", name, path, r)
		}
	}()
	return logstorage.MustOpenStorage(path, sc), nil
}

// Close stops the durability goroutine and closes the storage, which writes
// every buffered row to files: WaitDurable calls still waiting then return
// nil. Later calls return Options.ErrClosed.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		close(e.stop)
		e.wg.Wait()

		e.mu.Lock()
		e.closed = true
		e.flushStage()
		e.storage.MustClose()
		e.mu.Unlock()

		unregister(e.reg, e.metrics.collectors())
		e.releaseRounds()
	})
}

// Acquire read-locks the storage for the caller, who must call Release
// once done with it; it returns Options.ErrClosed after Close.
func (e *Engine) Acquire() (*logstorage.Storage, error) {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return nil, e.opts.ErrClosed
	}
	return e.storage, nil
}

// Release ends what Acquire began.
func (e *Engine) Release() { e.mu.RUnlock() }

// ReadOnly reports Storage.IsReadOnly, checked at most once a second; the
// caller holds Acquire.
func (e *Engine) ReadOnly(now int64) bool {
	if now-e.roCheckedAt.Load() >= int64(time.Second) {
		e.roCheckedAt.Store(now)
		e.readOnly.Store(e.storage.IsReadOnly())
	}
	return e.readOnly.Load()
}

// TimeWindow returns the timestamps a row may have when appended at now:
// from the backfill limit less a minute of margin to the future retention.
// Rows outside it would be dropped by VictoriaLogs with only a log line, so
// stores reject (and count) them first.
func (e *Engine) TimeWindow(now int64) (minTS, maxTS int64) {
	return now - int64(e.cfg.BackfillAge()) + backfillMargin, now + int64(e.cfg.FutureRetention)
}

// SearchWindow returns the widest time range that can hold rows: the
// retention, rounded out to whole days (VictoriaLogs drops whole days), up
// to the future retention.
func (e *Engine) SearchWindow(now int64) (start, end int64) {
	start = now - int64(e.cfg.Retention)
	start -= start%NsPerDay + NsPerDay
	return start, now + int64(e.cfg.FutureRetention) + 1
}

// AddDay adds the day of timestamp ts to days, once, for MarkDirty.
func AddDay(days []int64, ts int64) []int64 {
	day := ts / NsPerDay
	if n := len(days); n > 0 && days[n-1] == day {
		return days
	}
	for _, d := range days {
		if d == day {
			return days
		}
	}
	return append(days, day)
}

// MarkDirty records that rows of days were added to the storage: the next
// durability round flushes them. Call it after MustAddRows, so that a
// round taking these days finds the rows already in the storage's buffers.
func (e *Engine) MarkDirty(days []int64) {
	if len(days) == 0 {
		return
	}
	e.dirtyMu.Lock()
	for _, d := range days {
		e.dirtyDays[d] = struct{}{}
	}
	e.dirtyMu.Unlock()
}

// DebugFlush makes every appended row searchable at once, instead of
// within a second or so.
func (e *Engine) DebugFlush() {
	if _, err := e.Acquire(); err != nil {
		return
	}
	defer e.Release()
	e.flushStage()
	e.storage.DebugFlush()
}

// Query runs fn with a query context for tenant and q, with the storage
// open. The library stops a cancelled query without an error, so Query
// returns ctx's error then.
func (e *Engine) Query(ctx context.Context, tenant string, q *logstorage.Query, fn func(qctx *logstorage.QueryContext, st *logstorage.Storage) error) error {
	st, err := e.Acquire()
	if err != nil {
		return err
	}
	var qs logstorage.QueryStats
	qctx := logstorage.NewQueryContext(ctx, &qs, []logstorage.TenantID{e.tenants.lookup(tenant)}, q, false, nil)
	err = fn(qctx, st)
	e.Release()
	if err != nil {
		return err
	}
	return ctx.Err()
}

// ParseQuery parses a LogsQL query built by a store and limits it to
// [start, end), with end > start. Every user string in qs must be a
// strconv.Quote'd literal, which LogsQL's lexer reads back with
// strconv.Unquote, so that no value can change the query's structure; an
// error here is a bug, not bad input.
func ParseQuery(qs string, start, end int64) (*logstorage.Query, error) {
	q, err := logstorage.ParseQueryAtTimestamp(withStreamEpoch(qs), time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("parse LogsQL %s: %w", qs, err)
	}
	q.AddTimeFilter(start, end-1)
	return q, nil
}

// stats returns the storage's statistics; the caller holds e.mu or owns
// the storage otherwise (the durability goroutine, which Close waits for).
func (e *Engine) stats() *logstorage.StorageStats {
	var st logstorage.StorageStats
	e.storage.UpdateStats(&st)
	return &st
}

// streamsCreated is the number of streams registered in the stream index
// of any open partition since it was opened.
func (e *Engine) streamsCreated() uint64 { return e.stats().StreamsCreatedTotal }

// AppendTenantID is the VictoriaLogs TenantID the rows of tenant ("" is
// the default tenant) are written with: the one the engine's tenant
// registry holds for it, recorded (durably) on its first write. No two
// tenants share one.
func (e *Engine) AppendTenantID(tenant string) (logstorage.TenantID, error) {
	return e.tenants.assign(tenant)
}

// ReadTenantID is the TenantID reads of tenant use: its registered one, or
// one no tenant has (so nothing is found) when it has never written.
func (e *Engine) ReadTenantID(tenant string) logstorage.TenantID { return e.tenants.lookup(tenant) }

// TenantID is the hash a tenant's TenantID is taken from when no other
// tenant holds it (see AppendTenantID): "" is the default tenant {0,0};
// any other string hashes to AccountID = FNV-1a(tenant) and ProjectID =
// FNV-1a(0x00 + tenant). Before the registry, it was the mapping itself,
// so the rows written then stay their tenant's.
func TenantID(tenant string) logstorage.TenantID {
	if tenant == "" {
		return logstorage.TenantID{}
	}
	const offset, prime uint32 = 2166136261, 16777619
	a := offset
	p := offset
	p *= prime // FNV-1a over a leading 0x00 byte
	for i := 0; i < len(tenant); i++ {
		a ^= uint32(tenant[i])
		a *= prime
		p ^= uint32(tenant[i])
		p *= prime
	}
	if a == 0 && p == 0 {
		// Never the default tenant.
		p = 1
	}
	return logstorage.TenantID{AccountID: a, ProjectID: p}
}
