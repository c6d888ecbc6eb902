package logparse

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func TestParseTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "2024-05-01T12:34:56Z", want: ts("2024-05-01T12:34:56Z")},
		{in: "2024-05-01T12:34:56.123456789Z", want: ts("2024-05-01T12:34:56.123456789Z")},
		{in: "2024-05-01T12:34:56.1Z", want: ts("2024-05-01T12:34:56.1Z")},
		{in: "2024-05-01T12:34:56.1234567891234Z", want: ts("2024-05-01T12:34:56.123456789Z")},
		{in: "2024-05-01T12:34:56.5+02:30", want: ts("2024-05-01T10:04:56.5Z")},
		{in: "2024-05-01T12:34:56-07:00", want: ts("2024-05-01T19:34:56Z")},
		{in: "2024-02-29T00:00:00Z", want: ts("2024-02-29T00:00:00Z")},
		{in: "2023-02-29T00:00:00Z", err: true},
		{in: "2024-13-01T00:00:00Z", err: true},
		{in: "2024-05-01T24:00:00Z", err: true},
		{in: "2024-05-01T12:34:56", err: true},
		{in: "2024-05-01T12:34:56.Z", err: true},
		{in: "2024-05-01T12:34:56Zx", err: true},
		{in: "2024-05-01T12:34:56+0200", err: true},
		{in: "2024-05-01 12:34:56Z", err: true},
		{in: "", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTimestamp([]byte(tc.in))
			if tc.err {
				require.ErrorIs(t, err, ErrBadTimestamp)
				return
			}
			require.NoError(t, err)
			require.True(t, tc.want.Equal(got), "got %s want %s", got, tc.want)
		})
	}
}

func TestParseCRI(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		stream  Stream
		partial bool
		msg     string
		err     bool
	}{
		{name: "full", in: "2024-05-01T12:34:56.000000001Z stdout F hello world", stream: StreamStdout, msg: "hello world"},
		{name: "partial", in: "2024-05-01T12:34:56Z stderr P part one ", stream: StreamStderr, partial: true, msg: "part one "},
		{name: "empty message", in: "2024-05-01T12:34:56Z stdout F ", stream: StreamStdout, msg: ""},
		{name: "no message separator", in: "2024-05-01T12:34:56Z stdout F", stream: StreamStdout, msg: ""},
		{name: "tag with extra elements", in: "2024-05-01T12:34:56Z stdout F:x msg", stream: StreamStdout, msg: "msg"},
		{name: "message keeps spaces", in: "2024-05-01T12:34:56Z stdout F  two  spaces", stream: StreamStdout, msg: " two  spaces"},
		{name: "bad stream", in: "2024-05-01T12:34:56Z stdin F x", err: true},
		{name: "bad tag", in: "2024-05-01T12:34:56Z stdout X x", err: true},
		{name: "bad time", in: "yesterday stdout F x", err: true},
		{name: "no fields", in: "plain text", err: true},
		{name: "empty", in: "", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			err := ParseCRI(&r, []byte(tc.in))
			if tc.err {
				require.ErrorIs(t, err, ErrMalformedCRI)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.stream, r.Stream)
			require.Equal(t, tc.partial, r.Partial)
			require.Equal(t, tc.msg, string(r.Msg))
			require.False(t, r.Time.IsZero())
		})
	}
}

func TestParseDocker(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		stream  Stream
		partial bool
		msg     string
		noTime  bool
		err     bool
	}{
		{name: "full", in: `{"log":"hello\n","stream":"stdout","time":"2024-05-01T12:34:56.1Z"}`, stream: StreamStdout, msg: "hello"},
		{name: "partial", in: `{"log":"first half","stream":"stderr","time":"2024-05-01T12:34:56Z"}`, stream: StreamStderr, partial: true, msg: "first half"},
		{name: "escapes", in: `{"log":"a\"b\\c\t\u00e9\ud83d\ude00\n","stream":"stdout","time":"2024-05-01T12:34:56Z"}`, stream: StreamStdout, msg: "a\"b\\c\té😀"},
		{name: "lone surrogate", in: `{"log":"\ud800x\n","stream":"stdout","time":"2024-05-01T12:34:56Z"}`, stream: StreamStdout, msg: "\uFFFDx"},
		{name: "member order and extras", in: ` { "time":"2024-05-01T12:34:56Z", "attrs":{"a":[1,"}"]}, "stream":"stdout", "log":"x\n" } `, stream: StreamStdout, msg: "x"},
		{name: "no time", in: `{"log":"x\n","stream":"stdout"}`, stream: StreamStdout, msg: "x", noTime: true},
		{name: "log not a string", in: `{"log":1,"stream":"stdout"}`, err: true},
		{name: "no log", in: `{"stream":"stdout"}`, err: true},
		{name: "bad time", in: `{"log":"x\n","time":"now"}`, err: true},
		{name: "trailing garbage", in: `{"log":"x\n"} x`, err: true},
		{name: "trailing comma", in: `{"log":"x\n",}`, err: true},
		{name: "unterminated", in: `{"log":"x`, err: true},
		{name: "bad escape", in: `{"log":"\q"}`, err: true},
		{name: "not an object", in: `["log"]`, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Record
			err := ParseDocker(&r, []byte(tc.in))
			if tc.err {
				require.ErrorIs(t, err, ErrMalformedDocker)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.stream, r.Stream)
			require.Equal(t, tc.partial, r.Partial)
			require.Equal(t, tc.msg, string(r.Msg))
			require.Equal(t, tc.noTime, r.Time.IsZero())
		})
	}
}

// fieldsOf copies fields out of the parser's buffers, so that results can
// be compared after the next call.
func fieldsOf(fs []Field) [][2]string {
	out := [][2]string{}
	for _, f := range fs {
		out = append(out, [2]string{string(f.Name), string(f.Value)})
	}
	return out
}

func TestFieldParsers(t *testing.T) {
	re, err := NewRegex(`^(?P<level>\w+) (?P<msg>.*?)(?: code=(?P<code>\d+))?$`)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		p    FieldParser
		in   string
		want [][2]string
		err  error
	}{
		{name: "json", p: &JSON{}, in: `{"level":"info","n":12.5e3,"ok":true,"z":null,"obj":{"a":[1,2]},"arr":[{"b":"]"}]}`,
			want: [][2]string{{"level", "info"}, {"n", "12.5e3"}, {"ok", "true"}, {"z", "null"}, {"obj", `{"a":[1,2]}`}, {"arr", `[{"b":"]"}]`}}},
		{name: "json escaped key and value", p: &JSON{}, in: `{"a\"b":"x\ny"}`, want: [][2]string{{`a"b`, "x\ny"}}},
		{name: "json empty", p: &JSON{}, in: `{}`, want: [][2]string{}},
		{name: "json not object", p: &JSON{}, in: `"x"`, err: ErrMalformedJSON},
		{name: "json missing colon", p: &JSON{}, in: `{"a" 1}`, err: ErrMalformedJSON},
		{name: "json bad nesting", p: &JSON{}, in: `{"a":[1}`, err: ErrMalformedJSON},
		{name: "logfmt", p: &Logfmt{}, in: `level=info msg="hello \"you\"" bare dur=1.5s empty=`,
			want: [][2]string{{"level", "info"}, {"msg", `hello "you"`}, {"bare", ""}, {"dur", "1.5s"}, {"empty", ""}}},
		{name: "logfmt leading space", p: &Logfmt{}, in: "  a=1\tb=2 ", want: [][2]string{{"a", "1"}, {"b", "2"}}},
		{name: "logfmt no key", p: &Logfmt{}, in: `=x`, err: ErrMalformedLogfmt},
		{name: "logfmt unterminated quote", p: &Logfmt{}, in: `a="x`, err: ErrMalformedLogfmt},
		{name: "logfmt quote in bare value", p: &Logfmt{}, in: `a=x"y`, err: ErrMalformedLogfmt},
		{name: "logfmt text after quote", p: &Logfmt{}, in: `a="x"y`, err: ErrMalformedLogfmt},
		{name: "regex all groups", p: re, in: "warn disk full code=28", want: [][2]string{{"level", "warn"}, {"msg", "disk full"}, {"code", "28"}}},
		{name: "regex optional group absent", p: re, in: "info started", want: [][2]string{{"level", "info"}, {"msg", "started"}}},
		{name: "regex no match", p: re, in: "", err: ErrNoMatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Twice: the second call reuses the buffers the first one grew.
			for range 2 {
				got, err := tc.p.Parse([]byte(tc.in))
				if tc.err != nil {
					require.ErrorIs(t, err, tc.err)
					continue
				}
				require.NoError(t, err)
				require.Equal(t, tc.want, fieldsOf(got))
			}
		})
	}
}

func TestNewRegexNeedsNamedGroup(t *testing.T) {
	_, err := NewRegex(`^(\w+)$`)
	require.ErrorContains(t, err, "no named group")
	_, err = NewRegex(`(`)
	require.Error(t, err)
}

// Reuse must not corrupt earlier results of the same call, and the
// second line's results must not depend on the first's.
func TestReuseAcrossLines(t *testing.T) {
	var r Record
	require.NoError(t, ParseDocker(&r, []byte(`{"log":"a\tb\n","stream":"stdout"}`)))
	require.Equal(t, "a\tb", string(r.Msg))
	require.NoError(t, ParseDocker(&r, []byte(`{"log":"c\td\n","stream":"stderr"}`)))
	require.Equal(t, "c\td", string(r.Msg))
	require.Equal(t, StreamStderr, r.Stream)

	var p JSON
	fs, err := p.Parse([]byte(`{"k\t1":"v\t1","k\t2":"v\t2"}`))
	require.NoError(t, err)
	require.Equal(t, [][2]string{{"k\t1", "v\t1"}, {"k\t2", "v\t2"}}, fieldsOf(fs))
}
