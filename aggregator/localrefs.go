package aggregator

import (
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// localRefs maps a series handed off in-process (bus.Handoff) to its
// stored label set and TSDB reference. It is refCache's counterpart for
// samples that arrive as label sets rather than wire symbols: the agent's
// label sets come from the scrape cache, the same strings scrape after
// scrape, so comparing them usually stops at their pointers. Like
// refCache it predicts that series come in the order they came last time,
// with a hash index on the agent's series reference as the fall-back.
//
// It is bounded by emptying it when full: the series still in use are
// resolved again from their labels on their next sample.
type localRefs struct {
	entries []localEntry
	index   map[localKey]int32
	next    int
	maxSize int

	hitsPredicted, hitsIndex, misses int
}

type localKey struct {
	ref    uint64 // the agent's series reference
	tenant string // the tenant label value, "" for the default tenant
}

type localEntry struct {
	key localKey
	src labels.Labels // as the agent sent it
	ls  labels.Labels // as stored: with the tenant label of a tenant's series
	ref storage.SeriesRef
}

func newLocalRefs(maxSize int) *localRefs {
	return &localRefs{index: map[localKey]int32{}, maxSize: max(maxSize, 1)}
}

// get returns the entry of the series src with agent reference ref of
// tenant, or nil. The entry is valid until the next add.
func (c *localRefs) get(ref uint64, src labels.Labels, tenant string) *localEntry {
	k := localKey{ref: ref, tenant: tenant}
	if i := c.next; i < len(c.entries) {
		if e := &c.entries[i]; e.key == k && labels.Equal(e.src, src) {
			c.next = i + 1
			c.hitsPredicted++
			return e
		}
	}
	if i, ok := c.index[k]; ok {
		// A different label set under the same reference is a hash
		// collision: a miss, whose add takes the index over.
		if e := &c.entries[i]; labels.Equal(e.src, src) {
			c.next = int(i) + 1
			c.hitsIndex++
			return e
		}
	}
	c.misses++
	return nil
}

// add records a series and returns its entry, valid until the next add.
// Its TSDB reference is 0 until the first append sets it.
func (c *localRefs) add(ref uint64, src labels.Labels, tenant string, ls labels.Labels) *localEntry {
	if len(c.entries) >= c.maxSize {
		clear(c.entries)
		c.entries = c.entries[:0]
		c.index = make(map[localKey]int32, c.maxSize)
	}
	k := localKey{ref: ref, tenant: tenant}
	i := len(c.entries)
	c.entries = append(c.entries, localEntry{key: k, src: src, ls: ls})
	c.index[k] = int32(i)
	c.next = i + 1
	return &c.entries[i]
}

// takeStats returns and resets the look-up counts.
func (c *localRefs) takeStats() (predicted, index, misses int) {
	predicted, index, misses = c.hitsPredicted, c.hitsIndex, c.misses
	c.hitsPredicted, c.hitsIndex, c.misses = 0, 0, 0
	return
}
