package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Append writes a record and syncs it to disk: once it returns nil, the
// record survives a crash. samples is what the record counts, reported if
// the bound drops it. The spool does not retain data.
func (s *Spool) Append(data []byte, samples int) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	drops, err := s.writeLocked(data, samples)
	if err == nil {
		err = s.syncLocked()
	}
	s.reportDrops(drops)
	return err
}

// Write writes a record without waiting for the disk; it becomes readable,
// and durable, at the next Sync. Writing several records and syncing once
// (group commit) costs one fsync instead of one per record. The spool does
// not retain data.
func (s *Spool) Write(data []byte, samples int) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	drops, err := s.writeLocked(data, samples)
	s.reportDrops(drops)
	return err
}

// Sync makes every record written so far durable and readable. If the
// fsync fails the records are made readable anyway (they are in the page
// cache and will be replayed from there) and the error is returned: they
// may not survive a machine crash.
func (s *Spool) Sync() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.syncLocked()
}

// dropped sums records the bound deleted during one write.
type dropped struct{ records, samples, segments int }

func (s *Spool) reportDrops(d dropped) {
	if d.records == 0 && d.segments == 0 {
		return
	}
	s.logger.Warn("spool full, dropped its oldest records",
		"records", d.records, "samples", d.samples, "segments", d.segments, "max_bytes", s.cfg.MaxBytes)
	if d.records > 0 {
		s.onDrop(d.records, d.samples)
	}
}

// writeLocked writes one frame; wmu is held.
func (s *Spool) writeLocked(data []byte, samples int) (dropped, error) {
	if s.closed {
		return dropped{}, ErrClosed
	}
	size := int64(frameExtra + len(data))
	if int64(len(data)) > s.cfg.MaxRecordBytes() {
		return dropped{}, fmt.Errorf("%w: %d bytes, the limit is %d (half of agent.spool.max_bytes, less the frame)", ErrTooLarge, len(data), s.cfg.MaxRecordBytes())
	}
	if samples < 0 || samples > 1<<32-1 {
		return dropped{}, fmt.Errorf("spool: sample count %d out of range", samples)
	}
	w := &s.w
	if w.seg != nil && w.off > 0 && w.off+size > s.cfg.SegmentBytes {
		// A full segment is sealed so that it can be deleted whole, once
		// confirmed or when the bound needs room.
		if err := s.seal(); err != nil {
			return dropped{}, err
		}
	}
	if w.seg == nil {
		if err := s.createSegment(); err != nil {
			return dropped{}, err
		}
	}
	d, err := s.makeRoom(size)
	if err != nil {
		return d, err
	}

	w.buf = appendFrame(w.buf[:0], w.nextSeq, samples, data)
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		// w.off does not move: the next write overwrites what part of
		// this frame reached the file.
		return d, fmt.Errorf("spool write: %w", err)
	}
	w.off += size
	w.nextSeq++
	w.pendRecords++
	w.pendSamples += samples
	s.mu.Lock()
	w.seg.size = w.off
	s.total += size
	s.m.bytes.Set(float64(s.total))
	s.mu.Unlock()
	return d, nil
}

// makeRoom deletes the oldest segments until a frame of size fits within
// MaxBytes. The active segment is never deleted: the configuration limits
// (two segments at least, records at most half the bound) leave room once
// the sealed ones are gone.
func (s *Spool) makeRoom(size int64) (dropped, error) {
	var d dropped
	var paths []string
	s.mu.Lock()
	for s.total+size > s.cfg.MaxBytes && len(s.segs) > 0 && s.segs[0] != s.w.seg {
		head := s.segs[0]
		d.records += head.records - head.doneRecords
		d.samples += head.samples - head.doneSamples
		d.segments++
		paths = append(paths, s.removeHeadLocked())
	}
	s.updateGaugesLocked()
	s.mu.Unlock()
	return d, removeFiles(paths)
}

// syncLocked fsyncs the active segment and makes its new records readable;
// wmu is held.
func (s *Spool) syncLocked() error {
	w := &s.w
	if w.f == nil || w.pendRecords == 0 {
		return nil
	}
	err := w.f.Sync()
	s.mu.Lock()
	s.publishLocked()
	s.mu.Unlock()
	s.wake()
	if err != nil {
		return fmt.Errorf("spool sync: %w", err)
	}
	return nil
}

// publishLocked makes the records written to the active segment readable;
// wmu and mu are held.
func (s *Spool) publishLocked() {
	w := &s.w
	w.seg.end = w.off
	w.seg.records += w.pendRecords
	w.seg.samples += w.pendSamples
	s.m.appended.Add(float64(w.pendRecords))
	w.pendRecords, w.pendSamples = 0, 0
	s.updateGaugesLocked()
}

// seal syncs and closes the active segment; the next write starts a new
// one. Fully confirmed segments are deleted on the way.
func (s *Spool) seal() error {
	w := &s.w
	var err error
	if w.pendRecords > 0 {
		err = w.f.Sync()
	}
	err = errors.Join(err, w.f.Close())
	s.mu.Lock()
	s.publishLocked()
	w.seg.sealed = true
	paths := s.collectLocked()
	s.updateGaugesLocked()
	s.mu.Unlock()
	w.seg, w.f, w.off = nil, nil, 0
	s.wake()
	if err != nil {
		return fmt.Errorf("spool seal segment: %w", err)
	}
	return removeFiles(paths)
}

// createSegment starts the active segment, named after the sequence number
// of the record about to be written.
func (s *Spool) createSegment() error {
	w := &s.w
	path := filepath.Join(s.dir, segmentName(w.nextSeq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("spool create segment: %w", err)
	}
	// The new file's directory entry must survive a crash, or its
	// records would vanish with it.
	if err := syncDir(s.dir); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return fmt.Errorf("spool create segment: %w", err)
	}
	seg := &segment{first: w.nextSeq, path: path}
	s.mu.Lock()
	s.segs = append(s.segs, seg)
	paths := s.collectLocked()
	s.updateGaugesLocked()
	s.mu.Unlock()
	w.seg, w.f, w.off = seg, f, 0
	return removeFiles(paths)
}
