package tail

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// rescanDelay coalesces the directory events of a burst (a pod starting
// many containers, a rotation) into one scan.
const rescanDelay = 20 * time.Millisecond

// rescan matches the globs again: it starts tracking new files, notices
// rotations (the path names another file, or none), and checks the size
// of every active file. initial is the scan at start-up, which matches
// files with the saved positions.
func (t *Tailer) rescan(initial bool) {
	t.scanGen++
	gen := t.scanGen
	for _, p := range t.glob() {
		fi, err := os.Stat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		id, size := idOf(fi), fi.Size()
		f := t.byPath[p]
		if f != nil && f.id == id {
			f.seen = gen
			t.observe(f, size)
			continue
		}
		if f != nil {
			t.rotated(f) // the name is another file's now
		}
		if g := t.byID[id]; g != nil {
			// Renamed to a name that is tailed too: the same file.
			if t.byPath[g.path] == g {
				delete(t.byPath, g.path)
			}
			g.path, g.state, g.seen = p, stateActive, gen
			t.byPath[p] = g
			t.observe(g, size)
			continue
		}
		nf := t.addFile(p, id, size, initial)
		nf.seen = gen
		if f != nil && f.state == stateDraining {
			nf.pred, f.succ = f, nf
		}
	}
	if t.newUnsaved && !initial {
		// (At start-up, Run saves once the leftovers are settled too.)
		t.newUnsaved = false
		_ = t.savePositions() // logged and counted; retried at the next tick
	}
	// Index loop: rotated may start new incarnations, appended to files.
	for i := 0; i < len(t.files); i++ {
		f := t.files[i]
		if f.state != stateActive || f.seen == gen {
			continue
		}
		if fi, err := os.Stat(f.path); err == nil && idOf(fi) == f.id {
			// Still there but no longer matched: read on, as nothing
			// else will.
			f.seen = gen
			t.observe(f, fi.Size())
			continue
		}
		t.rotated(f)
	}
	t.updateWatches()
}

// glob returns the files matching an include glob and no exclude glob,
// sorted.
func (t *Tailer) glob() []string {
	out := t.globBuf[:0]
	for _, pat := range t.cfg.Include {
		ms, _ := filepath.Glob(pat) // patterns are validated
		for _, m := range ms {
			if !t.excluded(m) {
				out = append(out, m)
			}
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	t.globBuf = out
	return out
}

func (t *Tailer) excluded(path string) bool {
	for _, ex := range t.cfg.Exclude {
		if ok, _ := filepath.Match(ex, path); ok {
			return true
		}
	}
	return false
}

// addFile starts tracking a file found at path, resuming from its saved
// position if it has one.
func (t *Tailer) addFile(path string, id fileID, size int64, initial bool) *tailedFile {
	f := &tailedFile{path: path, source: path, id: id, fp: fnvOffset, labels: t.fileLabels(path), lastRead: t.now}
	switch {
	case len(t.restore[id]) > 0:
		t.matchRestore(f)
	case initial && t.firstStart && t.cfg.StartAt == StartEnd:
		f.readOff, f.lineOff, f.acked, f.size = size, size, size, size
	}
	if f.source == path {
		// Not known from the positions file: record it there before any of
		// its lines go out, so that after a crash and a rename it is found
		// again by identity and keeps its stream (re-read lines are then
		// exact duplicates, which queries drop, not copies in a new stream).
		t.newUnsaved = true
	}
	t.track(f)
	if !t.openFile(f) && f.state == stateActive {
		f.wantOpen = true
	}
	t.logger.Debug("tailing log file", "path", path, "offset", f.readOff)
	return f
}

// matchRestore looks among the saved positions with f's device and inode
// for one whose fingerprint matches the file's head, and resumes from it.
func (t *Tailer) matchRestore(f *tailedFile) {
	fd, err := os.Open(f.path)
	if err != nil {
		return
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil || idOf(fi) != f.id {
		return
	}
	cands := t.restore[f.id]
	for i, e := range cands {
		if fi.Size() < e.Offset || !t.headMatches(fd, e.fingerprint(), e.FPLen) {
			continue // truncated or another file on a reused inode
		}
		f.fp, f.fpLen = e.fingerprint(), e.FPLen
		f.readOff, f.lineOff, f.acked, f.size = e.Offset, e.Offset, e.Offset, max(e.Size, e.Offset)
		if src := e.source(); src != f.source {
			// Renamed since it was first found: it stays in its stream.
			f.source, f.labels = src, t.fileLabels(src)
		}
		t.restore[f.id] = slices.Delete(cands, i, i+1)
		return
	}
}

// restoreLeftovers handles the saved positions no file matched: a file
// renamed while the agent was down (or the copy of one truncated) is read
// on under its new name; one that is gone is reported lost as far as it
// was known.
func (t *Tailer) restoreLeftovers() {
	for _, es := range t.restore {
		for _, e := range es {
			s := t.findSibling(e.Path, func(s *sibling) bool {
				return t.byID[s.id] == nil && s.size >= e.Offset && t.headMatches(s.fd, e.fingerprint(), e.FPLen)
			})
			if s == nil {
				reason := reasonDeleted
				if fi, err := os.Stat(e.Path); err == nil && idOf(fi) == e.id() {
					reason = reasonTruncated
				}
				t.reportLost(nil, e.Path, e.Offset, e.Size, reason)
				continue
			}
			f := &tailedFile{
				path: s.path, id: s.id, fp: e.fingerprint(), fpLen: e.FPLen, fd: s.fd,
				state: stateDraining, rotatedAt: t.now, lastRead: t.now,
				readOff: e.Offset, lineOff: e.Offset, acked: e.Offset, size: max(e.Size, s.size),
				source: e.source(), labels: t.fileLabels(e.source()),
			}
			t.open++
			t.initTail(f)
			t.track(f)
			t.enqueue(f)
			if n := t.byPath[e.Path]; n != nil && n.pred == nil {
				n.pred, f.succ = f, n
			}
			t.logger.Info("log file rotated while the agent was down; reading it on", "path", e.Path, "now", s.path, "offset", e.Offset)
		}
	}
	t.restore = nil
}

// openWaiting opens the files that have more to read but were closed (or
// never opened) for want of a descriptor.
func (t *Tailer) openWaiting() {
	waiting := false
	for i := 0; i < len(t.files); i++ {
		f := t.files[i]
		if f.fd != nil || !f.wantOpen || f.state != stateActive {
			continue
		}
		if !t.openFile(f) && f.state == stateActive && f.wantOpen {
			waiting = true
		}
	}
	if !waiting && t.openLimitHit {
		t.openLimitHit = false
		t.logger.Info("open log files back under the limit", "max_open_files", t.cfg.MaxOpenFiles)
	}
}

// pollDraining checks the rotated files: more written to them, or read to
// their end and quiet for rotate_wait, in which case they are finished.
func (t *Tailer) pollDraining() {
	for i := 0; i < len(t.files); i++ {
		f := t.files[i]
		if f.state != stateDraining || f.fd == nil {
			continue
		}
		fi, err := f.fd.Stat()
		if err != nil {
			continue
		}
		t.observe(f, fi.Size())
		if f.state == stateDraining && f.atEOF && !f.queued && fi.Size() == f.readOff &&
			t.now.Sub(f.rotatedAt) >= t.cfg.RotateWait && t.room() {
			t.finish(f)
		}
	}
}

// updateWatches watches every directory a new matching file could appear
// in: the directories matching each include glob's directory part, their
// parents up to the glob's fixed prefix (so that new pod directories are
// seen), and that prefix.
func (t *Tailer) updateWatches() {
	if t.watcher == nil {
		return
	}
	want := t.wantWatch
	clear(want)
	for _, pat := range t.cfg.Include {
		for d := filepath.Dir(pat); ; d = filepath.Dir(d) {
			if !hasMeta(d) {
				if isDir(d) {
					want[d] = true
				}
				break
			}
			ms, _ := filepath.Glob(d)
			for _, m := range ms {
				if isDir(m) {
					want[m] = true
				}
			}
		}
	}
	for d := range want {
		if t.watched[d] {
			continue
		}
		if err := t.watcher.Add(d); err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !t.watchWarned {
				t.watchWarned = true
				t.logger.Warn("cannot watch a log directory; relying on polling", "dir", d, "poll_interval", t.cfg.PollInterval, "err", err)
			}
			continue
		}
		t.watched[d] = true
	}
	for d := range t.watched {
		if !want[d] {
			_ = t.watcher.Remove(d) // gone already, most likely
			delete(t.watched, d)
		}
	}
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// onEvent handles a file-system event: a write makes its file worth
// reading; anything that changes names calls for a scan.
func (t *Tailer) onEvent(ev fsnotify.Event) {
	if ev.Has(fsnotify.Write) {
		if f := t.byPath[ev.Name]; f != nil {
			if f.fd == nil {
				f.wantOpen = true
			} else {
				t.enqueue(f)
			}
		}
	}
	if ev.Has(fsnotify.Create) || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		t.rescanSoon()
	}
}

func (t *Tailer) onWatchError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		// Events were dropped: look at everything.
		t.rescanSoon()
		for _, f := range t.files {
			if f.fd != nil {
				t.enqueue(f)
			}
		}
		return
	}
	t.logger.Warn("file watcher error; polling goes on", "err", err)
}

func (t *Tailer) rescanSoon() {
	if !t.rescanDue {
		t.rescanDue = true
		t.rescanTimer.Reset(rescanDelay)
	}
}
