package lokiapi

import (
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-obs/pharos/query/logql"
)

// The encoders append JSON to a byte slice: responses can hold thousands
// of log lines, and reflection-based encoding of [ts, line] tuples would
// cost more than the query.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript string literals.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendLabels appends a label set as a JSON object.
func appendLabels(dst []byte, ls labels.Labels) []byte {
	dst = append(dst, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, l.Name)
		dst = append(dst, ':')
		dst = appendString(dst, l.Value)
	})
	return append(dst, '}')
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, s)
	}
	return append(dst, ']')
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

// appendPoint appends a Prometheus [<seconds>, "<value>"] pair.
func appendPoint(dst []byte, t int64, v float64) []byte {
	dst = append(dst, '[')
	dst = append(dst, model.Time(t).String()...)
	dst = append(dst, ",\""...)
	dst = appendFloat(dst, v)
	return append(dst, "\"]"...)
}

func appendFloat(dst []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	}
	return strconv.AppendFloat(dst, v, 'f', -1, 64)
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
