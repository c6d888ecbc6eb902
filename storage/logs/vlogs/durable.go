package vlogs

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errStopping ends a durability round when Close stops the goroutine.
var errStopping = errors.New("log store closing")

// round is one forced flush that WaitDurable callers share.
type round struct {
	done chan struct{}
	err  error // set before done is closed
}

// WaitDurable returns once every entry whose Append returned before the
// call is in files on disk that survive a crash (kill -9, not only a clean
// Close), or with ctx's error, or with the error of a failed flush.
//
// lib/logstorage has no write-ahead log: appended rows wait in buffers and
// in-memory parts, which its own flusher writes to files FlushInterval
// after they were made. Its public API has no call to write them now, but
// creating a partition snapshot does exactly that (fsync'd files, then
// parts.json rewritten atomically). So a round, shared by every caller
// that arrived before it started and run at most once per
// DurableBatchInterval:
//
//  1. calls DebugFlush, which turns every buffered row (and stream index
//     entry) of every partition into an in-memory part;
//  2. snapshots (and at once deletes the snapshot of) each day that
//     received entries since the previous round began, which writes every
//     in-memory part of that day's data and stream index to files;
//  3. reads UpdateStats: when no in-memory data part is left and no stream
//     was created since the last round that ended at step 4, every row
//     appended before the round is proven on disk, and the round ends
//     (pharos_logs_durable_rounds_total{result="flushed"}). An in-memory
//     part left over may hold newer rows only, or old rows that a merge of
//     the library's held while the snapshot skipped them: steps 2 and 3 are
//     retried every FlushInterval/8.
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
func (s *Store) WaitDurable(ctx context.Context) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.roundMu.Lock()
	if s.running == nil && s.next == nil {
		s.dirtyMu.Lock()
		clean := len(s.dirtyDays) == 0
		s.dirtyMu.Unlock()
		if clean {
			// Every round so far has ended, and nothing was appended since
			// the last began.
			s.roundMu.Unlock()
			s.mu.RUnlock()
			return nil
		}
	}
	if s.next == nil {
		s.next = &round{done: make(chan struct{})}
	}
	r := s.next
	s.roundMu.Unlock()
	s.mu.RUnlock()

	select {
	case s.kick <- struct{}{}:
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
func (s *Store) runDurability() {
	defer s.wg.Done()
	var last time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		if !last.IsZero() && !s.sleep(s.cfg.DurableBatchInterval-time.Since(last)) {
			return
		}

		s.roundMu.Lock()
		r := s.next
		s.next, s.running = nil, r
		var days []int64
		if r != nil {
			s.dirtyMu.Lock()
			for d := range s.dirtyDays {
				days = append(days, d)
			}
			clear(s.dirtyDays)
			s.dirtyMu.Unlock()
		}
		s.roundMu.Unlock()
		if r == nil {
			continue
		}

		last = time.Now()
		result, err := s.makeDurable(days)
		if errors.Is(err, errStopping) {
			// Close releases r once MustClose has written everything.
			return
		}
		if err != nil {
			s.logger.Error("log store forced flush failed", "err", err)
			// Keep the days for the next round.
			s.dirtyMu.Lock()
			for _, d := range days {
				s.dirtyDays[d] = struct{}{}
			}
			s.dirtyMu.Unlock()
		}
		s.metrics.durableRounds.WithLabelValues(result).Inc()
		s.metrics.durableSeconds.Observe(time.Since(last).Seconds())

		s.roundMu.Lock()
		s.running = nil
		r.err = err
		close(r.done)
		s.roundMu.Unlock()
	}
}

// makeDurable runs steps 1 to 4 of WaitDurable's round for days.
func (s *Store) makeDurable(days []int64) (string, error) {
	if len(days) == 0 {
		return resultEmpty, nil
	}
	streams := s.streamsCreated()
	s.storage.DebugFlush()
	fi := s.cfg.FlushInterval
	deadline := time.Now().Add(2*fi + fi/2)
	// The stream index holds nothing unproven if no stream was created
	// since the last round that waited for its flusher.
	indexDurable := streams == s.idbDurableStreams
	for {
		if err := s.forceFlush(days); err != nil {
			return resultError, err
		}
		now := time.Now()
		if !now.Before(deadline) {
			s.idbDurableStreams = streams
			return resultDeadline, nil
		}
		wait := deadline.Sub(now)
		if indexDurable {
			if s.stats().InmemoryParts == 0 {
				return resultFlushed, nil
			}
			wait = min(wait, fi/8)
		}
		if !s.sleep(wait) {
			return "", errStopping
		}
	}
}

// forceFlush makes lib/logstorage write the in-memory parts of the days'
// partitions to files, by creating a snapshot of each and deleting it.
func (s *Store) forceFlush(days []int64) (err error) {
	defer func() {
		// The library panics on file system errors.
		if r := recover(); r != nil {
			err = fmt.Errorf("snapshot partitions: %v", r)
		}
	}()
	for _, day := range days {
		name := time.Unix(0, day*nsPerDay).UTC().Format("20060102")
		for _, p := range s.storage.PartitionSnapshotMustCreate(name) {
			if err := s.storage.PartitionSnapshotDelete(p); err != nil {
				// The partition was dropped meanwhile, and its snapshots
				// with it.
				s.logger.Debug("delete log store snapshot", "path", p, "err", err)
			}
		}
	}
	return nil
}

// sleep waits for d, or returns false when the store is closing.
func (s *Store) sleep(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.stop:
		return false
	case <-t.C:
		return true
	}
}
