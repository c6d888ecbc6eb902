package logql

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode"
)

// templateFuncs are the line_format and label_format functions: Loki's own
// and the subset of sprig it exposes, with sprig's argument order (the
// piped value comes last).
var templateFuncs = template.FuncMap{
	// Loki's deprecated Go-style names.
	"ToLower":    strings.ToLower,
	"ToUpper":    strings.ToUpper,
	"Replace":    strings.Replace,
	"Trim":       strings.Trim,
	"TrimLeft":   strings.TrimLeft,
	"TrimRight":  strings.TrimRight,
	"TrimPrefix": strings.TrimPrefix,
	"TrimSuffix": strings.TrimSuffix,
	"TrimSpace":  strings.TrimSpace,

	"regexReplaceAll": func(re, s, repl string) (string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return "", err
		}
		return r.ReplaceAllString(s, repl), nil
	},
	"regexReplaceAllLiteral": func(re, s, repl string) (string, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return "", err
		}
		return r.ReplaceAllLiteralString(s, repl), nil
	},
	"count": func(re, s string) (int, error) {
		r, err := regexp.Compile(re)
		if err != nil {
			return 0, err
		}
		return len(r.FindAllStringIndex(s, -1)), nil
	},
	"urldecode":        url.QueryUnescape,
	"urlencode":        url.QueryEscape,
	"bytes":            func(s string) (float64, error) { b, err := parseBytes(s); return float64(b), err },
	"duration":         durationSeconds,
	"duration_seconds": durationSeconds,
	"unixEpochMillis":  func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) },
	"unixEpochNanos":   func(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) },
	"unixEpoch":        func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) },
	"toDateInZone": func(layout, zone, s string) time.Time {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			loc = time.UTC
		}
		t, _ := time.ParseInLocation(layout, s, loc)
		return t
	},
	"alignLeft": func(n int, s string) string {
		r := []rune(s)
		if n <= 0 {
			return ""
		}
		if len(r) >= n {
			return string(r[:n])
		}
		return s + strings.Repeat(" ", n-len(r))
	},
	"alignRight": func(n int, s string) string {
		r := []rune(s)
		if n <= 0 {
			return ""
		}
		if len(r) >= n {
			return string(r[len(r)-n:])
		}
		return strings.Repeat(" ", n-len(r)) + s
	},

	// sprig.
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	"title":      title,
	"trim":       strings.TrimSpace,
	"trimAll":    func(cut, s string) string { return strings.Trim(s, cut) },
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"repeat":     func(n int, s string) string { return strings.Repeat(s, max(n, 0)) },
	"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
	"hasPrefix":  func(prefix, s string) bool { return strings.HasPrefix(s, prefix) },
	"hasSuffix":  func(suffix, s string) bool { return strings.HasSuffix(s, suffix) },
	"trunc":      trunc,
	"substr":     substr,
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", max(n, 0))
		return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	},
	"nindent": func(n int, s string) string {
		pad := strings.Repeat(" ", max(n, 0))
		return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
	},
	"b64enc": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	"b64dec": func(s string) string {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return err.Error()
		}
		return string(b)
	},
	"default":  dfault,
	"int":      func(v any) int { return int(toInt64(v)) },
	"float64":  toFloat64,
	"add":      func(a, b any) int64 { return toInt64(a) + toInt64(b) },
	"sub":      func(a, b any) int64 { return toInt64(a) - toInt64(b) },
	"mul":      func(a, b any) int64 { return toInt64(a) * toInt64(b) },
	"div":      intDiv,
	"mod":      intMod,
	"addf":     func(a, b any) float64 { return toFloat64(a) + toFloat64(b) },
	"subf":     func(a, b any) float64 { return toFloat64(a) - toFloat64(b) },
	"mulf":     func(a, b any) float64 { return toFloat64(a) * toFloat64(b) },
	"divf":     func(a, b any) float64 { return toFloat64(a) / toFloat64(b) },
	"max":      func(a any, rest ...any) int64 { return reduceInt(a, rest, func(x, y int64) int64 { return max(x, y) }) },
	"min":      func(a any, rest ...any) int64 { return reduceInt(a, rest, func(x, y int64) int64 { return min(x, y) }) },
	"maxf":     func(a any, rest ...any) float64 { return reduceFloat(a, rest, math.Max) },
	"minf":     func(a any, rest ...any) float64 { return reduceFloat(a, rest, math.Min) },
	"ceil":     func(a any) float64 { return math.Ceil(toFloat64(a)) },
	"floor":    func(a any) float64 { return math.Floor(toFloat64(a)) },
	"round":    round,
	"date":     date,
	"toDate":   func(layout, s string) time.Time { t, _ := time.ParseInLocation(layout, s, time.Local); return t },
	"now":      time.Now,
	"fromJson": func(s string) any { return s },
}

// templateFuncStubs lets the parser validate templates; __line__ and
// __timestamp__ are bound per stage at evaluation.
var templateFuncStubs = func() template.FuncMap {
	m := template.FuncMap{}
	for k, v := range templateFuncs {
		m[k] = v
	}
	m["__line__"] = func() string { return "" }
	m["__timestamp__"] = func() time.Time { return time.Time{} }
	return m
}()

func durationSeconds(s string) (float64, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return d.Seconds(), nil
}

func title(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		out := r
		if unicode.IsSpace(prev) {
			out = unicode.ToTitle(r)
		}
		prev = r
		return out
	}, s)
}

func trunc(c int, s string) string {
	r := []rune(s)
	n := len(r)
	if c < 0 && n+c > 0 {
		return string(r[n+c:])
	}
	if c >= 0 && n > c {
		return string(r[:c])
	}
	return s
}

func substr(start, end int, s string) string {
	r := []rune(s)
	n := len(r)
	end = min(end, n)
	start = min(start, n)
	switch {
	case start < 0 && end < 0:
		return ""
	case start < 0:
		return string(r[:end])
	case end < 0:
		return string(r[start:])
	case start > end:
		return ""
	}
	return string(r[start:end])
}

// dfault is sprig's default: d when the piped value is missing or empty.
func dfault(d any, given ...any) any {
	if len(given) == 0 || isEmpty(given[0]) {
		return d
	}
	return given[0]
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case int:
		return v == 0
	case int64:
		return v == 0
	case float64:
		return v == 0
	}
	return false
}

func toInt64(v any) int64 {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
	case string:
		if i, err := strconv.ParseInt(v, 0, 64); err == nil {
			return i
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return int64(f)
		}
	case bool:
		if v {
			return 1
		}
	}
	return 0
}

func toFloat64(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	case string:
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	case bool:
		if v {
			return 1
		}
	}
	return 0
}

func intDiv(a, b any) (int64, error) {
	d := toInt64(b)
	if d == 0 {
		return 0, fmt.Errorf("division by zero")
	}
	return toInt64(a) / d, nil
}

func intMod(a, b any) (int64, error) {
	d := toInt64(b)
	if d == 0 {
		return 0, fmt.Errorf("division by zero")
	}
	return toInt64(a) % d, nil
}

func reduceInt(a any, rest []any, f func(x, y int64) int64) int64 {
	out := toInt64(a)
	for _, r := range rest {
		out = f(out, toInt64(r))
	}
	return out
}

func reduceFloat(a any, rest []any, f func(x, y float64) float64) float64 {
	out := toFloat64(a)
	for _, r := range rest {
		out = f(out, toFloat64(r))
	}
	return out
}

// round is sprig's round(value, precision[, roundOn]).
func round(a any, p int, rOpt ...float64) float64 {
	roundOn := .5
	if len(rOpt) > 0 {
		roundOn = rOpt[0]
	}
	val := toFloat64(a)
	pow := math.Pow(10, float64(p))
	digit := pow * val
	_, div := math.Modf(digit)
	var r float64
	if div >= roundOn {
		r = math.Ceil(digit)
	} else {
		r = math.Floor(digit)
	}
	return r / pow
}

// date formats a time.Time, or Unix seconds, with a Go layout.
func date(layout string, v any) string {
	var t time.Time
	switch v := v.(type) {
	case time.Time:
		t = v
	case *time.Time:
		t = *v
	case int64:
		t = time.Unix(v, 0)
	case int:
		t = time.Unix(int64(v), 0)
	default:
		t = time.Now()
	}
	return t.Format(layout)
}
