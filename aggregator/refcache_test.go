package aggregator

import (
	"testing"

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
	c.put(k("1"), refEntry{ref: 1})
	c.put(k("2"), refEntry{ref: 2})
	c.put(k("3"), refEntry{ref: 3}) // a new generation: 1 and 2 move to the previous one
	_, ok := c.get(k("1"))          // used, so promoted into the current generation
	require.True(t, ok)
	c.put(k("4"), refEntry{ref: 4}) // another generation: 2 was not used and is gone
	_, ok = c.get(k("2"))
	require.False(t, ok)
	e, ok := c.get(k("1"))
	require.True(t, ok)
	require.EqualValues(t, 1, e.ref)
}
