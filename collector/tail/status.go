package tail

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/grafana/dskit/services"

	"github.com/pharos-obs/pharos/collector/tail/logparse"
)

// ErrNotRunning is returned by Files when the tailer is not running.
var ErrNotRunning = errors.New("tail: not running")

// File states in FileStatus.
const (
	// FileTailing: the file's path names it and there is more to read.
	FileTailing = "tailing"
	// FileEOF: the file's path names it and it is read to its end.
	FileEOF = "eof"
	// FileGone: the file was renamed, deleted or truncated away; it is
	// read to its end through its descriptor, or waits for its last lines
	// to be acknowledged.
	FileGone = "gone"
)

// FileStatus is one tracked file as the tailer sees it.
type FileStatus struct {
	// Path is where the file is read from now.
	Path string
	// Source is the path its labels come from (where it was first found),
	// as the positions file keeps it; Path when it was not renamed.
	Source string
	// Labels are the file's labels, before a container stream or parsed
	// fields are added per line.
	Labels map[string]string
	// Size is the largest size seen.
	Size int64
	// ReadOffset is how far the file has been read.
	ReadOffset int64
	// AckedOffset is the offset before which every line has been
	// acknowledged by the sink: the position the positions file holds (or
	// will at its next save).
	AckedOffset int64
	// LostBytes counts, by reason, the bytes of the file that could not be
	// read (pharos_tail_lost_bytes_total, per file). Every reason is
	// present. A file truncated or replaced in place passes its counts on
	// to what follows at its path.
	LostBytes map[string]int64
	// LastRead is when the file was last read or opened; zero if never.
	LastRead time.Time
	// State is FileTailing, FileEOF or FileGone.
	State string
}

// Files returns the files the tailer tracks, sorted by path. The loop
// goroutine, which owns them, takes the snapshot between two steps of its
// work, so it costs O(files) and waits at most for the step under way (a
// read of one chunk, a scan); ctx bounds the wait. It may be called from
// any goroutine.
func (t *Tailer) Files(ctx context.Context) ([]FileStatus, error) {
	if t.State() != services.Running {
		return nil, ErrNotRunning
	}
	reply := make(chan []FileStatus, 1)
	select {
	case t.statusReq <- reply:
	case <-t.loopDone:
		return nil, ErrNotRunning
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// The loop answers at once, into the buffer.
	select {
	case fs := <-reply:
		return fs, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// snapshot describes every tracked file; called by the loop goroutine.
func (t *Tailer) snapshot() []FileStatus {
	out := make([]FileStatus, 0, len(t.files))
	for _, f := range t.files {
		st := FileStatus{
			Path: f.path, Source: f.source, Labels: f.labels[logparse.StreamUnknown].Map(),
			Size: max(f.size, f.readOff), ReadOffset: f.readOff, AckedOffset: f.acked,
			LostBytes: map[string]int64{reasonTruncated: 0, reasonDeleted: 0},
			LastRead:  f.lastRead, State: fileStateName(f),
		}
		for reason, n := range f.lost {
			st.LostBytes[reason] += n
		}
		out = append(out, st)
	}
	slices.SortStableFunc(out, func(a, b FileStatus) int {
		// An older incarnation at the same path first: it is read first.
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(b.ReadOffset, a.ReadOffset))
	})
	return out
}

func fileStateName(f *tailedFile) string {
	switch {
	case f.state != stateActive:
		return FileGone
	case f.atEOF && f.size <= f.readOff:
		return FileEOF
	}
	return FileTailing
}
