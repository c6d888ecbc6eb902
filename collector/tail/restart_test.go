package tail

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// waitPositions polls until the positions file holds one entry for path
// at offset.
func waitPositions(t *testing.T, pos, path string, offset int64) {
	t.Helper()
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		es := readPositions(t, pos)
		return len(es) == 1 && es[0].Path == path && es[0].Offset == offset, fmt.Sprintf("positions %+v, want %s at %d", es, path, offset)
	})
}

func TestRestartResumesExactly(t *testing.T) {
	for _, tc := range []struct {
		name string
		// failNext pushes fail before the sink recovers; with stopFailing
		// the tailer is stopped while the sink still fails.
		failNext    int
		stopFailing bool
	}{
		{name: "sink healthy"},
		{name: "sink fails then recovers", failNext: 3},
		{name: "stopped while sink fails", stopFailing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pos := filepath.Join(dir, "state", "positions.json")
			path := filepath.Join(dir, "app.log")
			cfg := testConfig(dir)
			cfg.MaxBatchEntries = 16
			cfg.DrainTimeout = 200 * time.Millisecond

			sink1 := &fakeSink{failNext: tc.failNext, failAll: tc.stopFailing}
			h1 := startTailer(t, cfg, sink1, pos)
			appendFile(t, path, numbered(1, 100))
			if tc.failNext > 0 || tc.stopFailing {
				testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
					return h1.counter(h1.t.m.pushRetries) >= 1, "no retry yet"
				})
				// Nothing acknowledged: the position has not moved.
				for _, e := range readPositions(t, pos) {
					require.Zero(t, e.Offset, "position advanced before the sink acknowledged")
				}
			}
			want1 := 100
			if tc.stopFailing {
				want1 = 0
			} else {
				waitLines(t, sink1, 100)
				waitPositions(t, pos, path, 100*lineLen)
			}
			h1.stop(t)
			require.Len(t, sink1.lines(), want1)

			appendFile(t, path, numbered(101, 200))
			sink2 := &fakeSink{}
			h2 := startTailer(t, cfg, sink2, pos)
			waitLines(t, sink2, 200-want1)
			waitPositions(t, pos, path, 200*lineLen)
			h2.stop(t)
			// Across both runs every line exactly once, in order.
			require.Equal(t, append(sink1.lines(), sink2.lines()...), splitLines(numbered(1, 200)))
			require.Zero(t, h2.lost(reasonDeleted)+h2.lost(reasonTruncated))
		})
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	return out
}

func TestTruncatedWhileStopped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after string // the file's content after the truncation
	}{
		{name: "shorter than the position", after: numbered(101, 150)},
		// Longer: the size says nothing, the fingerprint does.
		{name: "longer than the position", after: numbered(101, 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			pos := filepath.Join(dir, "state", "positions.json")
			path := filepath.Join(dir, "app.log")
			cfg := testConfig(dir)

			sink1 := &fakeSink{}
			h1 := startTailer(t, cfg, sink1, pos)
			appendFile(t, path, numbered(1, 100))
			waitLines(t, sink1, 100)
			waitPositions(t, pos, path, 100*lineLen)
			h1.stop(t)

			require.NoError(t, os.Truncate(path, 0))
			appendFile(t, path, tc.after)
			sink2 := &fakeSink{}
			h2 := startTailer(t, cfg, sink2, pos)
			n := len(splitLines(tc.after))
			waitLines(t, sink2, n)
			waitPositions(t, pos, path, int64(len(tc.after)))
			requireLines(t, sink2, tc.after)
			require.Zero(t, h2.lost(reasonTruncated)) // everything was read before
		})
	}
}

func TestRotatedWhileStopped(t *testing.T) {
	dir := t.TempDir()
	pos := filepath.Join(dir, "state", "positions.json")
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(dir)

	sink1 := &fakeSink{}
	h1 := startTailer(t, cfg, sink1, pos)
	appendFile(t, path, numbered(1, 100))
	waitLines(t, sink1, 100)
	waitPositions(t, pos, path, 100*lineLen)
	h1.stop(t)

	// Written to, then rotated by rename, while the agent is down.
	appendFile(t, path, numbered(101, 150))
	require.NoError(t, os.Rename(path, path+".1"))
	appendFile(t, path, numbered(151, 200))

	sink2 := &fakeSink{}
	h2 := startTailer(t, cfg, sink2, pos)
	waitLines(t, sink2, 100)
	waitPositions(t, pos, path, 50*lineLen)
	requireLines(t, sink2, numbered(101, 200))
	require.Zero(t, h2.lost(reasonDeleted)+h2.lost(reasonTruncated))
}

func TestInodeReuseDetectedByFingerprint(t *testing.T) {
	dir := t.TempDir()
	pos := filepath.Join(dir, "state", "positions.json")
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(dir)

	sink1 := &fakeSink{}
	h1 := startTailer(t, cfg, sink1, pos)
	appendFile(t, path, numbered(1, 100)) // 1200 bytes: a whole fingerprint
	waitLines(t, sink1, 100)
	waitPositions(t, pos, path, 100*lineLen)
	h1.stop(t)

	// Deleted, and a new file with other content at the same path, longer
	// than the saved offset. The file system may or may not hand it the
	// same inode; the saved position is made to claim it does.
	require.NoError(t, os.Remove(path))
	after := numbered(501, 700)
	appendFile(t, path, after)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	es := readPositions(t, pos)
	require.Len(t, es, 1)
	id := idOf(fi)
	es[0].Dev, es[0].Ino = id.dev, id.ino
	require.NoError(t, savePositions(pos, es, new(bytes.Buffer)))

	sink2 := &fakeSink{}
	h2 := startTailer(t, cfg, sink2, pos)
	waitLines(t, sink2, 200)
	waitPositions(t, pos, path, int64(len(after)))
	// From the start: the first 100 lines of the new file are not skipped.
	requireLines(t, sink2, after)
	// The old file had been read to its end: nothing lost.
	require.Zero(t, h2.lost(reasonDeleted)+h2.lost(reasonTruncated))
}

func TestDeletedUnreadReportsLoss(t *testing.T) {
	dir := t.TempDir()
	pos := filepath.Join(dir, "state", "positions.json")
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(dir)
	cfg.DrainTimeout = 100 * time.Millisecond

	// Read but never acknowledged, then deleted while the agent is down.
	sink1 := &fakeSink{failAll: true}
	h1 := startTailer(t, cfg, sink1, pos)
	appendFile(t, path, numbered(1, 100))
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		return h1.counter(h1.t.m.bytesRead) == 100*lineLen && h1.counter(h1.t.m.pushRetries) >= 1, "not read yet"
	})
	h1.stop(t)
	require.NoError(t, os.Remove(path))

	sink2 := &fakeSink{}
	h2 := startTailer(t, cfg, sink2, pos)
	require.Equal(t, float64(100*lineLen), h2.lost(reasonDeleted))
	requireLossLogged(t, h2, reasonDeleted, path, 0, 100*lineLen)
	// And forgotten: the next positions file no longer has it.
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		es := readPositions(t, pos)
		return len(es) == 0, fmt.Sprintf("positions %+v", es)
	})
	require.Zero(t, sink2.count())
}

func TestPermanentRejectionDropsAndMovesOn(t *testing.T) {
	dir := t.TempDir()
	pos := filepath.Join(dir, "state", "positions.json")
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(dir)
	cfg.MaxBatchEntries = 10

	sink := &fakeSink{failNext: 1, permanent: true}
	gate := make(chan struct{})
	sink.setGate(gate)
	h := startTailer(t, cfg, sink, pos)
	appendFile(t, path, numbered(1, 30))
	// The first batch (lines 1-10) is refused for good.
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		return h.counter(h.t.m.bytesRead) == 20*lineLen, "not read yet"
	})
	close(gate)
	waitLines(t, sink, 20)
	waitPositions(t, pos, path, 30*lineLen)
	requireLines(t, sink, numbered(11, 30))
	require.Equal(t, float64(10), h.counter(h.t.m.droppedEntries.WithLabelValues(reasonRejected)))
	require.Zero(t, h.counter(h.t.m.pushRetries))
}
