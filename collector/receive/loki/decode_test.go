package loki

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// checkDecode decodes body twice into the same decoder (reuse must not
// change the result) and checks the streams, or the error when wantErr, a
// substring of it, is not "".
func checkDecode(t *testing.T, decode func(*decoder, []byte) error, body []byte, want []logs.Stream, wantErr string) {
	t.Helper()
	d := newDecoder(64 << 20)
	for range 2 {
		err := decode(d, body)
		if wantErr != "" {
			require.ErrorIs(t, err, errMalformed)
			require.ErrorContains(t, err, wantErr)
		} else {
			require.NoError(t, err)
			receivetest.RequireStreams(t, want, d.result())
		}
		d.reset()
	}
}

func TestDecodeJSON(t *testing.T) {
	app := labels.FromStrings("app", "api", "env", "prod")
	for _, c := range []struct {
		name string
		body string
		want []logs.Stream
		err  string // substring of the error; "" for success
	}{
		{
			name: "two streams, metadata, unordered",
			body: `{"streams":[
			  {"stream":{"env":"prod","app":"api"},"values":[["1700000000000000002","second"],["1700000000000000001","first",{"trace_id":"abc","user":"u1"}]]},
			  {"stream":{"app":"db"},"values":[["5","x"]]}]}`,
			want: []logs.Stream{
				stream(app, entry(1700000000000000002, "second"), entry(1700000000000000001, "first", "trace_id", "abc", "user", "u1")),
				stream(labels.FromStrings("app", "db"), entry(5, "x")),
			},
		},
		{
			name: "escapes",
			body: `{"streams":[{"stream":{"app":"a\"b"},"values":[["1","tab\there\nnl \u00e9 \ud83d\ude00 \/ \\ \b\f\r"],["2","lone \ud800 high", {"k":"\u0041"}],["3","bad pair \ud800\u0041"]]}]}`,
			want: []logs.Stream{stream(labels.FromStrings("app", `a"b`),
				entry(1, "tab\there\nnl é 😀 / \\ \b\f\r"), entry(2, "lone \uFFFD high", "k", "A"), entry(3, "bad pair \uFFFDA"))},
		},
		{
			name: "unknown fields, nulls and whitespace",
			body: " {\"other\": [1, -2.5e+3, true, false, null, {\"x\": [\"y\"]}], \"streams\": [ {\"values\" : [ [ \"1\" , \"l\" , null ] ] , \"extra\": {}, \"stream\": {\"app\": \"api\", \"env\": \"prod\"}}, {\"stream\": {\"app\": \"none\"}, \"values\": null} ] }\n",
			want: []logs.Stream{stream(app, entry(1, "l")), stream(labels.FromStrings("app", "none"))},
		},
		{
			name: "a key given twice keeps its last value",
			body: `{"streams":[{"stream":{"app":"x"},"values":[["1","gone"]]}],"streams":[{"stream":{"app":"api","env":"prod"},"values":[["1","gone"]],"values":[["2","kept",{"k":"1","k":"2"}]]}]}`,
			want: []logs.Stream{stream(app, entry(2, "kept", "k", "2"))},
		},
		{name: "empty", body: `{}`},
		{name: "null streams", body: `{"streams":null}`},
		{name: "negative timestamp", body: `{"streams":[{"stream":{"app":"a"},"values":[["-1","x"]]}]}`, want: []logs.Stream{stream(labels.FromStrings("app", "a"), entry(-1, "x"))}},

		{name: "not an object", body: `[]`, err: "want an object such as"},
		{name: "trailing data", body: `{} {}`, err: "unexpected data after the push object"},
		{name: "streams not an array", body: `{"streams":{}}`, err: "streams: want an array"},
		{name: "stream not an object", body: `{"streams":[1]}`, err: "stream 0: malformed push request: invalid JSON at offset 12: want an object"},
		{name: "label value not a string", body: `{"streams":[{"stream":{"app":1}}]}`, err: "label values must be strings"},
		{name: "stream labels not an object", body: `{"streams":[{"stream":"{app=\"x\"}"}]}`, err: "stream: want an object of label names to values"},
		{name: "values not an array", body: `{"streams":[{"values":{}}]}`, err: "values: want an array of entries"},
		{name: "entry not an array", body: `{"streams":[{"values":["1","x"]}]}`, err: "entry 0: malformed push request: invalid JSON at offset 23: want an entry"},
		{name: "numeric timestamp", body: `{"streams":[{"values":[[1,"x"]]}]}`, err: "entry 0: malformed push request: invalid JSON at offset 24: timestamps must be strings"},
		{name: "timestamp not an integer", body: `{"streams":[{"stream":{"a":"b"},"values":[["1","x"],["1.5","x"]]}]}`, err: `stream 0: entry 1: malformed push request: timestamp "1.5" is not an integer of Unix nanoseconds`},
		{name: "timestamp overflows", body: `{"streams":[{"values":[["99999999999999999999","x"]]}]}`, err: `timestamp "99999999999999999999" is not an integer`},
		{name: "missing line", body: `{"streams":[{"values":[["1"]]}]}`, err: "want ',' and the line after the timestamp"},
		{name: "line not a string", body: `{"streams":[{"values":[["1",{}]]}]}`, err: "lines must be strings"},
		{name: "four elements", body: `{"streams":[{"values":[["1","x",{},"y"]]}]}`, err: "want ']': an entry has a timestamp, a line and optionally structured metadata"},
		{name: "metadata not an object", body: `{"streams":[{"values":[["1","x",["a"]]]}]}`, err: "structured metadata: want an object"},
		{name: "metadata value not a string", body: `{"streams":[{"values":[["1","x",{"a":2}]]}]}`, err: "structured metadata values must be strings"},
		{name: "unterminated string", body: `{"streams":[{"values":[["1","x`, err: "unterminated string"},
		{name: "unterminated escape", body: `{"streams":[{"values":[["1","x\`, err: "unterminated string"},
		{name: "control character", body: "{\"streams\":[{\"values\":[[\"1\",\"a\x01\"]]}]}", err: "control character in a string"},
		{name: "invalid escape", body: `{"streams":[{"values":[["1","\x"]]}]}`, err: `invalid escape \x`},
		{name: "invalid unicode escape", body: `{"streams":[{"values":[["1","\u12G4"]]}]}`, err: `invalid \u escape`},
		{name: "missing colon", body: `{"streams" []}`, err: "want ':' after an object key"},
		{name: "missing comma", body: `{"streams":[] "x":1}`, err: "want ',' or '}' in an object"},
		{name: "unclosed array", body: `{"x":[1 2]}`, err: "want ',' or ']' in an array"},
		{name: "key not a string", body: `{streams:[]}`, err: "want a string"},
		{name: "bad number", body: `{"x":01}`, err: "want ',' or '}' in an object"},
		{name: "bad fraction", body: `{"x":1.}`, err: "invalid number"},
		{name: "bad exponent", body: `{"x":1e}`, err: "invalid number"},
		{name: "bad literal", body: `{"x":nul}`, err: "want a value"},
		{name: "truncated", body: `{"x":`, err: "unexpected end of input"},
		{name: "deep nesting", body: `{"x":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`, err: "values nested deeper than 512"},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkDecode(t, (*decoder).decodeJSON, []byte(c.body), c.want, c.err)
		})
	}
}

func TestDecodeProtobuf(t *testing.T) {
	app := labels.FromStrings("app", "api", "env", "prod")
	unknown := func(b []byte) []byte {
		// An unknown varint, bytes and group field around the message.
		u := protowire.AppendTag(nil, 14, protowire.VarintType)
		u = protowire.AppendVarint(u, 7)
		u = protowire.AppendTag(u, 15, protowire.BytesType)
		u = protowire.AppendString(u, "skip me")
		u = protowire.AppendTag(u, 16, protowire.StartGroupType)
		u = protowire.AppendTag(u, 1, protowire.VarintType)
		u = protowire.AppendVarint(u, 1)
		u = protowire.AppendTag(u, 16, protowire.EndGroupType)
		return append(append(u, b...), u...)
	}
	wrongType := func(num protowire.Number) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), 1)
	}
	for _, c := range []struct {
		name string
		body []byte
		want []logs.Stream
		err  string
	}{
		{
			name: "streams, metadata, unordered",
			body: pbPush(
				pbStream(`{app="api", env="prod"}`, pbEntry(1700000000_000000002, "second"), pbEntry(1700000000_000000001, "first", "user", "u1", "trace_id", "abc")),
				pbStream(`{app="db"}`, pbEntry(5, "x")),
			),
			want: []logs.Stream{
				stream(app, entry(1700000000_000000002, "second"), entry(1700000000_000000001, "first", "trace_id", "abc", "user", "u1")),
				stream(labels.FromStrings("app", "db"), entry(5, "x")),
			},
		},
		{
			name: "label escapes, trailing comma, quoted values",
			body: pbPush(pbStream(`{app="a\"b\\c", env='x',}`, pbEntry(1, "l"))),
			want: []logs.Stream{stream(labels.FromStrings("app", `a"b\c`, "env", "x"), entry(1, "l"))},
		},
		{
			name: "unknown fields everywhere",
			body: unknown(pbPush(unknown(pbStream(`{app="api",env="prod"}`, unknown(pbEntryTS(unknown(pbTimestamp(3, 4)), "l", "k", "v")))))),
			want: []logs.Stream{stream(app, entry(3_000000004, "l", "k", "v"))},
		},
		{
			name: "a metadata name sent twice keeps its last value",
			body: pbPush(pbStream(`{app="a"}`, pbEntry(1, "l", "k", "1", "j", "x", "k", "2"))),
			want: []logs.Stream{stream(labels.FromStrings("app", "a"), entry(1, "l", "j", "x", "k", "2"))},
		},
		{
			name: "timestamp extremes",
			body: pbPush(pbStream(`{app="a"}`,
				pbEntryTS(pbTimestamp(0, 0), "epoch"),
				pbEntryTS(pbTimestamp(maxTSSeconds, 854775807), "max"),
				pbEntryTS(pbTimestamp(-1, 5), "before epoch"))),
			want: []logs.Stream{stream(labels.FromStrings("app", "a"), entry(0, "epoch"), entry(math.MaxInt64, "max"), entry(-999999995, "before epoch"))},
		},
		{name: "empty", body: nil},
		{
			name: "no labels is left to the checks",
			body: pbPush(pbStream(``, pbEntry(1, "l"))),
			want: []logs.Stream{stream(labels.EmptyLabels(), entry(1, "l"))},
		},

		{name: "truncated", body: pbPush(pbStream(`{app="a"}`, pbEntry(1, "l")))[:10], err: "unexpected EOF"},
		{name: "field number 0", body: []byte{0x02, 0x00}, err: "invalid field number"},
		{name: "stray end group", body: []byte{0x14}, err: "mismatching end group marker"},
		{name: "varint overflow", body: append([]byte{0x10}, bytesOf(0xff, 10)...), err: "variable length integer overflow"},
		{name: "streams with wrong wire type", body: wrongType(1), err: "PushRequest field 1 has wire type 0, want 2"},
		{name: "labels with wrong wire type", body: pbPush(wrongType(1)), err: "stream 0: malformed push request: StreamAdapter field 1 has wire type 0"},
		{name: "entries with wrong wire type", body: pbPush(wrongType(2)), err: "StreamAdapter field 2 has wire type 0"},
		{name: "hash with wrong wire type", body: pbPush(protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), "x")), err: "StreamAdapter field 3 has wire type 2, want 0"},
		{name: "timestamp with wrong wire type", body: pbPush(pbStream(`{app="a"}`, wrongType(1))), err: "entry 0: malformed push request: EntryAdapter field 1 has wire type 0"},
		{name: "line with wrong wire type", body: pbPush(pbStream(`{app="a"}`, wrongType(2))), err: "EntryAdapter field 2 has wire type 0"},
		{name: "seconds with wrong wire type", body: pbPush(pbStream(`{app="a"}`, pbEntryTS(protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "x"), "l"))), err: "Timestamp field 1 has wire type 2, want 0"},
		{name: "metadata with wrong wire type", body: pbPush(pbStream(`{app="a"}`, append(pbEntry(1, "l"), wrongType(3)...))), err: "EntryAdapter field 3 has wire type 0"},
		{name: "metadata name with wrong wire type", body: pbPush(pbStream(`{app="a"}`, append(pbEntry(1, "l"), protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), wrongType(1))...))), err: "LabelPairAdapter field 1 has wire type 0"},
		{name: "missing timestamp", body: pbPush(pbStream(`{app="a"}`, pbEntry(1, "l"), pbEntryTS(nil, "l"))), err: "stream 0: entry 1: malformed push request: the entry has no timestamp"},
		{name: "negative nanos", body: pbPush(pbStream(`{app="a"}`, pbEntryTS(pbTimestamp(1, -1), "l"))), err: "timestamp nanos -1 out of range"},
		{name: "nanos over a second", body: pbPush(pbStream(`{app="a"}`, pbEntryTS(pbTimestamp(1, 1e9), "l"))), err: "timestamp nanos 1000000000 out of range"},
		{name: "seconds overflow", body: pbPush(pbStream(`{app="a"}`, pbEntryTS(pbTimestamp(maxTSSeconds, 854775808), "l"))), err: "is outside what Unix nanoseconds can hold"},
		{name: "seconds far out", body: pbPush(pbStream(`{app="a"}`, pbEntryTS(pbTimestamp(math.MinInt64, 0), "l"))), err: "is outside what Unix nanoseconds can hold"},
		{name: "labels without braces", body: pbPush(pbStream(`app="a"`, pbEntry(1, "l"))), err: `labels "app=\"a\"": want a label set such as {app="x"}`},
		{name: "labels with a metric name", body: pbPush(pbStream(`up{app="a"}`, pbEntry(1, "l"))), err: "want a label set such as"},
		{name: "labels with a matcher", body: pbPush(pbStream(`{app=~"a"}`, pbEntry(1, "l"))), err: `unexpected <op:=~> in label set`},
		{name: "unclosed labels", body: pbPush(pbStream(`{app="a"`, pbEntry(1, "l"))), err: "unexpected end of input inside braces"},
		{name: "labels and more", body: pbPush(pbStream(`{app="a"} x`, pbEntry(1, "l"))), err: `parse error: unexpected identifier "x"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			checkDecode(t, (*decoder).decodeProtobuf, c.body, c.want, c.err)
		})
	}
}

func bytesOf(c byte, n int) []byte { return []byte(strings.Repeat(string(c), n)) }

// Entries are charged against the decoded budget: tiny entries must not
// expand a small body many times over in memory.
func TestDecodeBudget(t *testing.T) {
	var entries [][]byte
	for range 1000 {
		entries = append(entries, pbEntryTS(pbTimestamp(0, 0), ""))
	}
	body := pbPush(pbStream(`{app="a"}`, entries...))
	d := newDecoder(len(body) * 4)
	err := d.decodeProtobuf(body)
	require.ErrorIs(t, err, receive.ErrTooLarge)
	require.ErrorContains(t, err, "expands to more than")
	d.reset()

	js := `{"streams":[{"stream":{"a":"b"},"values":[` + strings.Repeat(`["1",""],`, 999) + `["1",""]]}]}`
	d = newDecoder(len(js) * 2)
	require.ErrorIs(t, d.decodeJSON([]byte(js)), receive.ErrTooLarge)
	d.reset()
	d = newDecoder(len(js) * 8)
	require.NoError(t, d.decodeJSON([]byte(js)))
}

// Label strings are parsed once and then served from the cache, which
// stays bounded.
func TestLabelCache(t *testing.T) {
	d := newDecoder(64 << 20)
	ls, err := d.parseLabels([]byte(`{app="a"}`))
	require.NoError(t, err)
	again, err := d.parseLabels([]byte(`{app="a"}`))
	require.NoError(t, err)
	require.Equal(t, ls, again)
	allocs := testing.AllocsPerRun(100, func() { _, _ = d.parseLabels([]byte(`{app="a"}`)) })
	require.Zero(t, allocs)
	for i := range maxLabelCache + 10 {
		_, err := d.parseLabels([]byte(`{app="` + strings.Repeat("x", i%50) + `", i="` + string(rune('a'+i%26)) + `"}`))
		require.NoError(t, err)
	}
	require.LessOrEqual(t, len(d.cache), maxLabelCache)
	_, err = d.parseLabels([]byte(`{a="b"`))
	require.True(t, errors.Is(err, errMalformed))
}
