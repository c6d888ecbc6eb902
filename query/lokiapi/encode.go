package lokiapi

import (
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-obs/pharos/internal/jsonappend"
	"github.com/pharos-obs/pharos/query/logql"
)

// The encoders append JSON to a byte slice: responses can hold thousands
// of log lines, and reflection-based encoding of [ts, line] tuples would
// cost more than the query.

// stringEscape is the escaping of every string of the Loki API, label names and values
// included: U+2028 and U+2029 are escaped, '<', '>' and '&' are not.
const stringEscape = jsonappend.EscapeLineSeparators

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	return jsonappend.String(dst, s, stringEscape)
}

// appendLabels appends a label set as a JSON object.
func appendLabels(dst []byte, ls labels.Labels) []byte {
	return jsonappend.Labels(dst, ls, stringEscape)
}

// appendStreams appends Loki's streams result. With categorize, each
// value carries a third element with the entry's structured metadata and
// parsed labels, as Loki does for the categorize-labels encoding flag.
func appendStreams(dst []byte, streams logql.Streams, categorize bool) []byte {
	dst = append(dst, '[')
	for i, s := range streams {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"stream":`...)
		dst = appendLabels(dst, s.Labels)
		dst = append(dst, `,"values":[`...)
		for j, e := range s.Entries {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `["`...)
			dst = strconv.AppendInt(dst, e.Timestamp, 10)
			dst = append(dst, `",`...)
			dst = appendString(dst, e.Line)
			if categorize {
				dst = append(dst, ",{"...)
				sep := false
				if !e.StructuredMetadata.IsEmpty() {
					dst = append(dst, `"structuredMetadata":`...)
					dst = appendLabels(dst, e.StructuredMetadata)
					sep = true
				}
				if !e.Parsed.IsEmpty() {
					if sep {
						dst = append(dst, ',')
					}
					dst = append(dst, `"parsed":`...)
					dst = appendLabels(dst, e.Parsed)
				}
				dst = append(dst, '}')
			}
			dst = append(dst, ']')
		}
		dst = append(dst, "]}"...)
	}
	return append(dst, ']')
}

// appendPoint appends a Prometheus [<seconds>, "<value>"] pair. The time is written as
// model.Time's String does, without its allocation; strconv spells infinities and NaN as
// Prometheus does ("+Inf", "-Inf", "NaN").
func appendPoint(dst []byte, t int64, v float64) []byte {
	dst = append(dst, '[')
	dst = strconv.AppendFloat(dst, float64(t)/1e3, 'f', -1, 64)
	dst = append(dst, ",\""...)
	dst = strconv.AppendFloat(dst, v, 'f', -1, 64)
	return append(dst, "\"]"...)
}

// appendResult appends a query result's "result" value.
func appendResult(dst []byte, v parser.Value, categorize bool) []byte {
	switch v := v.(type) {
	case logql.Streams:
		return appendStreams(dst, v, categorize)
	case promql.Matrix:
		dst = append(dst, '[')
		for i, s := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"metric":`...)
			dst = appendLabels(dst, s.Metric)
			dst = append(dst, `,"values":[`...)
			for j, p := range s.Floats {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = appendPoint(dst, p.T, p.F)
			}
			dst = append(dst, "]}"...)
		}
		return append(dst, ']')
	case promql.Vector:
		dst = append(dst, '[')
		for i, s := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"metric":`...)
			dst = appendLabels(dst, s.Metric)
			dst = append(dst, `,"value":`...)
			dst = appendPoint(dst, s.T, s.F)
			dst = append(dst, '}')
		}
		return append(dst, ']')
	case promql.Scalar:
		return appendPoint(dst, v.T, v.V)
	}
	return append(dst, "null"...)
}

// appendStats appends Loki's stats object. Pharos has no chunks, caches
// or ingesters, so only the summary and the querier's totals are filled.
func appendStats(dst []byte, s logql.Stats) []byte {
	secs := s.ExecTime.Seconds()
	perSec := func(n int64) int64 {
		if secs <= 0 {
			return 0
		}
		return int64(float64(n) / secs)
	}
	dst = append(dst, `{"summary":{"bytesProcessedPerSecond":`...)
	dst = strconv.AppendInt(dst, perSec(s.BytesProcessed), 10)
	dst = append(dst, `,"linesProcessedPerSecond":`...)
	dst = strconv.AppendInt(dst, perSec(s.LinesProcessed), 10)
	dst = append(dst, `,"totalBytesProcessed":`...)
	dst = strconv.AppendInt(dst, s.BytesProcessed, 10)
	dst = append(dst, `,"totalLinesProcessed":`...)
	dst = strconv.AppendInt(dst, s.LinesProcessed, 10)
	dst = append(dst, `,"execTime":`...)
	dst = strconv.AppendFloat(dst, secs, 'f', -1, 64)
	dst = append(dst, `,"queueTime":0,"subqueries":0,"totalEntriesReturned":`...)
	dst = strconv.AppendInt(dst, s.EntriesReturned, 10)
	dst = append(dst, `,"splits":0,"shards":0,"totalPostFilterLines":`...)
	dst = strconv.AppendInt(dst, s.PostFilterLines, 10)
	dst = append(dst, `,"totalStructuredMetadataBytesProcessed":0},"querier":{"store":{"totalChunksRef":0,"totalChunksDownloaded":0,"chunksDownloadTime":0,"chunk":{"headChunkBytes":0,"headChunkLines":0,"decompressedBytes":`...)
	dst = strconv.AppendInt(dst, s.BytesProcessed, 10)
	dst = append(dst, `,"decompressedLines":`...)
	dst = strconv.AppendInt(dst, s.LinesProcessed, 10)
	dst = append(dst, `,"compressedBytes":0,"totalDuplicates":0,"postFilterLines":`...)
	dst = strconv.AppendInt(dst, s.PostFilterLines, 10)
	return append(dst, `}}}}`...)
}
