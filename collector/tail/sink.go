package tail

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// ErrPermanent marks a Sink error that retrying cannot fix (the bus
// refuses the batch for what it is). The tailer then drops the batch,
// counts and logs what it held, and moves on; any other error is retried
// with backoff, holding back the read positions, until it succeeds.
var ErrPermanent = errors.New("tail: batch rejected permanently")

// Sink takes the tailer's batches: in the agent, the publisher that puts
// them on the bus.
//
// PushLogs returns nil only once the batch is durable (the bus has
// acknowledged it); the tailer advances its read positions past the lines
// of a batch only then. It may block, and should honour ctx, which the
// tailer cancels when its drain timeout on shutdown runs out. The tailer
// calls it from one goroutine, one batch at a time, so it need not be safe
// for concurrent use by the tailer; and it does not batch further: it
// should publish promptly, since the next batch waits for this one.
//
// The batch and every byte slice in it belong to the tailer, which reuses
// them once PushLogs returns: copy or encode what must outlive the call.
// Labels are immutable and may be kept.
type Sink interface {
	PushLogs(ctx context.Context, b *Batch) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, b *Batch) error

// PushLogs calls f.
func (f SinkFunc) PushLogs(ctx context.Context, b *Batch) error { return f(ctx, b) }

// Entry is one log entry: a line, or lines joined (partial container lines,
// a multi-line entry).
type Entry struct {
	// Labels identify the stream: the file's labels (filename, Kubernetes
	// namespace, pod and container), static labels, the container stream
	// (stdout or stderr) where the format says, and parsed fields chosen
	// as labels.
	Labels labels.Labels
	// Timestamp is the container runtime's time for the line, or when the
	// tailer read it for formats without one.
	Timestamp time.Time
	// Line is the message, valid UTF-8. It aliases the batch's memory.
	Line []byte
	// Metadata holds parsed fields kept as structured metadata, in the
	// order the parser found them. It aliases the batch's memory.
	Metadata []Field
}

// Field is a structured-metadata field of an Entry.
type Field struct {
	Name  []byte
	Value []byte
}

// Batch is a set of entries handed to the Sink in one call, in the order
// they were read (per file).
type Batch struct {
	// Entries are the batch's entries.
	Entries []Entry

	arena  []byte  // backs Line and Metadata
	fields []Field // backs Metadata
	bytes  int     // Σ len(Line)
	first  time.Time
	// marks say how far each file's lines are in this batch or an earlier
	// one: once this batch is acknowledged, each file's position may move
	// to its mark.
	marks []mark
}

type mark struct {
	f   *tailedFile
	off int64
}

// Len returns the number of entries.
func (b *Batch) Len() int { return len(b.Entries) }

// Bytes returns the total length of the entries' lines.
func (b *Batch) Bytes() int { return b.bytes }

func (b *Batch) reset() {
	clear(b.Entries) // drop the label references
	b.Entries = b.Entries[:0]
	b.arena = b.arena[:0]
	clear(b.fields)
	b.fields = b.fields[:0]
	b.bytes = 0
	b.first = time.Time{}
	clear(b.marks)
	b.marks = b.marks[:0]
}

// mark records that f's lines before off are in this batch or earlier.
func (b *Batch) mark(f *tailedFile, off int64) {
	if n := len(b.marks); n > 0 && b.marks[n-1].f == f {
		b.marks[n-1].off = max(b.marks[n-1].off, off)
		return
	}
	b.marks = append(b.marks, mark{f: f, off: off})
}
