// Package codec turns telemetry batches into the standard wire encodings that
// travel over the bus, and back. Metrics use Prometheus remote-write 2.0
// protobuf (io.prometheus.write.v2.Request), compressed with snappy or zstd.
//
// Encoders and decoders are not safe for concurrent use; each keeps its
// buffers between batches so that steady-state encoding allocates only when a
// batch is larger than any before it.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
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
//
// Float samples, the bulk of every batch, are written straight into the
// request's wire form as they are appended (a TimeSeries is a few dozen
// bytes whose length is known up front), so encoding a batch is only
// writing its symbol table in front of them and compressing: there is no
// per-sample message struct and no sizing pass.
type MetricsEncoder struct {
	comp    Compression
	symbols []string // the batch's symbol table
	body    []byte   // the batch's TimeSeries entries, wire-encoded
	n       int      // TimeSeries entries in body
	samples int
	refs    []byte             // scratch: one series' batch-local label refs, as varints
	ts      writev2.TimeSeries // scratch for the rare (histogram, exemplar) entries
	tsBuf   []byte

	// Symbols kept across batches: ids index strs; id 0 is "".
	ids  map[string]uint32
	strs []string
	// Per kept id: the batch that last used it, and its index in that
	// batch's symbol table (side by side: both are read for every label).
	slots []symbolSlot
	gen   uint32
	// Remembered series, in the order they were added, with their label
	// strings as kept ids in idArena. Scrapes append a target's series in
	// the same order every time, so the series after the one just found is
	// checked first: a run of series is then read sequentially, and the
	// index by reference is only the fall-back.
	series    []seriesSymbols
	seriesIdx map[uint64]int32
	idArena   []uint32
	next      int
	maxSeries int
	now       int64 // unix seconds at the batch's start

	// keepLocal makes Append also record each sample as a LocalSample,
	// for TakeLocal.
	keepLocal bool
	localBuf  []LocalSample
	localHint int // length of the last batch taken
}

// LocalSample is one sample of a batch as its encoder took it: what a
// consumer in the same process gets from decoding the batch, without the
// decoding. Labels are the agent's (no tenant label); Meta is set only
// where the batch carries metadata.
type LocalSample struct {
	Labels labels.Labels
	Ref    uint64 // the agent's series reference, never 0
	ST, T  int64
	V      float64
	// Rare holds what few samples have (a histogram, exemplars, metadata),
	// keeping the common sample small.
	Rare *LocalRare
}

// LocalRare is the rarely set part of a LocalSample.
type LocalRare struct {
	H         *histogram.Histogram
	FH        *histogram.FloatHistogram
	Meta      metadata.Metadata
	Exemplars []exemplar.Exemplar
	// MetaOnly marks an entry of AppendFamilyMetadata: Labels hold only the
	// family's name, Meta its metadata, and there is no sample.
	MetaOnly bool
}

// KeepLocal makes the encoder also keep every appended sample, uncoded,
// for TakeLocal. The samples' histograms and exemplars are kept, not
// copied: the caller must not reuse them.
func (e *MetricsEncoder) KeepLocal() { e.keepLocal = true }

// TakeLocal returns the batch's samples as appended since the last Reset,
// in the encoded order, and hands them over: the encoder keeps no
// reference. Without KeepLocal it returns nil.
func (e *MetricsEncoder) TakeLocal() []LocalSample {
	s := e.localBuf
	e.localBuf = nil
	e.localHint = len(s)
	return s
}

// localPool holds batches given back with ReleaseLocal. A batch is a few
// hundred kilobytes; without reuse they were a tenth of the all-in-one's
// allocations.
var localPool sync.Pool // *[]LocalSample

// ReleaseLocal gives back a batch that TakeLocal handed over, once nothing
// uses its samples any more (their label sets, histograms and exemplars
// may still be referenced: only the slice is reused).
func ReleaseLocal(s []LocalSample) {
	clear(s)
	s = s[:0]
	localPool.Put(&s)
}

func (e *MetricsEncoder) keepSample(s *Sample, ref uint64, sendMeta bool) {
	if e.localBuf == nil {
		if p, ok := localPool.Get().(*[]LocalSample); ok {
			e.localBuf = *p
		} else {
			e.localBuf = make([]LocalSample, 0, max(e.localHint, 64))
		}
	}
	ls := LocalSample{Labels: s.Labels, Ref: ref, ST: s.ST, T: s.T, V: s.V}
	if s.H != nil || s.FH != nil || len(s.Exemplars) > 0 || sendMeta {
		ls.Rare = &LocalRare{H: s.H, FH: s.FH, Exemplars: s.Exemplars}
		if sendMeta {
			ls.Rare.Meta = s.Meta
		}
	}
	e.localBuf = append(e.localBuf, ls)
}

type symbolSlot struct{ gen, local uint32 }

type seriesSymbols struct {
	ref    uint64
	ls     labels.Labels
	ids    uint32 // offset in idArena; 2 ids per label
	nids   uint32
	used   uint32            // the batch (gen) that last used it
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
	e.slots = append(e.slots[:0], symbolSlot{})
	e.series = e.series[:0]
	e.seriesIdx = map[uint64]int32{}
	e.idArena = e.idArena[:0]
	e.next = 0
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
	e.slots = append(e.slots, symbolSlot{})
	e.ids[str] = id
	return id
}

// use returns the batch-local symbol of kept id, adding it to the batch's
// table on first use.
func (e *MetricsEncoder) use(id uint32) uint32 {
	sl := &e.slots[id]
	if sl.gen != e.gen {
		sl.gen = e.gen
		sl.local = uint32(len(e.symbols))
		e.symbols = append(e.symbols, e.strs[id])
	}
	return sl.local
}

func (e *MetricsEncoder) symbol(str string) uint32 { return e.use(e.keep(str)) }

func (e *MetricsEncoder) labelRefs(dst []uint32, ls labels.Labels) []uint32 {
	ls.Range(func(l labels.Label) {
		dst = append(dst, e.symbol(l.Name), e.symbol(l.Value))
	})
	return dst
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
	sendMeta := s.Meta.Type != "" || s.Meta.Help != "" || s.Meta.Unit != ""
	if s.Ref == 0 {
		e.refs = e.refs[:0]
		s.Labels.Range(func(l labels.Label) {
			e.refs = appendUvarint(e.refs, uint64(e.symbol(l.Name)))
			e.refs = appendUvarint(e.refs, uint64(e.symbol(l.Value)))
		})
	} else {
		ss := e.remembered(s.Ref, s.Labels)
		// The labels field of the series, numbered and written in one pass.
		e.refs = e.refs[:0]
		for _, id := range e.idArena[ss.ids : ss.ids+ss.nids] {
			e.refs = appendUvarint(e.refs, uint64(e.use(id)))
		}
		if sendMeta {
			if ss.meta == s.Meta && e.now-ss.metaAt < MetadataResend {
				sendMeta = false
			} else {
				ss.meta, ss.metaAt = s.Meta, e.now
			}
		}
	}
	var md writev2.Metadata
	if sendMeta {
		md = writev2.Metadata{
			Type:    writev2.FromMetadataType(s.Meta.Type),
			HelpRef: e.symbol(s.Meta.Help),
			UnitRef: e.symbol(s.Meta.Unit),
		}
	}
	e.n++
	e.samples++
	if e.keepLocal {
		ref := s.Ref
		if ref == 0 {
			ref = s.Labels.Hash() | 1
		}
		e.keepSample(s, ref, sendMeta)
	}
	if s.H != nil || s.FH != nil || len(s.Exemplars) > 0 {
		e.appendGeneric(s, md)
		return
	}
	e.body = appendFloatSeries(e.body, e.refs, s.ST, s.T, s.V, md)
}

// AppendFamilyMetadata adds the metadata of a metric family, without a
// sample: a series whose only label is the family's name and that holds
// metadata and nothing else. Receivers record it as the family's metadata
// and store no series (remote write 2.0 itself has no such entry, but
// remote write 1.0 sends metadata per family the same way). Scrapers send
// their targets' metadata like this, so that samples need not carry it.
func (e *MetricsEncoder) AppendFamilyMetadata(family string, m metadata.Metadata) {
	md := writev2.Metadata{
		Type:    writev2.FromMetadataType(m.Type),
		HelpRef: e.symbol(m.Help),
		UnitRef: e.symbol(m.Unit),
	}
	e.refs = appendUvarint(e.refs[:0], uint64(e.symbol(labels.MetricName)))
	e.refs = appendUvarint(e.refs, uint64(e.symbol(family)))
	e.n++
	if e.keepLocal {
		ls := labels.FromStrings(labels.MetricName, family)
		e.keepSample(&Sample{Labels: ls}, ls.Hash()|1, false)
		e.localBuf[len(e.localBuf)-1].Rare = &LocalRare{Meta: m, MetaOnly: true}
	}
	e.body = appendMetadataSeries(e.body, e.refs, md)
}

// remembered returns the remembered series ref with labels ls, adding it
// if it is new or its reference collides with another label set's.
func (e *MetricsEncoder) remembered(ref uint64, ls labels.Labels) *seriesSymbols {
	if i := e.next; i < len(e.series) {
		if ss := &e.series[i]; ss.ref == ref && labels.Equal(ss.ls, ls) {
			e.next = i + 1
			ss.used = e.gen
			return ss
		}
	}
	if i, ok := e.seriesIdx[ref]; ok {
		if ss := &e.series[i]; labels.Equal(ss.ls, ls) {
			e.next = int(i) + 1
			ss.used = e.gen
			return ss
		}
	}
	start := uint32(len(e.idArena))
	ls.Range(func(l labels.Label) {
		e.idArena = append(e.idArena, e.keep(l.Name), e.keep(l.Value))
	})
	i := len(e.series)
	e.series = append(e.series, seriesSymbols{ref: ref, ls: ls, ids: start, nids: uint32(len(e.idArena)) - start, used: e.gen})
	e.seriesIdx[ref] = int32(i)
	e.next = i + 1
	return &e.series[i]
}

// Wire tags (field number << 3 | wire type) of the fields written by hand.
const (
	tagRequestSymbols    = 4<<3 | 2
	tagRequestTimeseries = 5<<3 | 2
	tagSeriesLabelsRefs  = 1<<3 | 2
	tagSeriesSamples     = 2<<3 | 2
	tagSeriesMetadata    = 5<<3 | 2
	tagSampleValue       = 1<<3 | 1
	tagSampleTimestamp   = 2<<3 | 0
	tagSampleStart       = 3<<3 | 0
	tagMetadataType      = 1<<3 | 0
	tagMetadataHelp      = 3<<3 | 0
	tagMetadataUnit      = 4<<3 | 0
)

// appendFloatSeries appends one TimeSeries with one float sample, as the
// generated code would marshal it (zero fields left out), except that a
// negative-zero value keeps its sign. refs are the series' label refs,
// varint-encoded.
func appendFloatSeries(dst []byte, refs []byte, st, t int64, v float64, md writev2.Metadata) []byte {
	refsLen := len(refs)
	sampleLen := sampleSize(st, t, v)
	mdLen := metadataSize(md)
	tsLen := 1 + uvarintLen(uint64(sampleLen)) + sampleLen
	if len(refs) > 0 {
		tsLen += 1 + uvarintLen(uint64(refsLen)) + refsLen
	}
	if mdLen > 0 {
		tsLen += 1 + uvarintLen(uint64(mdLen)) + mdLen
	}

	dst = slices.Grow(dst, 1+binary.MaxVarintLen64+tsLen)
	dst = append(dst, tagRequestTimeseries)
	dst = appendUvarint(dst, uint64(tsLen))
	if len(refs) > 0 {
		dst = append(dst, tagSeriesLabelsRefs)
		dst = appendUvarint(dst, uint64(refsLen))
		dst = append(dst, refs...)
	}
	dst = appendSample(dst, sampleLen, st, t, v)
	if mdLen > 0 {
		dst = appendMetadata(dst, mdLen, md)
	}
	return dst
}

// metadataSize is the encoded size of a Metadata message (without its tag
// and length), zero fields left out.
func metadataSize(md writev2.Metadata) int {
	n := 0
	if md.Type != 0 {
		n += 1 + uvarintLen(uint64(md.Type))
	}
	if md.HelpRef != 0 {
		n += 1 + uvarintLen(uint64(md.HelpRef))
	}
	if md.UnitRef != 0 {
		n += 1 + uvarintLen(uint64(md.UnitRef))
	}
	return n
}

// appendMetadata appends a TimeSeries' Metadata field of size
// metadataSize(md).
func appendMetadata(dst []byte, size int, md writev2.Metadata) []byte {
	dst = append(dst, tagSeriesMetadata)
	dst = appendUvarint(dst, uint64(size))
	if md.Type != 0 {
		dst = append(dst, tagMetadataType)
		dst = appendUvarint(dst, uint64(md.Type))
	}
	if md.HelpRef != 0 {
		dst = append(dst, tagMetadataHelp)
		dst = appendUvarint(dst, uint64(md.HelpRef))
	}
	if md.UnitRef != 0 {
		dst = append(dst, tagMetadataUnit)
		dst = appendUvarint(dst, uint64(md.UnitRef))
	}
	return dst
}

// appendMetadataSeries appends one TimeSeries holding label refs (as
// varints) and metadata, without samples: receivers tell a family's
// metadata entry by its having no samples.
func appendMetadataSeries(dst []byte, refs []byte, md writev2.Metadata) []byte {
	mdLen := metadataSize(md)
	tsLen := 1 + uvarintLen(uint64(len(refs))) + len(refs) + 1 + uvarintLen(uint64(mdLen)) + mdLen
	dst = append(dst, tagRequestTimeseries)
	dst = appendUvarint(dst, uint64(tsLen))
	dst = append(dst, tagSeriesLabelsRefs)
	dst = appendUvarint(dst, uint64(len(refs)))
	dst = append(dst, refs...)
	return appendMetadata(dst, mdLen, md)
}

// sampleSize is the encoded size of a Sample message (without its tag and
// length).
func sampleSize(st, t int64, v float64) int {
	n := 0
	if math.Float64bits(v) != 0 {
		n += 9
	}
	if t != 0 {
		n += 1 + uvarintLen(uint64(t))
	}
	if st != 0 {
		n += 1 + uvarintLen(uint64(st))
	}
	return n
}

// appendSample appends a TimeSeries' Samples field holding one sample of
// size sampleSize(st, t, v). Unlike the generated code, it writes a
// negative-zero value, so that the value's sign survives.
func appendSample(dst []byte, size int, st, t int64, v float64) []byte {
	dst = append(dst, tagSeriesSamples)
	dst = appendUvarint(dst, uint64(size))
	if vb := math.Float64bits(v); vb != 0 {
		dst = append(dst, tagSampleValue)
		dst = binary.LittleEndian.AppendUint64(dst, vb)
	}
	if t != 0 {
		dst = append(dst, tagSampleTimestamp)
		dst = appendUvarint(dst, uint64(t))
	}
	if st != 0 {
		dst = append(dst, tagSampleStart)
		dst = appendUvarint(dst, uint64(st))
	}
	return dst
}

// appendGeneric writes a histogram sample or a sample with exemplars with
// the generated marshaller: these are rare, and their messages are not.
func (e *MetricsEncoder) appendGeneric(s *Sample, md writev2.Metadata) {
	ts := &e.ts
	ts.LabelsRefs = appendDecodedRefs(ts.LabelsRefs[:0], e.refs)
	ts.Samples = ts.Samples[:0]
	ts.Histograms = ts.Histograms[:0]
	ts.Metadata = md
	switch {
	case s.FH != nil:
		ts.Histograms = append(ts.Histograms, writev2.FromFloatHistogram(s.ST, s.T, s.FH))
	case s.H != nil:
		ts.Histograms = append(ts.Histograms, writev2.FromIntHistogram(s.ST, s.T, s.H))
	}
	// A float sample is written after the generated fields (fields may
	// come in any order), by hand, as appendFloatSeries writes it.
	sampleLen := -1
	if s.H == nil && s.FH == nil {
		sampleLen = sampleSize(s.ST, s.T, s.V)
	}
	n := 0
	for i := range s.Exemplars {
		ex := &s.Exemplars[i]
		var refs []uint32
		if n < len(ts.Exemplars) {
			refs = ts.Exemplars[n].LabelsRefs[:0]
		} else {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{})
		}
		ts.Exemplars[n] = writev2.Exemplar{LabelsRefs: e.labelRefs(refs, ex.Labels), Value: ex.Value, Timestamp: ex.Ts}
		n++
	}
	full := ts.Exemplars
	ts.Exemplars = full[:n]
	size := ts.Size()
	e.tsBuf = slices.Grow(e.tsBuf[:0], size)[:size]
	// Cannot fail: the buffer is exactly Size() long.
	_, _ = ts.MarshalToSizedBuffer(e.tsBuf)
	ts.Exemplars = full
	total := size
	if sampleLen >= 0 {
		total += 1 + uvarintLen(uint64(sampleLen)) + sampleLen
	}
	e.body = append(e.body, tagRequestTimeseries)
	e.body = binary.AppendUvarint(e.body, uint64(total))
	e.body = append(e.body, e.tsBuf...)
	if sampleLen >= 0 {
		e.body = appendSample(e.body, sampleLen, s.ST, s.T, s.V)
	}
}

// appendDecodedRefs appends the varints in b (written by appendUvarint).
func appendDecodedRefs(dst []uint32, b []byte) []uint32 {
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		dst = append(dst, uint32(v))
		b = b[n:]
	}
	return dst
}

// appendUvarint is binary.AppendUvarint with the one-byte case inlined:
// label refs and sample fields are mostly small.
func appendUvarint(dst []byte, v uint64) []byte {
	if v < 0x80 {
		return append(dst, byte(v))
	}
	return binary.AppendUvarint(dst, v)
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// Encode compresses the batch, appending to dst[:0]. The symbol table is
// written after the series (protobuf fields may come in any order, and
// decoders resolve refs once the whole request is read), so the series
// need not be copied behind it.
func (e *MetricsEncoder) Encode(dst []byte) ([]byte, error) {
	n := len(e.body)
	raw := e.body
	for _, str := range e.symbols {
		raw = append(raw, tagRequestSymbols)
		raw = binary.AppendUvarint(raw, uint64(len(str)))
		raw = append(raw, str...)
	}
	e.body = raw[:n]
	return compress(e.comp, dst[:0], raw)
}

// Reset empties the batch, keeping its buffers and the interned series.
func (e *MetricsEncoder) Reset() {
	e.n = 0
	e.samples = 0
	e.body = e.body[:0]
	clear(e.localBuf) // drop label and histogram references
	e.localBuf = e.localBuf[:0]
	if len(e.series) > e.maxSeries || len(e.strs) > 4*e.maxSeries+1024 || len(e.idArena) > math.MaxUint32/2 || e.gen == math.MaxUint32 || e.mostlyGone() {
		e.resetKept()
	}
	e.gen++
	e.now = time.Now().Unix()
	// Symbol 0 of every batch is "", as the format requires.
	e.slots[0] = symbolSlot{gen: e.gen}
	e.symbols = append(e.symbols[:0], "")
}

// goneAfter is how many batches a remembered series may go unused before
// it counts as gone (its target or series went away).
const goneAfter = 128

// mostlyGone reports, every goneAfter batches, whether more than half the
// remembered series are gone: series churn would otherwise keep their
// label sets alive until maxSeries is reached. Rebuilding costs the live
// series one interning each, as after a restart.
func (e *MetricsEncoder) mostlyGone() bool {
	if e.gen%goneAfter != 0 || len(e.series) < 1024 {
		return false
	}
	gone := 0
	for i := range e.series {
		if e.gen-e.series[i].used > goneAfter {
			gone++
		}
	}
	return 2*gone > len(e.series)
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
