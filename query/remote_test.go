package query

import (
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"
)

// The label endpoints of the aggregators get matchers as a selector string;
// it must parse back to the same matchers, whatever the names and values hold.
func TestMatchersStringRoundTrips(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, ms := range [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, "__name__", "up")},
		{labels.MustNewMatcher(labels.MatchEqual, "job", `a"b\c`), labels.MustNewMatcher(labels.MatchNotEqual, "x", "")},
		{labels.MustNewMatcher(labels.MatchRegexp, "service.name", "api|web"), labels.MustNewMatcher(labels.MatchNotRegexp, "ünï", ".+")},
	} {
		got, err := p.ParseMetricSelector(matchersString(ms))
		require.NoError(t, err, matchersString(ms))
		require.Len(t, got, len(ms))
		for i := range ms {
			require.Equal(t, ms[i].String(), got[i].String())
		}
	}
}

// countingSeries counts how often its labels are built, as a remote-read
// series builds them from protobuf on every call.
type countingSeries struct {
	storage.Series
	ls    labels.Labels
	calls *int
}

func (s countingSeries) Labels() labels.Labels { *s.calls++; return s.ls }

type sliceSet struct {
	series []storage.Series
	i      int
	err    error
}

func (s *sliceSet) Next() bool                        { s.i++; return s.i <= len(s.series) }
func (s *sliceSet) At() storage.Series                { return s.series[s.i-1] }
func (s *sliceSet) Err() error                        { return s.err }
func (s *sliceSet) Warnings() annotations.Annotations { return nil }

// Merging the sets of several aggregators compares labels many times per
// series; each remote series must build its labels once.
func TestRemoteSetBuildsLabelsOnce(t *testing.T) {
	calls := 0
	var series []storage.Series
	for i := range 50 {
		series = append(series, countingSeries{ls: labels.FromStrings("__name__", "m", "i", fmt.Sprintf("%03d", i)), calls: &calls})
	}
	sets := []storage.SeriesSet{
		&remoteSet{SeriesSet: &sliceSet{series: series[:20]}},
		&remoteSet{SeriesSet: &sliceSet{series: series[20:35]}},
		&remoteSet{SeriesSet: &sliceSet{series: series[35:]}},
	}
	merged := storage.NewMergeSeriesSet(sets, 0, storage.ChainedSeriesMerge)
	n := 0
	for merged.Next() {
		_ = merged.At().Labels()
		n++
	}
	require.NoError(t, merged.Err())
	require.Equal(t, 50, n)
	require.Equal(t, 50, calls, "labels built once per series")

	// A failing aggregator's error says which one and what it holds.
	rs := &remoteSet{SeriesSet: &sliceSet{err: errors.New("connection refused")}, wrap: (&aggregatorQuerier{ep: Endpoint{Name: "agg-2", Addr: "h:1", Holds: "partitions 3, 7"}}).unavailable}
	require.False(t, rs.Next())
	require.ErrorContains(t, rs.Err(), "aggregator agg-2 (h:1) unavailable, partitions 3, 7 may be missing")
}
