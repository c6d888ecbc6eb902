package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/storage/logs"
)

// Log encodings carried in the Pharos-Encoding header. The payload is an
// OTLP ExportLogsServiceRequest (opentelemetry.proto.collector.logs.v1),
// so anything that reads OTLP reads it: one ResourceLogs per stream, whose
// resource attributes are the stream's labels, with one ScopeLogs holding
// the entries as LogRecords (time_unix_nano, a string body, and the
// structured metadata as string attributes).
const (
	EncodingOTLPLogsSnappy = "otlp-logs+snappy"
	EncodingOTLPLogsZstd   = "otlp-logs+zstd"
)

// OTLP field numbers used here.
const (
	fReqResourceLogs   = 1 // ExportLogsServiceRequest.resource_logs
	fRLResource        = 1 // ResourceLogs.resource
	fRLScopeLogs       = 2 // ResourceLogs.scope_logs
	fResAttributes     = 1 // Resource.attributes
	fSLLogRecords      = 2 // ScopeLogs.log_records
	fLRTime            = 1 // LogRecord.time_unix_nano (fixed64)
	fLRBody            = 5 // LogRecord.body (AnyValue)
	fLRAttributes      = 6 // LogRecord.attributes
	fLRObservedTime    = 11
	fKVKey             = 1 // KeyValue.key
	fKVValue           = 2 // KeyValue.value (AnyValue)
	fAnyString         = 1 // AnyValue.string_value
	fAnyBool           = 2
	fAnyInt            = 3
	fAnyDouble         = 4
	fAnyBytes          = 7
	maxLogsStreamBytes = math.MaxInt32
)

// LogsEncoder writes streams of log entries into one compressed OTLP logs
// request. Entries are written straight into their wire form as they are
// added; a stream's records are buffered only until the stream ends, when
// the ResourceLogs around them (whose length must come first) is written.
type LogsEncoder struct {
	comp    Compression
	body    []byte // finished ResourceLogs entries
	recs    []byte // the current stream's LogRecords
	labels  labels.Labels
	open    bool
	entries int
	lines   int // Σ len(line)
	out     []byte
}

// NewLogsEncoder returns an encoder compressing with c.
func NewLogsEncoder(c Compression) *LogsEncoder { return &LogsEncoder{comp: c} }

// Encoding returns the Pharos-Encoding header value for the encoder's output.
func (e *LogsEncoder) Encoding() string {
	if e.comp == CompressionZstd {
		return EncodingOTLPLogsZstd
	}
	return EncodingOTLPLogsSnappy
}

// Reset drops everything added.
func (e *LogsEncoder) Reset() {
	e.body, e.recs = e.body[:0], e.recs[:0]
	e.labels = labels.EmptyLabels()
	e.open = false
	e.entries, e.lines = 0, 0
}

// Len returns the number of entries added since the last Reset.
func (e *LogsEncoder) Len() int { return e.entries }

// Size returns the uncompressed size so far, a bound for splitting batches.
func (e *LogsEncoder) Size() int { return len(e.body) + len(e.recs) + 64 }

// LineBytes returns the total length of the lines added.
func (e *LogsEncoder) LineBytes() int { return e.lines }

// StartStream begins a stream; the entries added next belong to it. Adding
// to the stream just ended again is fine: a stream may appear more than
// once in a request.
func (e *LogsEncoder) StartStream(ls labels.Labels) {
	e.endStream()
	e.labels = ls
	e.open = true
}

// LogField is a structured metadata field of an entry being encoded.
type LogField struct {
	Name, Value []byte
}

// Add appends an entry to the current stream.
func (e *LogsEncoder) Add(ts int64, line []byte, meta []LogField) {
	metaLen := 0
	for _, f := range meta {
		metaLen += kvSize(len(f.Name), len(f.Value))
	}
	e.beginRecord(ts, line, metaLen)
	for _, f := range meta {
		e.recs = appendStringKV(e.recs, fLRAttributes, f.Name, f.Value)
	}
	e.endRecord(ts)
}

// AddEntry appends a log model entry to the current stream.
func (e *LogsEncoder) AddEntry(en *logs.Entry) {
	metaLen := 0
	en.Metadata.Range(func(l labels.Label) { metaLen += kvSize(len(l.Name), len(l.Value)) })
	e.beginRecord(en.Timestamp, readOnlyBytes(en.Line), metaLen)
	en.Metadata.Range(func(l labels.Label) {
		e.recs = appendStringKV(e.recs, fLRAttributes, readOnlyBytes(l.Name), readOnlyBytes(l.Value))
	})
	e.endRecord(en.Timestamp)
}

// beginRecord writes a LogRecord up to its attributes, which take metaLen
// bytes and come next.
func (e *LogsEncoder) beginRecord(ts int64, line []byte, metaLen int) {
	bodyLen := 1 + protowire.SizeBytes(len(line))
	recLen := 2*(1+8) + 1 + protowire.SizeBytes(bodyLen) + metaLen // two fixed64 times, body
	e.recs = protowire.AppendTag(e.recs, fSLLogRecords, protowire.BytesType)
	e.recs = protowire.AppendVarint(e.recs, uint64(recLen))
	e.recs = protowire.AppendTag(e.recs, fLRTime, protowire.Fixed64Type)
	e.recs = binary.LittleEndian.AppendUint64(e.recs, uint64(ts))
	e.recs = protowire.AppendTag(e.recs, fLRBody, protowire.BytesType)
	e.recs = protowire.AppendVarint(e.recs, uint64(bodyLen))
	e.recs = protowire.AppendTag(e.recs, fAnyString, protowire.BytesType)
	e.recs = protowire.AppendBytes(e.recs, line)
	e.entries++
	e.lines += len(line)
}

func (e *LogsEncoder) endRecord(ts int64) {
	e.recs = protowire.AppendTag(e.recs, fLRObservedTime, protowire.Fixed64Type)
	e.recs = binary.LittleEndian.AppendUint64(e.recs, uint64(ts))
}

// readOnlyBytes views s as bytes without copying; the encoder only reads
// what it is given.
func readOnlyBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func appendStringKV(dst []byte, field protowire.Number, key, value []byte) []byte {
	anyLen := 1 + protowire.SizeBytes(len(value))
	kvLen := 1 + protowire.SizeBytes(len(key)) + 1 + protowire.SizeBytes(anyLen)
	dst = protowire.AppendTag(dst, field, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(kvLen))
	dst = protowire.AppendTag(dst, fKVKey, protowire.BytesType)
	dst = protowire.AppendBytes(dst, key)
	dst = protowire.AppendTag(dst, fKVValue, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(anyLen))
	dst = protowire.AppendTag(dst, fAnyString, protowire.BytesType)
	return protowire.AppendBytes(dst, value)
}

func (e *LogsEncoder) endStream() {
	if !e.open {
		return
	}
	e.open = false
	if len(e.recs) == 0 {
		return
	}
	resLen := 0
	e.labels.Range(func(l labels.Label) {
		resLen += kvSize(len(l.Name), len(l.Value))
	})
	scopeLen := len(e.recs)
	rlLen := 1 + protowire.SizeBytes(resLen) + 1 + protowire.SizeBytes(scopeLen)
	e.body = protowire.AppendTag(e.body, fReqResourceLogs, protowire.BytesType)
	e.body = protowire.AppendVarint(e.body, uint64(rlLen))
	e.body = protowire.AppendTag(e.body, fRLResource, protowire.BytesType)
	e.body = protowire.AppendVarint(e.body, uint64(resLen))
	e.labels.Range(func(l labels.Label) {
		e.body = appendStringKV(e.body, fResAttributes, readOnlyBytes(l.Name), readOnlyBytes(l.Value))
	})
	e.body = protowire.AppendTag(e.body, fRLScopeLogs, protowire.BytesType)
	e.body = protowire.AppendBytes(e.body, e.recs)
	e.recs = e.recs[:0]
}

func kvSize(k, v int) int {
	anyLen := 1 + protowire.SizeBytes(v)
	kvLen := 1 + protowire.SizeBytes(k) + 1 + protowire.SizeBytes(anyLen)
	return 1 + protowire.SizeBytes(kvLen)
}

// Finish returns the compressed request. It stays valid until the next
// call on the encoder.
func (e *LogsEncoder) Finish() ([]byte, error) {
	e.endStream()
	out, err := compress(e.comp, e.out[:0], e.body)
	if err != nil {
		return nil, err
	}
	e.out = out
	return out, nil
}

// LogsDecoder reads OTLP logs requests into streams.
type LogsDecoder struct {
	raw     []byte
	limit   int
	builder labels.ScratchBuilder
	meta    labels.ScratchBuilder
}

// NewLogsDecoder returns a decoder refusing requests that decompress to
// more than limit bytes.
func NewLogsDecoder(limit int) *LogsDecoder { return &LogsDecoder{limit: limit} }

var errLogsMalformed = errors.New("malformed OTLP logs request")

// Decode decompresses and parses one request with the given encoding. The
// streams' strings share one copy of the request, so nothing decoded
// aliases the decoder's buffers. A stream that appears more than once
// comes back once per appearance.
func (d *LogsDecoder) Decode(encoding string, data []byte) ([]logs.Stream, error) {
	var c Compression
	switch encoding {
	case EncodingOTLPLogsSnappy:
		c = CompressionSnappy
	case EncodingOTLPLogsZstd:
		c = CompressionZstd
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownEncoding, encoding)
	}
	raw, err := decompress(c, d.raw[:0], data, d.limit)
	if err != nil {
		return nil, err
	}
	d.raw = raw
	return d.parse(string(raw))
}

// parse reads a request. Wire fields it does not use are skipped; attribute
// values that are not strings are rendered as text.
func (d *LogsDecoder) parse(b string) ([]logs.Stream, error) {
	var streams []logs.Stream
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v string) error {
		if num != fReqResourceLogs || typ != protowire.BytesType {
			return nil
		}
		return d.resourceLogs(v, &streams)
	})
	if err != nil {
		return nil, err
	}
	return streams, nil
}

func (d *LogsDecoder) resourceLogs(b string, streams *[]logs.Stream) error {
	d.builder.Reset()
	var scopes []string
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v string) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fRLResource:
			return eachField(v, func(num protowire.Number, typ protowire.Type, kv string) error {
				if num != fResAttributes || typ != protowire.BytesType {
					return nil
				}
				k, val, err := parseKV(kv)
				if err != nil {
					return err
				}
				d.builder.Add(k, val)
				return nil
			})
		case fRLScopeLogs:
			scopes = append(scopes, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.builder.Sort()
	st := logs.Stream{Labels: d.builder.Labels()}
	for _, sl := range scopes {
		err := eachField(sl, func(num protowire.Number, typ protowire.Type, rec string) error {
			if num != fSLLogRecords || typ != protowire.BytesType {
				return nil
			}
			en, err := d.logRecord(rec)
			if err != nil {
				return err
			}
			st.Entries = append(st.Entries, en)
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(st.Entries) > 0 {
		*streams = append(*streams, st)
	}
	return nil
}

func (d *LogsDecoder) logRecord(b string) (logs.Entry, error) {
	var en logs.Entry
	var observed int64
	nmeta := 0
	d.meta.Reset()
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v string) error {
		switch {
		case num == fLRTime && typ == protowire.Fixed64Type:
			en.Timestamp = int64(binary.LittleEndian.Uint64([]byte(v)))
		case num == fLRObservedTime && typ == protowire.Fixed64Type:
			observed = int64(binary.LittleEndian.Uint64([]byte(v)))
		case num == fLRBody && typ == protowire.BytesType:
			s, err := anyValueString(v)
			if err != nil {
				return err
			}
			en.Line = s
		case num == fLRAttributes && typ == protowire.BytesType:
			k, val, err := parseKV(v)
			if err != nil {
				return err
			}
			d.meta.Add(k, val)
			nmeta++
		}
		return nil
	})
	if err != nil {
		return en, err
	}
	if en.Timestamp == 0 {
		en.Timestamp = observed
	}
	if nmeta > 0 {
		d.meta.Sort()
		en.Metadata = d.meta.Labels()
	}
	return en, nil
}

func parseKV(b string) (key, value string, err error) {
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v string) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case fKVKey:
			key = v
		case fKVValue:
			s, err := anyValueString(v)
			if err != nil {
				return err
			}
			value = s
		}
		return nil
	})
	return key, value, err
}

// anyValueString renders an AnyValue scalar as text; arrays and maps, which
// Pharos never writes, come back empty.
func anyValueString(b string) (string, error) {
	var out string
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v string) error {
		switch {
		case (num == fAnyString || num == fAnyBytes) && typ == protowire.BytesType:
			out = v
		case num == fAnyBool && typ == protowire.VarintType:
			out = "false"
			if v != "\x00" {
				out = "true"
			}
		case num == fAnyInt && typ == protowire.VarintType:
			n, _ := protowire.ConsumeVarint([]byte(v))
			out = fmt.Sprint(int64(n))
		case num == fAnyDouble && typ == protowire.Fixed64Type:
			out = fmt.Sprint(math.Float64frombits(binary.LittleEndian.Uint64([]byte(v))))
		}
		return nil
	})
	if !utf8.ValidString(out) {
		return "", fmt.Errorf("%w: string value is not valid UTF-8", errLogsMalformed)
	}
	return out, err
}

// eachField calls fn with every field of the message b, the value being the
// field's payload: the bytes of a length-delimited field, the varint's own
// bytes, or the 8 or 4 little-endian bytes of a fixed field.
func eachField(b string, fn func(num protowire.Number, typ protowire.Type, v string) error) error {
	for len(b) > 0 {
		num, typ, n := consumeTagString(b)
		if n < 0 {
			return fmt.Errorf("%w: bad field tag", errLogsMalformed)
		}
		b = b[n:]
		var v string
		switch typ {
		case protowire.VarintType:
			m := varintLen(b)
			if m < 0 {
				return fmt.Errorf("%w: bad varint", errLogsMalformed)
			}
			v, b = b[:m], b[m:]
		case protowire.Fixed64Type:
			if len(b) < 8 {
				return fmt.Errorf("%w: truncated fixed64", errLogsMalformed)
			}
			v, b = b[:8], b[8:]
		case protowire.Fixed32Type:
			if len(b) < 4 {
				return fmt.Errorf("%w: truncated fixed32", errLogsMalformed)
			}
			v, b = b[:4], b[4:]
		case protowire.BytesType:
			l, m := consumeVarintString(b)
			if m < 0 || l > uint64(len(b)-m) {
				return fmt.Errorf("%w: bad length", errLogsMalformed)
			}
			v, b = b[m:m+int(l)], b[m+int(l):]
		default:
			return fmt.Errorf("%w: unsupported wire type %d", errLogsMalformed, typ)
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

func consumeVarintString(b string) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, -1
}

func varintLen(b string) int {
	_, n := consumeVarintString(b)
	return n
}

func consumeTagString(b string) (protowire.Number, protowire.Type, int) {
	v, n := consumeVarintString(b)
	if n < 0 {
		return 0, 0, -1
	}
	num := protowire.Number(v >> 3)
	if num < protowire.MinValidNumber || num > protowire.MaxValidNumber {
		return 0, 0, -1
	}
	return num, protowire.Type(v & 7), n
}
