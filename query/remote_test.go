package query

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
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
