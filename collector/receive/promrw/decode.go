package promrw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The decoders below read remote write 1.0 (prometheus.WriteRequest) and
// 2.0 (io.prometheus.write.v2.Request) bodies straight into flat, reused
// slices, with strings that alias the body: a request of any size costs
// no allocation per label or sample once the pools are warm. The
// generated gogo decoders allocate a string per label name and value,
// which dominates the cost of a remote write request. Native histograms,
// rare and intricate, are still handed to the generated decoders.
//
// Semantics follow the protobuf encoding rules, as the generated code
// does: fields in any order, unknown fields skipped, repeated scalars
// packed or not, the last value of a repeated singular field wins, a known
// field with the wrong wire type is an error. FuzzDecodeV1/V2 check this
// against the generated decoders.

// errMalformed wraps every decoding error: the request is not valid
// protobuf of the expected message.
var errMalformed = errors.New("malformed protobuf")

type sample struct {
	t, st int64
	v     float64
}

type exemplarRef struct {
	lo, hi int32 // v1: into request.exLabels; v2: into request.exRefs
	v      float64
	t      int64
}

type seriesMeta struct {
	typ        model.MetricType
	help, unit string // v1: aliases the body
	helpRef    uint32 // v2
	unitRef    uint32
	set        bool
}

type series struct {
	lo, hi   int32 // labels: v1 into request.labels, v2 into request.refs
	sLo, sHi int32 // request.samples
	hLo, hHi int32 // request.histsV1 or request.histsV2
	eLo, eHi int32 // request.exemplars
	meta     seriesMeta
}

type familyMeta struct {
	family string
	meta   seriesMeta
}

// request is one decoded body. Its strings alias the body, so it is only
// valid while the body is; reset keeps capacity for the next request.
type request struct {
	v2        bool
	symbols   []string
	series    []series
	labels    []labels.Label
	refs      []uint32
	exLabels  []labels.Label
	exRefs    []uint32
	samples   []sample
	exemplars []exemplarRef
	histsV1   []prompb.Histogram
	histsV2   []writev2.Histogram
	metadata  []familyMeta
}

func (r *request) reset() {
	clear(r.symbols)
	clear(r.labels)
	clear(r.exLabels)
	clear(r.metadata)
	r.symbols = r.symbols[:0]
	r.series = r.series[:0]
	r.labels = r.labels[:0]
	r.refs = r.refs[:0]
	r.exLabels = r.exLabels[:0]
	r.exRefs = r.exRefs[:0]
	r.samples = r.samples[:0]
	r.exemplars = r.exemplars[:0]
	r.histsV1 = r.histsV1[:0]
	r.histsV2 = r.histsV2[:0]
	r.metadata = r.metadata[:0]
}

func (r *request) histograms() int {
	if r.v2 {
		return len(r.histsV2)
	}
	return len(r.histsV1)
}

// yolo returns b as a string without copying; the string is only valid as
// long as b is unchanged.
func yolo(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// Wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

var (
	errEOF        = fmt.Errorf("%w: unexpected end of input", errMalformed)
	errOverflow   = fmt.Errorf("%w: varint overflows 64 bits", errMalformed)
	errNegLength  = fmt.Errorf("%w: negative length", errMalformed)
	errGroupEnd   = fmt.Errorf("%w: unexpected end of group", errMalformed)
	errIllegalTag = fmt.Errorf("%w: illegal tag", errMalformed)
)

// varint reads a base-128 varint of at most 10 bytes. Like the generated
// decoders, bits beyond 64 in a 10th byte are dropped, not refused.
func varint(b []byte) (uint64, []byte, error) {
	if len(b) > 0 && b[0] < 0x80 { // tags and short lengths: most varints
		return uint64(b[0]), b[1:], nil
	}
	var v uint64
	for i := 0; ; i++ {
		if i == 10 {
			return 0, nil, errOverflow
		}
		if i >= len(b) {
			return 0, nil, errEOF
		}
		c := b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, b[i+1:], nil
		}
	}
}

// field reads one tag: the field number and wire type. Numbers are
// truncated to 32 bits, as the generated decoders do.
func field(b []byte) (num int32, typ int, rest []byte, err error) {
	v, rest, err := varint(b)
	if err != nil {
		return 0, 0, nil, err
	}
	num, typ = int32(v>>3), int(v&7)
	if typ == 4 {
		return 0, 0, nil, errGroupEnd
	}
	if num <= 0 {
		return 0, 0, nil, errIllegalTag
	}
	return num, typ, rest, nil
}

func wrongType(msg string, num int32, typ int) error {
	return fmt.Errorf("%w: %s field %d has wire type %d", errMalformed, msg, num, typ)
}

func consumeBytes(b []byte) ([]byte, []byte, error) {
	v, rest, err := varint(b)
	if err != nil {
		return nil, nil, err
	}
	n := int(v)
	if n < 0 {
		return nil, nil, errNegLength
	}
	if n > len(rest) {
		return nil, nil, errEOF
	}
	return rest[:n], rest[n:], nil
}

func consumeFixed64(b []byte) (uint64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, errEOF
	}
	return binary.LittleEndian.Uint64(b), b[8:], nil
}

// skip consumes the value of an unknown field whose tag was just read.
// Groups are skipped to their matching depth, without comparing field
// numbers, as the generated decoders do.
func skip(b []byte, typ int) ([]byte, error) {
	depth := 0
	for {
		var err error
		switch typ {
		case wireVarint:
			_, b, err = varint(b)
		case wireFixed64:
			if len(b) < 8 {
				return nil, errEOF
			}
			b = b[8:]
		case wireBytes:
			_, b, err = consumeBytes(b)
		case 3:
			depth++
		case 4:
			if depth == 0 {
				return nil, errGroupEnd
			}
			depth--
		case wireFixed32:
			if len(b) < 4 {
				return nil, errEOF
			}
			b = b[4:]
		default:
			return nil, fmt.Errorf("%w: illegal wire type %d", errMalformed, typ)
		}
		if err != nil {
			return nil, err
		}
		if depth == 0 {
			return b, nil
		}
		var v uint64
		if v, b, err = varint(b); err != nil {
			return nil, err
		}
		typ = int(v & 7)
	}
}

// decodeV1 decodes a prometheus.WriteRequest.
func (r *request) decodeV1(b []byte) error {
	r.v2 = false
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == wireBytes:
			var m []byte
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			if err := r.decodeSeriesV1(m); err != nil {
				return fmt.Errorf("timeseries %d: %w", len(r.series), err)
			}
		case num == 3 && typ == wireBytes:
			var m []byte
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			if err := r.decodeMetadataV1(m); err != nil {
				return fmt.Errorf("metadata %d: %w", len(r.metadata), err)
			}
		case num == 1 || num == 3:
			return wrongType("WriteRequest", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	return nil
}

func (r *request) decodeSeriesV1(b []byte) error {
	s := series{
		lo: int32(len(r.labels)), sLo: int32(len(r.samples)),
		hLo: int32(len(r.histsV1)), eLo: int32(len(r.exemplars)),
	}
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		if typ != wireBytes && num >= 1 && num <= 4 {
			return wrongType("TimeSeries", num, typ)
		}
		var m []byte
		switch num {
		case 1:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			name, value, err := decodeLabel(m)
			if err != nil {
				return err
			}
			r.labels = append(r.labels, labels.Label{Name: name, Value: value})
		case 2:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			smp, err := decodeSampleV1(m)
			if err != nil {
				return err
			}
			r.samples = append(r.samples, smp)
		case 3:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			if err := r.decodeExemplarV1(m); err != nil {
				return err
			}
		case 4:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			r.histsV1 = extend(r.histsV1)
			h := &r.histsV1[len(r.histsV1)-1]
			*h = prompb.Histogram{
				NegativeSpans: h.NegativeSpans[:0], PositiveSpans: h.PositiveSpans[:0],
			}
			if err := h.Unmarshal(m); err != nil {
				return fmt.Errorf("%w: histogram: %v", errMalformed, err)
			}
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	s.hi = int32(len(r.labels))
	s.sHi, s.hHi, s.eHi = int32(len(r.samples)), int32(len(r.histsV1)), int32(len(r.exemplars))
	r.series = append(r.series, s)
	return nil
}

// extend grows s by one element, reusing the element's old memory when
// the capacity allows (its slices are reused by the caller).
func extend[T any](s []T) []T {
	if len(s) < cap(s) {
		return s[:len(s)+1]
	}
	var zero T
	return append(s, zero)
}

func decodeLabel(b []byte) (name, value string, err error) {
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return "", "", err
		}
		switch {
		case (num == 1 || num == 2) && typ == wireBytes:
			var v []byte
			if v, rest, err = consumeBytes(rest); err != nil {
				return "", "", err
			}
			if num == 1 {
				name = yolo(v)
			} else {
				value = yolo(v)
			}
		case num == 1 || num == 2:
			return "", "", wrongType("Label", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return "", "", err
			}
		}
		b = rest
	}
	return name, value, nil
}

func decodeSampleV1(b []byte) (sample, error) {
	var s sample
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return s, err
		}
		switch {
		case num == 1 && typ == wireFixed64:
			var v uint64
			if v, rest, err = consumeFixed64(rest); err != nil {
				return s, err
			}
			s.v = math.Float64frombits(v)
		case num == 2 && typ == wireVarint:
			var v uint64
			if v, rest, err = varint(rest); err != nil {
				return s, err
			}
			s.t = int64(v)
		case num == 1 || num == 2:
			return s, wrongType("Sample", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return s, err
			}
		}
		b = rest
	}
	return s, nil
}

func (r *request) decodeExemplarV1(b []byte) error {
	e := exemplarRef{lo: int32(len(r.exLabels))}
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == wireBytes:
			var m []byte
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			name, value, err := decodeLabel(m)
			if err != nil {
				return err
			}
			r.exLabels = append(r.exLabels, labels.Label{Name: name, Value: value})
		case num == 2 && typ == wireFixed64:
			var v uint64
			if v, rest, err = consumeFixed64(rest); err != nil {
				return err
			}
			e.v = math.Float64frombits(v)
		case num == 3 && typ == wireVarint:
			var v uint64
			if v, rest, err = varint(rest); err != nil {
				return err
			}
			e.t = int64(v)
		case num >= 1 && num <= 3:
			return wrongType("Exemplar", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	e.hi = int32(len(r.exLabels))
	r.exemplars = append(r.exemplars, e)
	return nil
}

func (r *request) decodeMetadataV1(b []byte) error {
	var m familyMeta
	m.meta.set = true
	m.meta.typ = model.MetricTypeUnknown
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1 && typ == wireVarint:
			var v uint64
			if v, rest, err = varint(rest); err != nil {
				return err
			}
			m.meta.typ = metricType(int32(v))
		case (num == 2 || num == 4 || num == 5) && typ == wireBytes:
			var v []byte
			if v, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			switch num {
			case 2:
				m.family = yolo(v)
			case 4:
				m.meta.help = yolo(v)
			case 5:
				m.meta.unit = yolo(v)
			}
		case num == 1 || num == 2 || num == 4 || num == 5:
			return wrongType("MetricMetadata", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	r.metadata = append(r.metadata, m)
	return nil
}

// metricType maps the MetricType enums of both versions (they share
// their numbers) to Prometheus metric types.
func metricType(v int32) model.MetricType {
	switch v {
	case 1:
		return model.MetricTypeCounter
	case 2:
		return model.MetricTypeGauge
	case 3:
		return model.MetricTypeHistogram
	case 4:
		return model.MetricTypeGaugeHistogram
	case 5:
		return model.MetricTypeSummary
	case 6:
		return model.MetricTypeInfo
	case 7:
		return model.MetricTypeStateset
	default:
		return model.MetricTypeUnknown
	}
}

// decodeV2 decodes an io.prometheus.write.v2.Request. Label references
// are kept as numbers: the symbols may follow the series on the wire, and
// a bad reference spoils one series, not the request.
func (r *request) decodeV2(b []byte) error {
	r.v2 = true
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 4 && typ == wireBytes:
			var v []byte
			if v, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			r.symbols = append(r.symbols, yolo(v))
		case num == 5 && typ == wireBytes:
			var m []byte
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			if err := r.decodeSeriesV2(m); err != nil {
				return fmt.Errorf("timeseries %d: %w", len(r.series), err)
			}
		case num == 4 || num == 5:
			return wrongType("Request", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	return nil
}

// appendRefs decodes a repeated uint32 field, packed or not.
func appendRefs(dst []uint32, b []byte, typ int) ([]uint32, []byte, error) {
	switch typ {
	case wireVarint:
		v, rest, err := varint(b)
		if err != nil {
			return dst, nil, err
		}
		return append(dst, uint32(v)), rest, nil
	case wireBytes:
		packed, rest, err := consumeBytes(b)
		if err != nil {
			return dst, nil, err
		}
		for len(packed) > 0 {
			var v uint64
			if v, packed, err = varint(packed); err != nil {
				return dst, nil, err
			}
			dst = append(dst, uint32(v))
		}
		return dst, rest, nil
	}
	return dst, nil, fmt.Errorf("%w: labels_refs has wire type %d", errMalformed, typ)
}

func (r *request) decodeSeriesV2(b []byte) error {
	s := series{
		lo: int32(len(r.refs)), sLo: int32(len(r.samples)),
		hLo: int32(len(r.histsV2)), eLo: int32(len(r.exemplars)),
	}
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		var m []byte
		switch {
		case num == 1:
			if r.refs, rest, err = appendRefs(r.refs, rest, typ); err != nil {
				return err
			}
		case num >= 2 && num <= 5 && typ != wireBytes:
			return wrongType("TimeSeries", num, typ)
		case num == 2:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			smp, err := decodeSampleV2(m)
			if err != nil {
				return err
			}
			r.samples = append(r.samples, smp)
		case num == 3:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			r.histsV2 = extend(r.histsV2)
			h := &r.histsV2[len(r.histsV2)-1]
			*h = writev2.Histogram{
				NegativeSpans: h.NegativeSpans[:0], PositiveSpans: h.PositiveSpans[:0],
			}
			if err := h.Unmarshal(m); err != nil {
				return fmt.Errorf("%w: histogram: %v", errMalformed, err)
			}
		case num == 4:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			if err := r.decodeExemplarV2(m); err != nil {
				return err
			}
		case num == 5:
			if m, rest, err = consumeBytes(rest); err != nil {
				return err
			}
			// A repeated singular message merges into the previous one.
			if err := decodeMetadataV2(&s.meta, m); err != nil {
				return err
			}
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	s.hi = int32(len(r.refs))
	s.sHi, s.hHi, s.eHi = int32(len(r.samples)), int32(len(r.histsV2)), int32(len(r.exemplars))
	r.series = append(r.series, s)
	return nil
}

func decodeSampleV2(b []byte) (sample, error) {
	var s sample
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return s, err
		}
		switch {
		case num == 1 && typ == wireFixed64:
			var v uint64
			if v, rest, err = consumeFixed64(rest); err != nil {
				return s, err
			}
			s.v = math.Float64frombits(v)
		case (num == 2 || num == 3) && typ == wireVarint:
			var v uint64
			if v, rest, err = varint(rest); err != nil {
				return s, err
			}
			if num == 2 {
				s.t = int64(v)
			} else {
				s.st = int64(v)
			}
		case num >= 1 && num <= 3:
			return s, wrongType("Sample", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return s, err
			}
		}
		b = rest
	}
	return s, nil
}

func (r *request) decodeExemplarV2(b []byte) error {
	e := exemplarRef{lo: int32(len(r.exRefs))}
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case num == 1:
			if r.exRefs, rest, err = appendRefs(r.exRefs, rest, typ); err != nil {
				return err
			}
		case num == 2 && typ == wireFixed64:
			var v uint64
			if v, rest, err = consumeFixed64(rest); err != nil {
				return err
			}
			e.v = math.Float64frombits(v)
		case num == 3 && typ == wireVarint:
			var v uint64
			if v, rest, err = varint(rest); err != nil {
				return err
			}
			e.t = int64(v)
		case num == 2 || num == 3:
			return wrongType("Exemplar", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	e.hi = int32(len(r.exRefs))
	r.exemplars = append(r.exemplars, e)
	return nil
}

func decodeMetadataV2(m *seriesMeta, b []byte) error {
	if !m.set {
		m.set, m.typ = true, model.MetricTypeUnknown
	}
	for len(b) > 0 {
		num, typ, rest, err := field(b)
		if err != nil {
			return err
		}
		switch {
		case (num == 1 || num == 3 || num == 4) && typ == wireVarint:
			var v uint64
			if v, rest, err = varint(rest); err != nil {
				return err
			}
			switch num {
			case 1:
				m.typ = metricType(int32(v))
			case 3:
				m.helpRef = uint32(v)
			case 4:
				m.unitRef = uint32(v)
			}
		case num == 1 || num == 3 || num == 4:
			return wrongType("Metadata", num, typ)
		default:
			if rest, err = skip(rest, typ); err != nil {
				return err
			}
		}
		b = rest
	}
	return nil
}
