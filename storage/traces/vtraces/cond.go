package vtraces

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/VictoriaMetrics/VictoriaLogs/lib/logstorage"

	"github.com/pharos-obs/pharos/storage/traces"
)

// ErrBadCondition wraps every error about a search condition that cannot
// be evaluated: an unknown scope, intrinsic or operator, a bad regexp, a
// duration or keyword that does not parse. It is the caller's mistake:
// retrying does not help.
var ErrBadCondition = errors.New("bad search condition")

// What a condition is about.
const (
	subjectSpan          = iota // a field of the span's row
	subjectRootName             // the root span's name
	subjectRootService          // the root span's service.name
	subjectTraceDuration        // the trace's duration, ns
)

// cond is a compiled traces.Condition.
//
// Semantics, checked exactly in Go: an attribute condition holds only when
// the attribute is present (non-empty: VictoriaLogs does not store empty
// values), so `span.x != "a"` does not hold without span.x; an unscoped
// attribute (.x) holds when it holds for span.x or for resource.x.
// Intrinsics are always present. = and != compare text, and numerically
// too when the value and the stored text are numbers ("1.50" = 1.5);
// =~ and !~ are fully anchored RE2 regexps (`name =~ "GET"` does not
// match "GET /"); > >= < <= compare numerically when the value is a
// number (a stored text that is not a number never holds then), else as
// strings, byte by byte. Durations (duration, traceDuration) are Go
// durations ("150ms", "1.5s") or integer nanoseconds.
type cond struct {
	src     traces.Condition
	subject int
	// fields are the row fields a span condition reads (span.x, then
	// resource.x for an unscoped attribute), as indexes into the
	// search's field list.
	fields []int
	names  []string // the fields' names
	// attr is the key SpanSummary.Attributes shows the value under; ""
	// for an intrinsic.
	attr  string
	op    string
	value string
	num   number
	re    *regexp.Regexp
}

// intrinsic is what an intrinsic name means.
type intrinsic struct {
	subject  int
	field    string
	keywords []string // the valid values of a keyword intrinsic
	duration bool
}

var intrinsics = map[string]intrinsic{
	"name":            {subject: subjectSpan, field: fieldName},
	"status":          {subject: subjectSpan, field: fieldStatusCode, keywords: statusNames[:]},
	"kind":            {subject: subjectSpan, field: fieldKind, keywords: kindNames[:]},
	"duration":        {subject: subjectSpan, field: fieldDuration, duration: true},
	"statusMessage":   {subject: subjectSpan, field: fieldStatusMessage},
	"rootName":        {subject: subjectRootName, field: fieldName},
	"rootServiceName": {subject: subjectRootService, field: fieldService},
	"traceDuration":   {subject: subjectTraceDuration, duration: true},
}

// intrinsicNames are the intrinsics TagNames lists.
var intrinsicNames = []string{"duration", "kind", "name", "rootName", "rootServiceName", "status", "statusMessage", "traceDuration"}

// intrinsicAliases are TraceQL's scoped spellings of the intrinsics
// (span:name, trace:duration...).
var intrinsicAliases = map[string]string{
	"span:name":          "name",
	"span:status":        "status",
	"span:kind":          "kind",
	"span:duration":      "duration",
	"span:statusMessage": "statusMessage",
	"trace:rootName":     "rootName",
	"trace:rootService":  "rootServiceName",
	"trace:duration":     "traceDuration",
}

func lookupIntrinsic(name string) (intrinsic, bool) {
	if a, ok := intrinsicAliases[name]; ok {
		name = a
	}
	in, ok := intrinsics[name]
	return in, ok
}

// fieldIndex gives fields their indexes in a search's field list.
type fieldIndex struct {
	names []string
	index map[string]int
}

func (fi *fieldIndex) get(name string) int {
	if i, ok := fi.index[name]; ok {
		return i
	}
	if fi.index == nil {
		fi.index = make(map[string]int)
	}
	fi.index[name] = len(fi.names)
	fi.names = append(fi.names, name)
	return len(fi.names) - 1
}

func compileCond(c traces.Condition, fi *fieldIndex) (*cond, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s%s %s %q: %s", ErrBadCondition, scopePrefix(c.Scope), c.Name, c.Op, c.Value, fmt.Sprintf(format, args...))
	}
	switch c.Op {
	case "=", "!=", "=~", "!~", ">", ">=", "<", "<=":
	default:
		return nil, bad("unknown operator")
	}
	cc := &cond{src: c, op: c.Op, value: c.Value}
	switch c.Scope {
	case "intrinsic":
		in, ok := lookupIntrinsic(c.Name)
		if !ok {
			return nil, bad("unknown intrinsic")
		}
		cc.subject = in.subject
		switch {
		case in.duration:
			if cc.isRegexp() {
				return nil, bad("a duration cannot be matched with a regexp")
			}
			d, err := parseDuration(c.Value)
			if err != nil {
				return nil, bad("%v", err)
			}
			cc.value = strconv.FormatInt(d, 10)
		case in.keywords != nil:
			if !cc.isRegexp() {
				if cc.op != "=" && cc.op != "!=" {
					return nil, bad("a keyword is compared with = or != only")
				}
				cc.value = strings.ToLower(c.Value)
				if !contains(in.keywords, cc.value) {
					return nil, bad("want one of %s", strings.Join(in.keywords, ", "))
				}
			}
		}
		if in.subject == subjectSpan {
			cc.names = []string{in.field}
		}
	case "resource", "span", "":
		if c.Name == "" {
			return nil, bad("no attribute name")
		}
		cc.attr = c.Name
		switch c.Scope {
		case "resource":
			cc.names = []string{resourcePrefix + c.Name}
		case "span":
			cc.names = []string{spanPrefix + c.Name}
		default:
			cc.names = []string{spanPrefix + c.Name, resourcePrefix + c.Name}
		}
	default:
		return nil, bad("unknown scope %q", c.Scope)
	}
	if cc.isRegexp() {
		re, err := regexp.Compile("^(?:" + cc.value + ")$")
		if err != nil {
			return nil, bad("%v", err)
		}
		cc.re = re
	} else {
		cc.num = parseNumber(cc.value)
	}
	for _, n := range cc.names {
		cc.fields = append(cc.fields, fi.get(n))
	}
	return cc, nil
}

func scopePrefix(scope string) string {
	switch scope {
	case "resource", "span":
		return scope + "."
	case "":
		return "."
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// parseDuration reads a Go duration or integer nanoseconds.
func parseDuration(s string) (int64, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return int64(d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("not a duration")
}

func (c *cond) isRegexp() bool { return c.op == "=~" || c.op == "!~" }

// isAttr reports whether c is about an attribute (which may be absent).
func (c *cond) isAttr() bool { return c.attr != "" }

// holds evaluates c on a value; present is false for an absent attribute.
func (c *cond) holds(v string, present bool) bool {
	if !present {
		return false
	}
	switch c.op {
	case "=":
		return c.equal(v)
	case "!=":
		return !c.equal(v)
	case "=~":
		return c.re.MatchString(v)
	case "!~":
		return !c.re.MatchString(v)
	}
	var r int
	if c.num.ok {
		n := parseNumber(v)
		if !n.ok {
			return false
		}
		r = compareNumbers(n, c.num)
	} else {
		r = strings.Compare(v, c.value)
	}
	switch c.op {
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	case "<":
		return r < 0
	default: // "<="
		return r <= 0
	}
}

func (c *cond) equal(v string) bool {
	if v == c.value {
		return true
	}
	if !c.num.ok {
		return false
	}
	n := parseNumber(v)
	return n.ok && compareNumbers(n, c.num) == 0
}

// holdsOnSpan evaluates a span condition on a row's values (indexed as
// the search's fields).
func (c *cond) holdsOnSpan(vals []string) bool {
	for _, i := range c.fields {
		v := vals[i]
		if c.holds(v, v != "" || !c.isAttr()) {
			return true
		}
	}
	return false
}

// number is a condition value or stored text read as a number.
type number struct {
	ok, isInt bool
	i         int64
	f         float64
}

// parseNumber reads s as a decimal number: an optional '-', digits, an
// optional fraction and an optional exponent. Nothing else is a number
// (no '+', hex, "Inf", "NaN" or '_'): LogsQL's range filters read every
// such text as the same number, which keeps the pushed-down filters a
// superset of what Go keeps.
func parseNumber(s string) number {
	if !isDecimal(s) {
		return number{}
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return number{ok: true, isInt: true, i: i, f: float64(i)}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return number{}
	}
	return number{ok: true, f: f}
}

func isDecimal(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

func compareNumbers(a, b number) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	return 0
}

// slack widens a pushed-down numeric bound: LogsQL parses numbers its own
// way and compares float64s, which may differ from Go's in the last bits
// (and loses integers beyond 2⁵³).
func slack(f float64) float64 { return max(math.Abs(f)*1e-9, 1e-9) }

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// appendPushdown appends a LogsQL filter that keeps at least every row on
// which span condition c holds. Every user string in it is a
// strconv.Quote'd literal, so no value can change the query's structure.
func (c *cond) appendPushdown(b []byte) []byte {
	if len(c.names) == 1 {
		return c.appendFieldFilter(b, c.names[0])
	}
	b = append(b, '(')
	for i, n := range c.names {
		if i > 0 {
			b = append(b, " or "...)
		}
		b = c.appendFieldFilter(b, n)
	}
	return append(b, ')')
}

func (c *cond) appendFieldFilter(b []byte, field string) []byte {
	f := strconv.Quote(field)
	q := strconv.Quote(c.value)
	// exists is the weakest filter: an attribute must be present, an
	// intrinsic always is.
	exists := "*"
	if c.isAttr() {
		exists = f + ":*"
	}
	switch c.op {
	case "=":
		if c.num.ok {
			s := slack(c.num.f)
			return fmt.Appendf(b, "(%s:=%s or %s:range[%s, %s])", f, q, f, formatFloat(c.num.f-s), formatFloat(c.num.f+s))
		}
		return fmt.Appendf(b, "%s:=%s", f, q)
	case "!=":
		if c.isAttr() {
			return fmt.Appendf(b, "(%s !%s:=%s)", exists, f, q)
		}
		return fmt.Appendf(b, "!%s:=%s", f, q)
	case "=~":
		if c.re.MatchString("") && !c.isAttr() {
			// How LogsQL treats an empty intrinsic here does not matter.
			return append(b, exists...)
		}
		filter := fmt.Sprintf("%s:~%s", f, strconv.Quote("^(?:"+c.value+")$"))
		if _, err := logstorage.ParseFilter(filter); err != nil {
			// A regexp Go takes and VictoriaLogs does not: Go alone
			// filters.
			return append(b, exists...)
		}
		// VictoriaLogs lets `.` match a newline where Go does not: it
		// keeps a superset.
		return append(b, filter...)
	case ">", ">=":
		if c.num.ok {
			return fmt.Appendf(b, "%s:>=%s", f, formatFloat(c.num.f-slack(c.num.f)))
		}
	case "<", "<=":
		if c.num.ok {
			return fmt.Appendf(b, "%s:<=%s", f, formatFloat(c.num.f+slack(c.num.f)))
		}
	}
	return append(b, exists...)
}
