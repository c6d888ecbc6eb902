package vlogs

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons an entry is rejected, the values of the reason label.
const (
	reasonTooOld   = "too_old"   // older than the backfill limit
	reasonTooNew   = "too_new"   // further ahead than the future retention
	reasonTooLarge = "too_large" // over VictoriaLogs' limits on a row
	reasonInvalid  = "invalid"   // in an Append rejected with logs.ErrInvalid
)

// Results of a durability round, the values of the result label.
const (
	resultEmpty    = "empty"    // nothing appended since the last round
	resultFlushed  = "flushed"  // a forced flush proved the entries on disk
	resultDeadline = "deadline" // the conservative wait ran out (see WaitDurable)
	resultError    = "error"    // the forced flush failed
)

// storeMetrics are a Store's own metrics.
type storeMetrics struct {
	appendedEntries prometheus.Counter
	appendedBytes   prometheus.Counter
	rejected        *prometheus.CounterVec
	durableRounds   *prometheus.CounterVec
	durableSeconds  prometheus.Histogram
	stats           *statsCollector
}

func newStoreMetrics(s *Store) *storeMetrics {
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
		durableRounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_logs_durable_rounds_total",
			Help: "Forced flushes run for WaitDurable callers, by result: flushed (proven on disk), deadline (conservative wait; new streams or a busy store), empty, error.",
		}, []string{"result"}),
		durableSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pharos_logs_durable_round_duration_seconds",
			Help:    "Time a forced flush for WaitDurable callers took.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		stats: &statsCollector{s: s},
	}
	for _, r := range []string{reasonTooOld, reasonTooNew, reasonTooLarge, reasonInvalid} {
		m.rejected.WithLabelValues(r)
	}
	for _, r := range []string{resultEmpty, resultFlushed, resultDeadline, resultError} {
		m.durableRounds.WithLabelValues(r)
	}
	return m
}

func (m *storeMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.appendedEntries, m.appendedBytes, m.rejected, m.durableRounds, m.durableSeconds, m.stats}
}

// register registers every metric on reg, or none.
func (m *storeMetrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var done []prometheus.Collector
	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return err
		}
		done = append(done, c)
	}
	return nil
}

func (m *storeMetrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// statsCollector reads Storage.UpdateStats at each scrape.
type statsCollector struct{ s *Store }

var (
	descCompressed = prometheus.NewDesc("pharos_logs_stored_compressed_bytes",
		"Compressed size of the stored log entries (in memory and on disk, without the stream index).", nil, nil)
	descUncompressed = prometheus.NewDesc("pharos_logs_stored_uncompressed_bytes",
		"Uncompressed size of the stored log entries.", nil, nil)
	descRatio = prometheus.NewDesc("pharos_logs_compression_ratio",
		"Uncompressed over compressed size of the stored log entries (0 while empty).", nil, nil)
	descRows = prometheus.NewDesc("pharos_logs_stored_entries",
		"Log entries stored, by where their part is: memory (not yet in files), file.", []string{"location"}, nil)
	descPending = prometheus.NewDesc("pharos_logs_pending_entries",
		"Log entries buffered and not yet searchable.", nil, nil)
	descParts = prometheus.NewDesc("pharos_logs_parts",
		"Parts of the log store, by type: inmemory, small, big.", []string{"type"}, nil)
	descPartitions = prometheus.NewDesc("pharos_logs_partitions",
		"Per-day partitions of the log store.", nil, nil)
	descIndexBytes = prometheus.NewDesc("pharos_logs_index_bytes",
		"Size of the stream index.", nil, nil)
	descStreamsCreated = prometheus.NewDesc("pharos_logs_streams_created_total",
		"Streams registered in the stream index of a per-day partition since it was opened.", nil, nil)
	descDropped = prometheus.NewDesc("pharos_logs_storage_dropped_entries_total",
		"Log entries VictoriaLogs itself dropped for their timestamp, by reason (Append rejects these first, so this should stay 0).", []string{"reason"}, nil)
	descReadOnly = prometheus.NewDesc("pharos_logs_read_only",
		"1 while the log store is read-only because disk space is low.", nil, nil)
	descMinTime = prometheus.NewDesc("pharos_logs_oldest_entry_timestamp_seconds",
		"Timestamp of the oldest stored log entry (absent while empty).", nil, nil)
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCompressed, descUncompressed, descRatio, descRows, descPending, descParts, descPartitions, descIndexBytes, descStreamsCreated, descDropped, descReadOnly, descMinTime} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.mu.RLock()
	if s.closed {
		// A scrape racing Close: the storage is gone.
		s.mu.RUnlock()
		return
	}
	st := s.stats()
	s.mu.RUnlock()

	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	compressed := st.CompressedInmemorySize + st.CompressedSmallPartSize + st.CompressedBigPartSize
	uncompressed := st.UncompressedInmemorySize + st.UncompressedSmallPartSize + st.UncompressedBigPartSize
	ratio := 0.0
	if compressed > 0 {
		ratio = float64(uncompressed) / float64(compressed)
	}
	gauge(descCompressed, float64(compressed))
	gauge(descUncompressed, float64(uncompressed))
	gauge(descRatio, ratio)
	gauge(descRows, float64(st.InmemoryRowsCount), "memory")
	gauge(descRows, float64(st.SmallPartRowsCount+st.BigPartRowsCount), "file")
	gauge(descPending, float64(st.PendingRows))
	gauge(descParts, float64(st.InmemoryParts), "inmemory")
	gauge(descParts, float64(st.SmallParts), "small")
	gauge(descParts, float64(st.BigParts), "big")
	gauge(descPartitions, float64(st.PartitionsCount))
	gauge(descIndexBytes, float64(st.IndexdbSizeBytes))
	counter(descStreamsCreated, float64(st.StreamsCreatedTotal))
	counter(descDropped, float64(st.RowsDroppedTooSmallTimestamp), reasonTooOld)
	counter(descDropped, float64(st.RowsDroppedTooBigTimestamp), reasonTooNew)
	readOnly := 0.0
	if st.IsReadOnly {
		readOnly = 1
	}
	gauge(descReadOnly, readOnly)
	if st.RowsCount() > 0 && st.MinTimestamp != math.MinInt64 && st.MinTimestamp != math.MaxInt64 {
		gauge(descMinTime, float64(st.MinTimestamp)/1e9)
	}
}
