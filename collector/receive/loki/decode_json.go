package loki

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/prometheus/prometheus/model/labels"
)

// maxJSONDepth bounds the nesting of values the decoder skips (unknown
// fields): recursion must not follow a body of a million '['.
const maxJSONDepth = 512

// decodeJSON decodes Loki's JSON push format:
//
//	{"streams": [{"stream": {"app": "x"},
//	              "values": [["<unix ns>", "<line>"], ["<unix ns>", "<line>", {"<name>": "<value>"}]]}]}
//
// The optional third element of an entry is its structured metadata.
// Unknown fields are skipped; a key given twice keeps its last value, as
// in encoding/json; a null stream, values or metadata is empty. Strings
// are unescaped as encoding/json does (bad surrogates become U+FFFD),
// except that invalid UTF-8 is passed on (CheckStreams repairs lines and
// metadata and counts them, and refuses such label values).
func (d *decoder) decodeJSON(b []byte) error {
	p := jsonParser{b: b, d: d}
	p.ws()
	if !p.consume('{') {
		return p.errorf("want an object such as {\"streams\": [...]}")
	}
	err := p.object(func(key string) error {
		if key != "streams" {
			return p.skip(0)
		}
		d.truncate(0, 0)
		return p.streams()
	})
	if err != nil {
		return err
	}
	p.ws()
	if p.i != len(p.b) {
		return p.errorf("unexpected data after the push object")
	}
	return nil
}

// truncate drops the streams from the n-th and the entries from the
// e-th: a key given again replaces what its first value decoded.
func (d *decoder) truncate(n, e int) {
	clear(d.streams[n:])
	d.streams, d.spans = d.streams[:n], d.spans[:n]
	clear(d.entries[e:])
	d.entries = d.entries[:e]
}

type jsonParser struct {
	b []byte
	i int
	d *decoder
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: invalid JSON at offset %d: %s", errMalformed, p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) consume(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) literal(lit string) bool {
	if len(p.b)-p.i >= len(lit) && string(p.b[p.i:p.i+len(lit)]) == lit {
		p.i += len(lit)
		return true
	}
	return false
}

// object reads the members of an object whose '{' was consumed: member
// is called for each key, positioned at the value, and must consume it.
func (p *jsonParser) object(member func(key string) error) error {
	p.ws()
	if p.consume('}') {
		return nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) {
			return p.errorf("unexpected end of input")
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if !p.consume(':') {
			return p.errorf("want ':' after an object key")
		}
		p.ws()
		if err := member(key); err != nil {
			return err
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume('}') {
			return nil
		}
		return p.errorf("want ',' or '}' in an object")
	}
}

// array reads the elements of an array whose '[' was consumed.
func (p *jsonParser) array(elem func(i int) error) error {
	p.ws()
	if p.consume(']') {
		return nil
	}
	for n := 0; ; n++ {
		p.ws()
		if p.i >= len(p.b) {
			return p.errorf("unexpected end of input")
		}
		if err := elem(n); err != nil {
			return err
		}
		p.ws()
		if p.consume(',') {
			continue
		}
		if p.consume(']') {
			return nil
		}
		return p.errorf("want ',' or ']' in an array")
	}
}

func (p *jsonParser) streams() error {
	if p.literal("null") {
		return nil
	}
	if !p.consume('[') {
		return p.errorf("streams: want an array")
	}
	return p.array(func(i int) error {
		if err := p.stream(); err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		return nil
	})
}

func (p *jsonParser) stream() error {
	if !p.consume('{') {
		return p.errorf("want an object {\"stream\": {...}, \"values\": [...]}")
	}
	d := p.d
	lo := len(d.entries)
	ls := labels.EmptyLabels()
	err := p.object(func(key string) error {
		switch key {
		case "stream":
			var err error
			ls, err = p.labels()
			return err
		case "values":
			d.truncate(len(d.streams), lo)
			return p.values()
		}
		return p.skip(0)
	})
	if err != nil {
		return err
	}
	return d.addStream(ls, lo)
}

// labels reads a stream's label object, sorted.
func (p *jsonParser) labels() (labels.Labels, error) {
	if p.literal("null") {
		return labels.EmptyLabels(), nil
	}
	if !p.consume('{') {
		return labels.EmptyLabels(), p.errorf("stream: want an object of label names to values")
	}
	sb := &p.d.sb
	sb.Reset()
	err := p.object(func(name string) error {
		v, err := p.strValue("label values")
		sb.Add(name, v)
		return err
	})
	if err != nil {
		return labels.EmptyLabels(), err
	}
	sb.Sort()
	return sb.Labels(), nil
}

func (p *jsonParser) values() error {
	if p.literal("null") {
		return nil
	}
	if !p.consume('[') {
		return p.errorf("values: want an array of entries")
	}
	return p.array(func(i int) error {
		if err := p.entry(); err != nil {
			return fmt.Errorf("entry %d: %w", i, err)
		}
		return nil
	})
}

// entry reads ["<unix ns>", "<line>"] or ["<unix ns>", "<line>", {metadata}].
func (p *jsonParser) entry() error {
	if !p.consume('[') {
		return p.errorf("want an entry [\"<unix ns>\", \"<line>\"]")
	}
	p.ws()
	tss, err := p.strValue("timestamps")
	if err != nil {
		return err
	}
	ts, err := strconv.ParseInt(tss, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %s is not an integer of Unix nanoseconds", errMalformed, quote(tss))
	}
	p.ws()
	if !p.consume(',') {
		return p.errorf("want ',' and the line after the timestamp")
	}
	p.ws()
	line, err := p.strValue("lines")
	if err != nil {
		return err
	}
	p.ws()
	d := p.d
	if p.consume(',') {
		p.ws()
		if !p.literal("null") {
			if !p.consume('{') {
				return p.errorf("structured metadata: want an object of names to values")
			}
			err := p.object(func(name string) error {
				v, err := p.strValue("structured metadata values")
				d.meta = append(d.meta, labels.Label{Name: name, Value: v})
				return err
			})
			if err != nil {
				return err
			}
		}
		p.ws()
	}
	if !p.consume(']') {
		return p.errorf("want ']': an entry has a timestamp, a line and optionally structured metadata")
	}
	return d.addEntry(ts, line)
}

// strValue reads a string where one is required.
func (p *jsonParser) strValue(what string) (string, error) {
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", p.errorf("%s must be strings", what)
	}
	return p.str()
}

// special marks the bytes that end a string's fast scan.
var special = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// scanPlain returns the index of the first special byte of b from i (or
// len(b)), eight bytes at a time while there is none: lines are most of
// a push, and most of their bytes are plain.
func scanPlain(b []byte, i int) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(lo*'"'), x^(lo*'\\')
		// A byte below 0x20, or a zero byte of q or bs (a '"' or '\\').
		if ((x-lo*0x20)&^x|(q-lo)&^q|(bs-lo)&^bs)&hi != 0 {
			break
		}
	}
	for i < len(b) && !special[b[i]] {
		i++
	}
	return i
}

// str reads a string. One without escapes aliases the body; one with
// escapes is unescaped into the arena.
func (p *jsonParser) str() (string, error) {
	if !p.consume('"') {
		return "", p.errorf("want a string")
	}
	b, start := p.b, p.i
	i := scanPlain(b, start)
	p.i = i
	switch {
	case i == len(b):
		return "", p.errorf("unterminated string")
	case b[i] == '"':
		p.i++
		return yolo(b[start:i]), nil
	case b[i] == '\\':
		return p.unescape(start)
	}
	return "", p.errorf("control character in a string")
}

func (p *jsonParser) unescape(start int) (string, error) {
	d := p.d
	a := len(d.arena)
	d.arena = append(d.arena, p.b[start:p.i]...)
	for p.i < len(p.b) {
		// Ordinary bytes are copied in runs.
		j := scanPlain(p.b, p.i)
		d.arena = append(d.arena, p.b[p.i:j]...)
		p.i = j
		if j == len(p.b) {
			break
		}
		switch p.b[j] {
		case '"':
			p.i++
			return yolo(d.arena[a:]), nil
		case '\\':
		default:
			return "", p.errorf("control character in a string")
		}
		if p.i+1 >= len(p.b) {
			break
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			d.arena = append(d.arena, e)
		case 'b':
			d.arena = append(d.arena, '\b')
		case 'f':
			d.arena = append(d.arena, '\f')
		case 'n':
			d.arena = append(d.arena, '\n')
		case 'r':
			d.arena = append(d.arena, '\r')
		case 't':
			d.arena = append(d.arena, '\t')
		case 'u':
			r, ok := hex4(p.b[p.i:])
			if !ok {
				return "", p.errorf("invalid \\u escape")
			}
			p.i += 4
			if utf16.IsSurrogate(r) {
				// As encoding/json: a valid pair is one rune, anything
				// else U+FFFD (a following escape is read on its own).
				r2 := rune(-1)
				if len(p.b)-p.i >= 6 && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					r2, _ = hex4(p.b[p.i+2:])
				}
				if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
					r = dec
					p.i += 6
				} else {
					r = unicode.ReplacementChar
				}
			}
			d.arena = utf8.AppendRune(d.arena, r)
		default:
			return "", p.errorf("invalid escape \\%c", e)
		}
	}
	return "", p.errorf("unterminated string")
}

// hex4 reads the 4 hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return -1, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// skip reads and drops any JSON value, checking its syntax.
func (p *jsonParser) skip(depth int) error {
	if depth > maxJSONDepth {
		return p.errorf("values nested deeper than %d", maxJSONDepth)
	}
	if p.i >= len(p.b) {
		return p.errorf("unexpected end of input")
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, err := p.str()
		return err
	case c == '{':
		p.i++
		return p.object(func(string) error { return p.skip(depth + 1) })
	case c == '[':
		p.i++
		return p.array(func(int) error { return p.skip(depth + 1) })
	case c == '-' || ('0' <= c && c <= '9'):
		return p.number()
	case p.literal("true"), p.literal("false"), p.literal("null"):
		return nil
	}
	return p.errorf("want a value")
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *jsonParser) number() error {
	b, i := p.b, p.i
	digits := func() bool {
		s := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case !digits():
		p.i = i
		return p.errorf("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			p.i = i
			return p.errorf("invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			p.i = i
			return p.errorf("invalid number")
		}
	}
	p.i = i
	return nil
}
