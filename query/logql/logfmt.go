package logql

import (
	"errors"
	"fmt"
	"strconv"
)

// logfmtDecoder scans key=value pairs in place, like go-logfmt (which Loki's
// decoder derives from): bare and "quoted" values, standalone keys with an
// empty value. After an error it skips to the next space so that the
// non-strict parser can go on.
type logfmtDecoder struct {
	s          string
	pos        int
	key, value string
	err        error
}

func (d *logfmtDecoder) reset(s string) {
	d.s, d.pos, d.key, d.value, d.err = s, 0, "", "", nil
}

// eol skips white space and reports whether the line is consumed.
func (d *logfmtDecoder) eol() bool {
	for d.pos < len(d.s) && d.s[d.pos] <= ' ' {
		d.pos++
	}
	return d.pos >= len(d.s)
}

func (d *logfmtDecoder) fail(format string, args ...any) bool {
	d.err = fmt.Errorf("logfmt syntax error at pos %d : %s", d.pos+1, fmt.Sprintf(format, args...))
	for d.pos < len(d.s) && d.s[d.pos] > ' ' {
		d.pos++
	}
	return false
}

// scanKeyval reads the next pair; call it only when eol is false.
func (d *logfmtDecoder) scanKeyval() bool {
	s := d.s
	start := d.pos
	for d.pos < len(s) {
		c := s[d.pos]
		if c <= ' ' || c == '=' || c == '"' {
			break
		}
		d.pos++
	}
	if d.pos == start {
		return d.fail("unexpected %q", s[d.pos])
	}
	d.key = s[start:d.pos]
	d.value = ""
	if d.pos >= len(s) || s[d.pos] <= ' ' {
		return true
	}
	if s[d.pos] == '"' {
		return d.fail("unexpected '\"'")
	}
	d.pos++ // '='
	if d.pos >= len(s) || s[d.pos] <= ' ' {
		return true
	}
	if s[d.pos] == '"' {
		raw, esc, end, err := scanJSONString(s, d.pos)
		if err != nil {
			d.pos = len(s)
			d.err = errors.New("logfmt syntax error: unterminated quoted value")
			return false
		}
		d.pos = end
		if esc {
			v, ok := unescapeJSON(raw)
			if !ok {
				return d.fail("invalid quoted value %s", strconv.Quote(raw))
			}
			raw = v
		}
		d.value = raw
		return true
	}
	vstart := d.pos
	for d.pos < len(s) && s[d.pos] > ' ' {
		if c := s[d.pos]; c == '=' || c == '"' {
			return d.fail("unexpected %q", c)
		}
		d.pos++
	}
	d.value = s[vstart:d.pos]
	return true
}
