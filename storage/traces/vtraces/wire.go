package vtraces

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// The OTLP fields a stored span is framed in (opentelemetry-proto's
// trace.proto).
const (
	tracesResourceSpans     = 1 // TracesData.resource_spans
	resourceSpansScopeSpans = 2 // ResourceSpans.scope_spans
	scopeSpansSpans         = 2 // ScopeSpans.spans
)

var errWire = errors.New("malformed OTLP span encoding")

// appendSpanRecord appends the stored form of one span to dst: a
// TracesData holding one ResourceSpans with one ScopeSpans with the span,
// each field copied byte for byte. span is the whole Span field.
func appendSpanRecord(dst []byte, rec spanRecord) []byte {
	ssLen := len(rec.scope) + len(rec.span) + len(rec.scopeSchema)
	rsLen := len(rec.resource) + protowire.SizeTag(resourceSpansScopeSpans) + protowire.SizeBytes(ssLen) + len(rec.resourceSchema)
	dst = protowire.AppendTag(dst, tracesResourceSpans, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(rsLen))
	dst = append(dst, rec.resource...)
	dst = protowire.AppendTag(dst, resourceSpansScopeSpans, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(ssLen))
	dst = append(dst, rec.scope...)
	dst = append(dst, rec.span...)
	dst = append(dst, rec.scopeSchema...)
	return append(dst, rec.resourceSchema...)
}

// spanRecord is a stored span taken apart; every slice aliases the stored
// bytes.
type spanRecord struct {
	resource, resourceSchema, scope, scopeSchema, span []byte
}

// parseSpanRecord takes apart what appendSpanRecord made, reading it into
// t; the record's slices alias b.
func parseSpanRecord(t *otlpwire.Traces, b []byte) (spanRecord, error) {
	if err := t.Read(b); err != nil {
		return spanRecord{}, fmt.Errorf("%w: %w", errWire, err)
	}
	if len(t.Resources) != 1 || len(t.Scopes) != 1 || len(t.Spans) != 1 {
		return spanRecord{}, fmt.Errorf("%w: %d resources, %d scopes and %d spans, want one each", errWire, len(t.Resources), len(t.Scopes), len(t.Spans))
	}
	r, sc := &t.Resources[0], &t.Scopes[0]
	return spanRecord{resource: r.Resource, resourceSchema: r.SchemaURL, scope: sc.Scope, scopeSchema: sc.SchemaURL, span: t.Spans[0].Field}, nil
}

// traceBuilder merges span records into one TracesData, grouped by
// resource and scope in the order they first appear.
type traceBuilder struct {
	resources []*builderResource
	byKey     map[string]*builderResource
}

type builderResource struct {
	resource, schema []byte
	scopes           []*builderScope
	byKey            map[string]*builderScope
}

type builderScope struct {
	scope, schema []byte
	spans         [][]byte
}

func (tb *traceBuilder) add(rec spanRecord) {
	if tb.byKey == nil {
		tb.byKey = make(map[string]*builderResource)
	}
	rk := string(rec.resource) + "\x00" + string(rec.resourceSchema)
	r := tb.byKey[rk]
	if r == nil {
		r = &builderResource{resource: rec.resource, schema: rec.resourceSchema, byKey: make(map[string]*builderScope)}
		tb.byKey[rk] = r
		tb.resources = append(tb.resources, r)
	}
	sk := string(rec.scope) + "\x00" + string(rec.scopeSchema)
	s := r.byKey[sk]
	if s == nil {
		s = &builderScope{scope: rec.scope, schema: rec.scopeSchema}
		r.byKey[sk] = s
		r.scopes = append(r.scopes, s)
	}
	s.spans = append(s.spans, rec.span)
}

// bytes returns the TracesData.
func (tb *traceBuilder) bytes() []byte {
	var out []byte
	for _, r := range tb.resources {
		rsLen := len(r.resource) + len(r.schema)
		for _, s := range r.scopes {
			rsLen += protowire.SizeTag(resourceSpansScopeSpans) + protowire.SizeBytes(s.size())
		}
		out = protowire.AppendTag(out, tracesResourceSpans, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(rsLen))
		out = append(out, r.resource...)
		for _, s := range r.scopes {
			out = protowire.AppendTag(out, resourceSpansScopeSpans, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(s.size()))
			out = append(out, s.scope...)
			for _, sp := range s.spans {
				out = append(out, sp...)
			}
			out = append(out, s.schema...)
		}
		out = append(out, r.schema...)
	}
	return out
}

func (s *builderScope) size() int {
	n := len(s.scope) + len(s.schema)
	for _, sp := range s.spans {
		n += len(sp)
	}
	return n
}
