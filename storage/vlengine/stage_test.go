package vlengine

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// stageRows stages n rows of stream app=<stream> for tenant at ts, ts+1…,
// each line lineBytes long, and marks their day dirty.
func stageRows(t testing.TB, e *Engine, tenant string, stream, n, lineBytes int, ts int64) {
	t.Helper()
	_, err := e.Acquire()
	require.NoError(t, err)
	defer e.Release()
	tid, err := e.AppendTenantID(tenant)
	require.NoError(t, err)
	app := "app-" + strconv.Itoa(stream)
	line := make([]byte, lineBytes)
	for i := range line {
		line[i] = 'a' + byte(i%26)
	}
	sr := e.Stage(tid, uint64(stream))
	for i := range n {
		// Distinct lines: LogRows keeps a value equal to the previous
		// row's only once.
		msg := strconv.Itoa(i) + string(line)
		sr.Add(ts+int64(i), []logstorage.Field{{Name: "app", Value: app}, {Name: "_msg", Value: msg[:lineBytes]}}, 1)
	}
	sr.Done()
	e.MarkDirty(AddDay(nil, ts))
}

// countRows counts tenant's searchable rows matching the LogsQL query qs
// with timestamps in [from, to).
func countRows(t testing.TB, e *Engine, tenant, qs string, from, to int64) int {
	t.Helper()
	q, err := ParseQuery(qs, from, to)
	require.NoError(t, err)
	var mu sync.Mutex
	n := 0
	require.NoError(t, e.Query(context.Background(), tenant, q, func(qctx *logstorage.QueryContext, st *logstorage.Storage) error {
		return st.RunQuery(qctx, func(_ uint, db *logstorage.DataBlock) {
			mu.Lock()
			n += db.RowsCount()
			mu.Unlock()
		})
	}))
	return n
}

func openTestEngine(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := Open(cfg, testOptions, testLogger(), prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(e.Close)
	return e
}

func TestStageHoldsRowsUntilABlockIsFull(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour // no timer flush during the test
	cfg.DurableBatchInterval = time.Second
	e := openTestEngine(t, cfg)
	ts := time.Now().Add(-time.Hour).UnixNano()

	// Interleaved small appends of three streams stay staged.
	for round := range 3 {
		for s := range 3 {
			stageRows(t, e, "t", s, 10, 100, ts+int64(round*10))
		}
	}
	require.EqualValues(t, 90, e.StagedRowsCount())
	require.Zero(t, e.stats().PendingRows, "nothing reached the storage")

	// A stream that fills a block goes to the storage at once; the
	// others stay.
	stageRows(t, e, "t", 7, 4000, 500, ts)
	require.Less(t, e.StagedRowsCount(), int64(90+4000))
	require.GreaterOrEqual(t, e.StagedRowsCount(), int64(90))
	given := 90 + 4000 - e.StagedRowsCount()
	require.Positive(t, given)

	// DebugFlush empties the stage: every row is searchable.
	e.DebugFlush()
	require.Zero(t, e.StagedRowsCount())
	require.Equal(t, 4090, countRows(t, e, "t", "*", ts, ts+int64(time.Minute)))
}

func TestStageFlushesOnItsTimer(t *testing.T) {
	cfg := testConfig(t) // FlushInterval 1 s
	e := openTestEngine(t, cfg)
	ts := time.Now().Add(-time.Hour).UnixNano()
	stageRows(t, e, "t", 1, 5, 50, ts)
	require.EqualValues(t, 5, e.StagedRowsCount())
	testutil.Poll(t, 30*time.Second, 10*time.Millisecond, func() (bool, string) {
		n := e.StagedRowsCount()
		return n == 0, fmt.Sprintf("the stage's timer has not flushed: %d rows staged", n)
	})
	e.stage.mu.Lock()
	require.Nil(t, e.stage.timer, "an empty stage has no timer")
	require.Empty(t, e.stage.streams)
	e.stage.mu.Unlock()
	// In the storage now; searchable once its buffers are flushed.
	e.storage.DebugFlush()
	require.Equal(t, 5, countRows(t, e, "t", "*", ts, ts+int64(time.Minute)))
}

func TestStagedRowsAreCoveredByWaitDurable(t *testing.T) {
	cfg := testConfig(t)
	e := openTestEngine(t, cfg)
	ts := time.Now().Add(-time.Hour).UnixNano()
	for s := range 4 {
		stageRows(t, e, "t", s, 25, 80, ts)
	}
	require.EqualValues(t, 100, e.StagedRowsCount())
	require.NoError(t, e.WaitDurable(context.Background()))
	require.Zero(t, e.StagedRowsCount())
	st := e.stats()
	require.EqualValues(t, 100, st.SmallPartRowsCount+st.BigPartRowsCount, "every row is in files")
	require.Zero(t, st.InmemoryRowsCount)
}

func TestStagedRowsSurviveClose(t *testing.T) {
	cfg := testConfig(t)
	cfg.FlushInterval = time.Hour
	cfg.DurableBatchInterval = time.Second
	e, err := Open(cfg, testOptions, testLogger(), nil)
	require.NoError(t, err)
	ts := time.Now().Add(-time.Hour).UnixNano()
	stageRows(t, e, "t", 1, 30, 60, ts)
	require.EqualValues(t, 30, e.StagedRowsCount())
	e.Close()

	e = openTestEngine(t, cfg)
	require.Equal(t, 30, countRows(t, e, "t", "*", ts, ts+int64(time.Minute)))
}

// Appenders racing the flushes (timer, DebugFlush, WaitDurable) lose no
// row and store none twice.
func TestStageConcurrentAppendsAndFlushes(t *testing.T) {
	cfg := testConfig(t)
	e := openTestEngine(t, cfg)
	ts := time.Now().Add(-time.Hour).UnixNano()
	const writers, batches, perBatch = 4, 200, 7
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				stageRows(t, e, fmt.Sprintf("tenant-%d", w%2), (w+b)%3, perBatch, 40, ts+int64(w*batches*perBatch+b*perBatch))
			}
		})
	}
	done := make(chan struct{})
	var fg sync.WaitGroup
	fg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			e.DebugFlush()
			require.NoError(t, e.WaitDurable(context.Background()))
		}
	})
	wg.Wait()
	close(done)
	fg.Wait()
	e.DebugFlush()
	require.Zero(t, e.StagedRowsCount())
	total := 0
	for _, tenant := range []string{"tenant-0", "tenant-1"} {
		total += countRows(t, e, tenant, "*", ts, ts+int64(time.Hour))
	}
	require.Equal(t, writers*batches*perBatch, total)
}
