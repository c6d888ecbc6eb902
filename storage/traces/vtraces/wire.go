package vtraces

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The OTLP messages a stored span is framed in (opentelemetry-proto's
// trace.proto); only these fields are taken apart, every other byte is
// kept as it came.
const (
	tracesResourceSpans = 1 // TracesData.resource_spans

	resourceSpansResource   = 1 // ResourceSpans.resource
	resourceSpansScopeSpans = 2 // ResourceSpans.scope_spans
	resourceSpansSchemaURL  = 3 // ResourceSpans.schema_url

	scopeSpansScope     = 1 // ScopeSpans.scope
	scopeSpansSpans     = 2 // ScopeSpans.spans
	scopeSpansSchemaURL = 3 // ScopeSpans.schema_url
)

var errWire = errors.New("malformed OTLP span encoding")

// wireResource is a ResourceSpans taken apart: resource and schema are the
// whole fields (tag, length and payload, empty when absent), scopes the
// payloads of its ScopeSpans.
type wireResource struct {
	resource, schema []byte
	scopes           [][]byte
}

// wireScope is a ScopeSpans taken apart, as wireResource.
type wireScope struct {
	scope, schema []byte
	spans         [][]byte // whole fields
}

// splitTraces appends the payloads of td's ResourceSpans to dst.
func splitTraces(dst [][]byte, td []byte) ([][]byte, error) {
	for len(td) > 0 {
		num, typ, n := protowire.ConsumeTag(td)
		if n < 0 {
			return dst, errWire
		}
		if num == tracesResourceSpans && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(td[n:])
			if m < 0 {
				return dst, errWire
			}
			dst = append(dst, v)
			td = td[n+m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, td[n:])
		if m < 0 {
			return dst, errWire
		}
		td = td[n+m:]
	}
	return dst, nil
}

// splitResource takes a ResourceSpans payload apart into r, reusing
// r.scopes.
func splitResource(r *wireResource, b []byte) error {
	r.resource, r.schema, r.scopes = nil, nil, r.scopes[:0]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return errWire
		}
		field := b[:n+m]
		switch {
		case num == resourceSpansResource && typ == protowire.BytesType:
			r.resource = field
		case num == resourceSpansSchemaURL && typ == protowire.BytesType:
			r.schema = field
		case num == resourceSpansScopeSpans && typ == protowire.BytesType:
			v, _ := protowire.ConsumeBytes(b[n:])
			r.scopes = append(r.scopes, v)
		}
		b = b[n+m:]
	}
	return nil
}

// splitScope takes a ScopeSpans payload apart into s, reusing s.spans.
func splitScope(s *wireScope, b []byte) error {
	s.scope, s.schema, s.spans = nil, nil, s.spans[:0]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errWire
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return errWire
		}
		field := b[:n+m]
		switch {
		case num == scopeSpansScope && typ == protowire.BytesType:
			s.scope = field
		case num == scopeSpansSchemaURL && typ == protowire.BytesType:
			s.schema = field
		case num == scopeSpansSpans && typ == protowire.BytesType:
			s.spans = append(s.spans, field)
		}
		b = b[n+m:]
	}
	return nil
}

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

// parseSpanRecord takes apart what appendSpanRecord made.
func parseSpanRecord(b []byte) (spanRecord, error) {
	var (
		rec spanRecord
		r   wireResource
		s   wireScope
		buf [1][]byte
	)
	rss, err := splitTraces(buf[:0], b)
	if err != nil {
		return rec, err
	}
	if len(rss) != 1 {
		return rec, fmt.Errorf("%w: %d resource spans, want 1", errWire, len(rss))
	}
	r.scopes = buf[:0]
	if err := splitResource(&r, rss[0]); err != nil {
		return rec, err
	}
	if len(r.scopes) != 1 {
		return rec, fmt.Errorf("%w: %d scope spans, want 1", errWire, len(r.scopes))
	}
	if err := splitScope(&s, r.scopes[0]); err != nil {
		return rec, err
	}
	if len(s.spans) != 1 {
		return rec, fmt.Errorf("%w: %d spans, want 1", errWire, len(s.spans))
	}
	return spanRecord{resource: r.resource, resourceSchema: r.schema, scope: s.scope, scopeSchema: s.schema, span: s.spans[0]}, nil
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
