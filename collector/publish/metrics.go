package publish

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	appended       prometheus.Counter
	rolledBack     prometheus.Counter
	published      prometheus.Counter
	batches        prometheus.Counter
	publishedBytes prometheus.Counter
	retries        prometheus.Counter
	dropped        *prometheus.CounterVec
	queued         prometheus.Gauge
	spooling       prometheus.Gauge
	batchSamples   prometheus.Histogram
	publishLatency prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		appended: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_samples_appended_total", Help: "Samples committed to the agent's batches."}),
		rolledBack: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_samples_rolled_back_total", Help: "Samples discarded by an appender rollback (e.g. a scrape over its sample_limit)."}),
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_samples_published_total", Help: "Samples acknowledged by JetStream."}),
		batches: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_batches_published_total", Help: "Batches acknowledged by JetStream."}),
		publishedBytes: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_published_bytes_total", Help: "Encoded, compressed bytes acknowledged by JetStream."}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_agent_publish_retries_total", Help: "Batch publishes that failed and will be tried again (from the spool)."}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_agent_dropped_samples_total", Help: "Samples the agent gave up on, by reason."}, []string{"reason"}),
		queued: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_agent_publish_queue_batches", Help: "Encoded batches waiting to be published."}),
		spooling: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_agent_publish_spooling", Help: "1 while batches go to the spool (the bus refused one, and the spool is not replayed yet), else 0."}),
		batchSamples: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_agent_batch_samples", Help: "Samples per published batch.",
			Buckets: prometheus.ExponentialBuckets(16, 4, 7)}),
		publishLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pharos_agent_publish_duration_seconds", Help: "Time from a batch's flush to its PubAck, time in the spool and retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
	}
	// The reasons an operator should see at zero rather than missing.
	for _, r := range []string{reasonShutdown, reasonSpoolFull, reasonSpoolError} {
		m.dropped.WithLabelValues(r)
	}
	return m
}
