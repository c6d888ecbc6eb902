package vtraces

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Reasons a span is rejected, the values of the reason label.
const (
	reasonTooOld   = vlengine.ReasonTooOld // started before the backfill limit
	reasonTooNew   = vlengine.ReasonTooNew // starts further ahead than the future retention
	reasonTooLarge = "too_large"           // over VictoriaLogs' limits on a row
	reasonInvalid  = "invalid"             // an all-zero trace or span ID
)

// storeMetrics are a Store's own metrics; the storage's (sizes,
// compression ratio, durability rounds) are its engine's.
type storeMetrics struct {
	appendedSpans prometheus.Counter
	appendedBytes prometheus.Counter
	rejected      *prometheus.CounterVec
	unindexed     *prometheus.CounterVec
}

func newStoreMetrics() *storeMetrics {
	m := &storeMetrics{
		appendedSpans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_traces_appended_spans_total",
			Help: "Spans added to the trace store.",
		}),
		appendedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_traces_appended_bytes_total",
			Help: "Bytes of OTLP protobuf (each span with its resource and scope) added to the trace store.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_traces_rejected_spans_total",
			Help: "Spans the trace store did not add, by reason: too_old, too_new (start outside the accepted time window), too_large (over VictoriaLogs' row limits), invalid (all-zero trace or span ID).",
		}, []string{"reason"}),
	}
	m.unindexed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pharos_traces_unindexed_attributes_total",
		Help: "Attributes of stored spans that are not searchable (they are kept, and returned with the trace), by reason: type (bytes, array or map), name_too_long (over VictoriaLogs' 128 bytes with the scope prefix), too_many_names (the service had -storage.traces.max-attribute-fields distinct attribute names that day).",
	}, []string{"reason"})
	for _, r := range []string{reasonTooOld, reasonTooNew, reasonTooLarge, reasonInvalid} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range unindexedReasons {
		m.unindexed.WithLabelValues(r)
	}
	return m
}

func (m *storeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.appendedSpans, m.appendedBytes, m.rejected, m.unindexed}
}
