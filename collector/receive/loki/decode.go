package loki

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/storage/logs"
)

// The decoders read a push body straight into flat, reused slices, with
// lines and metadata strings that alias the body (or, for JSON strings
// with escapes, a reused arena): once the pools are warm a request costs
// one allocation per stream label set not seen recently and one per entry
// with structured metadata (its labels.Labels), nothing per line.

// errMalformed wraps every decoding error: the body is not a valid push
// request in its format (400).
var errMalformed = errors.New("malformed push request")

// Costs charged against the decoded budget, so that a small body of tiny
// entries cannot expand to many times its size in memory.
const (
	entryCost  = int(unsafe.Sizeof(logs.Entry{}))
	streamCost = int(unsafe.Sizeof(logs.Stream{})) + int(unsafe.Sizeof(span{}))
)

// Bounds of what a pooled decoder keeps between requests.
const (
	maxLabelCache    = 4096
	maxPooledArena   = 4 << 20
	maxPooledEntries = 1 << 16
)

type span struct{ lo, hi int }

// decoder decodes one push request at a time; the streams it returns are
// valid until reset, and only while the body is.
type decoder struct {
	streams []logs.Stream
	spans   []span // entries of streams[i]
	entries []logs.Entry
	arena   []byte         // unescaped JSON strings
	meta    []labels.Label // one entry's metadata, as sent
	sb      labels.ScratchBuilder

	// Stream label strings (protobuf) seen lately, parsed: senders push the
	// same streams over and over, and the PromQL parser is costly.
	cache  map[string]labels.Labels
	parser parser.Parser

	cost, budget int
}

func newDecoder(budget int) *decoder {
	return &decoder{
		sb:     labels.NewScratchBuilder(16),
		cache:  map[string]labels.Labels{},
		parser: parser.NewParser(parser.Options{}),
		budget: budget,
	}
}

func (d *decoder) reset() {
	clear(d.streams)
	clear(d.entries)
	clear(d.meta)
	d.streams, d.spans, d.meta = d.streams[:0], d.spans[:0], d.meta[:0]
	d.entries = d.entries[:0]
	if cap(d.entries) > maxPooledEntries {
		d.entries = nil
	}
	d.arena = d.arena[:0]
	if cap(d.arena) > maxPooledArena {
		d.arena = nil
	}
	d.cost = 0
}

// charge accounts n bytes of decoded structures.
func (d *decoder) charge(n int) error {
	d.cost += n
	if d.cost > d.budget {
		return fmt.Errorf("%w: the request expands to more than %d bytes of decoded entries (agent.receive.max_decompressed_bytes)", receive.ErrTooLarge, d.budget)
	}
	return nil
}

// addStream records a stream whose entries are d.entries[lo:].
func (d *decoder) addStream(ls labels.Labels, lo int) error {
	if err := d.charge(streamCost + int(ls.ByteSize())); err != nil {
		return err
	}
	d.streams = append(d.streams, logs.Stream{Labels: ls})
	d.spans = append(d.spans, span{lo, len(d.entries)})
	return nil
}

// addEntry appends an entry with d.meta as its metadata.
func (d *decoder) addEntry(ts int64, line string) error {
	md := d.metadata()
	if err := d.charge(entryCost + int(md.ByteSize())); err != nil {
		return err
	}
	d.entries = append(d.entries, logs.Entry{Timestamp: ts, Line: line, Metadata: md})
	return nil
}

// result points every stream at its entries. The cap stops a sink that
// appends to one stream's entries from overwriting the next stream's.
func (d *decoder) result() []logs.Stream {
	for i, sp := range d.spans {
		d.streams[i].Entries = d.entries[sp.lo:sp.hi:sp.hi]
	}
	return d.streams
}

// metadata builds d.meta as an entry's metadata and empties it.
func (d *decoder) metadata() labels.Labels {
	md := receive.BuildMetadata(&d.sb, d.meta)
	clear(d.meta)
	d.meta = d.meta[:0]
	return md
}

// parseLabels parses a Prometheus-style label set, {app="x", env="y"}, as
// Loki's protobuf push carries a stream's labels. The label checks are
// CheckStreams'.
func (d *decoder) parseLabels(b []byte) (labels.Labels, error) {
	if ls, ok := d.cache[string(b)]; ok {
		return ls, nil
	}
	s := string(b) // the cache key outlives the body
	t := strings.TrimSpace(s)
	if t == "" {
		return labels.EmptyLabels(), nil // refused as missing labels
	}
	if t[0] != '{' {
		return labels.EmptyLabels(), fmt.Errorf("%w: labels %s: want a label set such as {app=\"x\"}", errMalformed, quote(s))
	}
	ls, err := d.parser.ParseMetric(t)
	if err != nil {
		return labels.EmptyLabels(), fmt.Errorf("%w: labels %s: %v", errMalformed, quote(s), err)
	}
	if len(d.cache) >= maxLabelCache {
		clear(d.cache)
	}
	d.cache[s] = ls
	return ls, nil
}

// quote quotes a piece of input for an error message, truncated.
func quote(s string) string {
	const maxQuoted = 128
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "…"
	}
	return strconv.Quote(s)
}

// yolo returns b as a string without copying; it is valid while b is.
func yolo(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
