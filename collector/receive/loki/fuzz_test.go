package loki

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/pharos-obs/pharos/collector/receive"
	"github.com/pharos-obs/pharos/collector/receive/receivetest"
	"github.com/pharos-obs/pharos/storage/logs"
)

// The fuzz targets' seed corpora live in testdata/fuzz/<target>;
// TestFuzzSeeds checks they match the seeds below and rewrites them with
// PHAROS_WRITE_FUZZ_SEEDS=1.

func jsonSeeds() [][]byte {
	return [][]byte{
		[]byte(jsonPush),
		[]byte(`{"streams":[{"stream":{"app":"a\"b"},"values":[["1","tab\t\u00e9 \ud83d\ude00"],["2","x",{"k":"v","k":"w"}]]}],"other":[1,-2.5e3,true,null,{}]}`),
		[]byte(`{"streams":null}`),
		[]byte(`{"streams":[{"stream":{"a":"b"},"values":[["1.5","x"]]}]}`),
		[]byte(`{"streams":[{"values":[["1","x",{},"y"]]}]}`),
		[]byte(`{"streams":[{"values":[["1","\ud800\u0041 \x"]]}]}`),
		[]byte(`{"x":[[[[[[[[[[]]]]]]]]]]}`),
		[]byte(" {\"streams\" : [ ] } \n"),
	}
}

func protobufSeeds() [][]byte {
	return [][]byte{
		protoPush(),
		pbPush(pbStream(`{app="a\"b", env='x',}`, pbEntryTS(pbTimestamp(-1, 5), "l", "k", "1", "k", "2")), pbStream(``, pbEntry(1, "x"))),
		pbPush(pbStream(`{app=~"a"}`, pbEntry(1, "l"))),
		pbPush(pbStream(`{app="a"}`, pbEntryTS(pbTimestamp(maxTSSeconds, 854775808), "l"))),
		pbPush(pbStream(`{app="a"}`, pbEntryTS(nil, "l"))),
		{0x0a, 0x05, 0x01},
		{0x14},
		nil,
	}
}

func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range map[string][][]byte{
		"FuzzDecodeJSONPush":     jsonSeeds(),
		"FuzzDecodeProtobufPush": protobufSeeds(),
	} {
		corpus := receivetest.NewSeedCorpus(t, target)
		for _, s := range seeds {
			corpus.Add(s)
		}
	}
}

func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, errMalformed) && !errors.Is(err, receive.ErrTooLarge) {
		t.Fatalf("error is neither malformed nor too large: %v", err)
	}
}

// FuzzDecodeJSONPush decodes any body: no panic; what it accepts is valid
// JSON that encoding/json reads the same way; decoding again into the
// reused decoder gives the same streams.
func FuzzDecodeJSONPush(f *testing.F) {
	for _, s := range jsonSeeds() {
		f.Add(s)
	}
	d := newDecoder(1 << 20)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer d.reset()
		if err := d.decodeJSON(data); err != nil {
			checkDecodeError(t, err)
			return
		}
		require.True(t, json.Valid(data), "accepted invalid JSON")
		first := receivetest.CloneStreams(d.result())
		d.reset()
		require.NoError(t, d.decodeJSON(data))
		receivetest.RequireStreams(t, first, d.result())
		if utf8.Valid(data) && !duplicateLabels(first) {
			// encoding/json replaces invalid UTF-8, which the decoder
			// passes on (and a map drops duplicate label names, which the
			// decoder keeps for CheckStreams to refuse); without either,
			// the two must agree.
			receivetest.RequireStreams(t, referenceJSON(t, data), first)
		}
	})
}

func duplicateLabels(streams []logs.Stream) bool {
	for _, s := range streams {
		if _, dup := s.Labels.HasDuplicateLabelNames(); dup {
			return true
		}
	}
	return false
}

// referenceJSON decodes a push body with encoding/json, as the decoder
// should have.
func referenceJSON(t *testing.T, data []byte) []logs.Stream {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var top map[string]any
	require.NoError(t, dec.Decode(&top))
	var out []logs.Stream
	ss, _ := top["streams"].([]any)
	for _, s := range ss {
		sm := s.(map[string]any)
		var st logs.Stream
		lm, _ := sm["stream"].(map[string]any)
		b := labels.NewScratchBuilder(len(lm))
		for k, v := range lm {
			b.Add(k, v.(string))
		}
		b.Sort()
		st.Labels = b.Labels()
		vs, _ := sm["values"].([]any)
		for _, v := range vs {
			ev := v.([]any)
			ts, err := strconv.ParseInt(ev[0].(string), 10, 64)
			require.NoError(t, err)
			e := logs.Entry{Timestamp: ts, Line: ev[1].(string), Metadata: labels.EmptyLabels()}
			if len(ev) == 3 && ev[2] != nil {
				mm := ev[2].(map[string]any)
				mb := labels.NewScratchBuilder(len(mm))
				for k, v := range mm {
					mb.Add(k, v.(string))
				}
				mb.Sort()
				e.Metadata = mb.Labels()
			}
			st.Entries = append(st.Entries, e)
		}
		out = append(out, st)
	}
	return out
}

// FuzzDecodeProtobufPush decodes any body: no panic, errors are
// malformed or too large, and decoding again gives the same streams.
func FuzzDecodeProtobufPush(f *testing.F) {
	for _, s := range protobufSeeds() {
		f.Add(s)
	}
	d := newDecoder(1 << 20)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer d.reset()
		if err := d.decodeProtobuf(data); err != nil {
			checkDecodeError(t, err)
			return
		}
		first := receivetest.CloneStreams(d.result())
		d.reset()
		require.NoError(t, d.decodeProtobuf(data))
		receivetest.RequireStreams(t, first, d.result())
	})
}
