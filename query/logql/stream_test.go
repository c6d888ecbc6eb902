package logql

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/query/limits"
	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// streamQuerier adds logs.Streamer to a logqltest.Querier: SelectStream
// hands every matching entry over in a random order, duplicates included,
// and metadata in a buffer it overwrites afterwards, as the contract allows.
type streamQuerier struct {
	*logqltest.Querier
	rnd *rand.Rand
}

func (q *streamQuerier) SelectStream(ctx context.Context, p logs.SelectParams, fn func(ls labels.Labels, e *logs.Entry) error) error {
	if p.Limit != 0 {
		return fmt.Errorf("limit %d", p.Limit)
	}
	streams, err := q.Select(ctx, p)
	if err != nil {
		return err
	}
	type item struct{ s, e int }
	var items []item
	for si, s := range streams {
		for ei := range s.Entries {
			items = append(items, item{si, ei})
		}
	}
	q.rnd.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	for _, it := range items {
		s := streams[it.s]
		e := s.Entries[it.e]
		line := []byte(e.Line)
		e.Line = string(line)
		if err := fn(s.Labels, &e); err != nil {
			return err
		}
		for i := range line {
			line[i] = 0
		}
	}
	return nil
}

// TestStreamingMatchesPaging evaluates metric queries over random data with
// duplicates and equal timestamps twice: streamed from a Streamer that
// repeats the duplicates in a random order, and paged in small batches
// from a store holding each entry once. The results must be identical.
func TestStreamingMatchesPaging(t *testing.T) {
	queries := []string{
		`count_over_time({app="a"}[20s])`,
		`sum(count_over_time({app="a"}[20s]))`,
		`sum by (pod) (rate({app="a"} |= "level" [30s]))`,
		`bytes_over_time({app="a"}[20s])`,
		`sum_over_time({app="a"} | logfmt | unwrap n [20s])`,
		`avg_over_time({app="a"} | logfmt | unwrap n [20s])`,
		`min_over_time({app="a"} | logfmt | unwrap n [20s]) by (level)`,
		`max_over_time({app="a"} | logfmt | unwrap n [20s])`,
		`first_over_time({app="a"} | logfmt | unwrap n [20s])`,
		`last_over_time({app="a"} | logfmt | unwrap n [20s]) by (pod)`,
		`quantile_over_time(0.9, {app="a"} | logfmt | unwrap n [30s]) by (level)`,
		`stddev_over_time({app="a"} | logfmt | unwrap n [30s])`,
		`sum by (level) (count_over_time({app="a"} | logfmt [20s])) / ignoring(level) group_left sum(count_over_time({app="a"}[20s]))`,
		`max(sum by (pod) (count_over_time({app="a"} | trace != "" [20s])))`,
		`absent_over_time({app="a", pod="p9"}[20s])`,
	}
	for seed := range uint64(20) {
		rnd := rand.New(rand.NewPCG(seed, 1))
		unique, dups := logqltest.New(), logqltest.New()
		for pod := range 3 {
			ls := labels.FromStrings("app", "a", "pod", fmt.Sprintf("p%d", pod))
			var es []logs.Entry
			for range 20 + rnd.IntN(40) {
				e := logs.Entry{
					// Few distinct times, so that many entries share one.
					Timestamp: ns(float64(rnd.IntN(25)) * 5),
					Line:      fmt.Sprintf("level=%s n=%d", []string{"info", "warn", "error"}[rnd.IntN(3)], rnd.IntN(5)),
				}
				if rnd.IntN(3) == 0 {
					e.Metadata = labels.FromStrings("trace", fmt.Sprint(rnd.IntN(2)))
				}
				es = append(es, e)
			}
			require.NoError(t, unique.Append("t", []logs.Stream{{Labels: ls, Entries: dedupEntries(es)}}))
			// Store every entry once, some twice or three times.
			all := es
			for _, e := range es {
				for range rnd.IntN(3) {
					all = append(all, e)
				}
			}
			require.NoError(t, dups.Append("t", []logs.Stream{{Labels: ls, Entries: all}}))
		}
		paging := NewEngine(EngineOpts{BatchSize: 3})
		streaming := NewEngine(EngineOpts{})
		sq := &streamQuerier{Querier: dups, rnd: rnd}
		for _, query := range queries {
			for _, p := range []Params{
				{Query: query, Start: at(20), End: at(130), Step: 10 * time.Second},
				{Query: query, Start: at(60), End: at(60)},
			} {
				want, err := paging.Query(context.Background(), unique, "t", p)
				require.NoError(t, err, query)
				got, err := streaming.Query(context.Background(), sq, "t", p)
				require.NoError(t, err, query)
				require.Equal(t, want.Data, got.Data, "seed %d: %s", seed, query)
			}
		}
	}
}

// dedupEntries drops exact duplicates, keeping the first of each.
func dedupEntries(es []logs.Entry) []logs.Entry {
	seen := map[string]bool{}
	var out []logs.Entry
	for _, e := range es {
		k := fmt.Sprintf("%d\x00%s\x00%s", e.Timestamp, e.Line, e.Metadata)
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// TestStreamingStops checks that an extraction failing part-way (too many
// series) stops the stream and reports the failure.
func TestStreamingStops(t *testing.T) {
	q := logqltest.New()
	for i := range 5 {
		require.NoError(t, q.Append("t", []logs.Stream{{
			Labels:  labels.FromStrings("app", "a", "pod", fmt.Sprint(i)),
			Entries: []logs.Entry{{Timestamp: ns(10), Line: "x"}},
		}}))
	}
	e := NewEngine(EngineOpts{MaxSeries: 2})
	_, err := e.Query(context.Background(), &streamQuerier{Querier: q, rnd: rand.New(rand.NewPCG(1, 2))}, "t",
		Params{Query: `count_over_time({app="a"}[1m])`, Start: at(20), End: at(20)})
	require.NotNil(t, limits.As(err), "%v", err)
	require.Equal(t, limits.Series, limits.As(err).Limit)
}
