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
// The VictoriaMetrics libraries log through a global logger of their own;
// Open routes it through slog (see routeVictoriaLogs).
//
// Lock order: Store.mu, then Store.roundMu, then Store.dirtyMu.
package vlogs

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	vmlogger "github.com/VictoriaMetrics/VictoriaMetrics/lib/logger"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/storage/logs"
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

const nsPerDay = int64(24 * time.Hour)

// Store is an open VictoriaLogs storage. Its methods are safe for
// concurrent use; Close must be called once, when nothing else uses it.
type Store struct {
	cfg     Config
	logger  *slog.Logger
	reg     prometheus.Registerer
	metrics *storeMetrics

	// mu is read-locked by every call that uses storage and write-locked by
	// Close, so that MustClose never runs under a reader.
	mu      sync.RWMutex
	closed  bool
	storage *logstorage.Storage

	// roCheckedAt and readOnly cache Storage.IsReadOnly (a statfs call) for
	// a second.
	roCheckedAt atomic.Int64
	readOnly    atomic.Bool

	// dirtyDays are the days (Unix ns / nsPerDay) that received entries
	// since the last durability round began.
	dirtyMu   sync.Mutex
	dirtyDays map[int64]struct{}

	// next is the round that WaitDurable callers join; running is the one
	// in progress. Both are guarded by roundMu.
	roundMu sync.Mutex
	next    *round
	running *round
	// kick wakes the durability goroutine; stop ends it.
	kick chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup
	// idbDurableStreams is owned by the durability goroutine: see
	// makeDurable.
	idbDurableStreams uint64

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
	routeVictoriaLogs(logger)
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o755); err != nil {
		return nil, fmt.Errorf("create log store parent directory: %w", err)
	}
	st, err := openStorage(cfg.Path, &logstorage.StorageConfig{
		Retention:              cfg.Retention,
		FutureRetention:        cfg.FutureRetention,
		MaxBackfillAge:         cfg.backfillAge(),
		FlushInterval:          cfg.FlushInterval,
		MaxDiskSpaceUsageBytes: cfg.MaxDiskSpaceUsageBytes,
		MinFreeDiskSpaceBytes:  cfg.MinFreeDiskSpaceBytes,
	})
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:       cfg,
		logger:    logger,
		reg:       reg,
		storage:   st,
		dirtyDays: make(map[int64]struct{}),
		kick:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	// Snapshots are only ever made by forceFlush, which deletes them at
	// once; one left behind was interrupted by a crash and would keep
	// merged-away parts on disk.
	for _, p := range st.PartitionSnapshotList() {
		if err := st.PartitionSnapshotDelete(p); err != nil {
			logger.Warn("delete leftover log store snapshot", "path", p, "err", err)
		}
	}
	s.metrics = newStoreMetrics(s)
	if err := s.metrics.register(reg); err != nil {
		st.MustClose()
		return nil, fmt.Errorf("register log store metrics: %w", err)
	}
	s.idbDurableStreams = s.streamsCreated()
	s.wg.Add(1)
	go s.runDurability()
	logger.Info("log store open", "path", cfg.Path, "retention", cfg.Retention)
	return s, nil
}

// openStorage turns the panics MustOpenStorage reports errors with (such as
// a directory locked by another process) into an error.
func openStorage(path string, sc *logstorage.StorageConfig) (st *logstorage.Storage, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("open log store %s: %v", path, r)
		}
	}()
	return logstorage.MustOpenStorage(path, sc), nil
}

// Close stops the durability goroutine and closes the storage, which writes
// every buffered entry to files: WaitDurable calls still waiting then
// return nil. Later calls return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()

		s.mu.Lock()
		s.closed = true
		s.storage.MustClose()
		s.mu.Unlock()

		s.metrics.unregister(s.reg)

		s.roundMu.Lock()
		for _, r := range []*round{s.running, s.next} {
			if r != nil {
				close(r.done)
			}
		}
		s.running, s.next = nil, nil
		s.roundMu.Unlock()
		s.logger.Info("log store closed", "path", s.cfg.Path)
	})
	return nil
}

// tenantID maps a tenant to a VictoriaLogs TenantID: "" is the default
// tenant {0,0}; any other string hashes to AccountID = FNV-1a(tenant) and
// ProjectID = FNV-1a(0x00 + tenant).
//
// Two tenants whose hashes agree share their data. With 64 hash bits the
// odds are about n²/2⁶⁵ for n tenants (one in 10¹⁰ for a thousand), and
// nothing detects it: a tenant registry should replace this once tenants
// come from authentication rather than a header.
func tenantID(tenant string) logstorage.TenantID {
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

// isReadOnly reports Storage.IsReadOnly, checked at most once a second.
func (s *Store) isReadOnly(now int64) bool {
	if now-s.roCheckedAt.Load() >= int64(time.Second) {
		s.roCheckedAt.Store(now)
		s.readOnly.Store(s.storage.IsReadOnly())
	}
	return s.readOnly.Load()
}

// stats returns the storage's statistics; the caller holds s.mu or owns
// the storage otherwise (the durability goroutine, which Close waits for).
func (s *Store) stats() *logstorage.StorageStats {
	var st logstorage.StorageStats
	s.storage.UpdateStats(&st)
	return &st
}

// streamsCreated is the number of streams registered in the stream index
// of any open partition since it was opened.
func (s *Store) streamsCreated() uint64 { return s.stats().StreamsCreatedTotal }

// vmLog routes the VictoriaMetrics logger (a package global that writes its
// own text format to stderr) through slog, so that Pharos' stderr stays one
// JSON event per line. The route is set once per process; the logger of
// the last Store opened is used, since the messages do not say which
// storage they are about.
var vmLog struct {
	once   sync.Once
	logger atomic.Pointer[slog.Logger]
}

func routeVictoriaLogs(logger *slog.Logger) {
	vmLog.logger.Store(logger.With("component", "victorialogs"))
	vmLog.once.Do(func() {
		// SetOutputForTests is the library's only way to redirect its
		// output; it is a plain setter, called before any Storage of this
		// package exists (and so before this package makes it log).
		vmlogger.SetOutputForTests(vmLogWriter{})
		// The library reads its settings (memory limits among them) from
		// flags on the global flag set and refuses to run before that set
		// is parsed. Pharos parses its own flag set, so the global one is
		// parsed here, empty: the library's defaults apply.
		if !flag.Parsed() {
			_ = flag.CommandLine.Parse(nil)
		}
	})
}

// vmLogWriter receives one message per Write, in the library's default
// format: time, level, caller and message, separated by tabs. Its info
// messages (partitions and snapshots created and deleted, on every forced
// flush) are debug to Pharos.
type vmLogWriter struct{}

func (vmLogWriter) Write(p []byte) (int, error) {
	logger := vmLog.logger.Load()
	msg := strings.TrimRight(string(p), "\n")
	level, caller := slog.LevelError, ""
	if f := strings.SplitN(msg, "\t", 4); len(f) == 4 {
		caller, msg = f[2], f[3]
		switch f[1] {
		case "info":
			level = slog.LevelDebug
		case "warn":
			level = slog.LevelWarn
		}
	}
	logger.Log(context.Background(), level, msg, "caller", caller)
	return len(p), nil
}
