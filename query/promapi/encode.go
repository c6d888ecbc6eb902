package promapi

import (
	"math"
	"strconv"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/pharos-obs/pharos/internal/jsonappend"
)

// The appenders below write the JSON Prometheus's own codec writes, byte for byte where it
// matters to clients: timestamps as numbers of seconds with millisecond precision, sample
// values as strings, labels as objects in label order. They follow the dst = f(dst, …)
// pattern so that a pooled buffer can be reused without per-item allocations.

// appendTimestamp writes milliseconds t as seconds, with the fraction written from the
// integer so that 1435781451781 becomes 1435781451.781 exactly, without the rounding
// artefacts float division would bring. A zero fraction is omitted; otherwise it always has
// three digits (".780"), as in Prometheus.
func appendTimestamp(dst []byte, t int64) []byte {
	u := uint64(t)
	if t < 0 {
		dst = append(dst, '-')
		u = -u // Two's complement negation is right for math.MinInt64 too.
	}
	dst = strconv.AppendUint(dst, u/1000, 10)
	if frac := u % 1000; frac != 0 {
		dst = append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	}
	return dst
}

const (
	// maxExactInt is 2^53, the bound below which float64 holds every integer exactly.
	maxExactInt = 1 << 53

	// decimalScale and maxDecimal bound the fast path for values with at most six decimals:
	// below 1e9 the spacing of float64 is under 2^-23, far finer than 1e-6.
	decimalScale = 1e6
	maxDecimal   = 1e9
)

// appendSampleValue writes a sample value as a JSON string. Like Prometheus, very small and
// very large magnitudes use exponent notation; everything else is the shortest decimal that
// parses back to the same float. Infinities and NaN become "+Inf", "-Inf" and "NaN".
//
// strconv's shortest formatting dominates the cost of encoding a matrix, and most values
// are whole numbers (counters, byte gauges) or have a few decimals (load averages,
// temperatures, bucket bounds). Those take fast paths that write the same bytes:
//
//   - Below 2^53 every integer is exact, and its shortest decimal is its integer digits.
//   - If n/1e6 (n an integer, |f| < 1e9) rounds to f, the decimal n/1e6 parses back to f.
//     It is also the shortest such decimal: any shorter one is another multiple of 1e-6,
//     at least 1e-6 away, while every value that rounds to f lies within 2^-24 of it.
//
// Zero goes the slow way to keep "-0".
func appendSampleValue(dst []byte, f float64) []byte {
	dst = append(dst, '"')
	if f != 0 && f > -maxExactInt && f < maxExactInt && f == float64(int64(f)) {
		dst = strconv.AppendInt(dst, int64(f), 10)
		return append(dst, '"')
	}
	if abs := math.Abs(f); abs >= 1e-6 && abs < maxDecimal {
		if n := math.Round(f * decimalScale); n/decimalScale == f {
			return append(appendMicros(dst, int64(n)), '"')
		}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	return append(dst, '"')
}

// appendMicros writes n millionths as a decimal without trailing zeros.
func appendMicros(dst []byte, n int64) []byte {
	if n < 0 {
		dst = append(dst, '-')
		n = -n
	}
	dst = strconv.AppendInt(dst, n/decimalScale, 10)
	frac := n % decimalScale
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	end := len(digits)
	for end > 0 && digits[end-1] == '0' {
		end--
	}
	if end == 0 {
		return dst
	}
	dst = append(dst, '.')
	return append(dst, digits[:end]...)
}

// appendScalarValue writes a scalar's value. Prometheus formats scalars with plain 'f'
// notation (promql.Scalar.MarshalJSON), unlike vector and matrix samples.
func appendScalarValue(dst []byte, f float64) []byte {
	dst = append(dst, '"')
	dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
	return append(dst, '"')
}

// Prometheus writes label names and values with jsoniter's plain WriteString and every
// other string with its encoding/json-compatible one, which escapes HTML and line
// separators; we do the same so that responses are byte for byte what Prometheus sends.
// Unlike Prometheus, invalid UTF-8 in labels becomes U+FFFD instead of being copied through,
// because raw invalid bytes would make the whole response invalid JSON.
const (
	stringEscape = jsonappend.EscapeHTML | jsonappend.EscapeLineSeparators
	labelEscape  = jsonappend.Escape(0)
)

// appendString writes s as a JSON string the way encoding/json (and the jsoniter
// configuration Prometheus uses) does: '<', '>', '&' and U+2028/U+2029 escaped, invalid
// UTF-8 replaced by U+FFFD.
func appendString(dst []byte, s string) []byte {
	return jsonappend.String(dst, s, stringEscape)
}

// appendLabels writes {"name":"value",...} in label order; empty labels are {}.
func appendLabels(dst []byte, ls labels.Labels) []byte {
	return jsonappend.Labels(dst, ls, labelEscape)
}

// appendHistogram writes a native histogram as Prometheus does:
//
//	{"count":"42","sum":"3.5","buckets":[[boundaryRule,"lower","upper","count"],...]}
//
// boundaryRule is 0 (lower exclusive, upper inclusive), 1 (lower inclusive, upper
// exclusive), 2 (both exclusive) or 3 (both inclusive). Empty buckets are left out, and so
// is "buckets" when none remain.
func appendHistogram(dst []byte, h *histogram.FloatHistogram) []byte {
	dst = append(dst, `{"count":`...)
	dst = appendSampleValue(dst, h.Count)
	dst = append(dst, `,"sum":`...)
	dst = appendSampleValue(dst, h.Sum)
	found := false
	it := h.AllBucketIterator()
	for it.Next() {
		b := it.At()
		if b.Count == 0 {
			continue
		}
		if found {
			dst = append(dst, ',')
		} else {
			dst = append(dst, `,"buckets":[`...)
			found = true
		}
		rule := byte('2')
		switch {
		case b.LowerInclusive && b.UpperInclusive:
			rule = '3'
		case b.LowerInclusive:
			rule = '1'
		case b.UpperInclusive:
			rule = '0'
		}
		dst = append(dst, '[', rule, ',')
		dst = appendSampleValue(dst, b.Lower)
		dst = append(dst, ',')
		dst = appendSampleValue(dst, b.Upper)
		dst = append(dst, ',')
		dst = appendSampleValue(dst, b.Count)
		dst = append(dst, ']')
	}
	if found {
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendSample writes one element of a vector result:
//
//	{"metric":{...},"value":[1435781451.781,"1"]}
//	{"metric":{...},"histogram":[1435781451.781,{...}]}
func appendSample(dst []byte, s *promql.Sample) []byte {
	dst = append(dst, `{"metric":`...)
	dst = appendLabels(dst, s.Metric)
	if s.H == nil {
		dst = append(dst, `,"value":[`...)
		dst = appendTimestamp(dst, s.T)
		dst = append(dst, ',')
		dst = appendSampleValue(dst, s.F)
	} else {
		dst = append(dst, `,"histogram":[`...)
		dst = appendTimestamp(dst, s.T)
		dst = append(dst, ',')
		dst = appendHistogram(dst, s.H)
	}
	return append(dst, "]}"...)
}

// appendSeries writes one element of a matrix result; "values" and "histograms" are left
// out when empty, as in Prometheus.
func appendSeries(dst []byte, s *promql.Series) []byte {
	dst = append(dst, `{"metric":`...)
	dst = appendLabels(dst, s.Metric)
	if len(s.Floats) > 0 {
		dst = append(dst, `,"values":[`...)
		for i := range s.Floats {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			dst = appendTimestamp(dst, s.Floats[i].T)
			dst = append(dst, ',')
			dst = appendSampleValue(dst, s.Floats[i].F)
			dst = append(dst, ']')
		}
		dst = append(dst, ']')
	}
	if len(s.Histograms) > 0 {
		dst = append(dst, `,"histograms":[`...)
		for i := range s.Histograms {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, '[')
			dst = appendTimestamp(dst, s.Histograms[i].T)
			dst = append(dst, ',')
			dst = appendHistogram(dst, s.Histograms[i].H)
			dst = append(dst, ']')
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendScalar writes [1435781451.781,"1"].
func appendScalar(dst []byte, s promql.Scalar) []byte {
	dst = append(dst, '[')
	dst = appendTimestamp(dst, s.T)
	dst = append(dst, ',')
	dst = appendScalarValue(dst, s.V)
	return append(dst, ']')
}

// appendStringValue writes a PromQL string result: [1435781451.781,"text"].
func appendStringValue(dst []byte, s promql.String) []byte {
	dst = append(dst, '[')
	dst = appendTimestamp(dst, s.T)
	dst = append(dst, ',')
	dst = appendString(dst, s.V)
	return append(dst, ']')
}

// appendExemplarResult writes one /query_exemplars element:
//
//	{"seriesLabels":{...},"exemplars":[{"labels":{...},"value":"1","timestamp":1.5}]}
func appendExemplarResult(dst []byte, r *exemplar.QueryResult) []byte {
	dst = append(dst, `{"seriesLabels":`...)
	dst = appendLabels(dst, r.SeriesLabels)
	dst = append(dst, `,"exemplars":[`...)
	for i := range r.Exemplars {
		e := &r.Exemplars[i]
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"labels":`...)
		dst = appendLabels(dst, e.Labels)
		dst = append(dst, `,"value":`...)
		dst = appendSampleValue(dst, e.Value)
		dst = append(dst, `,"timestamp":`...)
		dst = appendTimestamp(dst, e.Ts)
		dst = append(dst, '}')
	}
	return append(dst, "]}"...)
}
