package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Read returns the next record not yet read, in the order records were
// written, with its data read into dst (grown when too small; Record.Data
// aliases it, so pass rec.Data[:0] back to reuse the buffer). It returns
// ErrEmpty when every readable record has been read: wait on Notify. A
// record damaged on disk is skipped, counted and logged.
//
// A record read stays in the spool until Confirm; after a restart, or a
// Rewind, it is read again.
func (s *Spool) Read(dst []byte) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Record{}, ErrClosed
	}
	for {
		if s.rseg == nil {
			if len(s.segs) == 0 {
				return Record{}, ErrEmpty
			}
			s.rseg, s.roff = s.segs[0], 0
		}
		seg := s.rseg
		if s.roff >= seg.end {
			if !s.advanceLocked() {
				return Record{}, ErrEmpty
			}
			continue
		}
		if seg.rf == nil {
			f, err := os.Open(seg.path)
			if err != nil {
				return Record{}, fmt.Errorf("spool read: %w", err)
			}
			seg.rf = f
		}
		n, seq, samples, ok, err := s.readFrameLocked(seg, &dst)
		if err != nil {
			return Record{}, err
		}
		if !ok {
			if err := s.recoverLocked(seg); err != nil {
				return Record{}, err
			}
			continue
		}
		off := s.roff
		s.roff += frameExtra + n
		if seq < s.cursor {
			continue // confirmed before a restart
		}
		s.flight = append(s.flight, inflight{seq: seq, samples: samples, seg: seg, off: off})
		s.lastRead = seq
		return Record{Seq: seq, Samples: samples, Data: dst}, nil
	}
}

// readFrameLocked reads the frame at the read position. ok is false when
// the bytes there are not a valid frame; err reports I/O failures only.
func (s *Spool) readFrameLocked(seg *segment, dst *[]byte) (n int64, seq uint64, samples int, ok bool, err error) {
	rem := seg.end - s.roff
	if rem < frameExtra {
		return 0, 0, 0, false, nil
	}
	h := s.hdr[:]
	if _, err := seg.rf.ReadAt(h, s.roff); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, 0, false, nil // the file shrank under us
		}
		return 0, 0, 0, false, fmt.Errorf("spool read: %w", err)
	}
	if n, ok = parseHeader(h, rem); !ok {
		return 0, 0, 0, false, nil
	}
	if int64(cap(*dst)) < n {
		*dst = make([]byte, n)
	}
	*dst = (*dst)[:n]
	if _, err := seg.rf.ReadAt(*dst, s.roff+frameExtra); err != nil {
		if errors.Is(err, io.EOF) {
			return 0, 0, 0, false, nil
		}
		return 0, 0, 0, false, fmt.Errorf("spool read: %w", err)
	}
	seq, samples, ok = checkFrame(h, *dst)
	return n, seq, samples, ok, nil
}

// advanceLocked moves the read position from the end of a sealed segment to
// the start of the next one, if there is one.
func (s *Spool) advanceLocked() bool {
	if !s.rseg.sealed {
		return false
	}
	nxt := s.next(s.rseg)
	if nxt == nil {
		return false
	}
	s.rseg.closeReader()
	s.rseg, s.roff = nxt, 0
	return true
}

// recoverLocked handles a damaged frame at the read position found after
// Open checked the files (the disk corrupted it, or something else wrote
// the file): it rescans the segment, moves to the next valid frame, and
// recounts the segment's records.
func (s *Spool) recoverLocked(seg *segment) error {
	buf := make([]byte, seg.end)
	n, err := seg.rf.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("spool read: %w", err)
	}
	buf = buf[:n]
	next := int64(-1)
	var records, samples, doneRecords, doneSamples int
	scan(buf, func(f frame) {
		records++
		samples += f.samples
		if f.seq < s.cursor {
			doneRecords++
			doneSamples += f.samples
		}
		if next < 0 && f.off > s.roff {
			next = f.off
		}
	})
	if next < 0 {
		next = max(int64(n), s.roff)
		seg.end = next
	}
	lost := seg.records - records
	seg.records, seg.samples, seg.doneRecords, seg.doneSamples = records, samples, doneRecords, doneSamples
	skipped := next - s.roff
	s.m.corrupt.Add(float64(skipped))
	s.logger.Warn("spool record damaged on disk, skipped it",
		"segment", seg.path, "offset", s.roff, "bytes", skipped, "records_lost", lost)
	s.roff = next
	s.updateGaugesLocked()
	return nil
}

// Confirm marks every record read up to and including seq as delivered:
// they are never read again, after a restart neither. The new position is
// written to the cursor file before Confirm returns, and segments holding
// only confirmed records are deleted.
func (s *Spool) Confirm(seq uint64) error {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if seq > s.lastRead {
		last := s.lastRead
		s.mu.Unlock()
		return fmt.Errorf("spool: confirm %d: only records up to %d have been read", seq, last)
	}
	n := 0
	for n < len(s.flight) && s.flight[n].seq <= seq {
		e := s.flight[n]
		e.seg.doneRecords++
		e.seg.doneSamples += e.samples
		n++
	}
	s.flight = s.flight[:copy(s.flight, s.flight[n:])]
	s.m.replayed.Add(float64(n))
	cursor := max(s.cursor, seq+1)
	changed := cursor != s.cursor
	s.cursor = cursor
	paths := s.collectLocked()
	s.updateGaugesLocked()
	s.mu.Unlock()

	var err error
	if changed {
		err = s.writeCursor(cursor)
	}
	return errors.Join(err, removeFiles(paths))
}

// Rewind makes the next Read return the oldest record read but not yet
// confirmed, for a reader whose delivery failed.
func (s *Spool) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.flight) == 0 {
		return
	}
	e := s.flight[0]
	s.rseg, s.roff = e.seg, e.off
	s.lastRead = e.seq - 1
	s.flight = s.flight[:0]
}

// collectLocked takes out of the spool the sealed segments that lie wholly
// before the oldest unconfirmed record read (or the read position), and
// returns their paths to delete once mu is released.
func (s *Spool) collectLocked() []string {
	if s.rseg != nil && s.roff >= s.rseg.end {
		s.advanceLocked()
	}
	ack := s.rseg
	if len(s.flight) > 0 {
		ack = s.flight[0].seg
	}
	if ack == nil {
		return nil
	}
	var paths []string
	for len(s.segs) > 0 && s.segs[0] != ack && s.segs[0].sealed {
		paths = append(paths, s.removeHeadLocked())
	}
	return paths
}

// writeCursor persists the confirmed position atomically: a temporary file,
// fsynced, renamed over the old one. The directory is not fsynced: should a
// machine crash undo the rename, records confirmed since the last one are
// replayed, which downstream de-duplicates; a process crash cannot undo it.
func (s *Spool) writeCursor(seq uint64) error {
	f, err := os.OpenFile(s.cursorTmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("spool write cursor: %w", err)
	}
	_, err = f.Write(encodeCursor(s.cursorBuf[:0], seq))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.cursorTmp, s.cursorPath)
	}
	if err != nil {
		return fmt.Errorf("spool write cursor: %w", err)
	}
	return nil
}
