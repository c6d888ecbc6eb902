package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestGenDeterministicWithKnownNeedles(t *testing.T) {
	gen := func(dir string) ([]byte, genFile) {
		t.Helper()
		v := newVocab(7)
		g := newFileGen(v, 7, 1, time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC), []byte("NEEDLE-qzxj7"), 1000)
		f, err := g.writeFile(filepath.Join(dir, "a.log"), 2<<20)
		require.NoError(t, err)
		b, err := os.ReadFile(f.Path)
		require.NoError(t, err)
		return b, f
	}
	a, fa := gen(t.TempDir())
	b, _ := gen(t.TempDir())
	require.Equal(t, a, b, "same seed, same bytes")
	require.EqualValues(t, len(a), fa.Bytes)
	require.EqualValues(t, bytes.Count(a, []byte("\n")), fa.Lines)
	require.EqualValues(t, bytes.Count(a, []byte("NEEDLE-qzxj7")), fa.NeedleLines)
	require.Greater(t, fa.NeedleLines, int64(3))

	kinds := map[byte]int{}
	for _, line := range bytes.Split(bytes.TrimSuffix(a, []byte("\n")), []byte("\n")) {
		require.NotEmpty(t, line)
		kinds[line[0]]++
		if line[0] == '{' {
			require.True(t, json.Valid(line), "invalid JSON line: %s", line)
		}
	}
	require.Greater(t, kinds['{'], int(fa.Lines)/2, "file 1 is mostly JSON")
	require.Positive(t, kinds['t'], "logfmt lines mixed in")
}

func TestPushEncoderRoundTrip(t *testing.T) {
	e := &pushEncoder{labels: streamLabels([][2]string{{"job", "bench"}}, "/x/app-0.log")}
	require.Equal(t, `{filename="/x/app-0.log", job="bench"}`, e.labels)
	lines := []string{"first line", `{"a":1}`, ""}
	for _, l := range lines {
		e.add([]byte(l), len(l)+1)
	}
	r := e.finish()
	require.EqualValues(t, 3, r.lines)
	require.Zero(t, e.lines, "finish resets")

	raw, err := snappy.Decode(nil, r.body)
	require.NoError(t, err)
	stream := field(t, raw, 1)
	require.Equal(t, e.labels, string(field(t, stream, 1)))
	var got []string
	var last int64
	for rest := stream; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		require.GreaterOrEqual(t, n, 0)
		rest = rest[n:]
		m := protowire.ConsumeFieldValue(num, typ, rest)
		require.GreaterOrEqual(t, m, 0)
		if num == 2 {
			entry, _ := protowire.ConsumeBytes(rest)
			ts := field(t, entry, 1)
			sec, _ := protowire.ConsumeVarint(field(t, ts, 1))
			nsec, _ := protowire.ConsumeVarint(field(t, ts, 2))
			now := int64(sec)*1e9 + int64(nsec)
			require.Greater(t, now, last, "timestamps increase")
			last = now
			got = append(got, string(field(t, entry, 2)))
		}
		rest = rest[m:]
	}
	require.Equal(t, lines, got)
}

// field returns the raw value of the first field num in msg: the bytes of
// a length-delimited field, the varint's encoding otherwise.
func field(t *testing.T, msg []byte, num protowire.Number) []byte {
	t.Helper()
	for len(msg) > 0 {
		n, typ, k := protowire.ConsumeTag(msg)
		require.GreaterOrEqual(t, k, 0)
		msg = msg[k:]
		m := protowire.ConsumeFieldValue(n, typ, msg)
		require.GreaterOrEqual(t, m, 0)
		if n == num {
			if typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(msg)
				return v
			}
			return msg[:m]
		}
		msg = msg[m:]
	}
	t.Fatalf("field %d not found", num)
	return nil
}
