package loki

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"
)

// decodeProtobuf decodes Loki's logproto.PushRequest (snappy already
// undone):
//
//	message PushRequest { repeated StreamAdapter streams = 1; }
//	message StreamAdapter { string labels = 1; repeated EntryAdapter entries = 2; uint64 hash = 3; }
//	message EntryAdapter { google.protobuf.Timestamp timestamp = 1; string line = 2;
//	                       repeated LabelPairAdapter structuredMetadata = 3; }
//	message LabelPairAdapter { string name = 1; string value = 2; }
//
// As the generated decoders: fields in any order, unknown fields skipped,
// the last value of a singular field wins, a known field with the wrong
// wire type is an error. An entry must have a timestamp (gogo's non-null
// stdtime would give year 1, which Loki refuses as too old).
func (d *decoder) decodeProtobuf(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protoError("PushRequest", n)
		}
		b = b[n:]
		if num != 1 {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protoError("PushRequest", n)
			}
			b = b[n:]
			continue
		}
		m, n, err := consumeMessage("PushRequest", num, typ, b)
		if err != nil {
			return err
		}
		b = b[n:]
		if err := d.decodeStream(m); err != nil {
			return fmt.Errorf("stream %d: %w", len(d.streams), err)
		}
	}
	return nil
}

func protoError(msg string, n int) error {
	return fmt.Errorf("%w: %s: %v", errMalformed, msg, protowire.ParseError(n))
}

// consumeMessage reads a length-delimited field, refusing another wire
// type.
func consumeMessage(msg string, num protowire.Number, typ protowire.Type, b []byte) ([]byte, int, error) {
	if typ != protowire.BytesType {
		return nil, 0, fmt.Errorf("%w: %s field %d has wire type %d, want %d", errMalformed, msg, num, typ, protowire.BytesType)
	}
	m, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return nil, 0, protoError(msg, n)
	}
	return m, n, nil
}

func consumeVarint(msg string, num protowire.Number, typ protowire.Type, b []byte) (uint64, int, error) {
	if typ != protowire.VarintType {
		return 0, 0, fmt.Errorf("%w: %s field %d has wire type %d, want %d", errMalformed, msg, num, typ, protowire.VarintType)
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, protoError(msg, n)
	}
	return v, n, nil
}

func (d *decoder) decodeStream(b []byte) error {
	lo := len(d.entries)
	var lbls []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protoError("StreamAdapter", n)
		}
		b = b[n:]
		var m []byte
		var err error
		switch num {
		case 1:
			lbls, n, err = consumeMessage("StreamAdapter", num, typ, b)
		case 2:
			if m, n, err = consumeMessage("StreamAdapter", num, typ, b); err == nil {
				if err = d.decodeEntry(m); err != nil {
					err = fmt.Errorf("entry %d: %w", len(d.entries)-lo, err)
				}
			}
		case 3:
			_, n, err = consumeVarint("StreamAdapter", num, typ, b)
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				err = protoError("StreamAdapter", n)
			}
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	ls, err := d.parseLabels(lbls)
	if err != nil {
		return err
	}
	return d.addStream(ls, lo)
}

func (d *decoder) decodeEntry(b []byte) error {
	var (
		ts    int64
		hasTS bool
		line  string
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protoError("EntryAdapter", n)
		}
		b = b[n:]
		var m []byte
		var err error
		switch num {
		case 1:
			if m, n, err = consumeMessage("EntryAdapter", num, typ, b); err == nil {
				ts, err = decodeTimestamp(m)
				hasTS = true
			}
		case 2:
			if m, n, err = consumeMessage("EntryAdapter", num, typ, b); err == nil {
				line = yolo(m)
			}
		case 3:
			if m, n, err = consumeMessage("EntryAdapter", num, typ, b); err == nil {
				var l labels.Label
				if l, err = decodeLabelPair(m); err == nil {
					d.meta = append(d.meta, l)
				}
			}
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				err = protoError("EntryAdapter", n)
			}
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if !hasTS {
		return fmt.Errorf("%w: the entry has no timestamp", errMalformed)
	}
	return d.addEntry(ts, line)
}

// Bounds of a google.protobuf.Timestamp that fits int64 nanoseconds
// (1677-09-21 to 2262-04-11).
const (
	nsPerSecond  = 1_000_000_000
	maxTSSeconds = math.MaxInt64 / nsPerSecond
	minTSSeconds = math.MinInt64 / nsPerSecond
)

// decodeTimestamp decodes a google.protobuf.Timestamp into Unix ns.
func decodeTimestamp(b []byte) (int64, error) {
	var secs int64
	var nanos int32
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, protoError("Timestamp", n)
		}
		b = b[n:]
		var v uint64
		var err error
		switch num {
		case 1:
			v, n, err = consumeVarint("Timestamp", num, typ, b)
			secs = int64(v)
		case 2:
			v, n, err = consumeVarint("Timestamp", num, typ, b)
			nanos = int32(v)
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				err = protoError("Timestamp", n)
			}
		}
		if err != nil {
			return 0, err
		}
		b = b[n:]
	}
	if nanos < 0 || nanos >= nsPerSecond {
		return 0, fmt.Errorf("%w: timestamp nanos %d out of range [0, 1e9)", errMalformed, nanos)
	}
	if secs > maxTSSeconds || secs < minTSSeconds || (secs == maxTSSeconds && int64(nanos) > math.MaxInt64-secs*nsPerSecond) {
		return 0, fmt.Errorf("%w: timestamp %d.%09ds is outside what Unix nanoseconds can hold", errMalformed, secs, nanos)
	}
	return secs*nsPerSecond + int64(nanos), nil
}

// decodeLabelPair decodes a LabelPairAdapter; the strings alias b.
func decodeLabelPair(b []byte) (labels.Label, error) {
	var l labels.Label
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return l, protoError("LabelPairAdapter", n)
		}
		b = b[n:]
		var m []byte
		var err error
		switch num {
		case 1, 2:
			if m, n, err = consumeMessage("LabelPairAdapter", num, typ, b); err == nil {
				if num == 1 {
					l.Name = yolo(m)
				} else {
					l.Value = yolo(m)
				}
			}
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				err = protoError("LabelPairAdapter", n)
			}
		}
		if err != nil {
			return l, err
		}
		b = b[n:]
	}
	return l, nil
}
