package spanmetrics

import (
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/internal/overrides"
	pharostenant "github.com/pharos-obs/pharos/internal/tenant"
)

// spanSeries is one label combination of the span metrics: its calls
// counter and latency histogram.
type spanSeries struct {
	service, name, kind, status, tenant string
	overflow                            bool

	calls            uint64
	latency          hist
	created, updated int64 // ms
	ex               exemplarRef

	// Built at the first flush: calls, then the latency histogram's.
	callsLS   labels.Labels
	latencyLS []labels.Labels
}

// observeSpan counts sp, of service, in its combination. Called with mu
// held.
func (g *Generator) observeSpan(tenant, service string, sp *otlpwire.Span, nowMs int64) {
	kind := spanKinds[0]
	if k := int(sp.Kind); k >= 0 && k < len(spanKinds) {
		kind = spanKinds[k]
	}
	status := statusCodes[0]
	if c := int(sp.StatusCode); c >= 0 && c < len(statusCodes) {
		status = statusCodes[c]
	}
	name := sp.Name // aliases the message: cloned if kept
	// The key's parts are separated by 0xff, which UTF-8 never holds; the
	// kind and status are fixed strings, placed first.
	k := append(g.key[:0], kind...)
	k = append(k, 0xff)
	k = append(k, status...)
	k = append(k, 0xff)
	k = append(k, tenant...)
	k = append(k, 0xff)
	k = append(k, service...)
	k = append(k, 0xff)
	k = append(k, name...)
	g.key = k
	s := g.spans[string(k)]
	if s == nil {
		overTenant := false
		if g.tenantLimit != nil {
			id := tenant
			if id == "" {
				id = pharostenant.Default
			}
			if lim := g.tenantLimit(id); lim > 0 && g.perTenant[tenant] >= lim {
				overTenant = true
				g.limited.Add(id, overrides.SignalTraces, overrides.LimitMaxSpanMetricsSeries, 1)
			}
		}
		if overTenant || len(g.spans) >= g.cfg.MaxSeries {
			g.m.overflowSpans.Inc()
			s = g.spansOver[tenant]
			if s == nil {
				s = &spanSeries{overflow: true, tenant: tenant, latency: newHistogram(LatencyBuckets), created: nowMs}
				g.spansOver[tenant] = s
			}
		} else {
			s = &spanSeries{service: service, name: strings.Clone(name), kind: kind, status: status, tenant: tenant,
				latency: newHistogram(LatencyBuckets), created: nowMs}
			g.spans[string(k)] = s
			g.perTenant[tenant]++
		}
	}
	d := spanSeconds(sp)
	s.calls++
	bucket := s.latency.observe(d)
	s.updated = nowMs
	s.ex.set(sp.TraceID, sp.SpanID, d, nowMs, bucket)
}

// spanSeconds is the span's duration (end is not before start: the agent
// refuses such spans, and older ones count as 0).
func spanSeconds(sp *otlpwire.Span) float64 {
	start, end := sp.Start, sp.End
	if end <= start {
		return 0
	}
	return float64(end-start) / 1e9
}

// spanPoints adds s's samples, or its staleness markers when it has been
// idle since staleBefore, in which case it reports true (drop it). Called
// with mu held.
func (g *Generator) spanPoints(b *labels.ScratchBuilder, s *spanSeries, staleBefore int64) bool {
	if s.updated < staleBefore {
		if s.latencyLS != nil {
			g.stalePoints(s.callsLS)
			g.stalePoints(s.latencyLS...)
		}
		g.m.staleSeries.WithLabelValues("spanmetrics").Inc()
		return true
	}
	if s.latencyLS == nil {
		kv := []string{"service", s.service, "span_name", s.name, "span_kind", s.kind, "status_code", s.status, LabelTenant, s.tenant}
		if s.overflow {
			// Each tenant has its own, written as the tenant's.
			kv = []string{LabelOverflow, "true", LabelTenant, s.tenant}
		}
		s.callsLS = g.labelsFor(b, MetricCalls, kv...)
		s.latencyLS = g.histogramLabels(b, MetricLatency, LatencyBuckets, kv...)
	}
	p := point{ls: s.callsLS, st: s.created, v: float64(s.calls), family: MetricCalls, meta: &counterMeta}
	ex := s.ex // the counter's exemplar is the histogram's, with value 1
	if e, ok := ex.take(1); ok {
		p.ex, p.hasEx = e, true
	}
	g.points = append(g.points, p)
	g.histogramPoints(s.latencyLS, &s.latency, &s.ex, s.created, MetricLatency)
	return false
}
