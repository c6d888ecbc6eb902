package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func publishN(t *testing.T, c *Conn, s Signal, partition, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		require.NoError(t, c.Publish(context.Background(), &OutMsg{
			Signal: s, Partition: partition, ID: fmt.Sprintf("m-%d", i), Data: fmt.Appendf(nil, "msg %d", i),
		}))
	}
}

func waitLag(t *testing.T, c *Conn, s Signal, durable string, want uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		lag, err := c.ConsumerLag(context.Background(), s, durable)
		return err == nil && lag == want
	}, 5*time.Second, 10*time.Millisecond)
}

func TestRedeliveryAndTerm(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig()
	cfg.Consumer.AckWait = 300 * time.Millisecond
	c := connect(t, cfg, srv, nil)
	require.NoError(t, c.EnsureStreams(context.Background(), SignalLogs))
	publishN(t, c, SignalLogs, 0, 0, 1)

	cs := startConsumer(t, c, SignalLogs, 0, "agg")
	first := cs.next(t)
	require.Equal(t, uint64(1), first.NumDelivered)
	// Not acked: JetStream redelivers it after the ack wait.
	again := cs.next(t)
	require.Equal(t, first.StreamSeq, again.StreamSeq)
	require.Equal(t, "msg 0", string(again.Data))
	require.Greater(t, again.NumDelivered, uint64(1))

	// Term: the message is neither pending nor awaiting an ack any more, so
	// the server has nothing left to redeliver.
	require.NoError(t, again.Term())
	waitLag(t, c, SignalLogs, "agg", 0)
	cons, err := c.js.Consumer(context.Background(), StreamName(SignalLogs), "agg")
	require.NoError(t, err)
	info := cons.CachedInfo()
	require.Equal(t, first.StreamSeq, info.AckFloor.Stream)

	// The loop carries on with new messages.
	publishN(t, c, SignalLogs, 0, 1, 1)
	for {
		d := cs.next(t)
		if d.StreamSeq == first.StreamSeq {
			continue // a redelivery already in flight before the Term landed
		}
		require.Equal(t, "msg 1", string(d.Data))
		require.NoError(t, d.Ack())
		break
	}
}

func TestNakRedeliversAtOnce(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, nil) // ack wait 30s: only the Nak can bring it back
	require.NoError(t, c.EnsureStreams(context.Background(), SignalMetrics))
	publishN(t, c, SignalMetrics, 1, 0, 1)

	cs := startConsumer(t, c, SignalMetrics, 1, "agg")
	d := cs.next(t)
	require.NoError(t, d.Nak(0))
	d2 := cs.next(t)
	require.Equal(t, d.StreamSeq, d2.StreamSeq)
	require.Equal(t, uint64(2), d2.NumDelivered)
	require.NoError(t, d2.InProgress())
	require.NoError(t, d2.Ack())
	waitLag(t, c, SignalMetrics, "agg", 0)
}

func TestDurableResume(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, nil)
	require.NoError(t, c.EnsureStreams(context.Background(), SignalTraces))
	publishN(t, c, SignalTraces, 3, 0, 3)

	cs := startConsumer(t, c, SignalTraces, 3, "agg-a")
	for i := range 3 {
		d := cs.next(t)
		require.Equal(t, fmt.Sprintf("msg %d", i), string(d.Data))
		require.NoError(t, d.Ack())
	}
	waitLag(t, c, SignalTraces, "agg-a", 0)
	cs.stop(t)

	publishN(t, c, SignalTraces, 3, 3, 2)
	waitLag(t, c, SignalTraces, "agg-a", 2)

	// Same durable again: only the two new messages, first of all, in order.
	cs2 := startConsumer(t, c, SignalTraces, 3, "agg-a")
	for i := 3; i < 5; i++ {
		d := cs2.next(t)
		require.Equal(t, fmt.Sprintf("msg %d", i), string(d.Data))
		require.Equal(t, uint64(i+1), d.StreamSeq)
		require.Equal(t, uint64(1), d.NumDelivered)
		require.NoError(t, d.Ack())
	}
	waitLag(t, c, SignalTraces, "agg-a", 0)
}

// Several ready messages arrive as one batch, capped at FetchBatch, and the
// next fetch waits for the handler.
func TestBatching(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig()
	cfg.Consumer.FetchBatch = 4
	c := connect(t, cfg, srv, prometheus.NewRegistry())
	require.NoError(t, c.EnsureStreams(context.Background(), SignalLogs))
	publishN(t, c, SignalLogs, 0, 0, 10)

	batches := make(chan int, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.ConsumePartition(ctx, SignalLogs, 0, "agg", func(_ context.Context, batch []*Delivery) {
			for _, d := range batch {
				if err := d.Ack(); err != nil {
					t.Error(err) // not require: this is not the test goroutine
				}
			}
			batches <- len(batch)
		})
	}()
	total := 0
	var sizes []int
	for total < 10 {
		select {
		case n := <-batches:
			require.LessOrEqual(t, n, 4)
			sizes = append(sizes, n)
			total += n
		case <-time.After(10 * time.Second):
			t.Fatal("batches did not arrive")
		}
	}
	require.Equal(t, 10, total)
	require.Less(t, len(sizes), 10, "ready messages must be batched, got %v", sizes)
	cancel()
	require.NoError(t, <-done)
}

// A consumer deleted under a running loop is recreated, and the loop goes on.
func TestConsumerRecreatedAfterDelete(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, nil)
	require.NoError(t, c.EnsureStreams(context.Background(), SignalLogs))
	publishN(t, c, SignalLogs, 2, 0, 1)

	cs := startConsumer(t, c, SignalLogs, 2, "agg")
	require.NoError(t, cs.next(t).Ack())
	waitLag(t, c, SignalLogs, "agg", 0)

	require.NoError(t, c.js.DeleteConsumer(context.Background(), StreamName(SignalLogs), "agg"))
	publishN(t, c, SignalLogs, 2, 1, 1)
	// The new consumer starts from the beginning again (DeliverAll), so
	// skip to the new message.
	for {
		d := cs.next(t)
		require.NoError(t, d.Ack())
		if string(d.Data) == "msg 1" {
			break
		}
	}
}

// A consumer deleted while no pull request is open (the handler is busy) is
// found missing on the next fetch and recreated.
func TestConsumerRecreatedAfterDeleteWhileIdle(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, nil)
	require.NoError(t, c.EnsureStreams(context.Background(), SignalLogs))
	publishN(t, c, SignalLogs, 1, 0, 1)

	release := make(chan struct{})
	got := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- c.ConsumePartition(ctx, SignalLogs, 1, "agg", func(ctx context.Context, batch []*Delivery) {
			for _, d := range batch {
				if err := d.Ack(); err != nil {
					t.Error(err)
				}
				got <- string(d.Data)
			}
			if string(batch[0].Data) == "msg 0" {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
		})
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	require.Equal(t, "msg 0", <-got)
	waitLag(t, c, SignalLogs, "agg", 0)
	require.NoError(t, c.js.DeleteConsumer(context.Background(), StreamName(SignalLogs), "agg"))
	publishN(t, c, SignalLogs, 1, 1, 1)
	close(release)
	// The recreated consumer delivers everything again (DeliverAll).
	deadline := time.After(15 * time.Second)
	for {
		select {
		case s := <-got:
			if s == "msg 1" {
				return
			}
		case <-deadline:
			t.Fatal("no delivery after the consumer was deleted")
		}
	}
}

// Consumers started before the streams exist wait for them.
func TestConsumeBeforeStreamExists(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, nil)
	cs := startConsumer(t, c, SignalMetrics, 0, "agg")
	require.NoError(t, c.EnsureStreams(context.Background(), SignalMetrics))
	publishN(t, c, SignalMetrics, 0, 0, 1)
	require.Equal(t, "msg 0", string(cs.next(t).Data))
}

func TestConsumePartitionInvalid(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, nil)
	ctx := context.Background()
	h := func(context.Context, []*Delivery) {}
	require.ErrorContains(t, c.ConsumePartition(ctx, "profiles", 0, "d", h), "unknown signal")
	require.ErrorContains(t, c.ConsumePartition(ctx, SignalLogs, 4, "d", h), "out of range")
	require.ErrorContains(t, c.ConsumePartition(ctx, SignalLogs, 0, "", h), "name is required")
	require.ErrorContains(t, c.ConsumePartition(ctx, SignalLogs, 0, "a.b", h), "must not contain")
	require.ErrorContains(t, c.ConsumePartition(ctx, SignalLogs, 0, "d", nil), "nil handler")

	_, err := c.ConsumerLag(ctx, SignalLogs, "missing")
	require.Error(t, err)

	// A hand-built Delivery (as in a handler's unit test) errors, not panics.
	var d Delivery
	require.Error(t, d.Ack())
	require.Error(t, d.Nak(time.Second))
	require.Error(t, d.Term())
	require.Error(t, d.InProgress())

	// A cancelled context ends the loop with nil, even before it binds.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, c.ConsumePartition(cctx, SignalLogs, 0, "d", h))
}

func TestPullExpiry(t *testing.T) {
	pinned := jetstream.ConsumerConfig{PriorityPolicy: jetstream.PriorityPolicyPinned, PinnedTTL: 30 * time.Second}
	for _, tc := range []struct {
		name string
		cfg  jetstream.ConsumerConfig
		lone bool
		want time.Duration
	}{
		{"pinned: renewed within the pin's TTL", pinned, false, 10 * time.Second},
		{"pinned on a lone server too", pinned, true, 10 * time.Second},
		{"pinned with a short TTL: at least a second", jetstream.ConsumerConfig{PriorityPolicy: jetstream.PriorityPolicyPinned, PinnedTTL: time.Second}, false, time.Second},
		{"over the network or in a cluster", jetstream.ConsumerConfig{}, false, 30 * time.Second},
		{"lone in-process server", jetstream.ConsumerConfig{}, true, 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, pullExpiry(tc.cfg, tc.lone))
		})
	}
	// The all-in-one's connection is to a lone server, and its consumers
	// still get each message at once (the other tests consume this way).
	c := connect(t, testConfig(), startServer(t), nil)
	require.True(t, c.lone)
}
