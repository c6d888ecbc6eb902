package logql

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
)

// validQueries maps queries to their canonical String(); "" means the query
// prints as written.
var validQueries = []struct{ in, want string }{
	{`{app="x"}`, ``},
	{`{app="x", b!="y", c=~"re.*", d!~"z|w"}`, ``},
	{`{ app = "x" , }`, `{app="x"}`},
	{"{app=`raw\\d`}", `{app="raw\\d"}`},
	{`{app="x"} |= "a"`, ``},
	{`{app="x"} |= "a" or "b" != "c" |~ "d.*" !~ "e"`, ``},
	{`{app="x"} |= "quote \" and \\ and \n"`, ``},
	{`{app="x"} # a comment
	 |= "a"`, `{app="x"} |= "a"`},
	{`{app="x"} | json`, ``},
	{`{app="x"} | json a="b.c", d="e[0]", f=` + "`[\"g h\"]`", `{app="x"} | json a="b.c", d="e[0]", f="[\"g h\"]"`},
	{`{app="x"} | json a, b`, `{app="x"} | json a="a", b="b"`},
	{`{app="x"} | logfmt`, ``},
	{`{app="x"} | logfmt --strict --keep-empty`, ``},
	{`{app="x"} | logfmt a, b="c"`, `{app="x"} | logfmt a="a", b="c"`},
	{`{app="x"} | regexp "(?P<ip>\\S+) (?P<code>\\d+)"`, ``},
	{`{app="x"} | json | level="error"`, ``},
	{`{app="x"} | json | level = "error" , code >= 500`, `{app="x"} | json | level="error" and code>=500`},
	{`{app="x"} | json | a="b" b="c"`, `{app="x"} | json | a="b" and b="c"`},
	{`{app="x"} | json | a="b" or b="c" and c="d"`, `{app="x"} | json | a="b" or (b="c" and c="d")`},
	{`{app="x"} | json | (a="b" or b="c") and c="d"`, `{app="x"} | json | (a="b" or b="c") and c="d"`},
	{`{app="x"} | logfmt | duration > 10ms`, `{app="x"} | logfmt | duration>10ms`},
	{`{app="x"} | logfmt | duration >= 1.5s`, `{app="x"} | logfmt | duration>=1.5s`},
	{`{app="x"} | logfmt | size > 1KB`, `{app="x"} | logfmt | size>1KB`},
	{`{app="x"} | logfmt | size <= 2MiB`, `{app="x"} | logfmt | size<=2MiB`},
	{`{app="x"} | logfmt | status == 200`, `{app="x"} | logfmt | status==200`},
	{`{app="x"} | logfmt | status = 200`, `{app="x"} | logfmt | status==200`},
	{`{app="x"} | logfmt | status != 200`, `{app="x"} | logfmt | status!=200`},
	{`{app="x"} | logfmt | temp < -1.5`, `{app="x"} | logfmt | temp<-1.5`},
	{`{app="x"} | json | __error__ = ""`, `{app="x"} | json | __error__=""`},
	{`{app="x"} | line_format "{{.a}} {{ __line__ | upper }}"`, ``},
	{`{app="x"} | label_format a=b, c="{{.x}}"`, ``},
	{`{app="x"} | drop a, b="c", d=~"e.*"`, ``},
	{`{app="x"} | keep a, b`, ``},
	{`{app="x"} | json | or="x"`, ``},
	{`{app="x"} | json | a="x" and or="y"`, ``},
	{`count_over_time({app="x"}[5m])`, `count_over_time({app="x"} [5m])`},
	{`count_over_time({app="x"} |= "a" [5m] offset 1h)`, ``},
	{`count_over_time(({app="x"} |= "a")[5m])`, `count_over_time({app="x"} |= "a" [5m])`},
	{`count_over_time({app="x"}[5m] |= "a" | json)`, `count_over_time({app="x"} |= "a" | json [5m])`},
	{`rate({app="x"}[1d])`, `rate({app="x"} [1d])`},
	// Grafana's logs volume query.
	{`sum by (level, detected_level) (count_over_time({app="x"} | drop __error__[1m]))`, `sum by (level, detected_level) (count_over_time({app="x"} | drop __error__ [1m]))`},
	{`bytes_over_time({app="x"}[90s])`, `bytes_over_time({app="x"} [1m30s])`},
	{`bytes_rate({app="x"}[1h30m])`, `bytes_rate({app="x"} [1h30m])`},
	{`absent_over_time({app="x"}[5m])`, `absent_over_time({app="x"} [5m])`},
	{`rate({app="x"}[100us])`, `rate({app="x"} [100µs])`},
	{`sum_over_time({app="x"} | logfmt | unwrap latency [5m])`, ``},
	{`avg_over_time({app="x"} | logfmt | unwrap duration(latency) | __error__="" [5m]) by (host)`, ``},
	{`max_over_time({app="x"} | json | unwrap bytes(size) [5m]) without (a)`, ``},
	{`quantile_over_time(0.99, {app="x"} | json | unwrap latency [5m]) by (a)`, ``},
	{`rate({app="x"} | json | unwrap latency [5m])`, ``},
	{`first_over_time({app="x"} | json | unwrap v [5m])`, ``},
	{`sum(rate({app="x"}[5m]))`, `sum(rate({app="x"} [5m]))`},
	{`sum by (app) (rate({app="x"}[5m]))`, `sum by (app) (rate({app="x"} [5m]))`},
	{`sum(rate({app="x"}[5m])) by (app)`, `sum by (app) (rate({app="x"} [5m]))`},
	{`sum without (a, b) (rate({app="x"}[5m]))`, `sum without (a, b) (rate({app="x"} [5m]))`},
	{`sum by () (rate({app="x"}[5m]))`, `sum by () (rate({app="x"} [5m]))`},
	{`topk(3, rate({app="x"}[5m]))`, `topk(3, rate({app="x"} [5m]))`},
	{`bottomk by (a) (2, rate({app="x"}[5m]))`, `bottomk by (a) (2, rate({app="x"} [5m]))`},
	{`avg(min(max(count(stddev(stdvar(rate({app="x"}[5m])))))))`, `avg(min(max(count(stddev(stdvar(rate({app="x"} [5m])))))))`},
	{`sum by (app) (rate({app="api"} |= "error" [5m])) > 10`, `sum by (app) (rate({app="api"} |= "error" [5m])) > 10`},
	{`sum(rate({app="x"}[5m])) > bool 10`, `sum(rate({app="x"} [5m])) > bool 10`},
	{`10 < sum(rate({app="x"}[5m]))`, `10 < sum(rate({app="x"} [5m]))`},
	{`1 + 2 * 3`, `1 + (2 * 3)`},
	{`(1 + 2) * 3`, `(1 + 2) * 3`},
	{`2 ^ 3 ^ 2`, `2 ^ (3 ^ 2)`},
	{`-1 ^ 2`, `-1 ^ 2`},
	{`1 == bool 1`, `1 == bool 1`},
	{`1e3 + 0.5`, `1000 + 0.5`},
	{`1e21 - 2`, `1e+21 - 2`},
	{`rate({a="b"}[1m]) / on (x) group_left (y) rate({a="b"}[1m])`, `rate({a="b"} [1m]) / on (x) group_left (y) rate({a="b"} [1m])`},
	{`rate({a="b"}[1m]) * ignoring (x) group_right rate({a="b"}[1m])`, `rate({a="b"} [1m]) * ignoring (x) group_right () rate({a="b"} [1m])`},
	{`rate({a="b"}[1m]) and rate({c="d"}[1m]) or rate({e="f"}[1m]) unless on (x) rate({g="h"}[1m])`,
		`(rate({a="b"} [1m]) and rate({c="d"} [1m])) or (rate({e="f"} [1m]) unless on (x) rate({g="h"} [1m]))`},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validQueries {
		t.Run(tc.in, func(t *testing.T) {
			e, err := Parse(tc.in)
			require.NoError(t, err)
			want := tc.want
			if want == "" {
				want = tc.in
			}
			require.Equal(t, want, e.String())
			again, err := Parse(e.String())
			require.NoError(t, err)
			require.Equal(t, want, again.String())
		})
	}
}

func TestParseStructure(t *testing.T) {
	e, err := Parse(`sum by (app) (rate({app="api", env!="dev"} |= "error" | json | code >= 500 [5m] offset 1m)) > 10`)
	require.NoError(t, err)
	be := e.(*BinaryExpr)
	require.Equal(t, ">", be.Op)
	require.Equal(t, &LiteralExpr{Value: 10}, be.RHS)
	va := be.LHS.(*VectorAggregationExpr)
	require.Equal(t, OpSum, va.Op)
	require.Equal(t, &Grouping{Labels: []string{"app"}}, va.Grouping)
	ra := va.Expr.(*RangeAggregationExpr)
	require.Equal(t, OpRate, ra.Op)
	require.Equal(t, 5*time.Minute, ra.Range.Range)
	require.Equal(t, time.Minute, ra.Range.Offset)
	sel := ra.Range.Selector
	require.Equal(t, []*labels.Matcher{
		labels.MustNewMatcher(labels.MatchEqual, "app", "api"),
		labels.MustNewMatcher(labels.MatchNotEqual, "env", "dev"),
	}, sel.Matchers)
	require.Equal(t, []Stage{
		&LineFilterStage{Op: logs.LineContains, Values: []string{"error"}},
		&JSONStage{},
		&LabelFilterStage{Filter: &NumericLabelFilter{Name: "code", Op: CmpGte, Value: 500}},
	}, sel.Pipeline)

	e, err = Parse(`{a="b"} | logfmt | d > 250ms and s < 2KiB`)
	require.NoError(t, err)
	require.Equal(t, &BinaryLabelFilter{
		And:   true,
		Left:  &DurationLabelFilter{Name: "d", Op: CmpGt, Value: 250 * time.Millisecond},
		Right: &BytesLabelFilter{Name: "s", Op: CmpLt, Value: 2048},
	}, e.(*LogSelectorExpr).Pipeline[1].(*LabelFilterStage).Filter)
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		in, msg string
		col     int
	}{
		{`{app="x"`, `expecting ","`, 9},
		{`{}`, `at least one label matcher`, 1},
		{`{app=~".*"}`, `at least one regexp or equality matcher`, 1},
		{`{app!="x"}`, `at least one regexp or equality matcher`, 1},
		{`{app="x"} |= 5`, `expecting "string"`, 14},
		{`{app="x"} |~ "("`, `invalid line filter regexp`, 14},
		{`{app=~"("}`, `invalid matcher`, 7},
		{`{app="x"} | line_format "{{.a"`, `invalid line template`, 25},
		{`{app="x"} | regexp "nonamed(x)"`, `named capture`, 20},
		{`{app="x"} | regexp "(?P<a>x)(?P<a>y)"`, `duplicate extracted label name`, 20},
		{`{app="x"} | json a="b["`, `cannot parse expression`, 18},
		{`{app="x"} | label_format a=5`, `expecting label name or template string`, 28},
		{`{app="x"} | label_format a=b, a=c`, `multiple label name`, 31},
		{`{app="x"} | label_format __error__=b`, `cannot be formatted`, 26},
		{`{app="x"} | logfmt --bogus`, `unknown logfmt flag`, 20},
		{`{app="x"} | a =~ 5`, `needs a string`, 15},
		{`{app="x"} | a > "x"`, `needs a number`, 15},
		{`{app="x"} | unwrap a`, `unwrap is only allowed`, 13},
		{`{app="x"}[5m]`, `only allowed inside a range aggregation`, 10},
		{`count_over_time({app="x"})`, `expecting "["`, 26},
		{`count_over_time({app="x"}[5])`, `expecting a duration`, 27},
		{`count_over_time({app="x"}[0s])`, `range must be positive`, 26},
		{`count_over_time({app="x"} | json | unwrap a [5m])`, `invalid aggregation count_over_time with unwrap`, 1},
		{`sum_over_time({app="x"}[5m])`, `invalid aggregation sum_over_time without unwrap`, 1},
		{`count_over_time({app="x"}[5m]) by (a)`, `grouping not allowed for count_over_time`, 1},
		{`sum(1)`, `needs a vector`, 1},
		{`sum({app="x"})`, `needs a metric query`, 1},
		{`topk(rate({app="x"}[5m]))`, `expecting "number"`, 6},
		{`topk(1.5, rate({app="x"}[5m]))`, `not an integer`, 6},
		{`sum by (a) (rate({app="x"}[5m])) by (b)`, `two by/without clauses`, 1},
		{`{app="x"} + 1`, `binary operations between log queries`, 11},
		{`1 > 2`, `must use BOOL modifier`, 3},
		{`rate({a="b"}[1m]) and 1`, `set operator "and" not allowed`, 19},
		{`rate({a="b"}[1m]) + on (a) 1`, `vector matching only allowed between vectors`, 19},
		{`rate({a="b"}[1m]) + bool rate({a="b"}[1m])`, `bool modifier can only be used on comparison`, 19},
		{`rate({a="b"}[1m]) * group_left rate({a="b"}[1m])`, `requires on or ignoring`, 21},
		{`-rate({a="b"}[1m])`, `unary - is only supported before a number`, 1},
		{`foo(1)`, `unexpected identifier foo`, 1},
		{`1e999`, `number out of range`, 1},
		{`{app="x"} |= "unterminated`, `unterminated string`, 14},
		{"{app=\"x\"} |= \"new\nline\"", `newline in string`, 14},
		{`{app="x"} | json $`, `unexpected character '$'`, 18},
		{"{app=\"x\"}\n| b > 5x", `invalid number, duration or byte size`, 7},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "want *ParseError, got %T %v", err, err)
			require.Contains(t, pe.Msg, tc.msg)
			require.Equal(t, tc.col, pe.Col, pe.Error())
			require.False(t, IsUserError(nil))
			require.True(t, IsUserError(err))
		})
	}
	_, err := Parse("{app=\"x\"}\n| b > 5x")
	require.EqualError(t, err, `parse error at line 2, col 7: syntax error: invalid number, duration or byte size "5x"`)
}

func TestParseUnsupported(t *testing.T) {
	for _, tc := range []struct{ in, feature string }{
		{`{app="x"} | pattern "<ip> <_>"`, "pattern parser"},
		{`{app="x"} | unpack`, "unpack parser"},
		{`{app="x"} | decolorize`, "decolorize"},
		{`{app="x"} | distinct a`, "distinct"},
		{`{app="x"} |> "<_> error <_>"`, "pattern line filter (|> and !>)"},
		{`{app="x"} !> "<_> error <_>"`, "pattern line filter (|> and !>)"},
		{`{app="x"} |= ip("10.0.0.0/8")`, "ip() line filter"},
		{`{app="x"} | logfmt | addr = ip("10.0.0.0/8")`, "ip() label filter"},
		{`label_replace(rate({app="x"}[5m]), "a", "$1", "b", "(.*)")`, "label_replace"},
		{`vector(1)`, "vector()"},
		{`sort(rate({app="x"}[5m]))`, "sort"},
		{`sort_desc(rate({app="x"}[5m]))`, "sort_desc"},
		{`approx_topk(3, rate({app="x"}[5m]))`, "approx_topk"},
		{`rate_counter({app="x"} | unwrap a [5m])`, "rate_counter"},
		{`rate({app="x"}[5m:1m])`, "subqueries"},
		{`rate({app="x"}[5m] @ 1700000000)`, "@ modifier"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := Parse(tc.in)
			var ue *UnsupportedError
			require.True(t, errors.As(err, &ue), "want *UnsupportedError, got %T %v", err, err)
			require.Equal(t, tc.feature, ue.Feature)
			require.Equal(t, "unsupported LogQL feature: "+tc.feature, err.Error())
			require.True(t, IsUserError(err))
		})
	}
}

func TestParseMatchers(t *testing.T) {
	ms, err := ParseMatchers(`{app="x", env=~"prod|dev"}`)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, `app="x"`, ms[0].String())
	require.Equal(t, `env=~"prod|dev"`, ms[1].String())
	_, err = ParseMatchers(`{app="x"} |= "a"`)
	require.ErrorContains(t, err, "only label matchers are supported")
	_, err = ParseMatchers(`rate({app="x"}[1m])`)
	require.ErrorContains(t, err, "only label matchers are supported")

	_, err = ParseSampleExpr(`{app="x"}`)
	require.ErrorContains(t, err, "a metric query is required")
}

func TestLexNumbers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		kind tokKind
	}{
		{"10", tokNumber}, {"1.5", tokNumber}, {".5", tokNumber}, {"1e3", tokNumber}, {"1e-3", tokNumber},
		{"5m", tokDuration}, {"1h30m", tokDuration}, {"250ms", tokDuration}, {"1d", tokDuration}, {"3µs", tokDuration},
		{"1KB", tokBytes}, {"1kib", tokBytes}, {"20MB", tokBytes}, {"5b", tokBytes}, {"1.5GiB", tokBytes},
	} {
		toks, err := lex(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.kind, toks[0].kind, tc.in)
		require.Equal(t, tokEOF, toks[1].kind, tc.in)
	}
	b, err := parseBytes("1.5KiB")
	require.NoError(t, err)
	require.Equal(t, uint64(1536), b)
	b, err = parseBytes("2 MB")
	require.NoError(t, err)
	require.Equal(t, uint64(2_000_000), b)
	_, err = parseBytes("2 parsecs")
	require.Error(t, err)
}
