package publish

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Group commit of pushes. Each push's spans are spread over every
// partition, so a 512-span export (an OpenTelemetry SDK's default batch)
// made 16 messages of ~32 spans, and each message costs JetStream a write,
// an fsync, a delivery, an ack and two consumer state writes whatever its
// size. Pushes of one tenant that arrive while that tenant's previous
// group is being published now wait and go out together, as one group,
// as soon as it is acknowledged: a lone push goes at once, as before,
// while under load one message carries the spans of many pushes.
const (
	// maxGroupedPushBytes is the largest push (encoded) that joins a
	// group; larger ones are published on their own. It keeps any single
	// span far below the bus's message limit, so a group is never refused
	// for a span of one push (see publishGroup).
	maxGroupedPushBytes = 256 << 10
	// maxGroupBytes bounds a waiting group; a push that does not fit is
	// published on its own, so waiting pushes never hold more than this
	// per tenant.
	maxGroupBytes = 8 << 20
	// groupPublishTimeout bounds the publishing of one group, whose pushes
	// each have their own deadline.
	groupPublishTimeout = 30 * time.Second
)

// tracesGroup is the spans of the pushes that wait to go out together.
type tracesGroup struct {
	td     ptrace.Traces
	size   int
	pushes int
	done   chan struct{}
	err    error // set before done is closed
}

// tenantGroups is one tenant's group commit: at most one group being
// published (running) and one filling up behind it.
type tenantGroups struct {
	running bool
	next    *tracesGroup
}

// pushGrouped publishes td with the other pushes of tenant that arrive
// while tenant's previous group is being published, and returns the
// group's outcome.
func (t *Traces) pushGrouped(ctx context.Context, tenant string, td ptrace.Traces, size int) error {
	t.groupsMu.Lock()
	tg := t.groups[tenant]
	if tg == nil {
		tg = &tenantGroups{}
		t.groups[tenant] = tg
	}
	g := tg.next
	if g != nil && g.size+size > maxGroupBytes {
		t.groupsMu.Unlock()
		return t.publishTraces(ctx, tenant, td, true)
	}
	if g == nil {
		g = &tracesGroup{td: ptrace.NewTraces(), done: make(chan struct{})}
		tg.next = g
	}
	td.ResourceSpans().MoveAndAppendTo(g.td.ResourceSpans())
	g.size += size
	g.pushes++
	if !tg.running {
		tg.running = true
		go t.publishGroups(tenant, tg)
	}
	t.groupsMu.Unlock()

	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		// The group still goes out; the client's retry may store these
		// spans twice, as with any push whose acknowledgement is lost.
		return ctx.Err()
	}
}

// publishGroups publishes tenant's groups one after the other until none
// is waiting.
func (t *Traces) publishGroups(tenant string, tg *tenantGroups) {
	for {
		t.groupsMu.Lock()
		g := tg.next
		tg.next = nil
		if g == nil {
			tg.running = false
			delete(t.groups, tenant)
			t.groupsMu.Unlock()
			return
		}
		t.groupsMu.Unlock()
		t.pushGroups.Inc()
		t.groupedPushes.Add(float64(g.pushes))
		g.err = t.publishGroup(tenant, g)
		close(g.done)
	}
}

// publishGroup publishes g. Every push in a group is below
// maxGroupedPushBytes, so the bus refusing a message for its size means
// its max_payload is set below the ~1 MiB messages are cut to; which push
// had spans in that message is not known, and refusing all of them would
// drop the others' spans, so a group of several pushes gets a retryable
// error instead (and nothing is counted as dropped).
func (t *Traces) publishGroup(tenant string, g *tracesGroup) error {
	ctx, cancel := context.WithTimeout(context.Background(), groupPublishTimeout)
	defer cancel()
	return t.publishTraces(ctx, tenant, g.td, g.pushes == 1)
}
