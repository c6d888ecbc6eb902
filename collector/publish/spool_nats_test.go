package publish

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/spool"
	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/bus/codec"
)

// natsEnv is a real embedded NATS server that a test can stop and start
// again on the same port and store, and a client connected over TCP that
// reconnects to it, as an agent does across a NATS outage.
type natsEnv struct {
	t     *testing.T
	addr  string
	store string
	srv   *bus.EmbeddedServer
	conn  *bus.Conn
}

const natsPartitions = 4

func newNATSEnv(t *testing.T) *natsEnv {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())

	e := &natsEnv{t: t, addr: addr, store: t.TempDir()}
	e.start()
	t.Cleanup(func() { e.stop() }) // after the client closes: cleanups run in reverse

	cfg := bus.DefaultConfig()
	cfg.URL = "nats://" + addr
	cfg.Partitions = natsPartitions
	cfg.Stream.MaxBytes = 64 << 20 // each stream reserves it on the server
	cfg.PublishTimeout = 2 * time.Second
	e.conn, err = bus.Connect(cfg, nil, "test-agent", testLogger(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.conn.EnsureStreams(ctx, bus.SignalMetrics))
	return e
}

func (e *natsEnv) start() {
	e.t.Helper()
	srv, err := bus.StartEmbedded(bus.EmbeddedConfig{ListenAddress: e.addr}, e.store, testLogger())
	require.NoError(e.t, err)
	e.srv = srv
}

func (e *natsEnv) stop() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv = nil
	}
}

// outage stops the server and waits until the client has noticed.
func (e *natsEnv) outage() {
	e.t.Helper()
	e.stop()
	require.Eventually(e.t, func() bool { return !e.conn.Connected() }, 10*time.Second, 5*time.Millisecond)
}

// restore starts the server again and waits for the client to reconnect.
func (e *natsEnv) restore() {
	e.t.Helper()
	e.start()
	require.Eventually(e.t, e.conn.Connected, 20*time.Second, 10*time.Millisecond)
}

// stored is what the stream holds, decoded: per series, the timestamps of
// its samples in stream order.
type stored struct {
	mu      sync.Mutex
	series  map[string][]int64
	ids     []string
	samples int
	err     error
}

func (s *stored) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// consume reads every partition of the stream from the start through
// durable consumers, decoding each message with the aggregator's decoder.
func (e *natsEnv) consume() *stored {
	e.t.Helper()
	st := &stored{series: map[string][]int64{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p := range natsPartitions {
		wg.Go(func() {
			var dec codec.MetricsDecoder
			var sb labels.ScratchBuilder
			err := e.conn.ConsumePartition(ctx, bus.SignalMetrics, p, fmt.Sprintf("test-p%d", p), func(_ context.Context, batch []*bus.Delivery) {
				st.mu.Lock()
				defer st.mu.Unlock()
				for _, d := range batch {
					req, err := dec.Decode(d.Encoding, d.Data)
					if err != nil {
						st.err = err
						_ = d.Term()
						continue
					}
					for _, ts := range req.Timeseries {
						l, err := ts.ToLabels(&sb, req.Symbols)
						if err != nil {
							st.err = err
							continue
						}
						for _, smp := range ts.Samples {
							st.series[l.String()] = append(st.series[l.String()], smp.Timestamp)
							st.samples++
						}
					}
					st.ids = append(st.ids, d.MsgID)
					_ = d.Ack()
				}
			})
			if err != nil {
				st.mu.Lock()
				st.err = err
				st.mu.Unlock()
			}
		})
	}
	e.t.Cleanup(func() { cancel(); wg.Wait() })
	return st
}

// requireSeries checks that the stream holds n series and runs check on
// each one's timestamps, in stream order.
func (s *stored) requireSeries(t *testing.T, n int, check func(name string, ts []int64)) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.NoError(t, s.err)
	require.Len(t, s.series, n)
	for name, ts := range s.series {
		check(name, ts)
	}
}

func span(from, to int) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, int64(i))
	}
	return out
}

// (a) NATS goes away while the agent scrapes: batches go to the spool,
// and when NATS is back they arrive in order, each sample exactly once,
// and direct publishing resumes.
func TestNATSOutageIsSpooledAndReplayedInOrder(t *testing.T) {
	env := newNATSEnv(t)
	cfg := testConfig()
	cfg.Concurrency = 1 // one publisher: the order across the outage is strict
	cfg.FlushInterval = 20 * time.Millisecond
	b, reg := startWith(t, cfg, natsPartitions, env.conn.Publish, WithSpool(testSpoolConfig(), t.TempDir()))
	const series = 50
	round := 0
	scrape := func(n int) {
		for range n {
			round++
			appendRound(t, b, round, series)
		}
	}

	scrape(5)
	require.Eventually(t, func() bool { return testutil.ToFloat64(b.m.published) == 5*series }, 20*time.Second, 5*time.Millisecond)

	env.outage()
	scrape(10)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(b.m.spooling) == 1 && metricValue(t, reg, "pharos_agent_spool_records") > 0
	}, 10*time.Second, 5*time.Millisecond)
	require.Equal(t, 5.0*series, testutil.ToFloat64(b.m.published))

	env.restore()
	got := env.consume()
	require.Eventually(t, func() bool { return got.total() >= 15*series }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(b.m.spooling) == 0 && metricValue(t, reg, "pharos_agent_spool_records") == 0
	}, 10*time.Second, 5*time.Millisecond)

	// Direct again after the replay.
	scrape(2)
	require.Eventually(t, func() bool { return got.total() >= 17*series }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b))
	require.Equal(t, 17*series, got.total(), "no duplicates")
	got.requireSeries(t, series, func(name string, ts []int64) {
		require.Equal(t, span(1, 17), ts, "series %s: every sample once, in order", name)
	})
	require.Equal(t, 17.0*series, testutil.ToFloat64(b.m.published))
	require.Positive(t, metricValue(t, reg, "pharos_agent_spool_replayed_records_total"))
	requireNoDrops(t, reg)
}

// (b) The agent stops while NATS is down: its spool keeps the batches,
// and the next agent on the same directory replays them once NATS is up,
// under their original message IDs.
func TestStopDuringOutageKeepsSpoolForNextStart(t *testing.T) {
	env := newNATSEnv(t)
	env.outage()
	dir := t.TempDir()
	cfg := testConfig()
	cfg.DrainTimeout = 200 * time.Millisecond
	b1, reg1 := startWith(t, cfg, natsPartitions, env.conn.Publish, WithSpool(testSpoolConfig(), dir))
	const series, rounds = 50, 10
	for round := 1; round <= rounds; round++ {
		appendRound(t, b1, round, series) // full batches flush now, the rest at stop
	}
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b1))
	requireNoDrops(t, reg1)
	require.Zero(t, testutil.ToFloat64(b1.m.published))
	spooled := spoolContents(t, dir)
	require.Equal(t, series*rounds, samplesIn(spooled))

	env.restore()
	got := env.consume()
	b2, reg2 := startWith(t, cfg, natsPartitions, env.conn.Publish, WithSpool(testSpoolConfig(), dir))
	require.Eventually(t, func() bool { return got.total() >= series*rounds }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return metricValue(t, reg2, "pharos_agent_spool_records") == 0 && testutil.ToFloat64(b2.m.spooling) == 0
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b2))

	require.Equal(t, series*rounds, got.total())
	got.requireSeries(t, series, func(name string, ts []int64) {
		// Two publishers failing at once may spool two batches of one
		// partition in either order; each sample is there once.
		slices.Sort(ts)
		require.Equal(t, span(1, rounds), ts, "series %s", name)
	})
	got.mu.Lock()
	for _, id := range got.ids {
		require.True(t, strings.HasPrefix(id, b1.idPrefix), "replayed under the first agent's ID: %s", id)
	}
	got.mu.Unlock()
	require.Equal(t, float64(series*rounds), testutil.ToFloat64(b2.m.published))
	requireNoDrops(t, reg2)
}

// (c) An outage longer than the spool holds: the oldest batches are
// dropped, every dropped sample is counted, and what is left arrives.
func TestSpoolBoundDropsOldestAndCountsThem(t *testing.T) {
	env := newNATSEnv(t)
	env.outage()
	dir := t.TempDir()
	cfg := testConfig()
	cfg.Concurrency = 1
	cfg.MaxBatchSamples = 10
	cfg.DrainTimeout = 200 * time.Millisecond
	small := spool.Config{MaxBytes: 16 << 10, SegmentBytes: 4 << 10}
	b1, reg1 := startWith(t, cfg, natsPartitions, env.conn.Publish, WithSpool(small, dir))
	const series, rounds = 40, 100
	for round := 1; round <= rounds; round++ {
		appendRound(t, b1, round, series)
	}
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b1))
	lost := dropped(b1, reasonSpoolFull)
	require.Positive(t, lost)
	require.Equal(t, lost, metricValue(t, reg1, "pharos_agent_dropped_samples_total"), "only the bound dropped anything")
	require.LessOrEqual(t, metricValue(t, reg1, "pharos_agent_spool_bytes"), float64(small.MaxBytes))
	kept := samplesIn(spoolContents(t, dir))
	require.Equal(t, float64(series*rounds), lost+float64(kept))

	env.restore()
	got := env.consume()
	b2, reg2 := startWith(t, cfg, natsPartitions, env.conn.Publish, WithSpool(small, dir))
	require.Eventually(t, func() bool { return got.total() >= kept }, 60*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return metricValue(t, reg2, "pharos_agent_spool_records") == 0 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, services.StopAndAwaitTerminated(context.Background(), b2))
	require.Equal(t, kept, got.total())
	got.requireSeries(t, series, func(name string, ts []int64) {
		// The oldest were dropped: each series keeps its newest samples.
		require.NotEmpty(t, ts)
		require.Equal(t, span(rounds-len(ts)+1, rounds), ts, "series %s", name)
	})
	requireNoDrops(t, reg2)
}
