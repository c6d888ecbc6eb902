// Package logs holds the aggregator's log store: the types and interfaces
// the rest of Pharos sees (append streams of entries, select them back by
// stream selector, time range and line filters, look up labels), and an
// implementation on VictoriaLogs' lib/logstorage, the only importer of it.
//
// A stream is a set of entries sharing one label set, as in Loki. Stream
// labels are indexed; structured metadata (OTLP attributes, fields a
// parser kept) travels with each entry and is not part of the stream.
package logs

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/labels"
)

// Entry is one log entry of a stream.
type Entry struct {
	// Timestamp is the entry's time in Unix nanoseconds.
	Timestamp int64
	// Line is the log line.
	Line string
	// Metadata is the entry's structured metadata, sorted by name.
	Metadata labels.Labels
}

// Stream is a stream's label set and entries.
type Stream struct {
	Labels  labels.Labels
	Entries []Entry
}

// Direction orders the entries a selection returns, as Loki's direction
// parameter does.
type Direction int

const (
	// Backward returns the newest entries first (Loki's default).
	Backward Direction = iota
	// Forward returns the oldest entries first.
	Forward
)

// ParseDirection parses Loki's direction parameter ("" is backward).
func ParseDirection(s string) (Direction, error) {
	switch s {
	case "", "backward", "BACKWARD":
		return Backward, nil
	case "forward", "FORWARD":
		return Forward, nil
	}
	return 0, fmt.Errorf("invalid direction %q: want forward or backward", s)
}

func (d Direction) String() string {
	if d == Forward {
		return "forward"
	}
	return "backward"
}

// LineFilterOp is a LogQL line filter operator.
type LineFilterOp int

const (
	// LineContains keeps lines containing the value (|=).
	LineContains LineFilterOp = iota
	// LineNotContains drops lines containing the value (!=).
	LineNotContains
	// LineMatches keeps lines the RE2 regexp matches anywhere (|~).
	LineMatches
	// LineNotMatches drops lines the regexp matches (!~).
	LineNotMatches
)

func (op LineFilterOp) String() string {
	switch op {
	case LineContains:
		return "|="
	case LineNotContains:
		return "!="
	case LineMatches:
		return "|~"
	case LineNotMatches:
		return "!~"
	}
	return fmt.Sprintf("LineFilterOp(%d)", int(op))
}

// LineFilter is a line filter a store applies while selecting: case
// sensitive, on the raw line. A positive filter (|= or |~) with several
// values keeps a line that matches any of them (LogQL's `|= "a" or "b"`);
// a negative one drops a line that matches any of them.
type LineFilter struct {
	Op     LineFilterOp
	Values []string
}

// SelectParams say which entries a selection returns.
type SelectParams struct {
	// Tenant scopes the selection; "" is the default tenant.
	Tenant string
	// Matchers are the stream selector: every one must hold for a stream.
	// At least one must not match the empty string, as in Loki.
	Matchers []*labels.Matcher
	// Start and End bound the entries' timestamps, Unix ns: [Start, End).
	Start, End int64
	// LineFilters must all hold for an entry.
	LineFilters []LineFilter
	// Limit caps the number of entries returned (0: no cap). With a limit,
	// the entries returned are the first Limit in Direction order over all
	// streams.
	Limit int
	// Direction orders each stream's entries.
	Direction Direction
}

// Validate checks what every implementation relies on.
func (p *SelectParams) Validate() error {
	if len(p.Matchers) == 0 {
		return errors.New("a stream selector needs at least one matcher")
	}
	nonEmpty := false
	for _, m := range p.Matchers {
		if !m.Matches("") {
			nonEmpty = true
			break
		}
	}
	if !nonEmpty {
		return errors.New("a stream selector needs at least one matcher that does not match the empty string, such as {app=\"x\"}")
	}
	if p.End < p.Start {
		return fmt.Errorf("end %d is before start %d", p.End, p.Start)
	}
	if p.Limit < 0 {
		return fmt.Errorf("negative limit %d", p.Limit)
	}
	return nil
}

// LabelParams scope a label look-up.
type LabelParams struct {
	Tenant string
	// Start and End bound the entries whose streams are looked at, Unix ns.
	Start, End int64
	// Matchers, when any, restrict the look-up to the streams they select.
	Matchers []*labels.Matcher
}

// Querier reads logs. Implementations are safe for concurrent use.
type Querier interface {
	// Select returns the streams with entries that match p, each with
	// its entries in p.Direction order, streams in label order. A stream
	// without matching entries is not returned.
	Select(ctx context.Context, p SelectParams) ([]Stream, error)
	// LabelNames returns the sorted stream label names.
	LabelNames(ctx context.Context, p LabelParams) ([]string, error)
	// LabelValues returns the sorted values of a stream label.
	LabelValues(ctx context.Context, name string, p LabelParams) ([]string, error)
	// Series returns the label sets of the streams, sorted.
	Series(ctx context.Context, p LabelParams) ([]labels.Labels, error)
}

// Streamer is implemented by queriers that can hand every matching entry to
// a callback without ordering or collecting them, so that a caller that
// folds entries (a metric query) reads each entry once, in bounded memory,
// instead of paging through a time range with limited Selects.
type Streamer interface {
	// SelectStream calls fn for every entry that matches p, with the
	// matcher, time range and line filter semantics of Querier.Select.
	// p.Limit must be 0 and p.Direction is ignored: entries come in no
	// particular order, streams interleaved.
	//
	// Unlike Select, SelectStream may hand an entry stored twice (same
	// stream, timestamp, line and metadata, as after a redelivered batch)
	// to fn more than once; a caller that needs exact counts removes
	// such duplicates itself.
	//
	// fn is never called concurrently. ls stays valid and unchanged until
	// SelectStream returns; e, its Line and its Metadata only during the
	// call: fn copies what it keeps. fn returning an error stops the scan,
	// and SelectStream returns that error.
	SelectStream(ctx context.Context, p SelectParams, fn func(ls labels.Labels, e *Entry) error) error
}

// Appender writes logs.
type Appender interface {
	// Append adds streams' entries for tenant. Entries become searchable
	// within a second or so; they are durable once a later WaitDurable
	// (DurableWaiter) returns.
	// Safe for concurrent use.
	Append(tenant string, streams []Stream) error
}

// ErrInvalid marks an Append rejected for its input (a reserved or empty
// label name, a stream without labels, ...): retrying cannot help, and
// nothing of the call was stored.
var ErrInvalid = errors.New("invalid log input")

// DurableWaiter is implemented by stores that can tell when appended
// entries survive a crash, so that a consumer acks its input only then.
type DurableWaiter interface {
	// WaitDurable returns once every entry whose Append returned before
	// the call is on disk, or with ctx's error. Concurrent callers share
	// the work. Safe for concurrent use.
	WaitDurable(ctx context.Context) error
}
