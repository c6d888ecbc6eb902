package query

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/aggregator"
	"github.com/pharos-obs/pharos/query/logql"
	"github.com/pharos-obs/pharos/query/logql/logqltest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// selectStreamer gives the in-memory querier a SelectStream, as the real
// log store has.
type selectStreamer struct{ *logqltest.Querier }

func (s selectStreamer) SelectStream(ctx context.Context, p logs.SelectParams, fn func(labels.Labels, *logs.Entry) error) error {
	streams, err := s.Select(ctx, p)
	if err != nil {
		return err
	}
	for _, st := range streams {
		for i := range st.Entries {
			if err := fn(st.Labels, &st.Entries[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// Two aggregators hold overlapping copies (replicas) of the streams; a
// metric query through the streaming fan-out counts every entry once.
func TestRemoteLogsStreamCountsOnce(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	var all []logs.Stream
	for s := range 3 {
		st := logs.Stream{Labels: labels.FromStrings("app", "a", "pod", string(rune('x'+s)))}
		for i := range 5000 { // several frames' worth of lines in all
			st.Entries = append(st.Entries, logs.Entry{Timestamp: base.Add(time.Duration(i+1) * time.Millisecond).UnixNano(),
				Line: strings.Repeat("l", 200)})
		}
		all = append(all, st)
	}
	var addrs []string
	for i := range 2 {
		q := logqltest.New()
		// Aggregator 0 holds streams 0 and 1, aggregator 1 streams 1 and 2.
		require.NoError(t, q.Append("", all[i:i+2]))
		mux := http.NewServeMux()
		aggregator.RegisterLogsReadAPI(mux, selectStreamer{q}, slog.New(slog.DiscardHandler))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		addrs = append(addrs, strings.TrimPrefix(srv.URL, "http://"))
	}
	remote := NewRemoteLogs(StaticEndpoints(addrs), &http.Client{Timeout: 10 * time.Second}, false, slog.New(slog.DiscardHandler))

	seen := 0
	ms, err := logql.ParseMatchers(`{app="a"}`)
	require.NoError(t, err)
	require.NoError(t, remote.SelectStream(context.Background(), logs.SelectParams{Matchers: ms, Start: base.UnixNano(), End: base.Add(time.Hour).UnixNano()},
		func(labels.Labels, *logs.Entry) error { seen++; return nil }))
	require.Equal(t, 4*5000, seen, "the stream hands every copy over; the caller de-duplicates")

	res, err := logql.NewEngine(logql.EngineOpts{MaxEntries: 5000, MaxSeries: 500, Timeout: time.Minute, BatchSize: 10000}).
		InstantVector(context.Background(), remote, "", `sum(count_over_time({app="a"}[1h]))`, base.Add(time.Hour))
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, float64(3*5000), res[0].F)
}
