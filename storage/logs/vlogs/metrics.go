package vlogs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pharos-obs/pharos/storage/vlengine"
)

// Reasons an entry is rejected, the values of the reason label.
const (
	reasonTooOld   = vlengine.ReasonTooOld // older than the backfill limit
	reasonTooNew   = vlengine.ReasonTooNew // further ahead than the future retention
	reasonTooLarge = "too_large"           // over VictoriaLogs' limits on a row
	reasonInvalid  = "invalid"             // in an Append rejected with logs.ErrInvalid
)

// Results of a durability round, the values of the result label of
// pharos_logs_durable_rounds_total.
const (
	resultEmpty    = vlengine.ResultEmpty
	resultFlushed  = vlengine.ResultFlushed
	resultDeadline = vlengine.ResultDeadline
	resultError    = vlengine.ResultError
)

// storeMetrics are a Store's own metrics; the storage's (sizes,
// compression ratio, durability rounds) are its engine's.
type storeMetrics struct {
	appendedEntries prometheus.Counter
	appendedBytes   prometheus.Counter
	rejected        *prometheus.CounterVec
}

func newStoreMetrics() *storeMetrics {
	m := &storeMetrics{
		appendedEntries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_logs_appended_entries_total",
			Help: "Log entries added to the log store.",
		}),
		appendedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pharos_logs_appended_bytes_total",
			Help: "Bytes of log lines added to the log store.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_logs_rejected_entries_total",
			Help: "Log entries the log store did not add, by reason: too_old, too_new (outside the accepted time window), too_large (over VictoriaLogs' row limits), invalid (in a batch with bad labels or metadata).",
		}, []string{"reason"}),
	}
	for _, r := range []string{reasonTooOld, reasonTooNew, reasonTooLarge, reasonInvalid} {
		m.rejected.WithLabelValues(r)
	}
	return m
}

func (m *storeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.appendedEntries, m.appendedBytes, m.rejected}
}
