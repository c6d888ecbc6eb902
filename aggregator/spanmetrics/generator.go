// Package spanmetrics derives metrics from the spans an aggregator stores,
// as Tempo's metrics-generator does: RED metrics per service, span name,
// kind and status (traces_spanmetrics_calls_total and the
// traces_spanmetrics_latency histogram), and the service graph, from
// client and server (or producer and consumer) spans paired across
// services (traces_service_graph_*). Names and labels are Tempo's, so
// Grafana's Tempo data source (service graph, RED table) reads them.
//
// It runs at the aggregator because the partition owner sees every span
// of a trace (traces are partitioned by trace ID), which pairing client
// and server spans needs. The series are cumulative and written every
// flush interval through a storage.AppendableV2 (the app passes the
// agent's publisher, as for recording rules, so they are stored like any
// series and reach every replica), with a pharos_aggregator label naming
// this aggregator, so that series from several aggregators never collide:
// sum them (sum by (service) (rate(...))) to see the whole cluster.
//
// Goroutines: the service's running goroutine flushes; Observe is called
// from the partition consumers. Lock order: flushMu, then mu; nothing is
// appended while mu is held.
package spanmetrics

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/pharos-obs/pharos/internal/otlpwire"
	"github.com/pharos-obs/pharos/internal/overrides"
	"github.com/pharos-obs/pharos/internal/tenant"
)

// Series names, as Tempo's metrics-generator writes them.
const (
	MetricCalls              = "traces_spanmetrics_calls_total"
	MetricLatency            = "traces_spanmetrics_latency"
	MetricGraphRequests      = "traces_service_graph_request_total"
	MetricGraphFailed        = "traces_service_graph_request_failed_total"
	MetricGraphServerSeconds = "traces_service_graph_request_server_seconds"
	MetricGraphClientSeconds = "traces_service_graph_request_client_seconds"
)

// Labels.
const (
	// LabelAggregator names the aggregator that wrote a series.
	LabelAggregator = "pharos_aggregator"
	// LabelOverflow marks the series that count what went over a
	// cardinality limit, as in Tempo.
	LabelOverflow = "metric_overflow"
	// LabelTenant names the tenant of a span, for tenants other than the
	// default one (which has no label); the series are written as that
	// tenant's, so only it reads them.
	LabelTenant = "tenant"
	// UnknownService is the service of spans whose resource has no
	// service.name, as the OpenTelemetry SDKs name it.
	UnknownService = "unknown_service"
)

// LatencyBuckets are the span latency histogram's bounds in seconds:
// 2 ms doubling up to 16.384 s.
var LatencyBuckets = []float64{0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384}

// GraphBuckets are the service graph histograms' bounds in seconds,
// Tempo's defaults.
var GraphBuckets = []float64{0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8}

// Tempo's label values for span kinds and status codes.
var (
	spanKinds   = [...]string{"SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"}
	statusCodes = [...]string{"STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"}
)

// Generator computes span metrics and the service graph. Observe feeds
// it; the service writes the series. It is safe for concurrent use.
type Generator struct {
	services.Service

	cfg      Config
	instance string
	app      storage.AppendableV2
	logger   *slog.Logger
	m        *metrics
	now      func() time.Time

	mu        sync.Mutex
	spans     map[string]*spanSeries
	spansOver map[string]*spanSeries // per tenant, once a span overflows
	perTenant map[string]int         // len(spans) per tenant
	// tenantLimit, when set, bounds each tenant's combinations
	// (max_span_metrics_series); limited counts the spans it sends to
	// the overflow series.
	tenantLimit func(id string) int
	limited     *overrides.Discards
	edges       map[string]*edgeSeries
	edgesOver   *edgeSeries
	pending     map[edgeKey]*pendingEdge
	free        []*pendingEdge // half edges for reuse
	nextSweep   time.Time
	key         []byte // scratch for map keys
	// serviceNames interns the service names kept in series and half
	// edges (see intern).
	serviceNames map[string]string

	flushMu sync.Mutex // one flush at a time; guards points
	points  []point
}

// New returns a generator writing through app, labelling its series
// pharos_aggregator=instance (the aggregator's ring instance ID).
func New(cfg Config, instance string, app storage.AppendableV2, logger *slog.Logger, reg prometheus.Registerer) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if instance == "" {
		return nil, errors.New("spanmetrics: the aggregator's instance ID (the pharos_aggregator label) must not be empty")
	}
	g := &Generator{
		cfg:       cfg,
		instance:  instance,
		app:       app,
		logger:    logger,
		m:         newMetrics(reg),
		now:       time.Now,
		spans:     map[string]*spanSeries{},
		spansOver: map[string]*spanSeries{},
		perTenant: map[string]int{},
		edges:     map[string]*edgeSeries{},
		pending:   map[edgeKey]*pendingEdge{},

		serviceNames: map[string]string{},
	}
	g.Service = services.NewBasicService(nil, g.running, g.stopping)
	return g, nil
}

func (g *Generator) running(ctx context.Context) error {
	t := time.NewTicker(g.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.flush(ctx, g.now())
		}
	}
}

// stopping writes what was counted since the last flush.
func (g *Generator) stopping(error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g.flush(ctx, g.now())
	return nil
}

// SetTenantLimit bounds each tenant's span-metric combinations to
// limit(tenant) (0: only the global aggregator.spanmetrics.max_series);
// spans beyond go to the tenant's overflow series and are counted in d.
// Call it before ObserveWire.
func (g *Generator) SetTenantLimit(limit func(id string) int, d *overrides.Discards) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.tenantLimit, g.limited = limit, d
}

// ObserveWire counts the spans of t for tenant ("" is the default). It
// reads t only, and keeps none of its strings (they alias a message the
// caller reuses); it fits aggregator.TracesObserver.
func (g *Generator) ObserveWire(tenant string, t *otlpwire.Traces) {
	if !g.cfg.Enabled && !g.cfg.ServiceGraph.Enabled {
		return
	}
	now := g.now()
	nowMs := now.UnixMilli()
	n := 0
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cfg.ServiceGraph.Enabled && !now.Before(g.nextSweep) {
		g.sweep(now)
	}
	for i := range t.Resources {
		r := &t.Resources[i]
		service := UnknownService
		if v, ok := t.Attr(r.Attrs, "service.name"); ok && v.Str() != "" {
			service = g.intern(v.Str())
		}
		for j := r.Scopes.Start; j < r.Scopes.End; j++ {
			sc := &t.Scopes[j]
			for k := sc.Spans.Start; k < sc.Spans.End; k++ {
				sp := &t.Spans[k]
				n++
				if g.cfg.Enabled {
					g.observeSpan(tenant, service, sp, nowMs)
				}
				if g.cfg.ServiceGraph.Enabled {
					g.observeEdge(tenant, service, sp, now, nowMs)
				}
			}
		}
	}
	g.m.spans.Add(float64(n))
}

// maxInterned bounds the interned service names; past it they start over.
const maxInterned = 4096

// intern returns a copy of s that the generator may keep, the same one
// for every message. Called with mu held.
func (g *Generator) intern(s string) string {
	if v, ok := g.serviceNames[s]; ok {
		return v
	}
	if len(g.serviceNames) >= maxInterned {
		clear(g.serviceNames)
	}
	v := strings.Clone(s)
	g.serviceNames[v] = v
	return v
}

// histogram is a classic histogram's state: per-bucket counts (not
// cumulative; the last is +Inf), sum and count.
type hist struct {
	bounds []float64
	counts []uint64
	sum    float64
	count  uint64
}

func newHistogram(bounds []float64) hist {
	return hist{bounds: bounds, counts: make([]uint64, len(bounds)+1)}
}

// observe records v and returns its bucket.
func (h *hist) observe(v float64) int {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.count++
	return i
}

// exemplarRef is the last span counted by a series since the last flush.
type exemplarRef struct {
	trace  pcommon.TraceID
	span   pcommon.SpanID
	value  float64
	ts     int64
	bucket int
	fresh  bool
}

func (e *exemplarRef) set(trace pcommon.TraceID, span pcommon.SpanID, v float64, ts int64, bucket int) {
	*e = exemplarRef{trace: trace, span: span, value: v, ts: ts, bucket: bucket, fresh: true}
}

// take returns the exemplar, with value v for the counter it is put on,
// if it is new since the last take.
func (e *exemplarRef) take(v float64) (exemplar.Exemplar, bool) {
	if !e.fresh {
		return exemplar.Exemplar{}, false
	}
	e.fresh = false
	return exemplar.Exemplar{
		Labels: labels.FromStrings("span_id", e.span.String(), "trace_id", e.trace.String()),
		Value:  v,
		Ts:     e.ts,
		HasTs:  true,
	}, true
}

// point is one sample to write.
type point struct {
	ls     labels.Labels
	st     int64
	v      float64
	family string
	meta   *metadata.Metadata
	ex     exemplar.Exemplar
	hasEx  bool
}

// labelsFor builds a series' labels: the name, this aggregator, and the
// non-empty pairs of kv.
func (g *Generator) labelsFor(b *labels.ScratchBuilder, name string, kv ...string) labels.Labels {
	b.Reset()
	b.Add(labels.MetricName, name)
	b.Add(LabelAggregator, g.instance)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			b.Add(kv[i], kv[i+1])
		}
	}
	b.Sort()
	return b.Labels()
}

// histogramLabels builds a histogram's series: one _bucket per bound and
// +Inf, then _sum and _count.
func (g *Generator) histogramLabels(b *labels.ScratchBuilder, name string, bounds []float64, kv ...string) []labels.Labels {
	out := make([]labels.Labels, 0, len(bounds)+3)
	le := append(kv[:len(kv):len(kv)], "le", "")
	for _, bound := range bounds {
		le[len(le)-1] = strconv.FormatFloat(bound, 'f', -1, 64)
		out = append(out, g.labelsFor(b, name+"_bucket", le...))
	}
	le[len(le)-1] = "+Inf"
	out = append(out, g.labelsFor(b, name+"_bucket", le...))
	out = append(out, g.labelsFor(b, name+"_sum", kv...), g.labelsFor(b, name+"_count", kv...))
	return out
}

// histogramPoints adds h's samples (ls from histogramLabels); ex, when
// fresh, goes on its bucket.
func (g *Generator) histogramPoints(ls []labels.Labels, h *hist, ex *exemplarRef, st int64, family string) {
	var cum uint64
	e, hasEx := ex.take(ex.value)
	for i, c := range h.counts {
		cum += c
		p := point{ls: ls[i], st: st, v: float64(cum), family: family, meta: &histogramMeta}
		if hasEx && i == ex.bucket {
			p.ex, p.hasEx = e, true
		}
		g.points = append(g.points, p)
	}
	n := len(h.counts)
	g.points = append(g.points,
		point{ls: ls[n], st: st, v: h.sum, family: family, meta: &histogramMeta},
		point{ls: ls[n+1], st: st, v: float64(h.count), family: family, meta: &histogramMeta})
}

// stalePoints adds staleness markers for series ls.
func (g *Generator) stalePoints(ls ...labels.Labels) {
	for _, l := range ls {
		g.points = append(g.points, point{ls: l, v: staleNaN})
	}
}

var (
	staleNaN      = math.Float64frombits(value.StaleNaN)
	counterMeta   = metadata.Metadata{Type: "counter"}
	histogramMeta = metadata.Metadata{Type: "histogram"}
)

// flush writes every series as of now and drops those idle for
// StaleAfter (with staleness markers), and the half edges that waited too
// long. Samples are appended in one transaction, outside mu.
func (g *Generator) flush(ctx context.Context, now time.Time) {
	g.flushMu.Lock()
	defer g.flushMu.Unlock()
	start := time.Now()
	ts := now.UnixMilli()
	staleBefore := ts - g.cfg.StaleAfter.Milliseconds()
	g.points = g.points[:0]

	g.mu.Lock()
	if g.cfg.ServiceGraph.Enabled {
		g.sweep(now)
	}
	var b labels.ScratchBuilder
	for k, s := range g.spans {
		if g.spanPoints(&b, s, staleBefore) {
			delete(g.spans, k)
			if g.perTenant[s.tenant]--; g.perTenant[s.tenant] <= 0 {
				delete(g.perTenant, s.tenant)
			}
		}
	}
	for t, s := range g.spansOver {
		if g.spanPoints(&b, s, staleBefore) {
			delete(g.spansOver, t)
		}
	}
	for k, e := range g.edges {
		if g.edgePoints(&b, e, staleBefore) {
			delete(g.edges, k)
		}
	}
	if e := g.edgesOver; e != nil && g.edgePoints(&b, e, staleBefore) {
		g.edgesOver = nil
	}
	g.m.activeSeries.WithLabelValues("spanmetrics").Set(float64(len(g.spans)))
	g.m.activeSeries.WithLabelValues("service_graph").Set(float64(len(g.edges)))
	g.m.pending.Set(float64(len(g.pending)))
	g.mu.Unlock()

	if len(g.points) == 0 {
		return
	}
	// Each tenant's series are written as that tenant's (one transaction
	// each), so that span metrics are read by the spans' tenant only.
	apps := map[string]storage.AppenderV2{}
	appFor := func(ls labels.Labels) storage.AppenderV2 {
		t := ls.Get(LabelTenant)
		a, ok := apps[t]
		if !ok {
			actx := ctx
			if t != "" {
				actx = tenant.WithContext(ctx, t)
			}
			a = g.app.AppenderV2(actx)
			apps[t] = a
		}
		return a
	}
	failed := 0
	for i := range g.points {
		p := &g.points[i]
		app := appFor(p.ls)
		var opts storage.AppendV2Options
		if p.meta != nil {
			opts.Metadata = *p.meta
			opts.MetricFamilyName = p.family
		}
		if p.hasEx {
			opts.Exemplars = []exemplar.Exemplar{p.ex}
		}
		if _, err := app.Append(0, p.ls, p.st, ts, p.v, nil, nil, opts); err != nil {
			if _, err2 := (*storage.AppendPartialError)(nil).Handle(err); err2 != nil {
				failed++
			}
		}
	}
	var commitErr error
	for _, app := range apps {
		if err := app.Commit(); err != nil && commitErr == nil {
			commitErr = err
		}
	}
	if err := commitErr; err != nil {
		g.m.flushFailures.Inc()
		g.logger.Warn("span metrics not written; the next flush writes the totals again", "series", len(g.points), "err", err)
	} else {
		g.m.flushed.Add(float64(len(g.points) - failed))
	}
	if failed > 0 {
		g.m.appendFailures.Add(float64(failed))
	}
	g.m.flushDuration.Observe(time.Since(start).Seconds())
	// Drop the label references, so that series gone stale can be freed.
	clear(g.points)
}
