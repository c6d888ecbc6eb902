package spanmetrics

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// The service graph, as Tempo builds it: a CLIENT span and the SERVER
// span whose parent it is make an edge from the client's service to the
// server's (a PRODUCER and its CONSUMER likewise, connection_type
// "messaging_system"). The two halves may come in any order and in
// different messages; the first waits (ServiceGraph.Wait, in a map
// bounded by ServiceGraph.MaxPendingEdges) for the other, keyed by trace
// ID and the client span's ID. Halves that wait too long are counted as
// expired and forgotten. Tempo's virtual nodes (an uninstrumented peer
// named by peer.service or db.system) are not built.

// connectionMessaging is the connection_type of producer/consumer edges.
const connectionMessaging = "messaging_system"

// edgeKey identifies an edge being paired: the client span.
type edgeKey struct {
	tenant string
	trace  pcommon.TraceID
	span   pcommon.SpanID
}

// pendingEdge is half an edge, or both halves just before it is counted.
type pendingEdge struct {
	expires              time.Time
	client, server       string
	clientSec, serverSec float64
	failed               bool
	messaging            bool
	hasClient, hasServer bool
}

// edgeSeries is one edge's series: requests, failed requests, and the
// server and client latency histograms.
type edgeSeries struct {
	client, server, connType, tenant string
	overflow                         bool

	total, failed    uint64
	serverH, clientH hist
	created, updated int64 // ms
	ex               exemplarRef

	// Built at the first flush.
	totalLS, failedLS  labels.Labels
	serverLS, clientLS []labels.Labels
}

// observeEdge records sp as half an edge if it is a client, server,
// producer or consumer span, counting the edge once both halves are in.
// Called with mu held.
func (g *Generator) observeEdge(tenant, service string, sp *otlpwire.Span, now time.Time, nowMs int64) {
	var (
		key    = edgeKey{tenant: tenant, trace: sp.TraceID}
		client bool
	)
	switch sp.Kind {
	case ptrace.SpanKindClient, ptrace.SpanKindProducer:
		key.span, client = sp.SpanID, true
	case ptrace.SpanKindServer, ptrace.SpanKindConsumer:
		key.span = sp.ParentSpanID
		if key.span.IsEmpty() {
			return // a root: no client recorded the call
		}
	default:
		return
	}
	pe := g.pending[key]
	if pe == nil {
		if len(g.pending) >= g.cfg.ServiceGraph.MaxPendingEdges {
			g.m.droppedEdges.Inc()
			return
		}
		pe = g.newPending()
		pe.expires = now.Add(g.cfg.ServiceGraph.Wait)
		g.pending[key] = pe
	}
	failed := sp.StatusCode == ptrace.StatusCodeError
	messaging := sp.Kind == ptrace.SpanKindProducer || sp.Kind == ptrace.SpanKindConsumer
	if client {
		pe.client, pe.clientSec, pe.hasClient = service, spanSeconds(sp), true
	} else {
		pe.server, pe.serverSec, pe.hasServer = service, spanSeconds(sp), true
	}
	pe.failed = pe.failed || failed
	pe.messaging = pe.messaging || messaging
	if !pe.hasClient || !pe.hasServer {
		return
	}
	delete(g.pending, key)
	g.m.pairedEdges.Inc()
	g.recordEdge(tenant, pe, key, nowMs)
	g.freePending(pe)
}

// newPending returns a cleared half edge, reusing a freed one: pairing
// then allocates nothing in the steady state. Called with mu held.
func (g *Generator) newPending() *pendingEdge {
	if n := len(g.free); n > 0 {
		pe := g.free[n-1]
		g.free = g.free[:n-1]
		return pe
	}
	return &pendingEdge{}
}

// freePending keeps pe for reuse (as many as may be pending at once).
func (g *Generator) freePending(pe *pendingEdge) {
	*pe = pendingEdge{}
	if len(g.free) < g.cfg.ServiceGraph.MaxPendingEdges {
		g.free = append(g.free, pe)
	}
}

// recordEdge counts a paired edge in its series. Called with mu held.
func (g *Generator) recordEdge(tenant string, pe *pendingEdge, key edgeKey, nowMs int64) {
	conn := ""
	if pe.messaging {
		conn = connectionMessaging
	}
	k := append(g.key[:0], tenant...)
	k = append(k, 0xff)
	k = append(k, pe.client...)
	k = append(k, 0xff)
	k = append(k, pe.server...)
	k = append(k, 0xff)
	k = append(k, conn...)
	g.key = k
	e := g.edges[string(k)]
	if e == nil {
		if len(g.edges) >= g.cfg.ServiceGraph.MaxSeries {
			g.m.overflowEdges.Inc()
			if g.edgesOver == nil {
				g.edgesOver = newEdgeSeries(nowMs)
				g.edgesOver.overflow = true
			}
			e = g.edgesOver
		} else {
			e = newEdgeSeries(nowMs)
			e.client, e.server, e.connType, e.tenant = pe.client, pe.server, conn, tenant
			g.edges[string(k)] = e
		}
	}
	e.total++
	if pe.failed {
		e.failed++
	}
	e.serverH.observe(pe.serverSec)
	e.clientH.observe(pe.clientSec)
	e.updated = nowMs
	e.ex.set(key.trace, key.span, 1, nowMs, 0)
}

func newEdgeSeries(nowMs int64) *edgeSeries {
	return &edgeSeries{serverH: newHistogram(GraphBuckets), clientH: newHistogram(GraphBuckets), created: nowMs}
}

// sweep forgets the half edges whose wait is over. The map is bounded by
// MaxPendingEdges, so a scan costs little; it runs at most every second
// (or Wait/2), from Observe and flush. Called with mu held.
func (g *Generator) sweep(now time.Time) {
	expired := 0
	for k, pe := range g.pending {
		if !now.Before(pe.expires) {
			delete(g.pending, k)
			g.freePending(pe)
			expired++
		}
	}
	if expired > 0 {
		g.m.expiredEdges.Add(float64(expired))
	}
	g.nextSweep = now.Add(min(time.Second, g.cfg.ServiceGraph.Wait/2))
}

// edgePoints adds e's samples, or its staleness markers when it has been
// idle since staleBefore, in which case it reports true (drop it). Called
// with mu held.
func (g *Generator) edgePoints(b *labels.ScratchBuilder, e *edgeSeries, staleBefore int64) bool {
	if e.updated < staleBefore {
		if e.serverLS != nil {
			g.stalePoints(e.totalLS, e.failedLS)
			g.stalePoints(e.serverLS...)
			g.stalePoints(e.clientLS...)
		}
		g.m.staleSeries.WithLabelValues("service_graph").Inc()
		return true
	}
	if e.serverLS == nil {
		kv := []string{"client", e.client, "server", e.server, "connection_type", e.connType, LabelTenant, e.tenant}
		if e.overflow {
			kv = []string{LabelOverflow, "true"}
		}
		e.totalLS = g.labelsFor(b, MetricGraphRequests, kv...)
		e.failedLS = g.labelsFor(b, MetricGraphFailed, kv...)
		e.serverLS = g.histogramLabels(b, MetricGraphServerSeconds, GraphBuckets, kv...)
		e.clientLS = g.histogramLabels(b, MetricGraphClientSeconds, GraphBuckets, kv...)
	}
	p := point{ls: e.totalLS, st: e.created, v: float64(e.total), family: MetricGraphRequests, meta: &counterMeta}
	if ex, ok := e.ex.take(1); ok {
		p.ex, p.hasEx = ex, true
	}
	g.points = append(g.points, p,
		point{ls: e.failedLS, st: e.created, v: float64(e.failed), family: MetricGraphFailed, meta: &counterMeta})
	var none exemplarRef
	g.histogramPoints(e.serverLS, &e.serverH, &none, e.created, MetricGraphServerSeconds)
	g.histogramPoints(e.clientLS, &e.clientH, &none, e.created, MetricGraphClientSeconds)
	return false
}
