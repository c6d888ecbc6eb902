package logql

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/storage/logs"
)

// runPipeline runs the pipeline of a log query over one entry (line filters
// included, as nothing is pushed down here) and returns the resulting line
// and labels.
func runPipeline(t *testing.T, query string, stream, meta labels.Labels, ts int64, line string) (string, labels.Labels, bool) {
	t.Helper()
	e, err := Parse(query)
	require.NoError(t, err)
	pl, err := compilePipeline(e.(*LogSelectorExpr).Pipeline)
	require.NoError(t, err)
	out, ok := pl.process(streamLabels(stream), meta, ts, line)
	if !ok {
		return "", labels.EmptyLabels(), false
	}
	return out, toLabels(pl.lb.resolve(nil, ""), allCats), true
}

func TestPipelineJSON(t *testing.T) {
	stream := labels.FromStrings("app", "x", "level", "info")
	f := func(query, line string, want labels.Labels) {
		t.Helper()
		_, got, ok := runPipeline(t, query, stream, labels.EmptyLabels(), 0, line)
		require.True(t, ok)
		require.Equal(t, want.String(), got.String())
	}
	f(`{app="x"} | json`,
		`{"a":"b","n":-1.5e3,"t":true,"f":false,"z":null,"o":{"p":{"q":"r"},"s":2,"e":{}},"arr":[1,{"x":2}],"esc":"x\"y\u00e9\ud83d\ude00","1k":"v","we-ird key":"w","level":"error","bad":"\ufffd"}`,
		labels.FromStrings("app", "x", "level", "info",
			"a", "b", "n", "-1.5e3", "t", "true", "f", "false", "o_p_q", "r", "o_s", "2",
			"esc", "x\"yé😀", "_1k", "v", "we_ird_key", "w", "level_extracted", "error"))
	// Later duplicates win; whitespace is allowed anywhere.
	f(`{app="x"} | json`, " { \"a\" : 1 , \"a\" : 2 } ", labels.FromStrings("app", "x", "level", "info", "a", "2"))
	// Parameters pick values by path.
	f(`{app="x"} | json first="servers[0]", host="req.host", quoted=`+"`[\"a b\"]`"+`, obj="req", missing="nope", level="req.host"`,
		`{"servers":["s1","s2"],"req":{"host":"h", "port": 80},"a b":"c"}`,
		labels.FromStrings("app", "x", "level", "info", "first", "s1", "host", "h", "quoted", "c",
			"obj", `{"host":"h", "port": 80}`, "level_extracted", "h"))
	for _, bad := range []string{`{"a":`, `not json`, `[1,2]`, `{"a" 1}`, `{"a":tru}`, `{"a":"b",}`, ``} {
		_, got, ok := runPipeline(t, `{app="x"} | json`, stream, labels.EmptyLabels(), 0, bad)
		require.True(t, ok, bad)
		require.Equal(t, ErrJSON, got.Get(errorLabel), bad)
		require.NotEmpty(t, got.Get(errorDetailsLabel), bad)
		_, _, ok = runPipeline(t, `{app="x"} | json | __error__=""`, stream, labels.EmptyLabels(), 0, bad)
		require.False(t, ok, bad)
	}
}

func TestPipelineLogfmt(t *testing.T) {
	stream := labels.FromStrings("app", "x", "msg", "stream")
	f := func(query, line string, want labels.Labels) {
		t.Helper()
		_, got, ok := runPipeline(t, query, stream, labels.EmptyLabels(), 0, line)
		require.True(t, ok)
		require.Equal(t, want.String(), got.String())
	}
	line := `level=info msg="hello \"world\"" dur=15ms empty= standalone 0day=1 a.b=c`
	want := labels.FromStrings("app", "x", "msg", "stream", "level", "info", "msg_extracted", `hello "world"`, "dur", "15ms", "_0day", "1", "a_b", "c")
	f(`{app="x"} | logfmt`, line, want)
	f(`{app="x"} | logfmt --keep-empty`, line, want) // empty values are no labels either way
	// Non-strict parsing skips malformed pairs; strict stops and marks the error.
	f(`{app="x"} | logfmt`, `a=1 b=x=y c=3 "bad d=4`, labels.FromStrings("app", "x", "msg", "stream", "a", "1", "c", "3", "d", "4"))
	_, got, _ := runPipeline(t, `{app="x"} | logfmt --strict`, stream, labels.EmptyLabels(), 0, `a=1 b=x=y c=3`)
	require.Equal(t, "1", got.Get("a"))
	require.Equal(t, "", got.Get("c"))
	require.Equal(t, ErrLogfmt, got.Get(errorLabel))
	require.Contains(t, got.Get(errorDetailsLabel), "logfmt syntax error")
	_, got, _ = runPipeline(t, `{app="x"} | logfmt --strict`, stream, labels.EmptyLabels(), 0, `a="unterminated`)
	require.Equal(t, ErrLogfmt, got.Get(errorLabel))
	// Parameters rename keys.
	f(`{app="x"} | logfmt lvl="level", msg, missing`, `level=warn msg=hi other=x`,
		labels.FromStrings("app", "x", "msg", "stream", "lvl", "warn", "msg_extracted", "hi"))
}

func TestPipelineRegexp(t *testing.T) {
	_, got, ok := runPipeline(t, `{app="x"} | regexp "(?P<method>\\w+) (?P<path>\\S+)(?: (?P<code>\\d+))?"`,
		labels.FromStrings("app", "x", "path", "p"), labels.EmptyLabels(), 0, `GET /api`)
	require.True(t, ok)
	require.Equal(t, labels.FromStrings("app", "x", "path", "p", "method", "GET", "path_extracted", "/api").String(), got.String())
	_, got, ok = runPipeline(t, `{app="x"} | regexp "(?P<method>\\w+) /"`, labels.FromStrings("app", "x"), labels.EmptyLabels(), 0, `nothing`)
	require.True(t, ok)
	require.Equal(t, `{app="x"}`, got.String())
}

func TestPipelineLabelFilters(t *testing.T) {
	stream := labels.FromStrings("app", "x")
	keep := func(query, line string) bool {
		t.Helper()
		_, _, ok := runPipeline(t, query, stream, labels.EmptyLabels(), 0, line)
		return ok
	}
	for _, tc := range []struct {
		query, line string
		want        bool
	}{
		{`{app="x"} | logfmt | dur > 10ms`, `dur=15ms`, true},
		{`{app="x"} | logfmt | dur > 10ms`, `dur=5ms`, false},
		{`{app="x"} | logfmt | dur > 10ms`, `other=1`, false},
		{`{app="x"} | logfmt | dur <= 1.5s`, `dur=1500ms`, true},
		{`{app="x"} | logfmt | status >= 500`, `status=503`, true},
		{`{app="x"} | logfmt | status >= 500`, `status=499`, false},
		{`{app="x"} | logfmt | status == 200`, `status=200.0`, true},
		{`{app="x"} | logfmt | status != 200`, `status=200`, false},
		{`{app="x"} | logfmt | status < 0`, `status=-1`, true},
		{`{app="x"} | logfmt | size > 1KB`, `size=1500`, true},
		{`{app="x"} | logfmt | size > 1KB`, `size=2KiB`, true},
		{`{app="x"} | logfmt | size > 1KB`, `size=999B`, false},
		{`{app="x"} | logfmt | size == 1KiB`, `size=1024`, true},
		{`{app="x"} | logfmt | level="error"`, `level=error`, true},
		{`{app="x"} | logfmt | level!="error"`, `level=error`, false},
		{`{app="x"} | logfmt | level=~"err.*"`, `level=error`, true},
		{`{app="x"} | logfmt | level=~"err"`, `level=error`, false}, // anchored
		{`{app="x"} | logfmt | level!~"info|debug"`, `level=error`, true},
		{`{app="x"} | logfmt | level=""`, `other=1`, true}, // missing compares as ""
		{`{app="x"} | logfmt | level="error" and status >= 500`, `level=error status=500`, true},
		{`{app="x"} | logfmt | level="error", status >= 500`, `level=error status=400`, false},
		{`{app="x"} | logfmt | level="error" status >= 500`, `level=error status=400`, false},
		{`{app="x"} | logfmt | level="warn" or status >= 500`, `level=error status=500`, true},
		{`{app="x"} | logfmt | level="warn" or status >= 500 and level="x"`, `level=error status=500`, false},
		{`{app="x"} | logfmt | (level="warn" or status >= 500) and level="error"`, `level=error status=500`, true},
		{`{app="x"} |= "a" or "b"`, `xbx`, true},
		{`{app="x"} |= "a" or "b"`, `xcx`, false},
		{`{app="x"} != "a" or "b"`, `xbx`, false},
		{`{app="x"} != "a" or "b"`, `xcx`, true},
		{`{app="x"} |~ "e.r"`, `error`, true},
		{`{app="x"} !~ "(?i)ERROR"`, `error`, false},
		{`{app="x"} |= "a" |= "b"`, `a`, false},
	} {
		require.Equal(t, tc.want, keep(tc.query, tc.line), "%s on %s", tc.query, tc.line)
	}
	// A value that does not convert keeps the entry and marks it.
	_, got, ok := runPipeline(t, `{app="x"} | logfmt | dur > 10ms`, stream, labels.EmptyLabels(), 0, `dur=abc`)
	require.True(t, ok)
	require.Equal(t, ErrLabelFilter, got.Get(errorLabel))
	_, _, ok = runPipeline(t, `{app="x"} | logfmt | dur > 10ms | __error__=""`, stream, labels.EmptyLabels(), 0, `dur=abc`)
	require.False(t, ok)
	_, got, ok = runPipeline(t, `{app="x"} | logfmt | status > 1 | __error__="LabelFilterErr" | drop __error__, __error_details__`, stream, labels.EmptyLabels(), 0, `status=x`)
	require.True(t, ok)
	require.Equal(t, `{app="x", status="x"}`, got.String())
}

func TestPipelineFormat(t *testing.T) {
	stream := labels.FromStrings("app", "x")
	ts := int64(1_700_000_000_123_456_789)
	f := func(query, line, wantLine string, want labels.Labels) {
		t.Helper()
		got, lbls, ok := runPipeline(t, query, stream, labels.EmptyLabels(), ts, line)
		require.True(t, ok)
		require.Equal(t, wantLine, got)
		require.Equal(t, want.String(), lbls.String())
	}
	line := `level=warn path=/api/v1 n=42 msg="Hello World"`
	parsed := labels.FromStrings("app", "x", "level", "warn", "path", "/api/v1", "n", "42", "msg", "Hello World")
	for tmpl, want := range map[string]string{
		`{{.level | upper}} {{.path}}`:                                        `WARN /api/v1`,
		`{{ ToUpper .level }} {{ ToLower .msg }}`:                             `WARN hello world`,
		`{{ lower .msg }}|{{ trim "  x  " }}|{{ title "a b" }}`:               `hello world|x|A B`,
		`{{ trimPrefix "/api" .path }} {{ trimSuffix "/v1" .path }}`:          `/v1 /api`,
		`{{ replace "o" "0" .msg }}`:                                          `Hell0 W0rld`,
		`{{ regexReplaceAll "(\\w+) (\\w+)" .msg "$2 $1" }}`:                  `World Hello`,
		`{{ .missing | default "none" }} {{ default "d" .level }}`:            `none warn`,
		`{{ printf "%s=%05d" .level 7 }} {{ len .msg }}`:                      `warn=00007 11`,
		`{{ __line__ | len }}`:                                                `46`,
		`{{ __timestamp__ | unixEpochMillis }}`:                               `1700000000123`,
		`{{ __timestamp__.UTC.Format "2006-01-02" }}`:                         `2023-11-14`,
		`{{ add .n 8 }} {{ mulf 1.5 2 }} {{ if eq .level "warn" }}W{{ end }}`: `50 3 W`,
		`{{ substr 0 5 .msg }}{{ trunc 2 .path }}{{ contains "World" .msg }}`: `Hello/atrue`,
		`{{ .level | b64enc }} {{ "d2Fybg==" | b64dec }}`:                     `d2Fybg== warn`,
	} {
		f(`{app="x"} | logfmt | line_format `+"`"+tmpl+"`", line, want, parsed)
	}
	// A failing template keeps the line and marks the error.
	got, lbls, ok := runPipeline(t, `{app="x"} | line_format "{{ div 1 0 }}"`, stream, labels.EmptyLabels(), ts, "orig")
	require.True(t, ok)
	require.Equal(t, "orig", got)
	require.Equal(t, ErrTemplateFormat, lbls.Get(errorLabel))

	f(`{app="x"} | logfmt | label_format lvl=level, combo="{{.lvl}}-{{.n}}", app="{{.app}}!"`, line, line,
		labels.FromStrings("app", "x!", "lvl", "warn", "path", "/api/v1", "n", "42", "msg", "Hello World", "combo", "warn-42"))
	f(`{app="x"} | logfmt | drop path, n="41", msg=~"Hello.*"`, line, line, labels.FromStrings("app", "x", "level", "warn", "n", "42"))
	f(`{app="x"} | logfmt | keep app, level, n="41"`, line, line, labels.FromStrings("app", "x", "level", "warn"))
	// keep leaves the error labels alone.
	_, lbls, _ = runPipeline(t, `{app="x"} | json | keep app`, stream, labels.EmptyLabels(), ts, "nope")
	require.Equal(t, ErrJSON, lbls.Get(errorLabel))
	// Line filters after line_format see the new line.
	_, _, ok = runPipeline(t, `{app="x"} | line_format "new" |= "orig"`, stream, labels.EmptyLabels(), ts, "orig")
	require.False(t, ok)
}

func TestPipelineStructuredMetadata(t *testing.T) {
	_, got, ok := runPipeline(t, `{app="x"} | logfmt`, labels.FromStrings("app", "x"), labels.FromStrings("trace_id", "t1", "app", "meta"), 0, `trace_id=t2 k=v`)
	require.True(t, ok)
	// Metadata joins the labels (with _extracted when it clashes with the
	// stream); a parsed key clashing with metadata overwrites it, as in Loki.
	require.Equal(t, `{app="x", app_extracted="meta", k="v", trace_id="t2"}`, got.String())
}

func TestSplitPushdown(t *testing.T) {
	e, err := Parse(`{a="b"} |= "x" | json |~ "y" | level="e" | line_format "z" != "w"`)
	require.NoError(t, err)
	pushed, rest := splitPushdown(e.(*LogSelectorExpr).Pipeline)
	require.Len(t, pushed, 2)
	require.Equal(t, []string{"x"}, pushed[0].Values)
	require.Equal(t, []string{"y"}, pushed[1].Values)
	require.Len(t, rest, 4)
	require.True(t, filters(rest))
	e, err = Parse(`{a="b"} |= "x" | json | line_format "z"`)
	require.NoError(t, err)
	_, rest = splitPushdown(e.(*LogSelectorExpr).Pipeline)
	require.False(t, filters(rest))
}

func TestJSONPaths(t *testing.T) {
	line := `{"servers":["s1",{"name":"s2"},3],"req":{"headers":{"User-Agent":"curl","x\"y":"q"}},"n":null,"deep":[[1,[2,"two"]]]}`
	for path, want := range map[string]string{
		"servers[0]":                "s1",
		"servers[1].name":           "s2",
		"servers[2]":                "3",
		`req.headers["User-Agent"]`: "curl",
		`req.headers["x\"y"]`:       "q",
		`["req"]["headers"]`:        `{"User-Agent":"curl","x\"y":"q"}`,
		"n":                         "",
		"deep[0][1][1]":             "two",
		"servers":                   `["s1",{"name":"s2"},3]`,
	} {
		p, err := parseJSONPath(path)
		require.NoError(t, err, path)
		got, found, err := jsonExtract(line, p)
		require.NoError(t, err, path)
		require.True(t, found, path)
		require.Equal(t, want, got, path)
	}
	for _, path := range []string{"servers[3]", "req.nope", "servers.name", "req[0]", "n.x"} {
		p, err := parseJSONPath(path)
		require.NoError(t, err, path)
		_, found, err := jsonExtract(line, p)
		require.NoError(t, err, path)
		require.False(t, found, path)
	}
	for _, bad := range []string{"", "a..b", "a[", "a[x]", `a["b]`, ".a", "a.", "a b"} {
		_, err := parseJSONPath(bad)
		require.Error(t, err, bad)
	}
	p, _ := parseJSONPath("a[1]")
	_, _, err := jsonExtract(`{"a":[1,`, p)
	require.Error(t, err)
}

func TestMatchLine(t *testing.T) {
	for _, tc := range []struct {
		f    logs.LineFilter
		line string
		want bool
	}{
		{logs.LineFilter{Op: logs.LineContains, Values: []string{"a", "b"}}, "xbx", true},
		{logs.LineFilter{Op: logs.LineNotContains, Values: []string{"a", "b"}}, "xbx", false},
		{logs.LineFilter{Op: logs.LineMatches, Values: []string{`^x\d`}}, "x1", true},
		{logs.LineFilter{Op: logs.LineNotMatches, Values: []string{`^x\d`}}, "y1", true},
		{logs.LineFilter{Op: logs.LineContains, Values: []string{""}}, "anything", true},
	} {
		got, err := MatchLine(tc.f, tc.line)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%v on %q", tc.f, tc.line)
	}
	_, err := MatchLine(logs.LineFilter{Op: logs.LineMatches, Values: []string{"("}}, "x")
	require.Error(t, err)
}
