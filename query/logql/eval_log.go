package logql

import (
	"slices"

	"github.com/pharos-obs/pharos/storage/logs"
)

// logEntry is an entry that passed the pipeline, waiting for the limit.
type logEntry struct {
	ts     int64
	line   string
	group  int
	meta   []catLabel // categorize-labels only
	parsed []catLabel
}

// logCollector runs a log query's pipeline over selected streams and
// groups what passes by final label set.
type logCollector struct {
	pl         *pipeline
	categorize bool
	groups     *labelIndex
	entries    []logEntry
}

const streamCats = 1 << catStream

func (c *logCollector) add(streams []logs.Stream) {
	mask := uint8(allCats)
	if c.categorize {
		mask = streamCats
	}
	lb := c.pl.lb
	for _, s := range streams {
		base := streamLabels(s.Labels)
		fixedGroup := -1 // group of entries without metadata when nothing rewrites labels
		for _, e := range s.Entries {
			line := e.Line
			if len(c.pl.stages) == 0 && e.Metadata.IsEmpty() && fixedGroup >= 0 {
				c.entries = append(c.entries, logEntry{ts: e.Timestamp, line: line, group: fixedGroup})
				continue
			}
			var ok bool
			if line, ok = c.pl.process(base, e.Metadata, e.Timestamp, line); !ok {
				continue
			}
			cl := lb.resolve(nil, "")
			g, _ := c.groups.lookup(lb.hashLabels(cl, mask), cl, mask)
			if len(c.pl.stages) == 0 && e.Metadata.IsEmpty() {
				fixedGroup = g
			}
			le := logEntry{ts: e.Timestamp, line: line, group: g}
			if c.categorize {
				for _, l := range cl {
					switch l.cat {
					case catMeta:
						le.meta = append(le.meta, l)
					case catParsed:
						le.parsed = append(le.parsed, l)
					}
				}
			}
			c.entries = append(c.entries, le)
		}
	}
}

// result keeps the first limit entries in direction order and groups them
// into streams.
func (c *logCollector) result(limit int, dir logs.Direction) Streams {
	slices.SortStableFunc(c.entries, func(a, b logEntry) int {
		switch {
		case a.ts == b.ts:
			return 0
		case (a.ts < b.ts) == (dir == logs.Forward):
			return -1
		}
		return 1
	})
	if len(c.entries) > limit {
		c.entries = c.entries[:limit]
	}
	byGroup := make(map[int]int)
	var out Streams
	for _, e := range c.entries {
		i, ok := byGroup[e.group]
		if !ok {
			i = len(out)
			byGroup[e.group] = i
			out = append(out, Stream{Labels: c.groups.labels[e.group]})
		}
		ent := Entry{Timestamp: e.ts, Line: e.line}
		if c.categorize {
			ent.StructuredMetadata = toLabels(e.meta, allCats)
			ent.Parsed = toLabels(e.parsed, allCats)
		}
		out[i].Entries = append(out[i].Entries, ent)
	}
	sortStreams(out)
	return out
}

func (ev *evaluator) evalLogs(sel *LogSelectorExpr) (Streams, error) {
	pushed, rest := splitPushdown(sel.Pipeline)
	pl, err := compilePipeline(rest)
	if err != nil {
		return nil, err
	}
	limit := ev.p.Limit
	if limit == 0 {
		limit = ev.opts.MaxEntries
	}
	c := &logCollector{pl: pl, categorize: ev.p.CategorizeLabels, groups: newLabelIndex()}
	sp := logs.SelectParams{
		Tenant:      ev.tenant,
		Matchers:    sel.Matchers,
		Start:       ev.start,
		End:         ev.end,
		LineFilters: pushed,
		Direction:   ev.p.Direction,
	}
	if !filters(rest) {
		// Nothing left can drop an entry: the store's first `limit` entries
		// are the answer.
		sp.Limit = limit
		streams, err := ev.selectStreams(sp)
		if err != nil {
			return nil, err
		}
		c.add(streams)
	} else {
		err := ev.scan(sp, func(streams []logs.Stream) bool {
			c.add(streams)
			return len(c.entries) < limit
		})
		if err != nil {
			return nil, err
		}
	}
	ev.stats.PostFilterLines = int64(len(c.entries))
	out := c.result(limit, ev.p.Direction)
	for _, s := range out {
		ev.stats.EntriesReturned += int64(len(s.Entries))
	}
	return out, nil
}
