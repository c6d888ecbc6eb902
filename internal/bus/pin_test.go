package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Two aggregators that both believe they own a partition-replica (gossip
// not converged yet) consume it at once: the pin gives every message to one
// of them only. When that one stops, the other is served at once (the
// stopping one unpins), and between them every message is acked exactly
// once.
func TestPinnedConsumerIsExclusive(t *testing.T) {
	srv := startServer(t)
	// An agent creates the stream and its consumers first, with its own
	// (non-exclusive) settings ...
	agent := connect(t, testConfig(), srv, nil)
	require.NoError(t, agent.EnsureStreams(context.Background(), SignalMetrics))
	// ... the aggregators' settings then win ...
	cfg := testConfig()
	cfg.Consumer.Exclusive, cfg.Consumer.Manage = true, true
	cfg.Consumer.PinnedTTL = time.Minute // a handover must not wait for it
	c := connect(t, cfg, srv, nil)
	require.NoError(t, c.EnsureStreams(context.Background(), SignalMetrics))
	// ... and an agent starting later does not undo them.
	require.NoError(t, agent.EnsureStreams(context.Background(), SignalMetrics))
	info, err := c.js.Consumer(context.Background(), StreamName(SignalMetrics), DurableName(SignalMetrics, 1, 0))
	require.NoError(t, err)
	require.Equal(t, []string{ownerGroup}, info.CachedInfo().Config.PriorityGroups)
	durable := DurableName(SignalMetrics, 1, 0)

	a := startConsumer(t, c, SignalMetrics, 1, durable)
	b := startConsumer(t, c, SignalMetrics, 1, durable)
	publishN(t, c, SignalMetrics, 1, 0, 20)

	seen := map[string]int{}
	// The first message decides who holds the pin.
	var holder, other *consumer
	select {
	case d := <-a.ch:
		holder, other = a, b
		seen[string(d.Data)]++
		require.NoError(t, d.Ack())
	case d := <-b.ch:
		holder, other = b, a
		seen[string(d.Data)]++
		require.NoError(t, d.Ack())
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	for len(seen) < 20 {
		d := holder.next(t)
		seen[string(d.Data)]++
		require.NoError(t, d.Ack())
	}
	require.Empty(t, other.ch, "the consumer without the pin got messages")

	// Handover: the holder stops; the other takes over well before the
	// one-minute pinned TTL.
	holder.stop(t)
	start := time.Now()
	publishN(t, c, SignalMetrics, 1, 20, 10)
	for len(seen) < 30 {
		d := other.next(t)
		seen[string(d.Data)]++
		require.NoError(t, d.Ack())
	}
	require.Less(t, time.Since(start), 30*time.Second)
	for i := range 30 {
		require.Equal(t, 1, seen[fmt.Sprintf("msg %d", i)], "msg %d", i)
	}
	waitLag(t, c, SignalMetrics, durable, 0)
}

// With a replication factor of 2, each partition has two durable
// consumers from the start, and each sees every message.
func TestReplicaConsumersEachSeeEverything(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig()
	cfg.Consumer.Replicas = 2
	c := connect(t, cfg, srv, nil)
	require.NoError(t, c.EnsureStreams(context.Background(), SignalMetrics))
	// Published before any aggregator runs: interest retention must keep
	// the messages for both replicas.
	publishN(t, c, SignalMetrics, 2, 0, 5)
	for r := range 2 {
		cs := startConsumer(t, c, SignalMetrics, 2, DurableName(SignalMetrics, 2, r))
		for i := range 5 {
			d := cs.next(t)
			require.Equal(t, fmt.Sprintf("msg %d", i), string(d.Data), "replica %d", r)
			require.NoError(t, d.Ack())
		}
		cs.stop(t)
	}
}
