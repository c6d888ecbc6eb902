// Package codec turns telemetry batches into the standard wire encodings that
// travel over the bus, and back. Metrics use Prometheus remote-write 2.0
// protobuf (io.prometheus.write.v2.Request), compressed with snappy or zstd.
//
// Encoders and decoders are not safe for concurrent use; each keeps its
// buffers between batches so that steady-state encoding allocates only when a
// batch is larger than any before it.
package codec

import (
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// Encodings carried in the Pharos-Encoding header.
const (
	// EncodingPRW2Snappy is a remote-write 2.0 Request compressed with snappy
	// (block format, as remote write itself uses).
	EncodingPRW2Snappy = "prw2+snappy"
	// EncodingPRW2Zstd is a remote-write 2.0 Request compressed with zstd.
	EncodingPRW2Zstd = "prw2+zstd"
)

// ErrUnknownEncoding reports an encoding header this build cannot decode.
var ErrUnknownEncoding = errors.New("unknown encoding")

// MetricsEncoder accumulates samples into one remote-write 2.0 request.
// Every appended sample becomes its own TimeSeries entry; labels are
// interned in the request's symbol table, so a batch of samples from the
// same targets repeats each label string once.
type MetricsEncoder struct {
	comp    Compression
	symbols writev2.SymbolsTable
	req     writev2.Request
	n       int // TimeSeries entries in use; req.Timeseries[n:] are kept for reuse
	samples int
	raw     []byte
}

// NewMetricsEncoder returns an encoder that compresses with comp.
func NewMetricsEncoder(comp Compression) *MetricsEncoder {
	return &MetricsEncoder{comp: comp, symbols: writev2.NewSymbolTable()}
}

// Encoding is the Pharos-Encoding header value of what Encode produces.
func (e *MetricsEncoder) Encoding() string {
	if e.comp == CompressionZstd {
		return EncodingPRW2Zstd
	}
	return EncodingPRW2Snappy
}

// Samples is the number of float and histogram samples appended since Reset.
func (e *MetricsEncoder) Samples() int { return e.samples }

// Series is the number of TimeSeries entries appended since Reset.
func (e *MetricsEncoder) Series() int { return e.n }

func (e *MetricsEncoder) next(l labels.Labels) *writev2.TimeSeries {
	if e.n == len(e.req.Timeseries) {
		e.req.Timeseries = append(e.req.Timeseries, writev2.TimeSeries{})
	}
	ts := &e.req.Timeseries[e.n]
	e.n++
	ts.LabelsRefs = e.symbols.SymbolizeLabels(l, ts.LabelsRefs[:0])
	ts.Samples = ts.Samples[:0]
	ts.Histograms = ts.Histograms[:0]
	ts.Exemplars = ts.Exemplars[:0]
	ts.Metadata = writev2.Metadata{}
	return ts
}

// Sample is one sample with everything that travels with it. Exactly one of
// V, H and FH holds the value: H or FH when non-nil, else V.
type Sample struct {
	Labels    labels.Labels
	ST        int64 // start (created) timestamp in ms, 0 if unknown
	T         int64
	V         float64
	H         *histogram.Histogram
	FH        *histogram.FloatHistogram
	Meta      metadata.Metadata // zero value when unknown
	Exemplars []exemplar.Exemplar
}

// Append adds one sample. The encoder copies what it needs; s may be reused
// after Append returns.
func (e *MetricsEncoder) Append(s *Sample) {
	ts := e.next(s.Labels)
	switch {
	case s.FH != nil:
		ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(s.ST, s.T, s.FH))
	case s.H != nil:
		ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(s.ST, s.T, s.H))
	default:
		ts.Samples = append(ts.Samples, writev2.Sample{Value: s.V, Timestamp: s.T, StartTimestamp: s.ST})
	}
	e.samples++
	if s.Meta.Type != "" || s.Meta.Help != "" || s.Meta.Unit != "" {
		ts.Metadata = writev2.Metadata{
			Type:    writev2.FromMetadataType(s.Meta.Type),
			HelpRef: e.symbols.Symbolize(s.Meta.Help),
			UnitRef: e.symbols.Symbolize(s.Meta.Unit),
		}
	}
	for i := range s.Exemplars {
		ex := &s.Exemplars[i]
		var refs []uint32
		if n := len(ts.Exemplars); n < cap(ts.Exemplars) {
			refs = ts.Exemplars[:n+1][n].LabelsRefs[:0]
		}
		ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{
			LabelsRefs: e.symbols.SymbolizeLabels(ex.Labels, refs),
			Value:      ex.Value,
			Timestamp:  ex.Ts,
		})
	}
}

// Encode marshals and compresses the batch, appending to dst[:0].
func (e *MetricsEncoder) Encode(dst []byte) ([]byte, error) {
	full := e.req.Timeseries
	e.req.Timeseries = full[:e.n]
	e.req.Symbols = e.symbols.Symbols()
	var err error
	e.raw, err = e.req.OptimizedMarshal(e.raw[:0])
	e.req.Timeseries = full
	if err != nil {
		return dst[:0], fmt.Errorf("marshal remote-write request: %w", err)
	}
	return compress(e.comp, dst[:0], e.raw)
}

// Reset empties the batch, keeping its buffers.
func (e *MetricsEncoder) Reset() {
	e.symbols.Reset()
	e.n = 0
	e.samples = 0
}

// MetricsDecoder decodes encoded batches. The request it returns is valid
// until the next call to Decode.
type MetricsDecoder struct {
	// MaxDecodedBytes caps a batch's decompressed size (0: DefaultMaxDecodedBytes).
	MaxDecodedBytes int
	req             writev2.Request
	raw             []byte
}

// DefaultMaxDecodedBytes bounds a decompressed batch when no cap is set.
const DefaultMaxDecodedBytes = 64 << 20

// Decode decompresses and unmarshals one batch.
func (d *MetricsDecoder) Decode(encoding string, data []byte) (*writev2.Request, error) {
	var comp Compression
	switch encoding {
	case EncodingPRW2Snappy:
		comp = CompressionSnappy
	case EncodingPRW2Zstd:
		comp = CompressionZstd
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownEncoding, encoding)
	}
	limit := d.MaxDecodedBytes
	if limit <= 0 {
		limit = DefaultMaxDecodedBytes
	}
	var err error
	d.raw, err = decompress(comp, d.raw[:0], data, limit)
	if err != nil {
		return nil, err
	}
	d.req.Symbols = d.req.Symbols[:0]
	d.req.Timeseries = d.req.Timeseries[:0]
	if err := d.req.Unmarshal(d.raw); err != nil {
		return nil, fmt.Errorf("unmarshal remote-write request: %w", err)
	}
	if len(d.req.Symbols) == 0 || d.req.Symbols[0] != "" {
		if len(d.req.Timeseries) > 0 {
			return nil, errors.New("remote-write request: symbols table must start with the empty string")
		}
	}
	return &d.req, nil
}
