package vtraces

import (
	"encoding/hex"
	"fmt"
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// A span's stored form. Its record (fieldOTLP, marked slimMarker) holds the
// span's own fields less those the row keeps in columns of its own: the
// trace and span IDs, the start and the end (start + duration), which a
// read puts back. Its resource and scope are a column of their own
// (fieldEnvelope): one value for every span of a scope, which the engine
// keeps once a block as a constant or dictionary column, neither
// tokenized nor compressed per row. Every byte of a record is scanned by
// the tokenizer and compressed at each part and merge; this takes 38 % of
// the bytes off a telemetrygen span's record, and far more off spans
// whose resources carry the usual Kubernetes attributes.
//
// Rows written before keep the whole TracesData in fieldOTLP (marked
// spanTextMarker, or raw) and are read as they are.

// slimMarker starts a record stored slim.
const slimMarker = '#'

// Span fields (opentelemetry-proto's trace.proto) a slim record leaves to
// the row's columns.
const (
	spanTraceID = 1
	spanSpanID  = 2
	spanStart   = 7
	spanEnd     = 8
)

// appendSlimSpan appends the payload of span, a whole Span field, less its
// trace and span ID, start and end fields. The end is left out only when
// it is not before the start: the row's duration is end - start, 0
// otherwise, and such an end is written back as it was (last, so that it
// wins over the one a read puts first).
func appendSlimSpan(dst, span []byte, start, end int64) ([]byte, error) {
	_, _, n := protowire.ConsumeTag(span)
	if n < 0 {
		return dst, errWire
	}
	payload, m := protowire.ConsumeBytes(span[n:])
	if m < 0 {
		return dst, errWire
	}
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return dst, errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, payload[n:])
		if m < 0 {
			return dst, errWire
		}
		switch num {
		case spanTraceID, spanSpanID, spanStart, spanEnd:
		default:
			dst = append(dst, payload[:n+m]...)
		}
		payload = payload[n+m:]
	}
	if end < start {
		dst = protowire.AppendTag(dst, spanEnd, protowire.Fixed64Type)
		dst = protowire.AppendFixed64(dst, uint64(end))
	}
	return dst, nil
}

// spanRecordSize is the size of rec as appendSpanRecord writes it.
func spanRecordSize(rec spanRecord) int {
	ss := len(rec.scope) + len(rec.span) + len(rec.scopeSchema)
	rs := len(rec.resource) + protowire.SizeTag(resourceSpansScopeSpans) + protowire.SizeBytes(ss) + len(rec.resourceSchema)
	return protowire.SizeTag(tracesResourceSpans) + protowire.SizeBytes(rs)
}

// appendEnvelope appends rec's resource and scope (its span is not used),
// each field length-prefixed.
func appendEnvelope(dst []byte, rec spanRecord) []byte {
	for _, b := range [...][]byte{rec.resource, rec.resourceSchema, rec.scope, rec.scopeSchema} {
		dst = protowire.AppendBytes(dst, b)
	}
	return dst
}

// parseEnvelope takes apart what appendEnvelope made; the slices alias b.
func parseEnvelope(b []byte) (spanRecord, error) {
	var rec spanRecord
	for _, p := range [...]*[]byte{&rec.resource, &rec.resourceSchema, &rec.scope, &rec.scopeSchema} {
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return rec, fmt.Errorf("%w: stored resource and scope", errWire)
		}
		*p, b = v, b[n:]
	}
	if len(b) != 0 {
		return rec, fmt.Errorf("%w: %d bytes after the stored resource and scope", errWire, len(b))
	}
	return rec, nil
}

// slimColumns are the row's columns a slim record is rebuilt from.
type slimColumns struct {
	envelope, traceID, spanID, start, duration string
}

// storedRecord returns the span stored as otlp, taken apart: rebuilt from
// the columns if it is slim, read into t if it was stored whole (see
// appendSpanRecordBytes). Its slices are its own.
func storedRecord(t *otlpwire.Traces, otlp string, c slimColumns) (spanRecord, error) {
	if otlp == "" || otlp[0] != slimMarker {
		b, err := appendSpanRecordBytes(nil, otlp)
		if err != nil {
			return spanRecord{}, err
		}
		return parseSpanRecord(t, b)
	}
	var rec spanRecord
	slim, err := decodeSpanText(nil, otlp[1:])
	if err != nil {
		return rec, err
	}
	if c.envelope == "" || c.envelope[0] != slimMarker {
		return rec, fmt.Errorf("%w: a slim span without its %s field", errWire, fieldEnvelope)
	}
	env, err := decodeSpanText(nil, c.envelope[1:])
	if err != nil {
		return rec, err
	}
	if rec, err = parseEnvelope(env); err != nil {
		return rec, err
	}
	var tid [16]byte
	var sid [8]byte
	if hex.DecodedLen(len(c.traceID)) != len(tid) || hex.DecodedLen(len(c.spanID)) != len(sid) {
		return rec, fmt.Errorf("%w: trace ID %q, span ID %q", errWire, c.traceID, c.spanID)
	}
	if _, err := hex.Decode(tid[:], []byte(c.traceID)); err != nil {
		return rec, fmt.Errorf("%w: trace ID %q", errWire, c.traceID)
	}
	if _, err := hex.Decode(sid[:], []byte(c.spanID)); err != nil {
		return rec, fmt.Errorf("%w: span ID %q", errWire, c.spanID)
	}
	start, err1 := strconv.ParseUint(c.start, 10, 64)
	dur, err2 := strconv.ParseUint(c.duration, 10, 64)
	if err1 != nil || err2 != nil {
		return rec, fmt.Errorf("%w: start %q, duration %q", errWire, c.start, c.duration)
	}
	payload := make([]byte, 0, 48+len(slim))
	payload = protowire.AppendTag(payload, spanTraceID, protowire.BytesType)
	payload = protowire.AppendBytes(payload, tid[:])
	payload = protowire.AppendTag(payload, spanSpanID, protowire.BytesType)
	payload = protowire.AppendBytes(payload, sid[:])
	payload = protowire.AppendTag(payload, spanStart, protowire.Fixed64Type)
	payload = protowire.AppendFixed64(payload, start)
	payload = protowire.AppendTag(payload, spanEnd, protowire.Fixed64Type)
	payload = protowire.AppendFixed64(payload, start+dur)
	payload = append(payload, slim...)
	rec.span = protowire.AppendBytes(protowire.AppendTag(nil, scopeSpansSpans, protowire.BytesType), payload)
	return rec, nil
}
