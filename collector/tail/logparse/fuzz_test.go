package logparse

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func FuzzParseCRI(f *testing.F) {
	for _, s := range []string{
		"2024-05-01T12:34:56.000000001Z stdout F hello world",
		"2024-05-01T12:34:56Z stderr P part",
		"2024-05-01T12:34:56+02:00 stdout F:x ",
		"2024-05-01T12:34:56Z stdout",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		if err := ParseCRI(&r, line); err != nil {
			return
		}
		// The message is a suffix of the line: CRI never rewrites it.
		require.True(t, bytes.HasSuffix(line, r.Msg))
		require.NotEqual(t, StreamUnknown, r.Stream)
	})
}

func FuzzParseDocker(f *testing.F) {
	for _, s := range []string{
		`{"log":"hello\n","stream":"stdout","time":"2024-05-01T12:34:56.1Z"}`,
		`{"log":"part","stream":"stderr","time":"2024-05-01T12:34:56Z"}`,
		`{"log":"\u00e9\ud83d\ude00\"\\\n","attrs":{"a":[1,"}"]}}`,
		`{"log":"\ud800"}`,
		`{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Record
		err := ParseDocker(&r, line)
		if err != nil {
			return
		}
		// Unescaping never invents invalid UTF-8 where the input had none.
		if utf8.Valid(line) {
			require.True(t, utf8.Valid(r.Msg), "msg %q", r.Msg)
		}
		// Parsing again with the grown buffer gives the same result.
		msg := string(r.Msg)
		require.NoError(t, ParseDocker(&r, line))
		require.Equal(t, msg, string(r.Msg))
	})
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"level":"info","n":1.5,"ok":true,"z":null,"o":{"a":[1,{"b":"]"}]}}`,
		`{"a\"b":"x\ny"}`,
		`{}`,
		`{"a":"\\"}`,
		`[1]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var p JSON
		fs, err := p.Parse(line)
		if err != nil {
			return
		}
		first := fieldsOf(fs)
		fs, err = p.Parse(line)
		require.NoError(t, err)
		require.Equal(t, first, fieldsOf(fs))
	})
}

func FuzzLogfmt(f *testing.F) {
	for _, s := range []string{
		`level=info msg="hello \"you\"" bare dur=1.5s`,
		`a="\u00e9"`,
		`=x`,
		`a="x`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var p Logfmt
		fs, err := p.Parse(line)
		if err != nil {
			return
		}
		for _, fl := range fs {
			require.NotEmpty(t, fl.Name)
			require.False(t, bytes.ContainsAny(fl.Name, "= \""), "key %q", fl.Name)
		}
		first := fieldsOf(fs)
		fs, err = p.Parse(line)
		require.NoError(t, err)
		require.Equal(t, first, fieldsOf(fs))
	})
}
