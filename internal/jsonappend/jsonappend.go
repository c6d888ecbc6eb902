// Package jsonappend writes JSON into byte slices in the dst = f(dst, …) style, so that an
// encoder reusing a pooled buffer allocates nothing per value. The query APIs build their
// responses with it, byte for byte as the servers they stand in for do.
package jsonappend

import (
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
)

// Escape is a set of characters that String escapes beyond those JSON requires ('"', '\'
// and control characters). Servers differ here, and clients may compare bytes, so each
// caller picks the set of the server it imitates. Whatever the set, invalid UTF-8 becomes
// U+FFFD: raw invalid bytes would make the whole document invalid.
type Escape uint8

const (
	// EscapeHTML escapes '<', '>' and '&' as \u003c, \u003e and \u0026, so that JSON
	// embedded in HTML cannot break out of it. encoding/json does this by default.
	EscapeHTML Escape = 1 << iota
	// EscapeLineSeparators escapes U+2028 and U+2029, which JSON allows in strings but
	// JavaScript did not before ES2019 (JSONP). encoding/json always does this.
	EscapeLineSeparators
)

const hexDigits = "0123456789abcdef"

// Byte classes of ASCII: true where a byte is written as it is.
var (
	// plainSafe is everything but '"', '\' and control characters.
	plainSafe = func() (t [utf8.RuneSelf]bool) {
		for c := 0x20; c < utf8.RuneSelf; c++ {
			t[c] = c != '"' && c != '\\'
		}
		return t
	}()
	// htmlSafe also leaves out '<', '>' and '&'.
	htmlSafe = func() (t [utf8.RuneSelf]bool) {
		t = plainSafe
		t['<'], t['>'], t['&'] = false, false, false
		return t
	}()
)

// String appends s as a JSON string, escaping what JSON requires and what esc adds.
// '"', '\', '\n', '\r' and '\t' get their short escapes, other control characters \u00XX.
func String(dst []byte, s string, esc Escape) []byte {
	safe := &plainSafe
	if esc&EscapeHTML != 0 {
		safe = &htmlSafe
	}
	return appendEscaped(dst, s, safe, esc&EscapeLineSeparators != 0)
}

func appendEscaped(dst []byte, s string, safe *[utf8.RuneSelf]bool, escapeLineSeparators bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				// Other control characters, and '<', '>', '&' where HTML-escaping.
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case escapeLineSeparators && (r == '\u2028' || r == '\u2029'):
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Strings appends ss as a JSON array of strings; nil is [] because clients expect a list.
func Strings(dst []byte, ss []string, esc Escape) []byte {
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = String(dst, s, esc)
	}
	return append(dst, ']')
}

// Labels appends ls as a JSON object, {"name":"value",...} in label order; empty labels
// are {}.
func Labels(dst []byte, ls labels.Labels, esc Escape) []byte {
	dst = append(dst, '{')
	first := true
	ls.Range(func(l labels.Label) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = String(dst, l.Name, esc)
		dst = append(dst, ':')
		dst = String(dst, l.Value, esc)
	})
	return append(dst, '}')
}
