package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/testutil"
)

// clusterFixture runs aggregators that form a ring over memberlist, an
// agent, and a querier that finds the aggregators in the ring, all against
// one NATS server in the test process.
type clusterFixture struct {
	t          *testing.T
	natsURL    string
	partitions int
	rf         int
	target     *countingTarget
	seed       string // gossip address of the first aggregator
	aggs       map[string]*pharosProc
	dirs       map[string]string
	// gossipKey, when set, is the memberlist encryption key file every
	// member (aggregators, queriers) is given.
	gossipKey string
}

// Fast ring timing: heartbeats every second, unhealthy after 3 s (the
// shortest dskit allows), so a dead member's partitions move within
// seconds; pins expire after 3 s.
var clusterTiming = []string{
	"-ring.heartbeat-period=1s", "-ring.heartbeat-timeout=3s",
	"-memberlist.gossip-interval=100ms", "-nats.consumer.pinned-ttl=3s",
	"-nats.consumer.ack-wait=5s",
}

func newClusterFixture(t *testing.T, partitions, rf, series int) *clusterFixture {
	nats := testutil.StartNATS(t)
	return &clusterFixture{t: t, natsURL: nats.ClientURL(), partitions: partitions, rf: rf,
		target: startCountingTarget(t, series), aggs: map[string]*pharosProc{}, dirs: map[string]string{}}
}

func (f *clusterFixture) common() []string {
	return append([]string{"-nats.url", f.natsURL, "-nats.partitions", fmt.Sprint(f.partitions),
		"-ring.replication-factor", fmt.Sprint(f.rf)}, clusterTiming...)
}

func (f *clusterFixture) join() []string {
	var args []string
	if f.gossipKey != "" {
		args = append(args, "-memberlist.encryption-key-file", f.gossipKey)
	}
	if f.seed == "" {
		return args
	}
	return append(args, "-memberlist.join", f.seed)
}

// startAggregator starts (or restarts, with its data) aggregator name.
func (f *clusterFixture) startAggregator(name string) *pharosProc {
	t := f.t
	if f.dirs[name] == "" {
		f.dirs[name] = t.TempDir()
	}
	args := append([]string{"-target=aggregator", "-data.dir", f.dirs[name], "-ring.instance-id", name}, f.common()...)
	p := startPharos(t, name, append(args, f.join()...))
	if f.seed == "" {
		ev, ok := p.findLog(func(ev logEvent) bool { return ev.Msg == "gossip listening" })
		require.True(t, ok, "aggregator %s did not log its gossip address", name)
		f.seed = ev.Address
	}
	f.aggs[name] = p
	return p
}

func (f *clusterFixture) startAgent() *pharosProc {
	return startPharos(f.t, "agent", append([]string{"-target=agent", "-data.dir", f.t.TempDir(),
		"-scrape.config-file", writeFastScrapeConfig(f.t, "delivery", f.target.addr)}, f.common()...))
}

func (f *clusterFixture) startQuery() *pharosProc {
	return startPharos(f.t, "query", append(append([]string{"-target=query", "-data.dir", f.t.TempDir()}, f.common()...), f.join()...))
}

// requireBalanced waits until exactly the named aggregators consume, each
// between floor and ceil of partitions×RF / members partition-replicas,
// and returns how long that took.
func (f *clusterFixture) requireBalanced(names ...string) time.Duration {
	t := f.t
	t.Helper()
	start := time.Now()
	total := f.partitions * f.rf
	lo, hi := total/len(names), (total+len(names)-1)/len(names)
	testutil.Poll(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		sum := 0
		var got []string
		for _, n := range names {
			v, err := metricValue(t, f.aggs[n].addr, "pharos_aggregator_consumers")
			if err != nil {
				return false, fmt.Sprintf("%s: %v", n, err)
			}
			got = append(got, fmt.Sprintf("%s=%v", n, v))
			if int(v) < lo || int(v) > hi {
				return false, "consumers per aggregator: " + strings.Join(got, " ")
			}
			sum += int(v)
		}
		return sum == total, fmt.Sprintf("consumers %s, want %d in all", strings.Join(got, " "), total)
	})
	return time.Since(start)
}

// waitConsumedAll waits until every partition-replica's consumer has
// acknowledged everything.
func (f *clusterFixture) waitConsumedAll() {
	t := f.t
	t.Helper()
	cfg := bus.DefaultConfig()
	cfg.URL = f.natsURL
	cfg.Partitions = f.partitions
	conn, err := bus.Connect(cfg, nil, "e2e-observer", nil, nil)
	require.NoError(t, err)
	defer conn.Close()
	testutil.Poll(t, 90*time.Second, 200*time.Millisecond, func() (bool, string) {
		for p := range f.partitions {
			for r := range f.rf {
				lag, err := conn.ConsumerLag(context.Background(), bus.SignalMetrics, bus.DurableName(bus.SignalMetrics, p, r))
				if err != nil {
					return false, fmt.Sprintf("partition %d replica %d: %v", p, r, err)
				}
				if lag != 0 {
					return false, fmt.Sprintf("partition %d replica %d: %d messages not yet acknowledged", p, r, lag)
				}
			}
		}
		return true, ""
	})
}

// queryWarnings runs an instant query and returns its result, rendered,
// and its warnings.
func queryWarnings(t *testing.T, addr, q string, at time.Time) (string, []string) {
	t.Helper()
	var data json.RawMessage
	params := url.Values{"query": {q}, "time": {fmt.Sprintf("%.3f", float64(at.UnixMilli())/1000)}}
	ws, err := getAPIWarnings(addr, "/api/v1/query", params, &data)
	require.NoError(t, err)
	return string(data), ws
}

// TestClusterScaleOutAndIn grows the aggregators from 2 to 3 and shrinks
// them back to 2 while the agent ingests: ownership is rebalanced each
// time, and once the departed aggregator is back with its data, every
// sample scraped is stored exactly once across the cluster.
func TestClusterScaleOutAndIn(t *testing.T) {
	t.Parallel()
	const series, partitions = 200, 8
	f := newClusterFixture(t, partitions, 1, series)
	// Gossip over the shared key: members (and the queriers, which read
	// the ring) admit only peers holding it.
	f.gossipKey = writeFile(t, "gossip.key", base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n")
	f.startAggregator("agg-1")
	f.startAggregator("agg-2")
	agent := f.startAgent()
	query := f.startQuery()
	strict := startPharos(t, "query-strict", append(append([]string{"-target=query", "-data.dir", t.TempDir(),
		"-query.partial-response=false"}, f.common()...), f.join()...))
	t.Logf("balanced over 2 in %s", f.requireBalanced("agg-1", "agg-2"))

	seen := f.target.scrapes.Load()
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return f.target.scrapes.Load() >= seen+3, "waiting for scrapes"
	})
	f.startAggregator("agg-3")
	t.Logf("balanced over 3 in %s", f.requireBalanced("agg-1", "agg-2", "agg-3"))

	seen = f.target.scrapes.Load()
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return f.target.scrapes.Load() >= seen+3, "waiting for scrapes"
	})
	f.aggs["agg-2"].Stop() // leaves the ring cleanly
	t.Logf("balanced over 2 after a leave in %s", f.requireBalanced("agg-1", "agg-3"))

	seen = f.target.scrapes.Load()
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return f.target.scrapes.Load() >= seen+3, "waiting for scrapes"
	})
	scrapes := f.target.freeze(t)
	agent.Stop()
	f.waitConsumedAll()

	// agg-2 holds what it consumed while it was a member: with RF=1 the
	// querier says so while it is away.
	_, warnings := queryWarnings(t, query.addr, `count(count_over_time(delivery_series[1h]))`, time.Now())
	require.NotEmpty(t, warnings, "a departed aggregator's data is missing and the response must say so")
	require.Contains(t, strings.Join(warnings, "\n"), "agg-2")
	// A querier that must not answer partially fails instead.
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		var data json.RawMessage
		err := getAPI(strict.addr, "/api/v1/query", url.Values{"query": {"count(count_over_time(delivery_series[1h]))"}}, &data)
		if err == nil {
			return false, "strict querier answered while agg-2 is away: " + string(data)
		}
		return strings.Contains(err.Error(), "agg-2"), "error does not name agg-2: " + err.Error()
	})
	strict.Stop()

	f.startAggregator("agg-2")
	f.requireBalanced("agg-1", "agg-2", "agg-3")
	testutil.Poll(t, 30*time.Second, 200*time.Millisecond, func() (bool, string) {
		_, ws := queryWarnings(t, query.addr, `count(count_over_time(delivery_series[1h]))`, time.Now())
		return len(ws) == 0, fmt.Sprintf("warnings: %v", ws)
	})
	requireEverySample(t, query.addr, "delivery", series, scrapes)
	query.Stop()
	for _, n := range []string{"agg-1", "agg-2", "agg-3"} {
		f.aggs[n].Stop()
	}
}

// TestClusterKillWithReplicas kills one of three aggregators with SIGKILL
// under load, with every partition consumed by two of them (RF=2): its
// partition-replicas are owned again within the heartbeat timeout, queries
// give the same answers during the outage without warnings, and no sample
// is lost.
func TestClusterKillWithReplicas(t *testing.T) {
	t.Parallel()
	const series, partitions = 200, 6
	f := newClusterFixture(t, partitions, 2, series)
	f.startAggregator("agg-1")
	f.startAggregator("agg-2")
	f.startAggregator("agg-3")
	agent := f.startAgent()
	query := f.startQuery()
	f.requireBalanced("agg-1", "agg-2", "agg-3")

	seen := f.target.scrapes.Load()
	testutil.Poll(t, 60*time.Second, 50*time.Millisecond, func() (bool, string) {
		return f.target.scrapes.Load() >= seen+15, "waiting for scrapes"
	})
	// An answer about the past, fixed before the crash: samples older than
	// the agent's flush interval (5 s) plus a scrape have been published.
	at := time.Now().Add(-8 * time.Second)
	const q = `sum(count_over_time(delivery_series[1m]))`
	f.waitConsumedAll()
	before, ws := queryWarnings(t, query.addr, q, at)
	require.Empty(t, ws)

	killed := time.Now()
	f.aggs["agg-3"].Kill()
	during, ws := queryWarnings(t, query.addr, q, at)
	require.Empty(t, ws, "with RF=2 the survivors hold everything")
	require.Equal(t, before, during)
	took := f.requireBalanced("agg-1", "agg-2")
	t.Logf("partition-replicas of the killed aggregator owned again %s after the kill (heartbeat timeout 3s)", time.Since(killed).Round(time.Millisecond))
	require.Less(t, took, 30*time.Second)

	seen = f.target.scrapes.Load()
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return f.target.scrapes.Load() >= seen+3, "waiting for scrapes"
	})
	scrapes := f.target.freeze(t)
	agent.Stop()
	f.waitConsumedAll()
	after, ws := queryWarnings(t, query.addr, q, at)
	require.Empty(t, ws)
	require.Equal(t, before, after)
	requireEverySample(t, query.addr, "delivery", series, scrapes)
	query.Stop()
	f.aggs["agg-1"].Stop()
	f.aggs["agg-2"].Stop()
}
