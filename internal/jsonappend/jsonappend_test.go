package jsonappend

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"
)

var allEscapes = []Escape{0, EscapeHTML, EscapeLineSeparators, EscapeHTML | EscapeLineSeparators}

func TestString(t *testing.T) {
	const in = "a\"\\/\n\r\t\x00\x1f\x7f <>& \u2028\u2029 é😀 \xff\xe2\x82"
	const head, tail = `"a\"\\/\n\r\t\u0000\u001f` + "\x7f ", ` é😀 \ufffd\ufffd\ufffd"` // \xe2\x82, a truncated rune, is two invalid bytes
	for esc, want := range map[Escape]string{
		0:                                 head + "<>& \u2028\u2029" + tail,
		EscapeHTML:                        head + `\u003c\u003e\u0026 ` + "\u2028\u2029" + tail,
		EscapeLineSeparators:              head + `<>& \u2028\u2029` + tail,
		EscapeHTML | EscapeLineSeparators: head + `\u003c\u003e\u0026 \u2028\u2029` + tail,
	} {
		require.Equal(t, want, string(String(nil, in, esc)), "escape %b", esc)
		require.Equal(t, "prefix"+want, string(String([]byte("prefix"), in, esc)), "escape %b", esc)
	}
}

// TestStringMatchesEncodingJSON checks the two sets encoding/json escapes, its default and
// SetEscapeHTML(false), on strings without \b and \f (which it writes short since Go 1.22,
// where jsoniter and Prometheus write \u0008 and \u000c, as we do).
func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote" backslash\`, "<html> & amp", "ctl \x00\x01\t\n\r\x1f\x7f", "ünïcødé ☃ 𝄞",
		"\u2028\u2029", "bad \xff\xfe utf8 \xc3", "\xed\xa0\x80 surrogate"} {
		for _, html := range []bool{true, false} {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(html)
			require.NoError(t, enc.Encode(s))
			esc := EscapeLineSeparators
			if html {
				esc |= EscapeHTML
			}
			require.Equal(t, strings.TrimSuffix(buf.String(), "\n"), string(String(nil, s, esc)), "%q, HTML %t", s, html)
		}
	}
}

func TestStrings(t *testing.T) {
	require.Equal(t, `[]`, string(Strings(nil, nil, 0)))
	require.Equal(t, `[]`, string(Strings(nil, []string{}, 0)))
	require.Equal(t, `["a","\u003cb\u003e",""]`, string(Strings(nil, []string{"a", "<b>", ""}, EscapeHTML)))
}

func TestLabels(t *testing.T) {
	require.Equal(t, `{}`, string(Labels(nil, labels.EmptyLabels(), 0)))
	ls := labels.FromStrings("__name__", "up", "path", "/a<b>\u2028", "q", `"x"`)
	require.Equal(t, `{"__name__":"up","path":"/a<b>`+"\u2028"+`","q":"\"x\""}`, string(Labels(nil, ls, 0)))
	require.Equal(t, `{"__name__":"up","path":"/a<b>\u2028","q":"\"x\""}`, string(Labels(nil, ls, EscapeLineSeparators)))
}

// FuzzString checks that String always produces valid JSON and UTF-8 that decodes to the
// input (with invalid UTF-8 replaced), whatever the bytes and the escapes.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", `"\`, "<>&", "\x00\x1f\x7f", "\u2028\u2029", "\xff", "ünï☃𝄞", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := string([]rune(s)) // Invalid bytes decode to U+FFFD, as String writes them.
		for _, esc := range allEscapes {
			b := String(nil, s, esc)
			require.True(t, json.Valid(b), "%q → %s", s, b)
			require.True(t, utf8.Valid(b))
			var got string
			require.NoError(t, json.Unmarshal(b, &got))
			require.Equal(t, want, got)
		}
	})
}

// BenchmarkString encodes log-line-like strings: plain ASCII, JSON with quotes to escape,
// and non-ASCII text.
func BenchmarkString(b *testing.B) {
	for _, c := range []struct{ name, s string }{
		{"ascii", `level=info ts=2024-01-01T00:00:00.000Z caller=handler.go:88 msg=done path=/api/v1/items/42 status=200`},
		{"quotes", `{"level":"info","ts":"2024-01-01T00:00:00Z","msg":"request done","path":"/api/v1/items/42","status":200}`},
		{"unicode", `niveau=info message="requête terminée" chemin=/café/☃ durée=12ms 𝄞`},
	} {
		for _, esc := range []Escape{0, EscapeHTML | EscapeLineSeparators} {
			b.Run(c.name+"/"+map[Escape]string{0: "plain", EscapeHTML | EscapeLineSeparators: "std"}[esc], func(b *testing.B) {
				var buf []byte
				b.SetBytes(int64(len(c.s)))
				b.ReportAllocs()
				for b.Loop() {
					buf = String(buf[:0], c.s, esc)
				}
			})
		}
	}
}
