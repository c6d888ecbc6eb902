package vlengine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
)

// The stage groups appended rows by stream before they reach the storage.
//
// lib/logstorage buffers what MustAddRows gets in a few shards and turns
// each shard's ~1.75 MB into an in-memory part with one block per stream.
// A store appends one bus message at a time, a few dozen KB of one or two
// streams, and messages of different streams interleave, so such a part
// held many small blocks; the library's mergers then decode and encode
// again (tokenise for the bloom filters, compress) every block at every
// merge until it reaches 2 MiB, while a full block is copied as it is.
// Grouping a stream's rows first makes parts of full blocks: on the log
// benchmark this halved the CPU of the merges.
//
// Staged rows reach the storage when their stream has a block's worth
// (LogRows.NeedFlush), when the staged bytes of all streams pass
// stageMaxBytes, at the start of every durability round (before its
// DebugFlush, which makes them searchable, so WaitDurable covers them),
// stageAgeFlushes×FlushInterval after the first row staged since the last
// flush, and at Close.
//
// In the aggregator a durability round follows every append, so the rounds
// empty the stage: at once under a light load, every 2.5–3.5 s under a
// heavy one (a round then lasts until its deadline). The timer only bounds
// the wait when no round comes. At one FlushInterval it fired between the
// rounds of a heavy load and cut every stream's rows into a partial block
// each second, which the merges encode again: 8 % of the CPU on the log
// benchmark (five runs, each one lower).
const stageAgeFlushes = 3

// stageMaxBytes bounds the bytes (field names and values) staged over all
// streams; past it, the stream being added to is flushed at once.
const stageMaxBytes = 64 << 20

// stageKey names a staged stream: a hash of its stream fields (rows of two
// streams that collide are merely staged together).
type stageKey struct {
	tenant logstorage.TenantID
	stream uint64
}

// stage is an Engine's staged rows.
type stage struct {
	mu      sync.Mutex
	streams map[stageKey]*StagedRows
	// timer flushes the whole stage stageAgeFlushes×FlushInterval after
	// the first row staged since the last flush; nil while the stage is
	// empty.
	timer *time.Timer

	bytes atomic.Int64 // staged bytes over all streams
	rows  atomic.Int64 // staged rows over all streams
}

// StagedRows are a stream's staged rows. Between Engine.Stage and Done the
// caller owns them; Add adds rows.
type StagedRows struct {
	e     *Engine
	key   stageKey
	mu    sync.Mutex
	lr    *logstorage.LogRows
	bytes int
	// gone is set once a flush removed these rows from the stage: an
	// appender that raced it starts again with a new StagedRows.
	gone bool
}

// Stage returns tenant's staged rows of the stream whose stream fields
// hash to stream, locked for the caller until Done. The caller holds
// Acquire, and calls MarkDirty for the days of the rows it adds (as for
// rows given to MustAddRows).
func (e *Engine) Stage(tenant logstorage.TenantID, stream uint64) *StagedRows {
	key := stageKey{tenant: tenant, stream: stream}
	for {
		s := &e.stage
		s.mu.Lock()
		if s.streams == nil {
			s.streams = make(map[stageKey]*StagedRows)
		}
		sr := s.streams[key]
		if sr == nil {
			sr = &StagedRows{e: e, key: key, lr: logstorage.GetLogRows(nil, nil, nil, nil, "")}
			s.streams[key] = sr
		}
		if s.timer == nil {
			s.timer = time.AfterFunc(stageAgeFlushes*e.cfg.FlushInterval, e.flushStageOnTimer)
		}
		s.mu.Unlock()

		sr.mu.Lock()
		if !sr.gone {
			return sr
		}
		sr.mu.Unlock()
	}
}

// Add stages a row (see LogRows.MustAdd for the arguments); a stream's
// rows go to the storage once they fill a block.
func (sr *StagedRows) Add(ts int64, fields []logstorage.Field, streamFields int) {
	n := 0
	for i := range fields {
		n += len(fields[i].Name) + len(fields[i].Value)
	}
	sr.lr.MustAdd(sr.key.tenant, ts, fields, streamFields)
	sr.bytes += n
	s := &sr.e.stage
	s.rows.Add(1)
	total := s.bytes.Add(int64(n))
	if sr.lr.NeedFlush() || total > stageMaxBytes {
		sr.flushLocked()
	}
}

// Done ends what Stage began.
func (sr *StagedRows) Done() { sr.mu.Unlock() }

// flushLocked gives the rows to the storage; sr.mu is held, and so is the
// storage (Acquire, or the durability goroutine, or Close).
func (sr *StagedRows) flushLocked() {
	if sr.lr.RowsCount() == 0 {
		return
	}
	sr.e.storage.MustAddRows(sr.lr)
	s := &sr.e.stage
	s.rows.Add(-int64(sr.lr.RowsCount()))
	s.bytes.Add(-int64(sr.bytes))
	sr.lr.ResetKeepSettings()
	sr.bytes = 0
}

// flushStage gives every staged row to the storage and empties the stage;
// the caller holds the storage.
func (e *Engine) flushStage() {
	s := &e.stage
	s.mu.Lock()
	streams := s.streams
	s.streams = nil
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.mu.Unlock()
	for _, sr := range streams {
		sr.mu.Lock()
		sr.flushLocked()
		sr.gone = true
		logstorage.PutLogRows(sr.lr)
		sr.lr = nil
		sr.mu.Unlock()
	}
}

func (e *Engine) flushStageOnTimer() {
	if _, err := e.Acquire(); err != nil {
		return // Close flushed the stage
	}
	defer e.Release()
	e.flushStage()
}

// StagedRowsCount is the number of rows staged and not yet given to the
// storage.
func (e *Engine) StagedRowsCount() int64 { return e.stage.rows.Load() }
