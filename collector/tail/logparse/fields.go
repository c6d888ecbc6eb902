package logparse

import (
	"fmt"
	"regexp"
)

// JSON is a FieldParser for lines holding one JSON object: each top-level
// member becomes a field. String values are unescaped; numbers, booleans
// and null keep their text; nested objects and arrays keep their raw JSON.
// The zero value is ready to use.
type JSON struct {
	it     objectIter
	fields []Field
}

// Parse returns the members of the object in line.
func (p *JSON) Parse(line []byte) ([]Field, error) {
	p.fields = p.fields[:0]
	p.it.buf = p.it.buf[:0]
	if !p.it.reset(line) {
		return nil, ErrMalformedJSON
	}
	for {
		key, val, _, ok := p.it.next()
		if !ok {
			break
		}
		p.fields = append(p.fields, Field{Name: key, Value: val})
	}
	if p.it.err != nil {
		return p.fields, ErrMalformedJSON
	}
	return p.fields, nil
}

// Logfmt is a FieldParser for logfmt lines: key=value pairs separated by
// white space, where a value may be double-quoted with JSON-style escapes
// and a key without "=" has an empty value. The zero value is ready to use.
type Logfmt struct {
	fields []Field
	buf    []byte
}

// Parse returns the pairs of line in order.
func (p *Logfmt) Parse(line []byte) ([]Field, error) {
	p.fields = p.fields[:0]
	p.buf = p.buf[:0]
	i := 0
	for {
		for i < len(line) && line[i] <= ' ' {
			i++
		}
		if i >= len(line) {
			return p.fields, nil
		}
		start := i
		for i < len(line) && line[i] > ' ' && line[i] != '=' && line[i] != '"' {
			i++
		}
		if i == start {
			return p.fields, ErrMalformedLogfmt
		}
		key := line[start:i]
		if i >= len(line) || line[i] != '=' {
			if i < len(line) && line[i] == '"' {
				return p.fields, ErrMalformedLogfmt
			}
			p.fields = append(p.fields, Field{Name: key})
			continue
		}
		i++ // '='
		var val []byte
		if i < len(line) && line[i] == '"' {
			var ok bool
			val, p.buf, i, ok = unquote(line, i+1, p.buf)
			if !ok {
				return p.fields, ErrMalformedLogfmt
			}
			if i < len(line) && line[i] > ' ' {
				return p.fields, ErrMalformedLogfmt
			}
		} else {
			start = i
			for i < len(line) && line[i] > ' ' {
				if line[i] == '"' {
					return p.fields, ErrMalformedLogfmt
				}
				i++
			}
			val = line[start:i]
		}
		p.fields = append(p.fields, Field{Name: key, Value: val})
	}
}

// Regex is a FieldParser that matches a regular expression (RE2 syntax)
// and returns its named groups that took part in the match.
type Regex struct {
	re     *regexp.Regexp
	groups []int    // submatch indexes of the named groups
	names  [][]byte // their names, in the same order
	fields []Field
}

// NewRegex compiles expr, which must have at least one named group.
func NewRegex(expr string) (*Regex, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	p := &Regex{re: re}
	for i, name := range re.SubexpNames() {
		if name != "" {
			p.groups = append(p.groups, i)
			p.names = append(p.names, []byte(name))
		}
	}
	if len(p.groups) == 0 {
		return nil, fmt.Errorf("regular expression %q has no named group (?P<name>...)", expr)
	}
	return p, nil
}

// Parse returns the named groups of the leftmost match in line. It
// allocates the match's index slice, which regexp offers no way to reuse.
func (p *Regex) Parse(line []byte) ([]Field, error) {
	p.fields = p.fields[:0]
	m := p.re.FindSubmatchIndex(line)
	if m == nil {
		return nil, ErrNoMatch
	}
	for k, g := range p.groups {
		if m[2*g] < 0 {
			continue
		}
		p.fields = append(p.fields, Field{Name: p.names[k], Value: line[m[2*g]:m[2*g+1]]})
	}
	return p.fields, nil
}
