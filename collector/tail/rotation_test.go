package tail

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// hasLine reports whether the sink holds line i of numbered.
func hasLine(s *fakeSink, i int) bool {
	want := fmt.Sprintf("line %06d", i)
	for _, l := range s.lines() {
		if l == want {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.Create(to)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

func TestRenameRotationWithWriter(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxBatchEntries = 37 // batches end mid-file
	sink := &fakeSink{}
	h := startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

	path := filepath.Join(dir, "app.log")
	const total, perFile = 3000, 500
	w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	require.NoError(t, err)
	for i := 1; i <= total; i++ {
		_, err := fmt.Fprintf(w, "line %06d\n", i)
		require.NoError(t, err)
		if i%perFile != 0 || i == total {
			continue
		}
		// The tailer must have found the file before it is rotated away,
		// as it would in minutes between rotations; it may be anywhere in
		// it.
		first := i - perFile + 1
		testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
			return hasLine(sink, first), fmt.Sprintf("line %d not delivered", first)
		})
		require.NoError(t, w.Close())
		require.NoError(t, os.Rename(path, fmt.Sprintf("%s.%d", path, i/perFile)))
		w, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		require.NoError(t, err)
	}
	require.NoError(t, w.Close())
	waitLines(t, sink, total)
	// Exactly once, and in order: a rotated file is read to its end first.
	requireLines(t, sink, numbered(1, total))
	require.Zero(t, h.lost(reasonDeleted)+h.lost(reasonTruncated))
	require.Equal(t, float64(total/perFile-1), h.counter(h.t.m.rotations.WithLabelValues(rotationRename)))

	// Rotated files are released once read and acknowledged: only the
	// current file stays in the positions.
	pos := filepath.Join(dir, "state", "positions.json")
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		es := readPositions(t, pos)
		return len(es) == 1 && es[0].Path == path && es[0].Offset == int64(perFile*lineLen),
			fmt.Sprintf("positions %+v", es)
	})
}

func TestCopyTruncate(t *testing.T) {
	t.Run("copy found, writer running", func(t *testing.T) {
		dir := t.TempDir()
		cfg := testConfig(dir)
		cfg.MaxBatchEntries = 50
		sink := &fakeSink{}
		h := startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

		path := filepath.Join(dir, "app.log")
		const rounds, per = 5, 300
		next := 1
		for r := 1; r <= rounds; r++ {
			first := next
			for ; next < first+per; next++ {
				appendFile(t, path, numbered(next, next))
			}
			// Something of this generation was seen, so it can be
			// recognised in its copy.
			testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
				return hasLine(sink, first), fmt.Sprintf("line %d not delivered", first)
			})
			// logrotate's copytruncate: older copies move away, the file
			// is copied, then truncated in place; the writer (O_APPEND)
			// carries on at the new end.
			if _, err := os.Stat(path + ".1"); err == nil {
				require.NoError(t, os.Rename(path+".1", fmt.Sprintf("%s.%d", path, r)))
			}
			copyFile(t, path, path+".1")
			require.NoError(t, os.Truncate(path, 0))
			testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
				n := h.counter(h.t.m.rotations.WithLabelValues(rotationTruncate))
				return n == float64(r), fmt.Sprintf("%v truncations noticed, want %d", n, r)
			})
		}
		appendFile(t, path, numbered(next, next+per-1))
		total := next + per - 1

		// Delivered plus lost accounts for every line; with the copy at
		// hand nothing is lost.
		testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
			lostLines := int(h.lost(reasonTruncated)) / lineLen
			return sink.count()+lostLines == total, fmt.Sprintf("%d delivered + %d lost, want %d", sink.count(), lostLines, total)
		})
		require.Zero(t, h.lost(reasonTruncated))
		requireLines(t, sink, numbered(1, total))
	})

	t.Run("no copy, loss reported exactly", func(t *testing.T) {
		dir := t.TempDir()
		cfg := testConfig(dir)
		cfg.MaxBatchEntries = 10
		sink := &fakeSink{}
		gate := make(chan struct{})
		sink.setGate(gate)
		h := startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

		path := filepath.Join(dir, "app.log")
		appendFile(t, path, numbered(1, 100))
		// One batch is stuck in the sink and the next is full: the tailer
		// stops reading after 20 lines, but its polls still see the size.
		testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
			read, lag := h.counter(h.t.m.bytesRead), h.counter(h.t.m.lagBytes)
			return read == 20*lineLen && read+lag == 100*lineLen, fmt.Sprintf("read %v, lag %v", read, lag)
		})
		// Truncated with no copy in reach: lines 21-100 are gone.
		require.NoError(t, os.Truncate(path, 0))
		appendFile(t, path, numbered(101, 150))
		close(gate)

		testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
			lostLines := int(h.lost(reasonTruncated)) / lineLen
			return sink.count()+lostLines == 150, fmt.Sprintf("%d delivered + %d lost, want 150", sink.count(), lostLines)
		})
		require.Equal(t, float64(80*lineLen), h.lost(reasonTruncated))
		requireLines(t, sink, numbered(1, 20)+numbered(101, 150))
		requireLossLogged(t, h, reasonTruncated, path, 20*lineLen, 100*lineLen)
	})
}

func TestCopyTruncateWritesBetweenCopyAndTruncate(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxBatchEntries = 10
	sink := &fakeSink{}
	gate := make(chan struct{})
	sink.setGate(gate)
	h := startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

	path := filepath.Join(dir, "app.log")
	appendFile(t, path, numbered(1, 100))
	// One batch is stuck in the sink and the next is full: the tailer
	// stops at line 20, and only its polls see the file grow. The lag
	// gauge is set at polls while bytes read counts as it goes, so the two
	// may be from different moments: a poll between the two batches leaves
	// lag 1200-120, and read+lag would show 110 lines seen before they
	// were. Wait for a poll after the stop (lag 80 lines): from then on the
	// offset stays put, so the lag grows only with the size seen.
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		read, lag := h.counter(h.t.m.bytesRead), h.counter(h.t.m.lagBytes)
		return read == 20*lineLen && lag == 80*lineLen, fmt.Sprintf("read %v, lag %v", read, lag)
	})
	copyFile(t, path, path+".1")
	// Written after the copy, seen by the tailer, then truncated away.
	appendFile(t, path, numbered(101, 110))
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		read, lag := h.counter(h.t.m.bytesRead), h.counter(h.t.m.lagBytes)
		return read == 20*lineLen && lag == 90*lineLen, fmt.Sprintf("read %v, lag %v", read, lag)
	})
	t.Logf("seen before truncation: read %v, lag %v", h.counter(h.t.m.bytesRead), h.counter(h.t.m.lagBytes))
	require.NoError(t, os.Truncate(path, 0))
	appendFile(t, path, numbered(111, 150))
	close(gate)

	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		lostLines := int(h.lost(reasonTruncated)) / lineLen
		ls := sink.lines()
		first, last := "", ""
		if len(ls) > 0 {
			first, last = ls[0], ls[len(ls)-1]
		}
		return sink.count()+lostLines == 150, fmt.Sprintf("%d delivered (%s..%s) + %d lost, want 150; log %s", sink.count(), first, last, lostLines, h.logs.String())
	})
	// The rest of the first 100 came from the copy; only 101-110 are lost.
	requireLines(t, sink, numbered(1, 100)+numbered(111, 150))
	require.Equal(t, float64(10*lineLen), h.lost(reasonTruncated))
	requireLossLogged(t, h, reasonTruncated, path, 100*lineLen, 110*lineLen)
}

// requireLossLogged finds the warning for a loss in the tailer's log.
func requireLossLogged(t *testing.T, h *harness, reason, path string, from, to int64) {
	t.Helper()
	for _, line := range strings.Split(h.logs.String(), "\n") {
		var ev struct {
			Level, Msg, Reason, Path string
			From, To                 int64
		}
		if json.Unmarshal([]byte(line), &ev) != nil || ev.Msg != "log data lost" {
			continue
		}
		if ev.Level == "WARN" && ev.Reason == reason && ev.Path == path && ev.From == from && ev.To == to {
			return
		}
	}
	t.Fatalf("no warning for %s bytes %d-%d of %s in:\n%s", reason, from, to, path, h.logs.String())
}

func TestDeletedWhileOpenIsReadToItsEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxBatchEntries = 10
	sink := &fakeSink{}
	gate := make(chan struct{})
	sink.setGate(gate)
	h := startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

	path := filepath.Join(dir, "app.log")
	appendFile(t, path, numbered(1, 100))
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		read := h.counter(h.t.m.bytesRead)
		return read == 20*lineLen, fmt.Sprintf("read %v", read)
	})
	require.NoError(t, os.Remove(path))
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		n := h.counter(h.t.m.rotations.WithLabelValues(rotationRename))
		return n == 1, "deletion not noticed"
	})
	close(gate)
	waitLines(t, sink, 100)
	requireLines(t, sink, numbered(1, 100))
	require.Zero(t, h.lost(reasonDeleted))
}
