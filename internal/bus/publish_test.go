package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestPublishConsumeOwnPartition(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, prometheus.NewRegistry())
	ctx := context.Background()
	require.NoError(t, c.EnsureStreams(ctx, SignalMetrics))

	// Every partition gets messages; the consumer of partition 2 must see
	// only its own, in order, with payload and headers intact.
	for i := range 3 {
		for p := range c.Partitions() {
			require.NoError(t, c.Publish(ctx, &OutMsg{
				Signal:    SignalMetrics,
				Partition: p,
				Tenant:    fmt.Sprintf("tenant-%d", p),
				Encoding:  "prw2+zstd",
				ID:        fmt.Sprintf("agent-1:%d:%d", p, i),
				Data:      fmt.Appendf(nil, "payload %d/%d", p, i),
			}))
		}
	}
	// No tenant: the default; no encoding or ID: no header.
	require.NoError(t, c.Publish(ctx, &OutMsg{Signal: SignalMetrics, Partition: 2, Data: []byte("bare")}))

	cs := startConsumer(t, c, SignalMetrics, 2, "agg-1")
	var lastSeq uint64
	for i := range 3 {
		d := cs.next(t)
		require.Equal(t, "pharos.metrics.2", d.Subject)
		require.Equal(t, 2, d.Partition)
		require.Equal(t, "tenant-2", d.Tenant)
		require.Equal(t, "prw2+zstd", d.Encoding)
		require.Equal(t, fmt.Sprintf("agent-1:2:%d", i), d.MsgID)
		require.Equal(t, fmt.Sprintf("payload 2/%d", i), string(d.Data))
		require.Equal(t, uint64(1), d.NumDelivered)
		require.Greater(t, d.StreamSeq, lastSeq)
		lastSeq = d.StreamSeq
		require.NoError(t, d.Ack())
	}
	d := cs.next(t)
	require.Equal(t, "bare", string(d.Data))
	require.Equal(t, DefaultTenant, d.Tenant)
	require.Empty(t, d.Encoding)
	require.Empty(t, d.MsgID)
	require.NoError(t, d.Ack())

	require.Eventually(t, func() bool {
		lag, err := c.ConsumerLag(ctx, SignalMetrics, "agg-1")
		return err == nil && lag == 0
	}, 5*time.Second, 10*time.Millisecond)
	select {
	case d := <-cs.ch:
		t.Fatalf("unexpected delivery from %s", d.Subject)
	default:
	}
	require.Equal(t, 13.0, testutil.ToFloat64(c.metrics.publishedMessages.WithLabelValues("metrics")))
	require.Equal(t, 4.0, testutil.ToFloat64(c.metrics.consumedMessages.WithLabelValues("metrics")))
}

func TestPublishDuplicateStoredOnce(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, prometheus.NewRegistry())
	ctx := context.Background()
	require.NoError(t, c.EnsureStreams(ctx, SignalLogs))

	m := &OutMsg{Signal: SignalLogs, Partition: 1, ID: "agent-7:42", Data: []byte("batch")}
	require.NoError(t, c.Publish(ctx, m))
	require.NoError(t, c.Publish(ctx, m), "a duplicate PubAck is success")
	require.NoError(t, c.Publish(ctx, &OutMsg{Signal: SignalLogs, Partition: 1, ID: "agent-7:43", Data: []byte("next")}))

	require.Equal(t, uint64(2), streamInfo(t, c, SignalLogs).State.Msgs)
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.publishDuplicates.WithLabelValues("logs")))
	require.Equal(t, 2.0, testutil.ToFloat64(c.metrics.publishedMessages.WithLabelValues("logs")))
	require.Equal(t, 3, testutil.CollectAndCount(c.metrics.publishDuration), "one histogram per signal")
}

func TestPublishStreamFull(t *testing.T) {
	srv := startServer(t)
	cfg := testConfig()
	cfg.Stream.MaxBytes = minStreamBytes
	c := connect(t, cfg, srv, prometheus.NewRegistry())
	ctx := context.Background()
	require.NoError(t, c.EnsureStreams(ctx, SignalTraces))

	data := make([]byte, 100<<10)
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		err = c.Publish(ctx, &OutMsg{Signal: SignalTraces, Partition: i % 4, ID: fmt.Sprint(i), Data: data})
	}
	require.ErrorIs(t, err, ErrStreamFull)
	require.NotErrorIs(t, err, ErrMessageTooLarge)
	require.ErrorContains(t, err, "pharos.traces.")
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.publishErrors.WithLabelValues("traces", reasonStreamFull)))

	// The stream kept what it had: Discard New drops nothing old.
	require.NotZero(t, streamInfo(t, c, SignalTraces).State.Msgs)
}

func TestPublishTooLarge(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, prometheus.NewRegistry())
	ctx := context.Background()
	require.NoError(t, c.EnsureStreams(ctx, SignalLogs))
	err := c.Publish(ctx, &OutMsg{Signal: SignalLogs, Data: make([]byte, c.MaxPayload()+1)})
	require.ErrorIs(t, err, ErrMessageTooLarge)
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.publishErrors.WithLabelValues("logs", reasonOther)))
}

func TestPublishInvalid(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, nil)
	ctx := context.Background()
	require.ErrorContains(t, c.Publish(ctx, &OutMsg{Signal: "profiles"}), "unknown signal")
	require.ErrorContains(t, c.Publish(ctx, &OutMsg{Signal: SignalLogs, Partition: 4}), "partition 4 out of range")
	require.ErrorContains(t, c.Publish(ctx, &OutMsg{Signal: SignalLogs, Partition: -1}), "out of range")

	// No stream: JetStream does not answer, which is neither full nor a timeout.
	err := c.Publish(ctx, &OutMsg{Signal: SignalLogs, Data: []byte("x")})
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrStreamFull)
}

func TestPublishTimeout(t *testing.T) {
	srv := startServer(t)
	c := connect(t, testConfig(), srv, prometheus.NewRegistry())
	require.NoError(t, c.EnsureStreams(context.Background(), SignalLogs))
	// An already expired context stands in for a slow server.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	err := c.Publish(ctx, &OutMsg{Signal: SignalLogs, Data: []byte("x")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, 1.0, testutil.ToFloat64(c.metrics.publishErrors.WithLabelValues("logs", reasonTimeout)))
}

func TestClassifyPublishError(t *testing.T) {
	api := func(code int, errCode jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("nats: %w", &jetstream.APIError{Code: code, ErrorCode: errCode, Description: desc})
	}
	for _, tc := range []struct {
		name     string
		err      error
		sentinel error
		reason   string
	}{
		{"max bytes", api(503, 10077, "maximum bytes exceeded"), ErrStreamFull, reasonStreamFull},
		{"max msgs", api(503, 10077, "maximum messages exceeded"), ErrStreamFull, reasonStreamFull},
		{"max msgs per subject", api(503, 10077, "maximum messages per subject exceeded"), ErrStreamFull, reasonStreamFull},
		{"account limits", api(400, 10002, "resource limits exceeded for account"), ErrStreamFull, reasonStreamFull},
		{"server storage", api(500, 10047, "insufficient storage resources available"), ErrStreamFull, reasonStreamFull},
		{"store io error", api(503, 10077, "input/output error"), nil, reasonOther},
		{"message too large", api(503, 10077, "message too large"), ErrMessageTooLarge, reasonOther},
		{"exceeds maximum", api(400, 10054, "message size exceeds maximum allowed"), ErrMessageTooLarge, reasonOther},
		{"max payload", nats.ErrMaxPayload, ErrMessageTooLarge, reasonOther},
		{"deadline", context.DeadlineExceeded, nil, reasonTimeout},
		{"nats timeout", nats.ErrTimeout, nil, reasonTimeout},
		{"no responders", jetstream.ErrNoStreamResponse, nil, reasonOther},
		{"anything", errors.New("boom"), nil, reasonOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sentinel, reason := classifyPublishError(tc.err)
			require.Equal(t, tc.sentinel, sentinel)
			require.Equal(t, tc.reason, reason)
		})
	}
}

// A pooled message must not leak one publish's headers into the next.
func TestPubMsgReuse(t *testing.T) {
	p := newPubMsg()
	p.set("pharos.logs.0", &OutMsg{Tenant: "a", Encoding: "otlp+zstd", ID: "x:1", Data: []byte("1")})
	require.Equal(t, nats.Header{HeaderTenant: {"a"}, HeaderEncoding: {"otlp+zstd"}, HeaderMsgID: {"x:1"}}, p.msg.Header)
	p.reset()
	require.Nil(t, p.msg.Data)
	p.set("pharos.logs.1", &OutMsg{Data: []byte("2")})
	require.Equal(t, nats.Header{HeaderTenant: {DefaultTenant}}, p.msg.Header)
	require.Equal(t, "pharos.logs.1", p.msg.Subject)
	p.reset()
	p.set("pharos.logs.2", &OutMsg{Tenant: "b", ID: "x:2"})
	require.Equal(t, nats.Header{HeaderTenant: {"b"}, HeaderMsgID: {"x:2"}}, p.msg.Header)
}
