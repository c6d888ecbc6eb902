package bus

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/internal/bus/codec"
)

func localBatch(n int) []codec.LocalSample {
	out := make([]codec.LocalSample, n)
	for i := range out {
		out[i] = codec.LocalSample{Labels: labels.FromStrings("__name__", "m", "i", fmt.Sprint(i)), Ref: uint64(i + 1), T: 1, V: float64(i)}
	}
	return out
}

func TestHandoff(t *testing.T) {
	now := time.Unix(1000, 0)
	newHandoff := func(maxSamples int64) *Handoff {
		h := NewHandoff(maxSamples*batchSize(localBatch(1)), prometheus.NewRegistry())
		h.now = func() time.Time { return now }
		return h
	}

	t.Run("take once", func(t *testing.T) {
		h := newHandoff(100)
		h.Put("a", localBatch(3))
		got, ok := h.Take("a")
		require.True(t, ok)
		require.Len(t, got, 3)
		_, ok = h.Take("a")
		require.False(t, ok, "a batch is taken once: a redelivery is decoded")
		_, ok = h.Take("never-put")
		require.False(t, ok)
		require.Equal(t, 1.0, testutil.ToFloat64(h.taken))
		require.Zero(t, h.bytes)
	})

	t.Run("byte bound drops the oldest", func(t *testing.T) {
		h := newHandoff(10)
		h.Put("a", localBatch(4))
		h.Put("b", localBatch(4))
		h.Put("c", localBatch(4)) // 12 > 10: a goes
		_, ok := h.Take("a")
		require.False(t, ok)
		for _, id := range []string{"b", "c"} {
			_, ok := h.Take(id)
			require.True(t, ok, id)
		}
		require.Equal(t, 1.0, testutil.ToFloat64(h.expired))
		require.Zero(t, h.bytes)
	})

	t.Run("untaken batches age out", func(t *testing.T) {
		h := newHandoff(1000)
		h.Put("old", localBatch(1))
		now = now.Add(handoffMaxAge)
		h.Put("new", localBatch(1))
		_, ok := h.Take("old")
		require.False(t, ok)
		_, ok = h.Take("new")
		require.True(t, ok)
		require.Equal(t, 1.0, testutil.ToFloat64(h.expired))
	})

	t.Run("a republished batch replaces its entry", func(t *testing.T) {
		h := newHandoff(1000)
		h.Put("a", localBatch(2))
		h.Put("a", localBatch(5))
		got, ok := h.Take("a")
		require.True(t, ok)
		require.Len(t, got, 5)
		require.Zero(t, h.bytes)
	})

	t.Run("bookkeeping stays bounded", func(t *testing.T) {
		h := newHandoff(1000)
		// One batch nobody takes (a partition another aggregator owns)
		// while thousands pass through.
		h.Put("stuck", localBatch(1))
		for i := range 5000 {
			id := fmt.Sprint(i)
			h.Put(id, localBatch(1))
			_, ok := h.Take(id)
			require.True(t, ok)
			if i == 2500 {
				now = now.Add(handoffMaxAge)
			}
		}
		_, ok := h.Take("stuck")
		require.False(t, ok)
		require.Less(t, len(h.fifo)-h.head, 10)
		require.Less(t, len(h.fifo), 200)
	})

	t.Run("wanted partitions", func(t *testing.T) {
		h := newHandoff(10)
		require.False(t, h.Wants(0), "nothing is wanted before an aggregator says so")
		h.SetWanted([]int{1, 3, 9}, 4)
		for p, want := range []bool{false, true, false, true} {
			require.Equal(t, want, h.Wants(p), "partition %d", p)
		}
		require.False(t, h.Wants(4))
		require.False(t, h.Wants(-1))
	})
}

func BenchmarkHandoffPutTake(b *testing.B) {
	h := NewHandoff(64<<20, prometheus.NewRegistry())
	batch := localBatch(3000)
	ids := make([]string, 64)
	for i := range ids {
		ids[i] = fmt.Sprint("agent-1-", i)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		id := ids[i%len(ids)]
		h.Put(id, batch)
		if _, ok := h.Take(id); !ok {
			b.Fatal("not taken")
		}
	}
}
