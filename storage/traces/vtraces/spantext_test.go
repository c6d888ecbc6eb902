package vtraces

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSpanTextRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x0A}},
		{"two bytes", []byte{0xFF, 0x00}},
		{"three bytes", []byte{0x00, 0x80, 0xFF}},
		{"every byte value", func() []byte {
			b := make([]byte, 256)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}()},
		{"random 1000", random(1000)},
		{"random 1001", random(1001)},
		{"random 1002", random(1002)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := appendSpanText([]byte("prefix"), spanTextMarker, tc.in)
			require.Equal(t, "prefix", string(text[:6]), "appends")
			text = text[6:]
			require.Len(t, text, spanTextLen(len(tc.in)))
			require.Equal(t, byte(spanTextMarker), text[0])
			for i, c := range text {
				require.Falsef(t, isTokenByte(c) || c >= 0x7F, "byte %d of the text is %q, a token byte or not ASCII", i, c)
			}
			got, err := appendSpanRecordBytes([]byte("x"), string(text))
			require.NoError(t, err)
			require.Equal(t, append([]byte("x"), tc.in...), got)
		})
	}
}

// The tokenizer lib/logstorage uses finds no token in the text: isTokenByte
// and the alphabet agree with it.
func TestSpanTextHasNoTokens(t *testing.T) {
	for _, c := range spanTextAlphabet {
		require.False(t, isTokenByte(c), "%q", c)
	}
	all := appendSpanText(nil, spanTextMarker, bytes.Repeat([]byte{0x00, 0x10, 0x83, 0xFF, 0x7E, 0x41}, 100))
	require.Empty(t, strings.FieldsFunc(string(all), func(r rune) bool { return !isTokenByte(byte(r)) }))
}

func TestSpanRecordBytesRaw(t *testing.T) {
	// A record stored raw, as before the text encoding: read as it is.
	raw := appendSpanRecord(nil, spanRecord{resource: []byte{0x0A, 0x00}, span: []byte{0x12, 0x01, 0x41}})
	require.Equal(t, byte(0x0A), raw[0])
	got, err := appendSpanRecordBytes(nil, string(raw))
	require.NoError(t, err)
	require.Equal(t, raw, got)
}

func TestSpanTextMalformed(t *testing.T) {
	for _, tc := range []struct{ name, text string }{
		{"one symbol left over", "!" + string([]byte{'!', '!', '!', '!', '!'})},
		{"a letter", "!" + "!!a!"},
		{"a byte above DEL", "!" + "!!\x80!"},
		{"trailing bits after one byte", "!" + string([]byte{spanTextAlphabet[0], spanTextAlphabet[1]})},
		{"trailing bits after two bytes", "!" + string([]byte{spanTextAlphabet[0], spanTextAlphabet[0], spanTextAlphabet[1]})},
		{"a non-symbol in the last group", "!" + "!a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := appendSpanRecordBytes(nil, tc.text)
			require.Error(t, err)
			require.True(t, errors.Is(err, errWire), err)
		})
	}
}

func FuzzSpanText(f *testing.F) {
	f.Add([]byte{}, "!")
	f.Add([]byte{0x0A, 0x01, 0x02}, "!\x00\x01")
	f.Fuzz(func(t *testing.T, b []byte, text string) {
		// Every byte string survives the round trip.
		got, err := appendSpanRecordBytes(nil, string(appendSpanText(nil, spanTextMarker, b)))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %x: %x, %v", b, got, err)
		}
		// Any stored value decodes or fails cleanly, and a text that
		// decodes is the one encoding of what it decodes to.
		dec, err := appendSpanRecordBytes(nil, text)
		if err == nil && len(text) > 0 && text[0] == spanTextMarker {
			if again := appendSpanText(nil, spanTextMarker, dec); string(again) != text {
				t.Fatalf("%q decodes to %x, which encodes to %q", text, dec, again)
			}
		}
	})
}
