package codec

import (
	"fmt"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// Trace encodings carried in the Pharos-Encoding header. The payload is
// an OTLP ExportTraceServiceRequest (opentelemetry.proto.collector.trace.v1)
// as pdata writes it, compressed: anything that reads OTLP reads it.
const (
	EncodingOTLPTracesSnappy = "otlp-traces+snappy"
	EncodingOTLPTracesZstd   = "otlp-traces+zstd"
)

// TracePartition returns the partition of the spans of trace id, out of
// partitions: xxhash64 (github.com/cespare/xxhash/v2, seed 0) of the 16
// ID bytes, modulo partitions.
//
// This is a wire contract: every agent must place the spans of a trace
// on the same partition, so that the one aggregator owning it sees the
// whole trace (the service graph pairs client and server spans there).
// Changing it splits traces in flight across partitions. The hash covers
// all 16 bytes because real IDs are not uniformly random throughout: W3C
// trace context guarantees randomness in the last 7 bytes only, AWS X-Ray
// puts a timestamp in the first 4, and 64-bit Jaeger IDs are left-padded
// with zeros.
func TracePartition(id pcommon.TraceID, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	return int(xxhash.Sum64(id[:]) % uint64(partitions))
}

// TracesEncoder writes spans as one compressed OTLP traces request. It is
// not safe for concurrent use; reuse it for the next message.
type TracesEncoder struct {
	comp Compression
	m    ptrace.ProtoMarshaler
}

// NewTracesEncoder returns an encoder compressing with c.
func NewTracesEncoder(c Compression) *TracesEncoder { return &TracesEncoder{comp: c} }

// Encoding returns the Pharos-Encoding header value for the encoder's
// output.
func (e *TracesEncoder) Encoding() string { return TracesEncoding(e.comp) }

// TracesEncoding returns the Pharos-Encoding value of traces compressed
// with c.
func TracesEncoding(c Compression) string {
	if c == CompressionZstd {
		return EncodingOTLPTracesZstd
	}
	return EncodingOTLPTracesSnappy
}

// Size returns the uncompressed size of td's encoding, without encoding
// it.
func (e *TracesEncoder) Size(td ptrace.Traces) int { return e.m.TracesSize(td) }

// Encode appends td, encoded and compressed, to dst[:0] and returns it
// (dst may be nil: the result is then a new slice the caller owns).
func (e *TracesEncoder) Encode(dst []byte, td ptrace.Traces) ([]byte, error) {
	raw, err := e.m.MarshalTraces(td)
	if err != nil {
		return dst, fmt.Errorf("marshal traces: %w", err)
	}
	return compress(e.comp, dst[:0], raw)
}

// EncodeRaw appends raw, an encoded OTLP TracesData (or
// ExportTraceServiceRequest, the same message), compressed, to dst[:0]
// and returns it. Encoded TracesData messages concatenate into one
// holding all of their resource spans, so a publisher can join the
// encodings of several pushes without decoding them.
func (e *TracesEncoder) EncodeRaw(dst, raw []byte) ([]byte, error) {
	return compress(e.comp, dst[:0], raw)
}

// TracesDecoder reads compressed OTLP traces requests. It is not safe for
// concurrent use; keep one per consumer goroutine.
type TracesDecoder struct {
	raw   []byte
	limit int
	u     ptrace.ProtoUnmarshaler
}

// NewTracesDecoder returns a decoder refusing requests that decompress to
// more than limit bytes (ErrTooLarge), before allocating for them.
func NewTracesDecoder(limit int) *TracesDecoder { return &TracesDecoder{limit: limit} }

// Decode decompresses and parses one request with the given encoding. The
// spans returned copy what they hold, so nothing aliases the decoder's
// buffer, which the next call reuses.
func (d *TracesDecoder) Decode(encoding string, data []byte) (ptrace.Traces, error) {
	raw, err := d.decompress(encoding, data)
	if err != nil {
		return ptrace.Traces{}, err
	}
	td, err := d.u.UnmarshalTraces(raw)
	if err != nil {
		return ptrace.Traces{}, fmt.Errorf("malformed OTLP traces request: %w", err)
	}
	return td, nil
}

// DecodeWire decompresses one request with the given encoding and reads
// it into t without decoding it (see otlpwire). t aliases the decoder's
// buffer, valid until the next call.
func (d *TracesDecoder) DecodeWire(encoding string, data []byte, t *otlpwire.Traces) error {
	raw, err := d.decompress(encoding, data)
	if err != nil {
		return err
	}
	if err := t.Read(raw); err != nil {
		return fmt.Errorf("malformed OTLP traces request: %w", err)
	}
	return nil
}

// decompress decompresses data into the decoder's buffer.
func (d *TracesDecoder) decompress(encoding string, data []byte) ([]byte, error) {
	var c Compression
	switch encoding {
	case EncodingOTLPTracesSnappy:
		c = CompressionSnappy
	case EncodingOTLPTracesZstd:
		c = CompressionZstd
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownEncoding, encoding)
	}
	raw, err := decompress(c, d.raw[:0], data, d.limit)
	if err != nil {
		return nil, err
	}
	d.raw = raw
	return raw, nil
}
