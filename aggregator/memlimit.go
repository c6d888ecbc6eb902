package aggregator

import (
	"context"
	"time"

	"github.com/pharos-obs/pharos/internal/bus"
)

// MemoryGate pauses consumption while the process is short of memory
// (internal/memlimit.Limiter fits). Both methods are called from every
// consumer goroutine at once.
type MemoryGate interface {
	// Refuse reports whether new data of signal must wait now, and counts
	// the refusal. It is called once per fetched batch and must be cheap.
	Refuse(signal string) bool
	// Wait blocks until data may come in again (nil) or ctx is done.
	Wait(ctx context.Context) error
}

// pausedNakDelay is how long a batch deferred for memory stays with
// JetStream before it is delivered again.
const pausedNakDelay = time.Second

// WithMemoryGate makes the consumers stop taking data in while g refuses
// it. Call it before the service starts.
func (a *Aggregator) WithMemoryGate(g MemoryGate) { a.gate = g }

// gated wraps a consumer's handler with the memory gate: a batch fetched
// while the gate refuses data is handed back to JetStream unprocessed
// (Nak: it is redelivered, never dropped), and the consumer blocks in the
// handler — so fetches nothing more — until memory is back under the
// limit or the consumer stops.
func (a *Aggregator) gated(signal bus.Signal, h bus.BatchHandler) bus.BatchHandler {
	if a.gate == nil {
		return h
	}
	return func(ctx context.Context, batch []*bus.Delivery) {
		if !a.gate.Refuse(string(signal)) {
			h(ctx, batch)
			return
		}
		for _, d := range batch {
			_ = d.Nak(pausedNakDelay)
		}
		a.m.batches.WithLabelValues("memory_limited").Inc()
		_ = a.gate.Wait(ctx)
	}
}
