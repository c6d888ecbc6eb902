package aggregator_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/internal/bus"
)

// switchGate is a memory gate switched by the test: the aggregator's input,
// as the memory limiter would set it.
type switchGate struct {
	mu      sync.Mutex
	limited bool
	under   chan struct{} // closed while not limited
	refused map[string]int
}

func newSwitchGate() *switchGate {
	g := &switchGate{under: make(chan struct{}), refused: map[string]int{}}
	close(g.under)
	return g
}

func (g *switchGate) set(limited bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limited == limited {
		return
	}
	g.limited = limited
	if limited {
		g.under = make(chan struct{})
	} else {
		close(g.under)
	}
}

func (g *switchGate) Refuse(signal string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.limited {
		g.refused[signal]++
	}
	return g.limited
}

func (g *switchGate) Wait(ctx context.Context) error {
	g.mu.Lock()
	under := g.under
	g.mu.Unlock()
	select {
	case <-under:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *switchGate) refusals(signal string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused[signal]
}

// TestMemoryGatePausesConsumers: while the gate refuses data, fetched
// batches go back to JetStream unstored and the consumer waits; once the
// gate opens, every message is stored, none lost.
func TestMemoryGatePausesConsumers(t *testing.T) {
	f := newFixture(t, 1)
	gate := newSwitchGate()
	gate.set(true)
	agg, err := aggregator.New(aggregator.Config{MaxDecodedBytes: 1 << 20, SeriesCacheSize: 1000}, 1, f.conn.ConsumePartition, f.conn.DeadLetter, f.store, slog.New(slog.DiscardHandler), f.reg)
	require.NoError(t, err)
	agg.WithMemoryGate(gate)
	require.NoError(t, services.StartAndAwaitRunning(context.Background(), agg))
	t.Cleanup(func() { require.NoError(t, services.StopAndAwaitTerminated(context.Background(), agg)) })

	f.publish(t, 0, "held-1", samples("held", 10, 1000))
	f.publish(t, 0, "held-2", samples("held", 10, 2000))
	require.Eventually(t, func() bool { return gate.refusals(string(bus.SignalMetrics)) >= 1 }, 30*time.Second, 10*time.Millisecond)
	require.Zero(t, f.count(t, "held"), "nothing stored while the gate refuses")
	require.Zero(t, value(t, f.reg, "pharos_aggregator_samples_appended_total"))
	msgs, _, err := f.conn.StreamState(context.Background(), bus.StreamName(bus.SignalMetrics))
	require.NoError(t, err)
	require.Equal(t, uint64(2), msgs, "the stream keeps the deferred messages")
	refused := gate.refusals(string(bus.SignalMetrics))

	gate.set(false)
	require.Eventually(t, func() bool { return f.count(t, "held") == 20 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		lag, err := f.conn.ConsumerLag(context.Background(), bus.SignalMetrics, bus.DurableName(bus.SignalMetrics, 0, 0))
		return err == nil && lag == 0
	}, 30*time.Second, 10*time.Millisecond)
	require.Equal(t, refused, gate.refusals(string(bus.SignalMetrics)), "no refusals once open")
}
