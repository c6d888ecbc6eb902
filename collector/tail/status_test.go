package tail

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// filesAt polls Files until cond accepts the files at path.
func filesAt(t *testing.T, h *harness, path string, cond func([]FileStatus) bool) []FileStatus {
	t.Helper()
	var at []FileStatus
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		fs, err := h.t.Files(context.Background())
		if err != nil {
			return false, err.Error()
		}
		at = at[:0]
		for _, f := range fs {
			if f.Path == path {
				at = append(at, f)
			}
		}
		return cond(at), fmt.Sprintf("files at %s: %+v", path, at)
	})
	return at
}

func TestFilesStatus(t *testing.T) {
	dir := t.TempDir()
	pos := filepath.Join(dir, "state", "positions.json")
	cfg := testConfig(dir)
	cfg.MaxBatchEntries = 10
	cfg.StaticLabels = LabelSet{"job": "web"}
	sink := &fakeSink{}
	gate := make(chan struct{})
	sink.setGate(gate)
	h := startTailer(t, cfg, sink, pos)

	path := filepath.Join(dir, "app.log")
	other := filepath.Join(dir, "a-other.log")
	appendFile(t, path, numbered(1, 100))

	// One batch is stuck in the sink and the next is full: 20 lines read,
	// none acknowledged, the rest seen by the polls.
	got := filesAt(t, h, path, func(fs []FileStatus) bool {
		return len(fs) == 1 && fs[0].ReadOffset == 20*lineLen && fs[0].Size == 100*lineLen
	})
	f := got[0]
	require.Equal(t, path, f.Source)
	require.Equal(t, map[string]string{"filename": path, "job": "web"}, f.Labels)
	require.Zero(t, f.AckedOffset)
	require.Equal(t, map[string]int64{reasonTruncated: 0, reasonDeleted: 0}, f.LostBytes)
	require.Equal(t, FileTailing, f.State)
	require.False(t, f.LastRead.IsZero())

	// Another file: found, not read (the batches are full), listed first.
	appendFile(t, other, "x\n")
	filesAt(t, h, other, func(fs []FileStatus) bool { return len(fs) == 1 })
	fs, err := h.t.Files(context.Background())
	require.NoError(t, err)
	require.Len(t, fs, 2)
	require.Equal(t, []string{other, path}, []string{fs[0].Path, fs[1].Path}, "sorted by path")
	require.Zero(t, fs[0].ReadOffset)

	// Truncated with no copy: lines 21-100 are lost, and the file at the
	// path (a new incarnation) carries the count.
	require.NoError(t, os.Truncate(path, 0))
	appendFile(t, path, numbered(101, 150))
	close(gate)
	got = filesAt(t, h, path, func(fs []FileStatus) bool {
		return len(fs) == 1 && fs[0].AckedOffset == 50*lineLen
	})
	f = got[0]
	require.Equal(t, int64(50*lineLen), f.ReadOffset)
	require.Equal(t, int64(50*lineLen), f.Size)
	require.Equal(t, FileEOF, f.State)
	require.Equal(t, map[string]int64{reasonTruncated: 80 * lineLen, reasonDeleted: 0}, f.LostBytes)
	require.Equal(t, float64(80*lineLen), h.lost(reasonTruncated))
	// What the positions file holds, once saved.
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		for _, e := range readPositions(t, pos) {
			if e.Path == path && e.Offset == f.AckedOffset {
				return true, ""
			}
		}
		return false, fmt.Sprintf("positions %+v, want %s at %d", readPositions(t, pos), path, f.AckedOffset)
	})

	h.stop(t)
	_, err = h.t.Files(context.Background())
	require.ErrorIs(t, err, ErrNotRunning)
}

func TestFilesNotRunning(t *testing.T) {
	dir := t.TempDir()
	tl, err := New(testConfig(dir), &fakeSink{}, filepath.Join(dir, "positions.json"), slog.New(slog.DiscardHandler), nil)
	require.NoError(t, err)
	_, err = tl.Files(context.Background())
	require.ErrorIs(t, err, ErrNotRunning)
}

func TestFileStateName(t *testing.T) {
	for _, tc := range []struct {
		f    tailedFile
		want string
	}{
		{tailedFile{state: stateActive, readOff: 10, size: 20}, FileTailing},
		{tailedFile{state: stateActive, readOff: 20, size: 20}, FileTailing}, // not read to its end yet
		{tailedFile{state: stateActive, readOff: 20, size: 20, atEOF: true}, FileEOF},
		{tailedFile{state: stateActive, readOff: 20, size: 30, atEOF: true}, FileTailing}, // grew since
		{tailedFile{state: stateDraining, readOff: 20, size: 30}, FileGone},
		{tailedFile{state: stateDone, readOff: 20, size: 20, atEOF: true}, FileGone},
	} {
		require.Equal(t, tc.want, fileStateName(&tc.f), "%+v", tc.f)
	}
}
