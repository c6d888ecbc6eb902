package tail

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

func TestNewFilePickedUp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fsnotify bool
		poll     time.Duration
	}{
		// Polling too slow to matter: only inotify can be this quick.
		{name: "fsnotify", fsnotify: true, poll: time.Hour},
		{name: "polling", fsnotify: false, poll: 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(dir)
			cfg.UseFSNotify, cfg.PollInterval = tc.fsnotify, tc.poll
			sink := &fakeSink{}
			startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

			path := filepath.Join(dir, "new.log")
			appendFile(t, path, "hello\nworld\n")
			testutil.Poll(t, time.Second, pollEvery, func() (bool, string) {
				return sink.count() == 2, fmt.Sprintf("%d of 2 lines within a second", sink.count())
			})
			requireLines(t, sink, "hello\nworld\n")
			r := sink.records()[0]
			require.Equal(t, path, r.labels.Get("filename"))

			appendFile(t, path, "more\n")
			waitLines(t, sink, 3)
			requireLines(t, sink, "hello\nworld\nmore\n")
		})
	}
}

func TestKubernetesPodLogs(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.Include = StringList{filepath.Join(dir, "pods", "*", "*", "*.log")}
	cfg.Format = FormatCRI
	cfg.KubernetesLabels = true
	cfg.StaticLabels = LabelSet{"cluster": "c1"}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "pods"), 0o755))
	sink := &fakeSink{}
	startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

	// A pod appears after the start: its directories are new too.
	cdir := filepath.Join(dir, "pods", "shop_cart-7d9f_1234-abcd", "api")
	require.NoError(t, os.MkdirAll(cdir, 0o755))
	path := filepath.Join(cdir, "0.log")
	appendFile(t, path, "2024-05-01T12:00:00.000000001Z stdout P hello \n"+
		"2024-05-01T12:00:00.000000002Z stderr F oops\n"+
		"2024-05-01T12:00:00.000000003Z stdout F world\n")
	waitLines(t, sink, 2)
	recs := sink.records()
	require.Len(t, recs, 2)
	require.Equal(t, "oops", recs[0].line)
	require.Equal(t, "hello world", recs[1].line)
	require.Equal(t, time.Date(2024, 5, 1, 12, 0, 0, 1, time.UTC), recs[1].ts, "a joined line keeps its first part's time")
	require.Equal(t, map[string]string{
		"filename": path, "namespace": "shop", "pod": "cart-7d9f", "container": "api", "stream": "stdout", "cluster": "c1",
	}, recs[1].labels.Map())
	require.Equal(t, "stderr", recs[0].labels.Get("stream"))
}

func TestOpenFilesBounded(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxOpenFiles = 2
	sink := &fakeSink{}
	h := startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

	const files = 6
	for i := range files {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%d.log", i)), fmt.Sprintf("f%d first\n", i))
	}
	waitLines(t, sink, files)
	// Files closed to make room are opened again when they grow.
	for i := range files {
		appendFile(t, filepath.Join(dir, fmt.Sprintf("f%d.log", i)), fmt.Sprintf("f%d second\n", i))
	}
	waitLines(t, sink, 2*files)
	seen := map[string]int{}
	for _, l := range sink.lines() {
		seen[l]++
	}
	for i := range files {
		require.Equal(t, 1, seen[fmt.Sprintf("f%d first", i)])
		require.Equal(t, 1, seen[fmt.Sprintf("f%d second", i)])
	}
	require.LessOrEqual(t, h.counter(h.t.m.filesOpen), float64(2))
}

func TestStopFlushesWithinDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.BatchWait = time.Hour // only shutdown sends it
	sink := &fakeSink{}
	h := startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))
	path := filepath.Join(dir, "app.log")
	appendFile(t, path, numbered(1, 10))
	testutil.Poll(t, waitFor, pollEvery, func() (bool, string) {
		return h.counter(h.t.m.bytesRead) == 10*lineLen, "not read yet"
	})
	require.Zero(t, sink.count())
	h.stop(t)
	requireLines(t, sink, numbered(1, 10))
	es := readPositions(t, filepath.Join(dir, "state", "positions.json"))
	require.Len(t, es, 1)
	require.Equal(t, int64(10*lineLen), es[0].Offset)
}

func TestExcludeAndStartAt(t *testing.T) {
	dir := t.TempDir()
	// Present before the very first start: read from its end.
	appendFile(t, filepath.Join(dir, "old.log"), "before start\n")
	cfg := testConfig(dir)
	cfg.Exclude = StringList{filepath.Join(dir, "skip-*.log")}
	cfg.StartAt = StartEnd
	sink := &fakeSink{}
	startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

	appendFile(t, filepath.Join(dir, "skip-me.log"), "excluded\n")
	appendFile(t, filepath.Join(dir, "old.log"), "after start\n")
	// Created after the start: read from its beginning.
	appendFile(t, filepath.Join(dir, "new.log"), "new file\n")
	waitLines(t, sink, 2)
	got := map[string]bool{}
	for _, l := range sink.lines() {
		got[l] = true
	}
	require.Equal(t, map[string]bool{"after start": true, "new file": true}, got)
}

func TestCorruptPositionsFailStart(t *testing.T) {
	dir := t.TempDir()
	pos := filepath.Join(dir, "positions.json")
	require.NoError(t, os.WriteFile(pos, []byte("{garbage"), 0o600))
	tl, err := New(testConfig(dir), &fakeSink{}, pos, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	require.NoError(t, err)
	err = services.StartAndAwaitRunning(context.Background(), tl)
	require.ErrorIs(t, err, ErrCorruptPositions)
}

// While files have a backlog, a batch holds one file's lines: each
// stream in a batch becomes a bus message of its own.
func TestBacklogBatchesHoldOneFile(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.MaxBatchBytes = 120 << 10
	cfg.MaxBatchEntries = 1 << 20
	sink := &fakeSink{}
	startTailer(t, cfg, sink, filepath.Join(dir, "state", "positions.json"))

	const n = 40000 // 480 KB per file
	var files []string
	for i := range 4 {
		files = append(files, filepath.Join(dir, fmt.Sprintf("f%d.log", i)))
		appendFile(t, files[i], numbered(1, n))
	}
	waitLines(t, sink, len(files)*n)

	perFile := map[string][]string{}
	for _, r := range sink.records() {
		f := r.labels.Get("filename")
		perFile[f] = append(perFile[f], r.line)
	}
	want := strings.Split(strings.TrimSuffix(numbered(1, n), "\n"), "\n")
	for _, f := range files {
		require.Equal(t, want, perFile[f], f)
	}
	sink.mu.Lock()
	streams := append([]int(nil), sink.streams...)
	sink.mu.Unlock()
	mixed := 0
	for _, s := range streams {
		if s > 1 {
			mixed++
		}
	}
	// 64 KiB reads made nearly every batch hold two files.
	require.GreaterOrEqual(t, len(streams), 14, "1.9 MB in batches of up to 120 KiB: %v", streams)
	require.LessOrEqual(t, mixed, len(streams)/3, "batches holding more than one file (where files start and end): %v", streams)
}
