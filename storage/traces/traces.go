// Package traces holds the aggregator's trace store: the types and
// interfaces the rest of Pharos sees (append spans, fetch a trace by ID,
// search traces by intrinsics and attributes, look up tags), and an
// implementation on VictoriaLogs' lib/logstorage (span rows with the trace
// ID as a field, as VictoriaTraces stores them), the only importer of it.
//
// Spans keep their OTLP form: each stored span carries its resource,
// scope and span as OTLP protobuf, so a trace comes back exactly as it was
// sent; the fields searches need are extracted beside it.
package traces

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/internal/otlpwire"
)

// TraceID is a 16-byte OTLP trace ID.
type TraceID [16]byte

// String is the ID in lower-case hex, as Tempo and Jaeger print it.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the ID is all zeros (invalid in OTLP).
func (id TraceID) IsZero() bool { return id == TraceID{} }

// ParseTraceID parses a hex trace ID of up to 32 digits; shorter IDs (as
// Jaeger's 64-bit ones) are left-padded with zeros, as Tempo does.
func ParseTraceID(s string) (TraceID, error) {
	var id TraceID
	if len(s) == 0 || len(s) > 32 {
		return id, fmt.Errorf("trace ID %q: want 1 to 32 hex digits", s)
	}
	if len(s)%2 == 1 {
		s = "0" + s
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("trace ID %q: not hex", s)
	}
	copy(id[16-len(b):], b)
	if id.IsZero() {
		return id, errors.New("trace ID is all zeros")
	}
	return id, nil
}

// Appender writes spans.
type Appender interface {
	// Append stores the spans of td for tenant ("" is the default tenant).
	// They are searchable within a second or so, and durable once a later
	// WaitDurable returns. Safe for concurrent use.
	Append(tenant string, td ptrace.Traces) error
	// AppendWire is Append for spans read in their wire form, as the
	// aggregator reads trace messages: it spares decoding them into
	// pdata. It does not keep t, nor the bytes t was read from.
	AppendWire(tenant string, t *otlpwire.Traces) error
	// WaitDurable returns once everything appended before the call is on
	// disk.
	WaitDurable(ctx context.Context) error
}

// Condition is one comparison of a search: an intrinsic (name, status,
// kind, duration, rootName, rootServiceName, traceDuration) or an
// attribute (resource.x, span.x, or .x for either) against a value.
type Condition struct {
	// Scope is "intrinsic", "resource", "span" or "" (either attribute).
	Scope string
	// Name is the intrinsic or attribute name.
	Name string
	// Op is one of = != =~ !~ > >= < <=.
	Op string
	// Value is the right-hand side: a string, a number, a duration, or a
	// status/kind keyword, as text.
	Value string
}

// SearchParams say which traces a search returns.
type SearchParams struct {
	Tenant string
	// Start and End bound the spans' start times (zero: unbounded).
	Start, End time.Time
	// Any is a disjunction of conjunctions: a trace matches when one of
	// its spans meets every condition of one of the groups (TraceQL's
	// `{ a && b } || { c }` and `{ a || b }` in normal form). Empty: every
	// trace.
	Any [][]Condition
	// MinDuration and MaxDuration bound the trace's duration (zero: no
	// bound).
	MinDuration, MaxDuration time.Duration
	// Limit caps the traces returned, the most recent first.
	Limit int
	// SpansPerSpanSet caps the matching spans listed per trace.
	SpansPerSpanSet int
}

// TraceSummary is one search hit, in the shape Tempo's search returns.
type TraceSummary struct {
	TraceID           TraceID
	RootServiceName   string
	RootTraceName     string
	StartTimeUnixNano uint64
	DurationMs        uint64
	// Matched are the spans that met the conditions (at most
	// SpansPerSpanSet), and how many matched in all.
	Matched    []SpanSummary
	MatchedAll int
}

// SpanSummary is a matching span of a search hit.
type SpanSummary struct {
	SpanID            [8]byte
	Name              string
	StartTimeUnixNano uint64
	DurationNanos     uint64
	Attributes        map[string]string
}

// TagParams scope a tag look-up.
type TagParams struct {
	Tenant     string
	Start, End time.Time
	// Scope is "resource", "span", "intrinsic" or "" (all).
	Scope string
	Limit int
}

// Querier reads traces. Implementations are safe for concurrent use.
type Querier interface {
	// Trace returns every stored span of the trace (empty when unknown).
	// A span stored twice (redelivery) comes back once.
	Trace(ctx context.Context, tenant string, id TraceID, start, end time.Time) (ptrace.Traces, error)
	// Search returns the traces that match, most recent first.
	Search(ctx context.Context, p SearchParams) ([]TraceSummary, error)
	// TagNames returns attribute names by scope ("resource", "span") and
	// the intrinsics.
	TagNames(ctx context.Context, p TagParams) (map[string][]string, error)
	// TagValues returns the values of a tag ("resource.x", "span.x", ".x"
	// or an intrinsic such as "name" or "status").
	TagValues(ctx context.Context, tag string, p TagParams) ([]string, error)
	// Services returns the sorted service names (the resource attribute
	// service.name) of the tenant's spans that started in [start, end]
	// (a zero bound is unbounded), as Jaeger's /api/services lists them.
	Services(ctx context.Context, tenant string, start, end time.Time) ([]string, error)
	// Operations returns the distinct span names and kinds of service's
	// spans that started in [start, end] (a zero bound is unbounded),
	// sorted by name then kind, as Jaeger's /api/operations lists them.
	// Service "" is the spans without a service name.
	Operations(ctx context.Context, tenant, service string, start, end time.Time) ([]Operation, error)
}

// TracesQuerier is a Querier that also reads several whole traces in one
// pass (a store answers them with one query; a fan-out with one request
// per member). found[i] is ids[i], empty when unknown; the bounds are as
// for Trace.
type TracesQuerier interface {
	Querier
	Traces(ctx context.Context, tenant string, ids []TraceID, start, end time.Time) (found []ptrace.Traces, err error)
}

// Operation is a span name a service used, with the span's kind.
type Operation struct {
	Name string
	// Kind is the span kind as the kind intrinsic spells it: "server",
	// "client", "producer", "consumer", "internal" or "unspecified" (which
	// Jaeger shows as "").
	Kind string
}
