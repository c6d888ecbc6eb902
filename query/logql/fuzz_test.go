package logql

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// FuzzParse checks that no query makes the parser panic, and that the
// canonical form of every query it accepts parses back to itself.
func FuzzParse(f *testing.F) {
	for _, tc := range validQueries {
		f.Add(tc.in)
	}
	for _, q := range []string{
		`{app="x"} | json | line_format "{{ .a | default \"none\" }}"`,
		`sum by (a) (count_over_time({app="x"} | logfmt --strict | b > 1KiB [5m])) / ignoring (c) group_left (d) sum(rate({e="f"}[1m]))`,
		`{app="x"} | pattern "<_>"`,
		`{a="b"} | x="1" y="2" or (z=~"3" , w!~"4")`,
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		e, err := Parse(q)
		if err != nil {
			return
		}
		s := e.String()
		e2, err := Parse(s)
		if err != nil {
			t.Fatalf("canonical form of %q does not parse: %q: %v", q, s, err)
		}
		if s2 := e2.String(); s2 != s {
			t.Fatalf("canonical form of %q is not stable:\n%s\n%s", q, s, s2)
		}
	})
}

// FuzzLineParsers runs the parsers over arbitrary log lines: they must not
// panic, and every label they produce must have a valid name.
func FuzzLineParsers(f *testing.F) {
	for _, l := range []string{
		benchJSONLine,
		`{"a":{"b":[1,{"c":"\u00e9\ud83d"}]},"":1,"1":true}`,
		`level=info msg="quoted \"x\"" k= v "bad=1 a=b=c`,
		`{"unterminated":"`,
	} {
		f.Add(l)
	}
	stages := [][]Stage{
		{&JSONStage{}},
		{&JSONStage{Params: []ExtractParam{{Label: "a", Path: "a.b[1].c"}, {Label: "b", Path: `["x"][0]`}}}},
		{&LogfmtStage{}},
		{&LogfmtStage{Strict: true, KeepEmpty: true}},
		{&LogfmtStage{Params: []ExtractParam{{Label: "m", Path: "msg"}}}},
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, st := range stages {
			pl, err := compilePipeline(st)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := pl.process(streamLabels(labels.FromStrings("app", "x")), labels.EmptyLabels(), 0, line); !ok {
				t.Fatalf("%s dropped %q", st[0], line)
			}
			for _, l := range pl.lb.resolve(nil, "") {
				if !isLabelName(l.name) {
					t.Fatalf("%s made invalid label name %q from %q", st[0], l.name, line)
				}
			}
		}
	})
}
