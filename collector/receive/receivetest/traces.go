package receivetest

import (
	"context"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// TracesPush is one PushTraces call a TracesRecorder took, deep-copied.
type TracesPush struct {
	Tenant string
	Traces ptrace.Traces
}

// TracesRecorder is a receive.TracesSink that keeps a deep copy of every
// push (the spans are the caller's again once PushTraces returns). It is
// safe for concurrent use.
type TracesRecorder struct {
	mu     sync.Mutex
	pushes []TracesPush
	// Err, when set, is returned by every push, which then keeps nothing.
	Err error
	// Before, when set, runs at the start of every push (outside the
	// lock); a non-nil error is returned. Tests block in it to hold
	// requests in flight.
	Before func(ctx context.Context) error
}

// PushTraces implements receive.TracesSink.
func (r *TracesRecorder) PushTraces(ctx context.Context, tenant string, td ptrace.Traces) error {
	if r.Before != nil {
		if err := r.Before(ctx); err != nil {
			return err
		}
	}
	if r.Err != nil {
		return r.Err
	}
	c := ptrace.NewTraces()
	td.CopyTo(c)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, TracesPush{Tenant: tenant, Traces: c})
	return nil
}

// Pushes returns the pushes kept so far.
func (r *TracesRecorder) Pushes() []TracesPush {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pushes)
}
