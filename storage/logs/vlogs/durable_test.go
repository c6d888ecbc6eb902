package vlogs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
	"github.com/pharos-obs/pharos/storage/logs"
)

// killDirEnv names the directory TestWaitDurableChildProcess writes to; it
// is set only in the child process TestWaitDurableSurvivesKill starts.
const killDirEnv = "PHAROS_VLOGS_KILL_DIR"

const (
	killStreams = 20
	killBatch   = 100 // entries per stream and batch
)

func killBatchStreams(base int64, batch int) []logs.Stream {
	streams := make([]logs.Stream, killStreams)
	for i := range streams {
		streams[i].Labels = labels.FromStrings("app", "crash", "pod", fmt.Sprintf("pod-%02d", i))
		for j := range killBatch {
			streams[i].Entries = append(streams[i].Entries,
				entry(base+int64(batch*killBatch+j), fmt.Sprintf("batch %d entry %d of pod %d", batch, j, i), "batch", fmt.Sprint(batch)))
		}
	}
	return streams
}

// TestWaitDurableChildProcess is the process TestWaitDurableSurvivesKill
// kills: it appends two batches, waits for each to be durable, reports
// and waits to be killed. Run without the environment variable, it does
// nothing.
func TestWaitDurableChildProcess(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		return
	}
	cfg := DefaultConfig()
	cfg.Path = dir
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, testLogger(), reg)
	require.NoError(t, err)
	base := baseTime()
	ctx := context.Background()
	// The first batch creates the streams: its round waits for the stream
	// index's flusher. The second only adds rows: its round is proven by
	// the forced flush.
	require.NoError(t, s.Append("", killBatchStreams(base, 0)))
	require.NoError(t, s.WaitDurable(ctx))
	require.NoError(t, s.Append("", killBatchStreams(base, 1)))
	require.NoError(t, s.WaitDurable(ctx))
	flushed, _ := metricValue(t, reg, "pharos_logs_durable_rounds_total", map[string]string{"result": resultFlushed})
	deadline, _ := metricValue(t, reg, "pharos_logs_durable_rounds_total", map[string]string{"result": resultDeadline})
	fmt.Printf("durable base=%d flushed=%v deadline=%v\n", base, flushed, deadline)
	// Wait to be killed; Close is never called.
	_, _ = io.Copy(io.Discard, os.Stdin)
	t.Fatal("the parent should have killed this process")
}

func TestWaitDurableSurvivesKill(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	cmd := exec.Command(os.Args[0], "-test.run=^TestWaitDurableChildProcess$")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())

	lines := make(chan string, 1)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "durable ") {
				lines <- sc.Text()
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var report string
	select {
	case report = <-lines:
	case <-time.After(60 * time.Second):
	}
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no Close, no flush
	_ = cmd.Wait()
	require.NotEmpty(t, report, "the child process did not report")

	var base int64
	var flushed, deadline float64
	_, err = fmt.Sscanf(report, "durable base=%d flushed=%v deadline=%v", &base, &flushed, &deadline)
	require.NoError(t, err, report)
	require.Equal(t, 1.0, deadline, "the round with new streams waits for the index flusher")
	require.Equal(t, 1.0, flushed, "the round without new streams is proven by the forced flush")

	cfg := DefaultConfig()
	cfg.Path = dir
	s, err := Open(cfg, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	got := selectAll(t, s, logs.SelectParams{
		Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "crash")},
		Start:    base, End: base + 2*killBatch, Direction: logs.Forward,
	})
	want := killBatchStreams(base, 0)
	for i, st := range killBatchStreams(base, 1) {
		want[i].Entries = append(want[i].Entries, st.Entries...)
	}
	require.Equal(t, want, got)
}

func TestWaitDurableRounds(t *testing.T) {
	s, reg := openTestStore(t)
	ctx := context.Background()
	base := baseTime()
	rounds := func(result string) float64 {
		n, ok := metricValue(t, reg, "pharos_logs_durable_rounds_total", map[string]string{"result": result})
		require.True(t, ok)
		return n
	}
	ls := labels.FromStrings("app", "a")
	appendOne := func(i int) {
		require.NoError(t, s.Append("", []logs.Stream{{Labels: ls, Entries: []logs.Entry{entry(base+int64(i), fmt.Sprint("line ", i))}}}))
	}

	require.NoError(t, s.WaitDurable(ctx), "nothing appended: nothing to wait for")
	require.Zero(t, rounds(resultFlushed)+rounds(resultDeadline)+rounds(resultEmpty))

	appendOne(0)
	require.NoError(t, s.WaitDurable(ctx))
	require.Equal(t, 1.0, rounds(resultDeadline), "a new stream waits for the index flusher")
	appendOne(1)
	require.NoError(t, s.WaitDurable(ctx))
	require.Equal(t, 1.0, rounds(resultFlushed), "a known stream is proven by the forced flush")

	// Concurrent callers share rounds.
	const callers = 40
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Go(func() {
			if err := s.Append("", []logs.Stream{{Labels: ls, Entries: []logs.Entry{entry(base+100+int64(i), "concurrent")}}}); err != nil {
				errs <- err
				return
			}
			errs <- s.WaitDurable(ctx)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total := rounds(resultFlushed) + rounds(resultDeadline) + rounds(resultEmpty)
	require.Less(t, total-2, float64(callers)/2, "rounds are shared")
	require.Zero(t, rounds(resultError))

	// A caller gives up with its context; the round goes on.
	require.NoError(t, s.Append("", []logs.Stream{{Labels: labels.FromStrings("app", "new"), Entries: []logs.Entry{entry(base, "x")}}}))
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.WaitDurable(short), context.DeadlineExceeded)
	require.NoError(t, s.WaitDurable(ctx))
}

func TestCloseReleasesWaiters(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	// A new stream makes the round wait for the index flusher, so Close
	// comes first.
	require.NoError(t, s.Append("", []logs.Stream{{Labels: labels.FromStrings("app", "a"), Entries: []logs.Entry{entry(base, "x")}}}))
	done := make(chan error, 1)
	go func() { done <- s.WaitDurable(context.Background()) }()
	testutil.Poll(t, 10*time.Second, 5*time.Millisecond, func() (bool, string) {
		return s.eng.Busy(), "no round running"
	})
	require.NoError(t, s.Close())
	require.NoError(t, <-done, "Close wrote everything")

	// And it did.
	cfg := s.cfg
	s2, err := Open(cfg, testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s2.Close()) })
	got := selectAll(t, s2, logs.SelectParams{Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}, Start: base, End: base + 1})
	require.Len(t, got, 1)
}
