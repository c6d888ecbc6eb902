package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/testutil"
)

// natsNode is one `pharos -target=nats` process of a three-node NATS
// cluster. Its addresses are fixed before the first start, since every
// node's route list and every client's URL list name them, and it keeps
// them and its data directory across restarts.
type natsNode struct {
	name, client, route, dir string
	proc                     *pharosProc
}

func (n *natsNode) args(routes string) []string {
	return []string{"-target=nats", "-data.dir", n.dir,
		"-nats.embedded.server-name", n.name, "-nats.embedded.cluster-name", "pharos-e2e",
		"-nats.embedded.listen-address", n.client, "-nats.embedded.cluster-listen-address", n.route,
		"-nats.embedded.routes", routes}
}

// natsCluster starts three NATS nodes at once (none is ready alone: /ready
// waits for a JetStream meta leader, which needs two) and waits for all.
func natsCluster(t *testing.T) (nodes []*natsNode, urls, routes string) {
	t.Helper()
	var u, r []string
	for i := range 3 {
		n := &natsNode{name: fmt.Sprintf("nats-%d", i+1), client: freeAddr(t), route: freeAddr(t), dir: t.TempDir()}
		nodes = append(nodes, n)
		u = append(u, "nats://"+n.client)
		r = append(r, "nats-route://"+n.route)
	}
	urls, routes = strings.Join(u, ","), strings.Join(r, ",")
	for _, n := range nodes {
		n.proc = launchPharos(t, n.name, withEphemeralPorts(n.args(routes)), nil)
	}
	for _, n := range nodes {
		n.proc.waitStarted()
	}
	return nodes, urls, routes
}

// streamLeader returns the node that most recently logged that it became
// the leader of stream (nats-server logs "JetStream cluster new stream
// leader for '$G > NAME'" on the new leader), or nil if none has.
func streamLeader(t *testing.T, nodes []*natsNode, stream string) *natsNode {
	t.Helper()
	needle := "new stream leader for '$G > " + stream + "'"
	var leader *natsNode
	var latest time.Time
	for _, n := range nodes {
		f, err := os.Open(n.proc.logPath)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		for sc.Scan() {
			var ev struct {
				Time time.Time `json:"time"`
				Msg  string    `json:"msg"`
			}
			if json.Unmarshal(sc.Bytes(), &ev) != nil || !strings.Contains(ev.Msg, needle) {
				continue
			}
			if ev.Time.After(latest) {
				leader, latest = n, ev.Time
			}
		}
		require.NoError(t, f.Close())
	}
	return leader
}

// TestNATSClusterNodeCrashUnderLoad stops one of three NATS nodes under
// load: ingestion continues; 0 lost. With R3 streams the cluster keeps a
// quorum when one node is down. The node killed (SIGKILL, a crash) is the
// metrics stream's leader, the hardest one: the stream elects a new leader
// while the agent publishes and the aggregator consumes, and both clients
// reconnect to the surviving nodes. Samples scraped during the outage are
// stored during the outage; the node comes back on its data directory and
// catches up; every sample scraped is stored exactly once.
func TestNATSClusterNodeCrashUnderLoad(t *testing.T) {
	t.Parallel()
	const series, partitions = 200, 4
	nodes, urls, routes := natsCluster(t)
	target := startCountingTarget(t, series)
	common := append([]string{"-nats.url", urls, "-nats.stream.replicas", "3",
		"-nats.partitions", fmt.Sprint(partitions), "-ring.replication-factor", "1"}, clusterTiming...)

	// One process consumes and answers queries (the query role reads the
	// ring, whose only member is this process).
	agg := startPharos(t, "aggregator", append([]string{"-target=aggregator,query", "-data.dir", t.TempDir(),
		"-ring.instance-id", "aggregator-1"}, common...))
	agent := startPharos(t, "agent", append([]string{"-target=agent", "-data.dir", t.TempDir(),
		"-agent.id", "agent-1", "-agent.publish.flush-interval=1s",
		"-scrape.config-file", writeFastScrapeConfig(t, "delivery", target.addr)}, common...))

	// stored is how many samples series i=0 holds now.
	stored := func() (int, error) {
		s, err := querySamples(agg.addr, `delivery_series{job="delivery",i="0"}[1h]`, time.Now())
		return len(s), err
	}
	waitStored := func(n int64, why string) {
		t.Helper()
		testutil.Poll(t, dataTimeout, 200*time.Millisecond, func() (bool, string) {
			got, err := stored()
			if err != nil {
				return false, err.Error()
			}
			return int64(got) >= n, fmt.Sprintf("%s: %d samples of series i=0 stored, want %d", why, got, n)
		})
	}
	waitStored(5, "before the crash")

	victim := streamLeader(t, nodes, "PHAROS_METRICS")
	require.NotNil(t, victim, "no NATS node logged that it leads PHAROS_METRICS")
	atKill := target.scrapes.Load()
	victim.proc.Kill()
	down := time.Now()
	t.Logf("killed %s, the PHAROS_METRICS stream leader, after %d scrapes", victim.name, atKill)

	// Ingestion continues with one node down: scrapes after the crash are
	// stored while the node is still down.
	waitStored(atKill+5, "with "+victim.name+" down")
	t.Logf("5 scrapes after the crash stored %s after it, with %s still down", time.Since(down).Round(time.Millisecond), victim.name)

	// Back on its data directory, at its addresses.
	victim.proc = startPharos(t, victim.name+"-restarted", victim.args(routes))
	seen := target.scrapes.Load()
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return target.scrapes.Load() >= seen+3, "waiting for scrapes after the restart"
	})

	scrapes := target.freeze(t)
	// How the agent rode out the failover (for the log; the samples below
	// are the proof): publishes that failed went to its spool and were
	// replayed.
	for _, m := range []string{"pharos_agent_publish_retries_total", "pharos_agent_spool_appended_records_total"} {
		v, err := metricValue(t, agent.addr, m)
		require.NoError(t, err)
		t.Logf("agent %s %v", m, v)
	}
	agent.Stop() // flushes its last batches
	waitConsumed(t, urls, partitions)
	requireEverySample(t, agg.addr, "delivery", series, scrapes)
	t.Logf("%d scrapes of %d series, every sample stored once", scrapes, series)

	agg.Stop()
	for _, n := range nodes {
		n.proc.Stop()
	}
}
