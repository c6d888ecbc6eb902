package query

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
)

func TestMergeStreams(t *testing.T) {
	a := labels.FromStrings("app", "a")
	b := labels.FromStrings("app", "b")
	e := func(ts int64, line string) logs.Entry { return logs.Entry{Timestamp: ts, Line: line} }
	// Two aggregators' answers: stream a is on both (a replica), with one
	// entry on both and one entry whose line differs at the same time.
	answers := [][]logs.Stream{
		{{Labels: a, Entries: []logs.Entry{e(3, "x"), e(1, "y")}}, {Labels: b, Entries: []logs.Entry{e(2, "z")}}},
		{{Labels: a, Entries: []logs.Entry{e(3, "x"), e(3, "w")}}},
	}
	for _, tc := range []struct {
		name  string
		dir   logs.Direction
		limit int
		want  []logs.Stream
	}{
		{"backward, no limit", logs.Backward, 0, []logs.Stream{
			{Labels: a, Entries: []logs.Entry{e(3, "w"), e(3, "x"), e(1, "y")}},
			{Labels: b, Entries: []logs.Entry{e(2, "z")}},
		}},
		{"forward", logs.Forward, 0, []logs.Stream{
			{Labels: a, Entries: []logs.Entry{e(1, "y"), e(3, "w"), e(3, "x")}},
			{Labels: b, Entries: []logs.Entry{e(2, "z")}},
		}},
		{"backward limit 2 over streams", logs.Backward, 2, []logs.Stream{
			{Labels: a, Entries: []logs.Entry{e(3, "w"), e(3, "x")}},
		}},
		{"forward limit 2 over streams", logs.Forward, 2, []logs.Stream{
			{Labels: a, Entries: []logs.Entry{e(1, "y")}},
			{Labels: b, Entries: []logs.Entry{e(2, "z")}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each case gets its own copy: merging sorts in place.
			var in [][]logs.Stream
			for _, ans := range answers {
				var cp []logs.Stream
				for _, st := range ans {
					cp = append(cp, logs.Stream{Labels: st.Labels, Entries: append([]logs.Entry(nil), st.Entries...)})
				}
				in = append(in, cp)
			}
			require.Equal(t, tc.want, MergeStreams(in, tc.dir, tc.limit))
		})
	}
}

func TestMergeTraces(t *testing.T) {
	answer := func(ids ...byte) ptrace.Traces {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "svc")
		ss := rs.ScopeSpans().AppendEmpty()
		for _, id := range ids {
			s := ss.Spans().AppendEmpty()
			s.SetSpanID(pcommon.SpanID{id})
			s.SetName(string('a' + rune(id)))
		}
		return td
	}
	got := MergeTraces([]ptrace.Traces{answer(1, 2), answer(2, 3), answer(1)})
	var names []string
	rss := got.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				names = append(names, spans.At(k).Name())
			}
		}
	}
	require.Equal(t, []string{"b", "c", "d"}, names)
	require.Equal(t, 2, rss.Len(), "a resource left with no new span is dropped")
}

// streamingStore is a querier that also streams.
type streamingStore struct{ logs.Querier }

func (streamingStore) SelectStream(context.Context, logs.SelectParams, func(labels.Labels, *logs.Entry) error) error {
	return errStreamCalled
}

var errStreamCalled = errors.New("stream called")

func TestDedupLogsStreamsOnlyOverAStreamer(t *testing.T) {
	_, ok := DedupLogs(logqltest.New()).(logs.Streamer)
	require.False(t, ok, "a wrapper over a plain querier must not claim to stream")
	st, ok := DedupLogs(streamingStore{logqltest.New()}).(logs.Streamer)
	require.True(t, ok)
	err := st.SelectStream(context.Background(), logs.SelectParams{}, func(labels.Labels, *logs.Entry) error { return nil })
	require.ErrorIs(t, err, errStreamCalled)
}
