package tail

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/collector/tail/logparse"
)

type fileState uint8

const (
	// stateActive: the file's path still names it.
	stateActive fileState = iota
	// stateDraining: renamed or deleted (or a copytruncate copy); it is
	// read through its open descriptor to its end, then finished.
	stateDraining
	// stateDone: nothing more is read; it stays (in the positions file
	// too) until the sink has acknowledged its last lines.
	stateDone
)

// tailLen is how many bytes before the read offset are kept and compared
// with the file before each read: if they changed, the file was truncated
// and written again past the offset, which its size alone cannot show.
const tailLen = 32

// maxKeptBuffer is the capacity above which a per-file buffer is dropped
// after use rather than kept, so that one long line does not pin memory
// for every file.
const maxKeptBuffer = 64 << 10

// tailedFile is one file the tailer tracks; after a truncation in place
// the same file on disk gets a new tailedFile (a new incarnation), so that
// offsets before and after never mix. Owned by the loop goroutine.
type tailedFile struct {
	path string
	// source is the path the file's labels come from: where it was first
	// found. It stays when the file is renamed or goes on in a copy, and is
	// saved with the position, so a restart keeps the file in its stream.
	source string
	id     fileID
	fp     uint64 // FNV-1a of the first fpLen bytes
	fpLen  int
	fd     *os.File
	state  fileState

	// Offsets. Bytes before readOff have been read; lineOff is where the
	// line being read (in carry) starts; bytes before acked are in entries
	// the sink acknowledged (the saved position). acked <= commit() <=
	// lineOff <= readOff.
	readOff int64
	lineOff int64
	acked   int64
	// size is the largest size seen and checked to be this incarnation's
	// (see observe); what lies between readOff and size is reported as lost
	// when the bytes disappear before they are read.
	size int64

	tail  [tailLen]byte // the tailN bytes before readOff
	tailN int

	carry     []byte // the line being read, up to max_line_bytes
	discard   bool   // the line is over max_line_bytes: skip to its end
	lineTrunc bool
	streams   [3]streamState // by logparse.Stream

	labels [3]labels.Labels // by logparse.Stream
	// labelSets caches the label sets made with parsed fields, by stream
	// and fields (see extract).
	labelSets map[string]labels.Labels

	queued    bool // in Tailer.queue
	atEOF     bool // the last read reached the end
	wantOpen  bool // closed, and there is more to read
	errLogged bool
	// pred is the file this one replaced at its path (rotation); it is
	// read to its end first, so that a stream's lines stay in order.
	pred, succ *tailedFile
	rotatedAt  time.Time
	lastRead   time.Time
	seen       uint64 // scan generation that last saw its path
	// lost counts by reason the bytes this file lost (reportLost); a new
	// incarnation at its path takes them over.
	lost map[string]int64
}

// pending is a message being assembled: partial container lines, or the
// lines of a multi-line entry.
type pending struct {
	active bool
	buf    []byte
	start  int64     // file offset of its first line
	ts     time.Time // of its first line
	last   time.Time // when it last grew
	lines  int
	trunc  bool
}

func (p *pending) begin(start int64, ts, now time.Time) {
	p.active, p.start, p.ts, p.last, p.lines, p.trunc = true, start, ts, now, 0, false
	p.buf = p.buf[:0]
}

func (p *pending) add(msg []byte, limit int, now time.Time) {
	var cut bool
	p.buf, cut = appendCapped(p.buf, msg, limit)
	p.trunc = p.trunc || cut
	p.lines++
	p.last = now
}

func (p *pending) reset() {
	p.active = false
	if cap(p.buf) > maxKeptBuffer {
		p.buf = nil
	} else {
		p.buf = p.buf[:0]
	}
}

type streamState struct {
	part  pending // partial container lines (CRI P, docker without newline)
	block pending // multi-line entry
}

// commit returns the offset before which every line has been turned into
// entries: the saved position may move up to it once those entries are
// acknowledged. Lines held in a pending message are not past it.
func (f *tailedFile) commit() int64 {
	c := f.lineOff
	for i := range f.streams {
		s := &f.streams[i]
		if s.part.active && s.part.start < c {
			c = s.part.start
		}
		if s.block.active && s.block.start < c {
			c = s.block.start
		}
	}
	return c
}

func (f *tailedFile) resetCarry() {
	if cap(f.carry) > maxKeptBuffer {
		f.carry = nil
	} else {
		f.carry = f.carry[:0]
	}
	f.discard, f.lineTrunc = false, false
}

// updateTail keeps the last tailLen bytes of what was read, given the bytes
// just consumed.
func (f *tailedFile) updateTail(c []byte) {
	if len(c) >= tailLen {
		copy(f.tail[:], c[len(c)-tailLen:])
		f.tailN = tailLen
		return
	}
	keep := min(f.tailN, tailLen-len(c))
	copy(f.tail[:keep], f.tail[f.tailN-keep:f.tailN])
	copy(f.tail[keep:], c)
	f.tailN = keep + len(c)
}

// readChunk reads and processes the next chunk of f, as far as the batch
// has room.
func (t *Tailer) readChunk(f *tailedFile) {
	size := min(max(2*(t.cfg.MaxBatchBytes-t.cur.bytes), minReadBytes), len(t.readBuf))
	n, err := f.fd.ReadAt(t.readBuf[:size], f.readOff)
	if n == 0 {
		if err != nil && !errors.Is(err, io.EOF) {
			t.readFailed(f, err)
			return
		}
		t.reachedEOF(f)
		// A file only shrinks when it is truncated.
		if fi, err := f.fd.Stat(); err == nil && fi.Size() < f.size {
			t.onTruncate(f)
		}
		return
	}
	// Checked after the read: if the bytes before the offset are still
	// there now, what was just read followed them.
	if !t.tailIntact(f) {
		t.onTruncate(f)
		return
	}
	chunk := t.readBuf[:n]
	c := t.processChunk(f, chunk)
	f.updateTail(chunk[:c])
	// All n bytes were seen, even if the batch filled before they were
	// all processed.
	f.size = max(f.size, f.readOff+int64(n))
	f.readOff += int64(c)
	f.lastRead = t.now
	f.errLogged = false
	t.extendFingerprint(f)
	t.cur.mark(f, f.commit())
	t.m.bytesRead.Add(float64(c))
	t.m.linesRead.Add(float64(t.lines))
	t.lines = 0
	if c == n && n < size {
		t.reachedEOF(f)
	} else {
		f.atEOF = false
	}
}

func (t *Tailer) reachedEOF(f *tailedFile) {
	f.atEOF = true
	if s := f.succ; s != nil {
		s.pred, f.succ = nil, nil
		t.enqueue(s)
	}
}

func (t *Tailer) readFailed(f *tailedFile, err error) {
	// Treated as the end for now; the next poll tries again.
	f.atEOF = true
	if !f.errLogged {
		f.errLogged = true
		t.logger.Warn("reading log file failed; retrying at the next poll", "path", f.path, "offset", f.readOff, "err", err)
	}
}

// tailIntact reports whether the bytes before f's read offset are still
// those that were read.
func (t *Tailer) tailIntact(f *tailedFile) bool {
	if f.tailN == 0 {
		return true
	}
	var b [tailLen]byte
	k, _ := f.fd.ReadAt(b[:f.tailN], f.readOff-int64(f.tailN))
	return k == f.tailN && bytes.Equal(b[:k], f.tail[:f.tailN])
}

// initTail loads the bytes before the read offset of a file resumed from a
// saved position.
func (t *Tailer) initTail(f *tailedFile) {
	n := min(int64(tailLen), f.readOff)
	k, _ := f.fd.ReadAt(f.tail[:n], f.readOff-n)
	f.tailN = k
	if int64(k) != n {
		f.tailN = 0
	}
}

// extendFingerprint hashes the file's head as far as it is known to be
// this file's (f.size), up to fingerprint_bytes.
func (t *Tailer) extendFingerprint(f *tailedFile) {
	target := int(min(int64(t.cfg.FingerprintBytes), f.size))
	if f.fpLen >= target {
		return
	}
	buf := t.hashBuf[:target-f.fpLen]
	k, _ := f.fd.ReadAt(buf, int64(f.fpLen))
	if f.fpLen == 0 && k > 0 {
		t.newUnsaved = true // the incarnation is identifiable now: record it
	}
	f.fp = fnvAdd(f.fp, buf[:k])
	f.fpLen += k
}

func (t *Tailer) headMatches(fd *os.File, fp uint64, n int) bool {
	h, ok, err := hashPrefix(fd, n, t.hashBuf)
	return err == nil && ok && h == fp
}

// observe takes a size just seen for f, by stat of its path or its
// descriptor, and acts on it: more to read, or a truncation.
func (t *Tailer) observe(f *tailedFile, size int64) {
	if f.state == stateDone {
		return
	}
	if f.fd == nil {
		// Checked when it is opened again.
		if size != f.readOff {
			f.wantOpen = true
		}
		return
	}
	// f.size >= f.readOff: a file only shrinks when it is truncated, even
	// before anything of it was read.
	if size < f.size {
		t.onTruncate(f)
		return
	}
	if size > f.size {
		// Only a size that follows the bytes already read counts as this
		// file's: after a truncate-and-regrow it would overstate a loss.
		if !t.tailIntact(f) {
			t.onTruncate(f)
			return
		}
		f.size = size
		t.extendFingerprint(f)
	}
	if size > f.readOff {
		t.enqueue(f)
	}
}

// onTruncate handles a file truncated in place: copytruncate rotation, or
// a truncation by hand. What was not read yet is looked for in the copy
// (a file in the same directory, named with this one's name as prefix,
// whose head and bytes before the read offset are the same); without one
// it is lost, and reported.
func (t *Tailer) onTruncate(f *tailedFile) {
	t.m.rotations.WithLabelValues(rotationTruncate).Inc()
	if f.state != stateActive {
		t.reportLost(f, f.path, f.readOff, f.size, reasonTruncated)
		f.size = f.readOff
		t.finish(f)
		return
	}
	path, id, fd, seen := f.path, f.id, f.fd, f.size
	if cp := t.findCopy(f); cp != nil {
		// f goes on in the copy, whose bytes up to f's offset are the
		// same; the truncated file starts over as a new incarnation.
		t.open++
		// What the original was seen to hold past the copy's end was
		// written between the copy and the truncation: gone.
		t.reportLost(f, path, max(cp.size, f.readOff), f.size, reasonTruncated)
		delete(t.byID, f.id)
		f.fd, f.id, f.path = cp.fd, cp.id, cp.path
		f.state, f.rotatedAt, f.atEOF = stateDraining, t.now, false
		f.size = cp.size
		t.byID[f.id] = f
		delete(t.byPath, path)
		nf := t.newIncarnation(f, path, id, fd)
		nf.pred, f.succ = f, nf
		t.enqueue(f)
		t.logger.Info("log file truncated in place; reading the rest from its copy", "path", path, "copy", cp.path, "offset", f.readOff, "copy_size", cp.size, "size_seen", seen)
		return
	}
	t.reportLost(f, path, f.readOff, f.size, reasonTruncated)
	f.size = f.readOff
	f.fd = nil // moves to the new incarnation
	t.finish(f)
	t.newIncarnation(f, path, id, fd)
	t.logger.Info("log file truncated in place; reading it from the start", "path", path, "offset", f.readOff)
}

// replaced handles a file whose inode now holds another file (its head
// differs): the old one was deleted.
func (t *Tailer) replaced(f *tailedFile) {
	path, id, fd := f.path, f.id, f.fd
	t.reportLost(f, path, f.readOff, f.size, reasonDeleted)
	f.size = f.readOff
	f.fd = nil // moves to the new incarnation
	t.finish(f)
	t.newIncarnation(f, path, id, fd)
}

// newIncarnation starts tracking the file at path (open as fd, which it
// takes over) from its beginning, with old's labels.
func (t *Tailer) newIncarnation(old *tailedFile, path string, id fileID, fd *os.File) *tailedFile {
	nf := &tailedFile{path: path, source: old.source, id: id, fp: fnvOffset, fd: fd, labels: old.labels, seen: old.seen, lastRead: t.now}
	// The losses stay with the path, which a status page lists, rather
	// than with the old incarnation, which is soon forgotten.
	nf.lost, old.lost = old.lost, nil
	t.newUnsaved = true
	t.track(nf)
	t.enqueue(nf)
	return nf
}

// track registers a new file.
func (t *Tailer) track(f *tailedFile) {
	t.files = append(t.files, f)
	t.byID[f.id] = f
	if f.state == stateActive {
		t.byPath[f.path] = f
	}
}

// rotated handles a file whose path no longer names it: renamed or
// deleted. It is read on through its descriptor.
func (t *Tailer) rotated(f *tailedFile) {
	t.m.rotations.WithLabelValues(rotationRename).Inc()
	if t.byPath[f.path] == f {
		delete(t.byPath, f.path)
	}
	if f.fd == nil {
		// Closed to stay under max_open_files: look for it under a
		// rotated name.
		s := t.findSibling(f.path, func(s *sibling) bool {
			return s.id == f.id && s.size >= f.readOff && t.headMatches(s.fd, f.fp, f.fpLen)
		})
		if s == nil {
			t.reportLost(f, f.path, f.readOff, f.size, reasonDeleted)
			f.size = f.readOff
			t.finish(f)
			return
		}
		f.fd, f.path, f.size = s.fd, s.path, max(f.size, s.size)
		t.open++
		if f.tailN == 0 {
			t.initTail(f)
		}
	}
	f.state, f.rotatedAt, f.atEOF = stateDraining, t.now, false
	t.enqueue(f)
	t.logger.Debug("log file rotated; reading it to its end", "path", f.path, "offset", f.readOff)
}

// finish ends f: the line without a newline at its end and pending
// messages become entries, and f waits for their acknowledgement.
func (t *Tailer) finish(f *tailedFile) {
	if len(f.carry) > 0 || f.discard {
		start := f.lineOff
		f.lineOff = f.readOff
		t.handleLine(f, f.carry, start, f.lineTrunc)
		f.resetCarry()
		t.m.linesRead.Inc()
	}
	f.lineOff = f.readOff
	for i := range f.streams {
		t.flushStream(f, logparse.Stream(i))
	}
	t.cur.mark(f, f.commit())
	f.state = stateDone
	if s := f.succ; s != nil {
		s.pred, f.succ = nil, nil
		t.enqueue(s)
	}
	t.closeFD(f)
	if t.byID[f.id] == f {
		delete(t.byID, f.id)
	}
	if t.byPath[f.path] == f {
		delete(t.byPath, f.path)
	}
}

func (t *Tailer) closeFD(f *tailedFile) {
	if f.fd == nil {
		return
	}
	_ = f.fd.Close() // read-only: nothing to lose
	f.fd = nil
	t.open--
}

// openFile opens f at its path, if a descriptor is free (closing an idle
// file if needed), and checks that it is still the file f tracked.
func (t *Tailer) openFile(f *tailedFile) bool {
	if f.fd != nil {
		return true
	}
	if t.open >= t.cfg.MaxOpenFiles && !t.closeIdle() {
		if !t.openLimitHit {
			t.openLimitHit = true
			t.logger.Warn("too many open log files; new and growing files wait for a free descriptor", "max_open_files", t.cfg.MaxOpenFiles)
		}
		return false
	}
	fd, err := os.Open(f.path)
	if err != nil {
		return false // gone: the next scan sees it
	}
	fi, err := fd.Stat()
	if err != nil || idOf(fi) != f.id {
		_ = fd.Close()
		t.rescanSoon()
		return false
	}
	f.fd = fd
	t.open++
	f.wantOpen = false
	f.lastRead = t.now
	if !t.headMatches(fd, f.fp, f.fpLen) {
		t.replaced(f)
		return false
	}
	if fi.Size() < f.size {
		t.onTruncate(f)
		return false
	}
	if f.tailN == 0 {
		t.initTail(f)
	} else if !t.tailIntact(f) {
		t.onTruncate(f)
		return false
	}
	t.extendFingerprint(f)
	t.observe(f, fi.Size())
	t.enqueue(f)
	return true
}

// closeIdle closes the active file read to its end longest ago, to free a
// descriptor. Rotated files keep theirs: they cannot be opened again.
func (t *Tailer) closeIdle() bool {
	var lru *tailedFile
	for _, f := range t.files {
		if f.fd != nil && f.state == stateActive && f.atEOF && !f.queued && f.succ == nil &&
			(lru == nil || f.lastRead.Before(lru.lastRead)) {
			lru = f
		}
	}
	if lru == nil {
		return false
	}
	t.closeFD(lru)
	return true
}

// sibling is a file next to a tracked one, opened while looking for where
// a rotated file went.
type sibling struct {
	path string
	id   fileID
	size int64
	fd   *os.File
}

// findSibling looks in path's directory, among files named with path's
// name as prefix (app.log.1, 0.log.20240501-120000), for one that match
// accepts. The caller owns the descriptor of the one returned.
func (t *Tailer) findSibling(path string, match func(*sibling) bool) *sibling {
	dir, base := filepath.Split(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if e.Name() == base || !strings.HasPrefix(e.Name(), base) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fd, err := os.Open(p)
		if err != nil {
			continue
		}
		fi, err := fd.Stat()
		if err == nil {
			s := &sibling{path: p, id: idOf(fi), size: fi.Size(), fd: fd}
			if match(s) {
				return s
			}
		}
		_ = fd.Close()
	}
	return nil
}

// findCopy looks for the copy a copytruncate rotation made of f.
func (t *Tailer) findCopy(f *tailedFile) *sibling {
	if f.fpLen == 0 {
		return nil // nothing identifies the copy; nothing was seen either
	}
	return t.findSibling(f.path, func(s *sibling) bool {
		if s.id == f.id || t.byID[s.id] != nil || s.size < f.readOff || !t.headMatches(s.fd, f.fp, f.fpLen) {
			return false
		}
		var b [tailLen]byte
		k, _ := s.fd.ReadAt(b[:f.tailN], f.readOff-int64(f.tailN))
		return k == f.tailN && bytes.Equal(b[:k], f.tail[:f.tailN])
	})
}

// reportLost counts and logs the bytes [from, to) of path as lost, against
// f too when the file is tracked (nil: a saved position no file matched).
func (t *Tailer) reportLost(f *tailedFile, path string, from, to int64, reason string) {
	if to <= from {
		return
	}
	t.m.lostBytes.WithLabelValues(reason).Add(float64(to - from))
	if f != nil {
		if f.lost == nil {
			f.lost = map[string]int64{}
		}
		f.lost[reason] += to - from
	}
	t.logger.Warn("log data lost", "reason", reason, "path", path, "from", from, "to", to, "bytes", to-from)
}
