package receivetest

import (
	"context"
	"slices"
	"sync"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// TracesPush is one PushTraces call a TracesRecorder took, deep-copied.
type TracesPush struct {
	Tenant string
	Traces ptrace.Traces
	// Wire is set for a PushTracesWire (the request went through
	// undecoded), clear for a PushTraces.
	Wire bool
}

// TracesRecorder is a receive.TracesWireSink that keeps a deep copy of
// every push (the spans are the caller's again once PushTraces returns).
// It is safe for concurrent use.
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
	if err := r.before(ctx); err != nil {
		return err
	}
	c := ptrace.NewTraces()
	td.CopyTo(c)
	r.keep(TracesPush{Tenant: tenant, Traces: c})
	return nil
}

// PushTracesWire implements receive.TracesWireSink: w's spans are kept
// decoded, as the publisher's messages will be read.
func (r *TracesRecorder) PushTracesWire(ctx context.Context, tenant string, w *otlpwire.Traces) error {
	if err := r.before(ctx); err != nil {
		return err
	}
	td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(w.AppendProto(nil))
	if err != nil {
		return err
	}
	r.keep(TracesPush{Tenant: tenant, Traces: td, Wire: true})
	return nil
}

func (r *TracesRecorder) before(ctx context.Context) error {
	if r.Before != nil {
		if err := r.Before(ctx); err != nil {
			return err
		}
	}
	return r.Err
}

func (r *TracesRecorder) keep(p TracesPush) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, p)
}

// Pushes returns the pushes kept so far.
func (r *TracesRecorder) Pushes() []TracesPush {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.pushes)
}
