package aggregator

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// refCache maps a series, as it arrives on the wire, to its label set and
// TSDB reference, so a series seen before is appended without building its
// labels or looking it up by hash in the head. The key is the series'
// label names and values, length-prefixed, built in a reused buffer;
// a map lookup with string(buf) does not allocate.
//
// It has two generations: entries not used for a whole generation are
// dropped when the next one starts, which bounds memory to about two
// generations of active series without tracking recency per entry. A stale
// TSDB reference (a series the head has since dropped) is harmless: the TSDB
// falls back to the label set.
type refCache struct {
	cur, prev map[string]refEntry
	maxSize   int
}

type refEntry struct {
	ls  labels.Labels
	ref storage.SeriesRef
	md  metadata.Metadata // last metadata recorded for the series
}

func newRefCache(maxSize int) *refCache {
	return &refCache{cur: make(map[string]refEntry), prev: map[string]refEntry{}, maxSize: maxSize}
}

func (c *refCache) get(key []byte) (refEntry, bool) {
	if e, ok := c.cur[string(key)]; ok {
		return e, true
	}
	if e, ok := c.prev[string(key)]; ok {
		c.put(key, e)
		return e, true
	}
	return refEntry{}, false
}

func (c *refCache) put(key []byte, e refEntry) {
	if len(c.cur) >= c.maxSize {
		c.prev = c.cur
		c.cur = make(map[string]refEntry, len(c.prev))
	}
	c.cur[string(key)] = e
}
