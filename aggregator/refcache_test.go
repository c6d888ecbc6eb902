package aggregator

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

func TestSeriesKey(t *testing.T) {
	symbols := []string{"", "__name__", "up", "job", "a", "b", "ab"}
	key := func(refs ...uint32) string {
		k, err := seriesKey(nil, refs, symbols)
		require.NoError(t, err)
		return string(k)
	}
	require.Equal(t, key(1, 2, 3, 4), key(1, 2, 3, 4))
	// Length prefixes keep different splits of the same bytes apart.
	require.NotEqual(t, key(3, 6), key(3, 4))
	require.NotEqual(t, key(4, 5), key(6, 0))

	_, err := seriesKey(nil, []uint32{1}, symbols)
	require.ErrorContains(t, err, "odd number")
	_, err = seriesKey(nil, []uint32{1, 99}, symbols)
	require.ErrorContains(t, err, "outside of symbols table")
}

func TestRefCacheGenerations(t *testing.T) {
	c := newRefCache(2)
	k := func(s string) []byte { return []byte(s) }
	ref := func(key string) (storage.SeriesRef, bool) {
		i, ok := c.get(k(key))
		if !ok {
			return 0, false
		}
		return c.entry(i).ref, true
	}
	c.add(k("1"), labels.EmptyLabels(), 1)
	c.add(k("2"), labels.EmptyLabels(), 2)
	c.add(k("3"), labels.EmptyLabels(), 3) // a new generation: 1 and 2 move to the previous one
	_, ok := ref("1")                      // used, so promoted into the current generation
	require.True(t, ok)
	c.add(k("4"), labels.EmptyLabels(), 4) // another generation: 2 was not used and is gone
	_, ok = ref("2")
	require.False(t, ok)
	r, ok := ref("1")
	require.True(t, ok)
	require.EqualValues(t, 1, r)
}

// Look-ups in arrival order are answered by the predicted entry; out of
// order, by the index; both give the same entries, also for keys that are
// prefixes of each other and keys larger than an arena chunk.
func TestRefCacheOrder(t *testing.T) {
	c := newRefCache(1000)
	keys := []string{"a", "ab", "abc", "", strings.Repeat("x", arenaChunk+1), "b"}
	for i, key := range keys {
		c.add([]byte(key), labels.FromStrings("k", key), storage.SeriesRef(i+1))
	}
	orders := [][]int{{0, 1, 2, 3, 4, 5}, {5, 4, 3, 2, 1, 0}, {2, 0, 5, 1, 3, 4}, {0, 1, 2, 3, 4, 5}}
	for _, order := range orders {
		for _, j := range order {
			i, ok := c.get([]byte(keys[j]))
			require.True(t, ok, "key %d", j)
			e := c.entry(i)
			require.Equal(t, keys[j], e.key)
			require.EqualValues(t, j+1, e.ref)
			require.Equal(t, keys[j], e.ls.Get("k"))
		}
	}
	_, ok := c.get([]byte("abcd"))
	require.False(t, ok)
	// Updating a reference through the entry is seen by the next look-up.
	i, _ := c.get([]byte("ab"))
	c.entry(i).ref = 99
	i, _ = c.get([]byte("ab"))
	require.EqualValues(t, 99, c.entry(i).ref)
}

// The predicted entry is matched against a series' symbols without building
// its key: only the exact label set matches.
func TestRefCachePredicted(t *testing.T) {
	symbols := []string{"", "__name__", "up", "job", "a", "ab", strings.Repeat("v", 200)}
	c := newRefCache(10)
	add := func(refs ...uint32) {
		key, err := seriesKey(nil, refs, symbols)
		require.NoError(t, err)
		c.add(key, labels.EmptyLabels(), 0)
	}
	add(1, 2, 3, 4)
	add(1, 2, 3, 6)
	for _, tc := range []struct {
		refs []uint32
		ok   bool
	}{
		{[]uint32{1, 2, 3, 4}, true},
		{[]uint32{1, 2, 3, 5}, false}, // same prefix, longer value
		{[]uint32{1, 2}, false},       // a prefix of the key
		{[]uint32{1, 2, 3, 4, 3, 4}, false},
		{[]uint32{1, 2, 3, 99}, false}, // out of the symbols table
		{[]uint32{1, 2, 3}, false},     // odd
		{[]uint32{}, false},
	} {
		c.next = 0
		i, ok := c.predicted(tc.refs, symbols)
		require.Equal(t, tc.ok, ok, "refs %v", tc.refs)
		if ok {
			require.Equal(t, 0, i)
			require.Equal(t, 1, c.next)
		}
	}
	c.next = 1
	_, ok := c.predicted([]uint32{1, 2, 3, 6}, symbols)
	require.True(t, ok, "a value longer than 127 bytes has a two-byte length")
	require.Equal(t, 2, c.next)
	_, ok = c.predicted([]uint32{1, 2, 3, 4}, symbols)
	require.False(t, ok, "nothing is predicted past the last entry")
}

func BenchmarkRefCacheInOrder(b *testing.B) {
	const n = 100_000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "__name__\x00metric_%d\x00instance\x00host-%d:9100\x00job\x00node", i%500, i/500)
	}
	c := newRefCache(2 * n)
	for i, k := range keys {
		c.add(k, labels.EmptyLabels(), storage.SeriesRef(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, k := range keys {
			if _, ok := c.get(k); !ok {
				b.Fatal("miss")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/lookup")
}

func BenchmarkRefCacheShuffled(b *testing.B) {
	const n = 100_000
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "__name__\x00metric_%d\x00instance\x00host-%d:9100\x00job\x00node", i%500, i/500)
	}
	c := newRefCache(2 * n)
	for i, k := range keys {
		c.add(k, labels.EmptyLabels(), storage.SeriesRef(i))
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, k := range keys {
			if _, ok := c.get(k); !ok {
				b.Fatal("miss")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/lookup")
}
