package aggregator

import (
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// refCache maps a series, as it arrives on the wire, to its label set and
// TSDB reference, so a series seen before is appended without building its
// labels or looking it up by hash in the head. The key is the series'
// label names and values, length-prefixed (see seriesKey).
//
// The cache is built for the order series arrive in. An agent sends a
// target's series in the target's exposition order, scrape after scrape,
// so a partition's messages repeat long runs of series in the same order.
// Entries are kept in an array in the order they were last added, with
// their keys back to back in an arena: after one hash look-up finds where
// a run starts, each following series is found by comparing its key with
// the next entry's, which reads memory sequentially instead of probing a
// hash table and chasing a key pointer for every sample. The hash index is
// only the fall-back.
//
// It has two generations: when the current one is full it becomes the
// previous one, and entries still in use move to a fresh current one (in
// arrival order, which re-sorts them) on their next use. That bounds memory
// to about two generations of active series without tracking recency. A
// stale TSDB reference (a series the head has since dropped) is harmless:
// the TSDB falls back to the label set.
type refCache struct {
	cur, prev *refGen
	maxSize   int
	next      int // index in cur of the entry predicted to come next

	// Look-ups by how they were answered, since the last takeStats.
	hitsPredicted, hitsIndex, hitsPrev, misses int
}

// takeStats returns and resets the look-up counts.
func (c *refCache) takeStats() (predicted, index, prev, misses int) {
	predicted, index, prev, misses = c.hitsPredicted, c.hitsIndex, c.hitsPrev, c.misses
	c.hitsPredicted, c.hitsIndex, c.hitsPrev, c.misses = 0, 0, 0, 0
	return
}

type refGen struct {
	entries []refEntry
	index   map[string]int32 // key (pointing into an arena chunk) → entries index
	chunks  [][]byte         // arena; a chunk never grows, so keys into it stay valid
}

// refEntry is kept small because entries are read in sequence.
type refEntry struct {
	key string // in the generation's arena
	ls  labels.Labels
	ref storage.SeriesRef
}

// arenaChunk is the size of an arena chunk; larger keys get their own.
const arenaChunk = 256 << 10

func newRefCache(maxSize int) *refCache {
	return &refCache{cur: newRefGen(0), prev: newRefGen(0), maxSize: max(maxSize, 1)}
}

func newRefGen(sizeHint int) *refGen {
	return &refGen{entries: make([]refEntry, 0, sizeHint), index: make(map[string]int32, sizeHint)}
}

// predicted reports whether the entry expected next is the series with
// these label refs, comparing the symbols with its key where they lie, so
// that a hit builds no key. Invalid refs are no match (seriesKey reports
// them).
func (c *refCache) predicted(refs []uint32, symbols []string) (int, bool) {
	i := c.next
	if i >= len(c.cur.entries) || len(refs)%2 != 0 {
		return 0, false
	}
	key := c.cur.entries[i].key
	for _, r := range refs {
		if int(r) >= len(symbols) {
			return 0, false
		}
		sym := symbols[r]
		n, w := uvarint(key)
		if w <= 0 || n != uint64(len(sym)) || len(key)-w < len(sym) || key[w:w+len(sym)] != sym {
			return 0, false
		}
		key = key[w+len(sym):]
	}
	if key != "" {
		return 0, false
	}
	c.next = i + 1
	c.hitsPredicted++
	return i, true
}

// get returns the index in c.cur of key's entry, moving it there from the
// previous generation if need be.
func (c *refCache) get(key []byte) (int, bool) {
	g := c.cur
	if i := c.next; i < len(g.entries) && g.entries[i].key == string(key) {
		c.next = i + 1
		c.hitsPredicted++
		return i, true
	}
	if i, ok := g.index[string(key)]; ok {
		c.next = int(i) + 1
		c.hitsIndex++
		return int(i), true
	}
	if i, ok := c.prev.index[string(key)]; ok {
		e := &c.prev.entries[i]
		c.hitsPrev++
		return c.add(key, e.ls, e.ref), true
	}
	c.misses++
	return 0, false
}

// entry returns the current generation's entry i, as returned by get or add.
func (c *refCache) entry(i int) *refEntry { return &c.cur.entries[i] }

// add appends a new entry to the current generation, starting a new
// generation first if it is full, and returns its index.
func (c *refCache) add(key []byte, ls labels.Labels, ref storage.SeriesRef) int {
	if len(c.cur.entries) >= c.maxSize {
		c.prev = c.cur
		c.cur = newRefGen(len(c.prev.entries))
	}
	g := c.cur
	k := g.store(key)
	i := len(g.entries)
	g.entries = append(g.entries, refEntry{key: k, ls: ls, ref: ref})
	g.index[k] = int32(i)
	c.next = i + 1
	return i
}

// store copies key into the arena and returns it as a string that shares
// the arena's memory.
func (g *refGen) store(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	n := len(g.chunks)
	if n == 0 || cap(g.chunks[n-1])-len(g.chunks[n-1]) < len(key) {
		g.chunks = append(g.chunks, make([]byte, 0, max(arenaChunk, len(key))))
		n++
	}
	c := g.chunks[n-1]
	start := len(c)
	c = append(c, key...)
	g.chunks[n-1] = c
	// The chunk's bytes are never written again, so a string over them is
	// immutable as strings must be.
	return unsafe.String(&c[start], len(key))
}

// uvarint decodes a varint at the start of s, like binary.Uvarint without
// converting s to a slice.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < 10; i++ {
		b := s[i]
		if b < 0x80 {
			return x | uint64(b)<<shift, i + 1
		}
		x |= uint64(b&0x7f) << shift
		shift += 7
	}
	return 0, 0
}
