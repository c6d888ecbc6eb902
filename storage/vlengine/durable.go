package vlengine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Results of a durability round, the values of the result label of
// <prefix>_durable_rounds_total.
const (
	ResultEmpty    = "empty"    // nothing appended since the last round
	ResultFlushed  = "flushed"  // a forced flush proved the rows on disk
	ResultDeadline = "deadline" // the conservative wait ran out (see WaitDurable)
	ResultError    = "error"    // the forced flush failed
)

// errStopping ends a durability round when Close stops the goroutine.
var errStopping = errors.New("store closing")

// round is one forced flush that WaitDurable callers share.
type round struct {
	done chan struct{}
	err  error // set before done is closed
}

// durability is the state of WaitDurable's rounds.
type durability struct {
	// dirtyDays are the days (Unix ns / NsPerDay) that received rows since
	// the last durability round began.
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
	// epochStreams is the stream count streamEpoch last moved at (owned
	// by the durability goroutine).
	epochStreams uint64
}

func (d *durability) init() {
	d.dirtyDays = make(map[int64]struct{})
	d.kick = make(chan struct{}, 1)
	d.stop = make(chan struct{})
}

// releaseRounds ends the rounds still waiting once the storage is closed
// (MustClose wrote every row).
func (d *durability) releaseRounds() {
	d.roundMu.Lock()
	for _, r := range []*round{d.running, d.next} {
		if r != nil {
			close(r.done)
		}
	}
	d.running, d.next = nil, nil
	d.roundMu.Unlock()
}

// Busy reports whether a durability round is running.
func (e *Engine) Busy() bool {
	e.roundMu.Lock()
	defer e.roundMu.Unlock()
	return e.running != nil
}

// WaitDurable returns once every row whose MustAddRows (and MarkDirty)
// returned before the call is in files on disk that survive a crash (kill
// -9, not only a clean Close), or with ctx's error, or with the error of a
// failed flush.
//
// lib/logstorage has no write-ahead log: appended rows wait in buffers and
// in-memory parts, which its own flusher writes to files FlushInterval
// after they were made. Its public API has no call to write them now, but
// creating a partition snapshot does exactly that (fsync'd files, then
// parts.json rewritten atomically). So a round, shared by every caller
// that arrived before it started and run at most once per
// DurableBatchInterval:
//
//  1. gives the staged rows (see Stage) to the storage and calls
//     DebugFlush, which turns every buffered row (and stream index entry)
//     of every partition into an in-memory part;
//  2. snapshots (and at once deletes the snapshot of) each day that
//     received rows since the previous round began, which writes every
//     in-memory part of that day's data and stream index to files;
//  3. reads UpdateStats: when no in-memory data part is left and no stream
//     was created since the last round that ended at step 4, every row
//     appended before the round is proven on disk, and the round ends
//     (<prefix>_durable_rounds_total{result="flushed"}). An in-memory part
//     left over may hold newer rows only, or old rows that a merge of the
//     library's held while the snapshot skipped them: steps 2 and 3 are
//     retried every FlushInterval/2. (Under a steady load new parts keep
//     coming and only step 4 ends the round; each retry writes them to
//     small files that are merged again. Fewer retries than the former
//     FlushInterval/8 are less of that work; the benchmark's noise hid
//     the difference.)
//  4. Otherwise the round ends at the latest 2.5×FlushInterval after step
//     1, with a last forced flush (result="deadline"). Every in-memory part
//     then holding older rows had a flush deadline at most FlushInterval
//     after step 1, and the library's flusher, ticking every FlushInterval,
//     has had its turn to write it. This is also how new streams are made
//     durable: the stream index's in-memory parts cannot be counted through
//     the public API, so the round waits for its flusher in the same way.
//
// What is guaranteed exactly: after a "flushed" round, every data row
// appended before the call is in fsync'd files listed in parts.json, and
// the index entries of its stream were on disk at Open or were made
// durable by an earlier "deadline" round. After a "deadline" round, rows
// and index entries are on disk unless the library was merging the part
// holding them both at its flusher's first tick after their flush deadline
// and at the last forced flush, or took longer than half a FlushInterval to
// write it: the public API offers no way to tell. Close writes every
// buffered row (callers still waiting then get nil).
func (e *Engine) WaitDurable(ctx context.Context) error {
	e.mu.RLock()
	if e.closed {
		e.mu.RUnlock()
		return e.opts.ErrClosed
	}
	e.roundMu.Lock()
	if e.running == nil && e.next == nil {
		e.dirtyMu.Lock()
		clean := len(e.dirtyDays) == 0
		e.dirtyMu.Unlock()
		if clean {
			// Every round so far has ended, and nothing was appended since
			// the last began.
			e.roundMu.Unlock()
			e.mu.RUnlock()
			return nil
		}
	}
	if e.next == nil {
		e.next = &round{done: make(chan struct{})}
	}
	r := e.next
	e.roundMu.Unlock()
	e.mu.RUnlock()

	select {
	case e.kick <- struct{}{}:
	default:
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runDurability runs the rounds WaitDurable callers ask for, one at a time,
// until Close.
func (e *Engine) runDurability() {
	defer e.wg.Done()
	var last time.Time
	for {
		select {
		case <-e.stop:
			return
		case <-e.kick:
		}
		if !last.IsZero() && !e.sleep(e.cfg.DurableBatchInterval-time.Since(last)) {
			return
		}

		e.roundMu.Lock()
		r := e.next
		e.next, e.running = nil, r
		var days []int64
		if r != nil {
			e.dirtyMu.Lock()
			for d := range e.dirtyDays {
				days = append(days, d)
			}
			clear(e.dirtyDays)
			e.dirtyMu.Unlock()
		}
		e.roundMu.Unlock()
		if r == nil {
			continue
		}

		last = time.Now()
		result, err := e.makeDurable(days)
		if errors.Is(err, errStopping) {
			// Close releases r once MustClose has written everything.
			return
		}
		if err != nil {
			e.logger.Error("forced flush failed", "store", e.opts.Name, "err", err)
			// Keep the days for the next round.
			e.MarkDirty(days)
		}
		e.metrics.durableRounds.WithLabelValues(result).Inc()
		e.metrics.durableSeconds.Observe(time.Since(last).Seconds())

		e.roundMu.Lock()
		e.running = nil
		r.err = err
		close(r.done)
		e.roundMu.Unlock()
	}
}

// makeDurable runs steps 1 to 4 of WaitDurable's round for days.
func (e *Engine) makeDurable(days []int64) (string, error) {
	if len(days) == 0 {
		return ResultEmpty, nil
	}
	e.flushStage()
	streams := e.streamsCreated()
	e.storage.DebugFlush()
	e.noteStreams(streams, e.streamsCreated())
	fi := e.cfg.FlushInterval
	deadline := time.Now().Add(2*fi + fi/2)
	// The stream index holds nothing unproven if no stream was created
	// since the last round that waited for its flusher.
	indexDurable := streams == e.idbDurableStreams
	for {
		if err := e.forceFlush(days); err != nil {
			return ResultError, err
		}
		now := time.Now()
		if !now.Before(deadline) {
			e.idbDurableStreams = streams
			return ResultDeadline, nil
		}
		wait := deadline.Sub(now)
		if indexDurable {
			if e.stats().InmemoryParts == 0 {
				return ResultFlushed, nil
			}
			wait = min(wait, fi/2)
		}
		if !e.sleep(wait) {
			return "", errStopping
		}
	}
}

// forceFlush makes lib/logstorage write the in-memory parts of the days'
// partitions to files, by creating a snapshot of each and deleting it.
func (e *Engine) forceFlush(days []int64) (err error) {
	defer func() {
		// The library panics on file system errors.
		if r := recover(); r != nil {
			err = fmt.Errorf("snapshot partitions: %v", r)
		}
	}()
	for _, day := range days {
		name := time.Unix(0, day*NsPerDay).UTC().Format("20060102")
		for _, p := range e.storage.PartitionSnapshotMustCreate(name) {
			if err := e.storage.PartitionSnapshotDelete(p); err != nil {
				// The partition was dropped meanwhile, and its snapshots
				// with it.
				e.logger.Debug("delete snapshot", "store", e.opts.Name, "path", p, "err", err)
			}
		}
	}
	return nil
}

// sleep waits for d, or returns false when the engine is closing.
func (e *Engine) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.stop:
		return false
	case <-t.C:
		return true
	}
}
