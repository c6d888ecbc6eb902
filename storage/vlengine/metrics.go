package vlengine

import (
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons a row is rejected for its timestamp, values of the reason label
// of <prefix>_storage_dropped_<rows>_total (and of the stores' own
// rejection counters).
const (
	ReasonTooOld = "too_old" // older than the backfill limit
	ReasonTooNew = "too_new" // further ahead than the future retention
)

// engineMetrics are an Engine's own metrics.
type engineMetrics struct {
	durableRounds  *prometheus.CounterVec
	durableSeconds prometheus.Histogram
	stats          *statsCollector
}

func newEngineMetrics(e *Engine) *engineMetrics {
	p, o := e.opts.MetricPrefix, &e.opts
	m := &engineMetrics{
		durableRounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: p + "_durable_rounds_total",
			Help: "Forced flushes of the " + o.Name + " run for WaitDurable callers, by result: flushed (proven on disk), deadline (conservative wait; new streams or a busy store), empty, error.",
		}, []string{"result"}),
		durableSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    p + "_durable_round_duration_seconds",
			Help:    "Time a forced flush of the " + o.Name + " for WaitDurable callers took.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		stats: newStatsCollector(e),
	}
	for _, r := range []string{ResultEmpty, ResultFlushed, ResultDeadline, ResultError} {
		m.durableRounds.WithLabelValues(r)
	}
	return m
}

func (m *engineMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.durableRounds, m.durableSeconds, m.stats}
}

// Register registers every collector on reg, or none; reg may be nil.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	return register(reg, cs)
}

// Unregister unregisters what Register registered.
func Unregister(reg prometheus.Registerer, cs ...prometheus.Collector) {
	unregister(reg, cs)
}

func register(reg prometheus.Registerer, cs []prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	var done []prometheus.Collector
	for _, c := range cs {
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

func unregister(reg prometheus.Registerer, cs []prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		reg.Unregister(c)
	}
}

// statsCollector reads Storage.UpdateStats at each scrape.
type statsCollector struct {
	e *Engine

	compressed, uncompressed, ratio, rows, pending, parts, partitions,
	indexBytes, streamsCreated, dropped, readOnly, minTime *prometheus.Desc
}

func newStatsCollector(e *Engine) *statsCollector {
	p, o := e.opts.MetricPrefix, &e.opts
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(p+"_"+name, help, labels, nil)
	}
	return &statsCollector{
		e: e,
		compressed: desc("stored_compressed_bytes",
			fmt.Sprintf("Compressed size of the stored %s (in memory and on disk, without the stream index).", o.RowsHelp)),
		uncompressed: desc("stored_uncompressed_bytes",
			fmt.Sprintf("Uncompressed size of the stored %s.", o.RowsHelp)),
		ratio: desc("compression_ratio",
			fmt.Sprintf("Uncompressed over compressed size of the stored %s (0 while empty).", o.RowsHelp)),
		rows: desc("stored_"+o.Rows,
			fmt.Sprintf("Stored %s, by where their part is: memory (not yet in files), file.", o.RowsHelp), "location"),
		pending: desc("pending_"+o.Rows,
			fmt.Sprintf("Stored %s buffered and not yet searchable.", o.RowsHelp)),
		parts: desc("parts",
			fmt.Sprintf("Parts of the %s, by type: inmemory, small, big.", o.Name), "type"),
		partitions: desc("partitions",
			fmt.Sprintf("Per-day partitions of the %s.", o.Name)),
		indexBytes: desc("index_bytes",
			fmt.Sprintf("Size of the stream index of the %s.", o.Name)),
		streamsCreated: desc("streams_created_total",
			fmt.Sprintf("Streams registered in the stream index of a per-day partition of the %s since it was opened.", o.Name)),
		dropped: desc("storage_dropped_"+o.Rows+"_total",
			fmt.Sprintf("Stored %s VictoriaLogs itself dropped for their timestamp, by reason (the store rejects these first, so this should stay 0).", o.RowsHelp), "reason"),
		readOnly: desc("read_only",
			fmt.Sprintf("1 while the %s is read-only because disk space is low.", o.Name)),
		minTime: desc("oldest_"+o.Row+"_timestamp_seconds",
			fmt.Sprintf("Timestamp of the oldest of the stored %s (absent while empty).", o.RowsHelp)),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.compressed, c.uncompressed, c.ratio, c.rows, c.pending, c.parts, c.partitions, c.indexBytes, c.streamsCreated, c.dropped, c.readOnly, c.minTime} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	e := c.e
	e.mu.RLock()
	if e.closed {
		// A scrape racing Close: the storage is gone.
		e.mu.RUnlock()
		return
	}
	st := e.stats()
	staged := e.StagedRowsCount()
	e.mu.RUnlock()

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
	gauge(c.compressed, float64(compressed))
	gauge(c.uncompressed, float64(uncompressed))
	gauge(c.ratio, ratio)
	gauge(c.rows, float64(st.InmemoryRowsCount), "memory")
	gauge(c.rows, float64(st.SmallPartRowsCount+st.BigPartRowsCount), "file")
	gauge(c.pending, float64(st.PendingRows)+float64(staged))
	gauge(c.parts, float64(st.InmemoryParts), "inmemory")
	gauge(c.parts, float64(st.SmallParts), "small")
	gauge(c.parts, float64(st.BigParts), "big")
	gauge(c.partitions, float64(st.PartitionsCount))
	gauge(c.indexBytes, float64(st.IndexdbSizeBytes))
	counter(c.streamsCreated, float64(st.StreamsCreatedTotal))
	counter(c.dropped, float64(st.RowsDroppedTooSmallTimestamp), ReasonTooOld)
	counter(c.dropped, float64(st.RowsDroppedTooBigTimestamp), ReasonTooNew)
	readOnly := 0.0
	if st.IsReadOnly {
		readOnly = 1
	}
	gauge(c.readOnly, readOnly)
	if st.RowsCount() > 0 && st.MinTimestamp != math.MinInt64 && st.MinTimestamp != math.MaxInt64 {
		gauge(c.minTime, float64(st.MinTimestamp)/1e9)
	}
}
