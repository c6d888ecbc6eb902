package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestStreamStats(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, prometheus.NewRegistry())
	ctx := context.Background()

	// Before the streams exist, each reports why it cannot be looked up.
	for _, st := range c.StreamStats(ctx) {
		require.Error(t, st.Err, st.Name)
	}

	require.NoError(t, c.EnsureStreams(ctx))
	published := map[Signal]int{SignalMetrics: 5, SignalLogs: 2, SignalTraces: 0}
	for s, n := range published {
		for i := range n {
			require.NoError(t, c.Publish(ctx, &OutMsg{Signal: s, Partition: i % c.Partitions(), ID: fmt.Sprintf("%s-%d", s, i), Data: []byte("payload")}))
		}
	}

	stats := c.StreamStats(ctx)
	require.Len(t, stats, len(Signals))
	for i, s := range Signals {
		st := stats[i]
		require.NoError(t, st.Err, s)
		require.Equal(t, s, st.Signal)
		require.Equal(t, StreamName(s), st.Name)
		require.Equal(t, []string{"pharos." + string(s) + ".*"}, st.Subjects)
		n := uint64(published[s])
		require.Equal(t, n, st.Messages, s)
		require.Equal(t, n, st.LastSeq, s)
		if n > 0 {
			require.Equal(t, uint64(1), st.FirstSeq, s)
			require.Positive(t, st.Bytes, s)
		} else {
			require.Zero(t, st.Bytes, s)
		}
		// One durable consumer per partition (replication factor 1).
		require.Equal(t, c.Partitions(), st.Consumers, s)
		require.Equal(t, 1, st.Replicas, s)
	}
}

func TestConsumerStats(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, prometheus.NewRegistry())
	ctx := context.Background()
	require.NoError(t, c.EnsureStreams(ctx, SignalLogs))
	for i := range 3 {
		require.NoError(t, c.Publish(ctx, &OutMsg{Signal: SignalLogs, Partition: 1, ID: fmt.Sprint(i), Data: []byte("x")}))
	}
	durable := DurableName(SignalLogs, 1, 0)
	// The consumer's pending count follows the stream a moment after the
	// publish acks.
	var st ConsumerStats
	var err error
	require.Eventually(t, func() bool {
		st, err = c.ConsumerStats(ctx, SignalLogs, durable)
		return err == nil && st == ConsumerStats{Pending: 3}
	}, 5*time.Second, 10*time.Millisecond, "stats %+v, err %v", st, err)
	require.Equal(t, uint64(3), st.Lag())

	// Delivered, not acked: pending moves to ack-pending, the lag stays.
	cs := startConsumer(t, c, SignalLogs, 1, durable)
	d := cs.next(t)
	require.NoError(t, d.Ack())
	cs.next(t)
	cs.next(t)
	// The server may answer the info request before it has applied the
	// ack it confirmed.
	require.Eventually(t, func() bool {
		st, err = c.ConsumerStats(ctx, SignalLogs, durable)
		return err == nil && st == ConsumerStats{Pending: 0, AckPending: 2}
	}, 5*time.Second, 10*time.Millisecond, "stats %+v, err %v", st, err)
	lag, err := c.ConsumerLag(ctx, SignalLogs, durable)
	require.NoError(t, err)
	require.Equal(t, lag, st.Lag())

	_, err = c.ConsumerStats(ctx, SignalLogs, "nope")
	require.Error(t, err)
	_, err = c.ConsumerStats(ctx, Signal("bogus"), durable)
	require.Error(t, err)
}
