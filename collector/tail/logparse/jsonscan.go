package logparse

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

type valueKind uint8

const (
	kindString valueKind = iota + 1
	kindNumber
	kindBool
	kindNull
	kindObject
	kindArray
)

// objectIter walks the top-level members of one JSON object without
// building it: strings are unescaped into buf (or aliased when they have
// no escapes), nested objects and arrays are returned as their raw text.
// It is lenient where leniency costs nothing (control characters in
// strings, loosely checked numbers) and strict about structure.
type objectIter struct {
	b     []byte
	i     int
	first bool
	done  bool
	buf   []byte
	err   error
}

// reset starts on b, which must hold one object and nothing but white
// space around it.
func (it *objectIter) reset(b []byte) bool {
	it.b, it.first, it.done, it.err = b, true, false, nil
	it.i = skipWS(b, 0)
	if it.i >= len(b) || b[it.i] != '{' {
		it.err = ErrMalformedJSON
		return false
	}
	it.i++
	return true
}

// next returns the next member. ok is false at the end of the object and
// on malformed input, which sets err.
func (it *objectIter) next() (key, val []byte, kind valueKind, ok bool) {
	if it.done || it.err != nil {
		return nil, nil, 0, false
	}
	b := it.b
	i := skipWS(b, it.i)
	if i < len(b) && b[i] == '}' {
		it.done = true
		if skipWS(b, i+1) != len(b) {
			it.err = ErrMalformedJSON
		}
		return nil, nil, 0, false
	}
	if !it.first {
		if i >= len(b) || b[i] != ',' {
			return it.fail()
		}
		i = skipWS(b, i+1)
	}
	it.first = false
	if i >= len(b) || b[i] != '"' {
		return it.fail()
	}
	key, i, ok = it.str(i + 1)
	if !ok {
		return it.fail()
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return it.fail()
	}
	i = skipWS(b, i+1)
	val, kind, i, ok = it.value(i)
	if !ok {
		return it.fail()
	}
	it.i = i
	return key, val, kind, true
}

func (it *objectIter) fail() ([]byte, []byte, valueKind, bool) {
	it.err = ErrMalformedJSON
	return nil, nil, 0, false
}

func (it *objectIter) value(i int) ([]byte, valueKind, int, bool) {
	b := it.b
	if i >= len(b) {
		return nil, 0, i, false
	}
	switch c := b[i]; {
	case c == '"':
		s, j, ok := it.str(i + 1)
		return s, kindString, j, ok
	case c == '{' || c == '[':
		j, ok := skipComposite(b, i)
		if !ok {
			return nil, 0, i, false
		}
		if c == '{' {
			return b[i:j], kindObject, j, true
		}
		return b[i:j], kindArray, j, true
	case c == 't':
		return literal(b, i, "true", kindBool)
	case c == 'f':
		return literal(b, i, "false", kindBool)
	case c == 'n':
		return literal(b, i, "null", kindNull)
	case c == '-' || (c >= '0' && c <= '9'):
		j := i + 1
		for j < len(b) && isNumberByte(b[j]) {
			j++
		}
		return b[i:j], kindNumber, j, true
	}
	return nil, 0, i, false
}

func literal(b []byte, i int, lit string, kind valueKind) ([]byte, valueKind, int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return nil, 0, i, false
	}
	return b[i : i+len(lit)], kind, i + len(lit), true
}

func isNumberByte(c byte) bool {
	return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

// str decodes the string starting after its opening quote at i. It returns
// the string and the index after its closing quote.
func (it *objectIter) str(i int) ([]byte, int, bool) {
	s, buf, j, ok := unquote(it.b, i, it.buf)
	it.buf = buf
	return s, j, ok
}

// unquote decodes the JSON string in b starting after its opening quote at
// i, up to the closing quote. Without escapes the result aliases b;
// otherwise it is appended to buf. It returns the decoded string, buf, and
// the index after the closing quote.
func unquote(b []byte, i int, buf []byte) ([]byte, []byte, int, bool) {
	q := bytes.IndexByte(b[i:], '"')
	if q < 0 {
		return nil, buf, i, false
	}
	bs := bytes.IndexByte(b[i:i+q], '\\')
	if bs < 0 {
		return b[i : i+q], buf, i + q + 1, true
	}
	start := len(buf)
	buf = append(buf, b[i:i+bs]...)
	j := i + bs
	for j < len(b) {
		switch c := b[j]; c {
		case '"':
			return buf[start:], buf, j + 1, true
		case '\\':
			j++
			if j >= len(b) {
				return nil, buf, j, false
			}
			switch e := b[j]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, ok := hex4(b, j+1)
				if !ok {
					return nil, buf, j, false
				}
				j += 4
				if utf16.IsSurrogate(r) {
					r2, ok2 := rune(-1), false
					if j+2 < len(b) && b[j+1] == '\\' && b[j+2] == 'u' {
						r2, ok2 = hex4(b, j+3)
					}
					if dec := utf16.DecodeRune(r, r2); ok2 && dec != utf8.RuneError {
						r = dec
						j += 6
					} else {
						r = utf8.RuneError
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return nil, buf, j, false
			}
			j++
		default:
			k := j + 1
			for k < len(b) && b[k] != '"' && b[k] != '\\' {
				k++
			}
			buf = append(buf, b[j:k]...)
			j = k
		}
	}
	return nil, buf, j, false
}

func hex4(b []byte, i int) (rune, bool) {
	if len(b)-i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipComposite returns the index after the object or array starting at
// i. It checks that brackets pair up, and skips strings.
func skipComposite(b []byte, i int) (int, bool) {
	// A fixed stack would cap nesting; a byte slice on the caller's stack
	// covers any sane depth without allocating.
	var stackArr [64]byte
	stack := stackArr[:0]
	for i < len(b) {
		switch c := b[i]; c {
		case '{', '[':
			stack = append(stack, c)
		case '}', ']':
			open := byte('{')
			if c == ']' {
				open = '['
			}
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return i, false
			}
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return i + 1, true
			}
		case '"':
			j := i + 1
			for {
				q := bytes.IndexByte(b[j:], '"')
				if q < 0 {
					return i, false
				}
				j += q
				// The quote ends the string unless an odd number of
				// backslashes precede it.
				n := 0
				for k := j - 1; k > i && b[k] == '\\'; k-- {
					n++
				}
				if n%2 == 0 {
					break
				}
				j++
			}
			i = j
		}
		i++
	}
	return i, false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
