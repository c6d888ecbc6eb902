package vlogs

import (
	"cmp"
	"context"
	"errors"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
)

// testData is a set of streams with lines that tempt a query builder:
// quotes, backslashes, pipes, LogsQL syntax, newlines, other cases.
func testData(base int64) []logs.Stream {
	return []logs.Stream{
		{Labels: labels.FromStrings("app", "api", "env", "prod"), Entries: []logs.Entry{
			entry(base+1, "GET /users 200", "trace_id", "t1"),
			entry(base+2, "POST /login 500 ERROR", "trace_id", "t2", "user", "bob"),
			entry(base+3, `quote " and \ backslash | pipe`),
			entry(base+4, "multi\nline a.b"),
			entry(base+5, `_msg:* or "*" } | limit 1`),
		}},
		{Labels: labels.FromStrings("app", "api", "env", "dev"), Entries: []logs.Entry{
			entry(base+6, "GET /health 200"),
			entry(base+7, "debug: cache miss"),
			entry(base+8, "axb error"),
		}},
		{Labels: labels.FromStrings("app", "web", "env", "prod", "team", `x"y\z`), Entries: []logs.Entry{
			entry(base+9, "render ok"),
			entry(base+10, "render error: timeout"),
			entry(base+11, ""),
		}},
		{Labels: labels.FromStrings("app", "worker", "note", "a\nb"), Entries: []logs.Entry{
			entry(base+12, "job 1 done"),
			entry(base+13, "job 2 failed"),
		}},
	}
}

// oracle selects from data the simple way, as LogQL defines it (no limit).
func oracle(data []logs.Stream, p logs.SelectParams) []logs.Stream {
	keep := func(line string) bool {
		for _, f := range p.LineFilters {
			any := false
			for _, v := range f.Values {
				switch f.Op {
				case logs.LineContains, logs.LineNotContains:
					any = any || strings.Contains(line, v)
				default:
					any = any || regexp.MustCompile(v).MatchString(line)
				}
			}
			if any != (f.Op == logs.LineContains || f.Op == logs.LineMatches) {
				return false
			}
		}
		return true
	}
	var out []logs.Stream
next:
	for _, st := range data {
		for _, m := range p.Matchers {
			if !m.Matches(st.Labels.Get(m.Name)) {
				continue next
			}
		}
		var es []logs.Entry
		for _, e := range st.Entries {
			if e.Timestamp >= p.Start && e.Timestamp < p.End && keep(e.Line) {
				es = append(es, e)
			}
		}
		if p.Direction == logs.Backward {
			slices.Reverse(es)
		}
		if len(es) > 0 {
			out = append(out, logs.Stream{Labels: st.Labels, Entries: es})
		}
	}
	slices.SortFunc(out, func(a, b logs.Stream) int { return labels.Compare(a.Labels, b.Labels) })
	return out
}

func TestSelectMatchersAndLineFilters(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	data := testData(base)
	require.NoError(t, s.Append("", data))
	searchable(s)

	eq := func(n, v string) *labels.Matcher { return mustMatcher(t, labels.MatchEqual, n, v) }
	neq := func(n, v string) *labels.Matcher { return mustMatcher(t, labels.MatchNotEqual, n, v) }
	re := func(n, v string) *labels.Matcher { return mustMatcher(t, labels.MatchRegexp, n, v) }
	nre := func(n, v string) *labels.Matcher { return mustMatcher(t, labels.MatchNotRegexp, n, v) }
	lf := func(op logs.LineFilterOp, vs ...string) logs.LineFilter { return logs.LineFilter{Op: op, Values: vs} }
	anyApp := re("app", ".+")

	for name, tc := range map[string]struct {
		matchers []*labels.Matcher
		filters  []logs.LineFilter
		want     int // entries expected, to check the oracle is not vacuous
	}{
		"equal":                          {matchers: []*labels.Matcher{eq("app", "api")}, want: 8},
		"equal value with quote":         {matchers: []*labels.Matcher{eq("team", `x"y\z`)}, want: 3},
		"equal value with newline":       {matchers: []*labels.Matcher{eq("note", "a\nb")}, want: 2},
		"not equal keeps missing label":  {matchers: []*labels.Matcher{anyApp, neq("env", "prod")}, want: 5},
		"not equal empty":                {matchers: []*labels.Matcher{anyApp, neq("env", "")}, want: 11},
		"equal empty is missing":         {matchers: []*labels.Matcher{anyApp, eq("env", "")}, want: 2},
		"regexp is anchored":             {matchers: []*labels.Matcher{re("app", "ap")}, want: 0},
		"regexp alternation":             {matchers: []*labels.Matcher{re("app", "api|web")}, want: 11},
		"regexp case insensitive":        {matchers: []*labels.Matcher{re("app", "(?i)API")}, want: 8},
		"regexp dot matches newline":     {matchers: []*labels.Matcher{re("note", "a.b")}, want: 2},
		"regexp prefix":                  {matchers: []*labels.Matcher{re("app", "w.*")}, want: 5},
		"regexp with anchors inside":     {matchers: []*labels.Matcher{re("app", "^api$")}, want: 8},
		"not regexp keeps missing label": {matchers: []*labels.Matcher{anyApp, nre("env", "pro.*")}, want: 5},
		"not regexp matching empty":      {matchers: []*labels.Matcher{anyApp, nre("env", "|dev")}, want: 8},
		"regexp matching empty":          {matchers: []*labels.Matcher{anyApp, re("env", "|dev")}, want: 5},
		"all four matcher types": {matchers: []*labels.Matcher{
			eq("app", "api"), neq("env", "dev"), re("env", "p.*"), nre("team", ".+"),
		}, want: 5},
		"contains":                   {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineContains, "200")}, want: 2},
		"contains is case sensitive": {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineContains, "error")}, want: 2},
		"contains any of":            {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineContains, "GET", "job")}, want: 4},
		"contains quote backslash pipe": {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{
			lf(logs.LineContains, `" and \ backslash |`),
		}, want: 1},
		"contains injection attempt": {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{
			lf(logs.LineContains, `"* or _msg:*"`),
		}, want: 0},
		"contains LogsQL literally": {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{
			lf(logs.LineContains, `"*" } | limit`),
		}, want: 1},
		"contains newline":  {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineContains, "multi\nline")}, want: 1},
		"contains empty":    {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineContains, "")}, want: 13},
		"not contains":      {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineNotContains, "render", "job")}, want: 9},
		"not contains pipe": {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineNotContains, "|")}, want: 11},
		"not contains empty drops all": {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{
			lf(logs.LineNotContains, ""),
		}, want: 0},
		"matches":                    {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineMatches, `\d{3}`)}, want: 3},
		"matches is unanchored":      {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineMatches, `rend`)}, want: 2},
		"matches anchored by caller": {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineMatches, `^job [12]`)}, want: 2},
		"matches dot not newline":    {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineMatches, `multi.line`)}, want: 0},
		"matches special chars":      {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineMatches, `" and \\ backslash \| pipe$`)}, want: 1},
		"matches any of":             {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineMatches, `(?i)error`, `^debug`)}, want: 4},
		"matches a.b":                {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineMatches, `a.b`)}, want: 2},
		"not matches":                {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineNotMatches, `\d`)}, want: 7},
		"not matches dot newline":    {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineNotMatches, `multi.line`)}, want: 13},
		"not matches any of":         {matchers: []*labels.Matcher{anyApp}, filters: []logs.LineFilter{lf(logs.LineNotMatches, `^GET`, `^render`)}, want: 9},
		"every filter type": {matchers: []*labels.Matcher{eq("env", "prod")}, filters: []logs.LineFilter{
			lf(logs.LineContains, "e"),
			lf(logs.LineNotContains, "ok"),
			lf(logs.LineMatches, `[A-Z]|\|`),
			lf(logs.LineNotMatches, `^GET`),
		}, want: 1},
	} {
		t.Run(name, func(t *testing.T) {
			for _, dir := range []logs.Direction{logs.Forward, logs.Backward} {
				p := logs.SelectParams{Matchers: tc.matchers, LineFilters: tc.filters, Start: base, End: base + 100, Direction: dir}
				want := oracle(data, p)
				n := 0
				for _, st := range want {
					n += len(st.Entries)
				}
				require.Equal(t, tc.want, n, "oracle")
				require.Equal(t, want, selectAll(t, s, p), "direction %s", dir)
				require.Equal(t, want, streamAll(t, s, p), "stream, direction %s", dir)
			}
		})
	}
}

// streamAll collects what SelectStream hands over, copied, into streams
// sorted as Select sorts them (forward, ties by line and metadata).
func streamAll(t testing.TB, s *Store, p logs.SelectParams) []logs.Stream {
	t.Helper()
	byKey := map[string]*logs.Stream{}
	err := s.SelectStream(context.Background(), p, func(ls labels.Labels, e *logs.Entry) error {
		k := ls.String()
		st := byKey[k]
		if st == nil {
			st = &logs.Stream{Labels: ls}
			byKey[k] = st
		}
		st.Entries = append(st.Entries, logs.Entry{Timestamp: e.Timestamp, Line: strings.Clone(e.Line), Metadata: e.Metadata.Copy()})
		return nil
	})
	require.NoError(t, err)
	var out []logs.Stream
	for _, st := range byKey {
		slices.SortFunc(st.Entries, func(a, b logs.Entry) int {
			if c := cmp.Compare(a.Timestamp, b.Timestamp); c != 0 {
				return c
			}
			if c := strings.Compare(a.Line, b.Line); c != 0 {
				return c
			}
			return labels.Compare(a.Metadata, b.Metadata)
		})
		if p.Direction == logs.Backward {
			slices.Reverse(st.Entries)
		}
		out = append(out, *st)
	}
	slices.SortFunc(out, func(a, b logs.Stream) int { return labels.Compare(a.Labels, b.Labels) })
	return out
}

func TestSelectStreamKeepsDuplicatesAndStops(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	batch := []logs.Stream{{Labels: labels.FromStrings("app", "a"), Entries: []logs.Entry{
		entry(base, "x", "k", "1"), entry(base, "x", "k", "2"), entry(base+1, "y"),
	}}}
	require.NoError(t, s.Append("", batch))
	require.NoError(t, s.Append("", batch))
	searchable(s)
	m := []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}
	p := logs.SelectParams{Matchers: m, Start: base, End: base + 10}
	// Duplicates are handed over as stored; the caller removes them.
	got := streamAll(t, s, p)
	require.Len(t, got, 1)
	require.Len(t, got[0].Entries, 6)

	stop := errors.New("stop")
	calls := 0
	err := s.SelectStream(context.Background(), p, func(labels.Labels, *logs.Entry) error {
		calls++
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, 1, calls)

	p.Limit = 1
	require.Error(t, s.SelectStream(context.Background(), p, func(labels.Labels, *logs.Entry) error { return nil }))
}

func TestSelectLimitAcrossStreams(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	a := labels.FromStrings("app", "a")
	b := labels.FromStrings("app", "b")
	c := labels.FromStrings("app", "c")
	var as, bs, cs []logs.Entry
	for i := range int64(30) {
		switch i % 3 {
		case 0:
			as = append(as, entry(base+i, "line"))
		case 1:
			bs = append(bs, entry(base+i, "line"))
		default:
			cs = append(cs, entry(base+i, "line"))
		}
	}
	// Equal timestamps in two streams: the stream orders them.
	as = append(as, entry(base+100, "tie"))
	bs = append(bs, entry(base+100, "tie"))
	require.NoError(t, s.Append("", []logs.Stream{{Labels: a, Entries: as}, {Labels: b, Entries: bs}, {Labels: c, Entries: cs}}))
	searchable(s)

	all := []*labels.Matcher{mustMatcher(t, labels.MatchRegexp, "app", ".+")}
	for name, tc := range map[string]struct {
		p    logs.SelectParams
		want []logs.Stream
	}{
		"forward": {
			p: logs.SelectParams{Matchers: all, Start: base, End: base + 1000, Limit: 4, Direction: logs.Forward},
			want: []logs.Stream{
				{Labels: a, Entries: []logs.Entry{entry(base, "line"), entry(base+3, "line")}},
				{Labels: b, Entries: []logs.Entry{entry(base+1, "line")}},
				{Labels: c, Entries: []logs.Entry{entry(base+2, "line")}},
			},
		},
		"backward": {
			p: logs.SelectParams{Matchers: all, Start: base, End: base + 1000, Limit: 4, Direction: logs.Backward},
			want: []logs.Stream{
				{Labels: a, Entries: []logs.Entry{entry(base+100, "tie")}},
				{Labels: b, Entries: []logs.Entry{entry(base+100, "tie"), entry(base+28, "line")}},
				{Labels: c, Entries: []logs.Entry{entry(base+29, "line")}},
			},
		},
		"forward cuts a tie by stream": {
			p:    logs.SelectParams{Matchers: all, Start: base + 100, End: base + 1000, Limit: 1, Direction: logs.Forward},
			want: []logs.Stream{{Labels: a, Entries: []logs.Entry{entry(base+100, "tie")}}},
		},
		"backward cuts a tie by stream": {
			p:    logs.SelectParams{Matchers: all, Start: base + 100, End: base + 1000, Limit: 1, Direction: logs.Backward},
			want: []logs.Stream{{Labels: b, Entries: []logs.Entry{entry(base+100, "tie")}}},
		},
		"backward from the end of a range": {
			p: logs.SelectParams{Matchers: all, Start: base, End: base + 20, Limit: 2, Direction: logs.Backward},
			want: []logs.Stream{
				{Labels: a, Entries: []logs.Entry{entry(base+18, "line")}},
				{Labels: b, Entries: []logs.Entry{entry(base+19, "line")}},
			},
		},
		"limit larger than the result": {
			p: logs.SelectParams{Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}, Start: base, End: base + 7, Limit: 100, Direction: logs.Backward},
			want: []logs.Stream{
				{Labels: a, Entries: []logs.Entry{entry(base+6, "line"), entry(base+3, "line"), entry(base, "line")}},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			require.Equal(t, tc.want, selectAll(t, s, tc.p))
		})
	}
}

func TestSelectTimeRange(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	ls := labels.FromStrings("app", "a")
	require.NoError(t, s.Append("", []logs.Stream{{Labels: ls, Entries: []logs.Entry{
		entry(base-1, "before"), entry(base, "start"), entry(base+1, "middle"), entry(base+2, "end"),
	}}}))
	searchable(s)
	m := []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}
	for name, tc := range map[string]struct {
		start, end int64
		want       []string
	}{
		"start inclusive, end exclusive": {start: base, end: base + 2, want: []string{"start", "middle"}},
		"one nanosecond":                 {start: base + 1, end: base + 2, want: []string{"middle"}},
		"empty range":                    {start: base + 1, end: base + 1},
		"all time":                       {start: math.MinInt64 + 1, end: math.MaxInt64, want: []string{"before", "start", "middle", "end"}},
	} {
		t.Run(name, func(t *testing.T) {
			got := selectAll(t, s, logs.SelectParams{Matchers: m, Start: tc.start, End: tc.end, Direction: logs.Forward})
			var lines []string
			for _, st := range got {
				for _, e := range st.Entries {
					lines = append(lines, e.Line)
				}
			}
			require.Equal(t, tc.want, lines)
		})
	}
}

func TestSelectMetadata(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	ls := labels.FromStrings("app", "a", "level", "info")
	in := []logs.Entry{
		// Metadata may share a name with a label or a VictoriaLogs field.
		entry(base, "one", "_msg", "not the line", "app", "other", "level", "warn", "z", "last"),
		entry(base+1, "two", "empty", "", "trace_id", "abc"),
		entry(base+2, "three"),
	}
	require.NoError(t, s.Append("", []logs.Stream{{Labels: ls, Entries: in}}))
	searchable(s)
	got := selectAll(t, s, logs.SelectParams{
		Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")},
		Start:    base, End: base + 10, Direction: logs.Forward,
	})
	require.Equal(t, []logs.Stream{{Labels: ls, Entries: []logs.Entry{
		in[0],
		entry(base+1, "two", "trace_id", "abc"), // an empty value is not stored
		in[2],
	}}}, got)
}

func TestSelectDeduplicates(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	batch := []logs.Stream{{Labels: labels.FromStrings("app", "a"), Entries: []logs.Entry{
		entry(base, "x", "k", "1"), entry(base, "x", "k", "2"), entry(base+1, "y"),
	}}}
	// A redelivered batch is appended twice.
	require.NoError(t, s.Append("", batch))
	require.NoError(t, s.Append("", batch))
	searchable(s)
	m := []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}
	for _, limit := range []int{0, 2, 3, 10} {
		got := selectAll(t, s, logs.SelectParams{Matchers: m, Start: base, End: base + 10, Limit: limit, Direction: logs.Forward})
		want := batch[0].Entries
		if limit > 0 && limit < len(want) {
			want = want[:limit]
		}
		require.Equal(t, []logs.Stream{{Labels: batch[0].Labels, Entries: want}}, got, "limit %d", limit)
	}
}

func TestSelectErrors(t *testing.T) {
	s, _ := openTestStore(t)
	base := baseTime()
	m := []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "a")}
	for name, p := range map[string]logs.SelectParams{
		"no matcher":            {Start: base, End: base + 1},
		"only empty matchers":   {Matchers: []*labels.Matcher{mustMatcher(t, labels.MatchEqual, "app", "")}, Start: base, End: base + 1},
		"end before start":      {Matchers: m, Start: base, End: base - 1},
		"negative limit":        {Matchers: m, Start: base, End: base + 1, Limit: -1},
		"bad regexp":            {Matchers: m, Start: base, End: base + 1, LineFilters: []logs.LineFilter{{Op: logs.LineMatches, Values: []string{"("}}}},
		"unknown filter":        {Matchers: m, Start: base, End: base + 1, LineFilters: []logs.LineFilter{{Op: 42, Values: []string{"x"}}}},
		"bad negative regexp":   {Matchers: m, Start: base, End: base + 1, LineFilters: []logs.LineFilter{{Op: logs.LineNotMatches, Values: []string{"a{2,1}"}}}},
		"cancelled in the call": {Matchers: m, Start: base, End: base + 1},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if name == "cancelled in the call" {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			_, err := s.Select(ctx, p)
			require.Error(t, err)
		})
	}
}

// FuzzSelectQuery checks that no matcher or filter value can change the
// structure of the LogsQL query: it always parses, with one stream filter
// and the value read back as given.
func FuzzSelectQuery(f *testing.F) {
	for _, v := range []string{"", `"`, `\`, `"} or *`, `*"*`, "|", "\x00\xff", "_msg:~\"(\"", "a\nb", "`x`"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "app", v), labels.MustNewMatcher(labels.MatchNotEqual, v+"x", v)}
		qs := selectQuery(ms, []logs.LineFilter{
			{Op: logs.LineContains, Values: []string{v + "a", "b"}},
			{Op: logs.LineNotContains, Values: []string{v + "c"}},
		})
		q, err := parseQuery(qs, 0, 10)
		require.NoError(t, err, qs)
		require.Equal(t, 1, strings.Count(q.String(), "| fields"), qs)
	})
}
