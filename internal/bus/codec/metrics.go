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
	"math"
	"time"

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
// Every appended sample becomes its own TimeSeries entry; strings are
// interned in the request's symbol table, so a batch of samples from the
// same targets repeats each label string once.
//
// Interning is the encoder's main cost, so it is done once per series, not
// once per sample: the encoder keeps a symbol table across batches and, for
// samples that carry a series reference, the series' label strings as ids
// into it. Each batch then marks the ids it uses and renumbers them densely
// into its own table, which costs an array look-up per label. The kept state
// is dropped when it outgrows its bounds (series churn), and rebuilt.
type MetricsEncoder struct {
	comp    Compression
	req     writev2.Request
	n       int // TimeSeries entries in use; req.Timeseries[n:] are kept for reuse
	samples int
	raw     []byte

	// Symbols kept across batches: ids index strs; id 0 is "".
	ids  map[string]uint32
	strs []string
	// Per kept id: the batch that last used it, and its index in that
	// batch's symbol table (req.Symbols).
	stamp []uint32
	local []uint32
	gen   uint32
	// series maps a series reference to its label strings as kept ids.
	series    map[uint64]*seriesSymbols
	maxSeries int
	now       int64 // unix seconds at the batch's start
}

type seriesSymbols struct {
	ls     labels.Labels
	ids    []uint32
	meta   metadata.Metadata // last metadata sent for the series
	metaAt int64             // when it was sent (unix seconds)
}

// MetadataResend is how often a remembered series' unchanged metadata is
// sent again. Between resends it is left out of the batch: metadata is per
// metric family and rarely changes, and receivers keep the last value seen
// (a restarted one learns it again within this interval).
const MetadataResend = 5 * 60 // seconds

// DefaultMaxKeptSeries bounds the series an encoder remembers across
// batches unless SetMaxKeptSeries says otherwise. A remembered series costs
// about 150 bytes beyond the label set it shares with its producer.
const DefaultMaxKeptSeries = 1 << 16

// NewMetricsEncoder returns an encoder that compresses with comp.
func NewMetricsEncoder(comp Compression) *MetricsEncoder {
	e := &MetricsEncoder{comp: comp, maxSeries: DefaultMaxKeptSeries}
	e.resetKept()
	e.Reset()
	return e
}

func (e *MetricsEncoder) resetKept() {
	e.ids = map[string]uint32{"": 0}
	e.strs = append(e.strs[:0], "")
	e.stamp = append(e.stamp[:0], 0)
	e.local = append(e.local[:0], 0)
	e.series = map[uint64]*seriesSymbols{}
	e.gen = 0
}

// SetMaxKeptSeries bounds the series remembered across batches; past the
// bound (or four symbols per series) the remembered state is rebuilt.
func (e *MetricsEncoder) SetMaxKeptSeries(n int) { e.maxSeries = max(n, 1) }

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

// keep interns str in the kept table.
func (e *MetricsEncoder) keep(str string) uint32 {
	if id, ok := e.ids[str]; ok {
		return id
	}
	id := uint32(len(e.strs))
	e.strs = append(e.strs, str)
	e.stamp = append(e.stamp, 0)
	e.local = append(e.local, 0)
	e.ids[str] = id
	return id
}

// use returns the batch-local symbol of kept id, adding it to the batch's
// table on first use.
func (e *MetricsEncoder) use(id uint32) uint32 {
	if e.stamp[id] != e.gen {
		e.stamp[id] = e.gen
		e.local[id] = uint32(len(e.req.Symbols))
		e.req.Symbols = append(e.req.Symbols, e.strs[id])
	}
	return e.local[id]
}

func (e *MetricsEncoder) symbol(str string) uint32 { return e.use(e.keep(str)) }

func (e *MetricsEncoder) labelRefs(dst []uint32, ls labels.Labels) []uint32 {
	ls.Range(func(l labels.Label) {
		dst = append(dst, e.symbol(l.Name), e.symbol(l.Value))
	})
	return dst
}

func (e *MetricsEncoder) next() *writev2.TimeSeries {
	if e.n == len(e.req.Timeseries) {
		e.req.Timeseries = append(e.req.Timeseries, writev2.TimeSeries{})
	}
	ts := &e.req.Timeseries[e.n]
	e.n++
	ts.LabelsRefs = ts.LabelsRefs[:0]
	ts.Samples = ts.Samples[:0]
	ts.Histograms = ts.Histograms[:0]
	ts.Exemplars = ts.Exemplars[:0]
	ts.Metadata = writev2.Metadata{}
	return ts
}

// Sample is one sample with everything that travels with it. Exactly one of
// V, H and FH holds the value: H or FH when non-nil, else V.
type Sample struct {
	Labels labels.Labels
	// Ref, when not 0, is a stable hash of Labels (the agent's series
	// reference); it lets the encoder reuse the series' interned labels.
	Ref       uint64
	ST        int64 // start (created) timestamp in ms, 0 if unknown
	T         int64
	V         float64
	H         *histogram.Histogram
	FH        *histogram.FloatHistogram
	Meta      metadata.Metadata // zero value when unknown
	Exemplars []exemplar.Exemplar
}

// Append adds one sample. The encoder copies what it needs; s may be reused
// after Append returns, but its label set is kept (not copied) while the
// series stays in the encoder's cache, as labels are immutable.
func (e *MetricsEncoder) Append(s *Sample) {
	ts := e.next()
	sendMeta := s.Meta.Type != "" || s.Meta.Help != "" || s.Meta.Unit != ""
	if s.Ref == 0 {
		ts.LabelsRefs = e.labelRefs(ts.LabelsRefs, s.Labels)
	} else {
		ss := e.series[s.Ref]
		if ss == nil || !labels.Equal(ss.ls, s.Labels) { // new, or a hash collision
			ss = &seriesSymbols{ls: s.Labels}
			s.Labels.Range(func(l labels.Label) {
				ss.ids = append(ss.ids, e.keep(l.Name), e.keep(l.Value))
			})
			e.series[s.Ref] = ss
		}
		for _, id := range ss.ids {
			ts.LabelsRefs = append(ts.LabelsRefs, e.use(id))
		}
		if sendMeta {
			if ss.meta == s.Meta && e.now-ss.metaAt < MetadataResend {
				sendMeta = false
			} else {
				ss.meta, ss.metaAt = s.Meta, e.now
			}
		}
	}
	switch {
	case s.FH != nil:
		ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(s.ST, s.T, s.FH))
	case s.H != nil:
		ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(s.ST, s.T, s.H))
	default:
		ts.Samples = append(ts.Samples, writev2.Sample{Value: s.V, Timestamp: s.T, StartTimestamp: s.ST})
	}
	e.samples++
	if sendMeta {
		ts.Metadata = writev2.Metadata{
			Type:    writev2.FromMetadataType(s.Meta.Type),
			HelpRef: e.symbol(s.Meta.Help),
			UnitRef: e.symbol(s.Meta.Unit),
		}
	}
	for i := range s.Exemplars {
		ex := &s.Exemplars[i]
		var refs []uint32
		if n := len(ts.Exemplars); n < cap(ts.Exemplars) {
			refs = ts.Exemplars[:n+1][n].LabelsRefs[:0]
		}
		ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{
			LabelsRefs: e.labelRefs(refs, ex.Labels),
			Value:      ex.Value,
			Timestamp:  ex.Ts,
		})
	}
}

// Encode marshals and compresses the batch, appending to dst[:0].
func (e *MetricsEncoder) Encode(dst []byte) ([]byte, error) {
	full := e.req.Timeseries
	e.req.Timeseries = full[:e.n]
	var err error
	e.raw, err = e.req.OptimizedMarshal(e.raw[:0])
	e.req.Timeseries = full
	if err != nil {
		return dst[:0], fmt.Errorf("marshal remote-write request: %w", err)
	}
	return compress(e.comp, dst[:0], e.raw)
}

// Reset empties the batch, keeping its buffers and the interned series.
func (e *MetricsEncoder) Reset() {
	e.n = 0
	e.samples = 0
	if len(e.series) > e.maxSeries || len(e.strs) > 4*e.maxSeries+1024 || e.gen == math.MaxUint32 {
		e.resetKept()
	}
	e.gen++
	e.now = time.Now().Unix()
	// Symbol 0 of every batch is "", as the format requires.
	e.stamp[0], e.local[0] = e.gen, 0
	e.req.Symbols = append(e.req.Symbols[:0], "")
}

// MetricsDecoder decodes encoded batches. The request it returns, and the
// symbol strings in it, are valid until the next call to Decode: the
// symbols point into the decoder's buffer. Copy what must outlive it
// (labels.ScratchBuilder.Labels does).
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
	if err := unmarshalRequest(&d.req, d.raw); err != nil {
		return nil, fmt.Errorf("unmarshal remote-write request: %w", err)
	}
	if len(d.req.Symbols) == 0 || d.req.Symbols[0] != "" {
		if len(d.req.Timeseries) > 0 {
			return nil, errors.New("remote-write request: symbols table must start with the empty string")
		}
	}
	return &d.req, nil
}
