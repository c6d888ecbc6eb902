package traceql

import (
	"strconv"
	"strings"
	"time"

	"github.com/pharos-obs/pharos/storage/traces"
)

// Format writes a normal form back as TraceQL that parses to it again:
// `{ a && b } || { c }`, and `{}` for nil. A condition's value is written
// bare when it reads back the same as a number, duration, boolean or the
// field's keyword, quoted otherwise: the normal form keeps values as text,
// so `.x = "500"` and `.x = 500` are one condition.
func Format(groups [][]traces.Condition) string {
	if len(groups) == 0 {
		return "{}"
	}
	var b strings.Builder
	for i, g := range groups {
		if i > 0 {
			b.WriteString(" || ")
		}
		if len(g) == 0 {
			b.WriteString("{}")
			continue
		}
		b.WriteString("{ ")
		for j, c := range g {
			if j > 0 {
				b.WriteString(" && ")
			}
			appendField(&b, c.Scope, c.Name)
			b.WriteByte(' ')
			b.WriteString(c.Op)
			b.WriteByte(' ')
			writeValue(&b, c)
		}
		b.WriteString(" }")
	}
	return b.String()
}

func writeValue(b *strings.Builder, c traces.Condition) {
	if c.Op != "=~" && c.Op != "!~" && bare(c) {
		b.WriteString(c.Value)
		return
	}
	writeQuoted(b, c.Value)
}

// bare reports whether c's value lexes back to itself without quotes.
func bare(c traces.Condition) bool {
	v := c.Value
	if c.Scope == ScopeIntrinsic {
		switch intrinsics[c.Name].typ {
		case typeStatus:
			return statusValues[v]
		case typeKind:
			return kindValues[v]
		case typeDuration:
			return isDuration(v)
		}
		return false
	}
	if v == "true" || v == "false" {
		return true
	}
	if n, ok := normalizeNumber(strings.TrimPrefix(v, "-")); ok && (n == v || "-"+n == v) && v != "-0" {
		return true
	}
	return isDuration(v)
}

// isDuration reports whether v is a duration in its canonical form.
func isDuration(v string) bool {
	abs := strings.TrimPrefix(v, "-")
	if abs == "" || !isDigit(abs[0]) || abs == "0s" && v != abs {
		return false
	}
	d, err := time.ParseDuration(abs)
	return err == nil && d.String() == abs
}

// writeQuoted writes s as a double-quoted TraceQL string.
func writeQuoted(b *strings.Builder, s string) {
	b.WriteString(strconv.Quote(s))
}
