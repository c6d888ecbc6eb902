package vlengine

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWithStreamEpoch(t *testing.T) {
	e := strconv.FormatUint(streamEpoch.Load(), 10)
	for _, tc := range []struct{ in, want string }{
		{`*`, `*`},
		{`_stream:{}`, `_stream:{}`},
		{`_stream:{"app"="a"}`, `_stream:{"__pharos_epoch"!="` + e + `","app"="a"}`},
		{`_stream:{"app"=~"a.*","env"!="x"} "err"`, `_stream:{"__pharos_epoch"!="` + e + `","app"=~"a.*","env"!="x"} "err"`},
		{`trace_id:="abc" | fields span_id`, `trace_id:="abc" | fields span_id`},
	} {
		require.Equal(t, tc.want, withStreamEpoch(tc.in), tc.in)
		_, err := ParseQuery(tc.in, 1, 2)
		require.NoError(t, err, "%s parses with the epoch", tc.in)
	}
}

func TestEpochMovesOnlyWithNewStreams(t *testing.T) {
	var d durability
	e := streamEpoch.Load()
	for _, step := range []struct {
		before, after uint64
		moves         bool
		why           string
	}{
		{0, 0, false, "no stream registered yet"},
		{0, 3, true, "streams registered by the round's flush (rows buffered before it)"},
		{3, 3, true, "a racing append's streams, counted last time after the flush, are covered now"},
		{3, 3, false, "a round without new streams keeps the cache"},
		{5, 5, true, "new streams"},
		{1, 1, true, "a partition dropped by retention: the count fell"},
	} {
		d.noteStreams(step.before, step.after)
		if step.moves {
			e++
		}
		require.Equal(t, e, streamEpoch.Load(), step.why)
	}
}
