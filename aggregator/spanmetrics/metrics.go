package spanmetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the generator's own metrics (not the series it derives).
type metrics struct {
	spans          prometheus.Counter
	overflowSpans  prometheus.Counter
	overflowEdges  prometheus.Counter
	activeSeries   *prometheus.GaugeVec
	staleSeries    *prometheus.CounterVec
	pending        prometheus.Gauge
	pairedEdges    prometheus.Counter
	expiredEdges   prometheus.Counter
	droppedEdges   prometheus.Counter
	flushed        prometheus.Counter
	appendFailures prometheus.Counter
	flushFailures  prometheus.Counter
	flushDuration  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		spans: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_spanmetrics_spans_observed_total", Help: "Spans counted by the span metrics and service graph generator."}),
		overflowSpans: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_spanmetrics_series_overflow_total", Help: "Spans counted in the metric_overflow=\"true\" span-metrics series because aggregator.spanmetrics.max_series was reached."}),
		overflowEdges: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_servicegraph_series_overflow_total", Help: "Edges counted in the metric_overflow=\"true\" service-graph series because aggregator.spanmetrics.service_graph.max_series was reached."}),
		activeSeries: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pharos_spanmetrics_active_series", Help: "Label combinations kept, by processor (spanmetrics, service_graph), as of the last flush."}, []string{"processor"}),
		staleSeries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_spanmetrics_stale_series_total", Help: "Label combinations dropped (and marked stale) after aggregator.spanmetrics.stale_after without spans, by processor."}, []string{"processor"}),
		pending: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_servicegraph_pending_edges", Help: "Half edges waiting for their other half, as of the last flush."}),
		pairedEdges: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_servicegraph_paired_edges_total", Help: "Client/server and producer/consumer span pairs counted as edges."}),
		expiredEdges: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_servicegraph_expired_edges_total", Help: "Half edges forgotten after aggregator.spanmetrics.service_graph.wait without their other half."}),
		droppedEdges: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_servicegraph_dropped_edges_total", Help: "Client, server, producer and consumer spans not paired because aggregator.spanmetrics.service_graph.max_pending_edges half edges were waiting."}),
		flushed: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_spanmetrics_samples_written_total", Help: "Samples of derived series written (span metrics and service graph)."}),
		appendFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_spanmetrics_append_failures_total", Help: "Samples of derived series the appender refused."}),
		flushFailures: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_spanmetrics_flush_failures_total", Help: "Flushes whose commit failed (the next flush writes the cumulative totals again)."}),
		flushDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_spanmetrics_flush_duration_seconds", Help: "Time to write the derived series.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	m.activeSeries.WithLabelValues("spanmetrics")
	m.activeSeries.WithLabelValues("service_graph")
	m.staleSeries.WithLabelValues("spanmetrics")
	m.staleSeries.WithLabelValues("service_graph")
	return m
}
