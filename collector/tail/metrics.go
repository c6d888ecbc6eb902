package tail

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons for lost bytes and dropped entries.
const (
	// reasonTruncated: a file was truncated (copytruncate) before the
	// bytes were read, and no copy holding them was found.
	reasonTruncated = "truncated"
	// reasonDeleted: a file was deleted or replaced before it was read
	// (or its lines acknowledged) to its end, while the tailer could not
	// hold it open (stopped, or over max_open_files).
	reasonDeleted = "deleted"
	// reasonRejected: the sink refused a batch permanently.
	reasonRejected = "rejected"
)

// Kinds of rotation.
const (
	rotationRename   = "rename" // renamed or deleted; read on through the open descriptor
	rotationTruncate = "truncate"
)

type metrics struct {
	filesWatched    prometheus.Gauge
	filesOpen       prometheus.Gauge
	bytesRead       prometheus.Counter
	linesRead       prometheus.Counter
	entriesSent     prometheus.Counter
	linesTruncated  prometheus.Counter
	invalidUTF8     prometheus.Counter
	parseErrors     *prometheus.CounterVec
	lostBytes       *prometheus.CounterVec
	droppedEntries  *prometheus.CounterVec
	rotations       *prometheus.CounterVec
	positionsWrites prometheus.Counter
	positionsErrors prometheus.Counter
	lagBytes        prometheus.Gauge
	pushRetries     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		filesWatched: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_tail_files_watched", Help: "Files the tailer tracks: matched, rotated but not yet read to their end, or waiting for their last lines to be acknowledged."}),
		filesOpen: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_tail_files_open", Help: "Files the tailer holds open (bounded by agent.tail.max-open-files)."}),
		bytesRead: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_bytes_read_total", Help: "Bytes of log files read and split into lines."}),
		linesRead: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_lines_read_total", Help: "Lines read from log files (physical lines, before joining)."}),
		entriesSent: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_entries_sent_total", Help: "Entries the sink acknowledged."}),
		linesTruncated: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_lines_truncated_total", Help: "Entries cut to agent.tail.max-line-bytes."}),
		invalidUTF8: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_invalid_utf8_lines_total", Help: "Entries whose invalid UTF-8 was replaced with U+FFFD."}),
		parseErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_tail_parse_errors_total", Help: "Lines a parser could not decode, by parser; they are kept as they are."}, []string{"parser"}),
		lostBytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_tail_lost_bytes_total", Help: "Bytes of log files that could not be read, by reason (truncated: copytruncate before they were read; deleted: removed before they were read)."}, []string{"reason"}),
		droppedEntries: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_tail_dropped_entries_total", Help: "Entries read but given up on, by reason."}, []string{"reason"}),
		rotations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pharos_tail_rotations_total", Help: "File rotations noticed, by kind (rename: renamed or deleted; truncate: truncated in place)."}, []string{"kind"}),
		positionsWrites: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_positions_writes_total", Help: "Positions file writes (each atomic and fsynced)."}),
		positionsErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_positions_write_failures_total", Help: "Positions file writes that failed; the next one retries."}),
		lagBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "pharos_tail_lag_bytes", Help: "Bytes written to tracked files but not read yet, as of the last poll."}),
		pushRetries: f.NewCounter(prometheus.CounterOpts{
			Name: "pharos_tail_push_retries_total", Help: "Batches the sink failed to take and that are tried again."}),
	}
	// The labels an operator should see at zero rather than missing.
	for _, r := range []string{reasonTruncated, reasonDeleted} {
		m.lostBytes.WithLabelValues(r)
	}
	m.droppedEntries.WithLabelValues(reasonRejected)
	for _, k := range []string{rotationRename, rotationTruncate} {
		m.rotations.WithLabelValues(k)
	}
	return m
}
