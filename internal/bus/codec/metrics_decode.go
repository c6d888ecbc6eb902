package codec

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// The remote-write 2.0 parser below reads io.prometheus.write.v2.Request
// straight from the wire into reused structs: symbols are strings that point
// into the decompressed buffer and every repeated field reuses the slices of
// the previous batch, so decoding a batch of float samples allocates nothing
// once the buffers have grown. Native histograms, rare next to floats, go
// through the generated unmarshaller.

var errTruncated = errors.New("truncated protobuf")

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

func readVarint(b []byte) (uint64, int, error) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << (7 * uint(i))
		if c < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errTruncated
}

// field reads one field header and, for length-delimited fields, the body.
// It returns the field number, wire type, the scalar value (varint or fixed)
// or the body, and the bytes consumed.
func field(b []byte) (num int, typ int, val uint64, body []byte, n int, err error) {
	tag, n, err := readVarint(b)
	if err != nil {
		return 0, 0, 0, nil, 0, err
	}
	num, typ = int(tag>>3), int(tag&7)
	if num <= 0 {
		return 0, 0, 0, nil, 0, fmt.Errorf("invalid field number %d", num)
	}
	switch typ {
	case wireVarint:
		v, m, err := readVarint(b[n:])
		if err != nil {
			return 0, 0, 0, nil, 0, err
		}
		return num, typ, v, nil, n + m, nil
	case wireFixed64:
		if len(b) < n+8 {
			return 0, 0, 0, nil, 0, errTruncated
		}
		v := uint64(b[n]) | uint64(b[n+1])<<8 | uint64(b[n+2])<<16 | uint64(b[n+3])<<24 |
			uint64(b[n+4])<<32 | uint64(b[n+5])<<40 | uint64(b[n+6])<<48 | uint64(b[n+7])<<56
		return num, typ, v, nil, n + 8, nil
	case wireFixed32:
		if len(b) < n+4 {
			return 0, 0, 0, nil, 0, errTruncated
		}
		v := uint64(b[n]) | uint64(b[n+1])<<8 | uint64(b[n+2])<<16 | uint64(b[n+3])<<24
		return num, typ, v, nil, n + 4, nil
	case wireBytes:
		l, m, err := readVarint(b[n:])
		if err != nil {
			return 0, 0, 0, nil, 0, err
		}
		n += m
		if l > uint64(len(b)-n) {
			return 0, 0, 0, nil, 0, errTruncated
		}
		return num, typ, 0, b[n : n+int(l)], n + int(l), nil
	}
	return 0, 0, 0, nil, 0, fmt.Errorf("unsupported wire type %d", typ)
}

// appendRefs decodes a uint32 list field, packed or not.
func appendRefs(dst []uint32, typ int, val uint64, body []byte) ([]uint32, error) {
	if typ == wireVarint {
		return append(dst, uint32(val)), nil
	}
	if typ != wireBytes {
		return dst, fmt.Errorf("label refs: wire type %d", typ)
	}
	for len(body) > 0 {
		v, n, err := readVarint(body)
		if err != nil {
			return dst, err
		}
		dst = append(dst, uint32(v))
		body = body[n:]
	}
	return dst, nil
}

// unmarshalRequest parses raw into req, reusing req's slices. Symbols alias
// raw, so raw must not change while req is in use.
func unmarshalRequest(req *writev2.Request, raw []byte) error {
	req.Symbols = req.Symbols[:0]
	full := req.Timeseries
	n := 0
	for len(raw) > 0 {
		num, typ, _, body, m, err := field(raw)
		if err != nil {
			return err
		}
		raw = raw[m:]
		switch {
		case num == 4 && typ == wireBytes:
			req.Symbols = append(req.Symbols, unsafe.String(unsafe.SliceData(body), len(body)))
		case num == 5 && typ == wireBytes:
			if n == len(full) {
				full = append(full, writev2.TimeSeries{})
			}
			if err := unmarshalSeries(&full[n], body); err != nil {
				req.Timeseries = full[:0]
				return fmt.Errorf("timeseries %d: %w", n, err)
			}
			n++
		}
	}
	req.Timeseries = full[:n]
	return nil
}

func unmarshalSeries(ts *writev2.TimeSeries, b []byte) error {
	ts.LabelsRefs = ts.LabelsRefs[:0]
	ts.Samples = ts.Samples[:0]
	ts.Histograms = ts.Histograms[:0]
	exemplars := ts.Exemplars[:0]
	ts.Metadata = writev2.Metadata{}
	for len(b) > 0 {
		num, typ, val, body, m, err := field(b)
		if err != nil {
			return err
		}
		b = b[m:]
		switch num {
		case 1:
			if ts.LabelsRefs, err = appendRefs(ts.LabelsRefs, typ, val, body); err != nil {
				return err
			}
		case 2:
			if typ != wireBytes {
				return errors.New("sample: wrong wire type")
			}
			s, err := unmarshalSample(body)
			if err != nil {
				return fmt.Errorf("sample: %w", err)
			}
			ts.Samples = append(ts.Samples, s)
		case 3:
			if typ != wireBytes {
				return errors.New("histogram: wrong wire type")
			}
			ts.Histograms = append(ts.Histograms, writev2.Histogram{})
			if err := ts.Histograms[len(ts.Histograms)-1].Unmarshal(body); err != nil {
				return fmt.Errorf("histogram: %w", err)
			}
		case 4:
			if typ != wireBytes {
				return errors.New("exemplar: wrong wire type")
			}
			var refs []uint32
			if len(exemplars) < cap(exemplars) {
				refs = exemplars[:len(exemplars)+1][len(exemplars)].LabelsRefs[:0]
			}
			e := writev2.Exemplar{LabelsRefs: refs}
			if err := unmarshalExemplar(&e, body); err != nil {
				return fmt.Errorf("exemplar: %w", err)
			}
			exemplars = append(exemplars, e)
		case 5:
			if typ != wireBytes {
				return errors.New("metadata: wrong wire type")
			}
			if err := unmarshalMetadata(&ts.Metadata, body); err != nil {
				return fmt.Errorf("metadata: %w", err)
			}
		}
	}
	ts.Exemplars = exemplars
	return nil
}

func unmarshalSample(b []byte) (writev2.Sample, error) {
	var s writev2.Sample
	for len(b) > 0 {
		num, typ, val, _, m, err := field(b)
		if err != nil {
			return s, err
		}
		b = b[m:]
		switch {
		case num == 1 && typ == wireFixed64:
			s.Value = math.Float64frombits(val)
		case num == 2 && typ == wireVarint:
			s.Timestamp = int64(val)
		case num == 3 && typ == wireVarint:
			s.StartTimestamp = int64(val)
		}
	}
	return s, nil
}

func unmarshalExemplar(e *writev2.Exemplar, b []byte) error {
	for len(b) > 0 {
		num, typ, val, body, m, err := field(b)
		if err != nil {
			return err
		}
		b = b[m:]
		switch {
		case num == 1:
			if e.LabelsRefs, err = appendRefs(e.LabelsRefs, typ, val, body); err != nil {
				return err
			}
		case num == 2 && typ == wireFixed64:
			e.Value = math.Float64frombits(val)
		case num == 3 && typ == wireVarint:
			e.Timestamp = int64(val)
		}
	}
	return nil
}

func unmarshalMetadata(md *writev2.Metadata, b []byte) error {
	for len(b) > 0 {
		num, typ, val, _, m, err := field(b)
		if err != nil {
			return err
		}
		b = b[m:]
		if typ != wireVarint {
			continue
		}
		switch num {
		case 1:
			md.Type = writev2.Metadata_MetricType(val)
		case 3:
			md.HelpRef = uint32(val)
		case 4:
			md.UnitRef = uint32(val)
		}
	}
	return nil
}
