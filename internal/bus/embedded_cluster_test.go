package bus_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus"
	"github.com/pharos-obs/pharos/internal/testutil"
)

// clusterNode is one node of a test cluster. After its first start it keeps
// its addresses and its store, as a real node with a fixed address and its
// own disk does: the client's URL list and the other nodes' routes name
// those addresses.
type clusterNode struct {
	cfg bus.EmbeddedConfig
	dir string
	srv *bus.EmbeddedServer // nil while stopped
}

func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	logger := testLogger().With("node", n.cfg.ServerName)
	srv, err := bus.StartEmbedded(n.cfg, n.dir, logger)
	require.NoError(t, err, "start %s", n.cfg.ServerName)
	n.srv = srv
	n.cfg.ListenAddress = strings.TrimPrefix(srv.ClientURL(), "nats://")
	n.cfg.ClusterListenAddress = srv.ClusterAddr()
}

func (n *clusterNode) stop() {
	if n.srv != nil {
		n.srv.Shutdown()
		n.srv = nil
	}
}

func (n *clusterNode) name() string { return n.cfg.ServerName }

// nats returns the running nats-server.
func (n *clusterNode) nats() *server.Server { return bus.NATSServer(n.srv) }

// metaState reports whether the node is in a formed three-node JetStream
// cluster.
func (n *clusterNode) metaState() (bool, string) {
	if !n.srv.JetStreamReady() {
		return false, n.name() + ": jetstream not ready"
	}
	jsi, err := n.nats().Jsz(nil)
	if err != nil || jsi.Meta == nil {
		return false, fmt.Sprintf("%s: no meta group info (%v)", n.name(), err)
	}
	if jsi.Meta.Leader == "" || jsi.Meta.Size != 3 {
		return false, fmt.Sprintf("%s: meta leader %q, cluster size %d", n.name(), jsi.Meta.Leader, jsi.Meta.Size)
	}
	return true, ""
}

// routePeers returns the names of the nodes n has a route to.
func (n *clusterNode) routePeers() []string {
	rz, err := n.nats().Routez(nil)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var names []string
	for _, r := range rz.Routes {
		if !seen[r.RemoteName] {
			seen[r.RemoteName] = true
			names = append(names, r.RemoteName)
		}
	}
	slices.Sort(names)
	return names
}

// lastSeq returns the last sequence of the node's replica of stream.
func (n *clusterNode) lastSeq(stream string) (uint64, bool) {
	jsi, err := n.nats().Jsz(&server.JSzOptions{Accounts: true, Streams: true})
	if err != nil {
		return 0, false
	}
	for _, ad := range jsi.AccountDetails {
		for _, sd := range ad.Streams {
			if sd.Name == stream {
				return sd.State.LastSeq, true
			}
		}
	}
	return 0, false
}

// formed reports whether every node is in the same formed JetStream
// cluster.
func formed(nodes []*clusterNode) (bool, string) {
	for _, n := range nodes {
		if ok, msg := n.metaState(); !ok {
			return false, msg
		}
	}
	return true, ""
}

// received collects what the consumer was handed.
type received struct {
	mu         sync.Mutex
	ids        map[string]bool
	seqs       map[uint64]bool
	deliveries int
	ackErrs    int
}

func (r *received) handle(_ context.Context, batch []*bus.Delivery) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range batch {
		r.deliveries++
		r.ids[d.MsgID] = true
		r.seqs[d.StreamSeq] = true
		if err := d.Ack(); err != nil {
			// The message comes again after the ack wait.
			r.ackErrs++
		}
	}
}

// has reports whether every message up to n (exclusive) has arrived.
func (r *received) has(n int) (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var missing []string
	for i := range n {
		if id := msgID(i); !r.ids[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return false, fmt.Sprintf("%d of %d messages not consumed yet, first %s", len(missing), n, missing[0])
	}
	return true, ""
}

func msgID(i int) string { return fmt.Sprintf("batch-%04d", i) }

// A Pharos process can be one node of a three-node NATS cluster: the nodes
// find each other from one route each, form JetStream, and keep R3 streams
// available when any one node is down, including the one a client is
// connected to. A node brought back on its store rejoins and catches up. No
// acknowledged publish is lost and none is stored twice.
func TestEmbeddedClusterFailover(t *testing.T) {
	const perPhase = 40
	stream := bus.StreamName(bus.SignalMetrics)
	nodes := make([]*clusterNode, 3)
	for i := range nodes {
		nodes[i] = &clusterNode{dir: t.TempDir(), cfg: bus.EmbeddedConfig{
			ListenAddress:        "127.0.0.1:0",
			ServerName:           "n" + strconv.Itoa(i+1),
			ClusterName:          "pharos-test",
			ClusterListenAddress: "127.0.0.1:0",
		}}
	}
	// Registered after t.TempDir, so the nodes stop before their stores go.
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})

	// Clustered JetStream needs a configured route, so the first node gets
	// the second one's address, the one port chosen up front. The third
	// knows only the first and learns of the second through gossip.
	seedPort := freeTCPPort(t)
	nodes[0].cfg.Routes = []string{"127.0.0.1:" + strconv.Itoa(seedPort)}
	start := time.Now()
	nodes[0].start(t)
	require.Less(t, time.Since(start), 4*time.Second, "a node whose peers are not up must not wait for them")
	require.NotEmpty(t, nodes[0].srv.ClusterAddr())
	require.NotEqual(t, "127.0.0.1:0", nodes[0].srv.ClusterAddr(), "port 0 must pick a free port")
	require.False(t, nodes[0].srv.JetStreamReady(), "one node of three has no quorum, yet it starts")

	nodes[1].cfg.ClusterListenAddress = "127.0.0.1:" + strconv.Itoa(seedPort)
	nodes[1].cfg.Routes = []string{nodes[0].srv.ClusterAddr()}
	nodes[1].start(t)
	nodes[2].cfg.Routes = []string{"nats-route://" + nodes[0].srv.ClusterAddr()}
	nodes[2].start(t)
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) { return formed(nodes) })
	// A full mesh: n3 was told only of n1.
	testutil.Poll(t, 10*time.Second, 20*time.Millisecond, func() (bool, string) {
		peers := nodes[2].routePeers()
		return slices.Equal(peers, []string{"n1", "n2"}), fmt.Sprintf("n3 has routes to %v", peers)
	})

	cfg := bus.DefaultConfig()
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.srv.ClientURL()
	}
	cfg.URL = strings.Join(urls, ",")
	cfg.Partitions = 1
	cfg.Stream.Replicas = 3
	cfg.Stream.MaxBytes = 16 << 20 // reserved on each replica
	cfg.PublishTimeout = 2 * time.Second
	cfg.Consumer.AckWait = 5 * time.Second
	c, err := bus.Connect(cfg, nil, "cluster-test", nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	testutil.Poll(t, 10*time.Second, 20*time.Millisecond, func() (bool, string) { return c.Connected(), "not connected" })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, c.EnsureStreams(ctx, bus.SignalMetrics))
	for _, n := range nodes {
		require.True(t, n.nats().JetStreamIsStreamAssigned(server.DEFAULT_GLOBAL_ACCOUNT, stream), "%s holds no replica of %s", n.name(), stream)
	}

	got := &received{ids: map[string]bool{}, seqs: map[uint64]bool{}}
	cctx, stopConsumer := context.WithCancel(context.Background())
	consumerDone := make(chan error, 1)
	go func() {
		consumerDone <- c.ConsumePartition(cctx, bus.SignalMetrics, 0, bus.DurableName(bus.SignalMetrics, 0, 0), got.handle)
	}()
	t.Cleanup(func() {
		stopConsumer()
		select {
		case err := <-consumerDone:
			require.NoError(t, err)
		case <-time.After(15 * time.Second):
			t.Error("ConsumePartition did not return after cancel")
		}
	})

	// publish sends messages [from, from+n) the way an agent does: a failed
	// publish is retried with the same ID, so a retry of a publish that was
	// stored after all is de-duplicated rather than stored twice.
	retries := 0
	publish := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			m := &bus.OutMsg{Signal: bus.SignalMetrics, ID: msgID(i), Data: []byte(msgID(i))}
			testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
				if err := c.Publish(context.Background(), m); err != nil {
					retries++
					return false, fmt.Sprintf("publish %s: %v", m.ID, err)
				}
				return true, ""
			})
		}
	}
	consumed := func(n int) {
		t.Helper()
		testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) { return got.has(n) })
	}
	// caughtUp waits until n is healthy (every stream and consumer replica
	// it holds is current) and has stored exactly total messages.
	caughtUp := func(n *clusterNode, total int) {
		t.Helper()
		testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) {
			if ok, msg := n.metaState(); !ok {
				return false, msg
			}
			if h := n.nats().Healthz(nil); h.StatusCode != http.StatusOK {
				return false, fmt.Sprintf("%s: %s", n.name(), h.Error)
			}
			if seq, _ := n.lastSeq(stream); seq != uint64(total) {
				return false, fmt.Sprintf("%s: last sequence %d, want %d", n.name(), seq, total)
			}
			return true, ""
		})
	}
	running := func() []*clusterNode {
		var rs []*clusterNode
		for _, n := range nodes {
			if n.srv != nil {
				rs = append(rs, n)
			}
		}
		return rs
	}
	connectedNode := func() *clusterNode {
		t.Helper()
		var name string
		testutil.Poll(t, 15*time.Second, 20*time.Millisecond, func() (bool, string) {
			name = bus.ConnectedServerName(c)
			return name != "", "client not connected"
		})
		for _, n := range nodes {
			if n.name() == name {
				return n
			}
		}
		t.Fatalf("connected to unknown server %q", name)
		return nil
	}

	publish(0, perPhase)
	consumed(perPhase)

	// One node down, not the client's: the stream leader when that is
	// another node, so publishing has to wait out a leader election.
	client := connectedNode()
	var victim *clusterNode
	for _, n := range nodes {
		if n != client && (victim == nil || n.nats().JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)) {
			victim = n
		}
	}
	t.Logf("phase 1: stopping %s (stream leader: %t; client on %s)", victim.name(),
		victim.nats().JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream), client.name())
	victim.stop()
	publish(perPhase, perPhase)
	consumed(2 * perPhase)
	for _, n := range running() {
		caughtUp(n, 2*perPhase)
	}

	// It comes back on its store and catches up with what it missed.
	victim.start(t)
	caughtUp(victim, 2*perPhase)

	// Now the node the client is connected to: the client moves to another
	// URL of its list and carries on.
	client = connectedNode()
	t.Logf("phase 2: stopping %s, the client's node (stream leader: %t)", client.name(),
		client.nats().JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream))
	client.stop()
	publish(2*perPhase, perPhase)
	consumed(3 * perPhase)
	require.NotEqual(t, client.name(), connectedNode().name())
	client.start(t)
	for _, n := range nodes {
		caughtUp(n, 3*perPhase)
	}

	// Every message was consumed, each stored once: sequences 1..total
	// were delivered and no node stored more.
	got.mu.Lock()
	defer got.mu.Unlock()
	for seq := uint64(1); seq <= 3*perPhase; seq++ {
		require.True(t, got.seqs[seq], "stream sequence %d never delivered", seq)
	}
	require.Len(t, got.seqs, 3*perPhase)
	t.Logf("%d messages, %d deliveries, %d publish retries, %d failed acks", 3*perPhase, got.deliveries, retries, got.ackErrs)
}

// The documented set-up: every node gets the same route list, naming all
// three nodes (its own route is ignored), and they start in any order.
func TestEmbeddedClusterSameRoutesEverywhere(t *testing.T) {
	nodes := make([]*clusterNode, 3)
	routes := make([]string, len(nodes))
	for i := range nodes {
		nodes[i] = &clusterNode{dir: t.TempDir()}
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(freeTCPPort(t))
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
	})
	for i, n := range nodes {
		n.cfg = bus.EmbeddedConfig{
			ListenAddress:        "127.0.0.1:0",
			ServerName:           "node-" + strconv.Itoa(i),
			ClusterName:          "pharos",
			ClusterListenAddress: strings.TrimPrefix(routes[i], "nats-route://"),
			Routes:               routes,
			SyncInterval:         "always",
		}
	}
	// Concurrently, as a StatefulSet with parallel pod management does.
	srvs := make([]*bus.EmbeddedServer, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { srvs[i], errs[i] = bus.StartEmbedded(n.cfg, n.dir, testLogger()) })
	}
	wg.Wait()
	for i, n := range nodes {
		n.srv = srvs[i] // before require, so that cleanup stops every started node
	}
	for i := range nodes {
		require.NoError(t, errs[i])
	}
	testutil.Poll(t, 30*time.Second, 50*time.Millisecond, func() (bool, string) { return formed(nodes) })
	for i, n := range nodes {
		require.Equal(t, strings.TrimPrefix(routes[i], "nats-route://"), n.srv.ClusterAddr())
		require.Len(t, n.routePeers(), 2)
	}
}

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// freeTCPPort returns a loopback port nothing listens on.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}
