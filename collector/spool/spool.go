// Package spool is a durable FIFO queue of records on local disk: the place
// where the agent keeps batches while NATS cannot take them, so that an
// outage or a restart loses nothing.
//
// Records are appended to segment files in one directory, each framed with
// its length and a CRC-32C, and read back in order. A reader confirms what
// it has delivered; the confirmed position is kept in a small cursor file,
// and fully confirmed segments are deleted. Delivery is at-least-once: a
// record read but not yet confirmed when the process stops is read again
// after a restart.
//
// The spool survives kill -9: a torn frame at the tail is found by its
// length and CRC and truncated when the spool is opened, damage in the
// middle is skipped and counted, and nothing in the files can crash the
// process. It is bounded in bytes: when a write would pass the bound, the
// oldest whole segments are deleted, and the records they held are reported
// through a DropFunc and logged.
package spool

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrEmpty is returned by Read when every readable record has been read.
	ErrEmpty = errors.New("spool: no record to read")
	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("spool: closed")
	// ErrTooLarge is returned by Write for a record bigger than half of
	// MaxBytes, which the bound could not hold. It is permanent for that
	// record.
	ErrTooLarge = errors.New("spool: record too large")
	// ErrLocked is returned by Open when another process holds the
	// directory.
	ErrLocked = errors.New("spool: directory in use by another process")
)

const (
	segmentSuffix = ".seg"
	cursorName    = "cursor"
	lockName      = "LOCK"
)

// DropFunc is told how many records, and how many samples they counted,
// the spool deleted unconfirmed to stay within its bound. It runs on the
// goroutine that called Write or Append, after the spool's locks are
// released; it must not call Write, Sync or Append.
type DropFunc func(records, samples int)

// Record is one record read from the spool.
type Record struct {
	// Seq identifies the record for Confirm. Sequence numbers grow by one
	// per record written and are never reused, across restarts too.
	Seq uint64
	// Samples is the count given to Write.
	Samples int
	// Data is the record as written. It aliases the buffer passed to Read.
	Data []byte
}

// Spool is a durable FIFO queue of records. Open one per directory.
//
// Concurrency: Spool is safe for concurrent use, and is meant for one
// writer goroutine (Write, Sync, Append) and one reader goroutine (Read,
// Confirm, Rewind) working at the same time. Writers are serialised among
// themselves, and so are readers; a writer does its file I/O (write, fsync)
// without blocking the reader, which waits only while the writer updates
// the shared bookkeeping. Len, Bytes and Notify may be called from any
// goroutine. Lock order: wmu, then cmu, then mu.
type Spool struct {
	cfg    Config
	dir    string
	onDrop DropFunc
	logger *slog.Logger
	m      *metrics
	lock   *os.File
	notify chan struct{}

	// wmu serialises writers and guards w.
	wmu sync.Mutex
	w   writer

	// cmu serialises cursor-file updates, so they land in order, and
	// guards cursorBuf.
	cmu        sync.Mutex
	cursorBuf  [cursorSize]byte
	cursorPath string
	cursorTmp  string

	// mu guards everything below; the writer and the reader share it.
	mu     sync.Mutex
	closed bool
	segs   []*segment // oldest first; only the last may be active
	total  int64      // Σ size of segs
	cursor uint64     // first unconfirmed sequence number
	// The read position: the next Read looks at roff in rseg (nil: the
	// start of segs[0]).
	rseg     *segment
	roff     int64
	lastRead uint64
	// flight lists records read but not confirmed, oldest first; its head
	// is where Rewind goes back to.
	flight []inflight
	hdr    [frameExtra]byte
}

// segment is one segment file. Its fields are guarded by Spool.mu.
type segment struct {
	first   uint64 // sequence number of its first record; names the file
	path    string
	size    int64 // bytes on disk, synced or not
	end     int64 // readable end: synced and valid
	sealed  bool  // written no more: readers may move past end
	records int   // readable records
	samples int
	// Confirmed records among them.
	doneRecords int
	doneSamples int
	rf          *os.File // read handle, opened when first read
}

// inflight is a record read but not yet confirmed.
type inflight struct {
	seq     uint64
	samples int
	seg     *segment
	off     int64
}

// writer is the state of the writing side, owned by whoever holds wmu.
type writer struct {
	seg     *segment // active segment; nil until the next write
	f       *os.File
	off     int64 // == seg.size
	nextSeq uint64
	buf     []byte
	// Written to seg since the last sync: not readable yet.
	pendRecords int
	pendSamples int
}

// Open opens the spool in dir, creating the directory if needed, and
// checks every segment: a torn tail (from a crash mid-write) is truncated,
// damage in the middle is skipped and counted, and records confirmed before
// a restart are not read again. onDrop (may be nil) hears of records dropped
// to stay within cfg.MaxBytes. Metrics go to reg (nil: not registered).
func Open(cfg Config, dir string, onDrop DropFunc, logger *slog.Logger, reg prometheus.Registerer) (*Spool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if onDrop == nil {
		onDrop = func(int, int) {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	s := &Spool{
		cfg:    cfg,
		dir:    dir,
		onDrop: onDrop,
		logger: logger.With("spool", dir),
		m:      newMetrics(),
		lock:   lock,
		notify: make(chan struct{}, 1),

		cursorPath: filepath.Join(dir, cursorName),
		cursorTmp:  filepath.Join(dir, cursorName+".tmp"),
	}
	if err := s.load(); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if err := s.m.register(reg); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("open spool %s: register metrics: %w", dir, err)
	}
	s.updateGaugesLocked()
	if n := s.lenLocked(); n > 0 {
		s.logger.Info("spool holds records from an earlier run", "records", n, "samples", s.pendingSamplesLocked(), "bytes", s.total)
	}
	return s, nil
}

// load reads the cursor and scans the segments.
func (s *Spool) load() error {
	_ = os.Remove(s.cursorTmp) // an interrupted cursor update
	switch b, err := os.ReadFile(s.cursorPath); {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		c, err := decodeCursor(b)
		if err != nil {
			// Replaying confirmed records again is harmless downstream
			// (duplicates are dropped); refusing to start is not.
			s.logger.Warn("spool cursor unreadable, replaying every record on disk", "err", err)
		}
		s.cursor = c
	}

	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	var segs []*segment
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		first, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 10, 64)
		if err != nil {
			s.logger.Warn("ignoring unexpected file in spool directory", "file", name)
			continue
		}
		segs = append(segs, &segment{first: first, path: filepath.Join(s.dir, name)})
	}
	slices.SortFunc(segs, func(a, b *segment) int { return cmp.Compare(a.first, b.first) })

	nextSeq := max(s.cursor, 1)
	var buf []byte
	for _, seg := range segs {
		keep, last, err := s.loadSegment(seg, &buf)
		if err != nil {
			return err
		}
		if last >= nextSeq {
			nextSeq = last + 1
		}
		if !keep {
			if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		s.segs = append(s.segs, seg)
		s.total += seg.size
	}
	s.w.nextSeq = nextSeq
	return nil
}

// loadSegment scans one segment file, truncating a torn tail. It reports
// whether the segment holds unconfirmed records, and the highest sequence
// number in it (0 if none). The first segment with unconfirmed records
// becomes the read position.
func (s *Spool) loadSegment(seg *segment, buf *[]byte) (keep bool, last uint64, err error) {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return false, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, 0, err
	}
	size := st.Size()
	if int64(cap(*buf)) < size {
		*buf = make([]byte, size)
	}
	b := (*buf)[:size]
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), b); err != nil {
		return false, 0, err
	}
	firstUnconfirmed := int64(-1)
	res := scan(b, func(fr frame) {
		seg.records++
		seg.samples += fr.samples
		last = max(last, fr.seq)
		if fr.seq < s.cursor {
			seg.doneRecords++
			seg.doneSamples += fr.samples
		} else if firstUnconfirmed < 0 {
			firstUnconfirmed = fr.off
		}
	})
	if res.corrupt > 0 {
		s.m.corrupt.Add(float64(res.corrupt))
		s.logger.Warn("spool segment damaged, skipped the damaged part", "segment", seg.path, "bytes", res.corrupt)
	}
	if tail := size - res.validEnd; tail > 0 {
		// A crash mid-write leaves part of a frame at the end; the write
		// never returned, so nothing that was acknowledged is lost here.
		s.m.corrupt.Add(float64(tail))
		s.logger.Warn("spool segment has a torn tail, truncating it", "segment", seg.path, "bytes", tail, "valid_bytes", res.validEnd)
		if err := f.Truncate(res.validEnd); err != nil {
			return false, 0, err
		}
	}
	seg.size, seg.end, seg.sealed = res.validEnd, res.validEnd, true
	if seg.doneRecords == seg.records {
		return false, last, nil // empty, or confirmed entirely
	}
	if s.rseg == nil {
		s.rseg, s.roff = seg, firstUnconfirmed
	}
	return true, last, nil
}

// Close syncs what was written, closes the files and releases the
// directory. Records not confirmed stay for the next Open.
func (s *Spool) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	var errs []error
	if s.w.f != nil {
		if s.w.pendRecords > 0 {
			errs = append(errs, s.syncLocked())
		}
		errs = append(errs, s.w.f.Close())
		s.w.f = nil
	}
	s.mu.Lock()
	s.closed = true
	for _, seg := range s.segs {
		seg.closeReader()
	}
	s.mu.Unlock()
	errs = append(errs, s.lock.Close())
	return errors.Join(errs...)
}

// Len returns the number of readable records not yet confirmed.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lenLocked()
}

// Bytes returns the size of the spool's segment files, what MaxBytes
// bounds. It includes confirmed records until their segment is deleted:
// sealed segments as soon as they are confirmed, the segment being written
// once it is full (or at the next Open), so a drained spool keeps at most
// one segment's worth of disk.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Stats is a spool's size, for status pages.
type Stats struct {
	// Bytes is what Bytes returns: the size of the segment files.
	Bytes int64
	// Segments is the number of segment files.
	Segments int
	// Records is what Len returns.
	Records int
	// LimitBytes is the bound on Bytes (Config.MaxBytes).
	LimitBytes int64
}

// Stats returns the spool's size. Like Len, it may be called from any
// goroutine; it costs one pass over the segments.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Bytes: s.total, Segments: len(s.segs), Records: s.lenLocked(), LimitBytes: s.cfg.MaxBytes}
}

// Notify returns a channel that receives a value when records become
// readable, so a reader that saw ErrEmpty knows when to Read again. It
// holds at most one pending value and is never closed.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

func (s *Spool) lenLocked() int {
	n := 0
	for _, seg := range s.segs {
		n += seg.records - seg.doneRecords
	}
	return n
}

func (s *Spool) pendingSamplesLocked() int {
	n := 0
	for _, seg := range s.segs {
		n += seg.samples - seg.doneSamples
	}
	return n
}

func (s *Spool) updateGaugesLocked() {
	s.m.bytes.Set(float64(s.total))
	s.m.records.Set(float64(s.lenLocked()))
}

// next returns the segment after seg, or nil.
func (s *Spool) next(seg *segment) *segment {
	for i, x := range s.segs {
		if x == seg && i+1 < len(s.segs) {
			return s.segs[i+1]
		}
	}
	return nil
}

// removeHeadLocked takes the oldest segment out of the spool and returns
// its path for the caller to delete once mu is released. A reader inside
// it moves to the start of the next segment; records it had in flight
// there are forgotten.
func (s *Spool) removeHeadLocked() string {
	seg := s.segs[0]
	s.segs[0] = nil
	s.segs = s.segs[1:]
	s.total -= seg.size
	seg.closeReader()
	if s.rseg == seg {
		s.rseg, s.roff = nil, 0
		if len(s.segs) > 0 {
			s.rseg = s.segs[0]
		}
	}
	n := 0
	for n < len(s.flight) && s.flight[n].seg == seg {
		n++
	}
	s.flight = s.flight[:copy(s.flight, s.flight[n:])]
	return seg.path
}

func (seg *segment) closeReader() {
	if seg.rf != nil {
		_ = seg.rf.Close()
		seg.rf = nil
	}
}

func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func removeFiles(paths []string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func segmentName(first uint64) string {
	return fmt.Sprintf("%020d%s", first, segmentSuffix)
}

// syncDir makes a created or renamed directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
