package traceql

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/traces"
)

func in(name, op, value string) traces.Condition {
	return traces.Condition{Scope: ScopeIntrinsic, Name: name, Op: op, Value: value}
}

func res(name, op, value string) traces.Condition {
	return traces.Condition{Scope: "resource", Name: name, Op: op, Value: value}
}

func span(name, op, value string) traces.Condition {
	return traces.Condition{Scope: "span", Name: name, Op: op, Value: value}
}

func either(name, op, value string) traces.Condition {
	return traces.Condition{Scope: "", Name: name, Op: op, Value: value}
}

func groups(gs ...[]traces.Condition) [][]traces.Condition { return gs }

func group(cs ...traces.Condition) []traces.Condition { return cs }

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  [][]traces.Condition
	}{
		// Everything.
		{`{}`, nil},
		{`{ }`, nil},
		{`{ true }`, nil},
		{`{} || { name = "a" }`, nil},
		{`{ name = "a" } || { true }`, nil},
		{`{ true && name = "a" }`, groups(group(in("name", "=", "a")))},

		// The example, and Grafana's query builder output.
		{`{ resource.service.name = "x" && duration > 100ms && status = error }`,
			groups(group(res("service.name", "=", "x"), in("duration", ">", "100ms"), in("status", "=", "error")))},
		{`{resource.service.name="frontend" && name="GET /" && kind=server && duration>=1.5s && status!=ok}`,
			groups(group(res("service.name", "=", "frontend"), in("name", "=", "GET /"), in("kind", "=", "server"),
				in("duration", ">=", "1.5s"), in("status", "!=", "ok")))},
		{`{resource.service.name=~"api|web"}`, groups(group(res("service.name", "=~", "api|web")))},

		// Operators.
		{`{ .a = "x" }`, groups(group(either("a", "=", "x")))},
		{`{ .a != "x" }`, groups(group(either("a", "!=", "x")))},
		{`{ .a =~ "x.*" }`, groups(group(either("a", "=~", "x.*")))},
		{`{ .a !~ "x.*" }`, groups(group(either("a", "!~", "x.*")))},
		{`{ .a > 1 }`, groups(group(either("a", ">", "1")))},
		{`{ .a >= 1 }`, groups(group(either("a", ">=", "1")))},
		{`{ .a < 1 }`, groups(group(either("a", "<", "1")))},
		{`{ .a <= 1 }`, groups(group(either("a", "<=", "1")))},

		// Intrinsics, plain and scoped.
		{`{ name = "a" }`, groups(group(in("name", "=", "a")))},
		{`{ span:name = "a" }`, groups(group(in("name", "=", "a")))},
		{`{ span:status = unset }`, groups(group(in("status", "=", "unset")))},
		{`{ span:kind != internal }`, groups(group(in("kind", "!=", "internal")))},
		{`{ span:duration < 1m }`, groups(group(in("duration", "<", "1m0s")))},
		{`{ rootName = "r" && rootServiceName = "s" }`, groups(group(in("rootName", "=", "r"), in("rootServiceName", "=", "s")))},
		{`{ trace:rootName = "r" && trace:rootService = "s" }`, groups(group(in("rootName", "=", "r"), in("rootServiceName", "=", "s")))},
		{`{ traceDuration > 2s && trace:duration < 1h }`, groups(group(in("traceDuration", ">", "2s"), in("traceDuration", "<", "1h0m0s")))},
		{`{ kind = client || kind = producer || kind = consumer || kind = unspecified }`, groups(
			group(in("kind", "=", "client")), group(in("kind", "=", "producer")),
			group(in("kind", "=", "consumer")), group(in("kind", "=", "unspecified")))},

		// Attributes: scopes, dotted and quoted names, odd characters.
		{`{ span.http.method = "GET" }`, groups(group(span("http.method", "=", "GET")))},
		{`{ span."http.method" = "GET" }`, groups(group(span("http.method", "=", "GET")))},
		{`{ span."with space" = "x" }`, groups(group(span("with space", "=", "x")))},
		{`{ resource.k8s/pod-name = "p" }`, groups(group(res("k8s/pod-name", "=", "p")))},
		{`{ .name = "attribute, not intrinsic" }`, groups(group(either("name", "=", "attribute, not intrinsic")))},
		{`{ span.status = "attribute" }`, groups(group(span("status", "=", "attribute")))},
		{`{ resource.name="x" }`, groups(group(res("name", "=", "x")))},
		{`{ ."quoted" = 1 }`, groups(group(either("quoted", "=", "1")))},

		// Values.
		{`{ .s = "esc\"aped\n\t\\ \u00e9" }`, groups(group(either("s", "=", "esc\"aped\n\t\\ é")))},
		{"{ .s = `raw\\n` }", groups(group(either("s", "=", `raw\n`)))},
		{`{ .n = 42 }`, groups(group(either("n", "=", "42")))},
		{`{ .n = 007 }`, groups(group(either("n", "=", "7")))},
		{`{ .n = -3 }`, groups(group(either("n", "=", "-3")))},
		{`{ .n = -0 }`, groups(group(either("n", "=", "0")))},
		{`{ .n = 2.50 }`, groups(group(either("n", "=", "2.5")))},
		{`{ .n = 3.0 }`, groups(group(either("n", "=", "3")))},
		{`{ .b = true && .c != false }`, groups(group(either("b", "=", "true"), either("c", "!=", "false")))},
		{`{ duration > 10ns && duration < 5us && duration != 7µs && duration != 8μs }`, groups(group(
			in("duration", ">", "10ns"), in("duration", "<", "5µs"), in("duration", "!=", "7µs"), in("duration", "!=", "8µs")))},
		{`{ duration >= 1h30m }`, groups(group(in("duration", ">=", "1h30m0s")))},
		{`{ .d > -2s }`, groups(group(either("d", ">", "-2s")))},
		{`{ span.x = 100ms }`, groups(group(span("x", "=", "100ms")))},

		// A value on the left: the field moves left, the operator flips.
		{`{ "a" = name }`, groups(group(in("name", "=", "a")))},
		{`{ 100ms < duration }`, groups(group(in("duration", ">", "100ms")))},
		{`{ 1 >= .x }`, groups(group(either("x", "<=", "1")))},

		// Normal form: || inside, between spansets, parentheses, pipelines.
		{`{ .a = 1 || .b = 2 }`, groups(group(either("a", "=", "1")), group(either("b", "=", "2")))},
		{`{ .a = 1 } || { .b = 2 }`, groups(group(either("a", "=", "1")), group(either("b", "=", "2")))},
		{`({ .a = 1 } || ({ .b = 2 }))`, groups(group(either("a", "=", "1")), group(either("b", "=", "2")))},
		{`{ .a = 1 && (.b = 2 || .c = 3) }`, groups(
			group(either("a", "=", "1"), either("b", "=", "2")),
			group(either("a", "=", "1"), either("c", "=", "3")))},
		{`{ (.a = 1 || .b = 2) && (.c = 3 || .d = 4) }`, groups(
			group(either("a", "=", "1"), either("c", "=", "3")),
			group(either("a", "=", "1"), either("d", "=", "4")),
			group(either("b", "=", "2"), either("c", "=", "3")),
			group(either("b", "=", "2"), either("d", "=", "4")))},
		{`{ .a = 1 || .b = 2 && .c = 3 }`, groups( // && binds tighter
			group(either("a", "=", "1")),
			group(either("b", "=", "2"), either("c", "=", "3")))},
		{`{ .a = 1 } | { .b = 2 }`, groups(group(either("a", "=", "1"), either("b", "=", "2")))},
		{`{ .a = 1 } || { .b = 2 } | { .c = 3 }`, groups(
			group(either("a", "=", "1"), either("c", "=", "3")),
			group(either("b", "=", "2"), either("c", "=", "3")))},

		// Simplification: repeats and absorbed groups go.
		{`{ .a = 1 && .a = 1 }`, groups(group(either("a", "=", "1")))},
		{`{ .a = 1 } || { .a = 1 }`, groups(group(either("a", "=", "1")))},
		{`{ .a = 1 || (.a = 1 && .b = 2) }`, groups(group(either("a", "=", "1")))},
		{`{ (.a = 1 && .b = 2) || .a = 1 }`, groups(group(either("a", "=", "1")))},
		{`{ (.a = 1 || .b = 2) && (.a = 1 || .b = 2) }`, groups(group(either("a", "=", "1")), group(either("b", "=", "2")))},

		// Whitespace and newlines anywhere.
		{"{\n\tname = \"a\"\n\t&& .b=1\n}", groups(group(in("name", "=", "a"), either("b", "=", "1")))},
	} {
		t.Run(tc.query, func(t *testing.T) {
			got, err := Parse(tc.query)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseUnsupported(t *testing.T) {
	for _, tc := range []struct {
		query, feature string
		pos            int
	}{
		{`{ } | count() > 2`, "aggregate count() in a pipeline", 6},
		{`{ .a = 1 } | avg(duration) > 1s`, "aggregate avg() in a pipeline", 13},
		{`{ } | select(span.http.method)`, "select()", 6},
		{`{ } | by(resource.service.name)`, "by() grouping", 6},
		{`{ } | coalesce()`, "coalesce()", 6},
		{`{ } | rate() by (resource.service.name)`, "TraceQL metrics (rate())", 6},
		{`{ } | quantile_over_time(duration, .9)`, "TraceQL metrics (quantile_over_time())", 6},
		{`{ .a = 1 } >> { .b = 2 }`, "structural operator >>", 11},
		{`{ .a = 1 } > { .b = 2 }`, "structural operator >", 11},
		{`{ .a = 1 } << { .b = 2 }`, "structural operator <<", 11},
		{`{ .a = 1 } < { .b = 2 }`, "structural operator <", 11},
		{`{ .a = 1 } ~ { .b = 2 }`, "structural operator ~", 11},
		{`{ .a = 1 } !~ { .b = 2 }`, "structural operator !~", 11},
		{`{ .a = 1 } !>> { .b = 2 }`, "structural operator !>>", 11},
		{`{ .a = 1 } &>> { .b = 2 }`, "structural operator &>>", 11},
		{`{ .a = 1 } && { .b = 2 }`, "spanset operator && (conditions on different spans of a trace)", 11},
		{`{ } with (most_recent=true)`, "query hints (with ...)", 4},
		{`{ event.exception.message = "x" }`, "event. attributes", 2},
		{`{ link.x = "x" }`, "link. attributes", 2},
		{`{ parent.span.x = "x" }`, "parent. attributes", 2},
		{`{ instrumentation.name = "x" }`, "instrumentation. attributes", 2},
		{`{ event:name = "x" }`, "intrinsic event:name", 2},
		{`{ statusMessage = "x" }`, "intrinsic statusMessage", 2},
		{`{ span:id = "x" }`, "intrinsic span:id", 2},
		{`{ duration > 1s + 2s }`, "arithmetic (+)", 16},
		{`{ .a * 2 > 1 }`, "arithmetic (*)", 5},
		{`{ .a = - .b }`, "arithmetic (-)", 7},
		{`{ (.a + 1) > 1 }`, "arithmetic (+)", 6},
		{`{ !(.a = 1) }`, "negation with ! (use != or !~)", 2},
		{`{ .a != nil }`, "comparison with nil (attribute existence)", 8},
		{`{ .a = .b }`, "comparing two fields (attribute .a = attribute .b)", 2},
		{`{ 1 = 1 }`, "comparing two values", 2},
		{`{ .a }`, "a field or value without a comparison (attribute .a)", 2},
		{`{ false }`, `a field or value without a comparison ("false")`, 2},
		{`{ count() > 1 }`, "aggregate count() in a pipeline", 2},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, err := Parse(tc.query)
			var ue *UnsupportedError
			require.ErrorAs(t, err, &ue, "%v", err)
			require.Equal(t, tc.feature, ue.Feature)
			require.Equal(t, tc.pos, ue.Pos)
			require.Equal(t, "unsupported TraceQL feature: "+tc.feature, err.Error())
			require.True(t, IsUserError(err))
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		query, msg string
		line, col  int
	}{
		{``, "empty query", 1, 1},
		{`   `, "empty query", 1, 1},
		{`{`, "syntax error: unexpected end of query, expected a field or a value", 1, 2},
		{`{ name = "a"`, "syntax error: unexpected end of query, expected &&, || or }", 1, 13},
		{`{ name = "a" } }`, `syntax error: unexpected "}", expected ||, | or end of query`, 1, 16},
		{`name = "a"`, `syntax error: unexpected "name", expected {`, 1, 1},
		{`{ name "a" }`, `syntax error: unexpected string "a", expected a comparison operator`, 1, 8},
		{`{ name == "a" }`, "syntax error: unexpected ==, TraceQL compares with =", 1, 8},
		{`{ name = "a }`, "syntax error: unterminated string", 1, 10},
		{`{ name = "\q" }`, `syntax error: invalid string "\q"`, 1, 10},
		{`{ foo = 1 }`, `unknown identifier "foo"`, 1, 3},
		{`{ foo.bar = 1 }`, `unknown identifier "foo" (attributes need a scope: .foo..., span.foo... or resource.foo...)`, 1, 3},
		{`{ span. = 1 }`, `syntax error: expected an attribute name after "span."`, 1, 3},
		{`{ span."" = 1 }`, "syntax error: empty attribute name", 1, 3},
		{`{ duration > 10 }`, "type mismatch: duration takes a duration such as 100ms, got a number 10", 1, 14},
		{`{ duration > 10xs }`, `syntax error: invalid duration "10xs"`, 1, 14},
		{`{ .n = 1.2.3 }`, `syntax error: invalid number "1.2.3"`, 1, 8},
		{`{ .n = 1_000 }`, `syntax error: invalid number "1_"`, 1, 8},
		{`{ duration =~ "1s" }`, "type mismatch: duration takes a duration such as 100ms, got a string \"1s\"", 1, 15},
		{`{ name = 1 }`, "type mismatch: name takes a string, got a number 1", 1, 10},
		{`{ status = "error" }`, `type mismatch: status takes error, ok or unset, got a string "error"`, 1, 12},
		{`{ status > error }`, "status compares with = or != only, got >", 1, 10},
		{`{ kind = error }`, "type mismatch: kind takes server, client, producer, consumer, internal or unspecified, got a status error", 1, 10},
		{`{ kind =~ "serv.*" }`, "type mismatch: kind takes server, client, producer, consumer, internal or unspecified, got a string \"serv.*\"", 1, 11},
		{`{ .a = error }`, "type mismatch: .a takes a string, a number, a duration or a boolean, got a status error", 1, 8},
		{`{ .a > true }`, "> cannot order booleans", 1, 6},
		{`{ .a =~ 1 }`, "type mismatch: =~ takes a regular expression as a string, got a number 1", 1, 9},
		{`{ .a =~ "(" }`, "invalid regular expression \"(\": error parsing regexp: missing closing ): `(`", 1, 9},
		{`{ "a" =~ name }`, "=~ takes the field on the left and the regular expression on the right", 1, 7},
		{`{ .a = 1 } | .b`, "syntax error: unexpected attribute .b, expected a spanset filter { ... } after |", 1, 14},
		{`{ .a = 1 } foo`, `syntax error: unexpected "foo", expected ||, | or end of query`, 1, 12},
		{`{ .a = 1 & .b = 2 }`, "syntax error: unexpected &, expected &&", 1, 10},
		{`{ .a = $ }`, `syntax error: unexpected character '$'`, 1, 8},
		{`{ ( .a = 1 }`, `syntax error: unexpected "}", expected &&, || or )`, 1, 12},
		{"{\n  .a = 1 &&\n  name = 3 }", "type mismatch: name takes a string, got a number 3", 3, 10},
		{`{ .a = 1 } || `, "syntax error: unexpected end of query, expected {", 1, 15},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, err := Parse(tc.query)
			var pe *ParseError
			require.ErrorAs(t, err, &pe, "%v", err)
			require.Equal(t, tc.msg, pe.Msg)
			require.Equal(t, tc.line, pe.Line, "line")
			require.Equal(t, tc.col, pe.Col, "col")
			require.True(t, IsUserError(err))
		})
	}
	require.False(t, IsUserError(errors.New("store down")))
}

func TestParseNesting(t *testing.T) {
	deep := strings.Repeat("(", maxDepth+1) + "{}" + strings.Repeat(")", maxDepth+1)
	_, err := Parse(deep)
	var pe *ParseError
	require.ErrorAs(t, err, &pe)
	require.Contains(t, pe.Msg, "nested more than")

	ok := strings.Repeat("(", maxDepth-1) + "{}" + strings.Repeat(")", maxDepth-1)
	got, err := Parse(ok)
	require.NoError(t, err)
	require.Nil(t, got)
}

func TestParseTooComplex(t *testing.T) {
	// (a1 || a2) && (b1 || b2) && ... multiplies out to 2^n groups.
	factor := func(i int) string {
		return "(.a" + string(rune('a'+i)) + " = 1 || .b" + string(rune('a'+i)) + " = 2)"
	}
	var fs []string
	for i := range 6 {
		fs = append(fs, factor(i))
	}
	got, err := Parse("{ " + strings.Join(fs, " && ") + " }")
	require.NoError(t, err)
	require.Len(t, got, 64)
	for _, g := range got {
		require.Len(t, g, 6)
	}

	fs = append(fs, factor(6))
	_, err = Parse("{ " + strings.Join(fs, " && ") + " }")
	var ue *UnsupportedError
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Feature, "more than 64 alternatives (got 128)")

	// Unions count too.
	var alts []string
	for i := range MaxGroups + 1 {
		alts = append(alts, "{ .n = "+strings.Repeat("1", i+1)+" }")
	}
	_, err = Parse(strings.Join(alts, " || "))
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Feature, "(got 65)")

	// A product far beyond the bound is refused before it is built.
	var wide []string
	for i := range 40 {
		wide = append(wide, ".x = "+strings.Repeat("1", i+1))
	}
	w := "(" + strings.Join(wide, " || ") + ")"
	_, err = Parse("{ " + w + " && " + w + " }")
	require.ErrorAs(t, err, &ue)
	require.Contains(t, ue.Feature, "(got 1600)")
}

func TestParseField(t *testing.T) {
	for _, tc := range []struct{ in, scope, name string }{
		{"resource.service.name", "resource", "service.name"},
		{"span.http.method", "span", "http.method"},
		{`span."a b"`, "span", "a b"},
		{".foo", "", "foo"},
		{"name", ScopeIntrinsic, "name"},
		{"span:name", ScopeIntrinsic, "name"},
		{"trace:rootService", ScopeIntrinsic, "rootServiceName"},
		{"status", ScopeIntrinsic, "status"},
	} {
		scope, name, err := ParseField(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.scope, scope, tc.in)
		require.Equal(t, tc.name, name, tc.in)
	}
	for _, bad := range []string{"", "foo", "service.name", "span.a b", "{", "span.a = 1"} {
		_, _, err := ParseField(bad)
		require.Error(t, err, bad)
	}
	_, _, err := ParseField("event.name")
	var ue *UnsupportedError
	require.ErrorAs(t, err, &ue)
	_, _, err = ParseField("statusMessage")
	require.ErrorAs(t, err, &ue)

	require.Equal(t, `span."a b"`, FieldString("span", "a b"))
	require.Equal(t, ".x", FieldString("", "x"))
	require.Equal(t, "duration", FieldString(ScopeIntrinsic, "duration"))
	require.Equal(t, []string{"duration", "kind", "name", "rootName", "rootServiceName", "status", "traceDuration"}, Intrinsics())
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{`{}`, `{}`},
		{`{ resource.service.name = "x" && duration > 100ms && status = error }`,
			`{ resource.service.name = "x" && duration > 100ms && status = error }`},
		{`{ .a = 1 || .b = "2" } || { kind = server }`, `{ .a = 1 } || { .b = 2 } || { kind = server }`},
		{`{ span."a b" =~ "x\"y" && .c = "error" && .d = -1.5 && .e = "0500" && .f = "5m" && .g = true }`,
			`{ span."a b" =~ "x\"y" && .c = "error" && .d = -1.5 && .e = "0500" && .f = "5m" && .g = true }`},
		{`{ name = "100" && .t = 1h }`, `{ name = "100" && .t = 1h0m0s }`},
	} {
		d, err := Parse(tc.query)
		require.NoError(t, err)
		require.Equal(t, tc.want, Format(d))
		again, err := Parse(Format(d))
		require.NoError(t, err)
		require.Equal(t, d, again)
	}
}
